#!/usr/bin/env bash
# Build the wheel users install with `pip install stab-*.whl` (stab on PATH): the `dist`
# profile (release without debug info; panics still name their source location), then
# scripts/build_wheel.py packs the binary. Prints the wheel's size and the build time.
#   scripts/build_wheel.sh [OUT_DIR]        (default target/wheels)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/wheels}
start=$(date +%s)
cargo build --locked --profile dist -p stab-cli
echo "build: $(( $(date +%s) - start )) s"
python3 scripts/build_wheel.py --binary target/dist/stab --out "$out"
