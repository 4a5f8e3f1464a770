"""One long-run measurement in a fresh process, so its peak RSS is this run's alone.

`python -m oscillax.bench._child --impl oscillax --n 2 --batch 4096 --steps 1000000` prints one
JSON line: timings and the process's peak RSS (and the peak before the first call, i.e. the
cost of importing JAX and building the inputs).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

_MAKERS = {"oscillax": "oscillax_final", "diffrax-vmap": "diffrax_final"}


def _ru_maxrss_bytes() -> int:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024  # Linux reports KiB


def _maxrss_bytes() -> int:
    """Peak RSS of this process. On Linux, `VmHWM` of /proc/self/status: `ru_maxrss` is not
    used there because exec keeps the parent's high-water mark (a child forked from a big
    benchmark process would report the parent's peak)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return _ru_maxrss_bytes()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--impl", default="oscillax", choices=sorted(_MAKERS))
    ap.add_argument("--n", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--dt", type=float, default=0.01)
    ap.add_argument("--repeats", type=int, default=1)
    a = ap.parse_args(argv)

    from . import _impls as I
    from ._harness import block
    from ._workloads import rotation_skew

    out = {"impl": a.impl, "n": a.n, "batch": a.batch, "steps": a.steps, "dt": a.dt}
    try:
        rng = np.random.default_rng(0)
        x0 = rng.standard_normal((a.batch, a.n)).astype(np.float32)
        p = I.Problem(rotation_skew(), x0, a.dt, a.steps, "pre")
        prepared = getattr(I, _MAKERS[a.impl])(p)
        import jax

        jax.block_until_ready(jax.numpy.zeros(1) + 1)  # backend initialised before baseline
        out["maxrss_bytes_before"] = _maxrss_bytes()
        t0 = time.perf_counter()
        res = block(prepared.run())
        first = time.perf_counter() - t0
        runs = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            res = block(prepared.run())
            runs.append(time.perf_counter() - t0)
        final = np.asarray(res)
        out.update(
            status="ok",
            first_call_s=first,
            runs_s=runs,
            run_s=min(runs),
            compile_s=max(first - min(runs), 0.0),
            traj_steps=a.batch * a.steps,
            traj_steps_per_s=a.batch * a.steps / min(runs),
            maxrss_bytes=_maxrss_bytes(),
            ru_maxrss_bytes=_ru_maxrss_bytes(),
            final_finite=bool(np.all(np.isfinite(final))),
        )
    except Exception as e:  # reported to the parent as a row
        out.update(status="error", note=f"{type(e).__name__}: {e}".splitlines()[0][:300])
    print(json.dumps(out))


def run_child(impl: str, *, n: int, batch: int, steps: int, dt: float, repeats: int = 1,
              timeout: float = 900.0) -> dict:
    """Run `main` in a fresh interpreter and return its JSON line as a dict."""
    cmd = [sys.executable, "-m", "oscillax.bench._child", "--impl", impl, "--n", str(n),
           "--batch", str(batch), "--steps", str(steps), "--dt", str(dt),
           "--repeats", str(repeats)]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                              cwd=root)
    except subprocess.TimeoutExpired:
        return {"status": "error", "note": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"status": "error", "note": f"exit {proc.returncode}: {tail[0][:300]}"}
    return json.loads(lines[-1])


if __name__ == "__main__":
    main()
