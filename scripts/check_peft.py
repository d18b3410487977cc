#!/usr/bin/env python3
"""stab's LoRA checkpoint against HF PEFT (issue #19): the adapter stab writes in
<checkpoint>/peft/, loaded by peft.PeftModel on top of the pre-trained model, must give the
merged weights stab wrote as <checkpoint>/model.safetensors; and transformers' AutoModel
must load the checkpoint directory as the merged model (no adapter applied twice).

usage: check_peft.py PRE_TRAINED_DIR OUT_DIR   (OUT_DIR of a `stab run` of a LoRA recipe
with save_best = true; needs torch, transformers, peft from pip, never stab's dependencies)
"""
import glob, os, shutil, sys, tempfile, torch
from transformers import AutoModel, AutoTokenizer
from peft import PeftModel
base_dir, ckpt = sys.argv[1], glob.glob(sys.argv[2] + "/checkpoints/*")[0]
tok = AutoTokenizer.from_pretrained(base_dir)
batch = tok(["The cat sat on the mat.", "A completely different sentence about fine-tuning stability."],
            padding=True, return_tensors="pt")
# The merged weights alone, from a copy of the checkpoint's top-level files.
plain_dir = tempfile.mkdtemp()
for f in glob.glob(ckpt + "/*"):
    if os.path.isfile(f):
        shutil.copy(f, plain_dir)
base = AutoModel.from_pretrained(base_dir).eval()
merged = AutoModel.from_pretrained(plain_dir).eval()
peft = PeftModel.from_pretrained(AutoModel.from_pretrained(base_dir), ckpt + "/peft").eval()
auto = AutoModel.from_pretrained(ckpt).eval()  # the directory itself, peft installed
with torch.no_grad():
    b, m, p, a = (x(**batch).last_hidden_state for x in (base, merged, peft, auto))
print("lora tensors in the PeftModel:", sum(1 for n, _ in peft.named_parameters() if "lora_" in n))
print("max |PeftModel(pre-trained + adapter) - merged| =", (p - m).abs().max().item())
print("max |AutoModel(checkpoint dir) - merged|        =", (a - m).abs().max().item())
print("max |merged - pre-trained|                      =", (m - b).abs().max().item())
assert (p - m).abs().max().item() < 1e-4, "the PEFT adapter does not give the merged weights"
assert (a - m).abs().max().item() < 1e-6, "AutoModel does not load the checkpoint as merged"
print("ok")
