"""A second process that draws part of a run's table figures while this one draws the rest.

matplotlib holds the GIL while it lays out and renders, so a thread cannot share the work;
a process can. The process is started beside the sweep (`FigureWorker.start`), so its
imports (matplotlib, pandas, oscillax's plotting) happen while the sweep runs, then waits
on its standard input. When the results are written, `submit` sends it one job: the run's
results.parquet, the spectral radius and the figures to draw (`_plot.table_figure_jobs`
entries); it reads the table, draws them and answers with the paths it wrote.

It is started as `python -m oscillax._sweep._figure_worker`, not with multiprocessing:
spawning re-imports the user's main script, which may not be guarded. Anything that goes
wrong in it (it cannot start, crashes, answers nonsense) only means the figures it did not
draw are drawn in this process (`_plot.atlas_figures`): nothing is lost.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

MIN_PANELS = 24
"""A worker is started for a spec with at least this many atlas panels (solvers x forms x
activations; the default atlas has 42): below, its start-up (~1.5 s of CPU for its imports)
costs about what it saves."""


class FigureWorker:
    """The client side: `start()`, `submit(jobs, spectral_radius)`, `wait()`, `close()`."""

    def __init__(self, proc: subprocess.Popen, table: Path):
        self._proc = proc
        self._table = Path(table)
        self._submitted = False

    @classmethod
    def start(cls, table: Path, spec=None) -> FigureWorker | None:
        """Start the process for the run (of `spec`) whose results will be at `table`;
        None where it is not worth it (one CPU, fewer than `MIN_PANELS` panels;
        `OSCILLAX_FIGURE_WORKER=0` turns it off) or cannot start."""
        if (os.cpu_count() or 1) < 2 or os.environ.get("OSCILLAX_FIGURE_WORKER") == "0":
            return None
        if spec is not None and (len(spec.solvers) * len(spec.forms) * len(spec.activations)
                                 < MIN_PANELS):
            return None
        env = dict(os.environ, OSCILLAX_CPU_DEVICES="1", JAX_PLATFORMS="cpu")
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "oscillax._sweep._figure_worker"], env=env,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                text=True)
        except OSError:
            return None
        return cls(proc, table)

    def submit(self, jobs, spectral_radius: float) -> bool:
        """Send the job; False if the process is gone (then draw everything here)."""
        job = {"table": str(self._table), "spectral_radius": float(spectral_radius),
               "figures": [[k, s, str(p)] for k, s, p in jobs]}
        try:
            self._proc.stdin.write(json.dumps(job) + "\n")
            self._proc.stdin.flush()
        except (OSError, ValueError):
            self.close()
            return False
        self._submitted = True
        return True

    def wait(self, timeout: float = 300.0) -> set[Path]:
        """The paths the process drew (an empty set if it failed)."""
        if not self._submitted:
            return set()
        try:
            out, _ = self._proc.communicate(timeout=timeout)
        except (subprocess.TimeoutExpired, OSError, ValueError):
            self.close()
            return set()
        drawn = set()
        for line in out.splitlines():
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if isinstance(msg, dict) and isinstance(msg.get("drawn"), list):
                drawn = {Path(p) for p in msg["drawn"] if Path(p).is_file()}
        return drawn

    def close(self) -> None:
        """Stop the process if it still runs (an unused worker exits on end of input)."""
        try:
            if self._proc.stdin and not self._proc.stdin.closed:
                self._proc.stdin.close()
            self._proc.wait(timeout=60)  # (its imports can take seconds on a busy machine)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            self._proc.kill()
            self._proc.wait()


def main() -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401  (imported before the job arrives)
    import pandas as pd

    from oscillax import _plot

    line = sys.stdin.readline()
    if not line.strip():
        return 0  # the sweep ended without figures
    job = json.loads(line)
    jobs = [(k, s, Path(p)) for k, s, p in job["figures"]]
    table = pd.read_parquet(job["table"])
    drawn = []
    for j in jobs:
        try:
            drawn.append(str(_plot.draw_table_figure(table, j, job["spectral_radius"])))
        except Exception:  # drawn again by the sweep's process, which reports the error
            continue
    print(json.dumps({"drawn": drawn}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
