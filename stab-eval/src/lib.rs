//! # stab-eval
//!
//! Everything that turns numbers into conclusions.
//!
//! * [`stats`] — summaries over seeds or datasets ([`Summary`]: mean, SD with ddof = 1).
//! * [`stability`] — the normalised leave-one-out stability Δ̂ of docs/methods.md §7.5
//!   ([`normalized_distance`], [`LeaveOneOutStability`]).
//! * [`variance`] — tests behind a stability claim: Brown–Forsythe, bootstrap sd
//!   intervals, Holm's adjustment, expected max over n runs.
//! * [`metrics`] — accuracy, F1, macro-F1, MCC, MultiRC EM and the jiant primary metric
//!   per task ([`PrimaryMetric`]).
//! * [`early_stop`] — `stop_failed` replayed on stored dev curves.
//! * [`aso`] — Almost Stochastic Order's ε_min (deep-significance's computation).
//! * [`power`] — Brown–Forsythe power and the seeds a stability claim needs.
//! * [`sequential`] — the sequential seed rule: error spending over looks, Brown–Forsythe
//!   and Welch per look, futility by two one-sided tests ([`sequential::Rule`]).
//! * [`aggregate`] — across tasks: IQM, probability of improvement, stratified bootstrap
//!   intervals (rliable's computations).
//! * [`report`] — tables (Markdown, CSV) and SVG plots from a results store.

pub mod aggregate;
pub mod aso;
pub mod early_stop;
pub mod metrics;
pub mod power;
pub mod report;
pub mod sequential;
pub mod stability;
pub mod stats;
pub mod variance;

pub use metrics::PrimaryMetric;
pub use report::{Report, ReportFormat};
pub use stability::{LeaveOneOutStability, normalized_distance};
pub use stats::Summary;
