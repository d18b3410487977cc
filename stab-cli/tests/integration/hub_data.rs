//! `[data] source = "hub"` end to end, offline, on the hand-laid Hugging Face cache in
//! `testdata/hub`: hub-sourced runs give the records of dir-sourced runs, `stab data
//! fetch --to` writes an official layout that reads back the same, and bad input (an
//! empty offline cache, inconsistent `[data]` keys) is one exit-2 error.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::assets;

/// `stab` offline on the hand-laid cache (or on `cache`).
fn stab(cache: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_stab"));
    c.env("STAB_LOG", "warn")
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HUB_CACHE", cache)
        .env_remove("HF_HOME");
    c
}

fn ok(out: Output, what: &str) -> Output {
    assert!(
        out.status.success(),
        "{what} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn recipe(dir: &Path, name: &str, data: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let text = format!(
        "name = \"{name}\"\n[model]\npath = \"{}\"\nmax_len = 64\n[data]\n{data}\ntasks = [\"cb\", \"rte\"]\n[train]\nmax_steps = 3\nbatch_size = 8\nseeds = 2\neval_every = 1\n[[methods]]\nname = \"finetune\"\n[[methods]]\nname = \"mmr\"\n",
        assets::fixtures().join("tiny-bert").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// A record's scientific content: everything but its identity, timings and file hash.
fn content(mut r: serde_json::Value) -> serde_json::Value {
    let o = r.as_object_mut().unwrap();
    for k in ["run_id", "wall_s", "recipe"] {
        o.remove(k);
    }
    o["inputs"].as_object_mut().unwrap().remove("data");
    o["details"].as_object_mut().unwrap().remove("seconds");
    r
}

fn records(out: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(out.join("runs.jsonl")).unwrap();
    let mut v: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    v.sort_by_key(|r| {
        (
            r["task"].to_string(),
            r["method"].to_string(),
            r["seed"].as_u64(),
        )
    });
    v
}

fn predicted(out: &Path, run_id: &str) -> serde_json::Value {
    let p = out.join("predictions").join(format!("{run_id}.json"));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
    v["predicted"].clone()
}

#[test]
fn hub_sourced_runs_give_the_records_of_dir_sourced_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let splits = assets::slices().join("splits");
    let dir = recipe(
        tmp.path(),
        "dir",
        &format!("dir = \"{}\"", assets::slices().display()),
    );
    // The author's built-in splits number the full train files; the slices carry their own.
    let hub = recipe(
        tmp.path(),
        "hub",
        &format!("source = \"hub\"\nsplits = \"{}\"", splits.display()),
    );
    let cache = assets::hub_cache();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for (r, out) in [(&dir, &a), (&hub, &b)] {
        ok(
            stab(&cache)
                .arg("run")
                .arg(r)
                .arg("--out")
                .arg(out)
                .output()
                .unwrap(),
            "stab run",
        );
    }
    let (ra, rb) = (records(&a), records(&b));
    assert_eq!(ra.len(), 8);
    for (x, y) in ra.iter().zip(&rb) {
        assert_ne!(
            x["run_id"], y["run_id"],
            "the source is part of a run's identity"
        );
        assert_ne!(
            x["inputs"]["data"], y["inputs"]["data"],
            "other files were read"
        );
        assert!(x["split"].as_str().unwrap().starts_with("file:"));
        let (px, py) = (
            predicted(&a, x["run_id"].as_str().unwrap()),
            predicted(&b, y["run_id"].as_str().unwrap()),
        );
        assert_eq!(px, py);
        assert_eq!(content(x.clone()), content(y.clone()));
    }
    // Resuming the hub store offline reruns nothing.
    ok(
        stab(&cache)
            .arg("run")
            .arg(&hub)
            .arg("--out")
            .arg(&b)
            .output()
            .unwrap(),
        "resume",
    );
    assert_eq!(records(&b).len(), 8);
}

#[test]
fn data_fetch_to_writes_the_official_layout_that_reads_back_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = assets::hub_cache();
    let to = tmp.path().join("data");
    let out = ok(
        stab(&cache)
            .args(["data", "fetch", "--tasks", "rte,multirc,wic", "--to"])
            .arg(&to)
            .output()
            .unwrap(),
        "data fetch",
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("rte: nyu-mll/glue (config rte) — 160 train, 60 test rows"),
        "{said}"
    );
    for f in [
        "glue/RTE/train.tsv",
        "glue/RTE/dev.tsv",
        "superglue/MultiRC/val.jsonl",
        "superglue/WiC/train.jsonl",
    ] {
        assert!(to.join(f).is_file(), "{f}: {said}");
    }
    assert!(
        !to.join("splits/multirc.json").exists(),
        "MultiRC has no author split"
    );
    let check = |args: &[&str]| -> serde_json::Value {
        let out = ok(
            stab(&cache)
                .args(["data", "check", "--json"])
                .args(args)
                .output()
                .unwrap(),
            "data check",
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    for task in ["multirc", "wic"] {
        let d = check(&["--task", task, "--data-dir", to.to_str().unwrap()]);
        let h = check(&["--task", task, "--hub"]);
        assert_eq!(
            (&d["splits"], &d["labels"], &d["split"]),
            (&h["splits"], &h["labels"], &h["split"]),
            "{task}"
        );
        assert!(
            h["source"]
                .as_str()
                .unwrap()
                .starts_with("Hub aps/super_glue"),
            "{h}"
        );
    }
    // RTE's author split numbers the full train file, which this 160-row slice is not:
    // no split file that does not fit is written, and the fetch says so.
    assert!(!to.join("splits/rte.json").exists(), "{said}");
    let warned = String::from_utf8_lossy(&out.stderr);
    assert!(
        warned.contains("rte: the author's split does not fit the fetched train split"),
        "{warned}"
    );
    let out = stab(&cache)
        .args(["data", "check", "--task", "rte", "--data-dir"])
        .arg(&to)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Again: the same files are no replacement. A file that differs is refused before
    // anything is written, and replaced with --overwrite.
    let fetch = |extra: &[&str]| {
        stab(&cache)
            .args(["data", "fetch", "--tasks", "rte,multirc,wic", "--to"])
            .arg(&to)
            .args(extra)
            .output()
            .unwrap()
    };
    assert!(fetch(&[]).status.success());
    let wic = to.join("superglue/WiC/train.jsonl");
    let good = std::fs::read(&wic).unwrap();
    std::fs::write(to.join("glue/RTE/dev.tsv"), b"mine\n").unwrap();
    std::fs::write(&wic, b"mine too\n").unwrap();
    let refused = fetch(&[]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{err}");
    assert!(
        err.contains("dev.tsv") && err.contains("--overwrite"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&wic).unwrap(),
        b"mine too\n",
        "written before refusing"
    );
    assert!(fetch(&["--overwrite"]).status.success());
    assert_eq!(std::fs::read(&wic).unwrap(), good);
}

#[test]
fn an_offline_hub_run_with_nothing_cached_is_one_exit_2_error() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("cache");
    std::fs::create_dir(&empty).unwrap();
    let r = recipe(tmp.path(), "hub", "source = \"hub\"");
    let out_dir = tmp.path().join("out");
    let run_on = |cache: &Path| {
        stab(cache)
            .arg("run")
            .arg(&r)
            .arg("--out")
            .arg(&out_dir)
            .output()
            .unwrap()
    };
    let out = run_on(&empty);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("aps/super_glue (config cb)") && err.contains(empty.to_str().unwrap()),
        "{err}"
    );
    assert!(err.contains("stab data fetch --tasks cb"), "{err}");
    assert_eq!(err.matches("error").count(), 1, "one error: {err}");
    assert!(!out_dir.exists(), "nothing written for bad input");
    let out = stab(&empty)
        .args(["data", "fetch", "--tasks", "cb"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // The fetch's own failure does not recommend running the fetch again.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("stab data fetch --tasks"), "{err}");

    // A cache whose refs/main names no snapshot is named as damaged, not as missing data.
    let broken = tmp.path().join("broken");
    assets::copy_tree(&assets::root().join("testdata/hub"), &broken);
    std::fs::write(
        broken.join("datasets--aps--super_glue/refs/main"),
        "0000000000000000000000000000000000000000",
    )
    .unwrap();
    let out = run_on(&broken);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("refs/main names the commit `0000000000000000000000000000000000000000`"),
        "{err}"
    );
}

#[test]
fn inconsistent_data_keys_are_exit_2_with_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = assets::hub_cache();
    let cases = [
        (
            "source = \"hub\"\ndir = \"data\"",
            "data.dir",
            "not read with source = \"hub\"",
        ),
        ("", "data.dir", "`dir` is missing"),
        ("source = \"hubb\"", "`hubb`", "did you mean `hub`"),
        (
            "source = \"hub\"\n[data.hub.rtee]\ndataset = \"nyu-mll/glue\"\nconfig = \"rte\"",
            "data.hub.rtee",
            "did you mean `rte`",
        ),
        (
            "source = \"hub\"\n[data.hub.rte]\ndataset = \"glue\"\nconfig = \"rte\"",
            "data.hub.rte.dataset",
            "owner/name",
        ),
        (
            "dir = \"data\"\n[data.hub.rte]\ndataset = \"nyu-mll/glue\"\nconfig = \"rte\"",
            "data.hub",
            "only applies with source = \"hub\"",
        ),
    ];
    for (data, key, says) in cases {
        // `[data.hub.*]` tables end the [data] table, so the tasks line goes first.
        let path = tmp.path().join("r.toml");
        std::fs::write(
            &path,
            format!("name = \"r\"\n[model]\npath = \"m\"\n[data]\ntasks = [\"rte\"]\n{data}\n[[methods]]\nname = \"finetune\"\n"),
        )
        .unwrap();
        let out = stab(&cache).arg("plan").arg(&path).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{data}: {err}");
        assert!(err.contains(key) && err.contains(says), "{data}: {err}");
    }
}

/// `model.path` a Hub id, for every family: `stab run` resolves it through the cache
/// (offline) and fine-tunes it; each family's run is recorded with a finite dev score.
#[test]
fn every_family_runs_from_its_hub_id() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    let families = [
        ("google-bert/bert-base-uncased", "tiny-bert"),
        ("FacebookAI/roberta-base", "tiny-roberta"),
        ("google/electra-base-discriminator", "tiny-electra"),
        ("microsoft/deberta-v3-base", "tiny-deberta-v3"),
        ("answerdotai/ModernBERT-base", "tiny-modernbert"),
        ("openai-community/gpt2", "tiny-gpt2"),
        ("HuggingFaceTB/SmolLM2-135M", "tiny-llama"),
        ("Qwen/Qwen2.5-0.5B", "tiny-qwen2"),
        ("Qwen/Qwen3-0.6B", "tiny-qwen3"),
    ];
    for (id, fixture) in families {
        let repo = cache.join(format!("models--{}", id.replace('/', "--")));
        assets::copy_fixture(fixture, &repo.join("snapshots/0123abcd"), &[]);
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), "0123abcd").unwrap();
        let name = fixture.replace('-', "_");
        let path = tmp.path().join(format!("{name}.toml"));
        std::fs::write(
            &path,
            format!(
                "name = \"{name}\"\n[model]\npath = \"{id}\"\nmax_len = 64\n[data]\ndir = \"{}\"\ntasks = [\"cb\"]\ntrain_fraction = 0.3\n[train]\nmax_steps = 2\nbatch_size = 8\nseeds = 1\n[[methods]]\nname = \"finetune\"\n",
                assets::slices().display()
            ),
        )
        .unwrap();
        let out = tmp.path().join(&name);
        ok(
            stab(&cache)
                .args([
                    "run",
                    path.to_str().unwrap(),
                    "--out",
                    out.to_str().unwrap(),
                ])
                .output()
                .unwrap(),
            id,
        );
        let runs = records(&out);
        assert_eq!(runs.len(), 1, "{id}");
        assert!(
            runs[0]["dev_best"].as_f64().is_some_and(f64::is_finite),
            "{id}: {}",
            runs[0]
        );
    }
}
