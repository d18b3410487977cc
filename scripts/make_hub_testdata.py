#!/usr/bin/env python3
"""Build testdata/hub: a Hugging Face cache laid out by hand, holding parquet files with
the Hub's schema (nyu-mll/glue, aps/super_glue) made from the task slices in
testdata/data, so the Hub data source is tested without a network. Needs pyarrow.

    python3 scripts/make_hub_testdata.py testdata
    python3 scripts/make_hub_testdata.py --data ../shared/data --out CACHE --tasks cb,rte,mrpc

The second form lays out a cache of the full task files (for trying the Hub route, e.g.
the README's first study, without a network); it writes no error-path variants.

Each dataset is `datasets--<owner>--<name>/{refs/main, snapshots/<commit>/<config>/
{train,validation}-00000-of-00001.parquet}`, as `huggingface_hub` lays it out (plain files
here instead of symlinks into blobs/). Columns, dtypes (label int64, idx int32) and the
`huggingface` schema metadata naming each ClassLabel follow the `datasets` library.
Rows are the slices' rows in file order with idx = row number. The slices have no BoolQ
train file, so the fixture's boolq train split repeats the validation rows. The WSC rows
are the official ones: the Hub's wsc.fixed also rewrites a few span texts, which the
slices do not contain. `datasets--stab-tests--bad-glue` holds RTE variants for the error
paths (the first 24 / 12 rows): shuffled rows, three shards, a gap in idx, hidden labels, other label names.
"""
import json, os, random, shutil, sys

import pyarrow as pa
import pyarrow.parquet as pq

if sys.argv[1] == "--reviews":
    # Only the custom-task dataset (below), leaving the rest of the cache as it is.
    data, out, only, bad_variants = None, f"{sys.argv[2]}/hub", [], False
elif sys.argv[1] == "--data":
    args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
    data, out, only, bad_variants = args["--data"], args["--out"], args["--tasks"].split(","), False
else:
    root = sys.argv[1]
    data, out, only, bad_variants = f"{root}/data", f"{root}/hub", None, True
COMMIT = "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed"
if data is not None:
    shutil.rmtree(out, ignore_errors=True)

LABELS = {
    "cola": ["unacceptable", "acceptable"], "sst2": ["negative", "positive"],
    "mrpc": ["not_equivalent", "equivalent"], "rte": ["entailment", "not_entailment"],
    "wnli": ["not_entailment", "entailment"], "cb": ["entailment", "contradiction", "neutral"],
}
INTS = {"idx", "span1_index", "span2_index", "start1", "start2", "end1", "end2"}


def tsv(path, header):
    raw = open(path, encoding="utf-8-sig").read()
    lines = [l for l in raw.split("\n") if l]
    return [l.split("\t") for l in (lines[1:] if header else lines)]


def jsonl(path):
    return [json.loads(l) for l in open(path, encoding="utf-8") if l.strip()]


def table(rows, labels, columns):
    fields, features = [], {}
    for c in columns:
        if c == "label":
            fields.append(pa.field(c, pa.int64()))
            features[c] = {"names": labels, "_type": "ClassLabel"}
        elif c == "idx" and isinstance(rows[0]["idx"], dict):
            sub = [pa.field(k, pa.int32()) for k in ["paragraph", "question", "answer"]]
            fields.append(pa.field(c, pa.struct(sub)))
            features[c] = {k: {"dtype": "int32", "_type": "Value"} for k in ["paragraph", "question", "answer"]}
        elif c in INTS:
            fields.append(pa.field(c, pa.int32()))
            features[c] = {"dtype": "int32", "_type": "Value"}
        else:
            fields.append(pa.field(c, pa.string()))
            features[c] = {"dtype": "string", "_type": "Value"}
    meta = {"huggingface": json.dumps({"info": {"features": features}})}
    schema = pa.schema(fields, metadata=meta)
    return pa.Table.from_pylist(rows, schema=schema)


def write(repo, config, split, rows, labels, columns, shards=1):
    snap = f"{out}/datasets--{repo.replace('/', '--')}/snapshots/{COMMIT}/{config}"
    os.makedirs(snap, exist_ok=True)
    refs = f"{out}/datasets--{repo.replace('/', '--')}/refs"
    os.makedirs(refs, exist_ok=True)
    open(f"{refs}/main", "w").write(COMMIT)
    size = (len(rows) + shards - 1) // shards
    for k in range(shards):
        part = rows[k * size:(k + 1) * size]
        pq.write_table(table(part, labels, columns), f"{snap}/{split}-{k:05d}-of-{shards:05d}.parquet", compression="snappy")


def glue(task, d, header, cols):
    if only is not None and task not in only:
        return
    for split, f in [("train", "train.tsv"), ("validation", "dev.tsv")]:
        rows = []
        for i, r in enumerate(tsv(f"{data}/glue/{d}/{f}", header)):
            row = {k: r[c] for k, c in cols.items()}
            lab = row.pop("label").strip()
            row["label"] = LABELS[task].index(lab) if task == "rte" else int(lab)
            row["idx"] = i
            rows.append(row)
        write("nyu-mll/glue", task, split, rows, LABELS[task], list(cols) + ["idx"])


glue("cola", "CoLA", False, {"sentence": 3, "label": 1})
glue("sst2", "SST-2", True, {"sentence": 0, "label": 1})
glue("mrpc", "MRPC", True, {"sentence1": 3, "sentence2": 4, "label": 0})
glue("rte", "RTE", True, {"sentence1": 1, "sentence2": 2, "label": 3})
glue("wnli", "WNLI", True, {"sentence1": 1, "sentence2": 2, "label": 3})

TF = ["False", "True"]


def superglue(config, d, convert, columns, labels=TF, files=("train.jsonl", "val.jsonl")):
    if only is not None and config.split(".")[0] not in only:
        return
    for split, f in zip(["train", "validation"], files):
        rows = [r for o in jsonl(f"{data}/superglue/{d}/{f}") for r in convert(o)]
        write("aps/super_glue", config, split, rows, labels, columns)


superglue("cb", "CB", lambda o: [{"premise": o["premise"], "hypothesis": o["hypothesis"], "idx": o["idx"],
                                  "label": LABELS["cb"].index(o["label"])}],
          ["premise", "hypothesis", "idx", "label"], LABELS["cb"])
superglue("boolq", "BoolQ", lambda o: [{"question": o["question"], "passage": o["passage"], "idx": o["idx"],
                                        "label": int(o["label"])}],
          ["question", "passage", "idx", "label"], files=("val.jsonl", "val.jsonl"))
superglue("wic", "WiC", lambda o: [{k: o[k] for k in ["word", "sentence1", "sentence2", "start1", "start2", "end1", "end2", "idx"]}
                                   | {"label": int(o["label"])}],
          ["word", "sentence1", "sentence2", "start1", "start2", "end1", "end2", "idx", "label"])
superglue("wsc.fixed", "WSC", lambda o: [{"text": o["text"], **{k: o["target"][k] for k in ["span1_index", "span2_index", "span1_text", "span2_text"]},
                                          "idx": o["idx"], "label": int(o["label"])}],
          ["text", "span1_index", "span2_index", "span1_text", "span2_text", "idx", "label"])
superglue("multirc", "MultiRC", lambda o: [
    {"paragraph": o["passage"]["text"], "question": q["question"], "answer": a["text"],
     "idx": {"paragraph": o["idx"], "question": q["idx"], "answer": a["idx"]}, "label": int(a["label"])}
    for q in o["passage"]["questions"] for a in q["answers"]],
          ["paragraph", "question", "answer", "idx", "label"])

# A dataset of a user's own (a custom task from the Hub, docs/data.md §7): rows 1-80 and
# 81-120 of examples/own-task/reviews.csv as the train and test splits of
# `stab-tests/reviews`, laid out as `push_to_hub` does (data/<split>-….parquet), the
# sentiment a ClassLabel whose names are not in sorted order (so the test sees that they
# are taken from the file).
if only is None or only == []:
    import csv
    here = os.path.dirname(os.path.abspath(__file__))
    reviews = list(csv.DictReader(open(f"{here}/../examples/own-task/reviews.csv", encoding="utf-8")))
    names = ["positive", "negative"]
    features = {"review": {"dtype": "string", "_type": "Value"},
                "sentiment": {"names": names, "_type": "ClassLabel"}}
    schema = pa.schema([pa.field("review", pa.string()), pa.field("sentiment", pa.int64())],
                       metadata={"huggingface": json.dumps({"info": {"features": features}})})
    repo = f"{out}/datasets--stab-tests--reviews"
    os.makedirs(f"{repo}/refs", exist_ok=True)
    open(f"{repo}/refs/main", "w").write(COMMIT)
    os.makedirs(f"{repo}/snapshots/{COMMIT}/data", exist_ok=True)
    for split, part in [("train", reviews[:80]), ("test", reviews[80:120])]:
        rows = [{"review": r["review"], "sentiment": names.index(r["sentiment"])} for r in part]
        pq.write_table(pa.Table.from_pylist(rows, schema=schema),
                       f"{repo}/snapshots/{COMMIT}/data/{split}-00000-of-00001.parquet",
                       compression="snappy")

if not bad_variants:
    print("wrote", out)
    sys.exit(0)
# Error paths: RTE variants in a dataset of their own.
rte = [{"sentence1": r[1], "sentence2": r[2], "label": LABELS["rte"].index(r[3].strip()), "idx": i}
       for i, r in enumerate(tsv(f"{data}/glue/RTE/train.tsv", True))]
rte_val = [{"sentence1": r[1], "sentence2": r[2], "label": LABELS["rte"].index(r[3].strip()), "idx": i}
           for i, r in enumerate(tsv(f"{data}/glue/RTE/dev.tsv", True))]
rte, rte_val = rte[:24], rte_val[:12]
cols = ["sentence1", "sentence2", "label", "idx"]
bad = "stab-tests/bad-glue"
shuffled = rte[:]
random.Random(0).shuffle(shuffled)
variants = {
    "rte-shuffled": (shuffled, LABELS["rte"], 1),
    "rte-sharded": (rte, LABELS["rte"], 3),
    "rte-gap": ([r for r in rte if r["idx"] != 7], LABELS["rte"], 1),
    "rte-hidden": ([r | {"label": -1} for r in rte], LABELS["rte"], 1),
    "rte-labels": (rte, ["not_entailment", "entailment"], 1),
}
for config, (rows, labels, shards) in variants.items():
    write(bad, config, "train", rows, labels, cols, shards)
    write(bad, config, "validation", rte_val, LABELS["rte"], cols)
print("wrote", out)
