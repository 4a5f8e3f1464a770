"""Fixed-step solvers of the engine, on states laid out `(n, B)` (batch on the minor axis).

Each solver is a small class: `step` advances the whole batch by `h` (a scalar or a `(B,)`
vector, one step size per trajectory), `order` is its convergence order, and
`stability_function` is $R(z)$ with $x_{k+1} = R(h\\lambda) x_k$ on $\\dot x = \\lambda x$,
which `ox.amplification` uses for the linear-theory boundaries. Adaptive reference solvers
are diffrax's own (see `ADAPTIVE_SOLVERS`).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from ._field import SMALL_N, AbstractField


class AbstractFixedSolver(eqx.Module):
    """A one-step method $X_{k+1} = \\Psi_h(t_k, X_k)$."""

    name: eqx.AbstractClassVar[str]
    order: eqx.AbstractClassVar[int]
    # Implicit methods solve a system per step: many field evaluations per step, so a sweep
    # compiles them per (form, activation) rather than evaluating every activation per member.
    implicit: ClassVar[bool] = False

    @abc.abstractmethod
    def step(self, field: AbstractField, t, X, h, args=None):
        """Advance `X` `(n, B)` from `t` by `h` (scalar or `(B,)`)."""

    @abc.abstractmethod
    def stability_function(self, z):
        """$R(z)$ for the scalar test equation."""

    def step_and_tangent(self, field: AbstractField, t, X, V, h, args=None):
        """The step and its derivative along `V` `(n, B)`: `(Ψ_h(X), DΨ_h(X) V)` (the
        linearised solver map, e.g. for its Lyapunov exponents); `jax.jvp` of `step`."""
        return jax.jvp(lambda X: self.step(field, t, X, h, args), (X,), (V,))


class Euler(AbstractFixedSolver):
    """Forward Euler, $X_{k+1} = X_k + h f(X_k)$."""

    name: ClassVar[str] = "euler"
    order: ClassVar[int] = 1

    def step(self, field, t, X, h, args=None):
        return X + h * field.rhs(X, t, args)

    def stability_function(self, z):
        return 1 + z


class Heun(AbstractFixedSolver):
    """Heun's method (explicit trapezoid), order 2."""

    name: ClassVar[str] = "heun"
    order: ClassVar[int] = 2

    def step(self, field, t, X, h, args=None):
        k1 = field.rhs(X, t, args)
        k2 = field.rhs(X + h * k1, t + h, args)
        return X + 0.5 * h * (k1 + k2)

    def stability_function(self, z):
        return 1 + z + z**2 / 2


class Midpoint(AbstractFixedSolver):
    """Explicit midpoint, order 2."""

    name: ClassVar[str] = "midpoint"
    order: ClassVar[int] = 2

    def step(self, field, t, X, h, args=None):
        k1 = field.rhs(X, t, args)
        k2 = field.rhs(X + 0.5 * h * k1, t + 0.5 * h, args)
        return X + h * k2

    def stability_function(self, z):
        return 1 + z + z**2 / 2


class RK4(AbstractFixedSolver):
    """The classical fourth-order Runge-Kutta method."""

    name: ClassVar[str] = "rk4"
    order: ClassVar[int] = 4

    def step(self, field, t, X, h, args=None):
        k1 = field.rhs(X, t, args)
        k2 = field.rhs(X + 0.5 * h * k1, t + 0.5 * h, args)
        k3 = field.rhs(X + 0.5 * h * k2, t + 0.5 * h, args)
        k4 = field.rhs(X + h * k3, t + h, args)
        return X + (h / 6) * (k1 + 2 * k2 + 2 * k3 + k4)

    def stability_function(self, z):
        return 1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24


TINY_N = 4
"""Up to this n the per-member systems are eliminated entry by entry (see `_solve_tiny`)."""


def _solve_tiny(M, R):
    """Solve $M_b x_b = r_b$ for every b, M `(n, n, B)`, R `(n, B)`, n <= TINY_N: Gaussian
    elimination written entry by entry on `(B,)` vectors (no pivoting, as `_solve_small`).
    Every operation is elementwise, so XLA fuses the whole solve into a few loops; for
    n = 4 the implicit solver's steps ran several times faster than with whole-array
    updates, whose many small kernels dominated (measured)."""
    n = M.shape[0]
    a = [[M[i, j] for j in range(n)] for i in range(n)]
    r = [R[i] for i in range(n)]
    for k in range(n):
        inv = 1.0 / a[k][k]
        for i in range(k + 1, n):
            f = a[i][k] * inv
            for j in range(k + 1, n):
                a[i][j] = a[i][j] - f * a[k][j]
            r[i] = r[i] - f * r[k]
    x = [None] * n
    for i in reversed(range(n)):
        acc = r[i]
        for j in range(i + 1, n):
            acc = acc - a[i][j] * x[j]
        x[i] = acc / a[i][i]
    return jnp.stack(x)


def _solve_small(M, R):
    """Solve $M_b x_b = r_b$ for every b, M `(n, n, B)`, R `(n, B)`: Gauss-Jordan.

    No pivoting: the matrices here are $I - \\tfrac{h}{2} J$ with J = D A (or A D), D a
    diagonal of slopes, whose diagonal is 1 and which stay well conditioned. Elementwise in B,
    so a trajectory's result does not depend on its batch, and n whole-array updates
    instead of n^2 row updates keep the compiled program small.
    """
    n = M.shape[0]
    idx = jnp.arange(n)
    for k in range(n):
        inv = 1.0 / M[k, k]  # (B,)
        row = M[k] * inv[None, :]  # (n, B); explicit broadcasts, no rank promotion
        r = R[k] * inv  # (B,)
        col = M[:, k]  # (n, B)
        # eliminate column k from every row, then put the normalised pivot row back
        M = M - col[:, None, :] * row[None, :, :]
        R = R - col * r[None, :]
        M = jnp.where((idx == k)[:, None, None], row[None], M)
        R = jnp.where((idx == k)[:, None], r[None], R)
    return R


class ImplicitMidpoint(AbstractFixedSolver):
    """Implicit midpoint $X_{k+1} = X_k + h f(\\tfrac{X_k + X_{k+1}}{2})$.

    Exactly norm-preserving on linear skew systems (it is the Cayley transform there), and a
    Poisson integrator for both forms, so the invariant does not drift. Solved by Newton's
    method on the midpoint $Z$: one iteration is exact for linear fields.

    Newton stops once its update is below `newton_tol` relative to the midpoint for every
    member (at most `newton_iters` iterations): its error is then about C tol^2, with C of
    order 1 here (quadratic convergence; h |f''| / |I - h/2 J|), far below the rounding of
    the dtype for the default tol = 0.1 sqrt(eps). At the small steps where a sweep spends
    most of its steps, that is one or two iterations instead of five. (A skipped iteration
    is a `lax.cond` on the whole batch, so `jax.grad` goes through it; under a user's
    `jax.vmap` it runs every iteration.)
    """

    name: ClassVar[str] = "implicit_midpoint"
    order: ClassVar[int] = 2
    implicit: ClassVar[bool] = True
    newton_iters: int = eqx.field(static=True, default=5)
    newton_tol: float | None = eqx.field(static=True, default=None)

    def stability_function(self, z):
        return (1 + z / 2) / (1 - z / 2)

    def step(self, field, t, X, h, args=None):
        n, B = X.shape
        half_h = 0.5 * h  # scalar, or (1, B) for per-trajectory steps
        half_h3 = half_h if jnp.ndim(half_h) == 0 else jnp.reshape(half_h, (1, 1, -1))
        tm = t + half_h  # the field (its input) is evaluated at the midpoint in time
        eye = jnp.eye(n, dtype=X.dtype)[:, :, None]

        def newton(Z):
            F, J = field.rhs_and_jacobian(Z, tm, args)
            G = Z - X - half_h * F
            M = eye - half_h3 * J
            return Z - _solve_batch(jnp.broadcast_to(M, (n, n, B)), G)

        if field.is_affine:  # Newton from X is exact in one step for a linear field
            return 2.0 * newton(X) - X
        tol = (0.1 * float(jnp.finfo(X.dtype).eps) ** 0.5 if self.newton_tol is None
               else self.newton_tol)

        def iterate(_, carry):
            def update(carry):
                Z, _ = carry
                Zn = newton(Z)
                scale = jnp.maximum(jnp.max(jnp.abs(Zn), axis=0), 1.0)
                return Zn, jnp.all(jnp.max(jnp.abs(Zn - Z), axis=0) <= tol * scale)

            return jax.lax.cond(carry[1], lambda c: c, update, carry)

        Z0 = X + half_h * field.rhs(X, tm, args)  # explicit predictor
        Z, _ = jax.lax.fori_loop(0, self.newton_iters, iterate, (Z0, jnp.asarray(False)))
        return 2.0 * Z - X

    def step_and_tangent(self, field, t, X, V, h, args=None):
        """The step, and its exact derivative along V from the converged midpoint Z:
        $(I - \tfrac h2 J(Z)) V' = (I + \tfrac h2 J(Z)) V$ (one solve, instead of
        differentiating every Newton iteration)."""
        n, B = X.shape
        Xn = self.step(field, t, X, h, args)
        half_h = 0.5 * h
        half_h3 = half_h if jnp.ndim(half_h) == 0 else jnp.reshape(half_h, (1, 1, -1))
        J = jnp.broadcast_to(field.jacobian(0.5 * (X + Xn), t + half_h, args), (n, n, B))
        JV = (sum(J[:, j] * V[j][None, :] for j in range(n)) if n <= SMALL_N
              else jnp.einsum("ijb,jb->ib", J, V))
        M = jnp.eye(n, dtype=X.dtype)[:, :, None] - half_h3 * J
        return Xn, _solve_batch(M, V + half_h * JV)


def _solve_batch(M, R):
    """Solve $M_b x_b = r_b$, M `(n, n, B)`, R `(n, B)`: elementwise elimination for small n,
    `jnp.linalg.solve` otherwise."""
    n = M.shape[0]
    if n <= SMALL_N // 2:
        return (_solve_tiny if n <= TINY_N else _solve_small)(M, R)
    Mb = jnp.moveaxis(M, -1, 0)
    return jnp.linalg.solve(Mb, R.T[:, :, None])[:, :, 0].T


FIXED_SOLVERS: dict[str, AbstractFixedSolver] = {
    s.name: s for s in (Euler(), Heun(), Midpoint(), RK4(), ImplicitMidpoint())
}

class _DiffraxSolvers(Mapping):
    """name -> diffrax solver class; diffrax is imported when a class is first looked up
    (names and membership need no import, so a sweep never imports it)."""

    _names = {"tsit5": "Tsit5", "dopri5": "Dopri5", "dopri8": "Dopri8"}

    def __getitem__(self, name):
        import diffrax

        return getattr(diffrax, self._names[name])

    def __contains__(self, name):  # (Mapping's would look the class up: import diffrax)
        return name in self._names

    def __iter__(self):
        return iter(self._names)

    def __len__(self):
        return len(self._names)

    def __repr__(self):
        return f"{{{', '.join(f'{k!r}: diffrax.{v}' for k, v in self._names.items())}}}"


ADAPTIVE_SOLVERS: Mapping[str, type] = _DiffraxSolvers()

SOLVERS: tuple[str, ...] = tuple(FIXED_SOLVERS) + tuple(ADAPTIVE_SOLVERS)


def get_solver(name: str) -> AbstractFixedSolver | str:
    """The fixed-step solver object for `name`, or the name itself for an adaptive one."""
    if isinstance(name, AbstractFixedSolver):
        return name
    key = name.strip().lower() if isinstance(name, str) else name
    if key in FIXED_SOLVERS:
        return FIXED_SOLVERS[key]
    if key in ADAPTIVE_SOLVERS:
        return key
    raise ValueError(
        f"`solver` must be one of {', '.join(SOLVERS)}; got {name!r}. Fixed-step: "
        f"{', '.join(FIXED_SOLVERS)}; adaptive (diffrax): {', '.join(ADAPTIVE_SOLVERS)}."
    )
