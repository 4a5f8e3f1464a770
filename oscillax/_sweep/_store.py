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
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd

RUN_FILE = "run.json"
SPEC_FILE = "spec.toml"
PARTS_DIR = "parts"
RESULTS_FILE = "results.parquet"
SUMMARY_FILE = "summary.json"
FIGURES_DIR = "figures"
# Version 2: one program per (dim, solver); chunks mix forms and activations, so a run's
# chunks differ from version 1's.
FORMAT_VERSION = 2


class RunDirError(ValueError):
    """A run directory that cannot be used as asked (exists, mismatched, missing)."""


def part_path(run: Path, chunk: int) -> Path:
    return run / PARTS_DIR / f"part-{chunk:05d}.parquet"


def atomic_write(path: Path, write) -> None:
    """`write(tmp_path)`, fsync, then rename onto `path`: the file is complete or absent."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    write(tmp)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda p: Path(p).write_bytes(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_table(path: Path, df: pd.DataFrame) -> None:
    atomic_write(path, lambda p: df.to_parquet(p, index=False))


def write_part(run: Path, chunk: int, df: pd.DataFrame) -> None:
    write_table(part_path(run, chunk), df)


def write_results(run: Path, df: pd.DataFrame) -> None:
    write_table(run / RESULTS_FILE, df)


def write_summary(run: Path, summary: dict) -> None:
    atomic_write_text(run / SUMMARY_FILE, json.dumps(summary, indent=2))


def done_chunks(run: Path) -> set[int]:
    parts = run / PARTS_DIR
    if not parts.is_dir():
        return set()
    return {int(p.stem.split("-")[1]) for p in parts.glob("part-*.parquet")}


def read_parts(run: Path) -> pd.DataFrame:
    files = sorted((run / PARTS_DIR).glob("part-*.parquet"))
    if not files:
        raise RunDirError(f"run directory {str(run)!r} has no finished chunks.")
    df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    return df.sort_values("traj_id", kind="stable").reset_index(drop=True)


def prepare_new(run: Path, *, force: bool) -> None:
    """Create an empty run directory; refuse to touch an existing one without `force`."""
    if run.exists() and any(run.iterdir()):
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
    if not f.is_file():
        raise RunDirError(
            f"{str(run)!r} is not a resumable run directory (no {RUN_FILE}); start a new run "
            "with --out instead."
        )
    return json.loads(f.read_text())


def create(run: Path, spec, chunk_size: int, spec_text: str, *, force: bool) -> None:
    """A new run directory for `spec` (process 0 only; the others wait for it)."""
    prepare_new(run, force=force)
    write_run_info(run, {
        "spec_fingerprint": spec.fingerprint(),
        "chunk_size": int(chunk_size),
        "n_trajectories": spec.n_trajectories,
        "format": FORMAT_VERSION,
    }, spec_text)


def reopen(run: Path):
    """The spec and chunk size of an unfinished run, checked against what wrote it."""
    from ._spec import SweepSpec

    info = read_run_info(run)
    if int(info.get("format", 1)) != FORMAT_VERSION:
        raise RunDirError(
            f"{str(run)!r} was written by run format {info.get('format', 1)}, this version "
            f"writes format {FORMAT_VERSION}; start a new run instead of resuming."
        )
    spec = SweepSpec.from_toml(run / SPEC_FILE)
    if spec.fingerprint() != info["spec_fingerprint"]:
        raise RunDirError(
            f"the spec in {str(run)!r} no longer matches the run that wrote it "
            "(fingerprint changed); start a new run instead of resuming."
        )
    return spec, int(info["chunk_size"])
