#!/usr/bin/env bash
# GPU check for oscillax: what JAX sees, the W2 and W512 benchmark workloads, and a small
# stability atlas, with their figures printed. About 2-4 minutes on one modern GPU.
#
# Needs an NVIDIA GPU and JAX's CUDA build in the Python environment:
#     pip install -U "jax[cuda12]"        # or:  benchmarks/gpu_check.sh --install
# Usage (from anywhere in a source checkout):
#     benchmarks/gpu_check.sh [--install]
# Environment: PYTHON (default .venv/bin/python, else python3), OUT (output folder,
# default runs/gpu-check-<time>), BENCH_TIMEOUT / ATLAS_TIMEOUT (seconds per step),
# ALLOW_CPU=1 (run the steps even when JAX sees no GPU: for testing this script).
set -euo pipefail

cd "$(dirname "$0")/.."
if [[ -n "${PYTHON:-}" ]]; then PY=$PYTHON
elif [[ -x .venv/bin/python ]]; then PY=.venv/bin/python
else PY=python3; fi
OUT=${OUT:-runs/gpu-check-$(date +%Y%m%d-%H%M%S)}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-150}
ATLAS_TIMEOUT=${ATLAS_TIMEOUT:-120}
mkdir -p "$OUT"
# One process holds the GPU with a peer (torch) in the benchmarks: don't grab 75 % upfront.
export XLA_PYTHON_CLIENT_PREALLOCATE=${XLA_PYTHON_CLIENT_PREALLOCATE:-false}
SECONDS=0
section() { printf '\n=== %s  (t = %ds)\n' "$1" "$SECONDS"; }

section "machine"
uname -a
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi || echo "nvidia-smi failed (driver not loaded?)"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
else
    echo "nvidia-smi: not found"
fi

if [[ "${1:-}" == "--install" ]]; then
    section "install jax[cuda12] matching the installed jax"
    ver=$("$PY" -c 'import jax; print(jax.__version__)')
    "$PY" -m pip install -U "jax[cuda12]==$ver"
fi

section "jax"
"$PY" - <<'PYEOF'
import jax
print("jax", jax.__version__, "| backend", jax.default_backend())
print("devices:", jax.devices())
print("local devices:", jax.local_device_count(), "| processes:", jax.process_count())
PYEOF
backend=$("$PY" -c 'import jax; print(jax.default_backend())' 2>/dev/null | tail -n1)
if [[ "$backend" != "gpu" && "${ALLOW_CPU:-0}" != "1" ]]; then
    echo "JAX sees no GPU (backend: $backend). Install the CUDA build:" >&2
    echo "    $PY -m pip install -U \"jax[cuda12]\"    (or rerun with --install)" >&2
    exit 3
fi

section "oscillax devices"
"$PY" -m oscillax.cli devices

section "benchmarks W2, W512 (full sizes; quick sizes if they overrun ${BENCH_TIMEOUT}s)"
bench_json="$OUT/bench.json"
if ! timeout "$BENCH_TIMEOUT" "$PY" -m benchmarks --workloads W2,W512 --repeats 3 \
        --out "$bench_json"; then
    echo "full sizes failed or overran; quick sizes instead"
    bench_json="$OUT/bench-quick.json"
    timeout "$BENCH_TIMEOUT" "$PY" -m benchmarks --quick --workloads W2,W512 --out "$bench_json"
fi

section "atlas (4608 trajectories, 16 compiled groups)"
cat > "$OUT/atlas.toml" <<'TOML'
[sweep]
forms = ["pre", "post"]
activations = ["tanh", "relu"]
solvers = ["euler", "rk4"]
dts = { log_start = -3, log_stop = 0, num = 24 }
dims = [2, 4]
amplitudes = [0.5, 1.0, 2.0, 4.0]
seeds = 3
spectral_radius = 3.0
horizon = 20.0
seed = 0
dtype = "float32"
check_every = 8
TOML
timeout "$ATLAS_TIMEOUT" "$PY" -m oscillax.cli atlas "$OUT/atlas.toml" --out "$OUT/atlas" --force

section "figures"
"$PY" - "$bench_json" "$OUT/atlas/summary.json" <<'PYEOF'
import json, sys
bench = json.load(open(sys.argv[1]))
print(f"{'workload':8} {'implementation':28} {'status':8} {'traj-steps/s':>13} {'x oscillax':>10}"
      f" {'first call s':>12}")
for w in bench["workloads"]:
    for r in w["results"]:
        rate = r.get("traj_steps_per_s")
        ratio = r.get("ratio_to_oscillax")
        first = r.get("first_call_s")
        print(f"{w['name']:8} {r['impl'][:28]:28} {r['status'][:8]:8} "
              f"{rate if rate is None else format(rate, '.3g'):>13} "
              f"{ratio if ratio is None else format(ratio, '.3g'):>10} "
              f"{first if first is None else format(first, '.3g'):>12}")
    flops = [r.get("extra", {}).get("flops_per_s") for r in w["results"]]
    if any(flops):
        print(f"{'':8} FLOP/s: " + ", ".join(f"{r['impl']} {f:.3g}" for r, f in
                                             zip(w["results"], flops) if f))
s = json.load(open(sys.argv[2]))
d = s["device"]
print(f"atlas: {s['trajectories']} trajectories, {s['trajectory_steps']:.3g} steps, "
      f"{s['wall_time_s']} s wall ({s['compute_time_s']} s compute incl. compiling), "
      f"{s['trajectory_steps_per_s']:.3g} traj-steps/s on {d['backend']} x{d['device_count']}")
print("status counts:", s["status_counts"])
PYEOF
echo
echo "outputs in $OUT  (total ${SECONDS}s)"
