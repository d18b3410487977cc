//! The synthetic head-tuning studies of the paper's §4.3 (docs/methods.md §7): one plugin
//! file per factor, sharing the per-dataset machinery below.
//!
//! Every study draws `datasets` independent training sets from the two-ball generator,
//! seeded by hash(seed, factor, dataset index) — the same sets for every value of the
//! factor where the factor does not change the generator (common random numbers, so
//! trends are compared on paired data) — and processes them in parallel with rayon.
//! Each dataset's computation is sequential and seeded, and results are collected in
//! dataset order, so a study's output does not depend on the thread count.

mod bound;
mod distance;
mod heads;
mod margin;
mod samples;

use stab_core::Refusal;
use std::collections::BTreeMap;

use crate::points::{LabeledPoints, TwoBalls};
use rand::{SeedableRng, seq::index::sample};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use stab_core::Context as _;
use stab_core::{StudyOutcome, SyntheticSettings, derive_seed};
use stab_eval::stability::distance;
use stab_eval::{LeaveOneOutStability, Summary, normalized_distance};

use crate::linear::{AugmentedPoints, LogisticGd, Smo, SvmSolution};

/// One generated training set.
pub struct Dataset {
    pub index: usize,
    pub points: LabeledPoints,
    pub augmented: AugmentedPoints,
}

/// The per-dataset seed for a purpose (`"points"`, `"loo"`, `"init"`, …).
pub fn dataset_seed(s: &SyntheticSettings, index: usize, purpose: &str) -> u64 {
    derive_seed(
        s.seed,
        &["synthetic", &s.factor, purpose, &index.to_string()],
    )
}

/// Generate dataset `index` of a run.
pub fn dataset(s: &SyntheticSettings, index: usize) -> Dataset {
    let generator = TwoBalls {
        points: s.points,
        dim: s.dim,
        center: s.center,
        radius: s.radius,
    };
    let points = generator.sample(dataset_seed(s, index, "points"));
    let augmented = AugmentedPoints::new(&points);
    Dataset {
        index,
        points,
        augmented,
    }
}

/// Run `f` on every dataset in parallel; results in dataset order.
pub fn over_datasets<T: Send>(
    s: &SyntheticSettings,
    progress: &(dyn Fn() + Sync),
    f: impl Fn(&Dataset) -> stab_core::Result<T> + Sync,
) -> stab_core::Result<Vec<T>> {
    (0..s.datasets)
        .into_par_iter()
        .map(|i| {
            let d = dataset(s, i);
            let r = f(&d).with_context(|| format!("dataset {i}"));
            progress();
            r
        })
        .collect()
}

/// The hard-margin SVM of a dataset and its exact LOO stability.
pub struct SvmStability {
    pub solution: SvmSolution,
    pub loo: LeaveOneOutStability,
}

/// Solve the SVM on S and on S^i for every support vector i (docs/methods.md §7.5).
pub fn svm_stability(
    s: &SyntheticSettings,
    data: &LabeledPoints,
) -> stab_core::Result<SvmStability> {
    let smo = Smo {
        c: s.svm_c,
        tol: s.svm_tol,
        ..Smo::default()
    };
    let solution = smo.solve(data)?;
    if !(solution.is_hard_margin()) {
        return Err(stab_core::internal!(
            "the SVM hit the box bound C = {} (the set is not separated); raise svm_c",
            s.svm_c
        ));
    }
    let w = solution.augmented();
    let mut deltas = Vec::new();
    for i in solution.support() {
        let without = smo.solve(&data.without(i))?;
        deltas.push(normalized_distance(&w, &without.augmented()));
    }
    let loo = LeaveOneOutStability::exact_from_support(data.len(), &deltas);
    Ok(SvmStability { solution, loo })
}

/// m distinct left-out indices, uniform, seeded per dataset.
pub fn loo_indices(s: &SyntheticSettings, d: &Dataset) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(dataset_seed(s, d.index, "loo"));
    let m = s.loo_samples.min(d.points.len());
    let mut v = sample(&mut rng, d.points.len(), m).into_vec();
    v.sort_unstable();
    v
}

/// H random head inits N(0, σ0² I) in the augmented space (row h = head h; a prefix of
/// a larger draw, so H = 5 uses the first 5 heads of H = 100). Zero when σ0 = 0.
pub fn head_inits(s: &SyntheticSettings, d: &Dataset, heads: usize) -> Vec<f64> {
    let da = d.augmented.dim;
    let mut rng = ChaCha8Rng::seed_from_u64(dataset_seed(s, d.index, "init"));
    (0..heads * da)
        .map(|_| {
            let g: f64 = StandardNormal.sample(&mut rng);
            s.init_std * g
        })
        .collect()
}

/// What paired GD runs on S and S^i give at one checkpoint.
pub struct GdCheckpoint {
    pub t: u64,
    /// The averaged head w̄_t trained on S.
    pub mean_head: Vec<f64>,
    /// Δ_i of w̄_t for each sampled i.
    pub deltas: Vec<f64>,
    /// ‖w̄_t(S^i) − w̄_t(S)‖ for each sampled i.
    pub distances: Vec<f64>,
}

/// Train H heads from `init` on S and, from the same inits, on each S^i (i in `left_out`);
/// report the averaged head and its LOO differences at each checkpoint.
pub fn paired_gd(
    gd: &LogisticGd<'_>,
    init: &[f64],
    heads: usize,
    left_out: &[usize],
    steps: u64,
    checkpoints: &[u64],
) -> Vec<GdCheckpoint> {
    let da = gd.data.dim;
    let runs = 1 + left_out.len();
    let mut ws = Vec::with_capacity(runs * init.len());
    let mut removed = Vec::with_capacity(runs * heads);
    for r in 0..runs {
        ws.extend_from_slice(init);
        removed.extend(std::iter::repeat_n(
            if r == 0 { None } else { Some(left_out[r - 1]) },
            heads,
        ));
    }
    let mean_of = |ws: &[f64], r: usize| -> Vec<f64> {
        let block = &ws[r * heads * da..(r + 1) * heads * da];
        (0..da)
            .map(|k| (0..heads).map(|h| block[h * da + k]).sum::<f64>() / heads as f64)
            .collect()
    };
    let mut out = Vec::new();
    gd.run(&mut ws, &removed, steps, checkpoints, |t, ws| {
        let base = mean_of(ws, 0);
        let others: Vec<Vec<f64>> = (1..runs).map(|r| mean_of(ws, r)).collect();
        out.push(GdCheckpoint {
            t,
            deltas: others
                .iter()
                .map(|o| normalized_distance(&base, o))
                .collect(),
            distances: others.iter().map(|o| distance(&base, o)).collect(),
            mean_head: base,
        });
    });
    out
}

/// Collects per-dataset values by name and summarises them into metrics.
#[derive(Default)]
pub struct Collector {
    values: BTreeMap<String, Vec<f64>>,
}

impl Collector {
    pub fn push(&mut self, name: &str, v: f64) {
        self.values.entry(name.to_string()).or_default().push(v);
    }
    pub fn summary(&self, name: &str) -> Summary {
        Summary::of(self.values.get(name).map_or(&[][..], |v| v))
    }
    /// `<name>_mean` and `<name>_sd` for every collected name.
    pub fn metrics(&self) -> BTreeMap<String, f64> {
        let mut m = BTreeMap::new();
        for (name, v) in &self.values {
            Summary::of(v).insert_into(name, &mut m);
        }
        m
    }
}

/// Summaries and per-dataset CSV lines (header first) of rows of named values.
pub fn collect_rows(rows: &[Vec<(&'static str, f64)>]) -> (Collector, Vec<String>) {
    let mut c = Collector::default();
    let mut lines = Vec::with_capacity(rows.len() + 1);
    if let Some(first) = rows.first() {
        lines.push(format!(
            "dataset,{}",
            first.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(",")
        ));
    }
    for (i, row) in rows.iter().enumerate() {
        let mut line = i.to_string();
        for (k, v) in row {
            c.push(k, *v);
            line.push_str(&format!(",{v:e}"));
        }
        lines.push(line);
    }
    (c, lines)
}

/// Axis hints recorded with every synthetic run, so reports need no plugin to draw them.
pub fn axis_details(label: &str, log: bool) -> serde_json::Value {
    serde_json::json!({ "axis_label": label, "log_axis": log })
}

/// Finish an outcome: metrics from the collector plus the dataset count.
pub fn outcome(
    c: &Collector,
    datasets: usize,
    details: serde_json::Value,
    per_dataset: Vec<String>,
) -> StudyOutcome {
    let mut metrics = c.metrics();
    metrics.insert("datasets".to_string(), datasets as f64);
    if let Some(delta) = metrics.get("delta_mean").copied() {
        metrics.insert("primary".to_string(), delta);
    }
    StudyOutcome {
        metrics,
        details,
        per_dataset,
    }
}

/// Parse an integer-valued factor value (points, heads).
pub fn integer_value(value: f64, what: &str, min: usize) -> Result<usize, Refusal> {
    if value.fract() != 0.0 || value < min as f64 {
        return Err(format!("{what} must be an integer ≥ {min}, got {value}").into());
    }
    Ok(value as usize)
}
