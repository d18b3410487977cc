//! `[train] stop_failed = { after = K }` on the tiny BERT fixture, whose CB head never rises
//! above the majority class on dev: every run stops K evaluations after warmup and is
//! recorded as failed, with its test metrics; without the key the same runs go on.

use std::path::Path;

use crate::assets;
use crate::stab_cli;

use stab_cli::{records, run, run_ok};

fn run_grid(dir: &Path, stop: &str) -> Vec<serde_json::Value> {
    let root = assets::root().join("testdata");
    let recipe = dir.join("sf.toml");
    std::fs::write(
        &recipe,
        format!(
            "name = \"sf\"\n[model]\npath = \"{}\"\nmax_len = 32\n[data]\ndir = \"{}\"\ntasks = [\"cb\"]\n[train]\nmode = \"head\"\nmax_steps = 40\neval_every = 2\nwarmup = 0.1\nbatch_size = 8\nlr = 0.3\nseeds = 2\n{stop}[[methods]]\nname = \"finetune\"\n",
            root.join("fixtures/tiny-bert").display(),
            root.join("data").display()
        ),
    )
    .unwrap();
    let out = dir.join("out");
    run_ok(&[
        "run",
        recipe.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    records(&out)
}

#[test]
fn runs_at_the_majority_class_stop_early_and_are_recorded_as_failed() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let stopped = run_grid(a.path(), "stop_failed = { after = 3 }\n");
    let full = run_grid(b.path(), "");
    assert_eq!(stopped.len(), 2);
    for (s, f) in stopped.iter().zip(&full) {
        let d = &s["details"];
        // Warmup is 4 updates: evaluations at 6, 8 and 10 are the three in a row.
        assert_eq!(
            (d["stopped"].as_str(), d["stopped_at"].as_u64()),
            (Some("failed"), Some(10)),
            "{s}"
        );
        assert_eq!(s["steps"], 10);
        let curve = d["dev_curve"].as_array().unwrap();
        let majority = d["majority_dev"].as_f64().unwrap();
        assert!(
            curve
                .iter()
                .skip(2)
                .all(|p| p[1].as_f64().unwrap() <= majority + 1e-12),
            "{s}"
        );
        // Nothing is dropped: a record with test metrics, at or below the majority.
        assert!(
            s["metrics"]["primary"].as_f64().unwrap()
                <= d["majority_test"].as_f64().unwrap() + 1e-12
        );
        // The key is part of the run's identity; the run without it trains on.
        assert_ne!(s["run_id"], f["run_id"]);
        assert_eq!(f["steps"], 40);
        assert!(f["details"].get("stopped").is_none());
    }
}

#[test]
fn analyze_stop_failed_replays_the_rule_on_stored_dev_curves() {
    let tmp = tempfile::tempdir().unwrap();
    let full = run_grid(tmp.path(), "");
    let out = tmp.path().join("out");
    let analyze = |extra: &[&str]| {
        let mut args = vec![
            "analyze",
            "stop-failed",
            out.to_str().unwrap(),
            "--after",
            "3",
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    // The records of a grid without the key do not carry the dev majority: one clear error.
    let bare = analyze(&[]);
    assert_eq!(bare.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bare.stderr).contains("--data-dir"));
    let data = assets::root().join("testdata/data");
    let o = analyze(&["--data-dir", data.to_str().unwrap(), "--format", "json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // The recipe the grid ran reads the task as its runs did (so a task of one's own works
    // too): the same majority-class scores.
    let recipe = tmp.path().join("sf.toml");
    let o = analyze(&["--recipe", recipe.to_str().unwrap(), "--format", "json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let by_recipe: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(by_recipe["majority"], doc["majority"]);
    let row = &doc["rows"][0];
    // The same stop as the engine's (update 10 of 40), on both runs.
    assert_eq!(
        (row["runs"].as_u64(), row["stopped"].as_u64()),
        (Some(2), Some(2)),
        "{doc}"
    );
    assert_eq!(row["updates_saved"], 60);
    // A stopped run "recovers" when its full curve later rises above the dev majority.
    let majority = doc["majority"]["cb"]["dev"].as_f64().unwrap();
    let recovered = full
        .iter()
        .filter(|r| {
            r["details"]["dev_curve"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p[0].as_u64().unwrap() > 10 && p[1].as_f64().unwrap() > majority + 1e-12)
        })
        .count();
    assert_eq!(
        row["recovered_dev"].as_u64(),
        Some(recovered as u64),
        "{doc}"
    );
    // The stop changes a record only when the full run's best dev came after it.
    let changed = full
        .iter()
        .filter(|r| r["best_step"].as_u64().unwrap() > 10)
        .count();
    assert_eq!(row["changed"].as_u64(), Some(changed as u64), "{doc}");
}
