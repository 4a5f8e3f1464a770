"""The fit's output directory: `--overwrite` replaces only the fit's own files, inside a
directory a fit made (its `.oscillax-fit` marker); anything else is refused before training."""

import os

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import oscillax as ox
from oscillax._fit._csv import MARKER_FILE, OWN_FILES
from oscillax.cli import app

FAST = ["--hidden", "2", "--iterations", "3", "--restarts", "1"]


def _csv(path):
    t = np.linspace(0.0, 20.0, 161)
    pd.DataFrame({"t": t, "a": np.sin(1.3 * t)}).to_csv(path, index=False)
    return path


def fit(*args):
    return CliRunner().invoke(app, ["fit", *map(str, args), *FAST])


def one_line_error(res, *fragments):
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert lines[-1].startswith("error: ") or lines[0].startswith("error: "), res.output
    text = " ".join(res.output.split())
    for f in fragments:
        assert f in text, (f, res.output)


def test_overwrite_keeps_the_input_csv_and_unrelated_files(tmp_path):
    out = tmp_path / "proj"
    csv = _csv(tmp_path / "data.csv")
    res = fit(csv, "--out", out)
    assert res.exit_code == 0, res.output
    assert (out / MARKER_FILE).is_file()
    assert {p.name for p in out.iterdir()} == {*OWN_FILES, MARKER_FILE}
    # the user puts the data and notes next to the fit, then refits in place
    inside = _csv(out / "data.csv")
    (out / "notes.txt").write_text("keep me")
    before = (out / "fit.json").stat().st_mtime_ns
    res = fit(inside, "--out", out, "--overwrite")
    assert res.exit_code == 0, res.output
    assert (out / "notes.txt").read_text() == "keep me"
    assert inside.is_file() and pd.read_csv(inside).shape == (161, 2)
    assert (out / "fit.json").stat().st_mtime_ns >= before
    assert {p.name for p in out.iterdir()} == {*OWN_FILES, MARKER_FILE, "data.csv",
                                               "notes.txt"}
    assert ox.load_fit(out).channels == ("a",)


def test_non_fit_directory_is_refused_even_with_overwrite(tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    csv = _csv(proj / "data.csv")
    (proj / "notes.txt").write_text("keep me")
    for extra in ([], ["--overwrite"]):
        res = fit(csv, "--out", proj, *extra)
        one_line_error(res, "is a non-empty directory that no fit wrote", MARKER_FILE,
                       "never overwritten")
        assert sorted(p.name for p in proj.iterdir()) == ["data.csv", "notes.txt"]


def test_out_dot_is_refused_before_training(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    csv = _csv(tmp_path / "data.csv")
    res = CliRunner().invoke(app, ["fit", str(csv), "--out", ".", "--overwrite"])
    one_line_error(res, "--out '.'", "no fit wrote")
    assert os.listdir(tmp_path) == ["data.csv"]


def test_refused_before_any_training(tmp_path, monkeypatch):
    from oscillax._fit import _csv as csv_mod

    def boom(*a, **k):
        raise AssertionError("training started")

    monkeypatch.setattr(csv_mod, "fit", boom)
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "x.txt").write_text("x")
    with pytest.raises(ValueError, match="no fit wrote"):
        csv_mod.fit_csv(_csv(tmp_path / "d.csv"), out=proj, overwrite=True)
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ValueError, match="is a file, not a directory"):
        csv_mod.fit_csv(tmp_path / "d.csv", out=f, overwrite=True)


def test_existing_fit_dir_needs_overwrite_and_empty_dir_is_used(tmp_path):
    csv = _csv(tmp_path / "d.csv")
    empty = tmp_path / "empty"
    empty.mkdir()
    res = fit(csv, "--out", empty)
    assert res.exit_code == 0, res.output
    assert (empty / MARKER_FILE).is_file()
    one_line_error(fit(csv, "--out", empty), "already exists", "--overwrite")
    assert not [p for p in empty.iterdir() if p.name.startswith(f"{MARKER_FILE}.partial")]
