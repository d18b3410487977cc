//! Settings of the synthetic head-tuning studies (docs/methods.md §7): the recipe-facing
//! `[synthetic]` table and the fully resolved [`SyntheticSettings`] of one run.

use serde::{Deserialize, Serialize};
use toml::Spanned;

/// The `[synthetic]` table, and each `[[synthetic.studies]]` entry (same keys; an entry
/// overrides the table's values for its own factor).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticTable {
    /// Factor studied: heads | samples | margin | distance | bound.
    pub factor: Option<Spanned<String>>,
    /// Factor values; the paper's values when omitted.
    pub values: Option<Spanned<Vec<f64>>>,
    /// Random training sets per value (paper: 500).
    pub datasets: Option<Spanned<usize>>,
    /// Points per training set, n (paper: 2,000).
    pub points: Option<Spanned<usize>>,
    /// Input dimension d (default 2).
    pub dim: Option<Spanned<usize>>,
    /// Margin γ of the generator (default 0.5).
    pub margin: Option<Spanned<f64>>,
    /// Bound B on ‖x‖ (default 3).
    pub bound: Option<Spanned<f64>>,
    /// GD iterations T (per-factor default).
    pub steps: Option<Spanned<u64>>,
    /// Iterations at which the heads study records its curve (default 10, 100, …, T).
    pub checkpoints: Option<Spanned<Vec<u64>>>,
    /// Left-out points sampled per dataset for GD's LOO stability, m (default 10).
    pub loo_samples: Option<Spanned<usize>>,
    /// Heads of the multi-head predictor outside the heads study (default 1).
    pub heads: Option<Spanned<usize>>,
    /// σ0 of the random head inits N(0, σ0² I) (default 1).
    pub init_std: Option<Spanned<f64>>,
    /// L2 weight μ of the distance study (default 1e-3; see the distance study's docs).
    pub mu: Option<Spanned<f64>>,
    /// SVM box constraint C (default 1e6, i.e. hard margin).
    pub svm_c: Option<Spanned<f64>>,
    /// SMO stopping tolerance on the maximal KKT violation (default 1e-6).
    pub svm_tol: Option<Spanned<f64>>,
    /// Also estimate GD's LOO stability in the samples/margin/bound studies (default true).
    pub gd_loo: Option<Spanned<bool>>,
    /// Base seed; datasets are seeded by hash(seed, factor, dataset index) (default 0).
    pub seed: Option<Spanned<u64>>,
    /// Several studies in one recipe, each with its own factor (only in `[synthetic]`).
    pub studies: Option<Vec<SyntheticTable>>,
}

/// The fully resolved settings of one synthetic run: one factor value, every knob explicit.
/// Its JSON form enters the run id, so any change of a knob is a different run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyntheticSettings {
    pub factor: String,
    pub value: f64,
    pub datasets: usize,
    pub points: usize,
    pub dim: usize,
    /// Generator margin γ = a − r.
    pub margin: f64,
    /// Generator bound B = a + r.
    pub bound: f64,
    /// Centre distance a: the balls are centred at ±a·u.
    pub center: f64,
    /// Ball radius r.
    pub radius: f64,
    pub steps: u64,
    pub checkpoints: Vec<u64>,
    pub loo_samples: usize,
    pub heads: usize,
    pub init_std: f64,
    /// Initial distance ρ = ‖w0 − w*‖ (distance study only; 0 elsewhere).
    pub distance: f64,
    pub mu: f64,
    pub svm_c: f64,
    pub svm_tol: f64,
    pub gd_loo: bool,
    pub seed: u64,
}

impl SyntheticSettings {
    /// The paper's defaults (docs/methods.md §7.2): n = 2000, γ = 0.5, B = 3, d = 2, 500 sets.
    pub fn defaults(factor: &str, steps: u64) -> Self {
        let mut s = Self {
            factor: factor.to_string(),
            value: 0.0,
            datasets: 500,
            points: 2000,
            dim: 2,
            margin: 0.5,
            bound: 3.0,
            center: 0.0,
            radius: 0.0,
            steps,
            checkpoints: Vec::new(),
            loo_samples: 10,
            heads: 1,
            init_std: 1.0,
            distance: 0.0,
            mu: 1e-3,
            svm_c: 1e6,
            svm_tol: 1e-6,
            gd_loo: true,
            seed: 0,
        };
        s.set_margin_and_bound(0.5, 3.0);
        s
    }

    /// Set γ and B and derive the generator geometry a = (B+γ)/2, r = (B−γ)/2.
    pub fn set_margin_and_bound(&mut self, margin: f64, bound: f64) {
        self.margin = margin;
        self.bound = bound;
        self.center = (bound + margin) / 2.0;
        self.radius = (bound - margin) / 2.0;
    }

    /// Default checkpoints: 10, 100, … below T, and T itself.
    pub fn default_checkpoints(steps: u64) -> Vec<u64> {
        let mut v = Vec::new();
        let mut t = 10u64;
        while t < steps {
            v.push(t);
            t = t.saturating_mul(10);
        }
        if steps > 0 {
            v.push(steps);
        }
        v
    }
}
