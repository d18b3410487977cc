#!/usr/bin/env python3
"""The BLAS side of bench/gemm_vs_blas.sh: the matrix products of a MiniLM-L6 training
step (the shapes of `cargo bench -p stab-models --bench gemm`, read from its JSON line)
through PyTorch's matmul (oneDNN/MKL on x86) and NumPy's (OpenBLAS in the PyPI wheel),
with the same transposed views, median of REPS repeats after 3 warm-ups.

Threads: set OMP_NUM_THREADS / OPENBLAS_NUM_THREADS before the interpreter starts (the
shell script does). Prints one JSON object: per shape and library, seconds and GFLOP/s.
"""

import json
import statistics
import sys
import time

import numpy as np
import torch


def operand(lib, batch, rows, cols, transposed):
    shape = (batch, cols, rows) if transposed else (batch, rows, cols)
    if lib == "torch":
        x = torch.rand(shape, dtype=torch.float32) * 2 - 1
        return x.transpose(1, 2) if transposed else x
    x = (np.random.default_rng(0).random(shape, dtype=np.float32) * 2 - 1)
    return x.transpose(0, 2, 1) if transposed else x


def time_product(lib, sh, reps):
    a = operand(lib, sh["batch"], sh["m"], sh["k"], sh["lhs_t"])
    b = operand(lib, sh["batch"], sh["k"], sh["n"], sh["rhs_t"])
    if sh["batch"] == 1:
        a, b = a[0], b[0]
    mm = torch.matmul if lib == "torch" else np.matmul
    times = []
    with torch.inference_mode():
        for r in range(reps + 3):
            t0 = time.perf_counter()
            mm(a, b)
            if r >= 3:
                times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    threads = int(sys.argv[2])
    reps = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    torch.set_num_threads(threads)
    shapes = json.loads(sys.argv[1])["shapes"]
    out = {"threads": threads, "torch": torch.__version__, "numpy": np.__version__, "shapes": []}
    totals = {"torch": [0.0, 0.0], "numpy": [0.0, 0.0]}
    for sh in shapes:
        flop = 2.0 * sh["batch"] * sh["m"] * sh["n"] * sh["k"]
        row = {"name": sh["name"]}
        for lib in ("torch", "numpy"):
            t = time_product(lib, sh, reps)
            row[lib] = {"s": t, "gflops": flop / t / 1e9}
            totals[lib][0] += flop * sh["count"]
            totals[lib][1] += t * sh["count"]
        out["shapes"].append(row)
    for lib, (flop, t) in totals.items():
        out[f"{lib}_step_product_s"] = t
        out[f"{lib}_step_gflops"] = flop / t / 1e9
    print(json.dumps(out))


if __name__ == "__main__":
    main()
