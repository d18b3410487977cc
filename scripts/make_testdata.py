#!/usr/bin/env python3
"""Build testdata/ from ../shared: the tiny models and golden files as they are, and
small slices of the official task files (same formats: headers, BOM, missing final
newline) with fixed split files for them, so `cargo test --workspace` runs on a fresh
clone. Slices: the first 160 train rows and 60 dev rows of each file (MultiRC: the
first 6 / 3 passages); split files put every 8th train row in dev.

    python3 scripts/make_testdata.py ../shared testdata
"""
import json, os, shutil, sys

src, dst = sys.argv[1], sys.argv[2]
# Made here by scripts/make_pooler_golden.py (needs torch), not in ../shared: kept across rebuilds.
pooler = f"{dst}/fixtures/golden/tiny-modernbert-pooler.json"
kept = open(pooler, "rb").read() if os.path.exists(pooler) else None
shutil.rmtree(dst, ignore_errors=True)
for name in ["tiny-bert", "tiny-roberta", "tiny-electra", "tiny-deberta-v3", "tiny-modernbert", "golden"]:
    shutil.copytree(f"{src}/fixtures/{name}", f"{dst}/fixtures/{name}")
if kept is not None:
    open(pooler, "wb").write(kept)
shutil.copy(f"{src}/fixtures/README.md", f"{dst}/fixtures/README.md")

def slice_lines(path, out, n, header):
    raw = open(path, "rb").read()
    lines = raw.split(b"\n")
    final_nl = raw.endswith(b"\n")
    if final_nl:
        lines = lines[:-1]
    head, body = (lines[:1], lines[1:]) if header else ([], lines)
    body = body[:n]
    os.makedirs(os.path.dirname(out), exist_ok=True)
    text = b"\n".join(head + body) + (b"\n" if final_nl else b"")
    open(out, "wb").write(text)
    return len(body)

counts = {}
for task, d, header in [("cola", "CoLA", False), ("sst2", "SST-2", True), ("mrpc", "MRPC", True), ("rte", "RTE", True), ("wnli", "WNLI", True)]:
    counts[task] = slice_lines(f"{src}/data/glue/{d}/train.tsv", f"{dst}/data/glue/{d}/train.tsv", 160, header)
    slice_lines(f"{src}/data/glue/{d}/dev.tsv", f"{dst}/data/glue/{d}/dev.tsv", 60, header)
for task, d in [("cb", "CB"), ("wsc", "WSC"), ("wic", "WiC")]:
    counts[task] = slice_lines(f"{src}/data/superglue/{d}/train.jsonl", f"{dst}/data/superglue/{d}/train.jsonl", 160, False)
    slice_lines(f"{src}/data/superglue/{d}/val.jsonl", f"{dst}/data/superglue/{d}/val.jsonl", 60, False)
slice_lines(f"{src}/data/superglue/BoolQ/val.jsonl", f"{dst}/data/superglue/BoolQ/val.jsonl", 60, False)
slice_lines(f"{src}/data/superglue/MultiRC/train.jsonl", f"{dst}/data/superglue/MultiRC/train.jsonl", 6, False)
slice_lines(f"{src}/data/superglue/MultiRC/val.jsonl", f"{dst}/data/superglue/MultiRC/val.jsonl", 3, False)
os.makedirs(f"{dst}/data/splits")
for task in ["cola", "sst2", "mrpc", "rte", "wnli", "cb", "wsc"]:
    n = counts[task]
    dev = [i for i in range(n) if i % 8 == 0]
    json.dump({"task": task, "rule": "dev = every 8th row of this slice", "train_rows": n - len(dev), "dev_rows": len(dev), "dev": dev},
              open(f"{dst}/data/splits/{task}.json", "w"))
open(f"{dst}/README.md", "w").write(
    "# testdata\n\nWhat the test suite needs on a fresh clone, built by `scripts/make_testdata.py` from `../shared`:\n"
    "the tiny HF models and golden PyTorch outputs (`fixtures/`, unchanged; see fixtures/README.md) and\n"
    "slices of the official GLUE/SuperGLUE files (`data/`: the first 160 train / 60 dev rows, MultiRC 6 / 3\n"
    "passages, in the official formats) with split files putting every 8th train row in dev.\n"
    "Tests that need the full data sets or MiniLM print `SKIPPED (why)` without them; with\n"
    "`STAB_REQUIRE_ASSETS=1` (as in `.ci/run`) a missing asset fails the test instead.\n")
print(counts)
