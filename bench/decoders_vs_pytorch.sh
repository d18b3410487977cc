#!/usr/bin/env bash
# The decoders against PyTorch on this CPU (issue #37): a full fine-tuning update, a LoRA
# update (r 8, alpha 16, dropout 0.1, every linear layer of every block; PEFT's all-linear)
# and the eval forward, batch 8 x 128, the head on the last token; from `stab bench step`
# and bench/pytorch_step.py (PyTorch's sdpa attention and PEFT), on random-weight models of
# SmolLM2-135M's shape and of Qwen3-0.6B's with 4 of its 28 layers
# (bench/make_decoder_models.py).
#
#   PYTHON=/tmp/torchenv/bin/python bench/decoders_vs_pytorch.sh [OUT_DIR]
#
# Needs torch, transformers and peft in PYTHON. Run it on an otherwise idle machine;
# REPEATS (default 3) updates after one warm-up; THREADS (default: every core).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
out=${1:-target/bench-decoders}
repeats=${REPEATS:-3}
threads=${THREADS:-$(nproc)}
mkdir -p "$out"
[ -f "$out/qwen3-0.6b-shape-4l/model.safetensors" ] || "$python" bench/make_decoder_models.py testdata/fixtures "$out"
cargo build -q --release -p stab-cli
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') (family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | tr -d ' '), model $(grep -m1 '^model[[:space:]]' /proc/cpuinfo | cut -d: -f2 | tr -d ' ')), $threads thread(s)"
stab() { RAYON_NUM_THREADS=$threads STAB_LOG=warn target/release/stab bench step --model "$1" --batch 8 --seq 128 --repeats "$repeats" "${@:2}" | sed -n 's/^json: //p'; }
torch() { "$python" bench/pytorch_step.py --model "$1" --batch 8 --seq 128 --pool last --steps "$repeats" --threads "$threads" "${@:2}" 2>/dev/null | tail -1; }
for m in smollm2-135m-shape qwen3-0.6b-shape-4l; do
    dir="$out/$m"
    s_full=$(stab "$dir"); s_lora=$(stab "$dir" --lora 8)
    t_full=$(torch "$dir"); t_lora=$(torch "$dir" --lora 8 --no-eval)
    "$python" - "$m" "$s_full" "$s_lora" "$t_full" "$t_lora" <<'PY'
import json, sys
m, sf, sl, tf, tl = sys.argv[1], *map(json.loads, sys.argv[2:])
print(f"== {m} (PyTorch {tf['torch']}, stab / PyTorch time; below 1: stab faster)")
for what, s, t in [("full fine-tuning update", sf["train_step_s"], tf["train_step_s"]),
                   ("LoRA r 8 update", sl["train_step_s"], tl["train_step_s"]),
                   ("eval forward", sf["eval_forward_s"], tf["eval_forward_s"])]:
    print(f"  {what:24s} stab {s:7.3f} s   PyTorch {t:7.3f} s   ratio {s / t:.2f}")
PY
done
