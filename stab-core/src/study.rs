//! The trait a synthetic-study plugin implements (docs/methods.md §7).
//!
//! A study is one factor of the paper's head-tuning experiments (heads, samples, margin,
//! distance, bound). Planning asks it how one factor value changes the base settings;
//! running gives it fully resolved [`SyntheticSettings`] and gets back the aggregate
//! metrics over all datasets.

use crate::error::Refusal;
use std::collections::BTreeMap;

use crate::synthetic::SyntheticSettings;

/// What one synthetic run (one factor value) produced.
#[derive(Debug, Clone, Default)]
pub struct StudyOutcome {
    /// Aggregate metrics over datasets: at least `delta_mean`, `delta_sd`, `margin_mean`.
    pub metrics: BTreeMap<String, f64>,
    /// Study-specific structured output (e.g. the per-iteration curve of the heads study).
    pub details: serde_json::Value,
    /// One row per dataset, written as an artifact next to the store (CSV header first).
    pub per_dataset: Vec<String>,
}

/// A synthetic factor study.
pub trait SyntheticStudy: Send + Sync {
    /// The factor name used in recipes (`factor = "margin"`).
    fn factor(&self) -> &'static str;

    /// The values the paper uses, for recipes that omit `values`.
    fn default_values(&self) -> Vec<f64>;

    /// GD iterations when the recipe does not set `steps`.
    fn default_steps(&self) -> u64;

    /// Apply one factor value to the base settings. Errors name what is wrong with the value.
    fn apply(&self, base: &SyntheticSettings, value: f64) -> Result<SyntheticSettings, Refusal>;

    /// Run the study for one factor value. `progress` is called once per finished dataset.
    fn run(
        &self,
        settings: &SyntheticSettings,
        progress: &(dyn Fn() + Sync),
    ) -> crate::Result<StudyOutcome>;

    /// Axis label of the factor in tables and plots.
    fn axis_label(&self) -> &'static str;

    /// Whether the paper plots this factor on a log axis.
    fn log_axis(&self) -> bool;
}
