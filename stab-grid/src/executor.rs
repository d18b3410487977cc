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

    /// The key of the runs this run may execute with as one batch (seed batching: the
    /// seeds of one configuration); `None`: it runs alone.
    fn batch_key(&self, spec: &RunSpec) -> Option<String> {
        let _ = spec;
        None
    }

    /// Bytes one more member adds to a batch of `spec`'s key (weights, gradients,
    /// optimiser state, activations), for sizing batches to the memory there is.
    fn batch_member_bytes(&self, spec: &RunSpec) -> u64 {
        let _ = spec;
        1 << 20
    }

    /// Execute runs that share a batch key together, one context each; one outcome
    /// per spec, in order, each what [`Executor::execute`] gives for it alone.
    fn execute_batch(
        &self,
        specs: &[&RunSpec],
        ctxs: &[RunContext<'_>],
    ) -> Vec<stab_core::Result<Executed>> {
        specs
            .iter()
            .zip(ctxs)
            .map(|(s, c)| self.execute(s, c))
            .collect()
    }
}
