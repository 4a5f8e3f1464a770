"""`oscillax atlas`: run a stability sweep from a spec file or a shipped spec."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from . import _specs
from ._errors import fail
from ._options import Coordinator, NumProcesses, ProcessId, example

EPILOG = example("oscillax atlas quick --out runs/quick", "oscillax atlas --list",
                 "oscillax atlas --copy quick my.toml")


def atlas(
    spec: Annotated[str | None, typer.Argument(
        show_default=False, metavar="SPEC",
        help="A spec TOML file, or the name of a shipped spec (see --list); a file that "
        "exists wins over a name. Default: the shipped `euler_stability`. With --copy: "
        "where to write the copy (default ./NAME.toml).")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", show_default=False,
        help="Run directory (default: runs/atlas-DATE-TIME).")] = None,
    resume: Annotated[Path | None, typer.Option(
        "--resume", show_default=False, help="Finish the run in this directory.")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Overwrite an existing --out run directory.")] = False,
    chunk_size: Annotated[int | None, typer.Option(
        "--chunk-size", show_default=False,
        help="Trajectories per chunk (each device's share of a compiled call). Default: "
        "from the spec, 1024 for long runs, wider for short ones.")] = None,
    no_figures: Annotated[bool, typer.Option(
        "--no-figures", help="Skip drawing the figures.")] = False,
    list_specs: Annotated[bool, typer.Option(
        "--list", help="List the shipped specs and their questions, and exit.")] = False,
    copy: Annotated[str | None, typer.Option(
        "--copy", metavar="NAME", show_default=False,
        help="Write the shipped spec NAME to SPEC (default ./NAME.toml) for editing, and "
        "exit; never overwrites a file.")] = None,
    coordinator: Coordinator = None,
    num_processes: NumProcesses = None,
    process_id: ProcessId = None,
) -> None:
    """Run a stability sweep: where does each solver keep the oscillation?

    SPEC is a TOML file or the name of a shipped spec (`oscillax atlas --list`); the run
    ends in a summary table and figures in the run directory."""
    if list_specs:
        return _list()
    if copy is not None:
        if resume is not None or out is not None:
            fail("--copy NAME [DEST] only writes a shipped spec; don't pass --out or --resume "
                 "with it.")
        return _copy(copy, spec)
    if resume is not None and (spec is not None or out is not None):
        fail("--resume DIR finishes an existing run with its own spec; don't pass SPEC or --out.")
    if chunk_size is not None and chunk_size < 1:
        fail(f"--chunk-size must be >= 1; got {chunk_size}.")
    from .. import _distributed

    try:
        ctx = _distributed.setup(coordinator, num_processes, process_id)
    except ValueError as e:
        fail(str(e))
    with _spec_path(spec) as (spec_path, label), _plain_warnings():
        result, run_dir = _run(spec_path, label, out, resume, force, chunk_size, no_figures,
                               ctx)
    _report(result, run_dir)


@contextlib.contextmanager
def _plain_warnings():
    """The run directory's warnings (a stray file ignored, a bad part recomputed, a stale
    lock taken over) as `warning: ...` lines, like the errors."""
    import warnings

    from .._sweep._store import RunDirWarning
    from ._errors import print_warning

    old = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, RunDirWarning):
            print_warning(str(message))
        else:
            old(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = old


def _list() -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="shipped sweep specs (oscillax atlas NAME)")
    table.add_column("name")
    table.add_column("trajectories", justify="right")
    table.add_column("question")
    import oscillax as ox

    for name in _specs.names():
        with _specs.as_path(name) as p:
            n = ox.SweepSpec.from_toml(p).n_trajectories
        label = f"{name} (default)" if name == _specs.DEFAULT else name
        table.add_row(escape(label), f"{n:,}", escape(_specs.question(name)))
    Console().print(table)


def _copy(name: str, dest: str | None) -> None:
    found = _specs.lookup(name)
    if found is None:
        fail(f"--copy: no shipped spec is called {name!r}; shipped: "
             f"{', '.join(_specs.names())} (see `oscillax atlas --list`).")
    target = Path(dest) if dest is not None else Path(f"{found}.toml")
    if target.is_dir():
        target = target / f"{found}.toml"
    if target.exists():
        fail(f"--copy: {str(target)!r} already exists; choose another destination or remove "
             "it first (a copy never overwrites a file).")
    if not target.parent.is_dir():
        fail(f"--copy: the directory {str(target.parent)!r} does not exist.")
    try:
        with open(target, "x", encoding="utf-8") as f:
            f.write(_specs.text(found))
    except OSError as e:
        fail(f"--copy: cannot write {str(target)!r}: {e.strerror or e}.")
    from rich.console import Console
    from rich.markup import escape

    Console().print(f"wrote {escape(str(target))} (the shipped spec {escape(found)}); edit it, "
                    f"then run: oscillax atlas {escape(str(target))}", highlight=False)


@contextlib.contextmanager
def _spec_path(spec: str | None):
    """(path, label) of SPEC: an existing file, else a shipped spec's name."""
    if spec is None:
        name = _specs.DEFAULT
    elif Path(spec).is_file():
        yield Path(spec), spec
        return
    else:
        name = _specs.lookup(spec)
        if name is None:
            what = "is a directory, not a spec file," if Path(spec).exists() else (
                "is not a file")
            fail(f"SPEC {spec!r} {what} and no shipped spec has that name (shipped: "
                 f"{', '.join(_specs.names())}; see `oscillax atlas --list`).")
    with _specs.as_path(name) as p:
        yield p, f"{name} (shipped)"


def _run(spec_path, label, out, resume, force, chunk_size, no_figures, ctx):
    import time

    from rich.console import Console
    from rich.markup import escape

    import oscillax as ox

    try:
        if resume is not None:
            return ox.sweep(None, out=resume, resume=True, progress=True,
                            figures=not no_figures, **ctx), resume
        run_dir = out if out is not None else Path("runs") / time.strftime("atlas-%Y%m%d-%H%M%S")
        spec_obj = ox.SweepSpec.from_toml(spec_path)
        if chunk_size is None:
            from .._sweep._run import auto_chunk_size

            chunk_size = auto_chunk_size(spec_obj)
        Console().print(
            f"[bold]oscillax atlas[/bold]  spec {escape(str(label))}  ->  "
            f"{escape(str(run_dir))}\n{spec_obj.n_trajectories:,} trajectories, "
            f"{spec_obj.total_steps:.3g} trajectory-steps, chunks of {chunk_size}",
            highlight=False)
        return ox.sweep(spec_path, out=run_dir, chunk_size=chunk_size, force=force,
                        progress=True, figures=not no_figures, **ctx), run_dir
    except (ValueError, OSError) as e:
        fail(str(e))


def _report(result, run_dir: Path) -> None:
    from rich.console import Console
    from rich.markup import escape

    from ._summary import print_rates, print_status_table

    console = Console()
    d = escape(str(run_dir))
    if not result.summary:
        console.print(f"this process finished its share; results in {d}", highlight=False)
        return
    print_status_table(console, result.summary["status_by_activation_solver"])
    print_rates(console, result.summary)
    figures = f"   figures: {d}/figures/" if result.summary.get("figures") else ""
    console.print(f"results: {d}/results.parquet{figures}", highlight=False)
