"""Activations: Phi(0) = 0 and Phi' = sigma, accurate antiderivatives, flags, user functions."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import BUILTIN_FLAGS, CLOSED_FORM_PHI

import oscillax as ox


def test_builtin_table_is_complete():
    # A new built-in must get a row in the expected flags and closed forms.
    assert set(ox.ACTIVATIONS) == set(BUILTIN_FLAGS) == set(CLOSED_FORM_PHI)


@pytest.mark.parametrize("name", ox.ACTIVATIONS)
def test_antiderivative_vanishes_at_zero(name):
    act = ox.get_activation(name)
    for dtype in (jnp.float32, jnp.float64):
        assert float(act.antiderivative(jnp.zeros((), dtype))) == 0.0
        assert float(act.fn(jnp.zeros((), dtype))) == (0.5 if name == "sigmoid" else 0.0)


@pytest.mark.parametrize("name", ox.ACTIVATIONS)
def test_antiderivative_derivative_is_fn(name):
    act = ox.get_activation(name)
    x = jnp.concatenate([jnp.linspace(-8.0, 8.0, 321), jnp.array([-1e-6, 1e-6, 25.0, -25.0])])
    dphi = jax.vmap(jax.grad(act.antiderivative))(x)
    np.testing.assert_allclose(dphi, act.fn(x), rtol=1e-12, atol=1e-14)


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
