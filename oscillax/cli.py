"""The `oscillax` command line: atlas, simulate, fit, bench, devices."""

from __future__ import annotations

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Simulate, sweep and fit skew-symmetric continuous-time RNNs (JAX).",
)


# --- atlas command (owner: sweep) ---
DEFAULT_SPEC = "experiments/euler_stability.toml"


def _default_spec_path():
    from pathlib import Path

    # Installed editable or run from a checkout: the shipped default lives in experiments/.
    here = Path(__file__).resolve().parent.parent / DEFAULT_SPEC
    return here if here.is_file() else Path(DEFAULT_SPEC)


def _fail(msg: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"[bold red]error:[/bold red] {msg}", highlight=False)
    raise typer.Exit(2)


@app.command()
def atlas(
    spec: str = typer.Argument(None, help="Sweep spec TOML (default: the shipped "
                               "experiments/euler_stability.toml)."),
    out: str = typer.Option(None, "--out", help="Run directory (default: runs/atlas-<time>)."),
    resume: str = typer.Option(None, "--resume", help="Finish the run in this directory."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing --out directory."),
    chunk_size: int = typer.Option(1024, "--chunk-size", help="Trajectories per compiled call."),
    no_figures: bool = typer.Option(False, "--no-figures", help="Skip drawing the figures."),
    coordinator: str = typer.Option(None, "--coordinator", envvar="OSCILLAX_COORDINATOR",
                                    help="HOST:PORT of process 0 for a multi-host run."),
    num_processes: int = typer.Option(None, "--num-processes", envvar="OSCILLAX_NUM_PROCESSES",
                                      help="Number of processes of a multi-host run."),
    process_id: int = typer.Option(None, "--process-id", envvar="OSCILLAX_PROCESS_ID",
                                   help="This process's index in a multi-host run."),
):
    """Run a stability sweep: where does each solver keep the oscillation? Ends in figures."""
    import time
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    console = Console()
    if resume and (spec or out):
        _fail("--resume DIR finishes an existing run with its own spec; don't pass SPEC or --out.")
    if chunk_size < 1:
        _fail(f"--chunk-size must be >= 1; got {chunk_size}.")
    from . import _distributed

    try:
        ctx = _distributed.setup(coordinator, num_processes, process_id)
    except ValueError as e:
        _fail(str(e))
    import oscillax as ox

    try:
        if resume:
            run_dir = Path(resume)
            result = ox.sweep(None, out=run_dir, resume=True, progress=True,
                              figures=not no_figures, **ctx)
        else:
            spec_path = Path(spec) if spec else _default_spec_path()
            run_dir = Path(out) if out else Path("runs") / time.strftime("atlas-%Y%m%d-%H%M%S")
            spec_obj = ox.SweepSpec.from_toml(spec_path)
            console.print(
                f"[bold]oscillax atlas[/bold]  spec {spec_path}  ->  {run_dir}\n"
                f"{spec_obj.n_trajectories:,} trajectories, {spec_obj.total_steps:.3g} "
                f"trajectory-steps, chunks of {chunk_size}"
            )
            result = ox.sweep(spec_path, out=run_dir, chunk_size=chunk_size, force=force,
                              progress=True, figures=not no_figures, **ctx)
    except (ValueError, OSError) as e:
        _fail(str(e))
    if not result.summary:
        console.print(f"this process finished its share; results in {run_dir}")
        return
    s = result.summary
    table = Table(title="status per activation / solver (trajectories)")
    names = list(ox.STATUS_NAMES)
    table.add_column("activation / solver")
    for n in names:
        table.add_column(n, justify="right")
    for key, counts in s["status_by_activation_solver"].items():
        table.add_row(key, *[str(counts.get(n, 0)) or "" for n in names])
    console.print(table)
    console.print(
        f"{s['trajectories']:,} trajectories, {s['trajectory_steps']:.3g} steps in "
        f"{s['wall_time_s']:.1f} s ({s['trajectory_steps_per_s']:.3g} trajectory-steps/s, "
        f"{s['trajectories_per_s']:.0f} traj/s) on {s['device']['backend']} "
        f"x{s['device']['device_count']}"
    )
    console.print(f"results: {run_dir}/results.parquet   figures: {run_dir}/figures/")
# --- end atlas command ---


# --- fit command (owner: fitting) ---
@app.command("fit")
def fit_command(
    data: str = typer.Argument(..., help="CSV with a header row: a time column and values."),
    time_col: str = typer.Option("t", "--time-col", help="Name of the time column."),
    value_cols: str = typer.Option(
        None, "--value-cols", help="Comma-separated value columns (default: all others)."
    ),
    hidden: int = typer.Option(
        None, "--hidden", help="State size n (default: two units per spectral peak)."
    ),
    out: str = typer.Option(None, "--out", help="Output directory (default: <DATA stem>-fit)."),
    iterations: int = typer.Option(300, "--iterations", help="Optimiser steps."),
    restarts: int = typer.Option(4, "--restarts", help="Restarts trained together."),
    val_fraction: float = typer.Option(
        0.2, "--val-fraction", help="Fraction of the time span held out for the forecast."
    ),
    form: str = typer.Option("post", "--form", help="post (A tanh(x)) or pre (tanh(A x))."),
    activation: str = typer.Option("tanh", "--activation", help="Activation name."),
    solver: str = typer.Option("rk4", "--solver", help="ODE solver."),
    seed: int = typer.Option(0, "--seed", help="Seed of the restarts' perturbations."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out."),
) -> None:
    """Fit a skew-symmetric network that generates the signal in DATA, and forecast it."""
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from ._fit import fit_csv

    console, err = Console(), Console(stderr=True)
    cols = [c.strip() for c in value_cols.split(",") if c.strip()] if value_cols else None
    progress = Progress(
        TextColumn("[bold]fit[/bold]"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(), console=console,
    )
    task = progress.add_task("fit", total=iterations, loss="(compiling)")

    def report(i, total, loss):
        if i == 0:  # inputs checked, initialisation done: show the bar from here on
            progress.start()
        progress.update(task, completed=i, loss="(compiling)" if i == 0 else f"{loss:.3g}")

    try:
        result, out_dir, rep = fit_csv(
            data, out=out, time_col=time_col, value_cols=cols, overwrite=overwrite,
            progress=report, hidden=hidden, iterations=iterations, restarts=restarts,
            val_fraction=val_fraction, form=form, activation=activation, solver=solver,
            seed=seed,
        )
    except (ValueError, OSError) as e:
        progress.stop()
        err.print(f"[bold red]error:[/bold red] {escape(str(e))}", highlight=False,
                  soft_wrap=True)
        raise typer.Exit(2) from None
    progress.stop()
    m = rep["metrics"]
    fmt = lambda xs: ", ".join(f"{x:.5g}" for x in xs)
    console.print(f"frequencies (rad/time) from A: {fmt(result.frequencies)}")
    console.print(f"measured in the generated signal: {fmt(m['measured_frequencies'])}")
    if "val_rmse" in m:
        console.print(
            f"forecast ({m['val_samples']} held-out samples): RMSE {m['val_rmse']:.4g}, "
            f"{100 * m['val_rel_amp']:.2f} % of the amplitude; training RMSE "
            f"{m['train_rmse']:.4g}"
        )
    console.print(f"wrote {escape(str(out_dir))}/ ({', '.join(rep['files'])}) in "
                  f"{rep['wall_time_s']:.1f} s")
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
    peer_threads: int = typer.Option(
        None, "--peer-threads",
        help="Threads of the numpy/torch peers (numpy only via OPENBLAS_NUM_THREADS set "
        "before the command).",
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
        run_benchmarks(quick=quick, workloads=workloads, repeats=repeats, out=out,
                       peer_threads=peer_threads)
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None


# --- end bench command ---


# --- devices command (owner: scale-out) ---
@app.command()
def devices(
    coordinator: str = typer.Option(None, "--coordinator", envvar="OSCILLAX_COORDINATOR",
                                    help="HOST:PORT of process 0 (join a multi-host run)."),
    num_processes: int = typer.Option(None, "--num-processes", envvar="OSCILLAX_NUM_PROCESSES",
                                      help="Number of processes of a multi-host run."),
    process_id: int = typer.Option(None, "--process-id", envvar="OSCILLAX_PROCESS_ID",
                                   help="This process's index in a multi-host run."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Print what JAX sees: backend, devices, process index and count, and how a sweep
    would shard its batch here."""
    import json

    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from . import _distributed

    try:
        _distributed.setup(coordinator, num_processes, process_id)
    except ValueError as e:
        Console(stderr=True).print(f"[bold red]error:[/bold red] {escape(str(e))}",
                                   highlight=False)
        raise typer.Exit(2) from None
    info = _distributed.describe()
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    console = Console()
    n = info["local_device_count"]
    console.print(
        f"backend [bold]{info['backend']}[/bold]   process {info['process_index']} of "
        f"{info['process_count']}   devices: {n} local, {info['device_count']} in all   "
        f"jax {info['jax']}", highlight=False)
    table = Table(title="local devices")
    for col in ("id", "platform", "kind", "device"):
        table.add_column(col)
    for d in info["local_devices"]:
        table.add_row(str(d["id"]), d["platform"], d["kind"], escape(d["repr"]))
    console.print(table)
    if n > 1:
        console.print(f"sweeps run {n} chunks at a time, one per device (jax.shard_map).",
                      highlight=False)
    elif info["backend"] == "cpu":
        console.print("one CPU device: the `oscillax` command gives JAX one CPU device per "
                      "core (OSCILLAX_CPU_DEVICES sets the count); from Python, call "
                      "jax.config.update('jax_num_cpu_devices', <cores>) right after "
                      "`import jax`.", highlight=False)
    if info["xla_flags"]:
        console.print(f"XLA_FLAGS={escape(info['xla_flags'])}", highlight=False)


# --- end devices command ---


def _use_compilation_cache() -> str | None:
    """Keep compiled programs on disk between runs of the command (JAX's persistent
    compilation cache), so that running an atlas over the same grid again skips its
    compilations, which dominate the default one. `OSCILLAX_CACHE_DIR` sets the directory
    (`off` turns it off); the default is `$XDG_CACHE_HOME/oscillax/jax`, else
    `~/.cache/oscillax/jax`. A cache directory given to JAX itself
    (`JAX_COMPILATION_CACHE_DIR`) wins. Returns the directory in use, if any."""
    import os

    import jax

    if jax.config.jax_compilation_cache_dir:
        return jax.config.jax_compilation_cache_dir
    d = os.environ.get("OSCILLAX_CACHE_DIR")
    if d is not None and d.strip().lower() in ("", "off", "0", "false", "none"):
        return None
    if d is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"),
                                                                 ".cache")
        d = os.path.join(base, "oscillax", "jax")
    try:
        os.makedirs(d, exist_ok=True)
    except OSError:  # e.g. a read-only home: run without the cache
        return None
    jax.config.update("jax_compilation_cache_dir", d)
    # the engine's programs compile in about a second on CPU: keep those too
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
    return d


def main() -> None:  # entry point of the `oscillax` script
    from . import _distributed

    try:
        _distributed.use_cpu_cores()  # one CPU device per core: sweeps use every core
    except ValueError as e:  # a bad OSCILLAX_CPU_DEVICES
        typer.echo(f"error: {e}", err=True)
        raise SystemExit(2) from None
    _use_compilation_cache()
    app()


if __name__ == "__main__":
    main()
