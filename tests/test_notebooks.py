"""The example notebooks: each committed .ipynb matches its jupytext source, and runs.

The cells live in jupytext "percent" sources, notebooks/NN_name.py; the committed .ipynb
files (with outputs) are produced from them (see notebooks/README.md). The fast test
compares the two cell by cell (type and source, not outputs or metadata), so editing one
without regenerating the other fails.

The slow test executes every notebook in a fresh python3 kernel with cwd = notebooks/. The
kernel spec comes from ipykernel (a `test` extra); if the environment has none registered,
one is installed into sys.prefix first, so a fresh `make test` venv works without any
user-level setup.
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
SOURCES = sorted(NOTEBOOK_DIR.glob("[0-9]*.py"))
STEMS = sorted({p.stem for p in NOTEBOOKS} | {p.stem for p in SOURCES})
TIMEOUT_S = 180  # per cell; every notebook runs in well under a minute on 2 cores
REGENERATE = "jupytext --sync notebooks/*.py  (or: jupytext --to ipynb --update notebooks/*.py)"


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


def _cells(nb) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source) for cell in nb.cells]


def test_notebooks_exist():
    names = {p.name for p in NOTEBOOKS}
    sources = {p.name for p in SOURCES}
    for want in ("01_limit_cycles_2d", "02_forward_euler", "03_high_dimension", "04_fitting",
                 "05_orbits"):
        assert f"{want}.ipynb" in names, f"missing notebooks/{want}.ipynb"
        assert f"{want}.py" in sources, f"missing notebooks/{want}.py (jupytext source)"


@pytest.mark.parametrize("stem", STEMS)
def test_notebook_matches_source(stem: str):
    jupytext = pytest.importorskip("jupytext")
    ipynb, source = NOTEBOOK_DIR / f"{stem}.ipynb", NOTEBOOK_DIR / f"{stem}.py"
    assert source.exists(), f"notebooks/{ipynb.name} has no jupytext source {source.name}"
    assert ipynb.exists(), f"notebooks/{source.name} has no notebook; run: {REGENERATE}"
    want = _cells(jupytext.read(source, fmt="py:percent"))
    got = _cells(nbformat.read(ipynb, as_version=4))
    assert want, f"{source.name} has no cells"
    for i, (w, g) in enumerate(zip(want, got)):
        assert w == g, (
            f"cell {i} of notebooks/{ipynb.name} differs from {source.name}:\n"
            f"  {source.name}: {w[0]} {w[1][:300]!r}\n  {ipynb.name}: {g[0]} {g[1][:300]!r}\n"
            f"regenerate the notebook: {REGENERATE}"
        )
    assert len(want) == len(got), (
        f"{source.name} has {len(want)} cells, {ipynb.name} {len(got)}; run: {REGENERATE}"
    )


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
