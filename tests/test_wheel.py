"""The built wheel, installed outside the checkout, runs the command's main jobs.

The wheel is built with `pip wheel` (hatchling, from the package index pip is configured
with) and installed by pip (`pip --python`), without dependencies, into a fresh venv
without pip in a temporary directory; the dependencies come from this test's own
environment through a `.pth` line naming its site-packages directory, so nothing of the
checkout is importable there (asserted). Every command then runs from an empty directory,
as a new user would run it.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 600


def _run(cmd, cwd, env, timeout=TIMEOUT):
    p = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                       text=True, timeout=timeout)
    assert p.returncode == 0, f"{cmd}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(bin directory of a fresh venv holding only the wheel, an empty working dir, env)."""
    base = tmp_path_factory.mktemp("wheel")
    assert ROOT not in base.parents
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTHON", "OSCILLAX_", "VIRTUAL_ENV"))}
    # (the test session's compilation cache, conftest.py, without the sweep's program cache)
    env.update(OSCILLAX_CACHE_DIR="off", OSCILLAX_PROGRAM_CACHE="0", JAX_PLATFORMS="cpu",
               MPLBACKEND="Agg")
    dist = base / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, ROOT],
         cwd=base, env=env)
    (wheel,) = dist.glob("oscillax-*.whl")
    venv = base / "venv"
    # no system site-packages; no pip of its own (bootstrapping one takes most of the
    # fixture's time): this environment's pip installs into the venv (`pip --python`)
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=base, env=env)
    _run([sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install",
          "--no-deps", "-q", wheel], cwd=base, env=env)
    purelib = Path(_run([venv / "bin" / "python", "-c",
                         "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        cwd=base, env=env).stdout.strip())
    # The dependencies: this environment's site-packages, as plain path lines (the .pth
    # files in it, such as an editable install's link to the checkout, are not read).
    ours = {sysconfig.get_paths()["purelib"], *site.getsitepackages()}
    (purelib / "_test_deps.pth").write_text("\n".join(sorted(ours)) + "\n")
    work = base / "work"
    work.mkdir()
    where = _run([venv / "bin" / "python", "-c",
                  "import oscillax, oscillax.specs; print(oscillax.__file__); "
                  "print(oscillax.specs.__file__)"], cwd=work, env=env).stdout.split()
    for f in where:
        assert Path(f).is_relative_to(purelib), where  # the wheel's copy, not the checkout
    return venv / "bin", work, env


@pytest.mark.slow
def test_wheel_ships_the_specs_as_files(installed):
    bin_, work, env = installed
    out = _run([bin_ / "python", "-c",
                "from importlib import resources; "
                "print(sorted(p.name for p in resources.files('oscillax.specs').iterdir()))"],
               cwd=work, env=env).stdout
    assert "euler_stability.toml" in out and "quick.toml" in out


@pytest.mark.slow
def test_installed_command_runs_from_an_empty_directory(installed):
    bin_, work, env = installed
    import oscillax as ox

    version = _run([bin_ / "oscillax", "--version"], cwd=work, env=env).stdout.strip()
    assert version == f"oscillax {ox.__version__}"
    assert _run([bin_ / "python", "-m", "oscillax", "--version"], cwd=work,
                env=env).stdout.strip() == version

    listed = _run([bin_ / "oscillax", "atlas", "--list"], cwd=work, env={**env,
                  "COLUMNS": "250"}).stdout
    assert "euler_stability (default)" in listed and "quick" in listed
    _run([bin_ / "oscillax", "atlas", "--copy", "quick"], cwd=work, env=env)
    assert (work / "quick.toml").read_text().startswith("# ")

    # the default spec, found from an empty directory (stopped before any work: --out is
    # taken)
    (work / "taken").mkdir()
    (work / "taken" / "x").write_text("x")
    p = subprocess.run([bin_ / "oscillax", "atlas", "--out", "taken"], cwd=work, env=env,
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 2 and "euler_stability (shipped)" in p.stdout, p.stdout + p.stderr
    assert "--force" in p.stderr and "Traceback" not in p.stderr

    # a shipped spec by name (the copy just written would win: run it from a clean dir)
    runs = work / "runs"
    runs.mkdir()
    atlas = _run([bin_ / "oscillax", "atlas", "quick", "--out", "r"], cwd=runs, env=env)
    r = runs / "r"
    table = pd.read_parquet(r / "results.parquet")
    summary = json.loads((r / "summary.json").read_text())
    assert len(table) == summary["trajectories"] == 128
    assert "status per activation / solver" in atlas.stdout and "r/results.parquet" in atlas.stdout
    figures = sorted(p.name for p in (r / "figures").glob("*.png"))
    assert {"atlas_euler.png", "atlas_rk4.png", "status_summary.png"} <= set(figures)

    sim = _run([bin_ / "oscillax", "simulate", "--activation", "tanh", "--frequencies", "1",
                "--solver", "euler", "--dt", "0.05", "--t1", "30", "--out", "s"], cwd=runs,
               env=env)
    for name in ("path.parquet", "phase_portrait.png", "invariant_drift.png", "summary.json"):
        assert (runs / "s" / name).is_file(), name
        assert name in sim.stdout
    assert list(pd.read_parquet(runs / "s" / "path.parquet").columns) == [
        "t", "x0", "x1", "invariant"]
    assert json.loads((runs / "s" / "summary.json").read_text())["status"] == "ok"

    for f in (r / "figures").glob("*.png"):
        f.unlink()
    show = _run([bin_ / "oscillax", "show", "r"], cwd=runs, env=env)
    assert "finished" in show.stdout and "status per activation / solver" in show.stdout
    assert sorted(p.name for p in (r / "figures").glob("*.png")) == figures
    # the benchmark suite ships with the package (one quick engine workload: W2)
    bench = _run([bin_ / "oscillax", "bench", "--quick", "--workloads", "W2", "--repeats", "1",
                  "--out", "bench.json"], cwd=runs, env=env)
    report = json.loads((runs / "bench.json").read_text())
    assert [w["name"] for w in report["workloads"]] == ["W2"]
    rows = {r["impl"]: r for r in report["workloads"][0]["results"]}
    assert rows["oscillax"]["status"] == "ok" and rows["diffrax-vmap"]["status"] == "ok"
    assert "wrote bench.json" in bench.stdout
