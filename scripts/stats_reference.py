"""Reference values for stab-eval's hand-written statistics (issue #21), from the
implementations they follow: deep-significance (ASO), rliable (IQM, probability of
improvement, stratified bootstrap intervals) and SciPy (Brown-Forsythe power by a large
simulation). Writes testdata/stats/reference.json, read by stab-eval/tests/reference.rs.

    python3 -m venv /tmp/statenv && /tmp/statenv/bin/pip install deepsig==1.2.8 rliable==1.2.0 "pandas<3"
    /tmp/statenv/bin/python scripts/stats_reference.py
"""
import json
import numpy as np
import scipy
import scipy.stats
import deepsig
from deepsig import aso
from deepsig.aso import compute_violation_ratio
import rliable
from rliable import library as rly
from rliable import metrics

# Score lists (x100) of real MiniLM CB runs (results/minilm-peft-cb) and two
# synthetic pairs: a clear winner and two overlapping normals.
rng = np.random.default_rng(0)
PAIRS = {
    "cb_lora_vs_finetune": (
        [60.43, 53.96, 57.65, 57.65, 59.16, 63.74, 57.65, 57.65, 62.23, 60.67],
        [59.18, 56.04, 60.54, 60.67, 59.16, 60.67, 59.16, 59.19, 59.1, 54.54],
    ),
    "clear_winner": (list(np.round(80 + rng.normal(0, 2, 10), 3)),
                     list(np.round(70 + rng.normal(0, 2, 10), 3))),
    "overlap_unequal_n": (list(np.round(71 + rng.normal(0, 3, 12), 3)),
                          list(np.round(70 + rng.normal(0, 3, 8), 3))),
    "slight_winner": (list(np.round(72.5 + rng.normal(0, 2, 10), 3)),
                      list(np.round(70 + rng.normal(0, 2, 10), 3))),
}

from importlib.metadata import version
out = {"versions": {p: version(p) for p in ["deepsig", "rliable", "arch", "scipy", "numpy"]},
       "aso": [], "aggregate": [], "bf_power": []}

for name, (a, b) in PAIRS.items():
    # deep-significance seeds its i-th bootstrap draw with seed + i: seeds 100,000 apart
    # give independent bootstraps, so the spread below is the bootstrap's own noise.
    eps = [float(aso(a, b, seed=100_000 * s, show_progress=False)) for s in range(20)]
    out["aso"].append({
        "name": name, "a": a, "b": b,
        "violation_ratio": float(compute_violation_ratio(np.array(a), np.array(b), dt=0.005)),
        "eps_min_mean": float(np.mean(eps)), "eps_min_sd": float(np.std(eps, ddof=1)),
    })

# Two methods x three tasks x five runs, normalised scores.
x = np.round(rng.uniform(0.3, 0.9, (5, 3)), 4)
y = np.round(np.clip(x - 0.05 + rng.normal(0, 0.05, (5, 3)), 0, 1), 4)
iqm_pt, iqm_ci, pi_pt, pi_ci = [], [], [], []
for s in range(5):
    np.random.seed(s)
    pt, ci = rly.get_interval_estimates({"x": x}, metrics.aggregate_iqm, reps=20000)
    iqm_pt.append(float(pt["x"])); iqm_ci.append([float(v) for v in np.ravel(ci["x"])])
    np.random.seed(100 + s)
    pt, ci = rly.get_interval_estimates({"xy": [x, y]}, metrics.probability_of_improvement, reps=20000)
    pi_pt.append(float(pt["xy"])); pi_ci.append([float(v) for v in np.ravel(ci["xy"])])
out["aggregate"].append({
    "x_by_task": x.T.tolist(), "y_by_task": y.T.tolist(),
    "iqm": iqm_pt[0], "iqm_ci_mean": np.mean(iqm_ci, axis=0).tolist(), "iqm_ci_sd": np.std(iqm_ci, axis=0, ddof=1).tolist(),
    "pi": pi_pt[0], "pi_ci_mean": np.mean(pi_ci, axis=0).tolist(), "pi_ci_sd": np.std(pi_ci, axis=0, ddof=1).tolist(),
    "reps": 20000,
})

SIMS = 100_000
sim = np.random.default_rng(7)
for n, m, r in [(10, 10, 0.5), (10, 10, 0.7), (20, 20, 0.7), (10, 10, 1.0)]:
    hits = 0
    for _ in range(SIMS):
        a = sim.normal(0, 1, n)
        b = sim.normal(0, r, m)
        if scipy.stats.levene(a, b, center="median").pvalue < 0.05:
            hits += 1
    out["bf_power"].append({"n": n, "m": m, "ratio": r, "power": hits / SIMS, "simulations": SIMS})

with open("testdata/stats/reference.json", "w") as f:
    json.dump(out, f, indent=1)
print(json.dumps(out, indent=1)[:3000])
