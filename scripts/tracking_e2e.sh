#!/usr/bin/env bash
# Tracking end to end (docs/tracking.md), run by .ci/run: a real MLflow tracking server
# (PyPI's mlflow, SQLite backend store, its artifact proxy) on localhost, and TensorBoard's
# own EventAccumulator, checking what `stab run --track` and `stab track` delivered
# against the store (scripts/check_tracking.py):
#   1. a grid tracked to MLflow and TensorBoard: every run, curve, tag and result arrives,
#      and run again with --fresh the server holds each run's latest attempt once;
#   2. a grid killed mid-run and resumed: the server holds each run once;
#   3. the server killed mid-grid: the grid still records every run and says what the
#      server missed; restarted, `stab track` sends it, and a second send adds nothing;
#   4. `stab track` sends the grid's report as one run's artifacts.
#
#   scripts/tracking_e2e.sh [path/to/stab]
set -euo pipefail
cd "$(dirname "$0")/.."
STAB=$(realpath "${1:-target/debug/stab}")
root=$PWD

source scripts/mlflow_server.sh
ensure_tracking_venv
py="$root/$tracking_venv/bin/python"

tmp=$(mktemp -d)
server_pid=
grid_pid=
cleanup() {
    [ -n "$grid_pid" ] && kill -9 "$grid_pid" 2>/dev/null || true
    stop_mlflow
    rm -rf "$tmp"
}
trap cleanup EXIT
port=$(free_port)
url=http://127.0.0.1:$port

# A tiny BERT head-tuning grid: `seeds` seeds of FineTune and MMR on the tasks given.
recipe() { # name tasks seeds
    cat >"$tmp/$1.toml" <<EOF
name = "$1"
[model]
path = "$root/testdata/fixtures/tiny-bert"
max_len = 32
[data]
dir = "$root/testdata/data"
tasks = $2
[train]
mode = "head"
max_steps = 40
eval_every = 8
batch_size = 8
lr = 0.01
seeds = $3
[[methods]]
name = "finetune"
[[methods]]
name = "mmr"
EOF
    echo "$tmp/$1.toml"
}
# A busy machine (CI runs other checks beside this one) can slow the server past the
# grid's default wait at its end; the checks that expect every run delivered wait longer.
wait_long=(--track-wait 120)
records() { cat "$1"/runs*.jsonl 2>/dev/null | wc -l; }
wait_records() { # dir n pid: until the store holds n records (the grid must still run)
    while [ "$(records "$1")" -lt "$2" ]; do
        kill -0 "$3" 2>/dev/null || { echo "FAIL: the grid ended before $2 records" >&2; exit 1; }
        sleep 0.05
    done
}

start_mlflow "$tmp" "$port"

echo "== 1. a tracked grid: MLflow and TensorBoard"
r=$(recipe e2e-tracked '["cb", "rte"]' 3)
"$STAB" run "$r" --out "$tmp/tracked" "${wait_long[@]}" --track "mlflow=$url" --track tensorboard 2>"$tmp/tracked.log"
grep "tracking:" "$tmp/tracked.log"
"$py" scripts/check_tracking.py "$tmp/tracked" --experiment e2e-tracked --mlflow "$url" \
    --tensorboard "$tmp/tracked/tensorboard"

echo "== 1b. the same grid again with --fresh: the server keeps each run's latest attempt"
"$STAB" run "$r" --out "$tmp/tracked" --fresh "${wait_long[@]}" --track "mlflow=$url" 2>"$tmp/fresh.log"
grep "tracking:" "$tmp/fresh.log"
"$py" scripts/check_tracking.py "$tmp/tracked" --experiment e2e-tracked --mlflow "$url"

echo "== 2. a tracked grid killed mid-run, then resumed: each run once on the server"
r=$(recipe e2e-resumed '["cb"]' 12)
"$STAB" run "$r" --out "$tmp/resumed" "${wait_long[@]}" --track "mlflow=$url" 2>"$tmp/resumed-1.log" &
grid_pid=$!
wait_records "$tmp/resumed" 3 "$grid_pid"
kill -9 "$grid_pid"
wait "$grid_pid" 2>/dev/null || true
grid_pid=
killed_at=$(records "$tmp/resumed")
"$STAB" run "$r" --out "$tmp/resumed" "${wait_long[@]}" --track "mlflow=$url" 2>"$tmp/resumed-2.log"
echo "killed after $killed_at of 24 records; resumed: $(grep "tracking:" "$tmp/resumed-2.log")"
"$py" scripts/check_tracking.py "$tmp/resumed" --experiment e2e-resumed --mlflow "$url" --lr optional

echo "== 3. the server killed mid-grid"
r=$(recipe e2e-server-killed '["cb"]' 12)
"$STAB" run "$r" --out "$tmp/killed" --track "mlflow=$url" --track-wait 2 2>"$tmp/killed.log" &
grid_pid=$!
wait_records "$tmp/killed" 3 "$grid_pid"
stop_mlflow
status=0
wait "$grid_pid" || status=$?
grid_pid=
if [ "$status" -ne 0 ] || [ "$(records "$tmp/killed")" -ne 24 ]; then
    cat "$tmp/killed.log" >&2
    echo "FAIL: with the server killed the grid exited $status with $(records "$tmp/killed") of 24 records" >&2
    exit 1
fi
grep -q "not (complete)" "$tmp/killed.log" || { cat "$tmp/killed.log" >&2; echo "FAIL: the grid did not say what the server missed" >&2; exit 1; }
echo "grid finished with 24 of 24 records; $(grep "tracking:" "$tmp/killed.log" | head -1)"
start_mlflow "$tmp" "$port"
"$STAB" track "$tmp/killed" --to "mlflow=$url" 2>"$tmp/track-1.log"
cat "$tmp/track-1.log"
"$py" scripts/check_tracking.py "$tmp/killed" --experiment e2e-server-killed --mlflow "$url" --lr optional
"$STAB" track "$tmp/killed" --to "mlflow=$url" 2>"$tmp/track-2.log"
grep -q "0 runs delivered, 24 already there" "$tmp/track-2.log" || { cat "$tmp/track-2.log" >&2; echo "FAIL: a second send was not a no-op" >&2; exit 1; }
echo "a second stab track: $(cat "$tmp/track-2.log")"
"$py" scripts/check_tracking.py "$tmp/killed" --experiment e2e-server-killed --mlflow "$url" --lr optional

echo "== 4. stab track sends the grid's report as one run's artifacts (replacing an older one)"
"$STAB" report "$tmp/killed" --html >/dev/null 2>&1
"$STAB" track "$tmp/killed" --to "mlflow=$url" 2>/dev/null
"$STAB" track "$tmp/killed" --to "mlflow=$url" 2>"$tmp/track-3.log"
grep "report" "$tmp/track-3.log"
"$py" scripts/check_tracking.py "$tmp/killed" --experiment e2e-server-killed --mlflow "$url" --lr optional --report

echo "tracking end to end: OK"
