"""Lyapunov spectra: oscillax against lyapax on the same workload, in one process (issue 14).

Workload (the issue's): 256 random 8-dim post-tanh networks (A = random skew, spectral
radius 1), forward Euler h = 0.1, full spectrum (k = 8), 10 000 steps, renormalised every
step, float64, under `jax.jit(jax.vmap(...))` over (A, x0), warm (best of `--repeats` calls
after the first). Both start from the same tangent basis (lyapax's own default: the QR of
`jax.random.normal(PRNGKey(0), (8, 8))`), so the exponents must agree to rounding.

Timings are wall-clock (best of the repeats) and, because the machine may be shared, also the
process CPU time of each call (best of the repeats); both ratios are reported.

A second row measures Lorenz (10, 28, 8/3), rk4 dt = 0.01, 10 000 transient steps, then
t = 1000 and t = 10 000, against the reference (0.9056, 0, -14.5723), both libraries from
the same tangent basis. The sum of the exponents is reported against the flow's
-(sigma + 1 + beta) = -13.6667 and against the rk4 map's own mean log|det DPsi| / dt, the
quantity a spectrum of the rk4 map sums to: both measured on one and the same orbit (the
rk4 map augmented with a running sum of log|det DPsi|, measured as an `ox.IteratedMap`), and
the flow's sum by an adaptive solver (dopri8, the variational equation) for comparison.

    python benchmarks/lyapunov_peer.py                  # full size
    python benchmarks/lyapunov_peer.py --steps 2000 --repeats 2 --json out.json

lyapax is optional (`pip install lyapax`); without it its rows are skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import oscillax as ox  # noqa: E402

try:
    import lyapax
except ImportError:  # optional peer
    lyapax = None

LORENZ_REF = np.array([0.9056, 0.0, -14.5723])


def _best(fn, args, repeats):
    out = jax.block_until_ready(fn(*args))  # compile + first call
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return out, times


def network_workload(batch, n, h, steps, renorm_every, options):
    keys = jax.random.split(jax.random.key(0), batch)
    As = jnp.stack([ox.random_skew(key, n) for key in keys])
    x0s = jax.random.normal(jax.random.key(1), (batch, n))
    # lyapax's default initial tangents, given to both
    basis = jnp.linalg.qr(jax.random.normal(jax.random.PRNGKey(0), (n, n)))[0]

    def ox_one(A, x0):
        field = ox.PostActivation(A, "tanh")
        return ox.lyapunov_spectrum(field, x0, dt=h, steps=steps, solver="euler",
                                    renorm_every=renorm_every, basis=basis).exponents

    jit = lambda f: jax.jit(f, compiler_options=options)
    fns = {"oscillax": jit(jax.vmap(ox_one))}
    if lyapax is not None:
        def lyapax_one(A, x0, shared_step=False):
            if shared_step:  # oscillax's own Euler map, so both follow the same orbit
                field = ox.PostActivation(A, "tanh")
                step = lambda x: x + h * field(0.0, x)
            else:
                step = lambda x: x + h * (A @ jnp.tanh(x))
            return lyapax.lyapunov_spectrum(step, x0, dt=h, n_steps=steps,
                                            renorm_every=renorm_every).exponents

        fns["lyapax"] = jit(jax.vmap(lyapax_one))
        fns["lyapax (oscillax's step map)"] = jit(
            jax.vmap(lambda A, x0: lyapax_one(A, x0, shared_step=True)))
    return fns, (As, x0s)


def run_networks(batch, n, h, steps, renorm_every, repeats, options=None):
    fns, args = network_workload(batch, n, h, steps, renorm_every, options)
    outs, times, cpu = {}, {name: [] for name in fns}, {name: [] for name in fns}
    for name, fn in fns.items():  # compile and warm up
        outs[name] = jax.block_until_ready(fn(*args))
    for _ in range(repeats):  # interleaved, so both see the same machine load
        for name, fn in fns.items():
            t, c = time.perf_counter(), time.process_time()
            jax.block_until_ready(fn(*args))
            times[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
    rows = {}
    for name in fns:
        best = min(times[name])
        rows[name] = {"run_s": best, "traj_steps_per_s": batch * steps / best,
                      "all_run_s": times[name], "cpu_s": min(cpu[name]),
                      "all_cpu_s": cpu[name]}
    if "lyapax" in rows:
        ox_e = np.asarray(outs["oscillax"])
        # Chaotic members: the two steps x + h A tanh(x) round differently (a dot against
        # an unrolled sum), the orbits separate like exp(lambda_1 t), and the finite-time
        # exponents differ at the 1e-3 level. Given the same step map, the orbits agree
        # and so must the exponents.
        rows["max_abs_exponent_diff_own_steps"] = float(
            np.max(np.abs(ox_e - np.asarray(outs["lyapax"]))))
        rows["max_abs_exponent_diff_same_step_map"] = float(
            np.max(np.abs(ox_e - np.asarray(outs["lyapax (oscillax's step map)"]))))
        rows["speedup"] = rows["lyapax"]["run_s"] / rows["oscillax"]["run_s"]
        rows["speedup_cpu_time"] = rows["lyapax"]["cpu_s"] / rows["oscillax"]["cpu_s"]
    return rows


def lorenz(t, x, args):
    return jnp.stack([10 * (x[1] - x[0]), x[0] * (28 - x[2]) - x[1],
                      x[0] * x[1] - 8 / 3 * x[2]])


LORENZ_FLOW_SUM = -(10 + 1 + 8 / 3)  # tr J, the same at every point


def lorenz_volume(steps, dt=0.01, transient=10_000):
    """The sum of the rk4 map's exponents against its own mean log|det DPsi| / dt on one and
    the same orbit, and against the flow's -(sigma + 1 + beta). The rk4 map of Lorenz is
    augmented with a running sum a of log|det DPsi(x)| (a 4-dim map whose spectrum is the rk4
    map's plus an exact 0, with the same determinant), so a is accumulated along the very
    orbit the spectrum is measured on."""
    field = ox.VectorField(lorenz)
    rk4 = ox.FIXED_SOLVERS["rk4"]

    def step(x):
        return rk4.step(field, 0.0, x[:, None], dt)[:, 0]

    def aug(z):
        x = z[:3]
        logdet = jnp.log(jnp.abs(jnp.linalg.det(jax.jacfwd(step)(x))))
        return jnp.concatenate([step(x), z[3:] + logdet])

    x = jax.jit(lambda x: jax.lax.fori_loop(0, transient, lambda i, x: step(x), x))(
        jnp.ones(3))
    res = jax.jit(lambda z: ox.lyapunov_spectrum(ox.IteratedMap(aug), z, steps=steps,
                                                 basis=jnp.eye(4)))(
        jnp.concatenate([x, jnp.zeros(1)]))
    spectrum_sum = float(jnp.sum(res.exponents)) / dt
    map_logdet = float(res.state[3]) / (steps * dt)
    return {"spectrum_sum_same_orbit": spectrum_sum,
            "map_mean_logdet_per_time": map_logdet,
            "sum_minus_map_logdet": spectrum_sum - map_logdet,
            "map_logdet_minus_flow": map_logdet - LORENZ_FLOW_SUM}


def run_lorenz(repeats, steps):
    x0 = jnp.array([1.0, 1.0, 1.0])
    basis = jnp.linalg.qr(jax.random.normal(jax.random.PRNGKey(0), (3, 3)))[0]  # lyapax's
    rows = {}
    f_ox = jax.jit(lambda x: ox.lyapunov_spectrum(
        lorenz, x, dt=0.01, steps=steps, transient=10_000, basis=basis).exponents)
    out, times = _best(f_ox, (x0,), repeats)
    rows["oscillax"] = {"exponents": np.asarray(out).tolist(), "run_s": min(times),
                        "max_err_vs_ref": float(np.max(np.abs(np.asarray(out) - LORENZ_REF))),
                        "sum": float(np.sum(out)),
                        "sum_minus_flow": float(np.sum(out)) - LORENZ_FLOW_SUM}
    rows["oscillax rk4 map volume"] = lorenz_volume(steps)
    flow_steps = min(steps, 100_000)  # an adaptive solve per interval: t <= 1000 is enough
    flow = jax.jit(lambda x: ox.lyapunov_spectrum(
        lorenz, x, dt=0.01, steps=flow_steps, transient=10_000, basis=basis,
        solver="dopri8").exponents)(x0)
    rows[f"oscillax dopri8 (flow), t={flow_steps * 0.01:g}"] = {
        "exponents": np.asarray(flow).tolist(), "sum": float(np.sum(flow)),
        "sum_minus_flow": float(np.sum(flow)) - LORENZ_FLOW_SUM,
        "max_err_vs_ref": float(np.max(np.abs(np.asarray(flow) - LORENZ_REF)))}
    if lyapax is not None:
        rhs = lambda x: lorenz(0.0, x, None)
        problem = lyapax.ode_problem(rhs, state0=x0, dt=0.01)
        f_ly = jax.jit(lambda: lyapax.lyapunov_spectrum(
            problem, n_steps=steps, t_transient=100.0).exponents)
        out, times = _best(f_ly, (), repeats)
        rows["lyapax"] = {"exponents": np.asarray(out).tolist(), "run_s": min(times),
                          "max_err_vs_ref": float(np.max(np.abs(np.asarray(out) - LORENZ_REF))),
                          "sum": float(np.sum(out)),
                          "sum_minus_flow": float(np.sum(out)) - LORENZ_FLOW_SUM}
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--h", type=float, default=0.1)
    p.add_argument("--steps", type=int, default=10_000)
    p.add_argument("--renorm-every", type=int, nargs="+", default=[1])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--vector-width", type=int, nargs="+", default=[0, 512],
                   help="XLA:CPU vector width given to both libraries' jit (0: XLA's "
                   "default); 512 is what oscillax's own jit uses")
    p.add_argument("--no-lorenz", action="store_true")
    p.add_argument("--lorenz-steps", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--json", default=None, help="write the results here")
    a = p.parse_args(argv)

    result = {"jax": jax.__version__, "backend": jax.default_backend(),
              "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine(),
              "loadavg_start": os.getloadavg(),
              "lyapax": getattr(lyapax, "__version__", None), "networks": {}}
    if lyapax is None:
        print("lyapax not installed (pip install lyapax): its rows are skipped")
    for m in a.renorm_every:
        for width in a.vector_width:
            options = {"xla_cpu_prefer_vector_width": width} if width else None
            rows = run_networks(a.batch, a.n, a.h, a.steps, m, a.repeats, options)
            label = f"renorm_every={m}, vector_width={width or 'default'}"
            result["networks"][label] = rows
            print(f"networks B={a.batch} n={a.n} Euler h={a.h} steps={a.steps} {label}")
            for name, r in rows.items():
                if isinstance(r, dict):
                    print(f"  {name:30s} {r['run_s']:8.3f} s  {r['traj_steps_per_s']:10.3g} "
                          f"traj-steps/s  (cpu {r['cpu_s']:.3f} s)")
            if "speedup" in rows:
                print(f"  oscillax / lyapax: {rows['speedup']:.1f}x wall, "
                      f"{rows['speedup_cpu_time']:.1f}x cpu time; max |exponent difference|:"
                      f" {rows['max_abs_exponent_diff_same_step_map']:.2e} on the same step "
                      f"map, {rows['max_abs_exponent_diff_own_steps']:.2e} with each "
                      "library's own (orbits of chaotic members separate)")
    if not a.no_lorenz:
        result["lorenz"] = {}
        for steps in a.lorenz_steps:
            rows = run_lorenz(a.repeats, steps)
            result["lorenz"][f"t={steps * 0.01:g}"] = rows
            print(f"Lorenz rk4 dt=0.01, t={steps * 0.01:g} after t=100 "
                  "(reference 0.9056, 0, -14.5723)")
            for name, r in rows.items():
                if "exponents" not in r:
                    print(f"  {name}: spectrum sum {r['spectrum_sum_same_orbit']:.10f} = mean "
                          f"log|det DPsi|/dt {r['map_mean_logdet_per_time']:.10f} "
                          f"({r['sum_minus_map_logdet']:+.1e}) on the same orbit; the map's "
                          f"minus the flow's -13.6667: {r['map_logdet_minus_flow']:+.3e}")
                    continue
                e = ", ".join(f"{v:.4f}" for v in r["exponents"])
                run = f"  {r['run_s']:.2f} s" if "run_s" in r else ""
                print(f"  {name:22s} ({e})  max err {r['max_err_vs_ref']:.4f}  sum "
                      f"{r['sum']:.6f} ({r['sum_minus_flow']:+.2e} vs the flow){run}")
    result["loadavg_end"] = os.getloadavg()
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
