#!/usr/bin/env bash
# Grid throughput of `stab run --jobs K` (release build): the 30-run head-tuning grid of
# bench/head-rte-grid.toml, first once to fill the feature cache, then timed with K = 1
# and K = 2 (`--fresh`, appending records; each run's record is the same either way).
# Prints runs/hour per K and the CPU model. Needs MiniLM under target/minilm (see .ci/run)
# and the task files under ../shared/data.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p stab-cli
stab=target/release/stab
recipe=bench/head-rte-grid.toml
threads=${THREADS:-$(nproc)}
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $threads threads"
STAB_LOG=warn "$stab" run "$recipe" --threads "$threads" >/dev/null 2>&1   # warm the feature cache
runs=$("$stab" plan "$recipe" | grep -vc '^#\|^shard')
for k in ${JOBS:-1 2}; do
    start=$(date +%s.%N)
    STAB_LOG=warn "$stab" run "$recipe" --fresh --threads "$threads" --jobs "$k" >/dev/null 2>&1
    end=$(date +%s.%N)
    python3 -c "s = $end - $start; print(f'jobs {$k}: {$runs} runs in {s:.1f} s = {$runs * 3600 / s:.0f} runs/hour')"
done
