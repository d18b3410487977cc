//! The engine as the grid runner's [`Executor`](stab_grid::Executor): fine-tuning runs
//! checked before any is written, compared with their records on resume, and executed one
//! per worker.

use std::collections::HashSet;

use stab_core::{InputFingerprint, RunRecord, RunSpec};
use stab_grid::{Executed, Executor, RunContext};

use crate::run::RunStats;
use crate::session::Engine;

impl Executor for Engine {
    /// Every spec's method, model files, data and split; runs that differ only in seed or
    /// training settings need one check.
    fn check_inputs(&self, specs: &[&RunSpec]) -> stab_core::Result<()> {
        let mut checked = HashSet::new();
        for spec in specs {
            let mut key = spec.canonical();
            if let Some(o) = key.as_object_mut() {
                o.remove("seed");
                o.remove("train");
            }
            if checked.insert(key.to_string()) {
                self.check(spec)?;
            }
        }
        Ok(())
    }

    fn fingerprint(&self, spec: &RunSpec) -> stab_core::Result<Option<InputFingerprint>> {
        self.inputs(spec).map(Some)
    }

    fn execute(&self, spec: &RunSpec, ctx: &RunContext<'_>) -> stab_core::Result<Executed> {
        let (record, stats) = self.run(spec, ctx.progress)?;
        let summary = done_line(&record, &stats);
        Ok(Executed { record, summary })
    }

    fn batch_key(&self, spec: &RunSpec) -> Option<String> {
        self.seed_batch_key(spec)
    }

    fn batch_member_bytes(&self, spec: &RunSpec) -> u64 {
        self.seed_batch_member_bytes(spec)
    }

    fn execute_batch(
        &self,
        specs: &[&RunSpec],
        ctxs: &[RunContext<'_>],
    ) -> Vec<stab_core::Result<Executed>> {
        let progress: Vec<_> = ctxs.iter().map(|c| c.progress).collect();
        let k = specs.len();
        self.train_seed_batch(specs, &progress)
            .into_iter()
            .map(|r| {
                r.map(|t| {
                    let summary = format!("{} [seed batch of {k}]", done_line(&t.record, &t.stats));
                    Executed {
                        record: t.record,
                        summary,
                    }
                })
            })
            .collect()
    }
}

/// The line printed when a fine-tuning run finishes.
pub fn done_line(record: &RunRecord, stats: &RunStats) -> String {
    format!(
        "done {} in {:.1}s ({} updates, train loop {:.1}s of which eval {:.1}s{}): test primary = {:.4}, dev best {:.4} at update {}",
        record.run_id,
        record.wall_s,
        stats.updates,
        stats.train_s,
        stats.eval_s,
        if stats.feature_source.is_empty() {
            String::new()
        } else {
            format!(", features {} {:.1}s", stats.feature_source, stats.encode_s)
        },
        record.metrics.get("primary").copied().unwrap_or(f64::NAN),
        record.dev_best.unwrap_or(f64::NAN),
        record.best_step.unwrap_or(0)
    )
}
