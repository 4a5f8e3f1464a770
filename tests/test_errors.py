"""Bad input: every check raises a ValueError naming the argument, what it got, and the fix,
before any compute (the engine is never reached)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import oscillax as ox
import oscillax._solve as _solve

A4 = np.asarray(ox.skew_from_frequencies([1.0, 2.0]))


@pytest.fixture
def field():
    return ox.PreActivation(A4, "tanh")


@pytest.fixture
def no_engine(monkeypatch):
    """Make reaching either engine a test failure (AssertionError is not a ValueError)."""

    def boom(*args, **kwargs):
        raise AssertionError("validation let bad input reach the engine")

    monkeypatch.setattr(_solve, "_run_fixed", boom)
    monkeypatch.setattr(_solve, "_run_adaptive", boom)


def test_no_engine_fixture_works(field, no_engine):
    # control: valid input does reach the (patched) engine
    with pytest.raises(AssertionError, match="reach the engine"):
        ox.simulate(field, jnp.ones(4), dt=0.1, steps=3)


# --- the matrix A ------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [ox.PreActivation, ox.PostActivation])
@pytest.mark.parametrize("shape", [(3, 4), (4,), (2, 2, 2)])
def test_A_not_square(cls, shape):
    with pytest.raises(ValueError, match=r"`A` must be a square matrix \(n, n\); got shape "
                                         + r"\(" + r", ".join(map(str, shape)) + r",?\)"
                                         + r".*ox\.skew\(W\)"):
        cls(np.zeros(shape), "tanh")


@pytest.mark.parametrize("cls", [ox.PreActivation, ox.PostActivation])
def test_A_not_skew(cls):
    M = A4.copy()
    M[0, 1] = 0.5  # was -1: (A + A.T)[0, 1] = 1.5, max|A| = 2, so 0.75
    with pytest.raises(ValueError, match=r"`A` must be skew-symmetric \(A\.T == -A\); "
                                         r"measured asymmetry .* = 0\.75 > 1e-05\. Use "
                                         r"ox\.skew\(W\).*check_skew=False"):
        cls(M, "tanh")
    # the opt-out
    field = cls(M, "tanh", check_skew=False)
    np.testing.assert_array_equal(field.A, M)


def test_A_nearly_skew_is_accepted():
    M = A4.copy()
    M[0, 1] += 1e-9  # round-off sized
    ox.PostActivation(M, "tanh")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("check_skew", [True, False])
def test_A_non_finite(bad, check_skew):
    M = A4.copy()
    M[1, 0] = bad
    with pytest.raises(ValueError, match=r"`A` contains NaN or inf \(1 entries\); pass a "
                                         r"finite matrix"):
        ox.PreActivation(M, "tanh", check_skew=check_skew)


def test_A_non_finite_in_simulate(field, no_engine):
    # a field whose A was replaced after construction (e.g. by a training step)
    broken = eqx.tree_at(lambda f: f.A, field, field.A.at[0, 1].set(jnp.nan))
    with pytest.raises(ValueError, match=r"`A` contains NaN or inf; pass a finite matrix"):
        ox.simulate(broken, jnp.ones(4), dt=0.1, steps=3)


def test_A_integer_is_not_an_error():
    assert jnp.issubdtype(ox.PreActivation(np.array([[0, 1], [-1, 0]])).dtype, jnp.floating)


def test_A_complex_rejected():
    with pytest.raises(ValueError, match=r"`A` must have a floating dtype; got complex64\. "
                                         r"Pass a real matrix"):
        ox.PreActivation(A4.astype(np.complex64), "tanh")


# --- other field arguments ---------------------------------------------------------------


@pytest.mark.parametrize("gamma", [-0.1, np.nan, np.inf, np.array([0.1, 0.2])])
def test_gamma_invalid(gamma):
    with pytest.raises(ValueError, match=r"`gamma` must be a finite scalar >= 0 \(the "
                                         r"diffusion term\); got"):
        ox.PreActivation(A4, "tanh", gamma=gamma)


def test_unknown_activation_in_field():
    with pytest.raises(ValueError, match=r"`activation` must be one of identity, tanh.*; "
                                         r"got 'tahn'"):
        ox.PostActivation(A4, "tahn")


def test_bias_shape():
    with pytest.raises(ValueError, match=r"`bias` must have shape \(4,\) to match A; got "
                                         r"\(3,\)"):
        ox.PreActivation(A4, "tanh", bias=np.ones(3))


def test_bias_non_finite():
    with pytest.raises(ValueError, match=r"`bias` contains NaN or inf; pass finite values"):
        ox.PostActivation(A4, "tanh", bias=np.array([0.0, np.nan, 0.0, 0.0]))


def test_input_matrix_shape():
    with pytest.raises(ValueError, match=r"`input_matrix` must have shape \(4, m\); got "
                                         r"\(3, 2\)"):
        ox.PreActivation(A4, "tanh", input_matrix=np.ones((3, 2)))


def test_drive_without_input_matrix():
    with pytest.raises(ValueError, match=r"`drive` needs an `input_matrix` \(n, m\)"):
        ox.PreActivation(A4, "tanh", drive=jnp.sin)


def test_drive_not_callable():
    with pytest.raises(ValueError, match=r"`drive` must be a function of t; got ndarray"):
        ox.PreActivation(A4, "tanh", input_matrix=np.ones((4, 1)), drive=np.ones(3))


# --- simulate ----------------------------------------------------------------------------


def test_field_not_a_field(no_engine):
    with pytest.raises(ValueError, match=r"`field` must be an oscillax field .*; got "
                                         r"function\. For other vector fields use diffrax"):
        ox.simulate(lambda t, x, a: x, jnp.ones(4), dt=0.1, steps=3)


@pytest.mark.parametrize("shape", [(3,), (2, 5), (4, 4, 4), ()])
def test_x0_shape(field, no_engine, shape):
    got = r"\(" + r", ".join(map(str, shape)) + (r",\)" if len(shape) == 1 else r"\)")
    with pytest.raises(ValueError, match=r"`x0` must have shape \(4,\) or \(B, 4\) to match "
                                         r"A \(4x4\); got shape " + got
                                         + r"\. Pass one state of length 4"):
        ox.simulate(field, jnp.ones(shape), dt=0.1, steps=3)


def test_x0_empty_batch(field, no_engine):
    with pytest.raises(ValueError, match=r"`x0` is an empty batch \(0, n\); pass at least"):
        ox.simulate(field, jnp.ones((0, 4)), dt=0.1, steps=3)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_x0_non_finite(field, no_engine, bad):
    x0 = np.ones((3, 4))
    x0[1, 2] = bad
    with pytest.raises(ValueError, match=r"`x0` contains NaN or inf \(1 entries\); pass "
                                         r"finite initial states"):
        ox.simulate(field, x0, dt=0.1, steps=3)


@pytest.mark.parametrize("dt", [0.0, -0.1, np.nan, np.inf, -np.inf, np.array([0.1, 0.2])])
def test_dt_invalid(field, no_engine, dt):
    with pytest.raises(ValueError, match=r"`dt` must be a positive finite scalar step size, "
                                         r"e\.g\. dt=0\.01; got"):
        ox.simulate(field, jnp.ones(4), dt=dt, steps=3)


@pytest.mark.parametrize("dt", [None, "0.1", True])
def test_dt_wrong_type(field, no_engine, dt):
    with pytest.raises(ValueError, match=r"`dt` must be a positive finite step size; got"):
        ox.simulate(field, jnp.ones(4), dt=dt, steps=3)


def test_dt_shows_value(field, no_engine):
    with pytest.raises(ValueError, match=r"got -0\.25\.$"):
        ox.simulate(field, jnp.ones(4), dt=-0.25, steps=3)


def test_dt_traced_non_positive(field):
    # Under jit the value is checked at run time with eqx.error_if.
    run = jax.jit(lambda dt: ox.simulate(field, jnp.ones(4), dt=dt, steps=3).xs)
    with pytest.raises(Exception, match=r"`dt` must be positive and finite"):
        jax.block_until_ready(run(-0.1))
    assert run(0.1).shape == (4, 4)


@pytest.mark.parametrize("steps, t1", [(None, None), (10, 1.0)])
def test_steps_xor_t1(field, no_engine, steps, t1):
    with pytest.raises(ValueError, match=r"pass exactly one of `steps` \(number of steps\) or "
                                         rf"`t1` \(end time\); got steps={steps}, t1={t1}"):
        ox.simulate(field, jnp.ones(4), dt=0.1, steps=steps, t1=t1)


@pytest.mark.parametrize("steps", [0, -3, 2.5, True, "10"])
def test_steps_invalid(field, no_engine, steps):
    with pytest.raises(ValueError, match=r"`steps` must be an integer >= 1; got"):
        ox.simulate(field, jnp.ones(4), dt=0.1, steps=steps)


def test_steps_numpy_integer_ok(field):
    assert ox.simulate(field, jnp.ones(4), dt=0.1, steps=np.int64(3)).steps == 3


@pytest.mark.parametrize("t1", [0.0, -1.0, np.nan, np.inf])
def test_t1_invalid(field, no_engine, t1):
    with pytest.raises(ValueError, match=r"`t1` must be a positive finite end time; got"):
        ox.simulate(field, jnp.ones(4), dt=0.1, t1=t1)


def test_t1_under_jit(field):
    with pytest.raises(ValueError, match=r"`t1` needs concrete .* pass `steps=` instead"):
        jax.jit(lambda dt: ox.simulate(field, jnp.ones(4), dt=dt, t1=1.0).xs)(0.1)


@pytest.mark.parametrize("save_every", [0, -1, 1.5, True])
def test_save_every_invalid(field, no_engine, save_every):
    with pytest.raises(ValueError, match=r"`save_every` must be an integer >= 1 \(save every "
                                         r"k-th step\); got"):
        ox.simulate(field, jnp.ones(4), dt=0.1, steps=3, save_every=save_every)


def test_unknown_solver(field, no_engine):
    with pytest.raises(ValueError) as info:
        ox.simulate(field, jnp.ones(4), dt=0.1, steps=3, solver="rk45")
    msg = str(info.value)
    assert msg.startswith("`solver` must be one of") and "got 'rk45'" in msg
    for name in ox.SOLVERS:
        assert name in msg


@pytest.mark.parametrize("kw", [{"divergence_threshold": 0.0}, {"divergence_floor": -1.0}])
def test_divergence_options(field, no_engine, kw):
    with pytest.raises(ValueError, match=r"`divergence_threshold` and `divergence_floor` must "
                                         r"be positive; got"):
        ox.simulate(field, jnp.ones(4), dt=0.1, steps=3, **kw)


def test_solver_name_is_case_insensitive(field):
    assert ox.simulate(field, jnp.ones(4), dt=0.1, steps=2, solver=" RK4 ").xs.shape == (3, 4)
