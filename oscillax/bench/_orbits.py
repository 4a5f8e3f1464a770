"""The orbit workload: `ox.periodic_orbit` on a batch of random 8-unit post-tanh networks
from atlas-style starting guesses (float64, one call), and on the Hopf normal form beside
jaxcont's collocation (an optional peer, skipped when absent), each in a fresh process.

`python -m oscillax.bench._orbits --batch 4096` runs the child and prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from ._harness import OK, SKIPPED, Result


@dataclass(frozen=True)
class _Row:
    name: str


def _guesses(As, amplitude=1.0, h=0.02, steps=1000):
    """A point in the plane of each network's fastest mode, and a period from the upward
    zero crossings of that mode's coordinate along a short rk4 run (`ox.simulate`)."""
    import numpy as np

    import oscillax as ox

    X0 = []
    for A in As:
        w, V = np.linalg.eig(A)
        a = V[:, int(np.argmax(w.imag))].real
        X0.append(amplitude * a / np.linalg.norm(a))
    X0 = np.stack(X0)
    periods = []
    for A, x0 in zip(As, X0):
        tr = ox.simulate(ox.PostActivation(A, "tanh", check_skew=False), x0, dt=h, steps=steps,
                         solver="rk4")
        c = np.asarray(tr.xs) @ x0
        i = np.where((c[:-1] <= 0) & (c[1:] > 0))[0]
        tc = h * (i + (-c[i]) / (c[i + 1] - c[i]))
        periods.append(np.mean(np.diff(tc)))
    return X0, np.asarray(periods)


def _child(batch: int) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    import equinox as eqx
    import jax.numpy as jnp
    import numpy as np

    import oscillax as ox

    out = {"batch": batch}
    As = np.stack([np.asarray(ox.random_skew(k, 8)) for k in
                   jax.random.split(jax.random.key(11), batch)])
    X0, T0 = _guesses(As)
    field = eqx.tree_at(lambda f: f.A, ox.PostActivation(As[0], "tanh"),
                        jnp.asarray(np.moveaxis(As, 0, 2)))
    t0 = time.perf_counter()
    o = jax.block_until_ready(ox.periodic_orbit(field, X0, T0))
    out["networks_s"] = time.perf_counter() - t0
    c = np.asarray(o.converged)
    out["converged"] = float(c.mean())
    out["max_residual"] = float(np.asarray(o.residual)[c].max()) if c.any() else None

    mu, om = 0.3, 1.7

    def hopf(t, u, args):
        r2 = u[0] ** 2 + u[1] ** 2
        return jnp.stack([mu * u[0] - om * u[1] - u[0] * r2, om * u[0] + mu * u[1] - u[1] * r2])

    exact = math.exp(-4 * math.pi * mu / om)
    guess = np.array([0.9 * math.sqrt(mu), 0.0])
    for label in ("first", "second"):
        t0 = time.perf_counter()
        h = jax.block_until_ready(ox.periodic_orbit(hopf, guess, 1.05 * 2 * math.pi / om))
        out[f"hopf_{label}_s"] = time.perf_counter() - t0
    out["hopf_period_error"] = abs(float(h.period) - 2 * math.pi / om)
    out["hopf_multiplier_error"] = abs(float(np.abs(np.asarray(h.multipliers)[1])) - exact)
    try:
        from jaxcont.core.collocation import Collocation
        from jaxcont.problems.periodic import periodic_orbit_problem
        from jaxcont.stability.floquet import floquet_multipliers
    except ImportError:
        out["jaxcont"] = None
        return out

    def f(u, p, args):
        r2 = u[0] ** 2 + u[1] ** 2
        return jnp.stack([p * u[0] - om * u[1] - u[0] * r2, om * u[0] + p * u[1] - u[1] * r2])

    T = 2 * math.pi / om
    ts = jnp.linspace(0, 1.05 * T, 200)
    r = 0.9 * math.sqrt(mu)
    u = jnp.stack([r * jnp.cos(om * ts), r * jnp.sin(om * ts)], 1)
    mesh = Collocation(ntst=40, ncol=4)
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        prob = periodic_orbit_problem(f, u, ts, 1.05 * T, mu, mesh)
        U0 = jax.block_until_ready(prob.u0)
        m = jax.block_until_ready(floquet_multipliers(f, mesh, U0, jnp.asarray(mu)))
        times.append(time.perf_counter() - t0)
    mags = np.sort(np.abs(np.asarray(m)))
    out["jaxcont"] = {"first_s": times[0], "second_s": times[1],
                      "period_error": abs(float(U0[-1]) - T),
                      "multiplier_error": float(np.min(np.abs(mags - exact)))}
    return out


class Orbits:
    """Batched shooting on networks, and one Hopf orbit beside jaxcont."""

    name = "orbits"
    title = "periodic orbits (float64): batched shooting on 8-unit networks; Hopf vs jaxcont"

    def __init__(self, quick: bool, repeats: int):
        self.batch = 16 if quick else 4096

    def impls(self) -> list[_Row]:
        return [_Row(f"ox.periodic_orbit B{self.batch}"), _Row("ox.periodic_orbit hopf"),
                _Row("jaxcont hopf")]

    def run(self, log=print) -> dict:
        log(f"  {self.name}: B = {self.batch} networks + Hopf (fresh process) ...")
        p = subprocess.run([sys.executable, "-m", "oscillax.bench._orbits", "--batch",
                            str(self.batch)], capture_output=True, text=True,
                           cwd=tempfile.gettempdir())
        if p.returncode != 0:
            raise RuntimeError(f"orbit child failed ({p.returncode}): {p.stderr[-2000:]}")
        m = json.loads(p.stdout.strip().splitlines()[-1])
        rows = [
            Result(impl=self.impls()[0].name, status=OK, first_call_s=m["networks_s"],
                   run_s=m["networks_s"], compile_s=0.0, traj_steps=m["batch"],
                   traj_steps_per_s=m["batch"] / m["networks_s"], ratio_to_oscillax=1.0,
                   note=f"{m['converged']:.2%} converged, max residual "
                        f"{m['max_residual']:.2g}; rate = orbits / s, first call"),
            Result(impl=self.impls()[1].name, status=OK, first_call_s=m["hopf_first_s"],
                   run_s=m["hopf_second_s"], traj_steps=1,
                   compile_s=max(m["hopf_first_s"] - m["hopf_second_s"], 0.0),
                   traj_steps_per_s=1 / m["hopf_second_s"], ratio_to_oscillax=1.0,
                   note=f"period error {m['hopf_period_error']:.1e}, multiplier error "
                        f"{m['hopf_multiplier_error']:.1e}"),
        ]
        jc = m.get("jaxcont")
        if jc is None:
            rows.append(Result(impl="jaxcont hopf", status=SKIPPED,
                               note="not installed: jaxcont"))
        else:
            rows.append(Result(
                impl="jaxcont hopf", status=OK, first_call_s=jc["first_s"], run_s=jc["second_s"],
                compile_s=max(jc["first_s"] - jc["second_s"], 0.0), traj_steps=1,
                traj_steps_per_s=1 / jc["second_s"],
                ratio_to_oscillax=m["hopf_second_s"] / jc["second_s"],
                note=f"collocation; period error {jc['period_error']:.1e}, multiplier error "
                     f"{jc['multiplier_error']:.1e}"))
        log(f"    networks: {m['networks_s']:.1f} s, {m['converged']:.2%} converged")
        return {"name": self.name, "title": self.title, "params": {"batch": self.batch},
                "traj_steps": None, "results": [r.to_json() for r in rows], "extra": m}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m oscillax.bench._orbits")
    ap.add_argument("--batch", type=int, default=4096)
    print(json.dumps(_child(ap.parse_args(argv).batch)))


if __name__ == "__main__":
    main()
