//! How many seeds a stability claim needs (docs/methods.md §13.3): the power of the
//! Brown–Forsythe test of equal SDs between a method and FineTune, by simulation under
//! normality. The test is scale-free, so the power depends only on the seed counts and
//! the SD ratio r = sd(method)/sd(FineTune), not on FineTune's SD itself.
//!
//! Each power value is the share of `simulations` pairs of normal samples (FineTune
//! N(0, 1), the method N(0, r²)) whose Brown–Forsythe p-value is below α. The draws are
//! common to every r at a seed count (seeded from the settings and the counts), so the
//! power curve is a deterministic function that the searches below can bisect.
//!
//! Above [`SIMULATED_SEEDS`] seeds in both arms together the power is computed from the
//! large-sample distribution instead (a simulation there costs minutes, and the normal
//! approximation it would confirm is tight): with z = |x − median| half-normal, mean
//! μ = σ√(2/π) and variance v = σ²(1 − 2/π), Brown–Forsythe's W is the square of the
//! pooled two-sample t of the z's, t ≈ N(Δ/(s_p·k), σ_Δ²/(s_p·k)²) with Δ = μ₁ − μ₂,
//! k = √(1/n + 1/m), σ_Δ² = v₁/n + v₂/m and s_p² the pooled variance; the power is
//! P(|t| > z_{1−α/2}). A test checks it against the simulation at 200 seeds per arm.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use stab_core::derive_seed;
use statrs::distribution::{ContinuousCDF, Normal};

use crate::variance::brown_forsythe;

/// Settings of the power simulations.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PowerSettings {
    pub alpha: f64,
    /// The power a detectable effect must reach.
    pub power: f64,
    pub simulations: usize,
    pub seed: u64,
}

impl Default for PowerSettings {
    fn default() -> Self {
        Self {
            alpha: 0.05,
            power: 0.8,
            simulations: 2000,
            seed: 20,
        }
    }
}

/// Standard-normal draws for the simulations at seed counts (n FineTune, m method).
struct Draws {
    base: Vec<Vec<f64>>,
    method: Vec<Vec<f64>>,
}

impl Draws {
    fn new(n: usize, m: usize, s: &PowerSettings) -> Self {
        let seed = derive_seed(s.seed, &["bf-power", &n.to_string(), &m.to_string()]);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut draw =
            |k: usize| -> Vec<f64> { (0..k).map(|_| StandardNormal.sample(&mut rng)).collect() };
        let (mut base, mut method) = (Vec::new(), Vec::new());
        for _ in 0..s.simulations {
            base.push(draw(n));
            method.push(draw(m));
        }
        Self { base, method }
    }

    fn power(&self, ratio: f64, alpha: f64) -> f64 {
        let mut scaled = Vec::new();
        let hits = self
            .base
            .iter()
            .zip(&self.method)
            .filter(|(b, m)| {
                scaled.clear();
                scaled.extend(m.iter().map(|x| x * ratio));
                brown_forsythe(&[b, &scaled]).is_some_and(|(_, p)| p < alpha)
            })
            .count();
        hits as f64 / self.base.len().max(1) as f64
    }
}

/// Seed counts (both arms together) up to which the power is simulated.
pub const SIMULATED_SEEDS: usize = 400;

/// The large-sample power of Brown–Forsythe (module docs) for normal scores.
pub fn bf_power_asymptotic(n: usize, m: usize, ratio: f64, alpha: f64) -> f64 {
    let normal = Normal::standard();
    let (nf, mf) = (n as f64, m as f64);
    let mean = (2.0 / std::f64::consts::PI).sqrt();
    let var = 1.0 - 2.0 / std::f64::consts::PI;
    let (v1, v2) = (var, var * ratio * ratio);
    let delta = mean * (1.0 - ratio);
    let pooled = (((nf - 1.0) * v1 + (mf - 1.0) * v2) / (nf + mf - 2.0)).sqrt();
    let k = (1.0 / nf + 1.0 / mf).sqrt();
    let spread = (v1 / nf + v2 / mf).sqrt();
    let c = normal.inverse_cdf(1.0 - alpha / 2.0) * pooled * k;
    normal.cdf((delta - c) / spread) + normal.cdf((-delta - c) / spread)
}

/// A power curve over the SD ratio at fixed seed counts.
enum Curve {
    Simulated(Draws),
    Asymptotic(usize, usize),
}

impl Curve {
    fn new(n: usize, m: usize, s: &PowerSettings) -> Self {
        if n + m <= SIMULATED_SEEDS {
            Self::Simulated(Draws::new(n, m, s))
        } else {
            Self::Asymptotic(n, m)
        }
    }

    fn power(&self, ratio: f64, alpha: f64) -> f64 {
        match self {
            Self::Simulated(draws) => draws.power(ratio, alpha),
            Self::Asymptotic(n, m) => bf_power_asymptotic(*n, *m, ratio, alpha),
        }
    }
}

/// The power of Brown–Forsythe at level α to detect an SD ratio `ratio` with `n`
/// FineTune seeds and `m` method seeds.
pub fn bf_power(n: usize, m: usize, ratio: f64, s: &PowerSettings) -> f64 {
    Curve::new(n, m, s).power(ratio, s.alpha)
}

/// The SD ratio closest to 1 (below it) that Brown–Forsythe detects with the settings'
/// power at these seed counts: every smaller ratio (a larger reduction) is detected at
/// least as often. `None` when not even a ratio of 0.01 is.
pub fn min_detectable_ratio(n: usize, m: usize, s: &PowerSettings) -> Option<f64> {
    let curve = Curve::new(n, m, s);
    let (mut lo, mut hi) = (0.01, 1.0);
    if curve.power(lo, s.alpha) < s.power {
        return None;
    }
    // Invariant: power(lo) ≥ target > power(hi) (at r = 1 the power is about α).
    for _ in 0..30 {
        let mid = 0.5 * (lo + hi);
        if curve.power(mid, s.alpha) >= s.power {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(lo)
}

/// The fewest seeds per arm (at most `max_seeds`) with which Brown–Forsythe detects an
/// SD ratio `ratio` with the settings' power.
pub fn seeds_needed(ratio: f64, max_seeds: usize, s: &PowerSettings) -> Option<usize> {
    (2..=max_seeds).find(|&n| bf_power(n, n, ratio, s) >= s.power)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_is_alpha_without_an_effect_and_grows_with_the_effect_and_the_seeds() {
        let s = PowerSettings::default();
        let null = bf_power(10, 10, 1.0, &s);
        assert!(null < 0.08, "size {null}");
        let p5 = bf_power(10, 10, 0.5, &s);
        let p3 = bf_power(10, 10, 0.3, &s);
        assert!(null < p5 && p5 < p3, "{null} {p5} {p3}");
        assert!(bf_power(40, 40, 0.5, &s) > p5);
        let r = min_detectable_ratio(10, 10, &s).unwrap();
        assert!(r < 0.5 && r > 0.1, "{r}");
        assert!(bf_power(10, 10, r * 0.999, &s) >= 0.8);
        let n = seeds_needed(0.5, 100, &s).unwrap();
        assert!(bf_power(n, n, 0.5, &s) >= 0.8 && bf_power(n - 1, n - 1, 0.5, &s) < 0.8);
    }

    /// Where the simulation stops, the large-sample power agrees with it.
    #[test]
    fn the_large_sample_power_matches_the_simulation_at_200_seeds_per_arm() {
        let s = PowerSettings::default();
        let draws = Draws::new(200, 200, &s);
        for ratio in [0.7, 0.8, 0.85, 0.9, 1.0] {
            let simulated = draws.power(ratio, s.alpha);
            let asymptotic = bf_power_asymptotic(200, 200, ratio, s.alpha);
            assert!(
                (simulated - asymptotic).abs() < 0.03,
                "ratio {ratio}: simulated {simulated}, asymptotic {asymptotic}"
            );
        }
        // And it keeps growing with the seeds.
        assert!(bf_power(5000, 5000, 0.95, &s) > bf_power(1000, 1000, 0.95, &s));
    }
}
