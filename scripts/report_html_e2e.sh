#!/usr/bin/env bash
# Render `stab report --html` of a freshly run store (scripts/e2e/tiny-grid.toml on tiny-bert)
# and the committed MiniLM example page in headless Chromium, and check both render
# (scripts/check_report_html.py: no console messages, screenshot not blank, every table and
# plot in the DOM). Needs `apt-get install chromium`.
# Usage: scripts/report_html_e2e.sh [STAB_BINARY]   (default target/debug/stab, built if missing)
set -euo pipefail
cd "$(dirname "$0")/.."

stab=${1:-target/debug/stab}
if [ ! -x "$stab" ]; then
    cargo build -q -p stab-cli
    stab=target/debug/stab
fi
work=$(mktemp -d /tmp/stab-report-e2e.XXXXXX)
trap 'rm -rf "$work"' EXIT

"$stab" run scripts/e2e/tiny-grid.toml --set "out=$work/store" >"$work/run.log" 2>&1 \
    || { cat "$work/run.log" >&2; exit 1; }
"$stab" report "$work/store" --html >/dev/null
python3 scripts/check_report_html.py "$work/store/report.html"
python3 scripts/check_report_html.py results/minilm-head-all-methods/report.html
