"""The `oscillax` command line: atlas, simulate, fit, bench, devices."""

from __future__ import annotations

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Simulate, sweep and fit skew-symmetric continuous-time RNNs (JAX).",
)


# --- atlas command (owner: sweep) ---
# --- end atlas command ---


# --- fit command (owner: fitting) ---
# --- end fit command ---


# --- bench command (owner: benchmarks) ---
@app.command()
def bench(
    quick: bool = typer.Option(False, "--quick", help="Small sizes: under a minute."),
    workloads: str = typer.Option(
        None, "--workloads", help="Comma-separated subset of W2,W512,atlas,grad,longrun."
    ),
    repeats: int = typer.Option(None, "--repeats", help="Timed calls after the first one."),
    out: str = typer.Option(
        None, "--out", help="JSON path (default bench_results/bench-<timestamp>.json)."
    ),
) -> None:
    """Benchmark oscillax against diffrax, numpy, torchdiffeq and scipy (same as
    `python -m benchmarks`; needs a source checkout, where `benchmarks/` lives)."""
    try:
        from benchmarks import run as run_benchmarks
    except ImportError:
        typer.echo(
            "`oscillax bench` needs the `benchmarks` package of a source checkout: run it "
            "from the repository root (or `python -m benchmarks` there).",
            err=True,
        )
        raise typer.Exit(2) from None
    try:
        run_benchmarks(quick=quick, workloads=workloads, repeats=repeats, out=out)
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None


# --- end bench command ---


# --- devices command (owner: scale-out) ---
# --- end devices command ---


def main() -> None:  # entry point of the `oscillax` script
    app()


if __name__ == "__main__":
    main()
