//! What a run reports besides its record: progress while it runs, timings and counts
//! when it ends.

/// Progress of the run in flight: the grid runner's type, so its events carry it as is.
pub use stab_grid::RunProgress as Progress;

/// Timings and counts a run reports beside its record.
#[derive(Debug, Clone, Default)]
pub struct RunStats {
    /// Seconds spent encoding frozen features (0 when they came from a cache).
    pub encode_s: f64,
    /// Where the features came from: "memory", "disk", "encoded", or "" (no cache).
    pub feature_source: &'static str,
    /// Seconds in the training loop (updates and evaluations).
    pub train_s: f64,
    /// Of which, seconds in dev evaluations.
    pub eval_s: f64,
    pub updates: u64,
    /// Reads from the device to the host during the updates (evaluations excluded): one
    /// per update on an accelerator, the logged loss.
    pub update_host_reads: u64,
}
