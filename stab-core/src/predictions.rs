//! A run's test predictions (docs/design.md §5): one small JSON file per run,
//! `<results dir>/predictions/<run_id>.json`, written atomically before the run's record
//! is appended (so a record never names a missing file; a killed run leaves at most a
//! file its rerun overwrites). Examples are keyed by their index in the task's test split
//! (file order), which the file ties to the data by the record's split and data hashes.

use std::path::{Path, PathBuf};

use std::io::Read;

use serde::{Deserialize, Serialize};

use crate::error::Refusal;
use crate::record::RunRecord;

/// The format tag of a predictions file.
pub const FORMAT: &str = "predictions/1";

/// The largest predictions file stab reads: a test split of a million examples takes about
/// 7 MB, so anything past 64 MiB is not a predictions file (and is never read whole).
pub const MAX_BYTES: u64 = 64 << 20;

/// The predicted label ids of one run on its test split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunPredictions {
    pub format: String,
    pub run_id: String,
    pub task: String,
    /// The split the test rows come from (the record's `split`).
    pub split: String,
    /// Hash of the task's files (the record's `inputs.data`).
    pub data: String,
    /// `predicted[i]` is the label id predicted for test example i (file order).
    pub predicted: Vec<u32>,
}

/// Where the predictions of run `run_id` live under a results directory.
pub fn path(results_dir: &Path, run_id: &str) -> PathBuf {
    results_dir
        .join("predictions")
        .join(format!("{run_id}.json"))
}

/// Write a run's predictions atomically.
pub fn write(results_dir: &Path, p: &RunPredictions) -> crate::Result<()> {
    let file = path(results_dir, &p.run_id);
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    crate::atomic::write_file(&file, serde_json::to_string(p)?.as_bytes())
}

/// The predictions of `record`'s run, checked against the record: the format, run id,
/// task, split and data hash must be the record's, and the file must hold at least one
/// prediction. `Ok(None)` when the run has no file; `Err` says why the file cannot stand
/// for the run (a report names it and leaves the run out of what it computes).
pub fn read_for(results_dir: &Path, record: &RunRecord) -> Result<Option<RunPredictions>, Refusal> {
    let Some(p) = parse(&path(results_dir, &record.run_id))? else {
        return Ok(None);
    };
    let mismatch = |what: &str, found: &str, want: &str| {
        Refusal::new(format!(
            "holds the {what} `{found}`, but the record says `{want}`"
        ))
    };
    if p.format != FORMAT {
        return Err(mismatch("format", &p.format, FORMAT));
    }
    if p.run_id != record.run_id {
        return Err(mismatch("run", &p.run_id, &record.run_id));
    }
    if p.task != record.task {
        return Err(mismatch("task", &p.task, &record.task));
    }
    if let Some(split) = record.split.as_deref().filter(|s| *s != p.split) {
        return Err(mismatch("split", &p.split, split));
    }
    if let Some(data) = record
        .inputs
        .as_ref()
        .map(|i| i.data.as_str())
        .filter(|d| *d != p.data)
    {
        return Err(mismatch("data hash", &p.data, data));
    }
    if p.predicted.is_empty() {
        return Err(Refusal::new("holds no predictions"));
    }
    Ok(Some(p))
}

/// A predictions file read within [`MAX_BYTES`]; `None` when it does not exist.
fn parse(file: &Path) -> Result<Option<RunPredictions>, Refusal> {
    let f = match std::fs::File::open(file) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Refusal::new(format!("cannot be read: {e}"))),
    };
    if !f.metadata().is_ok_and(|m| m.is_file()) {
        return Err(Refusal::new("is not a regular file"));
    }
    let mut bytes = Vec::new();
    f.take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Refusal::new(format!("cannot be read: {e}")))?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(Refusal::new(format!(
            "is larger than {} MiB, far more than any test split's predictions",
            MAX_BYTES >> 20
        )));
    }
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| Refusal::new(format!("is not a predictions file: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predictions_round_trip_and_a_wrong_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = RunPredictions {
            format: FORMAT.into(),
            run_id: "cb-finetune-s0-1".into(),
            task: "cb".into(),
            split: "file:1".into(),
            data: "2".into(),
            predicted: vec![0, 2, 1],
        };
        write(dir.path(), &p).unwrap();
        let record = |run_id: &str| RunRecord {
            run_id: run_id.into(),
            recipe: "r".into(),
            kind: crate::RecipeKind::Finetune,
            task: "cb".into(),
            method: "finetune".into(),
            method_params: Default::default(),
            seed: 0,
            mode: None,
            sweep: Default::default(),
            metrics: Default::default(),
            dev_best: None,
            best_step: None,
            steps: 1,
            wall_s: 0.0,
            stab_version: "t".into(),
            threads: 1,
            synthetic: None,
            diverged: false,
            seeds: None,
            split: Some("file:1".into()),
            inputs: None,
            details: serde_json::Value::Null,
            sequential: None,
            tune: None,
        };
        let read = |run_id: &str| read_for(dir.path(), &record(run_id));
        assert_eq!(read("cb-finetune-s0-1").unwrap(), Some(p));
        assert_eq!(read("other").unwrap(), None);
        std::fs::write(path(dir.path(), "bad"), "{").unwrap();
        let e = read("bad").unwrap_err().to_string();
        assert!(e.contains("not a predictions file"), "{e}");
        // A file of another run under this run's name.
        std::fs::copy(
            path(dir.path(), "cb-finetune-s0-1"),
            path(dir.path(), "copy"),
        )
        .unwrap();
        let e = read("copy").unwrap_err().to_string();
        assert!(e.contains("the run `cb-finetune-s0-1`"), "{e}");
    }
}
