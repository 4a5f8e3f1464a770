"""The workloads of issue #4, their sizes (full and `--quick`), and which implementations run
each one.

To add an implementation (e.g. the sweep engine as "oscillax-sweep"): write its
`make(problem) -> Prepared` in `_impls.py` and append an `Impl(...)` to the workload's
`impls()` list below. The row named "oscillax" stays the baseline of the ratios.
"""

from __future__ import annotations

import time

import numpy as np

from . import _impls as I
from ._harness import ERROR, OK, Impl, Result, cross_check, measure

TORCH = ("torch", "torchdiffeq")


def rotation_skew(omega: float = 1.0) -> np.ndarray:
    return np.array([[0.0, -omega], [omega, 0.0]], np.float32)


def random_skew(rng: np.random.Generator, n: int, spectral_radius: float = 1.0) -> np.ndarray:
    W = rng.standard_normal((n, n))
    A = W - W.T
    A *= spectral_radius / np.max(np.abs(np.linalg.eigvals(A)))
    return A.astype(np.float32)


class Workload:
    """A named benchmark: a `Problem`, the implementations that run it, and extras."""

    name: str = ""
    title: str = ""

    def __init__(self, quick: bool, repeats: int):
        self.quick = quick
        self.repeats = repeats
        self.params = self.sizes(quick)

    def sizes(self, quick: bool) -> dict:
        raise NotImplementedError

    def problem(self) -> I.Problem:
        raise NotImplementedError

    def impls(self) -> list[Impl]:
        raise NotImplementedError

    def traj_steps(self, p: I.Problem) -> int:
        return p.batch * p.steps

    def extras(self, results: list[Result], p: I.Problem) -> dict:
        return {}

    def run(self, log=print) -> dict:
        p = self.problem()
        results = []
        for impl in self.impls():
            log(f"  {self.name}: {impl.name} ...")
            results.append(
                measure(impl, p, traj_steps=self.traj_steps(p), repeats=self.repeats,
                        slow_call_s=1.0 if self.quick else 20.0,
                        min_total_s=0.0 if self.quick else 1.0)
            )
            r = results[-1]
            if r.status == OK:
                log(f"    {r.traj_steps_per_s:.3g} traj-steps/s (run {r.run_s:.4g} s, "
                    f"first call {r.first_call_s:.4g} s)")
            else:
                log(f"    {r.status}: {r.note}")
        cross_check(results, {impl.name: impl.compare for impl in self.impls()})
        extra = self.extras(results, p)
        return {
            "name": self.name,
            "title": self.title,
            "params": self.params,
            "traj_steps": self.traj_steps(p),
            "results": [r.to_json() for r in results],
            "extra": extra,
        }


SWEEP = ("oscillax._monitor",)  # the one documented internal module the rows use


def _forward_impls(scipy: bool = True, sweep: bool = False) -> list[Impl]:
    impls = [
        Impl("oscillax", I.oscillax_final, description="ox.simulate, save_every=steps"),
    ]
    if sweep:
        impls.append(Impl("oscillax-sweep", I.oscillax_sweep_final, SWEEP,
                          description="oscillax._monitor.integrate_monitored (atlas engine, "
                          "streaming monitors)"))
    impls += [
        Impl("diffrax-vmap", I.diffrax_final, ("diffrax",),
             description="jit(vmap(diffeqsolve(Euler, SaveAt(t1=True))))"),
    ]
    if sweep:
        impls.append(Impl("diffrax-opts", I.diffrax_final_engine_options, ("diffrax",),
                          description="the same, compiled with the engine's compiler options "
                          "(oscillax._monitor.ENGINE_COMPILER_OPTIONS)"))
    impls += [
        Impl("numpy-loop", I.numpy_final, description="python loop over steps, (B, n) arrays"),
        Impl("torchdiffeq", I.torch_final, TORCH,
             description="odeint(method='euler'), batch as one state"),
    ]
    if scipy:
        impls.append(Impl("scipy-rk45", I.scipy_final, ("scipy",),
                          description="solve_ivp RK45 per trajectory, small batch"))
    return impls


class W2(Workload):
    name = "W2"
    title = "n=2 pre-tanh, forward Euler dt=0.01, final state only"

    def sizes(self, quick):
        return dict(n=2, batch=1024 if quick else 4096, steps=1000 if quick else 10_000,
                    dt=0.01, scipy_batch=4 if quick else 8)

    def problem(self):
        q = self.params
        rng = np.random.default_rng(0)
        x0 = rng.standard_normal((q["batch"], 2)).astype(np.float32)
        return I.Problem(rotation_skew(), x0, q["dt"], q["steps"], "pre",
                         small_batch=q["scipy_batch"])

    def impls(self):
        return _forward_impls(sweep=True)


def _flop_references(p: I.Problem, rounds: int) -> dict:
    """oscillax's W512 call and two matmul references, timed in alternating rounds (best of
    each, and the median over rounds of oscillax's ratio to each reference), so that load
    from other processes hits all three alike.

    - `matmul`: a jitted square float32 `(n, n) @ (n, n)` jnp matmul, called repeatedly
      (as many FLOPs per timing as the oscillax call);
    - `matmul_chain`: `steps` chained `X <- A @ X` in one `lax.scan`, the step's own matmul
      shape with nothing else (A is skew with spectral radius 1, so X stays bounded).
    """
    import jax
    import jax.numpy as jnp

    n, B, steps = p.n, p.batch, p.steps
    k1, k2 = jax.random.split(jax.random.key(0))
    a = jax.random.normal(k1, (n, n), jnp.float32)
    b = jax.random.normal(k2, (n, n), jnp.float32)
    mm = jax.jit(jnp.matmul)
    # As many FLOPs per timing as oscillax's call: under intermittent load a short timing
    # catches quiet moments more often, which would bias the best-of towards the matmul.
    inner = max(1, round(W512.flops_per_step(n, B) * steps / (2 * n**3)))

    def square():
        for _ in range(inner):
            out = mm(a, b)
        return out

    A, X0 = jnp.asarray(p.A), jnp.asarray(np.ascontiguousarray(p.x0.T))

    @jax.jit
    def chain(A, X):
        return jax.lax.scan(lambda X, _: (A @ X, None), X, None, length=steps)[0]

    cands = {"oscillax": I.oscillax_final(p).run, "matmul": square,
             "matmul_chain": lambda: chain(A, X0)}
    flops = {"oscillax": W512.flops_per_step(n, B) * steps, "matmul": 2 * n**3 * inner,
             "matmul_chain": 2 * n * n * B * steps}
    for f in cands.values():
        jax.block_until_ready(f())
    walls = {k: [] for k in cands}
    cpus = {k: [] for k in cands}
    for _ in range(rounds):
        for k, f in cands.items():
            c0, t0 = time.process_time(), time.perf_counter()
            jax.block_until_ready(f())
            walls[k].append(time.perf_counter() - t0)
            cpus[k].append(time.process_time() - c0)
    wall = {k: min(v) for k, v in walls.items()}
    cpu = {k: min(v) for k, v in cpus.items()}
    # The same ratio round by round (each round times the three back to back), and its
    # median: one lucky or unlucky timing of either side does not decide it.
    paired = {
        ref: float(np.median([(flops["oscillax"] / to) / (flops[ref] / tr)
                              for to, tr in zip(walls["oscillax"], walls[ref])]))
        for ref in ("matmul", "matmul_chain")
    }
    return {
        k: {"seconds": wall[k], "cpu_seconds": cpu[k], "flops_per_s": flops[k] / wall[k],
            "flops_per_cpu_s": flops[k] / cpu[k]}
        for k in cands
    } | {"matmul_shape": f"({n}x{n}) @ ({n}x{n}), {inner} calls",
         "matmul_chain_shape": f"({n}x{n}) @ ({n}x{B}), {steps} in a scan",
         "rounds": rounds, "median_round_fraction": paired}


class W512(Workload):
    name = "W512"
    title = "n=512 pre-tanh, forward Euler dt=0.01, final state only; FLOP/s vs matmul"

    def sizes(self, quick):
        return dict(n=128 if quick else 512, batch=64 if quick else 256,
                    steps=100 if quick else 500, dt=0.01, scipy_batch=1 if quick else 2)

    def problem(self):
        q = self.params
        rng = np.random.default_rng(1)
        A = random_skew(rng, q["n"])
        x0 = rng.standard_normal((q["batch"], q["n"])).astype(np.float32)
        return I.Problem(A, x0, q["dt"], q["steps"], "pre", small_batch=q["scipy_batch"])

    def impls(self):
        return _forward_impls()

    @staticmethod
    def flops_per_step(n: int, batch: int) -> int:
        # matvec 2 n^2 B, plus elementwise tanh, dt*, + counted as 1 flop each.
        return 2 * n * n * batch + 3 * n * batch

    def extras(self, results, p):
        n, B = p.n, p.batch
        per_traj_step = self.flops_per_step(n, B) / B
        for r in results:
            if r.status == OK:
                r.extra["flops_per_s"] = r.traj_steps_per_s * per_traj_step
        refs = _flop_references(p, rounds=max(3, self.repeats if self.quick else 10))
        out = {
            "flop_count": "2*n^2*B per step (matvec) + 3*n*B (tanh, scale, add)",
            "flops_per_traj_step": per_traj_step,
            "flops_per_s": {
                r.impl: r.traj_steps_per_s * per_traj_step for r in results if r.status == OK
            },
            "paired": refs,
            "target_fraction": 0.85,
        }
        ox, mm, ch = refs["oscillax"], refs["matmul"], refs["matmul_chain"]
        out["oscillax_fraction_of_matmul"] = ox["flops_per_s"] / mm["flops_per_s"]
        out["oscillax_fraction_of_matmul_chain"] = ox["flops_per_s"] / ch["flops_per_s"]
        # In process CPU time: steadier when other processes load the machine.
        out["oscillax_cpu_fraction_of_matmul"] = ox["flops_per_cpu_s"] / mm["flops_per_cpu_s"]
        out["oscillax_cpu_fraction_of_matmul_chain"] = (
            ox["flops_per_cpu_s"] / ch["flops_per_cpu_s"]
        )
        return out


class Atlas(Workload):
    name = "atlas"
    title = "atlas slice: n=2 pre-tanh Euler, same horizon T, several dt (one run per dt)"

    def sizes(self, quick):
        if quick:
            return dict(n=2, batch=256, T=5.0, dts=[0.01, 0.05, 0.1])
        return dict(n=2, batch=4096, T=25.0, dts=[0.0025, 0.005, 0.01, 0.02, 0.05, 0.1])

    def problem(self):
        q = self.params
        B = q["batch"]
        # A grid of amplitudes and phases, as an atlas would sweep them.
        r = np.linspace(0.1, 5.0, B)
        th = np.linspace(0.0, 2 * np.pi, B, endpoint=False) * 7.0
        x0 = np.stack([r * np.cos(th), r * np.sin(th)], 1).astype(np.float32)
        dts = tuple(q["dts"])
        steps = tuple(int(round(q["T"] / dt)) for dt in dts)
        return I.Problem(rotation_skew(), x0, dts[0], steps[0], "pre", dts=dts,
                         steps_list=steps)

    def traj_steps(self, p):
        return p.batch * sum(p.steps_list)

    def impls(self):
        return [
            Impl("oscillax", I.oscillax_atlas,
                 description="ox.simulate per dt (one compile per step count)"),
            Impl("oscillax-sweep", I.oscillax_sweep_atlas, SWEEP,
                 description="integrate_monitored per dt (traced step counts: one compile)"),
            Impl("diffrax-vmap", I.diffrax_atlas, ("diffrax",),
                 description="one jit(vmap(diffeqsolve)) with dt traced"),
            Impl("numpy-loop", I.numpy_atlas, description="numpy loop per dt"),
            Impl("torchdiffeq", I.torch_atlas, TORCH, description="odeint euler per dt"),
        ]


class Grad(Workload):
    name = "grad"
    title = "gradient step: d/dW MSE of a post-tanh n=8 trajectory (A = W - W^T)"

    def sizes(self, quick):
        return dict(n=8, batch=8 if quick else 32, steps=200 if quick else 1000,
                    save_every=10, dt=0.01)

    def problem(self):
        q = self.params
        rng = np.random.default_rng(2)
        n, B = q["n"], q["batch"]
        W_true = 0.5 * rng.standard_normal((n, n))
        W = (W_true + 0.1 * rng.standard_normal((n, n))).astype(np.float32)
        x0 = rng.standard_normal((B, n)).astype(np.float32)
        # Target: the true network's Euler trajectory at the saved steps.
        A_true = (W_true - W_true.T).astype(np.float32)
        X = x0.copy()
        saved = [X]
        for k in range(1, q["steps"] + 1):
            X = X + np.float32(q["dt"]) * (np.tanh(X) @ A_true.T)
            if k % q["save_every"] == 0:
                saved.append(X)
        target = np.stack(saved, 1).astype(np.float32)  # (B, T, n)
        return I.Problem(W - W.T, x0, q["dt"], q["steps"], "post", W=W, target=target,
                         save_every=q["save_every"])

    def impls(self):
        return [
            Impl("oscillax", I.oscillax_grad, description="jit(grad) through ox.simulate"),
            Impl("diffrax-vmap", I.diffrax_grad, ("diffrax",),
                 description="jit(grad) through vmap(diffeqsolve(SaveAt(ts)))"),
            Impl("torchdiffeq", I.torch_grad, TORCH, description="autograd through odeint"),
        ]


class LongRun(Workload):
    """1e6 Euler steps vs 1e4, each in a fresh subprocess: peak RSS must not grow."""

    name = "longrun"
    title = "long run: n=2 pre-tanh Euler, peak RSS at many steps vs few (fresh processes)"

    def sizes(self, quick):
        if quick:
            return dict(n=2, batch=256, dt=0.01, steps_short=1_000, steps_long=100_000,
                        impls=["oscillax"])
        return dict(n=2, batch=4096, dt=0.01, steps_short=10_000, steps_long=1_000_000,
                    impls=["oscillax", "diffrax-vmap"])

    def traj_steps(self, p=None):
        return self.params["batch"] * self.params["steps_long"]

    def run(self, log=print):
        from ._child import run_child

        q = self.params
        rows, extra = [], {"rss_method": "peak RSS (VmHWM) of a fresh subprocess"}
        for impl in q["impls"]:
            runs = {}
            for key in ("steps_short", "steps_long"):
                log(f"  longrun: {impl} {q[key]} steps (subprocess) ...")
                runs[key] = run_child(impl, n=q["n"], batch=q["batch"], steps=q[key],
                                      dt=q["dt"], repeats=1 if key == "steps_long" else 2)
                if runs[key].get("status") == OK:
                    log(f"    peak RSS {runs[key]['maxrss_bytes'] / 2**20:.1f} MiB, "
                        f"{runs[key]['traj_steps_per_s']:.3g} traj-steps/s")
                else:
                    log(f"    error: {runs[key].get('note')}")
            short, long_ = runs["steps_short"], runs["steps_long"]
            row = Result(impl=impl, status=long_.get("status", ERROR),
                         note=long_.get("note", ""))
            if row.status == OK:
                row.first_call_s = long_["first_call_s"]
                row.run_s = long_["run_s"]
                row.compile_s = long_["compile_s"]
                row.runs_s = long_["runs_s"]
                row.traj_steps = long_["traj_steps"]
                row.traj_steps_per_s = long_["traj_steps_per_s"]
                row.peak_mem_bytes = long_["maxrss_bytes"]
                row.mem_method = "peak RSS (VmHWM) of the whole fresh process"
                row.extra = {
                    "maxrss_bytes_short": short.get("maxrss_bytes"),
                    "maxrss_bytes_long": long_["maxrss_bytes"],
                    "steps_short": q["steps_short"],
                    "steps_long": q["steps_long"],
                    "rss_growth_bytes": long_["maxrss_bytes"] - short.get("maxrss_bytes", 0),
                    "rss_ratio_long_over_short": long_["maxrss_bytes"]
                    / max(short.get("maxrss_bytes", 1), 1),
                    # Peak RSS gained by the run itself, above imports + backend + inputs.
                    "run_rss_growth_bytes_short": short.get("maxrss_bytes", 0)
                    - short.get("maxrss_bytes_before", 0),
                    "run_rss_growth_bytes_long": long_["maxrss_bytes"]
                    - long_.get("maxrss_bytes_before", 0),
                    "short_run": short,
                }
                row.note = (f"RSS {q['steps_long']:.0e} steps / {q['steps_short']:.0e} steps"
                            f" = {row.extra['rss_ratio_long_over_short']:.3f}")
            rows.append(row)
            extra[impl] = row.extra
        cross_check(rows, {})
        return {
            "name": self.name,
            "title": self.title,
            "params": q,
            "traj_steps": self.traj_steps(),
            "results": [r.to_json() for r in rows],
            "extra": extra,
        }


from ._e2e import AtlasCommand, SweepScript  # noqa: E402  (the end-to-end rows come first)
from ._forecast import Forecast  # noqa: E402
from ._orbits import Orbits  # noqa: E402

WORKLOADS: dict[str, type] = {
    w.name: w for w in (AtlasCommand, SweepScript, W2, W512, Atlas, Grad, LongRun, Orbits,
                      Forecast)
}
