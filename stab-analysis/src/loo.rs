//! Leave-one-out stability of heads trained on a real task's frozen features — the
//! paper's §4.3 measurement (docs/methods.md §7.4–7.5), which it made only on synthetic data,
//! applied to the pooled encoder features of a real task.
//!
//! The setting is the theory's: augmented features x̃ = [x; −1], linear heads trained by
//! full-batch logistic GD with η = 1/β_L from N(0, σ0² I) inits; MHLoss is H such heads,
//! each on its own loss, predicting with the averaged head w̄ (FineTune is H = 1). For m
//! sampled points i, the heads are trained on S and on S∖{i} from the same inits and
//! Δ_i = ‖w̄_S/‖w̄_S‖ − w̄_{S^i}/‖w̄_{S^i}‖‖. The per-dataset machinery is the synthetic
//! suite's own ([`stab_synthetic::studies`]), so on a synthetic set this reproduces its estimator.
//!
//! The features' geometry comes from the same hard-margin SMO: the margin γ_S = 1/‖v̂‖, the
//! bound B = max‖x‖ and r = min‖x‖; when the SVM separates the set, its own Δ̂ is
//! (1/n)·Σ_{i∈SV} Δ_i, over every support vector or a uniform sample of them.
//! A task with C > 2 classes is split one-vs-rest, one binary problem per class.
//!
//! MMR regularises the vector entering the final linear layer; on a linear head over
//! frozen features that vector is the fixed feature, so R(S) is a constant and MMR trains
//! exactly as FineTune here (its effect needs the jiant head's trainable dense layer).

use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use stab_core::{SyntheticSettings, derive_seed};
use stab_eval::{LeaveOneOutStability, Summary, normalized_distance};
use stab_synthetic::LabeledPoints;

use stab_synthetic::linear::{AugmentedPoints, LogisticGd, Smo};
use stab_synthetic::studies::{Dataset, head_inits, loo_indices, paired_gd};

/// What to measure.
#[derive(Debug, Clone, Serialize)]
pub struct LinearLooSettings {
    /// Head counts H (1 = FineTune).
    pub heads: Vec<usize>,
    /// GD steps T.
    pub steps: u64,
    /// Left-out points m.
    pub loo_samples: usize,
    /// Head init scale σ0.
    pub init_std: f64,
    pub seed: u64,
    /// SVM box bound C (hard margin by default) and SMO tolerance.
    pub svm_c: f64,
    pub svm_tol: f64,
    /// Support vectors re-solved for the SVM's Δ̂ (0 = all).
    pub svm_loo_samples: usize,
    /// SMO iterations before the set is declared not separated.
    pub svm_max_iter: u64,
}

impl Default for LinearLooSettings {
    fn default() -> Self {
        let s = SyntheticSettings::defaults("heads", 1000);
        Self {
            heads: vec![1, 5, 20, 50],
            steps: 1000,
            loo_samples: 10,
            init_std: s.init_std,
            seed: 0,
            svm_c: s.svm_c,
            svm_tol: s.svm_tol,
            svm_loo_samples: 50,
            svm_max_iter: 2_000_000,
        }
    }
}

/// The features' geometry as the SVM sees it.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureGeometry {
    pub n: usize,
    pub dim: usize,
    /// B = max‖x‖ and r = min‖x‖ (features without the −1 coordinate).
    pub bound: f64,
    pub min_norm: f64,
    /// γ_S = 1/‖v̂‖ of the SVM (the hard margin when `separable`).
    pub margin: f64,
    /// No dual variable at the box bound: the SVM separated the set.
    pub separable: bool,
    /// Whether SMO converged (it may not, within `svm_max_iter`, on a set it cannot
    /// separate with hard margins; then `margin` is NaN).
    pub solved: bool,
    /// Dual variables at the bound (margin violations) when not separable.
    pub at_bound: usize,
    pub support: usize,
    /// The SVM's Δ̂ (separable sets only).
    pub svm_delta: Option<f64>,
    /// Support vectors re-solved for it.
    pub svm_delta_from: usize,
}

/// Δ̂ of one head count.
#[derive(Debug, Clone, Serialize)]
pub struct LooRow {
    pub heads: usize,
    /// Δ̂ = mean of Δ_i over the m sampled points, its sd (ddof = 1) and max.
    pub delta: f64,
    pub delta_sd: f64,
    pub delta_max: f64,
    /// Mean ‖w̄_S − w̄_{S^i}‖ (Def. 2.1, unnormalised).
    pub distance: f64,
    /// ‖w̄/‖w̄‖ − ŵ/‖ŵ‖‖ to the SVM direction.
    pub direction_gap: f64,
}

/// One binary problem's measurement.
#[derive(Debug, Clone, Serialize)]
pub struct HeadLooStability {
    /// `all` for a binary task, else the positive class of a one-vs-rest split.
    pub problem: String,
    pub geometry: FeatureGeometry,
    pub rows: Vec<LooRow>,
}

fn synthetic_settings(s: &LinearLooSettings, n: usize, dim: usize) -> SyntheticSettings {
    let mut ss = SyntheticSettings::defaults("heads", s.steps);
    ss.points = n;
    ss.dim = dim;
    ss.datasets = 1;
    ss.loo_samples = s.loo_samples;
    ss.init_std = s.init_std;
    ss.seed = s.seed;
    ss.svm_c = s.svm_c;
    ss.svm_tol = s.svm_tol;
    ss.checkpoints = vec![s.steps];
    ss
}

/// Measure one binary problem.
pub fn linear_head_loo(
    problem: &str,
    points: &LabeledPoints,
    s: &LinearLooSettings,
) -> stab_core::Result<HeadLooStability> {
    if points.len() < 2 {
        return Err(stab_core::internal!("{problem}: fewer than 2 points"));
    }
    if !(points.y.iter().any(|&y| y > 0.0) && points.y.iter().any(|&y| y < 0.0)) {
        return Err(stab_core::internal!("{problem}: one class only"));
    }
    let ss = synthetic_settings(s, points.len(), points.dim);
    let d = Dataset {
        index: 0,
        points: points.clone(),
        augmented: AugmentedPoints::new(points),
    };
    let smo = Smo {
        c: s.svm_c,
        tol: s.svm_tol,
        max_iter: s.svm_max_iter,
    };
    // A hard-margin SMO on a set it cannot separate may not converge: that is an answer
    // (not separated), not a failure.
    let svm = smo.solve(points).ok();
    let w_svm = svm.as_ref().map(|v| v.augmented());
    let support = svm.as_ref().map(|v| v.support()).unwrap_or_default();
    let separable = svm.as_ref().is_some_and(|v| v.is_hard_margin());
    let (svm_delta, svm_delta_from) = if separable {
        let chosen: Vec<usize> = if s.svm_loo_samples == 0 || support.len() <= s.svm_loo_samples {
            support.clone()
        } else {
            let mut rng =
                ChaCha8Rng::seed_from_u64(derive_seed(s.seed, &["analyze", "loo", "svm"]));
            sample(&mut rng, support.len(), s.svm_loo_samples)
                .into_iter()
                .map(|k| support[k])
                .collect()
        };
        let mut deltas = Vec::new();
        for &i in &chosen {
            let without = smo.solve(&points.without(i))?;
            deltas.push(normalized_distance(
                w_svm.as_deref().expect("separable"),
                &without.augmented(),
            ));
        }
        // (1/n)·Σ_{SV} Δ_i, the sum scaled up from the sample when one was drawn.
        let scale = support.len() as f64 / chosen.len() as f64;
        let exact = LeaveOneOutStability::exact_from_support(points.len(), &deltas);
        (Some(exact.mean * scale), chosen.len())
    } else {
        (None, 0)
    };
    let norms: Vec<f64> = (0..points.len())
        .map(|i| points.point(i).iter().map(|a| a * a).sum::<f64>().sqrt())
        .collect();
    let geometry = FeatureGeometry {
        n: points.len(),
        dim: points.dim,
        bound: norms.iter().copied().fold(0.0, f64::max),
        min_norm: norms.iter().copied().fold(f64::INFINITY, f64::min),
        margin: svm.as_ref().map_or(f64::NAN, |v| v.margin()),
        separable,
        solved: svm.is_some(),
        at_bound: svm
            .as_ref()
            .map_or(0, |v| v.alpha.iter().filter(|&&a| a >= v.c).count()),
        support: support.len(),
        svm_delta,
        svm_delta_from,
    };

    let gd = LogisticGd::new(&d.augmented, 0.0);
    let max_heads = s.heads.iter().copied().max().unwrap_or(1);
    let init = head_inits(&ss, &d, max_heads);
    let left_out = loo_indices(&ss, &d);
    let da = d.augmented.dim;
    let mut rows = Vec::new();
    for &h in &s.heads {
        let cps = paired_gd(&gd, &init[..h * da], h, &left_out, s.steps, &[s.steps]);
        let last = cps.last().expect("one checkpoint");
        let sd = Summary::of(&last.deltas);
        rows.push(LooRow {
            heads: h,
            delta: sd.mean,
            delta_sd: sd.sd,
            delta_max: last.deltas.iter().copied().fold(0.0, f64::max),
            distance: Summary::of(&last.distances).mean,
            direction_gap: w_svm
                .as_deref()
                .map_or(f64::NAN, |w| normalized_distance(&last.mean_head, w)),
        });
    }
    Ok(HeadLooStability {
        problem: problem.to_string(),
        geometry,
        rows,
    })
}

/// The binary problems of a task: labels 0/1 as −1/+1 for two classes, else one-vs-rest
/// per class (named by `class_names`).
pub fn binary_problems(
    features: &[f64],
    dim: usize,
    labels: &[usize],
    class_names: &[String],
) -> Vec<(String, LabeledPoints)> {
    let make = |positive: &dyn Fn(usize) -> bool| LabeledPoints {
        dim,
        x: features.to_vec(),
        y: labels
            .iter()
            .map(|&l| if positive(l) { 1.0 } else { -1.0 })
            .collect(),
    };
    if class_names.len() <= 2 {
        return vec![("all".to_string(), make(&|l| l == 1))];
    }
    class_names
        .iter()
        .enumerate()
        .map(|(k, name)| (format!("{name} vs rest"), make(&|l| l == k)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use stab_synthetic::studies::{dataset, svm_stability};

    #[test]
    fn on_a_synthetic_set_it_is_the_synthetic_suites_estimator() {
        let mut s = SyntheticSettings::defaults("heads", 300);
        s.points = 120;
        s.loo_samples = 4;
        s.checkpoints = vec![300];
        let d = dataset(&s, 0);
        // The synthetic heads study's computation for H = 5 (synthetic/heads.rs).
        let svm = svm_stability(&s, &d.points).unwrap();
        let gd = LogisticGd::new(&d.augmented, 0.0);
        let init = head_inits(&s, &d, 5);
        let cps = paired_gd(&gd, &init, 5, &loo_indices(&s, &d), 300, &[300]);
        let study_delta = LeaveOneOutStability::sampled(&cps[0].deltas).mean;

        let settings = LinearLooSettings {
            heads: vec![5],
            steps: 300,
            loo_samples: 4,
            init_std: s.init_std,
            seed: s.seed,
            svm_c: s.svm_c,
            svm_tol: s.svm_tol,
            svm_loo_samples: 0,
            svm_max_iter: Smo::default().max_iter,
        };
        let got = linear_head_loo("all", &d.points, &settings).unwrap();
        assert!(got.geometry.separable);
        assert_eq!(got.rows[0].delta, study_delta);
        assert_eq!(got.geometry.svm_delta, Some(svm.loo.mean));
        assert_eq!(got.geometry.margin, svm.solution.margin());
        assert!((got.geometry.bound - d.points.max_norm()).abs() < 1e-15);
    }

    #[test]
    fn an_overlapping_set_is_reported_not_separable() {
        // Two identical points with opposite labels cannot be separated.
        let points = LabeledPoints {
            dim: 1,
            x: vec![1.0, 1.0, -1.0, 2.0],
            y: vec![1.0, -1.0, -1.0, 1.0],
        };
        let settings = LinearLooSettings {
            heads: vec![1, 3],
            steps: 50,
            loo_samples: 2,
            ..LinearLooSettings::default()
        };
        let got = linear_head_loo("all", &points, &settings).unwrap();
        assert!(!got.geometry.separable && got.geometry.at_bound > 0);
        assert_eq!(got.geometry.svm_delta, None);
        assert_eq!(got.rows.len(), 2);
        assert!(got.rows.iter().all(|r| r.delta.is_finite()));
    }

    #[test]
    fn multi_class_tasks_split_one_vs_rest() {
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let p = binary_problems(&[0.0, 1.0, 2.0], 1, &[0, 1, 2], &names);
        assert_eq!(p.len(), 3);
        assert_eq!(p[1].0, "b vs rest");
        assert_eq!(p[1].1.y, [-1.0, 1.0, -1.0]);
        let p = binary_problems(&[0.0, 1.0], 1, &[0, 1], &names[..2]);
        assert_eq!(p[0].1.y, [-1.0, 1.0]);
    }
}
