//! Normalised leave-one-out stability (paper Def. 2.3; docs/methods.md §7.5):
//!
//! Δ_i = ‖ A(S)/‖A(S)‖ − A(S^i)/‖A(S^i)‖ ‖,  S^i = S \ {i},  Δ̂ = E_i Δ_i,
//!
//! where A(S) is the full augmented weight [v; b] a learner returns on S.

/// ‖a/‖a‖ − b/‖b‖‖ (2 for opposite directions, 0 for equal ones).
pub fn normalized_distance(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    a.iter()
        .zip(b)
        .map(|(x, y)| (x / na - y / nb).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// ‖a − b‖ (the unnormalised stability of Def. 2.1).
pub fn distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// The LOO stability of one dataset, from the Δ_i that were computed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LeaveOneOutStability {
    /// Δ̂ = E_i Δ_i.
    pub mean: f64,
    /// max over the computed i of Δ_i.
    pub max: f64,
}

impl LeaveOneOutStability {
    /// Exact E_i Δ_i when Δ_i = 0 for every i not listed (SVM: removing a non-support
    /// vector leaves the solution unchanged), so E_i Δ_i = (1/n) Σ_{i ∈ SV} Δ_i.
    pub fn exact_from_support(n: usize, support_deltas: &[f64]) -> Self {
        Self {
            mean: support_deltas.iter().sum::<f64>() / n as f64,
            max: support_deltas.iter().copied().fold(0.0, f64::max),
        }
    }

    /// Monte-Carlo estimate from Δ_i at uniformly sampled i (GD: every point matters).
    pub fn sampled(deltas: &[f64]) -> Self {
        Self {
            mean: deltas.iter().sum::<f64>() / deltas.len() as f64,
            max: deltas.iter().copied().fold(0.0, f64::max),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalised_distance_values() {
        assert_eq!(normalized_distance(&[1.0, 0.0], &[5.0, 0.0]), 0.0);
        assert!((normalized_distance(&[1.0, 0.0], &[-2.0, 0.0]) - 2.0).abs() < 1e-15);
        assert!((normalized_distance(&[1.0, 0.0], &[0.0, 3.0]) - 2f64.sqrt()).abs() < 1e-15);
    }

    #[test]
    fn exact_average_counts_non_support_points_as_zero() {
        let s = LeaveOneOutStability::exact_from_support(100, &[0.1, 0.3]);
        assert!((s.mean - 0.004).abs() < 1e-15);
        assert_eq!(s.max, 0.3);
        let m = LeaveOneOutStability::sampled(&[0.1, 0.3]);
        assert!((m.mean - 0.2).abs() < 1e-15);
    }
}
