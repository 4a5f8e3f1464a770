"""`sweep`: run a `SweepSpec` as batched, chunked, resumable monitored simulations.

Cases are grouped by what fixes the compiled program (dim, form, activation, solver) and,
inside a group, sorted by step count, so a chunk's while-loop runs about as many steps as
its members need: total work is about the sum of the trajectories' steps, not the max
step count times the number of cases. Each chunk is one jitted call with a traced step
count: no recompilation between chunks of the same group.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
from collections.abc import Iterator
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from . import _distributed, _store
from ._field import SMALL_N, PostActivation, PreActivation
from ._monitor import (
    STATUS_NAMES,
    TrajectoryClass,
    classify,
    integrate_monitored,
    integrate_monitored_sharded,
    reduce_monitors,
)
from ._solver import FIXED_SOLVERS
from ._spec import SweepSpec
from ._theory import amplification

AXES = ("form", "activation", "solver", "dt", "dim", "amplitude", "seed")
MEASURED = (
    "steps", "t_final", "diverged_at", "max_norm", "norm_ratio", "amplitude_final",
    "invariant_initial", "invariant_final", "drift_final", "drift_max", "secular_drift",
    "log_growth", "rate_early", "growth_rate", "period", "zero_crossings", "speed_ratio",
    "theory_amplification", "theory_rate",
)
DEFAULT_CHUNK = 1024


def grid(spec: SweepSpec) -> pd.DataFrame:
    """One row per trajectory: the sweep axes, its step count and a stable `traj_id`."""
    cols = np.meshgrid(
        np.arange(len(spec.forms)), np.arange(len(spec.activations)),
        np.arange(len(spec.solvers)), np.arange(len(spec.dts)), np.arange(len(spec.dims)),
        np.arange(len(spec.amplitudes)), np.arange(spec.seeds), indexing="ij",
    )
    f, a, s, d, n, amp, seed = (c.ravel() for c in cols)
    dts = np.asarray(spec.dts)[d]
    df = pd.DataFrame({
        "traj_id": np.arange(f.size, dtype=np.int64),
        "form": np.asarray(spec.forms, object)[f],
        "activation": np.asarray(spec.activations, object)[a],
        "solver": np.asarray(spec.solvers, object)[s],
        "dt": dts,
        "dim": np.asarray(spec.dims, np.int64)[n],
        "amplitude": np.asarray(spec.amplitudes)[amp],
        "seed": seed.astype(np.int64),
    })
    df["steps"] = np.asarray([spec.steps_for(float(x)) for x in spec.dts], np.int64)[d]
    return df


@dataclasses.dataclass(frozen=True)
class Chunk:
    index: int
    dim: int
    form: str
    activation: str
    solver: str
    traj_ids: np.ndarray  # (<= width,)
    width: int  # padded batch size of this chunk's compiled call


def group_chunk_size(steps: np.ndarray, chunk_size: int, pieces: int = 8) -> int:
    """Chunk size for one compiled group: `chunk_size`, or smaller when step counts vary.

    A chunk runs until its longest member is done, so when a group mixes step counts (a
    fixed-horizon sweep over dt) it is cut into at least `pieces` chunks sorted by step
    count; the work is then close to the sum of the members' steps.
    """
    if steps.size == 0 or steps.max() <= 2 * steps.min():
        return chunk_size
    return max(1, min(chunk_size, -(-steps.size // pieces)))


def plan(spec: SweepSpec, chunk_size: int) -> list[Chunk]:
    """Deterministic chunking: groups by compiled program, then by step count."""
    if chunk_size < 1:
        raise ValueError(f"`chunk_size` must be >= 1; got {chunk_size}.")
    g = grid(spec)
    chunks: list[Chunk] = []
    keys = ["dim", "form", "activation", "solver"]
    for (dim, form, act, sol), sub in g.groupby(keys, sort=False):
        # Large n: one shared A per chunk (a real matmul), so chunks don't mix seeds.
        parts = [sub] if dim <= SMALL_N else [s for _, s in sub.groupby("seed", sort=True)]
        for part in parts:
            part = part.sort_values(["steps", "traj_id"], ascending=[False, True], kind="stable")
            ids = part["traj_id"].to_numpy()
            size = group_chunk_size(part["steps"].to_numpy(), chunk_size)
            for start in range(0, ids.size, size):
                chunks.append(Chunk(len(chunks), int(dim), form, act, sol,
                                    ids[start:start + size], size))
    return chunks


def _case_arrays(spec: SweepSpec, dim: int, seed: int, dtype):
    """The random skew matrix and unit initial direction of (dim, seed); deterministic.

    Samples are drawn in float32 and rescaled in float64 numpy, so the case does not depend
    on JAX's x64 mode, the device or the chunking.
    """
    key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(spec.seed), dim), seed)
    ka, kx = jax.random.split(key)
    W = np.asarray(jax.random.normal(ka, (dim, dim), jnp.float32), np.float64)
    A = W - W.T
    if dim > 1:
        A = A * (spec.spectral_radius / np.linalg.norm(A, 2))
    d = np.asarray(jax.random.normal(kx, (dim,), jnp.float32), np.float64)
    d = d / np.linalg.norm(d)
    return A.astype(dtype), d.astype(dtype)


class _CaseCache:
    def __init__(self, spec, dtype):
        self.spec, self.dtype, self._c = spec, dtype, {}

    def __call__(self, dim, seed):
        k = (dim, seed)
        if k not in self._c:
            self._c[k] = _case_arrays(self.spec, dim, seed, self.dtype)
        return self._c[k]


def _chunk_inputs(spec: SweepSpec, chunk: Chunk, rows: pd.DataFrame, cases: _CaseCache):
    """One chunk's rows and its inputs padded to its width: (sel, A, X0, h, steps, thr2)."""
    dtype = np.dtype(spec.dtype)
    m = len(chunk.traj_ids)
    pad = chunk.width - m
    sel = rows.loc[chunk.traj_ids]
    seeds = sel["seed"].to_numpy()
    amps = sel["amplitude"].to_numpy()
    h = sel["dt"].to_numpy()
    steps = sel["steps"].to_numpy()
    n = chunk.dim
    As, ds = zip(*(cases(n, int(s)) for s in seeds))
    X0 = (np.stack(ds, axis=1) * amps[None, :]).astype(dtype)  # (n, m)
    shared = n > SMALL_N
    A = As[0] if shared else np.stack(As, axis=-1)  # (n, n) or (n, n, m)
    if pad:
        # Padding repeats the first member with 0 steps: it does no work and is dropped.
        X0 = np.concatenate([X0, np.repeat(X0[:, :1], pad, 1)], 1)
        h = np.concatenate([h, np.repeat(h[:1], pad)])
        steps = np.concatenate([steps, np.zeros(pad, steps.dtype)])
        if not shared:
            A = np.concatenate([A, np.repeat(A[:, :, :1], pad, 2)], 2)
    norm0 = np.linalg.norm(X0.astype(np.float64), axis=0)
    thr = spec.thresholds.divergence_threshold * np.maximum(norm0, 1.0)
    thr2 = np.minimum(thr * thr, np.finfo(dtype).max).astype(dtype)
    return sel, A, X0, h.astype(dtype), steps.astype(np.int32), thr2


def integrate(place, field, solver, X0, h, steps, thr2, **kw):
    """The engine call of a sweep: `integrate_monitored` on JAX's default device when
    `place` is None, else under `shard_map` over `place`'s mesh (each device runs its own
    chunk in its own loop). `kw`: `check_every`, `samples`."""
    if place is None:
        return integrate_monitored(field, solver, X0, h, steps, thr2, **kw)
    return integrate_monitored_sharded(field, solver, X0, h, steps, thr2, mesh=place.mesh,
                                       axis=_distributed.BATCH_AXIS, **kw)


def run_chunks(spec: SweepSpec, chunks: list[Chunk], rows: pd.DataFrame, cases: _CaseCache,
               place=None, slots: int = 1) -> list[pd.DataFrame]:
    """Integrate chunks of one compiled group in one call; return each chunk's rows.

    The chunks (same program and width; the same seed where A is shared) are laid side by
    side on the batch axis, padded to `slots` chunks with 0-step fillers, and `place` shards
    that axis over `slots` devices: each device integrates exactly one chunk, with the shapes
    a single device would use, so the numbers never depend on the device count (XLA's code
    for a batch, e.g. whether it fuses a multiply-add, can depend on the batch's width).
    """
    c0 = chunks[0]
    shared = c0.dim > SMALL_N
    ins = [_chunk_inputs(spec, c, rows, cases) for c in chunks]
    if any(c.width != c0.width for c in chunks):
        raise ValueError("run_chunks needs chunks of one width.")
    _, A, _, h0, s0, _ = ins[0]
    filler = (None, A, ins[0][2], h0, np.zeros_like(s0), ins[0][5])
    ins += [filler] * (max(slots, len(chunks)) - len(chunks))
    A = A if shared else np.concatenate([x[1] for x in ins], axis=2)
    X0, h, steps, thr2 = (np.concatenate([x[i] for x in ins], axis=-1) for i in (2, 3, 4, 5))

    form = PreActivation if c0.form == "pre" else PostActivation
    dtype = np.dtype(spec.dtype)
    template = form(np.zeros((c0.dim, c0.dim), dtype), c0.activation)
    if place is not None:  # batch axis sharded over the devices; a shared A replicated
        X0j, hj, sj, tj = place(X0, 1), place(h, 0), place(steps, 0), place(thr2, 0)
        Aj = place(A, None if shared else 2)
    else:
        Aj, X0j, hj, sj, tj = (jnp.asarray(x) for x in (A, X0, h, steps, thr2))
    field = eqx.tree_at(lambda f: f.A, template, Aj)
    out = integrate(place, field, FIXED_SOLVERS[c0.solver], X0j, hj, sj, tj,
                    check_every=spec.check_every, samples=spec.samples)
    out = {k: np.asarray(v) for k, v in jax.device_get(out).items()}
    frames = []
    for i, (chunk, (sel, *_)) in enumerate(zip(chunks, ins)):
        lo, m = i * c0.width, len(chunk.traj_ids)
        part = {k: v[..., lo:lo + m] for k, v in out.items()}
        frames.append(_chunk_rows(spec, chunk, sel, part, template.activation.odd))
    return frames


def run_chunk(spec: SweepSpec, chunk: Chunk, rows: pd.DataFrame, cases: _CaseCache,
              place=None) -> pd.DataFrame:
    """Integrate one chunk (padded to its width) and return its measured rows."""
    return run_chunks(spec, [chunk], rows, cases, place,
                      getattr(place, "device_count", 1))[0]


def _chunk_rows(spec: SweepSpec, chunk: Chunk, sel: pd.DataFrame, out: dict,
                odd: bool) -> pd.DataFrame:
    meas = reduce_monitors(out, sel["dt"].to_numpy(), sel["steps"].to_numpy(), odd)
    status = classify(meas, spec.thresholds)
    df = sel.reset_index(drop=True).copy()
    for k, v in meas.items():
        df[k] = v
    amp_theory = amplification(chunk.solver, df["dt"].to_numpy(), spec.spectral_radius)
    df["theory_amplification"] = amp_theory
    # growth rate of log E with E ~ |x|^2 (the linear system's invariant): 2 log|R| / h
    df["theory_rate"] = 2.0 * np.log(amp_theory) / df["dt"].to_numpy()
    df["status"] = pd.Categorical.from_codes(status.astype(np.int64), categories=list(STATUS_NAMES))
    df["status"] = df["status"].astype(str)
    return df[["traj_id", *AXES, *MEASURED, "status"]]


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
        """An `xarray.Dataset` over (form, activation, solver, dt, dim, amplitude),
        aggregated over seeds: medians of the measured columns, the fraction of each status
        (`frac_<status>`) and the most common status (`status`, as its name)."""
        import xarray as xr

        axes = [a for a in AXES if a != "seed"]
        df = self.table
        num = [c for c in MEASURED if c in df.columns]
        med = df.groupby(axes, sort=True)[num].median()
        for s in STATUS_NAMES:
            med[f"frac_{s}"] = (df["status"] == s).groupby([df[a] for a in axes]).mean()
        mode = df.groupby(axes, sort=True)["status"].agg(lambda s: s.value_counts().idxmax())
        med["status"] = mode
        return xr.Dataset.from_dataframe(med)


def case(spec: SweepSpec, row) -> dict:
    """Rebuild one trajectory of a sweep so it can be re-run with `ox.simulate`.

    **Arguments:** `spec` and a row of the result table (a mapping with the axis columns,
    e.g. `result.to_dataframe().iloc[i]`).

    **Returns:** `dict(field=..., x0=..., dt=..., steps=..., solver=...)`:
    `ox.simulate(c["field"], c["x0"], dt=c["dt"], steps=c["steps"], solver=c["solver"])`
    reproduces the row's trajectory.
    """
    dtype = np.dtype(spec.dtype)
    A, d = _case_arrays(spec, int(row["dim"]), int(row["seed"]), dtype)
    form = PreActivation if row["form"] == "pre" else PostActivation
    dt = float(row["dt"])
    return dict(
        field=form(jnp.asarray(A), row["activation"], check_skew=False),
        x0=jnp.asarray((d * np.asarray(row["amplitude"], dtype)).astype(dtype)),
        dt=np.asarray(dt, dtype),
        steps=int(spec.steps_for(dt)),
        solver=row["solver"],
    )


def _device_info() -> dict:
    devs = jax.devices()
    return {
        "backend": jax.default_backend(),
        "devices": [str(d) for d in devs],
        "device_count": len(devs),
        "process_index": jax.process_index(),
        "process_count": jax.process_count(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
    }


def _versions() -> dict:
    import importlib.metadata as md

    out = {}
    for p in ("oscillax", "jax", "jaxlib", "diffrax", "equinox", "numpy", "pandas"):
        try:
            out[p] = md.version(p)
        except md.PackageNotFoundError:
            out[p] = None
    return out


def summarize(spec: SweepSpec, table: pd.DataFrame, wall: float, compute_wall: float) -> dict:
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
        "device": _device_info(),
        "versions": _versions(),
    }


def _progress(enabled: bool, total: int, done: int):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    prog = Progress(
        TextColumn("[bold]atlas[/bold]"), BarColumn(), MofNCompleteColumn(),
        TextColumn("traj"), TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
        TextColumn("ETA"), TimeRemainingColumn(), disable=not enabled, transient=False,
    )
    task = prog.add_task("sweep", total=total, completed=done, rate="")
    return prog, task


def iter_chunks(chunks: list[Chunk], skip: set[int], process_index: int = 0,
                process_count: int = 1) -> Iterator[Chunk]:
    for c in chunks:
        if c.index % process_count == process_index and c.index not in skip:
            yield c


def side_by_side(todo: list[Chunk], rows: pd.DataFrame, slots: int) -> Iterator[list[Chunk]]:
    """Consecutive chunks that one call can run side by side (one per device): same
    compiled program and width, and the same seed where A is shared (n > SMALL_N)."""
    def key(c):
        seed = int(rows.at[c.traj_ids[0], "seed"]) if c.dim > SMALL_N else None
        return (c.dim, c.form, c.activation, c.solver, c.width, seed)

    batch: list[Chunk] = []
    for c in todo:
        if batch and (len(batch) == slots or key(c) != key(batch[0])):
            yield batch
            batch = []
        batch.append(c)
    if batch:
        yield batch


def sweep(
    spec: SweepSpec | str | Path,
    out: str | Path | None = None,
    *,
    chunk_size: int = DEFAULT_CHUNK,
    resume: bool = False,
    force: bool = False,
    progress: bool = False,
    figures: bool = True,
    place=None,
    process_index: int | None = None,
    process_count: int | None = None,
) -> SweepResult:
    """Run a stability sweep and return its `SweepResult`.

    **Arguments:**
    - `spec`: a `SweepSpec`, or the path of a TOML spec.
    - `out`: run directory (spec, parquet parts, results, summary, figures); None keeps
      everything in memory.
    - `chunk_size`: trajectories per compiled call (results do not depend on it).
    - `resume`: finish the run in `out` (its own spec and chunk size are used).
    - `force`: overwrite an existing run directory.
    - `progress`: show a progress bar; `figures`: draw the atlas figures into `out`.
    - `place`: how a call's arrays go onto devices (`place(array, batch_axis)`, with a
      `device_count`); default: with several local devices, a `NamedSharding` of the batch
      axis over a mesh of all of them, each device running one chunk of the call (so
      results are bit-identical whatever the device count); `False`: JAX's default device.
    - `process_index`, `process_count`: this process's share of a multi-process run
      (default: `jax.process_index()` / `jax.process_count()`, i.e. `jax.distributed`).
      Each process runs the chunks with `index % process_count == process_index` and
      writes its parts into `out`, which all processes must share; process 0 creates it
      first and merges once all are done. Results do not depend on either.

    ```python
    res = ox.sweep(ox.SweepSpec(activations=("identity", "tanh"), dts=(0.01, 0.1)))
    res.to_dataframe().groupby(["activation", "status"]).size()
    ```
    """
    t_start = time.perf_counter()
    if process_index is None or process_count is None:
        pi, pc = _distributed.process_info()
        process_index = pi if process_index is None else process_index
        process_count = pc if process_count is None else process_count
    coord = _distributed.Coordination(process_index, process_count)
    spec_text = None
    if isinstance(spec, str | Path):
        spec_text = Path(spec).read_text() if Path(spec).is_file() else None
        spec = SweepSpec.from_toml(spec)
    run = None if out is None else Path(out)
    if resume:
        if run is None:
            raise ValueError("`resume=True` needs the run directory as `out`.")
        info = _store.read_run_info(run)
        spec = SweepSpec.from_toml(run / _store.SPEC_FILE)
        if spec.fingerprint() != info["spec_fingerprint"]:
            raise _store.RunDirError(
                f"the spec in {str(run)!r} no longer matches the run that wrote it "
                "(fingerprint changed); start a new run instead of resuming."
            )
        chunk_size = int(info["chunk_size"])
    elif run is not None:
        def prepare():  # process 0 only; the others wait for it (no part before the dir)
            _store.prepare_new(run, force=force)
            _store.write_run_info(run, {
                "spec_fingerprint": spec.fingerprint(),
                "chunk_size": int(chunk_size),
                "n_trajectories": spec.n_trajectories,
            }, spec_text if spec_text is not None else spec.to_toml())

        coord.start(prepare, run, spec.fingerprint())
    if not isinstance(spec, SweepSpec):
        raise ValueError(f"`spec` must be a SweepSpec or a TOML path; got {type(spec).__name__}.")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"`chunk_size` must be an integer >= 1; got {chunk_size!r}.")

    if run is None and process_count > 1:
        raise ValueError(
            f"a sweep shared by {process_count} processes needs `out`, a run directory all "
            "of them can write (each process runs only its share of the chunks)."
        )
    if place is None:
        place = _distributed.default_place()
    elif place is False:
        place = None
    if spec.dtype == "float64" and not jax.config.jax_enable_x64:
        raise ValueError(
            "the spec asks for dtype = 'float64' but JAX's 64-bit mode is off, so it would "
            "silently run in float32; set JAX_ENABLE_X64=1 (or call "
            "jax.config.update('jax_enable_x64', True) before any JAX work), or use "
            "dtype = 'float32'."
        )
    rows = grid(spec).set_index("traj_id", drop=False)
    chunks = plan(spec, chunk_size)
    slots = getattr(place, "device_count", 1) if place is not None else 1
    done = _store.done_chunks(run) if run is not None else set()
    todo = list(iter_chunks(chunks, done, process_index, process_count))
    mine_total = sum(len(c.traj_ids) for c in chunks if c.index % process_count == process_index)
    mine_done = sum(len(chunks[i].traj_ids) for i in done
                    if i < len(chunks) and i % process_count == process_index)
    cases = _CaseCache(spec, np.dtype(spec.dtype))
    frames: list[pd.DataFrame] = []
    prog, task = _progress(progress, mine_total, mine_done)
    t_compute = time.perf_counter()
    n_done = mine_done
    with prog:
        for batch in side_by_side(todo, rows, slots):  # one chunk per local device
            for c, df in zip(batch, run_chunks(spec, batch, rows, cases, place, slots)):
                if run is not None:
                    _store.write_part(run, c.index, df)
                else:
                    frames.append(df)
                n_done += len(c.traj_ids)
            el = time.perf_counter() - t_compute
            prog.update(task, completed=n_done,
                        rate=f"{(n_done - mine_done) / max(el, 1e-9):,.0f} traj/s")
    compute_wall = time.perf_counter() - t_compute
    if run is not None:
        merge = coord.finish()  # every process has written its parts; process 0 merges
        if merge and coord.client is not None:
            _distributed.wait_for_parts(run, set(range(len(chunks))))
        if not merge or len(_store.done_chunks(run)) < len(chunks):
            # Not the merging process, or (processes without jax.distributed) another one
            # may still run its share: `--resume DIR` merges later.
            table = _store.read_parts(run) if _store.done_chunks(run) else pd.DataFrame()
            return SweepResult(spec, table, run, time.perf_counter() - t_start, {})
        table = _store.read_parts(run)
    else:
        table = pd.concat(frames, ignore_index=True).sort_values("traj_id").reset_index(drop=True)
    wall = time.perf_counter() - t_start
    summary = summarize(spec, table, wall, compute_wall)
    if run is not None and process_index == 0:
        tmp = run / f".{_store.RESULTS_FILE}.tmp"
        table.to_parquet(tmp, index=False)
        tmp.replace(run / _store.RESULTS_FILE)
        if figures:
            from ._plot import atlas_figures

            summary["figures"] = [str(p.relative_to(run)) for p in
                                  atlas_figures(table, spec, run / _store.FIGURES_DIR)]
        _store.atomic_write_text(run / _store.SUMMARY_FILE, json.dumps(summary, indent=2))
    return SweepResult(spec, table, run, wall, summary)


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


_ = TrajectoryClass  # re-exported through __init__
