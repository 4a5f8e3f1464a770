"""`BatchField`: a batch of skew fields with the form and the activation chosen per member.

A sweep compiles one program per (solver, dimension) and lays trajectories of every form
and activation side by side in it: wide chunks run at the loop's throughput instead of its
per-iteration overhead, and a handful of programs compile instead of one per (form,
activation). Each member computes exactly what `PreActivation` / `PostActivation` compute
for it (selects, no blending), so its numbers are those of its own field.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from .._activation import Activation
from .._field import AbstractField, matvec, rowsum, sqnorm


class BatchField(AbstractField):
    """$\\dot x = \\sigma_b(Ax)$ (members with `pre`) or $A\\sigma_b(x)$ (the others), with
    $\\sigma_b$ = `activations[code[b]]`; A shared `(n, n)` or per member `(n, n, B)`."""

    A: Float[Array, "n n *B"]
    pre: Bool[Array, " B"]
    code: Int[Array, " B"]
    activations: tuple[Activation, ...] = eqx.field(static=True)
    forms: tuple[str, ...] = eqx.field(static=True)

    def _act(self, method: str, Z):
        """`activations[code].method(Z)` per member (column) of `Z` `(n, B)`."""
        out = getattr(self.activations[0], method)(Z)
        for i, act in enumerate(self.activations[1:], 1):
            out = jnp.where((self.code == i)[None, :], getattr(act, method)(Z), out)
        return out

    def _mixed(self) -> bool:
        return len(self.forms) > 1

    def rhs(self, X, t=0.0, args=None):
        if not self._mixed():
            if self.forms[0] == "pre":
                return self._act("fn", matvec(self.A, X))
            return matvec(self.A, self._act("fn", X))
        pre = self.pre[None, :]
        V = matvec(self.A, jnp.where(pre, X, self._act("fn", X)))
        return jnp.where(pre, self._act("fn", V), V)

    def _pre_argument(self, X):
        """What sigma is applied to: Ax for pre members, x for post members."""
        if not self._mixed():
            return matvec(self.A, X) if self.forms[0] == "pre" else X
        return jnp.where(self.pre[None, :], matvec(self.A, X), X)

    def jacobian(self, X, t=0.0, args=None):
        D = self._act("derivative", self._pre_argument(X))
        A3 = self.A[:, :, None] if self.A.ndim == 2 else self.A
        J_pre = D[:, None, :] * A3  # diag(sigma'(Ax)) A
        J_post = A3 * D[None, :, :]  # A diag(sigma'(x))
        if not self._mixed():
            J = J_pre if self.forms[0] == "pre" else J_post
        else:
            J = jnp.where(self.pre[None, None, :], J_pre, J_post)
        return jnp.broadcast_to(J, (*J.shape[:2], X.shape[1]))

    @property
    def is_affine(self) -> bool:
        return all(a.is_linear for a in self.activations)

    def has_invariant(self) -> bool:
        return True

    def invariant(self, x):
        """Each member's own invariant (`PreActivation.invariant` / `PostActivation.
        invariant`) at states `(B, n)`."""
        X = x.T
        inv = rowsum(self._act("antiderivative", self._pre_argument(X)))
        lin = [i for i, a in enumerate(self.activations) if a.is_linear]
        if lin and "pre" in self.forms:  # linear pre members: 1/2 |x|^2, as PreActivation
            is_lin = self.pre & jnp.isin(self.code, jnp.asarray(lin))
            inv = jnp.where(is_lin, 0.5 * sqnorm(X), inv)
        return inv

    def uses_invariant(self):
        """Per member: growth measured on the invariant (odd activations) or on |x|^2."""
        odd = jnp.asarray([a.odd for a in self.activations])
        return odd[self.code]

    def member_spec(self, axis: str):
        """`PartitionSpec`s for a batch sharded over mesh axis `axis`: the per-member
        arrays are split with the batch, a shared A replicated."""
        from jax.sharding import PartitionSpec as P

        specs = jax.tree.map(lambda _: P(), eqx.filter(self, eqx.is_array))
        specs = eqx.tree_at(lambda f: (f.pre, f.code), specs, (P(axis), P(axis)))
        if self.A.ndim == 3:
            specs = eqx.tree_at(lambda f: f.A, specs, P(None, None, axis))
        return specs
