#!/usr/bin/env python3
"""Independent reference for stab's head tuning (docs/methods.md §4.1, §5), in numpy.

It re-implements the protocol from the spec, not from stab's code: the jiant
classification head (dropout -> dense+tanh -> dropout -> H output layers, nn.Linear
init), mean cross-entropy over heads (MHLoss) plus alpha * R (MMR, R = mean over class
pairs of 1/(1+||mu_a - mu_b||)), hand-written backprop, AdamW (beta 0.9/0.999,
eps 1e-8, bias correction, decoupled decay 0.01 except biases), HF's linear
warmup/decay, global-norm clipping at 1.0, a seeded shuffle per epoch keeping the last
partial batch, dev scored once per epoch, early stopping after `patience` evaluations
without strict improvement, best-dev weights scored on test. `--method mixout` is
MixOut-ref (docs/methods.md §2.2.1) on the head: dropout off, at every training forward
W_eff = U + M (W - U) / (1 - p) for both Linear weights with one Bernoulli(1 - p) value
per input column, gradient grad_W_eff * M (Lee et al.'s backward), W at evaluation.
SURT and reinit in head tuning are FineTune on their own cached features (pass their
feature file); LNSR, MixOut-author and llrd are FineTune in head tuning (§5).

It reads the frozen features stab cached (`<out>/cache/features-*.safetensors`, whose
metadata `key` names task and pooling) and the labels from the task files and split file
itself. Random streams differ from stab's (numpy's), so agreement is statistical:
compare mean +- sd over seeds.

    python3 scripts/reference_head_tuning.py --features runs/x/cache/features-….safetensors \
        --task cb --data-dir ../shared/data --seeds 10 --method finetune
"""
import argparse
import json
import struct
import sys

import numpy as np

LABELS = {
    "cb": ["entailment", "contradiction", "neutral"],
    "rte": ["entailment", "not_entailment"],
    "mrpc": ["0", "1"],
}


def read_features(path):
    """The pooled sets (train, dev, test) of a `features/3` cache: safetensors, parsed by
    hand (an 8-byte header length, a JSON header, the little-endian f32 data)."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack_from("<Q", raw, 0)
    header = json.loads(raw[8 : 8 + n])
    meta = header.get("__metadata__", {})
    assert meta.get("stab_format") == "features/3", "not a stab feature cache"
    sets = []
    for i in range(int(meta["sets"])):
        assert meta[f"{i}.kind"] == "pooled", "pooled features only"
        t = header[f"{i}.values"]
        assert t["dtype"] == "F32"
        a, b = t["data_offsets"]
        data = np.frombuffer(raw[8 + n + a : 8 + n + b], dtype="<f4").reshape(t["shape"])
        sets.append(data.astype(np.float64))
    return sets


def read_labels(task, data_dir, splits_dir):
    names = LABELS[task]
    if task == "cb":
        train = [json.loads(l)["label"] for l in open(f"{data_dir}/superglue/CB/train.jsonl")]
        test = [json.loads(l)["label"] for l in open(f"{data_dir}/superglue/CB/val.jsonl")]
    else:
        d = {"rte": "RTE", "mrpc": "MRPC"}[task]
        col = -1 if task == "rte" else 0
        rows = lambda p: [l.rstrip("\n").split("\t") for l in open(p, encoding="utf-8-sig").read().splitlines()[1:]]
        train = [r[col] for r in rows(f"{data_dir}/glue/{d}/train.tsv")]
        test = [r[col] for r in rows(f"{data_dir}/glue/{d}/dev.tsv")]
    split = json.load(open(f"{splits_dir}/{task}.json"))
    dev_rows = set(split["dev"])
    ids = lambda xs: np.array([names.index(x) for x in xs])
    tr = [x for i, x in enumerate(train) if i not in dev_rows]
    dv = [x for i, x in enumerate(train) if i in dev_rows]
    return ids(tr), ids(dv), ids(test)


def metric(task, pred, gold, classes):
    acc = float(np.mean(pred == gold))

    def f1(c):
        tp = np.sum((pred == c) & (gold == c))
        fp = np.sum((pred == c) & (gold != c))
        fn = np.sum((pred != c) & (gold == c))
        return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)

    if task == "cb":
        return (acc + np.mean([f1(c) for c in range(classes)])) / 2
    if task == "mrpc":
        return (acc + f1(1)) / 2
    return acc


def linear_init(rng, d_in, d_out, heads=1):
    b = 1 / np.sqrt(d_in)
    return rng.uniform(-b, b, (heads, d_in, d_out)), rng.uniform(-b, b, (heads, 1, d_out))


def train(args, feats, labels, seed):
    (xtr, xdv, xte), (ytr, ydv, yte) = feats, labels
    rng = np.random.default_rng(seed)
    d, C, H = xtr.shape[1], int(max(ytr.max(), ydv.max(), yte.max()) + 1), args.heads
    W1, b1 = linear_init(rng, d, d)
    W2, b2 = linear_init(rng, d, C, H)
    params = [W1, b1, W2, b2]
    decay = [True, False, True, False]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    n = len(ytr)
    per_epoch = -(-n // args.batch)
    T = args.epochs * per_epoch
    W = int(np.floor(0.1 * T))
    lr_at = lambda k: args.lr * (k / max(W, 1) if k < W else max(0.0, (T - k) / max(T - W, 1)))
    mixout = args.method == "mixout"
    p_drop = 0.0 if mixout else 0.1
    U1, U2 = W1.copy(), W2.copy()
    masks = [None, None]

    def weights(train_mode):
        if not (mixout and train_mode):
            return W1, W2
        m1 = (rng.random((1, d, 1)) >= args.p).astype(float)
        m2 = (rng.random((H, d, 1)) >= args.p).astype(float)
        masks[0], masks[1] = m1, m2
        return U1 + m1 * (W1 - U1) / (1 - args.p), U2 + m2 * (W2 - U2) / (1 - args.p)

    def forward(x, train_mode):
        w1, w2 = weights(train_mode)
        keep1 = (rng.random(x.shape) >= p_drop) / (1 - p_drop) if train_mode and p_drop else 1.0
        xin = x * keep1
        e = np.tanh(xin @ w1[0] + b1[0])  # [B, d]
        keep2 = (rng.random(e.shape) >= p_drop) / (1 - p_drop) if train_mode and p_drop else 1.0
        eo = e * keep2
        z = np.einsum("bd,hdc->hbc", eo, w2) + b2  # [H, B, C]
        return xin, e, keep2, eo, z, w2

    def predict(x):
        return forward(x, False)[4].mean(0).argmax(1)

    best, best_params, since, step = None, None, 0, 0
    for epoch in range(args.epochs):
        order = rng.permutation(n)
        for s in range(0, n, args.batch):
            idx = order[s : s + args.batch]
            x, y = xtr[idx], ytr[idx]
            B = len(idx)
            xin, e, keep2, eo, z, w2 = forward(x, True)
            zs = z - z.max(2, keepdims=True)
            p = np.exp(zs) / np.exp(zs).sum(2, keepdims=True)
            onehot = np.eye(C)[y]
            dz = (p - onehot[None]) / (H * B)  # d mean_h mean_b CE / dz
            gW2 = np.einsum("bd,hbc->hdc", eo, dz)
            gb2 = dz.sum(1, keepdims=True)
            de = np.einsum("hbc,hdc->bd", dz, w2) * keep2
            if args.method == "mmr":
                present = [c for c in range(C) if np.any(y == c)]
                pairs = [(a, b) for i, a in enumerate(present) for b in present[i + 1 :]]
                for a, b in pairs:
                    ma, mb = y == a, y == b
                    diff = e[ma].mean(0) - e[mb].mean(0)
                    dist = np.sqrt(np.sum(diff**2) + 1e-12)
                    g = -args.alpha / len(pairs) / (1 + dist) ** 2 * diff / dist  # dR/d(mu_a - mu_b)
                    de[ma] += g / ma.sum()
                    de[mb] -= g / mb.sum()
            dpre = de * (1 - e**2)
            gW1 = (xin.T @ dpre)[None]
            gb1 = dpre.sum(0, keepdims=True)[None]
            if mixout:
                gW1, gW2 = gW1 * masks[0], gW2 * masks[1]
            grads = [gW1, gb1, gW2, gb2]
            norm = np.sqrt(sum(np.sum(g**2) for g in grads))
            if norm > 1.0:
                grads = [g * (1.0 / (norm + 1e-6)) for g in grads]
            lr = lr_at(step)
            step += 1
            for i, (prm, g) in enumerate(zip(params, grads)):
                if decay[i]:
                    prm *= 1 - lr * 0.01
                m[i] = 0.9 * m[i] + 0.1 * g
                v[i] = 0.999 * v[i] + 0.001 * g * g
                mh, vh = m[i] / (1 - 0.9**step), v[i] / (1 - 0.999**step)
                prm -= lr * mh / (np.sqrt(vh) + 1e-8)
        score = metric(args.task, predict(xdv), ydv, C)
        if best is None or score > best:
            best, best_params, since = score, [p.copy() for p in params], 0
        else:
            since += 1
            if since >= args.patience:
                break
    for prm, saved in zip(params, best_params):
        prm[...] = saved
    return metric(args.task, predict(xte), yte, C), best


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", required=True)
    ap.add_argument("--task", required=True, choices=sorted(LABELS))
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--splits", default=None)
    ap.add_argument("--method", default="finetune", choices=["finetune", "mhloss", "mmr", "mixout"])
    ap.add_argument("--p", type=float, default=0.9, help="MixOut-ref probability")
    ap.add_argument("--heads", type=int, default=1)
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--patience", type=int, default=20)
    args = ap.parse_args()
    if args.method == "mhloss" and args.heads == 1:
        args.heads = 50
    feats = read_features(args.features)
    labels = read_labels(args.task, args.data_dir, args.splits or f"{args.data_dir}/splits")
    assert [len(f) for f in feats] == [len(l) for l in labels], "features and labels disagree"
    scores = [train(args, feats, labels, s)[0] * 100 for s in range(args.seeds)]
    print(json.dumps({"task": args.task, "method": args.method, "scores": [round(s, 2) for s in scores],
                      "mean": round(float(np.mean(scores)), 2), "sd": round(float(np.std(scores, ddof=1)), 2)}))


if __name__ == "__main__":
    sys.exit(main())
