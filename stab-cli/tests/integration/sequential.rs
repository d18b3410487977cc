//! `[seeds] policy = "sequential"` end to end on the tiny BERT fixture (real head tuning):
//! rounds recorded, resume, `stab plan`, the report's section and JSON, the replay of a
//! fixed store, and the recipe errors.

use std::path::{Path, PathBuf};

use crate::assets;
use crate::stab_cli;

use stab_cli::{records, run, run_ok};

fn recipe(dir: &Path, seeds: &str, train: &str) -> PathBuf {
    let root = assets::root().join("testdata");
    let text = format!(
        "name = \"seq\"\n[model]\npath = \"{}\"\nmax_len = 32\n[data]\ndir = \"{}\"\ntasks = [\"cb\"]\n[train]\nmode = \"head\"\nmax_steps = 3\nbatch_size = 8\nlr = 0.01\n{train}{seeds}[[methods]]\nname = \"finetune\"\n[[methods]]\nname = \"mhloss\"\nheads = 4\n",
        root.join("fixtures/tiny-bert").display(),
        root.join("data").display()
    );
    let p = dir.join("seq.toml");
    std::fs::write(&p, text).unwrap();
    p
}

const SEQUENTIAL: &str =
    "[seeds]\npolicy = \"sequential\"\nmin = 3\nstep = 2\nmax = 7\nsmallest_ratio = 0.5\n";

#[test]
fn a_sequential_grid_records_its_rounds_resumes_and_reports_its_decisions() {
    let tmp = tempfile::tempdir().unwrap();
    let r = recipe(tmp.path(), SEQUENTIAL, "");
    let out = tmp.path().join("out");
    let (r, o) = (r.to_str().unwrap(), out.to_str().unwrap());
    let plan = String::from_utf8(run_ok(&["plan", r]).stdout).unwrap();
    assert!(
        plan.contains("sequential: these are every arm's seeds up to seeds.max = 7"),
        "{plan}"
    );
    let first = run_ok(&["run", r, "--out", o]);
    let log = String::from_utf8_lossy(&first.stderr);
    assert!(
        log.contains("cb mhloss heads=4") && log.contains(" vs finetune: sd "),
        "{log}"
    );
    let recs = records(&out);
    // Round 0 is 3 seeds per arm; later rounds add 2 per undecided arm.
    for rec in &recs {
        let seed = rec["seed"].as_u64().unwrap();
        let round = rec["sequential"]["round"].as_u64().unwrap();
        assert_eq!(
            round,
            if seed < 3 { 0 } else { (seed - 3) / 2 + 1 },
            "{rec}"
        );
        assert_eq!(rec["sequential"]["design"]["max"], 7);
    }
    assert!(recs.len() >= 6 && recs.len() <= 14, "{}", recs.len());
    // Resume: nothing runs again.
    run_ok(&["run", r, "--out", o]);
    assert_eq!(records(&out).len(), recs.len());
    // The report replays the decisions from the records alone.
    let md = String::from_utf8(run_ok(&["report", o]).stdout).unwrap();
    assert!(
        md.contains("## Sequential seeds: decisions and seeds spent"),
        "{md}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&run_ok(&["report", o, "--format", "json"]).stdout).unwrap();
    let arm = &json["sequential"]["cb"]["mhloss"];
    assert!(
        ["lower", "higher", "no_difference", "undecided"]
            .contains(&arm["decision"].as_str().unwrap()),
        "{json}"
    );
    assert_eq!(arm["saved"], 0);
    let n = arm["n"].as_u64().unwrap();
    let mhloss_runs = recs.iter().filter(|r| r["method"] == "mhloss").count() as u64;
    assert_eq!(
        n, mhloss_runs,
        "the arm ran exactly the seeds the rule used"
    );
}

#[test]
fn analyze_sequential_replays_a_fixed_store_and_says_what_it_saves() {
    let tmp = tempfile::tempdir().unwrap();
    let r = recipe(tmp.path(), "", "seeds = 8\n");
    let out = tmp.path().join("out");
    let o = out.to_str().unwrap();
    run_ok(&["run", r.to_str().unwrap(), "--out", o]);
    // The rule of the sequential recipe above, replayed on 8 fixed seeds.
    let replay = |extra: &[&str]| {
        let mut args = vec![
            "analyze",
            "sequential",
            o,
            "--min",
            "3",
            "--step",
            "2",
            "--max",
            "7",
        ];
        args.extend_from_slice(extra);
        run_ok(&args).stdout
    };
    let json: serde_json::Value = serde_json::from_slice(&replay(&["--format", "json"])).unwrap();
    let arms = json["arms"].as_array().unwrap();
    assert_eq!(arms.len(), 1, "{json}");
    let a = &arms[0];
    for key in ["task", "method", "decision", "n", "rounds"] {
        assert!(!a[key].is_null(), "{key} in {a}");
    }
    assert_eq!(a["available"], 8);
    assert_eq!(a["saved"].as_u64().unwrap(), 8 - a["n"].as_u64().unwrap());
    let md = String::from_utf8(replay(&[])).unwrap();
    assert!(md.contains("| cb   | mhloss"), "{md}");
    // A baseline the store does not hold is one clear error.
    let bad = run(&["analyze", "sequential", o, "--baseline", "finetun"]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("did you mean `finetune`") && err.contains("--baseline"),
        "{err}"
    );
}

#[test]
fn a_sequential_recipe_refuses_its_own_seeds_and_an_unknown_baseline() {
    let tmp = tempfile::tempdir().unwrap();
    let r = recipe(tmp.path(), SEQUENTIAL, "seeds = 4\n");
    let bad = run(&["plan", r.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("train.seeds and [seeds] policy = \"sequential\" both choose the seeds"),
        "{err}"
    );
    let r = recipe(
        tmp.path(),
        &SEQUENTIAL.replace("min = 3", "baseline = \"finetun\""),
        "",
    );
    let err = String::from_utf8_lossy(&run(&["plan", r.to_str().unwrap()]).stderr).to_string();
    assert!(
        err.contains("seeds.baseline") && err.contains("did you mean `finetune`"),
        "{err}"
    );
    let r = recipe(tmp.path(), &SEQUENTIAL.replace("max = 7", "max = 2"), "");
    let err = String::from_utf8_lossy(&run(&["plan", r.to_str().unwrap()]).stderr).to_string();
    assert!(
        err.contains("seeds.max = 2 must be at least seeds.min = 3"),
        "{err}"
    );
    let r = recipe(tmp.path(), &SEQUENTIAL.replace("min = 3", "mni = 3"), "");
    let err = String::from_utf8_lossy(&run(&["plan", r.to_str().unwrap()]).stderr).to_string();
    assert!(
        err.contains("mni") && err.contains("did you mean `min`"),
        "{err}"
    );
}
