"""Skew-symmetric vector fields as equinox modules (usable directly as diffrax ODETerms).

- `PreActivation`:  $\\dot x = \\sigma(A x + B u(t) + b) - \\gamma x$
- `PostActivation`: $\\dot x = A \\sigma(x) + B u(t) + b$

with $A^\\top = -A$. Identity $\\sigma$ gives the linear system in either form.
"""

from __future__ import annotations

import abc
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ._activation import Activation, get_activation
from ._skew import skew_asymmetry

# Up to this dimension A @ X is an unrolled sum of elementwise products. For the batch-minor
# layout (n, B) that is both fast (no small-matmul overhead) and batch-independent bit for bit.
SMALL_N = 32

SKEW_TOL = 1e-5


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def matvec(A, X, dense: bool = False):
    """$A X$ for X laid out `(n, B)`; A is shared `(n, n)` or per trajectory `(n, n, B)`.
    `dense`: always one matrix product (fewest operations for a few states, e.g. a fit's
    single state per restart, forward and backward)."""
    n = X.shape[0]
    if n <= SMALL_N and not dense:
        if A.ndim == 2:
            out = A[:, 0:1] * X[0:1, :]
            for j in range(1, n):
                out = out + A[:, j : j + 1] * X[j : j + 1, :]
        else:
            out = A[:, 0, :] * X[0:1, :]
            for j in range(1, n):
                out = out + A[:, j, :] * X[j : j + 1, :]
        return out
    if A.ndim == 2:
        return A @ X
    return jnp.einsum("ijb,jb->ib", A, X)


def rowsum(Y):
    """$\\sum_i Y_{ib}$ for Y laid out `(n, B)`: an unrolled sum of rows for small n (it
    fuses into the surrounding elementwise loop; see `sqnorm`)."""
    n = Y.shape[0]
    if n > SMALL_N:
        return jnp.sum(Y, axis=0)
    out = Y[0]
    for j in range(1, n):
        out = out + Y[j]
    return out


def sqnorm(X):
    """$\\|x_b\\|^2$ for X laid out `(n, B)`: an unrolled sum of rows for small n.

    `jnp.sum(X * X, axis=0)` compiles to a separate reduction kernel, which costs as much
    as an n = 2 Euler step; a sum of rows fuses into the step's own loop.
    """
    return rowsum(X * X)


def _check_matrix(name: str, M, *, check_skew: bool) -> None:
    if M.ndim != 2 or M.shape[0] != M.shape[1]:
        raise ValueError(
            f"`{name}` must be a square matrix (n, n); got shape {tuple(M.shape)}. "
            "Build one with ox.skew(W), ox.random_skew(key, n) or ox.skew_from_frequencies."
        )
    if not jnp.issubdtype(M.dtype, jnp.floating):
        raise ValueError(
            f"`{name}` must have a floating dtype; got {M.dtype}. Pass a real matrix "
            "(float32 or float64)."
        )
    if _is_concrete(M):
        Mn = np.asarray(M)
        if not np.all(np.isfinite(Mn)):
            raise ValueError(
                f"`{name}` contains NaN or inf ({int(np.sum(~np.isfinite(Mn)))} entries); "
                "pass a finite matrix."
            )
        if check_skew:
            asym = skew_asymmetry(Mn)
            if asym > SKEW_TOL:
                raise ValueError(
                    f"`{name}` must be skew-symmetric (A.T == -A); measured asymmetry "
                    f"max|A + A.T| / max(max|A|, 1) = {asym:.3g} > {SKEW_TOL:g}. Use "
                    f"ox.skew(W) to build A = W - W.T, or pass check_skew=False to use a "
                    "non-skew matrix on purpose."
                )


class AbstractField(eqx.Module):
    """What the engine, the solvers and the analyses need of a vector field.

    `rhs(X, t, args)` is $\\dot X$ for states laid out `(n, B)` (batch on the minor axis);
    `jacobian(X, t, args)` is $\\partial f / \\partial x$ per member, `(n, n, B)`.
    Solvers and analyses use only these, never the field's class.
    """

    @abc.abstractmethod
    def rhs(self, X, t=0.0, args=None):
        """$\\dot X$ for `X` of shape `(n, B)`."""

    @abc.abstractmethod
    def jacobian(self, X, t=0.0, args=None):
        """$J_{ij} = \\partial f_i / \\partial x_j$ at each member of `X` `(n, B)`: `(n, n, B)`."""

    def rhs_and_jacobian(self, X, t=0.0, args=None):
        """`(rhs(X), jacobian(X))` (a field may compute them together more cheaply)."""
        return self.rhs(X, t, args), self.jacobian(X, t, args)

    @property
    def is_affine(self) -> bool:
        """True when $f$ is affine in x (Newton's method is then exact in one step)."""
        return False

    def __call__(self, t, x, args=None):
        """$\\dot x$ for `x` of shape `(n,)` or `(..., n)` (diffrax ODETerm signature)."""
        x = jnp.asarray(x)
        X = x.reshape(-1, x.shape[-1]).T
        return self.rhs(X, t, args).T.reshape(x.shape)


class VectorField(AbstractField):
    """Any vector field `f(t, x, args) -> dx/dt` on one state `(n,)` (diffrax's
    convention), lifted to the `(n, B)` layout (vmap) with its Jacobian by forward-mode
    autodiff, so fixed-step solvers and analyses can run on it.

    ```python
    lorenz = ox.VectorField(lambda t, x, a: jnp.stack([10 * (x[1] - x[0]),
                            x[0] * (28 - x[2]) - x[1], x[0] * x[1] - 8 / 3 * x[2]]))
    ```
    """

    fn: Callable = eqx.field(static=True)

    def __init__(self, fn: Callable):
        if not callable(fn):
            raise ValueError(
                f"`fn` must be a function f(t, x, args) -> dx/dt; got {type(fn).__name__}."
            )
        self.fn = fn

    def rhs(self, X, t=0.0, args=None):
        t = jnp.asarray(t)
        if t.ndim == 0:
            return jax.vmap(lambda x: self.fn(t, x, args), in_axes=1, out_axes=1)(X)
        t = jnp.broadcast_to(jnp.reshape(t, (-1,)), X.shape[1:])
        return jax.vmap(lambda ti, x: self.fn(ti, x, args), in_axes=(0, 1), out_axes=1)(t, X)

    def jacobian(self, X, t=0.0, args=None):
        t = jnp.broadcast_to(jnp.reshape(jnp.asarray(t), (-1,)), X.shape[1:])
        jac = jax.vmap(lambda ti, x: jax.jacfwd(lambda y: self.fn(ti, y, args))(x),
                       in_axes=(0, 1), out_axes=2)
        return jac(t, X)


class AbstractSkewField(AbstractField):
    """Common parts of the two forms. Subclasses define `_rhs_with_input`,
    `_jacobian_with_input`, `has_invariant` and `invariant`."""

    A: Float[Array, "n n"]
    activation: Activation
    bias: Float[Array, " n"] | None
    input_matrix: Float[Array, "n m"] | None
    drive: Callable | None = eqx.field(static=True)
    dense: bool = eqx.field(static=True)

    @property
    def n(self) -> int:
        return self.A.shape[-1]

    @property
    def dtype(self):
        return self.A.dtype

    @property
    def is_affine(self) -> bool:
        return self.activation.is_linear

    def member_spec(self, axis: str):
        """`PartitionSpec`s of this field's arrays for a batch sharded over mesh axis
        `axis`: a per-trajectory A `(n, n, B)` is split with the batch, the rest
        replicated."""
        from jax.sharding import PartitionSpec as P

        specs = jax.tree.map(lambda _: P(), eqx.filter(self, eqx.is_array))
        if self.A.ndim == 3:
            specs = eqx.tree_at(lambda f: f.A, specs, P(None, None, axis))
        return specs

    def _input(self, t, args):
        """Contribution $B u(t)$ as an `(n,)` vector, or None without a drive."""
        if self.input_matrix is None:
            return None
        u = self.drive(t) if self.drive is not None else args
        if u is None:
            raise ValueError(
                "this field has an `input_matrix` but no input: pass `drive=` (a function "
                "of t) when building it, or the input u as `args`."
            )
        return self.input_matrix @ jnp.asarray(u, self.A.dtype)

    @abc.abstractmethod
    def _rhs_with_input(self, X, inp):
        """$\\dot X$ with the input term `inp` (`(n, 1)` or None) already evaluated."""

    @abc.abstractmethod
    def _jacobian_with_input(self, X, inp):
        """`jacobian` with the input term already evaluated."""

    def rhs(self, X, t=0.0, args=None):
        """$\\dot X$ for states laid out `(n, B)` (batch on the minor axis)."""
        inp = self._input(t, args)
        return self._rhs_with_input(X, None if inp is None else inp[:, None])

    def jacobian(self, X, t=0.0, args=None):
        """$\\partial \\dot x / \\partial x$ per member, `(n, n, B)`; A may be shared
        `(n, n)` or per trajectory `(n, n, B)`."""
        inp = self._input(t, args)
        return self._jacobian_with_input(X, None if inp is None else inp[:, None])

    @abc.abstractmethod
    def has_invariant(self) -> bool:
        """Whether `invariant` is a motion invariant of this field."""

    @abc.abstractmethod
    def invariant(self, x):
        """The motion invariant at states `(..., n)`."""

    def cell(self, x, u, dt):
        """One forward-Euler step with input `u`: the field as a discrete RNN cell.

        **Arguments:** `x` `(n,)` or `(B, n)`, `u` `(m,)` or `(B, m)`, step `dt`.
        """
        if self.input_matrix is None:
            raise ValueError("`cell` needs a field built with `input_matrix=`; this one has none.")
        x = jnp.asarray(x)
        X = x.reshape(-1, x.shape[-1]).T
        U = jnp.asarray(u, self.A.dtype).reshape(-1, self.input_matrix.shape[1]).T
        dX = self._rhs_with_input(X, self.input_matrix @ U)
        return (X + dt * dX).T.reshape(x.shape)


def _common_init(self, A, activation, bias, input_matrix, drive, check_skew, dense=False):
    A = jnp.asarray(A)
    if jnp.issubdtype(A.dtype, jnp.integer) or jnp.issubdtype(A.dtype, jnp.bool_):
        A = A.astype(jnp.result_type(float))  # (complex is rejected below, not truncated)
    _check_matrix("A", A, check_skew=check_skew)
    n = A.shape[0]
    if bias is not None:
        bias = jnp.asarray(bias, A.dtype)
        if bias.shape != (n,):
            raise ValueError(f"`bias` must have shape ({n},) to match A; got {tuple(bias.shape)}.")
        if _is_concrete(bias) and not np.all(np.isfinite(np.asarray(bias))):
            raise ValueError("`bias` contains NaN or inf; pass finite values.")
    if input_matrix is not None:
        input_matrix = jnp.asarray(input_matrix, A.dtype)
        if input_matrix.ndim != 2 or input_matrix.shape[0] != n:
            raise ValueError(
                f"`input_matrix` must have shape ({n}, m); got {tuple(input_matrix.shape)}."
            )
    if drive is not None and input_matrix is None:
        raise ValueError("`drive` needs an `input_matrix` (n, m) that maps u(t) into the state.")
    if drive is not None and not callable(drive):
        raise ValueError(f"`drive` must be a function of t; got {type(drive).__name__}.")
    self.A = A
    self.activation = get_activation(activation)
    self.bias = bias
    self.input_matrix = input_matrix
    self.drive = drive
    if not isinstance(dense, bool):
        raise ValueError(f"`dense` must be True or False; got {dense!r}.")
    self.dense = dense


class PreActivation(AbstractSkewField):
    """Pre-activation (AntisymmetricRNN-style) field $\\dot x = \\sigma(Ax + Bu + b) - \\gamma x$.

    **Arguments:**
    - `A`: skew-symmetric `(n, n)`; checked unless `check_skew=False`.
    - `activation`: a name from `ox.ACTIVATIONS`, an `Activation`, or a function.
    - `bias`: optional `(n,)` bias $b$.
    - `gamma`: diffusion $\\gamma \\ge 0$ (AntisymmetricRNN's damping).
    - `input_matrix`, `drive`: optional external input $B u(t)$, `B` of shape `(n, m)` and
      `drive(t) -> (m,)` (or pass u as diffrax `args`).
    - `dense`: compute $Ax$ as one matrix product even for small n (default: unrolled
      rows, fastest for a wide batch; a product is fastest for one or a few states).

    The motion invariant (for $\\gamma = 0$, no input) is $I(x) = \\sum_i \\Phi((Ax + b)_i)$,
    because $y = Ax + b$ obeys $\\dot y = A\\sigma(y)$.

    ```python
    field = ox.PreActivation(ox.skew_from_frequencies([1.0]), "tanh")
    traj = ox.simulate(field, jnp.array([1.0, 0.0]), dt=0.01, t1=10.0)
    ```
    """

    gamma: float | Array
    # Decided once from the value passed in: under jax.jit a Python-float gamma becomes a
    # tracer, and the field must still know it has an invariant (and skip the zero term).
    gamma_is_zero: bool = eqx.field(static=True)

    def __init__(
        self,
        A,
        activation="tanh",
        bias=None,
        gamma=0.0,
        *,
        input_matrix=None,
        drive=None,
        check_skew: bool = True,
        dense: bool = False,
    ):
        _common_init(self, A, activation, bias, input_matrix, drive, check_skew, dense)
        if _is_concrete(gamma):
            g = np.asarray(gamma)
            if g.shape != () or not np.isfinite(g) or g < 0:
                raise ValueError(
                    f"`gamma` must be a finite scalar >= 0 (the diffusion term); got {gamma!r}."
                )
            gamma = float(g)
        self.gamma = gamma
        self.gamma_is_zero = isinstance(gamma, float) and gamma == 0.0

    def _argument(self, X, inp):
        """What sigma is applied to: $z = Ax + b + Bu$."""
        Z = matvec(self.A, X, self.dense)
        if self.bias is not None:
            Z = Z + self.bias[:, None]
        if inp is not None:
            Z = Z + inp
        return Z

    def _rhs_with_input(self, X, inp):
        out = self.activation.fn(self._argument(X, inp))
        if not self.gamma_is_zero:
            out = out - self.gamma * X
        return out

    def _jacobian_with_input(self, X, inp):
        # J = diag(sigma'(z)) A - gamma I, z = Ax + b + Bu
        Z = self._argument(X, inp)
        A3 = self.A[:, :, None] if self.A.ndim == 2 else self.A
        J = self.activation.derivative(Z)[:, None, :] * A3
        if not self.gamma_is_zero:
            J = J - self.gamma * jnp.eye(X.shape[0], dtype=X.dtype)[:, :, None]
        return jnp.broadcast_to(J, (*J.shape[:2], X.shape[1]))

    def has_invariant(self) -> bool:
        return self.input_matrix is None and self.gamma_is_zero

    def invariant(self, x):
        """$I(x) = \\sum_i \\Phi((Ax + b)_i)$ for `x` of shape `(..., n)` (identity and b = 0:
        $\\tfrac12\\|x\\|^2$)."""
        if not self.has_invariant():
            raise ValueError(
                "this PreActivation field has no motion invariant: one exists only for "
                f"gamma = 0 and no external input (got gamma={self.gamma!r}, input "
                f"{'set' if self.input_matrix is not None else 'none'}). Check "
                "`field.has_invariant()` first, or build the field without them."
            )
        x = jnp.asarray(x)
        if self.activation.is_linear and self.bias is None:
            return 0.5 * jnp.sum(x * x, axis=-1)
        X = x.reshape(-1, x.shape[-1]).T
        Z = matvec(self.A, X, self.dense)
        if self.bias is not None:
            Z = Z + self.bias[:, None]
        return rowsum(self.activation.antiderivative(Z)).reshape(x.shape[:-1])


class PostActivation(AbstractSkewField):
    """Post-activation (Hopfield-style) field $\\dot x = A\\sigma(x) + Bu + b$.

    **Arguments:** as `PreActivation`, without `gamma`.

    The motion invariant (for $b = 0$, no input) is $V(x) = \\sum_i \\Phi(x_i)$, because
    $\\dot V = \\sigma(x)^\\top A \\sigma(x) = 0$.
    """

    def __init__(
        self,
        A,
        activation="tanh",
        bias=None,
        *,
        input_matrix=None,
        drive=None,
        check_skew: bool = True,
        dense: bool = False,
    ):
        _common_init(self, A, activation, bias, input_matrix, drive, check_skew, dense)

    def _rhs_with_input(self, X, inp):
        out = matvec(self.A, self.activation.fn(X), self.dense)
        if self.bias is not None:
            out = out + self.bias[:, None]
        if inp is not None:
            out = out + inp
        return out

    def _jacobian_with_input(self, X, inp):
        # J = A diag(sigma'(x)); the bias and the input do not depend on x
        A3 = self.A[:, :, None] if self.A.ndim == 2 else self.A
        return A3 * self.activation.derivative(X)[None, :, :]

    def has_invariant(self) -> bool:
        return self.input_matrix is None and self.bias is None

    def invariant(self, x):
        """$V(x) = \\sum_i \\Phi(x_i)$ for `x` of shape `(..., n)`."""
        if not self.has_invariant():
            raise ValueError(
                "this PostActivation field has no motion invariant: one exists only with "
                f"no bias and no external input (got bias "
                f"{'set' if self.bias is not None else 'none'}, input "
                f"{'set' if self.input_matrix is not None else 'none'}). Check "
                "`field.has_invariant()` first, or build the field without them."
            )
        x = jnp.asarray(x)
        return jnp.sum(self.activation.antiderivative(x), axis=-1)


FORMS: dict[str, type[AbstractSkewField]] = {"pre": PreActivation, "post": PostActivation}
"""The two forms by name, in the order sweeps list them."""


def get_form(name: str) -> type[AbstractSkewField]:
    """The field class of a form name (`"pre"` or `"post"`)."""
    try:
        return FORMS[name]
    except (KeyError, TypeError):
        raise ValueError(f"`form` must be one of {', '.join(map(repr, FORMS))}; got {name!r}.")
