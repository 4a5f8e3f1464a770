"""The run directory of a sweep: spec, per-chunk parquet parts, merged results, summary.

Layout::

    RUN/
      spec.toml          the spec as given
      run.json           chunk size, spec fingerprint, chunk count (written first)
      parts/part-00012.parquet   one file per finished chunk (atomic rename)
      results.parquet    all rows, sorted by traj_id (written at the end)
      summary.json       counts per status, wall time, rate, devices, versions
      figures/*.png

Parts are written to a temporary name and renamed, so a part file is either complete or
absent: after Ctrl-C, `kill -9` or a crash, `--resume` recomputes only missing chunks.
(Parts skip the fsync: after a power loss a resume reads every part and recomputes one it
cannot read; results.parquet and the metadata files are fsynced.)

results.parquet is merged from the parts (`merge_parts`: in memory up to `MERGE_ROWS`
rows, else streamed by a `pyarrow` ParquetWriter, bucketed by traj_id where the chunks are
not in traj_id order), or, for a large fresh run whose chunks are in traj_id order, written
beside the parts as they are written (`ResultsAppender`). Strings (axis names, statuses)
are dictionary-encoded, floats not (a dictionary tried on every float column made the
writes ~4x slower).

The directory is a small transactional store:
- `writer.lock` (pid, host, start time) is held while a single-process sweep writes; a
  second writer, or `--force`, is refused while the holder lives; a lock whose holder is
  dead (its pid gone on this host) is taken over with a warning.
- only files named exactly `part-NNNNN.parquet` count; on resume each part is checked
  (readable, and its traj_ids exactly the chunk's members) and a bad one is recomputed
  with a warning; stale temporary files of a killed writer are removed.
- the merge checks that every trajectory of the plan appears exactly once.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

RUN_FILE = "run.json"
SPEC_FILE = "spec.toml"
PARTS_DIR = "parts"
RESULTS_FILE = "results.parquet"
SUMMARY_FILE = "summary.json"
FIGURES_DIR = "figures"
LOCK_FILE = "writer.lock"
_PART_RE = re.compile(r"part-(\d{5,})\.parquet")
_TMP_RE = re.compile(r"\..+\.tmp-\d+")
# Version 2: one program per (dim, solver); chunks mix forms and activations, so a run's
# chunks differ from version 1's.
# Version 3: the axis columns gamma and bias, the theory column theory_gamma_star.
# Version 4: implicit midpoint stops Newton once converged (results differ in the last
# bits from version 3's five iterations); a resolved growth of a bounded sigma with
# 0.1 <= p <= p_max is a power law whatever log E does (it was `undetermined`); a member
# frozen at the threshold is judged on log E at its power-of-two steps.
FORMAT_VERSION = 4


class RunDirError(ValueError):
    """A run directory that cannot be used as asked (exists, mismatched, missing)."""


def part_path(run: Path, chunk: int) -> Path:
    return run / PARTS_DIR / f"part-{chunk:05d}.parquet"


def atomic_write(path: Path, write, durable: bool = True) -> None:
    """`write(tmp_path)`, fsync (`durable`), then rename onto `path`: the file is complete
    or absent, whatever happens to the process. Without the fsync a power loss (not a
    kill) can leave an empty or truncated file under the final name: parts skip it, as
    resuming reads every part and recomputes one it cannot read (~10 ms a part here)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        if durable:
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # an error (not a kill): no temporary file left behind
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda p: Path(p).write_bytes(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def _arrow(df: pd.DataFrame):
    """`df` as an arrow table, without its index. NumPy columns go over as arrays, not
    through `pyarrow.Table.from_pandas`, which converts each column on its own: 18 ms
    against 1.3 ms for an 8192-row chunk's 35 columns (a large part of a streamed sweep's
    host time per chunk); the column types are the same, and pandas reads it back the
    same (no pandas metadata is needed for a RangeIndex and these dtypes)."""
    import pyarrow as pa

    cols = {}
    for name, col in df.items():
        fast = isinstance(col.dtype, np.dtype) and col.dtype.kind in "fiub"
        cols[str(name)] = col.to_numpy() if fast else pa.array(col)
    return pa.table(cols)


def _dictionary_columns(schema) -> list[str]:
    """The columns worth dictionary-encoding: the strings (axis names, status). Measured:
    trying a dictionary on every float column made parquet writes ~4x slower."""
    import pyarrow as pa

    return [f.name for f in schema
            if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
            or pa.types.is_dictionary(f.type)]


def _write_arrow(path, table, statistics: bool = True) -> None:
    """`statistics`: column min/max per row group (for readers' filters; a part, read only
    whole, skips them: 16 % of its write)."""
    import pyarrow.parquet as pq

    pq.write_table(table, path, use_dictionary=_dictionary_columns(table.schema),
                   write_statistics=statistics)


def write_table(path: Path, df: pd.DataFrame) -> None:
    table = _arrow(df)
    atomic_write(path, lambda p: _write_arrow(p, table))


def write_part(run: Path, chunk: int, df: pd.DataFrame) -> None:
    write_part_appending(run, chunk, df, None)


class ResultsAppender:
    """`results.parquet` written while the parts are, for a fresh run whose chunks follow
    each other in traj_id order: each part's rows are appended (one parquet writer, a
    temporary name) as its part is written, and `close()` renames the file into place once
    all `n_rows` are in. Killed before that, only a temporary file is left (removed on
    resume, which merges the parts)."""

    def __init__(self, run: Path, n_rows: int):
        self.path = run / RESULTS_FILE
        self.tmp = run / f".{RESULTS_FILE}.tmp-{os.getpid()}"
        self.n_rows, self.rows = int(n_rows), 0
        self.writer = None

    def append(self, table) -> None:
        import pyarrow.parquet as pq

        if self.writer is None:
            # no column statistics: 20 % of each append (a reader's filters still work,
            # without skipping row groups)
            self.writer = pq.ParquetWriter(self.tmp, table.schema,
                                           use_dictionary=_dictionary_columns(table.schema),
                                           write_statistics=False)
        self.writer.write_table(_conform(table, self.writer.schema))
        self.rows += table.num_rows

    def close(self) -> bool:
        """Finish the file; True when it holds every row (and is now `results.parquet`)."""
        if self.writer is None:
            return False
        self.writer.close()
        self.writer = None
        if self.rows != self.n_rows:
            self.tmp.unlink(missing_ok=True)
            return False
        with open(self.tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(self.tmp, self.path)
        return True

    def abort(self) -> None:
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.close()
            self.writer = None
        self.tmp.unlink(missing_ok=True)


def write_part_appending(run: Path, chunk: int, df: pd.DataFrame,
                         results: ResultsAppender | None) -> None:
    """`write_part`, then (when given) the same rows appended to the results."""
    table = _arrow(df)
    atomic_write(part_path(run, chunk), lambda p: _write_arrow(p, table, statistics=False),
                 durable=False)
    if results is not None:
        results.append(table)


def write_results(run: Path, df: pd.DataFrame) -> None:
    write_table(run / RESULTS_FILE, df)


def write_summary(run: Path, summary: dict) -> None:
    atomic_write_text(run / SUMMARY_FILE, json.dumps(summary, indent=2))


class RunDirWarning(UserWarning):
    """Something in a run directory was ignored or redone (a stray file, a bad part)."""


def _warn(message: str) -> None:
    warnings.warn(message, RunDirWarning, stacklevel=3)


def _part_files(run: Path, warn: bool = False) -> dict[int, Path]:
    """`{chunk index: path}` of the files named exactly `part-NNNNN.parquet`."""
    parts = run / PARTS_DIR
    if not parts.is_dir():
        return {}
    out = {}
    for p in sorted(parts.iterdir()):
        m = _PART_RE.fullmatch(p.name)
        if m and p.is_file():
            out[int(m.group(1))] = p
        elif warn and not p.name.startswith(".") and p.name.endswith(".parquet"):
            _warn(f"ignoring {str(p)!r} in the run directory: only files named exactly "
                  "part-NNNNN.parquet are chunk parts (a copied or renamed part is not "
                  "merged). Move it out of parts/ to silence this warning.")
    return out


def done_chunks(run: Path, n_chunks: int | None = None) -> set[int]:
    """Indices of the chunks with a part file (by name; `check_parts` reads them)."""
    done = set(_part_files(run))
    return done if n_chunks is None else {i for i in done if 0 <= i < n_chunks}


def _members(chunk) -> np.ndarray:
    ids = np.asarray(chunk.traj_ids)
    return np.sort(ids[ids >= 0])


def _read_ids(path: Path) -> np.ndarray:
    import pyarrow.parquet as pq

    return pq.read_table(path, columns=["traj_id"]).column("traj_id").to_numpy()


def check_parts(run: Path, chunks, mine: set[int] | None = None,
                clean_tmp: bool = True) -> set[int]:
    """The chunks whose part is complete and right, for a resume: a part that cannot be
    read (truncated, not parquet) or whose traj_ids are not exactly its chunk's members is
    removed with a warning and recomputed; stale temporary files of a killed writer are
    removed (`clean_tmp`: only while holding the run's lock). `mine`: the chunks this
    process runs (the others' parts are taken by name)."""
    for d in (run, run / PARTS_DIR) if clean_tmp else ():
        if d.is_dir():
            for p in d.iterdir():
                if _TMP_RE.fullmatch(p.name) and p.is_file():
                    p.unlink(missing_ok=True)
    by_index = {c.index: c for c in chunks}
    good = set()
    for i, p in _part_files(run, warn=True).items():
        c = by_index.get(i)
        if c is None:
            _warn(f"ignoring {str(p)!r}: this run has only {len(chunks)} chunks "
                  f"(part-00000 to part-{len(chunks) - 1:05d}).")
            continue
        if mine is not None and i not in mine:
            good.add(i)
            continue
        try:
            ids = np.sort(_read_ids(p))
            ok = np.array_equal(ids, _members(c))
            why = "holds other trajectories than its chunk's"
        except Exception as e:  # pyarrow raises several error types for damaged files
            ok, why = False, f"cannot be read ({type(e).__name__}: {e})"
        if ok:
            good.add(i)
        else:
            _warn(f"chunk part {str(p)!r} {why}; removing it, the chunk is recomputed.")
            p.unlink(missing_ok=True)
    return good


def read_parts(run: Path, chunks=None) -> pd.DataFrame:
    """All parts, sorted by traj_id. With the plan's `chunks`, check that every
    trajectory appears exactly once (each part holds exactly its chunk's members)."""
    files = _part_files(run, warn=chunks is not None)
    if chunks is not None:
        files = {i: p for i, p in files.items() if 0 <= i < len(chunks)}
    if not files:
        raise RunDirError(f"run directory {str(run)!r} has no finished chunks.")
    frames = []
    for i, f in sorted(files.items()):
        try:
            df = pd.read_parquet(f)
        except Exception as e:  # pyarrow raises several error types for damaged files
            raise RunDirError(
                f"chunk part {str(f)!r} cannot be read ({type(e).__name__}: {e}); resume the "
                "run (--resume DIR) to recompute it.") from None
        if chunks is not None:
            ids = np.sort(df["traj_id"].to_numpy())
            if not np.array_equal(ids, _members(chunks[i])):
                raise RunDirError(
                    f"chunk part {str(f)!r} does not hold exactly its chunk's "
                    f"{chunks[i].n_members} trajectories (it has {len(ids)}, "
                    f"{len(np.unique(ids))} distinct); another writer or a hand edit changed "
                    "it. Delete it and resume the run (--resume DIR) to recompute it.")
        frames.append(df)
    df = pd.concat(frames, ignore_index=True)
    if chunks is not None:
        missing = sorted(set(range(len(chunks))) - set(files))
        if missing:
            some = ", ".join(str(i) for i in missing[:8])
            raise RunDirError(
                f"{len(missing)} chunk part(s) (e.g. {some}) are missing in {str(run)!r}: "
                "finish the run with `oscillax atlas --resume DIR` (ox.sweep(None, out=DIR, "
                "resume=True)).")
        ids = df["traj_id"].to_numpy()
        if len(ids) != len(np.unique(ids)):
            raise RunDirError(f"the parts in {str(run)!r} hold some trajectories twice; "
                              "start a new run with --force.")
    return df.sort_values("traj_id", kind="stable").reset_index(drop=True)


MERGE_ROWS = 1 << 18
"""Runs of up to this many trajectories are merged in memory; larger ones stream, holding
about this many rows at a time (`merge_parts`)."""


def _missing_error(run: Path, missing) -> RunDirError:
    some = ", ".join(str(i) for i in missing[:8])
    return RunDirError(
        f"{len(missing)} chunk part(s) (e.g. {some}) are missing in {str(run)!r}: "
        "finish the run with `oscillax atlas --resume DIR` (ox.sweep(None, out=DIR, "
        "resume=True)).")


def _read_part(path: Path, chunk):
    """A part as an arrow table sorted by traj_id, checked to hold exactly `chunk`'s
    members."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several error types for damaged files
        raise RunDirError(
            f"chunk part {str(path)!r} cannot be read ({type(e).__name__}: {e}); resume the "
            "run (--resume DIR) to recompute it.") from None
    ids = table.column("traj_id").to_numpy() if "traj_id" in table.column_names else None
    if ids is None or not np.array_equal(np.sort(ids), _members(chunk)):
        n = 0 if ids is None else len(ids)
        distinct = 0 if ids is None else len(np.unique(ids))
        raise RunDirError(
            f"chunk part {str(path)!r} does not hold exactly its chunk's "
            f"{chunk.n_members} trajectories (it has {n}, {distinct} distinct); another "
            "writer or a hand edit changed it. Delete it and resume the run (--resume DIR) "
            "to recompute it.")
    if ids.size > 1 and np.any(ids[1:] < ids[:-1]):
        table = table.take(np.argsort(ids, kind="stable"))
    return table


def _conform(table, schema):
    """`table` with exactly `schema` (a part written by another run of the same format may
    differ in pandas metadata or a column's width)."""
    if table.schema.equals(schema, check_metadata=False):
        return table.replace_schema_metadata(schema.metadata)
    return table.select(schema.names).cast(schema)


def merge_parts(run: Path, chunks) -> pd.DataFrame | None:
    """Merge the parts of every chunk of the plan into `results.parquet`, sorted by traj_id,
    checking that each part holds exactly its chunk's members (the chunks partition the
    grid, so every trajectory appears exactly once).

    Up to `MERGE_ROWS` rows: in memory, and the merged table is returned. Larger: streamed
    with a `pyarrow.parquet.ParquetWriter` (None is returned): parts that follow each
    other in traj_id order are copied one at a time; otherwise rows are first bucketed by
    traj_id range into temporary files, then each bucket is sorted and written. Memory
    stays about one part plus one bucket, whatever the number of trajectories."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = {i: p for i, p in _part_files(run, warn=True).items() if 0 <= i < len(chunks)}
    if not files:
        raise RunDirError(f"run directory {str(run)!r} has no finished chunks.")
    missing = sorted(set(range(len(chunks))) - set(files))
    if missing:
        raise _missing_error(run, missing)
    n = sum(c.n_members for c in chunks)
    dest = run / RESULTS_FILE
    if n <= MERGE_ROWS:
        table = pa.concat_tables(
            [_read_part(files[i], chunks[i]) for i in range(len(chunks))],
            promote_options="permissive")
        table = table.take(np.argsort(table.column("traj_id").to_numpy(), kind="stable"))
        atomic_write(dest, lambda p: _write_arrow(p, table))
        return table.to_pandas()
    lo = np.array([_members(c)[0] for c in chunks])
    hi = np.array([_members(c)[-1] for c in chunks])
    in_order = bool(np.all(hi[:-1] < lo[1:]))

    def write(tmp):
        writer = None
        try:
            if in_order:
                for i in range(len(chunks)):
                    t = _read_part(files[i], chunks[i])
                    if writer is None:
                        writer = pq.ParquetWriter(
                            tmp, t.schema, use_dictionary=_dictionary_columns(t.schema))
                    writer.write_table(_conform(t, writer.schema))
            else:
                writer = _bucket_merge(run, chunks, files, tmp, n)
        finally:
            if writer is not None:
                writer.close()

    atomic_write(dest, write)
    return None


def _bucket_merge(run: Path, chunks, files, tmp, n: int):
    """Pass 1: each part's rows go to the bucket of their traj_id range (a temporary
    parquet file per bucket, at most 256 of them); pass 2: each bucket, sorted, is appended
    to the results. Returns the open results writer."""
    import pyarrow.parquet as pq

    rows = max(MERGE_ROWS, -(-n // 256))
    n_buckets = -(-n // rows)
    work = run / f".merge.tmp-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    buckets: dict[int, pq.ParquetWriter] = {}
    schema = None
    try:
        for i in range(len(chunks)):
            t = _read_part(files[i], chunks[i])
            schema = t.schema if schema is None else schema
            t = _conform(t, schema)
            ids = t.column("traj_id").to_numpy()
            edges = np.searchsorted(ids, np.arange(n_buckets + 1) * rows)
            for b in np.flatnonzero(np.diff(edges)):
                if b not in buckets:
                    buckets[b] = pq.ParquetWriter(work / f"b{b:05d}.parquet", schema,
                                                  compression="none")
                buckets[b].write_table(t.slice(edges[b], edges[b + 1] - edges[b]))
        for w in buckets.values():
            w.close()
        out = pq.ParquetWriter(tmp, schema, use_dictionary=_dictionary_columns(schema))
        for b in sorted(buckets):
            t = pq.read_table(work / f"b{b:05d}.parquet")
            out.write_table(_conform(t.take(np.argsort(t.column("traj_id").to_numpy(),
                                                       kind="stable")), schema))
        return out
    finally:
        for w in buckets.values():
            with contextlib.suppress(Exception):
                w.close()
        shutil.rmtree(work, ignore_errors=True)


# -- the writer's lock ---------------------------------------------------------------------
_HELD: dict[str, int] = {}  # lock path -> thread id, locks this process holds
_HELD_GUARD = threading.Lock()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    except (OSError, OverflowError, ValueError):
        return False
    return True


def read_lock(run: Path) -> dict | None:
    """The lock's holder (`pid`, `host`, `started`), {} if unreadable, None if unlocked."""
    f = run / LOCK_FILE
    try:
        info = json.loads(f.read_text())
        return info if isinstance(info, dict) else {}
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


def _holder_alive(run: Path, info: dict) -> bool:
    """Whether the lock's holder may still be writing."""
    host, pid = info.get("host"), info.get("pid")
    if host != socket.gethostname() or not isinstance(pid, int):
        if not info:  # unreadable: a writer between create and write, or damage
            try:
                age = time.time() - (run / LOCK_FILE).stat().st_mtime
            except OSError:
                return False
            return age < 10.0
        return True  # another host: cannot tell, assume it lives
    if pid == os.getpid():
        with _HELD_GUARD:
            return str(run / LOCK_FILE) in _HELD
    return _pid_alive(pid)


def _describe(info: dict) -> str:
    if not info:
        return "an unknown process (the lock file is unreadable)"
    started = info.get("started")
    when = (time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started))
            if isinstance(started, int | float) else "?")
    return f"pid {info.get('pid')} on host {info.get('host')!r}, started {when}"


def check_not_locked(run: Path, what: str) -> None:
    """Refuse while another live process holds the run's lock."""
    info = read_lock(run)
    if info is not None and _holder_alive(run, info):
        raise RunDirError(
            f"{what}: run directory {str(run)!r} is being written by {_describe(info)} "
            f"(lock file {LOCK_FILE}). Wait for that sweep to finish or stop it first; if it "
            f"is not running any more, delete {str(run / LOCK_FILE)!r}.")


def acquire_lock(run: Path, what: str = "cannot write") -> None:
    """Take the run's writer lock, or refuse naming its live holder; a dead holder's
    (stale) lock is taken over with a warning."""
    f = run / LOCK_FILE
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
    tmp = run / f".{LOCK_FILE}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(mine))
    try:
        for _ in range(3):
            try:
                os.link(tmp, f)  # atomic: fails when the lock exists
                break
            except FileExistsError:
                info = read_lock(run)
                if info is None:
                    continue
                check_not_locked(run, what)
                _warn(f"taking over the stale lock of {_describe(info)} in {str(run)!r}: "
                      "that writer is no longer running.")
                f.unlink(missing_ok=True)
            except OSError:  # a filesystem without hard links
                fd = os.open(f, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                with os.fdopen(fd, "w") as fh:
                    fh.write(json.dumps(mine))
                break
        else:
            check_not_locked(run, what)
    finally:
        tmp.unlink(missing_ok=True)
    with _HELD_GUARD:
        _HELD[str(f)] = threading.get_ident()


def release_lock(run: Path) -> None:
    """Drop the lock if this process holds it."""
    f = run / LOCK_FILE
    with _HELD_GUARD:
        held = _HELD.pop(str(f), None)
    if held is None:
        return
    info = read_lock(run)
    if info and info.get("pid") == os.getpid() and info.get("host") == socket.gethostname():
        f.unlink(missing_ok=True)


def prepare_new(run: Path, *, force: bool) -> None:
    """Create an empty run directory; refuse to touch an existing one without `force`."""
    if run.exists() and not run.is_dir():
        raise RunDirError(f"run directory {str(run)!r} is a file; choose another --out.")
    if run.exists() and any(run.iterdir()):
        check_not_locked(run, "refusing to overwrite it" if force else "cannot start a run")
        if not force:
            raise RunDirError(
                f"run directory {str(run)!r} already exists and is not empty; pass --force "
                "(force=True) to overwrite it, or --resume DIR to finish it."
            )
        if not (run / RUN_FILE).exists() and not (run / SPEC_FILE).exists():
            raise RunDirError(
                f"refusing to overwrite {str(run)!r}: it is not an oscillax run directory "
                "(no run.json or spec.toml). Choose another --out."
            )
        shutil.rmtree(run)
    (run / PARTS_DIR).mkdir(parents=True, exist_ok=True)


def write_run_info(run: Path, info: dict, spec_text: str) -> None:
    atomic_write_text(run / SPEC_FILE, spec_text)
    atomic_write_text(run / RUN_FILE, json.dumps(info, indent=2, sort_keys=True))


def read_run_info(run: Path) -> dict:
    f = run / RUN_FILE
    if not run.is_dir():
        raise RunDirError(
            f"run directory {str(run)!r} {'is a file' if run.exists() else 'does not exist'}; "
            "pass the --out directory of an unfinished run to resume.")
    if not f.is_file():
        raise RunDirError(
            f"{str(run)!r} is not a resumable run directory (no {RUN_FILE}); start a new run "
            "with --out instead."
        )
    fix = ("it was damaged or edited by hand; start a new run (--out, or --force to "
           "replace this one)")
    try:
        info = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise RunDirError(f"{str(f)!r} cannot be read as JSON ({e}); {fix}.") from None
    if not isinstance(info, dict):
        raise RunDirError(f"{str(f)!r} must hold a JSON object; got {type(info).__name__}; "
                          f"{fix}.")
    cs, fp = info.get("chunk_size"), info.get("spec_fingerprint")
    if isinstance(cs, bool) or not isinstance(cs, int) or cs < 1 or not isinstance(fp, str):
        raise RunDirError(
            f"{str(f)!r} lacks a valid `chunk_size` (integer >= 1) and `spec_fingerprint` "
            f"(got chunk_size={cs!r}, spec_fingerprint={fp!r}); {fix}.")
    return info


def create(run: Path, spec, chunk_size: int, spec_text: str, *, force: bool,
           lock: bool = True) -> None:
    """A new run directory for `spec` (process 0 only; the others wait for it); `lock`:
    hold the writer lock (single-process runs)."""
    prepare_new(run, force=force)
    if lock:
        acquire_lock(run)
    write_run_info(run, {
        "spec_fingerprint": spec.fingerprint(),
        "chunk_size": int(chunk_size),
        "n_trajectories": spec.n_trajectories,
        "format": FORMAT_VERSION,
    }, spec_text)


def reopen(run: Path):
    """The spec and chunk size of an unfinished run, checked against what wrote it."""
    from ._spec import SpecError, SweepSpec

    info = read_run_info(run)
    if info.get("format", 1) != FORMAT_VERSION:
        raise RunDirError(
            f"{str(run)!r} was written by run format {info.get('format', 1)!r}, this version "
            f"writes format {FORMAT_VERSION}; start a new run instead of resuming."
        )
    try:
        spec = SweepSpec.from_toml(run / SPEC_FILE)
    except SpecError as e:
        raise RunDirError(
            f"cannot resume {str(run)!r}: its {SPEC_FILE} is unusable ({e}); start a new run "
            "instead (--out, or --force to replace this one).") from None
    if spec.fingerprint() != info["spec_fingerprint"]:
        raise RunDirError(
            f"the spec in {str(run)!r} no longer matches the run that wrote it "
            "(fingerprint changed); start a new run instead of resuming."
        )
    return spec, int(info["chunk_size"])
