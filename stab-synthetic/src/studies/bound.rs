//! Fig. 9 — bound B on ‖x‖ at fixed margin γ. Δ̂ should fall as B shrinks.

use stab_core::Refusal;
use stab_core::{StudyEntry, StudyOutcome, SyntheticSettings, SyntheticStudy};

use super::margin::svm_and_gd_study;

struct Bound;

impl SyntheticStudy for Bound {
    fn factor(&self) -> &'static str {
        "bound"
    }
    fn default_values(&self) -> Vec<f64> {
        vec![1.5, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0]
    }
    fn default_steps(&self) -> u64 {
        1000
    }
    fn apply(&self, base: &SyntheticSettings, value: f64) -> Result<SyntheticSettings, Refusal> {
        if value.is_nan() || value <= base.margin {
            return Err(format!(
                "bound B = {value} must exceed the margin γ = {}",
                base.margin
            )
            .into());
        }
        let mut s = base.clone();
        s.set_margin_and_bound(base.margin, value);
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
        "bound B"
    }
    fn log_axis(&self) -> bool {
        true
    }
}

inventory::submit! {
    StudyEntry { factor: "bound", summary: "Fig. 9: LOO stability Δ̂ against the bound B on ‖x‖ (γ fixed)", build: || Box::new(Bound) }
}
