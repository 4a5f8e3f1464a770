"""`python -m benchmarks` / `oscillax bench`: argument parsing and the suite's main loop."""

from __future__ import annotations

import argparse
import time

DEFAULT_REPEATS = 5
QUICK_REPEATS = 3


_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def set_peer_threads_env(n: int | None) -> None:
    """Limit the BLAS / OpenMP threads of the numpy and torch peers; effective for numpy only
    when set before numpy is imported (as `python -m benchmarks --peer-threads N` does)."""
    import os

    if n is not None:
        for var in _THREAD_VARS:
            os.environ[var] = str(n)


def run(*, quick: bool = False, workloads: str | list[str] | None = None,
        repeats: int | None = None, out: str | None = None, table: bool = True,
        peer_threads: int | None = None, log=None) -> dict:
    """Run the suite in this process; print the table, write the JSON, return the report.

    **Arguments:**
    - `quick`: small sizes (the whole suite in well under a minute).
    - `workloads`: names (`"W2,W512"` or a list); default all, in the order of `WORKLOADS`.
    - `repeats`: steady-state calls timed after the first one (best is reported).
    - `out`: JSON path; default `bench_results/bench-<timestamp>.json`.
    - `peer_threads`: threads for the numpy (BLAS) and torch peers; default: their own
      defaults. On an oversubscribed machine multi-threaded BLAS on small matrices can
      collapse (seconds per step); 1 avoids that. JAX's threads are not changed.
    """
    import os
    import sys

    numpy_was_loaded = "numpy" in sys.modules
    preset = peer_threads is not None and os.environ.get("OPENBLAS_NUM_THREADS") == str(
        peer_threads
    )
    set_peer_threads_env(peer_threads)

    from rich.console import Console

    from ._report import metadata_block, render, write_json
    from ._workloads import WORKLOADS

    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 150))
    if log is None:
        log = lambda msg: console.print(msg, style="dim", highlight=False)
    if workloads is None:
        names = list(WORKLOADS)
    else:
        names = [w.strip() for w in (workloads.split(",") if isinstance(workloads, str)
                                     else workloads) if w.strip()]
    lookup = {k.lower(): k for k in WORKLOADS}
    unknown = [w for w in names if w.lower() not in lookup]
    if unknown:
        raise ValueError(
            f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}."
        )
    names = [lookup[w.lower()] for w in names]
    if repeats is None:
        repeats = QUICK_REPEATS if quick else DEFAULT_REPEATS
    if repeats < 1:
        raise ValueError(f"`repeats` must be >= 1; got {repeats}.")

    stamp = time.strftime("%Y%m%d-%H%M%S")
    report = {"meta": metadata_block(quick=quick, repeats=repeats, workloads=names),
              "workloads": []}
    report["meta"]["started"] = stamp
    report["meta"]["peer_threads"] = {
        "requested": peer_threads,
        "env": {v: os.environ.get(v) for v in _THREAD_VARS},
        # OpenBLAS reads its thread count when numpy is first imported.
        "numpy_applied": peer_threads is None or not numpy_was_loaded or preset,
    }
    if peer_threads is not None:
        from . import _impls

        _impls.PEER_THREADS = peer_threads
    report["meta"]["loadavg_start"] = _loadavg()
    t0 = time.perf_counter()
    for name in names:
        log(f"[{name}] {WORKLOADS[name].title}")
        tw = time.perf_counter()
        report["workloads"].append(WORKLOADS[name](quick, repeats).run(log))
        report["workloads"][-1]["elapsed_s"] = time.perf_counter() - tw
    report["meta"]["elapsed_s"] = time.perf_counter() - t0
    report["meta"]["loadavg_end"] = _loadavg()
    if table:
        render(report, console)
    path = out or f"bench_results/bench-{stamp}.json"
    write_json(report, path)
    console.print(f"wrote {path}")
    report["meta"]["out"] = path
    return report


def _loadavg():
    """1-, 5- and 15-minute load averages: above the core count, timings are contended."""
    import os

    try:
        return list(os.getloadavg())
    except OSError:
        return None


def main(argv=None) -> int:
    # listed here: importing _workloads loads numpy
    names = "e2e-atlas,e2e-sweep,W2,W512,atlas,grad,longrun,orbits,forecast"
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="oscillax and its peers (diffrax, numpy, torchdiffeq, scipy) on the same "
        "workloads in one process; a rich table and a JSON file.",
    )
    ap.add_argument("--quick", action="store_true", help="small sizes, < 1 minute")
    ap.add_argument("--workloads", default=None,
                    help=f"comma-separated subset of {names} (default: all)")
    ap.add_argument("--repeats", type=int, default=None,
                    help=f"timed calls after the first (default {DEFAULT_REPEATS}, "
                    f"quick {QUICK_REPEATS})")
    ap.add_argument("--out", default=None,
                    help="JSON path (default bench_results/bench-<timestamp>.json)")
    ap.add_argument("--peer-threads", type=int, default=None,
                    help="BLAS/OpenMP threads of the numpy and torch peers (default: theirs)")
    a = ap.parse_args(argv)
    set_peer_threads_env(a.peer_threads)  # before numpy is imported
    from oscillax._distributed import use_cpu_cores

    use_cpu_cores()  # as the `oscillax` command does: one CPU device per core
    try:
        run(quick=a.quick, workloads=a.workloads, repeats=a.repeats, out=a.out,
            peer_threads=a.peer_threads)
    except ValueError as e:
        ap.error(str(e))
    return 0
