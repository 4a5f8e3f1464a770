"""`sweep`: run a `SweepSpec` as batched, chunked, resumable monitored simulations.

Data flows one way: spec → plan (chunks) → engine calls (`integrate`, one per device-batch
of chunks) → reductions and classification (`_classify`) → store (parts, results) →
figures. The distinct programs (one per dimension, solver and chunk width) are compiled
up front, concurrently in threads (XLA releases the GIL while compiling), and every chunk
then reuses them: step counts are traced, so nothing recompiles between chunks.

The loop over calls is a pipeline of three threads: the engine call of batch i runs in
one (XLA releases the GIL), while the main thread builds batch i-1's rows and batch i+1's
inputs, and a writer thread writes the parquet parts (and, for a large fresh run in
traj_id order, appends them to results.parquet). (Building inputs two calls ahead in a
fourth thread measured the same on 2 busy CPU cores: the host is CPU-bound there.)
Memory stays flat in the number of trajectories: a few batches in flight, and a large
run's merge streams (`_store.merge_parts`) and its table is read from results.parquet
when first used. The chunk size, when not given, comes from the spec alone (`auto_chunk_size`).
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from .. import _distributed
from .._activation import get_activation
from .._classify import (
    GROWTH_LAW_NAMES,
    STATUS_NAMES,
    TrajectoryClass,
    classify,
    growth_laws,
    reduce_monitors,
)
from .._engine import ENGINE_COMPILER_OPTIONS
from .._monitor import integrate_monitored, integrate_monitored_sharded
from .._solver import FIXED_SOLVERS
from .._theory import amplification, gamma_star
from . import _program_cache, _store
from ._cases import CaseTable, batch_field, chunk_inputs
from ._plan import AXES, Chunk, grid, iter_chunks, plan, side_by_side, strings
from ._result import MEASURED, SweepResult, summarize
from ._spec import SweepSpec, read_spec_text

DEFAULT_CHUNK = 1024
"""The narrowest automatic chunk (trajectories per chunk): long runs use it."""
AUTO_CHUNK_WORK = 1 << 25
"""Trajectory-steps an automatic chunk aims at (~0.1 s of one CPU device): a short run gets
wider chunks, so the per-call and per-chunk costs (inputs, rows, one parquet part) are
amortised."""
MAX_CHUNK_ELEMENTS = 1 << 14
"""The widest automatic chunk holds this many state entries (dim x trajectories). Measured
on 2 CPU cores (W2, 1e3 steps, one call a width, interleaved): 2048 members a device ran
at 2.5e8 traj-steps/s, 8192 at 9.7e7, 16384 at 8.9e7 (the state and monitors of a wide
chunk leave the cache); at 1e4 steps 1024 ran at 3.7e8, 4096 at 3.0e8."""
AUTO_MIN_CHUNKS = 8
"""An automatic chunk leaves at least this many chunks to a (dim, solver) group (when that
keeps it at least `DEFAULT_CHUNK` wide), so that up to this many devices share it."""
_PENDING_WRITES = 2


def integrate(place, field, solver, X0, h, steps, thr, **kw):
    """The engine call of a sweep: `integrate_monitored` on JAX's default device when
    `place` is None, else under `shard_map` over `place`'s mesh (each device runs its own
    chunk in its own loop). `kw`: `check_every`, `samples`, `use_invariant`. Through the
    on-disk `ProgramCache` when JAX has a compilation cache (a warm run skips tracing)."""
    args = (field, solver, X0, h, steps, thr)
    if place is None:
        return _program_cache.call(integrate_monitored, args, kw, ENGINE_COMPILER_OPTIONS)
    kw = dict(kw, mesh=place.mesh, axis=_distributed.BATCH_AXIS)
    return _program_cache.call(integrate_monitored_sharded, args, kw, ENGINE_COMPILER_OPTIONS)


def _call(spec: SweepSpec, chunk: Chunk, ins: list, place):
    """One engine call over chunk inputs laid side by side on the batch axis; returns the
    engine's output and, per member, whether growth is measured on the invariant.
    `ins[i][1]` is a `FieldArrays` (A, and gamma / bias per member or None)."""
    arrays = [x[1] for x in ins]
    shared = arrays[0].A.ndim == 2
    A = arrays[0].A if shared else np.concatenate([a.A for a in arrays], axis=2)
    gamma, bias = (None if getattr(arrays[0], k) is None else
                   np.concatenate([getattr(a, k) for a in arrays], axis=-1)
                   for k in ("gamma", "bias"))
    X0, h, steps, thr = (np.concatenate([x[i] for x in ins], axis=-1) for i in range(2, 6))
    put = (lambda x, ax: jnp.asarray(x)) if place is None else place
    # per member, from the concrete arrays (before they are placed on devices)
    use_inv = batch_field(spec, chunk, A, gamma, bias).uses_invariant(X0.shape[1])
    # batch axis sharded over the devices; a shared A replicated
    field = batch_field(spec, chunk, put(A, None if shared else 2),
                        None if gamma is None else put(gamma, 0),
                        None if bias is None else put(bias, 1))
    out = integrate(place, field, FIXED_SOLVERS[chunk.solver], put(X0, 1), put(h, 0),
                    put(steps, 0), put(thr, 0), check_every=spec.check_every,
                    samples=spec.samples, use_invariant=put(use_inv, 0),
                    lyapunov=spec.lyapunov)
    return out, use_inv


def run_chunks(spec: SweepSpec, chunks: list[Chunk], rows: pd.DataFrame, place=None,
               slots: int = 1) -> list[pd.DataFrame]:
    """Integrate chunks of one program in one call; return each chunk's rows.

    The chunks are laid side by side on the batch axis, padded to `slots` chunks with
    0-step fillers, and `place` shards that axis over `slots` devices: each device
    integrates exactly one chunk, with the shapes a single device would use, so the numbers
    never depend on the device count (XLA's code for a batch, e.g. whether it fuses a
    multiply-add, can depend on the batch's width).
    """
    return _collect(spec, *_dispatch(spec, chunks, rows, place, slots))


class _Done:
    """An already computed result, with a future's `result()`."""

    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


def _dispatch(spec: SweepSpec, chunks: list[Chunk], rows: pd.DataFrame, place, slots: int,
              engine=None, cases: CaseTable | None = None):
    """Build the inputs of `run_chunks`'s call and start it (`_start`)."""
    return _start(spec, chunks, _inputs(spec, chunks, rows, slots, cases), place, engine)


def _inputs(spec: SweepSpec, chunks: list[Chunk], rows: pd.DataFrame, slots: int,
            cases: CaseTable | None = None) -> list:
    """The inputs of one call: each chunk's (`chunk_inputs`), then 0-step fillers up to
    `slots` chunks."""
    c0 = chunks[0]
    if any(c.program != c0.program for c in chunks):
        raise ValueError("run_chunks needs chunks of one program (`Chunk.program`).")
    ins = [chunk_inputs(spec, c, rows, cases) for c in chunks]
    sel0, A, X0, h, steps, thr = ins[0]
    filler = (None, A, X0, h, np.zeros_like(steps), thr)
    return ins + [filler] * (max(slots, len(chunks)) - len(chunks))


def _start(spec: SweepSpec, chunks: list[Chunk], ins: list, place, engine=None):
    """Start the call: in the thread pool `engine` when given (XLA releases the GIL while it
    runs, so the host builds other calls' rows and inputs meanwhile; JAX's CPU calls do not
    return before they finish), else here. Returns `(chunks, sels, job)`, `job.result()`
    being the host output and `use_inv`."""
    c0 = chunks[0]

    def run():
        out, use_inv = _call(spec, c0, ins, place)
        return jax.device_get(out), use_inv

    job = engine.submit(run) if engine is not None else _Done(run())
    return chunks, [x[0] for x in ins[:len(chunks)]], job


def _collect(spec: SweepSpec, chunks, sels, job) -> list[pd.DataFrame]:
    """Wait for a dispatched call and return each chunk's rows, sorted by traj_id."""
    out, use_inv = job.result()
    width = chunks[0].width
    frames = []
    for i, (chunk, sel) in enumerate(zip(chunks, sels)):
        real = np.flatnonzero(chunk.traj_ids >= 0)
        # a chunk without padding: a view of its lanes, not a copy
        real = (slice(i * width, (i + 1) * width) if real.size == width else real + i * width)
        part = jax.tree.map(lambda v: np.asarray(v)[..., real], out)
        df = chunk_rows(spec, chunk, sel, part, use_inv[real])
        if not df["traj_id"].is_monotonic_increasing:  # (W2-like chunks already are)
            df = df.sort_values("traj_id", kind="stable")
        frames.append(df.reset_index(drop=True))
    return frames


def run_chunk(spec: SweepSpec, chunk: Chunk, rows: pd.DataFrame, place=None) -> pd.DataFrame:
    """Integrate one chunk (padded to its width) and return its measured rows."""
    return run_chunks(spec, [chunk], rows, place, getattr(place, "device_count", 1))[0]


def chunk_rows(spec: SweepSpec, chunk: Chunk, sel: pd.DataFrame, out,
               use_inv) -> pd.DataFrame:
    """The result rows of a chunk: axes, measured columns, theory, status."""
    meas = reduce_monitors(out, sel["dt"].to_numpy(), sel["steps"].to_numpy(), use_inv)
    # bounded σ bounds the growth (|x| <= |x0| + C t) unless the diffusion term alone is
    # amplified by the solver (|R(-h gamma)| > 1, e.g. Euler with h gamma > 2)
    bounded = [a for a in spec.activations if get_activation(a).bounded]
    bsig = sel["activation"].isin(bounded).to_numpy(bool)
    if spec.has_gamma:
        damp = amplification(chunk.solver, sel["dt"].to_numpy(), 0.0,
                             gamma=sel["gamma"].to_numpy())
        bsig = bsig & (np.asarray(damp) <= 1.0 + 1e-12)
    meas["bounded_sigma"] = bsig
    status = classify(meas, spec.thresholds)
    law = growth_laws(meas, spec.thresholds)
    # the settled size of a cycle: its largest norm over the last quarter of the run
    meas["cycle_amplitude"] = np.where(status == TrajectoryClass.CYCLE,
                                       meas["late_amplitude"], np.nan)
    # one frame from a dict of columns (inserting columns one by one into a frame cost
    # more than the rest of the chunk's host work)
    cols = {c: sel[c].array for c in sel.columns}
    cols.update(meas)
    h = sel["dt"].to_numpy()
    # linear theory of the top eigen-pair -gamma +- i omega of A - gamma I (gamma: pre only)
    gam = sel["gamma"].to_numpy() if spec.has_gamma else None
    amp_theory = amplification(chunk.solver, h, spec.spectral_radius, gamma=gam)
    cols["theory_amplification"] = amp_theory
    # growth rate of log E with E ~ |x|^2 (the linear system's invariant): 2 log|R| / h
    cols["theory_rate"] = 2.0 * np.log(amp_theory) / h
    # the smallest gamma >= 0 that stops the solver amplifying the top pair +- i omega_max
    # (omega_max = the spectral radius A is scaled to; 0 for n = 1, where A = 0): 0 where
    # it is stable without diffusion, NaN where no gamma is enough (Euler h omega > 1)
    omega = np.where(sel["dim"].to_numpy() > 1, spec.spectral_radius, 0.0)
    cols["theory_gamma_star"] = gamma_star(h, omega, chunk.solver)
    text = sel["activation"].dtype
    cols["growth_law"] = strings(GROWTH_LAW_NAMES, law, text)
    cols["status"] = strings(STATUS_NAMES, status, text)
    cols["map_lyapunov"] = np.asarray(out.map_lyapunov, np.float64)
    names = ["traj_id", *AXES, *(c for c in MEASURED if c != "map_lyapunov" or spec.lyapunov),
             "growth_law", "status"]
    return pd.DataFrame({k: cols[k] for k in names}, copy=False)


def compile_ahead(spec: SweepSpec, batches: list[list[Chunk]], rows, place, slots: int,
                  cases: CaseTable | None = None):
    """Compile every distinct program of `batches` concurrently, one thread per core (a
    0-step call of each, with its first chunk's inputs, compiles it into JAX's cache;
    XLA releases the GIL while compiling). Returns a future per program key."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1))

    def warm(c0: Chunk):
        sel, A, X0, h, steps, thr = chunk_inputs(spec, c0, rows, cases)
        ins = [(sel, A, X0, h, np.zeros_like(steps), thr)] * max(slots, 1)
        return jax.block_until_ready(_call(spec, c0, ins, place)[0])

    futures = {}
    for batch in batches:
        if batch[0].program not in futures:
            futures[batch[0].program] = pool.submit(warm, batch[0])
    pool.shutdown(wait=False)
    return futures


CASE_TABLE_SEEDS = 1 << 14
"""Up to this many seeds, a sweep draws every case before the engine starts
(`CaseTable`, a few ms); more are drawn up front only where the engine call is sharded over
several devices (a JAX call then queues behind the running call, so drawing a chunk's cases
during it would wait for it), and otherwise chunk by chunk, overlapping the engine."""


def _case_table(spec: SweepSpec, slots: int) -> CaseTable | None:
    return CaseTable(spec) if spec.seeds <= CASE_TABLE_SEEDS or slots > 1 else None


def auto_chunk_size(spec: SweepSpec) -> int:
    """The chunk size `sweep` uses when none is given: from the spec alone (so a run's
    chunks, and its numbers, never depend on the machine), a power of two.

    `DEFAULT_CHUNK` for long runs; wider when the median trajectory is short, so a chunk
    holds about `AUTO_CHUNK_WORK` trajectory-steps; at most `MAX_CHUNK_ELEMENTS` state
    entries, and narrow enough for `AUTO_MIN_CHUNKS` chunks a (dim, solver) group."""
    pow2_floor = lambda x: 1 << max(int(x), 1).bit_length() - 1
    steps = float(np.median([spec.steps_for(float(dt)) for dt in spec.dts]))
    width = pow2_floor(AUTO_CHUNK_WORK / max(steps, 1.0))
    width = min(width, pow2_floor(MAX_CHUNK_ELEMENTS // max(spec.dims)))
    # at least `AUTO_MIN_CHUNKS` chunks a (dim, solver) group, so that several devices
    # each get one (the device count itself must not change the chunks)
    per_group = spec.n_trajectories // (len(spec.dims) * len(spec.solvers))
    width = min(width, pow2_floor(per_group // AUTO_MIN_CHUNKS))
    return max(DEFAULT_CHUNK, width)


def _progress(enabled: bool, total: int, done: int):
    """A rich progress bar: trajectories done of this process's share, their rate, time
    elapsed and left; `(nullcontext, None)` when disabled (rich is then not imported)."""
    if not enabled:
        return contextlib.nullcontext(), None
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


@dataclasses.dataclass
class _Run:
    """A sweep being run: its spec, chunks, where it writes, and this process's share."""

    spec: SweepSpec
    chunk_size: int
    run_dir: Path | None
    coord: _distributed.Coordination
    process_index: int
    process_count: int
    n_chunks: int = 0
    chunks: list | None = None
    locked: bool = False
    merged: bool = False  # results.parquet was written beside the parts


def _open(spec, out, chunk_size, resume, force, process_index, process_count) -> _Run:
    """Validate the arguments, then create (or reopen, to resume) the run directory."""
    if process_index is None or process_count is None:
        pi, pc = _distributed.process_info()
        process_index = pi if process_index is None else process_index
        process_count = pc if process_count is None else process_count
    coord = _distributed.Coordination(process_index, process_count)
    run = None if out is None else Path(out)
    spec_text = None
    if resume:
        if run is None:
            raise ValueError("`resume=True` needs the run directory as `out`.")
        if process_count == 1 and run.is_dir():  # a live writer first: its files may be new
            _store.check_not_locked(run, "cannot resume")
        spec, chunk_size = _store.reopen(run)
    else:
        if isinstance(spec, str | Path):
            spec_path = spec
            spec = SweepSpec.from_toml(spec_path)  # one clear error for any unusable file
            spec_text = read_spec_text(spec_path)
        if not isinstance(spec, SweepSpec):
            raise ValueError(
                f"`spec` must be a SweepSpec or a TOML path; got {type(spec).__name__}.")
    if chunk_size is None:  # automatic, from the spec alone; run.json records it
        chunk_size = auto_chunk_size(spec)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"`chunk_size` must be an integer >= 1 or None; got {chunk_size!r}.")
    if run is None and process_count > 1:
        raise ValueError(
            f"a sweep shared by {process_count} processes needs `out`, a run directory all "
            "of them can write (each process runs only its share of the chunks)."
        )
    if spec.dtype == "float64" and not jax.config.jax_enable_x64:
        raise ValueError(
            "the spec asks for dtype = 'float64' but JAX's 64-bit mode is off, so it would "
            "silently run in float32; set JAX_ENABLE_X64=1 (or call "
            "jax.config.update('jax_enable_x64', True) before any JAX work), or use "
            "dtype = 'float32'."
        )
    # Everything is checked: only now is anything created or locked.
    lock = run is not None and process_count == 1  # a shared multi-process run has no lock
    if run is not None and not resume:
        text = spec_text if spec_text is not None else spec.to_toml()
        coord.start(lambda: _store.create(run, spec, chunk_size, text, force=force,
                                          lock=lock), run, spec.fingerprint())
    elif lock:
        _store.acquire_lock(run, "cannot resume")
    return _Run(spec, chunk_size, run, coord, process_index, process_count, locked=lock)


def _execute(r: _Run, place, progress: bool) -> list[pd.DataFrame]:
    """Run this process's missing chunks; parts go to the run directory (or are kept).

    Pipelined (see the module docstring): the next call is started before the previous
    call's rows are built, and parts are written by one background thread (parquet
    releases the GIL), at most `_PENDING_WRITES` behind, so memory stays flat in the number
    of chunks."""
    spec = r.spec
    slots = getattr(place, "device_count", 1) if place is not None else 1
    # the cases are drawn (JAX, which releases the GIL) while the grid and plan are built
    drawing = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="oscillax-cases")
    cases_f = drawing.submit(_case_table, spec, slots)
    drawing.shutdown(wait=False)
    rows = grid(spec)
    chunks = plan(spec, r.chunk_size, rows)
    rows = rows.set_index("traj_id", drop=False)
    mine = [c for c in chunks if c.index % r.process_count == r.process_index]
    r.chunks = chunks
    done = (_store.check_parts(r.run_dir, chunks, {c.index for c in mine}, clean_tmp=r.locked)
            if r.run_dir is not None else set())
    todo = list(iter_chunks(chunks, done, r.process_index, r.process_count))
    batches = list(side_by_side(todo, slots))
    n_mine = sum(c.n_members for c in mine)
    n_done = n_mine - sum(c.n_members for c in todo)
    # a fresh, large, single-process run whose chunks follow traj_id order: results.parquet
    # is written beside the parts (no merge that reads them all back), in that order
    append = (r.run_dir is not None and not done and r.process_count == 1
              and n_mine > _store.MERGE_ROWS and _in_traj_order(chunks))
    if not append:
        batches = costly_programs_first(batches, rows)
    cases = cases_f.result()
    ready = compile_ahead(spec, batches, rows, place, slots, cases)
    frames: list[pd.DataFrame] = []
    prog, task = _progress(progress, n_mine, n_done)
    t0, start_done = time.perf_counter(), n_done
    writer = (concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="oscillax-parts")
              if r.run_dir is not None else None)
    engine = (concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="oscillax-engine")
              if len(batches) > 1 else None)
    writes: collections.deque = collections.deque()
    appender = _store.ResultsAppender(r.run_dir, n_mine) if append else None

    def finish_batch(batch, dispatched):
        nonlocal n_done
        for c, df in zip(batch, _collect(spec, *dispatched)):
            if writer is not None:
                writes.append(writer.submit(_store.write_part_appending, r.run_dir,
                                            c.index, df, appender))
            else:
                frames.append(df)
        while len(writes) > _PENDING_WRITES or (writes and writes[0].done()):
            writes.popleft().result()  # bounded, and a failed write raises here
        n_done += sum(c.n_members for c in batch)
        el = time.perf_counter() - t0
        if task is not None:
            prog.update(task, completed=n_done,
                        rate=f"{(n_done - start_done) / max(el, 1e-9):,.0f} traj/s")

    try:
        with prog:
            pending = None
            for batch in batches:  # one chunk per local device
                ready[batch[0].program].result()
                dispatched = _dispatch(spec, batch, rows, place, slots, engine, cases)
                if pending is not None:
                    finish_batch(*pending)
                pending = (batch, dispatched)
            if pending is not None:
                finish_batch(*pending)
            while writes:
                writes.popleft().result()
        r.merged = appender is not None and appender.close()
    finally:  # an error or Ctrl-C: the parts queued so far are still written (for resume)
        if engine is not None:
            engine.shutdown(wait=True, cancel_futures=True)
        if writer is not None:
            writer.shutdown(wait=True)
        if appender is not None and not r.merged:
            appender.abort()
    r.n_chunks = len(chunks)
    return frames


_STAGES = {"euler": 1, "heun": 2, "midpoint": 2, "rk4": 4, "implicit_midpoint": 6}
"""Rough cost of a solver's step in field evaluations (implicit midpoint: its Newton
iterations with their Jacobians), for `costly_programs_first`."""


def costly_programs_first(batches: list[list[Chunk]], rows: pd.DataFrame) -> list:
    """The calls grouped by program, the most expensive program first (member-steps x
    solver stages x dim), each program's calls in their order. Its programs compile (are
    traced, mostly under the GIL) while the engine runs; starting with the longest
    engine work lets the cheap programs' tracing hide behind it instead of following it.
    The order of calls changes no number."""
    steps = rows["steps"].to_numpy()
    groups: dict = {}
    for b in batches:
        groups.setdefault(b[0].program, []).append(b)

    def cost(calls):
        c0 = calls[0][0]
        n = sum(int(steps[c.traj_ids[c.traj_ids >= 0]].sum()) for b in calls for c in b)
        return n * _STAGES.get(c0.solver, 4) * c0.dim

    return [b for calls in sorted(groups.values(), key=cost, reverse=True) for b in calls]


def _in_traj_order(chunks) -> bool:
    """Whether the chunks' members, chunk after chunk, are in increasing traj_id order."""
    last = -1
    for c in chunks:
        ids = c.traj_ids[c.traj_ids >= 0]
        if ids.size == 0:
            continue
        if ids.min() <= last:
            return False
        last = ids.max()
    return True


def _finish(r: _Run, frames, figures: bool, t_start: float, compute_wall: float,
            paths=None, helper=None):
    """Merge (process 0), write results, figures and summary."""
    spec, run = r.spec, r.run_dir
    if run is not None:
        merge = r.coord.finish()  # every process has written its parts; process 0 merges
        if merge and r.coord.client is not None:
            _distributed.wait_for_parts(run, set(range(r.n_chunks)))
        if not merge or _store.done_chunks(run, r.n_chunks) != set(range(r.n_chunks)):
            # Not the merging process, or (processes without jax.distributed) another one
            # may still run its share: resuming merges later.
            table = _store.read_parts(run) if _store.done_chunks(run) else pd.DataFrame()
            _store.release_lock(run)
            return SweepResult(spec, table, run, time.perf_counter() - t_start, {})
        # results.parquet, every trajectory exactly once; streamed for a large run, whose
        # table is then read from it when first used (memory flat in the trajectories)
        table = None if r.merged else _store.merge_parts(run, r.chunks)
        if table is None and figures and r.process_index == 0:
            table = pd.read_parquet(run / _store.RESULTS_FILE)  # the figures read it all
    else:
        table = pd.concat(frames, ignore_index=True).sort_values("traj_id").reset_index(drop=True)
    wall = time.perf_counter() - t_start
    summary = (summarize(spec, table, wall, compute_wall) if table is not None else
               _summarize_stored(spec, run, wall, compute_wall))
    if run is not None and r.process_index == 0:
        if figures:
            from ._examples import run_figures

            summary["figures"] = [str(p.relative_to(run)) for p in
                                  run_figures(table, spec, run / _store.FIGURES_DIR,
                                              paths, helper)]
        _store.write_summary(run, summary)
    if run is not None:
        _store.release_lock(run)
    if table is None:
        return _StoredResult(spec, None, run, wall, summary)
    return SweepResult(spec, table, run, wall, summary)


class _StoredResult(SweepResult):
    """A `SweepResult` of a large run (over `_store.MERGE_ROWS` trajectories) whose table is
    read from the run directory's `results.parquet` when first used, so that `sweep`
    itself holds no more than a chunk and a merge bucket of rows."""

    @property
    def table(self) -> pd.DataFrame:
        t = self.__dict__.get("_table")
        if t is None:
            t = self.__dict__["_table"] = pd.read_parquet(self.run_dir / _store.RESULTS_FILE)
        return t

    @table.setter
    def table(self, value) -> None:
        self.__dict__["_table"] = value


_SUMMARY_COLUMNS = ("activation", "solver", "status", "steps")


def _summarize_stored(spec, run: Path, wall: float, compute_wall: float) -> dict:
    """`summarize` of a merged run, reading only the columns it needs from the results."""
    f = run / _store.RESULTS_FILE
    try:
        return summarize(spec, pd.read_parquet(f, columns=list(_SUMMARY_COLUMNS)), wall,
                         compute_wall)
    except KeyError:  # summarize reads more columns than these
        return summarize(spec, pd.read_parquet(f), wall, compute_wall)


def sweep(
    spec: SweepSpec | str | Path,
    out: str | Path | None = None,
    *,
    chunk_size: int | None = None,
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
    - `chunk_size`: trajectories per chunk, each device's share of a compiled call
      (results do not depend on it); None: `auto_chunk_size(spec)`, 1024 for long runs,
      wider for short ones (2048 for n = 2 at 1e4 steps, 8192 at 1e3, the widest).
    - `resume`: finish the run in `out` (its own spec and chunk size are used).
    - `force`: overwrite an existing run directory (refused while another live process
      holds its writer lock).
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

    One program is compiled per (dimension, solver): every form and activation of the
    spec runs side by side in it. The distinct programs compile concurrently, one thread
    per core.

    ```python
    res = ox.sweep(ox.SweepSpec(activations=("identity", "tanh"), dts=(0.01, 0.1)))
    res.to_dataframe().groupby(["activation", "status"]).size()
    ```
    """
    t_start = time.perf_counter()
    r = _open(spec, out, chunk_size, resume, force, process_index, process_count)
    helper = None  # a second process drawing part of the figures (`_figure_worker`)
    try:
        if place is None:
            place = _distributed.default_place()
        elif place is False:
            place = None
        paths = None
        if figures and r.run_dir is not None and r.process_index == 0:
            from ._examples import start_figure_paths
            from ._figure_worker import FigureWorker

            paths = start_figure_paths(r.spec.activations)  # beside the sweep
            helper = FigureWorker.start(r.run_dir / _store.RESULTS_FILE, r.spec)
        t_compute = time.perf_counter()
        frames = _execute(r, place, progress)
        return _finish(r, frames, figures, t_start, time.perf_counter() - t_compute, paths,
                       helper)
    finally:  # an error or Ctrl-C: the parts written so far stay, for --resume
        if helper is not None:
            helper.close()
        if r.run_dir is not None:
            _store.release_lock(r.run_dir)
