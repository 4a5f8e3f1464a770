"""A prototype of a faster fixed-step engine, kept here as evidence for engine changes.

`run_fixed_blockcheck` has the semantics of `oscillax._solve._run_fixed` for the final state
(a member is frozen at its last state below the divergence threshold, `diverged_at` is the
exact step), but tests divergence once every `check_every` steps instead of every step:

- a block of `check_every` steps runs with no test (a static inner `lax.scan`);
- at its end, one test: members that went bad in this block and were alive are rare, so
  `lax.cond` replays only then the block from its saved start state with the per-step
  test, which recovers the exact step and the frozen state;
- members frozen earlier keep being stepped (their values are discarded), which costs
  nothing extra since the whole batch is one array op anyway.

Two independent changes, both measured by `python -m benchmarks._engine_probe`:

1. the squared norm of the test is an unrolled sum of rows for n <= 32 (`_sq_norm`), so
   it fuses with the step instead of being a separate reduction kernel every step;
2. with `check_every > 1`, the test runs once per block (plus an exact replay of a block
   in which a member went bad). `check_every=1` is the engine's per-step test with (1) only.
"""

from __future__ import annotations

import numpy as np

from ._harness import Prepared


def _threshold_inv(x0b, threshold, floor):
    import jax.numpy as jnp

    norm0 = jnp.linalg.norm(x0b, axis=-1)
    return (1.0 / (threshold * jnp.maximum(norm0, floor))).astype(x0b.dtype)


def _sq_norm(Y):
    """Squared norm of each column of `Y` `(n, B)`.

    For small n an unrolled sum of rows: elementwise over the batch, so XLA fuses it into
    the step's loop fusion. `jnp.sum(Y * Y, axis=0)` is a reduction over the major axis,
    which XLA:CPU emits as a separate kernel per step; at n = 2 that doubled the step's
    cost (`_engine_probe`).
    """
    import jax.numpy as jnp

    n = Y.shape[0]
    if n > 32:
        return jnp.sum(Y * Y, axis=0)
    out = Y[0] * Y[0]
    for i in range(1, n):
        out = out + Y[i] * Y[i]
    return out


def _make_engine():
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    @eqx.filter_jit
    def run_fixed_blockcheck(field, solver, X0, dt, inv_thr, *, steps, check_every):
        """Final state `(n, B)`, alive `(B,)`, diverged_at `(B,)` after `steps` steps."""
        B = X0.shape[1]
        dtype = X0.dtype
        dt = jnp.asarray(dt, dtype)

        def is_bad(X):
            Y = X * inv_thr[None, :]
            return ~(_sq_norm(Y) <= 1.0)

        def checked_step(carry, k):
            X, alive, div_at = carry
            Xn = solver.step(field, k.astype(dtype) * dt, X, dt)
            bad = is_bad(Xn)
            div_at = jnp.where(bad & alive, k + 1, div_at)
            alive = alive & ~bad
            return (jnp.where(alive[None, :], Xn, X), alive, div_at), None

        def fast_step(X, k):
            return solver.step(field, k.astype(dtype) * dt, X, dt), None

        def block(carry, k0, length):
            X, alive, div_at = carry
            ks = k0 + jnp.arange(length, dtype=jnp.int32)
            Xn, _ = jax.lax.scan(fast_step, X, ks)
            newly_bad = is_bad(Xn) & alive

            def replay(_):
                return jax.lax.scan(checked_step, carry, ks)[0]

            def accept(_):
                return (jnp.where(alive[None, :], Xn, X), alive, div_at)

            return jax.lax.cond(jnp.any(newly_bad), replay, accept, None)

        init = (X0, jnp.ones((B,), bool), jnp.full((B,), -1, jnp.int32))
        if check_every == 1:  # the engine's per-step test, only with `_sq_norm`
            return jax.lax.scan(checked_step, init, jnp.arange(steps, dtype=jnp.int32))[0]
        n_blocks, rem = divmod(steps, check_every)
        starts = jnp.arange(n_blocks, dtype=jnp.int32) * check_every
        carry, _ = jax.lax.scan(lambda c, k0: (block(c, k0, check_every), None), init, starts)
        if rem:
            carry = block(carry, jnp.int32(n_blocks * check_every), rem)
        return carry

    return run_fixed_blockcheck


_ENGINE = None


def engine():
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = _make_engine()
    return _ENGINE


def proto_final(p, check_every: int = 16) -> Prepared:
    """Forward Euler final state through `run_fixed_blockcheck` (same field and solver
    objects as `ox.simulate`, same threshold 1e6 * max(|x0|, 1))."""
    import jax.numpy as jnp

    import oscillax as ox
    from oscillax._solver import FIXED_SOLVERS

    cls = ox.PreActivation if p.form == "pre" else ox.PostActivation
    field = cls(jnp.asarray(p.A), "tanh")
    x0 = jnp.asarray(p.x0)
    inv = _threshold_inv(x0, 1e6, 1.0)
    run_engine = engine()
    solver = FIXED_SOLVERS["euler"]
    steps = p.steps
    X0 = x0.T

    def run():
        X, alive, div_at = run_engine(field, solver, X0, p.dt, inv, steps=steps,
                                      check_every=check_every)
        return X.T

    return Prepared(run, note=f"divergence test every {check_every} steps")


def proto_grad(p, check_every: int = 10) -> Prepared:
    """jit(grad) of the trajectory MSE through the prototype engine (saved states every
    `save_every` steps: one block per save, so the blocks double as saves)."""
    import jax
    import jax.numpy as jnp

    import oscillax as ox
    from oscillax._solver import FIXED_SOLVERS

    solver = FIXED_SOLVERS["euler"]
    W, x0, target = (jnp.asarray(a) for a in (p.W, p.x0, p.target))
    se = p.save_every
    n_saved = p.steps // se

    def loss(W):
        field = ox.PostActivation(ox.skew(W), "tanh")

        def body(X, k0):
            ks = k0 + jnp.arange(se, dtype=jnp.int32)
            X, _ = jax.lax.scan(
                lambda X, k: (solver.step(field, k.astype(X.dtype) * p.dt, X, p.dt), None),
                X, ks,
            )
            return X, X

        starts = jnp.arange(n_saved, dtype=jnp.int32) * se
        _, saved = jax.lax.scan(body, x0.T, starts)
        xs = jnp.concatenate([x0.T[None], saved], 0).transpose(2, 0, 1)  # (B, T, n)
        return jnp.mean((xs - target) ** 2)

    grad = jax.jit(jax.grad(loss))
    return Prepared(lambda: grad(W), note="no divergence test")


def check_equivalence(check_every: int = 16, n: int = 2) -> dict:
    """Divergent members: prototype vs `ox.simulate` (final state, status, diverged_at).

    Linear field (Euler diverges for every h) with large steps and a spread of amplitudes,
    so members cross the threshold at many different steps.
    """
    import jax.numpy as jnp

    import oscillax as ox
    from oscillax._solver import FIXED_SOLVERS

    rng = np.random.default_rng(3)
    A = np.zeros((n, n), np.float32)
    for i in range(n // 2):  # rotations at frequencies 1, 0.9, 0.8, ...
        A[2 * i, 2 * i + 1], A[2 * i + 1, 2 * i] = -(1 - 0.1 * i), 1 - 0.1 * i
    x0 = (rng.standard_normal((512, n)) * np.logspace(-3, 3, 512)[:, None]).astype(np.float32)
    field = ox.PreActivation(jnp.asarray(A), "identity")
    steps, dt = 160, 0.5
    tr = ox.simulate(field, jnp.asarray(x0), dt=dt, steps=steps, save_every=steps)
    inv = _threshold_inv(jnp.asarray(x0), 1e6, 1.0)
    X, alive, div_at = engine()(field, FIXED_SOLVERS["euler"], jnp.asarray(x0).T, dt, inv,
                                steps=steps, check_every=check_every)
    return {
        "diverged": int(np.sum(~np.asarray(alive))),
        "same_diverged_at": bool(np.array_equal(np.asarray(div_at),
                                                np.asarray(tr.diverged_at))),
        "max_abs_diff_final": float(np.max(np.abs(np.asarray(X.T) - np.asarray(tr.final)))),
    }
