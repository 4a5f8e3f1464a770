"""Streaming monitors: per-trajectory diagnostics measured while integrating, no path stored.

`integrate_monitored` advances a batch (state `(n, B)`, one step size and step count per
trajectory) in nested `lax.while_loop`s whose trip counts come from the step counts (traced
values: no recompilation between chunks). The outer loop runs from one sample point to the
next; at each it evaluates the invariant of the members whose sample is due and
accumulates the reductions below (at least `samples` times per trajectory). It also stops
at every power-of-two step (1, 2, 4, ...: ~log2(steps) stops, most of them block ends
anyway), where log E is recorded for the growth law of a member that blows up between two
samples (`dyadic`). Between stops, the inner loop runs blocks of up to `check_every` steps
with no test inside: every step keeps the sign of the first coordinate as one bit of a
word, from which the block counts the upward zero-crossings (for the period), and
divergence is tested once at the block's end. A member that crossed the threshold in a
block is replayed from the block's start one step at a time, so its step of divergence and
frozen state are exact; the others keep the block. Memory is O(B n) whatever the step count.

The blocks are the engine's (`_engine.advance`, `_engine.exceeds`); `_classify` turns the
result (`MonitorOutput`) into measured columns and a status per trajectory.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._classify import GrowthSums, QuarterMax, WindowSums
from ._engine import ENGINE_COMPILER_OPTIONS, advance
from ._field import AbstractSkewField, sqnorm
from ._solver import AbstractFixedSolver


class MonitorOutput(NamedTuple):
    """Per-trajectory reductions of `integrate_monitored`; every field is `(B,)` but `X`
    `(n, B)`; `sums` holds the growth-rate regression sums."""

    X: jax.Array
    alive: jax.Array
    diverged_at: jax.Array
    n_up: jax.Array
    t_first: jax.Array
    t_last: jax.Array
    max_norm: jax.Array
    norm0: jax.Array
    norm_final: jax.Array
    inv0: jax.Array
    inv_final: jax.Array
    E0: jax.Array
    E_final: jax.Array
    max_drift: jax.Array
    speed0: jax.Array
    speed_final: jax.Array
    sums: GrowthSums
    windows: WindowSums
    quarters: QuarterMax
    dyadic: jax.Array
    """`(DYADIC_ROWS, B)`: log(E/E0) after the steps 1, 2, 4, ..., 2^30 (row j: step 2^j;
    NaN where not reached while below the threshold, or past the member's run): the
    doublings a member frozen at the threshold still has, however few steps it ran
    (independent of its samples, so of its run's length)."""
    map_lyapunov: jax.Array
    """The largest Lyapunov exponent of the solver map per unit time (NaN unless asked)."""


class _Blocks(NamedTuple):
    """The inner loop's carry."""

    k0: jax.Array  # the step the block starts from
    replay_to: jax.Array  # single steps until k0 reaches this
    stop: jax.Array  # the next sample point of any member, or power-of-two step
    X: jax.Array  # (n, B)
    S: jax.Array  # (6, B) int32: ALIVE, DIV, PREV, NUP, KFIRST, KLAST
    replay: jax.Array  # (B,) members that single steps advance
    max_nrm2: jax.Array  # (B,) max of the scaled |x s|^2 at block ends
    quarters: QuarterMax  # the same per quarter of the run
    V: jax.Array | None  # (n, B) unit tangent vector (with `lyapunov`), else None
    lyap: jax.Array | None  # (B,) sum of the log growth of V over the accepted blocks
    lyap_steps: jax.Array | None  # (B,) int32: the steps those blocks span


class _Samples(NamedTuple):
    """The outer loop's monitor carry: the next sample point, the max drift, the
    growth-rate regression sums and the growth-law window sums."""

    next_sample: jax.Array
    max_drift: jax.Array
    sums: GrowthSums
    windows: WindowSums
    dyadic: jax.Array  # (DYADIC_ROWS, B): log(E/E0) at the power-of-two steps
    started: jax.Array  # () bool: the sample at step 0 is taken
    E0: jax.Array  # (B,) the growth measure at step 0 (0 replaced by the tiniest float)
    inv0: jax.Array  # (B,) the invariant at step 0 (0 without one)
    speed0: jax.Array  # (B,) |f(x0)|
    E_final: jax.Array  # (B,) the growth measure after the member's last step
    inv_final: jax.Array  # (B,) the invariant there (NaN without one)
    speed_final: jax.Array  # (B,) |f(x)| there


def _sign_bit(x):
    """1 where the sign bit of `x` is set (x < 0, or -0.0), else 0, as uint32: cheaper per
    step than a comparison and a conversion (the crossing count needs one bit per step)."""
    bits = jax.lax.bitcast_convert_type(x, jnp.uint64 if x.dtype == jnp.float64 else jnp.uint32)
    return (bits >> (bits.dtype.itemsize * 8 - 1)).astype(jnp.uint32)


def _growth_measure(field, X, nrm2, use_inv, inv=None):
    """The invariant (for odd activations, where it is an even, positive 'energy') or
    |x|^2; `use_inv` is a Python bool or one bool per member; `inv`: the invariant at X
    when already evaluated (each evaluation is traced again: 14 segments of a sweep's
    field made tracing a large part of a warm atlas)."""
    if use_inv is False:
        return nrm2
    inv = field.invariant(X.T) if inv is None else inv
    return inv if use_inv is True else jnp.where(use_inv, inv, nrm2)


# Per-member integer state, one (6, B) array (one fused update per block): alive, step of
# divergence (-1), x[0] >= 0 after the last step, upward crossings, and the step indices
# (1-based) of the first and last upward crossing.
ALIVE, DIV, PREV, NUP, KFIRST, KLAST = range(6)

DYADIC_ROWS = 31
"""Rows of `MonitorOutput.dyadic`: the steps 2^0 ... 2^30 (step counts are int32)."""


def _next_power_of_two(k):
    """The first power of two above the step `k` >= 0 (int32 max past 2^30)."""
    bits = 32 - jax.lax.clz(k)  # the bit length of k: 2^bits > k
    return jnp.where(bits >= 31, jnp.iinfo(jnp.int32).max,
                     jnp.left_shift(jnp.int32(1), jnp.minimum(bits, 30)))


class _WithTangent(eqx.Module):
    """A solver step on the pair (x, v) of `(n, B)` arrays: x by the solver, v by its
    derivative (`step_and_tangent`), so that v follows the linearised solver map."""

    solver: AbstractFixedSolver

    def step(self, field, t, XV, h, args=None):
        return self.solver.step_and_tangent(field, t, XV[0], XV[1], h, args)


def _quarters(q: QuarterMax, nrm2, at, end, steps) -> QuarterMax:
    """Fold the scaled |x|^2 of the members `at` a block end `end` into the maxima of the
    quarter of their run that `end` falls in (quarters of each member's own step count;
    comparisons, not products, so large step counts do not overflow)."""
    q4 = at & (end > steps - steps // 4)
    q3 = at & (end > steps // 2) & ~q4
    q1 = at & (end <= steps // 4)
    return QuarterMax(
        q1=jnp.where(q1, jnp.maximum(q.q1, nrm2), q.q1),
        q3=jnp.where(q3, jnp.maximum(q.q3, nrm2), q.q3),
        q4=jnp.where(q4, jnp.maximum(q.q4, nrm2), q.q4),
        n3=q.n3 + q3.astype(q.n3.dtype),
        n4=q.n4 + q4.astype(q.n4.dtype),
    )


def _block(c: _Blocks, *, field, solver, h_row, steps, scale, thr2s, K) -> _Blocks:
    """L steps from k0 with no test inside (`_engine.advance`), then one test.

    L runs to the next multiple of K or the next stop of the outer loop (a sample point or
    a power-of-two step), whichever is first, so no member's run ends inside a block (its
    last step is a sample point) and block ends fall on multiples of K and on the stops.
    Members that stayed below the threshold keep the block. If a member crossed it, the
    others go on from the block's end, and that member alone is replayed from the block's
    start one step at a time (`replay`; rare: once per divergence), which gives the exact
    step of divergence and the frozen state. The solver step appears once in the program.
    The sign of x[0] after each step is kept as one bit of a word, and upward crossings are
    counted from the word."""
    k0, S = c.k0, c.S
    B = S.shape[1]
    single = k0 < c.replay_to
    L = jnp.where(single, 1, jnp.minimum(K - k0 % K, c.stop - k0))
    tangent = c.V is not None
    if tangent:  # (x, v) stepped together; v renormalised once per block
        (X, V), neg = advance(field, _WithTangent(solver), (c.X, c.V), k0, h_row, L,
                              observe=lambda o, XV: (o << 1) | _sign_bit(XV[0][0]),
                              obs=jnp.zeros((B,), jnp.uint32))
        vn = _norm(V)
        V = V / jnp.where(vn > 0, vn, jnp.ones_like(vn))[None, :]
    else:
        X, neg = advance(field, solver, c.X, k0, h_row, L,
                         observe=lambda o, X: (o << 1) | _sign_bit(X[0]),
                         obs=jnp.zeros((B,), jnp.uint32))
    # |x s|^2 with s ~ 1/max(|x0|, 1) per member: scaled before squaring, so that large
    # states (or starts) do not overflow in float32; NaN compares False, so it is bad.
    nrm2 = sqnorm(X * scale[None, :])
    bad = ~(nrm2 <= thr2s)
    run = (S[ALIVE] == 1) & (steps > k0) & (c.replay | ~single)  # advanced members
    ok = run & ~bad
    newly = run & bad & single  # frozen here, at its previous state
    redo = run & bad & ~single  # replayed from k0
    trouble = jnp.any(redo)
    # bit i of `pos` is "x[0] >= 0 after step L-1-i"; its predecessor is bit i+1, and the
    # predecessor of the block's first step is the carried one.
    Lu = L.astype(jnp.uint32)
    pos = ~neg & ((jnp.uint32(1) << Lu) - 1)
    prev = (pos >> 1) | (S[PREV].astype(jnp.uint32) << (Lu - 1))
    up = jnp.where(ok, pos & ~prev, jnp.uint32(0))
    cnt = jax.lax.population_count(up).astype(jnp.int32)
    hi = 31 - jax.lax.clz(up).astype(jnp.int32)  # the block's first crossing
    lo = jax.lax.population_count((up & (~up + 1)) - 1).astype(jnp.int32)  # its last
    end = k0 + L
    boundary = (end % K == 0) | (steps == end)  # the max norm is sampled per K steps
    S = jnp.stack([
        jnp.where(newly, 0, S[ALIVE]),
        jnp.where(newly, end, S[DIV]),
        jnp.where(ok, (pos & 1).astype(jnp.int32), S[PREV]),
        S[NUP] + cnt,
        jnp.where((S[NUP] == 0) & (cnt > 0), end - hi, S[KFIRST]),
        jnp.where(cnt > 0, end - lo, S[KLAST]),
    ])
    return _Blocks(
        k0=jnp.where(trouble, k0, end),
        replay_to=jnp.where(trouble, end, c.replay_to),
        stop=c.stop,
        X=jnp.where(ok[None, :], X, c.X),
        S=S,
        replay=jnp.where(trouble, redo, c.replay),
        # (a frozen member's last state is its final one, counted after the loop)
        max_nrm2=jnp.where(ok & boundary, jnp.maximum(c.max_nrm2, nrm2), c.max_nrm2),
        quarters=_quarters(c.quarters, nrm2, ok & boundary, end, steps),
        V=jnp.where(ok[None, :], V, c.V) if tangent else None,
        lyap=jnp.where(ok, c.lyap + jnp.log(vn), c.lyap) if tangent else None,
        lyap_steps=jnp.where(ok, c.lyap_steps + L, c.lyap_steps) if tangent else None,
    )


def _sample(c: _Blocks, m: _Samples, *, field, h, nrm2_0, use_inv, steps, next_sample,
            scale):
    """Evaluate the invariant and update the growth-rate sums and the growth-law windows
    of the members whose sample point is the current step `c.k0`; at a power-of-two step,
    record log E/E0 of the members still running below the threshold (`dyadic`).

    The first call is at step 0, before any step: it records the start (E0, the invariant,
    |f(x0)|), and each member's sample at its last step records its end. The field's
    invariant and rhs thus appear once in the program, here, instead of also before and
    after the loop (which made the program about twice as large to compile); |f(x)| is
    evaluated only at a call where some member starts or ends (`lax.cond`)."""
    X, k = c.X, c.k0
    dtype = X.dtype
    B = X.shape[1]
    sampled = m.next_sample == k
    nrm2 = sqnorm(X * scale[None, :])
    inv = field.invariant(X.T) if field.has_invariant() else None
    E = _growth_measure(field, X, nrm2, use_inv, inv)
    first = ~m.started
    E0 = jnp.where(first, jnp.where(jnp.abs(E) > 0, E, jnp.finfo(dtype).tiny), m.E0)
    final = steps == k  # the member's last sample (with 0 steps, the one at step 0)
    speed = jax.lax.cond(first | jnp.any(final), lambda: _norm(field.rhs(X)),
                         lambda: jnp.zeros((B,), dtype))
    g = jnp.log(jnp.maximum(E / E0, jnp.finfo(dtype).tiny))
    t = k.astype(dtype) * h
    drift_norm = jnp.abs(jnp.sqrt(nrm2 / nrm2_0) - 1)
    drift = (drift_norm if use_inv is False
             else jnp.where(use_inv, jnp.abs(E - E0) / jnp.abs(E0), drift_norm))
    half = steps // 2
    w1 = (sampled & (k <= half)).astype(dtype)
    w2 = (sampled & (k > half)).astype(dtype)
    nxt = jnp.where(sampled, next_sample(k), m.next_sample)
    s = m.sums
    # growth-law windows (T/8, T/4], (T/4, T/2], (T/2, T]: samples while alive only
    live = sampled & (c.S[ALIVE] == 1)
    d = jnp.expm1(jnp.minimum(g, 80.0))  # E/E0 - 1
    v1 = (live & (k > steps // 8) & (k <= steps // 4)).astype(dtype)
    v2 = (live & (k > steps // 4) & (k <= half)).astype(dtype)
    v3 = (live & (k > half)).astype(dtype)
    w = m.windows
    # after step k = 2^j (a stop of every member's loop, sample point or not): row j
    rec = (k > 0) & ((k & (k - 1)) == 0) & (c.S[ALIVE] == 1) & (steps >= k)
    j = 31 - jax.lax.clz(jnp.maximum(k, 1))  # log2(k)
    row = jax.lax.dynamic_index_in_dim(m.dyadic, j, keepdims=False)
    m = _Samples(
        next_sample=nxt,
        max_drift=jnp.where(sampled, jnp.maximum(m.max_drift, drift), m.max_drift),
        sums=GrowthSums(
            na=s.na + w1, ta=s.ta + w1 * t, ga=s.ga + w1 * g,
            tta=s.tta + w1 * t * t, tga=s.tga + w1 * t * g,
            nb=s.nb + w2, tb=s.tb + w2 * t, gb=s.gb + w2 * g,
            ttb=s.ttb + w2 * t * t, tgb=s.tgb + w2 * t * g),
        windows=WindowSums(
            n1=w.n1 + v1, g1=w.g1 + v1 * g, d1=w.d1 + v1 * d,
            n2=w.n2 + v2, g2=w.g2 + v2 * g, d2=w.d2 + v2 * d,
            n3=w.n3 + v3, g3=w.g3 + v3 * g, d3=w.d3 + v3 * d),
        dyadic=jax.lax.dynamic_update_index_in_dim(m.dyadic, jnp.where(rec, g, row), j, 0),
        started=jnp.asarray(True),
        E0=E0,
        inv0=m.inv0 if inv is None else jnp.where(first, inv, m.inv0),
        speed0=jnp.where(first, speed, m.speed0),
        E_final=jnp.where(final, E, m.E_final),
        inv_final=m.inv_final if inv is None else jnp.where(final, inv, m.inv_final),
        speed_final=jnp.where(final, speed, m.speed_final),
    )
    return c._replace(stop=jnp.minimum(jnp.min(nxt), _next_power_of_two(k))), m


def _norm(Y):
    """|y| per member of `Y` `(n, B)`, scaled by its largest entry before squaring (no
    overflow for large entries, no underflow for small ones)."""
    m = jnp.max(jnp.abs(Y), axis=0)
    m = jnp.where((m > 0) & jnp.isfinite(m), m, jnp.ones_like(m))
    return m * jnp.sqrt(sqnorm(Y / m[None, :]))


def _integrate_monitored(
    field: AbstractSkewField,
    solver: AbstractFixedSolver,
    X0,
    h,
    steps,
    thr,
    *,
    check_every: int = 32,
    samples: int = 64,
    use_invariant=None,
    lyapunov: bool = False,
) -> MonitorOutput:
    """Integrate a batch and return its per-trajectory reductions (`MonitorOutput`).

    **Arguments:**
    - `field`: its `A` is `(n, n)` (shared) or `(n, n, B)` (one matrix per trajectory).
    - `solver`: a fixed-step solver.
    - `X0`: `(n, B)` initial states; `h`: `(B,)` step sizes; `steps`: `(B,)` step counts.
    - `thr`: `(B,)` divergence thresholds on $\\|x\\|$ (compared after scaling by
      1 / max(max_i |x0_i|, 1), so that nothing overflows in float32).
    - `check_every`: block length (1 to 32): steps between divergence tests (a block in
      which a member diverged is replayed with a test every step).
    - `samples`: at least how many times per trajectory the invariant is evaluated and the
      growth-rate sums updated: every `steps // samples` steps (rounded down to a multiple
      of `check_every` when longer; at least 1), and after the last step. It depends only
      on the trajectory's own step count, so a trajectory's numbers do not depend on the
      batch it is run in.
    - `use_invariant`: measure growth on the invariant (else on |x|^2): a bool, or one per
      member `(B,)`; default: when the activation is odd and the field has an invariant.
    - `lyapunov`: also follow one tangent vector of the solver map (`jax.jvp` of each
      step; it starts along (1, ..., 1)/sqrt(n) and is renormalised at every block end)
      and return the map's largest Lyapunov exponent per unit time, `map_lyapunov`: the
      summed log growth over the steps run below the threshold, divided by their time.
    """
    if not 1 <= check_every <= 32:
        raise ValueError(f"`check_every` must be between 1 and 32; got {check_every}.")
    if samples < 1:
        raise ValueError(f"`samples` must be >= 1; got {samples}.")
    dtype = X0.dtype
    B = X0.shape[1]
    steps = steps.astype(jnp.int32)
    h = h.astype(dtype)
    use_inv = (bool(field.activation.odd and field.has_invariant()) if use_invariant is None
               else use_invariant)
    # Norms are measured on x s with s = 1 / max(max_i |x0_i|, 1) per member (within a
    # factor sqrt(n) of 1 / max(|x0|, 1)): squares of large states stay finite in float32.
    scale = (1.0 / jnp.maximum(jnp.max(jnp.abs(X0), axis=0), 1.0)).astype(dtype)
    scale = jnp.where(jnp.isfinite(scale), scale, jnp.ones_like(scale))
    thr2s = jnp.square(jnp.asarray(thr, dtype) * scale)  # (thr s)^2
    nrm2_0 = sqnorm(X0 * scale[None, :])
    zero = jnp.zeros((B,), dtype)
    izero = jnp.zeros((B,), jnp.int32)

    K = check_every
    big = jnp.iinfo(jnp.int32).max
    # Sample points of a member: every `period` steps before its last step, and its last
    # step; they depend only on its own step count. The period is `steps // samples` steps,
    # rounded down to a multiple of K when it is longer than K (so that long runs are not cut
    # into extra blocks), and at least 1.
    period = steps // samples
    period = jnp.where(period >= K, period // K * K, jnp.maximum(period, 1))

    def next_sample(k):
        """A member's first sample point after step k (`big` once past its last step)."""
        nxt = (k // period + 1) * period
        return jnp.where(k >= steps, big, jnp.where(nxt < steps, nxt, steps))

    first = next_sample(jnp.zeros_like(steps))
    S0 = jnp.stack([jnp.ones((B,), jnp.int32), jnp.full((B,), -1, jnp.int32),
                    (_sign_bit(X0[0]) == 0).astype(jnp.int32), izero, izero, izero])
    c0 = _Blocks(k0=jnp.asarray(0, jnp.int32), replay_to=jnp.asarray(0, jnp.int32),
                 stop=jnp.asarray(0, jnp.int32), X=X0, S=S0, replay=jnp.zeros((B,), bool),
                 max_nrm2=nrm2_0, quarters=QuarterMax(zero, zero, zero, izero, izero),
                 V=jnp.full_like(X0, 1.0 / np.sqrt(X0.shape[0])) if lyapunov else None,
                 lyap=zero if lyapunov else None, lyap_steps=izero if lyapunov else None)
    m0 = _Samples(first, zero, GrowthSums(*([zero] * len(GrowthSums._fields))),
                  WindowSums(*([zero] * len(WindowSums._fields))),
                  jnp.full((DYADIC_ROWS, B), jnp.nan, dtype), started=jnp.asarray(False),
                  E0=zero, inv0=zero, speed0=zero, E_final=zero,
                  inv_final=jnp.full((B,), jnp.nan, dtype), speed_final=zero)
    block = lambda c: _block(c, field=field, solver=solver, h_row=h[None, :], steps=steps,
                             scale=scale, thr2s=thr2s, K=K)

    def between_samples(cm):
        """Blocks up to the next sample point of any member (or power-of-two step), then
        the sample."""
        c, m = cm
        c = jax.lax.while_loop(lambda c: c.k0 < c.stop, block, c)
        return _sample(c, m, field=field, h=h, nrm2_0=nrm2_0, use_inv=use_inv,
                       steps=steps, next_sample=next_sample, scale=scale)

    # the first pass runs no block (stop = 0) and takes the sample at step 0
    c, m = jax.lax.while_loop(lambda cm: ~cm[1].started | (cm[0].k0 < jnp.max(steps)),
                              between_samples, (c0, m0))
    X, S = c.X, c.S
    nrm2 = sqnorm(X * scale[None, :])
    q = c.quarters
    return MonitorOutput(
        X=X,
        alive=S[ALIVE] == 1,
        diverged_at=S[DIV],
        n_up=S[NUP],
        t_first=S[KFIRST].astype(dtype) * h,
        t_last=S[KLAST].astype(dtype) * h,
        max_norm=jnp.sqrt(jnp.maximum(c.max_nrm2, nrm2)) / scale,  # and the final state
        norm0=_norm(X0),
        norm_final=_norm(X),
        inv0=m.inv0,
        inv_final=m.inv_final,
        E0=m.E0,
        E_final=m.E_final,
        max_drift=m.max_drift,
        speed0=m.speed0,
        speed_final=m.speed_final,
        sums=m.sums,
        windows=m.windows,
        dyadic=m.dyadic,
        # the quarter maxima as norms (a member with no block end in a quarter has 0)
        quarters=q._replace(q1=jnp.sqrt(q.q1) / scale, q3=jnp.sqrt(q.q3) / scale,
                            q4=jnp.sqrt(q.q4) / scale),
        map_lyapunov=(c.lyap / (c.lyap_steps.astype(dtype) * h) if lyapunov
                      else jnp.full((B,), jnp.nan, dtype)),
    )


integrate_monitored = eqx.filter_jit(_integrate_monitored,
                                     compiler_options=ENGINE_COMPILER_OPTIONS)


@eqx.filter_jit(compiler_options=ENGINE_COMPILER_OPTIONS)
def integrate_monitored_sharded(
    field: AbstractSkewField,
    solver: AbstractFixedSolver,
    X0,
    h,
    steps,
    thr,
    *,
    mesh,
    axis: str,
    check_every: int = 32,
    samples: int = 64,
    use_invariant=None,
    lyapunov: bool = False,
) -> MonitorOutput:
    """`integrate_monitored` with the batch split over the devices of a 1-D `mesh`
    (`jax.shard_map`): each device integrates its own slice in its own loop, with no
    communication until the results are gathered. The field's per-member arrays
    (`field.member_spec(axis)`) are split with the batch, the others replicated. The batch
    must divide evenly."""
    from jax.sharding import PartitionSpec as P

    dyn, static = eqx.partition(field, eqx.is_array)
    dyn_spec = field.member_spec(axis)
    per_member_inv = use_invariant is not None and not isinstance(use_invariant, bool)
    b, bb = P(axis), P(None, axis)

    def local(dyn, X0, h, steps, thr, use_inv):
        return _integrate_monitored(eqx.combine(dyn, static), solver, X0, h, steps, thr,
                                    check_every=check_every, samples=samples,
                                    use_invariant=use_inv if per_member_inv else use_invariant,
                                    lyapunov=lyapunov)

    nested = {"sums": GrowthSums, "windows": WindowSums, "quarters": QuarterMax}
    spec = lambda k: (bb if k in ("X", "dyadic") else
                      nested[k](*([b] * len(nested[k]._fields))) if k in nested else b)
    out_spec = MonitorOutput(*[spec(k) for k in MonitorOutput._fields])
    inv_arg = use_invariant if per_member_inv else jnp.zeros(X0.shape[1:], bool)
    fn = jax.shard_map(local, mesh=mesh, in_specs=(dyn_spec, bb, b, b, b, b),
                       out_specs=out_spec, check_vma=False)
    return fn(dyn, X0, h, steps, thr, inv_arg)
