#!/usr/bin/env python3
"""Check what `stab run --track` / `stab track` delivered, with the trackers' own readers.

    check_tracking.py STORE --experiment NAME [--mlflow URL] [--tensorboard DIR]
                      [--lr required|absent|optional]

STORE is a results directory; every run's latest record must be on the MLflow server
exactly once (tag stab.run_id), FINISHED, with its tags, parameters, curves (metric
history equal to the record's curves), final metrics and `record.json` artifact, and no
other stab run may be in the experiment; and in TensorBoard's EventAccumulator under
DIR/<group>/<run_id> with the same curves. The learning-rate curve is sent only live (a
record does not keep it): `--lr absent` for a replay, `optional` for a mix. Needs `mlflow` and `tensorboard` (PyPI), never
a stab dependency. Used by scripts/tracking_e2e.sh in CI.
"""

import argparse
import glob
import json
import math
import os
import sys
import tempfile


def latest_records(store):
    latest = {}
    for path in sorted(glob.glob(os.path.join(store, "runs*.jsonl"))):
        for line in open(path):
            line = line.strip()
            if line:
                r = json.loads(line)
                latest[r["run_id"]] = r
    return latest


def curves(r):
    """Per metric key: [(step, value)] as the record holds them."""
    d = r["details"]
    out = {}
    if d.get("train_loss"):
        out["train/loss"] = d["train_loss"]
    for name, c in (d.get("loss_terms") or {}).items():
        out[f"train/{name}"] = c
    if d.get("dev_curve"):
        out["dev/primary"] = d["dev_curve"]
    return out


def same(a, b, tol):
    return len(a) == len(b) and all(
        sa == sb and (math.isclose(va, vb, rel_tol=tol, abs_tol=tol) or (math.isnan(va) and math.isnan(vb)))
        for (sa, va), (sb, vb) in zip(a, b)
    )


def check_mlflow(url, experiment, records, lr):
    from mlflow import MlflowClient

    client = MlflowClient(url)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment!r} on {url}"
    runs = client.search_runs([exp.experiment_id], max_results=5000)
    by_id = {}
    reports = []
    for run in runs:
        if run.data.tags.get("stab.report") == "true":
            reports.append(run)
        else:
            by_id.setdefault(run.data.tags.get("stab.run_id"), []).append(run)
    extra = set(by_id) - set(records)
    assert not extra, f"runs on the server that the store does not hold: {sorted(extra)[:5]}"
    for run_id, r in records.items():
        found = by_id.get(run_id, [])
        assert len(found) == 1, f"{run_id}: {len(found)} active runs on the server (want exactly 1)"
        run = found[0]
        assert run.info.status == "FINISHED", f"{run_id}: status {run.info.status}"
        tags = run.data.tags
        for key, want in [("stab.task", r["task"]), ("stab.method", r["method"]),
                          ("stab.seed", str(r["seed"])), ("stab.recipe", r["recipe"])]:
            assert tags.get(key) == want, f"{run_id}: tag {key} = {tags.get(key)!r}, want {want!r}"
        assert tags.get("stab.group", "").startswith(f"{r['task']} {r['method']}"), tags
        params = run.data.params
        for k, v in (r.get("seeds") or {}).items():
            assert params.get(f"seeds.{k}") == str(v), f"{run_id}: seeds.{k}"
        for k in r["method_params"]:
            assert f"method.{k}" in params, f"{run_id}: method.{k} missing"
        for key, want in curves(r).items():
            hist = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
            assert same(hist, [(s, v) for s, v in want], 1e-12), f"{run_id}: {key}: {hist} vs {want}"
        hist = client.get_metric_history(run.info.run_id, "lr")
        want_lr = len(r["details"]["dev_curve"])
        allowed = {"required": [want_lr], "absent": [0], "optional": [0, want_lr]}[lr]
        assert len(hist) in allowed, f"{run_id}: lr has {len(hist)} points (want {allowed})"
        for k, v in r["metrics"].items():
            hist = client.get_metric_history(run.info.run_id, f"test/{k}")
            assert [(m.step, m.value) for m in hist] == [(r["steps"], v)], f"{run_id}: test/{k}: {hist}"
        with tempfile.TemporaryDirectory() as tmp:
            path = client.download_artifacts(run.info.run_id, "record.json", tmp)
            assert json.load(open(path)) == r, f"{run_id}: record.json differs from the store's record"
    return len(records), client, reports


def check_report(client, reports, store):
    """One report run whose artifacts are the directory's report files, byte for byte."""
    assert len(reports) == 1, f"{len(reports)} report runs (want 1)"
    names = [n for n in ("report.html", "report.md", "report.json") if os.path.isfile(os.path.join(store, n))]
    assert names, f"no report files in {store}"
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            path = client.download_artifacts(reports[0].info.run_id, name, tmp)
            assert open(path, "rb").read() == open(os.path.join(store, name), "rb").read(), f"{name} differs"
    return names


def check_tensorboard(tb, records, lr):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for run_id, r in records.items():
        dirs = glob.glob(os.path.join(tb, "*", run_id))
        assert len(dirs) == 1, f"{run_id}: {len(dirs)} TensorBoard run directories"
        ea = EventAccumulator(dirs[0], size_guidance={"scalars": 0})
        ea.Reload()
        tags = set(ea.Tags()["scalars"])
        for key, want in curves(r).items():
            got = [(e.step, e.value) for e in ea.Scalars(key)]
            assert same(got, [(s, v) for s, v in want], 1e-6), f"{run_id}: {key}: {got} vs {want}"
        assert lr == "optional" or ("lr" in tags) == (lr == "required"), f"{run_id}: tags {sorted(tags)}"
        for k, v in r["metrics"].items():
            got = [(e.step, e.value) for e in ea.Scalars(f"test/{k}")]
            assert len(got) == 1 and got[0][0] == r["steps"] and math.isclose(got[0][1], v, rel_tol=1e-6, abs_tol=1e-7), got
    return len(records)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("store")
    ap.add_argument("--experiment", required=True)
    ap.add_argument("--mlflow")
    ap.add_argument("--tensorboard")
    ap.add_argument("--report", action="store_true", help="STORE's report files must be on the server, once")
    ap.add_argument("--lr", choices=["required", "absent", "optional"], default="required",
                    help="the learning-rate curve: sent live, absent from a replay")
    a = ap.parse_args()
    records = latest_records(a.store)
    assert records, f"no records in {a.store}"
    lr = a.lr
    if a.mlflow:
        n, client, reports = check_mlflow(a.mlflow, a.experiment, records, lr)
        print(f"mlflow {a.mlflow}: {n} runs, each once, FINISHED, tags, params, curves, test metrics and record.json as the store holds them")
        if a.report:
            names = check_report(client, reports, a.store)
            print(f"mlflow {a.mlflow}: one report run holding {', '.join(names)} as the directory has them")
    if a.tensorboard:
        n = check_tensorboard(a.tensorboard, records, lr)
        print(f"tensorboard {a.tensorboard}: {n} runs read by EventAccumulator, curves and test metrics as the store holds them")


if __name__ == "__main__":
    sys.exit(main())
