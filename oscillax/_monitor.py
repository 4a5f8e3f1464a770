"""Streaming monitors: per-trajectory diagnostics measured while integrating, no path stored.

`integrate_monitored` advances a batch (state `(n, B)`, one step size and step count per
trajectory) in nested `lax.while_loop`s whose trip counts come from the step counts (traced
values: no recompilation between chunks). The outer loop runs from one sample point to the
next; at each it evaluates the invariant of the members whose sample is due and
accumulates the reductions below (at least `samples` times per trajectory). Between
samples, the inner loop runs blocks of up to `check_every` steps with no test inside: every
step keeps the sign of the first coordinate as one bit of a word, from which the block
counts the upward zero-crossings (for the period), and divergence is tested once at the
block's end. A member that crossed the threshold in a block is replayed from the block's
start one step at a time, so its step of divergence and frozen state are exact; the others
keep the block. Memory is O(B n) whatever the step count.

`classify` turns the reductions into a status per trajectory (`TrajectoryClass`).
"""

from __future__ import annotations

import dataclasses
import enum

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._field import AbstractSkewField, sqnorm
from ._solver import AbstractFixedSolver


class TrajectoryClass(enum.IntEnum):
    """What a trajectory did over the run (lower-case names appear in result tables)."""

    CONSERVED = 0
    """No secular change of the invariant (below `conserve_tol`)."""
    DRIFTING = 1
    """Bounded, oscillating, but the invariant changes steadily (sub-exponentially)."""
    DIVERGED = 2
    """Non-finite, past the divergence threshold, or growing exponentially."""
    ESCAPED = 3
    """Grows without oscillating (the orbit is not closed: relu, sigmoid, ...)."""
    COLLAPSED = 4
    """Stops on a fixed point without oscillating."""


STATUS_NAMES: tuple[str, ...] = tuple(c.name.lower() for c in TrajectoryClass)


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """Settable thresholds of `classify` (keys of the spec's `[thresholds]` table).

    - `conserve_tol`: conserved when the secular change of log(invariant) between the first
      and second half of the run is below this, and the max relative drift below
      `conserve_max_drift`.
    - `conserve_max_drift`: see above (bounded oscillating error is still conservation).
    - `exp_ratio`: exponential when the late growth rate is at least this fraction of the
      early one (polynomial drift has a decaying rate, ~1/t; exponential a constant one).
    - `min_rate`: a late growth rate (per unit time, of log invariant) below this is not
      counted as exponential growth.
    - `min_log_growth`: exponential growth also needs log(E_final / E_0) above this (E the
      invariant, or |x|^2 without one): over a short run a slowly drifting tanh network and
      the linear system both look exponential until the drift becomes measurable.
    - `escape_ratio`: final/initial norm above which a non-oscillating orbit has escaped
      (one that never crossed zero has escaped too when its log growth passes
      `min_log_growth` with a positive late rate).
    - `collapse_speed`: final/initial speed below which a non-oscillating orbit collapsed.
    - `min_crossings`: fewer upward zero-crossings of x[0] than this means "not oscillating".
    - `divergence_threshold`: norm factor over max(|x0|, 1) that counts as diverged.
    """

    conserve_tol: float = 1e-2
    conserve_max_drift: float = 0.2
    exp_ratio: float = 0.95
    min_rate: float = 1e-7
    min_log_growth: float = 0.2
    escape_ratio: float = 2.0
    collapse_speed: float = 1e-2
    min_crossings: int = 2
    divergence_threshold: float = 1e6


def _growth_measure(field, X, nrm2, use_invariant: bool):
    """Invariant (for odd activations, where it is an even, positive 'energy') or norm^2."""
    if use_invariant:
        return field.invariant(X.T)
    return nrm2


# The keys of `integrate_monitored`'s result; "X" and "sums" are 2-D, the others (B,).
_OUTPUT_KEYS = ("X", "alive", "diverged_at", "n_up", "t_first", "t_last", "max_norm", "norm0",
                "norm_final", "inv0", "inv_final", "E0", "E_final", "max_drift", "speed0",
                "speed_final", "sums")


def _sign_bit(x):
    """1 where the sign bit of `x` is set (x < 0, or -0.0), else 0, as uint32: cheaper per
    step than a comparison and a conversion (the crossing count needs one bit per step)."""
    bits = jax.lax.bitcast_convert_type(x, jnp.uint64 if x.dtype == jnp.float64 else jnp.uint32)
    return (bits >> (bits.dtype.itemsize * 8 - 1)).astype(jnp.uint32)


# XLA:CPU vectorises with 256-bit registers by default; on a CPU with AVX-512 the engine's
# elementwise steps run about 20 % faster with 512 (W2, `python -m benchmarks`). A hint: a
# CPU without AVX-512 keeps its own widest registers, and other backends ignore it.
# Compiler options can only be given to a top-level jit, which the sweep's calls are.
ENGINE_COMPILER_OPTIONS = {"xla_cpu_prefer_vector_width": 512}


def _integrate_monitored(
    field: AbstractSkewField,
    solver: AbstractFixedSolver,
    X0,
    h,
    steps,
    thr2,
    *,
    check_every: int = 32,
    samples: int = 64,
):
    """Integrate a batch and return a dict of per-trajectory reductions.

    **Arguments:**
    - `field`: its `A` is `(n, n)` (shared) or `(n, n, B)` (one matrix per trajectory).
    - `solver`: a fixed-step solver.
    - `X0`: `(n, B)` initial states; `h`: `(B,)` step sizes; `steps`: `(B,)` step counts.
    - `thr2`: `(B,)` squared divergence thresholds on $\\|x\\|^2$.
    - `check_every`: block length (1 to 32): steps between divergence tests (a block in
      which a member diverged is replayed with a test every step).
    - `samples`: at least how many times per trajectory the invariant is evaluated and the
      growth-rate sums updated: every `steps // samples` steps (rounded down to a multiple
      of `check_every` when longer; at least 1), and after the last step. It depends only
      on the trajectory's own step count, so a trajectory's numbers do not depend on the
      batch it is run in.
    """
    if not 1 <= check_every <= 32:
        raise ValueError(f"`check_every` must be between 1 and 32; got {check_every}.")
    if samples < 1:
        raise ValueError(f"`samples` must be >= 1; got {samples}.")
    dtype = X0.dtype
    B = X0.shape[1]
    steps = steps.astype(jnp.int32)
    h = h.astype(dtype)
    h_row = h[None, :]  # (1, B): broadcasts against (n, B) without implicit rank promotion
    use_inv = field.activation.odd and field.has_invariant()
    nrm2_0 = jnp.sum(X0 * X0, axis=0)
    E0 = _growth_measure(field, X0, nrm2_0, use_inv)
    E0 = jnp.where(jnp.abs(E0) > 0, E0, jnp.finfo(dtype).tiny)
    inv0 = field.invariant(X0.T) if field.has_invariant() else jnp.zeros((B,), dtype)
    speed0 = jnp.sqrt(jnp.sum(field.rhs(X0) ** 2, axis=0))
    max_steps = jnp.max(steps)
    zero = jnp.zeros((B,), dtype)
    izero = jnp.zeros((B,), jnp.int32)
    half = steps // 2

    K = check_every
    big = jnp.iinfo(jnp.int32).max
    # Sample points of a member: every `period` steps before its last step, and its last
    # step; they depend only on its own step count. The period is `steps // samples` steps,
    # rounded down to a multiple of K when it is longer than K (so that long runs are not cut
    # into extra blocks), and at least 1.
    period = steps // samples
    period = jnp.where(period >= K, period // K * K, jnp.maximum(period, 1))

    def _next_sample(k):
        """A member's first sample point after step k (`big` once past its last step)."""
        nxt = (k // period + 1) * period
        return jnp.where(k >= steps, big, jnp.where(nxt < steps, nxt, steps))

    next_sample = _next_sample(jnp.zeros_like(steps))
    # Per-member integer state, one (6, B) array (one fused update per block):
    # alive, step of divergence (-1), x[0] >= 0 after the last step, upward crossings, and
    # the step indices (1-based) of the first and last upward crossing.
    ALIVE, DIV, PREV, NUP, KFIRST, KLAST = range(6)
    S0 = jnp.stack([jnp.ones((B,), jnp.int32), jnp.full((B,), -1, jnp.int32),
                    (_sign_bit(X0[0]) == 0).astype(jnp.int32), izero, izero, izero])
    blk0 = dict(
        k0=jnp.asarray(0, jnp.int32),
        replay_to=jnp.asarray(0, jnp.int32),  # single steps until k0 reaches this
        # the next sample point of any member; as a member's last step is one of its
        # sample points, no member's run ends before it
        stop=jnp.min(next_sample),
        X=X0,
        S=S0,
        replay=jnp.zeros((B,), bool),  # members that single steps advance
        max_nrm2=nrm2_0,
    )
    mon0 = dict(
        next_sample=next_sample,
        max_drift=zero,
        # regression sums of g = log(E/E0) on t, first half (a) and second half (b)
        na=zero, ta=zero, ga=zero, tta=zero, tga=zero,
        nb=zero, tb=zero, gb=zero, ttb=zero, tgb=zero,
    )

    def block(c):
        """L steps from k0 with no test inside, then one test.

        L runs to the next multiple of K or the next sample point, whichever is first, so
        no member's run ends inside a block (its last step is a sample point) and block
        ends fall on multiples of K. Members that stayed below the threshold keep the block.
        If a member crossed it, the others go on from the block's end, and that member
        alone is replayed from the block's start one step at a time (`replay`; rare: once
        per divergence), which gives the exact step of divergence and the frozen state.
        The solver step appears once in the program. The sign of x[0] after each step is
        kept as one bit of a word, and upward crossings are counted from the word."""
        k0 = c["k0"]
        S = c["S"]
        single = k0 < c["replay_to"]
        L = jnp.where(single, 1, jnp.minimum(K - k0 % K, c["stop"] - k0))

        def step(j, s):
            X, neg = s
            X = solver.step(field, (k0 + j).astype(dtype) * h_row, X, h_row)
            return X, (neg << 1) | _sign_bit(X[0])

        X, neg = jax.lax.fori_loop(0, L, step, (c["X"], jnp.zeros((B,), jnp.uint32)))
        nrm2 = sqnorm(X)
        bad = ~(nrm2 <= thr2)
        run = (S[ALIVE] == 1) & (steps > k0) & (c["replay"] | ~single)  # advanced members
        ok = run & ~bad
        newly = run & bad & single  # frozen here, at its previous state
        redo = run & bad & ~single  # replayed from k0
        trouble = jnp.any(redo)
        # bit i of `pos` is "x[0] >= 0 after step L-1-i"; its predecessor is bit i+1,
        # and the predecessor of the block's first step is the carried one.
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
        k1 = jnp.where(trouble, k0, end)
        return dict(
            k0=k1,
            replay_to=jnp.where(trouble, end, c["replay_to"]),
            stop=c["stop"],
            X=jnp.where(ok[None, :], X, c["X"]),
            S=S,
            replay=jnp.where(trouble, redo, c["replay"]),
            # (a frozen member's last state is its final one, counted after the loop)
            max_nrm2=jnp.where(ok & boundary, jnp.maximum(c["max_nrm2"], nrm2), c["max_nrm2"]),
        )

    def monitor(c, m):
        """Evaluate the invariant and update the growth-rate sums of the members whose
        sample point is the current step `c["k0"]`."""
        X = c["X"]
        k = c["k0"]
        sampled = m["next_sample"] == k
        nrm2 = sqnorm(X)
        E = _growth_measure(field, X, nrm2, use_inv)
        g = jnp.log(jnp.maximum(E / E0, jnp.finfo(dtype).tiny))
        t = k.astype(dtype) * h
        drift = jnp.abs(E - E0) / jnp.abs(E0) if use_inv else jnp.abs(jnp.sqrt(nrm2 / nrm2_0) - 1)
        w1 = (sampled & (k <= half)).astype(dtype)
        w2 = (sampled & (k > half)).astype(dtype)
        nxt = jnp.where(sampled, _next_sample(k), m["next_sample"])
        m = dict(
            next_sample=nxt,
            max_drift=jnp.where(sampled, jnp.maximum(m["max_drift"], drift), m["max_drift"]),
            na=m["na"] + w1, ta=m["ta"] + w1 * t, ga=m["ga"] + w1 * g,
            tta=m["tta"] + w1 * t * t, tga=m["tga"] + w1 * t * g,
            nb=m["nb"] + w2, tb=m["tb"] + w2 * t, gb=m["gb"] + w2 * g,
            ttb=m["ttb"] + w2 * t * t, tgb=m["tgb"] + w2 * t * g,
        )
        return dict(c, stop=jnp.min(nxt)), m

    def between_samples(cm):
        """Blocks up to the next sample point of any member, then the sample."""
        c, m = cm
        c = jax.lax.while_loop(lambda c: c["k0"] < c["stop"], block, c)
        return monitor(c, m)

    c, m = jax.lax.while_loop(lambda cm: cm[0]["k0"] < max_steps, between_samples, (blk0, mon0))
    S = c["S"]
    c = dict(c, **m, alive=S[ALIVE] == 1, div_at=S[DIV], n_up=S[NUP], k_first=S[KFIRST],
             k_last=S[KLAST])
    X = c["X"]
    nrm2 = jnp.sum(X * X, axis=0)
    E = _growth_measure(field, X, nrm2, use_inv)
    inv = field.invariant(X.T) if field.has_invariant() else jnp.full((B,), jnp.nan, dtype)
    speed = jnp.sqrt(jnp.sum(field.rhs(X) ** 2, axis=0))
    out = dict(
        X=X,
        alive=c["alive"],
        diverged_at=c["div_at"],
        n_up=c["n_up"],
        t_first=c["k_first"].astype(dtype) * h,
        t_last=c["k_last"].astype(dtype) * h,
        max_norm=jnp.sqrt(jnp.maximum(c["max_nrm2"], nrm2)),  # and the final state
        norm0=jnp.sqrt(nrm2_0),
        norm_final=jnp.sqrt(nrm2),
        inv0=inv0,
        inv_final=inv,
        E0=E0,
        E_final=E,
        max_drift=c["max_drift"],
        speed0=speed0,
        speed_final=speed,
        sums=jnp.stack(
            [c[k] for k in ("na", "ta", "ga", "tta", "tga", "nb", "tb", "gb", "ttb", "tgb")]
        ),
    )
    assert tuple(out) == _OUTPUT_KEYS  # the sharded variant's out_specs are built from it
    return out


integrate_monitored = eqx.filter_jit(_integrate_monitored,
                                     compiler_options=ENGINE_COMPILER_OPTIONS)


def _slope(n, st, sg, stt, stg):
    den = n * stt - st * st
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((n >= 2) & (den > 0), (n * stg - st * sg) / den, np.nan)


def reduce_monitors(out: dict, h, steps, use_invariant: bool) -> dict[str, np.ndarray]:
    """Turn `integrate_monitored`'s output (numpy) into the measured columns."""
    s = np.asarray(out["sums"], np.float64)
    na, ta, ga, tta, tga, nb, tb, gb, ttb, tgb = s
    rate_early = _slope(na, ta, ga, tta, tga)
    rate_late = _slope(nb, tb, gb, ttb, tgb)
    div_at = np.asarray(out["diverged_at"], np.int64)
    h64 = np.asarray(h, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        # A member stopped at the threshold: its rate is the mean one up to that step,
        # from the growth of |x|^2 (the frozen state says nothing about later times).
        # The frozen state is x_{d-1}, the last one below the threshold (d = diverged_at).
        mean_rate = np.log(
            np.asarray(out["norm_final"], np.float64) ** 2
            / np.asarray(out["norm0"], np.float64) ** 2
        ) / (np.maximum(div_at - 1, 1) * h64)
    rate_late = np.where(div_at >= 0, mean_rate, rate_late)
    with np.errstate(divide="ignore", invalid="ignore"):
        secular = np.where((na > 0) & (nb > 0), gb / nb - ga / na, np.nan)
        n_up = np.asarray(out["n_up"])
        period = np.where(
            n_up >= 2,
            (np.asarray(out["t_last"], np.float64) - np.asarray(out["t_first"], np.float64))
            / (n_up - 1),
            np.nan,
        )
        E0 = np.asarray(out["E0"], np.float64)
        Ef = np.asarray(out["E_final"], np.float64)
        drift_final = np.abs(Ef - E0) / np.abs(E0)
        if not use_invariant:
            drift_final = np.abs(
                np.asarray(out["norm_final"], np.float64) / np.asarray(out["norm0"], np.float64)
                - 1
            )
        norm0 = np.asarray(out["norm0"], np.float64)
        norm_ratio = np.asarray(out["norm_final"], np.float64) / norm0
        s0 = np.asarray(out["speed0"], np.float64)
        sf = np.asarray(out["speed_final"], np.float64)
        # A start on a fixed point (speed 0) that stays there has ratio 0, not NaN.
        speed_ratio = np.where(
            s0 > 0, sf / np.where(s0 > 0, s0, 1.0), np.where(sf > 0, np.inf, 0.0)
        )
        log_growth = np.log(np.abs(Ef) / np.abs(E0))
    return dict(
        diverged_at=np.asarray(out["diverged_at"], np.int64),
        # sampled every `check_every` steps and at the end
        max_norm=np.maximum(np.asarray(out["max_norm"], np.float64),
                            np.asarray(out["norm_final"], np.float64)),
        norm_ratio=norm_ratio,
        invariant_initial=np.asarray(out["inv0"], np.float64),
        invariant_final=np.asarray(out["inv_final"], np.float64),
        drift_final=drift_final,
        drift_max=np.asarray(out["max_drift"], np.float64),
        secular_drift=secular,
        rate_early=rate_early,
        growth_rate=rate_late,
        period=period,
        zero_crossings=n_up.astype(np.int64),
        speed_ratio=speed_ratio,
        log_growth=log_growth,
        amplitude_final=np.asarray(out["norm_final"], np.float64),
        t_final=np.asarray(steps, np.float64) * np.asarray(h, np.float64),
    )


def classify(m: dict[str, np.ndarray], th: Thresholds = Thresholds()) -> np.ndarray:
    """Status codes (`TrajectoryClass`) from the measured columns of `reduce_monitors`."""
    n = len(m["max_norm"])
    status = np.full(n, TrajectoryClass.DRIFTING, np.int8)
    with np.errstate(invalid="ignore"):
        oscillating = m["zero_crossings"] >= th.min_crossings
        conserved = (np.abs(m["secular_drift"]) < th.conserve_tol) & (
            m["drift_max"] < th.conserve_max_drift
        )
        late, early = m["growth_rate"], m["rate_early"]
        exponential = (
            (late > th.min_rate)
            & (late >= th.exp_ratio * early)
            & (m["log_growth"] > th.min_log_growth)
        )
        status[conserved] = TrajectoryClass.CONSERVED
        status[~conserved & exponential] = TrajectoryClass.DIVERGED
        # A member that never crossed zero and grows measurably is escaping, not diverging
        # (a slowly accelerating sigmoid network has an exponential-looking trend before
        # its norm doubles).
        static = m["zero_crossings"] == 0
        growing = (m["log_growth"] > th.min_log_growth) & (late > th.min_rate)
        escaped = ~oscillating & (
            (m["norm_ratio"] > th.escape_ratio) | (static & growing)
        )
        collapsed = ~oscillating & ~escaped & (m["speed_ratio"] < th.collapse_speed)
        status[escaped] = TrajectoryClass.ESCAPED
        status[collapsed] = TrajectoryClass.COLLAPSED
        status[m["diverged_at"] >= 0] = TrajectoryClass.DIVERGED
        status[~np.isfinite(m["max_norm"])] = TrajectoryClass.DIVERGED
    return status


@eqx.filter_jit(compiler_options=ENGINE_COMPILER_OPTIONS)
def integrate_monitored_sharded(
    field: AbstractSkewField,
    solver: AbstractFixedSolver,
    X0,
    h,
    steps,
    thr2,
    *,
    mesh,
    axis: str,
    check_every: int = 32,
    samples: int = 64,
):
    """`integrate_monitored` with the batch split over the devices of a 1-D `mesh`
    (`jax.shard_map`): each device integrates its own slice in its own loop, with no
    communication until the results are gathered. A per-trajectory `A` `(n, n, B)` is split
    with the batch; a shared `(n, n)` one is replicated. The batch must divide evenly."""
    from jax.sharding import PartitionSpec as P

    dyn, static = eqx.partition(field, eqx.is_array)
    per_traj = field.A.ndim == 3
    dyn_spec = jax.tree.map(lambda _: P(), dyn)
    dyn_spec = eqx.tree_at(lambda f: f.A, dyn_spec, P(None, None, axis) if per_traj else P())

    def local(dyn, X0, h, steps, thr2):
        return _integrate_monitored(eqx.combine(dyn, static), solver, X0, h, steps, thr2,
                                    check_every=check_every, samples=samples)

    b, bb = P(axis), P(None, axis)
    out_spec = {k: bb if k in ("X", "sums") else b for k in _OUTPUT_KEYS}
    fn = jax.shard_map(local, mesh=mesh, in_specs=(dyn_spec, bb, b, b, b),
                       out_specs=out_spec, check_vma=False)
    return fn(dyn, X0, h, steps, thr2)

