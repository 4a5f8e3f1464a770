"""`fit_csv`: fit the columns of a CSV file and write the model, figures and a report."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ._checks import _fail
from ._dates import as_times, describe, parse
from ._result import MODEL_FILE, SETTINGS_FILE, FitResult, _jsonable
from ._train import fit

TIME_COLUMNS = ("t", "time", "date", "datetime", "timestamp", "year")
"""The names (in any case) that `time_col=None` looks for, in this order."""


def _time_column(cols: list[str], time_col: str | None, path: Path) -> str:
    if time_col is None:
        for want in TIME_COLUMNS:
            hits = [c for c in cols if c.strip().lower() == want]
            if hits:
                return hits[0]
        _fail(f"{path.name} has no time column named {', '.join(TIME_COLUMNS)} (in any case); "
              f"its columns are {cols}. Pass --time-col with the one that holds the times.")
    if time_col not in cols:
        _fail(f"--time-col {time_col!r} is not a column of {path.name}; its columns are "
              f"{cols}. Pass --time-col with one of them.")
    return time_col


def _as_dates(column):
    """The column as timestamps when it holds text that reads as dates, else None."""
    import pandas as pd

    if column.dtype.kind not in "OSU" and str(column.dtype) not in ("string", "str"):
        return None
    if pd.to_numeric(column, errors="coerce").notna().sum() > len(column) // 2:
        return None  # numbers with some text ("1958" also reads as a date): named below
    stamps = parse(column)
    bad = np.nonzero(stamps.isna())[0]
    if bad.size == len(column) or bad.size > len(column) // 2:
        return None  # not dates: the numeric check below names the rows
    if bad.size:
        rows = ", ".join(str(int(r) + 1) for r in bad[:5]) + (", ..." if bad.size > 5 else "")
        _fail(f"the time column {column.name!r} holds dates, but {bad.size} value(s) are "
              f"missing or not dates (data rows {rows}, 1-based after the header). Remove or "
              "fix those rows.")
    return stamps


def _read_csv(data, time_col: str | None, value_cols: Sequence[str] | None):
    """Times, values and channel names from a CSV, with errors that name the column; the
    times as a pandas DatetimeIndex when the time column holds dates (`_dates`). With
    `time_col` None, the first column named as in `TIME_COLUMNS`.

    **Returns:** `(t, ys, names, time_col)`."""
    import pandas as pd

    path = Path(data)
    if not path.is_file():
        _fail(f"`data` must be an existing CSV file; got {str(path)!r}, which "
              f"{'is a directory' if path.is_dir() else 'does not exist'}.")
    try:
        df = pd.read_csv(path)
    except Exception as e:  # pandas raises several parser error types
        _fail(f"`data` {str(path)!r} could not be read as CSV ({type(e).__name__}: {e}). Pass a "
              "comma-separated file with a header row.")
    cols = [str(c) for c in df.columns]
    # This message and the existing-`out` one below name the command's flags because
    # tests/test_fit.py pins that wording; the other messages name the arguments.
    time_col = _time_column(cols, time_col, path)
    if value_cols:
        missing = [c for c in value_cols if c not in cols]
        if missing:
            _fail(f"`value_cols` {','.join(value_cols)!r} names column(s) {missing} that "
                  f"{path.name} lacks; its columns are {cols}.")
        if time_col in value_cols:
            _fail(f"`value_cols` must not include the time column {time_col!r}; got "
                  f"{list(value_cols)!r}. Drop it from `value_cols`.")
        names = list(value_cols)
    else:
        names = [c for c in cols if c != time_col]
        if not names:
            _fail(f"{path.name} has only the time column {time_col!r}; add value columns or "
                  "pass `value_cols`.")
    arrays = {}
    stamps = _as_dates(df[time_col])
    for c in [time_col, *names]:
        if c == time_col and stamps is not None:
            arrays[c] = as_times(stamps)[0]  # checked for order below, as numbers are
            continue
        v = pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=np.float64)
        bad = np.nonzero(~np.isfinite(v))[0]
        if bad.size == v.size and c != time_col and not value_cols:
            numeric = [n for n in names if n != c and pd.to_numeric(df[n], errors="coerce")
                       .notna().any()]
            _fail(f"column {c!r} holds no numbers (e.g. {str(df[c].iloc[0])!r}), so it is not "
                  f"a signal to fit; pass --value-cols with the value columns, e.g. "
                  f"--value-cols {','.join(numeric) or '...'}.")
        if bad.size:
            rows = ", ".join(str(int(r) + 1) for r in bad[:5]) + (", ..." if bad.size > 5 else "")
            what = "the time column" if c == time_col else "column"
            _fail(f"{what} {c!r} has {bad.size} missing, non-numeric, NaN or inf value(s) (data "
                  f"rows {rows}, 1-based after the header). Remove or fill those rows.")
        arrays[c] = v
    t = arrays[time_col]
    d = np.diff(t)
    if np.any(d <= 0):
        i = int(np.argmax(d <= 0))
        shown = t if stamps is None else [str(s.date() if s == s.normalize() else s)
                                          for s in stamps]
        _fail(f"the time column {time_col!r} must be strictly increasing; data row {i + 2} has "
              f"{shown[i + 1]!r} after {shown[i]!r} in row {i + 1}. Sort the file by time and "
              "drop duplicate times.")
    ys = np.stack([arrays[c] for c in names], axis=1)
    return (t if stamps is None else stamps), ys, names, time_col


MARKER_FILE = ".oscillax-fit"
"""Written into every directory a fit creates: only such a directory is ever overwritten."""
OWN_FILES = (MODEL_FILE, SETTINGS_FILE, "report.json", "loss.png", "fit.png")
"""The files a fit writes (and the only ones `--overwrite` replaces)."""


def _is_fit_dir(out: Path) -> bool:
    """A directory a fit wrote: it has the marker, or (written before the marker existed)
    holds a fit's model and settings and nothing but a fit's files."""
    if (out / MARKER_FILE).is_file():
        return True
    names = {p.name for p in out.iterdir()}
    return {MODEL_FILE, SETTINGS_FILE} <= names and names <= set(OWN_FILES)


def _check_out(out: Path, overwrite: bool) -> None:
    """Refuse, before any training, an `out` that the fit may not write into."""
    if out.exists() and not out.is_dir():
        _fail(f"`out` {str(out)!r} is a file, not a directory; choose another path.")
    if not out.is_dir() or not any(out.iterdir()):
        return  # new or empty: nothing to lose
    if not _is_fit_dir(out):
        _fail(f"--out {str(out)!r} is a non-empty directory that no fit wrote (it has no "
              f"{MARKER_FILE} marker), so it is never overwritten, even with --overwrite: "
              "choose a new or empty directory, e.g. --out "
              f"{str(out / 'fit') if str(out) in ('.', '') else str(out) + '-fit'!r}.")
    if not overwrite:
        _fail(f"--out {str(out)!r} already exists; pass --overwrite to replace it or choose "
              "another directory.")


def _write_outputs(result: FitResult, out: Path, t, ys, data_info: dict, t_start: float,
                   overwrite: bool = False):
    """Write everything into a temporary directory, then move it into place: a new `out`
    is one rename; an existing (empty, or fit-made with `overwrite`) one gets the fit's own
    files replaced one by one, and nothing else in it is touched.

    **Returns:** the report (also written as `report.json`).
    """
    _check_out(out, overwrite)  # again: the directory may have changed during training
    existing = out.is_dir()
    if existing:
        tmp = Path(tempfile.mkdtemp(prefix=f"{MARKER_FILE}.partial-", dir=out))
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        result.save(tmp)
        result.plot_loss(tmp / "loss.png")
        result.plot_fit(t, ys, tmp / "fit.png")
        report = result.report()
        report["data"] = data_info
        report["files"] = list(OWN_FILES)
        report["wall_time_s"] = time.perf_counter() - t_start
        (tmp / "report.json").write_text(json.dumps(_jsonable(report), indent=1))
        marker = json.dumps({"written_by": "oscillax fit", "files": list(OWN_FILES)})
        (tmp / MARKER_FILE).write_text(marker + "\n")
        if existing:
            os.replace(tmp / MARKER_FILE, out / MARKER_FILE)  # first: it is a fit's dir
            for name in OWN_FILES:
                os.replace(tmp / name, out / name)
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report


def fit_csv(
    data,
    *,
    out=None,
    time_col: str | None = None,
    value_cols: Sequence[str] | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int, float], None] | None = None,
    **fit_kwargs,
) -> tuple[FitResult, Path, dict]:
    """Fit a CSV's columns and write the model, figures and a JSON report to a directory.

    Everything is validated before any file is written, and the outputs are written into
    a temporary sibling directory that is renamed to `out` only when complete, so a
    failure leaves no half-written `out`.

    **Arguments:**
    - `data`: CSV path with a header row.
    - `out`: output directory (default: `<data stem>-fit` next to the CSV).
    - `time_col`, `value_cols`: the time column (default: the first named `t`, `time`,
      `date`, `datetime`, `timestamp` or `year`, in any case; numbers, or dates, which are
      read as decimal years: `oscillax._fit._dates`) and the value columns (default: all
      others).
    - `overwrite`: replace the fit's own files in an existing `out` that a fit wrote (it
      carries a `.oscillax-fit` marker); other files in it are kept. A non-empty directory
      that no fit wrote is always refused, before training.
    - `progress`, `**fit_kwargs`: passed to `fit`.

    **Returns:** `(result, out, report)`. `out` holds `model.eqx` and `fit.json` (load with
    `ox.load_fit(out)`), `report.json`, `loss.png` and `fit.png`.
    """
    t_start = time.perf_counter()
    data = Path(data)
    out = Path(out) if out is not None else data.with_name(data.stem + "-fit")
    _check_out(out, overwrite)
    t, ys, names, time_col = _read_csv(data, time_col, value_cols)
    result = fit(t, ys[:, 0] if ys.shape[1] == 1 else ys, channels=names, progress=progress,
                 **fit_kwargs)
    data_info = {"path": str(data), "time_col": time_col, "value_cols": names,
                 "samples": int(t.shape[0]),
                 "times": "numbers" if result.time_calendar is None else "dates",
                 "time_unit": describe(result.time_calendar)}
    report = _write_outputs(result, out, t, ys, data_info, t_start, overwrite)
    return result, out, report
