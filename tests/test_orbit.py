"""Periodic orbits, Floquet multipliers and Poincaré maps against closed forms (float64).

References: THEORY.md "Structure of the flows" (post form: tr J = 0, reciprocal multiplier
pairs for b = 0 and invertible A; pre form: det M = exp(-n gamma T); 2-D post tanh from (1, 0):
T = 7.714210439814) and the Hopf normal form r' = r(mu - r^2), theta' = omega (cycle r = sqrt(mu),
period 2 pi / omega, multipliers {1, exp(-4 pi mu / omega)}).

Each distinct field structure compiles one program (~10-20 s on two cores), so the quick tests
share fields and batch their cases; the heavier checks (gradients, Poincaré Jacobians, fixed-
step cycles, the fit) are marked slow.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from helpers import count_compiles

import oscillax as ox
from oscillax._solver import FIXED_SOLVERS

T_TANH_2D = 7.714210439814  # THEORY.md: 2-D post tanh, omega = 1, from (1, 0)
HOPF_MU, HOPF_OMEGA = 0.3, 1.7


def hopf(t, x, p):
    """Hopf normal form in Cartesian coordinates, parameters p = (mu, omega)."""
    mu, om = p[0], p[1]
    r2 = x[0] ** 2 + x[1] ** 2
    return jnp.stack([mu * x[0] - om * x[1] - x[0] * r2, om * x[0] + mu * x[1] - x[1] * r2])


HOPF_P = jnp.array([HOPF_MU, HOPF_OMEGA])


def hopf_multiplier(mu=HOPF_MU, om=HOPF_OMEGA):
    return math.exp(-4 * math.pi * mu / om)


def section_basis(normal):
    """Orthonormal basis (n, n-1) of the hyperplane normal to `normal`."""
    v = np.asarray(normal) / np.linalg.norm(normal)
    n = v.shape[0]
    u, _, _ = np.linalg.svd(np.eye(n) - np.outer(v, v))
    return u[:, : n - 1]


def closest_distance(a, b):
    """max over a of the distance to the nearest element of b."""
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.min(np.abs(a[:, None] - b[None, :]), axis=1)))


def mode_guess(A, amplitude):
    """A point in the plane of A's fastest eigen-mode, and that mode's linear period."""
    w, V = np.linalg.eig(np.asarray(A))
    k = int(np.argmax(w.imag))
    a = V[:, k].real
    return amplitude * a / np.linalg.norm(a), 2 * math.pi / w[k].imag


def atlas_guesses(As, amplitude, *, h=0.02, steps=1000):
    """Atlas-style starting guesses for B networks `As` (B, n, n): a point in the plane of
    the fastest mode, and a period from the upward zero crossings of that mode's coordinate
    along a short RK4 simulation of the nonlinear network."""
    X0 = np.stack([mode_guess(A, amplitude)[0] for A in As])
    field = eqx.tree_at(lambda f: f.A, ox.PostActivation(As[0], "tanh"),
                        jnp.asarray(np.moveaxis(As, 0, 2)))
    rk4 = FIXED_SOLVERS["rk4"]

    def step(X, _):
        X1 = rk4.step(field, 0.0, X, h)
        return X1, X1

    _, Xs = jax.lax.scan(step, jnp.asarray(X0.T), None, length=steps)
    xs = np.concatenate([X0.T[None], np.asarray(Xs)], axis=0)  # (steps + 1, n, B)
    ts = h * np.arange(steps + 1)
    periods = []
    for b in range(len(As)):
        c = xs[:, :, b] @ X0[b]
        i = np.where((c[:-1] <= 0) & (c[1:] > 0))[0]
        tc = ts[i] + h * (-c[i]) / (c[i + 1] - c[i])
        periods.append(np.mean(np.diff(tc)))
    return field, X0, np.asarray(periods)


# ---------------------------------------------------------------------------------------
# Quick tests
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tanh_2d():
    """One batched call: (1, 0), shrinking amplitudes, and an equilibrium (must fail alone)."""
    field = ox.PostActivation(ox.skew_from_frequencies([1.0]), "tanh")
    amps = np.array([1.0, 0.3, 0.1, 0.01, 1e-3])
    x0 = np.stack([np.r_[a, 0.0] for a in amps] + [np.zeros(2)])
    guess = np.r_[7.0, np.full(len(amps) - 1, 2 * math.pi), 6.0]
    return field, amps, x0, guess, ox.periodic_orbit(field, x0, guess)


def test_post_tanh_2d_period(tanh_2d):
    _, amps, _, _, orb = tanh_2d
    conv = np.asarray(orb.converged)
    assert conv[: len(amps)].all()
    assert abs(float(orb.period[0]) / T_TANH_2D - 1) < 1e-10
    np.testing.assert_allclose(orb.x0[0], [1.0, 0.0], atol=1e-12)  # the orbit through the guess
    assert np.all(np.asarray(orb.residual[: len(amps)]) <= 1e-10)
    # both multipliers 1 (neutral family): the trivial one and the one across level sets
    np.testing.assert_allclose(orb.multipliers[: len(amps)], 1.0, atol=1e-8)
    assert np.all(np.asarray(orb.trivial_error[: len(amps)]) < 1e-8)
    # post form: tr J = 0, so det M = 1
    np.testing.assert_allclose(orb.trace_integral[: len(amps)], 0.0, atol=1e-14)
    assert np.all(np.asarray(orb.liouville_error[: len(amps)]) < 1e-9)


def test_post_tanh_2d_small_amplitude_limit(tanh_2d):
    _, amps, _, _, orb = tanh_2d
    dev = np.abs(np.asarray(orb.period[: len(amps)]) - 2 * math.pi)
    assert np.all(np.diff(dev) < 0)  # T -> 2 pi / omega monotonically as the amplitude -> 0
    # tanh x = x - x^3/3 + ...: the period grows like 2 pi (1 + c a^2)
    assert dev[-1] < 1e-5
    ratio = dev[-2] / dev[-1]
    assert 50 < ratio < 200  # (0.01 / 0.001)^2 = 100


def test_failed_member_does_not_stop_the_batch(tanh_2d):
    _, amps, _, _, orb = tanh_2d
    # the last guess is the equilibrium: no phase condition there, its own status only
    assert int(orb.status[-1]) == ox.OrbitStatus.NOT_CONVERGED
    assert not bool(orb.converged[-1])
    assert orb.x0.shape == (len(amps) + 1, 2) and orb.multipliers.shape == (len(amps) + 1, 2)
    assert orb.monodromy.shape == (len(amps) + 1, 2, 2)


def test_second_call_does_not_recompile(tanh_2d):
    _, _, x0, guess, orb = tanh_2d
    # A -> c A rescales time: same orbits, periods T / c
    c = 1.3
    field2 = ox.PostActivation(ox.skew_from_frequencies([c]), "tanh")
    x0, guess2 = jnp.asarray(x0), jnp.asarray(guess / c)
    with count_compiles() as counts:
        orb2 = ox.periodic_orbit(field2, x0, guess2)
        jax.block_until_ready(orb2)
    assert counts["compile"] == 0
    np.testing.assert_allclose(orb2.period[:-1] * c, orb.period[:-1], rtol=1e-10)


def test_solver_failure_is_a_status_not_an_exception():
    field = ox.PostActivation(ox.skew_from_frequencies([1.0]), "tanh")
    orb = ox.periodic_orbit(field, np.array([[1.0, 0.0], [0.5, 0.0]]), np.array([7.0, 6.5]),
                            max_steps=5)
    np.testing.assert_array_equal(orb.status, [ox.OrbitStatus.SOLVER_FAILED] * 2)
    assert not np.asarray(orb.converged).any()


def test_linear_centre():
    # one frequency: every orbit has period 2 pi / omega and M = I
    omega = 2.0
    field = ox.PostActivation(ox.skew_from_frequencies([omega]), "identity")
    x0 = np.array([[1.0, 0.5], [0.0, 3.0], [-0.2, 0.1]])
    orb = ox.periodic_orbit(field, x0, np.array([3.0, 3.3, 2.9]))
    assert np.asarray(orb.converged).all()
    np.testing.assert_allclose(orb.period, 2 * math.pi / omega, rtol=1e-10)
    np.testing.assert_allclose(orb.multipliers, 1.0, atol=1e-10)
    np.testing.assert_allclose(orb.monodromy, np.broadcast_to(np.eye(2), (3, 2, 2)), atol=1e-10)
    assert np.all(np.asarray(orb.residual) <= 1e-10)


def test_hopf_normal_form_as_callable():
    x0 = np.array([[0.8, 0.1], [0.2, -0.3]])
    orb = ox.periodic_orbit(hopf, x0, np.array([3.5, 4.0]), args=HOPF_P)
    assert np.asarray(orb.converged).all()
    np.testing.assert_allclose(orb.period, 2 * math.pi / HOPF_OMEGA, rtol=1e-10)
    np.testing.assert_allclose(np.linalg.norm(orb.x0, axis=1), math.sqrt(HOPF_MU), rtol=1e-10)
    np.testing.assert_allclose(orb.multipliers[:, 0], 1.0, atol=1e-9)
    np.testing.assert_allclose(orb.nontrivial[:, 0], hopf_multiplier(), rtol=1e-9)
    # tr J = 2 mu - 4 r^2 = -2 mu on the cycle: det M = exp(-2 mu T) = the non-trivial multiplier
    np.testing.assert_allclose(orb.trace_integral, -2 * HOPF_MU * orb.period, rtol=1e-9)
    assert np.all(np.asarray(orb.liouville_error) < 1e-9)


def test_pre_form_liouville_det():
    # pre form with diffusion has no orbit (V decays); the identity holds for any start and t
    n, gamma = 4, 0.1
    A = ox.random_skew(jax.random.key(2), n)
    field = ox.PreActivation(A, "tanh", gamma=gamma)
    x0 = np.array([[1.0, -0.5, 0.3, 0.2], [2.0, 1.0, -1.0, 0.5], [0.1, 0.0, 0.0, -0.1]])
    t = np.array([5.0, 2.5, 7.0])
    fj = ox.flow_jacobian(field, x0, t)
    assert np.asarray(fj.ok).all()
    np.testing.assert_allclose(fj.trace_integral, -n * gamma * t, rtol=1e-12)
    det = np.linalg.det(np.asarray(fj.jacobian))
    np.testing.assert_allclose(det, np.exp(-n * gamma * t), rtol=1e-10)
    assert np.all(np.asarray(fj.liouville_error) < 1e-10)
    # the Jacobian is that of the flow map: compare with finite differences of the end point
    eps = 1e-6
    e0 = np.eye(n)[0]
    xp = ox.flow_jacobian(field, x0 + eps * e0, t).x
    xm = ox.flow_jacobian(field, x0 - eps * e0, t).x
    np.testing.assert_allclose((xp - xm) / (2 * eps), fj.jacobian[:, :, 0], atol=1e-7)


def test_flow_jacobian_of_a_fixed_step_scheme():
    # Euler on x' = A x: N = floor(t / h) steps and one shortened step tau = t - N h, so the
    # Jacobian is (I + tau A)(I + h A)^N
    A = np.asarray(ox.skew_from_frequencies([1.0]))
    field = ox.PostActivation(A, "identity")
    h, t = 0.1, 1.234
    fj = ox.flow_jacobian(field, np.array([1.0, 0.0]), t, solver="euler", dt=h)
    N = int(np.floor(t / h))
    eye = np.eye(2)
    expected = (eye + (t - N * h) * A) @ np.linalg.matrix_power(eye + h * A, N)
    np.testing.assert_allclose(fj.jacobian, expected, atol=1e-13)
    np.testing.assert_allclose(fj.x, expected @ np.array([1.0, 0.0]), atol=1e-13)


def test_batched_random_networks():
    B, n = 64, 8
    keys = jax.random.split(jax.random.key(11), B)
    As = np.stack([np.asarray(ox.random_skew(k, n)) for k in keys])
    field, X0, T0 = atlas_guesses(As, amplitude=1.0)
    orb = ox.periodic_orbit(field, X0, T0)  # one call, one A per member (n, n, B)
    conv = np.asarray(orb.converged)
    assert conv.mean() >= 0.99
    assert np.all(np.asarray(orb.residual)[conv] <= 1e-10)
    assert orb.status.shape == (B,)
    # b = 0, A invertible: a Poisson system, so the multipliers come in reciprocal pairs;
    # on these small-amplitude Lyapunov families they sit on the unit circle
    mu = np.asarray(orb.multipliers)[conv]
    recip = max(closest_distance(m, 1 / m) for m in mu)
    assert recip < 1e-9
    assert np.all(np.asarray(orb.liouville_error)[conv] < 1e-9)


def test_validation_messages():
    field = ox.PostActivation(ox.skew_from_frequencies([1.0]), "tanh")
    x = np.array([1.0, 0.0])
    with pytest.raises(ValueError, match="`x0`"):
        ox.periodic_orbit(field, np.ones(3), 6.0)
    with pytest.raises(ValueError, match="`x0`.*NaN"):
        ox.periodic_orbit(field, np.array([np.nan, 0.0]), 6.0)
    with pytest.raises(ValueError, match="`period`"):
        ox.periodic_orbit(field, x, -1.0)
    with pytest.raises(ValueError, match="`period`"):
        ox.periodic_orbit(field, x, np.inf)
    with pytest.raises(ValueError, match="`dt`"):
        ox.periodic_orbit(field, x, 6.0, solver="euler")
    with pytest.raises(ValueError, match="`solver`"):
        ox.periodic_orbit(field, x, 6.0, solver="rk45")
    with pytest.raises(ValueError, match="`system`"):
        ox.periodic_orbit(3.0, x, 6.0)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        ox.periodic_orbit(lambda t, y, a: jnp.zeros(3), x, 6.0)
    with pytest.raises(ValueError, match="batch sizes"):
        ox.periodic_orbit(field, np.ones((3, 2)), np.ones(4))
    with pytest.raises(ValueError, match="`invariant`"):
        ox.periodic_orbit(field, x, 6.0, invariant=3)
    with pytest.raises(ValueError, match="`max_iters`"):
        ox.periodic_orbit(field, x, 6.0, max_iters=0)
    with pytest.raises(ValueError, match="`t`"):
        ox.flow_jacobian(field, x, 0.0)
    with pytest.raises(ValueError, match="`normal`"):
        ox.poincare_map(field, x, normal=np.zeros(2))
    with pytest.raises(ValueError, match="`normal`"):
        ox.poincare_map(field, x, normal=np.ones(3))
    with pytest.raises(ValueError, match="`returns`"):
        ox.poincare_map(field, x, normal=np.ones(2), returns=0)
    with pytest.raises(ValueError, match="`t_max`"):
        ox.poincare_map(field, x, normal=np.ones(2), t_max=-1.0)


# ---------------------------------------------------------------------------------------
# Slow tests
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def post_4d():
    W = 0.5 * jax.random.normal(jax.random.key(3), (4, 4))
    field = ox.PostActivation(ox.skew(W), "tanh")
    x0, T0 = mode_guess(field.A, 0.8)
    return W, field, x0, T0, ox.periodic_orbit(field, x0, T0)


@pytest.mark.slow
def test_post_reciprocal_pairs_and_poincare(post_4d):
    _, field, _, _, orb = post_4d
    assert bool(orb.converged)
    mu = np.asarray(orb.multipliers)
    assert closest_distance(mu, 1 / mu) < 1e-9
    np.testing.assert_allclose(mu[:2], 1.0, atol=1e-9)  # trivial + across the level sets
    # Poincaré section through the orbit point, normal to the flow there
    fx = field(0.0, orb.x0)
    sec = ox.poincare_map(field, orb.x0, normal=fx, offset=jnp.dot(fx, orb.x0), returns=2)
    assert int(sec.status) == ox.SectionStatus.OK
    np.testing.assert_allclose(sec.times, [orb.period, 2 * orb.period], rtol=0, atol=1e-10)
    np.testing.assert_allclose(sec.points, np.stack([orb.x0] * 2), atol=1e-10)
    # the return map's Jacobian on the section has the non-trivial multipliers
    J = jax.jacfwd(lambda x: ox.poincare_map(field, x, normal=fx,
                                             offset=jnp.dot(fx, orb.x0)).points[0])(orb.x0)
    Q = section_basis(fx)
    ev = np.linalg.eigvals(Q.T @ np.asarray(J) @ Q)
    assert closest_distance(ev, mu[1:]) < 1e-9
    assert closest_distance(mu[1:], ev) < 1e-9


@pytest.mark.slow
def test_poincare_hopf():
    start = jnp.array([math.sqrt(HOPF_MU), 0.0])
    normal = jnp.array([0.0, 1.0])
    T = 2 * math.pi / HOPF_OMEGA
    sec = ox.poincare_map(hopf, start, normal=normal, returns=3, args=HOPF_P)
    assert int(sec.status) == ox.SectionStatus.OK and int(sec.found) == 3
    np.testing.assert_allclose(sec.times, T * np.arange(1, 4), rtol=0, atol=1e-10)
    np.testing.assert_allclose(sec.points, np.stack([start] * 3), atol=1e-10)
    J = jax.jacfwd(lambda x: ox.poincare_map(hopf, x, normal=normal, args=HOPF_P).points[0])(start)
    assert abs(float(J[0, 0]) - hopf_multiplier()) < 1e-9
    # a batch (one compiled program for all three cases); a member that never comes back
    # reports NO_RETURN, and NaN, on its own; from below the section the first crossing
    # comes before a full turn
    sec3 = ox.poincare_map(hopf, jnp.stack([start, jnp.zeros(2), jnp.array([0.0, -0.5])]),
                           normal=normal, args=HOPF_P, t_max=20.0)
    np.testing.assert_array_equal(sec3.status, [ox.SectionStatus.OK, ox.SectionStatus.NO_RETURN,
                                                ox.SectionStatus.OK])
    assert np.isnan(np.asarray(sec3.points[1])).all()
    np.testing.assert_allclose(sec3.times[0], [T], rtol=0, atol=1e-10)
    np.testing.assert_allclose(sec3.points[0], [start], atol=1e-10)
    assert 0 < float(sec3.times[2, 0]) < T


@pytest.mark.slow
def test_grad_period_matches_finite_differences(post_4d):
    W, _, x0, T0, _ = post_4d

    def period(W):
        return ox.periodic_orbit(ox.PostActivation(ox.skew(W), "tanh"), x0, T0).period

    g = np.asarray(jax.grad(period)(W))
    eps = 1e-5
    fd = np.zeros_like(g)
    for i, j in [(0, 1), (0, 2), (1, 3), (2, 3), (3, 0)]:
        E = np.zeros((4, 4))
        E[i, j] = eps
        fd[i, j] = (period(W + E) - period(W - E)) / (2 * eps)
        assert abs(g[i, j] - fd[i, j]) < 1e-6 * max(1.0, abs(fd[i, j]))


@pytest.mark.slow
def test_grad_multiplier_and_period_hopf():
    # |mu_nontrivial| = exp(-4 pi mu / omega), T = 2 pi / omega: gradients in closed form
    def out(p):
        orb = ox.periodic_orbit(hopf, jnp.array([0.6, 0.1]), 3.5, args=p)
        return jnp.abs(orb.nontrivial[0]), orb.period

    e = hopf_multiplier()
    # one forward pass and one backward program for both gradients: the two cotangents have
    # the same structure, so the transposed program compiles once
    _, vjp = jax.vjp(out, HOPF_P)
    one, zero = jnp.ones(()), jnp.zeros(())
    (g_mu,) = vjp((one, zero))
    exact = [-4 * math.pi / HOPF_OMEGA * e, 4 * math.pi * HOPF_MU / HOPF_OMEGA**2 * e]
    np.testing.assert_allclose(g_mu, exact, rtol=1e-7)
    (g_T,) = vjp((zero, one))
    np.testing.assert_allclose(g_T, [0.0, -2 * math.pi / HOPF_OMEGA**2], atol=1e-8)


@pytest.mark.slow
def test_euler_cycle_with_diffusion():
    # THEORY: pre tanh, h = 0.1, gamma = 0.015: Euler settles on an attracting closed curve
    # (the flow has none). The orbit of the method's return map, and d|mu|/dW.
    h, gamma = 0.1, 0.015
    W = jnp.array([[0.0, -0.5], [0.5, 0.0]])

    def field_of(W):
        return ox.PreActivation(ox.skew(W), "tanh", gamma=gamma)

    field = field_of(W)
    traj = ox.simulate(field, jnp.array([1.0, 0.0]), dt=h, steps=100_000, solver="euler",
                       save_every=100_000)
    sec = ox.poincare_map(field, traj.xs[-1], normal=jnp.array([0.0, 1.0]), returns=3,
                          solver="euler", dt=h)
    assert int(sec.status) == ox.SectionStatus.OK
    T_guess = float(sec.times[2] - sec.times[1])
    x_guess = sec.points[2]
    orb = ox.periodic_orbit(field, x_guess, T_guess, solver="euler", dt=h)
    assert bool(orb.converged) and float(orb.residual) < 1e-12
    mu = float(jnp.abs(orb.nontrivial[0]))
    assert 0.0 < mu < 1.0  # attracting
    assert abs(float(orb.period) / T_guess - 1) < 0.01
    assert abs(float(jnp.linalg.norm(orb.x0)) / float(jnp.linalg.norm(x_guess)) - 1) < 0.01

    def mu_of(W):
        o = ox.periodic_orbit(field_of(W), x_guess, T_guess, solver="euler", dt=h)
        return jnp.abs(o.nontrivial[0])

    g = jax.grad(mu_of)(W)
    eps = 1e-6
    fd = (mu_of(W.at[1, 0].add(eps)) - mu_of(W.at[1, 0].add(-eps))) / (2 * eps)
    assert abs(float(g[1, 0]) - float(fd)) < 1e-6 * max(1.0, abs(float(fd)))


@pytest.mark.slow
def test_fit_network_to_target_period():
    # a demo: a few Adam steps on W move an 8-unit network's orbit period toward a target
    n = 8
    W0 = 0.3 * jax.random.normal(jax.random.key(7), (n, n))
    x_hat, T_lin = mode_guess(ox.skew(W0), 0.8)
    T_start = float(ox.periodic_orbit(ox.PostActivation(ox.skew(W0), "tanh"), x_hat,
                                      T_lin).period)
    target = 1.1 * T_start

    @eqx.filter_jit
    def loss_and_grad(W, T_guess):
        def loss(W):
            orb = ox.periodic_orbit(ox.PostActivation(ox.skew(W), "tanh"), x_hat, T_guess)
            return (orb.period - target) ** 2, orb.period

        return jax.value_and_grad(loss, has_aux=True)(W)

    opt = optax.adam(0.005)
    W, state, T = W0, opt.init(W0), T_start
    errs = []
    for _ in range(5):
        (_, T), g = loss_and_grad(W, T)  # warm start: the last period is the next guess
        errs.append(abs(float(T) - target))
        updates, state = opt.update(g, state)
        W = optax.apply_updates(W, updates)
    assert np.all(np.diff(errs) < 0)  # measured: 0.328, 0.258, 0.186, 0.115, 0.045
    assert errs[-1] < 0.25 * errs[0]


@pytest.mark.parametrize("h", [0.1, 0.05])
def test_fixed_step_returns_of_the_linear_centre_are_eulers_closed_form(h):
    # THEORY: forward Euler turns the linear centre (omega = 1) by atan(h) a step and
    # stretches it by sqrt(1 + h^2), so its k-th upcrossing of y = 0 from (1, 0) comes after
    # 2 pi k / atan(h) steps, on the step whose ends bracket that angle.
    field = ox.PreActivation(ox.skew_from_frequencies([1.0]), "identity")
    starts = jnp.array([[1.0, 0.0], [0.0, -2.0]])  # on the section; a quarter turn before it
    sec = ox.poincare_map(field, starts, normal=jnp.array([0.0, 1.0]), returns=3,
                          solver="euler", dt=h, t_max=40.0)
    assert np.all(np.asarray(sec.status) == ox.SectionStatus.OK)
    turn = float(np.arctan(h))
    for b, phase0 in enumerate((0.0, -np.pi / 2)):
        for k in range(3):
            steps = (2 * np.pi * (k + 1) - phase0 - 2 * np.pi * (b == 1)) / turn
            # the crossing lies inside the step that brackets the angle, and on the section
            t = float(sec.times[b, k])
            assert np.floor(steps) * h <= t <= np.ceil(steps) * h, (b, k, t, steps * h)
            assert abs(t - steps * h) < 0.05 * h
            p = np.asarray(sec.points[b, k])
            assert abs(p[1]) < 1e-12 and p[0] > 0
            r0 = float(np.linalg.norm(starts[b]))
            lo, hi = (r0 * (1 + h * h) ** (np.floor(steps) / 2),
                      r0 * (1 + h * h) ** (np.ceil(steps) / 2))
            assert lo * (1 - 1e-3) <= p[0] <= hi * (1 + 1e-3), (p[0], lo, hi)
    # a member that cannot return in time gets NaN beyond what it found, and NO_RETURN
    short = ox.poincare_map(field, starts[0], normal=jnp.array([0.0, 1.0]), returns=3,
                            solver="euler", dt=h, t_max=2 * 2 * np.pi * h / turn + 1.0)
    assert int(short.status) == ox.SectionStatus.NO_RETURN and int(short.found) == 2
    assert np.all(np.isfinite(np.asarray(short.times[:2]))) and np.isnan(float(short.times[2]))
    assert np.all(np.isnan(np.asarray(short.points[2])))
