"""Argument checks shared by `fit`, `spectral_peaks`, `FitResult` and `fit_csv`.

Each check raises a `ValueError` that names the argument, shows what was received and
says how to fix it; the values come back normalised (numpy float64 arrays, ints, floats,
canonical names).
"""

from __future__ import annotations

import math

import diffrax
import numpy as np

from .._activation import ACTIVATIONS, get_activation
from .._solver import ADAPTIVE_SOLVERS
from ._dates import as_times
from ._stepping import _DT_MAX, ADJOINTS

FORMS = ("post", "pre")
MIN_SAMPLES = 16


def _fail(message: str):
    raise ValueError(message)


def _check_series(ts, ys, *, ts_name="ts", ys_name="ys", min_samples=MIN_SAMPLES):
    """Times `(T,)` float64 and values `(T, p)` float64, checked; plus whether ys was 1-D.
    Dates in `ts` become decimal years (`_dates.as_times`, the calendar chosen from them)."""
    ts, _ = as_times(ts, name=ts_name)
    try:
        t = np.asarray(ts, dtype=np.float64)
    except (TypeError, ValueError):
        _fail(f"`{ts_name}` must be a 1-D array of numbers (the sample times); could not "
              f"convert a {type(ts).__name__} to floats.")
    try:
        y = np.asarray(ys, dtype=np.float64)
    except (TypeError, ValueError):
        _fail(f"`{ys_name}` must be an array of numbers, shape (T,) or (T, channels); could "
              f"not convert a {type(ys).__name__} to floats.")
    if t.ndim != 1:
        _fail(f"`{ts_name}` must be 1-D (one time per sample); got shape {t.shape}. Pass "
              "the time column as a flat array.")
    univariate = y.ndim == 1
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2:
        _fail(f"`{ys_name}` must have shape (T,) or (T, channels); got shape {y.shape}.")
    if y.shape[0] != t.shape[0]:
        _fail(f"`{ys_name}` must have one row per time in `{ts_name}`; got {y.shape[0]} rows "
              f"for {t.shape[0]} times. Check that both come from the same samples.")
    if y.shape[1] == 0:
        _fail(f"`{ys_name}` has no channels (shape {y.shape}); pass at least one signal.")
    if t.shape[0] < min_samples:
        _fail(f"`{ts_name}`/`{ys_name}` need at least {min_samples} samples to find a "
              f"frequency and fit a network; got {t.shape[0]}. Record more of the signal.")
    bad_t = ~np.isfinite(t)
    if bad_t.any():
        i = int(np.argmax(bad_t))
        _fail(f"`{ts_name}` contains {int(bad_t.sum())} NaN or inf value(s) (first at index "
              f"{i}: {t[i]}); drop or fill those samples.")
    bad_y = ~np.isfinite(y)
    if bad_y.any():
        i, c = (int(v[0]) for v in np.nonzero(bad_y))
        _fail(f"`{ys_name}` contains {int(bad_y.sum())} NaN or inf value(s) (first at sample "
              f"{i}, channel {c}: {y[i, c]}); drop those samples or interpolate over them.")
    dts = np.diff(t)
    if np.any(dts <= 0):
        i = int(np.argmax(dts <= 0))
        _fail(f"`{ts_name}` must be strictly increasing; got {ts_name}[{i + 1}] = {t[i + 1]!r} "
              f"after {ts_name}[{i}] = {t[i]!r}. Sort the samples by time and drop duplicate "
              "times.")
    return t, y, univariate


def _check_int(name, value, lo, hint=""):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        _fail(f"`{name}` must be an integer >= {lo}; got {value!r}.{hint}")
    return int(value)


def _check_float(name, value, lo=None, hi=None, *, lo_open=False, hint=""):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        _fail(f"`{name}` must be a number; got {value!r}.{hint}")
    v = float(value)
    ok = math.isfinite(v)
    if lo is not None:
        ok = ok and (v > lo if lo_open else v >= lo)
    if hi is not None:
        ok = ok and v <= hi
    if not ok:
        rng = ("(" if lo_open else "[") + f"{lo if lo is not None else '-inf'}, " + (
            f"{hi}]" if hi is not None else "inf)"
        )
        _fail(f"`{name}` must be a finite number in {rng}; got {value!r}.{hint}")
    return v


def _check_activation(activation) -> str:
    if not isinstance(activation, str):
        _fail(f"`activation` must be a built-in name ({', '.join(ACTIVATIONS)}) so that the "
              f"fitted model can be saved and loaded; got {type(activation).__name__}.")
    name = activation.strip().lower().replace("-", "_")
    if name == "linear":
        name = "identity"
    return get_activation(name).name  # raises the standard message for unknown names


def _resolve_solver_adjoint(solver, adjoint):
    """`(solver, adjoint name, adjoint object or None)`, checked against each other."""
    if not isinstance(solver, str) or solver.strip().lower() not in _DT_MAX:
        _fail(f"`solver` must be one of {', '.join(_DT_MAX)}; got {solver!r}.")
    solver = solver.strip().lower()
    adaptive = solver in ADAPTIVE_SOLVERS
    if adjoint is None:
        adjoint = "checkpoint" if adaptive else "engine"
    if isinstance(adjoint, diffrax.AbstractAdjoint):
        adj_name, adj_obj = type(adjoint).__name__, adjoint
    elif isinstance(adjoint, str) and adjoint.strip().lower() in ADJOINTS:
        adj_name, adj_obj = adjoint.strip().lower(), None  # built by _adjoint_object
    else:
        _fail(f"`adjoint` must be one of {', '.join(ADJOINTS)} or a diffrax.AbstractAdjoint; "
              f"got {adjoint!r}.")
    if adj_name == "engine" and adaptive:
        _fail(f"`solver={solver!r}` is adaptive and runs in diffrax, so it needs a diffrax "
              "adjoint; got adjoint='engine'. Pass adjoint='checkpoint' (or 'backsolve'), "
              "or a fixed-step solver such as 'rk4'.")
    if adj_name != "engine" and solver == "implicit_midpoint":
        _fail(f"`solver='implicit_midpoint'` runs only in oscillax's engine; got "
              f"adjoint={adjoint!r}. Pass adjoint='engine' or another solver.")
    return solver, adj_name, adj_obj
