"""The summary table of a sweep, shared by `oscillax atlas` and `oscillax show`."""

from __future__ import annotations


def status_counts(table) -> dict[str, dict[str, int]]:
    """Trajectories per status for each `activation/solver`, as in `summary.json`."""
    counts = table.groupby(["activation", "solver", "status"]).size().unstack(fill_value=0)
    return {f"{a}/{s}": {k: int(v) for k, v in row.items() if v}
            for (a, s), row in counts.iterrows()}


def print_status_table(console, counts: dict[str, dict[str, int]]) -> None:
    from rich.markup import escape
    from rich.table import Table

    import oscillax as ox

    names = list(ox.STATUS_NAMES)
    table = Table(title="status per activation / solver (trajectories)")
    table.add_column("activation / solver")
    for n in names:
        table.add_column(n, justify="right")
    for key, row in counts.items():
        table.add_row(escape(key), *[str(row.get(n, 0)) for n in names])
    console.print(table)


def print_rates(console, s: dict) -> None:
    """The run's size, wall time and speed (from its summary)."""
    console.print(
        f"{s['trajectories']:,} trajectories, {s['trajectory_steps']:.3g} steps in "
        f"{s['wall_time_s']:.1f} s ({s['trajectory_steps_per_s']:.3g} trajectory-steps/s, "
        f"{s['trajectories_per_s']:.0f} traj/s) on {s['device']['backend']} "
        f"x{s['device']['device_count']}", highlight=False)
