"""How well a fit did: RMS errors on the training part and on the held-out forecast,
beside the standard baselines' forecasts of the same held-out part."""

from __future__ import annotations

import numpy as np

from ._baselines import baselines, verdict
from ._result import FitResult

NOTHING_HELD_OUT = ("nothing was held out (`val_fraction` 0, or `train_until` at the last "
                    "sample), so no forecast was scored.")


def _metrics(result: FitResult, t, y, n_train) -> dict:
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

    out = {"train_samples": int(n_train), "val_samples": int(t.shape[0] - n_train)}
    out.update(block(slice(0, n_train), "train"))
    out.update(block(slice(n_train, None), "val"))
    n_val = t.shape[0] - n_train
    if n_val > 0:
        out["baselines"] = baselines(t, y, n_train)
        out["best_forecaster"], out["verdict"] = verdict(out["val_rmse"], out["baselines"],
                                                         n_val)
    else:
        out["baselines"], out["best_forecaster"], out["verdict"] = {}, None, NOTHING_HELD_OUT
    freqs = result.frequencies
    measured = result._measured_from(t_long, y_long)
    out["frequencies"] = freqs.tolist()
    out["periods"] = (2 * np.pi / freqs).tolist()
    out["measured_frequencies"] = measured.tolist()
    out["measured_periods"] = (2 * np.pi / measured).tolist()
    return out
