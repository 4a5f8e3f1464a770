"""`oscillax fit`: fit a skew network to a recorded signal and forecast it."""

from __future__ import annotations

from typing import Annotated

import typer

from ._errors import fail
from ._options import example

EPILOG = example("oscillax fit signal.csv --time-col t --value-cols a,b --out fit")


def fit(
    data: Annotated[str, typer.Argument(
        show_default=False, help="CSV with a header row: a time column and values.")],
    time_col: Annotated[str | None, typer.Option(
        "--time-col", show_default=False,
        help="Name of the time column: numbers, or dates (read as decimal years). Default: "
        "the first named t, time, date, datetime, timestamp or year (any case).")] = None,
    value_cols: Annotated[str | None, typer.Option(
        "--value-cols", show_default=False,
        help="Comma-separated value columns (default: all others).")] = None,
    hidden: Annotated[int | None, typer.Option(
        "--hidden", show_default=False,
        help="State size n (default: two units per spectral peak).")] = None,
    out: Annotated[str | None, typer.Option(
        "--out", show_default=False,
        help="Output directory (default: DATA-STEM-fit next to DATA).")] = None,
    iterations: Annotated[int, typer.Option("--iterations", help="Optimiser steps.")] = 300,
    restarts: Annotated[int, typer.Option(
        "--restarts", help="Restarts trained together.")] = 4,
    val_fraction: Annotated[float, typer.Option(
        "--val-fraction", help="Fraction of the time span held out for the forecast.")] = 0.2,
    select_fraction: Annotated[float, typer.Option(
        "--select-fraction",
        help="End of the training part that chooses the forecast (network or a baseline) "
        "and when training stops; 0: the network, trained on all of it.")] = 0.2,
    form: Annotated[str, typer.Option(
        "--form", help="post (A tanh(x)) or pre (tanh(A x)).")] = "post",
    activation: Annotated[str, typer.Option("--activation", help="Activation name.")] = "tanh",
    solver: Annotated[str, typer.Option("--solver", help="ODE solver.")] = "rk4",
    seed: Annotated[int, typer.Option(
        "--seed", help="Seed of the restarts' perturbations.")] = 0,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace an existing --out.")] = False,
) -> None:
    """Fit a skew-symmetric network that generates the signal in DATA, and forecast it."""
    import math

    from rich.console import Console
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from .._fit import fit_csv
    from .._fit._dates import DAYS_PER_YEAR

    console = Console()
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
            val_fraction=val_fraction, select_fraction=select_fraction, form=form,
            activation=activation, solver=solver, seed=seed,
        )
    except (ValueError, OSError) as e:
        progress.stop()
        fail(str(e))
    progress.stop()
    m = rep["metrics"]
    unit = "time" if result.time_calendar is None else "year"

    def period(w):
        if not w:
            return "inf"
        p = 2 * math.pi / abs(w)
        if unit == "time":
            return f"{p:.5g}"
        days = p * DAYS_PER_YEAR  # a period under a year reads better in days too
        return f"{p:.5g} years" + (f" ({days:.4g} days)" if p < 1 else "")

    def fmt(omegas):
        freqs = ", ".join(f"{w:.5g}" for w in omegas)
        return f"{freqs}  (periods 2π/ω: {', '.join(period(w) for w in omegas)})"

    if result.time_calendar is not None:
        console.print(f"times: the dates in column {rep['data']['time_col']!r}, in "
                      f"{rep['data']['time_unit']}", highlight=False)
    console.print(f"frequencies (rad/{unit}) from A: {fmt(result.frequencies)}", highlight=False)
    console.print(f"measured in the generated signal: {fmt(m['measured_frequencies'])}",
                  highlight=False)
    from .._fit._baselines import label as name  # as the report names them

    def scores(net, base):
        row = {"network": net, **{k: v["rmse"] for k, v in base.items()}}
        return ", ".join(f"{name(k, base)} {v:.4g}" for k, v in row.items() if v is not None)

    def combined(rmse, base):
        return "" if rmse is None else f", {name('combined', base)} {rmse:.4g}"

    sel = m.get("selection")
    if sel is not None:
        console.print(f"selection ({sel['samples']} samples at the end of the training part, "
                      f"not fitted) RMSE: {scores(sel['network_rmse'], sel['baselines'])}"
                      f"{combined(sel['combined_rmse'], sel['baselines'])}", highlight=False)
    if "val_rmse" in m:
        comb = (m.get("combined") or {}).get("rmse")
        console.print(
            f"held out ({m['val_samples']} samples) RMSE: {scores(m['val_rmse'], m['baselines'])}"
            f"{combined(comb, m['baselines'])}; the network's is "
            f"{100 * m['val_rel_amp']:.2f} % of the amplitude, training RMSE "
            f"{m['train_rmse']:.4g}", highlight=False)
    line = f"forecast: {name(m['forecaster'], m['baselines'])}"
    if m.get("forecast_rmse") is not None:
        line += f", held-out RMSE {m['forecast_rmse']:.4g}"
    console.print(line, highlight=False)
    console.print(m["verdict"], highlight=False)
    console.print(f"wrote {escape(str(out_dir))}/ ({escape(', '.join(rep['files']))}) in "
                  f"{rep['wall_time_s']:.1f} s", highlight=False)
