#!/usr/bin/env bash
# The new encoder families against PyTorch on this CPU: a training update (16 x 128 tokens,
# dropout, backward, AdamW) and the eval forward, from `stab bench step` and
# bench/pytorch_step.py (eager attention: DeBERTa-v2 has no sdpa kernel in transformers), on
# random-weight base-width models made by bench/make_family_models.py.
#
#   PYTHON=/tmp/torchenv/bin/python bench/families_vs_pytorch.sh [OUT_DIR]
#
# Run it on an otherwise idle machine; REPEATS (default 5) steps after one warm-up.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
out=${1:-target/bench-families}
repeats=${REPEATS:-5}
mkdir -p "$out"
[ -f "$out/modernbert-base-6l/model.safetensors" ] || "$python" bench/make_family_models.py testdata/fixtures "$out"
cargo build -q --release -p stab-cli
grep -m1 "model name" /proc/cpuinfo || true
for m in deberta-v3-base-4l modernbert-base-6l; do
    echo "== $m"
    STAB_LOG=warn target/release/stab bench step --model "$out/$m" --repeats "$repeats" | tail -1
    "$python" bench/pytorch_step.py --model "$out/$m" --steps "$repeats" --threads "$(nproc)" --attention eager 2>/dev/null
done
