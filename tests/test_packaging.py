"""The package a user installs: the wheel builds offline (hatchling, the build backend of pyproject.toml), carries py.typed, the stored experiment results and the
version of diffmath/__init__.py, nothing of tests/ or book/, and works imported from outside the repository
(a sampler runs on an exact law of the bench, the stored results are read, not recomputed)."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import diffmath

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("hatchling")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel, built by the project's build backend (what ``pip wheel .`` runs, without pip's start-up)."""
    from hatchling.builders.wheel import WheelBuilder

    out = tmp_path_factory.mktemp("wheel")
    (path,) = WheelBuilder(str(ROOT)).build(directory=str(out), versions=["standard"])
    return Path(path)


@pytest.mark.slow
def test_wheel_contents(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "diffmath/py.typed" in names and "diffmath/bench.py" in names
    stored = {Path(n).name for n in names if n.startswith("diffmath/_stored/experiments/")}
    assert {p.name for p in (ROOT / "diffmath" / "_stored" / "experiments").glob("*.json")} <= stored
    assert not any(n.startswith(("tests/", "book/", "benchmarks/", "scripts/")) for n in names)
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert f"Version: {diffmath.__version__}" in meta and "Provides-Extra: bench" in meta


@pytest.mark.slow
def test_installed_wheel_works_outside_the_repository(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        "import diffmath, pathlib, sys\n"
        f"assert pathlib.Path(diffmath.__file__).is_relative_to({str(site)!r}), diffmath.__file__\n"
        "from diffmath import bench as B, samplers as S, experiments as E\n"
        "import torch\n"
        "x = S.sample_euler(__import__('diffmath.denoisers').denoisers.edm_denoiser(B.named_law('mixture-2d')), 80 * torch.ones(3, 2, dtype=torch.float64), B.karras_sigmas(4))\n"
        "assert x.shape == (3, 2) and bool(torch.isfinite(x).all())\n"
        "assert E.stored_state('sampler-table') == 'current', E.stored_state('sampler-table')\n"
        "assert E.is_cached('sampler-table')\n"
        "print(diffmath.__version__)\n"
    )
    env = {"PYTHONPATH": str(site), "DIFFMATH_CACHE": "stored", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip() == diffmath.__version__
