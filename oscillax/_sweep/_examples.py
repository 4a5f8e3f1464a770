"""The example paths drawn beside the atlas: 2-D, ω = 1, x0 = (1, 0), one per activation.

All activations of a figure run in one engine call (`BatchField`, `_engine.run_path`), so
the figures compile one program per solver instead of one per (activation, solver).
"""

from __future__ import annotations

import equinox as eqx
import jax
import numpy as np

from .._activation import get_activation
from .._engine import run_path
from .._skew import skew_from_frequencies
from .._solver import FIXED_SOLVERS
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
    saved, inv = _paths(field, FIXED_SOLVERS[solver], X0, dt, steps=steps,
                        save_every=save_every)
    xs = np.asarray(jnp.transpose(saved, (2, 0, 1)))  # (B, T, 2)
    inv = np.asarray(inv).T  # (B, T)
    ks = list(range(0, steps + 1, save_every))
    if ks[-1] != steps:
        ks.append(steps)
    names = [a.name for a in acts]
    return {"ts": np.asarray(ks, np.float64) * dt, "xs": dict(zip(names, xs)),
            "invariant": dict(zip(names, inv))}


def run_figures(table, spec, outdir) -> list:
    """The figures of a run's table (`_plot.atlas_figures`), with the example paths of its
    activations computed here: one engine call per solver for all of them."""
    from .._plot import atlas_figures

    acts = list(dict.fromkeys(table["activation"]))
    drift = example_paths(acts, solver="euler", dt=0.05, t1=100.0, save_every=10)
    portraits = {s: example_paths(acts, solver=s, dt=0.1, t1=60.0) for s in ("euler", "rk4")}
    return atlas_figures(table, spec, outdir, drift, portraits)
