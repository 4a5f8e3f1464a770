"""Standard forecasters that every fit is scored against, on the same held-out split.

- the training mean;
- harmonic regression: a constant plus a sine and cosine at each dominant period of the
  training part (the strongest spectral peaks, their frequencies refined by nonlinear
  least squares), fitted by least squares;
- AR(p), $y_k = c + \\sum_{i=1}^p \\phi_i y_{k-i} + \\varepsilon_k$, per channel by least
  squares, the order $p$ by AIC, forecast by iterating it over the held-out part;
- harmonic regression with AR errors (`harmonic_ar`, "dynamic harmonic regression"): the
  harmonic regression at those dominant periods that fit in the training window, plus an
  AR(q) of its residuals (q by AICc), whose forecast decays back onto the sinusoids. It
  nests the other three (no period: the mean plus an AR; q = 0: harmonic regression) and
  is the baseline forecast that `fit` falls back on (`_scores._selection`).

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
RESIDUAL_AR_CRITERION = "aicc"
"""How `harmonic_ar` orders its residuals' AR: AICc, AIC with the small-sample correction
(as R's `forecast::auto.arima`). On the nine series of `python -m oscillax.bench._forecast
--table --baselines-only --wider` at hold-out fractions 10, 15, ..., 40 %, its forecast was at
or below the better of mean and harmonic regression in 54 of 63 cases against 53 with AIC,
its worst ratio to that was 1.11 against 1.32 and the geometric mean 0.867 against 0.877
(AIC chose AR(24) residuals on detrended CO2 with 25 % held out, and AR(19) on detrended
Australian beer with 15 %: measured). The AR(p) baseline keeps AIC, the standard choice."""


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


def harmonic_coefficients(t_tr, y_tr, omegas) -> np.ndarray:
    """`(1 + 2k, p)` least-squares coefficients of the columns of `_design(t, t_tr[0], ...)`."""
    return _lstsq(_design(t_tr, t_tr[0], omegas), y_tr)[0]


def harmonic_forecast(t_tr, y_tr, t_new, omegas) -> np.ndarray:
    """Least-squares harmonic regression on `(t_tr, y_tr)` at `omegas`, evaluated at
    `t_new`: `(len(t_new), p)`. With no frequencies it is the training mean."""
    return _design(t_new, t_tr[0], omegas) @ harmonic_coefficients(t_tr, y_tr, omegas)


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


def ar_select_order(y_tr, max_order: int | None = None,
                    criterion: str = "aic") -> tuple[int, np.ndarray]:
    """The AR order by AIC (or AICc), one order for all channels, and each order's value.

    Every order is fitted on the same samples (after the first `max_order`), so the values
    compare: $\\mathrm{AIC}(p) = \\sum_c N_\\text{eff} \\log \\hat\\sigma_c^2 + 2P(p + 1)$ for
    $P$ channels. $\\hat\\sigma^2$ is floored at $10^{-20}$ of the variance, so noise-free
    data pick the lowest order that reproduces them exactly. `criterion="aicc"` adds the
    small-sample correction of Hurvich and Tsai (1989) for each channel's $k = p + 1$
    coefficients, $2k(k + 1)/(N_\\text{eff} - k - 1)$ (infinite when $k \\ge N_\\text{eff} - 1$),
    which AIC's $2k$ alone lets long AR fits on short records overfit.
    """
    if criterion not in ("aic", "aicc"):
        raise ValueError(f"`criterion` must be 'aic' or 'aicc'; got {criterion!r}.")
    n, P = y_tr.shape
    max_order = ar_max_order(n) if max_order is None else max_order
    var = np.maximum(y_tr.var(axis=0), 1e-300)
    n_eff = n - max_order
    aic = np.empty(max_order + 1)
    for p in range(max_order + 1):
        s2 = np.array([_ar_least_squares(y_tr[:, c], p, max_order)[1] for c in range(P)])
        aic[p] = np.sum(n_eff * np.log(np.maximum(s2, 1e-20 * var))) + 2 * P * (p + 1)
        if criterion == "aicc":
            k = p + 1
            aic[p] += (P * 2 * k * (k + 1) / (n_eff - k - 1)) if n_eff - k - 1 > 0 else np.inf
    return int(np.argmin(aic)), aic


def ar_coefficients(y_tr, p: int) -> np.ndarray:
    """`(P, 1 + p)`: `[c, phi_1, ..., phi_p]` of AR(p) fitted per channel on all of `y_tr`."""
    return np.stack([_ar_least_squares(y_tr[:, c], p, p)[0] for c in range(y_tr.shape[1])])


def ar_iterate(coefficients, last, n_ahead: int) -> np.ndarray:
    """The AR recurrences `coefficients` `(P, 1 + p)` iterated `n_ahead` steps past the
    samples `last` `(p, P)` (oldest first), each step feeding on the previous forecasts."""
    coefficients, last = np.asarray(coefficients, np.float64), np.asarray(last, np.float64)
    P, p = coefficients.shape[0], coefficients.shape[1] - 1
    out = np.empty((n_ahead, P))
    for c in range(P):
        beta = coefficients[c]
        lags = list(last[last.shape[0] - p :, c][::-1]) if p else []  # newest first
        with np.errstate(over="ignore", invalid="ignore"):
            for h in range(n_ahead):
                v = beta[0] + (float(np.dot(beta[1:], lags[:p])) if p else 0.0)
                out[h, c] = v
                lags.insert(0, v)
    return out


def ar_forecast(y_tr, n_ahead: int, p: int) -> np.ndarray:
    """AR(p) fitted per channel on all of `y_tr` `(N, P)`, iterated `n_ahead` steps past
    its end (each step feeds on the previous forecasts): `(n_ahead, P)`."""
    return ar_iterate(ar_coefficients(y_tr, p), y_tr[y_tr.shape[0] - p :], n_ahead)


def _near_uniform(t) -> bool:
    d = np.diff(t)
    med = np.median(d)
    return bool(np.max(np.abs(d - med)) <= AR_MAX_SPACING_SPREAD * med)


# ----------------------------------------------------- harmonic regression + AR errors


def window_frequencies(t_tr, omegas) -> np.ndarray:
    """The `omegas` whose period fits in the training window (at least one whole cycle):
    a longer "period" is a trend the window cannot tell from one, and extrapolating it is
    what made harmonic regression the worst forecast on yearly Nile flow (measured)."""
    omegas = np.asarray(omegas, np.float64)
    return omegas[2 * np.pi / omegas <= (t_tr[-1] - t_tr[0]) * (1 + 1e-12)]


def harmonic_ar_fit(t_tr, y_tr, omegas, uniform: bool) -> dict:
    """Harmonic regression at `window_frequencies(t_tr, omegas)` plus AR(q) errors (q by
    AICc, `RESIDUAL_AR_CRITERION`; one order for all channels), fitted to `(t_tr, y_tr)`:
    the spec that `baseline_predict("harmonic_ar", ...)` forecasts from. Without a
    (near-)uniform grid (`uniform` False) there is no AR: `q` is None and the forecast is
    the sinusoids."""
    om = window_frequencies(t_tr, omegas)
    beta = harmonic_coefficients(t_tr, y_tr, om)
    spec = {"frequencies": om.tolist(), "periods": (2 * np.pi / om).tolist(),
            "t_ref": float(t_tr[0]), "coefficients": beta.tolist(), "q": None}
    if uniform:
        resid = y_tr - _design(t_tr, t_tr[0], om) @ beta
        q, _ = ar_select_order(resid, criterion=RESIDUAL_AR_CRITERION)
        spec.update(q=q, ar_coefficients=ar_coefficients(resid, q).tolist(),
                    last=resid[resid.shape[0] - q :].tolist(), t_last=float(t_tr[-1]),
                    spacing=float(np.median(np.diff(t_tr))))
    return spec


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


def baselines(t, y, n_train: int, forecasts: dict | None = None) -> dict:
    """Each baseline's forecast of `y[n_train:]` from `y[:n_train]`, scored by RMSE.

    **Arguments:** `t` `(T,)` times, `y` `(T, p)` values, `n_train` training samples;
    `forecasts`: a dict that receives each baseline's forecast `(T - n_train, p)`.

    **Returns:** `{"mean": {...}, "harmonic": {...}, "harmonic_ar": {...}, "ar": {...}}`,
    each with `rmse` (over all held-out samples and channels) and `rmse_per_channel`, and
    what `baseline_predict` needs to forecast again: `mean` its `value`; `harmonic` the
    `frequencies` and `periods` it used, its `t_ref` and `coefficients`; `harmonic_ar`
    the same for its sinusoids (those of `harmonic` that fit in the training window) and
    its residuals' AR order `q` (None without a uniform grid), `ar_coefficients`, `last`
    q residuals, `t_last` and `spacing`; `ar` its order `p`, `coefficients`,
    the `last` p training samples, their time `t_last` and `spacing` (or, for sample times
    too irregular for an AR on the sample index, `rmse` None and a `skipped` reason).
    """
    t_tr, y_tr, t_val, y_val = t[:n_train], y[:n_train], t[n_train:], y[n_train:]
    n_val = t_val.shape[0]
    got = {} if forecasts is None else forecasts
    got["mean"] = mean_forecast(y_tr, n_val)
    out = {"mean": {**_scored(got["mean"], y_val), "value": y_tr.mean(axis=0).tolist()}}
    # Peaks and refinement on the standardised channels, so that each weighs the same.
    omegas = np.sort(harmonic_frequencies(t_tr, (y_tr - y_tr.mean(axis=0)) / y_tr.std(axis=0)))
    beta = harmonic_coefficients(t_tr, y_tr, omegas)
    got["harmonic"] = _design(t_val, t_tr[0], omegas) @ beta
    out["harmonic"] = {**_scored(got["harmonic"], y_val),
                       "frequencies": omegas.tolist(),
                       "periods": (2 * np.pi / omegas).tolist(),
                       "t_ref": float(t_tr[0]), "coefficients": beta.tolist()}
    uniform = _near_uniform(t)
    spec = harmonic_ar_fit(t_tr, y_tr, omegas, uniform)
    got["harmonic_ar"] = baseline_predict("harmonic_ar", spec, t_val,
                                          steps=np.arange(1, n_val + 1))
    out["harmonic_ar"] = {**_scored(got["harmonic_ar"], y_val), **spec}
    if uniform:
        p, _ = ar_select_order(y_tr)
        coef, last = ar_coefficients(y_tr, p), y_tr[y_tr.shape[0] - p :]
        got["ar"] = ar_iterate(coef, last, n_val)
        out["ar"] = {**_scored(got["ar"], y_val), "p": p,
                     "coefficients": coef.tolist(), "last": last.tolist(),
                     "t_last": float(t_tr[-1]), "spacing": float(np.median(np.diff(t)))}
    else:
        out["ar"] = {"rmse": None, "rmse_per_channel": None, "p": None,
                     "skipped": "sample times not (near-)uniform: an AR needs a regular grid "
                                f"(spacing within {AR_MAX_SPACING_SPREAD:.0%} of its median)"}
    return out


COMBINED_WEIGHT = 0.5
"""The network's weight in the combined forecast (its partner baseline has the rest)."""


def combination_partner(scores: dict) -> str:
    """The baseline that the combined forecast averages the network with: AR(p) when it
    was fitted (its forecast follows the last samples, then decays to the mean, while the
    network's carries the oscillation on), else (sample times too irregular for an AR)
    harmonic regression."""
    return "ar" if scores.get("ar", {}).get("p") is not None else "harmonic"


def combine(network, baseline):
    """The combined forecast: `COMBINED_WEIGHT` of the network's plus the rest of its
    partner baseline's."""
    return COMBINED_WEIGHT * network + (1 - COMBINED_WEIGHT) * baseline


ORDER = ("network", "combined", "mean", "harmonic", "ar", "harmonic_ar")
"""Ties go to the earlier: the network first, then the combined forecast, then the simpler
baselines."""

_LABELS = {"network": "the network", "mean": "the training mean",
           "harmonic": "harmonic regression"}


def label(name: str, scores: dict) -> str:
    """How a report names a forecaster: "the network", "AR(3)", "the network averaged with
    AR(3)", "harmonic regression with AR(2) errors", ..."""
    if name == "combined":
        return f"the network averaged with {label(combination_partner(scores), scores)}"
    if name == "harmonic_ar":
        q = scores["harmonic_ar"].get("q")
        return ("harmonic regression (periods within the training window)" if q is None
                else f"harmonic regression with AR({q}) errors")
    return f"AR({scores['ar']['p']})" if name == "ar" else _LABELS[name]


def _finite(network_rmse, scores, combined=None) -> dict:
    cands = {"network": network_rmse, "combined": combined,
             **{k: v["rmse"] for k, v in scores.items()}}
    return {k: cands[k] for k in ORDER
            if k in cands and cands[k] is not None and math.isfinite(cands[k])}


def lowest(network_rmse: float, scores: dict, combined: float | None = None) -> str | None:
    """The forecaster with the lowest finite RMSE (ties: `ORDER`); None if none is finite.
    `combined`: the combined forecast's RMSE, compared too when given."""
    finite = _finite(network_rmse, scores, combined)
    return min(finite, key=finite.get) if finite else None


def listing(network_rmse: float, scores: dict, skip: str | None = None,
            combined: float | None = None) -> str:
    """"the network 3, the network averaged with AR(2) 2.5, the training mean 2, ..." for
    the finite RMSEs."""
    return ", ".join(f"{label(k, scores)} {v:.4g}"
                     for k, v in _finite(network_rmse, scores, combined).items() if k != skip)


def verdict(network_rmse: float, scores: dict, n_val: int,
            combined: float | None = None) -> tuple[str, str]:
    """`(best, line)`: the name of the best forecaster and one line that says so.

    Ties go to the earlier in `ORDER`; a NaN or missing RMSE never wins. `combined`: the
    combined forecast's RMSE, compared too when given.
    """
    best = lowest(network_rmse, scores, combined)
    if best is None:
        return None, f"no forecaster has a finite RMSE over the {n_val} held-out samples."
    finite = _finite(network_rmse, scores, combined)
    others = listing(network_rmse, scores, skip=best, combined=combined)
    line = (f"{label(best, scores)} forecasts best over the {n_val} held-out samples: RMSE "
            f"{finite[best]:.4g}" + (f" ({others})." if others else "."))
    return best, line[0].upper() + line[1:]


def _grid_steps(spec: dict, ts) -> np.ndarray:
    """The sample-grid steps `k >= 1` after the training part of the times `ts`
    (`t_last + k * spacing`); a ValueError for times off that grid."""
    k = (ts - spec["t_last"]) / spec["spacing"]
    steps = np.rint(k).astype(np.int64)
    if np.any(steps < 1) or np.any(np.abs(k - steps) > AR_MAX_SPACING_SPREAD):
        raise ValueError(
            f"`ts` must continue the sample grid after the training part for the AR "
            f"forecast: times t_last + k * spacing, k >= 1, with t_last = {spec['t_last']!r} "
            f"and spacing = {spec['spacing']!r}; got times from {ts.min()!r} to {ts.max()!r}.")
    return steps


def baseline_predict(name: str, spec: dict, ts, steps=None) -> np.ndarray:
    """A baseline's forecast `(T, p)` at times `ts` after the training part, from the
    entry `spec` that `baselines` returned for it (`name`: mean, harmonic, harmonic_ar or
    ar). `steps`: the grid steps of `ts` past the training part, when known."""
    ts = np.asarray(ts, np.float64)
    if name == "mean":
        return np.broadcast_to(np.asarray(spec["value"]), (ts.shape[0], len(spec["value"]))).copy()
    if name in ("harmonic", "harmonic_ar"):
        om = np.asarray(spec["frequencies"], np.float64)
        y = _design(ts, spec["t_ref"], om) @ np.asarray(spec["coefficients"], np.float64)
        if name == "harmonic" or spec.get("q") is None or ts.shape[0] == 0:
            return y
        steps = _grid_steps(spec, ts) if steps is None else np.asarray(steps, np.int64)
        path = ar_iterate(spec["ar_coefficients"], spec["last"], int(steps.max()))
        return y + path[steps - 1]
    steps = _grid_steps(spec, ts) if steps is None else np.asarray(steps, np.int64)
    path = ar_iterate(spec["coefficients"], spec["last"], int(steps.max()))
    return path[steps - 1]
