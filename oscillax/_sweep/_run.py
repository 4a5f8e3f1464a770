"""`sweep`: run a `SweepSpec` as batched, chunked, resumable monitored simulations.

Data flows one way: spec → plan (chunks) → engine calls (`integrate`, one per device-batch
of chunks) → reductions and classification (`_classify`) → store (parts, results) →
figures. The distinct programs (one per dimension, solver and chunk width) are compiled
up front, concurrently in threads (XLA releases the GIL while compiling), and every chunk
then reuses them: step counts are traced, so nothing recompiles between chunks.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from .. import _distributed
from .._classify import STATUS_NAMES, classify, reduce_monitors
from .._monitor import integrate_monitored, integrate_monitored_sharded
from .._solver import FIXED_SOLVERS
from .._theory import amplification
from . import _store
from ._cases import batch_field, chunk_inputs
from ._plan import AXES, Chunk, grid, iter_chunks, plan, side_by_side
from ._result import MEASURED, SweepResult, summarize
from ._spec import SweepSpec, read_spec_text

DEFAULT_CHUNK = 1024


def integrate(place, field, solver, X0, h, steps, thr2, **kw):
    """The engine call of a sweep: `integrate_monitored` on JAX's default device when
    `place` is None, else under `shard_map` over `place`'s mesh (each device runs its own
    chunk in its own loop). `kw`: `check_every`, `samples`, `use_invariant`."""
    if place is None:
        return integrate_monitored(field, solver, X0, h, steps, thr2, **kw)
    return integrate_monitored_sharded(field, solver, X0, h, steps, thr2, mesh=place.mesh,
                                       axis=_distributed.BATCH_AXIS, **kw)


def _call(spec: SweepSpec, chunk: Chunk, ins: list, place):
    """One engine call over chunk inputs laid side by side on the batch axis; returns the
    engine's output and, per member, whether growth is measured on the invariant."""
    shared = ins[0][1].ndim == 2
    A = ins[0][1] if shared else np.concatenate([x[1] for x in ins], axis=2)
    X0, h, steps, thr2 = (np.concatenate([x[i] for x in ins], axis=-1) for i in range(2, 6))
    put = (lambda x, ax: jnp.asarray(x)) if place is None else place
    # batch axis sharded over the devices; a shared A replicated
    field = batch_field(spec, chunk, put(A, None if shared else 2))
    use_inv = field.uses_invariant(X0.shape[1])
    out = integrate(place, field, FIXED_SOLVERS[chunk.solver], put(X0, 1), put(h, 0),
                    put(steps, 0), put(thr2, 0), check_every=spec.check_every,
                    samples=spec.samples, use_invariant=put(use_inv, 0))
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
    c0 = chunks[0]
    if any(c.program != c0.program for c in chunks):
        raise ValueError("run_chunks needs chunks of one program (`Chunk.program`).")
    ins = [chunk_inputs(spec, c, rows) for c in chunks]
    sel0, A, X0, h, steps, thr2 = ins[0]
    filler = (None, A, X0, h, np.zeros_like(steps), thr2)
    ins += [filler] * (max(slots, len(chunks)) - len(chunks))
    out, use_inv = _call(spec, c0, ins, place)
    out = jax.device_get(out)
    frames = []
    for i, (chunk, x) in enumerate(zip(chunks, ins)):
        real = np.flatnonzero(chunk.traj_ids >= 0) + i * c0.width
        part = jax.tree.map(lambda v: np.asarray(v)[..., real], out)
        frames.append(chunk_rows(spec, chunk, x[0], part, use_inv[real]).sort_values(
            "traj_id", kind="stable").reset_index(drop=True))
    return frames


def run_chunk(spec: SweepSpec, chunk: Chunk, rows: pd.DataFrame, place=None) -> pd.DataFrame:
    """Integrate one chunk (padded to its width) and return its measured rows."""
    return run_chunks(spec, [chunk], rows, place, getattr(place, "device_count", 1))[0]


def chunk_rows(spec: SweepSpec, chunk: Chunk, sel: pd.DataFrame, out,
               use_inv) -> pd.DataFrame:
    """The result rows of a chunk: axes, measured columns, theory, status."""
    meas = reduce_monitors(out, sel["dt"].to_numpy(), sel["steps"].to_numpy(), use_inv)
    status = classify(meas, spec.thresholds)
    df = sel.reset_index(drop=True).copy()
    for k, v in meas.items():
        df[k] = v
    amp_theory = amplification(chunk.solver, df["dt"].to_numpy(), spec.spectral_radius)
    df["theory_amplification"] = amp_theory
    # growth rate of log E with E ~ |x|^2 (the linear system's invariant): 2 log|R| / h
    df["theory_rate"] = 2.0 * np.log(amp_theory) / df["dt"].to_numpy()
    df["status"] = np.asarray(STATUS_NAMES, object)[status.astype(np.int64)]
    return df[["traj_id", *AXES, *MEASURED, "status"]]


def compile_ahead(spec: SweepSpec, batches: list[list[Chunk]], rows, place, slots: int):
    """Compile every distinct program of `batches` concurrently, one thread per core (a
    0-step call of each, with its first chunk's inputs, compiles it into JAX's cache;
    XLA releases the GIL while compiling). Returns a future per program key."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1))

    def warm(c0: Chunk):
        sel, A, X0, h, steps, thr2 = chunk_inputs(spec, c0, rows)
        ins = [(sel, A, X0, h, np.zeros_like(steps), thr2)] * max(slots, 1)
        return jax.block_until_ready(_call(spec, c0, ins, place)[0])

    futures = {}
    for batch in batches:
        if batch[0].program not in futures:
            futures[batch[0].program] = pool.submit(warm, batch[0])
    pool.shutdown(wait=False)
    return futures


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
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"`chunk_size` must be an integer >= 1; got {chunk_size!r}.")
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
    """Run this process's missing chunks; parts go to the run directory (or are kept)."""
    spec = r.spec
    rows = grid(spec).set_index("traj_id", drop=False)
    chunks = plan(spec, r.chunk_size)
    slots = getattr(place, "device_count", 1) if place is not None else 1
    mine = [c for c in chunks if c.index % r.process_count == r.process_index]
    r.chunks = chunks
    done = (_store.check_parts(r.run_dir, chunks, {c.index for c in mine}, clean_tmp=r.locked)
            if r.run_dir is not None else set())
    todo = list(iter_chunks(chunks, done, r.process_index, r.process_count))
    batches = list(side_by_side(todo, slots))
    ready = compile_ahead(spec, batches, rows, place, slots)
    n_mine = sum(c.n_members for c in mine)
    n_done = n_mine - sum(c.n_members for c in todo)
    frames: list[pd.DataFrame] = []
    prog, task = _progress(progress, n_mine, n_done)
    t0, start_done = time.perf_counter(), n_done
    with prog:
        for batch in batches:  # one chunk per local device
            ready[batch[0].program].result()
            for c, df in zip(batch, run_chunks(spec, batch, rows, place, slots)):
                if r.run_dir is not None:
                    _store.write_part(r.run_dir, c.index, df)
                else:
                    frames.append(df)
                n_done += c.n_members
            el = time.perf_counter() - t0
            prog.update(task, completed=n_done,
                        rate=f"{(n_done - start_done) / max(el, 1e-9):,.0f} traj/s")
    r.n_chunks = len(chunks)
    return frames


def _finish(r: _Run, frames, figures: bool, t_start: float, compute_wall: float):
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
        table = _store.read_parts(run, r.chunks)  # every trajectory exactly once
    else:
        table = pd.concat(frames, ignore_index=True).sort_values("traj_id").reset_index(drop=True)
    wall = time.perf_counter() - t_start
    summary = summarize(spec, table, wall, compute_wall)
    if run is not None and r.process_index == 0:
        _store.write_results(run, table)
        if figures:
            from ._examples import run_figures

            summary["figures"] = [str(p.relative_to(run)) for p in
                                  run_figures(table, spec, run / _store.FIGURES_DIR)]
        _store.write_summary(run, summary)
    if run is not None:
        _store.release_lock(run)
    return SweepResult(spec, table, run, wall, summary)


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
    try:
        if place is None:
            place = _distributed.default_place()
        elif place is False:
            place = None
        t_compute = time.perf_counter()
        frames = _execute(r, place, progress)
        return _finish(r, frames, figures, t_start, time.perf_counter() - t_compute)
    finally:  # an error or Ctrl-C: the parts written so far stay, for --resume
        if r.run_dir is not None:
            _store.release_lock(r.run_dir)
