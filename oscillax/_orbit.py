"""Periodic orbits by shooting: period, Floquet multipliers, monodromy, and their gradients.

A periodic orbit is a point $x_0$ and a period $T > 0$ with $\\Phi_T(x_0) = x_0$, where
$\\Phi_t$ is the flow of $\\dot x = f(x)$. It is found by Newton's method on the unknowns
$(x_0, T)$ with

- the closing condition $\\Phi_T(x_0) - x_0 = 0$ ($n$ equations),
- a phase condition $\\hat f \\cdot (x_0 - \\hat x) = 0$, $\\hat f = f(\\hat x)/\\|f(\\hat x)\\|$
  ($\\hat x$ the starting guess): the orbit point on the hyperplane through $\\hat x$ normal
  to the flow,
- for conservative fields (b = 0, γ = 0, `field.has_invariant()`), the level condition
  $I(x_0) = I(\\hat x)$. There the orbits come in neutral families, one per level set of the
  invariant, so without it the problem has a continuum of solutions; with it the system is
  overdetermined by one but consistent, and every Newton step is a least-squares solve.

The Jacobian of the closing condition is the monodromy matrix
$M = \\partial \\Phi_T / \\partial x_0$, computed by forward-mode differentiation through the
solver (`jax.jacfwd` with `diffrax.ForwardMode`): the exact derivative of the numerical flow
map, so Newton converges quadratically on the map that is actually integrated.

Floquet multipliers are reported deflated: the trivial one is $v^\\top M v$ with
$v = f(x_0)/\\|f(x_0)\\|$ (for the exact flow $M f(x_0) = f(x_0)$), the others are the
eigenvalues of $M$ on the quotient by the flow direction, $Q^\\top M Q$ with $Q$ an
orthonormal basis of $f(x_0)^\\perp$ (the Jacobian of a Poincaré map, up to similarity). On a
neutral family $M$ has a Jordan block at 1, whose eigenvalues computed from $M$ itself split
by $\\sqrt{\\varepsilon}$ ($\\approx 10^{-6}$ for a $10^{-12}$ error in $M$); the deflated
ones are accurate to the error in $M$.

Fixed-step solvers (the orbits of a method's map, e.g. the cycles forward Euler creates with
diffusion γ): a fixed point of N steps is not a closed orbit in general (the map's invariant
curve is not made of periodic points), so what is solved there is the fixed point of the
method's return map $P$ to the phase hyperplane, $P(x_0) = x_0$ with the crossing located on
the step's cubic Hermite interpolant; the period is the return time and `monodromy` is
$\\partial P/\\partial x_0$ (its trivial multiplier is 1 by construction). Its accuracy as a
description of the invariant curve is that of the interpolant.

Gradients of the period and the orbit point with respect to the field's arrays (its weights),
the guess point and `args` use the implicit function theorem (a custom VJP: one transposed
least-squares solve and one reverse-mode pass through the flow), never the Newton iterations.
Gradients of the multipliers also need the derivative of $M$, which a custom VJP computes by
reverse mode through forward mode (`diffrax.DirectAdjoint`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Complex, Float, Int

from ._field import AbstractSkewField
from ._flow import (
    FlowConfig,
    _batch_size,
    _flow_config,
    _return_window,
    as_field,
    batched_call,
    check_count,
    check_positive_number,
    fixed_return,
    flow,
    flow_with_jacobian,
    validate_states,
    validate_times,
)


class OrbitStatus(enum.IntEnum):
    """Per-member outcome of `periodic_orbit`."""

    CONVERGED = 0
    """Newton's residual (closing, phase and level conditions) fell below `tol`."""
    NOT_CONVERGED = 1
    """`max_iters` Newton iterations without reaching `tol`, or no phase condition at the
    guess (an equilibrium: f = 0 there)."""
    SOLVER_FAILED = 2
    """The ODE solver gave up (`max_steps` reached) or produced non-finite values at every
    point tried."""


# ---------------------------------------------------------------------------------------
# The system, its batch layout and the flow map
# ---------------------------------------------------------------------------------------



class _Anchor(eqx.Module):
    """What the phase and level conditions need of the guess $\\hat x$."""

    x_hat: Float[Array, " n"]
    e_phase: Float[Array, " n"]  # f(x_hat) / |f(x_hat)|
    offset: Float[Array, ""]  # e_phase . x_hat: the phase hyperplane e . x = offset
    level: Float[Array, ""]  # I(x_hat)
    level_scale: Float[Array, ""]  # |grad I(x_hat)|: the level row in units of distance
    valid: Bool[Array, ""]  # f(x_hat) != 0


def _anchor(field, x_hat, args, invariant) -> _Anchor:
    f_hat = field(jnp.zeros((), x_hat.dtype), x_hat, args)
    nf = jnp.linalg.norm(f_hat)
    valid = (nf > 0) & jnp.isfinite(nf)
    e = f_hat / jnp.where(valid, nf, 1.0)
    if invariant is None:
        level = scale = jnp.ones((), x_hat.dtype)
    else:
        level, g = jax.value_and_grad(lambda y: invariant(field, y))(x_hat)
        scale = jnp.linalg.norm(g)
        valid = valid & (scale > 0)
        scale = jnp.where(scale > 0, scale, 1.0)
    return _Anchor(x_hat, e, jnp.dot(e, x_hat), level, scale, valid)


def _closing(field, anchor, x, T, args, cfg: FlowConfig, n_min, *, adjoint=None):
    """The closing residual: $\\Phi_T(x) - x$ (adaptive), or $[P(x) - x,\\ T - T_P(x)]$
    with $P$ the fixed-step method's return map to the phase hyperplane and $T_P$ its
    return time. Returns `(residual, ok)`."""
    if cfg.fixed:
        p, t_ret, _, ok = fixed_return(field, x, args, cfg, anchor.e_phase, anchor.offset, n_min)
        return jnp.concatenate([p - x, (T - t_ret)[None]]), ok
    xT, _, ok = flow(field, x, T, args, cfg, adjoint=adjoint)
    return xT - x, ok


def _closing_with_jacobian(field, anchor, x, T, args, cfg: FlowConfig, n_min, *, adjoint=None):
    """`(residual, d residual / d(x, T), M, ok)`; `M` is the monodromy matrix
    $\\partial\\Phi_T/\\partial x$, or the return map's Jacobian $\\partial P/\\partial x$."""
    n = x.shape[0]
    eye = jnp.eye(n, dtype=x.dtype)
    if cfg.fixed:

        def g(x_):
            p, t_ret, _, ok = fixed_return(field, x_, args, cfg, anchor.e_phase, anchor.offset,
                                           n_min)
            return (p, t_ret), (p, t_ret, ok)

        (DP, dtr), (p, t_ret, ok) = jax.jacfwd(g, has_aux=True)(x)
        res = jnp.concatenate([p - x, (T - t_ret)[None]])
        top = jnp.concatenate([DP - eye, jnp.zeros((n, 1), x.dtype)], axis=1)
        bottom = jnp.concatenate([-dtr, jnp.ones((1,), x.dtype)])[None]
        return res, jnp.concatenate([top, bottom], axis=0), DP, ok
    xT, M, dT, _, ok = flow_with_jacobian(field, x, T, args, cfg, adjoint=adjoint)
    return xT - x, jnp.concatenate([M - eye, dT[:, None]], axis=1), M, ok


def _conditions(field, anchor: _Anchor, x, T, args, cfg, n_min, invariant, *, adjoint=None):
    """The residual vector: closing, phase and (with an invariant) level rows."""
    res, _ = _closing(field, anchor, x, T, args, cfg, n_min, adjoint=adjoint)
    rows = [res, (jnp.dot(anchor.e_phase, x) - anchor.offset)[None]]
    if invariant is not None:
        rows.append(((invariant(field, x) - anchor.level) / anchor.level_scale)[None])
    return jnp.concatenate(rows)


def _border(field, anchor, x, res, jac_closing, invariant):
    """Append the phase and level rows to the closing residual and its Jacobian."""
    zero = jnp.zeros((1,), x.dtype)
    rows = [res, (jnp.dot(anchor.e_phase, x) - anchor.offset)[None]]
    jrows = [jac_closing, jnp.concatenate([anchor.e_phase, zero])[None]]
    if invariant is not None:
        level, g = jax.value_and_grad(lambda y: invariant(field, y))(x)
        rows.append(((level - anchor.level) / anchor.level_scale)[None])
        jrows.append(jnp.concatenate([g / anchor.level_scale, zero])[None])
    return jnp.concatenate(rows), jnp.concatenate(jrows, axis=0)


class _Evaluated(eqx.Module):
    """One Newton point, what was computed there, and the Newton step from it."""

    x: Float[Array, " n"]
    T: Float[Array, ""]
    residual: Float[Array, ""]  # |closing residual| (state part)
    M: Float[Array, "n n"]
    jac: Float[Array, "m n1"]
    rnorm: Float[Array, ""]
    step: Float[Array, " n1"]


class _NewtonState(eqx.Module):
    """The Newton loop's carry: the point to evaluate next, the best point so far, and the
    fraction of the best point's step that a pulled-back trial takes."""

    x: Float[Array, " n"]
    T: Float[Array, ""]
    best: _Evaluated
    lam: Float[Array, ""]
    iterations: Int[Array, ""]
    done: Bool[Array, ""]


class _Shot(eqx.Module):
    """Result of one member's shooting (inside the implicit-function custom VJP)."""

    x: Float[Array, " n"]
    T: Float[Array, ""]
    M: Float[Array, "n n"]
    jac: Float[Array, "m n1"]
    residual: Float[Array, ""]
    trace_integral: Float[Array, ""]
    iterations: Int[Array, ""]
    status: Int[Array, ""]


class _ShootConfig(eqx.Module):
    flow: FlowConfig
    tol: float = eqx.field(static=True)
    max_iters: int = eqx.field(static=True)


def _shoot(field, x_hat, T0, args, n_min, cfg: _ShootConfig, invariant) -> _Shot:
    """Newton (Gauss-Newton where the level row makes the system overdetermined).

    Full steps, not a line search on the residual norm: on these orbits Newton often has to
    pass through a larger residual (a norm-decrease search stalled in tests where full steps
    converged). Only a trial whose flow fails or is non-finite is pulled back, halfway to the
    best point along its step. The loop stops at machine-level residual; once the residual is
    below `tol` and a full step no longer halves it (on a neutral family the integrator's
    drift of the invariant over one period leaves a floor: no point of the level set closes
    exactly under the numerical map); after five pull-backs in a row; or after `max_iters`
    evaluations. The best point seen is returned.
    """
    n = x_hat.shape[0]
    dtype = x_hat.dtype
    anchor = _anchor(field, x_hat, args, invariant)
    scale = jnp.maximum(1.0, jnp.linalg.norm(x_hat))
    tol = cfg.tol * scale
    floor = 100 * jnp.finfo(dtype).eps * scale
    m = n + 1 + cfg.flow.fixed + (invariant is not None)

    def body(st: _NewtonState) -> _NewtonState:
        res, jc, M, ok = _closing_with_jacobian(field, anchor, st.x, st.T, args, cfg.flow, n_min)
        r, jac = _border(field, anchor, st.x, res, jc, invariant)
        rnorm = jnp.linalg.norm(r)
        finite = ok & jnp.isfinite(rnorm) & jnp.all(jnp.isfinite(jac))
        step = jnp.linalg.lstsq(jnp.where(finite, jac, 0.0), -jnp.where(finite, r, 0.0))[0]
        # a trust region: one step changes T by at most -T/2 .. +T and x by at most
        # max(1, |x_hat|), so a wild step cannot send a member into a long, stiff solve
        # (in a batch every member waits for the slowest)
        dx = jnp.linalg.norm(step[:n])
        shrink = jnp.minimum(1.0, scale / jnp.maximum(dx, 1e-300))
        shrink = jnp.minimum(shrink, jnp.where(step[n] < 0, 0.5, 1.0) * st.T
                             / jnp.maximum(jnp.abs(step[n]), 1e-300))
        step = step * shrink
        here = _Evaluated(st.x, st.T, jnp.linalg.norm(res[:n]), M, jac, rnorm, step)
        better = finite & (rnorm < st.best.rnorm)
        stalled = (st.best.rnorm <= tol) & ~(rnorm <= 0.5 * st.best.rnorm)
        best = jax.tree_util.tree_map(lambda a, b: jnp.where(better, a, b), here, st.best)
        lam = jnp.where(finite, 1.0, 0.5 * st.lam)
        it = st.iterations + 1
        done = ((best.rnorm <= floor) | stalled | (lam < 1 / 32) | (it >= cfg.max_iters)
                | ~anchor.valid)
        base = jax.tree_util.tree_map(lambda a, b: jnp.where(finite, a, b), here, best)
        # once done, park on the best point: in a batch a finished member is still computed
        # (and discarded) while the others go on, so it should cost what a good point costs
        lam_next = jnp.where(done, 0.0, lam)
        base = jax.tree_util.tree_map(lambda a, b: jnp.where(done, a, b), best, base)
        return _NewtonState(base.x + lam_next * base.step[:n],
                            base.T + lam_next * base.step[n], best, lam, it, done)

    nan = jnp.asarray(jnp.nan, dtype)
    init = _NewtonState(
        x=x_hat,
        T=T0,
        best=_Evaluated(
            x=x_hat, T=T0, residual=nan, M=jnp.full((n, n), nan),
            jac=jnp.full((m, n + 1), nan), rnorm=jnp.asarray(jnp.inf, dtype),
            step=jnp.zeros((n + 1,), dtype),
        ),
        lam=jnp.ones((), dtype),
        iterations=jnp.zeros((), jnp.int32),
        done=jnp.zeros((), bool),
    )
    st = jax.lax.while_loop(lambda s: ~s.done, body, init)
    best = st.best
    status = jnp.where(
        anchor.valid & (best.rnorm <= tol),
        OrbitStatus.CONVERGED,
        jnp.where(anchor.valid & ~jnp.isfinite(best.rnorm), OrbitStatus.SOLVER_FAILED,
                  OrbitStatus.NOT_CONVERGED),
    ).astype(jnp.int32)
    # Liouville: the integral of tr J along the orbit found (a primal-only pass)
    if cfg.flow.fixed:
        _, _, s, ok = fixed_return(field, best.x, args, cfg.flow, anchor.e_phase, anchor.offset,
                                   n_min, with_trace=True)
    else:
        _, s, ok = flow(field, best.x, best.T, args, cfg.flow, with_trace=True)
    s = jnp.where(ok, s, jnp.nan)
    return _Shot(best.x, best.T, best.M, best.jac, best.residual, s, st.iterations, status)


@eqx.filter_custom_vjp
def _shoot_implicit(diff, T0, n_min, cfg, invariant):
    field, x_hat, args = diff
    return _shoot(field, x_hat, T0, args, n_min, cfg, invariant)


@_shoot_implicit.def_fwd
def _shoot_implicit_fwd(perturbed, diff, T0, n_min, cfg, invariant):
    del perturbed
    out = _shoot_implicit.fn(diff, T0, n_min, cfg, invariant)
    return out, out


@_shoot_implicit.def_bwd
def _shoot_implicit_bwd(shot, grad_obj, perturbed, diff, T0, n_min, cfg, invariant):
    # z* = (x*, T*) solves F(z, p) = 0 (least squares, consistent). dz/dp = -J^+ F_p, so
    # the VJP is p_bar = F_p^T lam with J^T lam = -z_bar (minimum-norm lam = -(J^+)^T z_bar).
    del perturbed
    x_bar = jnp.zeros_like(shot.x) if grad_obj.x is None else grad_obj.x
    T_bar = jnp.zeros_like(shot.T) if grad_obj.T is None else grad_obj.T
    z_bar = jnp.concatenate([x_bar, T_bar[None]])
    lam = -jnp.linalg.lstsq(shot.jac.T, z_bar)[0]

    def F(p):
        field, x_hat, args = p
        anchor = _anchor(field, x_hat, args, invariant)
        # reverse mode through the flow: diffrax's checkpointed adjoint (fixed-step: a scan)
        return _conditions(field, anchor, shot.x, shot.T, args, cfg.flow, n_min, invariant,
                           adjoint=diffrax.RecursiveCheckpointAdjoint())

    _, vjp = eqx.filter_vjp(F, diff)
    (g,) = vjp(lam)
    bad = shot.status != OrbitStatus.CONVERGED
    return jax.tree_util.tree_map(lambda a: jnp.where(bad, jnp.nan, a), g)


@eqx.filter_custom_vjp
def _monodromy(diff, M, n_min, cfg, invariant):
    """Returns the precomputed `M`; its VJP differentiates $M(x, T)$ with respect to
    (field, x, T, args, guess)."""
    return M


@_monodromy.def_fwd
def _monodromy_fwd(perturbed, diff, M, n_min, cfg, invariant):
    del perturbed, diff, n_min, cfg, invariant
    return M, None


@_monodromy.def_bwd
def _monodromy_bwd(_, M_bar, perturbed, diff, M, n_min, cfg, invariant):
    del perturbed, M

    def monodromy(p):
        field, x, T, args, x_hat = p
        anchor = _anchor(field, x_hat, args, invariant)
        # DirectAdjoint: the one diffrax adjoint that allows reverse mode over forward mode
        _, _, M_, _ = _closing_with_jacobian(field, anchor, x, T, args, cfg, n_min,
                                             adjoint=diffrax.DirectAdjoint())
        return M_

    _, vjp = eqx.filter_vjp(monodromy, diff)
    (g,) = vjp(M_bar)
    return g


# ---------------------------------------------------------------------------------------
# Multipliers
# ---------------------------------------------------------------------------------------


def _householder(v):
    """Symmetric orthogonal H whose first column is $\\pm v$ ($\\|v\\| = 1$)."""
    n = v.shape[0]
    s = jnp.where(v[0] >= 0, 1.0, -1.0)
    u = v.at[0].add(s)
    return jnp.eye(n, dtype=v.dtype) - 2.0 * jnp.outer(u, u) / jnp.dot(u, u)


def deflated_multipliers(M, f):
    """Floquet multipliers of `M` `(n, n)` with the flow direction `f` `(n,)` deflated:
    `[v^T M v, eig(Q^T M Q) sorted by modulus, descending]`, complex `(n,)`."""
    nf = jnp.linalg.norm(f)
    v = f / jnp.where(nf > 0, nf, 1.0)
    H = _householder(v)
    Mt = H @ M @ H
    trivial = Mt[0, 0]
    rest = jnp.linalg.eigvals(Mt[1:, 1:])
    order = jnp.lexsort((-rest.imag, -jnp.abs(rest)))
    return jnp.concatenate([trivial.astype(rest.dtype)[None], rest[order]])


# ---------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------


class PeriodicOrbit(eqx.Module):
    """The result of `periodic_orbit`: one orbit, or a batch (leading axis `B`).

    **Fields:**
    - `x0`: a point on the orbit, `(n,)` or `(B, n)`.
    - `period`: $T$, `()` or `(B,)`.
    - `multipliers`: Floquet multipliers, complex `(n,)` or `(B, n)`. `multipliers[..., 0]`
      is the trivial one (along the flow, exactly 1 for the exact flow); the other n − 1 are
      those of $M$ with the flow direction deflated (= the eigenvalues of a Poincaré return
      map's Jacobian), sorted by modulus, descending. Fixed-step solvers: `[..., 0]` is 1
      by construction and the rest are the eigenvalues of the return map.
    - `monodromy`: $M = \\partial\\Phi_T/\\partial x_0$, `(n, n)` or `(B, n, n)` (fixed-step
      solvers: the return map's Jacobian $\\partial P/\\partial x_0$).
    - `residual`: $\\|\\Phi_T(x_0) - x_0\\|$ (fixed-step: $\\|P(x_0) - x_0\\|$). On a
      neutral family it cannot go below the integrator's drift of the invariant over one
      period (about 1e-11 with the defaults).
    - `trivial_error`: $|\\mu_0 - 1|$.
    - `trace_integral`: $\\int_0^T \\operatorname{tr} J\\,dt$ along the orbit.
    - `liouville_error`: $|\\det M\\, e^{-\\int \\operatorname{tr} J} - 1|$ (Liouville's
      formula; for fixed-step solvers it measures the scheme's own volume error).
    - `iterations`: Newton iterations used.
    - `status`: `OrbitStatus` codes; `converged` is `status == CONVERGED`.

    `period`, `x0`, `multipliers` (and `monodromy`) are differentiable with respect to the
    field's arrays, the guess point and `args`, by the implicit function theorem; members
    that did not converge get NaN gradients. Gradients through `multipliers` or `monodromy`
    with an adaptive solver go through `diffrax.DirectAdjoint`, whose cost grows with
    `max_steps` (in a batch, each member runs all of them): lower `max_steps` for those.
    """

    x0: Float[Array, "*B n"]
    period: Float[Array, "*B"]
    multipliers: Complex[Array, "*B n"]
    monodromy: Float[Array, "*B n n"]
    residual: Float[Array, "*B"]
    trivial_error: Float[Array, "*B"]
    trace_integral: Float[Array, "*B"]
    liouville_error: Float[Array, "*B"]
    iterations: Int[Array, "*B"]
    status: Int[Array, "*B"]

    @property
    def converged(self) -> Bool[Array, "*B"]:
        return self.status == OrbitStatus.CONVERGED

    @property
    def nontrivial(self) -> Complex[Array, "*B n-1"]:
        """The n − 1 non-trivial multipliers, sorted by modulus, descending."""
        return self.multipliers[..., 1:]



def _field_invariant(field, x):
    return field.invariant(x)


class _UserInvariant(eqx.Module):
    fn: Callable = eqx.field(static=True)

    def __call__(self, field, x):
        return self.fn(x)


def _auto_invariant(field, invariant, cfg: FlowConfig):
    """The level function `inv(field, x)`: it takes the field so that gradients with
    respect to the field's arrays pass through the level condition."""
    if invariant is None:
        if (not cfg.fixed and isinstance(field, AbstractSkewField)
                and field.has_invariant()):
            return _field_invariant
        return None
    if invariant is False:
        return None
    if not callable(invariant):
        raise ValueError(
            "`invariant` must be None (use the field's own motion invariant, if any), "
            f"False (none) or a function I(x) -> scalar; got {type(invariant).__name__}."
        )
    return _UserInvariant(invariant)


@eqx.filter_jit
def _periodic_orbit_batch(field, args, X, T0, N, cfg: _ShootConfig, invariant, single: bool):
    def one(field_, args_, x_hat, T0_, N_):
        T0_ = jax.lax.stop_gradient(T0_)
        shot = _shoot_implicit((field_, x_hat, args_), T0_, N_, cfg, invariant)
        x, T = shot.x, shot.T
        M0 = jax.lax.stop_gradient(shot.M)
        M = _monodromy((field_, x, T, args_, x_hat), M0, N_, cfg.flow, invariant)
        sg = jax.lax.stop_gradient
        s = sg(shot.trace_integral)
        if cfg.flow.fixed:
            # M is the return map's Jacobian: deflate the section normal; the trivial
            # multiplier is 1 by construction, and det of the rest is Liouville's
            mult = deflated_multipliers(M, field_(T0_, x_hat, args_))
            mult = mult.at[0].set(1.0)
            det = jnp.prod(sg(mult[1:])).real
        else:
            mult = deflated_multipliers(M, field_(T, x, args_))
            det = jnp.linalg.det(M0)
        liou = jnp.abs(det * jnp.exp(-s) - 1.0)
        return PeriodicOrbit(
            x0=x,
            period=T,
            multipliers=mult,
            monodromy=M,
            residual=sg(shot.residual),
            trivial_error=sg(jnp.abs(mult[0] - 1.0)),
            trace_integral=s,
            liouville_error=liou,
            iterations=shot.iterations,
            status=shot.status,
        )

    return batched_call(one, field, args, X, T0, N, single=single)


def periodic_orbit(
    system,
    x0,
    period,
    *,
    solver: str = "dopri8",
    dt: float | None = None,
    rtol: float = 1e-10,
    atol: float = 1e-12,
    args=None,
    max_steps: int = 8192,
    max_iters: int = 20,
    tol: float | None = None,
    invariant: Callable | bool | None = None,
) -> PeriodicOrbit:
    """Find a periodic orbit near a guess by shooting, with its Floquet multipliers.

    Solves $\\Phi_T(x_0) = x_0$ by Newton's method on $(x_0, T)$ with the phase condition
    $f(\\hat x)\\cdot(x_0 - \\hat x) = 0$ and, for conservative fields, the level condition
    $I(x_0) = I(\\hat x)$ (see the module docstring); $\\hat x$ = `x0`. The monodromy matrix
    comes from forward-mode differentiation through the solver. One call solves a batch
    (vectorised); a member that fails gets its own `status`, never an exception.

    **Arguments:**
    - `system`: an oscillax field, or any function `f(t, x, args) -> dx/dt` on `(n,)`
      (autonomous). A skew field with a per-member `A` `(n, n, B)` (the engine's layout,
      e.g. `eqx.tree_at(lambda f: f.A, field, As)`) solves B networks at once.
    - `x0`: the guess $\\hat x$, `(n,)` or `(B, n)`.
    - `period`: the period guess, `()` or `(B,)`, positive.
    - `solver`: adaptive `"dopri8"` (default), `"dopri5"`, `"tsit5"`, or a fixed-step
      method (`"euler"`, `"rk4"`, ...) with `dt`: then the fixed point of the method's
      return map to the phase hyperplane is solved (see the module docstring); a return
      counts after half the guessed period, and the search runs to twice the guess. The
      level condition is not applied there (the schemes do not keep the invariant), so
      solutions exist where the scheme has closed invariant curves (e.g. Euler's cycles with
      diffusion γ); elsewhere the status says NOT_CONVERGED. `period` must be concrete.
    - `dt`: the step of a fixed-step solver; the first step of an adaptive one (None:
      diffrax's estimate).
    - `rtol`, `atol`, `max_steps`: adaptive solver tolerances and step budget per period.
    - `args`: passed to the field.
    - `max_iters`: Newton iterations at most.
    - `tol`: convergence when the residual of all conditions is at most
      `tol * max(1, |x0|)`; default `max(1e-10, 1000 eps)`.
    - `invariant`: None (the field's own when it has one and the solver is adaptive), False
      (never fix the level), or a function `I(x)` on `(n,)`.

    **Returns:** a `PeriodicOrbit`.

    ```python
    field = ox.PostActivation(ox.skew_from_frequencies([1.0]), "tanh")
    orb = ox.periodic_orbit(field, jnp.array([1.0, 0.0]), 7.0)
    orb.period  # 7.714210439814...
    ```
    """
    field = as_field(system)
    X = validate_states(field, x0, args)
    T0 = validate_times("period", period, X.dtype)
    cfg_flow = _flow_config(solver, dt, rtol, atol, max_steps)
    max_iters = check_count("max_iters", max_iters)
    if tol is None:
        tol = max(1e-10, 1e3 * float(jnp.finfo(X.dtype).eps))
    tol = check_positive_number("tol", tol)
    inv = _auto_invariant(field, invariant, cfg_flow)
    B = _batch_size(field, X, T0)
    single = B is None
    Xb = jnp.broadcast_to(X, (1 if single else B, X.shape[-1]))
    Tb = jnp.broadcast_to(T0, (1 if single else B,))
    cfg_flow, N = _return_window(cfg_flow, Tb)
    cfg = _ShootConfig(cfg_flow, tol, max_iters)
    out = _periodic_orbit_batch(field, args, Xb, Tb, N, cfg, inv, single)
    if single:
        out = jax.tree_util.tree_map(lambda a: a[0], out)
    return out


