"""Sample times given as dates: read as decimal years (`oscillax._fit._dates`), by `ox.fit`,
by a fit's `predict` / `forecast` / `plot_fit`, by `ox.spectral_peaks` and by `oscillax fit`
on a CSV whose time column holds dates; periods then come out in years."""

from __future__ import annotations

import datetime
import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import oscillax as ox
from oscillax._fit._dates import DAYS_PER_YEAR, as_times
from oscillax.cli import app


def test_monthly_quarterly_and_yearly_dates_are_an_exact_grid():
    for freq, step in (("MS", 1 / 12), ("QS", 1 / 4), ("YS", 1.0)):
        t, cal = as_times(pd.date_range("1958-01-01", periods=30, freq=freq))
        assert cal == "months"
        np.testing.assert_allclose(t, 1958 + step * np.arange(30), rtol=0, atol=1e-9)
    t, cal = as_times(np.array(["1990-03", "1990-04", "1990-05"], dtype="datetime64[M]"))
    assert cal == "months" and np.allclose(t, 1990 + np.array([2, 3, 4]) / 12)
    # month ends and mid-months: the same calendar, each step within 5 % of a month
    for start, freq in (("2000-01-31", "ME"), ("2000-01-15", None)):
        st = (pd.date_range(start, periods=40, freq=freq) if freq
              else pd.DatetimeIndex([pd.Timestamp(2000 + k // 12, k % 12 + 1, 15)
                                     for k in range(40)]))
        t, cal = as_times(st)
        assert cal == "months"
        assert np.max(np.abs(np.diff(t) * 12 - 1)) < 0.05


def test_daily_and_hourly_dates_are_elapsed_time_in_mean_years():
    st = pd.date_range("2020-02-27", periods=10, freq="D")  # across a leap day
    t, cal = as_times(st)
    assert cal == "elapsed"
    np.testing.assert_allclose(np.diff(t), 1 / DAYS_PER_YEAR, rtol=1e-9)
    assert abs(t[0] - (2020 + 57 / 366)) < 2e-3  # within a day of the calendar's decimal year
    t, cal = as_times(pd.date_range("2020-01-01", periods=5, freq="6h"))
    assert cal == "elapsed"
    np.testing.assert_allclose(np.diff(t), 0.25 / DAYS_PER_YEAR, rtol=1e-9)
    # the calendar passed in wins over the one the stamps would choose
    one = as_times([datetime.date(2021, 6, 1)], "months")[0]
    assert one == pytest.approx(2021 + 5 / 12)


def test_kinds_of_dates_agree_and_numbers_pass_through():
    want = as_times(pd.date_range("2001-01-01", periods=3, freq="MS"))[0]
    for kind in ([datetime.date(2001, m, 1) for m in (1, 2, 3)],
                 [datetime.datetime(2001, m, 1) for m in (1, 2, 3)],
                 pd.Series(pd.date_range("2001-01-01", periods=3, freq="MS")),
                 pd.date_range("2001-01-01", periods=3, freq="MS", tz="Europe/Berlin"),
                 np.array(["2001-01-01", "2001-02-01", "2001-03-01"], dtype="datetime64[D]"),
                 ["2001-01-01", "2001-02-01", "2001-03-01"],
                 pd.Series(["2001-01", "2001-02", "2001-03"]),
                 np.array(["2001-01-01", "2001-02-01", "2001-03-01"])):
        t, cal = as_times(kind)
        assert cal == "months"
        np.testing.assert_array_equal(t, want)
    x = np.arange(4.0)
    assert as_times(x)[0] is x and as_times(x)[1] is None
    assert as_times([1.0, 2.0]) == ([1.0, 2.0], None)
    assert as_times(["1.5", "2.5"]) == (["1.5", "2.5"], None)  # numbers written as text
    with pytest.raises(ValueError, match="`ts` contains a missing date"):
        as_times(pd.DatetimeIndex(["2000-01-01", None]))
    with pytest.raises(ValueError, match="`ts` holds dates, but ts\\[1\\] = 'soon' is not one"):
        as_times([datetime.date(2000, 1, 1), "soon"])
    with pytest.raises(ValueError, match="`ts` holds dates, but ts\\[2\\] = 'b' is not one"):
        ox.fit(["2000-01-01", "2000-02-01", "b"] * 8, np.arange(24.0))


def _monthly(n=144, seed=0):
    t = pd.date_range("1990-01-01", periods=n, freq="MS")
    rng = np.random.default_rng(seed)
    k = np.arange(n)
    return t, 5 + 2 * np.sin(2 * np.pi * k / 12) + 0.1 * rng.standard_normal(n)


@pytest.fixture(scope="module")
def dated_fit():
    t, y = _monthly()
    return t, y, ox.fit(t, y, iterations=150, restarts=2)


def test_a_fit_on_dates_speaks_years(dated_fit, tmp_path):
    """A yearly cycle sampled monthly, given as dates: the periods are a year (before dates
    were read, the times were pandas' microseconds since 1970 and the period came out as
    3e13), and later dates forecast as the same decimal years do, also after saving and
    loading."""
    t, y, res = dated_fit
    assert res.time_calendar == "months" and res.t0 == 1990.0
    assert res.train_until == pytest.approx(1990 + 114 / 12)  # the last within 80 % of the span
    yearly = np.asarray(res.metrics["measured_periods"])
    assert np.min(np.abs(yearly - 1.0)) < 0.03, yearly
    assert np.min(np.abs(res.periods - 1.0)) < 0.1, res.periods
    assert res.metrics["baselines"]["harmonic"]["periods"][0] == pytest.approx(1.0, rel=0.01)
    assert res.report()["time_unit"].startswith("years")
    future = pd.date_range("2002-01-01", periods=9, freq="MS")
    years = 2002 + np.arange(9) / 12
    np.testing.assert_array_equal(res.forecast(future), res.forecast(years))
    np.testing.assert_array_equal(res.predict(future), res.predict(years))
    loaded = ox.load_fit(res.save(tmp_path / "fit"))
    assert loaded.time_calendar == "months"
    np.testing.assert_array_equal(loaded.forecast(future), res.forecast(years))
    fig = res.plot_fit(t, y)
    assert fig.axes[-1].get_xlabel() == "year"
    lo, hi = fig.axes[0].get_xlim()
    assert 1985 < lo < 1990 and 2001 < hi < 2006


def test_train_until_may_be_a_date():
    t, y = _monthly(60)
    res = ox.fit(t, y, train_until=pd.Timestamp("1993-06-01"), iterations=5, restarts=1)
    assert res.train_until == pytest.approx(1993 + 5 / 12)
    assert res.metrics["val_samples"] == 60 - 42


def test_dates_for_a_fit_on_numbers_are_refused():
    t = np.arange(100.0)
    res = ox.fit(t, np.sin(2 * np.pi * t / 12), iterations=5, restarts=1)
    assert res.time_calendar is None and res.report()["time_unit"] == "the data's time unit"
    with pytest.raises(ValueError, match="`ts` holds dates, but this fit's times were numbers"):
        res.predict(pd.date_range("2000-01-01", periods=3, freq="MS"))


def test_spectral_peaks_of_dates_are_in_radians_per_year():
    t, y = _monthly()
    peaks, _ = ox.spectral_peaks(t, y)
    assert peaks[0] == pytest.approx(2 * np.pi, rel=0.01)


def test_cli_fit_reads_a_date_column_and_finds_it_by_name(tmp_path):
    t, y = _monthly(120, seed=3)
    csv = tmp_path / "monthly.csv"
    pd.DataFrame({"Date": t.strftime("%Y-%m-%d"), "level": y}).to_csv(csv, index=False)
    out = tmp_path / "fit"
    res = CliRunner().invoke(app, ["fit", str(csv), "--out", str(out), "--iterations", "40",
                                   "--restarts", "1"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "times: the dates in column 'Date', in years" in text
    assert "frequencies (rad/year) from A:" in text and " years" in text
    report = json.loads((out / "report.json").read_text())
    assert report["data"]["time_col"] == "Date" and report["data"]["times"] == "dates"
    assert report["options"]["time_calendar"] == "months"
    measured = report["metrics"]["measured_periods"]
    assert min(abs(p - 1.0) for p in measured) < 0.05
    # periods under a year are also given in days
    assert (" days)" in text) == any(p < 1 for p in report["periods"] + measured)
    short = min(report["periods"] + measured)
    if short < 1:
        assert f"{short:.5g} years ({short * 365.2425:.4g} days)" in text


@pytest.mark.parametrize("columns, extra, message", [
    ({"when": [f"2000-{m:02d}-01" for m in range(1, 13)] * 2,
      "v": np.arange(24.0)}, ["--time-col", "when"],
     "must be strictly increasing; data row 13 has '2000-01-01' after '2000-12-01'"),
    ({"date": [f"{2000 + k // 12}-{k % 12 + 1:02d}-01" for k in range(23)] + ["later"],
      "v": np.arange(24.0)}, [], "holds dates, but 1 value(s) are missing or not dates (data "
                                 "rows 24"),
    ({"date": [f"{2000 + k // 12}-{k % 12 + 1:02d}-01" for k in range(24)],
      "station": ["X1"] * 24, "v": np.arange(24.0), "w": np.ones(24)}, [],
     "column 'station' holds no numbers (e.g. 'X1'), so it is not a signal to fit; pass "
     "--value-cols with the value columns, e.g. --value-cols v,w"),
    ({"year": [str(1700 + k) for k in range(23)] + ["n/a"], "v": np.arange(24.0)}, [],
     "the time column 'year' has 1 missing, non-numeric, NaN or inf value(s) (data rows 24"),
    ({"stamp": np.arange(24.0), "v": np.arange(24.0)}, [],
     "has no time column named t, time, date, datetime, timestamp, year"),
])
def test_cli_fit_date_columns_bad_input(tmp_path, columns, extra, message):
    csv = tmp_path / "bad.csv"
    pd.DataFrame(columns).to_csv(csv, index=False)
    res = CliRunner().invoke(app, ["fit", str(csv), "--out", str(tmp_path / "o"), *extra])
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert message in text and "Traceback" not in text
    assert not (tmp_path / "o").exists()


def test_a_column_named_time_is_the_default_time_column(tmp_path):
    from oscillax._fit._csv import _read_csv

    csv = tmp_path / "s.csv"
    pd.DataFrame({"x": np.cos(np.arange(30.0)), "Time": np.arange(30.0) / 4}).to_csv(
        csv, index=False)
    t, ys, names, col = _read_csv(csv, None, None)
    assert col == "Time" and names == ["x"] and t[1] == 0.25 and ys.shape == (30, 1)
