"""`fit`'s starting point: frequencies from the spectrum, the time step, initial networks.

$A$ starts block-diagonal at the peaks of the training part's spectrum (in internal time,
$\\tau = s\\,(t - t_0)$ with $s$ the highest of them, so every internal frequency is
$\\le 1$), corrected for the amplitude dependence of a nonlinear oscillator's frequency;
restarts are perturbed copies; the readout $(C, d)$ is solved by least squares on each
initial trajectory.
"""

from __future__ import annotations

import dataclasses
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._skew import skew_from_frequencies
from .._solver import FIXED_SOLVERS
from ._checks import _fail
from ._inputs import _Series, _Settings
from ._model import SkewGenerator
from ._spectrum import spectral_peaks
from ._stepping import (
    _DT_MAX,
    _adjoint_object,
    _grid_states,
    _hermite_weights,
    _n_steps,
    _Stepping,
)

MAX_AUTO_PAIRS = 8
MAX_TRAIN_STEPS = 2_000_000

MIN_TRAIN_STEPS = 16
"""Fewest solver steps over the training window a given `dt` may make."""


@dataclasses.dataclass(frozen=True)
class _Plan:
    """The initial frequencies and the time stepping that follows from them."""

    hidden: int
    omegas: np.ndarray  # (hidden // 2,) initial angular frequencies, data units
    time_scale: float  # s in tau = s (t - t0)
    taus: np.ndarray  # (n_train,) training times, internal (the selection part too)
    n_fit: int  # the first n_fit of them are fitted
    idx: np.ndarray  # (n_train,) grid index of each training time ...
    frac: np.ndarray  # ... and its fraction of a step past it
    n_steps: int  # engine steps over the training window
    step: _Stepping  # how training integrates
    init_step: _Stepping  # how the initial networks are run (always the engine)

    @property
    def om_int(self) -> np.ndarray:
        return self.omegas / self.time_scale  # internal frequencies, <= 1

    @property
    def span_tau(self) -> float:
        """The end of the fitted part, internal (the horizon and the spectrum stop here)."""
        return self.taus[self.n_fit - 1]


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


def _plan(series: _Series, settings: _Settings) -> _Plan:
    """Frequencies from the fitted part's spectrum (which also sets `hidden` by default)
    and the solver step, default: the sample spacing split into steps under `_DT_MAX`.
    The grid covers the whole training part, so the selection part is scored in the same
    forward pass."""
    t_fit, t_tr, solver = series.t_fit, series.t_tr, settings.solver
    span_tr = t_fit[-1] - t_fit[0]
    nyq = np.pi / np.median(np.diff(t_fit))
    peaks, powers = spectral_peaks(t_fit, series.z_fit, rel_power=1e-4)
    hidden = settings.hidden
    if hidden is None:
        strong = int(np.sum(powers >= 1e-2 * powers.max())) if powers.size else 1
        hidden = 2 * min(max(strong, 1), MAX_AUTO_PAIRS)
    omegas = _fill_frequencies(peaks, hidden // 2, 2 * np.pi / span_tr, nyq)
    time_scale = float(np.max(omegas))
    taus = (t_tr - series.t[0]) * time_scale
    spacing = float(np.median(np.diff(taus)))
    if settings.dt is None:
        dt_int = spacing / math.ceil(spacing / _DT_MAX[solver] - 1e-9)
    else:
        dt_int = settings.dt * time_scale
    n_steps = _n_steps(taus[-1], dt_int)
    if settings.dt is not None and n_steps < MIN_TRAIN_STEPS:
        span = float(t_tr[-1] - t_tr[0])
        _fail(f"`dt` = {settings.dt:g} is too large for the training window ({span:g} time "
              f"units): it gives {n_steps} solver steps, at least {MIN_TRAIN_STEPS} are needed. "
              f"Pass dt <= {span / MIN_TRAIN_STEPS:g}, or leave dt out to choose it from the "
              "sampling.")
    if n_steps > MAX_TRAIN_STEPS:
        _fail(f"`dt` = {dt_int / time_scale:g} needs {n_steps} solver steps over the training "
              "window; pass a larger `dt`.")
    idx, frac = _hermite_weights(taus, dt_int)
    adj_obj = settings.adjoint_obj
    if adj_obj is None:
        adj_obj = _adjoint_object(settings.adjoint, solver, dt_int)
    step = _Stepping(solver=solver, adjoint=settings.adjoint, dt=dt_int,
                     aligned=bool(np.all(frac == 0)), adjoint_obj=adj_obj)
    init_step = _Stepping(solver=solver if solver in FIXED_SOLVERS else "rk4",
                          adjoint="engine", dt=dt_int)
    return _Plan(hidden=hidden, omegas=omegas, time_scale=time_scale, taus=taus,
                 n_fit=series.n_fit, idx=idx, frac=frac, n_steps=n_steps, step=step,
                 init_step=init_step)


def _generators(settings: _Settings, Ws, x0s, Cs, ds, biases) -> SkewGenerator:
    """A batch of generators (leading axis: restarts) from numpy parameters."""
    dtype = jnp.result_type(float)
    return SkewGenerator(
        W=jnp.asarray(Ws, dtype), C=jnp.asarray(Cs, dtype), d=jnp.asarray(ds, dtype),
        x0=jnp.asarray(x0s, dtype),
        bias=None if biases is None else jnp.asarray(biases, dtype),
        form=settings.form, activation=settings.activation,
    )


def _amplitude_corrected(settings: _Settings, plan: _Plan, grid_fn, x0_base, p):
    """Internal frequencies that, at the initial amplitude, run at the spectral peaks.

    A nonlinear oscillator's frequency depends on its amplitude: each pair is rescaled by
    the ratio of the wanted to the measured frequency (2 passes).
    """
    hidden, restarts = plan.hidden, settings.restarts
    om_int = plan.om_int
    om_used = om_int.copy()
    if settings.activation == "identity":
        return om_used
    zeros_C, zeros_d = np.zeros((restarts, p, hidden)), np.zeros((restarts, p))
    biases = np.zeros((restarts, hidden)) if settings.learn_bias else None
    grid_t = np.arange(plan.n_steps + 1) * plan.step.dt
    for _ in range(2):
        A_try = np.asarray(skew_from_frequencies(om_used, zero_block=hidden % 2 == 1))
        # R identical copies: the same compiled program as the restarts' forward pass.
        probe = _generators(settings, np.broadcast_to(A_try / 2, (restarts, hidden, hidden)),
                            np.broadcast_to(x0_base, (restarts, hidden)), zeros_C, zeros_d,
                            biases)
        grid = np.asarray(grid_fn(probe))[0]
        for k in range(hidden // 2):
            got, _ = spectral_peaks(grid_t, grid[:, 2 * k], max_peaks=1)
            if got.size and np.isfinite(got[0]) and got[0] > 0:
                ratio = om_int[k] / got[0]
                if 0.5 < ratio < 2.0:
                    om_used[k] *= ratio
    return om_used


def _readout(grid, plan: _Plan, z_fit):
    """$(C, d)$ by (lightly ridge-regularised) least squares on one initial trajectory,
    over the fitted part."""
    idx, frac = plan.idx[: plan.n_fit], plan.frac[: plan.n_fit]
    nxt = np.minimum(idx + 1, plan.n_steps)
    xs = grid[idx] * (1 - frac[:, None]) + grid[nxt] * frac[:, None]
    Phi = np.concatenate([xs, np.ones((xs.shape[0], 1))], axis=1)
    G = Phi.T @ Phi
    G += 1e-8 * np.trace(G) / G.shape[0] * np.eye(G.shape[0])
    beta = np.linalg.solve(G, Phi.T @ z_fit)
    if not np.all(np.isfinite(beta)):
        beta = np.zeros_like(beta)
    return beta[: plan.hidden].T, beta[plan.hidden]


def _initial_generators(series: _Series, settings: _Settings, plan: _Plan):
    """The restarts' starting generators (batched) and the internal frequencies used.

    Restart 0 starts exactly at the (amplitude-corrected) spectral init; the others add
    `init_noise` to W and x0.
    """
    hidden, restarts, p = plan.hidden, settings.restarts, series.y.shape[1]
    m = hidden // 2
    x0_base = np.zeros(hidden)
    x0_base[0 : 2 * m : 2] = settings.init_amplitude
    init_step, n_steps = plan.init_step, plan.n_steps
    grid_fn = eqx.filter_jit(jax.vmap(lambda mdl: _grid_states(mdl, init_step, n_steps)))
    rng = np.random.default_rng(settings.seed)
    om_used = _amplitude_corrected(settings, plan, grid_fn, x0_base, p)
    A0 = np.asarray(skew_from_frequencies(np.asarray(om_used, np.float64),
                                          zero_block=hidden % 2 == 1), np.float64)
    Ws = np.empty((restarts, hidden, hidden))
    x0s = np.empty((restarts, hidden))
    for r in range(restarts):
        noise = settings.init_noise if r > 0 else 0.0
        Ws[r] = A0 / 2 + noise * rng.standard_normal((hidden, hidden))
        x0s[r] = x0_base + noise * settings.init_amplitude * rng.standard_normal(hidden)
    biases = np.zeros((restarts, hidden)) if settings.learn_bias else None
    zeros_C, zeros_d = np.zeros((restarts, p, hidden)), np.zeros((restarts, p))
    grids = np.asarray(grid_fn(_generators(settings, Ws, x0s, zeros_C, zeros_d, biases)),
                       np.float64)  # (R, steps + 1, n)
    Cs, ds = np.empty((restarts, p, hidden)), np.empty((restarts, p))
    for r in range(restarts):
        Cs[r], ds[r] = _readout(grids[r], plan, series.z_fit)
    return _generators(settings, Ws, x0s, Cs, ds, biases), om_used
