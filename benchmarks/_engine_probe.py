"""Where does `ox.simulate`'s time go? A ladder of variants, timed interleaved.

`python -m benchmarks._engine_probe [--quick] [--rounds N] [--out PATH]`

For W2 (n=2) and W512 (n=512), forward Euler, pre-tanh, final state only:
- `simulate`: the public call;
- `no-test`: the same field and solver step in a bare `lax.scan`, no divergence test:
  the floor for this step function;
- `sum0-test`: the bare scan plus the engine's per-step test as `simulate` writes it
  (`jnp.sum(Y * Y, axis=0)`, where-freeze);
- `proto-1`: the same per-step test with the squared norm as an unrolled row sum;
- `proto-k`: `_prototype.run_fixed_blockcheck`, test once every k steps, exact
  (bit-identical final state and `diverged_at`, see `_prototype.check_equivalence`);
- W512 only: `matmul-chain` (`X <- A @ X`, the matmul alone) and `linear-step`
  (`X + dt A X`, no tanh), to split the step's cost.

Then the fixed costs of a call: `simulate` with 1 step (steady state), the first call at
a new batch shape, and the first call at a new step count (same shape).

Rounds are interleaved so that load from other processes hits every variant alike; the
best wall time and the best process CPU time (all threads) are reported. On a shared
machine the CPU time is the steadier of the two for single-threaded work.
"""

from __future__ import annotations

import argparse
import json
import time


def _variants(p, ks):
    import jax
    import jax.numpy as jnp

    import oscillax as ox
    from oscillax._solver import FIXED_SOLVERS

    from . import _impls as I
    from . import _prototype as P

    solver = FIXED_SOLVERS["euler"]
    field = ox.PreActivation(jnp.asarray(p.A), "tanh")
    X0 = jnp.asarray(p.x0).T
    dt = jnp.asarray(p.dt, jnp.float32)
    steps = p.steps

    @jax.jit
    def no_test(field, X, dt):
        def body(X, k):
            return solver.step(field, k.astype(X.dtype) * dt, X, dt), None

        return jax.lax.scan(body, X, jnp.arange(steps, dtype=jnp.int32))[0]

    inv = P._threshold_inv(jnp.asarray(p.x0), 1e6, 1.0)

    @jax.jit
    def sum0_test(field, X, dt):
        def body(carry, k):
            X, alive, div_at = carry
            Xn = solver.step(field, k.astype(X.dtype) * dt, X, dt)
            Y = Xn * inv[None, :]
            bad = ~(jnp.sum(Y * Y, axis=0) <= 1.0)
            div_at = jnp.where(bad & alive, k + 1, div_at)
            alive = alive & ~bad
            return (jnp.where(alive[None, :], Xn, X), alive, div_at), None

        init = (X, jnp.ones(X.shape[1], bool), jnp.full(X.shape[1], -1, jnp.int32))
        return jax.lax.scan(body, init, jnp.arange(steps, dtype=jnp.int32))[0][0]

    out = {
        "simulate": I.oscillax_final(p).run,
        "no-test": lambda: no_test(field, X0, dt),
        "sum0-test": lambda: sum0_test(field, X0, dt),
    }
    if p.n > 32:  # what the matmul alone, and the step without tanh, cost
        A = jnp.asarray(p.A)

        @jax.jit
        def matmul_chain(A, X):
            return jax.lax.scan(lambda X, _: (A @ X, None), X, None, length=steps)[0]

        @jax.jit
        def linear_step(A, X, dt):
            return jax.lax.scan(lambda X, _: (X + dt * (A @ X), None), X, None,
                                length=steps)[0]

        out["matmul-chain"] = lambda: matmul_chain(A, X0)
        out["linear-step"] = lambda: linear_step(A, X0, dt)
    for k in ks:
        out[f"proto-{k}"] = P.proto_final(p, k).run
    return out


def _interleaved(cands: dict, rounds: int) -> dict:
    import jax

    for f in cands.values():
        jax.block_until_ready(f())
    wall = {k: float("inf") for k in cands}
    cpu = {k: float("inf") for k in cands}
    for _ in range(rounds):
        for k, f in cands.items():
            c0, t0 = time.process_time(), time.perf_counter()
            jax.block_until_ready(f())
            wall[k] = min(wall[k], time.perf_counter() - t0)
            cpu[k] = min(cpu[k], time.process_time() - c0)
    return {k: {"wall_s": wall[k], "cpu_s": cpu[k]} for k in cands}


def _fixed_costs(p) -> dict:
    """Steady per-call overhead and first-call costs of `simulate`."""
    import jax
    import jax.numpy as jnp

    import oscillax as ox

    field = ox.PreActivation(jnp.asarray(p.A), "tanh")
    B = p.batch + 1  # a batch shape nothing has compiled yet
    x0 = jnp.asarray(p.x0[:1]).repeat(B, 0)

    def call(steps, x):
        return ox.simulate(field, x, dt=p.dt, steps=steps, save_every=steps).final

    t0 = time.perf_counter()
    jax.block_until_ready(call(p.steps, x0))
    first_new_shape = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(call(p.steps + 1, x0))
    first_new_steps = time.perf_counter() - t0
    jax.block_until_ready(call(1, x0))
    one = float("inf")
    for _ in range(20):
        t0 = time.perf_counter()
        jax.block_until_ready(call(1, x0))
        one = min(one, time.perf_counter() - t0)
    return {
        "first_call_new_batch_shape_s": first_new_shape,
        "first_call_new_step_count_s": first_new_steps,
        "steady_call_1_step_s": one,
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks._engine_probe")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)

    from ._workloads import W2, W512

    report = {}
    for W in (W2, W512):
        w = W(a.quick, 1)
        p = w.problem()
        res = _interleaved(_variants(p, (1, 4, 16, 64)), a.rounds)
        ts = p.batch * p.steps
        for r in res.values():
            r["traj_steps_per_s"] = ts / r["wall_s"]
            r["traj_steps_per_cpu_s"] = ts / r["cpu_s"]
        report[w.name] = {"params": w.params, "variants": res, "fixed": _fixed_costs(p)}
        print(f"{w.name} {w.params}")
        for k, r in res.items():
            print(f"  {k:10s} wall {r['wall_s'] * 1e3:8.1f} ms  cpu {r['cpu_s'] * 1e3:8.1f} ms"
                  f"  {r['traj_steps_per_s']:.3g} traj-steps/s")
        for k, v in report[w.name]["fixed"].items():
            print(f"  {k}: {v * 1e3:.1f} ms")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
