#!/usr/bin/env bash
# The wheel end to end, run by .ci/run: pack a stab binary as a wheel
# (scripts/build_wheel.py; CI packs its test build, stripped, rather than building the
# `dist` profile too), install it into a fresh venv with pip, and run the quickstart from
# the installed `stab` (reduced to 20 datasets a study) and its report.
#   scripts/wheel_e2e.sh [path/to/stab]
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-target/debug/stab}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
strip -o "$tmp/stab" "$binary"
python3 scripts/build_wheel.py --binary "$tmp/stab" --out "$tmp/wheels"
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q --no-index "$tmp"/wheels/stab-*.whl
installed="$tmp/venv/bin/stab"
[ -x "$installed" ] || { echo "FAIL: the wheel did not put stab in the venv's bin/" >&2; exit 1; }
"$installed" --version
cd "$tmp"
cp "$OLDPWD/recipes/quickstart.toml" .
"$installed" run quickstart.toml --out runs/quickstart --set synthetic.datasets=20 2>run.log \
    || { cat run.log >&2; echo "FAIL: the quickstart from the wheel" >&2; exit 1; }
"$installed" report runs/quickstart >report.md
grep -q "heads" report.md || { echo "FAIL: the report has no heads study" >&2; exit 1; }
echo "wheel end to end: installed in a fresh venv, quickstart recorded $(wc -l <runs/quickstart/runs.jsonl) runs and reported"
"$tmp/venv/bin/pip" uninstall -y -q stab
[ ! -e "$installed" ] || { echo "FAIL: pip uninstall left the binary" >&2; exit 1; }
