//! `--track` and `stab track` on the tiny BERT fixture (real head tuning): TensorBoard
//! event files that hold each record's curves and results, a tracking server that cannot
//! be reached or never answers (the grid still records every run, and says what did not
//! arrive), and the replay of a store. The MLflow server itself runs in CI
//! (scripts/tracking_e2e.sh, checked with MLflow's and TensorBoard's own readers).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::assets;
use crate::stab_cli;

use stab_cli::{records, run, run_ok};
use stab_track::tensorboard::{What, read_events};

fn recipe(dir: &Path) -> PathBuf {
    let root = assets::root().join("testdata");
    let text = format!(
        "name = \"track\"\n[model]\npath = \"{}\"\nmax_len = 32\n[data]\ndir = \"{}\"\ntasks = [\"cb\"]\n[train]\nmode = \"head\"\nmax_steps = 12\neval_every = 4\nbatch_size = 8\nlr = 0.01\nseeds = 2\n[[methods]]\nname = \"finetune\"\n[[methods]]\nname = \"mmr\"\n",
        root.join("fixtures/tiny-bert").display(),
        root.join("data").display()
    );
    let p = dir.join("track.toml");
    std::fs::write(&p, text).unwrap();
    p
}

/// Every scalar of a run's event files, by tag: (step, value).
fn scalars(run_dir: &Path) -> BTreeMap<String, Vec<(i64, f32)>> {
    let mut by_tag: BTreeMap<String, Vec<(i64, f32)>> = BTreeMap::new();
    let files: Vec<_> = std::fs::read_dir(run_dir).unwrap().flatten().collect();
    assert_eq!(files.len(), 1, "one event file in {}", run_dir.display());
    let events = read_events(&files[0].path()).unwrap();
    assert_eq!(
        events[0].what,
        Some(What::FileVersion("brain.Event:2".into()))
    );
    for e in &events[1..] {
        let Some(What::Summary(s)) = &e.what else {
            panic!("a summary: {e:?}")
        };
        for v in &s.value {
            by_tag
                .entry(v.tag.clone())
                .or_default()
                .push((e.step, v.simple_value.unwrap()));
        }
    }
    by_tag
}

fn curve(v: &serde_json::Value) -> Vec<(i64, f32)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_i64().unwrap(), p[1].as_f64().unwrap() as f32))
        .collect()
}

/// Each record's curves and results are in its run's event file, under its group.
fn assert_event_files_hold_the_records(out: &Path, tb: &Path, with_lr: bool) {
    let recs = records(out);
    assert_eq!(recs.len(), 4);
    for r in &recs {
        let id = r["run_id"].as_str().unwrap();
        let group = if r["method"] == "mmr" {
            "cb-mmr-alpha=1.0"
        } else {
            "cb-finetune"
        };
        let s = scalars(&tb.join(group).join(id));
        assert_eq!(s["dev/primary"], curve(&r["details"]["dev_curve"]), "{id}");
        assert_eq!(s["train/loss"], curve(&r["details"]["train_loss"]), "{id}");
        if r["method"] == "mmr" {
            assert_eq!(
                s["train/mmr"],
                curve(&r["details"]["loss_terms"]["mmr"]),
                "{id}"
            );
        }
        let steps = r["steps"].as_i64().unwrap();
        let test = r["metrics"]["primary"].as_f64().unwrap() as f32;
        assert_eq!(s["test/primary"], [(steps, test)], "{id}");
        assert_eq!(s.contains_key("lr"), with_lr, "{id}: {:?}", s.keys());
        if with_lr {
            // The last update (k = 11 of 12, after the 10% warm-up's one update) ran at
            // lr·(12 − 11)/(12 − 1).
            let lr = s["lr"].last().unwrap().1;
            assert!((lr - 0.01 / 11.0).abs() < 1e-7, "{lr}");
        }
    }
}

#[test]
fn tensorboard_event_files_hold_every_runs_curves_and_results() {
    let tmp = tempfile::tempdir().unwrap();
    let r = recipe(tmp.path());
    let out = tmp.path().join("out");
    let (r, o) = (r.to_str().unwrap(), out.to_str().unwrap());
    let done = run_ok(&["run", r, "--out", o, "--track", "tensorboard"]);
    let log = String::from_utf8_lossy(&done.stderr);
    assert!(
        log.contains("tensorboard") && log.contains("4 runs delivered"),
        "{log}"
    );
    assert_event_files_hold_the_records(&out, &out.join("tensorboard"), true);

    // The same grid without tracking records the same results: tracking observes only.
    let plain = tmp.path().join("plain");
    run_ok(&["run", r, "--out", plain.to_str().unwrap()]);
    let strip = |mut v: serde_json::Value| {
        v["wall_s"] = 0.into();
        v["details"]["seconds"] = 0.into();
        v
    };
    let a: Vec<_> = records(&out).into_iter().map(strip).collect();
    let b: Vec<_> = records(&plain).into_iter().map(strip).collect();
    assert_eq!(a, b);

    // `stab track` writes the same curves from the store alone (the learning rate is not
    // in a record), into the directory it is given.
    let replayed = tmp.path().join("replayed");
    let to = format!("tensorboard={}", replayed.display());
    let done = run_ok(&["track", plain.to_str().unwrap(), "--to", &to]);
    let log = String::from_utf8_lossy(&done.stderr);
    assert!(log.contains("4 runs delivered"), "{log}");
    assert_event_files_hold_the_records(&plain, &replayed, false);
}

/// `stab run` of the recipe tracked to `track` with a half-second wait, which must
/// succeed; its stderr.
fn tracked_grid(recipe: &str, out: &Path, track: &str) -> String {
    let done = run_ok(&[
        "run",
        recipe,
        "--out",
        out.to_str().unwrap(),
        "--track",
        track,
        "--track-wait",
        "0.5",
    ]);
    String::from_utf8_lossy(&done.stderr).into_owned()
}

#[test]
fn a_tracking_server_that_is_down_or_silent_never_stops_the_grid() {
    let tmp = tempfile::tempdir().unwrap();
    let r = recipe(tmp.path());
    let r = r.to_str().unwrap();

    // Nothing listens on the port: every run is recorded, the grid succeeds, and its last
    // lines say which runs the server did not get and how to send them.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("mlflow=http://{}", closed.local_addr().unwrap());
    drop(closed);
    let out = tmp.path().join("down");
    let log = tracked_grid(r, &out, &url);
    assert_eq!(records(&out).len(), 4);
    assert!(
        log.contains("is unreachable") && log.contains("0 runs delivered, 4 not (complete)"),
        "{log}"
    );
    assert!(log.contains("stab track DIR --to TRACKER"), "{log}");

    // A server that accepts connections and never answers: the calls hang in the
    // background; the grid records every run and ends one second after its wait, saying
    // which runs the server did not get.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("mlflow=http://{}", silent.local_addr().unwrap());
    let out = tmp.path().join("silent");
    let start = Instant::now();
    let log = tracked_grid(r, &out, &url);
    let took = start.elapsed().as_secs_f64();
    assert_eq!(records(&out).len(), 4);
    assert!(
        took < 20.0,
        "the grid waited on a silent server: {took:.1} s"
    );
    assert!(
        log.contains("4 not (complete)") && log.contains("still inside a call"),
        "{log}"
    );
    drop(silent);
}

#[test]
fn bad_tracker_values_are_input_errors_naming_the_option() {
    let tmp = tempfile::tempdir().unwrap();
    let r = recipe(tmp.path());
    let out = tmp.path().join("out");
    let bad = run(&[
        "run",
        r.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--track",
        "wandb",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("--track") && err.contains("not a tracker"),
        "{err}"
    );
    assert!(!out.exists(), "nothing is written for bad input");
    let bad = run(&["track", tmp.path().to_str().unwrap(), "--to", "tensorboard"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("no run records"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}
