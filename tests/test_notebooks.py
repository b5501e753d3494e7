"""Every notebook under notebooks/ (jupytext percent-format ``.py`` files) runs without error.

Each file is converted with jupytext and executed with nbclient in a kernel that runs *this*
interpreter (``sys.executable``), whatever kernelspecs the machine has installed elsewhere. The notebooks
share one kernel per test worker, reset (``%reset -f``, every figure closed) before each: starting a kernel and
importing torch and the library again for every notebook cost about 40 s of the suite's CPU time. A notebook's
variables never reach the next; what stays is what Python caches anyway (imported modules).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")
nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.py"))
KERNEL = "diffmath-test-python"


def test_there_are_notebooks():
    assert NOTEBOOKS, f"no jupytext notebooks found in {NOTEBOOK_DIR}"


@pytest.fixture(scope="module")
def shared_kernel(tmp_path_factory):
    """One kernel for the notebooks of this worker (module docstring), started in notebooks/."""
    from jupyter_client import KernelManager

    spec_dir = tmp_path_factory.mktemp("jupyter") / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "diffmath tests", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    old = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = str(spec_dir.parent.parent)  # found first, before any installed kernelspec
    try:
        km = KernelManager(kernel_name=KERNEL)
        env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # figures use the inline backend
        km.start_kernel(cwd=str(NOTEBOOK_DIR), env=env)
    finally:
        if old is None:
            os.environ.pop("JUPYTER_PATH", None)
        else:
            os.environ["JUPYTER_PATH"] = old
    yield km
    km.shutdown_kernel(now=True)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, shared_kernel):
    nb = jupytext.read(path)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", (
        f"{path.name}: the jupytext header should declare the python3 kernelspec"
    )
    reset = nbformat.v4.new_code_cell("%reset -f\nimport matplotlib.pyplot as _plt\n_plt.close('all')\ndel _plt")
    nb.cells.insert(0, reset)
    client = nbclient.NotebookClient(nb, km=shared_kernel, timeout=300, allow_errors=False,
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    errors = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]
    assert not errors, f"{path.name}: cells raised {[e.get('ename') for e in errors]}"
