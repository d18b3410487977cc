#!/usr/bin/env python3
"""Time `stab report` on synthetic stores of many runs (issue #34: report time on cells of
hundreds to thousands of seeds, as sequential and batched seed designs produce).

    scripts/report_bench.py target/release/stab [--sizes 1000,10000,100000] [--formats md,json,csv]

For each size N it writes two stores and times each format:
  * one cell:   FineTune and MMR on CB, N/2 seeds each (scores from a bimodal mixture:
                10% failed runs at the majority class, the rest normal);
  * spread out: N/10 methods × 10 seeds on CB.
Wall time and peak RSS (from /usr/bin/time) per format, as a Markdown table.
"""
import argparse
import json
import os
import random
import subprocess
import tempfile
import time


def record(task, method, seed, score, majority):
    return {
        "run_id": f"{task}-{method}-s{seed}-bench",
        "recipe": "bench",
        "kind": "finetune",
        "task": task,
        "method": method,
        "method_params": {},
        "seed": seed,
        "mode": "full",
        "sweep": {},
        "metrics": {"primary": score, "accuracy": score},
        "dev_best": score,
        "best_step": 100,
        "steps": 100,
        "wall_s": 60.0 + random.random(),
        "stab_version": "bench",
        "threads": 2,
        "details": {"majority_test": majority},
    }


def score(rng, majority, mean, sd):
    if rng.random() < 0.1:
        return majority
    return min(1.0, max(0.0, rng.gauss(mean, sd)))


def write_store(path, cells, seed=0):
    rng = random.Random(seed)
    with open(os.path.join(path, "runs.jsonl"), "w") as f:
        for method, n, mean in cells:
            for s in range(n):
                f.write(json.dumps(record("cb", method, s, score(rng, 0.5, mean, 0.05), 0.5)) + "\n")


def timed(cmd):
    t0 = time.perf_counter()
    out = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr[-2000:]}")
    rss_kb = int(out.stderr.strip().splitlines()[-1])
    return wall, rss_kb / 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("stab")
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--formats", default="md,json,csv")
    a = ap.parse_args()
    print("| store | runs | format | wall s | peak RSS MiB |")
    print("|---|---|---|---|---|")
    for n in [int(x) for x in a.sizes.split(",")]:
        layouts = {
            "one cell": [("finetune", n // 2, 0.7), ("mmr", n - n // 2, 0.72)],
            "spread out": [("finetune", 10, 0.7)]
            + [(f"m{i:05d}", 10, 0.7) for i in range(n // 10 - 1)],
        }
        for name, cells in layouts.items():
            with tempfile.TemporaryDirectory() as d:
                write_store(d, cells)
                for fmt in a.formats.split(","):
                    wall, rss = timed([a.stab, "report", d, "--format", fmt, "--plots", os.path.join(d, "plots")])
                    print(f"| {name} | {n} | {fmt} | {wall:.2f} | {rss:.0f} |", flush=True)


if __name__ == "__main__":
    main()
