//! A run's test predictions (docs/design.md §5): one small JSON file per run,
//! `<results dir>/predictions/<run_id>.json`, written atomically before the run's record
//! is appended (so a record never names a missing file; a killed run leaves at most a
//! file its rerun overwrites). Examples are keyed by their index in the task's test split
//! (file order), which the file ties to the data by the record's split and data hashes.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The format tag of a predictions file.
pub const FORMAT: &str = "predictions/1";

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
pub fn write(results_dir: &Path, p: &RunPredictions) -> anyhow::Result<()> {
    let file = path(results_dir, &p.run_id);
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    crate::atomic::write_file(&file, serde_json::to_string(p)?.as_bytes())
}

/// The predictions of run `run_id`, if its file exists and is one (`Err` names the file
/// and what is wrong with it).
pub fn read(results_dir: &Path, run_id: &str) -> anyhow::Result<Option<RunPredictions>> {
    let file = path(results_dir, run_id);
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => anyhow::bail!("cannot read {}: {e}", file.display()),
    };
    let p: RunPredictions = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{} is not a predictions file: {e}", file.display()))?;
    anyhow::ensure!(
        p.format == FORMAT && p.run_id == run_id,
        "{} holds {} predictions of run {}; expected {FORMAT} of {run_id}",
        file.display(),
        p.format,
        p.run_id
    );
    Ok(Some(p))
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
        assert_eq!(read(dir.path(), "cb-finetune-s0-1").unwrap(), Some(p));
        assert_eq!(read(dir.path(), "other").unwrap(), None);
        std::fs::write(path(dir.path(), "bad"), "{").unwrap();
        let e = read(dir.path(), "bad").unwrap_err().to_string();
        assert!(
            e.contains("bad.json") && e.contains("not a predictions file"),
            "{e}"
        );
    }
}
