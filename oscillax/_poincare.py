"""Poincaré maps: successive crossings of a hyperplane, located on the solver's interpolant.

The section is $\\Sigma = \\{x : \\nu\\cdot x = c\\}$ (`normal` ν, `offset` c), crossed in the
direction of ν ($\\nu\\cdot x - c$ going from $\\le 0$ to $> 0$). A start on the section is
not a return: the first return of a point of Σ is the next upcrossing after it.

Adaptive solvers: a `diffrax.Event` on $\\nu\\cdot x - c$ with `optimistix.Newton` on the
step's dense interpolant, one solve per return, restarted from the crossing. The point is then
polished: the interpolant is less accurate than the steps (a 1e-10 error with Dopri8 at rtol
1e-10), so the segment is integrated once more to the event time itself and one Newton step
in time puts it on the section. That doubles the cost and gives points and times to the
accuracy of the integration. Fixed-step solvers: the discrete trajectory, with the crossing
located by Newton on the cubic Hermite interpolant of the step (from $x_k, f(x_k), x_{k+1},
f(x_{k+1})$).

Both paths are forward-differentiable (`jax.jacfwd` of the return point with respect to the
start gives the return map's Jacobian; its eigenvalues on Σ are the non-trivial Floquet
multipliers of a periodic orbit through the start).
"""

from __future__ import annotations

import enum

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jaxtyping import Array, Float, Int

from ._flow import (
    FlowConfig,
    _flow_config,
    as_field,
    batched_call,
    check_count,
    check_positive_number,
    per_member_A,
    step_crossing,
    validate_states,
)
from ._solver import ADAPTIVE_SOLVERS, FIXED_SOLVERS


class SectionStatus(enum.IntEnum):
    """Per-member outcome of `poincare_map`."""

    OK = 0
    """All `returns` crossings were found."""
    NO_RETURN = 1
    """`t_max` was reached first; the missing points and times are NaN."""
    SOLVER_FAILED = 2
    """The solver gave up (`max_steps`), the root find failed, or the state became non-finite."""


class PoincareSection(eqx.Module):
    """The result of `poincare_map`.

    **Fields:**
    - `points`: the crossings, `(returns, n)` or `(B, returns, n)`; NaN where none was found.
    - `times`: their times since the start, `(returns,)` or `(B, returns)`; the return
      intervals are `jnp.diff(times, prepend=0)`.
    - `found`: how many crossings were found, `()` or `(B,)`.
    - `status`: `SectionStatus` codes.
    - `normal`, `offset`: the section $\\nu \\cdot x = c$.
    """

    points: Float[Array, "*B returns n"]
    times: Float[Array, "*B returns"]
    found: Int[Array, "*B"]
    status: Int[Array, "*B"]
    normal: Float[Array, " n"]
    offset: Float[Array, ""]


class _SectionConfig(eqx.Module):
    flow: FlowConfig
    returns: int = eqx.field(static=True)
    t_max: float = eqx.field(static=True)


def _root_tolerance(dtype):
    return 1e3 * float(jnp.finfo(dtype).eps)


def _on_section_guard(normal, offset, x):
    # a start within a few rounding errors of the section counts as on it
    eps = jnp.finfo(x.dtype).eps
    return 1e3 * eps * (jnp.abs(offset) + jnp.linalg.norm(normal) * jnp.linalg.norm(x) + 1.0)


def _adaptive_returns(field, args, x0, normal, offset, cfg: _SectionConfig):
    dtype = x0.dtype
    tol = _root_tolerance(dtype)
    root_finder = optx.Newton(rtol=tol, atol=tol)
    controller = diffrax.PIDController(rtol=cfg.flow.rtol, atol=cfg.flow.atol)
    solver = ADAPTIVE_SOLVERS[cfg.flow.solver]()

    def side(y):
        return jnp.dot(normal, y) - offset

    def segment(carry, _):
        x, t, on, alive, failed = carry

        def cond_fn(t, y, args, *, t0, **kwargs):  # diffrax passes these by name
            s = side(y)
            # a start on the section reads as "above" it, so leaving it is no crossing
            return jnp.where(on & (t == t0), jnp.ones_like(s), s)

        common = dict(
            stepsize_controller=controller, max_steps=cfg.flow.max_steps,
            adjoint=diffrax.ForwardMode(), throw=False, saveat=diffrax.SaveAt(t1=True),
        )
        term = diffrax.ODETerm(field.__call__)
        sol = diffrax.diffeqsolve(
            term, solver, t0=t, t1=jnp.asarray(cfg.t_max, dtype), dt0=cfg.flow.dt, y0=x,
            args=args, event=diffrax.Event(cond_fn, root_finder, direction=True), **common,
        )
        t_ev = sol.ts[0]
        hit = (sol.result == diffrax.RESULTS.event_occurred) & jnp.isfinite(t_ev)
        bad = ~hit & (sol.result != diffrax.RESULTS.successful)
        # Polish: the interpolant's point is off by its interpolation error (~1e-10 with
        # Dopri8 at rtol 1e-10), so integrate to the event time itself and take one Newton
        # step in time on the step's Taylor expansion, x + dt f(x). This also makes the
        # derivative the projected flow derivative, (I - f nu^T / nu.f) M.
        sol2 = diffrax.diffeqsolve(
            term, solver, t0=t, t1=jnp.where(hit, t_ev, t), dt0=cfg.flow.dt, y0=x, args=args,
            **common,
        )
        xe = sol2.ys[0]
        fe = field(t_ev, xe, args)
        vel = jnp.dot(normal, fe)
        dt_fix = -side(xe) / jnp.where(vel != 0, vel, 1.0)
        x1, t1 = xe + dt_fix * fe, t_ev + dt_fix
        hit = hit & (sol2.result == diffrax.RESULTS.successful) & jnp.all(jnp.isfinite(x1))
        hit = alive & hit
        failed = failed | (alive & bad)
        x_next = jnp.where(hit, x1, x)
        t_next = jnp.where(hit, t1, t)
        nan = jnp.asarray(jnp.nan, dtype)
        out = (jnp.where(hit, x1, nan), jnp.where(hit, t1, nan))
        return (x_next, t_next, jnp.ones((), bool), hit, failed), out

    on0 = jnp.abs(side(x0)) <= _on_section_guard(normal, offset, x0)
    init = (x0, jnp.zeros((), dtype), on0, jnp.ones((), bool), jnp.zeros((), bool))
    (_, _, _, alive, failed), (pts, ts) = jax.lax.scan(segment, init, None, length=cfg.returns)
    return pts, ts, failed


class _FixedState(eqx.Module):
    k: Int[Array, ""]
    x: Float[Array, " n"]
    s: Float[Array, ""]  # signed distance of x (a start on the section counts as +1)
    found: Int[Array, ""]
    before: Float[Array, "returns n"]  # the state at the start of each crossing step
    after: Float[Array, "returns n"]  # and at its end
    steps: Int[Array, " returns"]  # its index
    failed: Int[Array, ""]


def _fixed_returns(field, args, x0, normal, offset, cfg: _SectionConfig):
    solver = FIXED_SOLVERS[cfg.flow.solver]
    dtype = x0.dtype
    h = jnp.asarray(cfg.flow.dt, dtype)
    k_max = int(np.ceil(cfg.t_max / cfg.flow.dt))
    R = cfg.returns

    def side(y):
        return jnp.dot(normal, y) - offset

    def cond(st):
        return (st.found < R) & (st.k < k_max) & (st.failed == 0)

    # The loop only remembers the steps that cross; each crossing is located on its step's
    # interpolant after the loop, all `returns` at once. (Located at every step, the two
    # extra field evaluations and the Newton iterations ran at every step: 20 returns of a
    # 2-unit Euler cycle took 5.2-6.6 ms a call against 2.9-3.0 ms now; measured.)
    def body(st):
        X1 = solver.step(field, st.k * h, st.x[:, None], h, args)
        x1 = X1[:, 0]
        s1 = side(x1)
        cross = (st.s <= 0) & (s1 > 0)
        idx = jnp.minimum(st.found, R - 1)
        before = jnp.where(cross, st.before.at[idx].set(st.x), st.before)
        after = jnp.where(cross, st.after.at[idx].set(x1), st.after)
        steps = jnp.where(cross, st.steps.at[idx].set(st.k), st.steps)
        failed = jnp.where(jnp.all(jnp.isfinite(x1)), 0, 1).astype(jnp.int32)
        return _FixedState(st.k + 1, x1, s1, st.found + cross.astype(jnp.int32), before,
                           after, steps, failed)

    s0 = side(x0)
    s0 = jnp.where(jnp.abs(s0) <= _on_section_guard(normal, offset, x0), jnp.ones_like(s0), s0)
    init = _FixedState(
        jnp.zeros((), jnp.int32), x0, s0, jnp.zeros((), jnp.int32),
        jnp.zeros((R, x0.shape[0]), dtype), jnp.zeros((R, x0.shape[0]), dtype),
        jnp.zeros((R,), jnp.int32), jnp.zeros((), jnp.int32),
    )
    st = jax.lax.while_loop(cond, body, init)

    def locate(xa, xb, k):
        t = k.astype(dtype) * h
        th, p = step_crossing(field, args, normal, offset, t, h, xa, xb)
        return p, t + th * h

    points, times = jax.vmap(locate)(st.before, st.after, st.steps)
    have = jnp.arange(R) < st.found
    nan = jnp.asarray(jnp.nan, dtype)
    return (jnp.where(have[:, None], points, nan), jnp.where(have, times, nan),
            st.failed > 0)


@eqx.filter_jit
def _poincare_batch(field, args, X, normal, offset, cfg: _SectionConfig, single: bool):
    def one(field_, args_, x0):
        if cfg.flow.fixed:
            pts, ts, failed = _fixed_returns(field_, args_, x0, normal, offset, cfg)
        else:
            pts, ts, failed = _adaptive_returns(field_, args_, x0, normal, offset, cfg)
        found = jnp.sum(jnp.isfinite(ts)).astype(jnp.int32)
        status = jnp.where(
            failed, SectionStatus.SOLVER_FAILED,
            jnp.where(found == cfg.returns, SectionStatus.OK, SectionStatus.NO_RETURN),
        ).astype(jnp.int32)
        return PoincareSection(pts, ts, found, status, normal, offset)

    out = batched_call(one, field, args, X, single=single)
    # the section is shared: one copy, not one per member
    return eqx.tree_at(lambda s: (s.normal, s.offset), out, (normal, offset))


def poincare_map(
    system,
    x0,
    *,
    normal,
    offset=0.0,
    returns: int = 1,
    solver: str = "dopri8",
    dt: float | None = None,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    args=None,
    t_max: float = 1000.0,
    max_steps: int = 65536,
) -> PoincareSection:
    """Successive crossings of the hyperplane `normal · x = offset`, in the direction of
    `normal`, from `x0`.

    **Arguments:**
    - `system`: an oscillax field or a function `f(t, x, args)`; a skew field with a
      per-member `A` `(n, n, B)` runs B networks at once.
    - `x0`: start `(n,)` or a batch `(B, n)`. A start on the section is not a return.
    - `normal`: `(n,)`, nonzero; `offset`: the section's level c.
    - `returns`: how many crossings to find.
    - `solver`, `dt`, `rtol`, `atol`, `max_steps`: as in `periodic_orbit` (`max_steps` per
      return); fixed-step solvers need `dt`.
    - `t_max`: give up at this time (members then get `SectionStatus.NO_RETURN`).

    **Returns:** a `PoincareSection`.

    ```python
    sec = ox.poincare_map(field, x_star, normal=f_star, offset=f_star @ x_star)
    sec.times[0]  # the period
    ```
    """
    field = as_field(system)
    X = validate_states(field, x0, args)
    n = X.shape[-1]
    normal = jnp.asarray(normal, X.dtype)
    if normal.shape != (n,):
        raise ValueError(f"`normal` must have shape ({n},), like one state; got "
                         f"{tuple(normal.shape)}.")
    if not isinstance(normal, jax.core.Tracer):
        nn = np.asarray(normal)
        if not np.all(np.isfinite(nn)) or not np.any(nn != 0):
            raise ValueError(f"`normal` must be finite and nonzero; got {nn.tolist()}.")
    offset = jnp.asarray(offset, X.dtype)
    if offset.shape != ():
        raise ValueError(f"`offset` must be a scalar; got shape {tuple(offset.shape)}.")
    if not isinstance(offset, jax.core.Tracer) and not np.isfinite(np.asarray(offset)):
        raise ValueError(f"`offset` must be finite; got {float(offset)!r}.")
    returns = check_count("returns", returns)
    t_max = check_positive_number("t_max", t_max)
    cfg = _SectionConfig(_flow_config(solver, dt, rtol, atol, max_steps), returns, t_max)
    single = X.ndim == 1
    if single and (field_B := _member_count(field)) is not None:
        X = jnp.broadcast_to(X, (field_B, n))
        single = False
    Xb = X[None] if single else X
    if _member_count(field) not in (None, Xb.shape[0]):
        raise ValueError(
            f"`x0` has {Xb.shape[0]} members but the field's A has {_member_count(field)} "
            "(shape (n, n, B)); pass one batch size."
        )
    out = _poincare_batch(field, args, Xb, normal, offset, cfg, single)
    if single:
        out = eqx.tree_at(
            lambda s: (s.points, s.times, s.found, s.status), out,
            (out.points[0], out.times[0], out.found[0], out.status[0]),
        )
    return out


def _member_count(field):
    return field.A.shape[2] if per_member_A(field) else None
