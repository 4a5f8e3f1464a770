"""Scale-out: several devices and several processes give the table one device gives.

The multi-device and multi-process runs happen in subprocesses (a JAX process fixes its
device count and its `jax.distributed` membership at start-up); they compare bit for bit
(`check_exact=True`) with a single-device, single-process run of the same spec and chunk
size. The in-process tests cover placement, batching, set-up and the file-based
coordination without `jax.distributed`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest
from helpers import without_session_cache

import oscillax as ox
from oscillax import _distributed, _sweep
from oscillax._sweep import _store

# Small, but several compiled groups (n = 2 and 3, both forms, two solvers), step counts that
# vary (so groups are cut into several chunks) and one diverging dt.
SPEC_DEVICES = """
[sweep]
forms = ["pre", "post"]
activations = ["tanh"]
solvers = ["euler", "rk4"]
dts = [0.02, 0.1, 0.3, 0.9]
dims = [2, 3]
amplitudes = [1.0, 3.0]
seeds = 2
spectral_radius = 3.0
horizon = 10.0
"""

SPEC_PROCESSES = """
[sweep]
forms = ["pre", "post"]
activations = ["tanh"]
solvers = ["euler"]
dts = [0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8]
dims = [3]
amplitudes = [1.0, 3.0]
seeds = 3
spectral_radius = 3.0
horizon = 20.0
"""

PROCESS_TIMEOUT = 120


def _env(devices: int = 1, **extra) -> dict:
    """A clean environment for a child JAX process on `devices` host CPU devices."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OSCILLAX_", "SLURM_", "JAX_COORDINATOR", "XLA_FLAGS"))}
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["JAX_PLATFORMS"] = "cpu"
    env["OSCILLAX_CACHE_DIR"] = "off"  # no compilation cache in the home directory
    env["OSCILLAX_PROGRAM_CACHE"] = "0"  # (only the test session's, conftest.py)
    env.update(extra)
    return env


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _atlas(*args: str, env: dict, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "oscillax.cli", "atlas", *args, "--no-figures"]
    return subprocess.Popen(cmd, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)


def _distributed_args(port: int, pid: int, n: int = 2) -> list[str]:
    return ["--coordinator", f"127.0.0.1:{port}", "--num-processes", str(n),
            "--process-id", str(pid)]


def _wait(procs, logs, timeout=PROCESS_TIMEOUT) -> list[int]:
    t0 = time.monotonic()
    rcs = []
    for p in procs:
        try:
            rcs.append(p.wait(timeout=max(1.0, timeout - (time.monotonic() - t0))))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise AssertionError("a child process hung:\n" + "\n".join(
                Path(f).read_text()[-3000:] for f in logs)) from None
    return rcs


def _tail(log: Path) -> str:
    return "\n".join(line for line in log.read_text().splitlines()
                     if not line.startswith(("I0000", "W0000")))[-3000:]


def _check_table(table: pd.DataFrame, ref: pd.DataFrame) -> None:
    assert table["traj_id"].is_unique
    assert table["traj_id"].tolist() == list(range(len(ref)))
    pd.testing.assert_frame_equal(table, ref, check_exact=True)


# --------------------------------------------------------------------------------------
# several devices in one process
# --------------------------------------------------------------------------------------
_SWEEP_SCRIPT = """
import json, sys, jax, oscillax as ox
res = ox.sweep(sys.argv[1], chunk_size=int(sys.argv[2]))
res.table.to_parquet(sys.argv[3])
print(json.dumps({"local_devices": jax.local_device_count(),
                  "device_count": res.summary["device"]["device_count"]}))
"""


@pytest.mark.slow
def test_four_devices_give_the_one_device_table(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC_DEVICES)
    procs, logs = [], []
    for d in (1, 4):
        logs.append(tmp_path / f"dev{d}.log")
        procs.append(subprocess.Popen(
            [sys.executable, "-c", _SWEEP_SCRIPT, str(spec), "1024", str(tmp_path / f"d{d}.pq")],
            env=_env(d), stdout=subprocess.PIPE, stderr=open(logs[-1], "w"), text=True))
    rcs = _wait(procs, logs)
    assert rcs == [0, 0], [_tail(f) for f in logs]
    info = [json.loads(p.stdout.read().strip().splitlines()[-1]) for p in procs]
    assert info[0]["local_devices"] == 1 and info[1]["local_devices"] == 4
    one, four = (pd.read_parquet(tmp_path / f"d{d}.pq") for d in (1, 4))
    assert len(one) == ox.SweepSpec.from_toml(spec).n_trajectories
    _check_table(four, one)


@pytest.mark.parametrize("value,code,expect", [
    ("3", 0, '"device_count": 3'),
    ("0", 2, "OSCILLAX_CPU_DEVICES must be >= 1; got 0"),
    ("many", 2, "OSCILLAX_CPU_DEVICES='many' is not an integer"),
])
def test_the_command_makes_cpu_devices(value, code, expect):
    """`oscillax` asks JAX for CPU devices (one per core, or OSCILLAX_CPU_DEVICES) unless
    XLA_FLAGS already sets a count; a bad value is a one-line error, not a traceback."""
    env = _env(OSCILLAX_CPU_DEVICES=value)
    del env["XLA_FLAGS"]
    p = subprocess.run([sys.executable, "-m", "oscillax.cli", "devices", "--json"], env=env,
                       capture_output=True, text=True, timeout=PROCESS_TIMEOUT)
    assert p.returncode == code, p.stderr
    assert expect in (p.stdout if code == 0 else p.stderr)
    assert "Traceback" not in p.stderr


def test_placement_shards_the_batch_axis():
    place = _distributed.make_place()
    assert place.device_count == jax.local_device_count()
    x = place(np.zeros((3, 4 * place.device_count), np.float32), 1)
    assert x.sharding.spec == jax.sharding.PartitionSpec(None, "batch")
    r = place(np.zeros((3, 3), np.float32), None)
    assert r.sharding.spec == jax.sharding.PartitionSpec(None, None)
    assert _distributed.round_up(5, 4) == 8 and _distributed.round_up(1, 1) == 1
    if jax.local_device_count() == 1:
        assert _distributed.default_place() is None


def test_chunks_go_side_by_side_only_within_a_group():
    spec = ox.SweepSpec(forms=("pre", "post"), activations=("tanh",), dts=(0.01, 0.1, 0.5),
                        dims=(2, 40), amplitudes=(1.0, 2.0), seeds=3, horizon=5.0)
    rows = _sweep.grid(spec).set_index("traj_id", drop=False)
    chunks = _sweep.plan(spec, 1024)
    batches = list(_sweep.side_by_side(chunks, 4))
    assert [c.index for b in batches for c in b] == [c.index for c in chunks]
    for b in batches:
        assert 1 <= len(b) <= 4
        assert len({(c.dim, c.solver, c.width) for c in b}) == 1
        if b[0].dim > 32:  # a shared A: one seed per call
            assert len({int(s) for c in b for s in rows.loc[c.traj_ids, "seed"]}) == 1
    assert max(len(b) for b in batches) > 1


def test_side_by_side_chunks_give_the_same_rows():
    """Several chunks in one call (one slot each, one device here) = one chunk per call."""
    spec = ox.SweepSpec(forms=("post",), activations=("tanh",), dts=(0.02, 0.1, 0.7),
                        dims=(3,), amplitudes=(1.0, 2.0), seeds=3, horizon=5.0)
    rows = _sweep.grid(spec).set_index("traj_id", drop=False)
    chunks = _sweep.plan(spec, 1024)
    alone = pd.concat([_sweep.run_chunk(spec, c, rows) for c in chunks])
    together = pd.concat(_sweep.run_chunks(spec, chunks[:3], rows, slots=4)
                         + _sweep.run_chunks(spec, chunks[3:], rows, slots=4))
    pd.testing.assert_frame_equal(together, alone, check_exact=True)


# --------------------------------------------------------------------------------------
# set-up of jax.distributed (its initialize is recorded, not run, in this process)
# --------------------------------------------------------------------------------------
@pytest.fixture
def fake_initialize(monkeypatch):
    calls = []
    monkeypatch.setattr(jax.distributed, "initialize", lambda *a, **k: calls.append((a, k)))
    for k in ("SLURM_NTASKS", "SLURM_PROCID", "OSCILLAX_HEARTBEAT_TIMEOUT"):
        monkeypatch.delenv(k, raising=False)
    return calls


def test_setup_single_process_and_errors(fake_initialize, monkeypatch):
    assert _distributed.setup(None, None, None) == {}
    with pytest.raises(ValueError, match="needs all of"):
        _distributed.setup("127.0.0.1:1234", 2, None)
    with pytest.raises(ValueError, match="process-id must be in"):
        _distributed.setup("127.0.0.1:1234", 2, 2)
    with pytest.raises(ValueError, match="HOST:PORT"):
        _distributed.setup("127.0.0.1", 2, 0)
    monkeypatch.setenv("SLURM_NTASKS", "4")
    monkeypatch.setenv("SLURM_PROCID", "0")
    assert _distributed.setup(None, None, None) == {}  # e.g. a batch script: one process
    monkeypatch.setenv("SLURM_PROCID", "2")
    with pytest.raises(ValueError, match="no --coordinator"):
        _distributed.setup(None, None, None)
    assert fake_initialize == []


def test_setup_takes_count_and_id_from_slurm(fake_initialize, monkeypatch):
    monkeypatch.setenv("SLURM_NTASKS", "4")
    monkeypatch.setenv("SLURM_PROCID", "3")
    monkeypatch.setenv("OSCILLAX_HEARTBEAT_TIMEOUT", "30")
    assert _distributed.setup("node1:4567", None, None) == {
        "process_index": 3, "process_count": 4}
    (args, kwargs), = fake_initialize
    assert args == ("node1:4567",)
    assert kwargs == {"num_processes": 4, "process_id": 3,
                      "cluster_detection_method": "deactivate",
                      "heartbeat_timeout_seconds": 30}
    # flags win over SLURM's variables
    assert _distributed.setup("node1:4567", 2, 1) == {"process_index": 1, "process_count": 2}


# --------------------------------------------------------------------------------------
# several processes without jax.distributed (file-based coordination), in this process
# --------------------------------------------------------------------------------------
def test_processes_without_jax_distributed_share_a_run(tmp_path):
    spec = ox.SweepSpec(forms=("pre", "post"), activations=("tanh",), dts=(0.05, 0.2, 0.6),
                        dims=(2,), amplitudes=(1.0, 2.0), seeds=2, horizon=5.0)
    ref = ox.sweep(spec, chunk_size=4).table
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="needs `out`"):
        ox.sweep(spec, chunk_size=4, process_index=0, process_count=2)
    r0 = ox.sweep(spec, out, chunk_size=4, figures=False, process_index=0, process_count=2)
    assert r0.summary == {} and not (out / _store.RESULTS_FILE).exists()  # 1 still to run
    r1 = ox.sweep(spec, out, chunk_size=4, figures=False, process_index=1, process_count=2)
    assert r1.summary == {} and not (out / _store.RESULTS_FILE).exists()  # 1 never merges
    n_chunks = len(_sweep.plan(spec, 4))
    assert _store.done_chunks(out) == set(range(n_chunks))
    merged = ox.sweep(None, out, resume=True, figures=False)  # merges, computes nothing
    _check_table(merged.table, ref)
    _check_table(pd.read_parquet(out / _store.RESULTS_FILE), ref)


# --------------------------------------------------------------------------------------
# two processes with jax.distributed on 127.0.0.1, through the CLI
# --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_two_processes_give_the_single_process_table(tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC_PROCESSES)
    port = _free_port()
    out = tmp_path / "run"
    logs = [tmp_path / f"p{i}.log" for i in range(2)] + [tmp_path / "ref.log"]
    procs = [_atlas(str(spec), "--out", str(out), "--chunk-size", "4",
                    *_distributed_args(port, i), env=_env(1), log=logs[i]) for i in range(2)]
    procs.append(_atlas(str(spec), "--out", str(tmp_path / "ref"), "--chunk-size", "4",
                        env=_env(1), log=logs[2]))
    rcs = _wait(procs, logs)
    assert rcs == [0, 0, 0], [_tail(f) for f in logs]
    assert "finished its share" in logs[1].read_text()  # process 0 merged
    ref = pd.read_parquet(tmp_path / "ref" / _store.RESULTS_FILE)
    _check_table(pd.read_parquet(out / _store.RESULTS_FILE), ref)
    summary = json.loads((out / _store.SUMMARY_FILE).read_text())
    assert summary["device"]["process_count"] == 2
    assert summary["trajectories"] == len(ref)


@pytest.mark.slow
def test_killed_process_resumes_to_the_same_table(tmp_path):
    """SIGKILL process 1 after its first part; process 0 finishes its own share and ends
    (JAX's heartbeat check notices the dead peer); both resume; every row once."""
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC_PROCESSES.replace('forms = ["pre", "post"]', 'forms = ["post"]'))
    out = tmp_path / "run"
    env = _env(1, OSCILLAX_HEARTBEAT_TIMEOUT="10")
    port = _free_port()
    logs = [tmp_path / f"p{i}.log" for i in range(2)] + [tmp_path / "ref.log"]
    # both are killed (1 by the test, 0 by JAX): no writes into the session's shared cache
    procs = [_atlas(str(spec), "--out", str(out), "--chunk-size", "2",
                    *_distributed_args(port, i), env=without_session_cache(env), log=logs[i])
             for i in range(2)]
    ref_proc = _atlas(str(spec), "--out", str(tmp_path / "ref"), "--chunk-size", "2",
                      env=_env(1), log=logs[2])
    n_chunks = len(_sweep.plan(ox.SweepSpec.from_toml(spec), 2))
    t0 = time.monotonic()
    while not any(i % 2 for i in _store.done_chunks(out)):
        assert procs[1].poll() is None, _tail(logs[1])
        assert time.monotonic() - t0 < PROCESS_TIMEOUT, _tail(logs[1])
        time.sleep(0.05)
    procs[1].send_signal(signal.SIGKILL)
    rc0, rc1 = _wait(procs, logs)
    assert rc1 == -signal.SIGKILL
    assert rc0 != 0  # JAX ends the survivor once the peer's heartbeats stop
    done = _store.done_chunks(out)
    assert set(range(0, n_chunks, 2)) <= done  # process 0 finished its share first
    assert len(done) < n_chunks and not (out / _store.RESULTS_FILE).exists()

    port = _free_port()
    procs = [_atlas("--resume", str(out), *_distributed_args(port, i), env=env, log=logs[i])
             for i in range(2)]
    rcs = _wait(procs + [ref_proc], logs)
    assert rcs == [0, 0, 0], [_tail(f) for f in logs]
    assert _store.done_chunks(out) == set(range(n_chunks))
    ref = pd.read_parquet(tmp_path / "ref" / _store.RESULTS_FILE)
    _check_table(pd.read_parquet(out / _store.RESULTS_FILE), ref)
