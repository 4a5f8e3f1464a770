"""`oscillax show`: the summary table and figures of a run, redrawn from its files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._errors import fail
from ._options import example

EPILOG = example("oscillax show runs/quick", "oscillax show runs/quick --no-figures")


def show(
    run_dir: Annotated[Path, typer.Argument(
        show_default=False, metavar="RUN_DIR",
        help="A run directory written by `oscillax atlas` (finished, or partial: parts "
        "only).")],
    figures_dir: Annotated[Path | None, typer.Option(
        "--figures", show_default=False,
        help="Where to draw the figures (default: RUN_DIR/figures).")] = None,
    no_figures: Annotated[bool, typer.Option(
        "--no-figures", help="Print the table only.")] = False,
) -> None:
    """Summary table and figures of a sweep's run directory, redrawn without recomputing.

    The rows come from results.parquet, or from the finished parts of a partial run."""
    from rich.console import Console
    from rich.markup import escape

    from ._summary import print_rates, print_status_table, status_counts

    if not run_dir.is_dir():
        fail(f"RUN_DIR {str(run_dir)!r} is not a directory.")
    if not (run_dir / "spec.toml").is_file():
        fail(f"RUN_DIR {str(run_dir)!r} is not an oscillax run directory (no spec.toml); "
             "pass a directory written by `oscillax atlas --out`.")
    spec, table, summary, parts = _load(run_dir)
    console = Console()
    d = escape(str(run_dir))
    if parts is None:
        console.print(f"[bold]run {d}[/bold]: finished, {len(table):,} trajectories",
                      highlight=False)
    else:
        console.print(
            f"[bold]run {d}[/bold]: [bold yellow]partial[/bold yellow] — {parts} finished "
            f"part(s), {len(table):,} of {spec.n_trajectories:,} trajectories; finish it with "
            f"`oscillax atlas --resume {d}`", highlight=False)
    print_status_table(console, status_counts(table))
    if summary and {"trajectories", "wall_time_s", "device"} <= set(summary):
        print_rates(console, summary)
    if no_figures:
        return
    from .._sweep._examples import run_figures

    out = figures_dir if figures_dir is not None else run_dir / "figures"
    try:
        paths = run_figures(table, spec, out)
    except OSError as e:
        fail(f"cannot draw the figures into {str(out)!r}: {e.strerror or e}.")
    names = ", ".join(escape(Path(p).name) for p in paths)
    console.print(f"figures: {escape(str(out))}/ ({names})", highlight=False)


def _load(run_dir: Path):
    """(spec, table, summary, parts): parts is None for a finished run, else the number of
    finished parts read."""
    import pandas as pd

    import oscillax as ox

    try:
        if (run_dir / "results.parquet").is_file():
            res = ox.load_sweep(run_dir)
            return res.spec, res.table, res.summary, None
        spec = ox.SweepSpec.from_toml(run_dir / "spec.toml")
        files = sorted((run_dir / "parts").glob("*.parquet"))
        if not files:
            fail(f"RUN_DIR {str(run_dir)!r} has no results.parquet and no finished parts yet; "
                 f"nothing to show (finish it with `oscillax atlas --resume {run_dir}`).")
        table = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    except (ValueError, OSError) as e:
        fail(str(e))
    if "traj_id" in table.columns:
        table = table.sort_values("traj_id", kind="stable").reset_index(drop=True)
    return spec, table, {}, len(files)
