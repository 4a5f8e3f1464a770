"""The cases of a sweep: the random skew matrix and start of each trajectory, and the
inputs of one chunk's engine call.

A trajectory's A and x0 direction depend only on (spec.seed, dim, seed): the key
`fold_in(fold_in(PRNGKey(spec.seed), dim), seed)` is split into one key for W (A = W − Wᵀ,
scaled to the spectral radius) and one for the direction. The samples are drawn in float32
by one vmapped call per chunk and rescaled in float64 numpy, so a case does not depend on
JAX's x64 mode, the device, the chunking or how many cases are drawn together.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from .._activation import get_activation
from .._field import FORMS, SMALL_N
from ._batch_field import BatchField
from ._spec import SweepSpec


@functools.partial(jax.jit, static_argnums=(2,))
def _draw(root, seeds, dim: int):
    """float32 samples (W (S, dim, dim), direction (S, dim)) for `seeds` (S,)."""

    def one(s):
        ka, kx = jax.random.split(jax.random.fold_in(jax.random.fold_in(root, dim), s))
        return (jax.random.normal(ka, (dim, dim), jnp.float32),
                jax.random.normal(kx, (dim,), jnp.float32))

    return jax.vmap(one)(seeds)


def _bucket(n: int) -> int:
    """Pad the number of seeds drawn at once to a power of two (few compilations)."""
    return 1 << max(int(n) - 1, 0).bit_length()


def case_arrays(spec: SweepSpec, dim: int, seeds, dtype):
    """A `(S, dim, dim)` and unit x0 directions `(S, dim)` for the seeds `(S,)`."""
    seeds = np.asarray(seeds, np.int64).reshape(-1)
    S = seeds.size
    padded = np.zeros(_bucket(S), np.uint32)
    padded[:S] = seeds
    W, d = jax.device_get(_draw(jax.random.PRNGKey(spec.seed), padded, int(dim)))
    W = np.asarray(W[:S], np.float64)
    A = W - np.swapaxes(W, 1, 2)
    if dim > 1:
        A = A * (spec.spectral_radius / np.linalg.norm(A, 2, axis=(1, 2)))[:, None, None]
    d = np.asarray(d[:S], np.float64)
    d = d / np.linalg.norm(d, axis=1, keepdims=True)
    return A.astype(dtype), d.astype(dtype)


def chunk_inputs(spec: SweepSpec, chunk, rows):
    """One chunk's rows and its engine inputs in the chunk's member order (padding: a
    0-step copy of the chunk's first member): `(sel, A, X0, h, steps, thr2)`, numpy with
    the batch on the last axis; `sel` holds the real members' rows, in member order."""
    dtype = np.dtype(spec.dtype)
    real = chunk.traj_ids >= 0
    ids = np.where(real, chunk.traj_ids, chunk.traj_ids[real][0])
    full = rows.loc[ids]
    seeds = full["seed"].to_numpy()
    uniq, inverse = np.unique(seeds, return_inverse=True)
    A_u, d_u = case_arrays(spec, chunk.dim, uniq, dtype)
    X0 = (d_u[inverse].T * full["amplitude"].to_numpy()[None, :]).astype(dtype)  # (n, B)
    shared = chunk.dim > SMALL_N
    A = A_u[0] if shared else np.moveaxis(A_u[inverse], 0, -1)  # (n, n) or (n, n, B)
    h = full["dt"].to_numpy()
    steps = np.where(real, full["steps"].to_numpy(), 0)
    norm0 = np.linalg.norm(X0.astype(np.float64), axis=0)
    thr = spec.thresholds.divergence_threshold * np.maximum(norm0, 1.0)
    thr2 = np.minimum(thr * thr, np.finfo(dtype).max).astype(dtype)
    return full[real], A, X0, h.astype(dtype), steps.astype(np.int32), thr2


def batch_field(spec: SweepSpec, chunk, A) -> BatchField:
    """The engine's field for a chunk's program (its segments of forms and activations)."""
    acts = tuple(get_activation(a) for a in spec.activations)
    segments = tuple((f, spec.activations.index(a)) for f, a in chunk.segments)
    return BatchField(A, acts, segments, chunk.seg_width)


def case(spec: SweepSpec, row) -> dict:
    """Rebuild one trajectory of a sweep so it can be re-run with `ox.simulate`.

    **Arguments:** `spec` and a row of the result table (a mapping with the axis columns,
    e.g. `result.to_dataframe().iloc[i]`).

    **Returns:** `dict(field=..., x0=..., dt=..., steps=..., solver=...)`:
    `ox.simulate(c["field"], c["x0"], dt=c["dt"], steps=c["steps"], solver=c["solver"])`
    reproduces the row's trajectory.
    """
    dtype = np.dtype(spec.dtype)
    A, d = case_arrays(spec, int(row["dim"]), [int(row["seed"])], dtype)
    dt = float(row["dt"])
    return dict(
        field=FORMS[row["form"]](jnp.asarray(A[0]), row["activation"], check_skew=False),
        x0=jnp.asarray((d[0] * np.asarray(row["amplitude"], dtype)).astype(dtype)),
        dt=np.asarray(dt, dtype),
        steps=int(spec.steps_for(dt)),
        solver=row["solver"],
    )
