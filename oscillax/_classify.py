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


