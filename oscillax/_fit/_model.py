"""`SkewGenerator`: the autonomous skew-symmetric network with a linear readout that `fit`
learns."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._field import FORMS, AbstractSkewField


class SkewGenerator(eqx.Module):
    """An autonomous skew-symmetric RNN with a linear readout, as `fit` learns it.

    $\\dot x = A\\sigma(x) + b$ (`form="post"`) or $\\sigma(Ax + b)$ (`form="pre"`), with
    $A = W - W^\\top$, $x(0) = x_0$ and output $y = C x + d$. Its time is dimensionless;
    `FitResult` maps it to the data's time axis.

    **Fields:** `W` `(n, n)`, `C` `(p, n)`, `d` `(p,)`, `x0` `(n,)`, `bias` `(n,)` or None,
    and the static settings `form` and `activation` (a built-in name).
    """

    W: Float[Array, "n n"]
    C: Float[Array, "p n"]
    d: Float[Array, " p"]
    x0: Float[Array, " n"]
    bias: Float[Array, " n"] | None
    form: str = eqx.field(static=True)
    activation: str = eqx.field(static=True)

    @property
    def A(self) -> Float[Array, "n n"]:
        return self.W - jnp.swapaxes(self.W, -1, -2)

    @property
    def n(self) -> int:
        return self.W.shape[-1]

    def field(self, dense: bool = False) -> AbstractSkewField:
        """The vector field as an `ox.PostActivation` / `ox.PreActivation` (`dense`: see
        the fields)."""
        return FORMS[self.form](self.A, self.activation, self.bias, check_skew=False,
                                dense=dense)

    def readout(self, xs):
        """$y = C x + d$ for states `(..., n)`."""
        return xs @ self.C.T + self.d[None, :] if xs.ndim == 2 else xs @ self.C.T + self.d
