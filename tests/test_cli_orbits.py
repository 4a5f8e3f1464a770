"""`oscillax orbits` through `typer.testing.CliRunner`: a 2-D post-tanh network (ω = 1) writes
its table and figures, its periods match THEORY.md (2π as the amplitude goes to 0; 7.714210...
for the orbit through (1, 0)), and every bad value is a one-line error naming the option."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from oscillax.cli import app

WIDE = {"COLUMNS": "250"}
T_TANH_2D = 7.714210439814  # THEORY.md: 2-D post tanh, omega = 1, through (1, 0)
FILES = ("orbits.parquet", "period_amplitude.png", "multipliers.png", "poincare.png")


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args], env=WIDE)


@pytest.fixture(scope="module")
def run_2d(tmp_path_factory):
    out = tmp_path_factory.mktemp("orbits") / "run"
    res = invoke("orbits", "--frequencies", "1", "--amplitudes", "0.001,1,2", "--returns", 4,
                 "--out", out)
    return out, res


def test_orbits_2d_writes_files_and_periods(run_2d):
    out, res = run_2d
    assert res.exit_code == 0, res.output
    for name in FILES:
        assert (out / name).stat().st_size > 0, name
    df = pd.read_parquet(out / "orbits.parquet")
    assert list(df.columns) == ["amplitude", "V0", "period", "max_abs_multiplier", "residual",
                                "status"]
    np.testing.assert_allclose(df["amplitude"], [0.001, 1.0, 2.0])
    assert (df["status"] == "converged").all()
    # the fastest mode of the 2-D rotation is a unit vector in its plane: the amplitude-1
    # start lies on the orbit through (1, 0) up to a rotation, the same level set
    assert abs(df["period"][0] / (2 * math.pi) - 1) < 1e-5
    assert abs(df["period"][1] / T_TANH_2D - 1) < 1e-9
    assert df["period"][2] > df["period"][1] > df["period"][0]  # tanh slows large orbits
    assert np.all(np.diff(df["V0"]) > 0)
    np.testing.assert_allclose(df["max_abs_multiplier"], 1.0, atol=1e-6)  # neutral family
    assert (df["residual"] < 1e-9).all()
    assert "converged" in res.output and "7.71421" in res.output


def test_orbits_refuses_non_empty_out_then_overwrites(run_2d, tmp_path):
    out, _ = run_2d
    res = invoke("orbits", "--frequencies", "1", "--out", out)
    assert res.exit_code == 2 and "--out" in res.output and "--overwrite" in res.output
    keep = tmp_path / "keep.txt"
    keep.write_text("mine")
    (tmp_path / "orbits.parquet").write_text("old")
    # (the arguments of `run_2d`: the same programs, compiled once)
    res = invoke("orbits", "--frequencies", "1", "--amplitudes", "0.001,1,2", "--returns", 4,
                 "--out", tmp_path, "--overwrite")
    assert res.exit_code == 0, res.output
    assert keep.read_text() == "mine"  # not this command's file: untouched
    assert len(pd.read_parquet(tmp_path / "orbits.parquet")) == 3


@pytest.mark.parametrize("args, flag", [
    (["--amplitudes", "1,-2"], "--amplitudes"),
    (["--amplitudes", "a,b"], "--amplitudes"),
    (["--returns", "0"], "--returns"),
    (["--n", "1"], "--n"),
    (["--frequencies", "0"], "--frequencies"),
    (["--n", "4", "--frequencies", "1"], "--n"),
    (["--form", "mid"], "--form"),
    (["--activation", "nope"], "--activation"),
    (["--seed", "-1"], "--seed"),
])
def test_orbits_bad_values(args, flag, tmp_path):
    res = invoke("orbits", *args, "--out", tmp_path / "x")
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and flag in lines[0], res.output
    assert not (tmp_path / "x").exists()


def test_orbits_help_shows_defaults_and_example():
    res = invoke("orbits", "--help")
    assert res.exit_code == 0
    assert "0.2,0.5,1,2" in res.output and "Example" in res.output


def test_root_help_lists_orbits():
    res = invoke("--help")
    assert res.exit_code == 0 and "orbits" in res.output
