"""The two figures of a fit: the training loss, and the data with the fit and forecast.

matplotlib is imported only when a figure is drawn (`Figure` directly, no pyplot state).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ._checks import _check_series

if TYPE_CHECKING:
    from ._result import FitResult


def loss_figure(result: FitResult, path=None):
    """Training loss of every restart (best in bold), log scale; returns the Figure."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.5), layout="constrained")
    ax = fig.add_subplot()
    it = np.arange(1, result.history.shape[0] + 1)
    for r in range(result.history.shape[1]):
        best = r == result.best_restart
        ax.plot(it, result.history[:, r], lw=2 if best else 0.8, alpha=1 if best else 0.5,
                label=f"restart {r}" + (" (best)" if best else ""))
    ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("training loss")
    ax.legend(fontsize=7)
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def fit_figure(result: FitResult, ts, ys, path=None):
    """Data, the fit on the training part and the network's forecast after it, the chosen
    forecast when a baseline won the selection part, and where that part starts; returns
    the Figure."""
    from matplotlib.figure import Figure

    t, y, _ = _check_series(result._times(ts), ys, min_samples=1)
    dense = np.linspace(result.t0, t[-1], max(2000, 20 * t.shape[0]))
    yh = result.predict(dense)
    yh = yh[:, None] if yh.ndim == 1 else yh
    p = y.shape[1]
    fig = Figure(figsize=(8, 2.2 * p + 0.6), layout="constrained")
    axes = [fig.add_subplot(p, 1, c + 1) for c in range(p)]
    tr = dense <= result.train_until
    future = t[t > result.train_until]
    other = None
    if result.forecaster != "network" and future.size:
        other = result.forecast(future)
        other = other[:, None] if other.ndim == 1 else other
    sel = (result.metrics.get("selection") or {}).get("from")
    for c, ax in enumerate(axes):
        ax.plot(t, y[:, c], ".", ms=2.5, color="0.4", label="data")
        ax.plot(dense[tr], yh[tr, c], color="C0", lw=1.2, label="fit")
        ax.plot(dense[~tr], yh[~tr, c], color="C3", lw=1.2,
                label="forecast" if other is None else "network")
        if other is not None:
            ax.plot(future, other[:, c], color="C2", lw=1.2,
                    label=f"forecast ({result.forecaster})")
        if sel is not None:
            ax.axvline(sel, color="k", ls=":", lw=0.8)  # selection part: from here ...
        ax.axvline(result.train_until, color="k", ls="--", lw=0.8)  # ... to here
        ax.set_ylabel(result.channels[c] if c < len(result.channels) else f"y{c}")
    axes[0].legend(fontsize=7, loc="upper right")
    axes[-1].set_xlabel("t" if result.time_calendar is None else "year")
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
