"""`BatchField`: a batch of skew fields with the form and the activation chosen per member.

A sweep compiles one program per (solver, dimension) and lays trajectories of every form
and activation side by side in it: wide chunks run at the loop's throughput instead of its
per-iteration overhead, and a handful of programs compile instead of one per (form,
activation). The batch is cut into static *segments* of `width` members, one per (form,
activation) of `segments`, repeating every `len(segments) * width` members; each
activation is evaluated on its own segments only, so a member costs what its own field
costs, and computes exactly what `PreActivation` / `PostActivation` compute for it.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._activation import Activation
from .._field import AbstractField, matvec, rowsum, sqnorm


class BatchField(AbstractField):
    """$\\dot x = \\sigma_s(Ax)$ (pre segments) or $A\\sigma_s(x)$ (post segments);
    A shared `(n, n)` or per member `(n, n, B)`; `segments[s] = (form, activation index)`."""

    A: Float[Array, "n n *B"]
    activations: tuple[Activation, ...] = eqx.field(static=True)
    segments: tuple[tuple[str, int], ...] = eqx.field(static=True)
    width: int = eqx.field(static=True)

    def _per_segment(self, Z, fn):
        """`fn(segment, Z_segment)` on each segment of `Z` `(..., B)` (B a multiple of
        `len(segments) * width`), reassembled in place."""
        S, w = len(self.segments), self.width
        if S == 1:
            return fn(self.segments[0], Z)
        lead, B = Z.shape[:-1], Z.shape[-1]
        Zr = Z.reshape(*lead, B // (S * w), S, w)
        parts = [fn(seg, Zr[..., i, :]) for i, seg in enumerate(self.segments)]
        out = jnp.stack(parts, axis=-2)  # (..., B / (S w), S, w); fn may reduce leading axes
        return out.reshape(*out.shape[:-3], B)

    def _forms(self) -> set[str]:
        return {f for f, _ in self.segments}

    def _pick(self, P, Q):
        """P on the members of pre segments, Q on those of post ones (`(..., B)`)."""
        forms = self._forms()
        if forms == {"pre"}:
            return P
        if forms == {"post"}:
            return Q
        B = P.shape[-1]
        one = np.repeat([f == "pre" for f, _ in self.segments], self.width)
        return jnp.where(np.tile(one, B // one.size), P, Q)

    def _sigma(self, Z, method="fn", only=None):
        """The segment's activation `method` on its members; `only` ("pre"/"post"): other
        forms' segments pass Z through unchanged."""
        def fn(seg, Zs):
            form, a = seg
            if only is not None and form != only:
                return Zs
            return getattr(self.activations[a], method)(Zs)

        return self._per_segment(Z, fn)

    def rhs(self, X, t=0.0, args=None):
        forms = self._forms()
        if forms == {"pre"}:
            return self._sigma(matvec(self.A, X))
        if forms == {"post"}:
            return matvec(self.A, self._sigma(X))
        V = matvec(self.A, self._sigma(X, only="post"))  # A x (pre), A sigma(x) (post)
        return self._sigma(V, only="pre")

    def _sigma_argument(self, X):
        """What sigma is applied to: Ax for pre members, x for post members."""
        if self._forms() == {"post"}:
            return X
        return self._pick(matvec(self.A, X), X)

    def _jacobian_from(self, D, B: int):
        """J from sigma' at the argument: diag(D) A (pre), A diag(D) (post)."""
        A3 = self.A[:, :, None] if self.A.ndim == 2 else self.A
        shape, forms = (*A3.shape[:2], B), self._forms()
        pre = jnp.broadcast_to(D[:, None, :] * A3, shape) if "pre" in forms else None
        post = jnp.broadcast_to(A3 * D[None, :, :], shape) if "post" in forms else None
        return self._pick(pre, post)

    def jacobian(self, X, t=0.0, args=None):
        D = self._sigma(self._sigma_argument(X), "derivative")
        return self._jacobian_from(D, X.shape[1])

    def rhs_and_jacobian(self, X, t=0.0, args=None):
        """Both from one pass over the segments: sigma and sigma' at the same argument."""
        W = self._sigma_argument(X)

        def both(seg, Ws):
            act = self.activations[seg[1]]
            return jnp.stack([act.fn(Ws), act.derivative(Ws)])

        S, D = self._per_segment(W, both)
        F = self._pick(S, matvec(self.A, S) if "post" in self._forms() else None)
        return F, self._jacobian_from(D, X.shape[1])

    @property
    def is_affine(self) -> bool:
        return all(self.activations[a].is_linear for _, a in self.segments)

    def has_invariant(self) -> bool:
        return True

    def invariant(self, x):
        """Each member's own invariant (`PreActivation.invariant` / `PostActivation.
        invariant`) at states `(B, n)`."""
        X = x.T

        def fn(seg, Zs):
            form, a = seg
            act = self.activations[a]
            return rowsum(act.antiderivative(Zs))

        inv = self._per_segment(self._sigma_argument(X), fn)
        # linear pre members: 1/2 |x|^2, as PreActivation
        lin = [(f == "pre" and self.activations[a].is_linear) for f, a in self.segments]
        if any(lin):
            mask = np.tile(np.repeat(lin, self.width), X.shape[1] // (len(lin) * self.width))
            inv = jnp.where(mask, 0.5 * sqnorm(X), inv)
        return inv

    def uses_invariant(self, B: int):
        """(B,) numpy bool: growth measured on the invariant (odd activations) or |x|^2."""
        one = np.repeat([self.activations[a].odd for _, a in self.segments], self.width)
        return np.tile(one, B // one.size)

    def member_spec(self, axis: str):
        """`PartitionSpec`s for a batch sharded over mesh axis `axis` (whole chunks per
        device): a per-member A is split with the batch, a shared one replicated."""
        import jax
        from jax.sharding import PartitionSpec as P

        specs = jax.tree.map(lambda _: P(), eqx.filter(self, eqx.is_array))
        if self.A.ndim == 3:
            specs = eqx.tree_at(lambda f: f.A, specs, P(None, None, axis))
        return specs
