//! `stab analyze` end to end on tiny-bert: checkpoints from a real run, each analysis
//! appended to analyses.jsonl and rendered by `stab report`; bad input is exit 2.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::assets;

fn stab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stab"))
        .env("STAB_LOG", "warn")
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = stab(args);
    assert!(
        out.status.success(),
        "stab {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn recipe(dir: &Path, mode: &str) -> PathBuf {
    let testdata = assets::root().join("testdata");
    let p = dir.join(format!("{mode}.toml"));
    std::fs::write(
        &p,
        format!(
            "name = \"a-{mode}\"\nout = \"{}\"\n[model]\npath = \"{}\"\nmax_len = 64\n[data]\ndir = \"{}\"\ntasks = [\"cb\", \"rte\"]\n[train]\nmode = \"{mode}\"\nmax_steps = 12\nbatch_size = 8\nlr = 1e-3\nseeds = [0]\nsave_best = true\n[[methods]]\nname = \"finetune\"\n",
            dir.join(mode).display(),
            testdata.join("fixtures/tiny-bert").display(),
            testdata.join("data").display()
        ),
    )
    .unwrap();
    p
}

fn analyses(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("analyses.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn every_analysis_runs_on_real_checkpoints_and_reaches_the_report() {
    let tmp = tempfile::tempdir().unwrap();
    let full = recipe(tmp.path(), "full");
    ok(&["run", full.to_str().unwrap()]);
    let store = tmp.path().join("full");
    let data = assets::root().join("testdata/data");

    // A damaged checkpoint after a good one: refused before the first row, so a rerun
    // never appends a duplicate (issue #34).
    let copy = tmp.path().join("copy");
    assets::copy_tree(&store.join("checkpoints"), &copy.join("checkpoints"));
    let mut ckpts: Vec<PathBuf> = std::fs::read_dir(store.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    ckpts.sort();
    let last = copy
        .join("checkpoints")
        .join(ckpts.last().unwrap().file_name().unwrap())
        .join("model.safetensors");
    let bytes = std::fs::read(&last).unwrap();
    std::fs::write(&last, &bytes[..bytes.len() / 2]).unwrap();
    let out = stab(&["analyze", "distance", copy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        !copy.join("analyses.jsonl").exists(),
        "no row from the good checkpoint"
    );

    ok(&["analyze", "distance", store.to_str().unwrap()]);
    let recs = analyses(&store);
    assert_eq!(recs.len(), 2, "one per checkpoint");
    for r in &recs {
        let total = &r["result"]["rows"][0];
        assert_eq!(total["group"], "total");
        let l2 = total["l2"].as_f64().unwrap();
        assert!(l2 > 0.0 && l2 < 1.0, "{r}");
    }

    let ckpt = std::fs::read_dir(store.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("cb-"))
        .unwrap();
    ok(&[
        "analyze",
        "taylor",
        ckpt.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--batch",
        "8",
        "--repeats",
        "3",
        "--ps",
        "0.001,0.01,0.05",
    ]);
    let taylor = analyses(&store)
        .into_iter()
        .find(|r| r["analysis"] == "taylor")
        .unwrap();
    let points = taylor["result"]["points"].as_array().unwrap();
    assert_eq!(points.len(), 3);
    let gap = |i: usize| points[i]["mean"].as_f64().unwrap();
    assert!(
        gap(0) < 1e-3 && gap(0) <= gap(2),
        "gaps {} … {}",
        gap(0),
        gap(2)
    );

    ok(&[
        "analyze",
        "loo",
        full.to_str().unwrap(),
        "--steps",
        "50",
        "--points",
        "3",
        "--heads",
        "1,4",
        "--svm-max-iter",
        "20000",
    ]);
    let loo: Vec<_> = analyses(&store)
        .into_iter()
        .filter(|r| r["analysis"] == "loo")
        .collect();
    assert_eq!(loo.len(), 2, "cb and rte");
    let cb = loo.iter().find(|r| r["task"] == "cb").unwrap();
    assert_eq!(
        cb["result"]["problems"].as_array().unwrap().len(),
        3,
        "one-vs-rest"
    );

    let bounds = ok(&["analyze", "bounds", store.to_str().unwrap()]);
    assert!(
        bounds.contains("thm2.4") && bounds.contains("cor3.1 (H = 4)"),
        "{bounds}"
    );

    let report = ok(&["report", store.to_str().unwrap()]);
    for section in [
        "Weight distance",
        "Taylor validity",
        "Leave-one-out",
        "bounds from measured",
    ] {
        assert!(
            report.contains(section),
            "{section} missing from the report"
        );
    }
    for plot in ["taylor.svg", "loo-vs-heads.svg"] {
        assert!(store.join("plots").join(plot).is_file(), "{plot}");
    }
}

#[test]
fn analyses_refuse_what_they_cannot_measure_with_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let head = recipe(tmp.path(), "head");
    ok(&["run", head.to_str().unwrap()]);
    let store = tmp.path().join("head");
    let out = stab(&["analyze", "distance", store.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("head-tuning checkpoint"));

    let out = stab(&[
        "analyze",
        "distance",
        tmp.path().join("nowhere").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = stab(&["analyze", "bounds", store.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "no loo results yet");
    assert!(String::from_utf8_lossy(&out.stderr).contains("analyze loo"));
}
