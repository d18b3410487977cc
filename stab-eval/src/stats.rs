//! Summary statistics. The paper's "mean ± SD" uses an unknown ddof; stab uses the
//! sample SD (ddof = 1), docs/methods.md §3.2.

use serde::{Deserialize, Serialize};

/// Mean, sample SD (ddof = 1; 0 for a single value), min and max of a sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub n: usize,
    pub mean: f64,
    pub sd: f64,
    pub min: f64,
    pub max: f64,
}

impl Summary {
    /// Summarise `values`; NaN when empty.
    pub fn of(values: &[f64]) -> Self {
        let n = values.len();
        if n == 0 {
            return Self {
                n,
                mean: f64::NAN,
                sd: f64::NAN,
                min: f64::NAN,
                max: f64::NAN,
            };
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let ss: f64 = values.iter().map(|v| (v - mean).powi(2)).sum();
        let sd = if n > 1 {
            (ss / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Self {
            n,
            mean,
            sd,
            min,
            max,
        }
    }

    /// Insert `<name>_mean` and `<name>_sd` into a metrics map.
    pub fn insert_into(&self, name: &str, metrics: &mut std::collections::BTreeMap<String, f64>) {
        metrics.insert(format!("{name}_mean"), self.mean);
        metrics.insert(format!("{name}_sd"), self.sd);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed() {
        let s = Summary::of(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert_eq!(s.mean, 5.0);
        // Σ(x − 5)² = 32, ddof 1 → 32/7.
        assert!((s.sd - (32.0f64 / 7.0).sqrt()).abs() < 1e-15);
        assert_eq!((s.min, s.max), (2.0, 9.0));
        assert_eq!(Summary::of(&[3.0]).sd, 0.0);
        assert!(Summary::of(&[]).mean.is_nan());
    }
}
