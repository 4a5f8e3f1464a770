"""Sample times given as dates, read as decimal years.

`fit` (and what a fit's result takes times for: `predict`, `forecast`, `plot_fit`) works on
numbers. Dates (numpy `datetime64`, pandas timestamps, `datetime.date` objects, or strings
in a CSV's time column) become decimal years, so periods come out in years. Two calendars:

- `"months"`: monthly or coarser dates that all fall on the same day of the month (or all
  on its last day), at midnight: $\\text{year} + (\\text{month} - 1 + f)/12$, where $f$ is
  the fraction of the month elapsed. Monthly, quarterly and yearly series are then on an
  exactly (day 1) or nearly uniform grid, as their AR baselines need: elapsed time would
  make February's step 10 % shorter than January's.
- `"elapsed"`: anything else (daily, hourly, irregular): $2000 + $ the days since
  2000-01-01 / 365.2425 (the Gregorian mean year; within a few hours of the calendar's
  new years from 1900 to 2100), a uniform grid for uniformly spaced stamps.

Time-zone-aware stamps are read in their own local wall time.

The calendar is chosen from the fitted dates and kept in the result (`options
["time_calendar"]`), so later dates are read the same way.
"""

from __future__ import annotations

import datetime
import warnings

import numpy as np

CALENDARS = ("months", "elapsed")
DAYS_PER_YEAR = 365.2425  # the Gregorian calendar's mean year
MIN_MONTHS_GAP_DAYS = 28


def _fail(message: str):
    raise ValueError(message)  # as `_checks._fail` (which imports this module)


def _is_dates(ts) -> bool:
    """Whether `ts` holds dates (not numbers): a datetime64 array, Series or index,
    `datetime.date` / `np.datetime64` objects, or text that is not numbers and whose first
    entry reads as a date ("1958-03-01")."""
    kind = getattr(getattr(ts, "dtype", None), "kind", None)  # pandas' tz dtype has one too
    if kind == "M":
        return True
    if isinstance(ts, (str, bytes)) or kind not in (None, "O", "U", "S"):
        return False
    try:
        first = next(iter(ts), None)
    except TypeError:
        return False
    if isinstance(first, str):
        try:
            np.asarray(ts, dtype=np.float64)
            return False  # numbers written as text
        except (TypeError, ValueError):
            return _reads_as_date(first)
    return isinstance(first, (datetime.date, np.datetime64))


def _reads_as_date(text: str) -> bool:
    try:
        return not parse([text]).isna()[0]
    except (TypeError, ValueError, OverflowError):
        return False


def parse(values):
    """`values` (dates, or text) as a pandas DatetimeIndex, NaT where one is not a date."""
    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "could not infer format": parsed one by one
        return pd.DatetimeIndex(pd.to_datetime(values, errors="coerce"))


def _stamps(ts, name):
    import pandas as pd

    raw = np.asarray(ts).ravel()
    try:
        st = parse(raw)
    except (TypeError, ValueError) as e:  # e.g. time zones mixed with naive stamps
        _fail(f"`{name}` holds dates that could not all be read as timestamps ({e}); pass "
              "dates only (datetime64, pandas timestamps or datetime.date), or numbers.")
    if st.tz is not None:
        st = st.tz_localize(None)  # local wall time: the calendar the dates were written in
    if st.isna().any():
        i = int(np.argmax(st.isna()))
        if pd.isna(raw[i]):
            _fail(f"`{name}` contains a missing date (NaT) at index {i}; drop or fill it.")
        bad = raw[i].item() if isinstance(raw[i], np.generic) else raw[i]
        _fail(f"`{name}` holds dates, but {name}[{i}] = {bad!r} is not one; pass dates "
              "only (datetime64, pandas timestamps, datetime.date or date strings), or "
              "numbers.")
    return st


def _days_since_2000(stamps) -> np.ndarray:
    import pandas as pd

    return np.asarray((stamps - pd.Timestamp("2000-01-01")) / pd.Timedelta(days=1), np.float64)


def calendar_of(stamps) -> str:
    """`"months"` for midnight dates at least `MIN_MONTHS_GAP_DAYS` apart that share their
    day of the month (or are all month ends); else `"elapsed"`."""
    if len(stamps) < 2 or (stamps != stamps.normalize()).any():
        return "elapsed"
    gaps = np.diff(_days_since_2000(stamps))
    same_day = bool(np.all(stamps.day == stamps.day[0])) or bool(np.all(stamps.is_month_end))
    return "months" if same_day and gaps.min() >= MIN_MONTHS_GAP_DAYS else "elapsed"


def decimal_years(stamps, calendar: str) -> np.ndarray:
    """`stamps` (a pandas DatetimeIndex) as decimal years in `calendar` (`CALENDARS`)."""
    if calendar == "months":
        into = (stamps.day.to_numpy() - 1
                + (stamps - stamps.normalize()).total_seconds().to_numpy() / 86400.0)
        return (stamps.year.to_numpy() + (stamps.month.to_numpy() - 1
                                          + into / stamps.days_in_month.to_numpy()) / 12.0)
    return 2000.0 + _days_since_2000(stamps) / DAYS_PER_YEAR


def as_times(ts, calendar: str | None = None, *, name: str = "ts"):
    """`(times, calendar)`: dates in `ts` as float64 decimal years in `calendar` (chosen from
    them when None), or `ts` unchanged and None when it holds no dates."""
    if not _is_dates(ts):
        return ts, None
    st = _stamps(ts, name)
    calendar = calendar_of(st) if calendar is None else calendar
    if calendar not in CALENDARS:
        _fail(f"the time calendar must be one of {', '.join(CALENDARS)}; got {calendar!r}.")
    return decimal_years(st, calendar), calendar


def describe(calendar: str | None) -> str:
    """How a report names the time unit."""
    if calendar is None:
        return "the data's time unit"
    how = ("year + (month - 1 + fraction of the month) / 12" if calendar == "months"
           else f"2000 + days since 2000-01-01 / {DAYS_PER_YEAR}")
    return f"years (dates read as decimal years: {how})"
