//! Is one method really more stable than another? The statistics behind a "lower sd"
//! claim over seeds:
//!
//! * [`brown_forsythe`] — the Brown–Forsythe test (Levene's test centred on the median) of
//!   equal variances: z_ij = |y_ij − median_i|, W = (N − k)/(k − 1) · Σ n_i (z̄_i − z̄)² /
//!   Σ_i Σ_j (z_ij − z̄_i)², p from the F(k − 1, N − k) distribution. Robust to the
//!   non-normal, often bimodal score distributions of failed fine-tuning runs.
//! * [`bootstrap_sd_interval`] — a percentile bootstrap confidence interval of the sample
//!   sd (ddof = 1).
//! * [`holm`] — Holm's step-down adjustment of p-values over a table of tests.
//! * [`expected_max`] — expected maximum of n runs drawn from the observed scores, with
//!   its variance (Dodge et al. 2019, "Show Your Work").

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use statrs::distribution::{ContinuousCDF, FisherSnedecor};

use crate::stats::Summary;

/// The Brown–Forsythe statistic and its p-value for equal variances across `groups`.
/// `None` with fewer than two groups, an empty group, no spread at all, or a score that is
/// not a finite number (a diverged run: the test of variances is undefined, not 0 or 1).
pub fn brown_forsythe(groups: &[&[f64]]) -> Option<(f64, f64)> {
    let k = groups.len();
    if k < 2 || groups.iter().any(|g| g.is_empty()) {
        return None;
    }
    if groups.iter().flat_map(|g| g.iter()).any(|v| !v.is_finite()) {
        return None;
    }
    let z: Vec<Vec<f64>> = groups
        .iter()
        .map(|g| {
            let m = median(g);
            g.iter().map(|y| (y - m).abs()).collect()
        })
        .collect();
    let n: usize = z.iter().map(Vec::len).sum();
    if n <= k {
        return None;
    }
    let means: Vec<f64> = z
        .iter()
        .map(|g| g.iter().sum::<f64>() / g.len() as f64)
        .collect();
    let grand = z.iter().flatten().sum::<f64>() / n as f64;
    let between: f64 = z
        .iter()
        .zip(&means)
        .map(|(g, m)| g.len() as f64 * (m - grand).powi(2))
        .sum();
    let within: f64 = z
        .iter()
        .zip(&means)
        .flat_map(|(g, m)| g.iter().map(move |v| (v - m).powi(2)))
        .sum();
    // No spread within the groups, also when round-off leaves a few ulps of it: with two
    // scores a group's deviations from its median are equal by construction, so groups of
    // two give W = x/0 (a p-value of 0 from nothing but rounding).
    let scale: f64 = z.iter().flatten().map(|v| v * v).sum();
    if within <= 1e-12 * scale {
        return None;
    }
    let (d1, d2) = ((k - 1) as f64, (n - k) as f64);
    let w = d2 / d1 * between / within;
    // Huge finite scores overflow the sums of squares: no statistic, not a panic.
    if !(w.is_finite() && within.is_finite() && w >= 0.0) {
        return None;
    }
    let f = FisherSnedecor::new(d1, d2).ok()?;
    Some((w, f.sf(w)))
}

/// The median of `v` (the mean of the two middle values for an even count).
pub(crate) fn median(v: &[f64]) -> f64 {
    median_in_place(&mut v.to_vec())
}

/// The median of a scratch slice (reordered).
pub(crate) fn median_in_place(w: &mut [f64]) -> f64 {
    let n = w.len();
    let (_, hi, _) = w.select_nth_unstable_by(n / 2, f64::total_cmp);
    let hi = *hi;
    if n % 2 == 1 {
        hi
    } else {
        let lo = w[..n / 2].iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lo + hi) / 2.0
    }
}

/// Percentile bootstrap interval (level `1 − alpha`) of the sample sd of `values`, from
/// `reps` resamples drawn from `seed`.
pub fn bootstrap_sd_interval(values: &[f64], reps: usize, alpha: f64, seed: u64) -> (f64, f64) {
    let n = values.len();
    if n < 2 || reps == 0 {
        return (f64::NAN, f64::NAN);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut sample = vec![0.0; n];
    let mut sds: Vec<f64> = (0..reps)
        .map(|_| {
            for s in sample.iter_mut() {
                *s = values[rng.random_range(0..n)];
            }
            Summary::of(&sample).sd
        })
        .collect();
    sds.sort_by(f64::total_cmp);
    let at = |q: f64| sds[((q * reps as f64).floor() as usize).min(reps - 1)];
    (at(alpha / 2.0), at(1.0 - alpha / 2.0))
}

/// Holm-adjusted p-values, in the input order (monotone, capped at 1).
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut out = vec![0.0; m];
    let mut running = 0.0f64;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        out[i] = running;
    }
    out
}

/// Expected maximum score of `n` runs drawn with replacement from `scores`, and its
/// variance: with the scores sorted v₁ ≤ … ≤ v_N, P(max = v_i) = (i/N)ⁿ − ((i − 1)/N)ⁿ.
pub fn expected_max(scores: &[f64], n: usize) -> (f64, f64) {
    expected_max_curve(scores, &[n])[0]
}

/// [`expected_max`] at each of `ns`, from one sort of the scores.
pub fn expected_max_curve(scores: &[f64], ns: &[usize]) -> Vec<(f64, f64)> {
    let big_n = scores.len();
    let mut v = scores.to_vec();
    v.sort_by(f64::total_cmp);
    let nf = big_n as f64;
    ns.iter()
        .map(|&n| {
            if big_n == 0 || n == 0 {
                return (f64::NAN, f64::NAN);
            }
            let (mut mean, mut second) = (0.0, 0.0);
            for (i, x) in v.iter().enumerate() {
                let w = ((i + 1) as f64 / nf).powi(n as i32) - (i as f64 / nf).powi(n as i32);
                mean += w * x;
                second += w * x * x;
            }
            (mean, (second - mean * mean).max(0.0))
        })
        .collect()
}

/// The run counts an expected-max curve is drawn at: every n up to 64 runs, else 64
/// log-spaced counts from 1 to all of them (a curve of 10,000 points costs 10⁸ terms).
pub fn curve_points(runs: usize) -> Vec<usize> {
    if runs <= 64 {
        return (1..=runs).collect();
    }
    let mut ns: Vec<usize> = (0..64)
        .map(|k| (runs as f64).powf(k as f64 / 63.0).round() as usize)
        .collect();
    ns.dedup();
    ns
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two seeds per arm: each arm's deviations from its median are equal, so there is
    /// no within-arm spread and no test (it used to give p ≈ 0 from round-off).
    #[test]
    fn brown_forsythe_with_two_scores_per_group_is_undefined() {
        let a = [0.2618, 0.2141];
        let b = [0.3171, 0.2986];
        assert_eq!(brown_forsythe(&[&a, &b]), None);
        let c = [0.3171, 0.2986, 0.3050];
        assert!(brown_forsythe(&[&a, &c]).is_some());
    }

    #[test]
    fn brown_forsythe_matches_scipy_levene_median() {
        // scipy.stats.levene(a, b, center='median') on these vectors (scipy 1.17.1):
        // statistic 11.234817813765213, p 0.0035504675003307884.
        let a = [71.2, 68.4, 74.9, 70.1, 66.3, 72.8, 69.5, 75.4, 67.7, 70.9];
        let b = [70.5, 70.9, 71.3, 69.8, 70.2, 71.0, 70.7, 69.9, 70.4, 71.6];
        let (w, p) = brown_forsythe(&[&a, &b]).unwrap();
        assert!((w - 11.234817813765213).abs() < 1e-9, "{w}");
        assert!((p - 0.0035504675003307884).abs() < 1e-9, "{p}");
        // Unequal sizes, odd and even: statistic 2.063819461295802, p 0.19398031819574676.
        let (w, p) = brown_forsythe(&[&[1.0, 2.0, 3.0, 4.0, 10.0], &[2.0, 2.5, 2.4, 2.6]]).unwrap();
        assert!((w - 2.063819461295802).abs() < 1e-9, "{w}");
        assert!((p - 0.19398031819574676).abs() < 1e-9, "{p}");
        assert!(brown_forsythe(&[&a]).is_none());
        assert!(brown_forsythe(&[&[1.0, 1.0], &[2.0, 2.0]]).is_none());
    }

    #[test]
    fn bootstrap_interval_covers_the_true_sd_about_95_percent_of_the_time() {
        use rand_distr::{Distribution, Normal};
        let normal = Normal::new(0.0, 2.0).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let trials = 400;
        let covered = (0..trials)
            .filter(|&t| {
                let sample: Vec<f64> = (0..60).map(|_| normal.sample(&mut rng)).collect();
                let (lo, hi) = bootstrap_sd_interval(&sample, 1000, 0.05, t);
                lo <= 2.0 && 2.0 <= hi
            })
            .count();
        let rate = covered as f64 / trials as f64;
        // Percentile intervals of an sd undercover slightly at n = 60; 0.90–0.98 is the
        // band a 95% interval lands in over 400 trials.
        assert!((0.90..=0.98).contains(&rate), "coverage {rate}");
    }

    #[test]
    fn holm_adjusts_step_down() {
        let adj = holm(&[0.01, 0.04, 0.03, 0.005]);
        // Sorted 0.005, 0.01, 0.03, 0.04 → ×4, ×3, ×2, ×1 → 0.02, 0.03, 0.06, 0.06 (monotone).
        let want = [0.03, 0.06, 0.06, 0.02];
        for (a, b) in adj.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{adj:?}");
        }
    }

    #[test]
    fn expected_max_matches_the_closed_form() {
        let s = [1.0, 2.0, 3.0];
        // n = 1: the mean; n = 2: P(max = 1, 2, 3) = 1/9, 3/9, 5/9.
        assert!((expected_max(&s, 1).0 - 2.0).abs() < 1e-12);
        let (m, v) = expected_max(&s, 2);
        assert!((m - (1.0 + 6.0 + 15.0) / 9.0).abs() < 1e-12);
        let second = (1.0 + 12.0 + 45.0) / 9.0;
        assert!((v - (second - m * m)).abs() < 1e-12);
        assert!((expected_max(&s, 50).0 - 3.0).abs() < 1e-6);
    }
}
