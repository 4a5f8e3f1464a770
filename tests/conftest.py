"""Test configuration for the core suite.

Precision policy: float64 is switched on for the whole session, here, at import time,
before any test module traces anything. Each pytest-xdist worker is its own process, so
this never leaks into (or races with) another process, and nothing has to be restored.
Tests that check float32 build their arrays with an explicit `dtype=jnp.float32` (the
simulator keeps the dtype of `A` / `x0`), so both precisions are exercised.

`jax_numpy_rank_promotion="raise"` makes any implicit broadcasting between arrays of
different rank an error, as in diffrax's test suite: the engine's `(n, B)` layout must
broadcast explicitly.

Tests that change other global JAX settings (e.g. compile logging) restore them in a
fixture; see `helpers.count_compiles`.
"""

import atexit
import os
import shutil
import tempfile

import jax
import pytest

# Commands run by the tests keep no compilation cache in the home directory (one test
# sets its own).
os.environ.setdefault("OSCILLAX_CACHE_DIR", "off")

# One JAX persistent compilation cache for the whole test session, in a temporary directory
# made by the first process to import this file (the xdist controller, or a plain pytest
# run) and removed when that process exits. Its xdist workers, and every subprocess they
# start (commands, scripts, notebook kernels), inherit the directory through the
# environment, so a program compiled once in the session is loaded, not compiled, by the
# others (the same program text and options: the same executable). It only ever holds this
# session's programs. The tests of caching itself set up and check their own directories
# (test_program_cache.py, test_sweep.py::test_cli_keeps_compiled_programs_between_runs),
# and children that a test kills keep no cache (a killed write would leave a torn entry):
# `helpers.without_session_cache`.
# The sweep's traced-program cache (`oscillax._sweep._program_cache`) stays off, as it was
# without a compilation cache, so the tests run the plain path they always ran; its own
# tests turn it on. `helpers.count_compiles` counts a load from this cache as a compile.
SESSION_CACHE_ENV = "OSCILLAX_TEST_SESSION_JAX_CACHE"  # `off`: run the session without it
# Every program is kept (JAX's default keeps those over 1 s): most of the suite's compiles
# are small ones (eager operations, random keys) that each process would repeat.
MIN_COMPILE_TIME_S = float(os.environ.get("OSCILLAX_TEST_CACHE_MIN_S", "0"))
if not os.environ.get(SESSION_CACHE_ENV):
    _cache_dir = tempfile.mkdtemp(prefix="oscillax-test-jax-cache-")
    os.environ[SESSION_CACHE_ENV] = _cache_dir
    atexit.register(shutil.rmtree, _cache_dir, ignore_errors=True)
if os.environ[SESSION_CACHE_ENV] != "off":
    os.environ["JAX_COMPILATION_CACHE_DIR"] = os.environ[SESSION_CACHE_ENV]
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = str(MIN_COMPILE_TIME_S)
    os.environ.setdefault("OSCILLAX_PROGRAM_CACHE", "0")
    jax.config.update("jax_compilation_cache_dir", os.environ[SESSION_CACHE_ENV])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_TIME_S)

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def getkey():
    """A fresh `jax.random` key on each call, deterministic per test."""
    state = {"key": jax.random.key(5678)}

    def _getkey():
        state["key"], sub = jax.random.split(state["key"])
        return sub

    return _getkey


def pytest_collection_modifyitems(config, items):
    """The long (slow-marked) tests first, each group in its own order. With pytest-xdist's
    work stealing (`--dist worksteal` in pyproject.toml) a worker that runs out of tests
    takes half of the other's queue from its end: started first, the long tests do not
    leave one worker waiting for the other at the end of the run. (Slow tests share no
    module fixture with the others, so no fixture is set up twice for this.)"""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable
