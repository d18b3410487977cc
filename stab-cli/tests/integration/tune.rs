//! `[tune]` end to end on the tiny BERT fixture (real head tuning): search runs on their
//! own seeds, each method's study at its own best dev value, resume, the report's section,
//! and the recipe errors.

use std::path::{Path, PathBuf};

use crate::assets;
use crate::stab_cli;

use stab_cli::{records, run, run_ok};

fn recipe(dir: &Path, tune: &str, methods: &str) -> PathBuf {
    let root = assets::root().join("testdata");
    let p = dir.join("tune.toml");
    std::fs::write(
        &p,
        format!(
            "name = \"tune\"\n[model]\npath = \"{}\"\nmax_len = 32\n[data]\ndir = \"{}\"\ntasks = [\"cb\"]\n[train]\nmode = \"head\"\nmax_steps = 12\neval_every = 3\nbatch_size = 8\nseeds = 2\n{tune}[[methods]]\nname = \"finetune\"\n{methods}",
            root.join("fixtures/tiny-bert").display(),
            root.join("data").display()
        ),
    )
    .unwrap();
    p
}

const TUNE: &str = "[tune]\nkey = \"train.lr\"\nvalues = [0.001, 0.1]\nseeds = 2\n";

#[test]
fn each_method_runs_its_study_at_its_own_best_dev_value() {
    let tmp = tempfile::tempdir().unwrap();
    let r = recipe(tmp.path(), TUNE, "[[methods]]\nname = \"mmr\"\n");
    let out = tmp.path().join("out");
    let (r, o) = (r.to_str().unwrap(), out.to_str().unwrap());
    run_ok(&["run", r, "--out", o]);
    let recs = records(&out);
    let (search, study): (Vec<_>, Vec<_>) =
        recs.iter().partition(|r| r["tune"]["stage"] == "search");
    // 2 methods × 2 values × 2 search seeds; 2 methods × 2 study seeds.
    assert_eq!((search.len(), study.len()), (8, 4));
    for s in &search {
        assert!(s["seed"].as_u64().unwrap() >= 1_000_000, "{s}");
    }
    for method in ["finetune", "mmr"] {
        let mean = |v: f64| {
            let d: Vec<f64> = search
                .iter()
                .filter(|s| s["method"] == method && s["tune"]["value"].as_f64() == Some(v))
                .map(|s| s["dev_best"].as_f64().unwrap())
                .collect();
            d.iter().sum::<f64>() / d.len() as f64
        };
        let best = if mean(0.1) > mean(0.001) { 0.1 } else { 0.001 };
        for s in study.iter().filter(|s| s["method"] == method) {
            assert_eq!(s["tune"]["stage"], "chosen");
            assert_eq!(s["tune"]["value"].as_f64(), Some(best), "{s}");
            assert_eq!(s["details"]["method_train"]["lr"].as_f64(), Some(best));
            assert!(s["seed"].as_u64().unwrap() < 2);
        }
    }
    // Resume: nothing runs again.
    run_ok(&["run", r, "--out", o]);
    assert_eq!(records(&out).len(), 12);
    // The report: search runs only in their section; the study's table has n = 2.
    let json: serde_json::Value =
        serde_json::from_slice(&run(&["report", o, "--format", "json"]).stdout).unwrap();
    let t = &json["tuning"]["cb"]["finetune"];
    assert_eq!(t["values"].as_array().unwrap().len(), 2, "{json}");
    assert!(t["chosen"].is_string(), "{t}");
    let md = String::from_utf8(run(&["report", o]).stdout).unwrap();
    assert!(
        md.contains("## Tuning: each method at its own best value"),
        "{md}"
    );
    assert!(md.contains("n=2") && !md.contains("n=6"), "{md}");
}

#[test]
fn a_tune_table_is_checked_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    for (tune, methods, expect) in [
        (
            "[tune]\nkey = \"train.seeds\"\nvalues = [1]\n",
            "",
            "is not a [train] key a search can vary",
        ),
        (
            TUNE,
            "[[methods]]\nname = \"lora\"\ntrain = { lr = 5e-4 }\n",
            "methods[1] sets it with its own train",
        ),
        (
            "[tune]\nkey = \"train.lr\"\nvalues = [-1.0]\n",
            "",
            "tune.values: train.lr = -1.0",
        ),
        (
            "[tune]\nkey = \"train.lr\"\nvalues = []\n",
            "",
            "tune.values is empty",
        ),
        (
            "[tune]\nkey = \"train.lr\"\nvalus = [1e-3]\n",
            "",
            "did you mean `values`",
        ),
    ] {
        let r = recipe(tmp.path(), tune, methods);
        let o = run(&["plan", r.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{tune}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(expect), "{tune}: {err}");
    }
}
