"""Closed forms for the linear skew system $\\dot x = A x$, eigenvalues $\\pm i\\omega$.

A one-step method maps each eigen-pair by $R(i h\\omega)$, its stability function, so the
norm of that pair is multiplied by $|R(ih\\omega)|$ per step:
euler $\\sqrt{1 + h^2\\omega^2}$ (> 1 for every h), heun/midpoint
$\\sqrt{1 + (h\\omega)^4/4}$, rk4 $\\le 1$ iff $|h\\omega| \\le 2\\sqrt 2$,
implicit midpoint exactly 1.
"""

from __future__ import annotations

import math

import numpy as np

from ._solver import FIXED_SOLVERS, get_solver

# Largest |h omega| with |R(i h omega)| <= 1 (0: unstable for every h > 0; inf: for all h).
STABILITY_LIMIT: dict[str, float] = {
    "euler": 0.0,
    "heun": 0.0,
    "midpoint": 0.0,
    "rk4": 2.0 * math.sqrt(2.0),
    "implicit_midpoint": math.inf,
}


def _fixed(solver: str):
    s = get_solver(solver)
    if isinstance(s, str):
        raise ValueError(
            f"`solver` must be a fixed-step solver ({', '.join(FIXED_SOLVERS)}) for "
            f"linear-stability theory; got {solver!r} (adaptive solvers choose their own steps)."
        )
    return s


def amplification(solver: str, h, omega):
    """Per-step growth $|R(i h \\omega)|$ of an eigen-pair of the linear skew system.

    **Arguments:** `solver` name, step `h`, angular frequency `omega` (broadcast).

    **Returns:** numpy array of $|R(ih\\omega)|$.
    """
    s = _fixed(solver)
    z = 1j * np.asarray(h, np.float64) * np.asarray(omega, np.float64)
    return np.abs(np.asarray(s.stability_function(z), np.complex128))


def growth_rate(solver: str, h, omega):
    """Exponential growth rate per unit time, $\\log|R(ih\\omega)| / h$ (0 when conserved)."""
    h = np.asarray(h, np.float64)
    return np.log(amplification(solver, h, omega)) / h


def euler_growth(h, omega):
    """Forward Euler's per-step growth on the linear skew system, $\\sqrt{1 + h^2\\omega^2}$."""
    h = np.asarray(h, np.float64)
    omega = np.asarray(omega, np.float64)
    return np.sqrt(1.0 + (h * omega) ** 2)


def stability_limit(solver: str) -> float:
    """Largest $|h\\omega|$ for which `solver` does not amplify the linear skew system."""
    _fixed(solver)
    return STABILITY_LIMIT[get_solver(solver).name]
