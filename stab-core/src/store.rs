//! The append-only results store (docs/design.md §5).
//!
//! `DIR/runs.jsonl` (or `runs.shard-I-of-N.jsonl`) holds one JSON object per finished run.
//! A record is appended with a single `write` of the whole line and then fsynced, so a
//! killed process leaves either the whole record or none of it. Nothing is ever rewritten:
//! should a torn line exist (power loss mid-write), the next open terminates it with a
//! newline and readers skip it with a warning; that run is simply run again.

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::record::RunRecord;
use crate::shard::Shard;

/// An open store file, appended to as runs finish.
#[derive(Debug)]
pub struct ResultsStore {
    dir: PathBuf,
    path: PathBuf,
    file: File,
}

/// An exclusive claim on one run (see [`ResultsStore::claim`]); released on drop.
#[derive(Debug)]
pub struct RunClaim {
    _file: File,
}

/// Records read back from a store directory.
#[derive(Debug, Default)]
pub struct StoreContents {
    /// Every well-formed record, in file then line order.
    pub records: Vec<RunRecord>,
    /// Lines that could not be parsed, as `file:line: reason`.
    pub skipped: Vec<String>,
}

impl StoreContents {
    /// The ids of finished runs.
    pub fn finished(&self) -> HashSet<String> {
        self.records.iter().map(|r| r.run_id.clone()).collect()
    }

    /// Run ids recorded more than once with different results (metrics or divergence): a
    /// `--fresh` rerun that came out otherwise, or stores of two experiments merged.
    /// [`StoreContents::latest`] keeps the last; whoever reads the store must say so.
    pub fn conflicting(&self) -> Vec<String> {
        let mut first: BTreeMap<&str, &RunRecord> = BTreeMap::new();
        let mut out = std::collections::BTreeSet::new();
        for r in &self.records {
            match first.get(r.run_id.as_str()) {
                Some(f) if !same_result(f, r) => {
                    out.insert(r.run_id.clone());
                }
                Some(_) => {}
                None => {
                    first.insert(&r.run_id, r);
                }
            }
        }
        out.into_iter().collect()
    }

    /// One record per run id (the latest written wins), ordered by run id.
    pub fn latest(&self) -> Vec<RunRecord> {
        let mut by_id: BTreeMap<&str, &RunRecord> = BTreeMap::new();
        for r in &self.records {
            by_id.insert(&r.run_id, r);
        }
        by_id.into_values().cloned().collect()
    }
}

/// Whether two records of one run hold the same result (NaN equal to NaN).
fn same_result(a: &RunRecord, b: &RunRecord) -> bool {
    a.diverged == b.diverged
        && a.metrics.len() == b.metrics.len()
        && a.metrics
            .iter()
            .zip(&b.metrics)
            .all(|((ka, va), (kb, vb))| ka == kb && (va == vb || (va.is_nan() && vb.is_nan())))
}

impl ResultsStore {
    /// Open (creating if needed) the store file in `dir`: `runs.jsonl`, or the shard's own.
    pub fn open(dir: &Path, shard: Option<Shard>) -> crate::Result<Self> {
        crate::atomic::create_dir(dir)?;
        // The claims directory too, so an unwritable out dir fails here, before any run.
        crate::atomic::create_dir(&dir.join("claims"))?;
        // What killed writers left (half-written caches, checkpoints, artifacts) goes now.
        for sub in [Path::new(""), Path::new("cache"), Path::new("checkpoints")] {
            crate::atomic::clean_stale(&dir.join(sub));
        }
        let name = shard.map_or_else(|| "runs.jsonl".to_string(), |s| s.store_file());
        let path = dir.join(name);
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&path)
            .map_err(|e| crate::atomic::io_error("open the results store", &path, e))?;
        let len = file.metadata()?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            file.seek(SeekFrom::Start(len - 1))?;
            file.read_exact(&mut last)?;
            if last[0] != b'\n' {
                file.write_all(b"\n")?;
                file.sync_data()?;
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            path,
            file,
        })
    }

    /// The file records are appended to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one record as one line, then fsync. Returns once it is durable.
    pub fn append(&mut self, record: &RunRecord) -> crate::Result<()> {
        let mut line = serde_json::to_string(record).context("cannot serialise a run record")?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|_| self.file.sync_data())
            .with_context(|| format!("cannot append to {}", self.path.display()))?;
        Ok(())
    }

    /// `DIR/runs/<run_id>/`, created on demand, for a run's larger artifacts.
    pub fn artifact_dir(&self, run_id: &str) -> crate::Result<PathBuf> {
        let d = self.dir.join("runs").join(run_id);
        crate::atomic::create_dir(&d)?;
        Ok(d)
    }

    /// Read every `runs*.jsonl` in `dir` (a missing directory reads as empty).
    pub fn read_dir(dir: &Path) -> crate::Result<StoreContents> {
        let mut out = StoreContents::default();
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => {
                return Err(crate::atomic::io_error(
                    "read the results directory",
                    dir,
                    e,
                ));
            }
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("runs") && n.ends_with(".jsonl"))
            })
            .collect();
        files.sort();
        for f in files {
            let bytes = std::fs::read(&f)
                .map_err(|e| crate::atomic::io_error("read the results store", &f, e))?;
            for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
                let Ok(line) = std::str::from_utf8(raw) else {
                    out.skipped
                        .push(format!("{}:{}: not valid UTF-8", f.display(), i + 1));
                    continue;
                };
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<RunRecord>(line) {
                    Ok(r) => out.records.push(r),
                    Err(e) => out.skipped.push(format!("{}:{}: {e}", f.display(), i + 1)),
                }
            }
        }
        Ok(out)
    }

    /// Claim `run_id` for this process: an exclusive advisory lock on
    /// `DIR/claims/<run_id>.lock`, held until the [`RunClaim`] drops (or the process
    /// dies: the OS releases it, so a killed run never stays claimed). `None` when another
    /// process holds it. Claim, then re-read the store: the run may have finished meanwhile.
    pub fn claim(&self, run_id: &str) -> crate::Result<Option<RunClaim>> {
        let dir = self.dir.join("claims");
        crate::atomic::create_dir(&dir)?;
        let path = dir.join(format!("{run_id}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| crate::atomic::io_error("open the claim", &path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(RunClaim { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(anyhow::Error::new(e)
                .context(format!("cannot lock {}", path.display()))
                .into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::RecipeKind;

    fn record(id: &str) -> RunRecord {
        RunRecord {
            run_id: id.into(),
            recipe: "r".into(),
            kind: RecipeKind::Synthetic,
            task: "synthetic".into(),
            method: "margin".into(),
            method_params: Default::default(),
            seed: 0,
            mode: None,
            sweep: Default::default(),
            metrics: [("delta_mean".to_string(), 0.5)].into(),
            dev_best: None,
            best_step: None,
            steps: 10,
            wall_s: 1.0,
            stab_version: "t".into(),
            threads: 1,
            synthetic: None,
            diverged: false,
            seeds: None,
            split: None,
            inputs: None,
            details: serde_json::Value::Null,
            sequential: None,
            tune: None,
        }
    }

    #[test]
    fn append_then_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ResultsStore::open(dir.path(), None).unwrap();
        s.append(&record("a")).unwrap();
        s.append(&record("b")).unwrap();
        drop(s);
        let c = ResultsStore::read_dir(dir.path()).unwrap();
        assert_eq!(c.records.len(), 2);
        assert_eq!(c.records[0], record("a"));
        assert!(c.finished().contains("b"));
    }

    #[test]
    fn torn_line_is_terminated_and_skipped_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.jsonl");
        let good = serde_json::to_string(&record("a")).unwrap();
        std::fs::write(&path, format!("{good}\n{{\"run_id\": \"b\", \"rec")).unwrap();
        let mut s = ResultsStore::open(dir.path(), None).unwrap();
        s.append(&record("c")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(&good), "existing bytes are kept");
        let c = ResultsStore::read_dir(dir.path()).unwrap();
        let ids: Vec<_> = c.records.iter().map(|r| r.run_id.as_str()).collect();
        assert_eq!(ids, ["a", "c"]);
        assert_eq!(c.skipped.len(), 1);
    }

    #[test]
    fn non_finite_metrics_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = record("nan");
        r.metrics.insert("primary".into(), f64::NAN);
        r.metrics.insert("up".into(), f64::INFINITY);
        r.dev_best = Some(f64::NEG_INFINITY);
        r.diverged = true;
        let mut s = ResultsStore::open(dir.path(), None).unwrap();
        s.append(&r).unwrap();
        let text = std::fs::read_to_string(dir.path().join("runs.jsonl")).unwrap();
        assert!(
            text.contains("\"primary\":\"NaN\"")
                && text.contains("\"inf\"")
                && text.contains("\"diverged\":true"),
            "{text}"
        );
        let c = ResultsStore::read_dir(dir.path()).unwrap();
        assert!(c.skipped.is_empty(), "{:?}", c.skipped);
        let back = &c.records[0];
        assert!(
            back.metrics["primary"].is_nan()
                && back.metrics["up"] == f64::INFINITY
                && back.dev_best == Some(f64::NEG_INFINITY)
        );
        assert!(
            c.finished().contains("nan"),
            "a diverged run counts as finished"
        );
    }

    #[test]
    fn floats_round_trip_exactly() {
        // Regression (found by the property test): without serde_json's float_roundtrip a
        // record's value could come back one ulp off.
        let mut r = record("f");
        r.dev_best = Some(6.517024099334368e-54);
        r.metrics.insert("primary".into(), 0.1 + 0.2);
        let back: RunRecord = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back.dev_best, r.dev_best);
        assert_eq!(back.metrics, r.metrics);
    }

    #[test]
    fn bad_lines_are_skipped_with_their_line_number() {
        let dir = tempfile::tempdir().unwrap();
        let good = serde_json::to_string(&record("a")).unwrap();
        let mut bytes = format!("{good}\nnot json\n").into_bytes();
        bytes.extend_from_slice(b"\xff\xfe{}\n");
        bytes.extend_from_slice(
            format!("{}\n", serde_json::to_string(&record("b")).unwrap()).as_bytes(),
        );
        std::fs::write(dir.path().join("runs.jsonl"), bytes).unwrap();
        let c = ResultsStore::read_dir(dir.path()).unwrap();
        assert_eq!(c.records.len(), 2);
        assert_eq!(c.skipped.len(), 2);
        assert!(
            c.skipped[0].contains(":2:") && c.skipped[1].contains(":3: not valid UTF-8"),
            "{:?}",
            c.skipped
        );
    }

    #[test]
    fn a_claim_excludes_other_holders_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let s = ResultsStore::open(dir.path(), None).unwrap();
        let first = s.claim("run-1").unwrap().expect("free");
        // Another open file description (as another process would have) cannot take it.
        let other = ResultsStore::open(dir.path(), None).unwrap();
        assert!(other.claim("run-1").unwrap().is_none());
        assert!(other.claim("run-2").unwrap().is_some());
        drop(first);
        assert!(other.claim("run-1").unwrap().is_some());
    }

    #[test]
    fn shards_write_their_own_files_and_merge() {
        let dir = tempfile::tempdir().unwrap();
        let mut s0 = ResultsStore::open(dir.path(), Some(Shard { index: 0, count: 2 })).unwrap();
        let mut s1 = ResultsStore::open(dir.path(), Some(Shard { index: 1, count: 2 })).unwrap();
        s0.append(&record("a")).unwrap();
        s1.append(&record("b")).unwrap();
        s1.append(&record("a")).unwrap();
        assert!(s0.path().ends_with("runs.shard-0-of-2.jsonl"));
        let c = ResultsStore::read_dir(dir.path()).unwrap();
        assert_eq!(c.records.len(), 3);
        assert_eq!(c.latest().len(), 2);
    }
}
