"""Pre/post-activation fields: right-hand sides, exact invariants, inputs, diffrax."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import expm_reference, make_field

import oscillax as ox

FORMS = ("pre", "post")


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("n", [3, 6, 40])  # 40 > SMALL_N: the matmul path
def test_identity_is_linear(getkey, form, n):
    A = ox.random_skew(getkey(), n)
    field = make_field(form, A, "identity")
    x = jax.random.normal(getkey(), (n,))
    np.testing.assert_allclose(field(0.0, x), A @ x, rtol=1e-13, atol=1e-14)
    xb = jax.random.normal(getkey(), (5, n))
    np.testing.assert_allclose(field(0.0, xb), xb @ A.T, rtol=1e-13, atol=1e-14)
    # rhs uses the (n, B) layout
    np.testing.assert_allclose(field.rhs(xb.T), A @ xb.T, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("n", [4, 40])
def test_pre_rhs_formula(getkey, n):
    A = ox.random_skew(getkey(), n, spectral_radius=2.0)
    b = jax.random.normal(getkey(), (n,))
    field = ox.PreActivation(A, "tanh", bias=b, gamma=0.3)
    x = jax.random.normal(getkey(), (7, n))
    expected = jnp.tanh(x @ A.T + b[None, :]) - 0.3 * x
    np.testing.assert_allclose(field(0.0, x), expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("n", [4, 40])
def test_post_rhs_formula(getkey, n):
    A = ox.random_skew(getkey(), n, spectral_radius=2.0)
    b = jax.random.normal(getkey(), (n,))
    field = ox.PostActivation(A, "softsign", bias=b)
    x = jax.random.normal(getkey(), (7, n))
    expected = (x / (1 + jnp.abs(x))) @ A.T + b[None, :]
    np.testing.assert_allclose(field(0.0, x), expected, rtol=1e-12, atol=1e-14)


def test_field_keeps_leading_shape(getkey):
    field = ox.PostActivation(ox.random_skew(getkey(), 3), "tanh")
    x = jax.random.normal(getkey(), (2, 4, 3))
    out = field(0.0, x)
    assert out.shape == (2, 4, 3)
    np.testing.assert_allclose(out[1, 2], field(0.0, x[1, 2]), rtol=1e-14)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_field_dtype_follows_A(getkey, dtype):
    A = ox.random_skew(getkey(), 4, dtype=dtype)
    field = ox.PreActivation(A, "tanh")
    assert field.dtype == dtype and field.n == 4
    assert field(0.0, jnp.ones(4, dtype)).dtype == dtype


@jax.jit
def _dV_dt(field, xs):
    """grad V . f and |grad V| |f| at states `xs` `(B, n)`: one jitted program per field."""

    def one(x):
        g = jax.grad(field.invariant)(x)
        f = field(0.0, x)
        return jnp.dot(g, f), jnp.linalg.norm(g) * jnp.linalg.norm(f)

    return jax.vmap(one)(xs)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("activation", ox.ACTIVATIONS)
@pytest.mark.parametrize("n", [3, 12])
def test_invariant_is_exact(getkey, form, activation, n):
    # THEORY: for any sigma, b = 0, gamma = 0, dV/dt = grad V . f = 0 identically.
    A = ox.random_skew(getkey(), n, spectral_radius=1.5)
    field = make_field(form, A, activation)
    assert field.has_invariant()
    xs = jax.random.normal(getkey(), (8, n)) * 2.0
    dv, scale = _dV_dt(field, xs)
    # a real test: at most states both gradient and field are non-zero (relu-like sigma
    # can vanish at a state, and then dv = 0 exactly)
    assert int(jnp.sum(scale > 1e-3)) >= 3
    np.testing.assert_array_less(jnp.abs(dv), 1e-13 * scale + 1e-300)


@pytest.mark.parametrize("activation", ["tanh", "sin", "identity"])
def test_pre_invariant_with_bias(getkey, activation):
    # y = Ax + b obeys dy/dt = A sigma(y): I(x) = sum Phi(Ax + b) is conserved.
    n = 6
    A = ox.random_skew(getkey(), n)
    b = jax.random.normal(getkey(), (n,))
    field = ox.PreActivation(A, activation, bias=b)
    assert field.has_invariant()
    x = jax.random.normal(getkey(), (n,))
    phi = ox.get_activation(activation).antiderivative
    np.testing.assert_allclose(field.invariant(x), jnp.sum(phi(A @ x + b)), rtol=1e-13)
    dv, scale = _dV_dt(field, x[None])
    np.testing.assert_array_less(jnp.abs(dv), 1e-13 * scale)
    # rk4 at h = 0.01: invariant error O(h^4) ~ 1e-8 per unit time at most; a wrong
    # invariant (say without b) drifts O(1).
    tr = ox.simulate(field, x, dt=0.01, steps=1000, solver="rk4", save_every=50)
    assert tr.invariant is not None
    assert float(jnp.max(tr.invariant_drift())) < 1e-7
    # and the state really moved, so the check is not vacuous
    assert float(jnp.max(jnp.abs(tr.xs - x[None]))) > 0.1


def test_invariant_values():
    A = ox.skew_from_frequencies([1.0, 2.0])
    x = jnp.array([0.5, -1.0, 2.0, 0.1])
    np.testing.assert_allclose(ox.PostActivation(A, "tanh").invariant(x),
                               jnp.sum(jnp.log(jnp.cosh(x))), rtol=1e-14)
    np.testing.assert_allclose(ox.PreActivation(A, "tanh").invariant(x),
                               jnp.sum(jnp.log(jnp.cosh(A @ x))), rtol=1e-14)
    # linear: 1/2 |x|^2 in both forms
    for cls in (ox.PreActivation, ox.PostActivation):
        np.testing.assert_allclose(cls(A, "identity").invariant(x), 0.5 * jnp.sum(x * x),
                                   rtol=1e-15)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("activation", ["tanh", "identity", "relu"])
def test_invariant_batched(getkey, form, activation):
    n = 5
    field = make_field(form, ox.random_skew(getkey(), n), activation)
    xb = jax.random.normal(getkey(), (8, n))
    vb = field.invariant(xb)
    assert vb.shape == (8,)
    np.testing.assert_allclose(vb, jnp.stack([field.invariant(x) for x in xb]), rtol=1e-14)
    xbt = jax.random.normal(getkey(), (3, 4, n))
    assert field.invariant(xbt).shape == (3, 4)
    np.testing.assert_allclose(field.invariant(xbt)[2, 1], field.invariant(xbt[2, 1]),
                               rtol=1e-14)
    assert field.invariant(xb[0]).shape == ()


def test_no_invariant_with_gamma(getkey):
    field = ox.PreActivation(ox.random_skew(getkey(), 4), "tanh", gamma=0.1)
    assert not field.has_invariant()
    with pytest.raises(ValueError, match=r"no motion invariant.*gamma = 0.*got gamma=0\.1"):
        field.invariant(jnp.ones(4))


def test_no_invariant_post_with_bias(getkey):
    field = ox.PostActivation(ox.random_skew(getkey(), 4), "tanh", bias=jnp.ones(4))
    assert not field.has_invariant()
    with pytest.raises(ValueError, match=r"no motion invariant.*no bias.*got bias set"):
        field.invariant(jnp.ones(4))


@pytest.mark.parametrize("form", FORMS)
def test_no_invariant_with_input(getkey, form):
    field = make_field(form, ox.random_skew(getkey(), 4), "tanh", input_matrix=jnp.ones((4, 1)),
                       drive=jnp.sin)
    assert not field.has_invariant()
    with pytest.raises(ValueError, match=r"no motion invariant.*input set"):
        field.invariant(jnp.ones(4))


def test_no_invariant_trajectory(getkey):
    field = ox.PreActivation(ox.random_skew(getkey(), 4), "tanh", gamma=0.1)
    tr = ox.simulate(field, jnp.ones(4), dt=0.1, steps=3)
    assert tr.invariant is None
    with pytest.raises(ValueError, match="no motion invariant"):
        tr.invariant_drift()


@pytest.mark.parametrize("form", FORMS)
def test_drive(getkey, form):
    n, m = 4, 2
    A = ox.random_skew(getkey(), n)
    Bm = jax.random.normal(getkey(), (n, m))

    def drive(t):
        return jnp.stack([jnp.sin(t), jnp.cos(3.0 * t)])

    field = make_field(form, A, "tanh", input_matrix=Bm, drive=drive)
    x = jax.random.normal(getkey(), (n,))
    t = 0.7
    if form == "pre":
        expected = jnp.tanh(A @ x + Bm @ drive(t))
    else:
        expected = A @ jnp.tanh(x) + Bm @ drive(t)
    np.testing.assert_allclose(field(t, x), expected, rtol=1e-13)
    # batch: same input for every member
    xb = jax.random.normal(getkey(), (3, n))
    np.testing.assert_allclose(field(t, xb)[1], field(t, xb[1]), rtol=1e-14)
    # the engine passes t = k dt to the drive: Euler equals a hand loop
    dt, steps = 0.05, 7
    tr = ox.simulate(field, x, dt=dt, steps=steps)
    xk = x
    for k in range(steps):
        xk = xk + dt * field(k * dt, xk)
    np.testing.assert_allclose(tr.xs[-1], xk, rtol=1e-12)


def test_input_as_args(getkey):
    n, m = 4, 3
    A = ox.random_skew(getkey(), n)
    Bm = jax.random.normal(getkey(), (n, m))
    field = ox.PreActivation(A, "tanh", input_matrix=Bm)
    x = jax.random.normal(getkey(), (n,))
    u = jnp.array([0.1, -0.2, 0.3])
    np.testing.assert_allclose(field(0.0, x, u), jnp.tanh(A @ x + Bm @ u), rtol=1e-13)
    tr = ox.simulate(field, x, dt=0.1, steps=3, args=u)
    xk = x
    for _ in range(3):
        xk = xk + 0.1 * jnp.tanh(A @ xk + Bm @ u)
    np.testing.assert_allclose(tr.xs[-1], xk, rtol=1e-12)
    with pytest.raises(ValueError, match="has an `input_matrix` but no input"):
        field(0.0, x)


@pytest.mark.parametrize("form", FORMS)
def test_cell(getkey, form):
    n, m, B = 5, 2, 6
    A = ox.random_skew(getkey(), n)
    Bm = jax.random.normal(getkey(), (n, m))
    bias = jax.random.normal(getkey(), (n,))
    field = make_field(form, A, "tanh", bias=bias, input_matrix=Bm)
    x = jax.random.normal(getkey(), (n,))
    u = jax.random.normal(getkey(), (m,))
    dt = 0.1
    if form == "pre":
        f = jnp.tanh(A @ x + Bm @ u + bias)
    else:
        f = A @ jnp.tanh(x) + Bm @ u + bias
    np.testing.assert_allclose(field.cell(x, u, dt), x + dt * f, rtol=1e-13)
    # batched x and a different u per member
    xb = jax.random.normal(getkey(), (B, n))
    ub = jax.random.normal(getkey(), (B, m))
    out = field.cell(xb, ub, dt)
    assert out.shape == (B, n)
    for i in range(B):
        np.testing.assert_allclose(out[i], field.cell(xb[i], ub[i], dt), rtol=1e-13)
    # a cell is an RNN step: it scans
    us = jax.random.normal(getkey(), (10, m))
    final, _ = jax.lax.scan(lambda h, ut: (field.cell(h, ut, dt), None), x, us)
    assert final.shape == (n,) and bool(jnp.all(jnp.isfinite(final)))


def test_cell_needs_input_matrix(getkey):
    field = ox.PreActivation(ox.random_skew(getkey(), 3), "tanh")
    with pytest.raises(ValueError, match="`cell` needs a field built with `input_matrix=`"):
        field.cell(jnp.ones(3), jnp.ones(1), 0.1)


@pytest.mark.parametrize("form", FORMS)
def test_diffrax_odeterm_linear(getkey, form):
    n = 6
    A = ox.random_skew(getkey(), n)
    field = make_field(form, A, "identity")
    x0 = jax.random.normal(getkey(), (n,))
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field), diffrax.Tsit5(), t0=0.0, t1=3.0, dt0=0.1, y0=x0,
        stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-12),
    )
    np.testing.assert_allclose(sol.ys[-1], expm_reference(A, x0, 3.0), rtol=1e-8, atol=1e-9)


def test_diffrax_odeterm_nonlinear_matches_simulate(getkey):
    n = 4
    field = ox.PostActivation(ox.random_skew(getkey(), n), "tanh")
    x0 = jax.random.normal(getkey(), (n,))
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field), diffrax.Tsit5(), t0=0.0, t1=2.0, dt0=0.01, y0=x0,
        stepsize_controller=diffrax.PIDController(rtol=1e-10, atol=1e-12),
    )
    tr = ox.simulate(field, x0, dt=0.01, steps=200, solver="rk4")
    np.testing.assert_allclose(sol.ys[-1], tr.xs[-1], rtol=1e-7, atol=1e-8)


def test_field_is_a_pytree(getkey):
    A = ox.random_skew(getkey(), 3)
    field = ox.PreActivation(A, "tanh", bias=jnp.ones(3))
    leaves = jax.tree_util.tree_leaves(field)
    assert any(leaf is field.A for leaf in leaves)
    out = jax.jit(lambda f, x: f(0.0, x))(field, jnp.ones(3))
    np.testing.assert_allclose(out, field(0.0, jnp.ones(3)), rtol=1e-14)
    # gradient w.r.t. the field's arrays
    g = jax.grad(lambda f: jnp.sum(f(0.0, jnp.ones(3)) ** 2))(field)
    assert g.A.shape == (3, 3)


def test_traced_gamma(getkey):
    A = ox.random_skew(getkey(), 3)
    x = jnp.array([1.0, 0.5, -0.2])

    def f(gamma):
        return jnp.sum(ox.PreActivation(A, "tanh", gamma=gamma)(0.0, x))

    np.testing.assert_allclose(jax.grad(f)(0.2), -jnp.sum(x), rtol=1e-14)


def test_check_skew_false_accepts_any_matrix():
    M = jnp.array([[0.0, 1.0], [1.0, 0.0]])
    field = ox.PostActivation(M, "tanh", check_skew=False)
    x = jnp.array([1.0, 0.0])
    np.testing.assert_allclose(field(0.0, x), M @ jnp.tanh(x))


def test_integer_A_becomes_float():
    field = ox.PreActivation(jnp.array([[0, -1], [1, 0]]), "identity")
    assert jnp.issubdtype(field.dtype, jnp.floating)
