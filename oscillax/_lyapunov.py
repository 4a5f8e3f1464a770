"""Lyapunov spectra of flows, of the solvers' own maps, and of discrete maps (Benettin/QR).

Along a trajectory of the map $x_{j+1} = \\Psi(x_j)$ (one solver step of size `dt`, the
exact flow over `dt` for an adaptive solver, or a user's map), $k$ tangent vectors are
pushed forward by the Jacobian $D\\Psi(x_j)$ (forward-mode JVP through one step) and
renormalised every `renorm_every` steps by an upper-triangular factor; the exponents are the
time averages of $\\log |R_{ii}|$ of the accumulated triangular factor:

$$\\lambda_i = \\frac{1}{N\\,\\Delta t} \\sum_{\\text{blocks}} \\log |R_{ii}|.$$

Everything runs in the engine's layout: states `(n, B)` and tangents `(k, n, B)`, batch on
the minor axis, so one solver step advances the whole batch, and the renormalisation is a
Gram-Schmidt pass written as elementwise operations across the batch (see the comment above
`_fast_renormalise`: no per-member LAPACK call in the loop). Memory is $O(nkB)$ whatever
the number of steps; only a few running estimates are kept (`checkpoints`).
"""

from __future__ import annotations

import operator
from collections.abc import Callable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from ._engine import ENGINE_COMPILER_OPTIONS
from ._field import SMALL_N, AbstractField, AbstractSkewField, PostActivation, VectorField
from ._solver import ADAPTIVE_SOLVERS, AbstractFixedSolver, Euler, get_solver

# Running estimates kept for judging convergence (log-spaced in the measured steps).
N_CHECKPOINTS = 8


class IteratedMap(eqx.Module):
    """A discrete map $x_{j+1} = f(x_j)$ on states `(n,)`, for `ox.lyapunov_spectrum`
    (exponents are then per iterate).

    **Arguments:**
    - `fn`: `fn(x) -> x_next`, `(n,) -> (n,)`, differentiable by JAX. A function or an
      `eqx.Module` (its arrays are traced, so a map can be vmapped over parameters).

    ```python
    henon = ox.IteratedMap(lambda x: jnp.stack([1 - 1.4 * x[0] ** 2 + x[1], 0.3 * x[0]]))
    ox.lyapunov_spectrum(henon, jnp.zeros(2), steps=10_000, transient=100).exponents
    ```
    """

    fn: Callable

    def __init__(self, fn: Callable):
        if not callable(fn):
            raise ValueError(
                f"`fn` must be a function x -> x_next on states (n,); got {type(fn).__name__}."
            )
        self.fn = fn

    def __call__(self, x):
        return self.fn(x)


class LyapunovSpectrum(eqx.Module):
    """Result of `ox.lyapunov_spectrum`.

    - `exponents`: `(k,)`, or `(B, k)` for a batch, largest first; per unit time for flows
      and solver maps, per iterate for an `IteratedMap`.
    - `checkpoints`: the running estimates at a few (log-spaced) points of the measured run,
      `(m, k)` or `(B, m, k)`, columns in the order of `exponents`; the last row equals
      `exponents`. Their spread over the last rows tells whether `steps` was enough.
    - `times`: `(m,)` elapsed time (iterates for a map) at each checkpoint, from the end of
      the transient.
    - `state`: final state `(n,)` or `(B, n)`.
    - `per`: `"time"` or `"iterate"`, the unit of the exponents.
    """

    exponents: Float[Array, "*batch k"]
    checkpoints: Float[Array, "*batch m k"]
    times: Float[Array, " m"]
    state: Float[Array, "*batch n"]
    per: str = eqx.field(static=True)

    @property
    def sum(self) -> Float[Array, "*batch"]:
        """Sum of the exponents: the mean rate of volume growth when `k = n`
        ($\\operatorname{tr} J$ on average for a flow, mean $\\log|\\det D\\Psi|$ for a map).
        With a fixed-step solver the map is the solver's, so the sum is its volume growth, not
        the flow's: for Lorenz (10, 28, 8/3) with rk4 at dt = 0.01 the rk4 map's mean
        $\\log|\\det D\\Psi| / dt$ is $-13.66656$, $1.0 \\times 10^{-4}$ above the flow's
        $-(\\sigma + 1 + \\beta)$, and the spectrum sums to it (to $10^{-13}$ on the same
        orbit); an adaptive solver (the flow) gives $-13.666667$ to $\\sim 10^{-11}$."""
        return jnp.sum(self.exponents, axis=-1)

    @property
    def largest(self) -> Float[Array, "*batch"]:
        """The largest exponent."""
        return self.exponents[..., 0]


class _Carry(eqx.Module):
    """Loop state: states, tangents, and the accumulated $\\sum \\log |R_{ii}|$ of the
    triangular factors applied so far, `log_r + ln 2 * twos` (see `_renormalise`);
    `redo` marks members whose last cheap renormalisation must be completed exactly."""

    X: Float[Array, "n B"]
    V: Float[Array, "k n B"]
    log_r: Float[Array, "k B"]
    twos: Int[Array, "k B"]
    redo: Bool[Array, " B"]


# --------------------------------------------------------------------------- renormalisation
#
# Benettin's method needs the flag of subspaces span(v_1..v_j) and the diagonal of the
# triangular factors, not an exactly orthonormal Q at every step: if the tangents are
# renormalised by ANY upper-triangular T_1, T_2, ..., then D_N...D_1 V_0 = V_N (T_1...T_N)^-1
# and diag R of the product is diag R(V_N) / prod diag T_i, exactly. So each renormalisation
# applies a cheap T (one pass of Gram-Schmidt against the Gram matrix of the pushed tangents,
# columns scaled by powers of two so the logarithm is an integer count), and an exact QR is
# done only at the checkpoints, where the running estimate is read. T only has to keep the
# tangents well conditioned; when they had turned too far towards each other for one pass
# (some cosine above _COS_MAX), an exact QR completes it before the next step (`_complete`).
# On CPU the cheap pass is a few fused elementwise kernels, where a QR per member (LAPACK,
# what a per-trajectory vmap of jnp.linalg.qr does) costs ~10x the whole step.

_COS_MAX = 0.5


def _gram(U, W=None):
    """$G_{ij} = \\langle u_i, w_j \\rangle$ per member for tangents `(a, n, B)` and
    `(b, n, B)` (W defaults to U): `(a, b, B)` (an unrolled sum over n: one fused kernel;
    `jnp.sum` or einsum are slower here)."""
    W = U if W is None else W
    n = U.shape[1]
    G = U[:, 0][:, None, :] * W[:, 0][None, :, :]
    for m in range(1, n):
        G = G + U[:, m][:, None, :] * W[:, m][None, :, :]
    return G


# From this many tangents on, the Gram matrix is computed in blocks of rows, each against the
# columns from its own first row on (the blocks to the lower left, transposes of ones already
# formed, are skipped): two halves from SPLIT_GRAM_K, three thirds from SPLIT_GRAM_K3 (at
# k = 8: rows 0-2, 3-5, 6-7, 43 of the 64 products instead of 48). Each block stays one fused
# kernel. Measured (k = n = 8, B = 256, XLA:CPU): one (8, 8) kernel -> two halves 15 -> 11 us
# of a ~65 us step; thirds another ~1 us. A packed triangle (rolled indices, a stack of pair
# sums, or a concatenation of rows of unequal length) made XLA recompute the products inside
# their consumers, split them into one kernel per row, or emit a per-element branch: several
# times slower.
SPLIT_GRAM_K = 4
SPLIT_GRAM_K3 = 6


def _gram_blocks(V):
    """The entries $G_{ij}$, $i \\le j$, that a Gram-Schmidt pass needs, for tangents
    `(k, n, B)`: a list of `(G_block, first_row)` where `G_block` `(r, k - first_row, B)` holds
    rows `first_row ... first_row + r - 1` against columns `first_row ... k - 1`."""
    k = V.shape[0]
    if k < SPLIT_GRAM_K:
        return [(_gram(V), 0)]
    parts = 3 if k >= SPLIT_GRAM_K3 else 2
    size = -(-k // parts)
    firsts = list(range(0, k, size))
    return [(_gram(V[a:a + size], V[a:]), a) for a in firsts]


_FLOAT_BITS = {  # dtype: (same-width integer, mantissa bits, exponent bias)
    jnp.dtype(jnp.float64): (jnp.int64, 52, 1023),
    jnp.dtype(jnp.float32): (jnp.int32, 23, 127),
    jnp.dtype(jnp.float16): (jnp.int16, 10, 15),
    jnp.dtype(jnp.bfloat16): (jnp.int16, 7, 127),
}


def _half_exponent_scale(d):
    """For $d > 0$: an integer s with $d\\,4^{-s} \\in [1, 4)$ and the exact power of two
    $2^{-s}$, read off d's exponent bits (no sqrt, log or division)."""
    itype, mbits, bias = _FLOAT_BITS[jnp.dtype(d.dtype)]
    expo = (jax.lax.bitcast_convert_type(d, itype) >> mbits) - bias  # floor(log2 d)
    s = expo >> 1
    scale = jax.lax.bitcast_convert_type((bias - s) << mbits, d.dtype)
    return s.astype(jnp.int32), scale


def _fast_renormalise(V):
    """One Gram-Schmidt pass against the Gram matrix, $q_j = 2^{-s_j}(v_j - \\sum_{i<j}
    (G_{ij}/G_{ii}) v_i)$ with $2^{s_j} \\approx \\|v_j\\|$: an upper-triangular T with
    diagonal $2^{-s_j}$ (exact, and its log is $-s_j \\ln 2$). Exact Gram-Schmidt when the
    earlier v_i are orthogonal, first-order accurate otherwise. Returns Q, s `(k, B)` and
    whether a member's tangents were too far from orthogonal for one pass `(B,)`."""
    k, n, B = V.shape
    if n > SMALL_N or k > SMALL_N:
        return _fast_renormalise_large(V)
    blocks = _gram_blocks(V)

    def block_of(i):  # the block holding row i, and its first row
        return next((G, r) for G, r in reversed(blocks) if i >= r)

    def g(i, j):  # G_ij for i <= j
        G, r = block_of(i)
        return G[i - r, j - r]

    diag = jnp.stack([g(j, j) for j in range(k)])  # (k, B)
    safe = jnp.where(diag > 0, diag, 1)
    s, scale = _half_exponent_scale(safe)
    # C[i, j] = G_ij / G_ii (used for i < j), per block; the division (one kernel for all
    # rows, as XLA would rewrite G / G_ii anyway) keeps C its own small kernel instead of
    # being recomputed inside the (k, n, B) update below
    inv = 1 / safe
    Cs = [(G * inv[r:r + G.shape[0], None, :], r) for G, r in blocks]

    def c(i, j):
        C, r = next((C, r) for C, r in reversed(Cs) if i >= r)
        return C[i - r, j - r]

    # cos^2 of the angle between v_i and v_j above _COS_MAX^2, for some pair (elementwise
    # over pairs: a reduction over the (k, k) axes would be a separate, slower kernel)
    lim = _COS_MAX**2 * diag
    too_far = jnp.zeros(B, bool)
    for i in range(k):
        for j in range(i + 1, k):
            too_far = too_far | (g(i, j) * g(i, j) > lim[i] * diag[j])
    qs = []  # column by column, only the i < j terms
    for j in range(k):
        q = V[j]
        for i in range(j):
            q = q - c(i, j)[None, :] * V[i]
        qs.append(q * scale[j][None, :])
    return jnp.stack(qs), s, too_far


def _fast_renormalise_large(V):
    """`_fast_renormalise` with matrix products (large n or k)."""
    k, n, B = V.shape
    G = jnp.einsum("imb,jmb->ijb", V, V)
    idx = jnp.arange(k)
    diag = G[idx, idx]
    safe = jnp.where(diag > 0, diag, 1)
    s, scale = _half_exponent_scale(safe)
    upper = (idx[:, None] < idx[None, :])[:, :, None]
    C = jnp.where(upper, G / safe[:, None, :], 0)
    too_far = jnp.any(upper & (G * G > _COS_MAX**2 * diag[:, None, :] * diag[None, :, :]),
                      axis=(0, 1))
    Q = (V - jnp.einsum("ijb,imb->jmb", C, V)) * scale[:, None, :]
    return Q, s, too_far


def _exact_qr(V):
    """Q `(k, n, B)` and $\\log |R_{jj}|$ `(k, B)` of $V = QR$ (Householder, LAPACK on CPU)."""
    Q, R = jnp.linalg.qr(jnp.transpose(V, (2, 1, 0)))  # (B, n, k), (B, k, k)
    log_r = jnp.log(jnp.abs(jnp.diagonal(R, axis1=1, axis2=2))).T
    return jnp.transpose(Q, (2, 1, 0)), log_r


def _renormalise(c: _Carry) -> _Carry:
    """The cheap renormalisation; members whose tangents had turned too far towards each
    other for it to orthonormalise them in one pass are marked for `_complete`."""
    Q, s, too_far = _fast_renormalise(c.V)
    return _Carry(c.X, Q, c.log_r, c.twos + s, too_far)


def _complete(c: _Carry) -> _Carry:
    """Exact QR of the marked members' tangents (already cheaply renormalised: any
    triangular factor keeps the bookkeeping exact). A while loop that runs at most once,
    not a cond: under jax.vmap a cond computes both branches for everyone, a while loop
    runs its body only when some member needs it."""

    def body(state):
        V, log_r, redo = state
        Qe, le = _exact_qr(V)
        V = jnp.where(redo[None, None, :], Qe, V)
        log_r = jnp.where(redo[None, :], log_r + le, log_r)
        return V, log_r, jnp.zeros_like(redo)

    V, log_r, redo = jax.lax.while_loop(lambda s: jnp.any(s[2]), body, (c.V, c.log_r, c.redo))
    return _Carry(c.X, V, log_r, c.twos, redo)


def _exact_renormalise(c: _Carry) -> _Carry:
    """Exact QR, folding the powers of two into `log_r` (where estimates are read)."""
    Q, le = _exact_qr(c.V)
    log_r = c.log_r + le + jnp.log(jnp.asarray(2, c.log_r.dtype)) * c.twos.astype(c.log_r.dtype)
    return _Carry(c.X, Q, log_r, jnp.zeros_like(c.twos), jnp.zeros_like(c.redo))


# --------------------------------------------------------------------------- tangent maps


def _push_tangents(step, X, V):
    """$(\\Psi(X), D\\Psi(X) V)$ for a step map on `(n, B)`; V `(k, n, B)`. The step is
    evaluated once; only its JVP is batched over the k tangent vectors."""

    def one(v):
        return jax.jvp(step, (X,), (v,))

    return jax.vmap(one, in_axes=0, out_axes=(None, 0))(V)


def _tangent_matvec(A, W):
    """$A w$ for each of the k tangents W `(k, n, B)`, A shared `(n, n)` or per member
    `(n, n, B)`: an unrolled sum over n for small n, as `matvec`."""
    n = W.shape[1]
    if n > SMALL_N:
        spec = "im,kmb->kib" if A.ndim == 2 else "imb,kmb->kib"
        return jnp.einsum(spec, A, W)
    A3 = A[:, :, None] if A.ndim == 2 else A
    out = A3[None, :, 0] * W[:, 0][:, None]
    for m in range(1, n):
        out = out + A3[None, :, m] * W[:, m][:, None]
    return out


def _slope(activation, X):
    """$\\sigma'(X)$; for tanh from the value, $1 - \\tanh^2$ (the step's own tanh, shared
    by XLA), one operation fewer than the JVP rule's $(1 + \\tanh)(1 - \\tanh)$. That matters
    because XLA recomputes it inside every term of the tangent contraction. Its absolute
    error stays at the rounding of 1, like the JVP's, which is what the tangents see."""
    if activation.fn is jnp.tanh:
        s = jnp.tanh(X)
        return 1 - s * s
    return activation.derivative(X)


def _euler_post_tangent_step(field, solver, args):
    """Euler on the post form, $x' = x + h(A\\sigma(x) + \\ldots)$: the step is the solver's own
    (the same orbit bit for bit), its tangent $v' = (I + hA\\,\\mathrm{diag}\\,\\sigma'(x))\\,v$ is
    written out. The Jacobian $M = I + hA\\,\\mathrm{diag}\\,\\sigma'(x)$ `(n, n, B)` is formed once
    per step (one small kernel), then each row of the pushed tangents is
    $v'_i = M_{ii} v_i + \\sum_{m \\ne i} M_{im} v_m$ over the k tangents at once: one
    multiply-add with two loads per term, where contracting $hA$ with $\\sigma'(x) \\odot v$
    inside the kernel (the JVP's form) recomputes that product in every term. The rows are
    stacked and kept out of the consumers by an optimisation barrier (without it XLA fuses the
    whole push into each Gram kernel of the renormalisation and recomputes it there, ~5x
    slower). Measured at k = n = 8, B = 256 (XLA:CPU, default vector width): the push 24 ->
    15.5 us plus 3.8 us for M, ~10% of the whole step. For large n, one einsum per step."""
    n_big = field.A.shape[0] > SMALL_N

    def advance(t, X, V, h):
        slope = _slope(field.activation, X)
        X1 = solver.step(field, t, X, h, args)
        if n_big:
            return X1, V + h * _tangent_matvec(field.A, V * slope[None])
        n = X.shape[0]
        A = field.A[:, :, None] if field.A.ndim == 2 else field.A
        M = (h * A) * slope[None] + jnp.eye(n, dtype=slope.dtype)[:, :, None]  # (i, m, B)
        rows = []
        for i in range(n):  # row i of every pushed tangent, (k, B); the diagonal term first
            r = M[i, i][None] * V[:, i]
            for m in range(n):
                if m != i:
                    r = r + M[i, m][None] * V[:, m]
            rows.append(r)
        return X1, jax.lax.optimization_barrier(jnp.stack(rows, axis=1))

    return advance


def _fixed_tangent_step(field, solver, args):
    """The solver's own `step_and_tangent` (a JVP for explicit methods; implicit midpoint
    differentiates its converged equation, not its Newton iterations), batched over the k
    tangent vectors with the step itself evaluated once."""
    if isinstance(solver, Euler) and isinstance(field, PostActivation) and not field.dense:
        return _euler_post_tangent_step(field, solver, args)

    def advance(t, X, V, h):
        return jax.vmap(lambda v: solver.step_and_tangent(field, t, X, v, h, args),
                        in_axes=0, out_axes=(None, 0))(V)

    return advance


def _map_tangent_step(fmap):
    batched = jax.vmap(fmap, in_axes=1, out_axes=1)

    def advance(t, X, V, h):
        return _push_tangents(batched, X, V)

    return advance


def _adaptive_tangent_step(field, solver_name, args, rtol, atol, max_steps):
    """The exact flow over one interval of length h with the variational equation
    $\\dot V = J(x) V$ alongside, by diffrax (one adaptive solve per interval and member)."""
    solver = ADAPTIVE_SOLVERS[solver_name]()

    def vf(t, y, args):
        x, V = y  # (n,), (k, n)
        fx = lambda z: field(t, z, args)
        return jax.vmap(lambda v: jax.jvp(fx, (x,), (v,)), in_axes=0, out_axes=(None, 0))(V)

    term = diffrax.ODETerm(vf)

    def one(t, x, V, h):
        sol = diffrax.diffeqsolve(
            term, solver, t0=t, t1=t + h, dt0=None, y0=(x, V), args=args,
            saveat=diffrax.SaveAt(t1=True),
            stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
            max_steps=max_steps,
        )
        x1, V1 = sol.ys
        return x1[0], V1[0]

    def advance(t, X, V, h):
        return jax.vmap(one, in_axes=(None, 1, 2, None), out_axes=(1, 2))(t, X, V, h)

    return advance


# --------------------------------------------------------------------------- the loop


def _checkpoint_blocks(n_blocks: int) -> np.ndarray:
    """Block counts (cumulative) at which running estimates are recorded: log-spaced,
    distinct, the last one `n_blocks`."""
    c = np.unique(np.round(np.geomspace(1, n_blocks, N_CHECKPOINTS)).astype(np.int64))
    return c[c >= 1]


def _make_advance(system, args, solver, rtol, atol, max_steps):
    if isinstance(system, IteratedMap):
        return _map_tangent_step(system)
    if isinstance(solver, AbstractFixedSolver):
        return _fixed_tangent_step(system, solver, args)
    return _adaptive_tangent_step(system, solver, args, rtol, atol, max_steps)


def _measure(system, args, X0, V0, h, *, solver, rtol, atol, max_steps, steps, transient,
             renorm_every):
    """Final carry and the accumulated $\\sum\\log|R_{ii}|$ at the checkpoints `(m, k, B)`."""
    advance = _make_advance(system, args, solver, rtol, atol, max_steps)
    k, B = V0.shape[0], V0.shape[2]

    # The time of step i is i * h (from the start of the transient); it is derived from the
    # loop indices (dead code for autonomous fields) instead of being carried.
    def tangent_step(XV, i):
        return advance(i.astype(h.dtype) * h, *XV, h)

    def run_steps(c: _Carry, first, length: int) -> _Carry:
        if length == 1:
            X, V = tangent_step((c.X, c.V), first)
        else:
            # only (X, V) in the loop; not unrolled: XLA would fuse consecutive steps into
            # one kernel that recomputes each step's tangents n times over
            X, V = jax.lax.fori_loop(0, length, lambda s, XV: tangent_step(XV, first + s),
                                     (c.X, c.V))
        return _Carry(X, V, c.log_r, c.twos, c.redo)

    def block(c: _Carry, first) -> _Carry:
        return _renormalise(run_steps(_complete(c), first, renorm_every))

    zeros = jnp.zeros((k, B), V0.dtype)
    c = _Carry(X0, V0, zeros, jnp.zeros((k, B), jnp.int32), jnp.zeros(B, bool))

    # Transient: the state settles on the attractor and the tangents align with the
    # Oseledets directions (renormalised as in the measurement); its growth is dropped.
    t_blocks, t_rem = divmod(transient, renorm_every)
    if t_rem:
        c = run_steps(c, jnp.int32(0), t_rem)
    n_blocks, rem = divmod(steps, renorm_every)
    ends = _checkpoint_blocks(n_blocks) if n_blocks else np.zeros(0, np.int64)
    # segment 0 is the transient, then one segment per checkpoint; each ends with an exact QR
    seg_len = np.concatenate([[t_blocks], np.diff(np.concatenate([[0], ends]))])
    seg_first = t_rem + renorm_every * np.concatenate([[0], np.cumsum(seg_len)[:-1]])

    def segment(c: _Carry, xs):
        j, first, length = xs
        c = jax.lax.fori_loop(0, length, lambda b, c: block(c, first + b * renorm_every), c)
        c = _exact_renormalise(c)
        c = _Carry(c.X, c.V, jnp.where(j == 0, zeros, c.log_r), c.twos, c.redo)
        return c, c.log_r

    xs = (jnp.arange(len(seg_len)), jnp.asarray(seg_first, jnp.int32),
          jnp.asarray(seg_len, jnp.int32))
    c, saved = jax.lax.scan(segment, c, xs)
    saved = saved[1:]
    if rem:
        c = _exact_renormalise(run_steps(c, jnp.int32(transient + steps - rem), rem))
        saved = jnp.concatenate([saved, c.log_r[None]], axis=0)
    return c, saved


_measure_nested = eqx.filter_jit(_measure)
# 512-bit vectors on AVX-512 CPUs, ~25% on an Euler step here; compiler options are only
# allowed on a top-level jit, so calls inside a user's jit (or another transformation) use
# the plain one (a user's own jit can pass ENGINE_COMPILER_OPTIONS itself)
_measure_top = eqx.filter_jit(_measure, compiler_options=ENGINE_COMPILER_OPTIONS)


def _measure_jit(*inputs, **static):
    traced = any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(inputs))
    return (_measure_nested if traced else _measure_top)(*inputs, **static)


def _run(system, args, X0, V0, h, **static):
    """`_measure`, batched natively under `jax.vmap`.

    vmapping over states, or over skew fields that differ only in A (the common sweep:
    `jax.vmap(lambda A, x: lyapunov_spectrum(ox.PostActivation(A, ...), x, ...))`), folds
    the vmapped axis into the engine's own minor batch axis (A as `(n, n, B)`, which the
    fields support), instead of vmapping every step's small arrays: ~3x faster on CPU.
    Anything else is vmapped as usual."""
    dyn, stat = eqx.partition((system, args), eqx.is_array)
    # custom_vmap gets the array leaves only: with the None leaves that `eqx.partition`
    # leaves, its JVP rule (jax.vmap of jax.jvp, jax.jacfwd) fails an internal assertion
    # (jax-ml/jax#9066)
    leaves, tree = jax.tree.flatten((dyn, X0, V0, h))

    def call(dyn, X0, V0, h):
        system, args = eqx.combine(dyn, stat)
        return _measure_jit(system, args, X0, V0, h, **static)

    core = jax.custom_batching.custom_vmap(lambda *leaves: call(*jax.tree.unflatten(tree, leaves)))

    @core.def_vmap
    def _rule(axis_size, in_batched, *leaves):
        if not any(in_batched):  # as under jax.jvp of a vmap over what has no tangent
            out = call(*jax.tree.unflatten(tree, leaves))
            return out, jax.tree.map(lambda _: False, out)
        in_batched = jax.tree.unflatten(tree, in_batched)
        out = _vmap_run(call, stat, static, axis_size, in_batched,
                        *jax.tree.unflatten(tree, leaves))
        return out, jax.tree.map(lambda _: True, out)

    return core(*leaves)


def _vmap_run(call, stat, static, size, in_batched, dyn, X0, V0, h):
    (sys_b, args_b), X0_b, V0_b, h_b = in_batched
    system, args = eqx.combine(dyn, stat)
    sys_batched = [leaf for leaf in jax.tree.leaves(sys_b) if leaf]
    only_A = (
        isinstance(system, AbstractSkewField)
        and system.A.ndim == 3  # batched (size, n, n), not already per member
        and sys_b.A
        and not any(jax.tree.leaves(eqx.tree_at(lambda f: f.A, sys_b, False)))
    )
    # an adaptive solve is vmapped over members with the field closed over, so a field
    # whose A is per member (n, n, B) cannot be folded in: vmap it as usual
    adaptive = isinstance(static["solver"], str)
    native = (not h_b and not any(jax.tree.leaves(args_b))
              and (not sys_batched or (only_A and not adaptive)))
    if not native:
        axes = jax.tree.map(lambda b: 0 if b else None, in_batched)
        return jax.vmap(call, in_axes=axes)(dyn, X0, V0, h)

    B = X0.shape[-1]

    def fold(x, batched):  # (size, ..., B) or (..., B) -> (..., size * B)
        if not batched:
            x = jnp.broadcast_to(x, (size, *x.shape))
        return jnp.moveaxis(x, 0, -2).reshape(*x.shape[1:-1], size * B)

    if sys_batched:
        A = jnp.repeat(jnp.moveaxis(system.A, 0, -1), B, axis=-1)  # (n, n, size * B)
        system = eqx.tree_at(lambda f: f.A, system, A)
    out = _measure_jit(system, args, fold(X0, X0_b), fold(V0, V0_b), h, **static)

    def unfold(x):  # (..., size * B) -> (size, ..., B)
        return jnp.moveaxis(x.reshape(*x.shape[:-1], size, B), -2, 0)

    return jax.tree.map(unfold, out)


def _checkpoint_steps(steps: int, renorm_every: int) -> np.ndarray:
    n_blocks, rem = divmod(steps, renorm_every)
    ends = _checkpoint_blocks(n_blocks) * renorm_every if n_blocks else np.zeros(0, np.int64)
    if rem:
        ends = np.concatenate([ends, [steps]])
    return ends


# --------------------------------------------------------------------------- public API


def _int_arg(name, value, minimum):
    if isinstance(value, bool):
        raise ValueError(f"`{name}` must be an integer >= {minimum}; got {value!r}.")
    try:
        v = operator.index(value)
    except TypeError:
        raise ValueError(f"`{name}` must be an integer >= {minimum}; got {value!r}.") from None
    if v < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}; got {value!r}.")
    return v


def _concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _checked(system, x0, dt, k, args):
    """Validate the system, states, `k` and `dt`; returns `(system, x0, n, k, is_map, h,
    dtype)` with the system wrapped (`VectorField`) and `h` the step (1 for a map)."""
    is_map = isinstance(system, IteratedMap)
    if not is_map and not isinstance(system, AbstractField):
        if not callable(system):
            raise ValueError(
                "`system` must be an oscillax field, a vector field f(t, x, args), or "
                f"ox.IteratedMap(fn); got {type(system).__name__}."
            )
        system = VectorField(system)

    x0 = jnp.asarray(x0)
    if not jnp.issubdtype(x0.dtype, jnp.floating):
        x0 = x0.astype(jnp.result_type(float))
    if x0.ndim not in (1, 2) or x0.shape[-1] == 0 or (x0.ndim == 2 and x0.shape[0] == 0):
        raise ValueError(
            f"`x0` must be one state (n,) or a batch (B, n) with n, B >= 1; got shape "
            f"{tuple(x0.shape)}."
        )
    n = x0.shape[-1]
    field_n = getattr(system, "n", None) if not is_map else None
    if isinstance(field_n, int) and field_n != n:
        raise ValueError(
            f"`x0` has {n} components per state but the field is {field_n}-dimensional; "
            f"pass x0 of shape ({field_n},) or (B, {field_n})."
        )
    if _concrete(x0) and not np.all(np.isfinite(np.asarray(x0))):
        raise ValueError("`x0` contains NaN or inf; pass finite initial states.")

    k = n if k is None else _int_arg("k", k, 1)
    if k > n:
        raise ValueError(f"`k` must be at most the dimension n = {n}; got {k}.")

    if is_map:
        if dt is not None:
            raise ValueError(
                "`dt` is not used with ox.IteratedMap (its exponents are per iterate); "
                f"got dt={dt!r}. Leave dt out."
            )
        h = jnp.asarray(1.0, x0.dtype)
    else:
        if dt is None:
            raise ValueError(
                "`dt` is required for a vector field: the step of the solver map (or the "
                "sampling interval of the flow for an adaptive solver), e.g. dt=0.01."
            )
        if isinstance(dt, (bool, str)):
            raise ValueError(f"`dt` must be a positive finite scalar; got {dt!r}.")
        if _concrete(dt):
            d = np.asarray(dt)
            if d.shape != () or not np.isfinite(d) or d <= 0:
                raise ValueError(f"`dt` must be a positive finite scalar, e.g. 0.01; got {dt!r}.")
        h = jnp.asarray(dt)

    # the dtype the system computes in, for states of x0's dtype; and its output shape
    what = "map" if is_map else "vector field"
    state = jax.ShapeDtypeStruct((n,), x0.dtype)
    try:
        if is_map:
            probe = jax.eval_shape(system, state)
        else:
            probe = jax.eval_shape(lambda x: system(jnp.zeros((), x0.dtype), x, args), state)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"the {what} failed on a state of shape ({n},) (x0's last axis): {err}. It must "
            "map a state (n,) to an array of the same shape."
        ) from err
    if probe.shape != (n,):
        raise ValueError(
            f"the {what} returned shape {tuple(probe.shape)} for a state of shape ({n},); it "
            "must return the same shape as the state."
        )
    dtype = jnp.result_type(x0.dtype, probe.dtype)
    h = h.astype(dtype)
    if not _concrete(h):
        h = eqx.error_if(h, ~(h > 0) | ~jnp.isfinite(h), "`dt` must be positive and finite")

    return system, x0, n, k, is_map, h, dtype


def lyapunov_spectrum(
    system,
    x0,
    *,
    dt=None,
    steps: int,
    solver: str = "rk4",
    k: int | None = None,
    renorm_every: int = 1,
    transient: int = 0,
    args=None,
    basis=None,
    rtol: float | None = None,
    atol: float | None = None,
    max_steps: int = 4096,
) -> LyapunovSpectrum:
    """Lyapunov spectrum of a flow, of a solver's map, or of a discrete map (QR method).

    With a vector field, the map measured is $x \\mapsto \\Psi_{dt}(x)$ given by `solver`: for
    a fixed-step solver that is the numerical method itself (Euler on $\\dot x = Ax$, $A$
    skew, gives $\\ln(1 + h^2\\omega^2)/(2h)$, not the flow's 0); an adaptive solver
    (diffrax, with the variational equation) measures the exact flow. Exponents are
    $\\lambda_i = \\frac{1}{T}\\sum \\log |R_{ii}|$ of the triangular factors of the
    renormalisations (Benettin's QR method; a cheap triangular pass in the loop, exact QR at
    the checkpoints, the same numbers to rounding).

    **Arguments:**
    - `system`: an oscillax field (`ox.PreActivation`, `ox.PostActivation`,
      `ox.VectorField`), any vector field `f(t, x, args)` on `(n,)` (diffrax's convention),
      or an `ox.IteratedMap`.
    - `x0`: initial state `(n,)`, or a batch `(B, n)` measured together.
    - `dt`: the step (fixed-step solvers) or the sampling interval of the flow (adaptive);
      required for vector fields, not accepted for maps. May be traced.
    - `steps`: measured steps (iterates), after the transient.
    - `solver`: `"euler"`, `"heun"`, `"midpoint"`, `"rk4"`, `"implicit_midpoint"`, or
      `"tsit5"`, `"dopri5"`, `"dopri8"` (flow). Unused for maps.
    - `k`: number of exponents (largest first), `1 <= k <= n`; default n.
    - `renorm_every`: steps between renormalisations (keep
      $e^{(\\lambda_1 - \\lambda_k)\\,dt\\,\\text{renorm\\_every}}$ well inside the float range).
      Every step is the default and, in this implementation, about as fast as any other.
    - `transient`: steps run first, with the tangents aligned, and discarded.
    - `args`: passed to the field.
    - `basis`: initial tangent vectors `(n, k)` (orthonormalised); default a fixed random
      basis (`jax.random.normal(jax.random.key(0), (n, k))`).
    - `rtol`, `atol`, `max_steps`: adaptive solvers only (defaults 1e-10 in float64, 1e-6 in
      float32; `max_steps` per interval `dt`).

    **Returns:** a `LyapunovSpectrum` (`exponents`, `checkpoints`, `times`, `state`).

    Memory is $O(nkB)$ for any `steps`. Works under `jax.jit` and `jax.vmap` (over fields,
    states, `dt`; vmapping states or the A of skew fields runs as one native batch);
    forward-mode differentiable (`jax.jvp`, `jax.jacfwd`, and either under `jax.vmap`), not
    reverse-mode (the loops are while loops).

    ```python
    lorenz = lambda t, x, a: jnp.stack([10 * (x[1] - x[0]), x[0] * (28 - x[2]) - x[1],
                                        x[0] * x[1] - 8 / 3 * x[2]])
    res = ox.lyapunov_spectrum(lorenz, jnp.ones(3), dt=0.01, steps=100_000, transient=10_000)
    res.exponents  # ~ (0.906, 0.0, -14.57)
    res.sum  # -13.66656: the rk4 map's mean log|det|/dt; the flow's -(10 + 1 + 8/3) = -13.66667
    # is what solver="dopri8" (the flow with its variational equation) sums to
    ```
    """
    steps = _int_arg("steps", steps, 1)
    renorm_every = _int_arg("renorm_every", renorm_every, 1)
    transient = _int_arg("transient", transient, 0)

    system, x0, n, k, is_map, h, dtype = _checked(system, x0, dt, k, args)

    single = x0.ndim == 1
    X0 = (x0[:, None] if single else x0.T).astype(dtype)
    B = X0.shape[1]

    if basis is None:
        basis = jax.random.normal(jax.random.key(0), (n, k), dtype)
    basis = jnp.asarray(basis, dtype)
    if basis.shape != (n, k):
        raise ValueError(f"`basis` must have shape (n, k) = ({n}, {k}); got {basis.shape}.")
    V0, _ = _exact_qr(jnp.broadcast_to(basis.T[:, :, None], (k, n, B)))

    solver_obj = None if is_map else get_solver(solver)
    if isinstance(solver_obj, str):  # adaptive: the flow
        f64 = dtype == jnp.float64
        rtol = float((1e-10 if f64 else 1e-6) if rtol is None else rtol)
        atol = float((1e-10 if f64 else 1e-6) if atol is None else atol)
        max_steps = _int_arg("max_steps", max_steps, 1)
    else:
        rtol = atol = max_steps = None
    if is_map and args is not None:
        raise ValueError(
            "`args` is not used with ox.IteratedMap; close over parameters in `fn` (or make "
            "`fn` an eqx.Module holding them)."
        )

    c, saved = _run(
        system, args, X0, V0, h, solver=solver_obj, rtol=rtol, atol=atol,
        max_steps=max_steps, steps=steps, transient=transient, renorm_every=renorm_every,
    )

    ends = _checkpoint_steps(steps, renorm_every)
    times = jnp.asarray(ends, dtype) * h
    est = saved / times[:, None, None]  # (m, k, B)
    est = jnp.moveaxis(est, 2, 0)  # (B, m, k)
    order = jnp.argsort(-est[:, -1, :], axis=-1)  # largest first, by the final estimate
    est = jnp.take_along_axis(est, order[:, None, :], axis=-1)
    exponents = est[:, -1, :]
    state = c.X.T
    if single:
        exponents, est, state = exponents[0], est[0], state[0]
    return LyapunovSpectrum(
        exponents=exponents,
        checkpoints=est,
        times=times,
        state=state,
        per="iterate" if is_map else "time",
    )
