//! Almost Stochastic Order (ASO; Dror et al. 2019, building on del Barrio et al. 2018),
//! computed as deep-significance's `aso` does (docs/methods.md §13.2).
//!
//! With F⁻¹, G⁻¹ the empirical quantile functions of the scores of A (the method thought
//! better) and B (the baseline), on the grid t = dt, 2·dt, … < 1:
//!
//! * the violation ratio ε_W2 = ∫_{V} (G⁻¹ − F⁻¹)² dt / ∫ (G⁻¹ − F⁻¹)² dt, V the set where
//!   F⁻¹ < G⁻¹ (A below B: the stochastic order violated), 0.5 when the distance is 0;
//!   as in deep-significance the first grid point is left out of the violation integral;
//! * its spread σ̂ from bootstrap resamples of both score lists (drawn through the
//!   quantile functions), scaled by c = √(n·m/(n + m)): σ̂ = sd(c·(ε* − ε)), ddof = 0;
//! * ε_min = clip(ε − σ̂/c · Φ⁻¹(1 − confidence), 0, 1), with a Bonferroni-adjusted
//!   confidence for several comparisons.
//!
//! ε_min < 0.5: A is almost stochastically better than B; ε_min = 0 is stochastic
//! dominance. The bootstrap draws from a seeded ChaCha8 stream (deep-significance uses
//! NumPy's), so ε_min agrees with the reference up to bootstrap noise.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use statrs::distribution::{ContinuousCDF, Normal};

/// The settings of one ASO test (deep-significance's defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AsoSettings {
    pub confidence: f64,
    /// Comparisons the test is part of (Bonferroni).
    pub comparisons: usize,
    pub bootstrap: usize,
    pub dt: f64,
    pub seed: u64,
}

impl Default for AsoSettings {
    fn default() -> Self {
        Self {
            confidence: 0.95,
            comparisons: 1,
            bootstrap: 1000,
            dt: 0.005,
            seed: 1234,
        }
    }
}

/// The empirical quantile function of sorted scores at p: the ⌈n·p⌉-th smallest score.
fn quantile(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len() as i64;
    let index = (n as f64 * p).ceil() as i64;
    sorted[(index - 1).clamp(0, n - 1) as usize]
}

/// The integration grid t = dt, 2·dt, … below 1 (NumPy's `arange(dt, 1, dt)`).
fn grid(dt: f64) -> Vec<f64> {
    let n = ((1.0 - dt) / dt).ceil() as usize;
    (0..n).map(|i| dt + i as f64 * dt).collect()
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s
}

/// The violation ratio ε_W2 of "A is stochastically better than B".
pub fn violation_ratio(a: &[f64], b: &[f64], dt: f64) -> f64 {
    ratio_of_sorted(&sorted(a), &sorted(b), &grid(dt), dt)
}

fn ratio_of_sorted(a: &[f64], b: &[f64], t: &[f64], dt: f64) -> f64 {
    let (mut total, mut violated) = (0.0, 0.0);
    for (i, &p) in t.iter().enumerate() {
        let (f, g) = (quantile(a, p), quantile(b, p));
        let d2 = (g - f).powi(2) * dt;
        total += d2;
        if f < g && i > 0 {
            violated += d2;
        }
    }
    if total == 0.0 { 0.5 } else { violated / total }
}

/// A bootstrap resample of sorted scores drawn through their quantile function, sorted:
/// the draws are counted per position and written out in order (the same values a sort
/// of the draws would give, in O(n)).
fn sorted_resample(sorted: &[f64], rng: &mut ChaCha8Rng, counts: &mut Vec<u32>, out: &mut [f64]) {
    let n = sorted.len() as i64;
    counts.clear();
    counts.resize(sorted.len(), 0);
    for _ in 0..sorted.len() {
        let p = rng.random::<f64>();
        let index = (n as f64 * p).ceil() as i64;
        counts[(index - 1).clamp(0, n - 1) as usize] += 1;
    }
    let mut at = 0;
    for (&x, &k) in sorted.iter().zip(counts.iter()) {
        out[at..at + k as usize].fill(x);
        at += k as usize;
    }
}

/// ε_min of A (`a`, the method thought better) against B (`b`); `None` when a list is
/// empty.
pub fn aso_eps_min(a: &[f64], b: &[f64], s: &AsoSettings) -> Option<f64> {
    if a.is_empty() || b.is_empty() || s.bootstrap == 0 {
        return None;
    }
    let (sa, sb) = (sorted(a), sorted(b));
    let t = grid(s.dt);
    let eps = ratio_of_sorted(&sa, &sb, &t, s.dt);
    let mut rng = ChaCha8Rng::seed_from_u64(s.seed);
    let mut ra = vec![0.0; sa.len()];
    let mut rb = vec![0.0; sb.len()];
    let (n, m) = (sa.len() as f64, sb.len() as f64);
    let c = (n * m / (n + m)).sqrt();
    let (mut ca, mut cb) = (Vec::new(), Vec::new());
    let scaled: Vec<f64> = (0..s.bootstrap)
        .map(|_| {
            sorted_resample(&sa, &mut rng, &mut ca, &mut ra);
            sorted_resample(&sb, &mut rng, &mut cb, &mut rb);
            c * (ratio_of_sorted(&ra, &rb, &t, s.dt) - eps)
        })
        .collect();
    let mean = scaled.iter().sum::<f64>() / scaled.len() as f64;
    let sigma =
        (scaled.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / scaled.len() as f64).sqrt();
    let mut confidence = s.confidence;
    if s.comparisons > 1 {
        confidence += (1.0 - confidence) / s.comparisons as f64;
    }
    let z = Normal::standard().inverse_cdf(1.0 - confidence);
    Some((eps - sigma / c * z).clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn violation_ratio_is_zero_under_dominance_and_half_for_equal_lists() {
        let a = [5.0, 6.0, 7.0, 8.0];
        let b = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(violation_ratio(&a, &b, 0.005), 0.0);
        // B above A by 4 everywhere: every grid point violates, but the first is left out.
        assert!((violation_ratio(&b, &a, 0.005) - 198.0 / 199.0).abs() < 1e-12);
        assert_eq!(violation_ratio(&a, &a, 0.005), 0.5);
        assert_eq!(grid(0.005).len(), 199);
    }

    #[test]
    fn a_clearly_better_method_gets_a_small_eps_min() {
        let a: Vec<f64> = (0..10).map(|i| 80.0 + i as f64).collect();
        let b: Vec<f64> = (0..10).map(|i| 70.0 + i as f64).collect();
        let e = aso_eps_min(&a, &b, &AsoSettings::default()).unwrap();
        assert!(e < 0.05, "{e}");
        let e = aso_eps_min(&b, &a, &AsoSettings::default()).unwrap();
        assert!(e > 0.95, "{e}");
    }
}
