"""The baselines every fit is scored against: training mean, harmonic regression, AR(p)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from oscillax._fit._baselines import (
    ar_forecast,
    ar_max_order,
    ar_select_order,
    baselines,
    combine,
    harmonic_ar_fit,
    harmonic_forecast,
    label,
    verdict,
)


def rms(x):
    return float(np.sqrt(np.mean(np.square(x))))


def ar2_process(n, phi1, phi2, c, noise, seed):
    rng = np.random.default_rng(seed)
    y = np.zeros(n)
    for k in range(2, n):
        y[k] = c + phi1 * y[k - 1] + phi2 * y[k - 2] + noise * rng.standard_normal()
    return y


def test_mean_baseline_is_training_mean():
    rng = np.random.default_rng(0)
    t = np.arange(200.0)
    y = rng.standard_normal((200, 2)) * [1.0, 3.0] + [0.5, -2.0]
    got = baselines(t, y, 150)["mean"]
    e = y[150:] - y[:150].mean(axis=0)
    assert got["rmse"] == pytest.approx(rms(e), rel=1e-12)
    np.testing.assert_allclose(got["rmse_per_channel"], np.sqrt(np.mean(e * e, axis=0)),
                               rtol=1e-12)


def test_harmonic_is_exact_on_a_sinusoid():
    """An offset sine between FFT bins (and a second channel at the same frequency):
    harmonic regression recovers the frequency and forecasts to rounding error."""
    omega = 1.37
    t = np.linspace(0.0, 50.0, 500)
    y = np.stack([3.0 + 2.0 * np.sin(omega * t + 0.3), 0.5 * np.cos(omega * t)], axis=1)
    got = baselines(t, y, 400)["harmonic"]
    assert len(got["frequencies"]) == 1
    assert got["frequencies"][0] == pytest.approx(omega, rel=1e-9)
    assert got["periods"][0] == pytest.approx(2 * np.pi / omega, rel=1e-9)
    assert got["rmse"] < 1e-9 * 2.0
    # ... where the training mean is off by the sine's RMS (2/sqrt 2 and 0.5/sqrt 2).
    assert baselines(t, y, 400)["mean"]["rmse"] > 0.5


def test_ar_continues_a_noise_free_recurrence():
    """A damped oscillation obeys y_k = c + phi1 y_{k-1} + phi2 y_{k-2} exactly: AIC picks
    p = 2 and the iterated forecast is the recurrence continued."""
    phi1, phi2, c = 2 * 0.98 * math.cos(0.3), -(0.98**2), 0.1
    y = np.zeros(300)
    y[:2] = [1.0, 0.7]
    for k in range(2, 300):
        y[k] = c + phi1 * y[k - 1] + phi2 * y[k - 2]
    p, aic = ar_select_order(y[:240, None])
    assert p == 2 and aic.shape == (ar_max_order(240) + 1,)
    np.testing.assert_allclose(ar_forecast(y[:240, None], 60, 2)[:, 0], y[240:],
                               rtol=0, atol=1e-9 * np.abs(y).max())
    scores = baselines(np.arange(300.0), y[:, None], 240)
    assert scores["ar"]["p"] == 2
    assert scores["ar"]["rmse"] < 1e-9 * np.abs(y).max()


def test_ar_wins_on_an_ar2_process():
    """Eight independent noisy AR(2) series with poles at 0.97 exp(+-0.3i), one per
    channel: AR by AIC (at least order 2; AIC may add a lag) forecasts the 10 held-out
    steps better than the mean and than sinusoids at the spectral peaks."""
    phi1, phi2 = 2 * 0.97 * math.cos(0.3), -(0.97**2)
    y = np.stack([ar2_process(510, phi1, phi2, 0.2, 1.0, seed=s) for s in range(8)], axis=1)
    scores = baselines(np.arange(510.0), y, 500)
    assert scores["ar"]["p"] >= 2
    assert scores["ar"]["rmse"] < 0.85 * scores["mean"]["rmse"]
    assert scores["ar"]["rmse"] < 0.85 * scores["harmonic"]["rmse"]
    # (harmonic regression with AR errors, which nests AR, is left out of this verdict)
    best, line = verdict(math.nan, {k: scores[k] for k in ("mean", "harmonic", "ar")}, 10)
    assert best == "ar"
    assert line.startswith(f"AR({scores['ar']['p']}) forecasts best over the 10 held-out")


def test_ar_matches_statsmodels_on_sunspots():
    """Order by AIC and the iterated forecast agree with statsmodels' AutoReg on a real
    series (yearly sunspot numbers, trained on the first 80 %)."""
    sm = pytest.importorskip("statsmodels.api")
    from statsmodels.tsa.ar_model import AutoReg
    from statsmodels.tsa.ar_model import ar_select_order as sm_select_order

    y = sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(np.float64)
    n_train = int(0.8 * y.shape[0])
    p, _ = ar_select_order(y[:n_train, None])
    sel = sm_select_order(y[:n_train], maxlag=ar_max_order(n_train), ic="aic", trend="c")
    assert sel.ar_lags == list(range(1, p + 1))
    ref = AutoReg(y[:n_train], lags=p, trend="c").fit().predict(start=n_train,
                                                                 end=y.shape[0] - 1)
    got = ar_forecast(y[:n_train, None], y.shape[0] - n_train, p)[:, 0]
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9 * np.abs(y).max())


def test_aicc_is_aic_with_the_small_sample_correction():
    """AICc = AIC + 2k(k + 1)/(N_eff - k - 1) per channel (k = p + 1 coefficients, N_eff the
    common samples); on a short noisy record it never picks a longer AR than AIC, and
    `harmonic_ar` orders its residuals by it."""
    rng = np.random.default_rng(3)
    y = np.stack([ar2_process(60, 1.2, -0.5, 0.0, 1.0, seed=s) for s in range(2)], axis=1)
    y = y + 0.3 * rng.standard_normal(y.shape)
    p_aic, aic = ar_select_order(y)
    p_aicc, aicc = ar_select_order(y, criterion="aicc")
    n_eff = 60 - ar_max_order(60)
    k = np.arange(1, aic.size + 1)
    np.testing.assert_allclose(aicc - aic, 2 * 2 * k * (k + 1) / (n_eff - k - 1), rtol=1e-12)
    assert p_aicc <= p_aic
    assert np.argmin(aicc) == p_aicc
    t = np.arange(60.0)
    om = np.array([0.6])
    spec = harmonic_ar_fit(t, y, om, uniform=True)
    resid = y - harmonic_forecast(t, y, t, om)
    assert spec["q"] == ar_select_order(resid, criterion="aicc")[0]
    with pytest.raises(ValueError, match="`criterion` must be 'aic' or 'aicc'; got 'bic'"):
        ar_select_order(y, criterion="bic")


def test_ar_skipped_for_irregular_times():
    rng = np.random.default_rng(2)
    t = np.sort(rng.uniform(0.0, 60.0, 300))
    scores = baselines(t, np.sin(t)[:, None], 240)
    assert scores["ar"]["rmse"] is None and "uniform" in scores["ar"]["skipped"]
    assert scores["harmonic"]["rmse"] < 1e-6  # harmonic regression needs no grid
    best, _ = verdict(0.5, scores, 60)
    assert best == "harmonic"


def test_ar_max_order():
    for n in (12, 50, 247, 1000):
        want = min(int(10 * math.log10(n)), (n - 2) // 3)
        assert ar_max_order(n) == want
        # every order up to it leaves at least twice as many rows as parameters
        assert n - want >= 2 * (want + 1)


def test_verdict_picks_the_lowest_finite_rmse():
    scores = {"mean": {"rmse": 2.0}, "harmonic": {"rmse": None}, "ar": {"rmse": 1.5, "p": 3}}
    assert verdict(1.0, scores, 10)[0] == "network"
    assert verdict(1.5, scores, 10)[0] == "network"  # a tie goes to the network
    best, line = verdict(3.0, scores, 10)
    assert best == "ar"
    assert line == ("AR(3) forecasts best over the 10 held-out samples: RMSE 1.5 "
                    "(the network 3, the training mean 2).")
    assert verdict(math.inf, scores, 10)[0] == "ar"
    assert verdict(math.nan, {"mean": {"rmse": None}}, 10)[0] is None


def test_verdict_weighs_the_combined_forecast():
    scores = {"mean": {"rmse": 2.0}, "harmonic": {"rmse": 1.8}, "ar": {"rmse": 1.5, "p": 3}}
    best, line = verdict(3.0, scores, 10, combined=1.2)
    assert best == "combined"
    assert line.startswith("The network averaged with AR(3) forecasts best over the 10 "
                           "held-out samples: RMSE 1.2 (the network 3, the training mean 2")
    assert verdict(3.0, scores, 10, combined=math.nan)[0] == "ar"
    no_ar = {**scores, "ar": {"rmse": None, "p": None}}
    assert label("combined", no_ar) == "the network averaged with harmonic regression"
    assert combine(np.array([2.0]), np.array([4.0]))[0] == pytest.approx(3.0)


def test_harmonic_ar_is_exact_on_a_sinusoid_and_skips_ar_off_the_grid():
    """On a clean offset sine harmonic regression with AR errors is harmonic regression
    (the residuals are rounding error); on irregular times it has no AR part."""
    omega = 1.37
    t = np.linspace(0.0, 50.0, 500)
    y = (3.0 + 2.0 * np.sin(omega * t + 0.3))[:, None]
    got = baselines(t, y, 400)["harmonic_ar"]
    assert got["frequencies"][0] == pytest.approx(omega, rel=1e-9)
    assert got["rmse"] < 1e-8
    rng = np.random.default_rng(2)
    ti = np.sort(rng.uniform(0.0, 60.0, 300))
    scores = baselines(ti, np.sin(ti)[:, None], 240)
    assert scores["harmonic_ar"]["q"] is None
    assert scores["harmonic_ar"]["rmse"] == pytest.approx(scores["harmonic"]["rmse"], rel=1e-9)
    assert label("harmonic_ar", scores) == ("harmonic regression (periods within the "
                                            "training window)")


def test_window_frequencies_drop_periods_longer_than_the_window():
    from oscillax._fit._baselines import window_frequencies

    t = np.arange(0.0, 81.0)  # an 80-unit window
    om = 2 * np.pi / np.array([141.7, 80.0, 13.6, 6.1])
    np.testing.assert_allclose(2 * np.pi / window_frequencies(t, om), [80.0, 13.6, 6.1])


def test_harmonic_ar_beats_both_on_a_sine_in_ar_noise():
    """A sine in AR(1) noise (phi 0.9), eight channels, 40 steps ahead: the sinusoid plus
    the AR forecast of its residuals beats both the sinusoid alone and an AR of the data
    (whose forecast decays to the mean)."""
    rng = np.random.default_rng(4)
    n = 440
    t = np.arange(float(n))
    cols = []
    for c in range(8):
        e = np.zeros(n)
        for k in range(1, n):
            e[k] = 0.9 * e[k - 1] + 0.5 * rng.standard_normal()
        cols.append(2.0 * np.sin(0.3 * t + c) + e)
    y = np.stack(cols, axis=1)
    s = baselines(t, y, 400)
    assert s["harmonic_ar"]["q"] >= 1
    assert s["harmonic_ar"]["rmse"] < s["harmonic"]["rmse"]
    assert s["harmonic_ar"]["rmse"] < s["ar"]["rmse"]
    assert label("harmonic_ar", s) == f"harmonic regression with AR({s['harmonic_ar']['q']}) errors"
