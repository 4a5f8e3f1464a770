"""Skew-symmetric constructors: exactly skew, the right spectrum, the right radius."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import oscillax as ox


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("n", [1, 2, 5, 16])
def test_skew_is_exactly_skew(getkey, n, dtype):
    W = jax.random.normal(getkey(), (n, n), dtype)
    A = ox.skew(W)
    assert A.shape == (n, n)
    assert A.dtype == dtype
    np.testing.assert_array_equal(np.asarray(A.T), -np.asarray(A))
    np.testing.assert_array_equal(np.asarray(A), np.asarray(W - W.T))
    np.testing.assert_array_equal(np.diag(np.asarray(A)), 0.0)


def test_skew_eigenvalues_are_imaginary(getkey):
    A = np.asarray(ox.skew(jax.random.normal(getkey(), (7, 7))))
    ev = np.linalg.eigvals(A)
    assert np.max(np.abs(ev.real)) <= 1e-12 * np.max(np.abs(ev))
    # n odd: one zero eigenvalue
    assert np.min(np.abs(ev)) <= 1e-12 * np.max(np.abs(ev))


@pytest.mark.parametrize("shape", [(3,), (2, 3), (2, 2, 2)])
def test_skew_rejects_non_square(shape):
    with pytest.raises(ValueError, match=r"`W` must be a square matrix .*got shape"):
        ox.skew(jnp.zeros(shape))


@pytest.mark.parametrize("zero_block", [False, True])
def test_skew_from_frequencies_spectrum(zero_block):
    omegas = np.array([0.3, 1.0, 2.5, 7.0])
    A = ox.skew_from_frequencies(omegas, zero_block=zero_block)
    m = len(omegas)
    n = 2 * m + int(zero_block)
    assert A.shape == (n, n)
    An = np.asarray(A)
    np.testing.assert_array_equal(An.T, -An)
    ev = np.linalg.eigvals(An)
    np.testing.assert_allclose(ev.real, 0.0, atol=1e-14)
    expected = np.sort(np.concatenate([omegas, -omegas] + ([[0.0]] if zero_block else [])))
    np.testing.assert_allclose(np.sort(ev.imag), expected, atol=1e-13)
    # Each eigen-pair is a coordinate pair: block k acts on (x_2k, x_2k+1) alone.
    for k, w in enumerate(omegas):
        block = An[2 * k : 2 * k + 2, 2 * k : 2 * k + 2]
        np.testing.assert_array_equal(block, [[0.0, -w], [w, 0.0]])
    off = An.copy()
    for k in range(m):
        off[2 * k : 2 * k + 2, 2 * k : 2 * k + 2] = 0.0
    np.testing.assert_array_equal(off, 0.0)


def test_skew_from_frequencies_rotates():
    # d/dt (x0, x1) = (-w x1, w x0): counter-clockwise rotation at angular frequency w.
    A = ox.skew_from_frequencies([2.0])
    np.testing.assert_array_equal(np.asarray(A @ jnp.array([1.0, 0.0])), [0.0, 2.0])


def test_skew_from_frequencies_scalar_and_int():
    A = ox.skew_from_frequencies(3)
    assert A.shape == (2, 2)
    assert jnp.issubdtype(A.dtype, jnp.floating)
    assert float(A[1, 0]) == 3.0


def test_skew_from_frequencies_keeps_float32():
    A = ox.skew_from_frequencies(jnp.array([1.0, 2.0], jnp.float32))
    assert A.dtype == jnp.float32


@pytest.mark.parametrize("bad", [[], [[1.0, 2.0]]])
def test_skew_from_frequencies_rejects_bad_shape(bad):
    with pytest.raises(ValueError, match="`omegas` must be a non-empty 1-D"):
        ox.skew_from_frequencies(jnp.asarray(bad))


@pytest.mark.parametrize("dtype", [None, jnp.float32])
@pytest.mark.parametrize("n", [2, 3, 8, 33])
@pytest.mark.parametrize("radius", [0.5, 10.0])
def test_random_skew_radius(getkey, n, radius, dtype):
    A = ox.random_skew(getkey(), n, spectral_radius=radius, dtype=dtype)
    assert A.shape == (n, n)
    assert A.dtype == (jnp.float64 if dtype is None else dtype)  # x64 is on in this suite
    An = np.asarray(A)
    np.testing.assert_array_equal(An.T, -An)
    ev = np.linalg.eigvals(An.astype(np.float64))
    rtol = 1e-5 if A.dtype == jnp.float32 else 1e-12
    assert np.max(np.abs(ev.real)) <= 10 * rtol * radius
    np.testing.assert_allclose(np.max(np.abs(ev)), radius, rtol=rtol)


def test_random_skew_deterministic_and_key_dependent():
    k1, k2 = jax.random.split(jax.random.key(0))
    np.testing.assert_array_equal(ox.random_skew(k1, 6), ox.random_skew(k1, 6))
    assert not np.array_equal(ox.random_skew(k1, 6), ox.random_skew(k2, 6))


def test_random_skew_n1_is_zero(getkey):
    np.testing.assert_array_equal(ox.random_skew(getkey(), 1), [[0.0]])


@pytest.mark.parametrize("n", [0, -1, 2.0, True, "3"])
def test_random_skew_rejects_bad_n(getkey, n):
    with pytest.raises(ValueError, match="`n` must be a positive integer"):
        ox.random_skew(getkey(), n)


@pytest.mark.parametrize("radius", [0.0, -1.0, float("inf"), float("nan")])
def test_random_skew_rejects_bad_radius(getkey, radius):
    with pytest.raises(ValueError, match="`spectral_radius` must be a positive finite"):
        ox.random_skew(getkey(), 4, spectral_radius=radius)
