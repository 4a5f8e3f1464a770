"""Diffusion gamma: gamma_star / gamma_band against the closed form, |R| = 1 at the root,
THEORY's table, asymptotics, every fixed-step solver, shapes and argument errors."""

import math

import numpy as np
import pytest

import oscillax as ox
from oscillax import _theory
from oscillax._solver import FIXED_SOLVERS, Heun

EPS = np.finfo(np.float64).eps


def _factor(solver, h, omega, gamma):
    """|R(h(-gamma + i omega))| straight from the solver object (no expansion)."""
    z = np.asarray(h) * (-np.asarray(gamma) + 1j * np.asarray(omega))
    return np.abs(np.asarray(FIXED_SOLVERS[solver].stability_function(z), np.complex128))


def test_euler_closed_form_matches_numeric_solve():
    y = np.concatenate([np.geomspace(1e-6, 0.5, 60), np.linspace(0.5, 0.999, 60)])
    lo, hi = ox.gamma_band(1.0, y, "euler")  # closed form
    lo_num, hi_num = _theory._band_numeric(FIXED_SOLVERS["euler"], y)  # generic path
    np.testing.assert_allclose(lo_num, lo, rtol=1e-12, atol=0)
    np.testing.assert_allclose(hi_num, hi, rtol=1e-12, atol=0)
    # the textbook form (1 - sqrt(1 - h^2 w^2)) / h, where it does not cancel
    mid = y > 0.05
    np.testing.assert_allclose(lo[mid], 1.0 - np.sqrt(1.0 - y[mid] ** 2), rtol=1e-12)
    np.testing.assert_allclose(hi, 1.0 + np.sqrt(1.0 - y**2), rtol=1e-14)


@pytest.mark.parametrize("h", [1e-4, 0.01, 0.1, 0.2, 0.5, 0.9])
@pytest.mark.parametrize("omega", [0.3, 1.0, -1.0])
def test_euler_factor_is_one_at_gamma_star(h, omega):
    if abs(h * omega) > 1:
        pytest.skip("no gamma")
    lo, hi = ox.gamma_band(h, omega)
    for gamma in (lo, hi):
        for w in (omega, -omega):  # both members of the pair
            f = abs(1 + h * (-gamma + 1j * w))
            assert abs(f - 1.0) <= 4 * EPS, (gamma, f - 1.0)
    # just inside the band it decays, just outside it grows
    assert abs(1 + h * (-lo * (1 - 1e-6) + 1j * omega)) > 1
    assert abs(1 + h * (-lo * (1 + 1e-6) + 1j * omega)) < 1


def test_theory_table_values():
    # THEORY, "Diffusion gamma": h = 0.1, omega = 1: gamma* = 0.0501; h = 0.2: 0.101
    g1 = ox.gamma_star(0.1, 1.0)
    g2 = ox.gamma_star(0.2, 1.0)
    assert isinstance(g1, float)  # numpy float64 scalar for scalar input
    assert math.isclose(g1, (1 - math.sqrt(0.99)) / 0.1, rel_tol=1e-12)
    assert math.isclose(g2, (1 - math.sqrt(0.96)) / 0.2, rel_tol=1e-12)
    assert round(g1, 4) == 0.0501 and round(g2, 3) == 0.101
    # the table's rows: gamma = 0.065 > gamma* decays, 0.071 < gamma*(0.2) and 0.035 diverge
    assert _factor("euler", 0.1, 1.0, 0.065) < 1
    assert _factor("euler", 0.1, 1.0, 0.035) > 1
    assert _factor("euler", 0.2, 1.0, 0.071) > 1


def test_small_step_asymptotics():
    # Euler gamma* = h w^2 / (1 + sqrt(1 - h^2 w^2)) = (h w^2 / 2)(1 + (h w)^2 / 4 + ...)
    for h in (1e-8, 1e-6, 1e-3):
        for omega in (0.5, 1.0, 3.0):
            g = ox.gamma_star(h, omega)
            y2 = (h * omega) ** 2
            assert abs(g / (h * omega**2 / 2) - 1 - y2 / 4) <= y2**2 + 4 * EPS
            # Heun/midpoint: E = y^4/4 - 2x - x y^2 + ... so gamma* ~ h^3 w^4 / 8, kept to
            # full relative accuracy (the naive |R|^2 - 1 is rounding noise there)
            for name in ("heun", "midpoint"):
                gh = ox.gamma_star(h, omega, name)
                assert abs(gh / (h**3 * omega**4 / 8) - 1) <= 2 * y2 + 1e-12


@pytest.mark.parametrize("name", ["heun", "midpoint", "rk4"])
def test_explicit_solvers_factor_is_one_at_root(name):
    lim = {"heun": math.sqrt(3), "midpoint": math.sqrt(3), "rk4": 2.937}[name]
    # from h w = 0.1: below, 1e-7 of gamma* moves |R| by less than its rounding
    start = 2 * math.sqrt(2) * 1.001 if name == "rk4" else 0.1
    y = np.linspace(start, lim * 0.999, 40)
    for h in (0.05, 1.0):
        omega = y / h
        lo, hi = ox.gamma_band(h, omega, name)
        assert np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(lo < hi)
        assert np.all(lo > 0)
        for gamma in (lo, hi):
            np.testing.assert_allclose(_factor(name, h, omega, gamma), 1.0, rtol=0, atol=1e-12)
        # unstable just outside the band, stable inside
        assert np.all(_factor(name, h, omega, lo * (1 - 1e-7)) > 1)
        assert np.all(_factor(name, h, omega, hi * (1 + 1e-7)) > 1)
        inside = np.linspace(0.01, 0.99, 25)[:, None]
        assert np.all(_factor(name, h, omega, lo + inside * (hi - lo)) < 1)


def test_already_stable_and_never_stable():
    # rk4 needs no diffusion for h w <= 2 sqrt 2; implicit midpoint never does
    y = np.linspace(0.0, 2 * math.sqrt(2) * (1 - 1e-12), 50)
    np.testing.assert_array_equal(ox.gamma_star(1.0, y, "rk4"), 0.0)
    np.testing.assert_array_equal(ox.gamma_star(0.1, y / 0.1, "rk4"), 0.0)
    y_all = np.array([0.0, 0.5, 3.0, 1e3])
    lo, hi = ox.gamma_band(0.1, y_all / 0.1, "implicit_midpoint")
    np.testing.assert_array_equal(lo, 0.0)
    assert np.all(np.isinf(hi))
    # beyond the top of the stability region no gamma helps: NaN, for both edges
    for name, top in [("euler", 1.0), ("heun", math.sqrt(3)), ("midpoint", math.sqrt(3)),
                      ("rk4", 2.95)]:
        lo, hi = ox.gamma_band(1.0, np.array([top * 1.001, 5.0, 100.0]), name)
        assert np.all(np.isnan(lo)) and np.all(np.isnan(hi)), name
    # the edge itself: Euler at h w = 1 is stable only at h gamma = 1
    assert ox.gamma_band(0.5, 2.0) == (2.0, 2.0)
    # no amplification to remove at omega = 0
    for name in FIXED_SOLVERS:
        assert ox.gamma_star(0.1, 0.0, name) == 0.0


def test_rk4_just_above_its_limit():
    y = 2 * math.sqrt(2) * np.array([1.0001, 1.001, 1.01, 1.03])
    g = ox.gamma_star(1.0, y, "rk4")
    assert np.all(g > 0) and np.all(np.diff(g) > 0)
    np.testing.assert_allclose(_factor("rk4", 1.0, y, g), 1.0, atol=1e-12)


def test_vectorised_shapes_and_broadcasting():
    h = np.array([0.01, 0.1, 0.5])[:, None]
    omega = np.array([0.5, 1.0, 1.5, 2.5])
    for name in FIXED_SOLVERS:
        lo, hi = ox.gamma_band(h, omega, name)
        assert lo.shape == hi.shape == (3, 4)
        g = ox.gamma_star(h, omega, name)
        assert g.shape == (3, 4)
        for i in range(3):
            for j in range(4):
                one = ox.gamma_star(float(h[i, 0]), float(omega[j]), name)
                assert (np.isnan(one) and np.isnan(g[i, j])) or one == g[i, j]
    # lists and higher rank
    assert ox.gamma_star([0.1, 0.2], 1.0).shape == (2,)
    assert ox.gamma_star(np.full((2, 3, 4), 0.1), 1.0, "rk4").shape == (2, 3, 4)
    # solver names are case-insensitive; a solver object works as well
    assert ox.gamma_star(0.3, 1.0, "HEUN") == ox.gamma_star(0.3, 1.0, FIXED_SOLVERS["heun"])


def test_exact_expansion_agrees_with_stability_function():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 3.0, 500)
    y = rng.uniform(0.0, 3.0, 500)
    for name, solver in FIXED_SOLVERS.items():
        f = _theory._Excess(solver, y)
        assert f.coef is not None, name  # all built-ins are rational: exact path
        got = f(x)
        R = np.abs(np.asarray(solver.stability_function(-x + 1j * y), np.complex128))
        differ = (got <= 0) != (R <= 1)  # same verdict, up to rounding right at |R| = 1
        assert np.all(np.abs(R - 1)[differ] < 1e-12), name
        if name != "implicit_midpoint":  # polynomial R: E is exactly |R|^2 - 1
            np.testing.assert_allclose(got, R**2 - 1, rtol=1e-10, atol=1e-12)


def test_non_rational_stability_function_falls_back():
    class NumpyHeun(Heun):
        # written with numpy calls, so it cannot be expanded exactly
        def stability_function(self, z):
            return np.asarray(1 + z + z**2 / 2, np.complex128)

    s = NumpyHeun()
    assert _theory._stability_excess(s) is None
    y = np.array([0.2, 0.5, 1.0, 1.5, 1.8])
    lo, hi = ox.gamma_band(1.0, y, s)
    lo_ref, hi_ref = ox.gamma_band(1.0, y, "heun")
    np.testing.assert_allclose(lo, lo_ref, rtol=1e-9)
    np.testing.assert_allclose(hi, hi_ref, rtol=1e-9)


@pytest.mark.parametrize("bad", [-0.1, 0.0, float("nan"), float("inf"), [0.1, -1.0]])
def test_bad_step_is_rejected(bad):
    with pytest.raises(ValueError, match="`h` must be a positive") as info:
        ox.gamma_star(bad, 1.0)
    assert "dt > 0" in str(info.value)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="`h` must be a positive step size") as info:
        ox.gamma_star("fast", 1.0)
    assert "'fast'" in str(info.value)
    with pytest.raises(ValueError, match="`omega` must be finite"):
        ox.gamma_star(0.1, float("inf"))
    with pytest.raises(ValueError, match="`omega` must be a real angular frequency"):
        ox.gamma_star(0.1, "one")
    with pytest.raises(ValueError, match="must broadcast together") as info:
        ox.gamma_star(np.ones(3) * 0.1, np.ones(4))
    assert "(3,)" in str(info.value) and "(4,)" in str(info.value)


def test_unknown_or_adaptive_solver_is_rejected():
    with pytest.raises(ValueError, match="`solver` must be one of") as info:
        ox.gamma_star(0.1, 1.0, "rk5")
    msg = str(info.value)
    assert "'rk5'" in msg
    for name in FIXED_SOLVERS:
        assert name in msg
    with pytest.raises(ValueError, match="`solver` must be a fixed-step solver") as info:
        ox.gamma_band(0.1, 1.0, "tsit5")
    assert "'tsit5'" in str(info.value)


def test_exported():
    assert ox.gamma_star is _theory.gamma_star
    assert ox.gamma_band is _theory.gamma_band
