"""The example paths drawn beside the atlas: 2-D, ω = 1, x0 = (1, 0), one per activation.

All activations of a figure run in one engine call (`BatchField`, `_engine.run_path`), so
the figures compile one program per solver instead of one per (activation, solver).
"""

from __future__ import annotations

import concurrent.futures

import equinox as eqx
import jax
import numpy as np
import pandas as pd

from .._activation import get_activation
from .._engine import run_path
from .._skew import skew_from_frequencies
from .._solver import FIXED_SOLVERS
from . import _program_cache
from ._batch_field import BatchField


@eqx.filter_jit
def _paths(field, solver, X0, dt, *, steps, save_every):
    saved, _, _ = run_path(field, solver, X0, dt, None, None, steps=steps,
                           save_every=save_every, check=False)
    return saved, jax.vmap(lambda X: field.invariant(X.T))(saved)


def example_paths(activations, *, form: str = "post", solver: str, dt: float, t1: float,
                  save_every: int = 1) -> dict:
    """`{"ts": (T,), "xs": {activation: (T, 2)}, "invariant": {activation: (T,)}}`."""
    import jax.numpy as jnp

    acts = tuple(get_activation(a) for a in activations)
    B = len(acts)
    A = skew_from_frequencies([1.0])
    field = BatchField(A, acts, tuple((form, i) for i in range(B)), 1)
    steps = int(round(t1 / dt))
    X0 = jnp.tile(jnp.asarray([[1.0], [0.0]], A.dtype), (1, B))
    # through the on-disk program cache, as the sweep's engine calls: a warm run reads the
    # three example programs instead of tracing them
    saved, inv = _program_cache.call(_paths, (field, FIXED_SOLVERS[solver], X0, dt),
                                     {"steps": steps, "save_every": save_every})
    xs = np.asarray(jnp.transpose(saved, (2, 0, 1)))  # (B, T, 2)
    inv = np.asarray(inv).T  # (B, T)
    ks = list(range(0, steps + 1, save_every))
    if ks[-1] != steps:
        ks.append(steps)
    names = [a.name for a in acts]
    return {"ts": np.asarray(ks, np.float64) * dt, "xs": dict(zip(names, xs)),
            "invariant": dict(zip(names, inv))}


def figure_paths(activations) -> tuple[dict, dict, dict]:
    """The example paths of the atlas figures: (drift: euler, dt 0.05, t 100; portraits:
    euler and rk4, dt 0.1, t 60; the portraits' level sets, `_plot.portrait_levels`), one
    engine call each for all `activations`."""
    from .._plot import portrait_levels

    acts = list(activations)
    drift = example_paths(acts, solver="euler", dt=0.05, t1=100.0, save_every=10)
    portraits = {s: example_paths(acts, solver=s, dt=0.1, t1=60.0) for s in ("euler", "rk4")}
    return drift, portraits, portrait_levels(acts, "post")


def _prepare(activations: tuple):
    paths = figure_paths(activations)
    from .._plot import _plt

    _plt()  # matplotlib's import, off the sweep's end
    return activations, paths


def start_figure_paths(activations) -> concurrent.futures.Future:
    """`figure_paths` (and matplotlib's import) in a background thread, started beside the
    sweep: their compilation and run hide behind the sweep's instead of following it."""
    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="oscillax-figures")
    future = pool.submit(_prepare, tuple(activations))
    pool.shutdown(wait=False)
    return future


def run_figures(table, spec, outdir, paths: concurrent.futures.Future | None = None,
                helper=None) -> list:
    """The figures of a run's table (`_plot.atlas_figures`), with the example paths of its
    activations: those of `paths` (`start_figure_paths`) when they are for the table's
    activations, else computed here, one engine call per solver for all of them.
    `helper`: a `_figure_worker.FigureWorker` that draws part of them meanwhile."""
    from .._plot import atlas_figures

    acts = tuple(pd.unique(table["activation"]))
    pre = None
    if paths is not None:
        try:
            got, pre = paths.result()
        except Exception:  # computed again below, where an error is raised plainly
            got = None
        if got != acts:
            pre = None
    drift, portraits, levels = pre if pre is not None else figure_paths(acts)
    return atlas_figures(table, spec, outdir, drift, portraits, levels, helper)
