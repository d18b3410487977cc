#!/usr/bin/env bash
# The matrix products of a MiniLM-L6 training step (16 x 128 tokens) through stab's flex
# backend (the gemm crate), PyTorch (oneDNN/MKL) and NumPy (OpenBLAS), one thread count at
# a time (THREADS, default "1 2"), with the CPU model and an estimate of its f32 peak.
# Issue #24, deliverable 1: where the training step's product time goes, per shape.
#
# Needs a Python with torch and numpy (PYTHON, default python3), e.g. the venv of
# bench/vs_pytorch.sh. Run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
reps=${REPS:-20}
"$python" -c "import torch, numpy" 2>/dev/null || {
    echo "$python cannot import torch and numpy (see bench/vs_pytorch.sh)" >&2; exit 2; }
cargo bench -q -p stab-models --bench gemm --no-run 2>/dev/null
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
family=$(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | tr -d ' ')
model=$(grep -m1 '^model[[:space:]]' /proc/cpuinfo | cut -d: -f2 | tr -d ' ')
mhz=$(grep -m1 'cpu MHz' /proc/cpuinfo | cut -d: -f2 | tr -d ' ')
lanes=8
grep -qw avx512f /proc/cpuinfo && lanes=16
for t in ${THREADS:-1 2}; do
    stab_json=$(RAYON_NUM_THREADS=$t STAB_BENCH_REPS=$reps cargo bench -q -p stab-models \
        --bench gemm 2>/dev/null | sed -n 's/^json: //p')
    blas_json=$(OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t MKL_NUM_THREADS=$t \
        "$python" bench/gemm_shapes.py "$stab_json" "$t" "$reps")
    "$python" - "$stab_json" "$blas_json" "$cpu (family $family, model $model)" "$t" "$mhz" "$lanes" <<'EOF'
import json, sys
stab, blas = json.loads(sys.argv[1]), json.loads(sys.argv[2])
cpu, t, mhz, lanes = sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
# Two FMA ports per core, `lanes` f32 per vector, 2 flop per FMA, at the nominal clock.
peak = t * 2 * lanes * 2 * mhz / 1e3
print(f"cpu: {cpu}, {t} thread(s); f32 peak at the nominal {mhz:.0f} MHz ≈ {peak:.0f} GFLOP/s")
print(f"{'product':<18} {'shape':<26} {'stab':>7} {'torch':>7} {'numpy':>7}  GFLOP/s   stab/torch time")
for s, b in zip(stab["shapes"], blas["shapes"]):
    shape = f"{s['batch']}×[{s['m']}×{s['k']}]·[{s['k']}×{s['n']}]"
    print(f"{s['name']:<18} {shape:<26} {s['gflops']:>7.1f} {b['torch']['gflops']:>7.1f} "
          f"{b['numpy']['gflops']:>7.1f}  {'':8} {s['s'] / b['torch']['s']:.2f}")
print(f"step's products: stab {stab['step_product_s']:.3f} s ({stab['step_gflops']:.1f} GFLOP/s), "
      f"torch {blas['torch_step_product_s']:.3f} s ({blas['torch_step_gflops']:.1f}), "
      f"numpy {blas['numpy_step_product_s']:.3f} s ({blas['numpy_step_gflops']:.1f}); "
      f"{stab['step_gflop']:.1f} GFLOP per step")
EOF
done
