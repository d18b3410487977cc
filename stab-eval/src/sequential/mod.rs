//! Sequential seed allocation: after each round, is an arm's score distribution *lower*,
//! *higher*, *no practically different* or still *undecided* against the baseline's?
//! (docs/methods.md §13.6.)
//!
//! * Looks at `n_k = min, min + step, …, max` seeds per arm ([`SequentialDesign::looks`]).
//! * Error spending: the probability of a wrong *lower*/*higher* decision, `alpha`, is spent
//!   over the looks by a spending function `f` ([`Spending`](stab_core::sequential::Spending): `t^1.5` by default, or
//!   Lan & DeMets' Pocock type), `t = n_k / max`, and shared over the grid's `m`
//!   comparisons (arms × questions) by Holm's rule: look `k` tests a comparison at
//!   `α · (f(t_k) − f(t_{k−1})) / m'`, `m'` the comparisons not yet rejected, and a
//!   rejection re-tests the others' looks so far at the larger level (Maurer & Bretz
//!   2013). Each intersection of hypotheses is tested by a weighted union bound over
//!   comparisons and looks, so the grid's error rate is at most `α` whatever the
//!   dependence between looks and arms, provided each look's test holds its level.
//! * The per-look tests: Brown–Forsythe's statistic for the SD, its p-value by permutation
//!   of the absolute deviations (so ties and the atoms of failed runs are what the
//!   reference distribution is made of, not a normal approximation); Welch's t for the mean.
//! * Futility (*no practical difference*): two one-sided tests (TOST) that the SD ratio —
//!   measured as the ratio of mean absolute deviations from the median — lies within
//!   (`smallest_ratio`, 1/`smallest_ratio`), or the mean difference within
//!   ±`smallest_difference`, each at the look's share of `beta` (the same spending
//!   function). Stopping for futility only removes chances to reject, so it never raises
//!   the error rate of *lower*/*higher*.

pub mod replay;
pub mod simulate;

use serde::Serialize;
use stab_core::sequential::{Question, SequentialDesign};
use statrs::distribution::{ContinuousCDF, Normal, StudentsT};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::variance::{median, median_in_place};

/// What the rule says of one arm on one question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Lower than the baseline's (SD: more stable; mean: a worse score).
    Lower,
    /// Higher than the baseline's.
    Higher,
    /// Within the smallest practical difference of the baseline's.
    NoDifference,
    /// Not decided (yet, or at `max`).
    Undecided,
}

impl Decision {
    pub fn name(self) -> &'static str {
        match self {
            Decision::Lower => "lower",
            Decision::Higher => "higher",
            Decision::NoDifference => "no_difference",
            Decision::Undecided => "undecided",
        }
    }

    pub fn is_decided(self) -> bool {
        self != Decision::Undecided
    }
}

/// The score a sequential grid compares: the test primary metric ×100, as the report's
/// tables show it; `None` for a diverged run (no score) or a non-finite metric.
pub fn score(record: &stab_core::RunRecord) -> Option<f64> {
    if record.diverged {
        return None;
    }
    record
        .metrics
        .get("primary")
        .map(|p| 100.0 * p)
        .filter(|s| s.is_finite())
}

/// One arm on one question, replayed over its seeds in seed order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub question: &'static str,
    pub decision: Decision,
    /// Seeds per arm at the deciding look (or at the last look made).
    pub n: usize,
    /// Looks made.
    pub rounds: usize,
    /// Seeds needed for the next look when undecided and `max` is not reached; `None`
    /// when decided or at `max`.
    pub next_n: Option<usize>,
    /// The p-value and the level it was compared with at the last look.
    pub p: f64,
    pub level: f64,
    /// The point estimate at the last look: the SD ratio (mean absolute deviations) or the
    /// mean difference (arm − baseline).
    pub estimate: f64,
}

/// One comparison of a grid: an arm's scores against its baseline's, in seed order.
#[derive(Debug, Clone, Copy)]
pub struct Comparison<'s> {
    pub question: Question,
    pub arm: &'s [f64],
    pub base: &'s [f64],
}

/// One look's test of one comparison.
#[derive(Debug, Clone, Copy)]
struct Look {
    look: usize,
    p: f64,
    /// The direction the estimate points to.
    direction: Decision,
    estimate: f64,
    futile: bool,
}

/// The rule of one grid: its design's looks and spending.
#[derive(Debug, Clone)]
pub struct Rule<'d> {
    pub design: &'d SequentialDesign,
    looks: Vec<u64>,
}

impl<'d> Rule<'d> {
    pub fn new(design: &'d SequentialDesign) -> Self {
        Self {
            design,
            looks: design.looks(),
        }
    }

    /// Seeds per arm at each look.
    pub fn looks(&self) -> &[u64] {
        &self.looks
    }

    /// The share of an error rate that look `look` spends: `f(t_k) − f(t_{k−1})`.
    pub fn increment(&self, look: usize) -> f64 {
        let f = |k: usize| {
            self.design
                .spending
                .spent(self.looks[k] as f64 / self.design.max as f64)
        };
        f(look) - if look == 0 { 0.0 } else { f(look - 1) }
    }

    /// The two-sided level of look `look`'s *lower*/*higher* test of a comparison that
    /// holds the share `weight` of alpha.
    pub fn level(&self, look: usize, weight: f64) -> f64 {
        weight * self.design.alpha * self.increment(look)
    }

    /// The one-sided level of each of look `look`'s two futility tests.
    pub fn futility_level(&self, look: usize) -> f64 {
        self.design.beta * self.increment(look)
    }

    /// Replay one comparison alone (the whole of alpha is its own).
    pub fn replay(&self, question: Question, arm: &[f64], base: &[f64]) -> Outcome {
        self.replay_grid(&[Comparison {
            question,
            arm,
            base,
        }])
        .remove(0)
    }

    /// Replay a grid's comparisons together, look after look while each has the seeds,
    /// until each is decided or at `max`.
    ///
    /// Alpha is shared by Holm's rule in its group-sequential form (Maurer & Bretz 2013):
    /// each of the `m` comparisons not yet decided *lower*/*higher* holds `1/m'` of it,
    /// `m'` the number not rejected; a rejection passes its share on, and every open
    /// comparison's looks so far are tested again at the larger level.
    pub fn replay_grid(&self, comparisons: &[Comparison<'_>]) -> Vec<Outcome> {
        let mut out: Vec<Outcome> = comparisons
            .iter()
            .map(|c| Outcome {
                question: c.question.name(),
                decision: Decision::Undecided,
                n: 0,
                rounds: 0,
                next_n: Some(self.looks[0] as usize),
                p: f64::NAN,
                level: f64::NAN,
                estimate: f64::NAN,
            })
            .collect();
        let mut history: Vec<Vec<Look>> = vec![Vec::new(); comparisons.len()];
        let mut waiting = vec![false; comparisons.len()];
        let mut rejected = 0usize;
        let m = comparisons.len();
        for (look, &n) in self.looks.iter().enumerate() {
            let n = n as usize;
            let (least, most) = (self.level(look, 1.0 / m as f64), self.level(look, 1.0));
            for (i, c) in comparisons.iter().enumerate() {
                if waiting[i] || out[i].decision.is_decided() {
                    continue;
                }
                if c.arm.len() < n || c.base.len() < n {
                    waiting[i] = true;
                    out[i].next_n = Some(n);
                    continue;
                }
                let t = self.test(c.question, look, &c.arm[..n], &c.base[..n], least, most);
                out[i] = Outcome {
                    n,
                    rounds: look + 1,
                    next_n: (look + 1 < self.looks.len()).then(|| self.looks[look + 1] as usize),
                    p: t.p,
                    estimate: t.estimate,
                    ..out[i].clone()
                };
                history[i].push(t);
            }
            // Holm: reject what crosses its level, pass the share on, test again.
            while let Some((i, t, level)) = self.crossing(&out, &history, m - rejected) {
                out[i].decision = t.direction;
                out[i].next_n = None;
                out[i].level = level;
                rejected += 1;
            }
            let weight = 1.0 / (m - rejected).max(1) as f64;
            for (o, h) in out.iter_mut().zip(&history) {
                if o.decision.is_decided() || h.last().is_none_or(|t| t.look != look) {
                    continue;
                }
                o.level = self.level(look, weight);
                if h.last().is_some_and(|t| t.futile) {
                    o.decision = Decision::NoDifference;
                    o.next_n = None;
                }
            }
        }
        out
    }

    /// The first open comparison with a look whose p-value is below its level when `open`
    /// comparisons share alpha: `(index, that look, the level)`.
    fn crossing(
        &self,
        out: &[Outcome],
        history: &[Vec<Look>],
        open: usize,
    ) -> Option<(usize, Look, f64)> {
        let weight = 1.0 / open.max(1) as f64;
        out.iter().zip(history).enumerate().find_map(|(i, (o, h))| {
            if o.decision.is_decided() {
                return None;
            }
            h.iter()
                .map(|t| (t, self.level(t.look, weight)))
                .find(|(t, level)| t.p < *level)
                .map(|(t, level)| (i, *t, level))
        })
    }

    /// Look `look`'s test of one question on the first `n_k` scores of each side; the
    /// p-value is resolved for any level in `least..=most`.
    fn test(
        &self,
        question: Question,
        look: usize,
        arm: &[f64],
        base: &[f64],
        least: f64,
        most: f64,
    ) -> Look {
        let (p, estimate, lower, futile) = match question {
            Question::Mean => self.test_mean(look, arm, base),
            _ => self.test_sd(look, arm, base, least, most),
        };
        Look {
            look,
            p,
            direction: if lower {
                Decision::Lower
            } else {
                Decision::Higher
            },
            estimate,
            futile,
        }
    }

    /// Brown–Forsythe by permutation, and TOST on ln(SD ratio) for futility:
    /// `(p, ratio, lower, futile)`.
    fn test_sd(
        &self,
        look: usize,
        arm: &[f64],
        base: &[f64],
        least: f64,
        most: f64,
    ) -> (f64, f64, bool, bool) {
        let (da, db) = (abs_deviations(arm), abs_deviations(base));
        let (ma, mb) = (mean(&da), mean(&db));
        let ratio = ma / mb;
        let p = permutation_bf(arm, base, least, most).unwrap_or(f64::NAN);
        // TOST on ln(ratio): the delta method's standard error of ln(d̄_a / d̄_b).
        let mut futile = false;
        if ma > 0.0 && mb > 0.0 {
            let se = (var(&da) / (da.len() as f64 * ma * ma)
                + var(&db) / (db.len() as f64 * mb * mb))
                .sqrt();
            let z = Normal::standard().inverse_cdf(1.0 - self.futility_level(look));
            let bound = -self.design.smallest_ratio.ln();
            let est = ratio.ln();
            futile = se.is_finite() && est - z * se > -bound && est + z * se < bound;
        }
        (p, ratio, ma < mb, futile)
    }

    /// Welch's t, and TOST on the mean difference for futility: `(p, diff, lower, futile)`.
    fn test_mean(&self, look: usize, arm: &[f64], base: &[f64]) -> (f64, f64, bool, bool) {
        let diff = mean(arm) - mean(base);
        let Some((se, df)) = welch(arm, base) else {
            return (f64::NAN, diff, diff < 0.0, false);
        };
        let Ok(t) = StudentsT::new(0.0, 1.0, df) else {
            return (f64::NAN, diff, diff < 0.0, false);
        };
        let p = 2.0 * t.sf((diff / se).abs());
        let futile = self.design.smallest_difference.is_some_and(|delta| {
            let q = t.inverse_cdf(1.0 - self.futility_level(look));
            diff - q * se > -delta && diff + q * se < delta
        });
        (p, diff, diff < 0.0, futile)
    }
}

/// Brown–Forsythe's statistic for two groups of absolute deviations (`z`):
/// `W = (N − 2) · Σ n_i (z̄_i − z̄)² / Σ_i Σ_j (z_ij − z̄_i)²`, from the groups' sums
/// and sums of squares.
fn bf_statistic(n: [f64; 2], sum: [f64; 2], sq: [f64; 2]) -> f64 {
    let total = n[0] + n[1];
    let grand = (sum[0] + sum[1]) / total;
    let m = [sum[0] / n[0], sum[1] / n[1]];
    let between = n[0] * (m[0] - grand).powi(2) + n[1] * (m[1] - grand).powi(2);
    let within = (sq[0] - n[0] * m[0] * m[0]) + (sq[1] - n[1] * m[1] * m[1]);
    (total - 2.0) * between / within.max(f64::MIN_POSITIVE)
}

/// The permutation p-value of Brown–Forsythe's statistic for two groups: the larger of
/// two permutation p-values, so a look rejects only when both do.
///
/// * Raw scores relabelled at random: exact when both groups come from one distribution,
///   whatever its shape (ties and the atoms of failed runs included), but it also reacts
///   to a difference in location alone.
/// * Residuals from each group's median relabelled at random: blind to a difference in
///   location, exact only up to the estimation of the medians.
///
/// Every relabelled group is centred on its own median again before the statistic is
/// recomputed, as the observed groups were. Each p-value is drawn by the sequential Monte
/// Carlo of Besag & Clifford (1991): stop after 20 relabellings at least as extreme as the
/// observed (p = 20/L), else after `⌈20/least⌉` draws (p = (g + 1)/(draws + 1)); both are
/// valid p-values, resolved down to `least`, the smallest level the p-value may be
/// compared with. The raw relabelling is drawn only when the residuals' p-value is below
/// `most`, the largest. The draws are seeded by the scores, so a replay gives the same p.
/// `None` without spread.
pub fn permutation_bf(a: &[f64], b: &[f64], least: f64, most: f64) -> Option<f64> {
    let (na, nb) = (a.len(), b.len());
    if na < 2 || nb < 2 || a.iter().chain(b).any(|v| !v.is_finite()) {
        return None;
    }
    let (ma, mb) = (median(a), median(b));
    let residuals: Vec<f64> = a
        .iter()
        .map(|v| v - ma)
        .chain(b.iter().map(|v| v - mb))
        .collect();
    let mut work = vec![0.0; na.max(nb)];
    let (within, observed) = recentred_bf(&residuals[..na], &residuals[na..], &mut work);
    let scale: f64 = residuals.iter().map(|v| v * v).sum();
    if within <= 1e-12 * scale || within.is_nan() || !observed.is_finite() {
        return None;
    }
    let bytes: Vec<u8> = a.iter().chain(b).flat_map(|v| v.to_le_bytes()).collect();
    let seed = stab_core::stable_hash(&bytes) ^ na as u64;
    let p_residuals = permutation_p(&residuals, na, observed, least, seed, &mut work);
    if p_residuals >= most {
        return Some(p_residuals);
    }
    let raw: Vec<f64> = a.iter().chain(b).copied().collect();
    let p_raw = permutation_p(&raw, na, observed, least, seed ^ 1, &mut work);
    Some(p_raw.max(p_residuals))
}

/// Besag–Clifford sequential Monte Carlo p-value of [`recentred_bf`] over random
/// relabellings of `pooled` into groups of `na` and the rest.
fn permutation_p(
    pooled: &[f64],
    na: usize,
    observed: f64,
    level: f64,
    seed: u64,
    work: &mut [f64],
) -> f64 {
    const EXCEEDANCES: usize = 20;
    let observed = observed * (1.0 - 1e-12);
    let most = ((EXCEEDANCES as f64 / level).ceil() as usize).clamp(EXCEEDANCES, 10_000_000);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut perm = pooled.to_vec();
    let mut hits = 0usize;
    for draw in 1..=most {
        for i in 0..na {
            let j = rng.random_range(i..perm.len());
            perm.swap(i, j);
        }
        let (_, w) = recentred_bf(&perm[..na], &perm[na..], work);
        if w >= observed {
            hits += 1;
            if hits == EXCEEDANCES {
                return hits as f64 / draw as f64;
            }
        }
    }
    (hits + 1) as f64 / (most + 1) as f64
}

/// Brown–Forsythe's within-group sum of squares and statistic of two groups, each
/// centred on its own median (`work`: scratch of the larger group's length).
fn recentred_bf(ga: &[f64], gb: &[f64], work: &mut [f64]) -> (f64, f64) {
    let mut sums = [[0.0f64; 2]; 2];
    for (g, group) in [ga, gb].into_iter().enumerate() {
        let w = &mut work[..group.len()];
        w.copy_from_slice(group);
        let m = median_in_place(w);
        for v in w.iter() {
            let z = (v - m).abs();
            sums[g][0] += z;
            sums[g][1] += z * z;
        }
    }
    let n = [ga.len() as f64, gb.len() as f64];
    let within =
        (sums[0][1] - sums[0][0].powi(2) / n[0]) + (sums[1][1] - sums[1][0].powi(2) / n[1]);
    (
        within,
        bf_statistic(n, [sums[0][0], sums[1][0]], [sums[0][1], sums[1][1]]),
    )
}

fn abs_deviations(v: &[f64]) -> Vec<f64> {
    let m = median(v);
    v.iter().map(|x| (x - m).abs()).collect()
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Sample variance (ddof = 1).
fn var(v: &[f64]) -> f64 {
    let m = mean(v);
    v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() as f64 - 1.0)
}

/// Welch's standard error of the mean difference and its Welch–Satterthwaite degrees of
/// freedom; `None` without spread or with fewer than two scores a side.
fn welch(a: &[f64], b: &[f64]) -> Option<(f64, f64)> {
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let (va, vb) = (var(a) / a.len() as f64, var(b) / b.len() as f64);
    let se2 = va + vb;
    if !(se2 > 0.0 && se2.is_finite()) {
        return None;
    }
    let df = se2 * se2 / (va * va / (a.len() as f64 - 1.0) + vb * vb / (b.len() as f64 - 1.0));
    Some((se2.sqrt(), df))
}

#[cfg(test)]
mod tests {
    use super::*;
    use stab_core::sequential::Spending;

    fn design() -> SequentialDesign {
        SequentialDesign::default()
    }

    #[test]
    fn spending_adds_up_to_alpha_over_the_looks() {
        for spending in [Spending::Pocock, Spending::Power(1.5), Spending::Power(1.0)] {
            let d = SequentialDesign {
                spending,
                ..design()
            };
            let rule = Rule::new(&d);
            let total: f64 = (0..rule.looks().len())
                .map(|k| rule.level(k, 1.0 / 3.0))
                .sum();
            assert!((total * 3.0 - 0.05).abs() < 1e-12, "{spending:?}: {total}");
        }
        // Pocock-type: the first look (t = 5/60) spends ln(1 + (e−1)/12) ≈ 13.4% of alpha;
        // t^1.5 spends (1/12)^1.5 ≈ 2.4%.
        let pocock = SequentialDesign {
            spending: Spending::Pocock,
            ..design()
        };
        let first = Rule::new(&pocock).level(0, 1.0) / 0.05;
        assert!((first - (1.0 + (std::f64::consts::E - 1.0) / 12.0).ln()).abs() < 1e-12);
        let first = Rule::new(&design()).level(0, 1.0) / 0.05;
        assert!((first - (1.0f64 / 12.0).powf(1.5)).abs() < 1e-12);
    }

    /// Holm's rule: a comparison whose p-value lies between `α/2` and `α` is rejected when
    /// the other of two is (its share passes on), and not when the other is not.
    #[test]
    fn a_rejection_passes_its_alpha_on() {
        let d = SequentialDesign {
            min: 10,
            max: 10,
            ..design()
        };
        let rule = Rule::new(&d);
        let base: Vec<f64> = (0..10)
            .map(|i| Normal::standard().inverse_cdf((i as f64 + 0.5) / 10.0))
            .collect();
        let shifted = |by: f64| base.iter().rev().map(|x| x + by).collect::<Vec<_>>();
        let p_of = |arm: &[f64]| rule.replay(Question::Mean, arm, &base).p;
        // Bisect the shift whose Welch p-value is 0.035.
        let (mut lo, mut hi) = (0.0, 3.0);
        for _ in 0..60 {
            let mid = 0.5 * (lo + hi);
            if p_of(&shifted(mid)) > 0.035 {
                lo = mid
            } else {
                hi = mid
            }
        }
        let borderline = shifted(hi);
        let (strong, none) = (shifted(5.0), shifted(0.1));
        let grid = |other: &[f64]| {
            rule.replay_grid(&[
                Comparison {
                    question: Question::Mean,
                    arm: other,
                    base: &base,
                },
                Comparison {
                    question: Question::Mean,
                    arm: &borderline,
                    base: &base,
                },
            ])
        };
        let both = grid(&strong);
        assert_eq!(both[0].decision, Decision::Higher, "{both:?}");
        assert_eq!(both[1].decision, Decision::Higher, "{both:?}");
        assert!((both[1].level - 0.05).abs() < 1e-12, "{both:?}");
        let alone = grid(&none);
        assert_eq!(alone[1].decision, Decision::Undecided, "{alone:?}");
        assert!((alone[1].level - 0.025).abs() < 1e-12, "{alone:?}");
    }

    #[test]
    fn a_much_smaller_spread_is_lower_early_and_equal_spreads_stop_for_futility_or_run_out() {
        let d = SequentialDesign {
            smallest_ratio: 0.5,
            ..design()
        };
        let rule = Rule::new(&d);
        // Deterministic quantile-spaced "normal" scores: the arm's spread is a tenth.
        let z: Vec<f64> = (0..60)
            .map(|i| Normal::standard().inverse_cdf((((i * 37) % 60) as f64 + 0.5) / 60.0))
            .collect();
        let base: Vec<f64> = z.iter().map(|x| 70.0 + 4.0 * x).collect();
        let arm: Vec<f64> = z.iter().rev().map(|x| 70.0 + 0.4 * x).collect();
        let o = rule.replay(Question::Sd, &arm, &base);
        assert_eq!(o.decision, Decision::Lower, "{o:?}");
        assert!(o.n <= 15, "{o:?}");
        let same: Vec<f64> = z.iter().rev().map(|x| 70.0 + 4.0 * x).collect();
        let o = rule.replay(Question::Sd, &same, &base);
        assert_eq!(o.decision, Decision::NoDifference, "{o:?}");
        // Ten seeds of a fixed store: undecided, and the next look needs 15.
        let o = Rule::new(&design()).replay(Question::Sd, &same[..10], &base[..10]);
        assert_eq!(
            (o.decision, o.n, o.next_n),
            (Decision::Undecided, 10, Some(15))
        );
    }

    #[test]
    fn welch_matches_scipy() {
        // scipy.stats.ttest_ind([1,2,3,4,9],[2,2.5,2.4,2.6], equal_var=False):
        // statistic 1.0185611113852702, pvalue 0.3650687709862514.
        let (a, b) = ([1.0, 2.0, 3.0, 4.0, 9.0], [2.0, 2.5, 2.4, 2.6]);
        let (se, df) = welch(&a, &b).unwrap();
        let t = (mean(&a) - mean(&b)) / se;
        assert!((t - 1.018_561_111_385_270_2).abs() < 1e-12, "{t}");
        let p = 2.0 * StudentsT::new(0.0, 1.0, df).unwrap().sf(t);
        assert!((p - 0.365_068_770_986_251_4).abs() < 1e-9, "{p}");
    }
}
