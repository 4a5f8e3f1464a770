"""`oscillax lyapunov` through `typer.testing.CliRunner`: forward Euler's map on a 2-unit
linear network has the closed-form exponent ln(1 + h²ω²)/(2h) (THEORY.md), Heun's and the
flow's too, the pre-form flow's exponents sum to −nγ; `--out` writes files that parse,
`--json` prints the same report, and every bad value is a one-line error naming the option."""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

import oscillax as ox
from oscillax.cli import app

WIDE = {"COLUMNS": "200"}
H = 0.1
EULER = math.log(1 + H**2) / (2 * H)  # 0.0497516542658, omega = 1
FILES = ("lyapunov.json", "exponents.npy", "checkpoints.npy", "convergence.png")


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args], env=WIDE)


def report(res) -> dict:
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


@pytest.fixture(scope="module")
def euler_2d(tmp_path_factory):
    """Two random 2-unit linear networks (spectral radius 1: omega = 1) under Euler."""
    out = tmp_path_factory.mktemp("lyap") / "run"
    res = invoke("lyapunov", "--activation", "identity", "--dim", 2, "--networks", 2,
                 "--solver", "euler", "--dt", H, "--steps", 300, "--json", "--out", out)
    return out, res


def test_euler_matches_closed_form(euler_2d):
    _, res = euler_2d
    r = report(res)
    E = np.asarray(r["exponents"])
    assert E.shape == (2, 2)
    np.testing.assert_allclose(E, EULER, rtol=1e-12)
    np.testing.assert_allclose(r["sum"], 2 * EULER, rtol=1e-12)
    th = r["theory"]
    assert th["exact"] and th["max_abs_error"] < 1e-13
    np.testing.assert_allclose(th["exponents"], EULER, rtol=1e-12)
    np.testing.assert_allclose(th["omegas"], 1.0, rtol=1e-12)
    assert r["parameters"]["dtype"] == "float64" and r["per"] == "time"
    assert r["time"] == pytest.approx(300 * H)
    C = np.asarray(r["checkpoints"])  # (B, m, k), the last row the result
    assert C.shape[0] == 2 and C.shape[2] == 2 and len(r["checkpoint_times"]) == C.shape[1]
    np.testing.assert_allclose(C[:, -1], E, rtol=0, atol=0)
    assert r["convergence"]["max_last_change"] < 1e-12  # exact after any number of steps
    assert r["nonfinite_members"] == []


def test_out_files_exist_and_parse(euler_2d):
    out, res = euler_2d
    r = report(res)
    for name in FILES:
        assert (out / name).stat().st_size > 0, name
    assert not list(out.glob(".*tmp*"))  # written atomically: no temporaries left
    saved = json.loads((out / "lyapunov.json").read_text())
    assert saved["files"] == list(FILES) and r["files"] == list(FILES)
    np.testing.assert_array_equal(np.load(out / "exponents.npy"), r["exponents"])
    chk = np.load(out / "checkpoints.npy")
    assert chk.shape == np.asarray(r["checkpoints"]).shape
    np.testing.assert_allclose(saved["exponents"], r["exponents"], rtol=0)
    assert (out / "convergence.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_refuses_non_empty_out_then_overwrites(euler_2d, tmp_path):
    out, _ = euler_2d
    res = invoke("lyapunov", "--dim", 2, "--networks", 1, "--out", out)
    assert res.exit_code == 2 and "--out" in res.output and "--overwrite" in res.output
    keep = tmp_path / "keep.txt"
    keep.write_text("mine")
    (tmp_path / "exponents.npy").write_text("old")
    # the fixture's run again (compiled already), into a directory of the user's
    res = invoke("lyapunov", "--activation", "identity", "--dim", 2, "--networks", 2,
                 "--solver", "euler", "--dt", H, "--steps", 300, "--out", tmp_path,
                 "--overwrite")
    assert res.exit_code == 0, res.output
    assert keep.read_text() == "mine"  # not this command's file: untouched
    assert np.load(tmp_path / "exponents.npy").shape == (2, 2)
    # the table: exponents, the closed form, the checkpoints and the files
    assert "closed form" in res.stdout and "convergence" in res.stdout
    assert f"{EULER:.4g}" in res.stdout and "lyapunov.json" in res.stdout


def test_matrix_states_heun_and_k(tmp_path):
    """A user's A (omega = 2) with three given states; Heun's map; only the largest
    exponent (--k 1); and float32."""
    A = np.asarray(ox.skew_from_frequencies([2.0]), np.float64)
    np.save(tmp_path / "A.npy", A)
    np.save(tmp_path / "x0.npy", np.array([[1.0, 0.0], [0.0, 3.0], [-0.5, 0.5]]))
    heun = math.log(1 + (2 * H) ** 4 / 4) / (2 * H)
    r = report(invoke("lyapunov", "--matrix", tmp_path / "A.npy", "--x0", tmp_path / "x0.npy",
                      "--activation", "identity", "--solver", "heun", "--dt", H, "--steps",
                      100, "--k", 1, "--json"))
    assert np.asarray(r["exponents"]).shape == (3, 1)
    np.testing.assert_allclose(r["exponents"], heun, rtol=1e-10)
    assert r["parameters"]["A"]["matrix"].endswith("A.npy")
    r32 = report(invoke("lyapunov", "--matrix", tmp_path / "A.npy", "--x0", "1,0",
                        "--activation", "identity", "--solver", "euler", "--dt", H, "--steps",
                        100, "--no-x64", "--json"))
    assert r32["parameters"]["dtype"] == "float32"
    np.testing.assert_allclose(r32["exponents"], math.log(1 + (2 * H) ** 2) / (2 * H),
                               rtol=1e-5)


def test_large_batch_runs_in_chunks(tmp_path, monkeypatch):
    """A batch split into calls of 2 networks (the last one padded), as a large batch is
    split for the progress bar: each member keeps its own closed-form exponent, in order.
    (Calls of 2 members, n = 2, 300 Euler steps: the fixture's compiled program.)"""
    from oscillax.cli import _lyapunov

    assert _lyapunov._chunks(16) == [(0, 16)]
    assert _lyapunov._chunks(130) == [(0, 64), (64, 128), (128, 130)]
    monkeypatch.setattr(_lyapunov, "CHUNK_MIN", 2)
    assert _lyapunov._chunks(5) == [(0, 2), (2, 4), (4, 5)]
    omegas = np.array([0.5, 0.8, 1.0, 1.5, 2.0])
    np.save(tmp_path / "A.npy", np.stack([np.asarray(ox.skew_from_frequencies([w]))
                                          for w in omegas]))
    r = report(invoke("lyapunov", "--matrix", tmp_path / "A.npy", "--activation", "identity",
                      "--solver", "euler", "--dt", H, "--steps", 300, "--json"))
    want = np.log1p((H * omegas) ** 2) / (2 * H)
    np.testing.assert_allclose(np.asarray(r["exponents"]), want[:, None] * np.ones(2),
                               rtol=1e-12)


@pytest.mark.slow
def test_pre_form_flow_sum_rule_and_batch():
    """dopri5 measures the flow: the pre-form exponents sum to −nγ (tr J = −nγ), and the
    batch of random networks equals the library called one network at a time."""
    gamma, n = 0.1, 3
    r = report(invoke("lyapunov", "--form", "pre", "--gamma", gamma, "--dim", n,
                      "--networks", 2, "--solver", "dopri5", "--dt", 0.5, "--steps", 20,
                      "--seed", 3, "--json"))
    assert r["parameters"]["map"] == "flow"
    np.testing.assert_allclose(r["sum"], -n * gamma, atol=1e-8)
    assert r["sum_rule"]["expected"] == pytest.approx(-n * gamma)
    assert r["sum_rule"]["max_abs_error"] < 1e-8
    # member b is ox.random_skew(fold_in(key_a, b)) (float32, rescaled in float64) from
    # x0 = its random direction
    key_a, key_x = jax.random.split(jax.random.PRNGKey(3))
    A = np.asarray(ox.random_skew(jax.random.fold_in(key_a, 1), n, 1.0, dtype=jnp.float32),
                   np.float64)
    A = jnp.asarray(A / np.linalg.norm(A, 2))
    d = jax.random.normal(jax.random.fold_in(key_x, 1), (n,), jnp.float32).astype(jnp.float64)
    one = ox.lyapunov_spectrum(ox.PreActivation(A, "tanh", gamma=gamma), d / jnp.linalg.norm(d),
                               dt=0.5, steps=20, solver="dopri5")
    np.testing.assert_allclose(r["exponents"][1], one.exponents, rtol=0, atol=1e-12)


@pytest.mark.parametrize("args, flag", [
    (["--dt", "-0.1"], "--dt"),
    (["--dt", "0"], "--dt"),
    (["--solver", "rk5"], "--solver"),
    (["--k", "3", "--dim", "2"], "--k"),
    (["--k", "0"], "--k"),
    (["--steps", "0"], "--steps"),
    (["--transient", "-1"], "--transient"),
    (["--renorm-every", "0"], "--renorm-every"),
    (["--form", "mid"], "--form"),
    (["--activation", "nope"], "--activation"),
    (["--gamma", "0.1"], "--gamma"),  # post form
    (["--gamma", "-1", "--form", "pre"], "--gamma"),
    (["--dim", "0"], "--dim"),
    (["--networks", "0"], "--networks"),
    (["--spectral-radius", "0"], "--spectral-radius"),
    (["--amplitude", "-1"], "--amplitude"),
    (["--seed", "-1"], "--seed"),
    (["--x0", "1,0,0", "--dim", "2"], "--x0"),
    (["--x0", "a,b"], "--x0"),
    (["--matrix", "missing.npy"], "--matrix"),
    (["--x0", "1,0", "--amplitude", "2", "--dim", "2"], "--amplitude"),
])
def test_bad_values(args, flag, tmp_path):
    res = invoke("lyapunov", *args, "--out", tmp_path / "x")
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and flag in lines[0], res.output
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("content, words", [
    (np.ones((2, 3)), "square"),
    (np.array([[0.0, 1.0], [1.0, 0.0]]), "skew-symmetric"),
    (np.array([[0.0, np.nan], [0.0, 0.0]]), "NaN"),
    (np.array([[0, 1j], [-1j, 0]]), "real numbers"),
    (b"not an array", "readable .npy"),
])
def test_bad_matrix(content, words, tmp_path):
    path = tmp_path / "A.npy"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        np.save(path, content)
    res = invoke("lyapunov", "--matrix", path)
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--matrix" in lines[0] and words in lines[0], res.output
    for flag in ("--networks", "--spectral-radius"):
        res = invoke("lyapunov", "--matrix", path, flag, 2)
        assert res.exit_code == 2 and flag in res.output, res.output


def test_help_and_root_help():
    res = invoke("lyapunov", "--help")
    assert res.exit_code == 0 and "Example" in res.output and "--matrix" in res.output
    res = invoke("--help")
    assert res.exit_code == 0 and "lyapunov" in res.output
