"""`ox.fit`: teacher-student recovery, noise, adjoints, compile-once, save/load, CLI."""

from __future__ import annotations

import json
import logging
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import pytest
import scipy.linalg
from helpers import count_compiles
from typer.testing import CliRunner

import oscillax as ox
from oscillax._fit import (
    SkewGenerator,
    _adjoint_object,
    _loss_terms,
    _make_data,
    _Stepping,
)
from oscillax.cli import app

TEACHER_OMEGAS = np.array([1.0, 1.7, 2.9])
T_TRAIN = 40.0
T_FORECAST = 2 * (2 * np.pi / TEACHER_OMEGAS.min())  # two periods of the slowest mode


def rms(x):
    return float(np.sqrt(np.mean(np.square(x))))


def amplitude(y):
    return 0.5 * float(np.max(y) - np.min(y))


@pytest.fixture(scope="module")
def teacher():
    """A linear 6-unit skew network with omega = 1.0, 1.7, 2.9, hidden behind a random
    rotation (so A is far from block-diagonal), read out to one channel; exact solution
    x(t) = expm(t A) x0."""
    rng = np.random.default_rng(1)
    Q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    A = Q @ np.asarray(ox.skew_from_frequencies(TEACHER_OMEGAS), np.float64) @ Q.T
    x0 = rng.standard_normal(6)
    C = rng.standard_normal(6)
    t = np.arange(0.0, T_TRAIN + T_FORECAST + 1e-9, 0.1)
    ys = np.array([C @ scipy.linalg.expm(tt * A) @ x0 for tt in t])
    return t, ys


@pytest.fixture(scope="module")
def teacher_fit(teacher):
    t, ys = teacher
    with jax.numpy_rank_promotion("raise"):
        return ox.fit(t, ys, hidden=6, form="post", activation="identity",
                      train_until=T_TRAIN, iterations=300, restarts=4, seed=0)


def test_teacher_student_frequencies(teacher_fit):
    res = teacher_fit
    assert res.step_traces == 1
    # Learned from A's spectrum (exact for a linear network) ...
    np.testing.assert_allclose(res.frequencies, TEACHER_OMEGAS, rtol=0.01)
    # ... and measured in the generated signal, run 8x longer than the data.
    np.testing.assert_allclose(res.measured_frequencies(), TEACHER_OMEGAS, rtol=0.01)
    assert res.history.shape == (300, 4)
    assert np.isfinite(res.history).all()


def test_teacher_student_forecast(teacher, teacher_fit):
    t, ys = teacher
    future = t > T_TRAIN
    assert t[future][-1] - T_TRAIN >= T_FORECAST - 0.1
    err = teacher_fit.predict(t[future]) - ys[future]
    assert rms(err) < 0.05 * amplitude(ys)
    assert teacher_fit.metrics["val_rel_amp"] < 0.05
    assert teacher_fit.metrics["val_samples"] == int(future.sum())


def test_noisy_sine_irregular_times():
    """SNR 10 dB, irregular sample times: the frequency is recovered within 2 %."""
    rng = np.random.default_rng(0)
    omega = 1.3
    t = np.sort(rng.uniform(0.0, 50.0, 400))
    clean = 2.0 * np.sin(omega * t + 0.4)
    noise = rng.standard_normal(t.shape) * math.sqrt(np.var(clean) / 10.0)
    res = ox.fit(t, clean + noise, hidden=2, iterations=150, restarts=2)
    measured = res.measured_frequencies()
    assert measured.shape == (1,)
    assert abs(measured[0] / omega - 1) < 0.02
    # The generated signal tracks the clean sine better than the noisy samples do.
    assert rms(res.predict(t) - clean) < rms(noise)
    assert res.predict(t).shape == t.shape


def test_training_step_compiles_once(caplog):
    t = np.linspace(0.0, 30.0, 241)
    ys = np.stack([np.sin(1.1 * t), np.cos(1.1 * t) + 0.2 * np.sin(2.2 * t)], axis=1)
    seen = {}
    with count_compiles() as counts, jax.log_compiles(True), caplog.at_level(logging.WARNING):
        res = ox.fit(t, ys, hidden=4, restarts=2, iterations=12, optimizer=optax.adam(1e-3),
                     progress=lambda i, total, loss: seen.setdefault(i, dict(counts)))
    assert sorted(seen) == list(range(13))
    # The first step traced and compiled; the eleven after it neither traced nor compiled.
    assert seen[1]["compile"] > seen[0]["compile"]
    assert seen[12] == seen[1], seen
    messages = [r.getMessage() for r in caplog.records]
    assert sum(m.startswith("Compiling jit(train_step)") for m in messages) == 1
    assert res.step_traces == 1
    assert res.history.shape == (12, 2)
    assert res.predict(t).shape == ys.shape


@pytest.mark.parametrize("adjoint, rtol", [("checkpoint", 1e-4), ("backsolve", 1e-2)])
def test_adjoints_agree_with_engine(adjoint, rtol):
    """Gradients through diffrax (discretise-then-optimise, and the continuous adjoint)
    match backprop through the engine's scan for the same RK4 method, in float32 with one
    solver step per sample (where a naive BacksolveAdjoint was off by factors)."""
    f32 = jnp.float32
    dt = 0.2873747
    taus = np.arange(192) * dt
    y = np.stack([np.sin(0.5 * taus), np.cos(0.3 * taus)], axis=1)
    A0 = np.asarray(ox.skew_from_frequencies(np.array([0.5, 1.0])))
    W = 0.5 * A0 + 0.01 * np.asarray(jax.random.normal(jax.random.key(0), (4, 4)))
    model = SkewGenerator(
        W=jnp.asarray(W, f32), C=jnp.asarray([[1.0, 0.2, 0.3, 0.0], [0.0, 0.5, 0.1, 1.0]], f32),
        d=jnp.zeros(2, f32), x0=jnp.asarray([0.5, 0.0, 0.5, 0.0], f32), bias=None,
        form="post", activation="tanh",
    )
    grads = {}
    for name in ("engine", adjoint):
        step = _Stepping("rk4", name, dt, aligned=True,
                         adjoint_obj=_adjoint_object(name, "rk4", dt))
        data = _make_data(taus, y, step, taus[-1], 1.0, f32)
        grads[name] = jax.grad(
            lambda m: _loss_terms(m, data, jnp.asarray(jnp.inf, f32), step, 191, 0.1)[0]
        )(model)
    for leaf_e, leaf_a in zip(jax.tree.leaves(grads["engine"]), jax.tree.leaves(grads[adjoint])):
        scale = float(jnp.max(jnp.abs(leaf_e)))
        assert float(jnp.max(jnp.abs(leaf_a - leaf_e))) <= rtol * scale


def test_periods_beside_frequencies(teacher_fit):
    res = teacher_fit
    np.testing.assert_allclose(res.periods, 2 * np.pi / res.frequencies, rtol=1e-15)
    np.testing.assert_allclose(res.periods, 2 * np.pi / TEACHER_OMEGAS, rtol=0.01)
    m = res.metrics
    np.testing.assert_allclose(m["periods"], 2 * np.pi / np.asarray(m["frequencies"]),
                               rtol=1e-15)
    np.testing.assert_allclose(m["measured_periods"],
                               2 * np.pi / np.asarray(m["measured_frequencies"]), rtol=1e-15)
    report = res.report()
    keys = list(report)
    assert keys.index("periods") == keys.index("frequencies") + 1
    np.testing.assert_allclose(report["periods"], res.periods, rtol=1e-15)


def test_baselines_scored_on_the_held_out_part(teacher, teacher_fit):
    """The training mean's RMSE by hand; a noise-free sum of three sinusoids is exactly an
    AR(6), which the AR baseline finds; the verdict names the lowest RMSE."""
    t, ys = teacher
    future = t > T_TRAIN
    m = teacher_fit.metrics
    b = m["baselines"]
    assert b["mean"]["rmse"] == pytest.approx(rms(ys[future] - ys[~future].mean()), rel=1e-12)
    assert b["ar"]["p"] == 6
    assert b["ar"]["rmse"] < 1e-6 * amplitude(ys)
    # harmonic regression at the dominant spectral peaks: some of the teacher's frequencies
    assert len(b["harmonic"]["frequencies"]) >= 1
    for w in b["harmonic"]["frequencies"]:
        assert np.min(np.abs(w / TEACHER_OMEGAS - 1)) < 0.01
    scores = {"network": m["val_rmse"], "combined": m["combined"]["rmse"],
              **{k: v["rmse"] for k, v in b.items()}}
    assert m["best_forecaster"] == min(scores, key=scores.get)
    assert f"{scores[m['best_forecaster']]:.4g}" in m["verdict"]
    assert "\n" not in m["verdict"]


def test_save_load_roundtrip(teacher, teacher_fit, tmp_path):
    t, _ = teacher
    path = teacher_fit.save(tmp_path / "model")
    assert (path / "model.eqx").is_file() and (path / "fit.json").is_file()
    loaded = ox.load_fit(path)
    np.testing.assert_array_equal(loaded.predict(t), teacher_fit.predict(t))
    np.testing.assert_array_equal(loaded.frequencies, teacher_fit.frequencies)
    np.testing.assert_array_equal(loaded.history, teacher_fit.history)
    assert loaded.metrics == json.loads(json.dumps(teacher_fit.metrics))
    settings = json.loads((path / "fit.json").read_text())
    assert settings["hidden"] == 6 and settings["activation"] == "identity"


def test_predict_checks_times(teacher_fit):
    with pytest.raises(ValueError, match=r"`ts` must not start before"):
        teacher_fit.predict(np.array([-1.0, 0.0]))
    with pytest.raises(ValueError, match=r"`ts` contains NaN"):
        teacher_fit.predict(np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="directory written by FitResult.save"):
        ox.load_fit("/nonexistent/fit")


T_OK = np.linspace(0.0, 20.0, 101)
Y_OK = np.sin(T_OK)


def test_nothing_held_out_scores_no_forecast():
    res = ox.fit(T_OK, Y_OK, hidden=2, iterations=2, restarts=1, val_fraction=0.0)
    assert res.metrics["val_samples"] == 0 and "val_rmse" not in res.metrics
    assert res.metrics["baselines"] == {} and res.metrics["best_forecaster"] is None
    assert "nothing was held out" in res.metrics["verdict"]


@pytest.mark.parametrize(
    "ts, ys, kwargs, match",
    [
        (T_OK, np.where(T_OK > 5, np.nan, Y_OK), {}, r"`ys` contains \d+ NaN or inf"),
        (np.where(T_OK > 5, np.inf, T_OK), Y_OK, {}, r"`ts` contains \d+ NaN or inf"),
        (np.r_[T_OK[:50], T_OK[49:-1]], Y_OK, {}, r"`ts` must be strictly increasing"),
        (T_OK[::-1], Y_OK, {}, r"`ts` must be strictly increasing"),
        (T_OK[:10], Y_OK[:10], {}, r"at least 16 samples"),
        (T_OK, Y_OK[:-1], {}, r"one row per time"),
        (T_OK, np.ones_like(Y_OK), {}, r"channel 0 .* is constant"),
        (T_OK, Y_OK, {"hidden": 1}, r"`hidden` must be an integer >= 2"),
        (T_OK, Y_OK, {"form": "sideways"}, r"`form` must be one of post, pre"),
        (T_OK, Y_OK, {"activation": "nope"}, r"`activation` must be one of"),
        (T_OK, Y_OK, {"solver": "rk45"}, r"`solver` must be one of"),
        (T_OK, Y_OK, {"solver": "tsit5", "adjoint": "engine"}, r"needs a diffrax adjoint"),
        (T_OK, Y_OK, {"adjoint": "magic"}, r"`adjoint` must be one of"),
        (T_OK, Y_OK, {"train_until": 50.0}, r"`train_until` must lie in"),
        (T_OK, Y_OK, {"val_fraction": 0.95}, r"`val_fraction` must be a finite number"),
        (T_OK, Y_OK, {"optimizer": "adam"}, r"`optimizer` must be an optax"),
        (T_OK, Y_OK, {"dt": -0.1}, r"`dt` must be a finite number"),
    ],
)
def test_bad_input(ts, ys, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ox.fit(ts, ys, **kwargs)


def test_spectral_peaks_irregular():
    rng = np.random.default_rng(3)
    t = np.sort(rng.uniform(0, 80, 900))
    y = np.sin(0.9 * t) + 0.4 * np.cos(2.3 * t + 1.0)
    w, p = ox.spectral_peaks(t, y, max_peaks=2)
    np.testing.assert_allclose(np.sort(w), [0.9, 2.3], rtol=2e-3)
    assert p[0] > p[1]


# -------------------------------------------------------------------------------- CLI


def _write_csv(path, t, cols):
    pd.DataFrame({"t": t, **cols}).to_csv(path, index=False)
    return path


def test_cli_fit_writes_outputs(tmp_path):
    t = np.linspace(0.0, 40.0, 321)
    csv = _write_csv(tmp_path / "osc.csv", t, {
        "a": np.sin(1.2 * t), "b": 0.5 * np.cos(1.2 * t) + 0.2 * np.sin(2.4 * t),
        "ignored": np.zeros_like(t),
    })
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["fit", str(csv), "--time-col", "t", "--value-cols", "a,b",
                                   "--hidden", "4", "--iterations", "40", "--restarts", "2",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    for name in ("model.eqx", "fit.json", "report.json", "loss.png", "fit.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    report = json.loads((out / "report.json").read_text())
    assert report["data"]["value_cols"] == ["a", "b"]
    assert report["hidden"] == 4 and "val_rmse" in report["metrics"]
    assert set(report["metrics"]["baselines"]) == {"mean", "harmonic", "ar", "harmonic_ar"}
    assert report["metrics"]["best_forecaster"] in {"network", "combined", "mean", "harmonic",
                                                    "ar", "harmonic_ar"}
    assert "forecasts best" in report["metrics"]["verdict"]
    np.testing.assert_allclose(report["periods"], 2 * np.pi / np.asarray(report["frequencies"]))
    loaded = ox.load_fit(out)
    assert loaded.predict(t).shape == (t.shape[0], 2)
    assert loaded.channels == ("a", "b")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    # An existing --out is not overwritten without --overwrite.
    again = CliRunner().invoke(app, ["fit", str(csv), "--out", str(out)])
    assert again.exit_code == 2 and "--overwrite" in again.output


def _bad_csvs(tmp_path):
    t = np.linspace(0.0, 20.0, 101)
    y = np.sin(t)
    nan = y.copy()
    nan[7] = np.nan
    swapped = t.copy()
    swapped[[30, 31]] = swapped[[31, 30]]
    return {
        "nan": (_write_csv(tmp_path / "nan.csv", t, {"a": nan}), [], "'a' has 1 missing"),
        "times": (_write_csv(tmp_path / "times.csv", swapped, {"a": y}), [],
                  "must be strictly increasing"),
        "column": (_write_csv(tmp_path / "col.csv", t, {"a": y}), ["--value-cols", "a,zz"],
                   "lacks"),
        "timecol": (_write_csv(tmp_path / "tc.csv", t, {"a": y}), ["--time-col", "time"],
                    "--time-col 'time' is not a column"),
    }


@pytest.mark.parametrize("case", ["nan", "times", "column", "timecol"])
def test_cli_bad_csv_clean_error(tmp_path, case):
    csv, extra, message = _bad_csvs(tmp_path)[case]
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["fit", str(csv), "--out", str(out), *extra])
    assert res.exit_code == 2, res.output
    assert "error:" in res.output and message in res.output, res.output
    assert "Traceback" not in res.output
    assert not out.exists()
    assert not any(p.name.startswith(".out") for p in tmp_path.iterdir())
