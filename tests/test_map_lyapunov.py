"""The atlas's streamed `map_lyapunov`: the largest Lyapunov exponent of the solver map,
one tangent vector carried through each step's JVP, against closed forms on the linear
skew system (THEORY.md): Euler ln(1 + h²ω²)/(2h), Heun ln(1 + (hω)⁴/4)/(2h), rk4
ln|R(ihω)|/h, implicit midpoint 0."""

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import oscillax as ox
from oscillax._monitor import integrate_monitored
from oscillax._solver import FIXED_SOLVERS
from oscillax._theory import amplification

ROT = ox.skew_from_frequencies(jnp.array([1.0]))


@pytest.mark.parametrize("solver", ["euler", "heun", "rk4", "implicit_midpoint"])
def test_linear_solver_map_exponents_equal_the_closed_form(solver):
    h = np.array([0.1, 0.2, 0.5])
    steps = np.array([2000, 1000, 37], np.int32)  # one run ends inside a block
    x0 = jnp.asarray([[1.0, 0.0], [0.3, 0.4], [2.0, -1.0]]).T
    out = integrate_monitored(ox.PostActivation(ROT, "identity"), FIXED_SOLVERS[solver], x0,
                              jnp.asarray(h), jnp.asarray(steps), jnp.full((3,), 1e12),
                              lyapunov=True)
    want = np.log(np.abs(amplification(solver, h, 1.0))) / h
    np.testing.assert_allclose(np.asarray(out.map_lyapunov), want, rtol=1e-9, atol=1e-13)
    if solver == "euler":
        np.testing.assert_allclose(want, np.log1p(h * h) / (2 * h), rtol=1e-12)


def test_tracking_the_tangent_leaves_the_trajectory_unchanged():
    f = ox.PreActivation(ROT * 2.0, "tanh")
    x0 = jnp.asarray([[1.0, 0.0], [0.1, 0.2]]).T
    args = (f, FIXED_SOLVERS["euler"], x0, jnp.full((2,), 0.1), jnp.full((2,), 20000, jnp.int32),
            jnp.full((2,), 1e6))
    a = integrate_monitored(*args)
    b = integrate_monitored(*args, lyapunov=True)
    assert np.isnan(np.asarray(a.map_lyapunov)).all()
    np.testing.assert_array_equal(np.asarray(a.X), np.asarray(b.X))
    np.testing.assert_array_equal(np.asarray(a.n_up), np.asarray(b.n_up))
    # and it measures what `ox.lyapunov_spectrum` measures on the same map (finite-time
    # estimates from different start vectors: close, not equal)
    ref = ox.lyapunov_spectrum(f, x0.T, dt=0.1, steps=20000, solver="euler", k=1)
    np.testing.assert_allclose(np.asarray(b.map_lyapunov), np.asarray(ref.exponents)[:, 0],
                               atol=2e-3)


def test_a_member_past_the_threshold_is_measured_up_to_its_freeze():
    # linear Euler at h = 0.5 passes 1e3 x |x0| after ~ 2 ln(1e3) / ln(1.25) = 62 steps
    h = 0.5
    out = integrate_monitored(ox.PostActivation(ROT, "identity"), FIXED_SOLVERS["euler"],
                              jnp.asarray([[1.0], [0.0]]), jnp.full((1,), h),
                              jnp.full((1,), 1000, jnp.int32), jnp.full((1,), 1e3),
                              lyapunov=True)
    assert 0 < int(out.diverged_at[0]) < 100
    np.testing.assert_allclose(float(out.map_lyapunov[0]), np.log1p(h * h) / (2 * h),
                               rtol=1e-9)


def test_the_atlas_streams_map_lyapunov_when_asked():
    base = dict(forms=("post",), activations=("identity", "tanh"), solvers=("euler", "rk4"),
                dts=(0.1, 0.5), dims=(2,), amplitudes=(1.0,), seeds=2, horizon=40.0,
                dtype="float64", spectral_radius=1.0)
    off = ox.sweep(ox.SweepSpec(**base), progress=False).to_dataframe()
    on = ox.sweep(ox.SweepSpec(**base, lyapunov=True), progress=False).to_dataframe()
    assert "map_lyapunov" not in off.columns
    # the other columns are unchanged by tracking the tangent
    pd.testing.assert_frame_equal(on.drop(columns="map_lyapunov"), off)
    lin = on[on.activation == "identity"]
    for solver, g in lin.groupby("solver"):
        want = np.log(np.abs(amplification(solver, g.dt.to_numpy(), 1.0))) / g.dt.to_numpy()
        np.testing.assert_allclose(g.map_lyapunov, want, rtol=1e-6, atol=1e-9)
    assert np.isfinite(on.map_lyapunov).all()
    ds = ox.sweep(ox.SweepSpec(**base, lyapunov=True), progress=False).to_xarray()
    assert "map_lyapunov" in ds


def test_lyapunov_key_must_be_a_bool():
    with pytest.raises(ox.SpecError, match="lyapunov"):
        ox.SweepSpec(lyapunov="yes")
