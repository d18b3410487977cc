"""Golden pooled outputs of tiny-modernbert: what ModernBertForSequenceClassification puts
before its classifier (`head(last_hidden_state[:, 0])`, `head` loaded from the checkpoint),
for the 6 golden inputs; and the same with `classifier_pooling = "mean"`.

    /tmp/torchenv/bin/python scripts/make_pooler_golden.py testdata/fixtures \
        > testdata/fixtures/golden/tiny-modernbert-pooler.json
"""
import json
import sys

import torch
from transformers import AutoTokenizer, ModernBertForSequenceClassification

root = sys.argv[1]
golden = json.load(open(f"{root}/golden/tiny-modernbert.json"))
model_dir = f"{root}/tiny-modernbert"
tok = AutoTokenizer.from_pretrained(model_dir)
texts = [i["text"] for i in golden["inputs"]]
pairs = [i["text_pair"] for i in golden["inputs"]]
out = {"model": "tiny-modernbert", "float_digits": 9}
for pooling in ["cls", "mean"]:
    model = ModernBertForSequenceClassification.from_pretrained(
        model_dir, classifier_pooling=pooling, attn_implementation="eager")
    model.eval()
    ids = torch.tensor(golden["input_ids"])
    mask = torch.tensor(golden["attention_mask"])
    with torch.no_grad():
        h = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
        if pooling == "cls":
            p = h[:, 0]
        else:
            p = (h * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
        pooled = model.head(p)
    out[f"pooled_{pooling}"] = [[float(f"{v:.9g}") for v in row] for row in pooled.tolist()]
json.dump(out, sys.stdout)
