"""Multi-device and multi-host placement of sweep batches, through JAX's own machinery."""

from __future__ import annotations


def setup(coordinator: str | None, num_processes: int | None, process_id: int | None) -> dict:
    """Initialise `jax.distributed` when asked; return sweep keyword arguments.

    Single process (nothing given): `{}`.
    """
    given = [v is not None for v in (coordinator, num_processes, process_id)]
    if not any(given):
        return {}
    if not all(given):
        raise ValueError(
            "a multi-host run needs all of --coordinator HOST:PORT, --num-processes N and "
            f"--process-id I; got coordinator={coordinator!r}, num_processes={num_processes!r}, "
            f"process_id={process_id!r}."
        )
    if num_processes < 1 or not (0 <= process_id < num_processes):
        raise ValueError(
            f"--process-id must be in [0, {num_processes}) and --num-processes >= 1; got "
            f"process_id={process_id}, num_processes={num_processes}."
        )
    import jax

    jax.distributed.initialize(coordinator, num_processes=num_processes, process_id=process_id)
    return {"process_index": process_id, "process_count": num_processes}
