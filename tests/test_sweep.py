"""The stability atlas: sweep rows, determinism, resumability, statuses, spec errors."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from helpers import without_session_cache

import oscillax as ox
from oscillax._sweep import AXES

SMALL = dict(
    forms=("pre", "post"),
    activations=("identity", "tanh"),
    solvers=("euler", "implicit_midpoint"),
    dts=(0.01, 0.3, 1.0),
    dims=(2, 3),
    amplitudes=(1.0, 3.0),
    seeds=2,
    spectral_radius=3.0,
    horizon=20.0,  # linear Euler at dt = 1 passes the 1e6 threshold at step 12
)


def measured(df):
    return df.drop(columns=["traj_id"]).sort_values(list(AXES)).reset_index(drop=True)


@pytest.fixture(scope="module")
def small_result():
    return ox.sweep(ox.SweepSpec(**SMALL), chunk_size=16)


def test_rows_equal_simulate(small_result):
    """Each row reproduces with ox.simulate: same final state norm, same divergence step."""
    df = small_result.to_dataframe()
    spec = small_result.spec
    # one row per (form, activation, solver, dim), varying dt / amplitude / seed
    sample = pd.concat([
        df.groupby(["form", "activation", "solver", "dim"]).nth(11),  # dt = 1
        df[df.dt == 0.01].groupby(["form", "solver"]).nth(5),
    ])
    assert (sample.diverged_at >= 0).any() and (sample.diverged_at < 0).any()
    for _, row in sample.iterrows():
        c = small_result.case(int(row.traj_id))
        tr = ox.simulate(c["field"], c["x0"], dt=c["dt"], steps=c["steps"], solver=c["solver"],
                         save_every=c["steps"],
                         divergence_threshold=spec.thresholds.divergence_threshold)
        assert int(tr.diverged_at) == int(row.diverged_at)
        fn = float(jnp.linalg.norm(tr.final))
        assert fn == pytest.approx(row.amplitude_final, rel=1e-6)
        if row.activation != "identity" or row.form == "post":
            inv = float(c["field"].invariant(tr.final))
            assert inv == pytest.approx(row.invariant_final, rel=1e-5, abs=1e-6)


def test_identical_for_two_chunk_sizes():
    spec = ox.SweepSpec(**{**SMALL, "forms": ("post",), "solvers": ("rk4",)})
    a = ox.sweep(spec, chunk_size=16).to_dataframe()
    b = ox.sweep(spec, chunk_size=7).to_dataframe()
    pd.testing.assert_frame_equal(a, b)


def test_table_columns_and_xarray(small_result):
    df = small_result.to_dataframe()
    assert len(df) == small_result.spec.n_trajectories == 2 * 2 * 2 * 3 * 2 * 2 * 2
    for col in (*AXES, "status", "diverged_at", "max_norm", "norm_ratio", "drift_final",
                "drift_max", "growth_rate", "period", "amplitude_final",
                "theory_amplification", "theory_rate"):
        assert col in df.columns, col
    assert set(df["status"]) <= set(ox.STATUS_NAMES)
    ds = small_result.to_xarray()
    assert dict(ds.sizes) == {"form": 2, "activation": 2, "solver": 2, "dt": 3, "dim": 2,
                              "amplitude": 2}
    assert np.allclose(sum(ds[f"frac_{s}"] for s in ox.STATUS_NAMES), 1.0)


def test_theory_columns(small_result):
    df = small_result.to_dataframe()
    e = df[df.solver == "euler"]
    assert np.allclose(e.theory_amplification, np.sqrt(1 + (e.dt * 3.0) ** 2))
    im = df[df.solver == "implicit_midpoint"]
    assert np.allclose(im.theory_amplification, 1.0)
    # linear Euler, no threshold hit: measured late growth rate of log(|x|^2) equals theory
    # for n = 2 (one eigen-pair, omega = spectral radius)
    lin = e[(e.activation == "identity") & (e.dim == 2) & (e.diverged_at < 0)]
    assert len(lin) > 0
    assert np.allclose(lin.growth_rate, lin.theory_rate, rtol=1e-3)


def test_one_diverging_trajectory_changes_nothing():
    base = dict(forms=("post",), activations=("identity", "tanh"), solvers=("euler",),
                dims=(2,), amplitudes=(1.0,), seeds=3, spectral_radius=1.0, steps=400)
    calm = ox.sweep(ox.SweepSpec(dts=(0.01,), **base), chunk_size=64).to_dataframe()
    mixed = ox.sweep(
        ox.SweepSpec(dts=(0.01, 0.9), **base, thresholds=ox.Thresholds(divergence_threshold=20.0)),
        chunk_size=64,
    ).to_dataframe()
    bad = mixed[(mixed.dt == 0.9) & (mixed.activation == "identity")]
    assert (bad.diverged_at > 0).all() and (bad.status == "diverged").all()
    # |x_k| = |x0| (1 + 0.81)^(k/2) first passes 20 |x0| at this k
    expected = int(np.ceil(np.log(20.0) / np.log(np.sqrt(1 + 0.81))))
    assert set(bad.diverged_at) == {expected}
    good = mixed[mixed.dt == 0.01].drop(columns=["traj_id"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(good, calm.drop(columns=["traj_id"]).reset_index(drop=True))


def test_trend_tells_polynomial_drift_from_exponential_growth():
    """Euler, dt = 0.05, t = 100: linear grows exponentially, tanh drifts polynomially.

    Their average log-growth rates are similar; only the trend separates them."""
    spec = ox.SweepSpec(forms=("pre", "post"), activations=("identity", "tanh"),
                        solvers=("euler",), dts=(0.05,), dims=(2,), amplitudes=(1.0,),
                        seeds=3, spectral_radius=1.0, horizon=100.0)
    df = ox.sweep(spec).to_dataframe()
    lin, tanh = df[df.activation == "identity"], df[df.activation == "tanh"]
    avg_lin = lin.log_growth / lin.t_final
    avg_tanh = tanh.log_growth / tanh.t_final
    assert (avg_tanh > 0.2 * avg_lin.min()).all()  # same order of magnitude on average
    assert (lin.diverged_at == -1).all()  # no threshold involved: it's the trend
    assert (lin.status == "diverged").all()
    assert (tanh.status == "drifting").all()
    assert (lin.growth_rate / lin.rate_early > 0.99).all()
    assert (tanh.growth_rate / tanh.rate_early < 0.8).all()


@pytest.mark.parametrize(
    "form,activation,solver,dt,amplitude,status",
    [
        ("post", "tanh", "rk4", 0.01, 1.0, "conserved"),
        ("post", "tanh", "implicit_midpoint", 0.5, 2.0, "conserved"),
        ("pre", "tanh", "euler", 0.1, 1.0, "drifting"),
        ("post", "identity", "euler", 0.05, 1.0, "diverged"),
        ("post", "identity", "rk4", 1.0, 1.0, "diverged"),  # |h w| = 3 > 2 sqrt 2
        ("post", "relu", "euler", 0.05, 1.0, "escaped"),
        ("post", "sigmoid", "rk4", 0.05, 1.0, "escaped"),
    ],
)
def test_each_status_on_a_case_built_for_it(form, activation, solver, dt, amplitude, status):
    spec = ox.SweepSpec(forms=(form,), activations=(activation,), solvers=(solver,),
                        dts=(dt,), dims=(2,), amplitudes=(amplitude,), seeds=2,
                        spectral_radius=3.0 if "rk4" == solver and dt == 1.0 else 1.0,
                        horizon=100.0)
    df = ox.sweep(spec).to_dataframe()
    assert (df.status == status).all(), df[["status", "secular_drift", "growth_rate",
                                           "rate_early", "zero_crossings"]]


def test_collapsed():
    """relu, pre form: a start where A x <= 0 componentwise is a fixed point; every
    other start escapes linearly. Some escape slowly (seed 3 creeps at speed ~0.07 and
    is still below 2x its start at t = 20, hence "drifting" there), so the horizon is
    long enough for every member to have settled."""
    spec = ox.SweepSpec(forms=("pre",), activations=("relu",), solvers=("euler",),
                        dts=(0.05,), dims=(2,), amplitudes=(1.0,), seeds=12,
                        spectral_radius=1.0, horizon=100.0)
    res = ox.sweep(spec)
    df = res.to_dataframe()
    col = df[df.status == "collapsed"]
    assert len(col) >= 1
    for tid in col.traj_id:
        c = res.case(int(tid))
        tr = ox.simulate(c["field"], c["x0"], dt=c["dt"], steps=c["steps"])
        assert float(jnp.linalg.norm(c["field"](0.0, tr.final))) < 1e-6
    assert set(df.status) <= {"collapsed", "escaped"}


def test_sigmoid_is_never_diverged_or_oscillating():
    """sigmoid (pre, n = 2) is bounded and has no closed orbit: a member creeping out of a
    slow region (norm x1.5 over the run, accelerating) is escaping, not diverging."""
    spec = ox.SweepSpec(forms=("pre",), activations=("sigmoid",), solvers=("euler",),
                        dts=(0.05,), dims=(2,), amplitudes=(2.0, 4.0), seeds=3,
                        spectral_radius=3.0, horizon=60.0)
    df = ox.sweep(spec).to_dataframe()
    assert (df.zero_crossings == 0).all()
    assert set(df.status) <= {"escaped", "collapsed", "conserved"}, df
    slow = df[(df.amplitude == 2.0) & (df.seed == 0)].iloc[0]
    assert 1.2 < slow.norm_ratio < 2.0 and slow.status == "escaped"


def test_statuses_are_documented_thresholds():
    spec = ox.SweepSpec(forms=("pre",), activations=("tanh",), solvers=("euler",),
                        dts=(0.1,), dims=(2,), amplitudes=(1.0,), seeds=1, horizon=100.0,
                        thresholds=ox.Thresholds(conserve_tol=10.0, conserve_max_drift=100.0))
    assert (ox.sweep(spec).to_dataframe().status == "conserved").all()


# -- spec ------------------------------------------------------------------------------


def write(tmp_path, text, name="spec.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


GOOD = """
[sweep]
forms = ["pre", "post"]
activations = ["identity", "tanh"]
solvers = ["euler", "rk4"]
dts = { log_start = -2, log_stop = 0, num = 5 }
dims = [2]
amplitudes = [1.0, 2.0]
seeds = 2
spectral_radius = 1.0
horizon = 5.0

[thresholds]
conserve_tol = 0.02
"""


def test_spec_from_toml_and_roundtrip(tmp_path):
    spec = ox.SweepSpec.from_toml(write(tmp_path, GOOD))
    assert spec.dts == pytest.approx(tuple(np.logspace(-2, 0, 5)))
    assert spec.thresholds.conserve_tol == 0.02
    again = ox.SweepSpec.from_toml(write(tmp_path, spec.to_toml(), "again.toml"))
    assert again == spec and again.fingerprint() == spec.fingerprint()


@pytest.mark.parametrize(
    "edit,match",
    [
        (("seeds = 2", "seeds = 2\nsteeps = 4"), r"unknown key\(s\) 'steeps'.*valid keys: forms"),
        (("seeds = 2", "seeds = \"two\""), r"`seeds` must be an integer >= 1.*got 'two'"),
        (('forms = ["pre", "post"]', "forms = []"), r"`forms` must not be empty"),
        (('forms = ["pre", "post"]', 'forms = ["middle"]'), r"`forms`.*'pre' / 'post'"),
        (("horizon = 5.0", "horizon = 5.0\nsteps = 10"), r"exactly one of `steps`"),
        (("horizon = 5.0", ""), r"exactly one of `steps`"),
        (('solvers = ["euler", "rk4"]', 'solvers = ["dopri5"]'), r"fixed-step solvers"),
        (('activations = ["identity", "tanh"]', 'activations = ["tahn"]'),
         r"`activations`.*built-in activations.*got 'tahn'"),
        (("num = 5", "num = 0"), r"`dts.num` must be an integer >= 1"),
        (("amplitudes = [1.0, 2.0]", "amplitudes = [1.0, -2.0]"), r"`amplitudes`.*positive"),
        (("[thresholds]", "[thresholds]\nconserve = 1"), r"unknown key\(s\) 'conserve'"),
        (("seeds = 2", "seeds = 2\ncheck_every = 64"), r"`check_every` must be .* 1 to 32"),
        (("seeds = 2", "seeds = 2\nsamples = 0"), r"`samples` must be an integer >= 1"),
        (("[thresholds]", "[extra]\n[thresholds]"), r"unknown table\(s\) extra"),
    ],
)
def test_spec_errors(tmp_path, edit, match):
    text = GOOD.replace(*edit)
    with pytest.raises(ox.SpecError, match=match):
        ox.SweepSpec.from_toml(write(tmp_path, text))


def test_spec_file_missing(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        ox.SweepSpec.from_toml(tmp_path / "nope.toml")


def test_shipped_default_spec_is_valid():
    spec = ox.SweepSpec.from_toml(Path(__file__).parents[1] / "experiments/euler_stability.toml")
    assert {"pre", "post"} == set(spec.forms)
    assert {"identity", "tanh", "hardtanh", "softsign", "rectified_tanh", "relu",
            "sigmoid"} <= set(spec.activations)
    assert {"euler", "rk4", "implicit_midpoint"} <= set(spec.solvers)
    assert len(spec.dts) >= 24 and min(spec.dts) <= 1e-3 and max(spec.dts) >= 1.0
    assert 2 in spec.dims and max(spec.dims) > 2 and len(spec.amplitudes) >= 3


def test_fixed_horizon_work_is_sum_of_steps():
    """Chunks are sorted by step count: lane-steps run ~ sum of steps, not max x count."""
    from oscillax._sweep import grid, plan

    spec = ox.SweepSpec(activations=("tanh",), dts=tuple(np.logspace(-3, 0, 24)),
                        amplitudes=(1.0, 2.0), seeds=3, horizon=50.0)
    g = grid(spec).set_index("traj_id")
    chunks = plan(spec, 1024)
    lane_steps = sum(c.width * g.loc[c.traj_ids, "steps"].max() for c in chunks)
    assert lane_steps < 2.0 * g["steps"].sum()
    assert lane_steps < 0.3 * len(g) * g["steps"].max()


def test_no_recompilation_between_chunks_and_sweeps():
    compiles = []

    def listener(event, duration, **kw):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(event)

    spec = dict(forms=("post",), activations=("tanh",), solvers=("euler",), dims=(2,),
                amplitudes=(1.0, 2.0), seeds=4, spectral_radius=1.0, steps=50)
    ox.sweep(ox.SweepSpec(dts=(0.01, 0.02), **spec), chunk_size=4)  # warm-up
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        # 4x more chunks, other dt values, other step count: same compiled program
        ox.sweep(ox.SweepSpec(dts=(0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1),
                              **{**spec, "steps": 70}), chunk_size=4)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert compiles == []


# -- run directory, resume, CLI -------------------------------------------------------

RESUME_SPEC = """
[sweep]
forms = ["pre", "post"]
activations = ["identity", "tanh", "softsign"]
solvers = ["euler", "rk4"]
dts = { log_start = -2.5, log_stop = 0, num = 10 }
dims = [2]
amplitudes = [1.0, 2.0]
seeds = 2
spectral_radius = 2.0
horizon = 30.0
"""


def cli(*args, **kw):
    exe = Path(sys.executable).with_name("oscillax")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "oscillax.cli"]
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True, **kw)


def test_run_directory_and_overwrite_protection(tmp_path):
    spec = write(tmp_path, RESUME_SPEC)
    out = tmp_path / "run"
    res = ox.sweep(spec, out=out, chunk_size=32, figures=False)
    assert (out / "spec.toml").read_text() == RESUME_SPEC
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trajectories"] == len(res.table) == res.spec.n_trajectories
    assert sum(summary["status_counts"].values()) == len(res.table)
    assert {"wall_time_s", "trajectories_per_s", "device", "versions"} <= set(summary)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "results.parquet"), res.table)
    pd.testing.assert_frame_equal(ox.load_sweep(out).table, res.table)
    with pytest.raises(ValueError, match="already exists.*--force"):
        ox.sweep(spec, out=out)
    ox.sweep(spec, out=out, force=True, figures=False)
    junk = tmp_path / "notarun"
    junk.mkdir()
    (junk / "precious.txt").write_text("data")
    with pytest.raises(ValueError, match="not an oscillax run directory"):
        ox.sweep(spec, out=junk, force=True)
    assert (junk / "precious.txt").exists()


@pytest.mark.slow
def test_killed_sweep_resumes_to_the_same_table(tmp_path):
    spec = write(tmp_path, RESUME_SPEC)
    ref = ox.sweep(spec, chunk_size=8).table
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-c",
         "import oscillax as ox, sys; ox.sweep(sys.argv[1], out=sys.argv[2], chunk_size=8)",
         str(spec), str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env=without_session_cache(os.environ),  # killed: no write into the shared cache
    )
    deadline = time.time() + 120
    parts = out / "parts"
    while time.time() < deadline:
        n = len(list(parts.glob("part-*.parquet"))) if parts.exists() else 0
        if n >= 5:
            break
        if proc.poll() is not None:
            pytest.fail("sweep finished before it could be killed: " + proc.stderr.read().decode())
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list(parts.glob("part-*.parquet")))
    assert not (out / "results.parquet").exists()
    r = cli("atlas", "--resume", out, "--no-figures")
    assert r.returncode == 0, r.stderr
    table = pd.read_parquet(out / "results.parquet")
    assert table.traj_id.is_unique and len(table) == len(ref)
    pd.testing.assert_frame_equal(table, ref)
    assert done_before < len(list(parts.glob("part-*.parquet")))


@pytest.mark.slow
def test_cli_atlas_end_to_end(tmp_path):
    spec = write(tmp_path, RESUME_SPEC.replace("num = 10", "num = 4"))
    out = tmp_path / "run"
    r = cli("atlas", spec, "--out", out, "--chunk-size", 64)
    assert r.returncode == 0, r.stderr
    assert "status per activation / solver" in r.stdout
    for f in ("results.parquet", "summary.json", "spec.toml", "figures/atlas_euler.png",
              "figures/atlas_rk4.png", "figures/status_summary.png",
              "figures/drift_over_time.png", "figures/phase_portraits.png"):
        assert (out / f).is_file(), f
    again = cli("atlas", spec, "--out", out)
    assert again.returncode == 2 and "--force" in again.stderr
    bad = write(tmp_path, RESUME_SPEC.replace("seeds = 2", "seeds = 0"), "bad.toml")
    r = cli("atlas", bad, "--out", tmp_path / "bad")
    assert r.returncode == 2 and "`seeds` must be an integer >= 1" in r.stderr
    assert "Traceback" not in r.stderr


def test_cli_keeps_compiled_programs_between_runs(tmp_path):
    """The command's compilation cache: a second run of the same grid loads every engine
    program from disk (JAX logs each hit and miss) and gives the same table; `off` turns
    the cache off. (Tiny helper programs compile in about the 0.1 s below which JAX does
    not store them, so whether they are on disk varies from run to run.)"""
    spec = write(tmp_path, RESUME_SPEC.replace("num = 10", "num = 3"))
    cache = tmp_path / "cache"
    # the command's own cache only (not the test session's, conftest.py)
    clean = without_session_cache(os.environ)
    env = {**clean, "OSCILLAX_CACHE_DIR": str(cache)}
    first = cli("atlas", spec, "--out", tmp_path / "a", "--no-figures", env=env)
    assert first.returncode == 0, first.stderr
    engine = [p.name for p in cache.iterdir() if p.name.startswith("jit_integrate_monitored")]
    assert engine, "no engine program was cached"
    # and the traced programs (`_program_cache`): the second run reads, not traces, them
    exported = sorted(p.name for p in (cache / "oscillax-programs").glob("*.jaxexport"))
    assert exported, "no engine program was exported"
    second = cli("atlas", spec, "--out", tmp_path / "b", "--no-figures",
                 env={**env, "JAX_LOG_COMPILES": "1", "JAX_EXPLAIN_CACHE_MISSES": "1"})
    assert second.returncode == 0, second.stderr
    hits = second.stderr.count("Persistent compilation cache hit for 'jit_integrate_monitored")
    misses = second.stderr.count("CACHE MISS for 'jit_integrate_monitored")
    assert hits >= len(engine) and misses == 0, (hits, misses, second.stderr[-3000:])
    assert sorted(p.name for p in (cache / "oscillax-programs").iterdir()) == exported
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "a" / "results.parquet"),
                                  pd.read_parquet(tmp_path / "b" / "results.parquet"))
    # `off`: no directory at all (the command would make it on start-up, and store every
    # program it compiles): a one-group grid shows that as well as the whole one
    off = tmp_path / "off"
    one = write(tmp_path, RESUME_SPEC.replace('["pre", "post"]', '["pre"]')
                .replace('["identity", "tanh", "softsign"]', '["tanh"]')
                .replace('["euler", "rk4"]', '["euler"]').replace("num = 10", "num = 1"),
                "one.toml")
    r = cli("atlas", one, "--out", tmp_path / "c", "--no-figures",
            env={**clean, "OSCILLAX_CACHE_DIR": "off", "XDG_CACHE_HOME": str(off)})
    assert r.returncode == 0, r.stderr
    assert not off.exists()


def test_rate_of_threshold_diverged_members_matches_theory():
    """Linear Euler stopped at the threshold: mean growth rate = 2 log|R| / h exactly."""
    spec = ox.SweepSpec(forms=("pre",), activations=("identity",), solvers=("euler",),
                        dts=(1.0, 4.0), dims=(2,), spectral_radius=1.0, horizon=50.0,
                        dtype="float64")
    df = ox.sweep(spec).to_dataframe()
    assert (df.diverged_at > 0).all()
    assert np.allclose(df.growth_rate, df.theory_rate, rtol=1e-9)


def test_float64_spec_needs_x64():
    code = ("import oscillax as ox\n"
            "try:\n"
            "    ox.sweep(ox.SweepSpec(dtype='float64', steps=10))\n"
            "except ValueError as e:\n"
            "    print(e)\n")
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert "JAX_ENABLE_X64" in r.stdout, r.stdout + r.stderr
