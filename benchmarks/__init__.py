"""Benchmarks of issue #4: oscillax vs diffrax, numpy, torchdiffeq and scipy, side by side.

Run `python -m benchmarks [--quick] [--workloads W2,W512,atlas,grad,longrun] [--repeats N]
[--out PATH]`, or `oscillax bench` from a source checkout. Workloads are in `_workloads.py`,
implementations in `_impls.py`, the timing and memory harness in `_harness.py`.
"""

from ._cli import run as run
