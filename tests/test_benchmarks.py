"""Smoke test of the benchmark suite (`python -m benchmarks --quick`): no timing assertions.

The suite runs in a subprocess so it gets JAX's default configuration (this test session
enables x64 in conftest.py; the benchmarks are float32).
"""

import importlib.util
import json
import math
import os
import subprocess
import sys
import warnings

import pytest
from helpers import without_session_cache

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env():
    # the suite sets up its own compilation caches (cold and warm): not the session's
    env = without_session_cache(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("JAX_PLATFORMS", "cpu")
    return env


@pytest.mark.slow
def test_quick_suite_writes_every_implementation(tmp_path):
    from oscillax.bench._workloads import WORKLOADS

    out = tmp_path / "bench.json"
    proc = subprocess.run(
        # one BLAS thread for the numpy peer: beside the other xdist worker, multi-threaded
        # BLAS on W512's small matrices thrashes (seconds per call instead of milliseconds)
        [sys.executable, "-m", "benchmarks", "--quick", "--repeats", "1", "--peer-threads", "1",
         "--out", str(out)],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "oscillax" in proc.stdout  # the table was printed
    report = json.loads(out.read_text())
    assert report["meta"]["quick"] is True
    assert report["meta"]["peer_threads"]["requested"] == 1
    assert [w["name"] for w in report["workloads"]] == list(WORKLOADS)

    for w in report["workloads"]:
        results = {r["impl"]: r for r in w["results"]}
        if w["name"] == "longrun":
            expected = WORKLOADS["longrun"](True, 1).params["impls"]
        else:
            expected = [impl.name for impl in WORKLOADS[w["name"]](True, 1).impls()]
        assert list(results) == expected, w["name"]
        for name, r in results.items():
            where = f"{w['name']}/{name}: {r.get('note')}"
            if r["status"] == "skipped":
                # Only optional peers (and data) may be skipped, only when not installed.
                optional = {"torchdiffeq": ("torch", "torchdiffeq"), "jaxcont hopf": ("jaxcont",),
                            "ox.fit lynx": ("pmdarima",)}
                assert name in optional, where
                peer = optional[name]
                assert any(importlib.util.find_spec(m) is None for m in peer), where
                continue
            if name == "oscillax-sweep" and r["status"] == "error":
                # The atlas engine's internal API is not the benchmarks' to pin: report it.
                warnings.warn(f"benchmarks cannot call the sweep engine: {where}", stacklevel=1)
                continue
            assert r["status"] == "ok", where
            assert r["traj_steps"] > 0, where
            assert r["traj_steps_per_s"] > 0 and math.isfinite(r["traj_steps_per_s"]), where
            assert r["run_s"] > 0 and r["compile_s"] >= 0, where
            assert r["ratio_to_oscillax"] > 0, where
        base = "oscillax" if "oscillax" in results else next(iter(results))
        assert results[base]["ratio_to_oscillax"] == pytest.approx(1.0)

    by_name = {w["name"]: w for w in report["workloads"]}
    w512 = by_name["W512"]["extra"]
    for k in ("oscillax", "matmul", "matmul_chain"):
        assert w512["paired"][k]["flops_per_s"] > 0
    assert w512["oscillax_fraction_of_matmul"] > 0
    # Same Euler map in float32: the peers agree with oscillax's final states.
    for name in ("oscillax-sweep", "diffrax-vmap", "diffrax-opts", "numpy-loop"):
        r = next(r for r in by_name["W2"]["results"] if r["impl"] == name)
        if r["status"] == "ok":
            assert r["max_abs_diff_vs_oscillax"] < 1e-3, name
    long_ox = by_name["longrun"]["results"][0]["extra"]
    assert long_ox["maxrss_bytes_short"] > 0 and long_ox["maxrss_bytes_long"] > 0


def test_unknown_workload_is_an_error():
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--workloads", "W3"],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "unknown workload" in proc.stderr and "W2" in proc.stderr


def test_cli_has_bench_command():
    from typer.testing import CliRunner

    from oscillax.cli import app

    res = CliRunner().invoke(app, ["bench", "--help"])
    assert res.exit_code == 0, res.output
    assert "--quick" in res.output and "--workloads" in res.output


def test_sweep_script_child_measures_both_and_agrees():
    """The end-to-end child: `ox.sweep` from a fresh script and the diffrax vmap on the same
    random matrices and starts give the same final norms (float32, 200 Euler steps)."""
    proc = subprocess.run(
        [sys.executable, "-m", "oscillax.bench._e2e", "sweep", "--seeds", "64", "--steps", "200"],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads(proc.stdout.strip().splitlines()[-1])
    assert m["traj_steps"] == 64 * 200
    for k in ("ox_first_s", "ox_warm_s", "diffrax_first_s", "diffrax_warm_s"):
        assert m[k] > 0, k
    assert m["max_rel_diff_final_norm"] < 1e-4
