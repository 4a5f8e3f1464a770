"""Forecast rules measured against the one `fit` ships (harmonic regression with AR errors,
`_scores.BASELINE`), on the baselines alone: each rule turns the baselines' forecasts of the
held-out part (fitted to the training part only) into one forecast, and is scored by its
RMSE over the better of the training mean and harmonic regression (the target of the
forecast: at most 1).

`python -m oscillax.bench._forecast_rules` scores every rule over the nine series of
`_forecast` (`--wider` included) at hold-out fractions 10, 15, ..., 40 % (63 cases) and
prints, per rule, the cases at or below the target, the worst ratio, the cases at the
table's four fractions (`_forecast.FRACTIONS`) and the geometric mean ratio; `--series`
and `--fractions` narrow it. Seconds: no network is fitted.

The rules:

- `harmonic_ar`: the shipped baseline forecast;
- `median3`: the per-sample median of harmonic regression, `harmonic_ar` and AR(p);
- `ha_ar_half`, `ha_ar_70_30`: `harmonic_ar` averaged with AR(p), 1/2 each or 0.7/0.3;
- `mean3`: harmonic regression, `harmonic_ar` and AR(p), 1/3 each;
- `shrink_1`, `shrink_3`: `harmonic_ar` shrunk toward the training mean,
  $\\bar y + \\lambda (f - \\bar y)$, with the $\\lambda \\in [0, 1]$ that fits best (least
  squares) where the forecast can be checked before the held-out part: the baselines refitted
  to the training part less its last stretch as long as the held-out part, scored on that
  stretch (`shrink_1`), or on three such stretches, each half that length earlier
  (`shrink_3`).
"""

from __future__ import annotations

import argparse

import numpy as np

from .._fit._baselines import baselines
from ._forecast import ALL_SERIES, FRACTIONS, train_samples

ALL_FRACTIONS = (0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4)
MIN_TRAIN = 30
"""The shortest training part a shrinkage origin refits the baselines to."""


def shrink_factor(t, y, n_train: int, horizon: int, origins: int) -> float:
    """The least-squares $\\lambda \\in [0, 1]$ of `harmonic_ar` toward the mean, over
    `origins` stretches of `horizon` samples at the end of `y[:n_train]` (each refitted to
    what precedes it); 1 when no stretch fits (a training part too short)."""
    num = den = 0.0
    for k in range(origins):
        n0 = n_train - horizon - k * max(horizon // 2, 1)
        if n0 < MIN_TRAIN:
            break
        n1 = min(n0 + horizon, n_train)
        fc = {}
        baselines(t[:n1], y[:n1], n0, forecasts=fc)
        d, r = fc["harmonic_ar"] - fc["mean"], y[n0:n1] - fc["mean"]
        num, den = num + float(np.sum(d * r)), den + float(np.sum(d * d))
    return float(np.clip(num / den, 0.0, 1.0)) if den > 0 else 1.0


def _shrunk(origins):
    def rule(fc, t, y, n_train):
        lam = shrink_factor(t, y, n_train, t.shape[0] - n_train, origins)
        return fc["mean"] + lam * (fc["harmonic_ar"] - fc["mean"])
    return rule


RULES = {
    "harmonic_ar": lambda fc, *_: fc["harmonic_ar"],
    "median3": lambda fc, *_: np.median(np.stack([fc["harmonic"], fc["harmonic_ar"],
                                                  fc["ar"]]), axis=0),
    "ha_ar_half": lambda fc, *_: 0.5 * fc["harmonic_ar"] + 0.5 * fc["ar"],
    "ha_ar_70_30": lambda fc, *_: 0.7 * fc["harmonic_ar"] + 0.3 * fc["ar"],
    "mean3": lambda fc, *_: (fc["harmonic"] + fc["harmonic_ar"] + fc["ar"]) / 3,
    "shrink_1": _shrunk(1),
    "shrink_3": _shrunk(3),
}


def ratios(names, fractions) -> dict:
    """`{rule: {(series, fraction): ratio}}`: each rule's held-out RMSE over the better of
    training mean and harmonic regression."""
    out = {r: {} for r in RULES}
    for name in names:
        t, y = ALL_SERIES[name]()
        y = y[:, None]
        for f in fractions:
            n = train_samples(t, f)
            fc = {}
            b = baselines(t, y, n, forecasts=fc)
            target = min(b["mean"]["rmse"], b["harmonic"]["rmse"])
            for r, rule in RULES.items():
                e = rule(fc, t, y, n) - y[n:]
                out[r][(name, f)] = float(np.sqrt(np.mean(e * e))) / target
    return out


def summary(per_rule: dict) -> str:
    """A markdown table: per rule, cases at or below the target, worst ratio, cases at the
    table's fractions, geometric mean ratio."""
    lines = ["| rule | at or below target | worst ratio | at the table's fractions | "
             "geometric mean |", "|---|---|---|---|---|"]
    for r, cases in per_rule.items():
        v = np.array(list(cases.values()))
        table = [x for (_, f), x in cases.items() if any(np.isclose(f, FRACTIONS))]
        lines.append(f"| {r} | {int(np.sum(v <= 1))} of {v.size} | {v.max():.3f} | "
                     f"{sum(x <= 1 for x in table)} of {len(table)} | "
                     f"{np.exp(np.mean(np.log(v))):.3f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m oscillax.bench._forecast_rules")
    ap.add_argument("--series", default=",".join(ALL_SERIES))
    ap.add_argument("--fractions", default=",".join(str(f) for f in ALL_FRACTIONS))
    a = ap.parse_args(argv)
    names = a.series.split(",")
    unknown = [s for s in names if s not in ALL_SERIES]
    if unknown:
        ap.error(f"--series: unknown {', '.join(unknown)}; choose from {', '.join(ALL_SERIES)}")
    print(summary(ratios(names, [float(x) for x in a.fractions.split(",")])))


if __name__ == "__main__":
    main()
