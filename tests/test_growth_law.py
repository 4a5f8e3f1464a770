"""Growth laws and the `cycle` status, against closed forms (../shared/THEORY.md):
linear Euler grows ½|x|² exponentially at exactly ln(1 + h²ω²)/h per unit time; bounded σ
under Euler grows at most like a power of t (never `exponential`, never `diverged` below
the threshold); rk4 inside 2√2 is bounded; tanh Euler with 0 < γ < γ* settles on a cycle
of the map from small and from large starts; non-odd σ escapes; and in float32 a large
start is measured after scaling, not squared into overflow."""

import jax.numpy as jnp
import numpy as np
import pytest

import oscillax as ox
from oscillax._classify import classify, gamma_agreement, growth_laws, reduce_monitors
from oscillax._monitor import integrate_monitored
from oscillax._solver import FIXED_SOLVERS

ROT = ox.skew_from_frequencies(jnp.array([1.0]))  # one rotation, omega = 1


def _measure(field, solver, x0, h, T, *, dtype=jnp.float64, threshold=1e6,
             th=ox.Thresholds()):
    """Run members (rows of x0, one h each) and return the measured columns with their
    status and growth-law names."""
    x0 = np.atleast_2d(np.asarray(x0, np.float64))
    B = x0.shape[0]
    h = np.broadcast_to(np.asarray(h, np.float64), (B,))
    steps = np.round(np.asarray(T, np.float64) / h).astype(np.int32)
    steps = np.broadcast_to(steps, (B,))
    norm0 = np.linalg.norm(x0, axis=1)
    thr = threshold * np.maximum(norm0, 1.0)
    out = integrate_monitored(field, FIXED_SOLVERS[solver], jnp.asarray(x0.T, dtype),
                              jnp.asarray(h, dtype), jnp.asarray(steps),
                              jnp.asarray(thr, dtype))
    use_inv = bool(field.activation.odd and field.has_invariant())
    m = reduce_monitors(out, h, steps, use_inv)
    m["bounded_sigma"] = np.full(B, field.activation.bounded)
    m["status"] = np.asarray(ox.STATUS_NAMES)[classify(m, th)]
    m["law"] = np.asarray(ox.GROWTH_LAW_NAMES)[growth_laws(m, th)]
    return m


@pytest.mark.parametrize("form", ["pre", "post"])
def test_linear_euler_grows_exponentially_at_the_closed_form_rate(form):
    h = np.array([0.1, 0.05, 0.2])
    T = np.array([200.0, 300.0, 60.0])  # below the threshold: E/E0 < 1e12
    m = _measure(ox.FORMS[form](ROT, "identity"), "euler", [[1, 0], [0.3, -0.2], [0, 2]],
                 h, T)
    assert (m["diverged_at"] < 0).all()
    assert list(m["law"]) == ["exponential"] * 3
    assert list(m["status"]) == ["diverged"] * 3
    np.testing.assert_allclose(m["growth_rate"], np.log1p(h * h) / h, rtol=1e-9)


def test_past_the_threshold_late_is_still_called_exponential():
    m = _measure(ox.PostActivation(ROT, "identity"), "euler", [[1.0, 0.0]], 0.05, 1000.0)
    assert 10000 < m["diverged_at"][0] < 20000  # frozen in the second half
    assert m["law"][0] == "exponential" and m["status"][0] == "diverged"


@pytest.mark.parametrize("form", ["pre", "post"])
def test_a_fast_blow_up_over_a_long_horizon_is_exponential(form):
    """h = 0.5, ω = 3: ½|x|² gains a factor 1 + h²ω² = 3.25 a step and passes the threshold
    (1e12) at step 24, long before the first sample (every 288 steps of 2e4 at T = 1e4).
    Its law comes from log E at the steps 4, 8, 16 (every power-of-two step is recorded),
    so it is `exponential` whatever the horizon, at the closed-form rate."""
    A = ox.skew_from_frequencies(jnp.array([3.0]))
    h = np.array([0.5, 0.5, 0.3])
    m = _measure(ox.FORMS[form](A, "identity"), "euler", [[1, 0], [1, 0], [0.3, -0.2]], h,
                 [1e4, 60.0, 1e4])
    assert list(m["diverged_at"][:2]) == [24, 24] and 32 < m["diverged_at"][2] <= 64
    assert list(m["law"]) == ["exponential"] * 3 and list(m["status"]) == ["diverged"] * 3
    np.testing.assert_allclose(m["growth_rate"], np.log1p(h * h * 9.0) / h, rtol=1e-6)
    # the law's measure does not depend on the horizon (T = 1e4 and 60 alike)
    for k in ("late_increment", "early_increment", "growth_rate"):
        assert m[k][0] == m[k][1], k
    # log E over the steps 8 -> 16 (frozen at 24) and 16 -> 32 (frozen between 33 and 64)
    np.testing.assert_allclose(m["late_increment"], np.array([8, 8, 16]) * np.log1p(
        h * h * 9.0), rtol=1e-9)


def test_too_short_to_tell_is_undetermined_not_diverged():
    # h = 0.01 over T = 100: ½|x|² grows by e^1, linear and exponential look alike
    m = _measure(ox.PreActivation(ROT, "identity"), "euler", [[1.0, 0.0]], 0.01, 100.0)
    assert m["law"][0] == "undetermined"
    assert m["status"][0] == "drifting"


@pytest.mark.parametrize("form", ["pre", "post"])
def test_bounded_sigma_under_euler_is_never_exponential(form):
    """Over a grid of step sizes, amplitudes and horizons (short ones too), random 2- and
    6-unit networks: no tanh-like Euler member is `exponential` or `diverged`, and where
    the law is a power its exponent in the invariant is at most 1.1 (V <= V0 + c t)."""
    rng = np.random.default_rng(3)
    for n in (2, 6):
        W = rng.standard_normal((n, n))
        A = W - W.T
        A = jnp.asarray(A * 3.0 / np.max(np.abs(np.linalg.eigvals(A))))
        hs, amps = np.meshgrid(np.geomspace(3e-3, 1.0, 6), [0.3, 1.0, 4.0, 30.0])
        hs, amps = hs.ravel(), amps.ravel()
        d = rng.standard_normal((hs.size, n))
        x0 = d / np.linalg.norm(d, axis=1, keepdims=True) * amps[:, None]
        for act in ("tanh", "softsign" if form == "pre" else "hardtanh"):
            for T in (20.0, 100.0):
                m = _measure(ox.FORMS[form](A, act), "euler", x0, hs, T)
                assert not (m["law"] == "exponential").any(), (n, act, T)
                assert (m["status"][m["diverged_at"] < 0] != "diverged").all(), (n, act, T)
                p = m["growth_exponent"][m["law"] == "power"]
                assert (p <= 1.1).all(), (n, act, T, p)
                # most of them grow measurably (the test is not vacuous)
                assert (m["law"] != "bounded").mean() > 0.5, (n, act, T)
    # and it is a power law once the horizon is long enough (h = 0.05, T = 1000)
    m = _measure(ox.FORMS[form](ROT, "tanh"), "euler", [[1.0, 0.0], [0.3, 0.2]], 0.05, 1000.0)
    assert list(m["law"]) == ["power", "power"]
    assert ((m["growth_exponent"] > 0.3) & (m["growth_exponent"] <= 1.0)).all()


def test_the_near_linear_transient_of_a_bounded_sigma_is_undetermined():
    """hardtanh is exactly linear while |Ax| < 1: from a small start, Euler grows the
    invariant exponentially until σ saturates. Measured alone that trend is exponential;
    with the bound (|x| <= |x0| + C t) it is a transient: undetermined, not diverged."""
    h, T = 0.1, 60.0
    field = ox.PostActivation(ROT * 1.0, "hardtanh")
    m = _measure(field, "euler", [[0.01, 0.0]], h, T)
    assert m["law"][0] == "undetermined" and m["status"][0] == "drifting"
    m["bounded_sigma"][:] = False  # the same data, without the theorem
    assert growth_laws(m)[0] == ox.GrowthLaw.EXPONENTIAL
    assert ox.STATUS_NAMES[classify(m)[0]] == "diverged"


def test_a_resolved_drift_of_a_bounded_sigma_is_a_power_law():
    """Small h (hω = 0.009), T = 60: E - E0 grows linearly (p ~ 1, as the theorem's
    V <= V0 + c t allows) while E - E0 << E0, so log E gains twice as much per doubling of
    time, as an exponential's would. Without the theorem that is undetermined; with a
    bounded σ (no exponential possible) it is a power law with its measured exponent."""
    for act in ("tanh", "softsign", "hardtanh"):
        m = _measure(ox.PreActivation(ROT * 3.0, act), "euler", [[1.0, 0.0], [0.5, 0.3]],
                     0.003, 60.0)
        assert list(m["law"]) == ["power", "power"], act
        assert list(m["status"]) == ["drifting", "drifting"], act
        assert ((m["growth_exponent"] > 0.9) & (m["growth_exponent"] < 1.1)).all(), act
        assert (m["late_increment"] > 1.5 * m["early_increment"]).all(), act  # log E speeds up
        m["bounded_sigma"][:] = False  # the same data, without the theorem
        assert (growth_laws(m) == ox.GrowthLaw.UNDETERMINED).all(), act


def test_rk4_bounded_inside_two_root_two_and_exponential_outside():
    A = ROT * 2.0
    # h omega = 1.0, 2.0, 2.7 inside; 2.85 just outside 2 sqrt 2 (|R(i y)|^2 = 1.11)
    h = np.array([0.5, 1.0, 1.35, 1.425])
    m = _measure(ox.PreActivation(A, "identity"), "rk4", np.tile([[1.0, 0.5]], (4, 1)),
                 h, 300.0)
    assert list(m["law"][:3]) == ["bounded"] * 3
    assert m["law"][3] == "exponential" and m["status"][3] == "diverged"


@pytest.mark.parametrize("act", ["relu", "sigmoid"])
def test_non_odd_sigma_escapes(act):
    m = _measure(ox.PostActivation(ROT, act), "euler", [[1.0, 0.0], [0.3, 0.2]], 0.1, 200.0)
    assert list(m["status"]) == ["escaped", "escaped"]


def test_euler_cycle_below_gamma_star_and_collapse_above():
    """THEORY.md's table: h = 0.1, omega = 1, pre tanh, gamma* = 0.0501. Below gamma* the
    map settles on one closed curve from |x0| = 0.1 and from 5; above, it decays to 0;
    without diffusion it drifts; the linear system diverges below gamma*."""
    h, T = 0.1, 1500.0
    assert ox.gamma_star(h, 1.0) == pytest.approx(0.0501256, rel=1e-5)
    starts = [[0.1, 0.0], [5.0, 0.0]]
    amps = {}
    for g in (0.015, 0.035):
        m = _measure(ox.PreActivation(ROT, "tanh", gamma=g), "euler", starts, h, T)
        assert list(m["status"]) == ["cycle", "cycle"], g
        assert list(m["law"]) == ["bounded", "bounded"], g
        a = m["late_amplitude"]
        assert a[0] == pytest.approx(a[1], rel=0.02), g  # one curve, from both sides
        amps[g] = a[0]
        lin = _measure(ox.PreActivation(ROT, "identity", gamma=g), "euler", [[1.0, 0.0]],
                       h, 700.0)
        assert lin["law"][0] == "exponential", g
    assert amps[0.015] > amps[0.035] > 0.5  # more diffusion, a smaller cycle
    m = _measure(ox.PreActivation(ROT, "tanh", gamma=0.065), "euler", starts, h, T)
    assert list(m["status"]) == ["collapsed", "collapsed"]
    m = _measure(ox.PreActivation(ROT, "tanh"), "euler", starts, h, 400.0)
    assert "cycle" not in m["status"]
    # a conserving solver is not a cycle either (its orbit never moved)
    m = _measure(ox.PreActivation(ROT, "tanh"), "implicit_midpoint", starts, 0.1, 400.0)
    assert list(m["status"]) == ["conserved", "conserved"]


def test_float32_large_starts_are_scaled_before_squaring():
    """|x0| = 1e20 and 1e30: |x|^2 would overflow float32 (max 3.4e38). tanh keeps the
    orbit bounded (post form: |Aσ(x)| <= |A| sqrt(n)), so nothing diverges; the norms are
    finite and right."""
    x0 = np.array([[1e20, 0.0], [0.0, 1e30], [3e25, 4e25]])
    m = _measure(ox.PostActivation(ROT.astype(jnp.float32), "tanh"), "rk4", x0, 0.1, 50.0,
                 dtype=jnp.float32)
    assert (m["diverged_at"] < 0).all()
    assert (m["status"] != "diverged").all()
    np.testing.assert_allclose(m["max_norm"], np.linalg.norm(x0, axis=1), rtol=1e-5)
    np.testing.assert_allclose(m["amplitude_final"], np.linalg.norm(x0, axis=1), rtol=1e-5)
    # and the linear system from 1e20 still diverges at the threshold (1e6 x |x0|)
    m = _measure(ox.PostActivation(ROT.astype(jnp.float32), "identity"), "euler",
                 x0[:1], 0.5, 200.0, dtype=jnp.float32)
    assert m["diverged_at"][0] > 0 and m["status"][0] == "diverged"


def test_the_atlas_in_float32_keeps_huge_bounded_starts():
    """The sweep path (float32 spec) from |x0| = 1e20 and 1e30: bounded tanh orbits are not
    diverged (the increments are below float32's resolution there: the state stays put, and
    its invariant with it), the norms are the starts'."""
    spec = ox.SweepSpec(forms=("post", "pre"), activations=("tanh",), solvers=("rk4",),
                        dts=(0.1,), dims=(2,), amplitudes=(1e20, 1e30), seeds=2,
                        horizon=5.0, dtype="float32")
    df = ox.sweep(spec, progress=False).to_dataframe()
    assert (df["status"] == "conserved").all(), df["status"].tolist()
    np.testing.assert_allclose(df["max_norm"], df["amplitude"], rtol=1e-5)
    np.testing.assert_allclose(df["amplitude_final"], df["amplitude"], rtol=1e-5)


def test_the_atlas_finds_the_gamma_star_boundary():
    """Pre form with diffusion, Euler, Heun and rk4: below γ*(h, ω) the linear system grows
    and tanh's orbit persists (growing, or on a cycle of the map), inside the stable band
    both decay to 0 (`gamma_agreement`). The horizon is the slowest predicted decay's:
    γT = 10 at the smallest γ = 0.0025 (Heun and rk4 at small h have γ* ~ 0, so those rows
    decay like exp(-γ t)). Every compared row (outside ±25 % of the band's edges) counts:
    at least 95 % must agree. With T = 200 instead only 79 % do (γT < 2 has not decayed)."""
    T = 4000.0
    spec = ox.SweepSpec(forms=("pre",), activations=("identity", "tanh"),
                        solvers=("euler", "heun", "rk4"), dts=(0.05, 0.1, 0.2, 0.4, 0.8),
                        dims=(2,), amplitudes=(0.5, 3.0),
                        gammas=(0.0, 0.0025, 0.005, 0.02, 0.04, 0.08, 0.16, 0.3, 1.0),
                        seeds=1, spectral_radius=1.0, horizon=T, dtype="float64")
    df = ox.sweep(spec, progress=False).to_dataframe()
    for s in spec.solvers:
        k = df.solver == s
        gs = ox.gamma_star(df.dt[k].to_numpy(), 1.0, s)
        np.testing.assert_allclose(df.theory_gamma_star[k], gs, rtol=1e-12, equal_nan=True)
    a = gamma_agreement(df, 1.0)
    c = a[a.compared]
    # both activations on both sides of the boundary (rk4 needs no γ for hω <= 2√2: above
    # only), small gamma included
    assert len(c) >= 400
    for (act, sol), grp in c.groupby(["activation", "solver"]):
        assert (~grp.below).sum() >= 20 and (sol == "rk4" or grp.below.sum() >= 5), (act, sol)
    assert (df.gamma[a.compared & ~a.below & (df.solver != "euler")] <= 0.0025).any()
    assert c.agrees.mean() >= 0.95, df[a.compared & ~a.agrees][
        ["activation", "solver", "dt", "gamma", "amplitude", "status", "growth_law"]].to_string()
    for key, grp in c.groupby(["activation", "solver"]):
        assert grp.agrees.mean() >= 0.9, key
    assert c.agrees[c.measurable].mean() >= 0.95
    # a cycle of the map only for tanh, and only where the linear map at 0 is unstable
    # (below γ*, or no γ stabilises it)
    g, gs = df.gamma.to_numpy(), df.theory_gamma_star.to_numpy()
    cyc = (df.status == "cycle").to_numpy()
    lin = (df.activation == "identity").to_numpy()
    assert cyc.any() and not (cyc & lin).any()
    assert ((g[cyc] < gs[cyc]) | np.isnan(gs[cyc])).all()
    # no tanh row collapses below γ*, and none is diverged without passing the threshold
    assert not (df.status[~lin & (g < 0.75 * gs)] == "collapsed").any()
    assert (df.diverged_at[~lin & (df.status == "diverged")] >= 0).all()
