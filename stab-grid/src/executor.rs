//! What runs one spec. The runner owns the store, the claims and the order; an executor
//! owns the science of one run.

use std::path::Path;

use stab_core::{InputFingerprint, RunRecord, RunSpec};

use crate::event::RunProgress;

/// What an executor gets besides the spec.
pub struct RunContext<'a> {
    /// The results directory (artifacts go under `runs/<run_id>/`).
    pub out: &'a Path,
    /// Threads this run computes on (the worker's pool).
    pub threads: usize,
    /// Progress inside the run.
    pub progress: &'a (dyn Fn(RunProgress) + Sync),
}

/// A finished run: the record the runner appends, and one line for people.
pub struct Executed {
    pub record: RunRecord,
    pub summary: String,
}

/// Runs one [`RunSpec`]. Implemented by the fine-tuning engine and the synthetic studies.
pub trait Executor: Sync {
    /// Check the inputs of every run before anything is written, so a bad model, data file
    /// or method is one input error and no store is touched.
    fn check_inputs(&self, specs: &[&RunSpec]) -> stab_core::Result<()> {
        let _ = specs;
        Ok(())
    }

    /// The files a run reads today, for comparing with a finished run's record on resume;
    /// `None` when the run reads no files.
    fn fingerprint(&self, spec: &RunSpec) -> stab_core::Result<Option<InputFingerprint>> {
        let _ = spec;
        Ok(None)
    }

    /// Whether several runs may execute at once (`--jobs`), each on its own thread pool.
    fn concurrent(&self) -> bool {
        true
    }

    /// Execute one run. Artifacts are written before returning; the runner appends the
    /// record (the commit point).
    fn execute(&self, spec: &RunSpec, ctx: &RunContext<'_>) -> stab_core::Result<Executed>;
}
