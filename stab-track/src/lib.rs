//! # stab-track
//!
//! Experiment tracking (docs/tracking.md): a grid's runs, curves and results where
//! researchers already look — TensorBoard event files and an MLflow tracking server.
//! Tracking observes the grid runner's events; it never changes a run, its identity or
//! its record, and a tracker that is down never holds a grid up (the store stays the
//! source of truth, and [`replay`] sends its records again).
//!
//! * [`event`] — what a tracker receives ([`TrackEvent`]), from grid events or records.
//! * [`sink`] — where events go ([`Sink`]) and what did not arrive ([`Delivery`]).
//! * [`tracker`] — a grid's sinks fed by its event stream ([`Tracker`]).
//! * [`target`] — `--track` values ([`Target`]).
//! * [`tensorboard`] — TensorBoard event files ([`TensorBoardSink`]).
//! * [`mlflow`] — delivery to an MLflow server ([`MlflowSink`]); [`mlflow_api`] its calls.

pub mod event;
pub mod mlflow;
pub mod mlflow_api;
pub mod sink;
pub mod target;
pub mod tensorboard;
pub mod tracker;

pub use event::{Attempt, RunEnd, RunStart, TrackEvent};
pub use mlflow::MlflowSink;
pub use sink::{Delivery, Sink};
pub use target::Target;
pub use tensorboard::TensorBoardSink;
pub use tracker::Tracker;

/// Send finished runs' records to a tracker again (runs the server lacks, a grid that ran
/// without tracking), in the order given.
pub fn replay<'r>(records: impl IntoIterator<Item = &'r stab_core::RunRecord>, tracker: &Tracker) {
    for record in records {
        for event in TrackEvent::from_record(record) {
            tracker.send(&event);
        }
    }
}
