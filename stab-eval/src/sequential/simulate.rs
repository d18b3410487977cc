//! The rule's error rate, power and cost by simulation (docs/methods.md §13.6): grids of
//! one baseline and `arms` arms whose scores are drawn i.i.d., the arms' spread scaled by
//! `ratio` around the distribution's median. A sequential grid's decisions depend only on
//! each arm's scores in seed order, so a simulated grid draws `max` scores per arm and
//! replays them; the baseline runs as long as its longest arm.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, StandardNormal};
use rayon::prelude::*;
use serde::Serialize;
use stab_core::sequential::{Question, SequentialDesign};

use super::{Comparison, Decision, Rule};
use crate::variance::{brown_forsythe, median};

/// Where simulated scores come from.
#[derive(Debug, Clone)]
pub enum Scores {
    /// Standard normal.
    Normal,
    /// Log-normal with σ = 1 (skewness ≈ 6).
    Skewed,
    /// Drawn with replacement from observed scores (a real store's arm).
    Resampled(Vec<f64>),
}

impl Scores {
    /// The scores (primary ×100) of one method's runs in a results directory, diverged
    /// runs left out (they have no score).
    pub fn from_store(dir: &std::path::Path, method: &str) -> stab_core::Result<Self> {
        let contents = stab_core::ResultsStore::read_dir(dir)?;
        let v: Vec<f64> = contents
            .latest()
            .into_iter()
            .filter(|r| r.method == method && !r.diverged)
            .filter_map(|r| r.metrics.get("primary").map(|p| 100.0 * p))
            .collect();
        if v.len() < 2 {
            return Err(stab_core::InputError::new(format!(
                "{} holds {} scored run(s) of `{method}`; resampling needs at least 2",
                dir.display(),
                v.len()
            ))
            .file(dir.display().to_string())
            .hint("name a results directory with a finished arm of that method")
            .into());
        }
        Ok(Scores::Resampled(v))
    }

    fn draw(&self, rng: &mut ChaCha8Rng) -> f64 {
        match self {
            Scores::Normal => StandardNormal.sample(rng),
            Scores::Skewed => LogNormal::new(0.0, 1.0).expect("valid").sample(rng),
            Scores::Resampled(v) => v[rng.random_range(0..v.len())],
        }
    }

    fn centre(&self) -> f64 {
        match self {
            Scores::Normal => 0.0,
            Scores::Skewed => 1.0,
            Scores::Resampled(v) => median(v),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Scores::Normal => "normal",
            Scores::Skewed => "skewed",
            Scores::Resampled(_) => "resampled",
        }
    }
}

/// What many simulated grids did.
#[derive(Debug, Clone, Serialize)]
pub struct SimSummary {
    pub grids: usize,
    pub arms: usize,
    pub ratio: f64,
    pub shift: f64,
    /// Share of grids with at least one *lower* or *higher* decision.
    pub any_decision: f64,
    /// Shares of arms decided lower / higher / no difference / undecided.
    pub lower: f64,
    pub higher: f64,
    pub no_difference: f64,
    pub undecided: f64,
    /// Mean seeds per (non-baseline) arm, and of the baseline.
    pub mean_arm_seeds: f64,
    pub mean_baseline_seeds: f64,
    /// Share of arms a fixed design at `max` seeds calls lower (Brown–Forsythe at
    /// alpha / arms, the same grid-wide error rate).
    pub fixed_lower: f64,
    /// The same with the rule's own test (Brown–Forsythe by permutation) at `alpha / arms`:
    /// the fixed design that holds its level on any scores.
    pub fixed_lower_permutation: f64,
}

/// What a simulated arm differs in from the baseline.
#[derive(Debug, Clone, Copy)]
pub struct ArmEffect {
    /// The arms' spread over the baseline's (around the median): 1 under the null.
    pub ratio: f64,
    /// Added to every score of the arms: a difference in location alone.
    pub shift: f64,
}

/// Simulate `grids` grids of `arms` arms on the SD question.
pub fn simulate(
    design: &SequentialDesign,
    scores: &Scores,
    arms: usize,
    effect: ArmEffect,
    grids: usize,
    seed: u64,
) -> SimSummary {
    let ArmEffect { ratio, shift } = effect;
    let rule = Rule::new(design);
    let max = design.max as usize;
    let centre = scores.centre();
    let fixed_level = design.alpha / arms as f64;
    // Per grid: the decisions, the seeds each arm used, and the arms the fixed design calls
    // lower with the F-test and with the permutation test.
    type Grid = (Vec<Decision>, Vec<usize>, (usize, usize));
    let per_grid: Vec<Grid> = (0..grids)
        .into_par_iter()
        .map(|g| {
            let mut rng =
                ChaCha8Rng::seed_from_u64(seed ^ (g as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let base: Vec<f64> = (0..max).map(|_| scores.draw(&mut rng)).collect();
            let arm_scores: Vec<Vec<f64>> = (0..arms)
                .map(|_| {
                    (0..max)
                        .map(|_| centre + ratio * (scores.draw(&mut rng) - centre) + shift)
                        .collect()
                })
                .collect();
            let comparisons: Vec<Comparison> = arm_scores
                .iter()
                .map(|arm| Comparison {
                    question: Question::Sd,
                    arm,
                    base: &base,
                })
                .collect();
            let outcomes = rule.replay_grid(&comparisons);
            let decisions = outcomes.iter().map(|o| o.decision).collect();
            let ns = outcomes.iter().map(|o| o.n).collect();
            let lower_sd = |arm: &[f64]| {
                crate::stats::Summary::of(arm).sd < crate::stats::Summary::of(&base).sd
            };
            let fixed = arm_scores
                .iter()
                .filter(|arm| {
                    lower_sd(arm)
                        && brown_forsythe(&[arm, &base]).is_some_and(|(_, p)| p < fixed_level)
                })
                .count();
            let fixed_permutation = arm_scores
                .iter()
                .filter(|arm| {
                    lower_sd(arm)
                        && super::permutation_bf(arm, &base, fixed_level, fixed_level)
                            .is_some_and(|p| p < fixed_level)
                })
                .count();
            (decisions, ns, (fixed, fixed_permutation))
        })
        .collect();
    let total_arms = (grids * arms).max(1) as f64;
    let share = |d: Decision| {
        per_grid
            .iter()
            .flat_map(|(ds, _, _)| ds)
            .filter(|&&x| x == d)
            .count() as f64
            / total_arms
    };
    SimSummary {
        grids,
        arms,
        ratio,
        shift,
        any_decision: per_grid
            .iter()
            .filter(|(ds, _, _)| {
                ds.iter()
                    .any(|d| matches!(d, Decision::Lower | Decision::Higher))
            })
            .count() as f64
            / grids.max(1) as f64,
        lower: share(Decision::Lower),
        higher: share(Decision::Higher),
        no_difference: share(Decision::NoDifference),
        undecided: share(Decision::Undecided),
        mean_arm_seeds: per_grid.iter().flat_map(|(_, ns, _)| ns).sum::<usize>() as f64
            / total_arms,
        mean_baseline_seeds: per_grid
            .iter()
            .map(|(_, ns, _)| ns.iter().copied().max().unwrap_or(0))
            .sum::<usize>() as f64
            / grids.max(1) as f64,
        fixed_lower: per_grid.iter().map(|(_, _, f)| f.0).sum::<usize>() as f64 / total_arms,
        fixed_lower_permutation: per_grid.iter().map(|(_, _, f)| f.1).sum::<usize>() as f64
            / total_arms,
    }
}
