"""Lyapunov spectra (`ox.lyapunov_spectrum`): closed forms for the solver maps, sum rules,
Lorenz, the +- pairs of post-tanh flows, jit/vmap/batching, and argument checks.

float64 throughout (tests/conftest.py enables it for the session), except the float32 test.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import count_compiles

import oscillax as ox
from oscillax._solver import FIXED_SOLVERS

H = 0.1  # step of the closed-form checks, omega = 1


def _rk4_R(z):
    return 1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24


# Largest exponent of each solver's map on dx/dt = A x, A skew with frequency omega = 1,
# per unit time (THEORY.md "Structure of the flows"), and how it is compared.
SOLVER_MAP_RATES = {
    "euler": (math.log(1 + H**2) / (2 * H), "rel"),
    "heun": (math.log(1 + H**4 / 4) / (2 * H), "rel"),
    "midpoint": (math.log(1 + H**4 / 4) / (2 * H), "rel"),
    "rk4": (math.log(abs(_rk4_R(1j * H))) / H, "abs"),
    "implicit_midpoint": (0.0, "abs"),
}


def lorenz(t, x, args):
    return jnp.stack([10 * (x[1] - x[0]), x[0] * (28 - x[2]) - x[1], x[0] * x[1] - 8 / 3 * x[2]])


def henon(x):
    return jnp.stack([1 - 1.4 * x[0] ** 2 + x[1], 0.3 * x[0]])


# ---------------------------------------------------------------------------------------
# Closed forms
# ---------------------------------------------------------------------------------------


def test_reference_values():
    # the numbers quoted in THEORY.md / the issue
    assert SOLVER_MAP_RATES["euler"][0] == pytest.approx(0.0497516542658, abs=1e-13)
    assert SOLVER_MAP_RATES["heun"][0] == pytest.approx(1.2499844e-4, rel=1e-7)
    assert SOLVER_MAP_RATES["rk4"][0] == pytest.approx(-6.9358e-8, rel=1e-4)


@pytest.mark.parametrize("solver", list(SOLVER_MAP_RATES))
def test_solver_map_on_linear_skew(solver):
    """On one rotation plane the map is |R(ih)| times a rotation, so every tangent vector
    grows by exactly |R(ih)| per step: both exponents equal ln|R(ih)|/h after any number
    of steps, from any basis, and from any state."""
    field = ox.PreActivation(ox.skew_from_frequencies([1.0]), "identity")
    x0 = jnp.array([[1.0, 0.3], [-2.0, 0.5]])  # a batch of two
    res = ox.lyapunov_spectrum(field, x0, dt=H, steps=200, solver=solver)
    expected, how = SOLVER_MAP_RATES[solver]
    assert res.exponents.shape == (2, 2)
    if how == "rel":
        np.testing.assert_allclose(res.exponents, expected, rtol=1e-9)
    else:
        np.testing.assert_allclose(res.exponents, expected, rtol=0, atol=1e-12)


def test_euler_map_all_modes():
    """Euler on block-diagonal skew A: each pair +-i w_k gives the exponent ln(1+h^2w^2)/(2h)
    twice. From the coordinate basis the blocks never mix, so each is exact; from the
    default random basis the sum (= mean log|det(I + hA)|/h) is exact."""
    omegas = np.array([0.5, 1.0, 2.0])
    field = ox.PreActivation(ox.skew_from_frequencies(omegas), "identity")
    rates = np.log1p(H**2 * omegas**2) / (2 * H)
    expected = np.sort(np.repeat(rates, 2))[::-1]
    x0 = jnp.linspace(-1.0, 1.0, 6)
    exact = ox.lyapunov_spectrum(field, x0, dt=H, steps=300, solver="euler", basis=jnp.eye(6))
    np.testing.assert_allclose(exact.exponents, expected, rtol=1e-9)
    res = ox.lyapunov_spectrum(field, x0, dt=H, steps=300, solver="euler")
    np.testing.assert_allclose(res.sum, np.sum(np.log1p(H**2 * omegas**2)) / H, rtol=1e-9)


def test_forward_mode_derivative_is_the_closed_form():
    """d/ds of Euler's exponents on ds/dt-scaled skew A (pairs +-i s w_k): the closed form
    h s w^2 / (1 + h^2 s^2 w^2), through `jax.vmap` of `jax.jvp` (tangents shared, and one
    per member: the batch fold differentiated) and `jax.jacfwd` of a vmap (tangents
    batched, states not)."""
    omegas = np.array([0.5, 1.0, 2.0])
    A = ox.skew_from_frequencies(omegas)
    x0 = jnp.linspace(-1.0, 1.0, 6)

    def exponents(s):
        field = ox.PreActivation(s * A, "identity")
        return ox.lyapunov_spectrum(field, x0, dt=H, steps=20, solver="euler",
                                    basis=jnp.eye(6)).exponents

    def closed_form(s):
        d = H * s * omegas**2 / (1 + H**2 * s**2 * omegas**2)
        return np.repeat(d, 2)[::-1]  # exponents largest first: w = 2, 2, 1, 1, 0.5, 0.5

    ss = jnp.array([0.8, 1.0, 1.3])
    _, shared = jax.vmap(lambda s: jax.jvp(exponents, (s,), (1.0,)))(ss)
    dss = jnp.array([1.0, 2.0, -1.0])
    _, own = jax.vmap(lambda s, ds: jax.jvp(exponents, (s,), (ds,)))(ss, dss)
    jac = jax.jacfwd(lambda ss: jax.vmap(exponents)(ss))(ss)  # (3, 6, 3): diagonal in members
    for i, (s, ds) in enumerate(zip([0.8, 1.0, 1.3], [1.0, 2.0, -1.0], strict=True)):
        np.testing.assert_allclose(shared[i], closed_form(s), rtol=1e-9)
        np.testing.assert_allclose(own[i], ds * closed_form(s), rtol=1e-9)
        np.testing.assert_allclose(jac[i, :, i], closed_form(s), rtol=1e-9)
        np.testing.assert_allclose(np.delete(np.asarray(jac[i]), i, axis=1), 0, atol=0)


def test_map_sum_is_mean_log_det_and_henon():
    """Henon: det J = -0.3 everywhere, so the exponents sum to ln 0.3 per iterate exactly;
    (0.4192, -1.6232) are the known values (a = 1.4, b = 0.3)."""
    res = ox.lyapunov_spectrum(ox.IteratedMap(henon), jnp.array([0.1, 0.1]), steps=100_000,
                               transient=1000)
    assert res.per == "iterate"
    assert float(res.sum) == pytest.approx(math.log(0.3), abs=1e-12)
    np.testing.assert_allclose(res.exponents, [0.4192, -1.6232], atol=3e-3)


# ---------------------------------------------------------------------------------------
# Sum rules of the flows
# ---------------------------------------------------------------------------------------

# The rk4 map's log|det| differs from the flow's h tr J by O(h^5 |J|^5) per step; with
# |J| ~ 1 and h = 0.01 that is ~1e-10 per unit time, and the finite-time sum is exactly
# the mean of log|det| (no 1/T error), hence the tight tolerances.


def test_post_form_volume_preserving(getkey):
    n = 4
    A = ox.random_skew(getkey(), n, spectral_radius=1.5)
    b = 0.5 * jax.random.normal(getkey(), (n,))
    field = ox.PostActivation(A, "tanh", bias=b)
    x0 = jax.random.normal(getkey(), (3, n))
    res = ox.lyapunov_spectrum(field, x0, dt=0.01, steps=5000, transient=500)
    np.testing.assert_allclose(res.sum, 0.0, atol=1e-8)


def test_pre_form_contracts_by_n_gamma(getkey):
    n, gamma = 4, 0.1
    A = ox.random_skew(getkey(), n, spectral_radius=1.5)
    field = ox.PreActivation(A, "tanh", gamma=gamma)
    x0 = jax.random.normal(getkey(), (3, n))
    res = ox.lyapunov_spectrum(field, x0, dt=0.01, steps=5000)
    np.testing.assert_allclose(res.sum, -n * gamma, atol=1e-8)


@pytest.mark.slow
def test_adaptive_solver_measures_the_flow(getkey):
    """dopri5 steps the flow (variational equation alongside): linear skew gives 0 (where
    Euler's map gives 0.0497), and the pre form with gamma sums to -n gamma."""
    field = ox.PreActivation(ox.skew_from_frequencies([1.0, 2.0]), "identity")
    res = ox.lyapunov_spectrum(field, jnp.ones(4), dt=0.5, steps=40, solver="dopri5")
    np.testing.assert_allclose(res.exponents, 0.0, atol=1e-8)
    A = ox.random_skew(getkey(), 3)
    field = ox.PreActivation(A, "tanh", gamma=0.2)
    res = ox.lyapunov_spectrum(field, jnp.ones(3), dt=0.5, steps=40, solver="tsit5")
    np.testing.assert_allclose(res.sum, -0.6, atol=1e-7)


# ---------------------------------------------------------------------------------------
# Lorenz and the +- pairs
# ---------------------------------------------------------------------------------------

LORENZ_REF = np.array([0.9056, 0.0, -14.5723])


@pytest.fixture(scope="module")
def lorenz_rk4():
    # t = 1e4 after a transient of 100: finite-time fluctuations of the largest exponent
    # are ~0.005 at t = 1e3 and ~0.002 here
    return ox.lyapunov_spectrum(lorenz, jnp.ones(3), dt=0.01, steps=1_000_000,
                                transient=10_000)


def test_lorenz(lorenz_rk4):
    res = lorenz_rk4
    np.testing.assert_allclose(res.exponents, LORENZ_REF, atol=0.01)
    # The rk4 map at dt = 0.01 contracts volume more slowly than the flow (tr J = -41/3):
    # its own mean log|det| / dt is -13.66656, 1.02e-4 above (checked against the slogdet
    # of jacfwd of the step in test_lorenz_sum_is_the_maps). At dt = 0.005 the gap is 6e-6.
    assert float(res.sum) == pytest.approx(-41 / 3, abs=1.5e-4)
    # running estimates: log-spaced times, the last one is the result
    assert res.times.shape == (res.checkpoints.shape[0],)
    assert np.all(np.diff(np.asarray(res.times)) > 0)
    assert float(res.times[-1]) == pytest.approx(1e4)
    np.testing.assert_array_equal(res.checkpoints[-1], res.exponents)


def test_lorenz_sum_is_the_maps():
    """The sum equals the mean log|det DPsi| of the rk4 map along the same orbit, computed
    independently (jacfwd + slogdet); with half the step it is -41/3 to 1e-5. (2000 steps:
    t = 20, where rounding differences between the two programs have grown by e^18 only,
    so both follow the same orbit.)"""
    field = ox.VectorField(lorenz)
    step = lambda x: FIXED_SOLVERS["rk4"].step(field, 0.0, x[:, None], 0.01)[:, 0]

    def body(x, _):
        return step(x), jnp.linalg.slogdet(jax.jacfwd(step)(x))[1]

    _, logdet = jax.lax.scan(body, jnp.ones(3), None, length=2000)
    res = ox.lyapunov_spectrum(lorenz, jnp.ones(3), dt=0.01, steps=2000)
    assert float(res.sum) == pytest.approx(float(jnp.mean(logdet)) / 0.01, abs=1e-9)
    half = ox.lyapunov_spectrum(lorenz, jnp.ones(3), dt=0.005, steps=100_000, transient=2000)
    assert float(half.sum) == pytest.approx(-41 / 3, abs=1e-5)


@pytest.mark.parametrize("n, member", [(4, 11), (6, 14)])
def test_post_tanh_spectrum_in_pairs(n, member):
    """b = 0, invertible A: a Poisson flow, exponents in +- pairs. These members are
    chaotic (lambda_1 ~ 0.07-0.1). At t = 2000 the QR estimates carry an O(1/t) error
    (the last checkpoints still move by ~1e-3), so pairs are compared to 3e-3, against
    exponents 30x larger; the rk4 map's own breaking of the structure is O(h^4) ~ 1e-5."""
    key = jax.random.split(jax.random.key(1), 16)[member]
    A = ox.random_skew(key, n, spectral_radius=2.0)
    assert abs(np.linalg.det(np.asarray(A))) > 1e-3
    x0 = 3.0 * jax.random.normal(jax.random.key(2), (16, n))[member]
    res = ox.lyapunov_spectrum(ox.PostActivation(A, "tanh"), x0, dt=0.05, steps=40_000,
                               transient=2000)
    e = np.asarray(res.exponents)
    assert e[0] > 0.05
    np.testing.assert_allclose(e + e[::-1], 0.0, atol=3e-3)


# ---------------------------------------------------------------------------------------
# The renormalisation: exactness, fallback, renorm_every, k < n
# ---------------------------------------------------------------------------------------


def _reference_qr(step, x0, V0, steps, h):
    """Textbook Benettin: Jacobian of the step, Householder QR every step."""

    def body(c, _):
        x, Q, acc = c
        Q, R = jnp.linalg.qr(jax.jacfwd(step)(x) @ Q)
        return (step(x), Q, acc + jnp.log(jnp.abs(jnp.diag(R)))), None

    (_, _, acc), _ = jax.lax.scan(body, (x0, V0, jnp.zeros(V0.shape[1])), None, length=steps)
    return np.sort(np.asarray(acc) / (steps * h))[::-1]


def test_strongly_stretching_map_matches_textbook_qr():
    """A chaotic 6-dim neural map turns tangent vectors almost parallel in one iterate
    (cosines ~ 1), where one cheap Gram-Schmidt pass is not enough and the exact QR
    takes over: the result must still be the textbook one."""
    W = 3.0 * jax.random.normal(jax.random.key(7), (6, 6)) / np.sqrt(6)
    fmap = lambda x: jnp.tanh(W @ x) + 0.1 * x
    x0 = 0.5 * jnp.ones(6)
    res = ox.lyapunov_spectrum(ox.IteratedMap(fmap), x0, steps=2000, basis=jnp.eye(6))
    ref = _reference_qr(fmap, x0, jnp.eye(6), 2000, 1.0)
    np.testing.assert_allclose(res.exponents, ref, rtol=0, atol=1e-10)


def test_renorm_every_and_partial_blocks():
    """Renormalising every m steps gives the same exponents (exactly, in exact arithmetic);
    steps that are not a multiple of m end with a shorter block. (t = 15: short enough
    that rounding differences between programs do not separate the chaotic orbits.)"""
    x0 = jnp.array([1.0, 2.0, 20.0])
    basis = jnp.eye(3)
    ref = _reference_qr(lambda x: FIXED_SOLVERS["rk4"].step(
        ox.VectorField(lorenz), 0.0, x[:, None], 0.01)[:, 0], x0, basis, 1503, 0.01)
    for m in (1, 7):
        res = ox.lyapunov_spectrum(lorenz, x0, dt=0.01, steps=1503, renorm_every=m,
                                   basis=basis)
        np.testing.assert_allclose(res.exponents, ref, rtol=0, atol=1e-9, err_msg=f"m={m}")
        assert float(res.times[-1]) == pytest.approx(15.03)


def test_k_smaller_than_n():
    basis = jnp.eye(3)
    full = ox.lyapunov_spectrum(lorenz, jnp.ones(3), dt=0.01, steps=5000, basis=basis)
    for k in (1, 2):
        part = ox.lyapunov_spectrum(lorenz, jnp.ones(3), dt=0.01, steps=5000, k=k,
                                    basis=basis[:, :k])
        assert part.exponents.shape == (k,)
        # Gram-Schmidt: the first k columns evolve as in the full run
        np.testing.assert_allclose(part.exponents, full.exponents[:k], rtol=0, atol=1e-9)


@pytest.mark.slow
def test_large_system_path():
    """n > 32 takes the matrix-product renormalisation; Euler on 17 rotation planes from the
    coordinate basis is exact, and k < n tracks the fastest planes."""
    omegas = np.linspace(0.2, 1.8, 17)
    field = ox.PreActivation(ox.skew_from_frequencies(omegas), "identity")
    rates = np.sort(np.repeat(np.log1p(H**2 * omegas**2) / (2 * H), 2))[::-1]
    x0 = jnp.linspace(-1.0, 1.0, 34)
    res = ox.lyapunov_spectrum(field, x0, dt=H, steps=50, solver="euler", basis=jnp.eye(34))
    np.testing.assert_allclose(res.exponents, rates, rtol=1e-9)
    basis = jnp.eye(34)[:, ::-1][:, :4]  # the last two planes: the fastest
    part = ox.lyapunov_spectrum(field, x0, dt=H, steps=50, solver="euler", k=4, basis=basis)
    np.testing.assert_allclose(part.exponents, rates[:4], rtol=1e-9)


def test_memory_does_not_grow_with_steps():
    field = ox.PostActivation(ox.skew_from_frequencies([1.0, 2.0]), "tanh")

    def temp_bytes(steps):
        fn = jax.jit(lambda x: ox.lyapunov_spectrum(field, x, dt=0.1, steps=steps).exponents)
        return fn.lower(jnp.ones((8, 4))).compile().memory_analysis().temp_size_in_bytes

    assert temp_bytes(1_000_000) <= temp_bytes(1000) + 4096


# ---------------------------------------------------------------------------------------
# jit, vmap, batches, compilation, dtypes
# ---------------------------------------------------------------------------------------


def _post_fields(getkey, count, n):
    return jnp.stack([ox.random_skew(getkey(), n) for _ in range(count)])


def test_batch_equals_one_at_a_time(getkey):
    field = ox.PostActivation(ox.random_skew(getkey(), 4), "tanh")
    x0 = jax.random.normal(getkey(), (5, 4))
    batch = ox.lyapunov_spectrum(field, x0, dt=0.1, steps=300, solver="euler")
    assert batch.exponents.shape == (5, 4)
    assert batch.checkpoints.shape[::2] == (5, 4) and batch.state.shape == (5, 4)
    for b in range(5):
        one = ox.lyapunov_spectrum(field, x0[b], dt=0.1, steps=300, solver="euler")
        np.testing.assert_allclose(batch.exponents[b], one.exponents, rtol=0, atol=1e-13)
        np.testing.assert_allclose(batch.state[b], one.state, rtol=0, atol=1e-13)


def test_jit_and_vmap_over_fields_and_states(getkey):
    As = _post_fields(getkey, 4, 5)
    x0s = jax.random.normal(getkey(), (4, 5))

    def one(A, x0):
        return ox.lyapunov_spectrum(ox.PostActivation(A, "tanh"), x0, dt=0.1, steps=200,
                                    solver="euler").exponents

    vm = jax.jit(jax.vmap(one))(As, x0s)  # A and x0 vmapped: folded into one batch
    over_states = jax.jit(jax.vmap(one, in_axes=(None, 0)))(As[0], x0s)
    for b in range(4):
        np.testing.assert_allclose(vm[b], one(As[b], x0s[b]), rtol=0, atol=1e-13)
        np.testing.assert_allclose(over_states[b], one(As[0], x0s[b]), rtol=0, atol=1e-13)


@pytest.mark.slow
def test_vmap_fallbacks(getkey):
    """vmapped over what the batch fold does not cover (the bias, dt), and nested."""
    As = _post_fields(getkey, 2, 3)
    x0s = jax.random.normal(getkey(), (3, 3))

    def one(A, x0, b=None, dt=0.1):
        return ox.lyapunov_spectrum(ox.PostActivation(A, "tanh", bias=b), x0, dt=dt,
                                    steps=100, solver="euler").exponents

    bs = 0.1 * jax.random.normal(getkey(), (3, 3))
    vb = jax.vmap(lambda b, x0: one(As[0], x0, b))(bs, x0s)
    np.testing.assert_allclose(vb[2], one(As[0], x0s[2], bs[2]), rtol=0, atol=1e-13)
    nested = jax.vmap(jax.vmap(one, in_axes=(None, 0)), in_axes=(0, None))(As, x0s)
    assert nested.shape == (2, 3, 3)
    np.testing.assert_allclose(nested[1, 2], one(As[1], x0s[2]), rtol=0, atol=1e-13)
    over_dt = jax.vmap(lambda dt: one(As[0], x0s[0], dt=dt))(jnp.array([0.05, 0.1]))
    np.testing.assert_allclose(over_dt[1], one(As[0], x0s[0]), rtol=0, atol=1e-13)


def test_no_recompilation_on_new_values(getkey):
    field = ox.PostActivation(ox.random_skew(getkey(), 3), "tanh")
    call = lambda f, x: jax.block_until_ready(
        ox.lyapunov_spectrum(f, x, dt=0.05, steps=64, solver="rk4").exponents)
    first = call(field, jnp.array([1.0, 1.0, 1.0]))  # built as the calls below are
    other = ox.PostActivation(ox.random_skew(getkey(), 3), "tanh")
    with count_compiles() as counts:
        second = call(field, jnp.array([0.3, -1.0, 2.0]))
        third = call(other, jnp.array([0.3, -1.0, 2.0]))
    assert counts["compile"] == 0, counts
    assert not np.array_equal(first, second) and not np.array_equal(second, third)
    with count_compiles() as counts:  # control: a new shape compiles
        call(field, jnp.ones((2, 3)))
    assert counts["compile"] >= 1


def test_float32():
    field = ox.PreActivation(ox.skew_from_frequencies([1.0]).astype(jnp.float32), "identity")
    res = ox.lyapunov_spectrum(field, jnp.array([1.0, 0.3], jnp.float32), dt=H, steps=500,
                               solver="euler")
    assert res.exponents.dtype == jnp.float32 and res.state.dtype == jnp.float32
    np.testing.assert_allclose(res.exponents, SOLVER_MAP_RATES["euler"][0], rtol=1e-5)


def test_plain_callable_and_args():
    # a diffrax-style f(t, x, args), with args
    f = lambda t, x, a: a * jnp.stack([-x[1], x[0]])
    res = ox.lyapunov_spectrum(f, jnp.array([1.0, 0.0]), dt=H, steps=50, solver="euler",
                               args=1.0)
    np.testing.assert_allclose(res.exponents, SOLVER_MAP_RATES["euler"][0], rtol=1e-9)


# ---------------------------------------------------------------------------------------
# Argument checks
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(steps=0), "`steps` must be an integer >= 1"),
        (dict(steps=1.5), "`steps` must be an integer"),
        (dict(renorm_every=0), "`renorm_every` must be an integer >= 1"),
        (dict(transient=-1), "`transient` must be an integer >= 0"),
        (dict(k=3), "`k` must be at most the dimension n = 2"),
        (dict(k=0), "`k` must be an integer >= 1"),
        (dict(dt=None), "`dt` is required"),
        (dict(dt=-0.1), "`dt` must be a positive finite scalar"),
        (dict(dt=float("nan")), "`dt` must be a positive finite scalar"),
        (dict(solver="rk45"), "`solver` must be one of"),
        (dict(basis=jnp.eye(3)), "`basis` must have shape"),
    ],
)
def test_argument_errors(kwargs, match):
    field = ox.PreActivation(ox.skew_from_frequencies([1.0]), "tanh")
    call = dict(dt=0.1, steps=10)
    call.update(kwargs)
    with pytest.raises(ValueError, match=match):
        ox.lyapunov_spectrum(field, jnp.ones(2), **call)


def test_state_and_system_errors():
    field = ox.PreActivation(ox.skew_from_frequencies([1.0]), "tanh")
    with pytest.raises(ValueError, match="`x0` has 3 components per state but the field is 2"):
        ox.lyapunov_spectrum(field, jnp.ones(3), dt=0.1, steps=10)
    with pytest.raises(ValueError, match=r"`x0` must be one state \(n,\) or a batch"):
        ox.lyapunov_spectrum(field, jnp.ones((2, 2, 2)), dt=0.1, steps=10)
    with pytest.raises(ValueError, match="`x0` contains NaN"):
        ox.lyapunov_spectrum(field, jnp.array([1.0, jnp.nan]), dt=0.1, steps=10)
    with pytest.raises(ValueError, match="returned shape|failed on a state of shape"):
        ox.lyapunov_spectrum(lambda t, x, a: x[:1], jnp.ones(2), dt=0.1, steps=10)
    with pytest.raises(ValueError, match="`system` must be"):
        ox.lyapunov_spectrum(3.0, jnp.ones(2), dt=0.1, steps=10)
    with pytest.raises(ValueError, match="`dt` is not used with ox.IteratedMap"):
        ox.lyapunov_spectrum(ox.IteratedMap(henon), jnp.ones(2), dt=0.1, steps=10)
    with pytest.raises(ValueError, match="`fn` must be a function"):
        ox.IteratedMap(3)


# ---------------------------------------------------------------------------------------
# The cheap renormalisation and the Euler post-form tangent (internals)
# ---------------------------------------------------------------------------------------


def _reference_pass(V):
    """One Gram-Schmidt pass against the full Gram matrix, in numpy, per member: what
    `_fast_renormalise` computes (V `(k, n, B)`)."""
    V = np.asarray(V)
    k, _, B = V.shape
    Q = np.empty_like(V)
    for b in range(B):
        Vb = V[:, :, b]
        G = Vb @ Vb.T
        for j in range(k):
            q = Vb[j] - sum(G[i, j] / G[i, i] * Vb[i] for i in range(j))
            Q[j, :, b] = q * 2.0 ** -np.floor(np.log2(G[j, j]) / 2)
    return Q


@pytest.mark.parametrize("k, n", [(2, 2), (3, 3), (4, 4), (5, 8), (6, 6), (8, 8), (7, 7)])
def test_fast_renormalise_matches_full_gram_pass(k, n):
    """The Gram matrix in blocks (two from SPLIT_GRAM_K, three from SPLIT_GRAM_K3) gives the
    pass of the full one, an upper-triangular map with power-of-two diagonal, also for k < n."""
    from oscillax._lyapunov import SPLIT_GRAM_K, SPLIT_GRAM_K3, _fast_renormalise, _gram_blocks

    assert SPLIT_GRAM_K <= 5 and SPLIT_GRAM_K3 <= 6
    expected_blocks = 1 if k < SPLIT_GRAM_K else 2 if k < SPLIT_GRAM_K3 else 3
    assert len(_gram_blocks(jnp.zeros((k, n, 1)))) == expected_blocks
    V = jax.random.normal(jax.random.key(k * 10 + n), (k, n, 6)) * jnp.exp(
        jnp.linspace(-3.0, 3.0, 6))[None, None, :]
    Q, s, too_far = _fast_renormalise(V)
    np.testing.assert_allclose(Q, _reference_pass(V), rtol=1e-12, atol=0)
    # Q = V^T T, T upper triangular with diagonal 2^-s
    for b in range(V.shape[2]):
        T = np.linalg.lstsq(np.asarray(V[:, :, b]).T, np.asarray(Q[:, :, b]).T, rcond=None)[0]
        np.testing.assert_allclose(np.tril(T, -1), 0, atol=1e-12)
        np.testing.assert_array_equal(np.diag(T).round(12), 2.0 ** -np.asarray(s[:, b]))
    assert too_far.shape == (6,)


def test_fast_renormalise_orthogonalises_like_qr():
    """From nearly orthogonal tangents (cosines ~ 3e-3) one pass leaves cosines of second
    order (~ 1e-5), and the columns are jnp.linalg.qr's Q up to sign and scale."""
    from oscillax._lyapunov import _fast_renormalise

    k, n, B = 8, 8, 4
    Q0 = jnp.linalg.qr(jax.random.normal(jax.random.key(1), (B, n, n)))[0]
    E = 1e-3 * jax.random.normal(jax.random.key(2), (B, n, k))
    A = Q0[:, :, :k] + Q0 @ E  # (B, n, k), columns nearly orthonormal
    V = jnp.transpose(A, (2, 1, 0)) * 3.0
    Q, s, too_far = _fast_renormalise(V)
    assert not bool(jnp.any(too_far))
    Qn = Q / jnp.linalg.norm(Q, axis=1, keepdims=True)
    G = jnp.einsum("imb,jmb->ijb", Qn, Qn)
    off = G - jnp.eye(k)[:, :, None]
    before = jnp.einsum("imb,jmb->ijb", V, V) / 9.0 - jnp.eye(k)[:, :, None]
    assert float(jnp.max(jnp.abs(before))) > 1e-3
    assert float(jnp.max(jnp.abs(off))) < 1e-4
    Qr = jnp.linalg.qr(A)[0]  # (B, n, k)
    cos = jnp.einsum("bmj,jmb->jb", Qr, Qn)
    np.testing.assert_allclose(jnp.abs(cos), 1.0, atol=1e-4)


def test_fast_renormalise_degenerate_and_flags():
    """A zero tangent stays zero (no NaN, s = 0); nearly parallel tangents are flagged for
    the exact QR; exactly orthogonal ones are not."""
    from oscillax._lyapunov import _fast_renormalise

    k, n = 6, 6
    eye = jnp.eye(n)
    ortho = eye[:k]
    zero = ortho.at[3].set(0.0)
    parallel = ortho.at[5].set(eye[4] + 1e-9 * eye[5])
    V = jnp.stack([ortho, zero, parallel], axis=-1) * 5.0
    Q, s, too_far = _fast_renormalise(V)
    assert bool(jnp.all(jnp.isfinite(Q)))
    np.testing.assert_array_equal(Q[3, :, 1], 0.0)
    assert int(s[3, 1]) == 0
    assert too_far.tolist() == [False, False, True]
    np.testing.assert_allclose(Q[:, :, 0], ortho * 5.0 / 4.0)  # 2^-s, s = floor(log4 25)


@pytest.mark.parametrize("activation", ["tanh", "softsign", "identity"])
@pytest.mark.parametrize("per_member", [False, True])
@pytest.mark.parametrize("skew", [True, False])
def test_euler_post_tangent_matches_jvp(getkey, activation, per_member, skew):
    """The written-out Euler tangent of the post form equals the JVP of the solver's step
    (to rounding), with the same step bit for bit, for shared and per-member A and a bias,
    also for an A with a nonzero diagonal (check_skew=False: the diagonal term is kept)."""
    import equinox as eqx

    from oscillax._lyapunov import _euler_post_tangent_step, _fixed_tangent_step

    n, k, B = 5, 3, 7

    def matrix():
        A = ox.random_skew(getkey(), n)
        return A if skew else A + jnp.diag(jax.random.normal(getkey(), (n,)))

    A = matrix()
    field = ox.PostActivation(A, activation, bias=0.3 * jnp.ones(n), check_skew=skew)
    if per_member:
        A3 = jnp.stack([matrix() for _ in range(B)], axis=-1)
        field = eqx.tree_at(lambda f: f.A, field, A3)
    X = 2.0 * jax.random.normal(getkey(), (n, B))
    V = jax.random.normal(getkey(), (k, n, B))
    h = jnp.asarray(0.1)
    solver = FIXED_SOLVERS["euler"]
    assert _fixed_tangent_step(field, solver, None).__qualname__.startswith(
        "_euler_post_tangent_step")
    Xn, Vn = _euler_post_tangent_step(field, solver, None)(0.0, X, V, h)
    Xr, Vr = jax.vmap(lambda v: solver.step_and_tangent(field, 0.0, X, v, h),
                      in_axes=0, out_axes=(None, 0))(V)
    np.testing.assert_array_equal(Xn, Xr)
    np.testing.assert_allclose(Vn, Vr, rtol=1e-13, atol=1e-15)


def test_post_tanh_batch_matches_map_of_same_step(getkey):
    """The issue-14 sweep (vmapped post-tanh Euler networks, full spectrum) gives the
    exponents of the same Euler map measured as an `IteratedMap` (JVP tangents, per
    iterate / h)."""
    n, B, steps, h = 8, 4, 600, 0.1
    As = jnp.stack([ox.random_skew(getkey(), n) for _ in range(B)])
    x0s = jax.random.normal(getkey(), (B, n))
    basis = jnp.linalg.qr(jax.random.normal(getkey(), (n, n)))[0]

    def one(A, x0):
        return ox.lyapunov_spectrum(ox.PostActivation(A, "tanh"), x0, dt=h, steps=steps,
                                    solver="euler", basis=basis).exponents

    def as_map(A, x0):
        field = ox.PostActivation(A, "tanh")
        fmap = ox.IteratedMap(lambda x: x + h * field(0.0, x))
        return ox.lyapunov_spectrum(fmap, x0, steps=steps, basis=basis).exponents / h

    got = jax.jit(jax.vmap(one))(As, x0s)
    ref = jnp.stack([jax.jit(as_map)(A, x0) for A, x0 in zip(As, x0s)])
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9)
