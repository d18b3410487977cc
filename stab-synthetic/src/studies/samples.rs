//! Fig. 6 — sample count n. Δ̂ should fall as n grows (docs/methods.md §7.2: γ = 0.5, B = 3).

use stab_core::Refusal;
use stab_core::{StudyEntry, StudyOutcome, SyntheticSettings, SyntheticStudy};

use super::integer_value;
use super::margin::svm_and_gd_study;

struct Samples;

impl SyntheticStudy for Samples {
    fn factor(&self) -> &'static str {
        "samples"
    }
    fn default_values(&self) -> Vec<f64> {
        vec![100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0]
    }
    fn default_steps(&self) -> u64 {
        1000
    }
    fn apply(&self, base: &SyntheticSettings, value: f64) -> Result<SyntheticSettings, Refusal> {
        let mut s = base.clone();
        s.points = integer_value(value, "the sample count n", 4)?;
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
        "sample count n"
    }
    fn log_axis(&self) -> bool {
        true
    }
}

inventory::submit! {
    StudyEntry { factor: "samples", summary: "Fig. 6: LOO stability Δ̂ against the number of training points n", build: || Box::new(Samples) }
}
