"""`oscillax devices`: what JAX sees, and how a sweep would shard its batch here."""

from __future__ import annotations

from typing import Annotated

import typer

from ._errors import fail
from ._options import Coordinator, NumProcesses, ProcessId, example

EPILOG = example("oscillax devices --json")


def devices(
    coordinator: Coordinator = None,
    num_processes: NumProcesses = None,
    process_id: ProcessId = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
    = False,
) -> None:
    """Print what JAX sees: backend, devices, processes, and how a sweep shards here.

    A sweep runs one chunk per local device; a multi-host run joins with --coordinator."""
    import json

    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from .. import _distributed

    try:
        _distributed.setup(coordinator, num_processes, process_id)
    except ValueError as e:
        fail(str(e))
    info = _distributed.describe()
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    console = Console()
    n = info["local_device_count"]
    console.print(
        f"backend [bold]{escape(info['backend'])}[/bold]   process {info['process_index']} of "
        f"{info['process_count']}   devices: {n} local, {info['device_count']} in all   "
        f"jax {escape(info['jax'])}", highlight=False)
    table = Table(title="local devices")
    for col in ("id", "platform", "kind", "device"):
        table.add_column(col)
    for d in info["local_devices"]:
        table.add_row(str(d["id"]), escape(d["platform"]), escape(d["kind"]), escape(d["repr"]))
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
