#!/usr/bin/env bash
# What tracking costs a head-tuning grid (release build): the 30-run grid of
# bench/head-rte-grid.toml on cached MiniLM features, run without tracking, with
# `--track tensorboard`, with `--track mlflow=URL` (a real MLflow server on this machine,
# SQLite store), with both, and with `--track mlflow=URL` while nothing listens there (a
# server that is down). The server's own CPU time for each grid is printed too: on a
# 2-core machine it competes with the training. Each variant starts from a copy of the warmed feature cache in its own results
# directory, ROUNDS times in turn. Prints runs/hour and the end-of-grid wait for each,
# and the CPU model. Needs MiniLM under target/minilm and ../shared/data; the venv with
# MLflow is made as scripts/tracking_e2e.sh makes it (scripts/mlflow_server.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p stab-cli
stab=$PWD/target/release/stab
recipe=bench/head-rte-grid.toml
rounds=${ROUNDS:-2}
source scripts/mlflow_server.sh
ensure_tracking_venv
tmp=$(mktemp -d)
server_pid=
trap 'stop_mlflow; rm -rf "$tmp"' EXIT
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) threads"

server_cpu() { # user+system seconds of the server's process group (its session) so far
    ps -o cputimes= -g "$server_pid" 2>/dev/null | awk '{s += $1} END {print s + 0}'
}
port=$(free_port)
start_mlflow "$tmp" "$port"
down=http://127.0.0.1:$(free_port)

STAB_LOG=warn "$stab" run "$recipe" --out "$tmp/warm" >/dev/null 2>&1   # the feature cache
last_cpu=$(server_cpu)
runs=$("$stab" plan "$recipe" | grep -vc '^#\|^shard')

timed() { # name args…: one grid from the warm cache; prints runs/hour
    local name=$1 out="$tmp/$1-$round"; shift
    mkdir -p "$out" && cp -r "$tmp/warm/cache" "$out/"
    local start end
    start=$(date +%s.%N)
    STAB_LOG=warn "$stab" run "$recipe" --out "$out" "$@" 2>"$out.log" >/dev/null
    end=$(date +%s.%N)
    python3 - "$name" "$runs" "$start" "$end" "$out/runs.jsonl" <<'PY'
import json, os, sys
name, runs, start, end, store = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
n = sum(1 for _ in open(store))
last = os.stat(store).st_mtime
grid, total = last - start, end - start
print(f"{name:>22}: {n}/{runs} records in {grid:6.1f} s = {n * 3600 / grid:5.0f} runs/hour; command ended {total - grid:4.1f} s after the last record")
PY
    grep "tracking:" "$out.log" | sed 's/^/                          /' || true
    local cpu
    cpu=$(server_cpu)
    echo "                          mlflow server CPU during this grid: $(python3 -c "print(f'{$cpu - $last_cpu:.1f} s')")"
    last_cpu=$cpu
}
for round in $(seq "$rounds"); do
    echo "round $round"
    timed untracked
    timed tensorboard --track tensorboard
    timed mlflow --track "mlflow=http://127.0.0.1:$port"
    timed mlflow+tensorboard --track "mlflow=http://127.0.0.1:$port" --track tensorboard
    timed mlflow-down --track "mlflow=$down"
done
