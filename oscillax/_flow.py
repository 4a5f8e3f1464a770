"""Flows of a vector field as maps: the time-T flow and its Jacobian (forward mode through
the solver, with the trace integral for Liouville's check), the return map of a fixed-step
method to a hyperplane, and the argument checks the orbit and section analyses share.

`flow_jacobian` is the public entry: $\\partial \\Phi_t / \\partial x_0$ from any start, with
$\\int \\operatorname{tr} J\\,dt$ and the error of $\\det = \\exp\\int \\operatorname{tr} J$.
"""

from __future__ import annotations

import dataclasses
import math

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from ._field import AbstractField, AbstractSkewField, VectorField
from ._solver import ADAPTIVE_SOLVERS, FIXED_SOLVERS, get_solver


def as_field(system) -> AbstractField:
    """An oscillax field as is; any callable `f(t, x, args)` wrapped in `ox.VectorField`."""
    if isinstance(system, AbstractField):
        return system
    if callable(system):
        return VectorField(system)
    raise ValueError(
        "`system` must be an oscillax field (ox.PreActivation, ox.PostActivation, "
        f"ox.VectorField) or a function f(t, x, args) -> dx/dt; got {type(system).__name__}."
    )


def per_member_A(field: AbstractField) -> bool:
    """Whether the field carries one matrix per member, `A` of shape `(n, n, B)`."""
    return isinstance(field, AbstractSkewField) and field.A.ndim == 3


def batched_call(fn, field, args, *arrays, single=False):
    """`fn(field, args, *rows)` for every member: `arrays` have a leading batch axis; a
    per-member `A` `(n, n, B)` (the engine's layout) is split along its last axis.

    `single`: one member, called without `vmap` (so loops with a data-dependent end, such as
    `diffrax.DirectAdjoint`'s, stop when that member is done); a leading axis of 1 is kept.
    """
    if single and not per_member_A(field):
        out = fn(field, args, *(a[0] for a in arrays))
        return jax.tree_util.tree_map(lambda a: a[None], out)
    if per_member_A(field):
        A = field.A
        base = eqx.tree_at(lambda f: f.A, field, A[:, :, 0])

        def one(A_b, base_, args_, *rows):
            return fn(eqx.tree_at(lambda f: f.A, base_, A_b), args_, *rows)

        in_axes = (2, None, None) + (0,) * len(arrays)
        return eqx.filter_vmap(one, in_axes=in_axes)(A, base, args, *arrays)
    in_axes = (None, None) + (0,) * len(arrays)
    return eqx.filter_vmap(fn, in_axes=in_axes)(field, args, *arrays)


class FlowConfig(eqx.Module):
    """Static settings of one flow map: the solver and its tolerances."""

    solver: str = eqx.field(static=True)
    dt: float | None = eqx.field(static=True)
    rtol: float = eqx.field(static=True)
    atol: float = eqx.field(static=True)
    max_steps: int = eqx.field(static=True)
    scan_length: int = eqx.field(static=True, default=0)

    @property
    def fixed(self) -> bool:
        return self.solver in FIXED_SOLVERS


def _trace_jacobian(field, t, x, args):
    return jnp.trace(field.jacobian(x[:, None], t, args)[:, :, 0])


def flow(field, x, T, args, cfg: FlowConfig, *, n_full=None, adjoint=None, with_trace=False):
    """$\\Phi_T(x)$ for one member `x` `(n,)`: returns `(x_T, trace_integral, ok)`.

    Adaptive solvers: one `diffrax.diffeqsolve` from 0 to T (the adjoint chooses forward or
    reverse differentiability). Fixed-step solvers: `n_full` steps of size `dt`, then one
    step of $T - $ `n_full`$\\cdot$`dt`, as `simulate` does with `t1`, in a scan of static
    length `cfg.scan_length` (later steps have size 0 and change nothing), so the map is
    smooth in $(x, T)$ and reverse-differentiable.

    `with_trace` also integrates $\\int_0^T \\operatorname{tr} J\\,dt$ (an extra ODE
    component for adaptive solvers; the trapezoid rule on the steps for fixed-step ones),
    with its derivative cut (it never feeds back into x).
    """
    if cfg.fixed:
        solver = FIXED_SOLVERS[cfg.solver]
        h = jnp.asarray(cfg.dt, x.dtype)
        tau = T - n_full * h

        def body(carry, k):
            X, s = carry
            hk = jnp.where(k < n_full, h, jnp.where(k == n_full, tau, jnp.zeros_like(h)))
            t = k * h
            X1 = solver.step(field, t, X, hk, args)
            if with_trace:
                tr0 = _trace_jacobian(field, t, X[:, 0], args)
                tr1 = _trace_jacobian(field, t + hk, X1[:, 0], args)
                s = s + jax.lax.stop_gradient(0.5 * hk * (tr0 + tr1))
            return (X1, s), None

        ks = jnp.arange(cfg.scan_length, dtype=x.dtype)
        (X, s), _ = jax.lax.scan(body, (x[:, None], jnp.zeros((), x.dtype)), ks)
        xT = X[:, 0]
        ok = jnp.all(jnp.isfinite(xT))
        return xT, s, ok

    if with_trace:

        def vf(t, y, a):
            xx, _ = y
            return field(t, xx, a), jax.lax.stop_gradient(_trace_jacobian(field, t, xx, a))

        y0 = (x, jnp.zeros((), x.dtype))
    else:
        vf = field.__call__
        y0 = x
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(vf),
        ADAPTIVE_SOLVERS[cfg.solver](),
        t0=jnp.zeros((), x.dtype),
        t1=T,
        dt0=cfg.dt,
        y0=y0,
        args=args,
        saveat=diffrax.SaveAt(t1=True),
        stepsize_controller=diffrax.PIDController(rtol=cfg.rtol, atol=cfg.atol),
        max_steps=cfg.max_steps,
        adjoint=diffrax.ForwardMode() if adjoint is None else adjoint,
        throw=False,
    )
    if with_trace:
        xT, s = sol.ys[0][0], sol.ys[1][0]
    else:
        xT, s = sol.ys[0], jnp.zeros((), x.dtype)
    ok = (sol.result == diffrax.RESULTS.successful) & jnp.all(jnp.isfinite(xT))
    return xT, s, ok


def flow_with_jacobian(field, x, T, args, cfg, *, n_full=None, adjoint=None, with_trace=False):
    """`(x_T, M, dx_T/dT, trace_integral, ok)` with $M = \\partial\\Phi_T/\\partial x$ by
    forward mode through the solver."""
    n = x.shape[0]
    if cfg.fixed:
        # T enters through the last (shortened) step: differentiate the scheme in T too
        def fz(z):
            xT, s, ok = flow(field, z[:n], z[n], args, cfg, n_full=n_full, with_trace=with_trace)
            return xT, (xT, s, ok)

        Jz, (xT, s, ok) = jax.jacfwd(fz, has_aux=True)(jnp.concatenate([x, T[None]]))
        return xT, Jz[:, :n], Jz[:, n], s, ok

    def fx(x_):
        xT, s, ok = flow(field, x_, T, args, cfg, adjoint=adjoint, with_trace=with_trace)
        return xT, (xT, s, ok)

    M, (xT, s, ok) = jax.jacfwd(fx, has_aux=True)(x)
    return xT, M, field(T, xT, args), s, ok


def hermite(x0, f0, x1, f1, h, th):
    """Cubic Hermite interpolant of one step at the fraction `th` in [0, 1], and d/dth."""
    th2, th3 = th * th, th * th * th
    h00, h10, h01, h11 = 2 * th3 - 3 * th2 + 1, th3 - 2 * th2 + th, -2 * th3 + 3 * th2, th3 - th2
    d00, d10, d01, d11 = 6 * th2 - 6 * th, 3 * th2 - 4 * th + 1, -6 * th2 + 6 * th, 3 * th2 - 2 * th
    p = h00 * x0 + h10 * h * f0 + h01 * x1 + h11 * h * f1
    dp = d00 * x0 + d10 * h * f0 + d01 * x1 + d11 * h * f1
    return p, dp


def hermite_crossing(normal, offset, x0, f0, x1, f1, h, s0, s1, iters: int = 8):
    """Where the step's cubic Hermite interpolant meets `normal · x = offset`: Newton from
    the linear guess, a fixed number of iterations (a loop of static length, so it is
    forward- and reverse-differentiable). Returns `(th, point)`.

    (Unrolled, the iterations compiled superlinearly under nested differentiation:
    `jax.grad` of a 2-unit Euler orbit's Floquet multiplier, reverse over forward mode,
    took 35 s to compile, against 4.7 s now; measured.)"""
    den = s0 - s1
    th = jnp.clip(s0 / jnp.where(den != 0, den, 1.0), 0.0, 1.0)

    def newton(_, th):
        p, dp = hermite(x0, f0, x1, f1, h, th)
        g, dg = jnp.dot(normal, p) - offset, jnp.dot(normal, dp)
        return jnp.clip(th - g / jnp.where(dg != 0, dg, 1.0), 0.0, 1.0)

    th = jax.lax.fori_loop(0, iters, newton, th)
    return th, hermite(x0, f0, x1, f1, h, th)[0]


def step_crossing(field, args, normal, offset, t, h, x0, x1):
    """Where the fixed step from `(t, x0)` to `(t + h, x1)` meets `normal · x = offset`:
    `hermite_crossing` on the step's interpolant, the field evaluated at both ends. Returns
    `(th, point)`; the crossing's time is `t + th h`."""
    f0, f1 = field(t, x0, args), field(t + h, x1, args)
    s0, s1 = jnp.dot(normal, x0) - offset, jnp.dot(normal, x1) - offset
    return hermite_crossing(normal, offset, x0, f0, x1, f1, h, s0, s1)


def fixed_return(field, x, args, cfg: FlowConfig, normal, offset, k_min, *, with_trace=False):
    """First return of a fixed-step method's trajectory to `normal · x = offset`.

    The first upcrossing after at least `k_min` steps (so a start on the section is no
    return), located on the cubic Hermite interpolant of the step. A scan of static length
    `cfg.scan_length`, so it is forward- and reverse-differentiable.

    **Returns:** `(point, time, trace_integral, ok)`.
    """
    solver = FIXED_SOLVERS[cfg.solver]
    dtype = x.dtype
    h = jnp.asarray(cfg.dt, dtype)

    # The loop only remembers the step that crosses; the crossing is located on its
    # interpolant once, after the loop. (Located at every step, the Newton iterations ran
    # at every step: `periodic_orbit` of a 2-unit Euler cycle, 112 steps a period, took
    # 42 ms a call against 9 ms now; measured.)
    def body(carry, k):
        X, found, k_c, x0_c, x1_c, s_int, tr_c = carry
        t = k * h
        X1 = solver.step(field, t, X, h, args)
        x0_, x1 = X[:, 0], X1[:, 0]
        s0, s1 = jnp.dot(normal, x0_) - offset, jnp.dot(normal, x1) - offset
        cross = ~found & (k >= k_min) & (s0 <= 0) & (s1 > 0)
        if with_trace:
            tr = _trace_jacobian(field, t, x0_, args) + _trace_jacobian(field, t + h, x1, args)
            s_int = s_int + jax.lax.stop_gradient(jnp.where(found | cross, 0.0, 0.5 * h * tr))
            tr_c = jnp.where(cross, jax.lax.stop_gradient(tr), tr_c)
        k_c = jnp.where(cross, k, k_c)
        x0_c, x1_c = jnp.where(cross, x0_, x0_c), jnp.where(cross, x1, x1_c)
        return (X1, found | cross, k_c, x0_c, x1_c, s_int, tr_c), None

    zero = jnp.zeros((), dtype)
    init = (x[:, None], jnp.zeros((), bool), zero, x, x, zero, zero)
    ks = jnp.arange(cfg.scan_length, dtype=dtype)
    (_, found, k_c, x0_c, x1_c, s_int, tr_c), _ = jax.lax.scan(body, init, ks)
    t_c = k_c * h
    th, pc = step_crossing(field, args, normal, offset, t_c, h, x0_c, x1_c)
    nan = jnp.asarray(jnp.nan, dtype)
    p = jnp.where(found, pc, nan)
    t_ret = jnp.where(found, t_c + th * h, nan)
    if with_trace:
        s_int = s_int + jax.lax.stop_gradient(jnp.where(found, 0.5 * th * h * tr_c, 0.0))
    ok = found & jnp.all(jnp.isfinite(p))
    return p, t_ret, s_int, ok


# ---------------------------------------------------------------------------------------
# Shooting: the bordered Newton system
# ---------------------------------------------------------------------------------------



class FlowJacobian(eqx.Module):
    """The result of `flow_jacobian`.

    **Fields:** `x` ($\\Phi_t(x_0)$, `(n,)` or `(B, n)`), `jacobian`
    ($\\partial\\Phi_t/\\partial x_0$), `trace_integral` ($\\int_0^t \\operatorname{tr} J$),
    `liouville_error` ($|\\det M\\, e^{-\\int \\operatorname{tr} J} - 1|$), `ok` (the solver
    succeeded).
    """

    x: Float[Array, "*B n"]
    jacobian: Float[Array, "*B n n"]
    trace_integral: Float[Array, "*B"]
    liouville_error: Float[Array, "*B"]
    ok: Bool[Array, "*B"]



def _concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def check_positive_number(name, value, *, allow_none=False):
    if value is None and allow_none:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a positive number; got {value!r}.") from None
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"`{name}` must be positive and finite; got {value!r}.")
    return v


def check_count(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def validate_states(field, x0, args, *, name="x0"):
    """`x0` as a float array `(n,)` or `(B, n)` matching the field; raises naming `x0`."""
    try:
        x0 = jnp.asarray(x0)
    except TypeError:
        raise ValueError(f"`{name}` must be an array (n,) or (B, n); got {type(x0)}.") from None
    if x0.ndim not in (1, 2) or x0.shape[-1] < 2:
        raise ValueError(
            f"`{name}` must have shape (n,) or (B, n) with n >= 2; got {tuple(x0.shape)}."
        )
    if isinstance(field, AbstractSkewField):
        dtype = jnp.result_type(field.A.dtype, x0.dtype, float)
        if field.A.shape[0] != x0.shape[-1]:
            raise ValueError(
                f"`{name}` has dimension {x0.shape[-1]} but the field has n = "
                f"{field.A.shape[0]}; pass states of shape ({field.A.shape[0]},) or "
                f"(B, {field.A.shape[0]})."
            )
    else:
        dtype = jnp.result_type(x0.dtype, float)
    x0 = x0.astype(dtype)
    if _concrete(x0):
        bad = ~np.isfinite(np.asarray(x0))
        if bad.any():
            raise ValueError(
                f"`{name}` contains NaN or inf ({int(bad.sum())} entries); pass finite states."
            )
    else:
        x0 = eqx.error_if(x0, ~jnp.all(jnp.isfinite(x0)), f"`{name}` contains NaN or inf.")
    probe = field if not per_member_A(field) else eqx.tree_at(
        lambda f: f.A, field, field.A[:, :, 0])
    try:
        out = jax.eval_shape(lambda x: probe(jnp.zeros((), x.dtype), x, args), x0.reshape(
            -1, x0.shape[-1])[0])
    except Exception as e:  # a user's callable with the wrong signature or shapes
        raise ValueError(
            f"evaluating `system(t, x, args)` on a state of shape ({x0.shape[-1]},) failed: "
            f"{type(e).__name__}: {e}"
        ) from e
    if out.shape != (x0.shape[-1],):
        raise ValueError(
            f"`system(t, x, args)` must return dx/dt of shape ({x0.shape[-1]},), the shape of "
            f"one state; got {tuple(out.shape)}."
        )
    return x0


def _batch_size(field, x0, *others):
    sizes = set()
    if x0.ndim == 2:
        sizes.add(x0.shape[0])
    for o in others:
        if o.ndim == 1:
            sizes.add(o.shape[0])
    if per_member_A(field):
        sizes.add(field.A.shape[2])
    if len(sizes) > 1:
        raise ValueError(
            f"batch sizes disagree: got {sorted(sizes)} from `x0` (B, n), the time/period "
            "(B,) and the field's per-member A (n, n, B); pass one batch size B."
        )
    return sizes.pop() if sizes else None


def validate_times(name, T, dtype):
    try:
        T = jnp.asarray(T, dtype)
    except TypeError:
        raise ValueError(f"`{name}` must be a number or an array (B,); got {T!r}.") from None
    if T.ndim > 1:
        raise ValueError(f"`{name}` must be a scalar or of shape (B,); got {tuple(T.shape)}.")
    if _concrete(T):
        Tn = np.asarray(T)
        bad = ~(np.isfinite(Tn) & (Tn > 0))
        if bad.any():
            raise ValueError(
                f"`{name}` must be positive and finite; got {Tn[bad].ravel()[:3].tolist()} "
                f"({int(bad.sum())} entries)."
            )
    else:
        T = eqx.error_if(T, ~jnp.all(jnp.isfinite(T) & (T > 0)),
                         f"`{name}` must be positive and finite.")
    return T


def _flow_config(solver, dt, rtol, atol, max_steps) -> FlowConfig:
    name = get_solver(solver)
    name = name.name if not isinstance(name, str) else name
    if name in FIXED_SOLVERS:
        if dt is None:
            raise ValueError(
                f"`dt` is required with the fixed-step solver {name!r} (the step of the "
                "method's map); pass e.g. dt=0.01, or use an adaptive solver (dopri8)."
            )
        if not _concrete(dt):
            raise ValueError("`dt` must be a concrete number with a fixed-step solver.")
    dt = check_positive_number("dt", dt, allow_none=True)
    rtol = check_positive_number("rtol", rtol)
    atol = check_positive_number("atol", atol)
    max_steps = check_count("max_steps", max_steps)
    return FlowConfig(name, dt, rtol, atol, max_steps)


def _require_concrete_period(name, T):
    if not _concrete(T):
        raise ValueError(
            f"with a fixed-step solver `{name}` fixes the step count (floor({name} / dt)), so "
            "it must be concrete (not traced under jit/grad)."
        )
    return np.asarray(T, np.float64)


def _step_counts(cfg: FlowConfig, T):
    """`flow_jacobian`, fixed-step: N = floor(t / dt) full steps per member, and the static
    scan length max N + 1 (the shortened last step)."""
    if not cfg.fixed:
        return cfg, jnp.zeros(T.shape, jnp.int32)
    N = np.floor(_require_concrete_period("t", T) / cfg.dt).astype(np.int64)
    cfg = dataclasses.replace(cfg, scan_length=int(N.max()) + 1)
    return cfg, jnp.asarray(N, jnp.int32)


def _return_window(cfg: FlowConfig, T):
    """`periodic_orbit`, fixed-step: a return counts after at least half the guessed period
    (k_min = floor(T / 2 dt) steps); the scan runs to twice the longest guess."""
    if not cfg.fixed:
        return cfg, jnp.zeros(T.shape, jnp.int32)
    steps = _require_concrete_period("period", T) / cfg.dt
    cfg = dataclasses.replace(cfg, scan_length=int(np.ceil(2 * steps.max())) + 2)
    return cfg, jnp.asarray(np.floor(steps / 2), jnp.int32)



@eqx.filter_jit
def _flow_jacobian_batch(field, args, X, T, N, cfg: FlowConfig, single: bool):
    def one(field_, args_, x, T_, N_):
        xT, M, _, s, ok = flow_with_jacobian(field_, x, T_, args_, cfg, n_full=N_,
                                             with_trace=True)
        liou = jnp.abs(jnp.linalg.det(M) * jnp.exp(-s) - 1.0)
        return FlowJacobian(xT, M, s, liou, ok)

    return batched_call(one, field, args, X, T, N, single=single)


def flow_jacobian(
    system,
    x0,
    t,
    *,
    solver: str = "dopri8",
    dt: float | None = None,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    args=None,
    max_steps: int = 8192,
) -> FlowJacobian:
    """The flow map $\\Phi_t(x_0)$, its Jacobian and Liouville's check, from any start.

    $\\det \\partial\\Phi_t/\\partial x_0 = \\exp\\int_0^t \\operatorname{tr} J\\,ds$: 1 for
    the post form (tr J = 0), $e^{-n\\gamma t}$ for the pre form with diffusion γ. The
    Jacobian is forward mode through the solver, the trace integral an extra ODE component.

    **Arguments:** as `periodic_orbit`, with the time `t` (`()` or `(B,)`, positive) instead
    of a period guess (fixed-step solvers: floor(t / dt) steps and one shortened step).

    **Returns:** a `FlowJacobian`.
    """
    field = as_field(system)
    X = validate_states(field, x0, args)
    T = validate_times("t", t, X.dtype)
    cfg = _flow_config(solver, dt, rtol, atol, max_steps)
    B = _batch_size(field, X, T)
    single = B is None
    Xb = jnp.broadcast_to(X, (1 if single else B, X.shape[-1]))
    Tb = jnp.broadcast_to(T, (1 if single else B,))
    cfg, N = _step_counts(cfg, Tb)
    out = _flow_jacobian_batch(field, args, Xb, Tb, N, cfg, single)
    if single:
        out = jax.tree_util.tree_map(lambda a: a[0], out)
    return out
