# Sourced by scripts/tracking_e2e.sh and bench/tracking_overhead.sh: the Python venv with
# MLflow and TensorBoard (target/tracking-venv, from PyPI), a free local port, and a real
# `mlflow server` (SQLite backend store, its artifact proxy) in a process group of its own,
# so that stopping it takes its web workers too. Expects to run from the repository root.

tracking_venv=target/tracking-venv

# Create the venv unless it already has both packages. uv (from PyPI, into the venv) does
# the install: on 2 cores it takes 6 s where pip took 60 (CI creates this venv every run).
# Bytecode is compiled at install, as pip does: without it every Python process of the
# checks compiles MLflow anew, which doubled the checks' time.
ensure_tracking_venv() {
    if [ ! -x "$tracking_venv/bin/mlflow" ] || ! "$tracking_venv/bin/python" -c "import tensorboard" 2>/dev/null; then
        python3 -m venv "$tracking_venv"
        "$tracking_venv/bin/pip" install -q uv
        "$tracking_venv/bin/uv" pip install -q --compile-bytecode --python "$tracking_venv/bin/python" \
            mlflow==3.17.2 tensorboard==2.21.0
    fi
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

healthy() { # url: the server answers /health (with python3, which every CI image has)
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "/health", timeout=2)' "$1" 2>/dev/null
}

# start_mlflow STORE_DIR PORT: start a server keeping its store in STORE_DIR (appending
# to STORE_DIR/server.log) and wait up to 60 s for it to answer; sets server_pid.
start_mlflow() {
    setsid "$PWD/$tracking_venv/bin/mlflow" server --backend-store-uri "sqlite:///$1/mlflow.db" \
        --artifacts-destination "$1/artifacts" --host 127.0.0.1 --port "$2" --workers 1 \
        >>"$1/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 120); do
        healthy "http://127.0.0.1:$2" && return 0
        sleep 0.5
    done
    cat "$1/server.log" >&2
    echo "FAIL: the MLflow server did not start" >&2
    exit 1
}

# Kill the server and its workers (SIGKILL: as a crash would).
stop_mlflow() {
    if [ -n "${server_pid:-}" ]; then
        { kill -9 -- "-$server_pid"; wait "$server_pid"; } 2>/dev/null || true
        server_pid=
    fi
}
