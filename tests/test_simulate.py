"""`simulate`: orders, invariants, linear stability, divergence, autodiff, layout, caching."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import (
    FIXED_ORDERS,
    INVARIANT_ACTIVATIONS,
    ORDER_TOL,
    count_compiles,
    expm_reference,
    fit_slope,
    make_field,
    pair_norms,
)

import oscillax as ox

# ---------------------------------------------------------------------------------------
# Convergence order
# ---------------------------------------------------------------------------------------

ORDER_T = 2.0
# Step counts per solver: errors stay well above round-off (rk4's finest error ~1e-9 on
# the linear system, 1e-16 relative round-off) and inside the asymptotic regime.
ORDER_STEPS = {
    "euler": (64, 128, 256, 512),
    "heun": (32, 64, 128, 256),
    "midpoint": (32, 64, 128, 256),
    "implicit_midpoint": (32, 64, 128, 256),
    "rk4": (8, 16, 32, 64),
}


def test_every_fixed_solver_is_covered():
    assert set(ORDER_STEPS) == set(FIXED_ORDERS) == set(ox.FIXED_SOLVERS)
    for name, order in FIXED_ORDERS.items():
        assert ox.FIXED_SOLVERS[name].order == order


@pytest.fixture(scope="module")
def order_problem():
    A = ox.random_skew(jax.random.key(0), 6, spectral_radius=1.0)
    x0 = jax.random.normal(jax.random.key(1), (6,))
    return A, x0


@pytest.fixture(scope="module")
def nonlinear_references(order_problem):
    A, x0 = order_problem
    x0 = 1.5 * x0  # amplitude where tanh is well inside its nonlinear range
    refs = {}
    for form in ("pre", "post"):
        field = make_field(form, A, "tanh")
        tr = ox.simulate(field, x0, dt=0.01, t1=ORDER_T, solver="dopri8", rtol=1e-12,
                         atol=1e-13)
        assert int(tr.status) == ox.Status.OK
        refs[form] = np.asarray(tr.xs[-1])
    return x0, refs


def _order_errors(field, x0, ref, solver):
    errs, dts = [], []
    for steps in ORDER_STEPS[solver]:
        dt = ORDER_T / steps
        tr = ox.simulate(field, x0, dt=dt, steps=steps, solver=solver)
        errs.append(float(np.linalg.norm(np.asarray(tr.xs[-1]) - ref)))
        dts.append(dt)
    return dts, errs


@pytest.mark.parametrize("solver", list(FIXED_ORDERS))
def test_order_linear(order_problem, solver):
    A, x0 = order_problem
    field = ox.PreActivation(A, "identity")
    ref = expm_reference(A, x0, ORDER_T)
    dts, errs = _order_errors(field, x0, ref, solver)
    assert min(errs) > 1e-12  # round-off must not flatten the slope
    slope = fit_slope(dts, errs)
    assert abs(slope - FIXED_ORDERS[solver]) <= ORDER_TOL, (slope, errs)


@pytest.mark.parametrize("form", ["pre", "post"])
@pytest.mark.parametrize("solver", list(FIXED_ORDERS))
def test_order_nonlinear(order_problem, nonlinear_references, solver, form):
    # On a linear field some wrong tableaus still reach full order; tanh catches them.
    A, _ = order_problem
    x0, refs = nonlinear_references
    field = make_field(form, A, "tanh")
    dts, errs = _order_errors(field, x0, refs[form], solver)
    assert min(errs) > 1e-11  # well above the reference's own error
    slope = fit_slope(dts, errs)
    assert abs(slope - FIXED_ORDERS[solver]) <= ORDER_TOL, (slope, errs)


# ---------------------------------------------------------------------------------------
# Invariants
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 16])
@pytest.mark.parametrize("activation", INVARIANT_ACTIVATIONS)
@pytest.mark.parametrize("form", ["pre", "post"])
def test_invariant_conserved_dopri8(form, activation, n):
    A = ox.random_skew(jax.random.key(n), n, spectral_radius=1.0)
    x0 = 1.5 * jax.random.normal(jax.random.key(100 + n), (n,))
    field = make_field(form, A, activation)
    tr = ox.simulate(field, x0, dt=0.01, t1=50.0, solver="dopri8", save_every=100,
                     rtol=1e-12, atol=1e-13)
    assert int(tr.status) == ox.Status.OK
    assert tr.invariant.shape == tr.ts.shape
    drift = float(jnp.max(tr.invariant_drift()))
    assert drift <= 1e-8, drift
    # the orbit went somewhere: the test is not passed by a state that stands still
    assert float(jnp.max(jnp.linalg.norm(tr.xs - x0[None], axis=-1))) > 0.5


def test_invariant_drifts_under_euler():
    # Control for the test above: the measured drift is not always ~0.
    field = ox.PreActivation(ox.skew_from_frequencies([1.0]), "tanh")
    tr = ox.simulate(field, jnp.array([1.0, 0.0]), dt=0.1, t1=50.0, solver="euler")
    assert float(tr.invariant_drift()[-1]) > 1e-2


# ---------------------------------------------------------------------------------------
# Linear stability: per-step amplification of each eigen-pair
# ---------------------------------------------------------------------------------------

OMEGAS = np.array([0.25, 0.5, 1.0, 2.0, 3.0])


def _analytic_amplification(solver, hw):
    """|R(i h w)| from THEORY, written out per method (not via the package)."""
    z = 1j * hw
    if solver == "euler":
        return np.sqrt(1 + hw**2)
    if solver in ("heun", "midpoint"):
        return np.sqrt(1 + hw**4 / 4)
    if solver == "rk4":
        return np.abs(1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24)
    if solver == "implicit_midpoint":
        return np.ones_like(hw)
    raise AssertionError(solver)


@pytest.mark.parametrize("form", ["pre", "post"])
@pytest.mark.parametrize("solver", list(FIXED_ORDERS))
def test_linear_amplification_per_pair(solver, form):
    # Eigen-pairs of skew_from_frequencies are coordinate pairs, so each pair's norm is
    # multiplied by exactly |R(i h w_k)| per step. For Euler: sqrt(1 + h^2 w^2).
    h, steps = 0.1, 40
    A = ox.skew_from_frequencies(OMEGAS)
    field = make_field(form, A, "identity")
    x0 = jax.random.normal(jax.random.key(3), (2 * len(OMEGAS),))
    tr = ox.simulate(field, x0, dt=h, steps=steps, solver=solver)
    norms = pair_norms(tr.xs)  # (T, m)
    ratios = norms[1:] / norms[:-1]
    expected = _analytic_amplification(solver, h * OMEGAS)
    np.testing.assert_allclose(ratios, np.broadcast_to(expected, ratios.shape), rtol=1e-10)
    # and the code's own stability function agrees with the analytic one
    R = np.abs(np.asarray(ox.FIXED_SOLVERS[solver].stability_function(1j * h * OMEGAS)))
    np.testing.assert_allclose(R, expected, rtol=1e-12)


@pytest.mark.parametrize("n", [6, 12])  # 12 > 8: the batched linalg.solve path
def test_implicit_midpoint_keeps_norm(n):
    A = ox.random_skew(jax.random.key(7), n, spectral_radius=3.0)
    x0 = jax.random.normal(jax.random.key(8), (n,))
    for form in ("pre", "post"):
        field = make_field(form, A, "identity")
        tr = ox.simulate(field, x0, dt=0.5, steps=400, solver="implicit_midpoint")
        nrm = np.linalg.norm(np.asarray(tr.xs), axis=-1)
        np.testing.assert_allclose(nrm, np.linalg.norm(x0), rtol=1e-12)
        np.testing.assert_allclose(tr.invariant, 0.5 * float(x0 @ x0), rtol=1e-12)
        assert float(jnp.max(jnp.abs(tr.xs[-1] - x0))) > 0.1  # it did rotate


def test_rk4_stability_boundary():
    # RK4 is bounded on i*R for |h w| <= 2 sqrt 2 and grows beyond it.
    edge = 2 * math.sqrt(2)
    inside = np.array([0.5, 1.5, 2.5, 2.8, edge * (1 - 1e-9)])
    outside = np.array([edge * 1.01, 2.9, 3.0])
    h, steps = 1.0, 30
    A = ox.skew_from_frequencies(np.concatenate([inside, outside]) / h)
    field = ox.PreActivation(A, "identity")
    x0 = jnp.ones(A.shape[0])
    tr = ox.simulate(field, x0, dt=h, steps=steps, solver="rk4")
    assert int(tr.status) == ox.Status.OK
    norms = pair_norms(tr.xs)  # (T, pairs)
    k = len(inside)
    assert np.all(norms[:, :k] <= norms[0, :k] * (1 + 1e-10))
    assert np.all(norms[-1, k:] > 2.0 * norms[0, k:])
    assert np.all(np.diff(norms[:, k:], axis=0) > 0)


# ---------------------------------------------------------------------------------------
# Divergence: one member blows up, the others are untouched
# ---------------------------------------------------------------------------------------


def _numpy_euler_divergence_step(A, x0, h, steps, threshold):
    """First step m with |x_m| > threshold, by a plain numpy Euler loop (or -1)."""
    A = np.asarray(A, np.float64)
    x = np.asarray(x0, np.float64)
    for m in range(1, steps + 1):
        x = x + h * (A @ x)
        if not np.linalg.norm(x) <= threshold:
            return m
    return -1


@pytest.mark.parametrize("dtype, huge", [(jnp.float64, 1e150), (jnp.float32, 1e15)])
def test_divergence_is_per_member(dtype, huge):
    B, n, steps, h = 1000, 4, 50, 1.0
    # |h w| = 1 on both pairs: Euler multiplies every norm by exactly sqrt 2 per step.
    A = ox.skew_from_frequencies(jnp.ones(2, dtype))
    field = ox.PreActivation(A, "identity")
    key = jax.random.key(11)
    # The others start small (|x0| <= 1e-3), so their threshold is 1e6 (the floor) and
    # they would need 60 steps to reach it. The huge member's threshold is 1e6 |x0|:
    # with sqrt 2 per step it passes at step 40. (Its |x|^2 overflows; the check must not.)
    x0 = jax.random.uniform(key, (B, n), dtype, -5e-4, 5e-4)
    bad = 321
    x0 = x0.at[bad].set(jnp.array([huge, 0.0, -huge, 0.0], dtype))
    tr = ox.simulate(field, x0, dt=h, steps=steps)
    assert tr.xs.shape == (B, steps + 1, n) and tr.xs.dtype == dtype

    # Expected step, independently: analytically ...
    m_expected = math.floor(math.log(1e6) / math.log(math.sqrt(2))) + 1
    assert m_expected == 40
    # ... and by a numpy loop of the same recursion on the scaled state.
    x0_bad = np.asarray(x0[bad], np.float64)
    scale = np.linalg.norm(x0_bad)
    assert _numpy_euler_divergence_step(A, x0_bad / scale, h, steps, 1e6) == m_expected

    status = np.asarray(tr.status)
    div_at = np.asarray(tr.diverged_at)
    assert status[bad] == ox.Status.DIVERGED
    assert div_at[bad] == m_expected
    others = np.arange(B) != bad
    assert np.all(status[others] == ox.Status.OK)
    assert np.all(div_at[others] == -1)
    assert bool(tr.diverged[bad]) and not bool(jnp.any(tr.diverged[others]))

    # Frozen: finite, equal to the last good state x_{m-1} from then on.
    xb = np.asarray(tr.xs[bad])
    assert np.all(np.isfinite(xb))
    np.testing.assert_array_equal(xb[m_expected:], np.broadcast_to(xb[m_expected - 1],
                                                                   xb[m_expected:].shape))
    assert np.linalg.norm(xb[m_expected - 1].astype(np.float64) / scale) > 1e5  # it grew
    # the good states up to then follow the sqrt(2) growth (norms taken after scaling,
    # since |x|^2 of these states overflows)
    np.testing.assert_allclose(
        np.linalg.norm(xb[:m_expected].astype(np.float64) / scale, axis=-1),
        np.sqrt(2.0) ** np.arange(m_expected), rtol=1e-5 if dtype == jnp.float32 else 1e-12)

    # The other 999, each run alone, give bit-for-bit the same trajectories. (All 999 in
    # float64; in float32 a random 100 of them, to keep the suite fast.)
    xs = np.asarray(tr.xs)
    inv = np.asarray(tr.invariant)
    eps = float(jnp.finfo(dtype).eps)
    alone_ids = np.flatnonzero(others)
    if dtype == jnp.float32:
        alone_ids = np.random.default_rng(0).choice(alone_ids, 100, replace=False)
    for i in alone_ids:
        alone = ox.simulate(field, x0[i], dt=h, steps=steps)
        assert int(alone.status) == ox.Status.OK
        np.testing.assert_array_equal(np.asarray(alone.xs), xs[i])
        # the invariant is a reduction computed after the run, on a (B, T, n) vs (T, n)
        # array: XLA may sum in another order, so allow an ulp there
        np.testing.assert_allclose(np.asarray(alone.invariant), inv[i], rtol=4 * eps)


def test_divergence_nonfinite_and_threshold_options():
    # An unstable (non-skew) matrix: x' = x, Euler at h = 1 doubles |x| per step.
    field = ox.PostActivation(jnp.eye(2), "identity", check_skew=False)
    x0 = jnp.array([[1.0, 0.0], [0.0, 1e-3]])
    tr = ox.simulate(field, x0, dt=1.0, steps=30)
    # 2^m > 1e6 first at m = 20 for both (the second's threshold is the floor, 1e6,
    # reached at 2^m 1e-3 > 1e6, m = 30)
    np.testing.assert_array_equal(tr.diverged_at, [20, 30])
    tr = ox.simulate(field, x0, dt=1.0, steps=30, divergence_threshold=10.0)
    np.testing.assert_array_equal(tr.diverged_at, [4, 14])
    tr = ox.simulate(field, x0, dt=1.0, steps=30, divergence_floor=1e-3)
    np.testing.assert_array_equal(tr.diverged_at, [20, 20])
    # overflow to inf in float32 is caught too
    field32 = ox.PostActivation(jnp.eye(2, dtype=jnp.float32), "identity", check_skew=False)
    tr = ox.simulate(field32, jnp.array([1.0, 1.0], jnp.float32), dt=1e30, steps=5,
                     divergence_threshold=1e38)
    assert int(tr.status) == ox.Status.DIVERGED
    assert int(tr.diverged_at) == 2
    assert bool(jnp.all(jnp.isfinite(tr.xs)))


@pytest.mark.parametrize("solver", ["euler", "rk4"])
@pytest.mark.parametrize("save_every", [7, 16, 50, 123])
def test_runs_between_tests_match_the_per_step_test(solver, save_every):
    """Between saves the engine tests divergence once per run of CHECK_EVERY steps and
    redoes a run step by step when a member crossed: the step of divergence, the frozen
    state and every saved state are those of the per-step test (save_every = 1)."""
    from oscillax._solve import CHECK_EVERY

    A = ox.skew_from_frequencies(jnp.array([1.0, 0.5], jnp.float64))
    field = ox.PreActivation(A, "identity")
    # amplitudes from 1e-3 to 1e3: the linear system grows under Euler (and rk4 at h = 2.9),
    # so members cross the threshold at many different steps, some never
    amps = np.logspace(-3, 3, 13)
    x0 = np.random.default_rng(3).standard_normal((13, 4)) * amps[:, None]
    x0[6] = 0.0  # a fixed point: never diverges
    x0 = jnp.asarray(x0)
    dt = 0.45 if solver == "euler" else 2.9
    kw = dict(dt=dt, t1=123 * dt + 0.1, solver=solver, divergence_threshold=50.0)
    ref = ox.simulate(field, x0, save_every=1, **kw)
    got = ox.simulate(field, x0, save_every=save_every, **kw)
    div = np.asarray(ref.diverged_at)
    assert len(set(div[div >= 0] % CHECK_EVERY)) >= 3 and (div < 0).any(), div
    np.testing.assert_array_equal(got.diverged_at, ref.diverged_at)
    np.testing.assert_array_equal(got.status, ref.status)
    k = np.asarray(got.ts / dt).round().astype(int)[:-1]  # saved step indices (+ the last)
    np.testing.assert_array_equal(np.asarray(got.xs)[:, :-1], np.asarray(ref.xs)[:, k])
    np.testing.assert_array_equal(got.final, ref.final)


def test_grad_through_runs_matches_per_step():
    _, W, x0, dt = _loss_factory("rk4")

    def loss(W, save_every):
        field = ox.PostActivation(ox.skew(W), "tanh")
        tr = ox.simulate(field, x0, dt=dt, steps=40, solver="rk4", save_every=save_every)
        return jnp.sum(tr.final ** 2)

    g1 = jax.grad(loss)(W, 1)
    g40 = jax.grad(loss)(W, 40)  # two runs of 16 and one of 8 between the saves
    np.testing.assert_allclose(g40, g1, rtol=1e-12)


def test_divergence_adaptive():
    # x' = x: |x(t)| = e^t passes 1e6 between t = 13 and t = 14 (ln 1e6 = 13.8).
    field = ox.PostActivation(jnp.eye(2), "identity", check_skew=False)
    tr = ox.simulate(field, jnp.array([1.0, 0.0]), dt=1.0, t1=20.0, solver="tsit5")
    assert int(tr.status) == ox.Status.DIVERGED
    assert int(tr.diverged_at) == 14


def test_solver_failed_status():
    field = ox.PostActivation(ox.skew_from_frequencies([1.0]), "tanh")
    tr = ox.simulate(field, jnp.array([[1.0, 0.0], [0.5, 0.5]]), dt=0.1, t1=10.0,
                     solver="dopri5", max_steps=3)
    np.testing.assert_array_equal(tr.status, [ox.Status.SOLVER_FAILED] * 2)
    np.testing.assert_array_equal(tr.diverged_at, [-1, -1])


# ---------------------------------------------------------------------------------------
# jit, vmap, grad, precisions
# ---------------------------------------------------------------------------------------


def _loss_factory(solver):
    n = 4
    c = jax.random.normal(jax.random.key(21), (7, n))  # weights on the 7 saved states

    def loss(W, x0, dt):
        field = ox.PreActivation(ox.skew(W), "tanh")
        tr = ox.simulate(field, x0, dt=dt, steps=30, solver=solver, save_every=5)
        return jnp.sum(c * tr.xs) + 0.1 * jnp.sum(tr.xs[-1] ** 2)

    W = jax.random.normal(jax.random.key(22), (n, n))
    x0 = jax.random.normal(jax.random.key(23), (n,))
    return loss, W, x0, 0.07


def _central_fd(f, x, eps=1e-6):
    x = np.asarray(x, np.float64)
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[idx] = eps
        g[idx] = (float(f(jnp.asarray(x + e))) - float(f(jnp.asarray(x - e)))) / (2 * eps)
    return g


@pytest.mark.parametrize("solver", ["euler", "rk4", "implicit_midpoint"])
def test_grad_matches_finite_differences(solver):
    loss, W, x0, dt = _loss_factory(solver)
    gW, gx0, gdt = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(W, x0, dt)
    loss = jax.jit(loss)  # one compile for the finite differences' many calls
    fdW = _central_fd(lambda w: loss(w, x0, dt), W)
    fdx = _central_fd(lambda x: loss(W, x, dt), x0)
    fddt = _central_fd(lambda d: loss(W, x0, d), np.float64(dt))
    np.testing.assert_allclose(gW, fdW, rtol=1e-4, atol=1e-4 * np.max(np.abs(fdW)))
    np.testing.assert_allclose(gx0, fdx, rtol=1e-4, atol=1e-4 * np.max(np.abs(fdx)))
    np.testing.assert_allclose(gdt, fddt, rtol=1e-4)
    assert np.max(np.abs(fdW)) > 1e-3 and abs(float(fddt)) > 1e-3  # non-trivial gradients


def test_jit_matches_eager():
    _, W, x0, dt = _loss_factory("rk4")
    field = ox.PostActivation(ox.skew(W), "tanh")

    @jax.jit
    def run(field, x0, dt):
        tr = ox.simulate(field, x0, dt=dt, steps=12, save_every=4)
        return tr.xs, tr.status, tr.invariant

    xs, status, inv = run(field, x0, dt)
    eager = ox.simulate(field, x0, dt=dt, steps=12, save_every=4)
    np.testing.assert_allclose(xs, eager.xs, rtol=1e-13)
    np.testing.assert_allclose(inv, eager.invariant, rtol=1e-13)
    assert int(status) == ox.Status.OK


def test_vmap_over_x0_dt_and_A():
    # One vmap over initial state, step size and weights together; each member must match
    # its own eager run.
    n, B = 4, 3
    x0s = jax.random.normal(jax.random.key(32), (B, n))
    dts = jnp.array([0.01, 0.02, 0.05])
    Ws = jax.random.normal(jax.random.key(33), (B, n, n))

    def run(x0, dt, W):
        field = ox.PreActivation(ox.skew(W), "tanh")
        return ox.simulate(field, x0, dt=dt, steps=20, solver="rk4", save_every=5).xs

    out = jax.jit(jax.vmap(run))(x0s, dts, Ws)
    assert out.shape == (B, 5, n)
    for i in range(B):
        np.testing.assert_allclose(out[i], run(x0s[i], float(dts[i]), Ws[i]), rtol=1e-13,
                                   atol=1e-15)
    assert not np.allclose(out[0], out[1])


@pytest.mark.parametrize("solver", ["euler", "implicit_midpoint"])
def test_float32_and_float64(solver):
    A64 = ox.random_skew(jax.random.key(41), 5)
    x64 = jax.random.normal(jax.random.key(42), (3, 5))
    out = {}
    for dtype in (jnp.float32, jnp.float64):
        field = ox.PostActivation(A64.astype(dtype), "tanh")
        tr = ox.simulate(field, x64.astype(dtype), dt=0.05, steps=40, solver=solver)
        assert tr.xs.dtype == dtype
        assert tr.invariant.dtype == dtype
        assert tr.ts.dtype == dtype
        np.testing.assert_array_equal(tr.status, [ox.Status.OK] * 3)
        out[dtype] = np.asarray(tr.xs, np.float64)
    np.testing.assert_allclose(out[jnp.float32], out[jnp.float64], rtol=1e-4, atol=1e-5)


def test_mixed_precision_promotes():
    field = ox.PreActivation(ox.random_skew(jax.random.key(43), 3), "tanh")  # float64
    tr = ox.simulate(field, jnp.ones(3, jnp.float32), dt=0.1, steps=3)
    assert tr.xs.dtype == jnp.float64
    tr = ox.simulate(field, jnp.array([1, 0, 0]), dt=0.1, steps=3)  # integer x0
    assert tr.xs.dtype == jnp.float64


# ---------------------------------------------------------------------------------------
# Saving layout and time grid
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_field():
    return ox.PreActivation(ox.random_skew(jax.random.key(51), 3), "tanh")


def test_layout_single(small_field):
    x0 = jnp.array([0.3, -0.2, 1.0])
    tr = ox.simulate(small_field, x0, dt=0.1, steps=10, save_every=3)
    assert tr.xs.shape == (5, 3)
    assert tr.ts.shape == (5,)
    assert tr.invariant.shape == (5,)
    assert tr.status.shape == () and tr.diverged_at.shape == ()
    assert tr.final.shape == (3,)
    assert tr.steps == 10 and tr.save_every == 3
    np.testing.assert_array_equal(tr.xs[0], x0)
    np.testing.assert_allclose(tr.ts, 0.1 * np.array([0, 3, 6, 9, 10]), rtol=1e-15)
    assert float(tr.ts[0]) == 0.0
    full = ox.simulate(small_field, x0, dt=0.1, steps=10)
    assert full.xs.shape == (11, 3)
    np.testing.assert_allclose(tr.xs, full.xs[np.array([0, 3, 6, 9, 10])], rtol=1e-15)
    np.testing.assert_array_equal(tr.final, full.final)


def test_layout_batch(small_field):
    xb = jax.random.normal(jax.random.key(52), (4, 3))
    tr = ox.simulate(small_field, xb, dt=0.1, steps=10, save_every=3)
    assert tr.xs.shape == (4, 5, 3)
    assert tr.ts.shape == (5,)
    assert tr.invariant.shape == (4, 5)
    assert tr.status.shape == (4,) and tr.diverged_at.shape == (4,)
    assert tr.final.shape == (4, 3)
    np.testing.assert_array_equal(tr.xs[:, 0], xb)
    one = ox.simulate(small_field, xb[2], dt=0.1, steps=10, save_every=3)
    np.testing.assert_array_equal(tr.xs[2], one.xs)
    np.testing.assert_allclose(tr.invariant, small_field.invariant(tr.xs), rtol=1e-15)


@pytest.mark.parametrize(
    "steps, save_every, saved",
    [(10, 3, [0, 3, 6, 9, 10]), (9, 3, [0, 3, 6, 9]), (5, 1, [0, 1, 2, 3, 4, 5]),
     (4, 10, [0, 4]), (1, 1, [0, 1]), (7, 7, [0, 7])],
)
def test_saved_steps(small_field, steps, save_every, saved):
    x0 = jnp.array([1.0, 0.5, -0.5])
    dt = 0.25
    tr = ox.simulate(small_field, x0, dt=dt, steps=steps, save_every=save_every)
    np.testing.assert_allclose(tr.ts, dt * np.array(saved), rtol=1e-15)
    # compare with a hand-rolled Euler loop
    xk, hand = x0, [x0]
    for _ in range(steps):
        xk = xk + dt * small_field(0.0, xk)
        hand.append(xk)
    np.testing.assert_allclose(tr.xs, jnp.stack(hand)[np.array(saved)], rtol=1e-13)


@pytest.mark.parametrize("solver", ["rk4", "euler", "dopri5"])
def test_t1_not_a_multiple_lands_on_t1(solver):
    A = ox.random_skew(jax.random.key(53), 4)
    x0 = jax.random.normal(jax.random.key(54), (4,))
    field = ox.PreActivation(A, "identity")
    t1, dt = 1.05, 0.1
    tr = ox.simulate(field, x0, dt=dt, t1=t1, solver=solver, save_every=4)
    assert tr.steps == 11
    assert float(tr.ts[-1]) == t1
    np.testing.assert_allclose(tr.ts[:-1], dt * np.array([0, 4, 8]), rtol=1e-15)
    ref = expm_reference(A, x0, t1)
    tol = {"rk4": 1e-5, "euler": 0.2, "dopri5": 1e-5}[solver]
    err = np.linalg.norm(np.asarray(tr.xs[-1]) - ref)
    assert err < tol * np.linalg.norm(ref)
    # a full last step (t = 1.1) would be off by about 0.05 |A x|: detectable for rk4
    if solver == "rk4":
        assert np.linalg.norm(expm_reference(A, x0, 1.1) - ref) > 100 * err


@pytest.mark.parametrize("t1, dt, steps", [(1.0, 0.1, 10), (0.3, 0.1, 3), (0.05, 0.1, 1),
                                           (2.0, 0.25, 8)])
def test_t1_step_count(small_field, t1, dt, steps):
    tr = ox.simulate(small_field, jnp.ones(3), dt=dt, t1=t1)
    assert tr.steps == steps
    np.testing.assert_allclose(float(tr.ts[-1]), t1, rtol=1e-14)
    assert tr.xs.shape == (steps + 1, 3)


@pytest.mark.parametrize("solver", list(ox.ADAPTIVE_SOLVERS))
def test_adaptive_layout_and_accuracy(solver):
    A = ox.random_skew(jax.random.key(55), 4)
    xb = jax.random.normal(jax.random.key(56), (2, 4))
    field = ox.PostActivation(A, "identity")
    tr = ox.simulate(field, xb, dt=0.1, steps=10, save_every=3, solver=solver, rtol=1e-10,
                     atol=1e-12)
    assert tr.xs.shape == (2, 5, 4)
    np.testing.assert_allclose(tr.ts, 0.1 * np.array([0, 3, 6, 9, 10]), rtol=1e-15)
    np.testing.assert_array_equal(tr.xs[:, 0], xb)
    for b in range(2):
        for j, t in enumerate(np.asarray(tr.ts)):
            np.testing.assert_allclose(tr.xs[b, j], expm_reference(A, xb[b], t), rtol=1e-7,
                                       atol=1e-8)
    np.testing.assert_array_equal(tr.status, [ox.Status.OK] * 2)


# ---------------------------------------------------------------------------------------
# No recompilation
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("solver", ["rk4", "dopri5"])
def test_no_recompilation(solver):
    n, B = 5, 3

    def call(seed, dt):
        k1, k2 = jax.random.split(jax.random.key(seed))
        field = ox.PreActivation(ox.random_skew(k1, n), "tanh")
        x0 = jax.random.normal(k2, (B, n))
        tr = ox.simulate(field, x0, dt=dt, steps=16, solver=solver, save_every=4)
        jax.block_until_ready(tr.xs)
        return tr

    first = call(0, 0.05)  # warm every cache
    with count_compiles() as counts:
        second = call(1, 0.07)
        third = call(2, 0.03)
    assert counts["compile"] == 0, counts
    assert not np.array_equal(first.xs, second.xs)
    assert not np.array_equal(second.xs, third.xs)
    # Control: the counter does see a compile when the shapes change.
    with count_compiles() as counts:
        k = jax.random.key(3)
        field = ox.PreActivation(ox.random_skew(k, n + 1), "tanh")
        jax.block_until_ready(ox.simulate(field, jnp.ones((B, n + 1)), dt=0.05, steps=16,
                                          solver=solver, save_every=4).xs)
    assert counts["compile"] >= 1
