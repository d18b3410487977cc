//! A synthetic study added from outside stab: the hard-margin SVM's exact LOO stability Δ̂
//! against the input dimension d (γ = 0.5, B = 3). It uses only stab's public building
//! blocks and registers itself with `inventory::submit!`; any binary that links this crate
//! (`use stab_example_dimension_study as _;`) can run `factor = "dim"` recipes.

use stab_core::Refusal;
use stab_core::{StudyEntry, StudyOutcome, SyntheticSettings, SyntheticStudy};
use stab_synthetic::studies::{axis_details, collect_rows, outcome, over_datasets, svm_stability};

pub struct Dimension;

impl SyntheticStudy for Dimension {
    fn factor(&self) -> &'static str {
        "dim"
    }
    fn default_values(&self) -> Vec<f64> {
        vec![2.0, 5.0, 10.0, 20.0]
    }
    fn default_steps(&self) -> u64 {
        0
    }
    fn apply(&self, base: &SyntheticSettings, value: f64) -> Result<SyntheticSettings, Refusal> {
        if value.fract() != 0.0 || !(1.0..=64.0).contains(&value) {
            return Err(format!("the dimension must be an integer in 1..=64, got {value}").into());
        }
        let mut s = base.clone();
        s.dim = value as usize;
        s.value = value;
        Ok(s)
    }
    fn run(
        &self,
        s: &SyntheticSettings,
        progress: &(dyn Fn() + Sync),
    ) -> stab_core::Result<StudyOutcome> {
        let rows = over_datasets(s, progress, |d| {
            let svm = svm_stability(s, &d.points)?;
            Ok(vec![
                ("delta", svm.loo.mean),
                ("margin", svm.solution.margin()),
                ("support", svm.solution.support().len() as f64),
            ])
        })?;
        let (c, per_dataset) = collect_rows(&rows);
        Ok(outcome(
            &c,
            s.datasets,
            axis_details(self.axis_label(), self.log_axis()),
            per_dataset,
        ))
    }
    fn axis_label(&self) -> &'static str {
        "input dimension d"
    }
    fn log_axis(&self) -> bool {
        true
    }
}

inventory::submit! {
    StudyEntry { factor: "dim", summary: "example plugin: SVM LOO stability against the input dimension d", build: || Box::new(Dimension) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_and_runs_through_the_registry() {
        let study = stab_core::registry::study("dim").expect("the plugin is registered");
        assert!(
            study
                .apply(&SyntheticSettings::defaults("dim", 0), 2.5)
                .is_err()
        );
        let mut base = SyntheticSettings::defaults("dim", 0);
        base.datasets = 20;
        base.points = 200;
        let run = |d: f64| {
            study
                .run(&study.apply(&base, d).unwrap(), &|| {})
                .unwrap()
                .metrics["delta_mean"]
        };
        assert!(
            run(10.0) > run(2.0),
            "more dimensions, more support vectors, less stability"
        );
    }
}
