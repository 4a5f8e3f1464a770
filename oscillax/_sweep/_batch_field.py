"""`BatchField`: a batch of skew fields with the form and the activation chosen per member.

A sweep compiles one program per (solver, dimension) and lays trajectories of every form
and activation side by side in it: wide chunks run at the loop's throughput instead of its
per-iteration overhead, and a handful of programs compile instead of one per (form,
activation). The batch is cut into static *segments* of `width` members, one per (form,
activation) of `segments`, repeating every `len(segments) * width` members; each
activation is evaluated on its own segments only, so a member costs what its own field
costs, and computes exactly what `PreActivation` / `PostActivation` compute for it.

A diffusion $\\gamma$ `(B,)` and a bias $b$ `(n, B)` per member are optional: None (every
member's is 0) leaves them out of the program, so a sweep without them runs the same
operations, bit for bit, as before they existed.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._activation import Activation
from .._field import AbstractField, matvec, rowsum, sqnorm


class BatchField(AbstractField):
    """$\\dot x = \\sigma_s(Ax + b) - \\gamma x$ (pre segments) or $A\\sigma_s(x) + b$
    (post segments); A shared `(n, n)` or per member `(n, n, B)`;
    `segments[s] = (form, activation index)`; `gamma` `(B,)` (pre segments only) and `bias`
    `(n, B)` per member, or None for 0."""

    A: Float[Array, "n n *B"]
    activations: tuple[Activation, ...] = eqx.field(static=True)
    segments: tuple[tuple[str, int], ...] = eqx.field(static=True)
    width: int = eqx.field(static=True)
    gamma: Float[Array, " B"] | None = None
    bias: Float[Array, "n B"] | None = None

    def __check_init__(self):
        if self.gamma is not None and "post" in self._forms():
            raise ValueError(
                "`gamma` applies to pre segments only (sigma(Ax + b) - gamma x); the post "
                "form A sigma(x) + b has no diffusion. Pass gamma=None with post segments.")

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

    def _biased(self, Z):
        """Z + b (as `PreActivation._argument` / `PostActivation` add it)."""
        return Z if self.bias is None else Z + self.bias

    def _diffused(self, F, X):
        """F - gamma x on pre members (as `PreActivation`; only pre segments have gamma)."""
        return F if self.gamma is None else F - self.gamma[None, :] * X

    def rhs(self, X, t=0.0, args=None):
        """The field at states `(n, B)`. Staged as one nested jit, as `invariant`: a step
        evaluates it several times (rk4: 4), and each would trace every segment again (only
        while tracing: an eager call runs op by op, bit for bit as `PreActivation.rhs`)."""
        return _rhs(self, X) if isinstance(X, jax.core.Tracer) else self._rhs(X)

    def _rhs(self, X):
        forms = self._forms()
        if forms == {"pre"}:
            return self._diffused(self._sigma(self._biased(matvec(self.A, X))), X)
        if forms == {"post"}:
            return self._biased(matvec(self.A, self._sigma(X)))
        # A x + b (pre), A sigma(x) + b (post); no gamma with post segments
        V = self._biased(matvec(self.A, self._sigma(X, only="post")))
        return self._sigma(V, only="pre")

    def _sigma_argument(self, X):
        """What sigma is applied to: Ax + b for pre members, x for post members."""
        if self._forms() == {"post"}:
            return X
        return self._pick(self._biased(matvec(self.A, X)), X)

    def _jacobian_from(self, D, B: int):
        """J from sigma' at the argument: diag(D) A (pre), A diag(D) (post)."""
        A3 = self.A[:, :, None] if self.A.ndim == 2 else self.A
        shape, forms = (*A3.shape[:2], B), self._forms()
        pre = jnp.broadcast_to(D[:, None, :] * A3, shape) if "pre" in forms else None
        post = jnp.broadcast_to(A3 * D[None, :, :], shape) if "post" in forms else None
        return self._pick(pre, post)

    def _diffused_jacobian(self, J):
        """J - gamma I on pre members (as `PreActivation.jacobian`)."""
        if self.gamma is None:
            return J
        return J - self.gamma[None, None, :] * jnp.eye(J.shape[0], dtype=J.dtype)[:, :, None]

    def jacobian(self, X, t=0.0, args=None):
        D = self._sigma(self._sigma_argument(X), "derivative")
        return self._diffused_jacobian(self._jacobian_from(D, X.shape[1]))

    def rhs_and_jacobian(self, X, t=0.0, args=None):
        """Both from one pass over the segments: sigma and sigma' at the same argument."""
        W = self._sigma_argument(X)

        def both(seg, Ws):
            act = self.activations[seg[1]]
            return jnp.stack([act.fn(Ws), act.derivative(Ws)])

        S, D = self._per_segment(W, both)
        forms = self._forms()
        F = self._pick(self._diffused(S, X) if "pre" in forms else None,
                       self._biased(matvec(self.A, S)) if "post" in forms else None)
        return F, self._diffused_jacobian(self._jacobian_from(D, X.shape[1]))

    @property
    def is_affine(self) -> bool:
        return all(self.activations[a].is_linear for _, a in self.segments)

    def _member_mask(self, flags, B: int):
        """(B,) numpy bool from one flag per segment."""
        return np.tile(np.repeat(flags, self.width), B // (len(self.segments) * self.width))

    def has_invariant(self) -> bool:
        """True: every member whose own field has an invariant gets it from `invariant`
        (the others, pre with gamma != 0 or post with b != 0, get NaN)."""
        return True

    def invariant(self, x):
        """Each member's own invariant (`PreActivation.invariant` / `PostActivation.
        invariant`) at states `(B, n)`; NaN for the members whose field has none (pre with
        $\\gamma \\ne 0$, post with $b \\ne 0$). Staged as one nested jit: the sweep's
        loop evaluates it at several places, and each would otherwise trace every segment's
        antiderivative again (XLA inlines the call)."""
        return _invariant(self, x) if isinstance(x, jax.core.Tracer) else self._invariant(x)

    def _invariant(self, x):
        X = x.T
        B = X.shape[1]

        def fn(seg, Zs):
            form, a = seg
            act = self.activations[a]
            return rowsum(act.antiderivative(Zs))

        inv = self._per_segment(self._sigma_argument(X), fn)
        # linear pre members without a bias: 1/2 |x|^2, as PreActivation
        lin = [(f == "pre" and self.activations[a].is_linear) for f, a in self.segments]
        if any(lin):
            mask = self._member_mask(lin, B)
            if self.bias is not None:
                mask = mask & jnp.all(self.bias == 0, axis=0)
            inv = jnp.where(mask, 0.5 * sqnorm(X), inv)
        none = self._without_invariant(B, jnp)
        if none is not None:
            inv = jnp.where(none, jnp.asarray(jnp.nan, inv.dtype), inv)
        return inv

    def _without_invariant(self, B: int, xp):
        """(B,) bool: members whose own field has no invariant (None: there are none by
        construction); `xp` is `jnp` (traced values) or `np` (concrete ones)."""
        none = None
        if self.gamma is not None:  # all segments are pre
            none = xp.asarray(self.gamma) != 0
        if self.bias is not None and "post" in self._forms():
            post = self._member_mask([f == "post" for f, _ in self.segments], B)
            biased = post & xp.any(xp.asarray(self.bias) != 0, axis=0)
            none = biased if none is None else none | biased
        return none

    def uses_invariant(self, B: int):
        """(B,) numpy bool: growth measured on the invariant (odd activations whose field
        has one, as `integrate_monitored`'s default) or |x|^2. Needs concrete `gamma` and
        `bias` (call it outside `jit`)."""
        use = self._member_mask([self.activations[a].odd for _, a in self.segments], B)
        none = self._without_invariant(B, np)
        return use if none is None else use & ~none

    def member_spec(self, axis: str):
        """`PartitionSpec`s for a batch sharded over mesh axis `axis` (whole chunks per
        device): a per-member A, gamma and bias are split with the batch, a shared A
        replicated."""
        import jax
        from jax.sharding import PartitionSpec as P

        specs = jax.tree.map(lambda _: P(), eqx.filter(self, eqx.is_array))
        if self.A.ndim == 3:
            specs = eqx.tree_at(lambda f: f.A, specs, P(None, None, axis))
        if self.gamma is not None:
            specs = eqx.tree_at(lambda f: f.gamma, specs, P(axis))
        if self.bias is not None:
            specs = eqx.tree_at(lambda f: f.bias, specs, P(None, axis))
        return specs


_invariant = eqx.filter_jit(BatchField._invariant)
_rhs = eqx.filter_jit(BatchField._rhs)
