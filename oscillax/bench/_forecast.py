"""The forecast workload: `ox.fit` on real recorded oscillations, each forecast scored on
its last 20 % beside the standard baselines (training mean, harmonic regression, AR(p)) on
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
- `lynx`: yearly Canadian lynx trappings, 1821-1934 (114 samples, the ~10-year cycle), from
  pmdarima's `load_lynx` (statsmodels does not ship it offline: without pmdarima that row is
  skipped).

Without statsmodels every row is skipped with that reason.
`python -m oscillax.bench._forecast [--quick]` prints the rows' numbers as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass

import numpy as np

from ._harness import OK, SKIPPED, Result

VAL_FRACTION = 0.2


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
    y = m.to_numpy(np.float64)
    c = np.polyfit(t - t[0], y, 2)
    return t, y - np.polyval(c, t - t[0])


def nile():
    d = _sm().datasets.nile.load_pandas().data
    return d["year"].to_numpy(np.float64), d["volume"].to_numpy(np.float64)


def lynx():
    from pmdarima.datasets import load_lynx

    y = np.asarray(load_lynx(), np.float64)
    return 1821.0 + np.arange(y.shape[0]), y


SERIES = {"sunspots": sunspots, "elnino": elnino, "co2": co2, "nile": nile, "lynx": lynx}
NEEDS = {"lynx": "pmdarima"}
"""What a row needs beside statsmodels."""
QUICK_SERIES = ("sunspots", "nile")
"""`--quick`: two series (the others take as long each)."""


def _available(name: str) -> str | None:
    """None when the row's data loads offline, else what is missing."""
    try:
        SERIES[name]()
    except ImportError:
        return NEEDS.get(name, "statsmodels")
    return None


def run_series(name: str, quick: bool = False, seed: int = 0) -> dict:
    """One fit of one series: its wall time, the forecaster chosen and every RMSE."""
    import oscillax as ox

    t, y = SERIES[name]()
    kw = dict(iterations=60, restarts=2) if quick else {}
    t0 = time.perf_counter()
    res = ox.fit(t, y, val_fraction=VAL_FRACTION, seed=seed, **kw)
    wall = time.perf_counter() - t0
    m = res.metrics
    b = m["baselines"]
    best_simple = min(v for v in (b["mean"]["rmse"], b["harmonic"]["rmse"]) if v is not None)
    return {
        "series": name, "seed": seed, "samples": int(t.shape[0]), "wall_s": wall,
        "setup_s": res.timings["setup_s"], "train_s": res.timings["train_s"],
        "hidden": res.model.n, "stopped_at": res.options["stopped_at"],
        "forecaster": m["forecaster"], "forecast_rmse": m["forecast_rmse"],
        "network_rmse": m["val_rmse"], "combined_rmse": m["combined"]["rmse"],
        "baseline_rmse": {k: v["rmse"] for k, v in b.items()},
        "ar_p": b["ar"]["p"],
        "selection_rmse": {"network": m["selection"]["network_rmse"],
                           "combined": m["selection"]["combined_rmse"],
                           **{k: v["rmse"] for k, v in m["selection"]["baselines"].items()}},
        "forecast_beats_mean_and_harmonic": m["forecast_rmse"] <= best_simple,
        "forecast_beats_ar": m["forecast_rmse"] <= (b["ar"]["rmse"] or float("inf")),
        "network_beats_ar": m["val_rmse"] <= (b["ar"]["rmse"] or float("inf")),
        "verdict": m["verdict"],
    }


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
                    f"{b['mean']:.4g}, harmonic "
                    f"{b['harmonic']:.4g}, AR({m['ar_p']}) {b['ar']:.4g}; rate = samples / s")
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
    a = ap.parse_args(argv)
    print(json.dumps([run_series(s, a.quick, int(k)) for s in a.series.split(",")
                      for k in a.seeds.split(",")]))


if __name__ == "__main__":
    main()
