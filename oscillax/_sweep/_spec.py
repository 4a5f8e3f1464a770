"""`SweepSpec`: the declarative description of a stability sweep (TOML or Python)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

from .._activation import ACTIVATIONS
from .._classify import THRESHOLD_RANGES, Thresholds
from .._solver import ADAPTIVE_SOLVERS, FIXED_SOLVERS

FORMS = ("pre", "post")

_SWEEP_KEYS = (
    "forms", "activations", "solvers", "dts", "dims", "amplitudes", "gammas", "biases",
    "seeds", "spectral_radius", "steps", "horizon", "seed", "dtype", "check_every", "samples",
    "lyapunov",
)
_THRESHOLD_KEYS = tuple(f.name for f in dataclasses.fields(Thresholds))
_TOP_KEYS = ("sweep", "thresholds")

MAX_STEPS = 2**31 - 1
"""The engine counts steps in int32: a trajectory can run at most this many."""
MAX_TRAJECTORIES = 10**8
"""Largest grid a sweep accepts (its plan and table are built in memory)."""
MAX_DIM = 4096
"""Largest state dimension n a sweep accepts (A is n x n per trajectory or chunk)."""
MAX_AXIS = 10**6
"""Largest number of values on one axis (`dts.num`, `seeds`)."""

class SpecError(ValueError):
    """A sweep spec that cannot be run; the message names the key and the fix."""


def _err(key, got, want):
    raise SpecError(f"sweep spec `{key}` {want}; got {got!r}.")


def _list(key, value, kind, check=None, want=""):
    if not isinstance(value, list | tuple):
        value = [value] if isinstance(value, kind) and not isinstance(value, bool) else value
    if not isinstance(value, list | tuple):
        _err(key, value, f"must be a list of {want or kind.__name__}")
    if len(value) == 0:
        _err(key, value, "must not be empty (an empty axis sweeps nothing)")
    out = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, kind):
            _err(key, value, f"must be a list of {want or kind.__name__}; item {v!r} is not")
        if check is not None and not check(v):
            _err(key, value, f"must be a list of {want}; item {v!r} is not")
        out.append(v)
    if len(set(out)) != len(out):
        _err(key, value, "must not repeat values")
    return tuple(out)


def _check_thresholds(th) -> None:
    """Range checks of the `[thresholds]` table (see `ox.Thresholds`)."""
    if not isinstance(th, Thresholds):
        raise SpecError(f"sweep spec `thresholds` must be an ox.Thresholds; got "
                        f"{type(th).__name__}.")
    for f in dataclasses.fields(Thresholds):
        k, v = f.name, getattr(th, f.name)
        if k in ("min_crossings", "settle_blocks"):
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 0:
                raise SpecError(
                    f"sweep spec [thresholds] `{k}` must be an integer >= 0 (a count of "
                    f"upward zero-crossings or block ends); got {v!r}. Write e.g. {k} = "
                    f"{f.default}.")
            continue
        lo, open_ = THRESHOLD_RANGES[k]  # (lower bound, open?); NaN and inf refused
        if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
            raise SpecError(f"sweep spec [thresholds] `{k}` must be a number; got {v!r}.")
        ok = math.isfinite(v) and (v > lo if open_ else v >= lo)
        if not ok:
            rel = ">" if open_ else ">="
            raise SpecError(
                f"sweep spec [thresholds] `{k}` must be a finite number {rel} {lo:g}; got "
                f"{v!r}. Use a value such as the default {f.default!r} (or leave the key out).")


def _dts(value):
    if isinstance(value, dict):
        unknown = set(value) - {"log_start", "log_stop", "num"}
        if unknown or not {"log_start", "log_stop", "num"} <= set(value):
            _err("dts", value, "as a table must have exactly the keys log_start, log_stop, num "
                 "(base-10 exponents and a count, e.g. {log_start = -3, log_stop = 0, num = 24})")
        num = value["num"]
        if isinstance(num, bool) or not isinstance(num, int) or num < 1:
            _err("dts.num", num, "must be an integer >= 1")
        if num > MAX_AXIS:
            _err("dts.num", num, f"must be at most {MAX_AXIS:,} (step sizes in one sweep); "
                 "sweep fewer step sizes or split the range over several specs")
        for k in ("log_start", "log_stop"):
            if isinstance(value[k], bool) or not isinstance(value[k], int | float):
                _err(f"dts.{k}", value[k], "must be a number (a base-10 exponent)")
        dts = np.logspace(value["log_start"], value["log_stop"], num)
        return tuple(float(d) for d in dts)
    dts = _list("dts", value, (int, float), lambda v: math.isfinite(v) and v > 0,
                "positive finite step sizes")
    return tuple(float(d) for d in dts)


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A grid of cases: forms x activations x solvers x dts x dims x amplitudes x gammas x
    biases x seeds.

    **Fields** (the keys of the TOML `[sweep]` table):
    - `forms`: `"pre"` and/or `"post"`.
    - `activations`: names from `ox.ACTIVATIONS`.
    - `solvers`: fixed-step solver names (`euler`, `heun`, `midpoint`, `rk4`,
      `implicit_midpoint`).
    - `dts`: step sizes; in TOML a list or `{log_start, log_stop, num}` (base-10).
    - `dims`: state dimensions n.
    - `amplitudes`: norms of the initial states.
    - `gammas`: diffusions $\\gamma \\ge 0$ of the pre form $\\sigma(Ax + b) - \\gamma x$
      (default `[0.0]`). The post form has no diffusion term, so a nonzero $\\gamma$ needs
      `forms = ["pre"]` (a spec with post and $\\gamma > 0$ is refused, not silently
      given a term `PostActivation` does not have).
    - `biases`: norms $\\|b\\| \\ge 0$ of the bias (default `[0.0]`): each seed draws one
      random unit direction (from (`seed`, dim, seed), like A and x0), scaled to each norm.
      Pre: $\\sigma(Ax + b) - \\gamma x$; post: $A\\sigma(x) + b$.
    - `seeds`: number of random (skew matrix, initial direction, bias direction) triples
      per case.
    - `spectral_radius`: largest angular frequency of each random A.
    - `steps` or `horizon`: a fixed step count, or a fixed time T (steps = ceil(T / dt)).
    - `seed`: base random seed; `dtype`: `"float32"` or `"float64"`.
    - `check_every` (1 to 32): steps between divergence tests (a block in which a member
      diverged is replayed step by step, so the step of divergence stays exact); larger is
      faster. `samples`: at least how many times per trajectory the invariant is evaluated
      for the drift and growth-rate measures (every `steps // samples` steps, rounded down
      to a multiple of `check_every` when longer, and after the last step).
    - `lyapunov`: also measure `map_lyapunov`, the largest Lyapunov exponent of the
      solver's map along each trajectory (per unit time; one tangent vector through each
      step's JVP, renormalised every `check_every` steps). Off by default: it costs a
      JVP per step.
    - `thresholds`: the `[thresholds]` table (see `ox.Thresholds`).
    """

    forms: tuple[str, ...] = FORMS
    activations: tuple[str, ...] = ("identity", "tanh")
    solvers: tuple[str, ...] = ("euler",)
    dts: tuple[float, ...] = (0.01, 0.1)
    dims: tuple[int, ...] = (2,)
    amplitudes: tuple[float, ...] = (1.0,)
    gammas: tuple[float, ...] = (0.0,)
    biases: tuple[float, ...] = (0.0,)
    seeds: int = 1
    spectral_radius: float = 1.0
    steps: int | None = None
    horizon: float | None = None  # default 100.0 when neither is given
    seed: int = 0
    dtype: str = "float32"
    check_every: int = 32
    samples: int = 64
    lyapunov: bool = False
    thresholds: Thresholds = Thresholds()

    def __post_init__(self):
        if self.steps is None and self.horizon is None:
            object.__setattr__(self, "horizon", 100.0)
        d = self.to_dict()
        _check_thresholds(self.thresholds)
        checked = _validate(d)
        for k, v in checked.items():
            object.__setattr__(self, k, v)

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SweepSpec:
        """Build from the parsed TOML mapping (`{"sweep": {...}, "thresholds": {...}}`)."""
        if not isinstance(data, dict):
            raise SpecError(f"sweep spec must be a table; got {type(data).__name__}.")
        unknown = sorted(set(data) - set(_TOP_KEYS))
        if unknown:
            raise SpecError(
                f"sweep spec has unknown table(s) {', '.join(unknown)}; valid tables: "
                f"{', '.join(_TOP_KEYS)}."
            )
        if "sweep" not in data:
            raise SpecError("sweep spec needs a [sweep] table with the axes to sweep.")
        for table in _TOP_KEYS:
            if table in data and not isinstance(data[table], dict):
                raise SpecError(
                    f"sweep spec `{table}` must be a table ([{table}] followed by key = value "
                    f"lines); got {type(data[table]).__name__} {data[table]!r}.")
        sweep = dict(data["sweep"])
        unknown = sorted(set(sweep) - set(_SWEEP_KEYS))
        if unknown:
            raise SpecError(
                f"sweep spec has unknown key(s) {', '.join(repr(k) for k in unknown)} in "
                f"[sweep]; valid keys: {', '.join(_SWEEP_KEYS)}."
            )
        th = dict(data.get("thresholds", {}))
        unknown = sorted(set(th) - set(_THRESHOLD_KEYS))
        if unknown:
            raise SpecError(
                f"sweep spec has unknown key(s) {', '.join(repr(k) for k in unknown)} in "
                f"[thresholds]; valid keys: {', '.join(_THRESHOLD_KEYS)}."
            )
        for k, v in th.items():
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise SpecError(f"sweep spec [thresholds] `{k}` must be a number; got {v!r}.")
        if ("steps" in sweep) == ("horizon" in sweep):
            raise SpecError(
                "sweep spec needs exactly one of `steps` (fixed step count) or `horizon` "
                f"(fixed time T) in [sweep]; got steps={sweep.get('steps')!r}, "
                f"horizon={sweep.get('horizon')!r}."
            )
        if "dts" in sweep:
            sweep["dts"] = _dts(sweep["dts"])
        return cls(**sweep, thresholds=Thresholds(**th))

    @classmethod
    def from_toml(cls, path: str | Path) -> SweepSpec:
        """Read a spec from a TOML file."""
        path = Path(path)
        text = read_spec_text(path)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise SpecError(f"sweep spec {str(path)!r} is not valid TOML: {e}.") from None
        return cls.from_dict(data)

    # -- views --------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d.pop("thresholds")
        return d

    def to_toml(self) -> str:
        """The spec as TOML text (round-trips through `from_toml`)."""
        lines = ["[sweep]"]
        for k, v in self.to_dict().items():
            if v is None:
                continue
            lines.append(f"{k} = {_toml_value(v)}")
        lines.append("")
        lines.append("[thresholds]")
        for f in dataclasses.fields(self.thresholds):
            lines.append(f"{f.name} = {_toml_value(getattr(self.thresholds, f.name))}")
        return "\n".join(lines) + "\n"

    def fingerprint(self) -> str:
        """A hash of everything that determines the numbers."""
        payload = json.dumps(
            {**self.to_dict(), "thresholds": dataclasses.asdict(self.thresholds)},
            sort_keys=True, default=str,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def steps_for(self, dt: float) -> int:
        if self.steps is not None:
            return int(self.steps)
        return max(1, math.ceil(self.horizon / dt - 1e-9))

    @property
    def n_trajectories(self) -> int:
        return (
            len(self.forms) * len(self.activations) * len(self.solvers) * len(self.dts)
            * len(self.dims) * len(self.amplitudes) * len(self.gammas) * len(self.biases)
            * self.seeds
        )

    @property
    def has_gamma(self) -> bool:
        """Whether any trajectory has a diffusion $\\gamma \\ne 0$ (else none is computed)."""
        return any(g != 0.0 for g in self.gammas)

    @property
    def has_bias(self) -> bool:
        """Whether any trajectory has a bias $b \\ne 0$ (else none is drawn or added)."""
        return any(b != 0.0 for b in self.biases)

    @property
    def total_steps(self) -> int:
        """Trajectory-steps of the whole sweep (the work, grouped by step count)."""
        per = sum(self.steps_for(dt) for dt in self.dts)
        return per * self.n_trajectories // len(self.dts)


def read_spec_text(path: str | Path) -> str:
    """The text of a spec file, with one clear error for a missing file, a directory, an
    unreadable file or text that is not UTF-8."""
    path = Path(path)
    if path.is_dir():
        raise SpecError(f"sweep spec {str(path)!r} is a directory, not a spec file; pass the "
                        "path of a .toml file (or a shipped spec's name, see "
                        "`oscillax atlas --list`).")
    if not path.is_file():
        raise SpecError(f"sweep spec file {str(path)!r} does not exist.")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise SpecError(f"sweep spec {str(path)!r} cannot be read: {e.strerror or e}.") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(
            f"sweep spec {str(path)!r} is not UTF-8 text (byte {e.start}: "
            f"{data[e.start:e.start + 1]!r}); TOML files must be UTF-8. Re-save it as UTF-8."
        ) from None


def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} to TOML")


def _validate(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    out["forms"] = _list("forms", d["forms"], str, lambda v: v in FORMS, "'pre' / 'post'")
    acts = _list("activations", d["activations"], str, want="activation names")
    for a in acts:
        if a not in ACTIVATIONS:
            _err("activations", a, f"must name built-in activations ({', '.join(ACTIVATIONS)})")
    out["activations"] = acts
    sol = _list("solvers", d["solvers"], str, want="solver names")
    for s in sol:
        if s in ADAPTIVE_SOLVERS:
            _err("solvers", s, "must be fixed-step solvers "
                 f"({', '.join(FIXED_SOLVERS)}); adaptive solvers choose their own steps, "
                 "so a step-size sweep does not apply to them")
        if s not in FIXED_SOLVERS:
            _err("solvers", s, f"must name fixed-step solvers ({', '.join(FIXED_SOLVERS)})")
    out["solvers"] = sol
    out["dts"] = tuple(float(x) for x in _list(
        "dts", list(d["dts"]) if isinstance(d["dts"], list | tuple) else d["dts"],
        (int, float), lambda v: math.isfinite(v) and v > 0, "positive finite step sizes"))
    out["dims"] = _list("dims", d["dims"], int, lambda v: v >= 1, "integers >= 1")
    for n in out["dims"]:
        if n > MAX_DIM:
            _err("dims", d["dims"], f"must be at most {MAX_DIM} (a state of dimension {n} "
                 f"needs a {n} x {n} matrix, {n * n * 8 / 2**30:.3g} GiB in float64, per "
                 "random case); sweep smaller dimensions")
    out["amplitudes"] = tuple(float(x) for x in _list(
        "amplitudes", d["amplitudes"], (int, float), lambda v: math.isfinite(v) and v > 0,
        "positive finite norms"))
    out["gammas"] = tuple(float(x) for x in _list(
        "gammas", d["gammas"], (int, float), lambda v: math.isfinite(v) and v >= 0,
        "finite diffusions >= 0 (the gamma of sigma(Ax + b) - gamma x), e.g. [0.0, 0.05]"))
    nonzero = [g for g in out["gammas"] if g != 0.0]
    if nonzero and "post" in out["forms"]:
        _err("gammas", list(d["gammas"]),
             f"must be [0.0] when `forms` includes 'post' (got gamma {nonzero[0]!r}): the "
             "diffusion -gamma x belongs to the pre form sigma(Ax + b) - gamma x only, and the "
             "post form A sigma(x) + b has none; set forms = [\"pre\"], or sweep the post form "
             "in a spec of its own")
    out["biases"] = tuple(float(x) for x in _list(
        "biases", d["biases"], (int, float), lambda v: math.isfinite(v) and v >= 0,
        "finite bias norms >= 0 (|b| of a random bias direction per seed), e.g. [0.0, 0.5]"))
    seeds = d["seeds"]
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        _err("seeds", seeds, "must be an integer >= 1 (random cases per grid point)")
    if seeds > MAX_AXIS:
        _err("seeds", seeds, f"must be at most {MAX_AXIS:,} (random cases per grid point)")
    out["seeds"] = seeds
    rho = d["spectral_radius"]
    if isinstance(rho, bool) or not isinstance(rho, int | float) or not (
        math.isfinite(rho) and rho > 0
    ):
        _err("spectral_radius", rho, "must be a positive number")
    out["spectral_radius"] = float(rho)
    steps, horizon = d["steps"], d["horizon"]
    if (steps is None) == (horizon is None):
        raise SpecError(
            "sweep spec needs exactly one of `steps` (fixed step count) or `horizon` "
            f"(fixed time T); got steps={steps!r}, horizon={horizon!r}."
        )
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        _err("steps", steps, "must be an integer >= 1")
    if horizon is not None and (
        isinstance(horizon, bool) or not isinstance(horizon, int | float)
        or not (math.isfinite(horizon) and horizon > 0)
    ):
        _err("horizon", horizon, "must be a positive number (time units)")
    if steps is not None and steps > MAX_STEPS:
        _err("steps", steps, f"must be at most 2**31 - 1 = {MAX_STEPS:,} (the engine counts "
             "steps in int32); use fewer steps, or a larger dt with `horizon`")
    if horizon is not None:
        for dt in out["dts"]:
            ratio = horizon / dt
            if not math.isfinite(ratio) or math.ceil(ratio - 1e-9) > MAX_STEPS:
                _err("horizon", horizon,
                     f"needs ceil(horizon / dt) = {ratio:.4g} steps at dt = {dt!r}, more than "
                     f"2**31 - 1 = {MAX_STEPS:,} (the engine counts steps in int32); use a "
                     "shorter horizon or larger `dts`")
    out["steps"] = steps
    out["horizon"] = None if horizon is None else float(horizon)
    n_traj = (len(out["forms"]) * len(acts) * len(sol) * len(out["dts"]) * len(out["dims"])
              * len(out["amplitudes"]) * len(out["gammas"]) * len(out["biases"]) * seeds)
    if n_traj > MAX_TRAJECTORIES:
        raise SpecError(
            f"sweep spec grid has {n_traj:,} trajectories (forms {len(out['forms'])} x "
            f"activations {len(acts)} x solvers {len(sol)} x dts {len(out['dts'])} x dims "
            f"{len(out['dims'])} x amplitudes {len(out['amplitudes'])} x gammas "
            f"{len(out['gammas'])} x biases {len(out['biases'])} x seeds {seeds}), more "
            f"than the {MAX_TRAJECTORIES:,} one sweep accepts (its table alone would take "
            f"about {n_traj * 200 / 2**30:,.0f} GiB); split it into several specs or use "
            "fewer values per axis.")
    seed = d["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        _err("seed", seed, "must be an integer >= 0")
    if d["dtype"] not in ("float32", "float64"):
        _err("dtype", d["dtype"], "must be 'float32' or 'float64'")
    ce = d["check_every"]
    if isinstance(ce, bool) or not isinstance(ce, int) or not 1 <= ce <= 32:
        _err("check_every", ce, "must be an integer from 1 to 32")
    sa = d["samples"]
    if isinstance(sa, bool) or not isinstance(sa, int) or sa < 1:
        _err("samples", sa, "must be an integer >= 1")
    if not isinstance(d["lyapunov"], bool | np.bool_):
        _err("lyapunov", d["lyapunov"], "must be true or false")
    out["lyapunov"] = bool(d["lyapunov"])
    return out
