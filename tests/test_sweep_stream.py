"""Large sweeps: the automatic chunk size, results streamed to parquet (written beside the
parts, or merged from them in traj_id order or by buckets), the lazily read table, and
resuming such a run. `_store.MERGE_ROWS` is lowered so that small sweeps take the paths of
large ones."""

import json

import numpy as np
import pandas as pd
import pytest

import oscillax as ox
from oscillax._sweep import _run, _store
from oscillax._sweep._plan import plan

W2 = dict(forms=("pre",), activations=("tanh",), solvers=("euler",), dts=(0.01,), dims=(2,),
          amplitudes=(1.0,), seeds=300, steps=40)
MIXED = dict(forms=("pre", "post"), activations=("identity", "tanh"), solvers=("euler",),
             dts=(0.05, 0.3), dims=(2,), amplitudes=(1.0, 2.0), seeds=12, horizon=6.0)


@pytest.fixture
def streamed(monkeypatch):
    """Runs of more than 16 trajectories are 'large'."""
    monkeypatch.setattr(_store, "MERGE_ROWS", 16)


def test_auto_chunk_size_follows_the_spec_only():
    long = ox.SweepSpec(**{**W2, "seeds": 1_000_000, "steps": 100_000})
    mid = ox.SweepSpec(**{**W2, "seeds": 65536, "steps": 10_000})
    short = ox.SweepSpec(**{**W2, "seeds": 1_000_000, "steps": 1_000})
    assert _run.auto_chunk_size(long) == _run.DEFAULT_CHUNK
    assert _run.auto_chunk_size(mid) == 1 << (_run.AUTO_CHUNK_WORK // 10_000).bit_length() - 1
    assert _run.auto_chunk_size(short) == _run.MAX_CHUNK_ELEMENTS // 2  # the widest for n = 2
    wide_n = ox.SweepSpec(**{**W2, "dims": (64,), "seeds": 1_000_000, "steps": 10})
    assert _run.auto_chunk_size(wide_n) == max(_run.DEFAULT_CHUNK, _run.MAX_CHUNK_ELEMENTS // 64)
    # a group keeps at least AUTO_MIN_CHUNKS chunks (several devices each get one)
    few = ox.SweepSpec(**{**W2, "seeds": 3000, "steps": 10})
    assert _run.auto_chunk_size(few) == _run.DEFAULT_CHUNK
    some = ox.SweepSpec(**{**W2, "seeds": 20_000, "steps": 10})
    assert _run.auto_chunk_size(some) == 2048
    assert len(plan(some, _run.auto_chunk_size(some))) >= _run.AUTO_MIN_CHUNKS
    for s in (long, mid, short, wide_n, few, some):
        c = _run.auto_chunk_size(s)
        assert c & (c - 1) == 0 and c >= _run.DEFAULT_CHUNK


def test_run_records_the_automatic_chunk_size(tmp_path):
    spec = ox.SweepSpec(**{**W2, "seeds": 40})
    res = ox.sweep(spec, out=tmp_path / "run", figures=False)
    info = json.loads((tmp_path / "run" / _store.RUN_FILE).read_text())
    assert info["chunk_size"] == _run.auto_chunk_size(spec)
    pd.testing.assert_frame_equal(res.table, ox.sweep(spec, chunk_size=8).table)


def test_results_written_beside_the_parts_equal_the_in_memory_table(tmp_path, streamed):
    spec = ox.SweepSpec(**W2)
    ref = ox.sweep(spec, chunk_size=64).table
    out = tmp_path / "run"
    res = ox.sweep(spec, out=out, chunk_size=64, figures=False)
    assert isinstance(res, _run._StoredResult)  # the table is read when first used
    assert res.__dict__.get("_table") is None
    assert res.summary["trajectories"] == len(ref)
    assert res.summary["status_counts"] == {k: int(v) for k, v in
                                            ref["status"].value_counts().items()}
    pd.testing.assert_frame_equal(res.table, ref)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "results.parquet"), ref)
    pd.testing.assert_frame_equal(ox.load_sweep(out).table, ref)
    assert len(list((out / "parts").glob("part-*.parquet"))) == len(plan(spec, 64))
    assert not list(out.glob(".*tmp-*"))


@pytest.mark.parametrize("kind", ["in_order", "buckets"])
def test_streamed_merge_equals_the_in_memory_table(tmp_path, streamed, kind):
    spec = ox.SweepSpec(**(W2 if kind == "in_order" else MIXED))
    ref = ox.sweep(spec, chunk_size=32).table
    out = tmp_path / "run"
    ox.sweep(spec, out=out, chunk_size=32, figures=False)
    chunks = plan(spec, 32)
    assert _run._in_traj_order(chunks) == (kind == "in_order")
    (out / "results.parquet").unlink()
    assert _store.merge_parts(out, chunks) is None  # streamed: nothing held
    pd.testing.assert_frame_equal(pd.read_parquet(out / "results.parquet"), ref)
    assert not list(out.glob(".*"))  # no bucket directory or temporary file left


def test_streamed_merge_checks_every_part(tmp_path, streamed):
    spec = ox.SweepSpec(**MIXED)
    out = tmp_path / "run"
    ox.sweep(spec, out=out, chunk_size=32, figures=False)
    chunks = plan(spec, 32)
    p = out / "parts"
    (p / "part-00001.parquet").write_bytes((p / "part-00000.parquet").read_bytes())
    with pytest.raises(_store.RunDirError, match=r"part-00001\.parquet.*does not hold exactly"):
        _store.merge_parts(out, chunks)
    (p / "part-00001.parquet").unlink()
    with pytest.raises(_store.RunDirError, match=r"1 chunk part\(s\) \(e\.g\. 1\) are missing"):
        _store.merge_parts(out, chunks)


@pytest.mark.parametrize("spec_kw", [W2, MIXED], ids=["in_order", "buckets"])
def test_resume_of_a_large_run_gives_the_rows_of_an_uninterrupted_one(tmp_path, streamed,
                                                                      spec_kw):
    spec = ox.SweepSpec(**spec_kw)
    ref = ox.sweep(spec, chunk_size=32).table
    out = tmp_path / "run"
    ox.sweep(spec, out=out, chunk_size=32, figures=False)
    # as if killed: a few parts lost, no results, a half-written results file left behind
    (out / "results.parquet").unlink()
    for i in (1, 3):
        (out / "parts" / f"part-{i:05d}.parquet").unlink()
    (out / ".results.parquet.tmp-99999").write_bytes(b"PAR1 half")
    res = ox.sweep(None, out=out, resume=True, figures=False)
    pd.testing.assert_frame_equal(res.table, ref)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "results.parquet"), ref)
    assert not (out / ".results.parquet.tmp-99999").exists()


def test_parts_hold_exactly_their_chunks_rows(tmp_path, streamed):
    spec = ox.SweepSpec(**MIXED)
    out = tmp_path / "run"
    ox.sweep(spec, out=out, chunk_size=32, figures=False)
    for c in plan(spec, 32):
        ids = pd.read_parquet(out / "parts" / f"part-{c.index:05d}.parquet")["traj_id"]
        np.testing.assert_array_equal(ids, np.sort(c.traj_ids[c.traj_ids >= 0]))


def test_stream_benchmark_child_reports_the_ratio_to_the_engine():
    """The end-to-end child of the streamed sweep: `ox.sweep(spec, out=DIR)` from a fresh
    process beside the engine's own call, with peak RSS."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-m", "oscillax.bench._e2e", "stream", "--seeds", "2048", "--steps",
         "50"], cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads(proc.stdout.strip().splitlines()[-1])
    assert m["traj_steps"] == 2048 * 50 and m["chunk_size"] >= _run.DEFAULT_CHUNK
    for k in ("ox_first_s", "ox_warm_s", "engine_rate", "ox_rate", "rss_warm_mb"):
        assert m[k] > 0, k
    assert m["ratio_warm"] == pytest.approx(m["ox_rate"] / m["engine_rate"])
