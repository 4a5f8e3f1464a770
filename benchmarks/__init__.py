"""`python -m benchmarks` in a source checkout: a thin alias of `oscillax.bench` (the
benchmark suite ships with the package, so `oscillax bench` works from an install too)."""

from oscillax.bench import run as run
