"""The code meets the project's ruff configuration ([tool.ruff] in pyproject.toml); CI runs this test."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_is_clean():
    exe = Path(sys.executable).with_name("ruff")
    ruff = str(exe) if exe.exists() else shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (it is in the test extra: pip install -e .[test])")
    out = subprocess.run([ruff, "check", "--output-format", "concise", "."], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_no_control_characters_in_the_library_source():
    """A backslash escape in a non-raw docstring (``\\t`` in ``\\text``, ``\\v`` in ``\\varepsilon``) silently becomes a
    control character and breaks the rendered formula; the API reference found three. None may remain."""
    bad = []
    for path in sorted((ROOT / "diffmath").rglob("*.py")):
        for i, line in enumerate(path.read_text(encoding="utf8").splitlines(), 1):
            if any(ord(c) < 32 for c in line):
                bad.append(f"{path.relative_to(ROOT)}:{i}")
    assert not bad, bad
