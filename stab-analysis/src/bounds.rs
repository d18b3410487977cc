//! The paper's stability bounds (docs/methods.md §9) evaluated term by term from constants,
//! each marked as measured or assumed, so a user sees which term dominates on a task.
//!
//! * Thm 2.2 (full fine-tuning, GD with η = 1/β, μI ⪯ ∇²f(w*)):
//!   ε ≤ √(2L‖w0 − w*‖/β) / (n·((1 − μ/β)^(−1/4) − 1)).
//! * Thm 2.4 (head tuning): ε ≤ C·ln ln t / ln t + ν·max{√((2/(λn))(1 + B/γ_S)),
//!   (B + √(B² + 8nλ(1 + B/γ_S)))/(2nλ)}, with ν = 2/r.
//! * Cor 2.5: ε ≤ C·ln ln t / ln t + ν·L/(λn).
//! * Cor 3.1 (MHLoss with H > 2 + 8 ln(1/δ) heads): the first term becomes
//!   √((2 + 8 ln(1/δ))/H)·C_ξ·ln ln t / ln t.

use serde::Serialize;

/// A constant and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Constant {
    pub value: f64,
    /// `true` when measured on the task, `false` when assumed (a default or a flag).
    pub measured: bool,
}

impl Constant {
    pub fn measured(value: f64) -> Self {
        Self {
            value,
            measured: true,
        }
    }

    pub fn assumed(value: f64) -> Self {
        Self {
            value,
            measured: false,
        }
    }
}

/// The constants the bounds need.
#[derive(Debug, Clone, Serialize)]
pub struct BoundConstants {
    /// Training points n.
    pub n: Constant,
    /// Feature bound B = max‖x‖ (augmented).
    pub b: Constant,
    /// SVM margin γ_S.
    pub gamma: Constant,
    /// Smallest feature norm r (ν = 2/r).
    pub r: Constant,
    /// The SVM's L2 weight λ = 1/(2nC).
    pub lambda: Constant,
    /// GD steps t.
    pub t: Constant,
    /// The constant C of the optimisation term (Soudry et al.'s rate).
    pub c: Constant,
    /// Loss Lipschitz constant L.
    pub l: Constant,
    /// Smoothness β and strong convexity μ of the fine-tuning objective.
    pub beta: Constant,
    pub mu: Constant,
    /// ‖w0 − w*‖ in full fine-tuning.
    pub dist0: Constant,
    /// Cor 3.1's confidence δ and C_ξ.
    pub delta: Constant,
    pub c_xi: Constant,
}

/// One bound split into its terms.
#[derive(Debug, Clone, Serialize)]
pub struct BoundTerms {
    /// `thm2.2`, `thm2.4`, `cor2.5`, `cor3.1 (H = …)`.
    pub bound: String,
    /// Term name and value, in the order of the formula.
    pub terms: Vec<(String, f64)>,
    pub total: f64,
    /// The term with the largest value.
    pub dominant: String,
    /// Why the bound does not apply, when it does not (e.g. H too small for Cor 3.1).
    pub note: Option<String>,
}

impl BoundTerms {
    fn new(bound: &str, terms: Vec<(&str, f64)>, note: Option<String>) -> Self {
        let terms: Vec<(String, f64)> = terms.into_iter().map(|(k, v)| (k.into(), v)).collect();
        let total = terms.iter().map(|t| t.1).sum();
        let dominant = terms
            .iter()
            .filter(|t| t.1.is_finite())
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|t| t.0.clone())
            .unwrap_or_default();
        Self {
            bound: bound.into(),
            terms,
            total,
            dominant,
            note,
        }
    }
}

/// ln ln t / ln t (NaN for t ≤ e, where ln ln t is not positive).
pub fn optimisation_rate(t: f64) -> f64 {
    if t <= std::f64::consts::E {
        return f64::NAN;
    }
    t.ln().ln() / t.ln()
}

/// Thm 2.2's bound.
pub fn theorem_2_2(k: &BoundConstants) -> BoundTerms {
    let (l, d0, beta, mu, n) = (
        k.l.value,
        k.dist0.value,
        k.beta.value,
        k.mu.value,
        k.n.value,
    );
    let ratio = mu / beta;
    let note = (!(0.0..1.0).contains(&ratio) || ratio == 0.0)
        .then(|| format!("needs 0 < μ/β < 1 (μ/β = {ratio})"));
    let v = (2.0 * l * d0 / beta).sqrt() / (n * ((1.0 - ratio).powf(-0.25) - 1.0));
    BoundTerms::new("thm2.2", vec![("stability", v)], note)
}

/// Thm 2.4's generalisation term ν·max{…}.
pub fn theorem_2_4_margin_term(k: &BoundConstants) -> f64 {
    let (n, b, g, lam) = (k.n.value, k.b.value, k.gamma.value, k.lambda.value);
    let nu = 2.0 / k.r.value;
    let q = 1.0 + b / g;
    let first = (2.0 / (lam * n) * q).sqrt();
    let second = (b + (b * b + 8.0 * n * lam * q).sqrt()) / (2.0 * n * lam);
    nu * first.max(second)
}

/// Thm 2.4's bound.
pub fn theorem_2_4(k: &BoundConstants) -> BoundTerms {
    BoundTerms::new(
        "thm2.4",
        vec![
            ("optimisation", k.c.value * optimisation_rate(k.t.value)),
            ("margin", theorem_2_4_margin_term(k)),
        ],
        None,
    )
}

/// Cor 2.5's bound.
pub fn corollary_2_5(k: &BoundConstants) -> BoundTerms {
    let nu = 2.0 / k.r.value;
    BoundTerms::new(
        "cor2.5",
        vec![
            ("optimisation", k.c.value * optimisation_rate(k.t.value)),
            (
                "regularisation",
                nu * k.l.value / (k.lambda.value * k.n.value),
            ),
        ],
        None,
    )
}

/// Cor 3.1's bound for H heads: Thm 2.4 with the optimisation term shrunk by
/// √((2 + 8 ln(1/δ))/H).
pub fn corollary_3_1(k: &BoundConstants, heads: usize) -> BoundTerms {
    let need = 2.0 + 8.0 * (1.0 / k.delta.value).ln();
    let h = heads as f64;
    let note = (h <= need).then(|| format!("needs H > 2 + 8 ln(1/δ) = {need:.1}"));
    BoundTerms::new(
        &format!("cor3.1 (H = {heads})"),
        vec![
            (
                "optimisation",
                (need / h).sqrt() * k.c_xi.value * optimisation_rate(k.t.value),
            ),
            ("margin", theorem_2_4_margin_term(k)),
        ],
        note,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn constants() -> BoundConstants {
        let a = Constant::assumed;
        BoundConstants {
            n: a(100.0),
            b: a(3.0),
            gamma: a(0.5),
            r: a(1.0),
            lambda: a(0.01),
            t: a(1e4),
            c: a(1.0),
            l: a(3.0),
            beta: a(2.0),
            mu: a(0.02),
            dist0: a(4.0),
            delta: a(0.05),
            c_xi: a(1.0),
        }
    }

    #[test]
    fn theorem_2_2_by_hand() {
        // √(2·3·4/2) = √12 = 3.4641016; (1 − 0.01)^(−1/4) − 1 = 0.0025157…;
        // 3.4641016 / (100 · 0.00251573) = 13.7697…
        let v = theorem_2_2(&constants()).total;
        let by_hand = 12f64.sqrt() / (100.0 * (0.99f64.powf(-0.25) - 1.0));
        assert!((v - by_hand).abs() < 1e-12);
        assert!((v - 13.769_7).abs() < 1e-3, "{v}");
    }

    #[test]
    fn theorem_2_4_and_corollaries_by_hand() {
        let k = constants();
        // ln ln 1e4 / ln 1e4 = ln 9.2103404 / 9.2103404 = 2.2203 / 9.2103 = 0.241068…
        let opt = optimisation_rate(1e4);
        assert!((opt - 0.241_068).abs() < 1e-5, "{opt}");
        // q = 1 + 3/0.5 = 7; √(2/(0.01·100)·7) = √14 = 3.741657;
        // (3 + √(9 + 8·100·0.01·7))/(2·100·0.01) = (3 + √65)/2 = 5.531129; ν = 2 → 11.062258.
        let margin = theorem_2_4_margin_term(&k);
        assert!(
            (margin - 2.0 * (3.0 + 65f64.sqrt()) / 2.0).abs() < 1e-12,
            "{margin}"
        );
        let t24 = theorem_2_4(&k);
        assert_eq!(t24.dominant, "margin");
        assert!((t24.total - (opt + margin)).abs() < 1e-12);
        // Cor 2.5: ν·L/(λn) = 2·3/(0.01·100) = 6.
        let c25 = corollary_2_5(&k);
        assert!((c25.terms[1].1 - 6.0).abs() < 1e-12);
        // Cor 3.1, δ = 0.05: 2 + 8 ln 20 = 25.965; H = 50 → √(25.965/50) = 0.720625.
        let c31 = corollary_3_1(&k, 50);
        assert!(c31.note.is_none());
        assert!((c31.terms[0].1 - (25.965_858 / 50.0f64).sqrt() * opt).abs() < 1e-6);
        assert!(
            corollary_3_1(&k, 5).note.is_some(),
            "H = 5 is below the condition"
        );
        assert!(optimisation_rate(2.0).is_nan());
    }
}
