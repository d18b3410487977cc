//! Fig. 5 — number of heads H of the multi-head predictor (MHLoss on a linear head,
//! docs/methods.md §7.4). H heads start from independent inits N(0, σ0² I); each takes its
//! own full-batch GD step on its own logistic loss; the predictor is the averaged head
//! w̄_t = (1/H) Σ_h w_h(t). At each checkpoint t the study records the direction gap
//! ‖w̄_t/‖w̄_t‖ − ŵ_S/‖ŵ_S‖‖ to the hard-margin SVM and the LOO stability Δ̂ of w̄_t
//! (paired: S and S^i runs share the heads' inits), with the SVM's exact Δ̂ as the
//! reference the heads converge to. More heads should close the gap faster.

use stab_core::Refusal;
use stab_core::{StudyEntry, StudyOutcome, SyntheticSettings, SyntheticStudy};
use stab_eval::{LeaveOneOutStability, Summary, normalized_distance};

use super::{
    Collector, axis_details, head_inits, integer_value, loo_indices, outcome, over_datasets,
    paired_gd, svm_stability,
};
use crate::linear::LogisticGd;

struct Heads;

impl SyntheticStudy for Heads {
    fn factor(&self) -> &'static str {
        "heads"
    }
    fn default_values(&self) -> Vec<f64> {
        vec![5.0, 10.0, 20.0, 50.0, 100.0]
    }
    fn default_steps(&self) -> u64 {
        10_000
    }
    fn apply(&self, base: &SyntheticSettings, value: f64) -> Result<SyntheticSettings, Refusal> {
        let mut s = base.clone();
        s.heads = integer_value(value, "the head count H", 1)?;
        s.value = value;
        Ok(s)
    }
    fn run(
        &self,
        s: &SyntheticSettings,
        progress: &(dyn Fn() + Sync),
    ) -> stab_core::Result<StudyOutcome> {
        struct Row {
            svm_delta: f64,
            margin: f64,
            curve: Vec<(u64, f64, f64)>,
        }
        let rows = over_datasets(s, progress, |d| {
            let svm = svm_stability(s, &d.points)?;
            let w_svm = svm.solution.augmented();
            let gd = LogisticGd::new(&d.augmented, 0.0);
            let init = head_inits(s, d, s.heads);
            let left_out = loo_indices(s, d);
            let cps = paired_gd(&gd, &init, s.heads, &left_out, s.steps, &s.checkpoints);
            let curve = cps
                .iter()
                .map(|c| {
                    (
                        c.t,
                        normalized_distance(&c.mean_head, &w_svm),
                        LeaveOneOutStability::sampled(&c.deltas).mean,
                    )
                })
                .collect();
            Ok(Row {
                svm_delta: svm.loo.mean,
                margin: svm.solution.margin(),
                curve,
            })
        })?;
        let mut c = Collector::default();
        let mut per_dataset = vec!["dataset,t,direction_gap,delta,svm_delta,margin".to_string()];
        let mut by_t: Vec<(u64, Vec<f64>, Vec<f64>)> = s
            .checkpoints
            .iter()
            .map(|&t| (t, Vec::new(), Vec::new()))
            .collect();
        for (i, r) in rows.iter().enumerate() {
            c.push("svm_delta", r.svm_delta);
            c.push("margin", r.margin);
            for (k, &(t, gap, delta)) in r.curve.iter().enumerate() {
                by_t[k].1.push(gap);
                by_t[k].2.push(delta);
                per_dataset.push(format!(
                    "{i},{t},{gap:e},{delta:e},{:e},{:e}",
                    r.svm_delta, r.margin
                ));
            }
            if let Some(&(_, gap, delta)) = r.curve.last() {
                c.push("direction_gap", gap);
                c.push("delta", delta);
            }
        }
        let curve: Vec<serde_json::Value> = by_t
            .iter()
            .map(|(t, gaps, deltas)| {
                let (g, d) = (Summary::of(gaps), Summary::of(deltas));
                serde_json::json!({
                    "t": t,
                    "direction_gap_mean": g.mean, "direction_gap_sd": g.sd,
                    "delta_mean": d.mean, "delta_sd": d.sd,
                })
            })
            .collect();
        let mut details = axis_details(self.axis_label(), self.log_axis());
        details["curve"] = serde_json::Value::Array(curve);
        Ok(outcome(&c, s.datasets, details, per_dataset))
    }
    fn axis_label(&self) -> &'static str {
        "heads H"
    }
    fn log_axis(&self) -> bool {
        true
    }
}

inventory::submit! {
    StudyEntry { factor: "heads", summary: "Fig. 5: direction gap to the SVM and Δ̂ of the averaged head vs iteration, per head count H", build: || Box::new(Heads) }
}
