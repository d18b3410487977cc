//! Which finished runs a grid may reuse. A run is reused when its `run_id` is in the store
//! and the files it read then are the files the recipe reads now; a change is one input
//! error before anything runs, so a new experiment never inherits an old one's records.

use std::collections::HashMap;
use std::path::Path;

use stab_core::store::StoreContents;
use stab_core::{InputError, RunRecord, RunSpec};

use crate::executor::Executor;

/// Compare each finished run's recorded inputs with today's (`Executor::fingerprint`).
pub fn check_unchanged(
    executor: &(impl Executor + ?Sized),
    specs: &[&RunSpec],
    contents: &StoreContents,
    out: &Path,
) -> stab_core::Result<()> {
    let latest: HashMap<&str, &RunRecord> = contents
        .records
        .iter()
        .map(|r| (r.run_id.as_str(), r))
        .collect();
    let (mut changed, mut unknown, mut first) = (0usize, 0usize, None);
    for spec in specs {
        let Some(record) = latest.get(spec.run_id.as_str()) else {
            continue;
        };
        let Some(now) = executor.fingerprint(spec)? else {
            continue;
        };
        let diff = match &record.inputs {
            Some(then) => now.changes_from(then),
            // Records older than input fingerprints still name their split.
            None => match &record.split {
                Some(split) if *split != now.split => {
                    vec![format!("split: {split} → {}", now.split)]
                }
                _ => {
                    unknown += 1;
                    Vec::new()
                }
            },
        };
        if !diff.is_empty() {
            changed += 1;
            first.get_or_insert_with(|| (spec.run_id.clone(), diff.join(", ")));
        }
    }
    if unknown > 0 {
        tracing::warn!(
            "{unknown} finished run(s) were recorded before stab kept input fingerprints; they are reused as they are"
        );
    }
    match first {
        None => Ok(()),
        Some((run_id, diff)) => Err(InputError::new(format!(
            "{changed} finished run(s) in this store read other files than this recipe reads now; {run_id} was recorded with other inputs ({diff})"
        ))
        .file(out.display().to_string())
        .hint("the split file, data or model changed since: write the new experiment to another --out, or pass --fresh to run every run again (records are appended; reports use the latest)")
        .into()),
    }
}
