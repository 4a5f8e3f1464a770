"""The fixed-step engine: the one primitive that `simulate`, the sweep's monitored loop and
`fit` all run on.

States are laid out `(n, B)` (batch on the minor axis). The primitive is a *block*: up to K
steps of a solver with no test inside, then one divergence test; a block in which a live
member crossed the threshold is redone one step at a time, so the step of divergence and
the frozen state are exactly those of a per-step test. Here:

- `advance`: L steps with no test (static or traced L), optionally folding a per-step
  observation (the sweep keeps the sign bit of x[0] for zero crossings);
- `exceeds`: the divergence test, written once;
- `checked_steps` / `block`: the exact per-step replay and the block with its replay
  (`lax.cond`, differentiated through the per-step path by a custom JVP);
- `run_path`: blocks between saves, for `simulate` and `fit` (`check=False`: no test).

The sweep's while-loop engine with streaming monitors (`_monitor.py`) runs its blocks with
`advance` and `exceeds` too, replaying per member instead of per block.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from ._field import sqnorm

CHECK_EVERY = 16
"""Steps between divergence tests of `run_path` (a block)."""

# XLA:CPU vectorises with 256-bit registers by default; on a CPU with AVX-512 the engine's
# elementwise steps run about 20 % faster with 512 (W2, `python -m benchmarks`). A hint: a
# CPU without AVX-512 keeps its own widest registers, and other backends ignore it.
# Compiler options can only be given to a top-level jit.
ENGINE_COMPILER_OPTIONS = {"xla_cpu_prefer_vector_width": 512}


def inverse_threshold(x0b, divergence_threshold, divergence_floor, dtype):
    """$1 / (\\text{threshold} \\cdot \\max(\\|x_0\\|, \\text{floor}))$ per member, `(B,)`
    for states `x0b` `(B, n)`.

    The divergence test is $\\|x \\cdot \\text{inv}\\|^2 \\le 1$: scaled first, so it neither
    overflows for huge (finite) states nor lets an overflowed threshold (inf) pass every
    finite state. An infinite threshold gives inv = 0: only non-finite states count then.
    """
    s = jnp.max(jnp.abs(x0b), axis=-1)
    safe = jnp.where(s > 0, s, 1.0)
    norm0 = s * jnp.sqrt(jnp.sum((x0b / safe[:, None]) ** 2, axis=-1))
    thr = divergence_threshold * jnp.maximum(norm0, divergence_floor)
    return (1.0 / thr).astype(dtype)


def exceeds(X, inv_thr, axis=0):
    """Non-finite, or norm past the threshold (`inv_thr` from `inverse_threshold`); NaN
    compares False, so it counts as bad. `axis` is the state axis of `X`."""
    Y = X * jnp.expand_dims(inv_thr, axis)
    # (n, B) layout: a sum of rows fuses into the step (a reduction would be its own kernel)
    nrm2 = sqnorm(Y) if axis == 0 else jnp.sum(Y * Y, axis=axis)
    return ~(nrm2 <= 1.0)


def advance(field, solver, X, k0, h, length, args=None, *, observe=None, obs=None):
    """`length` solver steps from step index `k0` with no test inside.

    **Arguments:** `X` `(n, B)` (or any pytree `solver.step` advances, e.g. a state with
    its tangent); `h` a scalar step or `(1, B)` per member; `length` a static
    int (lowers to a scan, reverse-differentiable) or a traced one; `observe(obs, X)` folds
    each new state into `obs` (e.g. bits of a word).

    **Returns:** `X` after the steps, or `(X, obs)` with an observer.
    """

    def step(j, s):
        X, o = s
        t = (k0 + j).astype(jax.tree.leaves(X)[0].dtype) * h
        Xn = solver.step(field, t, X, h, args)
        return Xn, (o if observe is None else observe(o, Xn))

    if isinstance(length, int) and length == 1:  # no loop for a single static step
        X, obs = step(0, (X, obs))
    else:
        X, obs = jax.lax.fori_loop(0, length, step, (X, obs))
    return X if observe is None else (X, obs)


def _step_size(dt, last, k, steps):
    """The step from k (the last one is `last` long when t1 is not a multiple of dt)."""
    return dt if last is None else jnp.where(k == steps - 1, last, dt)


def _untested(field, solver, X, k0, dt, last, length, args, steps):
    """`length` steps from k0 with no test: `advance`, or with the shortened last step."""
    if last is None:
        return advance(field, solver, X, k0, dt, length, args)
    return jax.lax.fori_loop(0, length, lambda i, X: solver.step(
        field, (k0 + i).astype(X.dtype) * dt, X, _step_size(dt, last, k0 + i, steps), args), X)


def checked_steps(field, solver, X, alive, div_at, k0, dt, last, inv_thr, args, *, steps,
                  length):
    """`length` steps from k0 with the divergence test after every step: a member that
    goes past the threshold is frozen at its last good state, its step recorded."""

    def one_step(i, carry):
        X, alive, div_at = carry
        k = k0 + i
        Xn = solver.step(field, k.astype(X.dtype) * dt, X, _step_size(dt, last, k, steps), args)
        bad = exceeds(Xn, inv_thr)
        div_at = jnp.where(bad & alive, k + 1, div_at)
        alive = alive & ~bad
        return jnp.where(alive[None, :], Xn, X), alive, div_at

    return jax.lax.fori_loop(0, length, one_step, (X, alive, div_at))


@eqx.filter_custom_jvp
def block(field, X, alive, div_at, k0, dt, last, inv_thr, args, *, solver, steps, length):
    """What `checked_steps` returns, with one test after the `length` steps instead of one
    per step; only when a live member went past the threshold are they redone with the
    per-step test (`lax.cond`: rare, once per divergence). Differentiated as
    `checked_steps` (the custom JVP below): the same values, and no `cond` for
    reverse-mode autodiff to carry."""
    kw = dict(steps=steps, length=length)
    if length == 1:
        return checked_steps(field, solver, X, alive, div_at, k0, dt, last, inv_thr, args, **kw)
    Xn = _untested(field, solver, X, k0, dt, last, length, args, steps)
    newly = exceeds(Xn, inv_thr) & alive
    return jax.lax.cond(
        jnp.any(newly),
        lambda: checked_steps(field, solver, X, alive, div_at, k0, dt, last, inv_thr, args,
                              **kw),
        lambda: (jnp.where(alive[None, :], Xn, X), alive, div_at),
    )


@block.def_jvp
def _block_jvp(primals, tangents, *, solver, steps, length):
    def checked(field, X, alive, div_at, k0, dt, last, inv_thr, args):
        return checked_steps(field, solver, X, alive, div_at, k0, dt, last, inv_thr, args,
                             steps=steps, length=length)

    return eqx.filter_jvp(checked, primals, tangents)


def _span(field, solver, carry, k0, length: int, dt, last, inv_thr, args, steps, check):
    """`length` (static) steps from k0: blocks of CHECK_EVERY and one shorter."""
    if not check:
        X, alive, div_at = carry
        return _untested(field, solver, X, k0, dt, last, length, args, steps), alive, div_at

    def run(carry, k, n):
        return block(field, *carry, k, dt, last, inv_thr, args, solver=solver, steps=steps,
                     length=n)

    n_runs, rem = divmod(length, CHECK_EVERY)
    if n_runs:
        carry = jax.lax.fori_loop(
            0, n_runs, lambda r, c: run(c, k0 + r * CHECK_EVERY, CHECK_EVERY), carry
        )
    if rem:
        carry = run(carry, k0 + n_runs * CHECK_EVERY, rem)
    return carry


def run_path(field, solver, X0, dt, inv_thr, args, *, steps: int, save_every: int,
             last_h=None, check: bool = True, unroll: int = 1):
    """Integrate `X0` `(n, B)` for `steps` (static) steps and save every `save_every`-th
    state (and the last).

    **Returns:** `(saved (T, n, B), alive (B,), diverged_at (B,))`. With `check=False`
    there is no divergence test (a plain scan: what `fit` differentiates; `unroll` is the
    scan's over saves); otherwise a member past the threshold is frozen at its exact step.
    All trip counts are static, so the loops lower to scans, which reverse-mode autodiff
    supports.
    """
    B = X0.shape[1]
    dtype = X0.dtype
    dt = jnp.asarray(dt, dtype)
    last = None if last_h is None else jnp.asarray(last_h, dtype)

    def saved_block(carry, k0):
        carry = _span(field, solver, carry, k0, save_every, dt, last, inv_thr, args, steps,
                      check)
        return carry, carry[0]

    init = (X0, jnp.ones((B,), bool), jnp.full((B,), -1, jnp.int32))
    n_blocks, rem = divmod(steps, save_every)
    starts = jnp.arange(n_blocks, dtype=jnp.int32) * save_every
    carry, saved = jax.lax.scan(saved_block, init, starts, unroll=unroll)
    parts = [X0[None], saved]
    if rem:
        carry = _span(field, solver, carry, jnp.int32(n_blocks * save_every), rem, dt, last,
                      inv_thr, args, steps, check)
        parts.append(carry[0][None])
    _, alive, div_at = carry
    return jnp.concatenate(parts, axis=0), alive, div_at
