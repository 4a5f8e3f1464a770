"""`SweepResult`: the table of a sweep (one row per trajectory), its summary, and
`load_sweep` for a finished run directory."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd

from .. import _distributed
from .._classify import STATUS_NAMES
from . import _store
from ._cases import case
from ._plan import AXES
from ._spec import SweepSpec

MEASURED = (
    "steps", "t_final", "diverged_at", "max_norm", "norm_ratio", "amplitude_final",
    "invariant_initial", "invariant_final", "drift_final", "drift_max", "secular_drift",
    "log_growth", "rate_early", "growth_rate", "growth_exponent", "late_increment",
    "cycle_amplitude", "period", "zero_crossings", "speed_ratio",
    "theory_amplification", "theory_rate", "theory_gamma_star", "map_lyapunov",
)
"""The measured (and theory) columns of a sweep's table, after the axes.

Theory columns (linear system, top eigen-pair of each case's A, whose largest |eigenvalue|
is the spec's `spectral_radius`; 0 for n = 1): `theory_amplification` $|R(h(-\\gamma +
i\\omega))|$ per step, `theory_rate` $2\\log|R| / h$, and `theory_gamma_star`, the smallest
diffusion $\\gamma \\ge 0$ at which the solver stops amplifying that pair (`ox.gamma_star`):
0 where it is stable without diffusion, NaN where no $\\gamma$ is enough (e.g. Euler with
$h\\omega > 1$)."""


@dataclasses.dataclass
class SweepResult:
    """The outcome of `sweep`: one tidy row per trajectory.

    **Fields:** `spec`, `table` (pandas), `run_dir` (or None), `wall_time` (s),
    `summary` (dict, as in `summary.json`).
    """

    spec: SweepSpec
    table: pd.DataFrame
    run_dir: Path | None
    wall_time: float
    summary: dict

    def case(self, traj_id: int) -> dict:
        """The field, x0, dt, steps and solver of one trajectory (see `ox.sweep_case`)."""
        return case(self.spec, self.table.set_index("traj_id").loc[traj_id].to_dict()
                    | {"traj_id": traj_id})

    def to_dataframe(self) -> pd.DataFrame:
        """One row per trajectory: axis columns, measured columns, `status`."""
        return self.table.copy()

    def to_xarray(self):
        """An `xarray.Dataset` over (form, activation, solver, dt, dim, amplitude, gamma,
        bias), aggregated over seeds: medians of the measured columns, the fraction of each
        status (`frac_<status>`) and the most common status (`status`, as its name).

        `gamma` and `bias` are dimensions when the sweep takes several values of them, and
        scalar coordinates when it takes one (a spec without them: `gamma = bias = 0`), so
        a sweep without them has the dimensions it had before they existed."""
        import xarray as xr

        df = self.table
        axes = [a for a in AXES if a != "seed" and a in df.columns]
        num = [c for c in MEASURED if c in df.columns]
        med = df.groupby(axes, sort=True)[num].median()
        for s in STATUS_NAMES:
            med[f"frac_{s}"] = (df["status"] == s).groupby([df[a] for a in axes]).mean()
        mode = df.groupby(axes, sort=True)["status"].agg(lambda s: s.value_counts().idxmax())
        med["status"] = mode
        ds = xr.Dataset.from_dataframe(med)
        single = [a for a in ("gamma", "bias") if a in ds.dims and ds.sizes[a] == 1]
        return ds.squeeze(single) if single else ds


def summarize(spec: SweepSpec, table: pd.DataFrame, wall: float, compute_wall: float) -> dict:
    """The run's `summary.json`: counts per status, times, rates, devices, versions."""
    counts = (
        table.groupby(["activation", "solver", "status"]).size().unstack(fill_value=0)
    )
    by_act_solver = {
        f"{a}/{s}": {k: int(v) for k, v in row.items() if v}
        for (a, s), row in counts.iterrows()
    }
    total = {k: int(v) for k, v in table["status"].value_counts().items()}
    traj_steps = int(table["steps"].sum())
    return {
        "trajectories": int(len(table)),
        "trajectory_steps": traj_steps,
        "status_counts": total,
        "status_by_activation_solver": by_act_solver,
        "wall_time_s": round(wall, 3),
        "compute_time_s": round(compute_wall, 3),
        "trajectories_per_s": round(len(table) / max(wall, 1e-9), 2),
        "trajectory_steps_per_s": float(f"{traj_steps / max(wall, 1e-9):.4g}"),
        "spec_fingerprint": spec.fingerprint(),
        "device": _distributed.describe(),
        "versions": _distributed.versions(),
    }


def load_sweep(run_dir: str | Path) -> SweepResult:
    """Load a finished run directory as a `SweepResult`."""
    run = Path(run_dir)
    f = run / _store.RESULTS_FILE
    if not f.is_file():
        raise _store.RunDirError(
            f"{str(run)!r} has no {_store.RESULTS_FILE}: the run is unfinished (use resume) "
            "or this is not a run directory."
        )
    spec = SweepSpec.from_toml(run / _store.SPEC_FILE)
    summary = json.loads((run / _store.SUMMARY_FILE).read_text()) if (
        run / _store.SUMMARY_FILE).is_file() else {}
    return SweepResult(spec, pd.read_parquet(f), run, summary.get("wall_time_s", float("nan")),
                       summary)
