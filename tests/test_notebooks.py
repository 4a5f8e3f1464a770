"""Execute every example notebook in notebooks/ and fail if any cell errors.

Each notebook runs in a fresh python3 kernel with cwd = notebooks/. The kernel spec comes
from ipykernel (a `test` extra); if the environment has none registered, one is installed
into sys.prefix first, so a fresh `make test` venv works without any user-level setup.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
TIMEOUT_S = 180  # per cell; every notebook runs in well under a minute on 2 cores


def _ensure_kernelspec() -> None:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        subprocess.run(
            [sys.executable, "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3"],
            check=True,
            capture_output=True,
        )


def test_notebooks_exist():
    names = {p.name for p in NOTEBOOKS}
    for want in ("01_limit_cycles_2d", "02_forward_euler", "03_high_dimension", "04_fitting"):
        assert f"{want}.ipynb" in names, f"missing notebooks/{want}.ipynb"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path):
    _ensure_kernelspec()
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        kernel_name="python3",
        timeout=TIMEOUT_S,
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},
    )
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as e:
        pytest.fail(f"{path.name} failed:\n{e}")
