"""Options shared by several commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._errors import fail

Coordinator = Annotated[str | None, typer.Option(
    "--coordinator", envvar="OSCILLAX_COORDINATOR", show_default=False,
    help="HOST:PORT of process 0 for a multi-host run (`auto`: detect the cluster; default: "
    "none, one process).")]
NumProcesses = Annotated[int | None, typer.Option(
    "--num-processes", envvar="OSCILLAX_NUM_PROCESSES", show_default=False,
    help="Number of processes of a multi-host run.")]
ProcessId = Annotated[int | None, typer.Option(
    "--process-id", envvar="OSCILLAX_PROCESS_ID", show_default=False,
    help="This process's index in a multi-host run.")]


# The network options of `simulate`, `orbits` and `lyapunov`, with their defaults there
# ("post", "tanh", False).
Form = Annotated[str, typer.Option(
    "--form", help="post: dx/dt = A σ(x); pre: dx/dt = σ(A x) − γ x.")]
ActivationName = Annotated[str, typer.Option(
    "--activation", help="σ: a name from ox.ACTIVATIONS (identity, tanh, ...).")]
Overwrite = Annotated[bool, typer.Option(
    "--overwrite", help="Write into a non-empty --out, replacing only this command's files "
    "there.")]


def example(*lines: str) -> str:
    """The epilog of a command's --help: its example command line(s)."""
    return "Example" + ("s" if len(lines) > 1 else "") + ": " + ", ".join(
        f"`{line}`" for line in lines)


def prepare_out(run: Path, overwrite: bool, outputs: tuple[str, ...]) -> None:
    """Create the `--out` directory of a command that writes `outputs`; a non-empty one
    is refused unless `overwrite`, and then only those files are replaced."""
    if run.exists() and not run.is_dir():
        fail(f"--out {str(run)!r} is a file, not a directory.")
    if run.is_dir() and any(run.iterdir()):
        if not overwrite:
            fail(f"--out {str(run)!r} is not empty; pass --overwrite to replace this command's "
                 f"files there ({', '.join(outputs)}), or choose another --out.")
        for name in outputs:  # only what this command writes; nothing else is touched
            p = run / name
            if p.is_dir():
                fail(f"--out {str(run)!r} holds a directory {name!r}; refusing to replace it.")
            p.unlink(missing_ok=True)
    try:
        run.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        fail(f"--out {str(run)!r} cannot be created: {e.strerror or e}.")
