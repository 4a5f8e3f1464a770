"""oscillax: skew-symmetric continuous-time RNNs in JAX: simulate, sweep, fit."""

import importlib.metadata

from . import _distributed

# Sweeps run one chunk per device; on a CPU machine JAX has one device unless asked before
# it starts, so a plain script would use one core. Ask now for one CPU device per core
# (only CPU devices; skipped when JAX already started or XLA_FLAGS sets a count;
# OSCILLAX_CPU_DEVICES=1 turns it off). A bad OSCILLAX_CPU_DEVICES is reported by the CLI.
try:
    _distributed.use_cpu_cores()
except ValueError:
    pass

from ._activation import ACTIVATIONS as ACTIVATIONS
from ._activation import Activation as Activation
from ._activation import get_activation as get_activation
from ._field import FORMS as FORMS
from ._field import AbstractField as AbstractField
from ._field import AbstractSkewField as AbstractSkewField
from ._field import PostActivation as PostActivation
from ._field import PreActivation as PreActivation
from ._field import VectorField as VectorField
from ._skew import random_skew as random_skew
from ._skew import skew as skew
from ._skew import skew_from_frequencies as skew_from_frequencies
from ._solver import ADAPTIVE_SOLVERS as ADAPTIVE_SOLVERS
from ._solver import FIXED_SOLVERS as FIXED_SOLVERS
from ._solver import SOLVERS as SOLVERS
from ._solver import AbstractFixedSolver as AbstractFixedSolver

try:
    __version__ = importlib.metadata.version("oscillax")
except importlib.metadata.PackageNotFoundError:  # pragma: no cover - source checkout
    __version__ = "0+unknown"

# sweeps and theory
from ._classify import GROWTH_LAW_NAMES as GROWTH_LAW_NAMES
from ._classify import STATUS_NAMES as STATUS_NAMES
from ._classify import GrowthLaw as GrowthLaw
from ._classify import Thresholds as Thresholds
from ._classify import TrajectoryClass as TrajectoryClass
from ._sweep import SweepResult as SweepResult
from ._sweep import case as sweep_case  # noqa: F401  (public: ox.sweep_case)
from ._sweep import load_sweep as load_sweep
from ._sweep import sweep as sweep
from ._sweep._spec import SpecError as SpecError
from ._sweep._spec import SweepSpec as SweepSpec
from ._theory import amplification as amplification
from ._theory import euler_growth as euler_growth
from ._theory import gamma_band as gamma_band
from ._theory import gamma_star as gamma_star
from ._theory import growth_rate as growth_rate
from ._theory import stability_limit as stability_limit

# Loaded when first used (PEP 562), so that `import oscillax` (and the atlas command) does
# not import diffrax, optimistix and scipy.optimize: simulation, fitting, periodic orbits,
# Floquet multipliers, Poincaré maps and Lyapunov spectra.
_LAZY = {
    "._solve": ("Status", "Trajectory", "simulate"),
    "._fit": ("FitResult", "SkewGenerator", "fit", "load_fit", "spectral_peaks"),
    "._flow": ("FlowJacobian", "flow_jacobian"),
    "._lyapunov": ("IteratedMap", "LyapunovSpectrum", "lyapunov_spectrum"),
    "._orbit": ("OrbitStatus", "PeriodicOrbit", "periodic_orbit"),
    "._poincare": ("PoincareSection", "SectionStatus", "poincare_map"),
}
_LAZY_NAMES = {name: module for module, names in _LAZY.items() for name in names}


def __getattr__(name: str):
    module = _LAZY_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'oscillax' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY_NAMES))
