"""Check a decoder's `save_best` checkpoints against Hugging Face (issue #37):

* `transformers.AutoModelForSequenceClassification` loads the checkpoint directory with no
  missing key (the extra `stab_head.*` tensors are reported as unexpected and ignored), and
  its logits on a padded batch of singles and pairs equal stab's: `stab embed`'s last-token
  vector times the head stab saved under its own name (`stab_head.Score.out.weight`);
* where the run used LoRA, `peft.PeftModel.from_pretrained` loads `<checkpoint>/peft` on the
  pre-trained model (as a sequence classifier) and gives the merged checkpoint's logits.

    python scripts/check_decoder_checkpoints.py STAB_BINARY OUT_DIR [OUT_DIR ...]

OUT_DIR: the out directory of a `stab run` with `save_best = true` on a decoder. Needs torch,
transformers and peft (never stab's dependencies). Exits 1 when a difference exceeds 1e-4.
"""
import glob
import json
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer

INPUTS = [
    {"text": "The cat sat on the mat near the old bridge.", "text_pair": None},
    {"text": "A man is playing a guitar.", "text_pair": "Someone is making music."},
    {"text": "It rained.", "text_pair": None},
]


def stab_logits(stab, ckpt):
    """stab's logits: its last-token vectors times its own saved head."""
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        f.write("\n".join(json.dumps(i) for i in INPUTS))
        path = f.name
    out = subprocess.run([stab, "embed", "--model", ckpt, "--inputs", path, "--max-len", "48", "--json"],
                         check=True, capture_output=True, text=True, env={**os.environ, "STAB_LOG": "warn"})
    rows = json.loads(out.stdout)["inputs"]
    head = load_file(os.path.join(ckpt, "model.safetensors"))["stab_head.Score.out.weight"]  # [1, d, C]
    vectors = torch.tensor([r["last_token"] for r in rows])
    ids = [[x for x, m in zip(r["input_ids"], r["attention_mask"]) if m] for r in rows]
    return vectors @ head[0], ids


def hf_logits(model, tok, pad):
    enc = [tok(i["text"], i["text_pair"])["input_ids"] for i in INPUTS]
    t = max(len(e) for e in enc)
    ids = torch.tensor([e + [pad] * (t - len(e)) for e in enc])
    mask = torch.tensor([[1] * len(e) + [0] * (t - len(e)) for e in enc])
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).logits, enc


def check(stab, ckpt):
    model, info = AutoModelForSequenceClassification.from_pretrained(
        ckpt, output_loading_info=True, attn_implementation="eager")
    model.eval()
    assert not info["missing_keys"], f"{ckpt}: HF misses {info['missing_keys']}"
    extra = [k for k in info["unexpected_keys"] if not k.startswith("stab_head.")]
    assert not extra, f"{ckpt}: unexpected {extra}"
    tok = AutoTokenizer.from_pretrained(ckpt)
    ours, our_ids = stab_logits(stab, ckpt)
    theirs, their_ids = hf_logits(model, tok, model.config.pad_token_id)
    assert our_ids == their_ids, f"{ckpt}: token ids differ"
    worst = (ours - theirs).abs().max().item()
    line = (f"{os.path.basename(ckpt)}: {type(model).__name__}, {model.config.num_labels} labels, "
            f"{len(info['unexpected_keys'])} stab_head tensors ignored; |stab - HF| = {worst:.2e}")
    peft_dir = os.path.join(ckpt, "peft")
    if os.path.isdir(peft_dir):
        from peft import PeftModel
        config = json.load(open(os.path.join(peft_dir, "adapter_config.json")))
        base = AutoModelForSequenceClassification.from_pretrained(
            config["base_model_name_or_path"], num_labels=model.config.num_labels,
            pad_token_id=model.config.pad_token_id, attn_implementation="eager")
        peft = PeftModel.from_pretrained(base, peft_dir).eval()
        lora = sum(1 for n, _ in peft.named_parameters() if "lora_A" in n)
        adapted, _ = hf_logits(peft, tok, model.config.pad_token_id)
        gap = (adapted - theirs).abs().max().item()
        line += f"; PeftModel(pre-trained + adapter, {lora} LoRA modules) vs merged: {gap:.2e}"
        worst = max(worst, gap)
    print(line)
    return worst


if __name__ == "__main__":
    stab = sys.argv[1]
    ckpts = sorted(c for d in sys.argv[2:] for c in glob.glob(os.path.join(d, "checkpoints", "*")))
    assert ckpts, "no checkpoints"
    worst = max(check(stab, c) for c in ckpts)
    print(f"{len(ckpts)} checkpoints, largest difference {worst:.2e}")
    sys.exit(0 if worst < 1e-4 else 1)
