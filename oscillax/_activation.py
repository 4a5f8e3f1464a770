"""Activations that know their antiderivative, so motion invariants are exact.

Every `Activation` carries $\\sigma$ (`fn`), its antiderivative $\\Phi$ with $\\Phi(0) = 0$
(`antiderivative`), and the three properties that decide the dynamics: `odd`, `bounded`
and `continuous` (see THEORY: odd + bounded + continuous gives closed orbits and slow,
sub-exponential Euler drift).

The closed forms of $\\Phi$ are piecewise (a series near 0, an asymptotic form far out) for
accuracy, and autodiff through such branches is wrong at their seams: at a tie,
`min(a, 1)` passes half the gradient to each side (`jax.grad` of log cosh at x = 1 gave
0.38 instead of tanh 1 = 0.76). So every built-in $\\Phi$ carries a custom JVP whose
tangent is $\\sigma(x)\\,\\dot x$: $d\\Phi/dx = \\sigma(x)$ holds at every x, seams
included, in forward and reverse mode, and second derivatives are $\\sigma'$ by autodiff
of $\\sigma$ itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

_LOG2 = math.log(2.0)


def _antiderivative_of(fn: Callable) -> Callable:
    """Decorate a closed-form $\\Phi$ so that its derivative is exactly `fn`.

    The primal value is the decorated formula (its numerically stable branches untouched);
    the JVP is $(\\Phi(x), \\sigma(x)\\,\\dot x)$, so no branch seam of the formula can split
    or lose a gradient. Calling the wrapped $\\Phi$ inside the rule keeps higher-order
    derivatives consistent too: the derivative of the primal output is again $\\sigma$.
    """

    def decorate(phi: Callable) -> Callable:
        wrapped = jax.custom_jvp(phi)

        @wrapped.defjvp
        def _jvp(primals, tangents):
            (x,), (t,) = primals, tangents
            return wrapped(x), fn(x) * t

        return wrapped

    return decorate


@_antiderivative_of(jnp.tanh)
def _logcosh(x):
    # log cosh x = |x| + log1p(exp(-2|x|)) - log 2: no overflow for any finite x, but for
    # small |x| the terms cancel (x = 1e-4 in float32 came out 6x too large). There,
    # cosh x - 1 = 2 sinh^2(x/2) keeps full relative accuracy. min() keeps the unused
    # branch finite; derivatives come from the custom JVP (tanh), not from the branches.
    a = jnp.abs(x)
    s = jnp.sinh(0.5 * jnp.minimum(a, 1.0))
    small = jnp.log1p(2.0 * s * s)
    large = a + jnp.log1p(jnp.exp(-2.0 * a)) - _LOG2
    return jnp.where(a <= 1.0, small, large)


def _hardtanh(x):
    return jnp.clip(x, -1.0, 1.0)


@_antiderivative_of(_hardtanh)
def _hardtanh_anti(x):
    a = jnp.abs(x)
    return jnp.where(a <= 1.0, 0.5 * x * x, a - 0.5)


def _softsign(x):
    return x / (1.0 + jnp.abs(x))


# 1 / (2j + 3), j = 0..15: Taylor coefficients of (atanh z - z) / z^3 in z^2.
_ATANH_TAIL = tuple(1.0 / (2 * j + 3) for j in range(16))


@_antiderivative_of(_softsign)
def _softsign_anti(x):
    # |x| - log1p|x| cancels for small |x|. With z = a / (2 + a), log1p(a) = 2 atanh z, so
    # a - log1p(a) = a^2 / (2 + a) - 2 (atanh z - z), and the tail is a short series for
    # a <= 1 (z <= 1/3); both terms are then accurate relative to the result.
    a = jnp.abs(x)
    b = jnp.minimum(a, 1.0)
    z = b / (2.0 + b)
    z2 = z * z
    tail = jnp.zeros_like(z)
    for c in reversed(_ATANH_TAIL):
        tail = tail * z2 + c
    small = b * b / (2.0 + b) - 2.0 * z * z2 * tail
    return jnp.where(a <= 1.0, small, a - jnp.log1p(a))


@_antiderivative_of(jax.scipy.special.erf)
def _erf_anti(x):
    # d/dx [x erf x + exp(-x^2)/sqrt(pi)] = erf x; subtract the value at 0.
    return x * jax.scipy.special.erf(x) + jnp.expm1(-x * x) / math.sqrt(math.pi)


def _relu(x):
    return jnp.maximum(x, 0.0)


@_antiderivative_of(_relu)
def _relu_anti(x):
    p = jnp.maximum(x, 0.0)
    return 0.5 * p * p


LEAKY_SLOPE = 0.01


def _leaky_relu(x):
    return jnp.where(x >= 0, x, LEAKY_SLOPE * x)


@_antiderivative_of(_leaky_relu)
def _leaky_relu_anti(x):
    return jnp.where(x >= 0, 0.5 * x * x, 0.5 * LEAKY_SLOPE * x * x)


@_antiderivative_of(jax.nn.sigmoid)
def _sigmoid_anti(x):
    # softplus(x) - log 2 = log1p(expm1(x) / 2): accurate near 0 (where the difference of
    # the first form cancels) and for all x <= 1; logaddexp for large x, where expm1 would
    # overflow. min() keeps the unused branch finite; the derivative is the custom JVP's.
    small = jnp.log1p(0.5 * jnp.expm1(jnp.minimum(x, 1.0)))
    return jnp.where(x <= 1.0, small, jnp.logaddexp(x, 0.0) - _LOG2)


def _rectified_tanh(x):
    return jnp.maximum(jnp.tanh(x), 0.0)


@_antiderivative_of(_rectified_tanh)
def _rectified_tanh_anti(x):
    return _logcosh(jnp.maximum(x, 0.0))


def _identity(x):
    return x


@_antiderivative_of(_identity)
def _square_half(x):
    return 0.5 * x * x


@_antiderivative_of(jnp.sin)
def _sin_anti(x):
    # 1 - cos x = 2 sin^2(x/2): no cancellation near 0.
    s = jnp.sin(0.5 * x)
    return 2.0 * s * s


class Activation(eqx.Module):
    """An elementwise nonlinearity with its antiderivative and structural flags.

    **Fields:**
    - `name`: label used in tables and figures.
    - `fn`: $\\sigma$, elementwise and jax-traceable.
    - `antiderivative`: $\\Phi(x) = \\int_0^x \\sigma$, so $\\Phi(0) = 0$.
      For the built-ins its derivative (`jax.grad`, `jax.jvp`) is exactly `fn`, at every x.
    - `odd`, `bounded`, `continuous`: properties of $\\sigma$.
    - `exact`: True when $\\Phi$ is closed-form, False when it is computed by quadrature.
    """

    name: str = eqx.field(static=True)
    fn: Callable = eqx.field(static=True)
    antiderivative: Callable = eqx.field(static=True)
    odd: bool = eqx.field(static=True)
    bounded: bool = eqx.field(static=True)
    continuous: bool = eqx.field(static=True)
    exact: bool = eqx.field(static=True, default=True)

    def __call__(self, x):
        return self.fn(x)

    def derivative(self, x):
        """$\\sigma'(x)$ elementwise, by forward-mode differentiation."""
        x = jnp.asarray(x)
        return jax.jvp(self.fn, (x,), (jnp.ones_like(x),))[1]

    @property
    def is_linear(self) -> bool:
        return self.name == "identity"


_BUILTIN: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("identity", _identity, _square_half, odd=True, bounded=False, continuous=True),
        Activation("tanh", jnp.tanh, _logcosh, odd=True, bounded=True, continuous=True),
        Activation("hardtanh", _hardtanh, _hardtanh_anti, odd=True, bounded=True, continuous=True),
        Activation("softsign", _softsign, _softsign_anti, odd=True, bounded=True, continuous=True),
        Activation("sin", jnp.sin, _sin_anti, odd=True, bounded=True, continuous=True),
        Activation("erf", jax.scipy.special.erf, _erf_anti, odd=True, bounded=True,
                   continuous=True),
        Activation("relu", _relu, _relu_anti, odd=False, bounded=False, continuous=True),
        Activation("leaky_relu", _leaky_relu, _leaky_relu_anti, odd=False, bounded=False,
                   continuous=True),
        Activation("sigmoid", jax.nn.sigmoid, _sigmoid_anti, odd=False, bounded=True,
                   continuous=True),
        Activation("rectified_tanh", _rectified_tanh, _rectified_tanh_anti, odd=False,
                   bounded=True, continuous=True),
    )
}

ACTIVATIONS: tuple[str, ...] = tuple(_BUILTIN)

# Composite Gauss-Legendre on [0, 1]: 16 panels x 8 nodes, exact for piecewise polynomials
# of degree 15 per panel; used for user activations without a closed-form antiderivative.
_GL_PANELS = 16
_gl_t, _gl_w = np.polynomial.legendre.leggauss(8)
_GL_NODES = ((np.arange(_GL_PANELS)[:, None] + 0.5 * (_gl_t[None, :] + 1.0)) / _GL_PANELS).ravel()
_GL_WEIGHTS = np.tile(0.5 * _gl_w, _GL_PANELS) / _GL_PANELS


def _quadrature_antiderivative(fn: Callable) -> Callable:
    def antiderivative(x):
        x = jnp.asarray(x)
        if not jnp.issubdtype(x.dtype, jnp.floating):
            x = x.astype(jnp.result_type(float))  # integer x would truncate the nodes to 0
        # explicit leading axes: no implicit rank promotion (strict-mode users raise on it)
        lead = (1,) * x.ndim
        nodes = jnp.asarray(_GL_NODES, x.dtype).reshape(lead + (-1,))
        weights = jnp.asarray(_GL_WEIGHTS, x.dtype).reshape(lead + (-1,))
        vals = fn(x[..., None] * nodes)  # (..., q)
        return x * jnp.sum(vals * weights, axis=-1)

    return antiderivative


def _check_flags(fn: Callable) -> tuple[bool, bool, bool]:
    """Numerically decide whether a user `fn` is odd, bounded and continuous."""
    grid = np.concatenate([np.linspace(-10.0, 10.0, 2001), [-1e3, -1e2, 1e2, 1e3]])
    g = jnp.asarray(grid, jnp.float32)
    f_pos = np.asarray(fn(g), np.float64)
    f_neg = np.asarray(fn(-g), np.float64)
    if f_pos.shape != grid.shape or not np.all(np.isfinite(f_pos)):
        raise ValueError(
            "`activation` must be an elementwise function returning finite values of the "
            f"same shape as its input; on a test grid it returned shape {f_pos.shape} "
            "or non-finite values."
        )
    scale = 1.0 + np.abs(f_pos)
    odd = bool(np.all(np.abs(f_pos + f_neg) <= 1e-5 * scale))
    far = jnp.asarray([-1e6, -1e3, 1e3, 1e6], jnp.float32)
    f_far = np.abs(np.asarray(fn(far), np.float64))
    bounded = bool(
        np.all(np.isfinite(f_far))
        and f_far[0] <= 2.0 * f_far[1] + 1e-3
        and f_far[3] <= 2.0 * f_far[2] + 1e-3
    )
    fine = jnp.asarray(np.linspace(-5.0, 5.0, 100_001), jnp.float32)
    jumps = np.abs(np.diff(np.asarray(fn(fine), np.float64)))
    continuous = bool(np.max(jumps) < 1e-2)
    return odd, bounded, continuous


_USER_CACHE: dict[Callable, Activation] = {}


def get_activation(activation: str | Callable | Activation) -> Activation:
    """Look up a built-in activation by name, or wrap a user function.

    **Arguments:**
    - `activation`: one of `ACTIVATIONS` (`"identity"`, `"tanh"`, `"hardtanh"`,
      `"softsign"`, `"sin"`, `"erf"`, `"relu"`, `"leaky_relu"`, `"sigmoid"`,
      `"rectified_tanh"`), an `Activation`, or any jax-traceable elementwise function. A
      function gets a quadrature antiderivative (composite Gauss-Legendre, 128 nodes) and
      numerically checked flags.

    **Returns:** an `Activation`.

    ```python
    act = ox.get_activation("tanh")
    act.antiderivative(1e4)  # log cosh, no overflow
    ```
    """
    if isinstance(activation, Activation):
        return activation
    if isinstance(activation, str):
        key = activation.strip().lower().replace("-", "_")
        try:
            return _BUILTIN[key]
        except KeyError:
            raise ValueError(
                f"`activation` must be one of {', '.join(ACTIVATIONS)} or a callable; "
                f"got {activation!r}."
            ) from None
    if callable(activation):
        if activation in _USER_CACHE:
            return _USER_CACHE[activation]
        odd, bounded, continuous = _check_flags(activation)
        name = getattr(activation, "__name__", "custom")
        act = Activation(
            name if name != "<lambda>" else "custom",
            activation,
            _quadrature_antiderivative(activation),
            odd=odd,
            bounded=bounded,
            continuous=continuous,
            exact=False,
        )
        _USER_CACHE[activation] = act
        return act
    raise ValueError(
        f"`activation` must be a name ({', '.join(ACTIVATIONS)}), an Activation or a "
        f"callable; got {type(activation).__name__} {activation!r}."
    )
