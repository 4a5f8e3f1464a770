"""The main job's fast paths (issue 12): cases drawn once per sweep (`CaseTable`),
implicit midpoint's Newton stopping once converged, the figure worker process, and an
`import oscillax` that leaves diffrax, optimistix and scipy.optimize out."""

import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import oscillax as ox
from oscillax import _plot
from oscillax._solver import ImplicitMidpoint
from oscillax._sweep import _cases, _run
from oscillax._sweep._figure_worker import FigureWorker
from oscillax._sweep._plan import grid, plan

SPEC = dict(forms=("pre", "post"), activations=("identity", "tanh"), solvers=("euler",),
            dts=(0.05, 0.2), dims=(2, 3), amplitudes=(1.0,), seeds=5, horizon=4.0,
            biases=(0.0, 0.5), dtype="float64")


def test_the_case_table_gives_the_chunk_by_chunk_inputs():
    spec = ox.SweepSpec(**SPEC)
    rows = grid(spec).set_index("traj_id", drop=False)
    table = _cases.CaseTable(spec)
    for chunk in plan(spec, 32):
        a = _cases.chunk_inputs(spec, chunk, rows)
        b = _cases.chunk_inputs(spec, chunk, rows, table)
        pd.testing.assert_frame_equal(a[0], b[0])
        for x, y in zip(a[1], b[1]):
            assert (x is None) == (y is None)
            if x is not None:
                np.testing.assert_array_equal(x, y)
        for x, y in zip(a[2:], b[2:]):
            np.testing.assert_array_equal(x, y)


def test_a_dimension_too_large_for_the_table_is_drawn_per_chunk(monkeypatch):
    spec = ox.SweepSpec(**SPEC)
    monkeypatch.setattr(_cases, "CASE_TABLE_ENTRIES", 5 * (4 + 4))  # only n = 2 fits
    table = _cases.CaseTable(spec)
    assert set(table._by_dim) == {2}
    A, d, b = table.get(spec, 3, np.array([1, 4]))
    A2, d2 = _cases.case_arrays(spec, 3, [1, 4], np.float64)
    np.testing.assert_array_equal(A, A2)
    np.testing.assert_array_equal(d, d2)
    np.testing.assert_array_equal(b, _cases.bias_directions(spec, 3, [1, 4], np.float64))


def test_a_case_table_drawn_in_blocks_is_the_same(monkeypatch):
    spec = ox.SweepSpec(**SPEC)
    whole = _cases.CaseTable(spec)
    monkeypatch.setattr(_cases, "CASE_TABLE_BLOCK", 2)  # 5 seeds: blocks of 2, 2, 1
    blocks = _cases.CaseTable(spec)
    for dim in (2, 3):
        for x, y in zip(whole.get(spec, dim, np.arange(5)), blocks.get(spec, dim, np.arange(5))):
            np.testing.assert_array_equal(x, y)


def test_the_closed_form_norm_of_a_2x2_skew_matrix_is_the_svd_norm():
    W = np.random.default_rng(0).normal(size=(20_000, 2, 2))
    A = W - np.swapaxes(W, 1, 2)
    np.testing.assert_allclose(_cases._skew_norm(A), np.linalg.norm(A, 2, axis=(1, 2)),
                               rtol=1e-15)
    # and the float32 matrices a sweep uses are the same bits either way
    spec = ox.SweepSpec(**{**SPEC, "dtype": "float32", "seeds": 20_000, "dims": (2,)})
    A32, _ = _cases.case_arrays(spec, 2, np.arange(20_000), np.float32)
    W32, _ = jax.device_get(_cases._draw(jax.random.PRNGKey(spec.seed),
                                         np.arange(1 << 15, dtype=np.uint32), 2))
    W64 = np.asarray(W32[:20_000], np.float64)
    S = W64 - np.swapaxes(W64, 1, 2)
    ref = (S * (spec.spectral_radius / np.linalg.norm(S, 2, axis=(1, 2)))[:, None, None])
    np.testing.assert_array_equal(A32, ref.astype(np.float32))


def test_a_sweep_uses_its_case_table_and_gives_the_same_rows(monkeypatch):
    spec = ox.SweepSpec(**SPEC)
    with_table = ox.sweep(spec, chunk_size=32).table
    monkeypatch.setattr(_run, "_case_table", lambda spec, slots: None)
    pd.testing.assert_frame_equal(with_table, ox.sweep(spec, chunk_size=32).table)


# ------------------------------------------------------------------- implicit midpoint


def _tanh_field(form, n=4, radius=3.0, dtype=jnp.float64):
    A = ox.random_skew(jax.random.key(1), n, spectral_radius=radius).astype(dtype)
    return ox.FORMS[form](A, "tanh")


def _step(solver, field, X, h):
    return jax.jit(lambda X, h: solver.step(field, 0.0, X, h))(X, h)


@pytest.mark.parametrize("form", ["pre", "post"])
@pytest.mark.parametrize("h", [1e-3, 0.05, 0.5, 1.0])
def test_newton_stopped_at_convergence_matches_many_iterations(form, h):
    field = _tanh_field(form)
    X = 3.0 * jax.random.normal(jax.random.key(2), (4, 32))
    ref = _step(ImplicitMidpoint(newton_iters=20, newton_tol=0.0), field, X, h)
    got = _step(ImplicitMidpoint(), field, X, h)
    np.testing.assert_allclose(got, ref, rtol=0, atol=8 * np.finfo(np.float64).eps * 4)
    # the midpoint equation holds: X1 = X + h f((X + X1) / 2)
    res = got - X - h * field.rhs(0.5 * (X + got), 0.0, None)
    assert float(jnp.max(jnp.abs(res))) < 1e-13


def test_newton_iterates_where_one_iteration_is_not_enough():
    field = _tanh_field("pre")
    X = 3.0 * jax.random.normal(jax.random.key(2), (4, 32))
    ref = _step(ImplicitMidpoint(newton_iters=20, newton_tol=0.0), field, X, 1.0)
    one = _step(ImplicitMidpoint(newton_iters=1), field, X, 1.0)
    assert float(jnp.max(jnp.abs(one - ref))) > 1e-6  # so the test above tests the loop


def test_newton_in_float32_is_at_rounding():
    field = _tanh_field("post", dtype=jnp.float32)
    X = (3.0 * jax.random.normal(jax.random.key(2), (4, 64))).astype(jnp.float32)
    for h in (1e-3, 0.1, 1.0):
        h = jnp.float32(h)
        ref = _step(ImplicitMidpoint(newton_iters=20, newton_tol=0.0), field, X, h)
        got = _step(ImplicitMidpoint(), field, X, h)
        err = jnp.max(jnp.abs(got - ref) / jnp.maximum(jnp.abs(ref), 1.0))
        assert float(err) <= 8 * np.finfo(np.float32).eps


# ---------------------------------------------------------------------- figure worker


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "r"
    spec = ox.SweepSpec(forms=("pre",), activations=("identity", "tanh"),
                        solvers=("euler", "rk4"), dts=(0.05, 0.5), dims=(2,), seeds=2,
                        horizon=4.0)
    ox.sweep(spec, out=out, figures=False)
    return out


def test_the_worker_draws_the_figures_it_is_sent(small_run, tmp_path):
    table = pd.read_parquet(small_run / "results.parquet")
    jobs = _plot.table_figure_jobs(table, tmp_path)
    here, there = _plot.split_jobs(jobs)
    assert there and here and sorted(here + there, key=str) == sorted(jobs, key=str)
    w = FigureWorker.start(small_run / "results.parquet")
    assert w is not None
    assert w.submit(there, 3.0)
    drawn = w.wait()
    assert drawn == {Path(j[2]) for j in there}
    for p in drawn:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_figures_the_worker_fails_to_draw_are_drawn_here(small_run, tmp_path):
    table = pd.read_parquet(small_run / "results.parquet")
    spec = ox.SweepSpec.from_toml(small_run / "spec.toml")
    broken = FigureWorker.start(tmp_path / "no-such-results.parquet")  # it cannot read
    drift, portraits, levels = _figure_inputs(table)
    paths = _plot.atlas_figures(table, spec, tmp_path / "f", drift, portraits, levels,
                                helper=broken)
    assert [p.name for p in paths] == [
        "atlas_euler.png", "growth_euler.png", "atlas_rk4.png", "growth_rk4.png",
        "status_summary.png", "drift_over_time.png", "phase_portraits.png"]
    assert all(p.is_file() and p.stat().st_size > 1000 for p in paths)


def test_an_unused_worker_exits_when_closed(small_run):
    w = FigureWorker.start(small_run / "results.parquet")
    w.close()
    assert w._proc.returncode == 0


def test_the_worker_is_started_only_for_many_panels(small_run, monkeypatch):
    spec = ox.SweepSpec.from_toml(small_run / "spec.toml")  # 4 panels
    assert FigureWorker.start(small_run / "results.parquet", spec) is None
    monkeypatch.setenv("OSCILLAX_FIGURE_WORKER", "0")
    assert FigureWorker.start(small_run / "results.parquet") is None


def _figure_inputs(table):
    from oscillax._sweep._examples import figure_paths

    return figure_paths(tuple(pd.unique(table["activation"])))


def test_the_atlas_figures_are_the_same_with_the_worker(small_run, tmp_path):
    table = pd.read_parquet(small_run / "results.parquet")
    spec = ox.SweepSpec.from_toml(small_run / "spec.toml")
    inputs = _figure_inputs(table)
    a = _plot.atlas_figures(table, spec, tmp_path / "a", *inputs)
    b = _plot.atlas_figures(table, spec, tmp_path / "b", *inputs,
                            helper=FigureWorker.start(small_run / "results.parquet"))
    assert [p.name for p in a] == [p.name for p in b]
    for p, q in zip(a, b):
        assert p.read_bytes() == q.read_bytes(), p.name


# ------------------------------------------------------------------------- imports


def test_import_oscillax_leaves_the_heavy_dependencies_out():
    # nor does building a sweep's spec (its solver names are checked: 'tsit5' in
    # ADAPTIVE_SOLVERS must not look the class up); then, in the same fresh process, the
    # lazy names are there when used (one interpreter start-up for both)
    code = ("import sys, oscillax as ox; "
            "import importlib.resources as r; "
            "ox.SweepSpec.from_toml(r.files('oscillax.specs') / 'euler_stability.toml'); "
            "assert 'tsit5' in ox.ADAPTIVE_SOLVERS and 'euler' not in ox.ADAPTIVE_SOLVERS; "
            "print(json.dumps([m for m in ('diffrax', 'optimistix', 'scipy.optimize', "
            "'optax', 'matplotlib') if m in sys.modules])); "
            "print(ox.simulate.__name__, ox.fit.__name__, "
            "ox.lyapunov_spectrum.__name__, 'periodic_orbit' in dir(ox), "
            "ox.ADAPTIVE_SOLVERS['tsit5'].__name__)")
    heavy, lazy = subprocess.run([sys.executable, "-c", "import json; " + code], check=True,
                                 capture_output=True, text=True).stdout.splitlines()
    assert json.loads(heavy) == []
    assert lazy.split() == ["simulate", "fit", "lyapunov_spectrum", "True", "Tsit5"]
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        ox.nonexistent  # noqa: B018


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_the_monitor_records_start_and_end_from_its_samples(activation):
    """E0, the invariant and |f(x)| at the start and the end are taken by the samples at
    step 0 and at each member's last step (not evaluated around the loop): they equal the
    field evaluated at x0 and at the final state, with 0 steps, different step counts and
    a member frozen at the threshold in one batch."""
    from oscillax._monitor import integrate_monitored
    from oscillax._solver import FIXED_SOLVERS

    field = ox.PreActivation(ox.random_skew(jax.random.key(3), 3, spectral_radius=2.0),
                             activation=activation)
    x0 = jax.random.normal(jax.random.key(4), (3, 5))
    h = jnp.array([0.1, 0.1, 0.05, 1.9, 0.1])
    steps = jnp.array([0, 7, 300, 400, 64])
    thr = jnp.full((5,), 3.0)  # member 3 (h = 1.9, identity-like growth) may cross it
    out = integrate_monitored(field, FIXED_SOLVERS["euler"], x0, h, steps, thr)
    X = np.asarray(out.X)

    def speed(Y):
        return np.linalg.norm(np.asarray(field.rhs(jnp.asarray(Y))), axis=0)

    np.testing.assert_allclose(out.speed0, speed(x0), rtol=1e-12)
    np.testing.assert_allclose(out.speed_final, speed(X), rtol=1e-12)
    np.testing.assert_allclose(out.inv0, field.invariant(x0.T), rtol=1e-12)
    np.testing.assert_allclose(out.inv_final, field.invariant(X.T), rtol=1e-12)
    use = field.activation.odd
    E = (lambda Y, s: np.asarray(field.invariant(jnp.asarray(Y).T)) if use
         else np.sum((np.asarray(Y) * s) ** 2, axis=0))
    scale = 1.0 / np.maximum(np.max(np.abs(np.asarray(x0)), axis=0), 1.0)
    np.testing.assert_allclose(out.E0, E(x0, scale), rtol=1e-12)
    np.testing.assert_allclose(out.E_final, E(X, scale), rtol=1e-12)
    np.testing.assert_array_equal(X[:, 0], np.asarray(x0)[:, 0])  # 0 steps: unchanged
    assert not np.allclose(X[:, 1:], np.asarray(x0)[:, 1:])
