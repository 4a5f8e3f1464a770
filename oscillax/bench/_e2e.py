"""End-to-end workloads: what a user runs, from a fresh process.

- `e2e-atlas`: the `oscillax atlas` command on a shipped spec (the default one; `quick`
  with `--quick`, then without its figures), whole command with its figures, in a fresh
  process: cold (an empty compilation cache) and warm (the cache the cold run filled).
- `e2e-sweep`: `ox.sweep` called from a plain Python script, nothing configured, on W2 with
  one random A per trajectory, beside the hand-written `jit(vmap(diffrax Euler))` on the
  same matrices and starts in the same fresh process. The first call (what a script pays,
  compilation included) and the steady state (a second call) are both reported.

- `e2e-sweep` also runs the main job at scale: `ox.sweep(spec, out=DIR)` of many short
  trajectories (W2, 1e6 trajectories x 1e3 steps; `--quick`: 65536 x 200), results
  streamed to parquet, beside the engine on one wide batch in the same fresh process
  (`integrate_monitored` as the sweep calls it, on the sweep's widest call: one chunk per
  device), reported as a ratio, with the process's peak RSS (`resource.getrusage`); a run
  a tenth the size gives the RSS it is compared with (memory flat in the trajectories).

`python -m oscillax.bench._e2e sweep --seeds 4096 --steps 100000` runs one sweep child and
`python -m oscillax.bench._e2e stream --seeds 1000000 --steps 1000` one streamed-sweep
child; each prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ._harness import OK, Result


@dataclass(frozen=True)
class _Row:
    """A row's name (what `impls()` lists for the suite's table and its smoke test)."""

    name: str

_SWEEP_CHILD = "oscillax.bench._e2e"


def _fresh_env(**extra) -> dict:
    env = dict(os.environ)
    for k in ("XLA_FLAGS", "JAX_COMPILATION_CACHE_DIR"):
        env.pop(k, None)
    env.update(extra)
    return env


def run_atlas(spec: str, cache_dir: str, out: str, figures: bool = True) -> dict:
    """One `oscillax atlas SPEC --out OUT` in a fresh process; wall time and the run's own
    summary (sweep compute time)."""
    cmd = [sys.executable, "-m", "oscillax", "atlas", spec, "--out", out, "--force"]
    if not figures:
        cmd.append("--no-figures")
    t0 = time.perf_counter()
    p = subprocess.run(cmd, env=_fresh_env(OSCILLAX_CACHE_DIR=cache_dir), capture_output=True,
                       text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"oscillax atlas failed ({p.returncode}): {p.stderr[-2000:]}")
    summary = json.loads((Path(out) / "summary.json").read_text())
    return {"wall_s": wall, "sweep_s": summary["wall_time_s"],
            "compute_s": summary["compute_time_s"],
            "trajectories": summary["trajectories"],
            "traj_steps": summary["trajectory_steps"]}


class AtlasCommand:
    """`oscillax atlas` cold and warm (see the module docstring)."""

    name = "e2e-atlas"
    title = "the `oscillax atlas` command, whole, fresh process: cold cache, then warm"

    def __init__(self, quick: bool, repeats: int):
        self.quick = quick
        self.spec = "quick" if quick else "euler_stability"
        # `--quick` (a smoke run) leaves the figures out: drawing them takes longer than the
        # quick spec's sweep; the full suite times the whole command, figures included
        self.figures = not quick

    def impls(self) -> list[_Row]:
        return [_Row(f"oscillax atlas ({label})") for label in ("cold", "warm")]

    def run(self, log=print) -> dict:
        rows, extra = [], {}
        with tempfile.TemporaryDirectory(prefix="oscillax-e2e-") as tmp:
            cache = os.path.join(tmp, "cache")
            for label in ("cold", "warm"):
                log(f"  {self.name}: oscillax atlas {self.spec} ({label}) ...")
                m = run_atlas(self.spec, cache, os.path.join(tmp, f"run-{label}"),
                              figures=self.figures)
                extra[label] = m
                rows.append(Result(
                    impl=f"oscillax atlas ({label})", status=OK, run_s=m["wall_s"],
                    first_call_s=m["wall_s"], traj_steps=m["traj_steps"],
                    traj_steps_per_s=m["traj_steps"] / m["wall_s"],
                    note=f"whole command {m['wall_s']:.1f} s, of it sweep {m['sweep_s']:.1f} s; "
                         f"{m['trajectories']:,} trajectories",
                    description=f"oscillax atlas {self.spec}"
                                f"{'' if self.figures else ' --no-figures'}, fresh process, "
                                f"{'empty' if label == 'cold' else 'filled'} compilation cache"))
                log(f"    {m['wall_s']:.1f} s (sweep {m['sweep_s']:.1f} s)")
        base = rows[0].traj_steps_per_s
        for r in rows:
            r.ratio_to_oscillax = r.traj_steps_per_s / base
        # what compiling costs the command: the cold run less the warm one (0 when warm)
        rows[0].compile_s = max(extra["cold"]["wall_s"] - extra["warm"]["wall_s"], 0.0)
        rows[1].compile_s = 0.0
        return {"name": self.name, "title": self.title,
                "params": {"spec": self.spec, "figures": self.figures},
                "traj_steps": rows[0].traj_steps, "results": [r.to_json() for r in rows],
                "extra": extra}


def _w2_spec(ox, seeds: int, steps: int, dt: float):
    """W2 as a sweep: n = 2, pre tanh, Euler at `dt`, one random A per trajectory (`ox`: the
    child's own import of oscillax, timed as a script's)."""
    return ox.SweepSpec(forms=("pre",), activations=("tanh",), solvers=("euler",), dts=(dt,),
                        dims=(2,), amplitudes=(1.0,), seeds=seeds, steps=steps)


def _sweep_child(seeds: int, steps: int, dt: float) -> dict:
    """In this (fresh) process: `ox.sweep` twice, then the diffrax peer, same workload."""
    # as a script does: nothing configured (no import time is measured: the child runs as
    # `python -m oscillax.bench._e2e`, so oscillax is already imported)
    import diffrax
    import jax
    import jax.numpy as jnp
    import numpy as np

    import oscillax as ox
    from oscillax._sweep._cases import case_arrays  # the sweep's own cases, for the peer

    spec = _w2_spec(ox, seeds, steps, dt)
    ts = seeds * steps
    out = {"seeds": seeds, "steps": steps, "dt": dt, "traj_steps": ts,
           "devices": jax.device_count()}
    t0 = time.perf_counter()
    r1 = ox.sweep(spec)
    out["ox_first_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    r2 = ox.sweep(spec)
    out["ox_warm_s"] = time.perf_counter() - t0
    assert r1.table["amplitude_final"].equals(r2.table["amplitude_final"])

    A, d = case_arrays(spec, 2, np.arange(seeds), np.float32)  # (S, 2, 2), (S, 2)

    def one(A, y0):
        term = diffrax.ODETerm(lambda t, y, A: jnp.tanh(A @ y))
        sol = diffrax.diffeqsolve(term, diffrax.Euler(), 0.0, steps * dt, dt, y0, args=A,
                                  saveat=diffrax.SaveAt(t1=True), max_steps=steps + 1,
                                  stepsize_controller=diffrax.ConstantStepSize())
        return sol.ys[-1]

    peer = jax.jit(jax.vmap(one))
    Aj, dj = jnp.asarray(A), jnp.asarray(d)
    t0 = time.perf_counter()
    yf = jax.block_until_ready(peer(Aj, dj))
    out["diffrax_first_s"] = time.perf_counter() - t0
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        jax.block_until_ready(peer(Aj, dj))
        best = min(best, time.perf_counter() - t0)
    out["diffrax_warm_s"] = best
    ours = r2.table.sort_values("traj_id")["amplitude_final"].to_numpy()
    theirs = np.linalg.norm(np.asarray(yf, np.float64), axis=1)
    out["max_rel_diff_final_norm"] = float(np.max(np.abs(ours - theirs) / theirs))
    for k in ("first", "warm"):
        out[f"ratio_{k}"] = out[f"diffrax_{k}_s"] / out[f"ox_{k}_s"]
    return out


def _peak_rss_mb() -> float:
    import resource

    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / (1024 * 1024) if sys.platform == "darwin" else kb / 1024  # bytes on macOS


def _stream_child(seeds: int, steps: int, dt: float, repeats: int = 3) -> dict:
    """In this (fresh) process: `ox.sweep(spec, out=DIR)` of W2 (first call, then a second,
    steady one), then the engine alone on the sweep's widest call, same process."""
    # as a script does: nothing configured (no import time is measured: the child runs as
    # `python -m oscillax.bench._e2e`, so oscillax is already imported)
    import jax

    import oscillax as ox
    from oscillax import _distributed
    from oscillax._sweep import _run
    from oscillax._sweep._cases import chunk_inputs
    from oscillax._sweep._plan import grid, plan

    spec = _w2_spec(ox, seeds, steps, dt)
    ts = seeds * steps
    out = {"seeds": seeds, "steps": steps, "dt": dt, "traj_steps": ts,
           "devices": jax.local_device_count(),
           "chunk_size": _run.auto_chunk_size(spec), "rss_import_mb": _peak_rss_mb()}
    with tempfile.TemporaryDirectory(prefix="oscillax-e2e-stream-") as tmp:
        run = Path(tmp) / "run"
        t0 = time.perf_counter()
        r1 = ox.sweep(spec, out=run, figures=False)
        out["ox_first_s"] = time.perf_counter() - t0
        out["rss_first_mb"] = _peak_rss_mb()
        n1 = r1.summary["trajectories"]
        del r1
        t0 = time.perf_counter()
        r2 = ox.sweep(spec, out=run, figures=False, force=True)
        out["ox_warm_s"] = time.perf_counter() - t0
        out["rss_warm_mb"] = _peak_rss_mb()
        out["parts"] = len(list((run / "parts").glob("part-*.parquet")))
        out["results_mb"] = (run / "results.parquet").stat().st_size / 2**20
        assert n1 == r2.summary["trajectories"] == seeds
        del r2

    # the engine alone: the sweep's own widest call (one chunk per device), inputs ready
    place = _distributed.default_place()
    slots = getattr(place, "device_count", 1) if place is not None else 1
    width = out["chunk_size"]
    espec = _w2_spec(ox, width * slots, steps, dt)
    rows = grid(espec).set_index("traj_id", drop=False)
    batch = plan(espec, width)[:slots]
    ins = [chunk_inputs(espec, c, rows) for c in batch]
    call = lambda: jax.block_until_ready(_run._call(espec, batch[0], ins, place)[0])
    t0 = time.perf_counter()
    call()
    out["engine_first_s"] = time.perf_counter() - t0
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - t0)
    out["engine_batch"] = width * slots
    out["engine_rate"] = width * slots * steps / best
    out["ox_rate"] = ts / out["ox_warm_s"]
    out["ox_first_rate"] = ts / out["ox_first_s"]
    out["ratio_warm"] = out["ox_rate"] / out["engine_rate"]
    out["ratio_first"] = out["ox_first_rate"] / out["engine_rate"]
    return out


def run_stream_child(seeds: int, steps: int, dt: float = 0.01) -> dict:
    cmd = [sys.executable, "-m", _SWEEP_CHILD, "stream", "--seeds", str(seeds), "--steps",
           str(steps), "--dt", str(dt)]
    p = subprocess.run(cmd, env=_fresh_env(), capture_output=True, text=True,
                       cwd=tempfile.gettempdir())
    if p.returncode != 0:
        raise RuntimeError(f"stream child failed ({p.returncode}): {p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def run_sweep_child(seeds: int, steps: int, dt: float = 0.01) -> dict:
    cmd = [sys.executable, "-m", _SWEEP_CHILD, "sweep", "--seeds", str(seeds), "--steps",
           str(steps), "--dt", str(dt)]
    p = subprocess.run(cmd, env=_fresh_env(), capture_output=True, text=True,
                       cwd=tempfile.gettempdir())
    if p.returncode != 0:
        raise RuntimeError(f"sweep child failed ({p.returncode}): {p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


class SweepScript:
    """`ox.sweep` from a plain script beside the diffrax vmap (see the module docstring)."""

    name = "e2e-sweep"
    title = "ox.sweep from a script, W2 with one random A per trajectory, vs diffrax vmap"

    def __init__(self, quick: bool, repeats: int):
        self.sizes = [(2048, 1_000)] if quick else [(4096, 100_000), (65536, 10_000)]
        # the main job at scale: many short trajectories streamed to parquet
        self.stream = (16384, 100) if quick else (1_000_000, 1_000)

    def impls(self) -> list[_Row]:
        s, n = self.stream
        return [_Row(f"{impl} B{s}x{n}") for s, n in self.sizes
                for impl in ("ox.sweep", "diffrax-vmap")] + [
            _Row(f"ox.sweep->parquet B{s}x{n}"), _Row(f"engine B{s}x{n}")]

    def run(self, log=print) -> dict:
        rows, extra = [], {}
        for seeds, steps in self.sizes:
            log(f"  {self.name}: B = {seeds} x {steps} steps (fresh process) ...")
            m = run_sweep_child(seeds, steps)
            key = f"B{seeds}x{steps}"
            extra[key] = m
            for impl, pre in (("ox.sweep", "ox"), ("diffrax-vmap", "diffrax")):
                rows.append(Result(
                    impl=f"{impl} {key}", status=OK, first_call_s=m[f"{pre}_first_s"],
                    run_s=m[f"{pre}_warm_s"],
                    compile_s=m[f"{pre}_first_s"] - m[f"{pre}_warm_s"],
                    traj_steps=m["traj_steps"],
                    traj_steps_per_s=m["traj_steps"] / m[f"{pre}_warm_s"],
                    ratio_to_oscillax=m["ox_warm_s"] / m[f"{pre}_warm_s"],
                    max_abs_diff_vs_oscillax=None if pre == "ox" else
                    m["max_rel_diff_final_norm"],
                    note=(f"first call {m[f'{pre}_first_s']:.2f} s" + (
                        f"; diffrax / ox: {m['ratio_warm']:.2f}x steady, "
                        f"{m['ratio_first']:.2f}x first call" if pre == "ox" else ""))))
            log(f"    ox.sweep {m['ox_warm_s']:.3f} s, diffrax {m['diffrax_warm_s']:.3f} s: "
                f"{m['ratio_warm']:.2f}x steady, {m['ratio_first']:.2f}x first call")
        rows += self._stream(extra, log)
        return {"name": self.name, "title": self.title,
                "params": {"sizes": self.sizes, "stream": self.stream}, "traj_steps": None,
                "results": [r.to_json() for r in rows], "extra": extra}


    def _stream(self, extra: dict, log) -> list:
        seeds, steps = self.stream
        key = f"B{seeds}x{steps}"
        log(f"  {self.name}: ox.sweep(out=DIR) of {seeds:,} x {steps} steps (fresh process) ...")
        m = run_stream_child(seeds, steps)
        small = run_stream_child(max(seeds // 10, 1), steps)  # the RSS it is compared with
        m["rss_warm_mb_tenth"] = small["rss_warm_mb"]
        extra[f"stream {key}"] = m
        log(f"    ox.sweep {m['ox_warm_s']:.2f} s ({m['ox_rate']:.3g} traj-steps/s), engine "
            f"{m['engine_rate']:.3g}: {m['ratio_warm']:.2f} of the engine; peak RSS "
            f"{m['rss_warm_mb']:.0f} MB ({small['rss_warm_mb']:.0f} MB at a tenth)")
        sweep = Result(
            impl=f"ox.sweep->parquet {key}", status=OK, first_call_s=m["ox_first_s"],
            run_s=m["ox_warm_s"], compile_s=max(m["ox_first_s"] - m["ox_warm_s"], 0.0),
            traj_steps=m["traj_steps"], traj_steps_per_s=m["ox_rate"], ratio_to_oscillax=1.0,
            note=(f"{m['ratio_warm']:.2f}x the engine's rate ({m['ratio_first']:.2f}x first "
                  f"call); chunks of {m['chunk_size']}, {m['parts']} parts; peak RSS "
                  f"{m['rss_warm_mb']:.0f} MB, {m['rss_warm_mb_tenth']:.0f} MB for a tenth "
                  "of the trajectories"),
            peak_mem_bytes=int(m["rss_warm_mb"] * 2**20),
            mem_method="peak RSS of the fresh process (resource.getrusage), both sweeps",
            description="ox.sweep(spec, out=DIR) from a fresh script: W2, one random A per "
                        "trajectory, results streamed to parquet")
        engine_s = m["engine_batch"] * steps / m["engine_rate"]
        engine = Result(
            impl=f"engine B{seeds}x{steps}", status=OK, first_call_s=m["engine_first_s"],
            run_s=engine_s, compile_s=max(m["engine_first_s"] - engine_s, 0.0),
            traj_steps=m["engine_batch"] * steps,
            traj_steps_per_s=m["engine_rate"],
            ratio_to_oscillax=m["engine_rate"] / m["ox_rate"],  # as the table's other rows
            note=f"integrate_monitored on one call of {m['engine_batch']:,} (the sweep's "
                 f"widest: one chunk per device, {m['devices']} devices)",
            description="the sweep's engine call alone, inputs ready, same process")
        return [sweep, engine]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m oscillax.bench._e2e")
    sub = ap.add_subparsers(dest="what", required=True)
    s = sub.add_parser("sweep")
    s.add_argument("--seeds", type=int, default=4096)
    s.add_argument("--steps", type=int, default=100_000)
    s.add_argument("--dt", type=float, default=0.01)
    t = sub.add_parser("stream")
    t.add_argument("--seeds", type=int, default=1_000_000)
    t.add_argument("--steps", type=int, default=1_000)
    t.add_argument("--dt", type=float, default=0.01)
    a = ap.parse_args(argv)
    child = _sweep_child if a.what == "sweep" else _stream_child
    print(json.dumps(child(a.seeds, a.steps, a.dt)))


if __name__ == "__main__":
    main()
