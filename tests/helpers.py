"""Shared tolerances, solver lists, references and closed forms for the core tests."""

from __future__ import annotations

import contextlib
import math

import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

import oscillax as ox

# Convergence order of each fixed-step solver (THEORY / classical results).
FIXED_ORDERS = {"euler": 1, "heun": 2, "midpoint": 2, "rk4": 4, "implicit_midpoint": 2}
ORDER_TOL = 0.15  # fitted slope of log error vs log dt must be within this of the order

# Expected structural flags of every built-in activation: (odd, bounded, continuous).
BUILTIN_FLAGS = {
    "identity": (True, False, True),
    "tanh": (True, True, True),
    "hardtanh": (True, True, True),
    "softsign": (True, True, True),
    "sin": (True, True, True),
    "erf": (True, True, True),
    "relu": (False, False, True),
    "leaky_relu": (False, False, True),
    "sigmoid": (False, True, True),
    "rectified_tanh": (False, True, True),
}

LEAKY_SLOPE = 0.01


_LD = np.longdouble  # extended precision where the platform has it: a reference that
# stays accurate where float64 formulas cancel (log cosh x near 0, say).


def _np_logcosh(x):
    a = np.abs(np.asarray(x, _LD))
    a2 = a * a
    series = a2 / 2 - a2**2 / 12 + a2**3 / 45 - 17 * a2**4 / 2520  # |x| < 1e-2
    mid = np.log(np.cosh(np.minimum(a, 20)))
    out = np.where(a < 1e-2, series, np.where(a < 20, mid, a - np.log(_LD(2))))
    return out.astype(np.float64)


def _np_one_minus_cos(x):
    x = np.asarray(x, _LD)
    x2 = x * x
    series = x2 / 2 - x2**2 / 24 + x2**3 / 720 - x2**4 / 40320  # |x| < 1e-2
    return np.where(np.abs(x) < 1e-2, series, 1 - np.cos(x)).astype(np.float64)


def _np_erf(x):
    return np.vectorize(math.erf)(x)


def _np_softsign_phi(x):
    a = np.abs(np.asarray(x, _LD))
    return (a - np.log1p(a)).astype(np.float64)


def _np_sigmoid_phi(x):
    x = np.asarray(x, _LD)
    return (np.logaddexp(x, _LD(0)) - np.log(_LD(2))).astype(np.float64)


# Closed-form antiderivatives Phi (Phi(0) = 0) in numpy float64 (extended precision inside
# where cancellation would hurt), written independently of the package from THEORY.md and
# a table of integrals.
CLOSED_FORM_PHI = {
    "identity": lambda x: 0.5 * x**2,
    "tanh": _np_logcosh,
    "hardtanh": lambda x: np.where(np.abs(x) <= 1.0, 0.5 * x**2, np.abs(x) - 0.5),
    "softsign": _np_softsign_phi,
    "sin": _np_one_minus_cos,
    "erf": lambda x: x * _np_erf(x) + np.expm1(-(x**2)) / math.sqrt(math.pi),
    "relu": lambda x: 0.5 * np.maximum(x, 0.0) ** 2,
    "leaky_relu": lambda x: np.where(x >= 0, 0.5 * x**2, 0.5 * LEAKY_SLOPE * x**2),
    "sigmoid": _np_sigmoid_phi,
    "rectified_tanh": lambda x: _np_logcosh(np.maximum(x, 0.0)),
}

# Activations with exact invariants exercised by the invariant tests.
INVARIANT_ACTIVATIONS = ("tanh", "hardtanh", "softsign")


def expm_reference(A, x0, t):
    """Exact solution of $\\dot x = A x$: `expm(t A) @ x0` in float64."""
    return scipy.linalg.expm(float(t) * np.asarray(A, np.float64)) @ np.asarray(x0, np.float64)


def fit_slope(dts, errs):
    """Least-squares slope of log(err) against log(dt)."""
    return float(np.polyfit(np.log(np.asarray(dts)), np.log(np.asarray(errs)), 1)[0])


def pair_norms(x):
    """Norms of the coordinate pairs (x_0, x_1), (x_2, x_3), ... along the last axis."""
    x = np.asarray(x)
    m = x.shape[-1] // 2
    return np.sqrt(x[..., 0 : 2 * m : 2] ** 2 + x[..., 1 : 2 * m : 2] ** 2)


def random_state(key, shape, dtype=jnp.float64, scale=1.0):
    return scale * jax.random.normal(key, shape, dtype)


def make_field(form, A, activation, **kwargs):
    cls = {"pre": ox.PreActivation, "post": ox.PostActivation}[form]
    return cls(A, activation, **kwargs)


SESSION_CACHE_VARS = ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
                      "OSCILLAX_TEST_SESSION_JAX_CACHE", "OSCILLAX_PROGRAM_CACHE")
"""The variables through which conftest.py gives children the session's compilation cache
(and keeps the sweep's program cache off)."""


def without_session_cache(env) -> dict:
    """A copy of `env` without the session's compilation cache (conftest.py): for a child
    that sets up and checks a cache of its own, or that a test kills (a write cut short
    would leave a torn entry in the shared directory)."""
    return {k: v for k, v in env.items() if k not in SESSION_CACHE_VARS}


_TRACE_EVENT = "/jax/core/compile/jaxpr_trace_duration"
_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_CACHE_HIT_EVENT = "/jax/compilation_cache/cache_hits"


@contextlib.contextmanager
def count_compiles():
    """Count JAX traces and backend compilations inside the block (an executable loaded
    from the session's persistent compilation cache, conftest.py, counts as a compilation).

    Yields a dict `{"trace": int, "compile": int}` filled in as events arrive. Uses
    `jax.monitoring` duration events, which JAX records for every jaxpr trace and every
    XLA compilation (jit, eager primitives, equinox filter_jit alike); the listener is
    removed on exit.
    """
    counts = {"trace": 0, "compile": 0}

    def listener(event, duration, **kwargs):
        if event == _TRACE_EVENT:
            counts["trace"] += 1
        elif event == _COMPILE_EVENT:
            counts["compile"] += 1

    def hit_listener(event, **kwargs):
        # an executable loaded from the session's persistent compilation cache (conftest.py)
        # instead of compiled: JAX needed a new executable all the same, so it counts
        if event == _CACHE_HIT_EVENT:
            counts["compile"] += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    jax.monitoring.register_event_listener(hit_listener)
    try:
        yield counts
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
        jax.monitoring.unregister_event_listener(hit_listener)
