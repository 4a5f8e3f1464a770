"""Standard forecasters that every fit is scored against, on the same held-out split.

- the training mean;
- harmonic regression: a constant plus a sine and cosine at each dominant period of the
  training part (the strongest spectral peaks, their frequencies refined by nonlinear
  least squares), fitted by least squares;
- AR(p), $y_k = c + \\sum_{i=1}^p \\phi_i y_{k-i} + \\varepsilon_k$, per channel by least
  squares, the order $p$ by AIC, forecast by iterating it over the held-out part.

Plain numpy and scipy: no statsmodels needed (its `AutoReg` and `ar_select_order` give the
same orders and forecasts).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.optimize

from ._spectrum import spectral_peaks

HARMONIC_MAX_PEAKS = 3
HARMONIC_REL_POWER = 0.1  # a peak is dominant at >= this times the strongest one's power
AR_MAX_SPACING_SPREAD = 0.1  # AR runs on the sample index: spacing within 10 % of median


# ------------------------------------------------------------------- least squares


def _lstsq(X, y):
    """`(beta, residual)` of least squares `X beta ~ y` through the thin SVD (minimum
    norm when `X` is rank-deficient). LAPACK's `gelsd`, which `np.linalg.lstsq` calls,
    was measured 100x slower on these small problems under a multithreaded BLAS."""
    U, s, Vt = np.linalg.svd(X, full_matrices=False)
    keep = s > np.finfo(np.float64).eps * max(X.shape) * s[0] if s.size else s > 0
    Uty = U[:, keep].T @ y
    beta = Vt[keep].T @ (Uty / (s[keep][:, None] if y.ndim == 2 else s[keep]))
    return beta, y - U[:, keep] @ Uty


# ---------------------------------------------------------------------------- mean


def mean_forecast(y_tr, n_ahead: int) -> np.ndarray:
    """The training mean of each channel, repeated: `(n_ahead, p)` for `y_tr` `(N, p)`."""
    return np.broadcast_to(y_tr.mean(axis=0), (n_ahead, y_tr.shape[1])).copy()


# ------------------------------------------------------------------------ harmonic


def _design(t, t0, omegas):
    """Columns $1, \\cos \\omega_k (t - t_0), \\sin \\omega_k (t - t_0)$."""
    phase = np.outer(t - t0, omegas)
    return np.concatenate([np.ones((t.shape[0], 1)), np.cos(phase), np.sin(phase)], axis=1)


def _projection_residual(omegas, t, y):
    return _lstsq(_design(t, t[0], omegas), y)[1].ravel()


def harmonic_frequencies(t_tr, y_tr, *, max_peaks: int = HARMONIC_MAX_PEAKS,
                         rel_power: float = HARMONIC_REL_POWER) -> np.ndarray:
    """The dominant angular frequencies of the training part, refined by least squares.

    They start at `spectral_peaks` (at most `max_peaks`, each with at least `rel_power`
    times the strongest power) and move, each within one frequency bin $2\\pi/T$, to the
    minimum of the harmonic regression's residual (variable projection).
    """
    peaks, _ = spectral_peaks(t_tr, y_tr, max_peaks=max_peaks, rel_power=rel_power)
    if peaks.size == 0:
        return peaks
    bin_w = 2 * np.pi / (t_tr[-1] - t_tr[0])
    lo = np.maximum(peaks - bin_w, 0.5 * peaks)
    hi = peaks + bin_w
    sol = scipy.optimize.least_squares(_projection_residual, peaks, bounds=(lo, hi),
                                       args=(t_tr, y_tr), x_scale=bin_w)
    return sol.x if sol.success and np.all(np.isfinite(sol.x)) else peaks


def harmonic_forecast(t_tr, y_tr, t_new, omegas) -> np.ndarray:
    """Least-squares harmonic regression on `(t_tr, y_tr)` at `omegas`, evaluated at
    `t_new`: `(len(t_new), p)`. With no frequencies it is the training mean."""
    beta, _ = _lstsq(_design(t_tr, t_tr[0], omegas), y_tr)
    return _design(t_new, t_tr[0], omegas) @ beta


# ------------------------------------------------------------------------------ AR


def ar_max_order(n: int) -> int:
    """The largest order tried for `n` training samples: $10\\log_{10} n$ (as R's `ar`),
    capped so that the least-squares fit has at least twice as many rows as parameters."""
    return max(min(int(10 * math.log10(n)), (n - 2) // 3), 0)


def _lagged(z, p, start):
    """Regressors `[1, z[k-1], ..., z[k-p]]` and targets `z[k]` for `k >= start`."""
    n = z.shape[0]
    cols = [np.ones(n - start)] + [z[start - i : n - i] for i in range(1, p + 1)]
    return np.stack(cols, axis=1), z[start:]


def _ar_least_squares(z, p, start):
    """`(coefficients [c, phi_1..phi_p], residual variance)` of AR(p) on `z[start:]`."""
    X, target = _lagged(z, p, start)
    beta, r = _lstsq(X, target)
    return beta, float(r @ r) / target.shape[0]


def ar_select_order(y_tr, max_order: int | None = None) -> tuple[int, np.ndarray]:
    """The AR order by AIC, one order for all channels, and the AIC of each order.

    Every order is fitted on the same samples (after the first `max_order`), so the AICs
    compare: $\\mathrm{AIC}(p) = \\sum_c N_\\text{eff} \\log \\hat\\sigma_c^2 + 2P(p + 1)$ for
    $P$ channels. $\\hat\\sigma^2$ is floored at $10^{-20}$ of the variance, so noise-free
    data pick the lowest order that reproduces them exactly.
    """
    n, P = y_tr.shape
    max_order = ar_max_order(n) if max_order is None else max_order
    var = np.maximum(y_tr.var(axis=0), 1e-300)
    aic = np.empty(max_order + 1)
    for p in range(max_order + 1):
        s2 = np.array([_ar_least_squares(y_tr[:, c], p, max_order)[1] for c in range(P)])
        aic[p] = np.sum((n - max_order) * np.log(np.maximum(s2, 1e-20 * var))) + 2 * P * (p + 1)
    return int(np.argmin(aic)), aic


def ar_forecast(y_tr, n_ahead: int, p: int) -> np.ndarray:
    """AR(p) fitted per channel on all of `y_tr` `(N, P)`, iterated `n_ahead` steps past
    its end (each step feeds on the previous forecasts): `(n_ahead, P)`."""
    out = np.empty((n_ahead, y_tr.shape[1]))
    for c in range(y_tr.shape[1]):
        beta, _ = _ar_least_squares(y_tr[:, c], p, p)
        lags = list(y_tr[y_tr.shape[0] - p :, c][::-1])  # newest first
        with np.errstate(over="ignore", invalid="ignore"):
            for h in range(n_ahead):
                v = beta[0] + (float(np.dot(beta[1:], lags[:p])) if p else 0.0)
                out[h, c] = v
                lags.insert(0, v)
    return out


def _near_uniform(t) -> bool:
    d = np.diff(t)
    med = np.median(d)
    return bool(np.max(np.abs(d - med)) <= AR_MAX_SPACING_SPREAD * med)


# ---------------------------------------------------------------------------- scores


def _finite_or_none(x):
    return float(x) if math.isfinite(x) else None  # a forecast that overflowed


def _scored(forecast, y_val) -> dict:
    with np.errstate(over="ignore", invalid="ignore"):
        e = forecast - y_val
        per = np.sqrt(np.mean(e * e, axis=0))
        total = np.sqrt(np.mean(e * e))
    return {"rmse": _finite_or_none(total),
            "rmse_per_channel": [_finite_or_none(v) for v in per]}


def baselines(t, y, n_train: int) -> dict:
    """Each baseline's forecast of `y[n_train:]` from `y[:n_train]`, scored by RMSE.

    **Arguments:** `t` `(T,)` times, `y` `(T, p)` values, `n_train` training samples.

    **Returns:** `{"mean": {...}, "harmonic": {...}, "ar": {...}}`, each with `rmse` (over
    all held-out samples and channels) and `rmse_per_channel`; `harmonic` adds the
    `frequencies` and `periods` it used, `ar` its order `p` (or, for sample times too
    irregular for an AR on the sample index, `rmse` None and a `skipped` reason).
    """
    t_tr, y_tr, t_val, y_val = t[:n_train], y[:n_train], t[n_train:], y[n_train:]
    n_val = t_val.shape[0]
    out = {"mean": _scored(mean_forecast(y_tr, n_val), y_val)}
    # Peaks and refinement on the standardised channels, so that each weighs the same.
    omegas = harmonic_frequencies(t_tr, (y_tr - y_tr.mean(axis=0)) / y_tr.std(axis=0))
    out["harmonic"] = {**_scored(harmonic_forecast(t_tr, y_tr, t_val, omegas), y_val),
                       "frequencies": np.sort(omegas).tolist(),
                       "periods": (2 * np.pi / np.sort(omegas)).tolist()}
    if _near_uniform(t):
        p, _ = ar_select_order(y_tr)
        out["ar"] = {**_scored(ar_forecast(y_tr, n_val, p), y_val), "p": p}
    else:
        out["ar"] = {"rmse": None, "rmse_per_channel": None, "p": None,
                     "skipped": "sample times not (near-)uniform: an AR needs a regular grid "
                                f"(spacing within {AR_MAX_SPACING_SPREAD:.0%} of its median)"}
    return out


_LABELS = {"network": "the network", "mean": "the training mean",
           "harmonic": "harmonic regression"}


def verdict(network_rmse: float, scores: dict, n_val: int) -> tuple[str, str]:
    """`(best, line)`: the name of the best forecaster and one line that says so.

    Ties go to the earlier of network, mean, harmonic, ar; a NaN or missing RMSE never wins.
    """
    cands = {"network": network_rmse, **{k: v["rmse"] for k, v in scores.items()}}
    finite = {k: v for k, v in cands.items() if v is not None and math.isfinite(v)}
    label = lambda k: f"AR({scores['ar']['p']})" if k == "ar" else _LABELS[k]
    if not finite:
        return None, f"no forecaster has a finite RMSE over the {n_val} held-out samples."
    best = min(finite, key=finite.get)
    others = ", ".join(f"{label(k)} {v:.4g}" for k, v in finite.items() if k != best)
    line = (f"{label(best)} forecasts best over the {n_val} held-out samples: RMSE "
            f"{finite[best]:.4g}" + (f" ({others})." if others else "."))
    return best, line[0].upper() + line[1:]
