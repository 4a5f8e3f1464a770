"""`fit`'s inputs, checked: the settings, and the series split and standardised.

The checks run in the order of `fit`'s signature, series first, so the first problem a
user has is the one reported.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import optax

from ._checks import (
    FORMS,
    _check_activation,
    _check_float,
    _check_int,
    _fail,
    _resolve_solver_adjoint,
)

MIN_TRAIN_SAMPLES = 12
MIN_SELECT_SAMPLES = 4
"""Fewest samples at the end of the training part that may choose the forecaster."""


@dataclasses.dataclass(frozen=True)
class _Settings:
    """`fit`'s settings, checked and normalised (names canonical, numbers plain)."""

    form: str
    activation: str
    solver: str
    adjoint: str
    adjoint_obj: Any  # a diffrax adjoint the user passed, else None (built later)
    hidden: int | None
    iterations: int
    restarts: int
    learning_rate: float
    optimizer: optax.GradientTransformation | None
    spectral_weight: float
    learn_bias: bool
    init_amplitude: float
    init_noise: float
    curriculum: float
    seed: int
    dt: float | None


@dataclasses.dataclass(frozen=True)
class _Series:
    """The data `(T,)`, `(T, p)`, its training part `[:n_train]` and standardisation.

    The network is fitted to `[:n_fit]`; the rest of the training part, `[n_fit:n_train]`,
    the selection part, is never fitted: its first half `[n_fit:n_stop]` stops training
    (the step and the restart kept), its second `[n_stop:n_train]` chooses between the
    network and the baselines, on data that nothing of the network's saw. The
    standardisation is that of `[:n_fit]`, so nothing of the selection part leaks in.
    """

    t: np.ndarray
    y: np.ndarray
    univariate: bool
    channels: tuple[str, ...]
    val_fraction: float | None  # None when `train_until` set the split
    n_train: int
    n_fit: int  # samples the network is fitted to (== n_train without selection)
    n_stop: int  # [n_fit:n_stop] stops training, [n_stop:n_train] compares forecasters
    select_fraction: float
    mean: np.ndarray  # (p,) over the fitted part
    scale: np.ndarray  # (p,) standard deviation over the fitted part

    @property
    def t_tr(self) -> np.ndarray:
        return self.t[: self.n_train]

    @property
    def z_tr(self) -> np.ndarray:
        """The training part, standardised (by the fitted part's mean and deviation)."""
        return (self.y[: self.n_train] - self.mean) / self.scale

    @property
    def t_fit(self) -> np.ndarray:
        return self.t[: self.n_fit]

    @property
    def z_fit(self) -> np.ndarray:
        return self.z_tr[: self.n_fit]


def _check_settings(*, hidden, form, activation, solver, dt, adjoint, iterations, restarts,
                    learning_rate, optimizer, spectral_weight, learn_bias, init_amplitude,
                    init_noise, curriculum, seed) -> _Settings:
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
    return _Settings(
        form=form, activation=activation, solver=solver, adjoint=adj_name,
        adjoint_obj=adj_obj, hidden=hidden, iterations=iterations, restarts=restarts,
        learning_rate=learning_rate, optimizer=optimizer, spectral_weight=spectral_weight,
        learn_bias=learn_bias, init_amplitude=init_amplitude, init_noise=init_noise,
        curriculum=curriculum, seed=seed, dt=dt,
    )


def _split_series(t, y, univariate, *, channels: Sequence[str] | None, val_fraction,
                  train_until, select_fraction=0.0) -> _Series:
    """Name the channels, split off the held-out end, then the selection part at the end
    of the training part, and standardise the fitted part."""
    p = y.shape[1]
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
        val_fraction = None
        t_split = _check_float("train_until", train_until)
        if not (t[0] < t_split <= t[-1]):
            _fail(f"`train_until` must lie in (ts[0], ts[-1]] = ({t[0]!r}, {t[-1]!r}]; got "
                  f"{train_until!r}.")
    n_train = int(np.searchsorted(t, t_split, side="right"))
    if n_train < MIN_TRAIN_SAMPLES:
        _fail(f"the training part (ts <= {t_split:g}) has {n_train} samples; at least "
              f"{MIN_TRAIN_SAMPLES} are needed. Lower `val_fraction` or raise `train_until`.")
    select_fraction = _check_float("select_fraction", select_fraction, 0.0, 0.5)
    n_fit = n_train
    if select_fraction > 0:
        t_sel = t[0] + (1 - select_fraction) * (t[n_train - 1] - t[0])
        n_fit = int(np.searchsorted(t, t_sel, side="right"))
        if n_fit < MIN_TRAIN_SAMPLES or n_train - n_fit < MIN_SELECT_SAMPLES:
            _fail(f"`select_fraction` = {select_fraction:g} splits the {n_train} training "
                  f"samples into {n_fit} to fit and {n_train - n_fit} to choose the forecaster "
                  f"on; at least {MIN_TRAIN_SAMPLES} and {MIN_SELECT_SAMPLES} are needed. Pass "
                  "select_fraction=0 (no selection: the network is the forecast) or record "
                  "more samples.")
    y_tr = y[:n_fit]
    mean = y_tr.mean(axis=0)
    scale = y_tr.std(axis=0)
    # relative to the level only: a small signal around 0 is still a signal
    flat = (scale == 0) | (scale <= 1e-12 * np.abs(mean))
    if np.any(flat):
        c = int(np.argmax(flat))
        _fail(f"`ys` channel {c} ({channels[c]!r}) is constant over the training part; there "
              "is no oscillation to fit. Drop that channel.")
    return _Series(t=t, y=y, univariate=univariate, channels=channels,
                   val_fraction=val_fraction, n_train=n_train, n_fit=n_fit,
                   n_stop=n_fit + (n_train - n_fit) // 2,
                   select_fraction=select_fraction, mean=mean, scale=scale)
