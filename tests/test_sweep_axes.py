"""The diffusion and bias axes of a sweep (`gammas`, `biases`): spec checks, bit-identity of
specs without them, `BatchField` per member against `PreActivation` / `PostActivation`,
`sweep_case` rows, the `theory_gamma_star` column, `to_xarray` axes, the gamma figure."""

import math

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import oscillax as ox
from oscillax._sweep import AXES
from oscillax._sweep._batch_field import BatchField
from oscillax._sweep._spec import SpecError

BASE = dict(activations=("identity", "tanh"), solvers=("euler",), dts=(0.05, 0.6),
            dims=(2,), amplitudes=(1.0,), seeds=2, spectral_radius=2.0, horizon=12.0)
GAMMA = dict(BASE, forms=("pre",), gammas=(0.0, 0.05, 0.5))
BIAS = dict(BASE, forms=("pre", "post"), biases=(0.0, 0.7))


@pytest.fixture(scope="module")
def gamma_result():
    return ox.sweep(ox.SweepSpec(**GAMMA), chunk_size=16)


@pytest.fixture(scope="module")
def bias_result():
    return ox.sweep(ox.SweepSpec(**BIAS), chunk_size=16)


def _without(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if k not in ("gammas", "biases")}


@pytest.fixture(scope="module")
def plain_results():
    """The gamma and bias sweeps without those axes."""
    return {k: ox.sweep(ox.SweepSpec(**_without(spec)), chunk_size=16)
            for k, spec in (("gamma", GAMMA), ("bias", BIAS))}


# -- spec ------------------------------------------------------------------------------

@pytest.mark.parametrize("key, value, phrase", [
    ("gammas", [-0.1], r"`gammas` must be a list of finite diffusions >= 0.*-0.1"),
    ("gammas", [float("nan")], r"`gammas` must be a list of finite diffusions >= 0.*nan"),
    ("gammas", [math.inf], r"`gammas` must be a list of finite diffusions >= 0.*inf"),
    ("gammas", ["0.1"], r"`gammas` must be a list of"),
    ("gammas", [True], r"`gammas` must be a list of"),
    ("gammas", [], r"`gammas` must not be empty"),
    ("gammas", [0.1, 0.1], r"`gammas` must not repeat values"),
    ("biases", [-1.0], r"`biases` must be a list of finite bias norms >= 0.*-1.0"),
    ("biases", [float("nan")], r"`biases` must be a list of finite bias norms >= 0"),
    ("biases", "big", r"`biases` must be a list of"),
])
def test_spec_rejects_bad_values(key, value, phrase):
    with pytest.raises(SpecError, match=phrase):
        ox.SweepSpec(forms=("pre",), **{key: value})


def test_nonzero_gamma_with_post_is_refused_with_the_fix():
    with pytest.raises(SpecError, match=r"`gammas` must be \[0.0\] when `forms` includes "
                       r"'post'.*pre form.*forms = \[\"pre\"\]"):
        ox.SweepSpec(forms=("pre", "post"), gammas=(0.0, 0.1))
    ox.SweepSpec(forms=("pre", "post"), gammas=(0.0,))  # zero is fine with post


def test_spec_toml_keys_round_trip(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text('[sweep]\nforms = ["pre"]\ngammas = [0, 0.05]\nbiases = 0.5\nhorizon = 1.0\n')
    spec = ox.SweepSpec.from_toml(p)
    assert spec.gammas == (0.0, 0.05) and spec.biases == (0.5,)
    assert spec.n_trajectories == 1 * 2 * 1 * 2 * 1 * 1 * 2 * 1 * 1  # forms ... seeds
    q = tmp_path / "t.toml"
    q.write_text(spec.to_toml())
    assert ox.SweepSpec.from_toml(q) == spec
    p.write_text('[sweep]\ngamma = [0.1]\nhorizon = 1.0\n')
    with pytest.raises(SpecError, match=r"unknown key\(s\) 'gamma'.*gammas"):
        ox.SweepSpec.from_toml(p)


def test_shipped_specs_parse_and_are_listed():
    from oscillax.cli import _specs

    for name in ("diffusion", "bias", "dimension", "solvers"):
        assert name in _specs.names()
        assert _specs.question(name).endswith("?")
        with _specs.as_path(name) as p:
            spec = ox.SweepSpec.from_toml(p)
        assert spec.n_trajectories <= 3000
    with _specs.as_path("diffusion") as p:
        d = ox.SweepSpec.from_toml(p)
    assert len(d.gammas) > 1 and d.forms == ("pre",)
    with _specs.as_path("bias") as p:
        assert len(ox.SweepSpec.from_toml(p).biases) > 1


# -- results -----------------------------------------------------------------------------

def test_explicit_zero_axes_are_bit_identical(tmp_path, plain_results):
    spec = ox.SweepSpec(**_without(BIAS))
    text = spec.to_toml()
    assert "gammas = [0.0]" in text and "biases = [0.0]" in text
    lines = [ln for ln in text.splitlines() if not ln.startswith(("gammas", "biases"))]
    with_keys, without = tmp_path / "a.toml", tmp_path / "b.toml"
    with_keys.write_text(text)
    without.write_text("\n".join(lines) + "\n")
    assert ox.SweepSpec.from_toml(without) == spec == ox.SweepSpec.from_toml(with_keys)
    got = ox.sweep(with_keys, chunk_size=16).to_dataframe()
    pd.testing.assert_frame_equal(got, plain_results["bias"].to_dataframe())
    assert (got["gamma"] == 0).all() and (got["bias"] == 0).all()


def test_zero_members_of_swept_axes_equal_the_unswept_sweep(gamma_result, bias_result,
                                                            plain_results):
    """gamma = 0 / b = 0 rows of a sweep with those axes are, bit for bit, the rows of the
    sweep without them (the program subtracts 0 * x and adds b = 0, which is exact)."""
    cols = [c for c in gamma_result.to_dataframe().columns if c != "traj_id"]
    for res, key in ((gamma_result, "gamma"), (bias_result, "bias")):
        got = res.to_dataframe()
        got = got[got[key] == 0][cols].sort_values(list(AXES)).reset_index(drop=True)
        want = plain_results[key].to_dataframe()[cols].sort_values(list(AXES))
        pd.testing.assert_frame_equal(got, want.reset_index(drop=True))


def test_swept_axes_do_not_depend_on_the_chunking(bias_result):
    other = ox.sweep(ox.SweepSpec(**BIAS), chunk_size=5).to_dataframe()
    pd.testing.assert_frame_equal(bias_result.to_dataframe(), other)


def test_columns_and_xarray_axes(gamma_result, bias_result):
    df = gamma_result.to_dataframe()
    assert {"gamma", "bias", "theory_gamma_star"} <= set(df.columns)
    assert sorted(df["gamma"].unique()) == [0.0, 0.05, 0.5]
    ds = gamma_result.to_xarray()
    assert ds.sizes["gamma"] == 3 and "bias" not in ds.dims and float(ds["bias"]) == 0.0
    ds = bias_result.to_xarray()
    assert ds.sizes["bias"] == 2 and "gamma" not in ds.dims
    assert list(ds["bias"].values) == [0.0, 0.7]


def test_theory_gamma_star_is_the_closed_form(gamma_result):
    df = gamma_result.to_dataframe()
    h, w = df["dt"].to_numpy(), 2.0
    hw = h * w
    closed = np.where(hw <= 1, (1 - np.sqrt(np.maximum(1 - hw**2, 0))) / h, np.nan)
    np.testing.assert_allclose(df["theory_gamma_star"], closed, rtol=1e-12)
    assert df.loc[df.dt == 0.6, "theory_gamma_star"].isna().all()  # h omega = 1.2 > 1
    assert df.loc[df.dt == 0.05, "theory_gamma_star"].notna().all()
    # linear theory with diffusion: |1 + h(-gamma + i omega)|
    amp = np.sqrt((1 - h * df["gamma"]) ** 2 + hw**2)
    np.testing.assert_allclose(df["theory_amplification"], amp, rtol=1e-12)


def test_sweep_case_reproduces_gamma_and_bias_rows(gamma_result, bias_result):
    checked = 0
    for res in (gamma_result, bias_result):
        df = res.to_dataframe()
        pick = df[(df["gamma"] > 0) | (df["bias"] > 0)].groupby(
            ["form", "activation"]).head(1)
        for _, row in pick.iterrows():
            c = ox.sweep_case(res.spec, row)
            f = c["field"]
            if row["form"] == "pre":
                assert float(f.gamma) == row["gamma"]
            assert (f.bias is None) == (row["bias"] == 0)
            if f.bias is not None:
                assert float(jnp.linalg.norm(f.bias)) == pytest.approx(row["bias"], rel=1e-6)
            tr = ox.simulate(f, c["x0"], dt=c["dt"], steps=c["steps"], solver=c["solver"],
                             save_every=c["steps"],
                             divergence_threshold=res.spec.thresholds.divergence_threshold)
            assert int(tr.diverged_at) == int(row["diverged_at"])
            assert float(jnp.linalg.norm(tr.final)) == pytest.approx(row["amplitude_final"],
                                                                     rel=1e-5)
            if f.has_invariant():
                assert float(f.invariant(tr.final)) == pytest.approx(
                    row["invariant_final"], rel=1e-5, abs=1e-6)
            else:
                assert np.isnan(row["invariant_final"]) and np.isnan(row["invariant_initial"])
            checked += 1
    assert checked == 6  # pre x 2 (gamma); pre, post x 2 (bias)


def test_gamma_figure(gamma_result, tmp_path):
    from oscillax._plot import gamma_figure

    p = gamma_figure(gamma_result.to_dataframe(), "euler", 2.0, tmp_path / "g.png")
    assert p.is_file() and p.stat().st_size > 10_000


# -- BatchField --------------------------------------------------------------------------

ACTS = ("identity", "tanh", "relu")


@pytest.mark.parametrize("forms, with_gamma", [(("pre",), True), (("post",), False),
                                               (("pre", "post"), False)])
def test_batch_field_members_with_gamma_and_bias(forms, with_gamma):
    n, w = 3, 2
    segments = tuple((f, i) for f in forms for i in range(len(ACTS)))
    B = len(segments) * w
    rng = np.random.default_rng(1)
    W = rng.standard_normal((B, n, n))
    A = np.moveaxis(W - np.swapaxes(W, 1, 2), 0, -1)
    X = rng.standard_normal((n, B)) * 1.5
    bias = rng.standard_normal((n, B))
    bias[:, ::2] = 0.0  # some members without a bias
    # gamma = 0 on members 0, 3, 6, ...: with and without a bias
    gamma = np.where(np.arange(B) % 3 == 0, 0.0, rng.uniform(0.1, 1.0, B)) if with_gamma \
        else None
    field = BatchField(jnp.asarray(A), tuple(ox.get_activation(a) for a in ACTS), segments,
                       w, None if gamma is None else jnp.asarray(gamma), jnp.asarray(bias))
    Xj = jnp.asarray(X)
    rhs = np.asarray(field.rhs(Xj))
    jac = np.asarray(field.jacobian(Xj))
    rj_f, rj_j = (np.asarray(v) for v in field.rhs_and_jacobian(Xj))
    inv = np.asarray(field.invariant(Xj.T))
    use = field.uses_invariant(B)
    for b in range(B):
        form, a = segments[b // w]
        kw = {"gamma": float(gamma[b])} if gamma is not None else {}
        own = ox.FORMS[form](jnp.asarray(A[:, :, b]), ACTS[a], check_skew=False,
                             bias=None if not bias[:, b].any() else jnp.asarray(bias[:, b]),
                             **kw)
        x = jnp.asarray(X[:, b:b + 1])
        np.testing.assert_array_equal(rhs[:, b], np.asarray(own.rhs(x))[:, 0])
        np.testing.assert_allclose(jac[:, :, b], np.asarray(own.jacobian(x))[:, :, 0],
                                   rtol=1e-12, atol=1e-14)
        np.testing.assert_array_equal(rj_f[:, b], rhs[:, b])
        np.testing.assert_allclose(rj_j[:, :, b], jac[:, :, b], rtol=1e-12, atol=1e-14)
        if own.has_invariant():
            np.testing.assert_allclose(inv[b], float(own.invariant(x[:, 0])), rtol=1e-12)
        else:
            assert np.isnan(inv[b])
        assert bool(use[b]) == (own.activation.odd and own.has_invariant())


def test_batch_field_refuses_gamma_on_post_segments():
    act = (ox.get_activation("tanh"),)
    with pytest.raises(ValueError, match="`gamma` applies to pre segments only"):
        BatchField(jnp.zeros((2, 2)), act, (("post", 0),), 1, jnp.zeros((1,)))
