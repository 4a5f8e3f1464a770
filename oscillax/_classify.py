"""What a trajectory did: the status taxonomy, its thresholds, and the reductions that turn
the engine's streamed sums (`MonitorOutput`) into measured columns and a status."""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, NamedTuple

import numpy as np


class GrowthSums(NamedTuple):
    """The engine's regression sums of g = log(E/E0) on t, per member: count, sum t, sum g,
    sum t^2 and sum t g over the samples in the first half of the run (a) and the second
    half (b)."""

    na: Any
    ta: Any
    ga: Any
    tta: Any
    tga: Any
    nb: Any
    tb: Any
    gb: Any
    ttb: Any
    tgb: Any


class WindowSums(NamedTuple):
    """The engine's growth-law sums, per member, over the samples of three windows of the
    run that double in length, (T/8, T/4], (T/4, T/2] and (T/2, T] (T the member's run):
    the count, the sum of g = log(E/E0) and the sum of d = E/E0 - 1. Only samples while
    the member is alive (below the divergence threshold) count."""

    n1: Any
    g1: Any
    d1: Any
    n2: Any
    g2: Any
    d2: Any
    n3: Any
    g3: Any
    d3: Any


class QuarterMax(NamedTuple):
    """The engine's settling measure, per member: the largest norm |x| at the block ends
    (every `check_every` steps) of the first, third and fourth quarter of its run, and the
    number of block ends in the third and fourth quarter."""

    q1: Any
    q3: Any
    q4: Any
    n3: Any
    n4: Any


class GrowthLaw(enum.IntEnum):
    """How the growth measure E (the invariant, or |x|^2) changes over a run (lower-case
    names appear in the `growth_law` column). See `classify` for the rule."""

    BOUNDED = 0
    """No secular growth: conserved, decaying, or settled on a cycle."""
    POWER = 1
    """E - E0 grows like t^p (`growth_exponent` = p), with no acceleration of log E."""
    EXPONENTIAL = 2
    """log E grows linearly in t: its increment over successive doublings of time doubles,
    and is past what any t^2 law can give (`growth_rate`: per unit time)."""
    UNDETERMINED = 3
    """Growing, but the run is too short to tell: a power law from an exponential one (a
    linear growth of E while E - E0 << E0 looks the same as the start of an exponential),
    or, for a bounded σ (where no exponential is possible), E - E0 still growing faster
    than the theorem's eventual bound t (t^2 for |x|^2): σ has not saturated yet."""


GROWTH_LAW_NAMES: tuple[str, ...] = tuple(c.name.lower() for c in GrowthLaw)


class TrajectoryClass(enum.IntEnum):
    """What a trajectory did over the run (lower-case names appear in result tables)."""

    CONSERVED = 0
    """No secular change of the invariant (below `conserve_tol`)."""
    DRIFTING = 1
    """Bounded, oscillating, but the invariant changes steadily (sub-exponentially)."""
    DIVERGED = 2
    """Non-finite, past the divergence threshold, or oscillating with exponential growth
    (`growth_law` exponential)."""
    ESCAPED = 3
    """Grows without oscillating (the orbit is not closed: relu, sigmoid, ...)."""
    COLLAPSED = 4
    """Stops on a fixed point: without oscillating, or spiralling into it (the norm and
    the speed both fall below `collapse_speed` of their start)."""
    CYCLE = 5
    """Settles on an attracting closed orbit of the solver map: the amplitude moved away
    from its start and then stopped changing (e.g. tanh Euler with 0 < gamma < gamma*, a
    cycle made by the method: the exact flow has none). `cycle_amplitude` is its size."""


STATUS_NAMES: tuple[str, ...] = tuple(c.name.lower() for c in TrajectoryClass)


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """Settable thresholds of `classify` (keys of the spec's `[thresholds]` table).

    - `conserve_tol`: conserved when the secular change of log(invariant) between the first
      and second half of the run is below this, and the max relative drift below
      `conserve_max_drift`.
    - `conserve_max_drift`: see above (bounded oscillating error is still conservation).
    - `exp_increment`: exponential growth needs the increment of log E over the last
      doubling of time (the mean of log E over (T/2, T] less that over (T/4, T/2]) above
      this; a power law E ~ t^p gives at most p ln 2, so the default 1.5 is beyond any
      t^2 law (bounded σ: V grows at most linearly, |x|^2 at most quadratically).
    - `exp_accel`: ... and that increment at least this times the one over the doubling
      before (exponential: 2; a power law: at most 1 once E >> E0).
    - `exp_ratio`: ... and the late growth rate (slope of log E over the second half) at
      least this fraction of the early one.
    - `min_rate`: a late growth rate (per unit time, of log E) below this is not growth.
    - `min_log_growth`: log(E_final / E_0) above this counts as measurable growth (for
      `escaped`), and |log E/E0| over the last half above this as "moved" (for `cycle`).
    - `settle_tol`: a cycle's largest norm changes by less than this (relative) between
      the third and the fourth quarter of the run...
    - `settle_ratio`: ... and its log changed at least this many times more since the
      first quarter (or E moved by `min_log_growth`): an exponential or power-law trend
      changes at most ~5 times more over three quarters than over the last one.
    - `settle_blocks`: at least this many block ends in each of the last two quarters are
      needed to call a cycle (a short run cannot tell).
    - `escape_ratio`: final/initial norm above which a non-oscillating orbit has escaped
      (one that never crossed zero has escaped too when its log growth passes
      `min_log_growth` with a positive late rate).
    - `collapse_speed`: final/initial speed below which a non-oscillating orbit collapsed
      (an oscillating one when its norm ratio is below this too).
    - `min_crossings`: fewer upward zero-crossings of x[0] than this means "not oscillating".
    - `divergence_threshold`: norm factor over max(|x0|, 1) that counts as diverged.
    """

    conserve_tol: float = 1e-2
    conserve_max_drift: float = 0.2
    exp_increment: float = 1.5
    exp_accel: float = 1.5
    exp_ratio: float = 0.95
    min_rate: float = 1e-7
    min_log_growth: float = 0.2
    settle_tol: float = 0.02
    settle_ratio: float = 8.0
    settle_blocks: int = 8
    escape_ratio: float = 2.0
    collapse_speed: float = 1e-2
    min_crossings: int = 2
    divergence_threshold: float = 1e6


THRESHOLD_RANGES: dict[str, tuple[float, bool]] = {
    "conserve_tol": (0.0, True),
    "conserve_max_drift": (0.0, True),
    "exp_increment": (0.0, True),
    "exp_accel": (1.0, True),
    "exp_ratio": (0.0, True),
    "min_rate": (0.0, False),
    "min_log_growth": (0.0, False),
    "settle_tol": (0.0, True),
    "settle_ratio": (1.0, True),
    "escape_ratio": (1.0, True),
    "collapse_speed": (0.0, True),
    "divergence_threshold": (1.0, True),
}
"""Lower bound of each real-valued threshold and whether it is excluded (`Thresholds`);
`min_crossings` and `settle_blocks` are integers >= 0."""


def _slope(n, st, sg, stt, stg):
    den = n * stt - st * st
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((n >= 2) & (den > 0), (n * stg - st * sg) / den, np.nan)


def reduce_monitors(out, h, steps, use_invariant) -> dict[str, np.ndarray]:
    """Turn the engine's `MonitorOutput` (as numpy) into the measured columns.
    `use_invariant`: per member (or for all), whether growth is measured on the invariant."""
    f64 = lambda k: np.asarray(getattr(out, k), np.float64)
    na, ta, ga, tta, tga, nb, tb, gb, ttb, tgb = (np.asarray(v, np.float64) for v in out.sums)
    rate_early = _slope(na, ta, ga, tta, tga)
    rate_late = _slope(nb, tb, gb, ttb, tgb)
    div_at = np.asarray(out.diverged_at, np.int64)
    h64 = np.asarray(h, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        # A member stopped at the threshold: its rate is the mean one up to that step,
        # from the growth of |x|^2 (the frozen state says nothing about later times).
        # The frozen state is x_{d-1}, the last one below the threshold (d = diverged_at).
        mean_rate = np.log(f64("norm_final") ** 2 / f64("norm0") ** 2) / (
            np.maximum(div_at - 1, 1) * h64)
    rate_late = np.where(div_at >= 0, mean_rate, rate_late)
    with np.errstate(divide="ignore", invalid="ignore"):
        secular = np.where((na > 0) & (nb > 0), gb / nb - ga / na, np.nan)
        n_up = np.asarray(out.n_up)
        period = np.where(n_up >= 2, (f64("t_last") - f64("t_first")) / (n_up - 1), np.nan)
        E0 = f64("E0")
        Ef = f64("E_final")
        drift_final = np.abs(Ef - E0) / np.abs(E0)
        drift_final = np.where(use_invariant, drift_final,
                               np.abs(f64("norm_final") / f64("norm0") - 1))
        norm0 = f64("norm0")
        norm_ratio = f64("norm_final") / norm0
        s0 = f64("speed0")
        sf = f64("speed_final")
        # A start on a fixed point (speed 0) that stays there has ratio 0, not NaN.
        speed_ratio = np.where(
            s0 > 0, sf / np.where(s0 > 0, s0, 1.0), np.where(sf > 0, np.inf, 0.0)
        )
        log_growth = np.log(np.abs(Ef) / np.abs(E0))
    law = _law_measures(out.windows)
    # A member frozen at the threshold has no samples after it, so its windows say
    # nothing: its law comes from the last two doublings it did complete (log E/E0 after
    # the steps 2^(J-2), 2^(J-1), 2^J before the freeze, J >= 2: recorded at every
    # power-of-two step, so a member frozen after step 4 has them whatever its samples).
    frozen = div_at >= 0
    fa, fb = _last_doublings(np.asarray(out.dyadic, np.float64))
    law["inc1"] = np.where(frozen, fa, law["inc1"])
    law["inc2"] = np.where(frozen, fb, law["inc2"])
    law["G3"] = np.where(frozen, np.nan, law["G3"])
    law["p"] = np.where(frozen, np.nan, law["p"])
    q = {k: np.asarray(v, np.float64) for k, v in out.quarters._asdict().items()}
    with np.errstate(divide="ignore", invalid="ignore"):
        settle_late = np.abs(np.log(q["q4"] / q["q3"]))
        settle_early = np.abs(np.log(q["q4"] / q["q1"]))
    return dict(
        diverged_at=np.asarray(out.diverged_at, np.int64),
        # sampled every `check_every` steps and at the end
        max_norm=np.maximum(f64("max_norm"), f64("norm_final")),
        norm_ratio=norm_ratio,
        invariant_initial=f64("inv0"),
        invariant_final=f64("inv_final"),
        drift_final=drift_final,
        drift_max=f64("max_drift"),
        secular_drift=secular,
        rate_early=rate_early,
        growth_rate=rate_late,
        period=period,
        zero_crossings=n_up.astype(np.int64),
        speed_ratio=speed_ratio,
        log_growth=log_growth,
        amplitude_final=f64("norm_final"),
        t_final=np.asarray(steps, np.float64) * np.asarray(h, np.float64),
        late_increment=law["inc2"],
        early_increment=law["inc1"],
        late_log_growth=law["G3"],
        growth_exponent=law["p"],
        settle_late=settle_late,
        settle_early=settle_early,
        late_amplitude=q["q4"],
        uses_invariant=np.broadcast_to(np.asarray(use_invariant, bool), div_at.shape).copy(),
        settle_blocks=np.minimum(np.asarray(q["n3"]), np.asarray(q["n4"])).astype(np.int64),
    )


def _last_doublings(D):
    """The increments of log E over the last two doublings of `D` `(J, B)` (row j: log E/E0
    after step 2^j, NaN where not recorded): the rows J-2, J-1, J up to the last recorded
    one, J; NaN where one of them is missing (fewer than three)."""
    fin = np.isfinite(D)
    J = np.where(fin.any(axis=0), D.shape[0] - 1 - np.argmax(fin[::-1], axis=0), -1)
    cols = np.arange(D.shape[1])
    Jc = np.maximum(J, 2)
    with np.errstate(invalid="ignore"):
        b = np.where(J >= 2, D[Jc, cols] - D[Jc - 1, cols], np.nan)
        a = np.where(J >= 2, D[Jc - 1, cols] - D[Jc - 2, cols], np.nan)
    return a, b


def _law_measures(w) -> dict[str, np.ndarray]:
    """From the window sums: the mean of g = log E/E0 per window (G1, G2, G3), its
    increments over the last two doublings of time (inc1, inc2), and the local exponent
    p = log2(D3 / D2) of E - E0 ~ t^p (D the window means of E/E0 - 1; the window means
    of t^p over (T/2, T] and (T/4, T/2] are exactly 2^p apart)."""
    w = {k: np.asarray(v, np.float64) for k, v in w._asdict().items()}
    with np.errstate(divide="ignore", invalid="ignore"):
        G = [np.where(w[f"n{i}"] > 0, w[f"g{i}"] / w[f"n{i}"], np.nan) for i in (1, 2, 3)]
        D2 = np.where(w["n2"] > 0, w["d2"] / w["n2"], np.nan)
        D3 = np.where(w["n3"] > 0, w["d3"] / w["n3"], np.nan)
        p = np.where((D2 > 0) & (D3 > 0), np.log2(D3 / D2), np.nan)
    return dict(G3=G[2], inc1=G[1] - G[0], inc2=G[2] - G[1], D3=D3, p=p)


def classify(m: dict[str, np.ndarray], th: Thresholds = Thresholds()) -> np.ndarray:
    """Status codes (`TrajectoryClass`, int8) from the measured columns of
    `reduce_monitors` (the rule: `growth_laws`)."""
    return _verdicts(m, th)[0]


def growth_laws(m: dict[str, np.ndarray], th: Thresholds = Thresholds()) -> np.ndarray:
    """Growth-law codes (`GrowthLaw`, int8) from the measured columns of `reduce_monitors`.

    The growth law, from the growth measure E (the invariant, or |x|^2) sampled while the
    member is below the divergence threshold:
    - exponential: the mean of log E grows by more than `exp_increment` over the last
      doubling of time, at least `exp_accel` times its growth over the doubling before,
      with a late rate above `min_rate` and at least `exp_ratio` of the early one;
    - bounded: conserved, a cycle, or no secular growth (E - E0 below `conserve_tol` of
      E0 over the last half, log E not increasing over the last doubling, or E - E0
      growing slower than t^0.1);
    - power: growing, not accelerating (the increment of log E over the last doubling
      below `exp_accel` times the one before); `growth_exponent` is p of E - E0 ~ t^p
      (from the window means of E/E0 - 1, so it is resolved as soon as E - E0 is);
      with a bounded σ, growing with 0.1 <= p <= p_max (below);
    - undetermined: growing, but neither (e.g. E - E0 << E0 growing linearly, which the
      start of an exponential looks like too: log E ~ E/E0 - 1 then gains twice as much
      per doubling of time), or too few records (a member frozen at the
      threshold before step 4). A member past the threshold is judged on its last two
      doublings before the freeze (log E after the steps 2^(J-2), 2^(J-1), 2^J, the last
      power of two 2^J before the freeze; a missing one leaves a NaN increment):
      exponential when the last increment passes `exp_increment` and is at least
      `exp_accel` times the one before.
    With a bounded σ (column `bounded_sigma`; the sweep sets it for bounded activations
    unless the solver amplifies the diffusion term -gamma x alone, |R(-h gamma)| > 1),
    |x| grows at most linearly under every fixed-step solver, so E at most like t (the
    invariant) or t^2 (|x|^2): p_max = 1.1 (2.1). No exponential is possible, so the
    acceleration of log E (the signature of an exponential, but also of E - E0 ~ t
    while E - E0 << E0) does not decide: a growing E with 0.1 <= p <= p_max is a power
    law. An exponential-looking trend with a power faster than p_max is the transient
    of σ's near-linear range (it falls to p <= p_max once σ saturates: a longer run
    resolves it) and is called `undetermined` (and never `diverged` unless the threshold
    is passed).

    The status: `diverged` when non-finite, past the threshold, or oscillating with an
    exponential law; `escaped` when growing without oscillating; `collapsed` on a fixed
    point (see `TrajectoryClass`); `cycle` when oscillating, not conserved, and settled:
    the largest norm of the last quarter is within `settle_tol` of the third quarter's,
    and the orbit moved before (E changed by `min_log_growth` in log, or the largest norm
    changed `settle_ratio` times more since the first quarter), and E - E0 no longer
    grows (`growth_exponent` at most 0.1, or E decreasing); `conserved` when the
    secular change of log E between the run's halves is below `conserve_tol` and the
    largest drift below `conserve_max_drift`; else `drifting`.
    """
    return _verdicts(m, th)[1]


def _verdicts(m, th):
    """`(status, law)` codes: see `growth_laws`."""
    n = len(m["max_norm"])
    status = np.full(n, TrajectoryClass.DRIFTING, np.int8)
    with np.errstate(invalid="ignore"):
        oscillating = m["zero_crossings"] >= th.min_crossings
        conserved = (np.abs(m["secular_drift"]) < th.conserve_tol) & (
            m["drift_max"] < th.conserve_max_drift
        )
        late, early = m["growth_rate"], m["rate_early"]
        inc1, inc2 = m["early_increment"], m["late_increment"]
        frozen = m["diverged_at"] >= 0
        bounded_sigma = np.asarray(m.get("bounded_sigma", False), bool)
        trend = np.where(
            frozen,
            # past the threshold: its last two doublings before the freeze decide
            (inc2 > th.exp_increment) & (inc2 >= th.exp_accel * inc1),
            (inc2 > th.exp_increment)
            & (inc2 >= th.exp_accel * inc1)
            & (late > th.min_rate)
            & (late >= th.exp_ratio * early),
        )
        # A bounded σ keeps |x| <= |x0| + C t under any of the fixed-step solvers (a step
        # moves x by h times a bounded combination of σ values; with diffusion, as long as
        # the solver does not amplify -gamma x itself: the caller says so in
        # `bounded_sigma`), so E grows at most like t (the invariant, THEORY.md) or t^2
        # (|x|^2): an exponential-looking trend, or a faster power, is the transient of
        # the near-linear range before σ saturates.
        p_max = np.where(m["uses_invariant"], 1.0, 2.0) + 0.1
        exponential = trend & ~bounded_sigma
        settled = (
            oscillating & ~conserved
            & (m["settle_blocks"] >= th.settle_blocks)
            & (m["settle_late"] <= th.settle_tol)
            & ((np.abs(m["late_log_growth"]) >= th.min_log_growth)
               | (m["settle_early"] >= th.settle_ratio * m["settle_late"]))
            & (m["late_amplitude"] > 0)
            # E no longer grows: a power law E - E0 ~ t^p (p > 0.1) still drifting
            # outward is not a cycle, however slowly its largest norm changes
            & ~(m["growth_exponent"] > 0.1)
        )
        p = m["growth_exponent"]
        bounded = (conserved | settled | (np.expm1(m["late_log_growth"]) <= th.conserve_tol)
                   | (inc2 <= 0) | (p < 0.1))
        # Growing, not bounded: a power law when log E does not accelerate; with a bounded
        # σ (no exponential possible) whenever the measured exponent of E - E0 is within
        # the theorem's p_max: while E - E0 << E0, log E ~ E/E0 - 1, so E - E0 ~ t makes
        # the increments of log E double per doubling of time too (the acceleration test
        # cannot tell it from an exponential; the exponent of E - E0 can).
        power = (~bounded & (inc1 > 0) & np.isfinite(p)
                 & np.where(bounded_sigma, p <= p_max, inc2 < th.exp_accel * inc1))
        law = np.full(n, GrowthLaw.UNDETERMINED, np.int8)
        law[power] = GrowthLaw.POWER
        law[bounded & ~exponential] = GrowthLaw.BOUNDED
        law[exponential] = GrowthLaw.EXPONENTIAL

        status[conserved] = TrajectoryClass.CONSERVED
        status[~conserved & exponential] = TrajectoryClass.DIVERGED
        status[settled & ~trend] = TrajectoryClass.CYCLE
        # A member that never crossed zero and grows measurably is escaping, not diverging
        # (a slowly accelerating sigmoid network has an exponential-looking trend before
        # its norm doubles).
        static = m["zero_crossings"] == 0
        growing = (m["log_growth"] > th.min_log_growth) & (late > th.min_rate)
        escaped = ~oscillating & (
            (m["norm_ratio"] > th.escape_ratio) | (static & growing)
        )
        slow = m["speed_ratio"] < th.collapse_speed
        collapsed = ~escaped & slow & (~oscillating | (m["norm_ratio"] < th.collapse_speed))
        status[escaped] = TrajectoryClass.ESCAPED
        status[collapsed] = TrajectoryClass.COLLAPSED
        status[m["diverged_at"] >= 0] = TrajectoryClass.DIVERGED
        status[~np.isfinite(m["max_norm"])] = TrajectoryClass.DIVERGED
    return status, law


def gamma_agreement(df, omega: float, band: float = 0.25, margin: float = 2.0):
    """How the verdicts of a diffusion atlas (a results table with a `gammas` axis, pre form)
    agree with the linear theory's band `gamma_band(dt, omega, solver)` = (γ*, γ_hi).

    Each row is compared where the theory is clear-cut: below γ* by more than `band`
    (γ < (1 − band) γ*: the top eigen-pair −γ ± iω is amplified) or inside the band by more
    than `band` from both edges ((1 + band) γ* < γ < (1 − band) γ_hi: it decays); rows with
    no stabilising γ (γ* NaN) are not compared. The atlas agrees when:
    - linear, below: it grows (`diverged`, or a growth law other than `bounded`, and not
      `collapsed`);
    - tanh, below: it persists (not `collapsed`: growing, drifting or on a cycle of the map);
    - above (both): it decays to the fixed point (`collapsed`).

    **Returns:** a DataFrame with the row's `activation` and `solver` and the booleans
    `compared`, `below`, `agrees` and `measurable` (|γ − γ*| · t_final >= `margin`: the
    predicted change of log|x| over the run is at least `margin`, at the linear rate).
    """
    import pandas as pd

    from ._theory import gamma_band

    h = df["dt"].to_numpy(np.float64)
    g = df["gamma"].to_numpy(np.float64)
    lo = np.full(len(df), np.nan)
    hi = np.full(len(df), np.nan)
    solver = df["solver"].to_numpy()
    for s in np.unique(solver):
        k = solver == s
        lo[k], hi[k] = gamma_band(h[k], omega, str(s))
    with np.errstate(invalid="ignore"):
        below = np.isfinite(lo) & (g < (1 - band) * lo)
        above = np.isfinite(lo) & (g > (1 + band) * lo) & (g < (1 - band) * hi)
    lin = (df["activation"] == "identity").to_numpy()
    st = df["status"].to_numpy()
    collapsed = st == "collapsed"
    grows = (st == "diverged") | ((df["growth_law"].to_numpy() != "bounded") & ~collapsed)
    agrees = np.where(below, np.where(lin, grows, ~collapsed), collapsed)
    measurable = np.abs(g - lo) * df["t_final"].to_numpy(np.float64) >= margin
    return pd.DataFrame(dict(
        activation=df["activation"].to_numpy(), solver=solver, compared=below | above,
        below=below, agrees=agrees & (below | above), measurable=measurable))
