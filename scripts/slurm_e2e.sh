#!/usr/bin/env bash
# End-to-end check of `stab plan --slurm` on a real Slurm: bring up a single-node cluster on
# localhost (munged, slurmctld, slurmd from Debian's packages, configuration written here),
# submit the sbatch array for scripts/e2e/tiny-grid.toml in 3 shards, wait for it, and check
# that the shards' merged records equal an unsharded run's, timing fields aside. Then
# `stab report` must give the same table for both stores.
#
# Needs root (the daemons run as root on this throwaway node) and the packages:
#   apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge
# Usage: scripts/slurm_e2e.sh [STAB_BINARY]   (default target/debug/stab, built if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

stab=${1:-target/debug/stab}
if [ ! -x "$stab" ]; then
    cargo build -q -p stab-cli
    stab=target/debug/stab
fi
stab=$(realpath "$stab")

for tool in munged slurmctld slurmd sbatch sinfo squeue python3; do
    command -v "$tool" >/dev/null || { echo "slurm_e2e: $tool not found; install: apt-get install -y slurmctld slurmd slurm-client munge" >&2; exit 2; }
done

work=$(mktemp -d /tmp/stab-slurm-e2e.XXXXXX)
export SLURM_CONF=$work/slurm.conf
pids=()
cleanup() {
    local rc=$?
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ -n "${munge_pid:-}" ]; then kill "$munge_pid" 2>/dev/null || true; fi
    # The daemons write their state while they shut down: wait for them (10 s at most)
    # before removing the directory they write into.
    for p in "${pids[@]}" ${munge_pid:-}; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    done
    if [ $rc -ne 0 ]; then
        echo "slurm_e2e: FAILED (exit $rc); logs:" >&2
        for f in "$work"/*.log "$work"/job/*.log; do
            [ -f "$f" ] && { echo "--- $f" >&2; tail -n 30 "$f" >&2; }
        done
    fi
    rm -rf "$work" 2>/dev/null || { sleep 1; rm -rf "$work" || true; }
    exit $rc
}
trap cleanup EXIT

# --- munge: the authentication every Slurm message carries.
if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown munge:munge /run/munge /var/lib/munge /var/log/munge
if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/stab-e2e.pid --log-file=/var/log/munge/stab-e2e.log
    munge_pid=$(cat /run/munge/stab-e2e.pid)
fi
munge -n </dev/null | unmunge >/dev/null

# --- slurm.conf for one node: this host, all its cores, the memory it has.
host=$(hostname -s)
cpus=$(nproc)
mem_mb=$(awk '/MemTotal/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)
mkdir -p "$work/state" "$work/spool" "$work/job"
cat >"$SLURM_CONF" <<EOF
ClusterName=stab-e2e
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
SlurmctldPort=16817
SlurmdPort=16818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=e2e Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF

slurmctld -D -c -f "$SLURM_CONF" >"$work/slurmctld.out.log" 2>&1 &
pids+=($!)
slurmd -D -N "$host" -f "$SLURM_CONF" >"$work/slurmd.out.log" 2>&1 &
pids+=($!)
for _ in $(seq 60); do
    state=$(sinfo -h -N -o '%t' 2>/dev/null | head -n 1 || true)
    [ "$state" = "idle" ] && break
    sleep 1
done
[ "$state" = "idle" ] || { echo "slurm_e2e: node did not come up (state '${state:-none}')" >&2; exit 1; }
echo "slurm_e2e: single-node cluster up ($host, $cpus CPUs, Slurm $(sinfo -V | awk '{print $2}'))"

# --- the sharded run through Slurm, and the same recipe unsharded.
recipe=$repo/scripts/e2e/tiny-grid.toml
common=(--set "model.path=$repo/testdata/fixtures/tiny-bert" --set "data.dir=$repo/testdata/data")
"$stab" plan "$recipe" --shards 3 --slurm "$work/job/array.sbatch" --cpus-per-task 1 \
    --time 00:10:00 "${common[@]}" --set "out=$work/sharded"
grep -q -- '--array=0-2' "$work/job/array.sbatch"
(cd "$work/job" && timeout 600 sbatch --wait --quiet array.sbatch)
states=$(squeue -h 2>/dev/null | wc -l)
[ "$states" -eq 0 ] || { echo "slurm_e2e: jobs still queued after sbatch --wait" >&2; exit 1; }
shard_files=$(ls "$work/sharded"/runs.shard-*-of-3.jsonl | wc -l)
[ "$shard_files" -eq 3 ] || { echo "slurm_e2e: expected 3 shard stores, found $shard_files" >&2; ls -la "$work/sharded" >&2; exit 1; }

"$stab" run "$recipe" "${common[@]}" --set "out=$work/unsharded" --threads 1 >"$work/unsharded.log" 2>&1

python3 - "$work/sharded" "$work/unsharded" <<'EOF'
import glob, json, sys

TIMING = {"wall_s", "seconds"}  # wall clock, and the per-phase seconds under details

def strip(value):
    if isinstance(value, dict):
        return {k: strip(v) for k, v in value.items() if k not in TIMING}
    if isinstance(value, list):
        return [strip(v) for v in value]
    return value

def load(directory):
    records = {}
    for path in sorted(glob.glob(f"{directory}/runs*.jsonl")):
        for line in open(path):
            if line.strip():
                r = json.loads(line)
                assert r["run_id"] not in records, f"{r['run_id']} recorded twice"
                records[r["run_id"]] = strip(r)
    return records

sharded, unsharded = load(sys.argv[1]), load(sys.argv[2])
assert len(unsharded) == 8, f"the unsharded run recorded {len(unsharded)} runs, expected 8"
assert sharded.keys() == unsharded.keys(), (
    f"run ids differ: only sharded {sorted(sharded.keys() - unsharded.keys())}, "
    f"only unsharded {sorted(unsharded.keys() - sharded.keys())}")
for run_id in sorted(unsharded):
    assert sharded[run_id] == unsharded[run_id], (
        f"{run_id} differs:\n sharded   {sharded[run_id]}\n unsharded {unsharded[run_id]}")
print(f"slurm_e2e: {len(sharded)} records identical between 3 Slurm shards and the unsharded run (timing aside)")
EOF

"$stab" report "$work/sharded" --format csv >"$work/sharded.csv"
"$stab" report "$work/unsharded" --format csv >"$work/unsharded.csv"
if ! diff -u "$work/unsharded.csv" "$work/sharded.csv"; then
    echo "slurm_e2e: the merged report differs from the unsharded one" >&2
    exit 1
fi
echo "slurm_e2e: merged report equals the unsharded report; OK"
