//! Fig. 7 — margin γ, varied through the distance between the class centres with unit
//! radius balls (docs/methods.md §7.2: r = 1, a = γ + 1, so B = γ + 2 drifts and is recorded).
//! Δ̂ should fall as γ grows.
//!
//! Also home of the measurement shared by the samples, margin and bound studies: the
//! hard-margin SVM's exact LOO stability Δ̂, its margin γ_S, and GD's sampled LOO
//! stability at T (from w(0) = 0), per dataset.

use stab_core::Refusal;
use stab_core::{StudyEntry, StudyOutcome, SyntheticSettings, SyntheticStudy};
use stab_eval::normalized_distance;

use super::{
    axis_details, collect_rows, head_inits, loo_indices, outcome, over_datasets, paired_gd,
    svm_stability,
};
use crate::linear::LogisticGd;

struct Margin;

impl SyntheticStudy for Margin {
    fn factor(&self) -> &'static str {
        "margin"
    }
    fn default_values(&self) -> Vec<f64> {
        vec![0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0]
    }
    fn default_steps(&self) -> u64 {
        1000
    }
    fn apply(&self, base: &SyntheticSettings, value: f64) -> Result<SyntheticSettings, Refusal> {
        if value.is_nan() || value <= 0.0 {
            return Err(format!("the margin γ must be positive, got {value}").into());
        }
        let mut s = base.clone();
        s.margin = value;
        s.radius = 1.0;
        s.center = value + 1.0;
        s.bound = value + 2.0;
        s.value = value;
        Ok(s)
    }
    fn run(
        &self,
        s: &SyntheticSettings,
        progress: &(dyn Fn() + Sync),
    ) -> stab_core::Result<StudyOutcome> {
        svm_and_gd_study(s, progress, self.axis_label(), self.log_axis())
    }
    fn axis_label(&self) -> &'static str {
        "margin γ"
    }
    fn log_axis(&self) -> bool {
        true
    }
}

inventory::submit! {
    StudyEntry { factor: "margin", summary: "Fig. 7: LOO stability Δ̂ against the margin γ (centre distance, unit balls)", build: || Box::new(Margin) }
}

/// SVM Δ̂ (exact), γ_S, and — when `gd_loo` — GD's Δ̂ and direction gap to the SVM at T.
pub(super) fn svm_and_gd_study(
    s: &SyntheticSettings,
    progress: &(dyn Fn() + Sync),
    axis_label: &str,
    log_axis: bool,
) -> stab_core::Result<StudyOutcome> {
    let rows = over_datasets(s, progress, |d| {
        let svm = svm_stability(s, &d.points)?;
        let mut row = vec![
            ("delta", svm.loo.mean),
            ("delta_max", svm.loo.max),
            ("margin", svm.solution.margin()),
            ("support", svm.solution.support().len() as f64),
            ("bound_measured", d.points.max_norm()),
        ];
        if s.gd_loo && s.steps > 0 {
            let gd = LogisticGd::new(&d.augmented, 0.0);
            let init = if s.heads == 1 {
                vec![0.0; d.augmented.dim]
            } else {
                head_inits(s, d, s.heads)
            };
            let left_out = loo_indices(s, d);
            let end = paired_gd(&gd, &init, s.heads, &left_out, s.steps, &[s.steps]);
            let last = end.last().expect("one checkpoint");
            row.push((
                "gd_delta",
                stab_eval::LeaveOneOutStability::sampled(&last.deltas).mean,
            ));
            row.push((
                "gd_direction_gap",
                normalized_distance(&last.mean_head, &svm.solution.augmented()),
            ));
        }
        Ok(row)
    })?;
    let (c, per_dataset) = collect_rows(&rows);
    Ok(outcome(
        &c,
        s.datasets,
        axis_details(axis_label, log_axis),
        per_dataset,
    ))
}
