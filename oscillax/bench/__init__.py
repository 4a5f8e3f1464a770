"""The benchmark suite: oscillax beside diffrax, numpy, torchdiffeq and scipy, side by side.

Run `oscillax bench [--quick] [--workloads e2e-atlas,e2e-sweep,W2,W512,atlas,grad,longrun]
[--repeats N] [--out PATH]` (or `python -m oscillax.bench`; `python -m benchmarks` in a
checkout). The end-to-end workloads (what a user runs, from fresh processes) are in
`_e2e.py`, the engine workloads in `_workloads.py`, implementations in `_impls.py`, the
timing and memory harness in `_harness.py`. Optional peers (`pip install oscillax[peers]`:
torch, torchdiffeq) are skipped cleanly when absent.
"""

from ._cli import run as run
