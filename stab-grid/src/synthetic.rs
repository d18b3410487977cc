//! The executor of the synthetic studies (docs/methods.md §7): each run is one factor value
//! of a study from the registry, over all of its datasets, on the host CPU.

use std::time::Instant;

use anyhow::Context as _;
use stab_core::{RunRecord, RunSpec};

use crate::event::RunProgress;
use crate::executor::{Executed, Executor, RunContext};

/// Runs synthetic specs through the study registered for their factor.
#[derive(Debug, Default, Clone, Copy)]
pub struct SyntheticExecutor;

impl Executor for SyntheticExecutor {
    /// The studies parallelise over datasets themselves; runs go one at a time.
    fn concurrent(&self) -> bool {
        false
    }

    fn execute(&self, spec: &RunSpec, ctx: &RunContext<'_>) -> stab_core::Result<Executed> {
        let settings = spec
            .synthetic()
            .context("a synthetic run without settings")?;
        let study = stab_core::registry::study(&settings.factor)?;
        let start = Instant::now();
        let outcome = study.run(settings, &|| (ctx.progress)(RunProgress::Dataset))?;
        let wall_s = start.elapsed().as_secs_f64();
        if !outcome.per_dataset.is_empty() {
            let dir = ctx.out.join("runs").join(&spec.run_id);
            stab_core::atomic::create_dir(&dir)?;
            stab_core::atomic::write_file(
                &dir.join("datasets.csv"),
                (outcome.per_dataset.join("\n") + "\n").as_bytes(),
            )?;
        }
        let mut record = RunRecord::for_spec(spec);
        record.metrics = outcome.metrics;
        record.details = outcome.details;
        record.steps = settings.steps;
        record.wall_s = wall_s;
        record.threads = ctx.threads;
        let summary = format!(
            "done {} in {:.1}s: Δ̂ = {:.4e}",
            record.run_id,
            record.wall_s,
            record
                .metrics
                .get("delta_mean")
                .copied()
                .unwrap_or(f64::NAN)
        );
        Ok(Executed { record, summary })
    }
}
