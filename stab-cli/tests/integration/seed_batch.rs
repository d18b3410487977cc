//! `stab run` with seed batching (docs/methods.md §4.5) on the tiny BERT fixture: the
//! store a batched grid writes is the solo grid's (same run ids, records and predictions,
//! timings aside) with one job or two, a grid resumed by a batched run completes a solo
//! one without repeating a run, and a bad cap is one error naming its key.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::assets;
use crate::stab_cli::{records, run};

fn recipe(dir: &Path, more: &str) -> std::path::PathBuf {
    let root = assets::root().join("testdata");
    let path = dir.join("sb.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"sb\"\n[model]\npath = \"{}\"\nmax_len = 32\n[data]\ndir = \"{}\"\ntasks = [\"cb\", \"wsc\"]\n[train]\nmode = \"head\"\nmax_steps = 16\neval_every = 4\nbatch_size = 8\nlr = 3e-3\nseeds = 6\n{more}[[methods]]\nname = \"finetune\"\n[[methods]]\nname = \"mhloss\"\nheads = 3\n[[methods]]\nname = \"mmr\"\n",
            root.join("fixtures/tiny-bert").display(),
            root.join("data").display()
        ),
    )
    .unwrap();
    path
}

/// The store by run id, without timings, thread counts and cache sources, with each run's predictions.
fn store(out: &Path) -> BTreeMap<String, Value> {
    records(out)
        .into_iter()
        .map(|mut r| {
            let id = r["run_id"].as_str().unwrap().to_string();
            r["wall_s"] = Value::Null;
            // The threads the run computed on (`--jobs` splits them), like timings.
            r["threads"] = Value::Null;
            let d = r["details"].as_object_mut().unwrap();
            d.remove("seconds");
            d.remove("feature_cache");
            let p = out.join("predictions").join(format!("{id}.json"));
            r["predictions"] = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
            (id, r)
        })
        .collect()
}

/// `stab run RECIPE --out OUT ARGS…`, which must succeed; what it logged (the "done"
/// line of each run).
fn grid(recipe: &Path, out: &Path, args: &[&str]) -> String {
    let mut all = vec![
        "run",
        recipe.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    all.extend(args);
    let done = std::process::Command::new(env!("CARGO_BIN_EXE_stab"))
        .env("STAB_LOG", "info")
        .args(&all)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&done.stderr).into_owned();
    assert!(done.status.success(), "stab {all:?} failed:\n{said}");
    said
}

#[test]
fn a_batched_grid_writes_the_solo_grids_store() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = recipe(tmp.path(), "");
    let solo_out = tmp.path().join("solo");
    let said = grid(&recipe, &solo_out, &["--seed-batch", "1"]);
    assert!(!said.contains("seed batch"), "{said}");
    let solo = store(&solo_out);
    assert_eq!(solo.len(), 36);
    for (name, args) in [
        ("auto", &[][..]),
        ("two jobs", &["--seed-batch", "4", "--jobs", "2"][..]),
    ] {
        let out = tmp.path().join(name.replace(' ', "-"));
        let said = grid(&recipe, &out, args);
        // Every method here batches (MMR with its term per member).
        assert_eq!(said.matches("[seed batch of").count(), 36, "{name}: {said}");
        assert_eq!(store(&out), solo, "{name}");
    }
}

#[test]
fn a_batched_run_completes_a_partial_store_without_repeating_a_run() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = recipe(tmp.path(), "seed_batch = 4\n");
    let solo_out = tmp.path().join("solo");
    grid(&recipe, &solo_out, &["--seed-batch", "1"]);
    let solo = store(&solo_out);
    // A grid killed after 10 runs: their records and predictions, nothing else.
    let out = tmp.path().join("resumed");
    std::fs::create_dir_all(out.join("predictions")).unwrap();
    let lines: Vec<String> = std::fs::read_to_string(solo_out.join("runs.jsonl"))
        .unwrap()
        .lines()
        .take(10)
        .map(str::to_string)
        .collect();
    std::fs::write(out.join("runs.jsonl"), lines.join("\n") + "\n").unwrap();
    for l in &lines {
        let id = serde_json::from_str::<Value>(l).unwrap()["run_id"]
            .as_str()
            .unwrap()
            .to_string();
        let name = format!("predictions/{id}.json");
        std::fs::copy(solo_out.join(&name), out.join(&name)).unwrap();
    }
    let said = grid(&recipe, &out, &[]);
    assert!(said.contains("[seed batch of 4]"), "{said}");
    assert_eq!(records(&out).len(), 36, "no run twice");
    assert_eq!(store(&out), solo);
}

#[test]
fn a_seed_batch_of_zero_is_one_error_naming_its_key() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = recipe(tmp.path(), "seed_batch = 0\n");
    let out = run(&[
        "run",
        recipe.to_str().unwrap(),
        "--out",
        tmp.path().join("o").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("train.seed_batch"), "{err}");
    assert!(!tmp.path().join("o").exists(), "nothing written");
    let good = self::recipe(tmp.path(), "");
    let flag = run(&["run", good.to_str().unwrap(), "--seed-batch", "0"]);
    assert!(String::from_utf8_lossy(&flag.stderr).contains("--seed-batch"));
}
