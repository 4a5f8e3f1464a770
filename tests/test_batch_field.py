"""The sweep's `BatchField` (every form and activation side by side in one program) computes
for each member exactly what that member's own `PreActivation` / `PostActivation` computes;
the sweep's vectorised case draws equal the per-seed draws."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import oscillax as ox
from oscillax._sweep._batch_field import BatchField
from oscillax._sweep._cases import case_arrays

ACTS = ("identity", "tanh", "hardtanh", "softsign", "rectified_tanh", "relu", "sigmoid")


def _batch(forms, n=3, w=2, seed=0):
    segments = tuple((f, i) for f in forms for i in range(len(ACTS)))
    B = len(segments) * w
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((B, n, n))
    A = np.moveaxis(W - np.swapaxes(W, 1, 2), 0, -1)  # (n, n, B)
    X = rng.standard_normal((n, B)) * 1.5
    field = BatchField(jnp.asarray(A), tuple(ox.get_activation(a) for a in ACTS), segments, w)
    members = [segments[b // w] for b in range(B)]
    return field, A, X, members


@pytest.mark.parametrize("forms", [("pre",), ("post",), ("pre", "post")])
def test_each_member_is_its_own_field(forms):
    field, A, X, members = _batch(forms)
    rhs = np.asarray(field.rhs(jnp.asarray(X)))
    jac = np.asarray(field.jacobian(jnp.asarray(X)))
    rj_f, rj_j = (np.asarray(v) for v in field.rhs_and_jacobian(jnp.asarray(X)))
    inv = np.asarray(field.invariant(jnp.asarray(X.T)))
    use = field.uses_invariant(X.shape[1])
    for b, (form, a) in enumerate(members):
        own = ox.FORMS[form](jnp.asarray(A[:, :, b]), ACTS[a], check_skew=False)
        x = jnp.asarray(X[:, b:b + 1])
        np.testing.assert_array_equal(rhs[:, b], np.asarray(own.rhs(x))[:, 0])
        np.testing.assert_allclose(jac[:, :, b], np.asarray(own.jacobian(x))[:, :, 0],
                                   rtol=1e-12, atol=1e-14)
        np.testing.assert_array_equal(rj_f[:, b], rhs[:, b])
        np.testing.assert_array_equal(rj_j[:, :, b], jac[:, :, b])
        np.testing.assert_allclose(inv[b], float(own.invariant(x[:, 0])), rtol=1e-12)
        assert bool(use[b]) == own.activation.odd


def test_vectorised_case_draws_equal_the_per_seed_scheme():
    spec = ox.SweepSpec(spectral_radius=2.5, seed=7)
    seeds = [0, 1, 5, 17, 1000]
    for dim in (2, 3, 40):
        A, d = case_arrays(spec, dim, seeds, np.float32)
        for i, s in enumerate(seeds):
            key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(spec.seed), dim), s)
            ka, kx = jax.random.split(key)
            W = np.asarray(jax.random.normal(ka, (dim, dim), jnp.float32), np.float64)
            ref = W - W.T
            ref = ref * (spec.spectral_radius / np.linalg.norm(ref, 2))
            v = np.asarray(jax.random.normal(kx, (dim,), jnp.float32), np.float64)
            np.testing.assert_array_equal(A[i], ref.astype(np.float32))
            np.testing.assert_array_equal(d[i], (v / np.linalg.norm(v)).astype(np.float32))
