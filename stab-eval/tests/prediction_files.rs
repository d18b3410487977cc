//! Every prediction file is checked against its record before a report uses it; a file
//! that cannot stand for its run is named, and a statistic over fewer runs than its cell
//! holds says so.

use std::path::Path;

use stab_core::predictions::{FORMAT, RunPredictions};
use stab_core::{InputFingerprint, RecipeKind, RunRecord};
use stab_eval::{Report, ReportFormat};

fn record(method: &str, seed: u64, primary: f64) -> RunRecord {
    RunRecord {
        run_id: format!("cb-{method}-s{seed}"),
        recipe: "r".into(),
        kind: RecipeKind::Finetune,
        task: "cb".into(),
        method: method.into(),
        method_params: Default::default(),
        seed,
        mode: None,
        sweep: Default::default(),
        metrics: [("primary".to_string(), primary)].into(),
        dev_best: None,
        best_step: None,
        steps: 10,
        wall_s: 1.0,
        stab_version: "t".into(),
        threads: 1,
        synthetic: None,
        diverged: false,
        seeds: None,
        split: Some("file:1".into()),
        inputs: Some(InputFingerprint {
            model: "m".into(),
            data: "d".into(),
            split: "file:1".into(),
        }),
        details: serde_json::Value::Null,
        sequential: None,
        tune: None,
    }
}

fn predictions(r: &RunRecord, predicted: Vec<u32>) -> RunPredictions {
    RunPredictions {
        format: FORMAT.into(),
        run_id: r.run_id.clone(),
        task: "cb".into(),
        split: "file:1".into(),
        data: "d".into(),
        predicted,
    }
}

fn store(dir: &Path, records: &[RunRecord]) {
    let lines: String = records
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect();
    std::fs::write(dir.join("runs.jsonl"), lines).unwrap();
}

#[test]
fn damaged_prediction_files_are_named_and_the_runs_column_counts_what_was_used() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut records = Vec::new();
    for (method, scores) in [("finetune", [0.6, 0.7, 0.8, 0.65, 0.75]), ("mmr", [0.7; 5])] {
        for (seed, s) in scores.iter().enumerate() {
            records.push(record(method, seed as u64, *s + seed as f64 * 0.01));
        }
    }
    store(dir, &records);
    for (i, r) in records.iter().enumerate() {
        let p = predictions(r, vec![(i % 3) as u32, 1, 2, 0, 1, (i % 2) as u32]);
        stab_core::predictions::write(dir, &p).unwrap();
    }
    let file = |r: &RunRecord| stab_core::predictions::path(dir, &r.run_id);
    // FineTune: one truncated, one of another data hash, one of another length.
    let text = std::fs::read_to_string(file(&records[0])).unwrap();
    std::fs::write(file(&records[0]), &text[..text.len() / 2]).unwrap();
    let mut other = predictions(&records[1], vec![0; 6]);
    other.data = "another".into();
    stab_core::predictions::write(dir, &other).unwrap();
    stab_core::predictions::write(dir, &predictions(&records[2], vec![0; 9])).unwrap();
    // MMR: one that is not a file of predictions at all, one that is no regular file (it
    // would read forever), one beyond the size bound.
    std::fs::write(file(&records[5]), "{}").unwrap();
    std::fs::remove_file(file(&records[6])).unwrap();
    std::os::unix::fs::symlink("/dev/zero", file(&records[6])).unwrap();
    std::fs::write(file(&records[7]), vec![b' '; 65 << 20]).unwrap();

    let report = Report::load(dir).unwrap();
    let rejected = &report.findings().rejected_predictions;
    let reasons: Vec<(&str, &str)> = rejected
        .iter()
        .map(|r| (r.run_id.as_str(), r.reason.as_str()))
        .collect();
    assert_eq!(rejected.len(), 6, "{reasons:?}");
    for (id, why) in [
        ("cb-finetune-s0", "not a predictions file"),
        ("cb-finetune-s1", "data hash `another`"),
        (
            "cb-finetune-s2",
            "holds 9 predictions where most of the cell's files hold 6",
        ),
        ("cb-mmr-s0", "not a predictions file"),
        ("cb-mmr-s1", "not a regular file"),
        ("cb-mmr-s2", "larger than 64 MiB"),
    ] {
        assert!(
            reasons.iter().any(|(i, w)| *i == id && w.contains(why)),
            "{id}: {why} in {reasons:?}"
        );
    }
    let cb = &report.findings().predictions["cb"];
    assert_eq!((cb["finetune"].runs, cb["finetune"].cell_runs), (2, 5));
    assert_eq!((cb["mmr"].runs, cb["mmr"].cell_runs), (2, 5));
    let md = report.render(ReportFormat::Markdown);
    assert!(md.contains("Prediction files not used"), "{md}");
    assert!(md.contains("2 of 5 (fewer runs)"), "{md}");
    assert!(
        md.contains("computed over fewer runs than their cells hold"),
        "{md}"
    );
    let json = report.render(ReportFormat::Json);
    assert!(json.contains("rejected_predictions") && json.contains("cb-mmr-s1"));
}
