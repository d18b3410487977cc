//! What a fine-tuning grid lets one conclude, as one data model (docs/methods.md §13):
//! the document `stab report DIR --format json` prints, and what the Markdown and HTML
//! views read. Scores are in [0, 100] units (the primary metric ×100); an undefined value
//! (one run, no FineTune arm) is `None` (JSON `null`).
//!
//! * `runs[task][method]` — seeds, mean, SD, and the failed runs: test score at or below
//!   the score of always predicting the test split's majority class (Mosbach et al. 2021;
//!   MCC: ≤ 0), with the mean and SD without them.
//! * `stability[task][method]` — against FineTune: SD ratio, Brown–Forsythe p with Holm
//!   over the table, ASO's ε_min of the method over FineTune, the SD ratio this grid
//!   detects with 80% power, and the seeds per arm that ratios 0.7 and 0.5 need.
//! * `aggregate[method]` — across tasks, on scores normalised per task so that the
//!   majority class is 0 and a perfect score 100: the IQM with its stratified-bootstrap
//!   95% interval, and the probability of improving on FineTune with its interval.
//! * `predictions[task][method]` — from the runs' stored test predictions: the mean
//!   pairwise disagreement between seeds (churn), the share of test examples not
//!   predicted alike by every seed, the histogram of per-example agreement, and whether
//!   the disagreement differs from FineTune's (a 95% bootstrap interval over examples).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;
use stab_core::RunRecord;

use super::finetune::{BASELINE, Grouping};
use crate::aggregate::{
    iqm, paired_stratified_interval, probability_of_improvement, stratified_interval,
    stratified_interval_unordered,
};
use crate::aso::{AsoSettings, aso_eps_min};
use crate::power::{PowerSettings, min_detectable_ratio, seeds_needed};
use crate::stats::Summary;
use crate::variance::{bootstrap_sd_interval, brown_forsythe, holm};
use rayon::prelude::*;

/// The computation's sizes and seeds, reported with the results.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub power_simulations: usize,
    pub power_alpha: f64,
    pub power_target: f64,
    pub aso_bootstrap: usize,
    pub aggregate_bootstrap: usize,
    pub prediction_bootstrap: usize,
    /// The most seeds the seeds-needed search tries.
    pub max_seeds: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            power_simulations: 2000,
            power_alpha: 0.05,
            power_target: 0.8,
            aso_bootstrap: 1000,
            aggregate_bootstrap: 10_000,
            prediction_bootstrap: 2000,
            max_seeds: 200,
        }
    }
}

/// One task × method's runs.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub n: usize,
    pub mean: f64,
    pub sd: Option<f64>,
    pub failed: usize,
    #[serde(serialize_with = "fraction::plain")]
    pub failed_share: f64,
    /// The majority-class score the runs were judged against (`None` for records that
    /// predate it: nothing counted as failed).
    pub majority: Option<f64>,
    pub mean_without_failed: Option<f64>,
    pub sd_without_failed: Option<f64>,
    /// Every seed's run equals FineTune's bit for bit (scores and curves).
    pub identical_to_finetune: bool,
    /// Runs that diverged (a non-finite loss or metric): they have no score, so they are
    /// not among the `n` runs of any statistic.
    pub diverged: usize,
}

impl RunSummary {
    /// A row without a scored run (all of its runs diverged).
    fn none() -> Self {
        Self {
            n: 0,
            mean: f64::NAN,
            sd: None,
            failed: 0,
            failed_share: 0.0,
            majority: None,
            mean_without_failed: None,
            sd_without_failed: None,
            identical_to_finetune: false,
            diverged: 0,
        }
    }
}

/// One task × method against FineTune.
#[derive(Debug, Clone, Serialize)]
pub struct Stability {
    pub n: usize,
    pub sd: Option<f64>,
    /// 95% percentile-bootstrap interval of `sd` (2,000 resamples).
    pub sd_ci: Option<[f64; 2]>,
    pub finetune_sd: Option<f64>,
    pub sd_ratio: Option<f64>,
    pub bf_p: Option<f64>,
    pub bf_p_holm: Option<f64>,
    pub sd_ratio_without_failed: Option<f64>,
    pub bf_p_without_failed: Option<f64>,
    /// ε_min of "the method is better than FineTune" (< 0.5: almost stochastically better).
    pub aso_eps_min: Option<f64>,
    pub aso_eps_min_without_failed: Option<f64>,
    /// SD ratios at or below this one are detected with the target power at these seeds.
    pub min_detectable_sd_ratio: Option<f64>,
    pub seeds_for_ratio_0_7: Option<usize>,
    pub seeds_for_ratio_0_5: Option<usize>,
}

/// One method across tasks.
#[derive(Debug, Clone, Serialize)]
pub struct Aggregate {
    pub tasks: usize,
    pub iqm: Option<f64>,
    pub iqm_ci: Option<[f64; 2]>,
    /// P(method > FineTune) ×100, over the tasks both have.
    #[serde(serialize_with = "fraction::option")]
    pub p_improvement: Option<f64>,
    #[serde(serialize_with = "fraction::interval")]
    pub p_improvement_ci: Option<[f64; 2]>,
    /// The IQM and P(> FineTune) with failed runs left out (of both arms).
    pub iqm_without_failed: Option<f64>,
    #[serde(serialize_with = "fraction::option")]
    pub p_improvement_without_failed: Option<f64>,
}

/// Instability of one task × method's test predictions across seeds.
#[derive(Debug, Clone, Serialize)]
pub struct PredictionStability {
    /// Runs whose predictions were found and fit their records (the statistics' evidence).
    pub runs: usize,
    /// Runs of the cell: when larger than `runs`, the statistics use fewer runs than the
    /// cell holds, and the report says so.
    pub cell_runs: usize,
    pub examples: usize,
    /// Mean over pairs of seeds of the share of examples predicted differently, ×100.
    #[serde(serialize_with = "fraction::plain")]
    pub disagreement: f64,
    /// Share of examples not predicted alike by every seed, ×100.
    #[serde(serialize_with = "fraction::plain")]
    pub unstable_share: f64,
    /// Examples by the share of seeds agreeing with the most common prediction, in ten
    /// bins of [0, 1] (the last holds full agreement).
    pub agreement_histogram: Vec<usize>,
    /// 95% bootstrap interval (over examples) of disagreement minus FineTune's, ×100.
    #[serde(serialize_with = "fraction::interval")]
    pub disagreement_vs_finetune_ci: Option<[f64; 2]>,
    /// The disagreement among the runs that did not fail (two or more), ×100.
    #[serde(serialize_with = "fraction::option")]
    pub disagreement_without_failed: Option<f64>,
}

/// Everything the report concludes about a fine-tuning grid.
#[derive(Debug, Clone, Serialize)]
pub struct Findings {
    pub runs: BTreeMap<String, BTreeMap<String, RunSummary>>,
    pub stability: BTreeMap<String, BTreeMap<String, Stability>>,
    pub aggregate: BTreeMap<String, Aggregate>,
    pub predictions: BTreeMap<String, BTreeMap<String, PredictionStability>>,
    /// Prediction files that could not stand for their runs, with the reason; those runs
    /// are left out of the prediction statistics.
    pub rejected_predictions: Vec<RejectedPredictions>,
    /// Rows that hold one seed twice from runs of different settings under one recipe name
    /// (the report cannot tell the experiments apart; rerun them into separate directories).
    pub pooled: Vec<PooledSeed>,
    pub settings: Settings,
}

/// One seed held twice by one row.
#[derive(Debug, Clone, Serialize)]
pub struct PooledSeed {
    pub task: String,
    pub method: String,
    pub seed: u64,
    pub run_ids: [String; 2],
}

/// A prediction file a report did not use.
#[derive(Debug, Clone, Serialize)]
pub struct RejectedPredictions {
    pub run_id: String,
    pub file: String,
    pub reason: String,
}

/// One run as the findings read it.
struct Run<'a> {
    record: &'a RunRecord,
    score: f64,
    majority: Option<f64>,
}

impl Run<'_> {
    fn failed(&self) -> bool {
        self.majority.is_some_and(|m| self.score <= m + 1e-9)
    }

    /// What must be equal for two runs to be the same run: scores and curves.
    fn fingerprint(&self) -> String {
        let d = &self.record.details;
        serde_json::json!([self.record.metrics, d["dev_curve"], d["train_loss"]]).to_string()
    }
}

type Cells<'a> = BTreeMap<String, BTreeMap<String, Vec<Run<'a>>>>;

/// Which runs of a cell a statistic reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    All,
    WithoutFailed,
}

/// `of` of each run of a cell that `which` keeps.
fn values(runs: &[Run], which: Which, of: fn(&Run) -> f64) -> Vec<f64> {
    runs.iter()
        .filter(|r| which == Which::All || !r.failed())
        .map(of)
        .collect()
}

fn score(r: &Run) -> f64 {
    r.score
}

fn sd_of(v: &[f64]) -> Option<f64> {
    (v.len() > 1).then(|| Summary::of(v).sd)
}

fn mean_of(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| Summary::of(v).mean)
}

impl Findings {
    /// The findings of the fine-tuning records of a store directory (`dir` holds their
    /// prediction files; `None` skips the prediction statistics).
    pub fn from_records(records: &[&RunRecord], dir: Option<&Path>, settings: Settings) -> Self {
        let grouping = Grouping::of(records);
        let mut cells: Cells = BTreeMap::new();
        let mut sweeps: BTreeMap<String, String> = BTreeMap::new();
        let mut diverged: BTreeMap<(String, String), usize> = BTreeMap::new();
        for r in records {
            let (label, sweep) = grouping.label(r, None);
            if r.diverged {
                sweeps.insert(label.clone(), sweep);
                *diverged.entry((r.task.clone(), label)).or_default() += 1;
                continue;
            }
            let Some(p) = r.metrics.get("primary") else {
                continue;
            };
            sweeps.insert(label.clone(), sweep);
            cells
                .entry(r.task.clone())
                .or_default()
                .entry(label)
                .or_default()
                .push(Run {
                    record: r,
                    score: 100.0 * p,
                    majority: r.details["majority_test"].as_f64().map(|m| 100.0 * m),
                });
        }
        for methods in cells.values_mut() {
            // The majority-class score is the test split's: a record that predates it
            // (older stores) takes its task's from the others.
            let task_majority = methods.values().flatten().find_map(|r| r.majority);
            for runs in methods.values_mut() {
                runs.sort_by_key(|r| r.record.seed);
                for r in runs.iter_mut() {
                    r.majority = r.majority.or(task_majority);
                }
            }
        }
        let baseline = |label: &str| format!("{BASELINE}{}", sweeps[label]);
        let mut runs = run_summaries(&cells, &baseline);
        for ((task, label), k) in diverged {
            runs.entry(task)
                .or_default()
                .entry(label)
                .or_insert_with(RunSummary::none)
                .diverged = k;
        }
        let pooled = grouping
            .pooled
            .into_iter()
            .map(|(task, method, seed, run_ids)| PooledSeed {
                task,
                method,
                seed,
                run_ids,
            })
            .collect();
        let stability = stabilities(&cells, &baseline, &settings);
        let aggregate = aggregates(&cells, &baseline, &settings);
        let mut rejected_predictions = Vec::new();
        let predictions = dir.map_or_else(BTreeMap::new, |d| {
            prediction_stabilities(&cells, &baseline, d, &settings, &mut rejected_predictions)
        });
        Self {
            runs,
            stability,
            aggregate,
            predictions,
            rejected_predictions,
            pooled,
            settings,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// (method, task) → failed runs, for the cells with any.
    pub fn failed_counts(&self) -> BTreeMap<(String, String), usize> {
        self.runs
            .iter()
            .flat_map(|(task, m)| {
                m.iter()
                    .filter(|(_, r)| r.failed > 0)
                    .map(move |(method, r)| ((method.clone(), task.clone()), r.failed))
            })
            .collect()
    }
}

fn run_summaries(
    cells: &Cells,
    baseline: &(dyn Fn(&str) -> String + Sync),
) -> BTreeMap<String, BTreeMap<String, RunSummary>> {
    let mut out: BTreeMap<String, BTreeMap<String, RunSummary>> = BTreeMap::new();
    for (task, methods) in cells {
        for (method, runs) in methods {
            let scores = values(runs, Which::All, score);
            let ok = values(runs, Which::WithoutFailed, score);
            let failed = runs.len() - ok.len();
            let identical = *method != baseline(method)
                && methods.get(&baseline(method)).is_some_and(|base| {
                    base.len() == runs.len()
                        && base.iter().zip(runs).all(|(b, r)| {
                            b.record.seed == r.record.seed && b.fingerprint() == r.fingerprint()
                        })
                });
            out.entry(task.clone()).or_default().insert(
                method.clone(),
                RunSummary {
                    n: runs.len(),
                    mean: Summary::of(&scores).mean,
                    sd: sd_of(&scores),
                    failed,
                    failed_share: 100.0 * failed as f64 / runs.len().max(1) as f64,
                    majority: runs.iter().find_map(|r| r.majority),
                    mean_without_failed: mean_of(&ok),
                    sd_without_failed: sd_of(&ok),
                    identical_to_finetune: identical,
                    diverged: 0,
                },
            );
        }
    }
    out
}

fn stabilities(
    cells: &Cells,
    baseline: &(dyn Fn(&str) -> String + Sync),
    settings: &Settings,
) -> BTreeMap<String, BTreeMap<String, Stability>> {
    let power = PowerSettings {
        alpha: settings.power_alpha,
        power: settings.power_target,
        simulations: settings.power_simulations,
        ..PowerSettings::default()
    };
    let seeds_07 = seeds_needed(0.7, settings.max_seeds, &power);
    let seeds_05 = seeds_needed(0.5, settings.max_seeds, &power);
    let aso = AsoSettings {
        bootstrap: settings.aso_bootstrap,
        ..AsoSettings::default()
    };
    // Each comparison is computed on its own (own seeds), so in parallel: the same
    // numbers, in the same order, on any thread count.
    let mut items = Vec::new();
    for (task, methods) in cells {
        for (method, runs) in methods {
            let base_label = baseline(method);
            if *method == base_label {
                continue;
            }
            let Some(base) = methods.get(&base_label) else {
                continue;
            };
            items.push((task, method, runs, base));
        }
    }
    let counts: BTreeSet<(usize, usize)> = items
        .iter()
        .map(|(_, _, runs, base)| (base.len(), runs.len()))
        .filter(|&(b, v)| b > 1 && v > 1)
        .collect();
    let detectable: BTreeMap<(usize, usize), Option<f64>> = counts
        .into_par_iter()
        .map(|(b, v)| ((b, v), min_detectable_ratio(b, v, &power)))
        .collect();
    let computed: Vec<(&String, &String, Stability)> = items
        .par_iter()
        .map(|&(task, method, runs, base)| {
            let det = |v: usize, b: usize| detectable.get(&(b, v)).copied().flatten();
            let s = stability(runs, base, &aso, det, (seeds_07, seeds_05));
            (task, method, s)
        })
        .collect();
    let mut out: BTreeMap<String, BTreeMap<String, Stability>> = BTreeMap::new();
    let mut tested: Vec<(String, String, f64)> = Vec::new();
    for (task, method, s) in computed {
        if let Some(p) = s.bf_p {
            tested.push((task.clone(), method.clone(), p));
        }
        out.entry(task.clone())
            .or_default()
            .insert(method.clone(), s);
    }
    let adjusted = holm(&tested.iter().map(|t| t.2).collect::<Vec<_>>());
    for ((task, method, _), a) in tested.iter().zip(adjusted) {
        if let Some(s) = out.get_mut(task).and_then(|m| m.get_mut(method)) {
            s.bf_p_holm = Some(a);
        }
    }
    out
}

/// One method's runs against FineTune's on one task (`det`: the detectable SD ratio at
/// (method, FineTune) seed counts; `seeds`: seeds needed for ratios 0.7 and 0.5).
fn stability(
    runs: &[Run],
    base: &[Run],
    aso: &AsoSettings,
    det: impl Fn(usize, usize) -> Option<f64>,
    (seeds_07, seeds_05): (Option<usize>, Option<usize>),
) -> Stability {
    let (v, b) = (
        values(runs, Which::All, score),
        values(base, Which::All, score),
    );
    let ratio = |v: &[f64], b: &[f64]| match (sd_of(v), sd_of(b)) {
        (Some(s), Some(t)) if t > 0.0 => Some(s / t),
        _ => None,
    };
    let bf = |v: &[f64], b: &[f64]| {
        (v.len() > 1 && b.len() > 1)
            .then(|| brown_forsythe(&[v, b]).map(|(_, p)| p))
            .flatten()
    };
    let v_ok = values(runs, Which::WithoutFailed, score);
    let b_ok = values(base, Which::WithoutFailed, score);
    let ((eps, eps_ok), sd_ci) = rayon::join(
        || {
            rayon::join(
                || aso_eps_min(&v, &b, aso),
                || aso_eps_min(&v_ok, &b_ok, aso),
            )
        },
        || {
            (v.len() > 1).then(|| {
                let (lo, hi) = bootstrap_sd_interval(&v, 2000, 0.05, 0);
                [lo, hi]
            })
        },
    );
    Stability {
        n: v.len(),
        sd: sd_of(&v),
        sd_ci,
        finetune_sd: sd_of(&b),
        sd_ratio: ratio(&v, &b),
        bf_p: bf(&v, &b),
        bf_p_holm: None,
        sd_ratio_without_failed: ratio(&v_ok, &b_ok),
        bf_p_without_failed: bf(&v_ok, &b_ok),
        aso_eps_min: eps,
        aso_eps_min_without_failed: eps_ok,
        min_detectable_sd_ratio: det(v.len(), b.len()),
        seeds_for_ratio_0_7: seeds_07,
        seeds_for_ratio_0_5: seeds_05,
    }
}

/// A score on the normalised scale: 0 at the majority class, 100 at a perfect score.
fn normalised(r: &Run) -> f64 {
    match r.majority {
        Some(m) if m < 100.0 => 100.0 * (r.score - m) / (100.0 - m),
        _ => r.score,
    }
}

fn aggregates(
    cells: &Cells,
    baseline: &(dyn Fn(&str) -> String + Sync),
    settings: &Settings,
) -> BTreeMap<String, Aggregate> {
    let methods: Vec<&String> = cells
        .values()
        .flat_map(|m| m.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    methods
        .into_par_iter()
        .map(|method| (method.clone(), aggregate(cells, method, baseline, settings)))
        .collect()
}

/// One method's across-task aggregates.
fn aggregate(
    cells: &Cells,
    method: &String,
    baseline: &(dyn Fn(&str) -> String + Sync),
    settings: &Settings,
) -> Aggregate {
    let base_label = baseline(method);
    // Per task, the method's normalised scores, and those paired with FineTune's.
    let strata = |which| -> Vec<Vec<f64>> {
        cells
            .values()
            .filter_map(|m| m.get(method))
            .map(|runs| values(runs, which, normalised))
            .collect()
    };
    let pairs = |which| -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
        cells
            .values()
            .filter_map(|m| Some((m.get(method)?, m.get(&base_label)?)))
            .map(|(a, b)| (values(a, which, normalised), values(b, which, normalised)))
            .unzip()
    };
    let reps = settings.aggregate_bootstrap;
    let (all, paired) = (strata(Which::All), pairs(Which::All));
    let (all_ok, (x_ok, y_ok)) = (strata(Which::WithoutFailed), pairs(Which::WithoutFailed));
    let versus = (*method != base_label && !paired.0.is_empty()).then_some(&paired);
    let (iqm_ci, p_improvement_ci) = rayon::join(
        || stratified_interval_unordered(&all, iqm, reps, 0.95, 1).map(|(a, b)| [a, b]),
        || {
            versus
                .and_then(|(x, y)| {
                    paired_stratified_interval(x, y, probability_of_improvement, reps, 0.95, 2)
                })
                .map(|(a, b)| [100.0 * a, 100.0 * b])
        },
    );
    Aggregate {
        tasks: all.len(),
        iqm: iqm(&all),
        iqm_ci,
        p_improvement: versus
            .and_then(|(x, y)| probability_of_improvement(x, y))
            .map(|p| 100.0 * p),
        p_improvement_ci,
        iqm_without_failed: iqm(&all_ok),
        p_improvement_without_failed: versus
            .and_then(|_| probability_of_improvement(&x_ok, &y_ok))
            .map(|p| 100.0 * p),
    }
}

/// The predicted labels of each run of a cell found on disk and fitting its record, aligned
/// by example, with whether the run failed. A file that does not fit (another run, task,
/// split or data, damaged, oversized, or another length than most of the cell's files) goes
/// to `rejected`, named.
fn load_predictions(
    runs: &[Run],
    dir: &Path,
    rejected: &mut Vec<RejectedPredictions>,
) -> Vec<(Vec<u32>, bool)> {
    let reject = |r: &Run, reason: String| RejectedPredictions {
        run_id: r.record.run_id.clone(),
        file: stab_core::predictions::path(dir, &r.record.run_id)
            .display()
            .to_string(),
        reason,
    };
    let mut found: Vec<(&Run, Vec<u32>)> = Vec::new();
    for r in runs {
        match stab_core::predictions::read_for(dir, r.record) {
            Ok(Some(p)) => found.push((r, p.predicted)),
            Ok(None) => {}
            Err(why) => rejected.push(reject(r, why.reason)),
        }
    }
    // The cell's length: the one most files have (the first of equally common ones).
    let mut counts: Vec<(usize, usize)> = Vec::new();
    for (_, p) in &found {
        match counts.iter_mut().find(|(len, _)| *len == p.len()) {
            Some((_, n)) => *n += 1,
            None => counts.push((p.len(), 1)),
        }
    }
    let most = counts.iter().map(|(_, n)| *n).max().unwrap_or(0);
    let length = counts.iter().find(|(_, n)| *n == most).map(|(len, _)| *len);
    let mut out = Vec::new();
    for (r, p) in found {
        match length {
            Some(n) if n != p.len() => rejected.push(reject(
                r,
                format!(
                    "holds {} predictions where most of the cell's files hold {n}",
                    p.len()
                ),
            )),
            _ => out.push((p, r.failed())),
        }
    }
    out
}

/// Per example: the share of seed pairs that disagree, and the share of seeds agreeing
/// with the most common prediction.
fn per_example(preds: &[Vec<u32>]) -> (Vec<f64>, Vec<f64>) {
    let (k, n) = (preds.len(), preds.first().map_or(0, Vec::len));
    let pairs = (k * (k - 1) / 2).max(1) as f64;
    let mut disagree = Vec::with_capacity(n);
    let mut agree = Vec::with_capacity(n);
    let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
    for i in 0..n {
        counts.clear();
        for p in preds {
            *counts.entry(p[i]).or_default() += 1;
        }
        let same: usize = counts.values().map(|c| c * (c - 1) / 2).sum();
        disagree.push(1.0 - same as f64 / pairs);
        agree.push(*counts.values().max().unwrap_or(&0) as f64 / k as f64);
    }
    (disagree, agree)
}

fn prediction_stabilities(
    cells: &Cells,
    baseline: &(dyn Fn(&str) -> String + Sync),
    dir: &Path,
    settings: &Settings,
    rejected: &mut Vec<RejectedPredictions>,
) -> BTreeMap<String, BTreeMap<String, PredictionStability>> {
    let mut out: BTreeMap<String, BTreeMap<String, PredictionStability>> = BTreeMap::new();
    for (task, methods) in cells {
        let with_failed: BTreeMap<&String, Vec<(Vec<u32>, bool)>> = methods
            .iter()
            .map(|(m, runs)| (m, load_predictions(runs, dir, rejected)))
            .filter(|(_, p)| p.len() > 1)
            .collect();
        let loaded: BTreeMap<&String, Vec<Vec<u32>>> = with_failed
            .iter()
            .map(|(m, p)| (*m, p.iter().map(|(v, _)| v.clone()).collect()))
            .collect();
        for (method, preds) in &loaded {
            let ok: Vec<Vec<u32>> = with_failed[method]
                .iter()
                .filter(|(_, failed)| !failed)
                .map(|(v, _)| v.clone())
                .collect();
            let disagreement_without_failed =
                (ok.len() > 1).then(|| 100.0 * mean_of(&per_example(&ok).0).unwrap_or(0.0));
            let (disagree, agree) = per_example(preds);
            let n = disagree.len();
            let mut histogram = vec![0usize; 10];
            for a in &agree {
                histogram[((a * 10.0).floor() as usize).min(9)] += 1;
            }
            let unstable = disagree.iter().filter(|d| **d > 0.0).count();
            let base_label = baseline(method);
            let versus = loaded
                .get(&base_label)
                .filter(|b| **method != base_label && b[0].len() == n)
                .map(|b| {
                    let (base, _) = per_example(b);
                    let diff: Vec<f64> = disagree.iter().zip(&base).map(|(a, b)| a - b).collect();
                    paired_mean_interval(&diff, settings.prediction_bootstrap)
                });
            out.entry(task.clone()).or_default().insert(
                (*method).clone(),
                PredictionStability {
                    runs: preds.len(),
                    cell_runs: methods[*method].len(),
                    examples: n,
                    disagreement: 100.0 * mean_of(&disagree).unwrap_or(0.0),
                    unstable_share: 100.0 * unstable as f64 / n.max(1) as f64,
                    agreement_histogram: histogram,
                    disagreement_vs_finetune_ci: versus.flatten(),
                    disagreement_without_failed,
                },
            );
        }
    }
    out
}

/// 95% percentile-bootstrap interval ×100 of the mean of `diff` (resampling examples).
fn paired_mean_interval(diff: &[f64], reps: usize) -> Option<[f64; 2]> {
    let strata = [diff.to_vec()];
    stratified_interval(&strata, |s| mean_of(&s[0]), reps, 0.95, 3)
        .map(|(a, b)| [100.0 * a, 100.0 * b])
}

/// Probabilities and shares are percentages inside the report (its tables print them so)
/// and fractions in [0, 1] in its JSON, as rliable gives them (docs/design.md §5).
mod fraction {
    use serde::Serializer;

    pub fn plain<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(v / 100.0)
    }

    pub fn option<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_some(&(v / 100.0)),
            None => s.serialize_none(),
        }
    }

    pub fn interval<S: Serializer>(v: &Option<[f64; 2]>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some([a, b]) => s.serialize_some(&[a / 100.0, b / 100.0]),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stab_core::RecipeKind;
    use stab_core::predictions::{FORMAT, RunPredictions};

    fn rec(method: &str, seed: u64, primary: f64) -> RunRecord {
        RunRecord {
            run_id: format!("cb-{method}-s{seed}"),
            recipe: "r".into(),
            kind: RecipeKind::Finetune,
            task: "cb".into(),
            method: method.into(),
            method_params: Default::default(),
            seed,
            mode: None,
            sweep: Default::default(),
            metrics: [("primary".to_string(), primary)].into(),
            dev_best: None,
            best_step: None,
            steps: 1,
            wall_s: 0.0,
            stab_version: "t".into(),
            threads: 1,
            synthetic: None,
            diverged: false,
            seeds: None,
            split: None,
            inputs: None,
            details: serde_json::json!({"majority_test": 0.4, "dev_curve": [[1, primary]]}),
            sequential: None,
            tune: None,
        }
    }

    /// Probabilities and shares are fractions in the JSON (rliable's unit), percentages in
    /// the tables; scores stay ×100.
    #[test]
    fn json_gives_probabilities_as_fractions_and_scores_times_100() {
        let records: Vec<RunRecord> = [(0, 0.5), (1, 0.6), (2, 0.55)]
            .into_iter()
            .flat_map(|(seed, p)| [rec("finetune", seed, p), rec("better", seed, p + 0.3)])
            .collect();
        let refs: Vec<&RunRecord> = records.iter().collect();
        let f = Findings::from_records(&refs, None, Settings::default());
        assert_eq!(f.aggregate["better"].p_improvement, Some(100.0));
        let json = serde_json::to_value(&f).unwrap();
        assert_eq!(json["aggregate"]["better"]["p_improvement"], 1.0);
        assert_eq!(
            json["runs"]["cb"]["better"]["mean"],
            f.runs["cb"]["better"].mean
        );
        assert!(f.runs["cb"]["better"].mean > 80.0);
    }

    #[test]
    fn findings_count_failures_mark_identical_runs_and_read_predictions() {
        let dir = tempfile::tempdir().unwrap();
        let mut records = Vec::new();
        // FineTune: one run at the majority score (failed); "same" equals it seed by seed;
        // "steady" never fails.
        for (seed, p) in [(0, 0.4), (1, 0.7), (2, 0.8), (3, 0.75)] {
            records.push(rec("finetune", seed, p));
            records.push(rec("same", seed, p));
            records.push(rec("steady", seed, 0.7 + 0.01 * seed as f64));
        }
        // Predictions on 4 examples: FineTune's seeds disagree on examples 2 and 3.
        let preds = |method: &str, seed: u64| -> Vec<u32> {
            match (method, seed) {
                ("steady", _) => vec![0, 1, 1, 0],
                (_, s) if s % 2 == 0 => vec![0, 1, 1, 0],
                _ => vec![0, 1, 0, 1],
            }
        };
        for r in &records {
            stab_core::predictions::write(
                dir.path(),
                &RunPredictions {
                    format: FORMAT.into(),
                    run_id: r.run_id.clone(),
                    task: "cb".into(),
                    split: "s".into(),
                    data: "d".into(),
                    predicted: preds(&r.method, r.seed),
                },
            )
            .unwrap();
        }
        // A record that predates the majority score is judged by its task's.
        records[1].details = serde_json::json!({"dev_curve": [[1, 0.4]]});
        let refs: Vec<&RunRecord> = records.iter().collect();
        let f = Findings::from_records(&refs, Some(dir.path()), Settings::default());
        assert_eq!(f.runs["cb"]["same"].failed, 1);
        let ft = &f.runs["cb"]["finetune"];
        assert_eq!((ft.n, ft.failed), (4, 1));
        assert_eq!(ft.majority, Some(40.0));
        assert!((ft.mean_without_failed.unwrap() - 75.0).abs() < 1e-9);
        assert!(f.runs["cb"]["same"].identical_to_finetune);
        assert!(!f.runs["cb"]["steady"].identical_to_finetune);
        let st = &f.stability["cb"]["steady"];
        assert!(st.sd_ratio.unwrap() < 0.2 && st.bf_p_holm.is_some());
        // Seeds 0, 2 vs 1, 3: 4 of 6 pairs disagree on examples 2 and 3 → 2/3 each.
        let p = &f.predictions["cb"]["finetune"];
        assert!(
            (p.disagreement - 100.0 * (2.0 / 3.0) / 2.0).abs() < 1e-9,
            "{p:?}"
        );
        assert_eq!(p.unstable_share, 50.0);
        assert_eq!(p.agreement_histogram[5], 2);
        assert_eq!(p.agreement_histogram[9], 2);
        let steady = &f.predictions["cb"]["steady"];
        assert_eq!(steady.disagreement, 0.0);
        let [lo, hi] = steady.disagreement_vs_finetune_ci.unwrap();
        assert!(lo <= hi && hi <= 0.0, "{lo} {hi}");
        // The JSON contract keys.
        let json = serde_json::to_value(&f).unwrap();
        for key in ["n", "mean", "sd", "failed"] {
            assert!(json["runs"]["cb"]["steady"].get(key).is_some(), "{key}");
        }
        for key in [
            "sd_ratio",
            "bf_p",
            "bf_p_holm",
            "aso_eps_min",
            "min_detectable_sd_ratio",
            "seeds_for_ratio_0_7",
        ] {
            assert!(
                json["stability"]["cb"]["steady"].get(key).is_some(),
                "{key}"
            );
        }
        for key in ["iqm", "iqm_ci", "p_improvement", "p_improvement_ci"] {
            assert!(json["aggregate"]["steady"].get(key).is_some(), "{key}");
        }
        for key in ["disagreement", "unstable_share"] {
            assert!(
                json["predictions"]["cb"]["steady"].get(key).is_some(),
                "{key}"
            );
        }
        assert!(json["aggregate"]["finetune"]["p_improvement"].is_null());
        // The CSV columns read the same values: FineTune has no ASO against itself.
        let fields = super::super::conclusions::csv_fields(&f, "finetune", "cb");
        assert_eq!(
            fields,
            format!("1,,,{},{}", p.disagreement, p.unstable_share)
        );
    }

    #[test]
    fn per_example_disagreement_and_agreement() {
        // Three seeds, three examples: all agree; two of three agree; all differ.
        let preds = vec![vec![0, 1, 0], vec![0, 1, 1], vec![0, 0, 2]];
        let (d, a) = per_example(&preds);
        for (got, want) in d.iter().zip([0.0, 2.0 / 3.0, 1.0]) {
            assert!((got - want).abs() < 1e-12, "{d:?}");
        }
        assert_eq!(a, vec![1.0, 2.0 / 3.0, 1.0 / 3.0]);
    }
}
