"""Timing and memory measurement shared by every workload.

An implementation is an `Impl`: a name and a `make(problem) -> Prepared` function. `make`
does the set-up that a user would do once (build arrays, jit), and returns `Prepared.run`,
one full call of the workload. The harness times the first call (compile + run), then the
steady state as the best of at least `repeats` further calls (more, until they add up to a
second, for short calls), then one more call under an RSS
sampler for the peak memory. Adding an implementation is one function and one `Impl(...)`
line in `_workloads.py`.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

OK, SKIPPED, ERROR = "ok", "skipped", "error"


@dataclass
class Prepared:
    """What `Impl.make` returns.

    - `run`: one full call of the workload; returns its result (states, gradient, ...).
    - `traj_steps`: trajectory-steps one call performs, when not the workload's count
      (a reference on a smaller batch, an adaptive solver's accepted steps).
    - `note`: shown in the table (e.g. "adaptive RK45 on 8 trajectories").
    - `to_numpy`: result -> array comparable with oscillax's result, for the cross-check.
    - `subset`: indices of the workload's trajectories this implementation integrates, when
      it runs only some of them (the cross-check then compares those).
    """

    run: Callable[[], Any]
    traj_steps: int | None = None
    note: str = ""
    to_numpy: Callable[[Any], np.ndarray] | None = None
    subset: Any = None
    traj_steps_from_result: Callable[[Any], int] | None = None


@dataclass(frozen=True)
class Impl:
    """One implementation of one workload.

    - `name`: row label; `"oscillax"` is the baseline of the ratios.
    - `make`: `problem -> Prepared` (or a bare callable, taken as `Prepared(run=...)`).
    - `requires`: modules that must be importable, else the row is skipped with a note.
    - `compare`: whether its result should match oscillax's (False for other methods).
    """

    name: str
    make: Callable[[Any], Prepared | Callable[[], Any]]
    requires: tuple[str, ...] = ()
    compare: bool = True
    description: str = ""


def missing_modules(mods) -> list[str]:
    return [m for m in mods if importlib.util.find_spec(m) is None]


def block(x):
    """Wait for asynchronous (JAX) results; numpy and torch are synchronous already."""
    import sys

    if "jax" in sys.modules:
        import jax

        leaves = jax.tree_util.tree_leaves(x)
        for leaf in leaves:
            if hasattr(leaf, "block_until_ready"):
                leaf.block_until_ready()
    return x


# ---------------------------------------------------------------------------- memory


def _libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


_LIBC = _libc()
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def current_rss() -> int | None:
    """Resident set size of this process in bytes (Linux /proc), or None."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        return None


def trim_heap() -> None:
    """Give freed heap memory back to the OS, so an RSS baseline is not inflated by the
    previous implementation's freed buffers."""
    import gc

    gc.collect()
    if _LIBC is not None:
        try:
            _LIBC.malloc_trim(0)
        except AttributeError:
            pass


class RssSampler:
    """Peak RSS above the baseline while the `with` block runs, sampled every `interval` s.

    Measured on an untimed extra call, so the sampling thread cannot slow the timed ones.
    """

    def __init__(self, interval: float = 5e-4):
        self.interval = interval
        self.base = None
        self.peak = None
        self._stop = threading.Event()

    def __enter__(self):
        trim_heap()
        self.base = current_rss()
        self.peak = self.base
        if self.base is not None:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def _loop(self):
        while not self._stop.is_set():
            r = current_rss()
            if r is not None and r > self.peak:
                self.peak = r
            time.sleep(self.interval)

    def __exit__(self, *exc):
        self._stop.set()
        if self.base is not None:
            self._thread.join()
            r = current_rss()
            if r is not None and r > self.peak:
                self.peak = r
        return False

    @property
    def delta(self) -> int | None:
        if self.base is None:
            return None
        return max(self.peak - self.base, 0)


# ---------------------------------------------------------------------------- timing


@dataclass
class Result:
    impl: str
    status: str
    note: str = ""
    description: str = ""
    first_call_s: float | None = None
    compile_s: float | None = None
    run_s: float | None = None
    runs_s: list[float] = field(default_factory=list)
    cpu_s: float | None = None  # process CPU time of the best steady call (all threads)
    setup_s: float | None = None
    traj_steps: int | None = None
    traj_steps_per_s: float | None = None
    ratio_to_oscillax: float | None = None
    # Per second of process CPU time (all threads): steadier than wall time on a loaded
    # machine for single-threaded work; understates multi-threaded work (W512 matmuls).
    traj_steps_per_cpu_s: float | None = None
    ratio_to_oscillax_cpu: float | None = None
    peak_mem_bytes: int | None = None
    mem_method: str = "peak RSS above baseline during one steady call (sampled)"
    max_abs_diff_vs_oscillax: float | None = None
    extra: dict = field(default_factory=dict)
    value: Any = field(default=None, repr=False)  # not serialised
    subset: Any = field(default=None, repr=False)

    def to_json(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k not in ("value", "subset")}
        return d


def _timed(fn):
    """Wall time of one call, and the process CPU time it used (all threads)."""
    c0 = time.process_time()
    t0 = time.perf_counter()
    out = block(fn())
    t = time.perf_counter() - t0
    return out, t, time.process_time() - c0


def measure(impl: Impl, problem, *, traj_steps: int, repeats: int, measure_memory: bool = True,
            slow_call_s: float = 20.0, min_total_s: float = 1.0, max_repeats: int = 100
            ) -> Result:
    """Run one implementation: first call, steady calls, one memory call.

    The steady calls are at least `repeats`, and go on (up to `max_repeats`) until they add
    up to `min_total_s`: a call of a few milliseconds is best-of-many, so that one
    scheduler hiccup on a shared machine does not decide its rate."""
    res = Result(impl=impl.name, status=OK, description=impl.description)
    missing = missing_modules(impl.requires)
    if missing:
        res.status = SKIPPED
        res.note = f"not installed: {', '.join(missing)}"
        return res
    try:
        t0 = time.perf_counter()
        prepared = impl.make(problem)
        res.setup_s = time.perf_counter() - t0
        if not isinstance(prepared, Prepared):
            prepared = Prepared(run=prepared)
        res.note = prepared.note
        out, first, _ = _timed(prepared.run)
        res.first_call_s = first
        # A slow implementation gets fewer repeats so the suite stays bounded.
        n_rep = repeats if first < slow_call_s else 1
        cpu = []
        while len(res.runs_s) < n_rep or (
            sum(res.runs_s) < min_total_s and len(res.runs_s) < max_repeats
            and first < slow_call_s
        ):
            out, t, c = _timed(prepared.run)
            res.runs_s.append(t)
            cpu.append(c)
        res.run_s = min(res.runs_s)
        res.cpu_s = min(cpu)
        res.compile_s = max(first - res.run_s, 0.0)
        if measure_memory:
            with RssSampler() as s:
                out = block(prepared.run())
            res.peak_mem_bytes = s.delta
        res.traj_steps = (
            prepared.traj_steps_from_result(out)
            if prepared.traj_steps_from_result is not None
            else prepared.traj_steps if prepared.traj_steps is not None else traj_steps
        )
        res.traj_steps_per_s = res.traj_steps / res.run_s
        if res.cpu_s and res.cpu_s > 0:
            res.traj_steps_per_cpu_s = res.traj_steps / res.cpu_s
        res.value = prepared.to_numpy(out) if prepared.to_numpy else _to_numpy(out)
        res.subset = prepared.subset
    except Exception as e:  # a failing implementation is a row, not a crashed suite
        res.status = ERROR
        msg = f"{type(e).__name__}: {e}".strip()
        res.note = msg.splitlines()[0][:300]
        res.extra["traceback"] = traceback.format_exc()[-4000:]
    return res


def _to_numpy(x):
    try:
        return np.asarray(x)
    except Exception:
        return None


def cross_check(results: list[Result], compare: dict[str, bool]) -> None:
    """Fill `ratio_to_oscillax` and `max_abs_diff_vs_oscillax` against the oscillax row."""
    base = next((r for r in results if r.impl == "oscillax" and r.status == OK), None)
    for r in results:
        if r.status != OK:
            continue
        if base is not None:
            r.ratio_to_oscillax = r.traj_steps_per_s / base.traj_steps_per_s
            if r.traj_steps_per_cpu_s and base.traj_steps_per_cpu_s:
                r.ratio_to_oscillax_cpu = r.traj_steps_per_cpu_s / base.traj_steps_per_cpu_s
            if compare.get(r.impl, True) and r.value is not None and base.value is not None:
                ref = base.value if r.subset is None else base.value[r.subset]
                if ref.shape == r.value.shape:
                    r.max_abs_diff_vs_oscillax = float(
                        np.max(np.abs(r.value.astype(np.float64) - ref.astype(np.float64)))
                    )
