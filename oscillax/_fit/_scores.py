"""How well a fit did: RMS errors on the training part and on the held-out forecast,
beside the standard baselines' forecasts of the same held-out part; and which of them is
the forecast, chosen on the selection part (the end of the training part, which neither
the network nor the baselines were fitted to when they were compared there)."""

from __future__ import annotations

import math

import numpy as np

from ._baselines import baselines, label, listing, lowest, verdict
from ._result import FitResult

NOTHING_HELD_OUT = ("nothing was held out (`val_fraction` 0, or `train_until` at the last "
                    "sample), so no forecast was scored.")


SIMPLEST_FIRST = ("mean", "harmonic", "ar", "network")
"""The order in which a forecaster is kept when its lead is within the noise."""
SIGNIFICANCE_Z = 1.645
"""A lead on the selection part counts when it exceeds this many standard errors: the
one-sided 5 % level of the Diebold-Mariano test."""


def _newey_west_se(d) -> float:
    """Standard error of the mean of the series `d`, autocorrelation included: Newey and
    West's Bartlett-kernel estimate with their rule-of-thumb lag $\\lfloor 4 (n/100)^{2/9}
    \\rfloor$ (as in the Diebold-Mariano test of equal forecast accuracy)."""
    n = d.shape[0]
    e = d - d.mean()
    lag = min(int(4 * (n / 100) ** (2 / 9)), n - 1)
    var = e @ e / n
    for j in range(1, lag + 1):
        var += 2 * (1 - j / (lag + 1)) * (e[j:] @ e[:-j]) / n
    return math.sqrt(max(var, 0.0) / n)


def _selection(yh, t, y, n_train, n_fit) -> dict:
    """Every forecaster fitted to `[:n_fit]` and scored on `[n_fit:n_train]`.

    The lowest MSE there leads; the forecast is the simplest forecaster (`SIMPLEST_FIRST`)
    that the leader does not beat significantly: by more than `SIGNIFICANCE_Z` standard
    errors of the mean difference of per-sample squared errors (`_newey_west_se`; the
    Diebold-Mariano test, one-sided at 5 %). So the network is the forecast only when it
    beats the standard forecasters by more than the noise of the comparison.
    """
    y_sel = y[n_fit:n_train]
    errs = {"network": yh[n_fit:n_train] - y_sel}
    fc = {}
    scores = baselines(t[:n_train], y[:n_train], n_fit, forecasts=fc)
    errs.update({k: f - y_sel for k, f in fc.items()})
    with np.errstate(over="ignore", invalid="ignore"):
        sq = {k: np.mean(e * e, axis=1) for k, e in errs.items()}
    net = float(np.sqrt(np.mean(sq["network"])))
    lead = lowest(net, scores) or "network"
    margin = {}
    chosen = lead
    for k in SIMPLEST_FIRST:
        if k not in sq or not np.all(np.isfinite(sq[k])):
            continue
        d = sq[k] - sq[lead]
        margin[k] = {"excess_mse": float(d.mean()), "se": _newey_west_se(d)}
        if k == lead or d.mean() <= SIGNIFICANCE_Z * margin[k]["se"]:
            chosen = k
            break
    return {"samples": int(n_train - n_fit), "from": float(t[n_fit]),
            "until": float(t[n_train - 1]), "network_rmse": net, "baselines": scores,
            "lowest": lead, "chosen": chosen, "margins": margin}


def _sentence(m: dict, n_val: int) -> str:
    """The one-line verdict: what the forecast is, why, and how it did."""
    b, sel = m["baselines"], m["selection"]
    chosen = m["forecaster"]
    if sel is None:
        why = "no selection part (`select_fraction` 0), so the network is the forecast"
    else:
        why = (f"chosen on the {sel['samples']} selection samples at the end of the "
               f"training part, RMSE {listing(sel['network_rmse'], sel['baselines'])}")
        lead = sel["lowest"]
        if chosen != lead:
            why += (f"; {label(lead, b)} led there, but not significantly (Diebold-Mariano, "
                    f"5 %), so {label(chosen, b)}, simpler, is kept")
        if chosen != "network" and lead != "network":
            why += "; the network did not beat the baselines there"
    best, line = verdict(m["val_rmse"], b, n_val)
    head = f"The forecast is {label(chosen, b)} ({why})"
    if m["forecast_rmse"] is None:
        return f"{head}. {line}"
    return f"{head}; held out, its RMSE is {m['forecast_rmse']:.4g}. {line}"


def _metrics(result: FitResult, t, y, n_train, n_fit=None) -> dict:
    # One forward pass serves both the scores and the long run that measures frequencies.
    t_long = result._measure_times()
    out_all = result._eval(np.concatenate([t, t_long]), readout=True)
    yh, y_long = out_all[: t.shape[0]], out_all[t.shape[0]:]
    y_tr = y[:n_train]
    std = y_tr.std(axis=0)
    amp = 0.5 * (y_tr.max(axis=0) - y_tr.min(axis=0))

    def block(sl, name):
        e = yh[sl] - y[sl]
        if e.shape[0] == 0:
            return {}
        rmse = np.sqrt(np.mean(e * e, axis=0))
        return {
            f"{name}_rmse": float(np.sqrt(np.mean(e * e))),
            f"{name}_nrmse": float(np.mean(rmse / std)),
            f"{name}_rel_amp": float(np.mean(rmse / amp)),
            f"{name}_rmse_per_channel": rmse.tolist(),
        }

    n_fit = n_train if n_fit is None else n_fit
    out = {"train_samples": int(n_train), "fit_samples": int(n_fit),
           "val_samples": int(t.shape[0] - n_train)}
    out.update(block(slice(0, n_fit), "train"))
    out.update(block(slice(n_train, None), "val"))
    out["selection"] = _selection(yh, t, y, n_train, n_fit) if n_fit < n_train else None
    out["forecaster"] = "network" if out["selection"] is None else out["selection"]["chosen"]
    n_val = t.shape[0] - n_train
    if n_val > 0:
        out["baselines"] = baselines(t, y, n_train)
        f = out["forecaster"]
        out["forecast_rmse"] = out["val_rmse"] if f == "network" else out["baselines"][f]["rmse"]
        out["best_forecaster"], _ = verdict(out["val_rmse"], out["baselines"], n_val)
        out["verdict"] = _sentence(out, n_val)
    else:
        out["baselines"], out["best_forecaster"], out["forecast_rmse"] = {}, None, None
        out["verdict"] = NOTHING_HELD_OUT
    freqs = result.frequencies
    measured = result._measured_from(t_long, y_long)
    out["frequencies"] = freqs.tolist()
    out["periods"] = (2 * np.pi / freqs).tolist()
    out["measured_frequencies"] = measured.tolist()
    out["measured_periods"] = (2 * np.pi / measured).tolist()
    return out
