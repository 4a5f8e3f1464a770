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
from ._solve import Status as Status
from ._solve import Trajectory as Trajectory
from ._solve import simulate as simulate
from ._solver import ADAPTIVE_SOLVERS as ADAPTIVE_SOLVERS
from ._solver import FIXED_SOLVERS as FIXED_SOLVERS
from ._solver import SOLVERS as SOLVERS
from ._solver import AbstractFixedSolver as AbstractFixedSolver

try:
    __version__ = importlib.metadata.version("oscillax")
except importlib.metadata.PackageNotFoundError:  # pragma: no cover - source checkout
    __version__ = "0+unknown"

# fitting, sweeps and theory
from ._classify import GROWTH_LAW_NAMES as GROWTH_LAW_NAMES
from ._classify import STATUS_NAMES as STATUS_NAMES
from ._classify import GrowthLaw as GrowthLaw
from ._classify import Thresholds as Thresholds
from ._classify import TrajectoryClass as TrajectoryClass
from ._fit import FitResult as FitResult
from ._fit import SkewGenerator as SkewGenerator
from ._fit import fit as fit
from ._fit import load_fit as load_fit
from ._fit import spectral_peaks as spectral_peaks

# periodic orbits, Floquet multipliers, Poincaré maps
from ._flow import FlowJacobian as FlowJacobian
from ._flow import flow_jacobian as flow_jacobian

# Lyapunov spectra (flows, solver maps, discrete maps)
from ._lyapunov import IteratedMap as IteratedMap
from ._lyapunov import LyapunovSpectrum as LyapunovSpectrum
from ._lyapunov import lyapunov_spectrum as lyapunov_spectrum
from ._orbit import OrbitStatus as OrbitStatus
from ._orbit import PeriodicOrbit as PeriodicOrbit
from ._orbit import periodic_orbit as periodic_orbit
from ._poincare import PoincareSection as PoincareSection
from ._poincare import SectionStatus as SectionStatus
from ._poincare import poincare_map as poincare_map
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
