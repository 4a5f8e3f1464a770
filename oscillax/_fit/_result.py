"""`FitResult` (prediction, frequencies, persistence) and `load_fit`."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import diffrax
import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .._solver import FIXED_SOLVERS
from ._baselines import baseline_predict, combination_partner, combine
from ._checks import _fail
from ._dates import _is_dates, as_times, describe
from ._model import SkewGenerator
from ._plot import fit_figure, loss_figure
from ._spectrum import spectral_peaks
from ._stepping import (
    ADJOINTS,
    _bucket,
    _hermite_weights,
    _n_steps,
    _predict_jit,
    _states_jit,
    _Stepping,
)

FORMAT_VERSION = 1
MODEL_FILE = "model.eqx"
SETTINGS_FILE = "fit.json"


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
    - `restart_scores`: `(restarts,)` each restart's best MSE on the stopping part (the
      first half of the selection part; standardised units; each restart keeps the
      parameters of that step, for the one kept `options["stopped_at"]`), or without a
      selection part its final training MSE. `best_restart` is the lowest of the latter;
      with a selection part it is restart 0 (the unperturbed start) unless another beats
      it there significantly.
    - `init_frequencies`: the angular frequencies `A` started from (from the FFT peaks).
    - `metrics`: RMS errors on the training part and on the held-out forecast, absolute,
      relative to the standard deviation (`nrmse`) and to the amplitude (`rel_amp`);
      `baselines`: the training mean's, harmonic regression's, harmonic regression with
      AR errors' and AR(p)'s forecast RMSE on the same held-out part (`{"mean": {"rmse",
      ...}, "harmonic": {"rmse", "periods", ...}, "harmonic_ar": {"rmse", "periods", "q",
      ...}, "ar": {"rmse", "p", ...}}`); `selection`: the network (fitted to the training
      part less its last `select_fraction`, stopped on the first half of that) and the
      baselines (fitted to everything before the second half), scored on the second half,
      the comparison part (`{"samples", "from", "until", "stop_samples", "network_rmse",
      "baselines", "combined_rmse", "partner", "best_baseline", "rival", "candidate",
      "chosen", "margins"}`, None with `select_fraction=0`); `forecaster`, the one chosen
      there (`"network"`, `"combined"`, or the baseline forecast `"harmonic_ar"`: what
      `forecast` returns; the rule is `_scores._selection`'s) and its held-out
      `forecast_rmse`; `combined`, the held-out
      RMSE of the network averaged with its `partner` baseline (`{"partner", "weight",
      "rmse"}`); `best_forecaster`, the lowest held-out RMSE in hindsight,
      and a one-line `verdict` that says all of it; `frequencies`, `periods`,
      `measured_frequencies`, `measured_periods`. `train_*` scores are over the
      `fit_samples` the network was fitted to; the `stop_samples` after them stopped it.
    - `options`: the settings `fit` was called with, and `time_calendar` (see the
      property of that name: how dates were read as years; None for numeric times).
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

    @property
    def time_calendar(self) -> str | None:
        """How the fitted dates were read as decimal years (`"months"` or `"elapsed"`, see
        `oscillax._fit._dates`), so that dates passed later are read the same way; None
        when the fit's times were numbers."""
        return self.options.get("time_calendar")

    def _times(self, ts, name="ts"):
        """`ts` as the fit's times: dates read in `time_calendar` (refused when the fit's
        times were numbers: their unit is unknown)."""
        if _is_dates(ts):
            if self.time_calendar is None:
                _fail(f"`{name}` holds dates, but this fit's times were numbers, in a unit "
                      "oscillax does not know; pass numbers in the data's time unit, or fit "
                      "on dates.")
            return as_times(ts, self.time_calendar, name=name)[0]
        return ts

    def _check_times(self, ts) -> np.ndarray:
        t = self._times(ts)
        try:
            t = np.asarray(t, dtype=np.float64)
        except (TypeError, ValueError):
            _fail(f"`ts` must be a 1-D array of numbers (or dates, for a fit on dates); "
                  f"could not convert a {type(ts).__name__} to floats.")
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

    @property
    def forecaster(self) -> str:
        """The forecaster chosen on the comparison part: `"network"`, `"combined"` (the
        network averaged with AR(p), or harmonic regression without an AR), or
        `"harmonic_ar"`, harmonic regression with AR errors (see `metrics["selection"]` and
        `_scores._selection`; `"mean"`, `"harmonic"` and `"ar"` forecast too)."""
        return self.metrics.get("forecaster", "network")

    def forecast(self, ts) -> np.ndarray:
        """The chosen forecaster's values at times `ts` after the training part, shaped as
        `predict`'s: the network's `predict`, or its average with AR(p) (`"combined"`),
        when that beat every baseline significantly on the comparison part, else harmonic
        regression with AR errors (refitted to the whole training part). An AR forecast,
        combined or not, needs `ts` on the sample grid after the training part.

        ```python
        y_next = result.forecast(t_future)   # result.forecaster says which model it is
        ```
        """
        t = self._check_times(ts)
        name = self.forecaster
        if name == "network":
            return self.predict(t)
        if t.min() <= self.train_until:
            _fail(f"`ts` must lie after the training part (train_until = {self.train_until!r}) "
                  f"for the {name} forecast; got min(ts) = {t.min()!r}. Use `predict` for the "
                  "network inside the training window.")
        b = self.metrics["baselines"]
        if name == "combined":
            partner = (self.metrics.get("combined") or {}).get("partner") or (
                combination_partner(b))
            y = combine(self._eval(t, readout=True), baseline_predict(partner, b[partner], t))
        else:
            y = baseline_predict(name, b[name], t)
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

    @property
    def periods(self) -> np.ndarray:
        """The periods $2\\pi/\\omega$ of `frequencies`, in the data's time units (years
        when the times were dates; see `time_calendar`), in descending order."""
        return 2 * np.pi / self.frequencies

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
        """A JSON-able summary: frequencies and periods, metrics, settings (no loss history)."""
        s = {}
        for key, value in self.settings().items():
            if key != "history":
                s[key] = value
            if key == "frequencies":
                s["periods"] = _jsonable(self.periods)
        s["time_unit"] = describe(self.time_calendar)
        s["final_loss"] = float(self.history[-1, self.best_restart]) if len(self.history) else None
        return s

    # -- figures

    def plot_loss(self, path=None):
        """Training loss of every restart (best in bold), log scale; returns the Figure."""
        return loss_figure(self, path)

    def plot_fit(self, ts, ys, path=None):
        """Data, the fit on the training part and the forecast after it; returns the Figure."""
        return fit_figure(self, ts, ys, path)


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
