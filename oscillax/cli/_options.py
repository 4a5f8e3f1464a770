"""Options shared by several commands."""

from __future__ import annotations

from typing import Annotated

import typer

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


def example(*lines: str) -> str:
    """The epilog of a command's --help: its example command line(s)."""
    return "Example" + ("s" if len(lines) > 1 else "") + ": " + ", ".join(
        f"`{line}`" for line in lines)
