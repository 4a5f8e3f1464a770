"""`fit`: learn a skew-symmetric network that generates a given oscillation.

The generator is an autonomous network with a linear readout,

$$\\dot x = f_A(x),\\quad x(t_0) = x_0,\\qquad y(t) = C x(t) + d,\\qquad A = W - W^\\top,$$

with $f_A(x) = A\\sigma(x) + b$ (post form) or $\\sigma(Ax + b)$ (pre form). Fitting is
non-convex (a frequency off by $\\delta\\omega$ costs a phase $\\delta\\omega\\,T$), so `fit`

1. finds the peaks of the target's spectrum (windowed FFT, refined on the samples
   themselves, so irregular times work) and starts $A$ at `skew_from_frequencies` of them,
   corrected for the amplitude dependence of a nonlinear oscillator's frequency;
2. solves for the readout $(C, d)$ by least squares on the initial trajectory;
3. trains several perturbed restarts in one `jax.vmap`-ed optax loop, differentiating
   through the solver, with a horizon that grows over the first iterations and an
   optional spectral-magnitude term beside the time-domain MSE;
4. keeps the restart with the lowest training loss and scores it on the held-out later
   part of the series (the forecast).

Time inside the model is dimensionless, $\\tau = s\\,(t - t_0)$ with $s$ the highest initial
angular frequency, so the learning rate and step size do not depend on the user's units.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float

from ._activation import ACTIVATIONS, get_activation
from ._field import AbstractSkewField, PostActivation, PreActivation
from ._skew import skew_from_frequencies
from ._solver import ADAPTIVE_SOLVERS, FIXED_SOLVERS

FORMS = ("post", "pre")
ADJOINTS = ("engine", "checkpoint", "backsolve")
MIN_SAMPLES = 16
MIN_TRAIN_SAMPLES = 12
MAX_AUTO_PAIRS = 8
FORMAT_VERSION = 1
MODEL_FILE = "model.eqx"
SETTINGS_FILE = "fit.json"

# Largest internal step per solver, for internal frequencies <= 1 (|h w| below this keeps
# the per-step phase error small: RK4 ~ (h w)^4 / 120 ~ 3e-5 at 0.25).
_DT_MAX = {
    "euler": 0.02,
    "heun": 0.1,
    "midpoint": 0.1,
    "rk4": 0.3,
    "implicit_midpoint": 0.1,
    "tsit5": 0.25,
    "dopri5": 0.25,
    "dopri8": 0.25,
}


# ----------------------------------------------------------------------------- validation


def _fail(message: str):
    raise ValueError(message)


def _check_series(ts, ys, *, ts_name="ts", ys_name="ys", min_samples=MIN_SAMPLES):
    """Times `(T,)` float64 and values `(T, p)` float64, checked; plus whether ys was 1-D."""
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


def _adjoint_object(name: str, solver: str, dt: float):
    """The diffrax adjoint for a named choice (None for the engine).

    The backward solve of `BacksolveAdjoint` runs from each save time to the previous one.
    With a fixed step equal to that gap, float32 rounding turns it into one step plus a
    sliver, and the gradients came out wrong by factors (measured); half steps avoid it.
    """
    if name == "engine":
        return None
    if name == "checkpoint":
        return diffrax.RecursiveCheckpointAdjoint()
    if solver in ADAPTIVE_SOLVERS:
        return diffrax.BacksolveAdjoint()
    return diffrax.BacksolveAdjoint(dt0=-0.5 * dt)


def _resolve_solver_adjoint(solver, adjoint):
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


# ------------------------------------------------------------------------------- spectrum


def _blackman(ts, t0, span):
    x = (ts - t0) / span
    return 0.42 - 0.5 * np.cos(2 * np.pi * x) + 0.08 * np.cos(4 * np.pi * x)


def _trapezoid_weights(ts):
    w = np.zeros_like(ts)
    d = np.diff(ts)
    w[:-1] += 0.5 * d
    w[1:] += 0.5 * d
    return w


def _dtft_power(ts, weighted, omegas):
    """$\\sum_c |\\sum_k w_k y_{kc} e^{-i\\omega t_k}|^2$ at each omega."""
    E = np.exp(-1j * np.outer(omegas, ts - ts[0]))
    F = E @ weighted
    return np.sum(np.abs(F) ** 2, axis=-1)


def spectral_peaks(ts, ys, *, max_peaks: int | None = None, rel_power: float = 1e-4):
    """Angular frequencies of the peaks of a (possibly irregularly sampled) signal.

    A Blackman-windowed, 8x zero-padded FFT on a uniform resampling finds the peaks; each
    is then refined on the original samples by maximising the windowed discrete-time
    Fourier transform (trapezoid quadrature), so its error is far below the FFT bin
    $2\\pi / T$. Channels are pooled (their powers are summed). Peaks below one period
    over the record, or with power under `rel_power` times the strongest, are dropped.

    **Arguments:**
    - `ts`: `(T,)` strictly increasing times.
    - `ys`: `(T,)` or `(T, channels)` values.
    - `max_peaks`: keep at most this many (the strongest).
    - `rel_power`: power threshold relative to the strongest peak (Blackman sidelobes are
      below 1e-5, so 1e-4 keeps only real peaks of a clean signal).

    **Returns:** `(omegas, powers)`, numpy arrays sorted by decreasing power.
    """
    t, y, _ = _check_series(ts, ys, min_samples=4)
    y = y - y.mean(axis=0, keepdims=True)
    span = t[-1] - t[0]
    T = t.shape[0]
    grid = np.linspace(t[0], t[-1], T)
    if np.allclose(t, grid, rtol=0, atol=1e-9 * span):
        yg = y
    else:
        yg = np.stack([np.interp(grid, t, y[:, c]) for c in range(y.shape[1])], axis=1)
    h = grid[1] - grid[0]
    nfft = 8 * (1 << max(T - 1, 1).bit_length())
    win = _blackman(grid, grid[0], span)
    P = np.sum(np.abs(np.fft.rfft(yg * win[:, None], n=nfft, axis=0)) ** 2, axis=-1)
    om = 2 * np.pi * np.fft.rfftfreq(nfft, h)
    bin_w = om[1]
    i = np.arange(1, P.shape[0] - 1)
    is_max = (P[i] >= P[i - 1]) & (P[i] > P[i + 1]) & (om[i] >= 2 * np.pi / span)
    cand = i[is_max]
    if cand.size == 0 or P[cand].max() <= 0:
        return np.zeros(0), np.zeros(0)
    cand = cand[P[cand] >= rel_power * P[cand].max()]
    cand = cand[np.argsort(-P[cand])][: 4 * (max_peaks or 16)]
    weighted = y * (_blackman(t, t[0], span) * _trapezoid_weights(t))[:, None]
    peaks, powers = [], []
    for c in cand:
        w0, half = om[c], bin_w
        for _ in range(4):
            ws = np.linspace(w0 - half, w0 + half, 21)
            pw = _dtft_power(t, weighted, ws)
            w0 = ws[int(np.argmax(pw))]
            half = half / 10 * 2
        pw = _dtft_power(t, weighted, np.array([w0]))[0]
        # Two local maxima of the padded FFT can belong to one lobe; keep the stronger.
        if any(abs(w0 - p) < 2 * np.pi / span for p in peaks):
            continue
        peaks.append(w0)
        powers.append(pw)
    peaks, powers = np.asarray(peaks), np.asarray(powers)
    order = np.argsort(-powers)
    peaks, powers = peaks[order], powers[order]
    if max_peaks is not None:
        peaks, powers = peaks[:max_peaks], powers[:max_peaks]
    return peaks, powers


# ---------------------------------------------------------------------------------- model


class SkewGenerator(eqx.Module):
    """An autonomous skew-symmetric RNN with a linear readout, as `fit` learns it.

    $\\dot x = A\\sigma(x) + b$ (`form="post"`) or $\\sigma(Ax + b)$ (`form="pre"`), with
    $A = W - W^\\top$, $x(0) = x_0$ and output $y = C x + d$. Its time is dimensionless;
    `FitResult` maps it to the data's time axis.

    **Fields:** `W` `(n, n)`, `C` `(p, n)`, `d` `(p,)`, `x0` `(n,)`, `bias` `(n,)` or None,
    and the static settings `form` and `activation` (a built-in name).
    """

    W: Float[Array, "n n"]
    C: Float[Array, "p n"]
    d: Float[Array, " p"]
    x0: Float[Array, " n"]
    bias: Float[Array, " n"] | None
    form: str = eqx.field(static=True)
    activation: str = eqx.field(static=True)

    @property
    def A(self) -> Float[Array, "n n"]:
        return self.W - jnp.swapaxes(self.W, -1, -2)

    @property
    def n(self) -> int:
        return self.W.shape[-1]

    def field(self) -> AbstractSkewField:
        """The vector field as an `ox.PostActivation` / `ox.PreActivation`."""
        cls = PostActivation if self.form == "post" else PreActivation
        return cls(self.A, self.activation, self.bias, check_skew=False)

    def readout(self, xs):
        """$y = C x + d$ for states `(..., n)`."""
        return xs @ self.C.T + self.d[None, :] if xs.ndim == 2 else xs @ self.C.T + self.d


# ------------------------------------------------------------------------- time stepping


@dataclasses.dataclass(frozen=True)
class _Stepping:
    """How the generator is integrated (static: fixes the compiled program)."""

    solver: str
    adjoint: str
    dt: float  # internal units
    aligned: bool = False  # every sample time is a grid point: gather, no interpolation
    rtol: float = 1e-6
    atol: float = 1e-8
    unroll: int = 1
    adjoint_obj: Any = None

    @property
    def engine(self) -> bool:
        return self.adjoint == "engine"


class _ClassicRK4(diffrax.AbstractERK):
    """The classical RK4 tableau for diffrax (same method as the engine's `rk4`)."""

    tableau = diffrax.ButcherTableau(
        c=np.array([0.5, 0.5, 1.0]),
        b_sol=np.array([1 / 6, 1 / 3, 1 / 3, 1 / 6]),
        b_error=np.zeros(4),
        a_lower=(np.array([0.5]), np.array([0.0, 0.5]), np.array([0.0, 0.0, 1.0])),
    )
    interpolation_cls = diffrax.ThirdOrderHermitePolynomialInterpolation.from_k

    def order(self, terms):
        return 4


def _diffrax_solver(name):
    fixed = {
        "euler": diffrax.Euler,
        "heun": diffrax.Heun,
        "midpoint": diffrax.Midpoint,
        "rk4": _ClassicRK4,
    }
    if name in fixed:
        return fixed[name]()
    return ADAPTIVE_SOLVERS[name]()


class _DenseField(eqx.Module):
    """The generator's right-hand side for one state `(n, 1)` with a single `A @ X`.

    The core fields unroll $AX$ into $n$ broadcast products, which is fastest for a wide
    batch on the minor axis; a fit integrates one state per restart (vmapped), where one
    small matmul means far fewer operations per step, forward and backward. The explicit
    solvers only call `rhs`, so they run on this unchanged.
    """

    A: Float[Array, "n n"]
    bias: Float[Array, " n"] | None
    activation: Any
    pre: bool = eqx.field(static=True)

    def rhs(self, X, t=0.0, args=None):
        sigma = self.activation.fn
        if self.pre:
            Z = self.A @ X
            return sigma(Z if self.bias is None else Z + self.bias[:, None])
        out = self.A @ sigma(X)
        return out if self.bias is None else out + self.bias[:, None]


def _step_field(model: SkewGenerator, solver_name: str):
    if solver_name == "implicit_midpoint":
        return model.field()  # Newton's method needs the full field
    return _DenseField(model.A, model.bias, get_activation(model.activation),
                       model.form == "pre")


def _grid_states(model: SkewGenerator, step: _Stepping, n_steps: int):
    """States on the engine grid $\\tau_k = k\\,dt$, `(n_steps + 1, n)`."""
    name = step.solver if step.solver in FIXED_SOLVERS else "rk4"
    solver = FIXED_SOLVERS[name]
    field = _step_field(model, name)
    dtype = model.x0.dtype
    dt = jnp.asarray(step.dt, dtype)

    def body(X, t):
        Xn = solver.step(field, t, X, dt)
        return Xn, Xn[:, 0]

    taus = jnp.arange(n_steps, dtype=dtype) * dt
    _, xs = jax.lax.scan(body, model.x0[:, None], taus, unroll=step.unroll)
    return jnp.concatenate([model.x0[None, :], xs], axis=0)


def _hermite_weights(taus, dt):
    """Grid index and fraction for each time (numpy, computed once outside jit)."""
    pos = np.asarray(taus, np.float64) / dt
    idx = np.floor(pos + 1e-9).astype(np.int64)
    frac = pos - idx
    frac[np.abs(frac) < 1e-9] = 0.0
    return idx, frac


def _hermite(model, grid, idx, frac, dt):
    """Cubic Hermite interpolation of grid states at `idx + frac` (exact at frac = 0)."""
    field = _step_field(model, "rk4")
    xa, xb = grid[idx], grid[idx + 1]
    fa = field.rhs(xa.T).T * dt
    fb = field.rhs(xb.T).T * dt
    u = frac[:, None]
    h00 = (1 + 2 * u) * (1 - u) ** 2
    h10 = u * (1 - u) ** 2
    h01 = u * u * (3 - 2 * u)
    h11 = u * u * (u - 1)
    return h00 * xa + h10 * fa + h01 * xb + h11 * fb


def _states(model, taus, idx, frac, step: _Stepping, n_steps: int):
    """States `(T, n)` at internal times `taus` (engine grid + Hermite, or diffrax)."""
    if step.engine:
        grid = _grid_states(model, step, n_steps)
        if step.aligned:
            return grid[idx]
        return _hermite(model, grid, idx, frac, step.dt)
    adaptive = step.solver in ADAPTIVE_SOLVERS
    controller = (
        diffrax.PIDController(rtol=step.rtol, atol=step.atol)
        if adaptive
        else diffrax.ConstantStepSize()
    )
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(model.field()),
        _diffrax_solver(step.solver),
        t0=0.0,
        t1=taus[-1],
        dt0=step.dt,
        y0=model.x0,
        saveat=diffrax.SaveAt(ts=taus),
        stepsize_controller=controller,
        adjoint=step.adjoint_obj,
        max_steps=(16 if adaptive else 1) * n_steps + 16,
        throw=False,
    )
    return sol.ys


def _bucket(n: int) -> int:
    return max(64, 1 << (int(n) - 1).bit_length())


def _n_steps(tau_end, dt):
    return max(int(math.ceil(tau_end / dt - 1e-9)), 1)


@eqx.filter_jit
def _predict_jit(model, taus, idx, frac, step, n_steps):
    return model.readout(_states(model, taus, idx, frac, step, n_steps))


# --------------------------------------------------------------------------------- result


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return v if math.isfinite(v) else None
    if isinstance(x, (np.integer,)):
        return int(x)
    return x


@dataclasses.dataclass(frozen=True, eq=False)
class FitResult:
    """A fitted generator, how it maps to the data's time axis, and how well it did.

    **Fields:**
    - `model`: the `SkewGenerator` (readout in the data's units).
    - `t0`, `time_scale`: the model's time is $\\tau = $ `time_scale` $\\cdot (t - t_0)$.
    - `dt`: the solver step in the data's time units; `solver`, `adjoint`: as fitted.
    - `univariate`: True when `ys` was 1-D (then `predict` returns `(T,)`).
    - `channels`: names of the output channels.
    - `train_until`: last training time; samples after it were held out.
    - `history`: `(iterations, restarts)` training loss of every restart.
    - `restart_scores`: `(restarts,)` final time-domain training loss, used to pick
      `best_restart`.
    - `init_frequencies`: the angular frequencies `A` started from (from the FFT peaks).
    - `metrics`: RMS errors on the training part and on the held-out forecast, absolute,
      relative to the standard deviation (`nrmse`) and to the amplitude (`rel_amp`).
    - `options`: the settings `fit` was called with.
    - `step_traces`: how often the training step was traced (1: it compiled once).
    """

    model: SkewGenerator
    t0: float
    time_scale: float
    dt: float
    solver: str
    adjoint: str
    univariate: bool
    channels: tuple[str, ...]
    train_until: float
    history: np.ndarray
    restart_scores: np.ndarray
    best_restart: int
    init_frequencies: np.ndarray
    metrics: dict
    options: dict
    step_traces: int = 1
    timings: dict = dataclasses.field(default_factory=dict)

    # -- prediction

    def _stepping(self) -> _Stepping:
        adj = self.adjoint if self.adjoint in ADJOINTS else "checkpoint"
        if self.solver in FIXED_SOLVERS:
            adj = "engine"  # identical method; the engine is the fast forward path
        elif adj == "engine":
            adj = "checkpoint"
        return _Stepping(
            solver=self.solver,
            adjoint=adj,
            dt=self.dt * self.time_scale,
            rtol=self.options.get("rtol", 1e-6),
            atol=self.options.get("atol", 1e-8),
            adjoint_obj=None if adj == "engine" else diffrax.RecursiveCheckpointAdjoint(),
        )

    def _check_times(self, ts) -> np.ndarray:
        t = np.asarray(ts, dtype=np.float64)
        if t.ndim != 1 or t.shape[0] == 0:
            _fail(f"`ts` must be a non-empty 1-D array of times; got shape {t.shape}.")
        if not np.all(np.isfinite(t)):
            _fail("`ts` contains NaN or inf; pass finite times.")
        if t.min() < self.t0 - 1e-9 * max(1.0, abs(self.t0)):
            _fail(f"`ts` must not start before the model's initial time t0 = {self.t0!r} (it "
                  f"generates forward in time); got min(ts) = {t.min()!r}.")
        return t

    def states(self, ts) -> np.ndarray:
        """Hidden states `(T, n)` at times `ts` (any order, all at or after `t0`)."""
        return self._eval(self._check_times(ts), readout=False)

    def predict(self, ts) -> np.ndarray:
        """The generated signal at times `ts`: `(T,)` if the data was 1-D, else `(T, p)`.

        The network runs from `t0` without looking at any data, so times past the
        training window are a genuine forecast. `ts` may be in any order, all `>= t0`.

        ```python
        y_future = result.predict(np.linspace(0, 100, 2001))
        ```
        """
        y = self._eval(self._check_times(ts), readout=True)
        return y[:, 0] if self.univariate else y

    def _eval(self, t, *, readout):
        order = np.argsort(t)
        taus = np.clip((t[order] - self.t0) * self.time_scale, 0.0, None)
        step = self._stepping()
        # Sizes rounded up to powers of two (padding repeats the last time), so predictions
        # of similar lengths share one compiled program.
        n_steps = _bucket(_n_steps(max(taus[-1], step.dt), step.dt))
        T = taus.shape[0]
        taus = np.concatenate([taus, np.full(_bucket(T) - T, taus[-1])])
        idx, frac = _hermite_weights(taus, step.dt)
        step = dataclasses.replace(step, aligned=bool(np.all(frac == 0)))
        dtype = self.model.x0.dtype
        args = (jnp.asarray(taus, dtype), jnp.asarray(idx), jnp.asarray(frac, dtype))
        if readout:
            out = _predict_jit(self.model, *args, step, n_steps)
        else:
            out = _states_jit(self.model, *args, step, n_steps)
        out = np.asarray(out, dtype=np.float64)[:T]
        res = np.empty_like(out)
        res[order] = out
        return res

    # -- frequencies

    @property
    def frequencies(self) -> np.ndarray:
        """Angular frequencies from $A$'s spectrum, in the data's units, ascending.

        The positive imaginary parts of $A$'s eigenvalues times `time_scale`: the exact
        frequencies of a linear network, and the small-amplitude ones for activations with
        $\\sigma'(0) = 1$ (tanh, sin, ...); a nonlinear orbit at larger amplitude is slower,
        see `measured_frequencies`.
        """
        A = np.asarray(self.model.A, dtype=np.float64)
        ev = np.linalg.eigvals(A).imag
        tol = 1e-9 * max(np.abs(ev).max(initial=0.0), 1.0)
        return np.sort(ev[ev > tol]) * self.time_scale

    def measured_frequencies(
        self, *, t1: float | None = None, max_peaks: int | None = None, rel_power=1e-3
    ) -> np.ndarray:
        """Angular frequencies measured from the generated signal, ascending.

        The network runs from `t0` to `t1` (default: eight times the data's span) and the
        peaks of its output's spectrum are found as in `spectral_peaks`.

        **Arguments:**
        - `t1`: end time in the data's units.
        - `max_peaks`: at most this many (default: half the hidden size, at least 1).
        - `rel_power`: drop peaks weaker than this times the strongest.
        """
        t = self._measure_times(t1)
        return self._measured_from(t, self._eval(t, readout=True), max_peaks, rel_power)

    def _measure_times(self, t1=None) -> np.ndarray:
        if t1 is None:
            t1 = self.t0 + 8.0 * max(self.options.get("span", 1.0), 1e-12)
        if not (np.isfinite(t1) and t1 > self.t0):
            _fail(f"`t1` must be a finite time after t0 = {self.t0!r}; got {t1!r}.")
        A = np.asarray(self.model.A, np.float64)
        top = max(float(np.abs(np.linalg.eigvals(A)).max(initial=0.0)) * self.time_scale, 1e-12)
        # >= 8 samples per period of the fastest linear mode (so low harmonics resolve too).
        n = int(min(max(8 * top * (t1 - self.t0) / (2 * np.pi), 256), 200_000))
        return np.linspace(self.t0, t1, n)

    def _measured_from(self, t, y, max_peaks=None, rel_power=1e-3) -> np.ndarray:
        m = max_peaks if max_peaks is not None else max(self.model.n // 2, 1)
        if not np.all(np.isfinite(y)):
            return np.zeros(0)  # a diverged network has no frequencies to measure
        peaks, _ = spectral_peaks(t, y, max_peaks=m, rel_power=rel_power)
        return np.sort(peaks)

    # -- persistence

    def settings(self) -> dict:
        """The JSON-able settings that, with the leaves of `model`, rebuild this result."""
        m = self.model
        return _jsonable({
            "format_version": FORMAT_VERSION,
            "kind": "oscillax.FitResult",
            "form": m.form,
            "activation": m.activation,
            "hidden": m.n,
            "outputs": int(m.C.shape[0]),
            "has_bias": m.bias is not None,
            "dtype": str(m.x0.dtype),
            "t0": self.t0,
            "time_scale": self.time_scale,
            "dt": self.dt,
            "solver": self.solver,
            "adjoint": self.adjoint,
            "univariate": self.univariate,
            "channels": list(self.channels),
            "train_until": self.train_until,
            "best_restart": self.best_restart,
            "restart_scores": self.restart_scores,
            "init_frequencies": self.init_frequencies,
            "frequencies": self.frequencies,
            "metrics": self.metrics,
            "options": self.options,
            "step_traces": self.step_traces,
            "timings": self.timings,
            "history": self.history,
        })

    def save(self, path) -> Path:
        """Write `model.eqx` (equinox leaves) and `fit.json` (settings) into directory `path`.

        **Returns:** the directory. Load it back with `ox.load_fit(path)`.
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        eqx.tree_serialise_leaves(path / MODEL_FILE, self.model)
        (path / SETTINGS_FILE).write_text(json.dumps(self.settings(), indent=1))
        return path

    def report(self) -> dict:
        """A JSON-able summary: frequencies, metrics, settings (no loss history)."""
        s = self.settings()
        s.pop("history")
        s["final_loss"] = float(self.history[-1, self.best_restart]) if len(self.history) else None
        return s

    # -- figures

    def plot_loss(self, path=None):
        """Training loss of every restart (best in bold), log scale; returns the Figure."""
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6, 3.5), layout="constrained")
        ax = fig.add_subplot()
        it = np.arange(1, self.history.shape[0] + 1)
        for r in range(self.history.shape[1]):
            best = r == self.best_restart
            ax.plot(it, self.history[:, r], lw=2 if best else 0.8, alpha=1 if best else 0.5,
                    label=f"restart {r}" + (" (best)" if best else ""))
        ax.set_yscale("log")
        ax.set_xlabel("iteration")
        ax.set_ylabel("training loss")
        ax.legend(fontsize=7)
        if path is not None:
            fig.savefig(path, dpi=120)
        return fig

    def plot_fit(self, ts, ys, path=None):
        """Data, the fit on the training part and the forecast after it; returns the Figure."""
        from matplotlib.figure import Figure

        t, y, _ = _check_series(ts, ys, min_samples=1)
        dense = np.linspace(self.t0, t[-1], max(2000, 20 * t.shape[0]))
        yh = self.predict(dense)
        yh = yh[:, None] if yh.ndim == 1 else yh
        p = y.shape[1]
        fig = Figure(figsize=(8, 2.2 * p + 0.6), layout="constrained")
        axes = [fig.add_subplot(p, 1, c + 1) for c in range(p)]
        tr = dense <= self.train_until
        for c, ax in enumerate(axes):
            ax.plot(t, y[:, c], ".", ms=2.5, color="0.4", label="data")
            ax.plot(dense[tr], yh[tr, c], color="C0", lw=1.2, label="fit")
            ax.plot(dense[~tr], yh[~tr, c], color="C3", lw=1.2, label="forecast")
            ax.axvline(self.train_until, color="k", ls="--", lw=0.8)
            ax.set_ylabel(self.channels[c] if c < len(self.channels) else f"y{c}")
        axes[0].legend(fontsize=7, loc="upper right")
        axes[-1].set_xlabel("t")
        if path is not None:
            fig.savefig(path, dpi=120)
        return fig


@eqx.filter_jit
def _states_jit(model, taus, idx, frac, step, n_steps):
    return _states(model, taus, idx, frac, step, n_steps)


def load_fit(path) -> FitResult:
    """Load a `FitResult` written by `FitResult.save`.

    **Arguments:**
    - `path`: the directory holding `model.eqx` and `fit.json`.

    **Returns:** the `FitResult`; its `predict` gives the same numbers as before saving.
    """
    path = Path(path)
    sfile, mfile = path / SETTINGS_FILE, path / MODEL_FILE
    if not sfile.is_file() or not mfile.is_file():
        _fail(f"`path` must be a directory written by FitResult.save (with {SETTINGS_FILE} "
              f"and {MODEL_FILE}); got {str(path)!r}, which lacks "
              f"{SETTINGS_FILE if not sfile.is_file() else MODEL_FILE}.")
    s = json.loads(sfile.read_text())
    if s.get("kind") != "oscillax.FitResult" or s.get("format_version", 0) > FORMAT_VERSION:
        _fail(f"`path` {str(path)!r} does not hold a fit this oscillax version reads "
              f"(kind={s.get('kind')!r}, format_version={s.get('format_version')!r}).")
    n, p = int(s["hidden"]), int(s["outputs"])
    dtype = jnp.dtype(s["dtype"])
    like = SkewGenerator(
        W=jnp.zeros((n, n), dtype),
        C=jnp.zeros((p, n), dtype),
        d=jnp.zeros((p,), dtype),
        x0=jnp.zeros((n,), dtype),
        bias=jnp.zeros((n,), dtype) if s["has_bias"] else None,
        form=s["form"],
        activation=s["activation"],
    )
    model = eqx.tree_deserialise_leaves(mfile, like)
    hist = np.asarray(s["history"], dtype=np.float64)
    return FitResult(
        model=model,
        t0=float(s["t0"]),
        time_scale=float(s["time_scale"]),
        dt=float(s["dt"]),
        solver=s["solver"],
        adjoint=s["adjoint"],
        univariate=bool(s["univariate"]),
        channels=tuple(s["channels"]),
        train_until=float(s["train_until"]),
        history=hist.reshape(-1, len(s["restart_scores"])),
        restart_scores=np.asarray(s["restart_scores"], dtype=np.float64),
        best_restart=int(s["best_restart"]),
        init_frequencies=np.asarray(s["init_frequencies"], dtype=np.float64),
        metrics=s["metrics"],
        options=s["options"],
        step_traces=int(s.get("step_traces", 1)),
        timings=s.get("timings", {}),
    )


# ------------------------------------------------------------------------------ training


class _Data(eqx.Module):
    taus: Float[Array, " T"]
    idx: Array
    frac: Float[Array, " T"]
    y: Float[Array, "T p"]
    width: Float[Array, ""]
    spec_re: Float[Array, "F T"]
    spec_im: Float[Array, "F T"]
    spec_target: Float[Array, "F p"]


def _spectrum_mag(data: _Data, y):
    re = data.spec_re @ y
    im = data.spec_im @ y
    return jnp.sqrt(re * re + im * im + 1e-12)


def _loss_terms(model, data: _Data, horizon, step, n_steps, spectral_weight):
    xs = _states(model, data.taus, data.idx, data.frac, step, n_steps)
    yh = model.readout(xs)
    err = jnp.mean((yh - data.y) ** 2, axis=-1)
    w = jax.nn.sigmoid((horizon - data.taus) / data.width)
    mse = jnp.sum(w * err) / jnp.sum(w)
    if spectral_weight > 0:
        mag = _spectrum_mag(data, yh)
        tgt = data.spec_target
        spec = jnp.mean((mag - tgt) ** 2) / jnp.mean(tgt * tgt)
        return mse + spectral_weight * spec, mse
    return mse, mse


def _make_data(taus, y, step, span_tau, omega_hi, dtype):
    idx, frac = _hermite_weights(taus, step.dt)
    win = _blackman(taus, 0.0, span_tau) * _trapezoid_weights(taus)
    lo = 2 * np.pi / span_tau
    hi = max(min(np.pi / np.median(np.diff(taus)), 2.0 * omega_hi), 2 * lo)
    n_f = int(min(max((hi - lo) / (np.pi / (2 * span_tau)), 16), 1024))
    om = np.linspace(lo, hi, n_f)
    E = np.exp(-1j * np.outer(om, taus)) * win[None, :]
    # Normalise so that the spectral term is O(1) like the standardised MSE.
    E = E / np.sqrt(np.sum(win) ** 2 / max(n_f, 1))
    re, im = E.real, E.imag
    tgt = np.sqrt((re @ y) ** 2 + (im @ y) ** 2 + 1e-12)
    width = max(2 * step.dt, 0.02 * span_tau)
    return _Data(
        taus=jnp.asarray(taus, dtype),
        idx=jnp.asarray(idx),
        frac=jnp.asarray(frac, dtype),
        y=jnp.asarray(y, dtype),
        width=jnp.asarray(width, dtype),
        spec_re=jnp.asarray(re, dtype),
        spec_im=jnp.asarray(im, dtype),
        spec_target=jnp.asarray(tgt, dtype),
    )


def _fill_frequencies(peaks, m, lo, hi):
    """Up to m frequencies: the peaks, then harmonics of the strongest, then a spread."""
    out = [float(p) for p in peaks[:m]]
    base = out[0] if out else lo * 2
    k = 2
    while len(out) < m and k * base < hi:
        cand = k * base
        if all(abs(cand - o) > 0.05 * o for o in out):
            out.append(cand)
        k += 1
    j = 1
    while len(out) < m:
        cand = lo * (hi / lo) ** (j / (m + 1))
        j += 1
        if all(abs(cand - o) > 0.05 * o for o in out) or j > 4 * m:
            out.append(cand)
    return np.asarray(out)


def _default_optimizer(learning_rate, iterations):
    warm = max(int(0.05 * iterations), 1)
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.1 * learning_rate,
        peak_value=learning_rate,
        warmup_steps=warm,
        decay_steps=max(iterations, warm + 1),
        end_value=0.05 * learning_rate,
    )
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adam(schedule))


def fit(
    ts,
    ys,
    *,
    hidden: int | None = None,
    form: str = "post",
    activation: str = "tanh",
    solver: str = "rk4",
    dt: float | None = None,
    adjoint=None,
    iterations: int = 300,
    restarts: int = 4,
    learning_rate: float = 1e-3,
    optimizer: optax.GradientTransformation | None = None,
    spectral_weight: float = 0.1,
    val_fraction: float = 0.2,
    train_until: float | None = None,
    learn_bias: bool = False,
    init_amplitude: float = 0.5,
    init_noise: float = 0.003,
    curriculum: float = 0.25,
    seed: int = 0,
    channels: Sequence[str] | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> FitResult:
    """Fit a skew-symmetric network that generates the oscillation `ys(ts)`.

    The model is $\\dot x = f_A(x)$, $x(t_0) = x_0$, $y = Cx + d$ with $A = W - W^\\top$ (see
    `SkewGenerator`); $W$, $C$, $d$, $x_0$ (and $b$ with `learn_bias`) are trained by
    gradient descent through the solver on the time-domain MSE of the standardised series
    (plus `spectral_weight` times a windowed spectral-magnitude mismatch). $A$ starts at the
    peaks of the target's spectrum; `restarts` perturbed copies train together in one
    vmapped batch and the lowest training loss wins. The part after `train_until` (default:
    the last `val_fraction` of the time span) is held out and scored as a forecast.

    **Arguments:**
    - `ts`: `(T,)` strictly increasing sample times (may be irregular).
    - `ys`: `(T,)` or `(T, p)` values, finite.
    - `hidden`: state size n (default: two per spectral peak found, at most 16).
    - `form`: `"post"` ($A\\sigma(x) + b$) or `"pre"` ($\\sigma(Ax + b)$).
    - `activation`: a built-in name, e.g. `"tanh"` or `"identity"` (alias `"linear"`).
    - `solver`: `"rk4"` (default), `"euler"`, `"heun"`, `"midpoint"`,
      `"implicit_midpoint"`, or adaptive `"tsit5"`, `"dopri5"`, `"dopri8"`.
    - `dt`: solver step in the data's time units (default: the sample spacing divided
      into steps short enough for the fastest initial frequency).
    - `adjoint`: how gradients go through the solver: `"engine"` (backprop through
      oscillax's fixed-step scan, default for fixed-step solvers), `"checkpoint"`
      (`diffrax.RecursiveCheckpointAdjoint`, default for adaptive ones), `"backsolve"`
      (`diffrax.BacksolveAdjoint`), or any `diffrax.AbstractAdjoint`.
    - `iterations`: optimiser steps.
    - `restarts`: parallel restarts (restart 0 starts exactly at the spectral init).
    - `learning_rate`: peak rate of the default optimiser, Adam with warm-up and cosine
      decay after global-norm clipping at 1.
    - `optimizer`: any `optax.GradientTransformation` (replaces the default).
    - `spectral_weight`: weight of the spectral-magnitude term (0 turns it off).
    - `val_fraction`: fraction of the time span held out at the end (0 to 0.9).
    - `train_until`: train on `ts <= train_until` instead (overrides `val_fraction`).
    - `learn_bias`: also learn the bias b (breaks the exact invariant).
    - `init_amplitude`: initial amplitude of each oscillator pair of x0.
    - `init_noise`: scale of the random perturbation of W for restarts 1, 2, ...
    - `curriculum`: the training horizon starts at this fraction of the training window
      and grows to all of it by mid-training (1 disables).
    - `seed`: seed of the restarts' perturbations.
    - `channels`: names of the output channels (for reports and plots).
    - `progress`: called as `progress(iteration, iterations, best_loss)` while training,
      first with iteration 0 (and a NaN loss) once the inputs are checked and before the
      training step compiles.

    **Returns:** a `FitResult`.

    ```python
    ts = np.linspace(0, 60, 600)
    result = ox.fit(ts, np.sin(1.3 * ts) + 0.5 * np.sin(2.9 * ts), hidden=4)
    result.frequencies, result.metrics["val_rel_amp"]
    y_future = result.predict(np.linspace(60, 80, 200))
    ```
    """
    t_start = time.perf_counter()
    t, y, univariate = _check_series(ts, ys)
    p = y.shape[1]
    if form not in FORMS:
        _fail(f"`form` must be one of {', '.join(FORMS)}; got {form!r}.")
    activation = _check_activation(activation)
    solver, adj_name, adj_obj = _resolve_solver_adjoint(solver, adjoint)
    iterations = _check_int("iterations", iterations, 1)
    restarts = _check_int("restarts", restarts, 1)
    seed = _check_int("seed", seed, 0)
    if hidden is not None:
        hidden = _check_int("hidden", hidden, 2, " The state needs at least one oscillator "
                            "pair (2 units).")
    learning_rate = _check_float("learning_rate", learning_rate, 0.0, lo_open=True)
    spectral_weight = _check_float("spectral_weight", spectral_weight, 0.0)
    init_amplitude = _check_float("init_amplitude", init_amplitude, 0.0, lo_open=True)
    init_noise = _check_float("init_noise", init_noise, 0.0)
    curriculum = _check_float("curriculum", curriculum, 0.0, 1.0, lo_open=True)
    if optimizer is not None and not isinstance(optimizer, optax.GradientTransformation):
        _fail(f"`optimizer` must be an optax.GradientTransformation (e.g. optax.adam(1e-3)); "
              f"got {type(optimizer).__name__}.")
    if dt is not None:
        dt = _check_float("dt", dt, 0.0, lo_open=True, hint=" Pass a step such as dt=0.01.")
    if channels is None:
        channels = tuple(f"y{c}" for c in range(p)) if p > 1 else ("y",)
    else:
        channels = tuple(str(c) for c in channels)
        if len(channels) != p:
            _fail(f"`channels` must name each of the {p} channels of `ys`; got {len(channels)} "
                  f"names {list(channels)!r}.")
    span = t[-1] - t[0]
    if train_until is None:
        val_fraction = _check_float("val_fraction", val_fraction, 0.0, 0.9)
        t_split = t[-1] if val_fraction == 0 else t[0] + (1 - val_fraction) * span
    else:
        t_split = _check_float("train_until", train_until)
        if not (t[0] < t_split <= t[-1]):
            _fail(f"`train_until` must lie in (ts[0], ts[-1]] = ({t[0]!r}, {t[-1]!r}]; got "
                  f"{train_until!r}.")
    n_train = int(np.searchsorted(t, t_split, side="right"))
    if n_train < MIN_TRAIN_SAMPLES:
        _fail(f"the training part (ts <= {t_split:g}) has {n_train} samples; at least "
              f"{MIN_TRAIN_SAMPLES} are needed. Lower `val_fraction` or raise `train_until`.")
    t_tr, y_tr = t[:n_train], y[:n_train]
    mean = y_tr.mean(axis=0)
    scale = y_tr.std(axis=0)
    if np.any(scale <= 1e-12 * np.maximum(np.abs(mean), 1.0)):
        c = int(np.argmax(scale <= 1e-12 * np.maximum(np.abs(mean), 1.0)))
        _fail(f"`ys` channel {c} ({channels[c]!r}) is constant over the training part; there "
              "is no oscillation to fit. Drop that channel.")
    z_tr = (y_tr - mean) / scale

    # -- spectral initialisation (data units)
    span_tr = t_tr[-1] - t_tr[0]
    nyq = np.pi / np.median(np.diff(t_tr))
    peaks, powers = spectral_peaks(t_tr, z_tr, rel_power=1e-4)
    if hidden is None:
        strong = int(np.sum(powers >= 1e-2 * powers.max())) if powers.size else 1
        hidden = 2 * min(max(strong, 1), MAX_AUTO_PAIRS)
    m = hidden // 2
    omegas = _fill_frequencies(peaks, m, 2 * np.pi / span_tr, nyq)
    time_scale = float(np.max(omegas))
    om_int = omegas / time_scale  # internal frequencies, <= 1
    taus = (t_tr - t[0]) * time_scale
    span_tau = taus[-1]
    spacing = float(np.median(np.diff(taus)))
    if dt is None:
        dt_int = spacing / math.ceil(spacing / _DT_MAX[solver] - 1e-9)
    else:
        dt_int = dt * time_scale
    n_steps = _n_steps(span_tau, dt_int)
    if n_steps > 2_000_000:
        _fail(f"`dt` = {dt_int / time_scale:g} needs {n_steps} solver steps over the training "
              "window; pass a larger `dt`.")
    idx_tr, frac_tr = _hermite_weights(taus, dt_int)
    aligned = bool(np.all(frac_tr == 0))
    if adj_obj is None:
        adj_obj = _adjoint_object(adj_name, solver, dt_int)
    step = _Stepping(solver=solver, adjoint=adj_name, dt=dt_int, aligned=aligned,
                     adjoint_obj=adj_obj)
    init_step = _Stepping(solver=solver if solver in FIXED_SOLVERS else "rk4",
                          adjoint="engine", dt=dt_int)
    dtype = jnp.result_type(float)

    # -- initial networks: block-diagonal A at the peaks, amplitude-corrected
    A0 = np.asarray(skew_from_frequencies(np.asarray(om_int, np.float64),
                                          zero_block=hidden % 2 == 1), np.float64)
    x0_base = np.zeros(hidden)
    x0_base[0 : 2 * m : 2] = init_amplitude

    def models_from(Ws, x0s, Cs, ds, biases):
        return SkewGenerator(
            W=jnp.asarray(Ws, dtype), C=jnp.asarray(Cs, dtype), d=jnp.asarray(ds, dtype),
            x0=jnp.asarray(x0s, dtype),
            bias=None if biases is None else jnp.asarray(biases, dtype),
            form=form, activation=activation,
        )

    grid_fn = eqx.filter_jit(jax.vmap(lambda mdl: _grid_states(mdl, init_step, n_steps)))
    rng = np.random.default_rng(seed)
    zeros_C, zeros_d = np.zeros((restarts, p, hidden)), np.zeros((restarts, p))
    biases = np.zeros((restarts, hidden)) if learn_bias else None
    om_used = om_int.copy()
    if activation != "identity":
        # A nonlinear oscillator's frequency depends on its amplitude: rescale each pair so
        # that, at the initial amplitude, it runs at the peak's frequency (2 passes).
        grid_t = np.arange(n_steps + 1) * dt_int
        for _ in range(2):
            A_try = np.asarray(skew_from_frequencies(om_used, zero_block=hidden % 2 == 1))
            # R identical copies: the same compiled program as the restarts' forward pass.
            probe = models_from(np.broadcast_to(A_try / 2, (restarts, hidden, hidden)),
                                np.broadcast_to(x0_base, (restarts, hidden)), zeros_C, zeros_d,
                                biases)
            grid = np.asarray(grid_fn(probe))[0]
            for k in range(m):
                got, _ = spectral_peaks(grid_t, grid[:, 2 * k], max_peaks=1)
                if got.size and np.isfinite(got[0]) and got[0] > 0:
                    ratio = om_int[k] / got[0]
                    if 0.5 < ratio < 2.0:
                        om_used[k] *= ratio
        A0 = np.asarray(skew_from_frequencies(om_used, zero_block=hidden % 2 == 1), np.float64)
    Ws = np.empty((restarts, hidden, hidden))
    x0s = np.empty((restarts, hidden))
    for r in range(restarts):
        noise = init_noise if r > 0 else 0.0
        Ws[r] = A0 / 2 + noise * rng.standard_normal((hidden, hidden))
        x0s[r] = x0_base + noise * init_amplitude * rng.standard_normal(hidden)
    init = models_from(Ws, x0s, zeros_C, zeros_d, biases)
    grids = np.asarray(grid_fn(init), np.float64)  # (R, steps + 1, n)
    Cs, ds = np.empty((restarts, p, hidden)), np.empty((restarts, p))
    for r in range(restarts):
        # Readout by (lightly ridge-regularised) least squares on the initial trajectory.
        xs = grids[r][idx_tr] * (1 - frac_tr[:, None]) + grids[r][
            np.minimum(idx_tr + 1, n_steps)] * frac_tr[:, None]
        Phi = np.concatenate([xs, np.ones((xs.shape[0], 1))], axis=1)
        G = Phi.T @ Phi
        G += 1e-8 * np.trace(G) / G.shape[0] * np.eye(G.shape[0])
        beta = np.linalg.solve(G, Phi.T @ z_tr)
        if not np.all(np.isfinite(beta)):
            beta = np.zeros_like(beta)
        Cs[r], ds[r] = beta[:hidden].T, beta[hidden]
    params = models_from(Ws, x0s, Cs, ds, biases)

    # -- training
    data = _make_data(taus, z_tr, step, span_tau, float(np.max(om_used)), dtype)
    opt = optimizer if optimizer is not None else _default_optimizer(learning_rate, iterations)
    traces = [0]

    @eqx.filter_jit
    def train_step(params, opt_state, data, horizon):
        traces[0] += 1  # runs at trace time only: counts compilations of this step

        def one(model, state):
            (loss, mse), grads = jax.value_and_grad(_loss_terms, has_aux=True)(
                model, data, horizon, step, n_steps, spectral_weight
            )
            updates, new_state = opt.update(grads, state, model)
            new_model = eqx.apply_updates(model, updates)
            ok = jnp.isfinite(loss)
            for leaf in jax.tree.leaves(new_model):
                ok = ok & jnp.all(jnp.isfinite(leaf))
            # A restart that blew up keeps its last finite parameters (and stops moving).
            keep = lambda new, old: jnp.where(ok, new, old)
            new_model = jax.tree.map(keep, new_model, model)
            return new_model, jax.tree.map(keep, new_state, state), loss, mse

        return jax.vmap(one)(params, opt_state)

    opt_state = jax.vmap(opt.init)(params)
    ramp = max(int(0.5 * iterations), 1)
    h_end = span_tau + 20 * float(data.width)
    losses = []
    t_train = time.perf_counter()
    if progress is not None:
        progress(0, iterations, float("nan"))
    report_every = max(iterations // 100, 1)
    for it in range(iterations):
        frac = min(it / ramp, 1.0) if curriculum < 1 else 1.0
        horizon = curriculum * span_tau + frac * (h_end - curriculum * span_tau)
        params, opt_state, loss, mse = train_step(params, opt_state, data,
                                                  jnp.asarray(horizon, dtype))
        losses.append(loss)
        if progress is not None and ((it + 1) % report_every == 0 or it + 1 == iterations):
            progress(it + 1, iterations, float(jnp.nanmin(loss)))
    history = np.asarray(jax.device_get(losses), np.float64).reshape(-1, restarts)
    # The horizon covers the whole window by the end, so the last step's time-domain MSE
    # is the plain training MSE (of the parameters one small step before the final ones).
    final = np.asarray(mse, np.float64)
    t_done = time.perf_counter()
    final_nan = np.where(np.isfinite(final), final, np.inf)
    best = int(np.argmin(final_nan))
    pick = lambda a: None if a is None else a[best]
    bm = jax.tree.map(pick, params)
    # Fold the standardisation into the readout: the model speaks the data's units.
    sc, mu = jnp.asarray(scale, dtype), jnp.asarray(mean, dtype)
    model = eqx.tree_at(lambda mm: (mm.C, mm.d), bm, (bm.C * sc[:, None], bm.d * sc + mu))

    options = dict(
        iterations=iterations, restarts=restarts, learning_rate=learning_rate,
        spectral_weight=spectral_weight, val_fraction=None if train_until is not None
        else val_fraction, init_amplitude=init_amplitude, init_noise=init_noise,
        curriculum=curriculum, seed=seed, learn_bias=learn_bias,
        optimizer="default" if optimizer is None else "custom", span=float(span),
        samples=int(t.shape[0]), train_samples=n_train, rtol=step.rtol, atol=step.atol,
    )
    result = FitResult(
        model=model,
        t0=float(t[0]),
        time_scale=time_scale,
        dt=dt_int / time_scale,
        solver=solver,
        adjoint=adj_name,
        univariate=univariate,
        channels=channels,
        train_until=float(t_tr[-1]),
        history=history,
        restart_scores=final,
        best_restart=best,
        init_frequencies=np.sort(omegas),
        metrics={},
        options=options,
        step_traces=traces[0],
    )
    metrics = _metrics(result, t, y, n_train)
    timings = {
        "setup_s": t_train - t_start,
        "train_s": t_done - t_train,
        "total_s": time.perf_counter() - t_start,
    }
    return dataclasses.replace(result, metrics=metrics, timings=timings)


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
    out["frequencies"] = result.frequencies.tolist()
    out["measured_frequencies"] = result._measured_from(t_long, y_long).tolist()
    return out


# ------------------------------------------------------------------------ CSV / command line


def _read_csv(data, time_col: str, value_cols: Sequence[str] | None):
    """Times, values and channel names from a CSV, with errors that name the column."""
    import pandas as pd

    path = Path(data)
    if not path.is_file():
        _fail(f"DATA must be an existing CSV file; got {str(path)!r}, which "
              f"{'is a directory' if path.is_dir() else 'does not exist'}.")
    try:
        df = pd.read_csv(path)
    except Exception as e:  # pandas raises several parser error types
        _fail(f"DATA {str(path)!r} could not be read as CSV ({type(e).__name__}: {e}). Pass a "
              "comma-separated file with a header row.")
    cols = [str(c) for c in df.columns]
    if time_col not in cols:
        _fail(f"--time-col {time_col!r} is not a column of {path.name}; its columns are "
              f"{cols}. Pass --time-col with one of them.")
    if value_cols:
        missing = [c for c in value_cols if c not in cols]
        if missing:
            _fail(f"--value-cols {','.join(value_cols)!r} names column(s) {missing} that "
                  f"{path.name} lacks; its columns are {cols}.")
        if time_col in value_cols:
            _fail(f"--value-cols must not include the time column {time_col!r}.")
        names = list(value_cols)
    else:
        names = [c for c in cols if c != time_col]
        if not names:
            _fail(f"{path.name} has only the time column {time_col!r}; add value columns or "
                  "pass --value-cols.")
    arrays = {}
    for c in [time_col, *names]:
        v = pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=np.float64)
        bad = np.nonzero(~np.isfinite(v))[0]
        if bad.size:
            rows = ", ".join(str(int(r) + 1) for r in bad[:5]) + (", ..." if bad.size > 5 else "")
            flag = "--time-col" if c == time_col else "column"
            _fail(f"{flag} {c!r} has {bad.size} missing, non-numeric, NaN or inf value(s) (data "
                  f"rows {rows}, 1-based after the header). Remove or fill those rows.")
        arrays[c] = v
    t = arrays[time_col]
    d = np.diff(t)
    if np.any(d <= 0):
        i = int(np.argmax(d <= 0))
        _fail(f"--time-col {time_col!r} must be strictly increasing; data row {i + 2} has "
              f"{t[i + 1]!r} after {t[i]!r} in row {i + 1}. Sort the file by time and drop "
              "duplicate times.")
    ys = np.stack([arrays[c] for c in names], axis=1)
    return t, ys, names


def fit_csv(
    data,
    *,
    out=None,
    time_col: str = "t",
    value_cols: Sequence[str] | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int, float], None] | None = None,
    **fit_kwargs,
) -> tuple[FitResult, Path, dict]:
    """Fit a CSV's columns and write the model, figures and a JSON report to a directory.

    Everything is validated before any file is written, and the outputs are written into
    a temporary sibling directory that is renamed to `out` only when complete, so a
    failure leaves no half-written `out`.

    **Arguments:**
    - `data`: CSV path with a header row.
    - `out`: output directory (default: `<data stem>-fit` next to the CSV).
    - `time_col`, `value_cols`: the time column and the value columns (default: all
      others).
    - `overwrite`: replace an existing `out`.
    - `progress`, `**fit_kwargs`: passed to `fit`.

    **Returns:** `(result, out, report)`. `out` holds `model.eqx` and `fit.json` (load with
    `ox.load_fit(out)`), `report.json`, `loss.png` and `fit.png`.
    """
    t_start = time.perf_counter()
    data = Path(data)
    out = Path(out) if out is not None else data.with_name(data.stem + "-fit")
    if out.exists() and not overwrite:
        _fail(f"--out {str(out)!r} already exists; pass --overwrite to replace it or choose "
              "another directory.")
    if out.exists() and not out.is_dir():
        _fail(f"--out {str(out)!r} is a file, not a directory; choose another path.")
    t, ys, names = _read_csv(data, time_col, value_cols)
    result = fit(t, ys[:, 0] if ys.shape[1] == 1 else ys, channels=names, progress=progress,
                 **fit_kwargs)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        result.save(tmp)
        result.plot_loss(tmp / "loss.png")
        result.plot_fit(t, ys, tmp / "fit.png")
        report = result.report()
        report["data"] = {"path": str(data), "time_col": time_col, "value_cols": names,
                          "samples": int(t.shape[0])}
        report["files"] = [MODEL_FILE, SETTINGS_FILE, "report.json", "loss.png", "fit.png"]
        report["wall_time_s"] = time.perf_counter() - t_start
        (tmp / "report.json").write_text(json.dumps(_jsonable(report), indent=1))
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result, out, report
