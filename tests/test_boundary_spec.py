"""The sweep spec boundary: every bad TOML or Python spec is one `SpecError` that names
the key, shows what was received and says the fix; nothing is created for a refused spec."""

import re

import pytest
from typer.testing import CliRunner

import oscillax as ox
from oscillax._sweep._spec import MAX_STEPS, SpecError
from oscillax.cli import app

BASE = '[sweep]\nforms = ["post"]\nactivations = ["tanh"]\ndts = [0.1]\nseeds = 1\n'


def from_text(tmp_path, text, name="s.toml"):
    p = tmp_path / name
    p.write_text(text) if isinstance(text, str) else p.write_bytes(text)
    return ox.SweepSpec.from_toml(p)


@pytest.mark.parametrize("steps", [2**31, 4294967301, 10**30])
def test_steps_above_int32_are_refused(steps):
    with pytest.raises(SpecError, match=rf"`steps` must be at most 2\*\*31 - 1.*int32.*got "
                       rf"{steps}"):
        ox.SweepSpec(steps=steps)


def test_steps_at_the_bound_are_accepted():
    assert ox.SweepSpec(steps=MAX_STEPS).steps_for(0.1) == MAX_STEPS


@pytest.mark.parametrize("horizon, dts", [(1e9, (1e-3,)), (1e300, (0.1,)), (1.0, (5e-324,))])
def test_horizon_over_dt_above_int32_is_refused(horizon, dts):
    with pytest.raises(SpecError, match=r"`horizon` needs ceil\(horizon / dt\).*2\*\*31 - 1.*"
                       r"shorter horizon or larger `dts`"):
        ox.SweepSpec(horizon=horizon, dts=dts)


def test_horizon_steps_in_toml(tmp_path):
    with pytest.raises(SpecError, match=r"`steps` must be at most"):
        from_text(tmp_path, BASE + "steps = 4294967301\n")


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("key, value, want", [
    ("divergence_threshold", 0.0, "> 1"),
    ("divergence_threshold", -1e6, "> 1"),
    ("divergence_threshold", NAN, "> 1"),
    ("divergence_threshold", INF, "> 1"),
    ("conserve_tol", NAN, "> 0"),
    ("conserve_tol", 0.0, "> 0"),
    ("conserve_max_drift", -0.1, "> 0"),
    ("exp_ratio", 0.0, "> 0"),
    ("min_rate", -1e-7, ">= 0"),
    ("min_log_growth", NAN, ">= 0"),
    ("escape_ratio", 0.5, "> 1"),
    ("collapse_speed", INF, "> 0"),
])
def test_threshold_ranges(key, value, want):
    with pytest.raises(SpecError, match=rf"\[thresholds\] `{key}` must be a finite number "
                       rf"{re.escape(want)}; got {re.escape(repr(value))}"):
        ox.SweepSpec(thresholds=ox.Thresholds(**{key: value}))


@pytest.mark.parametrize("value", [1.5, -1, 2.0, True])
def test_min_crossings_must_be_a_nonnegative_integer(value):
    with pytest.raises(SpecError, match=r"\[thresholds\] `min_crossings` must be an integer "
                       r">= 0"):
        ox.SweepSpec(thresholds=ox.Thresholds(min_crossings=value))


def test_threshold_limits_that_make_sense_are_accepted():
    th = ox.Thresholds(min_rate=0.0, min_log_growth=0.0, min_crossings=0,
                       divergence_threshold=1.5)
    assert ox.SweepSpec(thresholds=th).thresholds == th


@pytest.mark.parametrize("line, phrase", [
    ("divergence_threshold = nan", r"\[thresholds\] `divergence_threshold` must be a finite"),
    ("min_crossings = 1.5", r"\[thresholds\] `min_crossings` must be an integer"),
    ('conserve_tol = "small"', r"\[thresholds\] `conserve_tol` must be a number"),
])
def test_thresholds_in_toml(tmp_path, line, phrase):
    with pytest.raises(SpecError, match=phrase):
        from_text(tmp_path, BASE + "steps = 10\n[thresholds]\n" + line + "\n")


@pytest.mark.parametrize("text, phrase", [
    ("sweep = 3\n", r"`sweep` must be a table .*got int 3"),
    ('sweep = "x"\n', r"`sweep` must be a table"),
    (BASE + "steps = 10\nthresholds = 1\n", r"unknown key"),
    ("thresholds = 1\n" + BASE + "steps = 10\n", r"`thresholds` must be a table"),
])
def test_wrong_toml_types(tmp_path, text, phrase):
    with pytest.raises(SpecError, match=phrase):
        from_text(tmp_path, text)


def test_directory_given_as_spec(tmp_path):
    with pytest.raises(SpecError, match=r"is a directory, not a spec file"):
        ox.SweepSpec.from_toml(tmp_path)
    with pytest.raises(SpecError, match=r"is a directory, not a spec file"):
        ox.sweep(tmp_path, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_non_utf8_spec(tmp_path):
    with pytest.raises(SpecError, match=r"is not UTF-8 text.*Re-save it as UTF-8"):
        from_text(tmp_path, b"[sweep]\nforms = [\"p\xe9st\"]\n")
    with pytest.raises(SpecError, match=r"is not UTF-8"):
        ox.sweep(tmp_path / "s.toml", out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("kw, phrase", [
    (dict(dims=(5000,)), r"`dims` must be at most 4096"),
    (dict(seeds=10**7), r"`seeds` must be at most 1,000,000"),
    (dict(seeds=10**5, dts=tuple(0.01 * (1 + i) for i in range(600))),
     r"grid has 240,000,000 trajectories .*more than the 100,000,000.*split it"),
])
def test_sizes_are_refused_up_front(kw, phrase):
    with pytest.raises(SpecError, match=phrase):
        ox.SweepSpec(**kw)


def test_huge_dts_num(tmp_path):
    with pytest.raises(SpecError, match=r"`dts.num` must be at most 1,000,000"):
        from_text(tmp_path, '[sweep]\ndts = {log_start = -3, log_stop = 0, num = 1000000000}\n'
                  "steps = 10\n")


def test_cli_spec_errors_are_one_line(tmp_path):
    cases = {
        "three.toml": ("sweep = 3\n", "`sweep` must be a table"),
        "bad.toml": (b"\xff\xfe", "is not UTF-8"),
        "steps.toml": (BASE + "steps = 4294967301\n", "at most 2**31 - 1"),
        "thr.toml": (BASE + "steps = 10\n[thresholds]\ndivergence_threshold = 0\n",
                     "[thresholds] `divergence_threshold`"),
        "markup[x].toml": (BASE + 'steps = 10\nsolvers = ["[/x]"]\n', "[/x]"),
    }
    for name, (text, phrase) in cases.items():
        p = tmp_path / name
        p.write_text(text) if isinstance(text, str) else p.write_bytes(text)
        res = CliRunner().invoke(app, ["atlas", str(p), "--out", str(tmp_path / "run")],
                                 env={"COLUMNS": "400"})
        assert res.exit_code == 2, (name, res.output)
        text_out = " ".join(res.output.split())
        assert "error:" in text_out and phrase in text_out, (name, res.output)
        assert "Traceback" not in res.output
        assert not (tmp_path / "run").exists(), name
