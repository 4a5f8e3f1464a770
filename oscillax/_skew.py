"""Skew-symmetric matrices: $A = W - W^\\top$, from frequencies, or random."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float


def skew(W: ArrayLike) -> Float[Array, "n n"]:
    """Skew-symmetric part (times two) of a square matrix: $A = W - W^\\top$.

    **Arguments:**
    - `W`: a square matrix `(n, n)` of free weights.

    **Returns:** `A` with `A.T == -A` exactly (by construction), so its eigenvalues are
    purely imaginary pairs $\\pm i\\omega_k$.

    ```python
    A = ox.skew(jax.random.normal(key, (4, 4)))
    ```
    """
    W = jnp.asarray(W)
    if W.ndim != 2 or W.shape[0] != W.shape[1]:
        raise ValueError(
            f"`W` must be a square matrix (n, n); got shape {tuple(W.shape)}. "
            "Pass the free weights as one square matrix."
        )
    return W - W.T


def skew_from_frequencies(omegas: ArrayLike, *, zero_block: bool = False) -> Float[Array, "n n"]:
    """Block-diagonal skew matrix whose eigen-pairs are $\\pm i\\omega_k$.

    Block $k$ is $\\begin{pmatrix}0 & -\\omega_k\\\\ \\omega_k & 0\\end{pmatrix}$, the
    generator of a rotation at angular frequency $\\omega_k$.

    **Arguments:**
    - `omegas`: `(m,)` angular frequencies.
    - `zero_block`: append one zero row/column (n = 2m + 1; A is then singular).

    **Returns:** `A` of shape `(2m, 2m)` or `(2m + 1, 2m + 1)`.
    """
    omegas = jnp.atleast_1d(jnp.asarray(omegas))
    if omegas.ndim != 1 or omegas.shape[0] == 0:
        raise ValueError(
            f"`omegas` must be a non-empty 1-D list of angular frequencies; got shape "
            f"{tuple(omegas.shape)}."
        )
    if not jnp.issubdtype(omegas.dtype, jnp.floating):
        omegas = omegas.astype(jnp.result_type(float))
    m = omegas.shape[0]
    n = 2 * m + (1 if zero_block else 0)
    A = jnp.zeros((n, n), omegas.dtype)
    idx = jnp.arange(m)
    A = A.at[2 * idx, 2 * idx + 1].set(-omegas)
    A = A.at[2 * idx + 1, 2 * idx].set(omegas)
    return A


def random_skew(
    key: Array, n: int, spectral_radius: float = 1.0, dtype=None
) -> Float[Array, "n n"]:
    """A random skew matrix $W - W^\\top$ ($W$ Gaussian), rescaled to a spectral radius.

    **Arguments:**
    - `key`: a `jax.random` key.
    - `n`: dimension, `n >= 1` (for n = 1 the only skew matrix is 0).
    - `spectral_radius`: largest $|\\omega_k|$ of the result; must be positive.
    - `dtype`: floating dtype (default: JAX's default float).
    """
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"`n` must be a positive integer; got {n!r}.")
    if not np.isfinite(spectral_radius) or spectral_radius <= 0:
        raise ValueError(
            f"`spectral_radius` must be a positive finite number; got {spectral_radius!r}."
        )
    dtype = jnp.result_type(float) if dtype is None else dtype
    W = jax.random.normal(key, (n, n), dtype)
    A = W - W.T
    if n == 1:
        return A
    # The eigenvalues of a real skew matrix are i * (singular values), so the spectral
    # radius is the largest singular value: a stable, real computation.
    rho = jnp.linalg.norm(A, ord=2)
    return A * (spectral_radius / rho)


def skew_asymmetry(A: ArrayLike) -> float:
    """Relative departure from skew-symmetry, $\\max|A + A^\\top| / \\max(\\max|A|, 1)$."""
    A = np.asarray(A, dtype=np.float64)
    return float(np.max(np.abs(A + A.T)) / max(np.max(np.abs(A)), 1.0))
