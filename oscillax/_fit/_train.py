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
   optional spectral-magnitude term beside the time-domain MSE, on the training part
   less its last `select_fraction` (the selection part), whose first half (the stopping
   part) every step also scores: each restart keeps its parameters from the step that
   scored best there;
4. keeps restart 0 unless another beats it significantly on the stopping part, and
   weighs it on the second half (the comparison part, which nothing of the network's
   saw) against the baselines, fitted to the samples before it: the baseline forecast is
   harmonic regression with AR errors; the network's candidate is its forecast averaged
   with AR(p)'s (the combined forecast) unless the network alone beats that
   significantly; the candidate is the forecast only if it beats the baseline forecast
   significantly (a Diebold-Mariano test at 5 %), else that baseline is (the rule:
   `_scores._selection`);
5. scores everything on the held-out later part of the series (`_scores`, `_baselines`).

Time inside the model is dimensionless, $\\tau = s\\,(t - t_0)$ with $s$ the highest initial
angular frequency, so the learning rate and step size do not depend on the user's units.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._checks import _check_series
from ._dates import _is_dates, as_times
from ._init import _initial_generators, _Plan, _plan
from ._inputs import _check_settings, _Series, _Settings, _split_series
from ._loss import _Data, _loss_terms, _make_data
from ._model import SkewGenerator
from ._result import FitResult
from ._scores import SIGNIFICANCE_Z, _metrics, _newey_west_se


@dataclasses.dataclass(frozen=True)
class _Trained:
    """What the optimisation loop leaves: the batch of restarts and their losses."""

    params: SkewGenerator  # leading axis: restarts (with selection: each at its best step)
    history: np.ndarray  # (iterations, restarts) training loss
    final_mse: np.ndarray  # (restarts,) time-domain MSE at the last step
    select_mse: np.ndarray | None  # (restarts,) best selection-part MSE, None without one
    select_err: np.ndarray | None  # (restarts, T - n_fit) its squared errors, per sample
    best_step: np.ndarray | None  # (restarts,) the step it was reached at
    traces: int  # how often the training step was traced
    started: float  # perf_counter when the loop started ...
    finished: float  # ... and when it ended


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


def _optimise(params, data: _Data, settings: _Settings, plan: _Plan, select: bool,
              progress) -> _Trained:
    """Train all restarts together, one vmapped optax step per iteration.

    The horizon of the loss grows from `curriculum` times the fitted window to past its
    end by mid-training. A restart whose step gives a non-finite loss or parameter keeps
    its last finite state. With `select`, each step also scores the parameters it starts
    from on the selection part (the same forward pass), and each restart keeps the
    parameters that scored best there: early stopping, per restart.
    """
    step, n_steps = plan.step, plan.n_steps
    spectral_weight, iterations = settings.spectral_weight, settings.iterations
    opt = settings.optimizer
    if opt is None:
        opt = _default_optimizer(settings.learning_rate, iterations)
    dtype = data.y.dtype
    traces = [0]

    @eqx.filter_jit
    def train_step(params, opt_state, best, data, horizon, it):
        traces[0] += 1  # runs at trace time only: counts compilations of this step

        def one(model, state, kept):
            (loss, (mse, sel, err)), grads = jax.value_and_grad(_loss_terms, has_aux=True)(
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
            if select:
                kept_model, kept_sel, kept_it, kept_err = kept
                better = jnp.isfinite(sel) & (sel < kept_sel)
                pick = lambda new, old: jnp.where(better, new, old)
                kept = (jax.tree.map(pick, model, kept_model), pick(sel, kept_sel),
                        pick(it, kept_it), pick(err, kept_err))
            return new_model, jax.tree.map(keep, new_state, state), kept, loss, mse

        return jax.vmap(one)(params, opt_state, best)

    opt_state = jax.vmap(opt.init)(params)
    R = settings.restarts
    best = (params, jnp.full((R,), jnp.inf, dtype), jnp.zeros((R,), jnp.int32),
            jnp.zeros((R, data.y.shape[0]), dtype)) if select else jnp.zeros((R,), dtype)
    span_tau, curriculum = plan.span_tau, settings.curriculum
    ramp = max(int(0.5 * iterations), 1)
    h_end = span_tau + 20 * float(data.width)
    losses = []
    started = time.perf_counter()
    if progress is not None:
        progress(0, iterations, float("nan"))
    report_every = max(iterations // 100, 1)
    for it in range(iterations):
        frac = min(it / ramp, 1.0) if curriculum < 1 else 1.0
        horizon = curriculum * span_tau + frac * (h_end - curriculum * span_tau)
        params, opt_state, best, loss, mse = train_step(
            params, opt_state, best, data, jnp.asarray(horizon, dtype),
            jnp.asarray(it, jnp.int32))
        losses.append(loss)
        if progress is not None and ((it + 1) % report_every == 0 or it + 1 == iterations):
            progress(it + 1, iterations, float(jnp.nanmin(loss)))
    history = np.asarray(jax.device_get(losses), np.float64).reshape(-1, R)
    # The horizon covers the whole fitted window by the end, so the last step's
    # time-domain MSE is the plain training MSE (of the parameters one small step before
    # the final ones).
    final = np.asarray(mse, np.float64)
    select_mse = select_err = best_step = None
    if select:
        params = best[0]
        select_mse = np.asarray(best[1], np.float64)
        best_step = np.asarray(best[2], np.int64)
        select_err = np.asarray(best[3], np.float64)[:, plan.n_fit :]
    return _Trained(params=params, history=history, final_mse=final, select_mse=select_mse,
                    select_err=select_err, best_step=best_step, traces=traces[0],
                    started=started, finished=time.perf_counter())


def _pick_restart(trained: _Trained) -> int:
    """Without a selection part, the lowest final training MSE. With one, restart 0 (the
    unperturbed spectral start) unless another beats it there significantly, by the rule
    that weighs the network against the baselines (`_scores._selection`): the perturbed
    restarts are there to escape a bad start, not to win a noisy comparison (on yearly
    sunspots, the lowest selection MSE picked held-out RMSEs from 52 to 65 over seeds;
    this rule, 52 for each)."""
    if trained.select_mse is None:
        s = trained.final_mse
        return int(np.argmin(np.where(np.isfinite(s), s, np.inf)))
    s = np.where(np.isfinite(trained.select_mse), trained.select_mse, np.inf)
    lead = int(np.argmin(s))
    err = trained.select_err
    for r in range(s.shape[0]):
        d = err[r] - err[lead]
        if r == lead or (np.isfinite(s[r]) and np.all(np.isfinite(d))
                         and d.mean() <= SIGNIFICANCE_Z * _newey_west_se(d)):
            return r
    return lead


def _assemble(series: _Series, settings: _Settings, plan: _Plan, trained: _Trained,
              t_start: float, calendar: str | None = None) -> FitResult:
    """The restart `_pick_restart` keeps, in the data's units, with its options, scores
    and timings; `calendar`: how dates were read as times (`_dates`), None for numbers."""
    scores = trained.final_mse if trained.select_mse is None else trained.select_mse
    best = _pick_restart(trained)
    pick = lambda a: None if a is None else a[best]
    bm = jax.tree.map(pick, trained.params)
    # Fold the standardisation into the readout: the model speaks the data's units.
    dtype = bm.x0.dtype
    sc, mu = jnp.asarray(series.scale, dtype), jnp.asarray(series.mean, dtype)
    model = eqx.tree_at(lambda mm: (mm.C, mm.d), bm, (bm.C * sc[:, None], bm.d * sc + mu))
    t, step = series.t, plan.step
    options = dict(
        iterations=settings.iterations, restarts=settings.restarts,
        learning_rate=settings.learning_rate, spectral_weight=settings.spectral_weight,
        val_fraction=series.val_fraction, select_fraction=series.select_fraction,
        init_amplitude=settings.init_amplitude,
        init_noise=settings.init_noise, curriculum=settings.curriculum, seed=settings.seed,
        learn_bias=settings.learn_bias,
        optimizer="default" if settings.optimizer is None else "custom",
        span=float(t[-1] - t[0]), samples=int(t.shape[0]), train_samples=series.n_train,
        fit_samples=series.n_fit, stop_samples=series.n_stop - series.n_fit,
        stopped_at=None if trained.best_step is None else int(trained.best_step[best]),
        rtol=step.rtol, atol=step.atol, time_calendar=calendar,
    )
    result = FitResult(
        model=model,
        t0=float(t[0]),
        time_scale=plan.time_scale,
        dt=step.dt / plan.time_scale,
        solver=settings.solver,
        adjoint=settings.adjoint,
        univariate=series.univariate,
        channels=series.channels,
        train_until=float(series.t_tr[-1]),
        history=trained.history,
        restart_scores=scores,
        best_restart=best,
        init_frequencies=np.sort(plan.omegas),
        metrics={},
        options=options,
        step_traces=trained.traces,
    )
    metrics = _metrics(result, t, series.y, series.n_train, series.n_fit, series.n_stop)
    timings = {
        "setup_s": trained.started - t_start,
        "train_s": trained.finished - trained.started,
        "total_s": time.perf_counter() - t_start,
    }
    return dataclasses.replace(result, metrics=metrics, timings=timings)


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
    select_fraction: float = 0.2,
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
    vmapped batch. The part after `train_until` (default: the last `val_fraction` of the
    time span) is held out and scored as a forecast, beside three baselines on the same
    split (training mean, harmonic regression at the dominant periods, AR(p) by AIC, and
    harmonic regression with AR errors).

    The last `select_fraction` of the training part is not fitted: its first half stops
    each restart at its best step there, its second half chooses the forecast, by this
    rule (`_scores._selection`): the baseline forecast is harmonic regression with AR
    errors (fitted to the samples before that half; it nests the mean, harmonic
    regression and AR); the network's candidate is the combined forecast, the network's
    averaged with AR(p)'s (harmonic regression's without an AR), unless the network alone
    beats that significantly; the candidate is the forecast only when it beats the
    baseline forecast significantly there (one-sided Diebold-Mariano, 5 %), otherwise
    that baseline is, and the report says so. `FitResult.forecast` gives the chosen forecast,
    `metrics["verdict"]` says which it is and lists every score: see `FitResult.metrics`.

    **Arguments:**
    - `ts`: `(T,)` strictly increasing sample times (may be irregular): numbers, or dates
      (datetime64, pandas timestamps, `datetime.date`), read as decimal years, so
      periods come out in years (`FitResult.time_calendar`; `oscillax._fit._dates`).
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
    - `train_until`: train on `ts <= train_until` instead (overrides `val_fraction`); a
      date when `ts` are dates.
    - `select_fraction`: the end of the training part (0 to 0.5 of its span) that stops
      training (its first half) and chooses the forecast (its second half); 0: none, the
      network is fitted to the whole training part for all `iterations` and is the
      forecast.
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
    result.frequencies, result.metrics["val_rel_amp"], result.forecaster
    y_future = result.predict(np.linspace(60, 80, 200))  # the network's, from t0
    ```
    """
    t_start = time.perf_counter()
    # 1. validate
    ts, calendar = as_times(ts)  # dates: decimal years, the calendar kept for later dates
    if calendar is not None and train_until is not None and _is_dates([train_until]):
        train_until = float(as_times([train_until], calendar, name="train_until")[0][0])
    t, y, univariate = _check_series(ts, ys)
    settings = _check_settings(
        hidden=hidden, form=form, activation=activation, solver=solver, dt=dt,
        adjoint=adjoint, iterations=iterations, restarts=restarts,
        learning_rate=learning_rate, optimizer=optimizer, spectral_weight=spectral_weight,
        learn_bias=learn_bias, init_amplitude=init_amplitude, init_noise=init_noise,
        curriculum=curriculum, seed=seed,
    )
    series = _split_series(t, y, univariate, channels=channels, val_fraction=val_fraction,
                           train_until=train_until, select_fraction=select_fraction)
    # 2. initialise: frequencies and step from the spectrum, then the restarts' networks
    plan = _plan(series, settings)
    params, om_used = _initial_generators(series, settings, plan)
    # 3. data and loss, 4. optimise
    # The network sees `[:n_stop]` only: fitted on `[:n_fit]`, stopped on `[n_fit:n_stop]`;
    # `[n_stop:n_train]` is left for the comparison with the baselines.
    n_stop = series.n_stop
    data = _make_data(plan.taus[:n_stop], series.z_tr[:n_stop], plan.step, plan.span_tau,
                      float(np.max(om_used)), jnp.result_type(float), n_fit=series.n_fit)
    select = series.n_fit < series.n_train
    trained = _optimise(params, data, settings, plan, select, progress)
    # 5. the best restart, scored; the forecaster chosen on the selection part
    return _assemble(series, settings, plan, trained, t_start, calendar)
