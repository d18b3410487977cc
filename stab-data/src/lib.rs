//! # stab-data
//!
//! Data for stab runs.
//!
//! * [`synthetic`] — the two-ball generator of the synthetic head-tuning studies
//!   (methods-spec §7.2): [`TwoBalls`] → [`LabeledPoints`].
//! * [`tasks`] — the GLUE/SuperGLUE task registry entries (names and primary metrics).

pub mod synthetic;
pub mod tasks;

pub use synthetic::{LabeledPoints, TwoBalls};
