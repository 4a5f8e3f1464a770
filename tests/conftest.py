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

import os

import jax
import pytest

# Commands run by the tests keep no compilation cache in the home directory (one test
# sets its own).
os.environ.setdefault("OSCILLAX_CACHE_DIR", "off")

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
