#!/usr/bin/env python3
"""PyTorch + transformers side of stab's full fine-tuning parity test (issue #19, item 5).

Fine-tunes MiniLM on CB (testdata's sliced files and split file) with the protocol of
docs/methods.md, independently of stab: HF tokenizer, BertModel with its pre-trained
pooler, the jiant classification head (tanh dense, then the output layer), dropout off,
torch.optim.AdamW with HF's weight-decay groups, get_linear_schedule_with_warmup-style
schedule, clip_grad_norm_ at 1.0. Only the head's starting weights come from stab (its
initialisation is a ChaCha stream Python does not have): run the parity test with
STAB_PARITY_EXPORT=DIR first, which writes DIR/head_init.json.

Writes testdata/parity/cb_minilm.json: the batch order (drawn here, numpy, fixed seed),
the loss of every update, the test predictions and test metrics after the last update.
torch and transformers are this script's dependencies, never stab's.

With --lora INIT (lora_init.json from the same STAB_PARITY_EXPORT run) it trains LoRA
instead, through HF PEFT: peft.get_peft_model(LoraConfig(r=8, lora_alpha=16,
lora_dropout=0, target_modules=["query", "value"])) on the encoder, lora_A from stab's
draw, lora_B = 0 (PEFT's own init), learning rate 5e-4, and writes
testdata/parity/cb_minilm_lora.json (peft is then a dependency too).
"""

import argparse
import json
import pathlib

import numpy as np
import torch
from transformers import AutoTokenizer, BertConfig, BertModel

ROOT = pathlib.Path(__file__).resolve().parent.parent
LABELS = ["entailment", "contradiction", "neutral"]
# Short inputs and small batches keep the Rust side of the test cheap (it runs in every
# `cargo test`); 30 updates keep the schedule's whole shape (warmup, decay) in the check.
MAX_LEN, BATCH, UPDATES, LR, WARMUP, WD, CLIP, EVAL_BATCH = 64, 8, 30, 1e-4, 0.1, 0.01, 1.0, 32


def rows(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def encode(tok, examples):
    enc = [
        tok(e["premise"], e["hypothesis"], truncation="longest_first", max_length=MAX_LEN)
        for e in examples
    ]
    return enc, [LABELS.index(e["label"]) for e in examples]


def batch(tok, enc, idx):
    return tok.pad([enc[i] for i in idx], return_tensors="pt")


class Model(torch.nn.Module):
    def __init__(self, model_dir, init, lora=None):
        super().__init__()
        config = BertConfig.from_pretrained(
            model_dir, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0
        )
        self.encoder = BertModel.from_pretrained(model_dir, config=config)
        h = config.hidden_size
        if lora is not None:
            from peft import LoraConfig, get_peft_model

            self.encoder = get_peft_model(
                self.encoder,
                LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["query", "value"]),
            )
            layers = self.encoder.base_model.model.encoder.layer
            for i, start in enumerate(lora):
                for target in ["query", "value"]:
                    module = getattr(layers[i].attention.self, target)
                    a = torch.tensor(start[target], dtype=torch.float32).reshape(8, h)
                    module.lora_A["default"].weight.data.copy_(a)
                    assert module.lora_B["default"].weight.abs().max() == 0
        self.dense = torch.nn.Linear(h, h)
        self.out = torch.nn.Linear(h, len(LABELS))
        for name, layer in [("dense", self.dense), ("out", self.out)]:
            # stab stores weights as [H, in, out]; torch as [out, in].
            w = init[f"Classification.{name}.weight"]
            b = init[f"Classification.{name}.bias"]
            d_in, d_out = w["dims"][1], w["dims"][2]
            wv = torch.tensor(w["values"], dtype=torch.float32).reshape(d_in, d_out)
            layer.weight.data.copy_(wv.t())
            layer.bias.data.copy_(torch.tensor(b["values"], dtype=torch.float32))

    def forward(self, b):
        pooled = self.encoder(**b).pooler_output
        return self.out(torch.tanh(self.dense(pooled)))


def metrics(pred, gold):
    acc = float(np.mean(np.array(pred) == np.array(gold)))
    f1s = []
    for c in range(len(LABELS)):
        tp = sum(p == c and g == c for p, g in zip(pred, gold))
        fp = sum(p == c and g != c for p, g in zip(pred, gold))
        fn = sum(p != c and g == c for p, g in zip(pred, gold))
        f1s.append(0.0 if 2 * tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn))
    macro = float(np.mean(f1s))
    return {"accuracy": acc, "macro_f1": macro, "primary": (acc + macro) / 2}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--init", required=True, help="head_init.json from STAB_PARITY_EXPORT")
    ap.add_argument("--data", default=str(ROOT / "testdata/data"))
    ap.add_argument("--lora", help="lora_init.json from STAB_PARITY_EXPORT: train LoRA via PEFT")
    ap.add_argument("--out")
    args = ap.parse_args()
    lora = json.loads(pathlib.Path(args.lora).read_text()) if args.lora else None
    name = "cb_minilm_lora.json" if lora else "cb_minilm.json"
    out_path = args.out or str(ROOT / "testdata/parity" / name)
    lr = 5e-4 if lora else LR
    torch.manual_seed(0)
    torch.set_num_threads(2)
    data = pathlib.Path(args.data)
    split = json.loads((data / "splits/cb.json").read_text())
    all_train = rows(data / "superglue/CB/train.jsonl")
    dev = set(split["dev"])
    train = [e for i, e in enumerate(all_train) if i not in dev]
    test = rows(data / "superglue/CB/val.jsonl")
    tok = AutoTokenizer.from_pretrained(args.model)
    train_enc, train_y = encode(tok, train)
    test_enc, test_y = encode(tok, test)

    rng = np.random.default_rng(20261201)
    order = []
    while len(order) < UPDATES:
        perm = rng.permutation(len(train)).tolist()
        order += [perm[i : i + BATCH] for i in range(0, len(perm), BATCH)]
    order = order[:UPDATES]

    model = Model(args.model, json.loads(pathlib.Path(args.init).read_text()), lora)
    model.train()
    no_decay = ["bias", "LayerNorm.weight", "LayerNorm.bias"]
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in named if not any(k in n for k in no_decay)], "weight_decay": WD},
        {"params": [p for n, p in named if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8)
    w = int(WARMUP * UPDATES)

    def factor(k):
        return k / max(1, w) if k < w else max(0.0, (UPDATES - k) / max(1, UPDATES - w))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    losses = []
    for idx in order:
        b = batch(tok, train_enc, idx)
        y = torch.tensor([train_y[i] for i in idx])
        loss = torch.nn.functional.cross_entropy(model(b), y)
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in named], CLIP)
        opt.step()
        sched.step()
    model.eval()
    pred = []
    with torch.no_grad():
        for i in range(0, len(test_enc), EVAL_BATCH):
            idx = list(range(i, min(i + EVAL_BATCH, len(test_enc))))
            pred += model(batch(tok, test_enc, idx)).argmax(-1).tolist()
    what = "LoRA through HF PEFT" if lora else "PyTorch reference"
    out = {
        "what": f"scripts/parity_torch.py: MiniLM on testdata CB, {UPDATES} updates, {what}",
        "torch": torch.__version__,
        "settings": {"max_len": MAX_LEN, "batch": BATCH, "updates": UPDATES, "lr": lr,
                     "warmup": WARMUP, "weight_decay": WD, "grad_clip": CLIP},
        "batch_order": order,
        "losses": losses,
        "test_predictions": pred,
        "test_metrics": metrics(pred, test_y),
    }
    if lora:
        import peft

        out["peft"] = peft.__version__
    pathlib.Path(out_path).write_text(json.dumps(out) + "\n")
    print(f"wrote {out_path}: loss {losses[0]:.4f} -> {losses[-1]:.4f}, test {out['test_metrics']}")


if __name__ == "__main__":
    main()
