#!/usr/bin/env bash
# Seed batching (docs/methods.md §4.5), release build: runs per hour of head-tuning grids
# with every seed alone (`--seed-batch 1`) and seed-batched (the default), side by side.
#
# For each recipe (default: bench/head-all-methods.toml, the 450-run all-methods grid, and
# bench/head-100-seeds.toml, 200 runs): a first solo pass into a fresh directory encodes
# every task and prepares the per-task encoders (SURT, reinit); then a solo and a batched
# pass with `--fresh` on the cached features, and a batched pass capped at 7 seeds
# (SEVEN=0 skips it). "Encoding included" adds the first pass's
# encoding and preparation time (first pass − cached solo pass) to the cached time. The
# script also checks that the two cached passes wrote the same records and predictions
# (timings aside). Needs MiniLM under target/minilm (see .ci/run) and ../shared/data.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p stab-cli
stab=target/release/stab
threads=${THREADS:-$(nproc)}
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $threads threads"
timed() {
    local start end
    start=$(date +%s.%N)
    STAB_LOG=warn "$@" >/dev/null 2>&1
    end=$(date +%s.%N)
    python3 -c "print($end - $start)"
}
for recipe in ${RECIPES:-bench/head-all-methods.toml bench/head-100-seeds.toml}; do
    out=$(mktemp -d)
    runs=$("$stab" plan "$recipe" | grep -vc '^#\|^shard')
    first=$(timed "$stab" run "$recipe" --out "$out" --threads "$threads" --seed-batch 1)
    solo=$(timed "$stab" run "$recipe" --out "$out" --threads "$threads" --fresh --seed-batch 1)
    batched=$(timed "$stab" run "$recipe" --out "$out" --threads "$threads" --fresh)
    seven=0
    if [ "${SEVEN:-1}" = 1 ]; then
        seven=$(timed "$stab" run "$recipe" --out "$out" --threads "$threads" --fresh --seed-batch 7)
    fi
    python3 - "$out" "$recipe" "$runs" "$first" "$solo" "$batched" "$seven" <<'EOF'
import json, sys
out, recipe, runs, first, solo, batched, seven = sys.argv[1], sys.argv[2], int(sys.argv[3]), *map(float, sys.argv[4:])
passes = {}
for line in open(f"{out}/runs.jsonl"):
    r = json.loads(line)
    r["wall_s"] = None
    d = r["details"]
    for k in ("seconds", "feature_cache"):
        d.pop(k, None)
    if isinstance(d.get("prepare"), dict):
        d["prepare"].pop("seconds", None)
        d["prepare"].pop("cache", None)
    passes.setdefault(r["run_id"], []).append(r)
same = sum(all(q == p[1] for q in p[2:]) for p in passes.values())
encode = first - solo
rate = lambda s: runs * 3600 / s
print(f"{recipe}: {runs} runs; records of the cached passes equal to the solo pass's: {same} of {len(passes)}")
print(f"  cached features:   solo {solo:7.1f} s ({rate(solo):8.0f} runs/h)   batched {batched:7.1f} s ({rate(batched):8.0f} runs/h)   {solo / batched:5.1f}x")
if seven:
    print(f"  batches of 7:      {seven:7.1f} s ({rate(seven):8.0f} runs/h)   {solo / seven:5.1f}x")
print(f"  encoding included: solo {first:7.1f} s ({rate(first):8.0f} runs/h)   batched {batched + encode:7.1f} s ({rate(batched + encode):8.0f} runs/h)   {first / (batched + encode):5.1f}x  (encoding and preparation {encode:.1f} s)")
EOF
    rm -rf "$out"
done
