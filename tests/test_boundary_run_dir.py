"""The run directory as a transactional store: its lock, damaged and stray parts, damaged
run files; faults injected into a finished run, then resumed, give the uninterrupted table."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest

import oscillax as ox
from oscillax._sweep import _store, plan

SPEC = ox.SweepSpec(forms=("post",), activations=("tanh",), dts=(0.05, 0.1), dims=(2,),
                    amplitudes=(1.0,), seeds=3, horizon=2.0)
CHUNK = 1  # several chunks (6)


@pytest.fixture(scope="module")
def reference():
    return ox.sweep(SPEC, chunk_size=CHUNK, figures=False).table


@pytest.fixture
def finished(tmp_path, reference):
    out = tmp_path / "run"
    res = ox.sweep(SPEC, out=out, chunk_size=CHUNK, figures=False)
    pd.testing.assert_frame_equal(res.table, reference)
    return out


def parts(out):
    return sorted(p.name for p in (out / "parts").iterdir())


def resume(out):
    return ox.sweep(None, out=out, resume=True, figures=False).table


def test_finished_run_holds_no_lock(finished):
    assert not (finished / _store.LOCK_FILE).exists()
    assert len(parts(finished)) == 6


def test_faults_then_resume_equal_an_uninterrupted_run(finished, reference):
    p = finished / "parts"
    (finished / "results.parquet").unlink()
    data = (p / "part-00001.parquet").read_bytes()
    (p / "part-00001.parquet").write_bytes(data[: len(data) // 2])  # truncated
    (p / "part-00002.parquet").unlink()  # deleted
    shutil.copy(p / "part-00003.parquet", p / "part-00003 copy.parquet")  # stray duplicate
    shutil.copy(p / "part-00004.parquet", p / "part-00005.parquet")  # wrong chunk's rows
    (p / ".part-00002.parquet.tmp-99999").write_bytes(b"half")  # a killed writer's temp
    with pytest.warns(_store.RunDirWarning) as rec:
        table = resume(finished)
    msgs = " | ".join(str(w.message) for w in rec)
    assert "part-00003 copy.parquet" in msgs and "only files named exactly" in msgs
    assert "part-00001.parquet" in msgs and "cannot be read" in msgs
    assert "part-00005.parquet" in msgs and "other trajectories" in msgs
    pd.testing.assert_frame_equal(table, reference)
    pd.testing.assert_frame_equal(pd.read_parquet(finished / "results.parquet"), reference)
    assert not (p / ".part-00002.parquet.tmp-99999").exists()
    assert (p / "part-00003 copy.parquet").exists()  # not ours: ignored, never deleted
    assert not (finished / _store.LOCK_FILE).exists()


def test_merge_refuses_a_part_with_other_rows(finished):
    p = finished / "parts"
    shutil.copy(p / "part-00004.parquet", p / "part-00005.parquet")
    r = _store.read_parts
    chunks = plan(SPEC, CHUNK)
    with pytest.raises(_store.RunDirError, match=r"part-00005\.parquet.*does not hold exactly"):
        r(finished, chunks)
    (p / "part-00005.parquet").unlink()
    with pytest.raises(_store.RunDirError, match=r"1 chunk part\(s\) \(e\.g\. 5\) are missing"
                       r".*--resume"):
        r(finished, chunks)


def _lock(out, pid, host=None):
    (out / _store.LOCK_FILE).write_text(json.dumps(
        {"pid": pid, "host": host or socket.gethostname(), "started": time.time()}))


@pytest.fixture
def live_process():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def test_second_writer_and_force_are_refused_while_the_holder_lives(finished, live_process):
    _lock(finished, live_process)
    with pytest.raises(_store.RunDirError, match=rf"cannot resume.*being written by pid "
                       rf"{live_process} on host"):
        resume(finished)
    with pytest.raises(_store.RunDirError, match=rf"refusing to overwrite it.*pid {live_process}"):
        ox.sweep(SPEC, out=finished, chunk_size=CHUNK, force=True, figures=False)
    assert len(parts(finished)) == 6 and (finished / "results.parquet").exists()


def test_stale_lock_is_taken_over_with_a_warning(finished, reference):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # a pid that is not alive any more
    _lock(finished, proc.pid)
    with pytest.warns(_store.RunDirWarning, match=rf"stale lock of pid {proc.pid}"):
        table = resume(finished)
    pd.testing.assert_frame_equal(table, reference)
    assert not (finished / _store.LOCK_FILE).exists()


@pytest.mark.parametrize("text, phrase", [
    ("", "cannot be read as JSON"),
    ('{"chunk_size": 1, "spec_fing', "cannot be read as JSON"),
    ("[1, 2]", "must hold a JSON object"),
    ('{"chunk_size": "x", "spec_fingerprint": "ab", "format": 2}', "lacks a valid `chunk_size`"),
])
def test_damaged_run_json(finished, text, phrase):
    (finished / "run.json").write_text(text)
    with pytest.raises(_store.RunDirError, match=rf"run\.json.*{phrase}.*start a new run"):
        resume(finished)


def test_damaged_spec_in_run_dir(finished):
    (finished / "spec.toml").write_bytes(b"\xff\xfe[sweep")
    with pytest.raises(_store.RunDirError, match=r"cannot resume.*spec\.toml is unusable.*UTF-8"):
        resume(finished)


def test_resume_of_a_missing_directory(tmp_path):
    with pytest.raises(_store.RunDirError, match="does not exist"):
        resume(tmp_path / "nope")


def test_float64_spec_without_x64_creates_nothing(tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text(SPEC.to_toml().replace('"float32"', '"float64"'))
    out = tmp_path / "run"
    env = {**os.environ, "JAX_ENABLE_X64": "0"}
    code = "import oscillax as ox, sys; ox.sweep(sys.argv[1], out=sys.argv[2])"
    r = subprocess.run([sys.executable, "-c", code, str(spec), str(out)], env=env,
                       capture_output=True, text=True)
    assert r.returncode != 0 and "JAX_ENABLE_X64=1" in r.stderr
    assert not out.exists()


def test_concurrent_writer_is_not_disturbed(tmp_path):
    """A live sweep in another process holds the lock: resuming or `--force` from here is
    refused, and the writer finishes with the full table."""
    spec = ox.SweepSpec(forms=("post",), activations=("tanh",), dts=(0.05, 0.1), dims=(2,),
                        amplitudes=(1.0,), seeds=40, horizon=2.0)
    out = tmp_path / "run"
    code = ("import oscillax as ox, sys; s = ox.SweepSpec.from_toml(sys.argv[1]); "
            "ox.sweep(s, out=sys.argv[2], chunk_size=1, figures=False)")
    (tmp_path / "s.toml").write_text(spec.to_toml())
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "s.toml"), str(out)],
                            stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while not (out / _store.LOCK_FILE).exists() and proc.poll() is None:
            assert time.time() < deadline
            time.sleep(0.02)
        if proc.poll() is not None:
            pytest.skip("the writer finished before it could be disturbed")
        with pytest.raises(_store.RunDirError, match=rf"being written by pid {proc.pid}"):
            ox.sweep(spec, out=out, chunk_size=1, force=True, figures=False)
        with pytest.raises(_store.RunDirError, match=rf"cannot resume.*pid {proc.pid}"):
            resume(out)
        assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()
    finally:
        proc.kill()
        proc.wait()
    table = pd.read_parquet(out / "results.parquet")
    ref = ox.sweep(spec, chunk_size=1, figures=False).table
    pd.testing.assert_frame_equal(table, ref)


def test_cli_resume_prints_run_dir_warnings_and_errors(finished, reference, live_process):
    from typer.testing import CliRunner

    from oscillax.cli import app

    p = finished / "parts"
    shutil.copy(p / "part-00003.parquet", p / "part-00003 copy.parquet")
    (p / "part-00002.parquet").unlink()
    res = CliRunner().invoke(app, ["atlas", "--resume", str(finished), "--no-figures"],
                             env={"COLUMNS": "400"})
    assert res.exit_code == 0, res.output
    out = " ".join(res.output.split())
    assert "warning: ignoring" in out and "part-00003 copy.parquet" in out
    assert "figures:" not in out and "Traceback" not in out
    pd.testing.assert_frame_equal(pd.read_parquet(finished / "results.parquet"), reference)
    _lock(finished, live_process)
    res = CliRunner().invoke(app, ["atlas", "--resume", str(finished)], env={"COLUMNS": "400"})
    assert res.exit_code == 2 and "Traceback" not in res.output
    out = " ".join(res.output.split())
    assert f"error: cannot resume: run directory '{finished}' is being written by pid " \
        f"{live_process}" in out


def test_a_failed_atomic_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "summary.json"
    target.write_text("old")

    def fail(p):
        p.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        _store.atomic_write(target, fail)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]
