"""Activations: Phi(0) = 0 and Phi' = sigma, accurate antiderivatives, flags, user functions."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import BUILTIN_FLAGS, CLOSED_FORM_PHI, LEAKY_SLOPE

import oscillax as ox


def test_builtin_table_is_complete():
    # A new built-in must get a row in the expected flags, closed forms and derivatives.
    assert set(ox.ACTIVATIONS) == set(BUILTIN_FLAGS) == set(CLOSED_FORM_PHI)
    assert set(ox.ACTIVATIONS) == set(SIGMA_REF) == set(DSIGMA_REF)


@pytest.mark.parametrize("name", ox.ACTIVATIONS)
def test_antiderivative_vanishes_at_zero(name):
    act = ox.get_activation(name)
    for dtype in (jnp.float32, jnp.float64):
        assert float(act.antiderivative(jnp.zeros((), dtype))) == 0.0
        assert float(act.fn(jnp.zeros((), dtype))) == (0.5 if name == "sigmoid" else 0.0)


# sigma and sigma' in numpy float64, written from the definitions (independent of the package)
SIGMA_REF = {
    "identity": lambda x: x,
    "tanh": np.tanh,
    "hardtanh": lambda x: np.clip(x, -1.0, 1.0),
    "softsign": lambda x: x / (1.0 + np.abs(x)),
    "sin": np.sin,
    "erf": lambda x: np.vectorize(math.erf)(x),
    "relu": lambda x: np.maximum(x, 0.0),
    "leaky_relu": lambda x: np.where(x >= 0, x, LEAKY_SLOPE * x),
    "sigmoid": lambda x: np.where(x >= 0, 1.0 / (1.0 + np.exp(-np.abs(x))),
                                  np.exp(-np.abs(x)) / (1.0 + np.exp(-np.abs(x)))),
    "rectified_tanh": lambda x: np.maximum(np.tanh(x), 0.0),
}
def _sech2(x):
    e = np.exp(-2.0 * np.abs(x))  # sech^2 x = 4 e^{-2|x|} / (1 + e^{-2|x|})^2, no overflow
    return 4.0 * e / (1.0 + e) ** 2


DSIGMA_REF = {
    "identity": np.ones_like,
    "tanh": lambda x: _sech2(x),
    "hardtanh": lambda x: (np.abs(x) < 1.0).astype(np.float64),
    "softsign": lambda x: 1.0 / (1.0 + np.abs(x)) ** 2,
    "sin": np.cos,
    "erf": lambda x: 2.0 / math.sqrt(math.pi) * np.exp(-(x**2)),
    "relu": lambda x: (x > 0).astype(np.float64),
    "leaky_relu": lambda x: np.where(x > 0, 1.0, LEAKY_SLOPE),
    "sigmoid": lambda x: 0.25 * _sech2(0.5 * x),
    "rectified_tanh": lambda x: np.where(x > 0, _sech2(x), 0.0),
}
# Where sigma has a kink (sigma' jumps): second derivatives are finite there, but their
# value is a convention, so sigma' is compared only away from these.
KINKS = {"hardtanh": (-1.0, 1.0), "relu": (0.0,), "leaky_relu": (0.0,), "rectified_tanh": (0.0,)}
# Seams of the implementations: the series / asymptotic switch of log cosh and of the
# softsign and sigmoid antiderivatives (|x| = 1, x = 1), the kinks above, and 0.
SEAMS = (-1.0, 0.0, 1.0)
DTYPES = {"float32": (jnp.float32, 1e-6), "float64": (jnp.float64, 1e-12)}


def _grid(dtype):
    """Every seam exactly, its float neighbours, far points and random points."""
    np_dtype = np.dtype(dtype)
    seams = np.asarray(SEAMS, np_dtype)
    up = np.nextafter(seams, np_dtype.type(np.inf))
    down = np.nextafter(seams, np_dtype.type(-np.inf))
    # next to 0 the neighbours are subnormal, which XLA on CPU flushes to 0: use the
    # smallest normal numbers instead
    tiny = np.finfo(np_dtype).tiny
    up[seams == 0], down[seams == 0] = tiny, -tiny
    rng = np.random.default_rng(13)
    rand = np.concatenate([rng.normal(0.0, 3.0, 200), rng.uniform(-1.2, 1.2, 100)])
    far = np.array([-1e4, -25.0, -8.0, -0.5, 0.5, 8.0, 25.0, 1e4])
    return np.concatenate([seams, up, down, rand.astype(np_dtype), far.astype(np_dtype)])


@pytest.mark.parametrize("dtype_name", DTYPES)
@pytest.mark.parametrize("name", ox.ACTIVATIONS)
def test_antiderivative_derivative_is_fn(name, dtype_name):
    # dPhi/dx = sigma at every x, seams included (a min(|x|, 1) seam once halved the
    # gradient there: 0.38 instead of tanh(-1) = -0.76), forward and reverse mode.
    dtype, rtol = DTYPES[dtype_name]
    act = ox.get_activation(name)
    xs = _grid(dtype)
    x = jnp.asarray(xs, dtype)
    sigma = act.fn(x)
    ref = SIGMA_REF[name](xs.astype(np.float64))  # same inputs, in float64
    grads = {
        "grad": jax.vmap(jax.grad(act.antiderivative))(x),
        "grad of sum": jax.grad(lambda v: jnp.sum(act.antiderivative(v)))(x),
        "jit grad": jax.jit(jax.vmap(jax.grad(act.antiderivative)))(x),
        "jvp": jax.jvp(act.antiderivative, (x,), (jnp.ones_like(x),))[1],
        "jacfwd": jax.vmap(jax.jacfwd(act.antiderivative))(x),
    }
    for how, g in grads.items():
        assert g.dtype == dtype, how
        np.testing.assert_array_equal(g, sigma, err_msg=how)  # exactly sigma, bit for bit
        # below the smallest normal number XLA flushes to 0 (0.01 * tiny for leaky relu)
        np.testing.assert_allclose(np.asarray(g, np.float64), ref, rtol=rtol,
                                   atol=np.finfo(dtype).tiny, err_msg=how)


@pytest.mark.parametrize("name", ["tanh", "softsign", "sigmoid", "rectified_tanh", "hardtanh"])
@pytest.mark.parametrize("x0", [-1.0, 1.0])
def test_antiderivative_gradient_at_unit_seam(name, x0):
    # the reported case, spelled out: |x| = 1 exactly, Python float and both dtypes
    act = ox.get_activation(name)
    for x in (x0, jnp.float32(x0), jnp.float64(x0)):
        assert float(jax.grad(act.antiderivative)(x)) == float(act.fn(x))


@pytest.mark.parametrize("dtype_name", DTYPES)
@pytest.mark.parametrize("name", ox.ACTIVATIONS)
def test_second_derivative_is_sigma_prime(name, dtype_name):
    dtype, _ = DTYPES[dtype_name]
    act = ox.get_activation(name)
    xs = _grid(dtype)
    x = jnp.asarray(xs, dtype)
    d2phi = jax.vmap(jax.grad(jax.grad(act.antiderivative)))(x)
    d2phi_fwd = jax.vmap(jax.jacfwd(jax.grad(act.antiderivative)))(x)
    dsig = act.derivative(x)
    dsig_rev = jax.vmap(jax.grad(act.fn))(x)
    for how, v in {"grad grad Phi": d2phi, "jacfwd grad Phi": d2phi_fwd,
                   "derivative": dsig, "grad sigma": dsig_rev}.items():
        assert v.dtype == dtype, how
        assert np.all(np.isfinite(np.asarray(v))), how  # finite everywhere, kinks too
    away = np.ones(xs.shape, bool)
    for k in KINKS.get(name, ()):
        away &= np.abs(xs.astype(np.float64) - k) > 1e-3
    ref = DSIGMA_REF[name](xs.astype(np.float64))[away]
    # sigma' = 1 - tanh^2 (jax's rule) loses relative accuracy where it is small: an
    # absolute floor of a few ulp(1) of the dtype
    atol = 1e-15 if dtype == jnp.float64 else 1e-6
    rtol = 1e-12 if dtype == jnp.float64 else 2e-6
    for how, v in {"grad grad Phi": d2phi, "derivative": dsig, "grad sigma": dsig_rev}.items():
        np.testing.assert_allclose(np.asarray(v, np.float64)[away], ref, rtol=rtol, atol=atol,
                                   err_msg=how)


@pytest.mark.parametrize("dtype_name", DTYPES)
@pytest.mark.parametrize("name", ox.ACTIVATIONS)
def test_antiderivative_values_at_seams(name, dtype_name):
    # the custom derivative leaves the values alone: Phi at and around every seam matches
    # the closed forms (log cosh, x^2/2 | |x| - 1/2, |x| - log(1 + |x|), softplus - log 2,
    # max(x, 0)^2 / 2, 1 - cos x, ...)
    dtype, _ = DTYPES[dtype_name]
    act = ox.get_activation(name)
    xs = _grid(dtype)
    got = act.antiderivative(jnp.asarray(xs, dtype))
    assert got.dtype == dtype
    ref = CLOSED_FORM_PHI[name](xs.astype(np.float64))
    rtol = 1e-12 if dtype == jnp.float64 else 2e-6
    # Phi(tiny) ~ tiny^2 / 2 underflows: an absolute floor at the smallest normal number
    np.testing.assert_allclose(np.asarray(got, np.float64), ref, rtol=rtol,
                               atol=np.finfo(dtype).tiny)
    assert float(act.antiderivative(jnp.zeros((), dtype))) == 0.0


@pytest.mark.parametrize("name", ox.ACTIVATIONS)
def test_antiderivative_matches_closed_form_float64(name):
    act = ox.get_activation(name)
    mag = np.logspace(-4, 4, 161)
    x = np.concatenate([-mag[::-1], [0.0], mag])
    got = np.asarray(act.antiderivative(jnp.asarray(x, jnp.float64)))
    ref = CLOSED_FORM_PHI[name](x)
    # relative to the value itself (not to max(1, |Phi|)): small states must keep
    # full accuracy, or invariant drift at small amplitude is noise.
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("name", ox.ACTIVATIONS)
def test_antiderivative_float32_large_and_small(name):
    act = ox.get_activation(name)
    mag = np.logspace(-4, 4, 161).astype(np.float32)
    x32 = np.concatenate([-mag[::-1], [np.float32(0.0)], mag])
    got = act.antiderivative(jnp.asarray(x32))
    assert got.dtype == jnp.float32
    got = np.asarray(got, np.float64)
    assert np.all(np.isfinite(got))
    ref = CLOSED_FORM_PHI[name](x32.astype(np.float64))  # same inputs, float64 and better
    np.testing.assert_allclose(got, ref, rtol=2e-6, atol=1e-30)


@pytest.mark.parametrize("name", ["tanh", "rectified_tanh", "softsign", "sigmoid"])
def test_antiderivative_float32_no_overflow_far_out(name):
    act = ox.get_activation(name)
    x = jnp.array([1e4, 1e6, 1e30, 3e38], jnp.float32)
    got = np.asarray(act.antiderivative(x), np.float64)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, CLOSED_FORM_PHI[name](np.asarray(x, np.float64)), rtol=2e-6)
    g = jax.vmap(jax.grad(act.antiderivative))(x)
    assert np.all(np.isfinite(np.asarray(g)))


@pytest.mark.parametrize("name", ox.ACTIVATIONS)
def test_builtin_flags(name):
    act = ox.get_activation(name)
    assert (act.odd, act.bounded, act.continuous) == BUILTIN_FLAGS[name]
    assert act.exact
    assert act.name == name


@pytest.mark.parametrize("name", ox.ACTIVATIONS)
def test_builtin_flags_agree_with_numerical_check(name):
    # Wrapping a built-in's fn as a user function runs the numerical flag check; it must
    # reach the same verdict as the hand-written table.
    fn = ox.get_activation(name).fn
    user = ox.get_activation(lambda x: fn(x))
    assert not user.exact
    assert (user.odd, user.bounded, user.continuous) == BUILTIN_FLAGS[name]


@pytest.mark.parametrize("name", ox.ACTIVATIONS)
def test_builtin_fn_is_odd_when_flagged(name):
    act = ox.get_activation(name)
    x = jnp.linspace(0.1, 5.0, 50)
    is_odd = bool(jnp.allclose(act.fn(-x), -act.fn(x), rtol=0, atol=1e-14))
    assert is_odd == act.odd
    # odd sigma <=> even Phi
    is_even = bool(jnp.allclose(act.antiderivative(-x), act.antiderivative(x), atol=1e-14))
    assert is_even == act.odd


USER_CASES = [
    # (fn, closed-form Phi, (odd, bounded, continuous))
    (lambda x: x / (1 + x**2), lambda x: 0.5 * np.log1p(x**2), (True, True, True)),
    (jnp.arctan, lambda x: x * np.arctan(x) - 0.5 * np.log1p(x**2), (True, True, True)),
    (lambda x: jnp.maximum(x, 0), lambda x: 0.5 * np.maximum(x, 0) ** 2, (False, False, True)),
    (jnp.sign, np.abs, (True, True, False)),
    (lambda x: x**3, lambda x: x**4 / 4, (True, False, True)),
]


@pytest.mark.parametrize("fn, phi, flags", USER_CASES, ids=["rational", "arctan", "relu",
                                                            "sign", "cube"])
def test_user_function(fn, phi, flags):
    act = ox.get_activation(fn)
    assert isinstance(act, ox.Activation)
    assert not act.exact
    assert (act.odd, act.bounded, act.continuous) == flags
    x = np.linspace(-5.0, 5.0, 201)
    got = np.asarray(act.antiderivative(jnp.asarray(x)))
    np.testing.assert_allclose(got, phi(x), rtol=1e-6, atol=1e-6)
    assert float(act.antiderivative(0.0)) == 0.0
    np.testing.assert_array_equal(act(jnp.asarray(x)), fn(jnp.asarray(x)))
    # batched input keeps its shape
    xb = jnp.asarray(x).reshape(3, 67)
    assert act.antiderivative(xb).shape == (3, 67)
    # the same callable gives the same Activation (checked once)
    assert ox.get_activation(fn) is act


def test_user_antiderivative_gradient_is_fn():
    act = ox.get_activation(jnp.arctan)
    x = jnp.linspace(-4.0, 4.0, 81)
    np.testing.assert_allclose(jax.vmap(jax.grad(act.antiderivative))(x), jnp.arctan(x),
                               rtol=1e-9, atol=1e-12)


def test_user_antiderivative_integer_input():
    act = ox.get_activation(jnp.arctan)
    np.testing.assert_allclose(float(act.antiderivative(2)),
                               2 * math.atan(2) - 0.5 * math.log(5.0), rtol=1e-10)
    np.testing.assert_allclose(act.antiderivative(jnp.array([1, -3])),
                               [math.atan(1) - 0.5 * math.log(2.0),
                                3 * math.atan(3) - 0.5 * math.log(10.0)], rtol=1e-10)


def test_user_antiderivative_float32():
    act = ox.get_activation(jnp.arctan)
    x = jnp.linspace(-5.0, 5.0, 101, dtype=jnp.float32)
    got = act.antiderivative(x)
    assert got.dtype == jnp.float32
    xd = np.asarray(x, np.float64)
    np.testing.assert_allclose(got, xd * np.arctan(xd) - 0.5 * np.log1p(xd**2), rtol=1e-5,
                               atol=1e-6)


def test_user_function_in_a_field_conserves_invariant():
    A = ox.skew_from_frequencies([1.0, 0.5])
    field = ox.PostActivation(A, jnp.arctan)
    tr = ox.simulate(field, jnp.array([1.0, -0.5, 0.3, 2.0]), dt=0.01, steps=500,
                     solver="rk4", save_every=50)
    # rk4's own drift is ~h^4 = 1e-8; a wrong quadrature antiderivative drifts far more
    assert float(jnp.max(tr.invariant_drift())) < 1e-7


def test_user_function_non_finite_is_rejected():
    with pytest.raises(ValueError, match="`activation` must be an elementwise function"):
        ox.get_activation(lambda x: 1.0 / x)


def test_derivative_method():
    act = ox.get_activation("tanh")
    x = jnp.linspace(-3.0, 3.0, 31)
    np.testing.assert_allclose(act.derivative(x), 1 - jnp.tanh(x) ** 2, rtol=1e-13)


@pytest.mark.parametrize("spelling", ["tanh", "TANH", " Tanh "])
def test_lookup_normalises_names(spelling):
    assert ox.get_activation(spelling) is ox.get_activation("tanh")


def test_lookup_accepts_dashes():
    assert ox.get_activation("leaky-relu") is ox.get_activation("leaky_relu")


def test_activation_passes_through():
    act = ox.get_activation("erf")
    assert ox.get_activation(act) is act


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="`activation` must be one of") as info:
        ox.get_activation("tahn")
    msg = str(info.value)
    assert "'tahn'" in msg
    for name in ox.ACTIVATIONS:
        assert name in msg


@pytest.mark.parametrize("bad", [3, None, 1.5])
def test_non_callable_rejected(bad):
    with pytest.raises(ValueError, match="`activation` must be a name"):
        ox.get_activation(bad)
