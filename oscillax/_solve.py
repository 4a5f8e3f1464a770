"""`simulate`: integrate a skew field from one state or a batch, with per-member divergence.

Fixed-step solvers run in oscillax's own engine (`_engine.run_path`): scans over blocks of
`CHECK_EVERY` steps with the batch on the minor axis `(n, B)` and one divergence test per
block, redone step by step when a member crossed, which freezes a diverged member at its
exact step and lets the others go on. Adaptive solvers (tsit5, dopri5, dopri8) are diffrax's.
"""

from __future__ import annotations

import enum
import math

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from ._engine import CHECK_EVERY as CHECK_EVERY
from ._engine import exceeds, inverse_threshold, run_path
from ._field import AbstractSkewField
from ._solver import ADAPTIVE_SOLVERS, AbstractFixedSolver, get_solver


class Status(enum.IntEnum):
    """Per-trajectory outcome of `simulate`."""

    OK = 0
    """Integrated to the end with finite states below the divergence threshold."""
    DIVERGED = 1
    """State became non-finite or its norm passed the threshold; frozen from then on."""
    SOLVER_FAILED = 2
    """An adaptive solver gave up (e.g. `max_steps` reached)."""


class Trajectory(eqx.Module):
    """The result of `simulate`.

    **Fields:**
    - `ts`: `(T,)` save times; `ts[0] = 0`.
    - `xs`: `(T, n)` for one initial state, `(B, T, n)` for a batch.
    - `invariant`: the motion invariant at each saved state, `(T,)` or `(B, T)`; None when
      the field has none.
    - `status`: `Status` codes, `()` or `(B,)`.
    - `diverged_at`: the step m at which the state $x_m$ first became non-finite or passed
      the threshold, -1 if it never did; `()` or `(B,)`.
    - `steps`, `save_every`: the step count and saving stride used.
    """

    ts: Float[Array, " T"]
    xs: Float[Array, "*B T n"]
    invariant: Float[Array, "*B T"] | None
    status: Int[Array, "*B"]
    diverged_at: Int[Array, "*B"]
    steps: int = eqx.field(static=True)
    save_every: int = eqx.field(static=True)

    @property
    def final(self):
        """The last saved state, `(n,)` or `(B, n)`."""
        return self.xs[..., -1, :]

    @property
    def diverged(self):
        return self.status == Status.DIVERGED

    def invariant_drift(self):
        """Relative drift $|I(t) - I(0)| / |I(0)|$ along the path."""
        if self.invariant is None:
            raise ValueError("this trajectory's field has no motion invariant.")
        inv0 = self.invariant[..., :1]
        return jnp.abs(self.invariant - inv0) / jnp.maximum(jnp.abs(inv0), 1e-30)


MAX_STEPS = 2**31 - 1
"""The engine counts steps in int32."""
MAX_SAVED_BYTES = 8 * 2**30
"""`simulate` refuses to save more than this (saved states x n x batch x itemsize)."""
MAX_SAVED_STATES = 10**8
"""... or more than this many saved states (their times are listed on the host)."""


def _fail(name, got, fix):
    raise ValueError(f"`{name}` {fix}; got {got!r}.")


def _concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _validate(field, x0, dt, steps, t1, save_every, solver):
    if not isinstance(field, AbstractSkewField):
        raise ValueError(
            "`field` must be an oscillax field (ox.PreActivation or ox.PostActivation); got "
            f"{type(field).__name__}. For other vector fields use diffrax directly."
        )
    solver_obj = get_solver(solver)
    try:
        if isinstance(x0, str | bytes):
            raise TypeError
        x0 = jnp.asarray(x0)
    except (TypeError, ValueError):
        raise ValueError(
            f"`x0` must be an array of real numbers, shape ({field.n},) or (B, {field.n}); "
            f"could not convert a {type(x0).__name__} to an array."
        ) from None
    if jnp.issubdtype(x0.dtype, jnp.complexfloating):
        raise ValueError(
            f"`x0` must be real; got a complex array ({x0.dtype}). The network's state is "
            "real: pass `x0.real` (or stack real and imaginary parts as separate units)."
        )
    if not (jnp.issubdtype(x0.dtype, jnp.floating) or jnp.issubdtype(x0.dtype, jnp.integer)
            or x0.dtype == jnp.bool_):
        raise ValueError(f"`x0` must be an array of real numbers; got dtype {x0.dtype}.")
    if not jnp.issubdtype(x0.dtype, jnp.floating):
        x0 = x0.astype(field.A.dtype)
    if x0.ndim not in (1, 2) or x0.shape[-1] != field.n:
        raise ValueError(
            f"`x0` must have shape ({field.n},) or (B, {field.n}) to match A ({field.n}x"
            f"{field.n}); got shape {tuple(x0.shape)}. Pass one state of length {field.n} "
            f"or a batch of B states as (B, {field.n}): the last axis is the state."
        )
    if x0.ndim == 2 and x0.shape[0] == 0:
        raise ValueError("`x0` is an empty batch (0, n); pass at least one initial state.")
    if _concrete(x0) and not np.all(np.isfinite(np.asarray(x0))):
        bad = int(np.sum(~np.isfinite(np.asarray(x0))))
        raise ValueError(f"`x0` contains NaN or inf ({bad} entries); pass finite initial states.")
    if _concrete(field.A) and not np.all(np.isfinite(np.asarray(field.A))):
        raise ValueError("`A` contains NaN or inf; pass a finite matrix.")
    if isinstance(dt, (bool, str)) or dt is None:
        _fail("dt", dt, "must be a positive finite step size")
    if _concrete(dt):
        try:
            d = np.asarray(dt)
        except (TypeError, ValueError):
            _fail("dt", dt, "must be a positive finite scalar step size, e.g. dt=0.01")
        if d.dtype.kind not in "biuf":
            _fail("dt", dt, "must be a real positive finite scalar step size, e.g. dt=0.01")
        if d.shape != () or not np.isfinite(d) or d <= 0:
            _fail("dt", dt, "must be a positive finite scalar step size, e.g. dt=0.01")
    if (steps is None) == (t1 is None):
        raise ValueError(
            f"pass exactly one of `steps` (number of steps) or `t1` (end time); got "
            f"steps={steps!r}, t1={t1!r}."
        )
    if steps is not None:
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            _fail("steps", steps, "must be an integer >= 1")
        if steps > MAX_STEPS:
            _fail("steps", steps, f"must be at most 2**31 - 1 = {MAX_STEPS:,} (the engine "
                  "counts steps in int32); split the run into shorter ones, each starting "
                  "from the last one's final state")
    if t1 is not None:
        if not _concrete(t1) or not _concrete(dt):
            raise ValueError(
                "`t1` needs concrete (non-traced) `t1` and `dt` to fix the step count; under "
                "jit/grad pass `steps=` instead."
            )
        try:
            t1v = np.asarray(t1)
        except (TypeError, ValueError):
            t1v = np.asarray(np.nan)
        if t1v.shape != () or t1v.dtype.kind not in "biuf" or not np.isfinite(t1v) or t1v <= 0:
            _fail("t1", t1, "must be a positive finite end time")
    if isinstance(save_every, bool) or not isinstance(save_every, (int, np.integer)) or (
        save_every < 1
    ):
        _fail("save_every", save_every, "must be an integer >= 1 (save every k-th step)")
    n_steps, _ = _step_count(dt, steps, t1)
    n_saved = -(-n_steps // int(save_every)) + 1
    batch = 1 if x0.ndim == 1 else int(x0.shape[0])
    itemsize = jnp.result_type(x0.dtype, field.A.dtype).itemsize
    nbytes = n_saved * field.n * batch * itemsize
    if nbytes > MAX_SAVED_BYTES:
        raise ValueError(
            f"`save_every={save_every!r}` with {n_steps:,} steps would save {n_saved:,} states "
            f"of {field.n} x {batch} (n x batch) values of {itemsize} bytes, about "
            f"{nbytes / 2**30:,.1f} GiB, above the {MAX_SAVED_BYTES / 2**30:.0f} GiB limit; "
            "save less often: save_every >= "
            f"{-(-n_steps * field.n * batch * itemsize // MAX_SAVED_BYTES)} (or fewer steps)."
        )
    if n_saved > MAX_SAVED_STATES:
        raise ValueError(
            f"`save_every={save_every!r}` with {n_steps:,} steps would save {n_saved:,} states, "
            f"more than {MAX_SAVED_STATES:,}; save less often: save_every >= "
            f"{-(-n_steps // MAX_SAVED_STATES)} (or fewer steps)."
        )
    return solver_obj, x0


def _step_count(dt, steps, t1):
    """Steps and the size of the last step (shorter when t1 is not a multiple of dt)."""
    if steps is not None:
        return int(steps), None
    dt = float(dt)
    ratio = float(t1) / dt
    if not math.isfinite(ratio) or ratio > MAX_STEPS:
        _fail("t1", t1, f"needs t1 / dt = {ratio:.4g} steps at dt = {dt!r}, more than "
              f"2**31 - 1 = {MAX_STEPS:,} (the engine counts steps in int32); use a larger "
              "`dt` or an earlier `t1`")
    full = math.floor(ratio + 1e-9)
    rem = float(t1) - full * dt
    if full == 0 and rem <= 1e-9 * dt:
        _fail("t1", t1, f"is far below dt = {dt!r} (t1 / dt = {ratio:.3g}), so no step fits "
              "before it; pass a `dt` no larger than `t1`")
    if rem > 1e-9 * dt:
        return full + 1, rem
    return max(full, 1), None


@eqx.filter_jit
def _run_fixed(field, solver, X0, dt, inv_thr, args, *, steps, save_every, last_h):
    """Saved states `(T, n, B)`, status and diverged_at from the engine (`run_path`)."""
    saved, alive, div_at = run_path(field, solver, X0, dt, inv_thr, args, steps=steps,
                                    save_every=save_every, last_h=last_h)
    status = jnp.where(alive, Status.OK, Status.DIVERGED).astype(jnp.int32)
    return saved, status, div_at


@eqx.filter_jit
def _run_adaptive(field, solver_name, x0b, dt, ts, args, rtol, atol, max_steps):
    solver = ADAPTIVE_SOLVERS[solver_name]()
    term = diffrax.ODETerm(field)

    def one(y0):
        sol = diffrax.diffeqsolve(
            term,
            solver,
            t0=ts[0],
            t1=ts[-1],
            dt0=dt,
            y0=y0,
            args=args,
            saveat=diffrax.SaveAt(ts=ts),
            stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
            max_steps=max_steps,
            throw=False,
        )
        return sol.ys, sol.result == diffrax.RESULTS.successful

    ys, ok = jax.vmap(one)(x0b)  # (B, T, n)
    return ys, ok


def simulate(
    field: AbstractSkewField,
    x0,
    *,
    dt,
    steps: int | None = None,
    t1: float | None = None,
    solver: str = "euler",
    save_every: int = 1,
    args=None,
    rtol: float = 1e-6,
    atol: float = 1e-9,
    max_steps: int = 1_000_000,
    divergence_threshold: float = 1e6,
    divergence_floor: float = 1.0,
) -> Trajectory:
    """Integrate `field` from `x0` and return the `Trajectory`.

    **Arguments:**
    - `field`: `ox.PreActivation` or `ox.PostActivation`.
    - `x0`: one state `(n,)` or a batch `(B, n)`, integrated together.
    - `dt`: step size (fixed-step solvers) or first step (adaptive). May be traced (jit,
      grad) when `steps` is given.
    - `steps` / `t1`: exactly one: a step count, or an end time (then the last step is
      shortened to land on `t1` when `t1` is not a multiple of `dt`).
    - `solver`: fixed-step `"euler"`, `"heun"`, `"midpoint"`, `"rk4"`,
      `"implicit_midpoint"`, or adaptive (diffrax) `"tsit5"`, `"dopri5"`, `"dopri8"`.
    - `save_every`: save every k-th step; `x0` (index 0) and the final state are always saved.
    - `args`: passed to the field (its input u when it has an `input_matrix` and no `drive`).
    - `rtol`, `atol`, `max_steps`: adaptive solvers only.
    - `divergence_threshold`, `divergence_floor`: a member diverges when its state is
      non-finite or $\\|x\\| > $ `divergence_threshold` $\\cdot \\max(\\|x_0\\|,$
      `divergence_floor`$)$. It is then frozen and flagged; the others go on.

    **Returns:** a `Trajectory`.

    ```python
    field = ox.PostActivation(ox.random_skew(key, 8), "tanh")
    traj = ox.simulate(field, x0, dt=0.05, t1=100.0, solver="rk4", save_every=10)
    ```
    """
    solver_obj, x0 = _validate(field, x0, dt, steps, t1, save_every, solver)
    if not (divergence_threshold > 0 and divergence_floor > 0):
        raise ValueError(
            "`divergence_threshold` and `divergence_floor` must be positive; got "
            f"{divergence_threshold!r} and {divergence_floor!r}."
        )
    n_steps, last_h = _step_count(dt, steps, t1)
    single = x0.ndim == 1
    x0b = x0[None] if single else x0
    dtype = jnp.result_type(x0b.dtype, field.A.dtype)
    x0b = x0b.astype(dtype)
    if not _concrete(dt):
        dt = eqx.error_if(dt, ~(dt > 0) | ~jnp.isfinite(dt), "`dt` must be positive and finite")
    inv_thr = inverse_threshold(x0b, divergence_threshold, divergence_floor, dtype)

    k_saved = list(range(0, n_steps + 1, save_every))
    if k_saved[-1] != n_steps:
        k_saved.append(n_steps)
    ks = jnp.asarray(k_saved, dtype)
    dt_arr = jnp.asarray(dt, dtype)
    ts = ks * dt_arr
    if last_h is not None:
        ts = ts.at[-1].set(jnp.asarray(t1, dtype))

    if isinstance(solver_obj, AbstractFixedSolver):
        saved, status, div_at = _run_fixed(
            field, solver_obj, x0b.T, dt_arr, inv_thr, args,
            steps=n_steps, save_every=save_every, last_h=last_h,
        )
        xs = jnp.transpose(saved, (2, 0, 1))  # (B, T, n)
    else:
        xs, ok = _run_adaptive(
            field, solver_obj, x0b, dt_arr, ts, args, rtol, atol, max_steps
        )
        # diffrax fills the saves it never reached with inf when it gives up (max_steps):
        # those are a solver failure, not a divergence.
        unreached = ~ok[:, None] & jnp.all(jnp.isinf(xs), axis=-1)
        bad = exceeds(xs, inv_thr[:, None], -1) & ~unreached  # (B, T)
        any_bad = jnp.any(bad, axis=1)
        first = jnp.argmax(bad, axis=1)
        div_at = jnp.where(any_bad, jnp.asarray(k_saved, jnp.int32)[first], -1)
        status = jnp.where(
            any_bad, Status.DIVERGED, jnp.where(ok, Status.OK, Status.SOLVER_FAILED)
        ).astype(jnp.int32)

    invariant = field.invariant(xs) if field.has_invariant() else None
    if single:
        xs, status, div_at = xs[0], status[0], div_at[0]
        invariant = None if invariant is None else invariant[0]
    return Trajectory(ts, xs, invariant, status, div_at, n_steps, save_every)
