"""The rich table and the JSON file."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from importlib import metadata


def _fmt_s(x):
    if x is None:
        return "–"
    if x >= 10:
        return f"{x:.1f}"
    if x >= 0.01:
        return f"{x:.3f}"
    return f"{x * 1e3:.2f} ms"


def _fmt_bytes(b):
    if b is None:
        return "–"
    if b < 2**20:
        return f"{b / 2**10:.0f} KiB"
    if b < 2**30:
        return f"{b / 2**20:.1f} MiB"
    return f"{b / 2**30:.2f} GiB"


def _fmt_rate(x):
    return "–" if x is None else f"{x:.3g}"


def _fmt_ratio(x):
    return "–" if x is None else f"{x:.3g}×"


def render(report: dict, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    meta = report["meta"]
    table = Table(
        title=f"oscillax benchmarks ({'quick' if meta['quick'] else 'full'}) — "
        f"{meta['machine']['cpu']}, {meta['machine']['cores']} cores, "
        f"jax {meta['versions'].get('jax')} ({meta['jax_backend']})",
        caption="rate = trajectory-steps / s, best of at least "
        f"{meta['repeats']} calls after the first"
        f"{'' if meta['quick'] else ' (more, up to 100, until they add up to 1 s)'}; "
        "× oscillax = rate / oscillax's rate "
        "(> 1: faster); per CPU-s = trajectory-steps per second of process CPU time (all "
        "threads; steadier under load, understates multi-threaded runs); compile = first "
        "call − best run; mem = peak RSS above baseline during one run (longrun: whole "
        "fresh process).",
    )
    load = meta.get("loadavg_start")
    if load and load[0] > meta["machine"]["cores"]:
        console.print(
            f"[yellow]note: load average {load[0]:.1f} at start on {meta['machine']['cores']} "
            "cores: other processes competed for the CPU; absolute rates are low, ratios "
            "within one run are still side by side.[/yellow]"
        )
    for col, just in [("workload", "left"), ("implementation", "left"), ("compile s", "right"),
                      ("run s", "right"), ("traj-steps/s", "right"), ("× oscillax", "right"),
                      ("per CPU-s", "right"), ("× ox (CPU)", "right"),
                      ("peak mem", "right"), ("max |Δ| vs ox", "right"), ("notes", "left")]:
        table.add_column(col, justify=just, overflow="fold")
    for w in report["workloads"]:
        first = True
        for r in w["results"]:
            ok = r["status"] == "ok"
            diff = r.get("max_abs_diff_vs_oscillax")
            table.add_row(
                w["name"] if first else "",
                r["impl"],
                _fmt_s(r["compile_s"]) if ok else "",
                _fmt_s(r["run_s"]) if ok else "",
                _fmt_rate(r["traj_steps_per_s"]) if ok else r["status"],
                _fmt_ratio(r["ratio_to_oscillax"]) if ok else "",
                _fmt_rate(r.get("traj_steps_per_cpu_s")) if ok else "",
                _fmt_ratio(r.get("ratio_to_oscillax_cpu")) if ok else "",
                _fmt_bytes(r["peak_mem_bytes"]) if ok else "",
                "" if diff is None else f"{diff:.2g}",
                r.get("note", ""),
            )
            first = False
        table.add_section()
    console.print(table)

    for w in report["workloads"]:
        x = w.get("extra") or {}
        rate = {r["impl"]: r["traj_steps_per_s"] for r in w["results"] if r["status"] == "ok"}
        if w["name"] == "W2" and "oscillax-sweep" in rate:
            # the target: the atlas engine (diagnostics on) vs the diffrax vmap
            parts = [f"{rate['oscillax-sweep'] / rate[p]:.2f}x {p}"
                     for p in ("diffrax-vmap", "diffrax-opts") if p in rate]
            if parts:
                console.print("W2, atlas engine with its streaming diagnostics: "
                              + ", ".join(parts) + " (target: 4x diffrax-vmap)")
        if w["name"] == "W512" and "paired" in x:
            pr = x["paired"]
            lines = [f"W512 FLOP/s ({x['flop_count']}), from the table's rows:"]
            for impl, f in x["flops_per_s"].items():
                lines.append(f"  {impl:17s} {f / 1e9:8.1f} GFLOP/s")
            lines.append(f"Paired ({pr['rounds']} alternating rounds, best of each): "
                         "GFLOP/s wall, per CPU-s")
            for k, label in (("oscillax", "oscillax"), ("matmul", pr["matmul_shape"]),
                             ("matmul_chain", pr["matmul_chain_shape"])):
                lines.append(f"  {k:17s} {pr[k]['flops_per_s'] / 1e9:8.1f} "
                             f"{pr[k]['flops_per_cpu_s'] / 1e9:8.1f}   {label}")
            frac = x["oscillax_fraction_of_matmul"]
            verdict = "meets" if frac >= x["target_fraction"] else "below"
            lines.append(
                f"  oscillax / matmul = {frac:.1%} ({verdict} the {x['target_fraction']:.0%} "
                f"target); / matmul chain = {x['oscillax_fraction_of_matmul_chain']:.1%}; "
                f"in CPU time {x['oscillax_cpu_fraction_of_matmul']:.1%} and "
                f"{x['oscillax_cpu_fraction_of_matmul_chain']:.1%}"
            )
            med = pr.get("median_round_fraction")
            if med:
                lines.append(f"  round by round (median of {pr['rounds']}): oscillax / matmul = "
                             f"{med['matmul']:.1%}, / matmul chain = {med['matmul_chain']:.1%}")
            console.print("\n".join(lines))
        if w["name"] == "longrun":
            for r in w["results"]:
                e = r.get("extra") or {}
                if r["status"] == "ok" and e:
                    console.print(
                        f"longrun {r['impl']}: peak RSS {_fmt_bytes(e['maxrss_bytes_short'])} "
                        f"at {e['steps_short']:.0e} steps, {_fmt_bytes(e['maxrss_bytes_long'])}"
                        f" at {e['steps_long']:.0e} steps (ratio "
                        f"{e['rss_ratio_long_over_short']:.3f}); gained by the run itself "
                        f"{_fmt_bytes(e.get('run_rss_growth_bytes_short'))} vs "
                        f"{_fmt_bytes(e.get('run_rss_growth_bytes_long'))}"
                    )


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str):
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, timeout=5)
        if out.returncode == 0:
            return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return None


def metadata_block(*, quick: bool, repeats: int, workloads: list[str]) -> dict:
    import jax

    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    return {
        "quick": quick,
        "repeats": repeats,
        "workloads": workloads,
        "machine": {
            "cpu": _cpu_model(),
            "cores": affinity,
            "platform": platform.platform(),
            "memory_bytes": _total_memory(),
        },
        "python": sys.version.split()[0],
        "versions": {d: _version(d) for d in
                     ("oscillax", "jax", "jaxlib", "diffrax", "equinox", "numpy", "scipy",
                      "torch", "torchdiffeq")},
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in jax.devices()],
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "git_commit": _git_commit(),
    }


def _total_memory():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def write_json(report: dict, path: str) -> str:
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    with open(path, "w") as f:
        json.dump(report, f, indent=1, default=_json_default)
        f.write("\n")
    return path


def _json_default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)
