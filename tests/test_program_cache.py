"""The sweep's engine programs exported to disk (`_sweep/_program_cache.py`, issue 12): a
warm run reads them instead of tracing, with the same numbers; anything that cannot be
described by value (a user's own function) is never cached."""

import os
import subprocess
import sys
import textwrap

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from helpers import without_session_cache

import oscillax as ox
from oscillax._activation import _quadrature_antiderivative
from oscillax._sweep import _program_cache as pc


@eqx.filter_jit
def _field_rhs(field, x, *, scale: float):
    return scale * field.rhs(x)


@pytest.fixture
def trusted_tests(monkeypatch):
    """Let this test module's own functions be described by name (as oscillax's are)."""
    monkeypatch.setattr(pc, "_TRUSTED", pc._TRUSTED + (__name__.split(".")[0],))


def _field(n=2, activation="tanh"):
    return ox.PreActivation(ox.random_skew(jax.random.key(0), n), activation=activation)


def _files(d):
    return sorted(p.name for p in d.glob("*.jaxexport")) if d.exists() else []


def _forbid_export(monkeypatch):
    def fail(*a, **k):
        raise AssertionError("traced and exported again instead of read from disk")

    monkeypatch.setattr(jax.export, "export", fail)


def test_a_program_is_exported_once_and_read_back(tmp_path, trusted_tests, monkeypatch):
    field, x = _field(), jnp.array([[0.3], [-1.2]])
    plain = _field_rhs(field, x, scale=2.0)
    cache = pc.ProgramCache(tmp_path)
    np.testing.assert_array_equal(cache.call(_field_rhs, (field, x), {"scale": 2.0}), plain)
    (name,) = _files(tmp_path)
    # a new process's cache (nothing in memory) reads the file and does not export
    _forbid_export(monkeypatch)
    again = pc.ProgramCache(tmp_path).call(_field_rhs, (field, x), {"scale": 2.0})
    np.testing.assert_array_equal(again, plain)
    assert _files(tmp_path) == [name]


def test_the_key_follows_the_arguments(tmp_path, trusted_tests):
    cache = pc.ProgramCache(tmp_path)
    x2, x3 = jnp.array([[0.3], [-1.2]]), jnp.array([[0.3], [-1.2], [0.5]])
    calls = [((_field(2), x2), 2.0), ((_field(2), x2), 3.0),  # a static value
             ((_field(3), x3), 2.0),  # shapes
             ((_field(2, "sin"), x2), 2.0),  # an activation (a static field)
             ((_field(2), x2.astype(jnp.float32)), 2.0)]  # a dtype
    for args, scale in calls:
        np.testing.assert_array_equal(cache.call(_field_rhs, args, {"scale": scale}),
                                      _field_rhs(*args, scale=scale))
    assert len(_files(tmp_path)) == len(calls)
    cache.call(_field_rhs, calls[0][0], {"scale": 2.0})  # the same call: no new file
    assert len(_files(tmp_path)) == len(calls)


def test_a_damaged_file_is_exported_again(tmp_path, trusted_tests):
    field, x = _field(), jnp.array([[0.3], [-1.2]])
    pc.ProgramCache(tmp_path).call(_field_rhs, (field, x), {"scale": 2.0})
    (name,) = _files(tmp_path)
    (tmp_path / name).write_bytes(b"not a program")
    out = pc.ProgramCache(tmp_path).call(_field_rhs, (field, x), {"scale": 2.0})
    np.testing.assert_array_equal(out, _field_rhs(field, x, scale=2.0))
    assert (tmp_path / name).read_bytes() != b"not a program"


def test_user_code_is_never_cached(tmp_path):
    # this module is not trusted here: its function's code (or a global it reads) could
    # change between runs without changing any name
    field, x = _field(), jnp.array([[0.3], [-1.2]])
    out = pc.ProgramCache(tmp_path).call(_field_rhs, (field, x), {"scale": 2.0})
    np.testing.assert_array_equal(out, _field_rhs(field, x, scale=2.0))
    assert _files(tmp_path) == []


def test_describe_tells_apart_what_changes_a_program():
    d = pc._describe
    assert d(ox.get_activation("tanh")) == d(ox.get_activation("tanh"))
    assert d(ox.get_activation("tanh")) != d(ox.get_activation("softsign"))
    # closures are described by their contents
    assert d(_quadrature_antiderivative(jnp.tanh)) != d(_quadrature_antiderivative(jnp.sin))
    assert d((1, 2.0)) != d((1, 2)) and d(None) != d("None")
    # arrays by shape, dtype and placement, not by value (they are traced)
    assert d(jnp.zeros(3)) == d(jnp.ones(3)) != d(jnp.zeros(4))
    with pytest.raises(pc._Unstable):
        d(lambda x: x)  # a user's function
    with pytest.raises(pc._Unstable):
        d(ox.get_activation(lambda x: jnp.tanh(2 * x)))  # a user's activation
    with pytest.raises(pc._Unstable):
        d(object())


def test_it_is_on_only_with_a_compilation_cache_and_not_switched_off(tmp_path, monkeypatch):
    monkeypatch.delenv("OSCILLAX_PROGRAM_CACHE", raising=False)  # (conftest.py sets it)
    old = jax.config.jax_compilation_cache_dir
    try:
        jax.config.update("jax_compilation_cache_dir", None)
        assert not pc.enabled()
        jax.config.update("jax_compilation_cache_dir", str(tmp_path))
        assert pc.enabled()
        monkeypatch.setenv("OSCILLAX_PROGRAM_CACHE", "0")
        assert not pc.enabled()
    finally:
        jax.config.update("jax_compilation_cache_dir", old)


_SWEEP = textwrap.dedent("""
    import json, sys
    import jax
    jax.config.update("jax_compilation_cache_dir", sys.argv[1])
    if sys.argv[3] == "no-export":
        def fail(*a, **k):
            raise AssertionError("traced and exported again")
        jax.export.export = fail
    import oscillax as ox
    spec = ox.SweepSpec(forms=("pre", "post"), activations=("identity", "tanh"),
                        solvers=("euler",), dts=(0.1, 0.5), dims=(2,), amplitudes=(1.0,),
                        seeds=3, horizon=5.0)
    ox.sweep(spec, sys.argv[2], figures=False)
""")


@pytest.mark.slow
def test_a_second_process_reads_the_programs_and_gets_the_same_table(tmp_path):
    """Three processes: one exports, one must read (exporting fails there), one runs
    without the cache; the three tables are identical."""
    cache = tmp_path / "jax"
    env = without_session_cache(os.environ)  # (and no OSCILLAX_PROGRAM_CACHE)
    runs = []
    for i, mode in enumerate(["export", "no-export", "off"]):
        e = dict(env, OSCILLAX_PROGRAM_CACHE="0") if mode == "off" else env
        out = tmp_path / f"run{i}"
        p = subprocess.run([sys.executable, "-c", _SWEEP, str(cache), str(out), mode],
                           capture_output=True, text=True, env=e, timeout=600)
        assert p.returncode == 0, p.stderr[-3000:]
        runs.append(pd.read_parquet(out / "results.parquet"))
        if i == 0:
            files = _files(cache / pc.SUBDIR)
            assert files, "the first run exported no program"
    assert _files(cache / pc.SUBDIR) == files
    pd.testing.assert_frame_equal(runs[0], runs[1])
    pd.testing.assert_frame_equal(runs[0], runs[2])


def test_constants_are_described_by_value_traced_arrays_by_shape():
    """An array in a closure (or a static field) is baked into the program: two of the same
    shape but different values must not share a cached program."""
    d = pc._describe
    a, b = np.array([1.0, 2.0]), np.array([1.0, 3.0])

    def scaled(c):
        def fn(x):
            return c * x

        fn.__module__ = "oscillax._test_only"  # described by name, as oscillax's are
        return fn

    assert d(scaled(a)) != d(scaled(b))
    assert d(scaled(a)) == d(scaled(a.copy()))
    assert d((a,)) == d((b,))  # pytree leaves: traced, by shape and dtype only
