"""The API boundary of `ox.simulate`: step counts beyond int32, memory beyond what can be
stored, complex or non-numeric inputs and a `t1` that no step fits are refused up front, with
the argument, what was received and the fix."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import oscillax as ox


@pytest.fixture(scope="module")
def field():
    return ox.PostActivation(ox.random_skew(jax.random.key(0), 4), "tanh")


X0 = np.ones(4)


@pytest.mark.parametrize("kw, phrase", [
    (dict(dt=0.1, steps=2**31), r"`steps` must be at most 2\*\*31 - 1 .*int32.*got 2147483648"),
    (dict(dt=0.1, steps=4294967301), r"`steps` must be at most 2\*\*31 - 1"),
    (dict(dt=1e-9, t1=1e9), r"`t1` needs t1 / dt = 1e\+18 steps.*2\*\*31 - 1.*larger `dt`"),
    (dict(dt=1.0, t1=1e-12), r"`t1` is far below dt = 1\.0.*no step fits.*got 1e-12"),
    (dict(dt=0.1 + 1j, steps=3), r"`dt` must be a real positive finite.*got \(0\.1\+1j\)"),
    (dict(dt="0.1", steps=3), r"`dt` must be a positive finite"),
    (dict(dt=0.1, t1="1"), r"`t1` must be a positive finite end time; got '1'"),
    (dict(dt=0.1, t1=1 + 1j), r"`t1` must be a positive finite end time"),
    (dict(dt=0.1, steps=10**9, save_every=1),
     r"`save_every=1` with 1,000,000,000 steps would save 1,000,000,001 states.*GiB.*save less "
     r"often: save_every >= "),
])
def test_simulate_refuses(field, kw, phrase):
    with pytest.raises(ValueError, match=phrase):
        ox.simulate(field, X0, **kw)


def test_memory_estimate(field):
    x0 = np.ones((4096, 4))
    with pytest.raises(ValueError, match=r"GiB, above the 8 GiB limit; save less often"):
        ox.simulate(field, x0, dt=0.1, steps=10**6, save_every=10)


def test_complex_and_string_x0(field):
    with pytest.raises(ValueError, match=r"`x0` must be real; got a complex array.*x0\.real"):
        ox.simulate(field, X0 + 1j, dt=0.1, steps=3)
    with pytest.raises(ValueError, match=r"`x0` must be an array of real numbers, shape \(4,\)"):
        ox.simulate(field, "abcd", dt=0.1, steps=3)
    with pytest.raises(ValueError, match=r"`x0` must be an array of real numbers"):
        ox.simulate(field, [["a"] * 4], dt=0.1, steps=3)


def test_bounds_are_not_too_tight(field):
    tr = ox.simulate(field, X0, dt=0.1, steps=10**5, save_every=10**4)
    assert tr.xs.shape == (11, 4) and tr.steps == 10**5
    tr = ox.simulate(field, X0, dt=1.0, t1=0.25)  # one shortened step
    assert tr.steps == 1 and float(tr.ts[-1]) == 0.25
    tr = ox.simulate(field, jnp.ones(4, jnp.int32), dt=0.1, steps=2)  # integers are cast
    assert jnp.issubdtype(tr.xs.dtype, jnp.floating)


def test_fit_dt_too_large_for_the_window_names_dt():
    t = np.linspace(0.0, 30.0, 300)
    with pytest.raises(ValueError, match=r"`dt` = 100 is too large for the training window"):
        ox.fit(t, np.sin(t), dt=100.0, iterations=2)


def test_fit_takes_a_tiny_signal_and_refuses_a_constant_one():
    t = np.linspace(0.0, 30.0, 300)
    res = ox.fit(t, 1e-13 * np.sin(t), iterations=2, restarts=1)
    assert np.all(np.isfinite(res.frequencies))
    with pytest.raises(ValueError, match="is constant over the training part"):
        ox.fit(t, np.full_like(t, 5.0), iterations=2)
