#!/usr/bin/env python3
"""The PyTorch side of the side-by-side encoder benchmark (bench/vs_pytorch.sh).

Measures, on the same MiniLM checkpoint and the same inputs as stab's benchmarks
(`cargo bench -p stab-models --bench encoder`, `cargo bench -p stab-train --bench encode`):

* a training step (forward in train mode with dropout, backward, AdamW lr 2e-5, eps 1e-8,
  weight decay 0.01) of the encoder plus a 2-class linear head on the first token, on a
  batch of 16 x 128 tokens;
* the eval forward of that batch under torch.inference_mode();
* feature encoding of the real RTE train file: premise/hypothesis pairs truncated to 128
  tokens, rows sorted by length, batches of 64 padded to the batch's longest row, mean
  pooling over real tokens, under torch.inference_mode(), in examples/s.

Prints one JSON object. Not part of any test. Install (CPU is enough; the PyPI wheel also
pulls CUDA libraries, ~3 GB):

    python3 -m venv /tmp/torchenv && /tmp/torchenv/bin/pip install torch transformers
"""

import argparse
import csv
import json
import statistics
import sys
import time

import torch
from transformers import AutoModel, AutoTokenizer

WORDS = (
    "the committee approved the new budget after a long debate on friday while "
    "students visited the museum"
)


def step_batch(tok, batch=16, seq=128):
    texts = [f" {i} ".join([WORDS] * seq) for i in range(batch)]
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    enc = tok(texts, max_length=seq, truncation=True, padding="longest", return_tensors="pt")
    assert tuple(enc["input_ids"].shape) == (batch, seq), enc["input_ids"].shape
    return enc


def train_steps(model_dir, enc, steps, lora=None, pool="first"):
    """Full fine-tuning's update, or with `lora` = r LoRA's (PEFT, r, alpha 2r, dropout 0.1,
    every linear layer of every block, the base frozen); the head reads the first token, or
    the last (decoders: every row is full, so HF's last token is the last position)."""
    torch.manual_seed(0)
    encoder = AutoModel.from_pretrained(model_dir, attn_implementation=ATTN)
    if lora:
        from peft import LoraConfig, get_peft_model
        encoder = get_peft_model(encoder, LoraConfig(r=lora, lora_alpha=2 * lora, lora_dropout=0.1,
                                                     target_modules="all-linear"))
    head = torch.nn.Linear(encoder.config.hidden_size, 2)
    params = [p for p in encoder.parameters() if p.requires_grad] + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=2e-5, eps=1e-8, weight_decay=0.01)
    labels = torch.tensor([i % 2 for i in range(enc["input_ids"].shape[0])])
    at = 0 if pool == "first" else -1
    encoder.train()
    times, fwd, bwd, upd = [], [], [], []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        out = encoder(**enc).last_hidden_state
        loss = torch.nn.functional.cross_entropy(head(out[:, at]), labels)
        loss.item()
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        if i > 0:
            times.append(t3 - t0)
            fwd.append(t1 - t0)
            bwd.append(t2 - t1)
            upd.append(t3 - t2)
    med = statistics.median
    return med(times), {"forward": med(fwd), "backward": med(bwd), "adamw": med(upd)}


def eval_forward(model_dir, enc, steps):
    encoder = AutoModel.from_pretrained(model_dir, attn_implementation=ATTN).eval()
    times = []
    with torch.inference_mode():
        for i in range(steps + 1):
            t0 = time.perf_counter()
            encoder(**enc).last_hidden_state.sum().item()
            if i > 0:
                times.append(time.perf_counter() - t0)
    return statistics.median(times)


def rte_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        a, b = header.index("sentence1"), header.index("sentence2")
        return [(r[a], r[b]) for r in reader]


def encode_rte(model_dir, tok, path, batch):
    rows = rte_rows(path)
    t0 = time.perf_counter()
    ids = tok([p for p, _ in rows], [h for _, h in rows], max_length=128, truncation=True)
    tokenize_s = time.perf_counter() - t0
    encoder = AutoModel.from_pretrained(model_dir, attn_implementation=ATTN).eval()
    order = sorted(range(len(rows)), key=lambda i: len(ids["input_ids"][i]))
    pooled = [None] * len(rows)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for s in range(0, len(order), batch):
            chunk = order[s : s + batch]
            feats = tok.pad(
                {k: [ids[k][i] for i in chunk] for k in ("input_ids", "token_type_ids", "attention_mask")},
                padding="longest",
                return_tensors="pt",
            )
            h = encoder(**feats).last_hidden_state
            m = feats["attention_mask"].unsqueeze(-1).to(h.dtype)
            mean = (h * m).sum(1) / m.sum(1).clamp_min(1.0)
            for k, i in enumerate(chunk):
                pooled[i] = mean[k]
    encode_s = time.perf_counter() - t0
    return {
        "rows": len(rows),
        "tokenize_s": tokenize_s,
        "encode_s": encode_s,
        "examples_per_s": len(rows) / encode_s,
    }


ATTN = "eager"


def main():
    global ATTN
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="MiniLM model directory")
    ap.add_argument("--rte", help="RTE train.tsv (skip the encoding benchmark without it)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--lora", type=int, default=None, help="time LoRA's update of this rank (PEFT, all-linear)")
    ap.add_argument("--pool", default="first", choices=["first", "last"])
    ap.add_argument("--no-eval", action="store_true")
    ap.add_argument("--attention", default="sdpa", choices=["sdpa", "eager"],
                    help="transformers' attention kernel (sdpa, its default, is the fused one)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    ATTN = args.attention
    tok = AutoTokenizer.from_pretrained(args.model)
    enc = step_batch(tok, args.batch, args.seq)
    step, parts = train_steps(args.model, enc, args.steps, args.lora, args.pool)
    result = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "train_step_s": step,
        "train_parts_s": parts,
        "eval_forward_s": None if args.no_eval else eval_forward(args.model, enc, args.steps),
        "lora": args.lora,
        "attention": ATTN,
    }
    if args.rte:
        result["rte_encoding"] = encode_rte(args.model, tok, args.rte, 64)
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
