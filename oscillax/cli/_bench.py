"""`oscillax bench`: oscillax beside its peers on the same workloads."""

from __future__ import annotations

from typing import Annotated

import typer

from ._errors import fail
from ._options import example

EPILOG = example("oscillax bench --quick --workloads W2,atlas")


def bench(
    quick: Annotated[bool, typer.Option("--quick", help="Small sizes: under a minute.")] = False,
    workloads: Annotated[str | None, typer.Option(
        "--workloads", show_default=False,
        help="Comma-separated subset of e2e-atlas,e2e-sweep,W2,W512,atlas,grad,longrun,"
        "orbits (default: all).")] = None,
    repeats: Annotated[int | None, typer.Option(
        "--repeats", show_default=False,
        help="Timed calls after the first one (default: per workload).")] = None,
    out: Annotated[str | None, typer.Option(
        "--out", show_default=False,
        help="JSON path (default: bench_results/bench-DATE-TIME.json).")] = None,
    peer_threads: Annotated[int | None, typer.Option(
        "--peer-threads", show_default=False,
        help="Threads of the numpy/torch peers (numpy only via OPENBLAS_NUM_THREADS set "
        "before the command).")] = None,
) -> None:
    """Benchmark oscillax against diffrax, numpy, torchdiffeq and scipy: the end-to-end
    rows first (the atlas command, `ox.sweep` from a script), then the engine's.

    Optional peers (`pip install oscillax[peers]`) are skipped when absent."""
    from ..bench import run as run_benchmarks

    try:
        run_benchmarks(quick=quick, workloads=workloads, repeats=repeats, out=out,
                       peer_threads=peer_threads)
    except ValueError as e:
        fail(str(e))
