"""The cases of a sweep: the random skew matrix, start and bias of each trajectory, and
the inputs of one chunk's engine call.

A trajectory's A, x0 direction and bias direction depend only on (spec.seed, dim, seed):
the key `fold_in(fold_in(PRNGKey(spec.seed), dim), seed)` is split into one key for W
(A = W − Wᵀ, scaled to the spectral radius) and one for the x0 direction; the bias
direction comes from `fold_in(key, BIAS_STREAM)` (so adding biases to a spec leaves its A
and x0 as they were), and is drawn only when the spec has a nonzero bias. The samples are
drawn in float32 by one vmapped call per chunk and rescaled in float64 numpy, so a case
does not depend on JAX's x64 mode, the device, the chunking or how many cases are drawn
together. x0 and b are a unit direction times the row's amplitude / bias norm, rounded
once to the spec's dtype (`_scaled`), the same way in a chunk and in `case`.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

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


BIAS_STREAM = 0x62696173
"""`fold_in` tag of the bias direction's key ("bias" in ASCII)."""


@functools.partial(jax.jit, static_argnums=(2,))
def _draw_bias(root, seeds, dim: int):
    """float32 bias directions (S, dim) for `seeds` (S,) (unnormalised normal samples)."""

    def one(s):
        key = jax.random.fold_in(jax.random.fold_in(root, dim), s)
        return jax.random.normal(jax.random.fold_in(key, BIAS_STREAM), (dim,), jnp.float32)

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
        A = A * (spec.spectral_radius / _skew_norm(A))[:, None, None]
    d = np.asarray(d[:S], np.float64)
    d = d / np.linalg.norm(d, axis=1, keepdims=True)
    return A.astype(dtype), d.astype(dtype)


def _skew_norm(A):
    """The spectral norms of skew matrices `(S, n, n)` (float64): |a| in closed form for
    n = 2 (A = [[0, a], [-a, 0]]; the SVD costs ~2.6 s per million), the SVD otherwise."""
    if A.shape[-1] == 2:
        return np.abs(A[:, 0, 1])
    return np.linalg.norm(A, 2, axis=(1, 2))


CASE_TABLE_ENTRIES = 1 << 24
"""`CaseTable` draws a dimension's cases up front when they hold at most this many numbers
(seeds x (n^2 + 2n)); larger ones are drawn chunk by chunk."""


CASE_TABLE_BLOCK = 1 << 16
"""Seeds drawn per call while building a `CaseTable`."""


class CaseTable:
    """Every case of a sweep (A, x0 direction and bias direction of each (dim, seed)),
    drawn once before the engine starts, for `chunk_inputs`.

    The same numbers as drawing them chunk by chunk (`case_arrays` depends only on the
    seeds), but no JAX call is made while the engine runs: a call on the CPU queues behind
    the running engine call, so drawing a chunk's cases then waited for it and the next
    call started late."""

    def __init__(self, spec: SweepSpec):
        dtype = np.dtype(spec.dtype)
        seeds = np.arange(spec.seeds)
        self._by_dim = {}
        for dim in dict.fromkeys(spec.dims):
            if spec.seeds * (dim * dim + 2 * dim) <= CASE_TABLE_ENTRIES:
                # in blocks of seeds, so the float64 intermediates of a million cases never
                # exist at once (only the dtype results are kept)
                A = np.empty((spec.seeds, dim, dim), dtype)
                d = np.empty((spec.seeds, dim), dtype)
                b = np.empty((spec.seeds, dim), dtype) if spec.has_bias else None
                for lo in range(0, spec.seeds, CASE_TABLE_BLOCK):
                    part = seeds[lo:lo + CASE_TABLE_BLOCK]
                    A[lo:lo + part.size], d[lo:lo + part.size] = case_arrays(spec, dim, part,
                                                                            dtype)
                    if b is not None:
                        b[lo:lo + part.size] = bias_directions(spec, dim, part, dtype)
                self._by_dim[dim] = (A, d, b)

    def get(self, spec: SweepSpec, dim: int, seeds):
        """`(A (S, dim, dim), x0 directions (S, dim), bias directions (S, dim) or None)` for
        the unique `seeds` `(S,)`."""
        got = self._by_dim.get(dim)
        if got is None:
            dtype = np.dtype(spec.dtype)
            A, d = case_arrays(spec, dim, seeds, dtype)
            b = bias_directions(spec, dim, seeds, dtype) if spec.has_bias else None
            return A, d, b
        A, d, b = got
        return A[seeds], d[seeds], None if b is None else b[seeds]


def bias_directions(spec: SweepSpec, dim: int, seeds, dtype):
    """Unit bias directions `(S, dim)` for the seeds `(S,)` (independent of A and x0)."""
    seeds = np.asarray(seeds, np.int64).reshape(-1)
    S = seeds.size
    padded = np.zeros(_bucket(S), np.uint32)
    padded[:S] = seeds
    v = np.asarray(jax.device_get(_draw_bias(jax.random.PRNGKey(spec.seed), padded,
                                             int(dim)))[:S], np.float64)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(dtype)


def _scaled(directions, norms, dtype):
    """Directions `(n, B)` (dtype) times norms `(B,)`, in float64, rounded once to dtype."""
    return (np.asarray(directions, np.float64) * np.asarray(norms, np.float64)).astype(dtype)


class FieldArrays(NamedTuple):
    """A chunk's field arrays: A `(n, n)` shared or `(n, n, B)` per member; gamma `(B,)`
    and bias `(n, B)` per member, or None when every one in the spec is 0."""

    A: np.ndarray
    gamma: np.ndarray | None
    bias: np.ndarray | None


def _by_position(rows) -> bool:
    """Whether `rows` (indexed by traj_id) holds traj_id i at position i."""
    idx = rows.index
    n = len(idx)
    return (n > 0 and idx.is_monotonic_increasing and idx[0] == 0 and idx[-1] == n - 1
            and idx.is_unique)


def chunk_inputs(spec: SweepSpec, chunk, rows, cases: CaseTable | None = None):
    """One chunk's rows and its engine inputs in the chunk's member order (padding: a
    0-step copy of the chunk's first member): `(sel, arrays, X0, h, steps, thr)`, numpy
    with the batch on the last axis (`arrays`: `FieldArrays`); `sel` holds the real
    members' rows, in member order. `cases`: the sweep's `CaseTable` (None: drawn here)."""
    dtype = np.dtype(spec.dtype)
    real = chunk.traj_ids >= 0
    ids = np.where(real, chunk.traj_ids, chunk.traj_ids[real][0])
    # rows by traj_id: a grid's rows are in traj_id order from 0, so by position (a label
    # lookup of every member cost more than the rest of the chunk's inputs)
    full = rows.take(ids) if _by_position(rows) else rows.loc[ids]
    seeds = full["seed"].to_numpy()
    uniq, inverse = np.unique(seeds, return_inverse=True)
    if cases is None:
        A_u, d_u = case_arrays(spec, chunk.dim, uniq, dtype)
        b_u = bias_directions(spec, chunk.dim, uniq, dtype) if spec.has_bias else None
    else:
        A_u, d_u, b_u = cases.get(spec, chunk.dim, uniq)
    X0 = _scaled(d_u[inverse].T, full["amplitude"].to_numpy()[None, :], dtype)  # (n, B)
    shared = chunk.dim > SMALL_N
    A = A_u[0] if shared else np.moveaxis(A_u[inverse], 0, -1)  # (n, n) or (n, n, B)
    gamma = full["gamma"].to_numpy().astype(dtype) if spec.has_gamma else None
    bias = None
    if spec.has_bias:
        bias = _scaled(b_u[inverse].T, full["bias"].to_numpy()[None, :], dtype)  # (n, B)
    h = full["dt"].to_numpy()
    steps = np.where(real, full["steps"].to_numpy(), 0)
    norm0 = np.linalg.norm(X0.astype(np.float64), axis=0)
    thr = spec.thresholds.divergence_threshold * np.maximum(norm0, 1.0)
    thr = np.minimum(thr, np.finfo(dtype).max).astype(dtype)
    return (full[real], FieldArrays(A, gamma, bias), X0, h.astype(dtype),
            steps.astype(np.int32), thr)


def batch_field(spec: SweepSpec, chunk, A, gamma=None, bias=None) -> BatchField:
    """The engine's field for a chunk's program (its segments of forms and activations);
    `gamma` `(B,)` / `bias` `(n, B)` per member, None when all are 0."""
    acts = tuple(get_activation(a) for a in spec.activations)
    segments = tuple((f, spec.activations.index(a)) for f, a in chunk.segments)
    return BatchField(A, acts, segments, chunk.seg_width, gamma, bias)


def case(spec: SweepSpec, row) -> dict:
    """Rebuild one trajectory of a sweep so it can be re-run with `ox.simulate`.

    **Arguments:** `spec` and a row of the result table (a mapping with the axis columns,
    e.g. `result.to_dataframe().iloc[i]`).

    **Returns:** `dict(field=..., x0=..., dt=..., steps=..., solver=...)`:
    `ox.simulate(c["field"], c["x0"], dt=c["dt"], steps=c["steps"], solver=c["solver"])`
    reproduces the row's trajectory. The field carries the row's bias (None when its norm
    is 0) and, for the pre form, its diffusion `gamma` (columns `bias`, `gamma`; a row
    without them, from before they existed, has neither).
    """
    dtype = np.dtype(spec.dtype)
    dim, seed = int(row["dim"]), int(row["seed"])
    A, d = case_arrays(spec, dim, [seed], dtype)
    dt = float(row["dt"])
    gamma, bias_norm = float(row.get("gamma", 0.0)), float(row.get("bias", 0.0))
    bias = None
    if bias_norm != 0.0:
        bias = jnp.asarray(_scaled(bias_directions(spec, dim, [seed], dtype)[0], bias_norm,
                                   dtype))
    kw = dict(gamma=gamma) if row["form"] == "pre" else {}
    if gamma != 0.0 and row["form"] != "pre":
        raise ValueError(f"a {row['form']!r} row cannot have gamma = {gamma!r}: only the pre "
                         "form has a diffusion term.")
    return dict(
        field=FORMS[row["form"]](jnp.asarray(A[0]), row["activation"], bias=bias,
                                 check_skew=False, **kw),
        x0=jnp.asarray(_scaled(d[0], row["amplitude"], dtype)),
        dt=np.asarray(dt, dtype),
        steps=int(spec.steps_for(dt)),
        solver=row["solver"],
    )
