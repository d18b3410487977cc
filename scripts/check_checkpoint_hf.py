"""Check that a stab `save_best` checkpoint is what Hugging Face reads: transformers'
AutoModel loads it (with no missing base-model tensor), and its last hidden state on a few
inputs equals `stab embed` on the same directory.

    python scripts/check_checkpoint_hf.py STAB_BINARY CHECKPOINT_DIR [CHECKPOINT_DIR ...]

Needs torch and transformers (e.g. /tmp/torchenv, see bench/vs_pytorch.sh). Prints the
largest difference over real tokens per checkpoint and exits 1 above 1e-4.
"""
import json
import subprocess
import sys
import tempfile

import torch
from transformers import AutoModel, AutoTokenizer

INPUTS = [
    {"text": "The cat sat on the mat near the old bridge.", "text_pair": None},
    {"text": "A man is playing a guitar.", "text_pair": "Someone is making music."},
]


def check(stab, ckpt):
    model, info = AutoModel.from_pretrained(ckpt, output_loading_info=True, attn_implementation="eager")
    model.eval()
    assert not info["missing_keys"], f"{ckpt}: HF misses {info['missing_keys']}"
    tok = AutoTokenizer.from_pretrained(ckpt)
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        f.write("\n".join(json.dumps(i) for i in INPUTS))
        path = f.name
    out = subprocess.run([stab, "embed", "--model", ckpt, "--inputs", path, "--max-len", "48", "--json"],
                         check=True, capture_output=True, text=True, env={"STAB_LOG": "warn"})
    ours = json.loads(out.stdout)["inputs"]
    worst = 0.0
    for i, row in zip(INPUTS, ours):
        enc = tok(i["text"], i["text_pair"], return_tensors="pt")
        assert enc["input_ids"][0].tolist() == [x for x, m in zip(row["input_ids"], row["attention_mask"]) if m], ckpt
        kwargs = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
        if "token_type_ids" in enc and model.config.model_type in ("bert", "roberta", "electra", "deberta-v2"):
            kwargs["token_type_ids"] = enc["token_type_ids"]
        with torch.no_grad():
            h = model(**kwargs).last_hidden_state[0]
        n = h.shape[0]
        mine = torch.tensor(row["last_hidden_state"][:n])
        worst = max(worst, (mine - h).abs().max().item())
    print(f"{ckpt}: {model.config.model_type}, {len(info['unexpected_keys'])} extra keys ignored by HF "
          f"(stab's head), largest |stab - HF| = {worst:.2e}")
    return worst


if __name__ == "__main__":
    stab = sys.argv[1]
    worst = max(check(stab, d) for d in sys.argv[2:])
    sys.exit(0 if worst < 1e-4 else 1)
