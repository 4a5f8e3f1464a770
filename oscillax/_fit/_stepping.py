"""How a `SkewGenerator` is integrated: the engine grid, interpolation, diffrax.

The interface the rest of `fit` uses is small:

- `_grid_states(model, step, n_steps)`: the states on the fixed grid $\\tau_k = k\\,dt$,
  `(n_steps + 1, n)` (one engine scan; the only place the engine is called);
- `_states(model, taus, idx, frac, step, n_steps)`: the states at arbitrary internal
  times, from that grid (gather, or cubic Hermite between grid points) or from diffrax;
- `_hermite_weights(taus, dt)`: the grid index and fraction of each time (numpy, once);
- `_Stepping`: the static settings (solver, adjoint, step) that fix the compiled program.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import diffrax
import equinox as eqx
import numpy as np

from .._engine import run_path
from .._solver import ADAPTIVE_SOLVERS, FIXED_SOLVERS
from ._model import SkewGenerator

ADJOINTS = ("engine", "checkpoint", "backsolve")

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


# ------------------------------------------------------------------------- engine grid


def _step_field(model: SkewGenerator, solver_name: str):
    """The generator's field for the engine: one state per restart (vmapped), where one
    small matrix product per step (`dense=True`) means far fewer operations than the
    unrolled rows that suit a wide batch, forward and backward. Newton's method of the
    implicit solver keeps the default."""
    return model.field(dense=solver_name != "implicit_midpoint")


def _grid_states(model: SkewGenerator, step: _Stepping, n_steps: int):
    """States on the engine grid $\\tau_k = k\\,dt$, `(n_steps + 1, n)`: the engine's
    `run_path`, saving every step, without divergence tests."""
    name = step.solver if step.solver in FIXED_SOLVERS else "rk4"
    saved, _, _ = run_path(_step_field(model, name), FIXED_SOLVERS[name], model.x0[:, None],
                           step.dt, None, None, steps=n_steps, save_every=1, check=False,
                           unroll=step.unroll)
    return saved[:, :, 0]


def _n_steps(tau_end, dt):
    return max(int(math.ceil(tau_end / dt - 1e-9)), 1)


def _bucket(n: int) -> int:
    return max(64, 1 << (int(n) - 1).bit_length())


# ---------------------------------------------------------------------- interpolation


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


# ------------------------------------------------------------------- states at times


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


@eqx.filter_jit
def _predict_jit(model, taus, idx, frac, step, n_steps):
    return model.readout(_states(model, taus, idx, frac, step, n_steps))


@eqx.filter_jit
def _states_jit(model, taus, idx, frac, step, n_steps):
    return _states(model, taus, idx, frac, step, n_steps)
