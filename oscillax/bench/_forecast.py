"""The forecast workload: `ox.fit` on real recorded oscillations, each forecast scored on
its last 20 % beside the standard baselines (training mean, harmonic regression, AR(p), and
harmonic regression with AR errors, the baseline forecast `fit` falls back on) on
the same split, with the wall time of the whole fit.

The series come with statsmodels (the `test` extra), offline:

- `sunspots`: yearly sunspot numbers, 1700-2008 (309 samples, the ~11-year cycle);
- `elnino`: monthly sea-surface temperature of the Niño 1+2 region, 1950-2010 (732);
- `co2`: Mauna Loa CO2, weekly 1958-2001, averaged per month (gaps interpolated), less its
  quadratic trend (526 samples): the seasonal oscillation and what the trend leaves. The
  trend is that of the whole record, so the task is the oscillation: a trend fitted to the
  training part alone misses the held-out part by ~3 ppm (measured), which no oscillator
  forecasts and which would swamp the comparison.

- `nile`: yearly Nile flow at Aswan, 1871-1970 (100 samples; weak, irregular swings);
- `lynx`: yearly Canadian lynx trappings, 1821-1934 (114 samples, the ~10-year cycle; R's
  `lynx`, Brockwell & Davis 1991), written out in `_series` (statsmodels does not ship it).

`--wider` adds four seasonal series, written out in `_series` (no statsmodels needed), added
after the forecast rule had been chosen on the five above (its residual AR order, AICc, was
then chosen on all nine):

- `wineind`: monthly Australian wine sales, 1980-1994 (176 samples);
- `woolyrnq`: quarterly Australian woollen yarn production, 1965-1994 (119);
- `ausbeer`: quarterly Australian beer production, 1956-2008 (211), less its whole-record
  quadratic trend (as `co2`);
- `airpassengers`: monthly airline passengers, 1949-1960 (144; Box & Jenkins' series G),
  its logarithm less the whole-record quadratic trend.

Without statsmodels the first four rows are skipped with that reason.
`python -m oscillax.bench._forecast [--quick]` prints the rows' numbers as one JSON line;
`--table` fits every series at each hold-out fraction of `FRACTIONS` and prints a markdown
table of the chosen forecast's held-out RMSE against the baselines' (`--fractions`,
`--series` narrow it, `--wider` adds the four series above; `--baselines-only` skips the
network: seconds instead of minutes).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass

import numpy as np

from ._harness import OK, SKIPPED, Result
from ._series import AIRPASSENGERS, AUSBEER, LYNX, WINEIND, WOOLYRNQ

VAL_FRACTION = 0.2
FRACTIONS = (0.15, 0.2, 0.25, 0.3)
"""The hold-out fractions of `--table`: the forecast must hold up at each, not at one."""


@dataclass(frozen=True)
class _Row:
    name: str


def _sm():
    import statsmodels.api as sm

    return sm


def sunspots():
    d = _sm().datasets.sunspots.load_pandas().data
    return d["YEAR"].to_numpy(np.float64), d["SUNACTIVITY"].to_numpy(np.float64)


def elnino():
    d = _sm().datasets.elnino.load_pandas().data
    y = d.iloc[:, 1:].to_numpy(np.float64).ravel()  # one row per year, 12 month columns
    return float(d["YEAR"].iloc[0]) + np.arange(y.shape[0]) / 12, y


def co2():
    d = _sm().datasets.co2.load_pandas().data["co2"]
    m = d.resample("MS").mean().interpolate()
    t = (m.index.year + (m.index.month - 1) / 12).to_numpy(np.float64)
    return t, _whole_record_detrended(t, m.to_numpy(np.float64))


def nile():
    d = _sm().datasets.nile.load_pandas().data
    return d["year"].to_numpy(np.float64), d["volume"].to_numpy(np.float64)


def lynx():
    y = np.asarray(LYNX, np.float64)
    return 1821.0 + np.arange(y.shape[0]), y


def _whole_record_detrended(t, y):
    """`y` less its quadratic trend over the whole record (as `co2`: the task is the
    oscillation, not the trend)."""
    c = np.polyfit(t - t[0], y, 2)
    return y - np.polyval(c, t - t[0])


def wineind():
    y = np.asarray(WINEIND, np.float64)
    return 1980.0 + np.arange(y.shape[0]) / 12, y


def woolyrnq():
    y = np.asarray(WOOLYRNQ, np.float64)
    return 1965.0 + np.arange(y.shape[0]) / 4, y


def ausbeer():
    y = np.asarray(AUSBEER, np.float64)
    t = 1956.0 + np.arange(y.shape[0]) / 4
    return t, _whole_record_detrended(t, y)


def airpassengers():
    y = np.log(np.asarray(AIRPASSENGERS, np.float64))  # the seasonal swing grows with the level
    t = 1949.0 + np.arange(y.shape[0]) / 12
    return t, _whole_record_detrended(t, y)


SERIES = {"sunspots": sunspots, "elnino": elnino, "co2": co2, "nile": nile, "lynx": lynx}
WIDER = {"wineind": wineind, "woolyrnq": woolyrnq, "ausbeer": ausbeer,
         "airpassengers": airpassengers}
"""Four more seasonal series (`--wider`), added after the forecast rule (`harmonic_ar` unless
the network beats it significantly) had been chosen on `SERIES`, as a check on other data;
the residual AR order by AICc was chosen on all nine."""
ALL_SERIES = {**SERIES, **WIDER}
NEEDS = {"lynx": None, **{name: None for name in WIDER}}
"""What a row needs beside statsmodels (None: nothing, not even statsmodels)."""
QUICK_SERIES = ("sunspots", "nile")
"""`--quick`: two series (the others take as long each)."""


def _available(name: str) -> str | None:
    """None when the row's data loads offline, else what is missing."""
    try:
        ALL_SERIES[name]()
    except ImportError:
        return NEEDS.get(name, "statsmodels")
    return None


def run_series(name: str, quick: bool = False, seed: int = 0,
               val_fraction: float = VAL_FRACTION) -> dict:
    """One fit of one series: its wall time, the forecaster chosen and every RMSE."""
    import oscillax as ox

    t, y = ALL_SERIES[name]()
    kw = dict(iterations=60, restarts=2) if quick else {}
    t0 = time.perf_counter()
    res = ox.fit(t, y, val_fraction=val_fraction, seed=seed, **kw)
    wall = time.perf_counter() - t0
    m = res.metrics
    b = m["baselines"]
    best_simple = min(v for v in (b["mean"]["rmse"], b["harmonic"]["rmse"]) if v is not None)
    return {
        "series": name, "seed": seed, "val_fraction": val_fraction,
        "samples": int(t.shape[0]), "wall_s": wall,
        "setup_s": res.timings["setup_s"], "train_s": res.timings["train_s"],
        "hidden": res.model.n, "stopped_at": res.options["stopped_at"],
        "forecaster": m["forecaster"], "forecast_rmse": m["forecast_rmse"],
        "network_rmse": m["val_rmse"], "combined_rmse": m["combined"]["rmse"],
        "baseline_rmse": {k: v["rmse"] for k, v in b.items()},
        "ar_p": b["ar"]["p"], "harmonic_ar_q": b["harmonic_ar"]["q"],
        "selection_rmse": {"network": m["selection"]["network_rmse"],
                           "combined": m["selection"]["combined_rmse"],
                           **{k: v["rmse"] for k, v in m["selection"]["baselines"].items()}},
        "forecast_beats_mean_and_harmonic": m["forecast_rmse"] <= best_simple,
        "forecast_beats_ar": m["forecast_rmse"] <= (b["ar"]["rmse"] or float("inf")),
        "network_beats_ar": m["val_rmse"] <= (b["ar"]["rmse"] or float("inf")),
        "verdict": m["verdict"],
    }


def train_samples(t, val_fraction: float) -> int:
    """The training samples when the last `val_fraction` of the time span is held out (as
    `ox.fit` splits)."""
    return int(np.searchsorted(t, t[0] + (1 - val_fraction) * (t[-1] - t[0]), side="right"))


def baseline_row(name: str, val_fraction: float) -> dict:
    """The baselines alone (no network: a fraction of a second) on one series and split, as
    `run_series` splits it: each held-out RMSE, and `forecast_rmse`, that of the baseline
    forecast the rule falls back on (`_scores.BASELINE`)."""
    from .._fit._baselines import baselines
    from .._fit._scores import BASELINE

    t, y = ALL_SERIES[name]()
    n_train = train_samples(t, val_fraction)
    b = baselines(t, y[:, None], n_train)
    return {"series": name, "val_fraction": val_fraction, "forecaster": BASELINE,
            "forecast_rmse": b[BASELINE]["rmse"], "ar_p": b["ar"]["p"],
            "baseline_rmse": {k: v["rmse"] for k, v in b.items()}}


def table(rows) -> str:
    """A markdown table of `run_series` (or `baseline_row`) rows: the chosen forecast's
    held-out RMSE beside the mean's, harmonic regression's and AR's, its ratio to the
    better of mean and harmonic regression (the target: <= 1) and to AR's."""
    head = ("| series | held out | mean | harmonic | AR(p) | chosen | chosen RMSE | "
            "/ min(mean, harm.) | / AR |\n|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        b = r["baseline_rmse"]
        simple = min(b["mean"], b["harmonic"])
        f = r["forecast_rmse"]
        lines.append(f"| {r['series']} | {r['val_fraction']:.0%} | {b['mean']:.4g} | "
                     f"{b['harmonic']:.4g} | {b['ar']:.4g} (p = {r['ar_p']}) | "
                     f"{r['forecaster']} | {f:.4g} | {f / simple:.3f} | {f / b['ar']:.3f} |")
    ok = sum(r["forecast_rmse"] <= min(r["baseline_rmse"]["mean"], r["baseline_rmse"]["harmonic"])
             for r in rows)
    ar = sum(r["forecast_rmse"] <= r["baseline_rmse"]["ar"] for r in rows)
    lines.append(f"\nat or below min(mean, harmonic): {ok} of {len(rows)}; at or below AR: "
                 f"{ar} of {len(rows)}")
    return "\n".join(lines)


class Forecast:
    """`ox.fit` on sunspots, El Niño, detrended CO2, Nile and lynx beside the baselines."""

    name = "forecast"
    title = ("forecasts of real oscillations (statsmodels data): ox.fit's chosen forecast vs "
             "training mean, harmonic regression, AR(p); held-out RMSE, wall time")

    def __init__(self, quick: bool, repeats: int):
        self.quick = quick
        self.series = QUICK_SERIES if quick else tuple(SERIES)

    def impls(self) -> list[_Row]:
        return [_Row(f"ox.fit {name}") for name in self.series]

    def run(self, log=print) -> dict:
        rows, extra = [], {}
        try:
            _sm()
        except ImportError:
            rows = [Result(impl=r.name, status=SKIPPED, note="not installed: statsmodels")
                    for r in self.impls()]
            return {"name": self.name, "title": self.title, "params": {"quick": self.quick},
                    "traj_steps": None, "results": [r.to_json() for r in rows], "extra": {}}
        for name in self.series:
            missing = _available(name)
            if missing is not None:
                rows.append(Result(impl=f"ox.fit {name}", status=SKIPPED,
                                   note=f"not installed: {missing}"))
                continue
            log(f"  {self.name}: ox.fit {name} ...")
            m = run_series(name, self.quick)
            extra[name] = m
            b = m["baseline_rmse"]
            note = (f"forecast = {m['forecaster']}, RMSE {m['forecast_rmse']:.4g}; network "
                    f"{m['network_rmse']:.4g}, combined {m['combined_rmse']:.4g}, mean "
                    f"{b['mean']:.4g}, harmonic {b['harmonic']:.4g}, AR({m['ar_p']}) "
                    f"{b['ar']:.4g}, harmonic + AR({m['harmonic_ar_q']}) errors "
                    f"{b['harmonic_ar']:.4g}; rate = samples / s")
            rows.append(Result(
                impl=f"ox.fit {name}", status=OK, first_call_s=m["wall_s"], run_s=m["wall_s"],
                compile_s=0.0, setup_s=m["setup_s"], traj_steps=m["samples"],
                traj_steps_per_s=m["samples"] / m["wall_s"], ratio_to_oscillax=1.0,
                note=note, extra=m,
                description=f"ox.fit defaults, last {VAL_FRACTION:.0%} held out"))
            log(f"    {note} ({m['wall_s']:.1f} s)")
        return {"name": self.name, "title": self.title, "params": {"quick": self.quick},
                "traj_steps": sum(r.traj_steps or 0 for r in rows),
                "results": [r.to_json() for r in rows], "extra": extra}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m oscillax.bench._forecast")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--series", default=",".join(SERIES))
    ap.add_argument("--seeds", default="0", help="comma-separated seeds, one fit each")
    ap.add_argument("--table", action="store_true",
                    help="every series at every hold-out fraction, as a markdown table")
    ap.add_argument("--fractions", default=",".join(str(f) for f in FRACTIONS))
    ap.add_argument("--wider", action="store_true",
                    help="with --table: also the four seasonal series of WIDER")
    ap.add_argument("--baselines-only", action="store_true",
                    help="with --table: the baselines alone, no network")
    ap.add_argument("--json", default=None, help="with --table: also write the rows here")
    a = ap.parse_args(argv)
    names = a.series.split(",") + (list(WIDER) if a.wider else [])
    unknown = [s for s in names if s not in ALL_SERIES]
    if unknown:
        ap.error(f"--series: unknown {', '.join(unknown)}; choose from {', '.join(ALL_SERIES)}")
    if a.table:
        rows = []
        for s in names:
            for f in (float(x) for x in a.fractions.split(",")):
                rows.append(baseline_row(s, f) if a.baselines_only
                            else run_series(s, a.quick, int(a.seeds.split(",")[0]), f))
                print(f"  {s} {f:.0%}: {rows[-1]['forecaster']} {rows[-1]['forecast_rmse']:.4g}",
                      flush=True)
        if a.json:
            with open(a.json, "w") as fh:
                json.dump(rows, fh)
        print(table(rows))
        return
    print(json.dumps([run_series(s, a.quick, int(k)) for s in names
                      for k in a.seeds.split(",")]))


if __name__ == "__main__":
    main()
