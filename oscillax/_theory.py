"""Closed forms for the linear skew system $\\dot x = A x$, eigenvalues $\\pm i\\omega$.

A one-step method maps each eigen-pair by $R(i h\\omega)$, its stability function, so the
norm of that pair is multiplied by $|R(ih\\omega)|$ per step:
euler $\\sqrt{1 + h^2\\omega^2}$ (> 1 for every h), heun/midpoint
$\\sqrt{1 + (h\\omega)^4/4}$, rk4 $\\le 1$ iff $|h\\omega| \\le 2\\sqrt 2$,
implicit midpoint exactly 1.

With the diffusion $\\gamma$ of the pre form ($\\sigma(Ax) - \\gamma x$, linear case) the
eigenvalues are $-\\gamma \\pm i\\omega$, and `gamma_star` / `gamma_band` give the
diffusion that makes a solver stop amplifying them: forward Euler needs
$\\gamma \\ge \\gamma^* = (1 - \\sqrt{1 - h^2\\omega^2})/h \\approx h\\omega^2/2$.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import numpy as np

from ._solver import FIXED_SOLVERS, get_solver

# Largest |h omega| with |R(i h omega)| <= 1 (0: unstable for every h > 0; inf: for all h).
STABILITY_LIMIT: dict[str, float] = {
    "euler": 0.0,
    "heun": 0.0,
    "midpoint": 0.0,
    "rk4": 2.0 * math.sqrt(2.0),
    "implicit_midpoint": math.inf,
}


def _fixed(solver: str):
    s = get_solver(solver)
    if isinstance(s, str):
        raise ValueError(
            f"`solver` must be a fixed-step solver ({', '.join(FIXED_SOLVERS)}) for "
            f"linear-stability theory; got {solver!r} (adaptive solvers choose their own steps)."
        )
    return s


def amplification(solver: str, h, omega, gamma=None):
    """Per-step growth $|R(i h \\omega)|$ of an eigen-pair of the linear skew system, or
    with a diffusion $\\gamma$ (the linear pre form $Ax - \\gamma x$, eigenvalues
    $-\\gamma \\pm i\\omega$) $|R(h(-\\gamma + i\\omega))|$.

    **Arguments:** `solver` name, step `h`, angular frequency `omega`, optional diffusion
    `gamma` (all broadcast; None is $\\gamma = 0$).

    **Returns:** numpy array of $|R(h(-\\gamma + i\\omega))|$.
    """
    s = _fixed(solver)
    z = 1j * np.asarray(h, np.float64) * np.asarray(omega, np.float64)
    if gamma is not None:
        z = z - np.asarray(h, np.float64) * np.asarray(gamma, np.float64)
    return np.abs(np.asarray(s.stability_function(z), np.complex128))


def growth_rate(solver: str, h, omega):
    """Exponential growth rate per unit time, $\\log|R(ih\\omega)| / h$ (0 when conserved)."""
    h = np.asarray(h, np.float64)
    return np.log(amplification(solver, h, omega)) / h


def euler_growth(h, omega):
    """Forward Euler's per-step growth on the linear skew system, $\\sqrt{1 + h^2\\omega^2}$."""
    h = np.asarray(h, np.float64)
    omega = np.asarray(omega, np.float64)
    return np.sqrt(1.0 + (h * omega) ** 2)


def stability_limit(solver: str) -> float:
    """Largest $|h\\omega|$ for which `solver` does not amplify the linear skew system."""
    _fixed(solver)
    return STABILITY_LIMIT[get_solver(solver).name]


# ---------------------------------------------------------------------------------------
# Diffusion gamma: the smallest gamma >= 0 with |R(h(-gamma + i omega))| <= 1.
#
# With x = h gamma and y = h omega everything is dimensionless: the stable set is where
# E(u, v) = |P(u + iv)|^2 - |Q(u + iv)|^2 <= 0 for R = P / Q, taken at u = -x, v = y. The
# solver's own `stability_function` is evaluated once on an exact rational "variable" z,
# which gives P and Q with exact (Fraction) coefficients, and E is expanded exactly in u
# and v. Evaluating the expanded E keeps full relative accuracy where the naive
# |R|^2 - 1 cancels (Heun's gamma* ~ h^3 omega^4 / 8 at small h omega would be rounding
# noise), and exactly-zero coefficients make "already stable at gamma = 0" exact (rk4 for
# h omega <= 2 sqrt 2: E(0, y) = y^6 (y^2 - 8) / 576).

# Search range of the numerical solve, in h * gamma: every built-in explicit method's
# stability region lies within -2.79 <= Re z (rk4), so the band is always inside it.
_HG_MAX = 16.0
# Sample points (fractions of the range) scanned for the first sign changes of E before
# bisection: coarse when E is a polynomial (its critical points are added per row), dense
# for a stability function that is not plain rational arithmetic.
_SCAN_COARSE = np.linspace(0.0, 1.0, 65)
_SCAN_DENSE = np.unique(
    np.concatenate([np.geomspace(1e-9, 1.0, 600), np.linspace(0.0, 1.0, 1601)])
)
_CHUNK = 1024  # elements per scan block: (chunk, points) arrays stay a few MB


class _Rational:
    """P(z) / Q(z) with exact Fraction coefficients (ascending powers), for reading off a
    stability function written with + - * / ** from its own code."""

    __slots__ = ("p", "q")
    __array_ufunc__ = None  # numpy scalars defer to our reflected operators

    def __init__(self, p, q=(Fraction(1),)):
        self.p, self.q = tuple(p), tuple(q)

    @staticmethod
    def _lift(other):
        if isinstance(other, _Rational):
            return other
        if isinstance(other, (int, float, Fraction)) and not isinstance(other, bool):
            if not math.isfinite(other):
                raise TypeError("non-finite coefficient")
            return _Rational((Fraction(other),))
        raise TypeError(f"cannot use {type(other).__name__} in an exact stability function")

    @staticmethod
    def _add(a, b):
        n = max(len(a), len(b))
        return tuple((a[i] if i < len(a) else 0) + (b[i] if i < len(b) else 0) for i in range(n))

    @staticmethod
    def _mul(a, b):
        out = [Fraction(0)] * (len(a) + len(b) - 1)
        for i, ai in enumerate(a):
            for j, bj in enumerate(b):
                out[i + j] += ai * bj
        return tuple(out)

    def __add__(self, other):
        o = self._lift(other)
        p = self._add(self._mul(self.p, o.q), self._mul(o.p, self.q))
        return _Rational(p, self._mul(self.q, o.q))

    __radd__ = __add__

    def __neg__(self):
        return _Rational(tuple(-c for c in self.p), self.q)

    def __sub__(self, other):
        return self + (-self._lift(other))

    def __rsub__(self, other):
        return self._lift(other) + (-self)

    def __mul__(self, other):
        o = self._lift(other)
        return _Rational(self._mul(self.p, o.p), self._mul(self.q, o.q))

    __rmul__ = __mul__

    def __truediv__(self, other):
        o = self._lift(other)
        if not any(o.p):
            raise ZeroDivisionError("stability function divides by zero")
        return _Rational(self._mul(self.p, o.q), self._mul(self.q, o.p))

    def __rtruediv__(self, other):
        return self._lift(other) / self

    def __pow__(self, k):
        if not isinstance(k, int) or k < 0:
            raise TypeError("only non-negative integer powers are exact")
        out = _Rational((Fraction(1),))
        for _ in range(k):
            out = out * self
        return out


def _re_im(poly):
    """Re and Im of poly(u + iv) as {(j, k): coefficient of u^j v^k}, exactly."""
    re, im = {}, {}
    for n, c in enumerate(poly):
        if c == 0:
            continue
        for m in range(n + 1):
            term = c * math.comb(n, m)  # (iv)^m = i^m v^m: i^0 = 1, i, -1, -i
            target = re if m % 2 == 0 else im
            sign = -1 if m % 4 in (2, 3) else 1
            key = (n - m, m)
            target[key] = target.get(key, 0) + sign * term
    return re, im


def _square_into(acc, poly2d, sign):
    items = list(poly2d.items())
    for (j1, k1), a in items:
        for (j2, k2), b in items:
            key = (j1 + j2, k1 + k2)
            acc[key] = acc.get(key, 0) + sign * a * b


def _stability_excess(solver) -> np.ndarray | None:
    """Coefficients `C[j, k]` of E(u, v) = |P|^2 - |Q|^2 = sum C[j, k] u^j v^k, or None
    when `stability_function` cannot be evaluated exactly (then |R|^2 - 1 is used)."""
    try:
        return _stability_excess_cached(solver)
    except TypeError:  # an unhashable user solver: no cache
        return _stability_excess_cached.__wrapped__(solver)


@functools.cache
def _stability_excess_cached(solver) -> np.ndarray | None:
    try:
        r = solver.stability_function(_Rational((Fraction(0), Fraction(1))))
        r = _Rational._lift(r)
    except Exception:  # not plain rational arithmetic (jnp calls, say): fall back
        return None
    if r.q and r.q[0] != 0:  # scale so Q(0) = 1: E = |R|^2 - 1 for a polynomial R
        r = _Rational(tuple(c / r.q[0] for c in r.p), tuple(c / r.q[0] for c in r.q))
    acc: dict = {}
    for poly, sign in ((r.p, 1), (r.q, -1)):
        re, im = _re_im(poly)
        _square_into(acc, re, sign)
        _square_into(acc, im, sign)
    deg = max(max(j, k) for j, k in acc) if acc else 0
    C = np.zeros((deg + 1, deg + 1))
    for (j, k), c in acc.items():
        C[j, k] = float(c)
    return C


class _Excess:
    """f(x) = E(-x, y) for a fixed vector y: a polynomial in x (exact expansion) or the
    direct |R(-x + iy)|^2 - 1 when the expansion is unavailable."""

    def __init__(self, solver, y):
        self.solver, self.y = solver, y
        C = _stability_excess(solver)
        if C is None:
            self.coef = None
        else:
            # c_j(y) = sum_k C[j, k] y^k, times (-1)^j for u = -x: f(x) = sum_j c_j x^j
            ypow = y[:, None] ** np.arange(C.shape[1])[None, :]
            signs = (-1.0) ** np.arange(C.shape[0])
            self.coef = (ypow @ C.T) * signs[None, :]  # (S, deg + 1)

    def __call__(self, x, rows=slice(None)):
        """f at x: `x` (S,) or (S, G) aligned with the rows of y (or of `rows`)."""
        if self.coef is None:
            y = self.y[rows]
            y = y if x.ndim == 1 else y[:, None]
            R = np.asarray(self.solver.stability_function(-x + 1j * y), np.complex128)
            return np.abs(R) ** 2 - 1.0
        c = self.coef[rows]
        acc = np.zeros_like(x)
        for j in range(c.shape[1] - 1, -1, -1):
            cj = c[:, j] if x.ndim == 1 else c[:, j, None]
            acc = acc * x + cj
        return acc

    def stable_at_infinity(self):
        """Whether f(x) <= 0 for all large x (the sign of the leading coefficient)."""
        if self.coef is None:
            big = np.full(self.y.shape, 1e6)
            return self(big) <= 0
        nz = self.coef != 0
        last = nz.shape[1] - 1 - np.argmax(nz[:, ::-1], axis=1)  # highest nonzero power
        lead = np.take_along_axis(self.coef, last[:, None], axis=1)[:, 0]
        return ~nz.any(axis=1) | (lead < 0)


def _bisect(f, lo, hi, rows):
    """Shrink brackets with f(lo) > 0 >= f(hi) (or the reverse, by sign) to adjacent floats."""
    lo, hi = lo.copy(), hi.copy()
    pos_lo = f(lo, rows) > 0
    for _ in range(2200):  # enough to reach subnormal roots from a bracket of size 16
        mid = lo + 0.5 * (hi - lo)
        done = (mid <= lo) | (mid >= hi)
        if np.all(done):
            break
        side = (f(mid, rows) > 0) == pos_lo  # mid on lo's side
        lo = np.where(~done & side, mid, lo)
        hi = np.where(~done & ~side, mid, hi)
    return lo, hi


def _critical_points(coef):
    """Real parts of the roots of f' for each row of ascending coefficients `coef` (S, d+1),
    as (S, d-1) (padded with 0). Between consecutive critical points f is monotone, so
    sampling f there (and at the ends) finds every sign change, however narrow the window."""
    S, d1 = coef.shape
    dc = coef[:, 1:] * np.arange(1, d1)[None, :]  # f' ascending, degree d1 - 2
    n = d1 - 2
    out = np.zeros((S, max(n, 0)))
    if n <= 0:
        return out
    lead = dc[:, -1]
    ok = lead != 0
    if ok.any():  # batched companion matrices of the monic f'
        M = np.zeros((int(ok.sum()), n, n))
        M[:, np.arange(1, n), np.arange(n - 1)] = 1.0
        M[:, :, -1] = -dc[ok, :-1] / lead[ok, None]
        out[ok] = np.linalg.eigvals(M).real
    for i in np.flatnonzero(~ok):  # lower degree in these rows: one at a time
        r = np.polynomial.polynomial.polyroots(np.trim_zeros(dc[i], "b")) if dc[i].any() else []
        out[i, : len(r)] = np.real(r)
    return out


def _band_numeric(solver, y):
    """(x_lo, x_hi) in units of h * gamma, for y = h |omega| (1-d arrays)."""
    x_lo = np.full(y.shape, np.nan)
    x_hi = np.full(y.shape, np.nan)
    f = _Excess(solver, y)
    at_inf = f.stable_at_infinity()
    # sample points per row: a coarse grid plus f's critical points when f is a polynomial
    # (exact detection of every window); a dense grid for a non-rational R
    unit = _SCAN_COARSE if f.coef is not None else _SCAN_DENSE
    for start in range(0, y.size, _CHUNK):
        rows = np.arange(start, min(start + _CHUNK, y.size))
        X = np.broadcast_to(_HG_MAX * unit, (rows.size, unit.size))
        if f.coef is not None:
            crit = np.clip(_critical_points(f.coef[rows]), 0.0, _HG_MAX)
            X = np.concatenate([X, crit], axis=1)
        X = np.sort(X, axis=1)
        stable = f(X, rows) <= 0
        has = stable.any(axis=1)
        first = np.argmax(stable, axis=1)  # first stable sample point
        r, i, Xh = rows[has], first[has], X[has]
        k = np.arange(r.size)
        # lower edge: 0 if stable at gamma = 0, else bisect between samples i - 1 and i
        edge = Xh[k, i].copy()
        inner = i > 0
        if inner.any():
            _, hi_ = _bisect(f, Xh[k[inner], i[inner] - 1], Xh[k[inner], i[inner]], r[inner])
            edge[inner] = hi_  # the stable side of the boundary
        x_lo[r] = edge
        # upper edge: the first unstable sample after the first stable one
        after = ~stable[has] & (np.arange(X.shape[1])[None, :] > i[:, None])
        ends = after.any(axis=1)
        j = np.argmax(after, axis=1)
        up = np.full(r.shape, np.nan)
        if ends.any():
            ke, je = k[ends], j[ends]
            lo_, _ = _bisect(f, Xh[ke, je - 1], Xh[ke, je], r[ends])
            up[ends] = lo_  # the stable side
        up[~ends & at_inf[r]] = np.inf  # stable to the end of the range and beyond
        x_hi[r] = up
    return x_lo, x_hi


def _check_steps(h, omega):
    try:
        h_arr = np.asarray(h, np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"`h` must be a positive step size (a number or array of numbers); got {h!r}."
        ) from None
    try:
        w_arr = np.asarray(omega, np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            "`omega` must be a real angular frequency (a number or array of numbers); "
            f"got {omega!r}."
        ) from None
    bad = ~(np.isfinite(h_arr) & (h_arr > 0))
    if bad.any():
        raise ValueError(
            "`h` must be a positive, finite step size; got "
            f"{h_arr[bad].ravel()[:3].tolist()} (pass dt > 0)."
        )
    if not np.all(np.isfinite(w_arr)):
        raise ValueError(
            "`omega` must be finite; got "
            f"{w_arr[~np.isfinite(w_arr)].ravel()[:3].tolist()} (pass the largest |omega| of A, "
            "e.g. its spectral radius)."
        )
    try:
        h_arr, w_arr = np.broadcast_arrays(h_arr, w_arr)
    except ValueError:
        raise ValueError(
            f"`h` and `omega` must broadcast together; got shapes {h_arr.shape} and "
            f"{w_arr.shape}."
        ) from None
    return h_arr, np.abs(w_arr)


def gamma_band(h, omega, solver: str = "euler"):
    """The diffusions $\\gamma \\ge 0$ for which `solver` does not amplify $-\\gamma \\pm i\\omega$.

    The linear pre form with diffusion, $\\dot x = A x - \\gamma x$, has eigenvalues
    $-\\gamma \\pm i\\omega$; a step multiplies each pair by $|R(h(-\\gamma \\pm i\\omega))|$.
    This returns the edges of the first interval of $\\gamma \\ge 0$ where that is $\\le 1$.
    Forward Euler, in closed form: $|1 + h(-\\gamma + i\\omega)| \\le 1$ exactly for
    $\\gamma^* \\le \\gamma \\le (1 + \\sqrt{1 - h^2\\omega^2})/h$, with
    $\\gamma^* = (1 - \\sqrt{1 - h^2\\omega^2})/h = h\\omega^2 / (1 + \\sqrt{1 - h^2\\omega^2})$
    (the second form, used here, does not cancel at small $h\\omega$). Other fixed-step
    solvers: the same boundary from their own `stability_function`, expanded exactly and
    solved by bisection to the last bit, over $0 \\le h\\gamma \\le 16$.

    **Arguments:**
    - `h`: step size(s) > 0.
    - `omega`: angular frequency(ies) of the eigen-pair (its sign does not matter; for a
      matrix use the largest, the spectral radius). `h` and `omega` broadcast.
    - `solver`: a fixed-step solver name (`FIXED_SOLVERS`) or solver object.

    **Returns:** `(lower, upper)`, numpy float64 (scalars for scalar input). `lower` is
    `gamma_star`; it is 0 where the solver is already stable without diffusion (rk4 for
    $h\\omega \\le 2\\sqrt 2$, implicit midpoint always). Both are NaN where no $\\gamma$ makes
    the solver stable (Euler with $h\\omega > 1$, Heun/midpoint with $h\\omega > \\sqrt 3$,
    rk4 with $h\\omega > 2.937$: the top of their stability regions).
    `upper` is inf when every larger $\\gamma$ stays stable (implicit midpoint).
    """
    s = _fixed(solver)
    h_arr, w_arr = _check_steps(h, omega)
    y = (h_arr * w_arr).ravel()
    if s.name == "euler" and type(s) is type(FIXED_SOLVERS["euler"]):
        root = np.sqrt(np.where(y <= 1.0, 1.0 - y * y, np.nan))
        x_lo = y * y / (1.0 + root)
        x_hi = 1.0 + root
    else:
        y_u, inverse = np.unique(y, return_inverse=True)  # sweeps repeat (h, omega) a lot
        x_lo, x_hi = _band_numeric(s, y_u)
        x_lo, x_hi = x_lo[inverse.ravel()], x_hi[inverse.ravel()]
    shape = h_arr.shape
    lower = (x_lo / h_arr.ravel()).reshape(shape)
    upper = (x_hi / h_arr.ravel()).reshape(shape)
    return lower[()], upper[()]


def gamma_star(h, omega, solver: str = "euler"):
    """The smallest diffusion $\\gamma \\ge 0$ with $|R(h(-\\gamma \\pm i\\omega))| \\le 1$.

    For forward Euler $\\gamma^* = (1 - \\sqrt{1 - h^2\\omega^2})/h \\approx h\\omega^2/2$
    (THEORY, "Diffusion γ"): below it the linear pre form $\\sigma(Ax) - \\gamma x$ still
    diverges under Euler, above it it decays. Other fixed-step solvers are solved
    numerically from their stability function (see `gamma_band`, which also gives the
    upper edge).

    **Arguments:** step `h` > 0, angular frequency `omega` (broadcast), `solver` name.

    **Returns:** numpy float64 (a scalar for scalar input): 0 where the solver is stable
    without diffusion; NaN where no $\\gamma \\ge 0$ makes it stable (Euler: $h\\omega > 1$).

    ```python
    ox.gamma_star(0.1, 1.0)            # 0.0501256...
    ox.gamma_star(0.5, 3.0, "rk4")     # 0.0: h omega = 1.5 <= 2 sqrt 2
    ```
    """
    return gamma_band(h, omega, solver)[0]
