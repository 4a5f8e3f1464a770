"""Multi-device and multi-host placement of sweep batches, through JAX's own machinery.

One process, several devices: a sweep call's batch axis is sharded over a
`jax.sharding.Mesh` of the process's *local* devices (`NamedSharding`), one chunk per
device, and the monitored integrator runs under `jax.shard_map`: each device loops over its
own chunk with no communication (letting XLA partition the loop instead synchronised the
devices at every block and was slower than one device), and every lane computes exactly
what it computes on one device. On a CPU machine `use_cpu_cores` gives JAX one CPU device
per core, so sweeps use every core.

Several processes (hosts): `setup` calls `jax.distributed.initialize`; each process runs
the chunks with `chunk.index % process_count == process_index` on its own local mesh (no
cross-process collective), and writes its own parquet parts into a run directory on a
filesystem shared by all processes. `Coordination` orders the run directory's creation
before any part is written and lets process 0 merge once every process is done, using the
coordination service that `jax.distributed` already runs (a key-value store and barriers;
no device collectives, so nothing needs gloo/MPI connectivity beyond the coordinator).
"""

from __future__ import annotations

import itertools
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

BATCH_AXIS = "batch"

# Seconds a process waits at the end of its share for the others (default one day: a
# process that died makes JAX's heartbeat check end the wait much sooner).
FINISH_TIMEOUT_S = float(os.environ.get("OSCILLAX_FINISH_TIMEOUT", 24 * 3600))
# Seconds process 0 waits for other hosts' part files to become visible on a shared
# filesystem (NFS caches directory listings), and non-zero processes wait for process 0.
VISIBILITY_TIMEOUT_S = 120.0
START_TIMEOUT_S = 600.0


# ---------------------------------------------------------------------------------------
# placement over local devices
# ---------------------------------------------------------------------------------------
def local_mesh(devices=None):
    """A 1-D `Mesh` named `"batch"` over `devices` (default: `jax.local_devices()`)."""
    import jax
    from jax.sharding import Mesh

    devs = jax.local_devices() if devices is None else list(devices)
    if not devs:
        raise ValueError("`devices` must not be empty.")
    return Mesh(np.asarray(devs, dtype=object), (BATCH_AXIS,))


class Placement:
    """`place(array, batch_axis)`: put an array on a mesh, its batch axis sharded.

    `batch_axis=None` replicates the array on every device of the mesh. The batch axis's
    length must be a multiple of `device_count` (`sweep` pads chunks to such widths).
    """

    def __init__(self, mesh):
        self.mesh = mesh
        self.device_count = int(mesh.size)

    def sharding(self, ndim: int, batch_axis: int | None):
        from jax.sharding import NamedSharding, PartitionSpec

        spec = [None] * ndim
        if batch_axis is not None:
            spec[batch_axis] = BATCH_AXIS
        return NamedSharding(self.mesh, PartitionSpec(*spec))

    def __call__(self, x, batch_axis: int | None):
        import jax

        if batch_axis is not None and x.shape[batch_axis] % self.device_count:
            raise ValueError(
                f"batch axis {batch_axis} of length {x.shape[batch_axis]} is not a multiple "
                f"of the {self.device_count} devices of the mesh."
            )
        return jax.device_put(x, self.sharding(x.ndim, batch_axis))

    def __repr__(self) -> str:
        return f"Placement({self.device_count} devices: {list(self.mesh.devices.flat)})"


def make_place(devices=None) -> Placement:
    """A `Placement` over `devices` (default: all local devices of this process)."""
    return Placement(local_mesh(devices))


def default_place() -> Placement | None:
    """Shard over the local devices when this process has more than one, else None."""
    import jax

    return make_place() if jax.local_device_count() > 1 else None


def use_cpu_cores(max_devices: int = 32) -> int | None:
    """Ask JAX for one CPU device per core, before JAX starts; return the count, or None.

    XLA runs a small program on one CPU thread per device, so a sweep (one chunk per device)
    uses every core only with several CPU devices. Skipped when `XLA_FLAGS` already sets
    `--xla_force_host_platform_device_count`, or when JAX has already run something. The
    environment variable `OSCILLAX_CPU_DEVICES` sets the count (1 turns this off).
    It only adds CPU devices: on a GPU or TPU machine sweeps still run on the accelerator.
    """
    import jax

    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return None
    n = _env_int("OSCILLAX_CPU_DEVICES")
    if n is None:
        try:
            n = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            n = os.cpu_count() or 1
        n = min(n, max_devices)
    if n < 1:
        raise ValueError(f"environment variable OSCILLAX_CPU_DEVICES must be >= 1; got {n}. "
                         "Set it to the number of CPU devices wanted (1: one device), or "
                         "unset it for one per core.")
    try:
        jax.config.update("jax_num_cpu_devices", n)
    except RuntimeError:  # JAX already started: keep what it has
        return None
    return n


def round_up(size: int, multiple: int) -> int:
    """The smallest multiple of `multiple` that is >= `size` (and >= `multiple`)."""
    multiple = max(1, int(multiple))
    return max(multiple, -(-int(size) // multiple) * multiple)


# ---------------------------------------------------------------------------------------
# jax.distributed set-up
# ---------------------------------------------------------------------------------------
def _env_int(name: str) -> int | None:
    v = os.environ.get(name)
    if v is None or v.strip() == "":
        return None
    try:
        return int(v)
    except ValueError:
        raise ValueError(f"environment variable {name}={v!r} is not an integer.") from None


def setup(coordinator: str | None, num_processes: int | None, process_id: int | None) -> dict:
    """Initialise `jax.distributed` when asked; return sweep keyword arguments.

    `coordinator` (`HOST:PORT` of process 0, from `--coordinator` / `OSCILLAX_COORDINATOR`)
    switches multi-process mode on. `num_processes` and `process_id` come from the flags or
    `OSCILLAX_NUM_PROCESSES` / `OSCILLAX_PROCESS_ID`, else from SLURM's `SLURM_NTASKS` /
    `SLURM_PROCID` (a task started by `srun`). `coordinator="auto"` leaves everything to
    JAX's cluster auto-detection (SLURM, Open MPI, TPU pods). `OSCILLAX_HEARTBEAT_TIMEOUT`
    (seconds, JAX's default 100) is how soon the others notice a process that died.

    Single process (no coordinator, no process count/id): `{}`.
    """
    slurm = coordinator is not None and coordinator != "auto"
    if slurm and num_processes is None:
        num_processes = _env_int("SLURM_NTASKS")
    if slurm and process_id is None:
        process_id = _env_int("SLURM_PROCID")
    given = [v is not None for v in (coordinator, num_processes, process_id)]
    if not any(given):
        ntasks = _env_int("SLURM_NTASKS") or 1
        procid = _env_int("SLURM_PROCID") or 0
        if ntasks > 1 and procid > 0:
            raise ValueError(
                f"this is task {procid} of {ntasks} SLURM tasks but no --coordinator was given:"
                " every task would run the whole sweep into the same directory. Pass "
                "--coordinator HOST:PORT (or set OSCILLAX_COORDINATOR; see docs/scaling.md)."
            )
        return {}
    hb = _env_int("OSCILLAX_HEARTBEAT_TIMEOUT")
    extra = {} if hb is None else {"heartbeat_timeout_seconds": hb}
    import jax

    if coordinator == "auto":
        if num_processes is not None or process_id is not None:
            raise ValueError("--coordinator auto takes the process count and id from the "
                             "cluster; don't pass --num-processes / --process-id with it.")
        jax.distributed.initialize(**extra)
        return {"process_index": jax.process_index(), "process_count": jax.process_count()}
    if not all(given):
        raise ValueError(
            "a multi-host run needs all of --coordinator HOST:PORT, --num-processes N and "
            f"--process-id I; got coordinator={coordinator!r}, num_processes={num_processes!r}, "
            f"process_id={process_id!r}."
        )
    if ":" not in coordinator:
        raise ValueError(f"--coordinator must be HOST:PORT; got {coordinator!r}.")
    if num_processes < 1 or not (0 <= process_id < num_processes):
        raise ValueError(
            f"--process-id must be in [0, {num_processes}) and --num-processes >= 1; got "
            f"process_id={process_id}, num_processes={num_processes}."
        )
    # All three are known: no cluster auto-detection, which on GPUs under SLURM would
    # restrict each process to one device; every local device stays visible (restrict them
    # with CUDA_VISIBLE_DEVICES or srun --gpus-per-task).
    jax.distributed.initialize(coordinator, num_processes=num_processes, process_id=process_id,
                               cluster_detection_method="deactivate", **extra)
    return {"process_index": process_id, "process_count": num_processes}


def process_info() -> tuple[int, int]:
    """(process_index, process_count) as JAX sees them (0, 1 without jax.distributed)."""
    import jax

    return jax.process_index(), jax.process_count()


# ---------------------------------------------------------------------------------------
# coordination of several processes around one run directory
# ---------------------------------------------------------------------------------------
def _client():
    """The `jax.distributed` coordination-service client, or None when not initialised."""
    try:
        from jax._src import distributed
    except ImportError:  # pragma: no cover - a JAX without it
        return None
    return distributed.global_state.client


_SEQ = itertools.count()


class Coordination:
    """Orders a multi-process sweep around its run directory.

    `start(prepare)`: process 0 runs `prepare()` (create or check the run directory) and
    the others wait for it, so no part is written before the directory exists (and a
    `--force` overwrite cannot delete another process's parts); an error in process 0 is
    raised in every process. `finish()`: every process waits until all have written their
    parts; True in process 0, which then merges.

    With `jax.distributed` initialised this uses its coordination service (key-value store
    and barriers). Without it (processes started by hand with `process_index` /
    `process_count`), the others wait for process 0's `run.json` file, and process 0 merges
    only when all parts are present at its end (else `--resume DIR` merges later).
    """

    def __init__(self, process_index: int, process_count: int):
        self.index, self.count = int(process_index), int(process_count)
        self.client = _client() if self.count > 1 else None
        self.key = f"oscillax/sweep/{next(_SEQ)}"

    @property
    def active(self) -> bool:
        return self.count > 1

    def start(self, prepare, run: Path, fingerprint: str | None = None) -> None:
        """Process 0 runs `prepare()`; the others wait for it (and see its error)."""
        if not self.active:
            prepare()
            return
        if self.client is not None:
            err = None
            if self.index == 0:
                try:
                    prepare()
                except BaseException as e:  # published to the others, then raised here
                    err = e
                self.client.key_value_set(f"{self.key}/start",
                                          "ok" if err is None else f"{type(err).__name__}: {err}")
            self.client.wait_at_barrier(f"{self.key}/start", int(START_TIMEOUT_S * 1000))
            if err is not None:
                raise err
            if self.index != 0:
                msg = self.client.blocking_key_value_get(f"{self.key}/start", 60_000)
                if msg != "ok":
                    from ._sweep._store import RunDirError

                    raise RunDirError(f"process 0 could not prepare the run directory: {msg}")
        elif self.index == 0:
            prepare()
        else:
            _wait_for_run_info(run, fingerprint)
        _check_shared(run, self.index)

    def finish(self) -> bool:
        """Wait for every process; True where this process merges (process 0)."""
        if not self.active:
            return True
        if self.client is None:
            return self.index == 0
        try:
            self.client.wait_at_barrier(f"{self.key}/finish", int(FINISH_TIMEOUT_S * 1000))
        except Exception as e:  # a timeout; a dead process aborts this one (JAX's heartbeat)
            raise TimeoutError(
                f"process {self.index}: not every process finished its share within "
                f"{FINISH_TIMEOUT_S:.0f} s (OSCILLAX_FINISH_TIMEOUT) ({e}); this process's "
                "parts are saved: finish and merge with `oscillax atlas --resume DIR`."
            ) from None
        return self.index == 0


def _wait_for_run_info(run: Path, fingerprint: str | None) -> None:
    import json

    from ._sweep import _store

    t0 = time.monotonic()
    while True:
        f = run / _store.RUN_FILE
        try:
            info = json.loads(f.read_text())
            if fingerprint is None or info.get("spec_fingerprint") == fingerprint:
                return
        except (OSError, ValueError):
            pass
        if time.monotonic() - t0 > START_TIMEOUT_S:
            raise TimeoutError(
                f"process 0 did not create the run directory {str(run)!r} within "
                f"{START_TIMEOUT_S:.0f} s (or it holds another spec); start process 0, and "
                "put the run directory on a filesystem all processes share."
            )
        time.sleep(0.5)


def _check_shared(run: Path, index: int) -> None:
    from ._sweep import _store

    if not (run / _store.RUN_FILE).is_file():
        raise _store.RunDirError(
            f"process {index} does not see {str(run / _store.RUN_FILE)!r} that process 0 "
            "wrote: a multi-host run directory must be on a filesystem shared by all hosts."
        )


def wait_for_parts(run: Path, expected: set[int]) -> None:
    """Wait until every expected part is visible (other hosts' files on a shared FS)."""
    from ._sweep import _store

    t0 = time.monotonic()
    while True:
        missing = expected - _store.done_chunks(run)
        if not missing:
            return
        if time.monotonic() - t0 > VISIBILITY_TIMEOUT_S:
            some = ", ".join(str(i) for i in sorted(missing)[:8])
            raise _store.RunDirError(
                f"{len(missing)} chunk part(s) (e.g. {some}) are missing in {str(run)!r} after "
                "every process finished: is the run directory on a filesystem shared by all "
                "hosts? Finish with `oscillax atlas --resume DIR`."
            )
        time.sleep(0.5)


def describe() -> dict:
    """What JAX sees: backend, devices (global and local), process index and count."""
    import jax

    local = jax.local_devices()
    return {
        "backend": jax.default_backend(),
        "process_index": jax.process_index(),
        "process_count": jax.process_count(),
        "device_count": jax.device_count(),
        "local_device_count": len(local),
        "local_devices": [
            {"id": d.id, "kind": getattr(d, "device_kind", ""), "platform": d.platform,
             "process_index": d.process_index, "repr": str(d)}
            for d in local
        ],
        "devices": [str(d) for d in jax.devices()],
        "distributed": _client() is not None,
        "jax": jax.__version__,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
    }


def versions() -> dict:
    """Versions of oscillax and the libraries its numbers depend on (None: not installed)."""
    import importlib.metadata as md

    out = {}
    for p in ("oscillax", "jax", "jaxlib", "diffrax", "equinox", "numpy", "pandas"):
        try:
            out[p] = md.version(p)
        except md.PackageNotFoundError:
            out[p] = None
    return out
