"""The command line through `typer.testing.CliRunner`: shipped specs (--list, --copy, names),
--version, `simulate` and `show`, and a one-line error naming the option for every bad value.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import oscillax as ox
from oscillax.cli import app

ROOT = Path(__file__).resolve().parents[1]
WIDE = {"COLUMNS": "250"}  # rich tables and panels on one line each

TINY_SPEC = """# How does a tiny test atlas come out?
[sweep]
forms = ["post"]
activations = ["identity"]
solvers = ["euler"]
dts = [0.1, 0.5]
dims = [2]
amplitudes = [1.0]
seeds = 1
steps = 10
"""


def invoke(*args, **kw):
    return CliRunner().invoke(app, [str(a) for a in args], env=WIDE, **kw)


def assert_one_line_error(res, *fragments):
    """Exit status 2 and exactly one line of output: `error: ...` with each fragment."""
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    for f in fragments:
        assert f in lines[0], (f, res.output)
    assert "Traceback" not in res.output


def table_lines(output: str) -> list[str]:
    """The rows of the status table in a command's output (box-drawing lines)."""
    return [ln for ln in output.splitlines() if ln[:1] in "┏┃┡│└"]


# --------------------------------------------------------------------------------------
# version, python -m, help
# --------------------------------------------------------------------------------------
def test_version():
    res = invoke("--version")
    assert res.exit_code == 0, res.output
    assert res.output.strip() == f"oscillax {ox.__version__}"


@pytest.mark.parametrize("module", ["oscillax", "oscillax.cli"])
def test_python_m(module):
    p = subprocess.run([sys.executable, "-m", module, "--version"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f"oscillax {ox.__version__}"


@pytest.mark.parametrize("command", ["atlas", "show", "simulate", "orbits", "fit", "bench",
                                     "devices"])
def test_help_shows_defaults_and_an_example(command):
    res = invoke(command, "--help")
    assert res.exit_code == 0, res.output
    assert "Example" in res.output and f"oscillax {command}" in res.output
    assert "default" in res.output


def test_help_lists_every_command():
    res = invoke("--help")
    assert res.exit_code == 0, res.output
    for command in ("atlas", "show", "simulate", "orbits", "fit", "bench", "devices"):
        assert command in res.output
    assert "--version" in res.output


# --------------------------------------------------------------------------------------
# shipped specs
# --------------------------------------------------------------------------------------
def _shipped() -> dict[str, str]:
    files = resources.files("oscillax.specs")
    return {p.name[:-5]: p.read_text(encoding="utf-8") for p in files.iterdir()
            if p.name.endswith(".toml")}


def test_shipped_specs_are_valid_and_ask_one_question():
    shipped = _shipped()
    assert {"euler_stability", "quick"} <= set(shipped)
    for name, text in shipped.items():
        first = text.splitlines()[0]
        assert first.startswith("# ") and first.rstrip().endswith("?"), (name, first)
        with resources.as_file(resources.files("oscillax.specs") / f"{name}.toml") as p:
            ox.SweepSpec.from_toml(p)
    quick = ox.SweepSpec.from_toml(ROOT / "oscillax/specs/quick.toml")
    assert quick.n_trajectories <= 256 and quick.total_steps < 2e5


def test_experiments_links_to_the_package_copy():
    link = ROOT / "experiments" / "euler_stability.toml"
    assert link.is_symlink()
    assert link.resolve() == (ROOT / "oscillax/specs/euler_stability.toml").resolve()
    assert (ROOT / "experiments" / "README.md").is_file()


def test_atlas_list_shows_names_and_questions():
    res = invoke("atlas", "--list")
    assert res.exit_code == 0, res.output
    for name, text in _shipped().items():
        assert name in res.output
        assert text.splitlines()[0][2:].strip() in res.output
    assert "euler_stability (default)" in res.output


def test_atlas_copy(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = invoke("atlas", "--copy", "quick")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "quick.toml").read_text() == _shipped()["quick"]
    again = invoke("atlas", "--copy", "quick")
    assert_one_line_error(again, "--copy", "already exists")
    (tmp_path / "mine").mkdir()
    assert invoke("atlas", "--copy", "quick.toml", "mine").exit_code == 0  # into a directory
    assert (tmp_path / "mine" / "quick.toml").read_text() == _shipped()["quick"]
    assert invoke("atlas", "--copy", "euler_stability", "edit.toml").exit_code == 0
    assert (tmp_path / "edit.toml").read_text() == _shipped()["euler_stability"]
    assert_one_line_error(invoke("atlas", "--copy", "nope"), "--copy", "'nope'", "quick")
    assert_one_line_error(invoke("atlas", "--copy", "quick", "no/such/dir/q.toml"),
                          "--copy", "does not exist")
    assert_one_line_error(invoke("atlas", "--copy", "quick", "--out", "x"), "--copy", "--out")
    assert not (tmp_path / "x").exists()


def test_atlas_finds_the_default_spec_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    res = invoke("atlas", "--out", busy)  # stops before any work: the directory is taken
    assert res.exit_code == 2, res.output
    assert "euler_stability (shipped)" in res.output and "24,192 trajectories" in res.output
    assert "--force" in res.output and (busy / "keep.txt").exists()


def test_atlas_unknown_spec_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(invoke("atlas", "nope", "--out", "r"), "SPEC 'nope'", "quick",
                          "--list")
    (tmp_path / "adir").mkdir()
    assert_one_line_error(invoke("atlas", "adir", "--out", "r"), "SPEC 'adir'", "directory")
    assert not (tmp_path / "r").exists()


def test_an_existing_file_wins_over_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quick").write_text(TINY_SPEC)
    res = invoke("atlas", "quick", "--out", "r", "--no-figures")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "r" / "spec.toml").read_text() == TINY_SPEC
    assert len(pd.read_parquet(tmp_path / "r" / "results.parquet")) == 2


@pytest.mark.parametrize("args,fragments", [
    (["--chunk-size", "0"], ["--chunk-size must be >= 1; got 0"]),
    (["quick", "--resume", "somewhere"], ["--resume DIR", "SPEC"]),
    (["--resume", "somewhere", "--out", "x"], ["--resume DIR", "--out"]),
])
def test_atlas_bad_options(args, fragments, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(invoke("atlas", *args), *fragments)


def test_error_text_is_not_read_as_markup(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = invoke("atlas", "[red]x[/red]")
    assert_one_line_error(res, "SPEC '[red]x[/red]'")
    res = invoke("simulate", "--form", "[bold]pre")
    assert_one_line_error(res, "--form", "'[bold]pre'")


# --------------------------------------------------------------------------------------
# simulate
# --------------------------------------------------------------------------------------
SIM_BAD = {
    "form": (["--form", "mid"], ["--form must be", "'mid'"]),
    "activation": (["--activation", "nope"], ["--activation must be one of", "tanh"]),
    "solver": (["--solver", "rk5"], ["--solver must be one of", "rk4"]),
    "dt0": (["--dt", "0"], ["--dt must be a positive"]),
    "dtneg": (["--dt", "-0.1"], ["--dt must be a positive", "-0.1"]),
    "dtnan": (["--dt", "nan"], ["--dt must be a positive"]),
    "t1": (["--t1", "0"], ["--t1 must be a positive"]),
    "t1inf": (["--t1", "inf"], ["--t1 must be a positive"]),
    "t1steps": (["--t1", "5", "--steps", "10"], ["one of --t1", "--steps"]),
    "steps": (["--steps", "0"], ["--steps must be an integer >= 1"]),
    "n": (["--n", "0"], ["--n must be an integer >= 1"]),
    "freqs": (["--frequencies", "1,x"], ["--frequencies must be a comma-separated list"]),
    "freqsempty": (["--frequencies", ""], ["--frequencies must be a comma-separated list"]),
    "freqsneg": (["--frequencies", "1,-2"], ["--frequencies must be positive"]),
    "freqsn": (["--frequencies", "1", "--n", "3"], ["--n 3 does not match --frequencies"]),
    "x0len": (["--n", "2", "--x0", "1,0,0"], ["--x0 must have n = 2 entries", "got 3"]),
    "x0inf": (["--x0", "1,inf"], ["--x0 must be a comma-separated list of finite"]),
    "x0amp": (["--x0", "1,0", "--amplitude", "2"], ["one of --amplitude", "--x0"]),
    "amp": (["--amplitude", "0"], ["--amplitude must be a positive"]),
    "gamma": (["--form", "pre", "--gamma", "-1"], ["--gamma must be a finite number >= 0"]),
    "gammapost": (["--gamma", "0.1"], ["--gamma applies to --form pre"]),
    "seed": (["--seed", "-1"], ["--seed must be an integer from 0"]),
    "save": (["--save-every", "0"], ["--save-every must be an integer >= 1"]),
    "memory": (["--steps", "100000000", "--save-every", "1"], ["raise --save-every"]),
}


@pytest.mark.parametrize("case", sorted(SIM_BAD))
def test_simulate_bad_values(case, tmp_path):
    args, fragments = SIM_BAD[case]
    out = tmp_path / "out"
    assert_one_line_error(invoke("simulate", *args, "--out", out), *fragments)
    assert not out.exists()


@pytest.mark.parametrize("option", ["--dt", "--t1", "--steps", "--n", "--gamma", "--seed",
                                    "--amplitude", "--save-every"])
def test_simulate_unparsable_numbers(option, tmp_path):
    res = invoke("simulate", option, "abc", "--out", tmp_path / "out")
    assert_one_line_error(res, f"Invalid value for '{option}'", "oscillax simulate --help")
    assert not (tmp_path / "out").exists()


def test_usage_errors_are_one_line():
    assert_one_line_error(invoke("simulate", "--frobnicate"), "--frobnicate")
    assert_one_line_error(invoke("show"), "RUN_DIR")
    assert_one_line_error(invoke("nosuchcommand"), "nosuchcommand")


def test_simulate_out_is_a_file(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    assert_one_line_error(invoke("simulate", "--out", f), "--out", "is a file")


def test_simulate_writes_path_figures_and_summary(tmp_path):
    out = tmp_path / "sim"
    dt, t1 = 0.05, 20.0
    res = invoke("simulate", "--activation", "identity", "--frequencies", "1", "--solver",
                 "euler", "--dt", dt, "--t1", t1, "--x0", "1,0", "--out", out)
    assert res.exit_code == 0, res.output
    for name in ("path.parquet", "phase_portrait.png", "invariant_drift.png", "summary.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    path = pd.read_parquet(out / "path.parquet")
    assert list(path.columns) == ["t", "x0", "x1", "invariant"]
    assert len(path) == 401 and path.t.iloc[0] == 0.0 and path.t.iloc[-1] == pytest.approx(t1)
    assert path.x0.iloc[0] == 1.0 and path.x1.iloc[0] == 0.0
    s = json.loads((out / "summary.json").read_text())
    assert s["status"] == "ok" and s["diverged_at"] == -1
    # Euler on the rotation: |x|^2 grows by 1 + h^2 per step; one turn takes
    # 2π / atan(h) steps.
    assert s["final_drift"] == pytest.approx((1 + dt * dt) ** 400 - 1, rel=1e-4)
    assert s["period"] == pytest.approx(2 * math.pi * dt / math.atan(dt), rel=1e-3)
    assert s["linear_periods"] == pytest.approx([2 * math.pi])
    assert s["max_norm"] == pytest.approx((1 + dt * dt) ** 200, rel=1e-4)
    for word in ("status", "ok", "invariant drift", "period", "max norm", "linear theory"):
        assert word in res.output, word
    assert str(out) in res.output


def test_simulate_random_network_projection(tmp_path):
    out = tmp_path / "sim"
    res = invoke("simulate", "--n", 3, "--form", "pre", "--activation", "tanh", "--gamma",
                 0.05, "--steps", 300, "--save-every", 7, "--amplitude", 2, "--seed", 3,
                 "--out", out)
    assert res.exit_code == 0, res.output
    path = pd.read_parquet(out / "path.parquet")
    assert list(path.columns) == ["t", "x0", "x1", "x2", "invariant"]
    assert len(path) == 300 // 7 + 2  # every 7th step and the last one
    assert np.linalg.norm(path[["x0", "x1", "x2"]].iloc[0]) == pytest.approx(2.0, rel=1e-6)
    # damped: the invariant of the undamped field decays
    assert path.invariant.iloc[-1] < path.invariant.iloc[0]
    assert (out / "phase_portrait.png").is_file()
    s = json.loads((out / "summary.json").read_text())
    assert s["parameters"]["steps"] == 300 and s["parameters"]["gamma"] == 0.05
    assert "γ > 0" in res.output


def test_simulate_divergence_is_reported(tmp_path):
    out = tmp_path / "sim"
    res = invoke("simulate", "--activation", "identity", "--frequencies", "3", "--solver",
                 "euler", "--dt", 1.0, "--steps", 100, "--out", out, "--no-figures")
    assert res.exit_code == 0, res.output
    s = json.loads((out / "summary.json").read_text())
    assert s["status"] == "diverged" and s["diverged_at"] > 0
    assert re.search(r"diverged at step \d+", res.output)
    assert sorted(p.name for p in out.iterdir()) == ["path.parquet", "summary.json"]


def test_simulate_overwrites_only_its_own_files(tmp_path):
    out = tmp_path / "sim"
    args = ["simulate", "--steps", 50, "--out", out]
    assert invoke(*args).exit_code == 0
    (out / "notes.txt").write_text("mine")
    assert_one_line_error(invoke(*args), "--out", "not empty", "--overwrite")
    res = invoke(*args, "--overwrite", "--no-figures", "--dt", 0.02)
    assert res.exit_code == 0, res.output
    assert (out / "notes.txt").read_text() == "mine"
    assert not (out / "phase_portrait.png").exists()  # its own stale figure went
    assert json.loads((out / "summary.json").read_text())["parameters"]["dt"] == 0.02


# --------------------------------------------------------------------------------------
# show
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """`oscillax atlas quick`, run once for the show tests (no figures: show draws them)."""
    run = tmp_path_factory.mktemp("atlas") / "r"
    res = invoke("atlas", "quick", "--out", run, "--no-figures")
    assert res.exit_code == 0, res.output
    return run, res.output


def test_atlas_quick_runs_the_shipped_spec(quick_run):
    run, output = quick_run
    assert (run / "spec.toml").read_text() == _shipped()["quick"]
    table = pd.read_parquet(run / "results.parquet")
    assert len(table) == ox.SweepSpec.from_toml(run / "spec.toml").n_trajectories
    assert "quick (shipped)" in output and "status per activation / solver" in output


def test_show_finished_run(quick_run, tmp_path):
    run, atlas_output = quick_run
    res = invoke("show", run, "--figures", tmp_path / "fig")
    assert res.exit_code == 0, res.output
    assert "finished" in res.output and "partial" not in res.output
    assert table_lines(res.output) == table_lines(atlas_output)  # the atlas's own table
    for name in ("atlas_euler.png", "atlas_rk4.png", "status_summary.png",
                 "drift_over_time.png", "phase_portraits.png"):
        assert (tmp_path / "fig" / name).is_file(), name
    assert not (run / "figures").exists()  # drawn where asked


def test_show_partial_run(quick_run, tmp_path):
    run, _ = quick_run
    part = tmp_path / "partial"
    (part / "parts").mkdir(parents=True)
    for name in ("spec.toml", "run.json"):
        (part / name).write_bytes((run / name).read_bytes())
    parts = sorted((run / "parts").glob("*.parquet"))
    assert len(parts) >= 1
    (part / "parts" / parts[0].name).write_bytes(parts[0].read_bytes())
    n = len(pd.read_parquet(parts[0]))
    res = invoke("show", part, "--no-figures")
    assert res.exit_code == 0, res.output
    assert "partial" in res.output and f"{n:,} of 128 trajectories" in res.output
    assert "--resume" in res.output
    counts = [int(v) for ln in table_lines(res.output)[3:-1]
              for v in re.findall(r"│\s*(\d+)\s*(?=│)", ln)]
    assert sum(counts) == n


def test_show_bad_run_dirs(tmp_path):
    assert_one_line_error(invoke("show", tmp_path / "missing"), "RUN_DIR", "not a directory")
    assert_one_line_error(invoke("show", tmp_path), "RUN_DIR", "no spec.toml")
    (tmp_path / "spec.toml").write_text(TINY_SPEC)
    assert_one_line_error(invoke("show", tmp_path), "no results.parquet", "no finished parts")
