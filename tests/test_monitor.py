"""The atlas engine `integrate_monitored`: blocks with one divergence test, exact replays,
bit-packed zero crossings and per-trajectory sampling, checked against full paths."""

import jax.numpy as jnp
import numpy as np
import pytest

import oscillax as ox
from oscillax._monitor import integrate_monitored
from oscillax._solver import FIXED_SOLVERS

DT = 0.25
STEPS = np.array([37, 60, 60, 45, 9, 60, 21, 60, 53, 1], np.int32)  # ends mid-block too
THR = 3.0  # a low divergence threshold, so linear Euler members cross it at many steps


def _batch(activation):
    A = ox.skew_from_frequencies(jnp.array([1.0]))  # one rotation, omega = 1
    field = ox.PreActivation(A, activation)
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((STEPS.size, 2)) * np.logspace(-1, 3, STEPS.size)[:, None]
    x0[3] = (0.0, 2.0)  # x[0] starts exactly at 0
    return field, jnp.asarray(x0)


def _expected(field, x0, K):
    """Crossings, divergence step and max norm (over block ends, every K steps, and the
    last state) from `ox.simulate`'s full path."""
    norm0 = np.linalg.norm(np.asarray(x0), axis=1)
    tr = ox.simulate(field, x0, dt=DT, steps=int(STEPS.max()), divergence_threshold=THR)
    xs = np.asarray(tr.xs)  # (B, T, 2): a diverged member's state is frozen
    out = []
    for b, s in enumerate(STEPS):
        d = int(tr.diverged_at[b])
        d = d if 0 <= d <= s else -1
        last = s if d < 0 else d - 1  # the last state below the threshold
        pos = ~np.signbit(xs[b, : last + 1, 0])
        ups = np.flatnonzero(pos[1:] & ~pos[:-1]) + 1  # step indices of upward crossings
        out.append(dict(
            div_at=d, n_up=ups.size,
            t_first=ups[0] * DT if ups.size else 0.0,
            t_last=ups[-1] * DT if ups.size else 0.0,
            max_norm=np.linalg.norm(xs[b, [*range(0, last + 1, K), last]], axis=1).max(),
            final=xs[b, last],
        ))
    thr = THR * np.maximum(norm0, 1.0)
    return out, jnp.asarray(thr)


@pytest.mark.parametrize("activation", ["identity", "tanh"])
@pytest.mark.parametrize("check_every", [1, 5, 16, 32])
def test_blocks_match_the_full_path(activation, check_every):
    field, x0 = _batch(activation)
    exp, thr = _expected(field, x0, check_every)
    out = integrate_monitored(field, FIXED_SOLVERS["euler"], x0.T,
                              jnp.full((STEPS.size,), DT), jnp.asarray(STEPS), thr,
                              check_every=check_every)
    if activation == "identity":  # Euler grows the linear system: members diverge
        assert sum(e["div_at"] >= 0 for e in exp) >= 3
    for b, e in enumerate(exp):
        assert int(out.diverged_at[b]) == e["div_at"], b
        assert int(out.n_up[b]) == e["n_up"], b
        assert float(out.t_first[b]) == pytest.approx(e["t_first"]), b
        assert float(out.t_last[b]) == pytest.approx(e["t_last"]), b
        np.testing.assert_allclose(np.asarray(out.X[:, b]), e["final"], rtol=1e-12)
        assert float(out.max_norm[b]) == pytest.approx(e["max_norm"], rel=1e-12), b


def test_a_member_does_not_depend_on_its_batch():
    """Sampling depends only on a member's own step count: alone or in a mixed batch, its
    growth-rate sums and drift are the same."""
    field, x0 = _batch("tanh")
    norm0 = np.linalg.norm(np.asarray(x0), axis=1)
    thr = jnp.asarray(1e6 * np.maximum(norm0, 1.0))
    steps = jnp.asarray(STEPS * 40)
    h = jnp.full((STEPS.size,), DT / 40)
    kw = dict(check_every=16, samples=8)
    full = integrate_monitored(field, FIXED_SOLVERS["euler"], x0.T, h, steps, thr, **kw)
    for b in (0, 4, 8):
        one = integrate_monitored(field, FIXED_SOLVERS["euler"], x0[b:b + 1].T, h[b:b + 1],
                                  steps[b:b + 1], thr[b:b + 1], **kw)
        np.testing.assert_array_equal(np.asarray(one.sums)[:, 0],
                                      np.asarray(full.sums)[:, b])
        assert float(one.max_drift[0]) == float(full.max_drift[b])
    # the sample points: every steps // samples steps (a multiple of the block length when
    # longer than it), and the last step; so at least `samples` of them
    sums = np.asarray(full.sums, np.float64)
    for b, s in enumerate(np.asarray(steps)):
        period = s // 8
        period = period // 16 * 16 if period >= 16 else max(period, 1)
        points = np.array([*range(period, s, period), s])
        assert points.size >= min(8, s)
        assert sums[0, b] + sums[5, b] == points.size, b
        assert sums[0, b] == np.sum(points <= s // 2), b
        np.testing.assert_allclose(sums[1, b] + sums[6, b], DT / 40 * points.sum(), rtol=1e-12)


@pytest.mark.parametrize("check_every", [1, 5, 32])
def test_dyadic_records_log_e_at_every_power_of_two_step(check_every):
    """Row j of `dyadic` is log(E/E0) after step 2^j (E = ½|x|², the linear invariant) while
    the member runs below the threshold, NaN after its freeze or its last step: whatever
    the block length and the samples (here 2, so that no sample falls on most powers of
    two), and without changing the trajectory."""
    field, x0 = _batch("identity")
    exp, thr = _expected(field, x0, check_every)
    tr = ox.simulate(field, x0, dt=DT, steps=int(STEPS.max()), divergence_threshold=THR)
    xs = np.asarray(tr.xs)
    out = integrate_monitored(field, FIXED_SOLVERS["euler"], x0.T,
                              jnp.full((STEPS.size,), DT), jnp.asarray(STEPS), thr,
                              check_every=check_every, samples=2)
    D = np.asarray(out.dyadic)
    assert D.shape == (31, STEPS.size)
    for b, e in enumerate(exp):
        assert int(out.diverged_at[b]) == e["div_at"], b
        np.testing.assert_allclose(np.asarray(out.X[:, b]), e["final"], rtol=1e-12)
        last = STEPS[b] if e["div_at"] < 0 else e["div_at"] - 1  # the last state below
        for j in range(31):
            k = 2 ** j
            if k <= last:
                want = np.log(np.sum(xs[b, k] ** 2) / np.sum(xs[b, 0] ** 2))
                assert D[j, b] == pytest.approx(want, rel=1e-9, abs=1e-12), (b, j)
            else:
                assert np.isnan(D[j, b]), (b, j)
    assert np.isfinite(D[:3]).sum() >= 20  # members recorded at steps 1, 2 and 4


@pytest.mark.parametrize("bad", [dict(check_every=0), dict(check_every=33), dict(samples=0)])
def test_bad_block_settings(bad):
    field, x0 = _batch("tanh")
    with pytest.raises(ValueError, match=next(iter(bad))):
        integrate_monitored(field, FIXED_SOLVERS["euler"], x0.T, jnp.full((10,), DT),
                            jnp.asarray(STEPS), jnp.full((10,), 1e30), **bad)
