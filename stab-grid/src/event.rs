//! What a grid reports while it runs: one [`GridEvent`] stream per grid, for the progress
//! bar today and for trackers. Events observe; they never change a run or its record.

use std::path::Path;

use stab_core::{RunRecord, RunSpec};

/// Progress inside the run in flight.
#[derive(Debug, Clone, PartialEq)]
pub enum RunProgress {
    /// The run starts: `total` planned updates.
    Start { total: u64 },
    /// Update `step` (1-based) finished with this training loss.
    Step { step: u64, loss: f64 },
    /// A dev evaluation after update `step`: the dev score, the mean training loss and
    /// the mean of each loss term since the previous evaluation (the record's curves), and
    /// the learning rate of the last update.
    Eval {
        step: u64,
        dev: f64,
        train_loss: f64,
        terms: Vec<(&'static str, f64)>,
        lr: f64,
    },
    /// A step of the method's encoder preparation (SURT's masked-LM phase).
    Prepare { step: u64, total: u64, loss: f64 },
    /// A synthetic run finished one more of its datasets.
    Dataset,
}

/// Why the runner did not execute a run it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Another process holds its claim.
    RunningElsewhere,
    /// Another process finished it after this grid read the store.
    FinishedElsewhere,
}

/// One thing that happened in a grid.
#[derive(Debug)]
pub enum GridEvent<'a> {
    /// The grid starts: `pending` will run (plan order), `in_store` were already finished.
    Started {
        planned: usize,
        in_store: usize,
        pending: &'a [&'a RunSpec],
        workers: usize,
        threads_per_worker: usize,
    },
    /// A run was claimed and starts; `index` counts started runs from 0.
    RunStarted { spec: &'a RunSpec, index: usize },
    /// Progress inside a run.
    Progress {
        spec: &'a RunSpec,
        progress: RunProgress,
    },
    /// A run's record is durable in the store; `summary` is the executor's one line.
    RunFinished {
        record: &'a RunRecord,
        summary: &'a str,
    },
    /// A run failed (nothing was recorded for it); the grid goes on.
    RunFailed {
        spec: &'a RunSpec,
        error: &'a stab_core::Error,
    },
    /// A run was not executed here.
    RunSkipped { spec: &'a RunSpec, why: Skip },
    /// The grid ended.
    Finished {
        /// Runs this process executed and recorded.
        recorded: usize,
        failed: usize,
        /// Runs another process was running or had finished.
        skipped: usize,
        store: &'a Path,
    },
}

/// A sink of grid events (shared by the workers).
pub type EventSink<'a> = &'a (dyn Fn(GridEvent<'_>) + Sync);
