//! What the paper predicts for each synthetic study (§4.3, Figs. 5–9), and whether a
//! store's results bear it out: the plain-words lines of the synthetic report's summary.
//!
//! A trend is judged between the first and the last value of the factor: its direction,
//! how many of the steps between neighbouring values go the predicted way, and Welch's
//! z = (m_last − m_first) / √(s²_first/k_first + s²_last/k_last) over the k random datasets
//! of each setting (settings draw independent datasets). |z| < 2 is "within the noise".

use super::synthetic::FactorRuns;
use super::table::{label_num, num};

/// The direction a measure is predicted to move as its factor grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Falls,
    Rises,
}

/// One study's prediction: the measure, its direction, the claim in words.
#[derive(Debug, Clone, Copy)]
pub struct Prediction {
    pub factor: &'static str,
    pub figure: &'static str,
    /// The metric key (`<metric>_mean` / `<metric>_sd` in the records).
    pub metric: &'static str,
    pub direction: Direction,
    pub claim: &'static str,
}

/// The paper's predictions for the studies whose outcome is one measure against the factor
/// (the heads study is judged on its curves, [`heads_line`]).
pub const PREDICTIONS: &[Prediction] = &[
    Prediction {
        factor: "samples",
        figure: "Fig. 6",
        metric: "delta",
        direction: Direction::Falls,
        claim: "Δ̂ falls as the number of training points n grows",
    },
    Prediction {
        factor: "margin",
        figure: "Fig. 7",
        metric: "delta",
        direction: Direction::Falls,
        claim: "Δ̂ falls as the margin γ grows",
    },
    Prediction {
        factor: "distance",
        figure: "Fig. 8",
        metric: "delta",
        direction: Direction::Rises,
        claim: "Δ̂ rises with the distance ‖w0 − w*‖ of the start from the optimum (Thm 2.2: staying close to the pre-trained weights is more stable)",
    },
    Prediction {
        factor: "bound",
        figure: "Fig. 9",
        metric: "delta",
        direction: Direction::Rises,
        claim: "Δ̂ rises with the bound B on ‖x‖",
    },
];

/// The heads study's figure and claim (Cor. 3.1).
pub const HEADS_CLAIM: &str = "Fig. 5: with more heads the averaged head reaches the SVM's direction sooner (Cor. 3.1), so it is stable earlier";

/// A study's place in the paper's figure order (heads, samples, margin, distance, bound);
/// other studies after them.
pub fn figure_rank(factor: &str) -> usize {
    std::iter::once("heads")
        .chain(PREDICTIONS.iter().map(|p| p.factor))
        .position(|f| f == factor)
        .unwrap_or(usize::MAX)
}

/// The label of `metric` in `factor`'s tables and plots, where a study gives the shared
/// name a meaning of its own.
pub fn metric_label(factor: &str, metric: &str) -> Option<&'static str> {
    match (factor, metric) {
        ("samples" | "margin" | "bound", "delta") => Some("SVM Δ̂ (exact)"),
        ("distance", "delta") => Some("GD Δ̂ at T"),
        ("distance", "stability") => Some("‖A(Sⁱ) − A(S)‖ at T (unnormalised)"),
        ("heads", "delta") => Some("Δ̂ of the averaged head at T"),
        _ => None,
    }
}

/// A setting's mean, SD and dataset count for `metric`.
fn stat(r: &stab_core::RunRecord, metric: &str) -> Option<(f64, f64, f64)> {
    let m = *r.metrics.get(&format!("{metric}_mean"))?;
    let sd = r
        .metrics
        .get(&format!("{metric}_sd"))
        .copied()
        .unwrap_or(0.0);
    let k = r.metrics.get("datasets").copied().unwrap_or(1.0).max(1.0);
    m.is_finite().then_some((m, sd, k))
}

/// Welch's z of `b` against `a` (each a mean, SD and count).
pub fn welch_z(a: (f64, f64, f64), b: (f64, f64, f64)) -> f64 {
    let se = (a.1 * a.1 / a.2 + b.1 * b.1 / b.2).sqrt();
    if se > 0.0 { (b.0 - a.0) / se } else { f64::NAN }
}

/// How a measured change reads against its prediction.
fn verdict(went_predicted_way: bool, z: f64) -> &'static str {
    match (went_predicted_way, z.abs() >= 2.0 || z.is_nan()) {
        (true, true) => "**held**",
        (true, false) => "**held only within the noise**",
        (false, true) => "**did not hold**",
        (false, false) => "**not seen** (the change is within the noise)",
    }
}

/// The summary line of a study with a [`Prediction`]: the claim, and what the store shows.
pub fn prediction_line(p: &Prediction, f: &FactorRuns) -> Option<String> {
    let points: Vec<(f64, (f64, f64, f64))> = f
        .runs
        .iter()
        .filter_map(|(v, r)| Some((*v, stat(r, p.metric)?)))
        .collect();
    let (first, last) = (points.first()?, points.last()?);
    if points.len() < 2 {
        return None;
    }
    let steps = points.len() - 1;
    let with = points
        .windows(2)
        .filter(|w| match p.direction {
            Direction::Falls => w[1].1.0 < w[0].1.0,
            Direction::Rises => w[1].1.0 > w[0].1.0,
        })
        .count();
    let rose = last.1.0 > first.1.0;
    let predicted = rose == (p.direction == Direction::Rises);
    let z = welch_z(first.1, last.1);
    let label = metric_label(&f.factor, p.metric).unwrap_or("Δ̂");
    Some(format!(
        "**{}** ({}): the paper predicts {}. Here it {}: {label} {} from {} at {} = {} to {} at {} = {} (Welch z = {:.1} over {} datasets a setting; {with} of {steps} steps {}).",
        f.factor,
        p.figure,
        p.claim,
        verdict(predicted, z),
        if rose { "rose" } else { "fell" },
        num(first.1.0),
        f.axis_label,
        label_num(first.0),
        num(last.1.0),
        f.axis_label,
        label_num(last.0),
        z,
        label_num(first.1.2),
        match p.direction {
            Direction::Falls => "down",
            Direction::Rises => "up",
        }
    ))
}

/// The heads study's summary line: the direction gap at the first checkpoint for the
/// fewest and the most heads, and the gap left at the last checkpoint.
pub fn heads_line(f: &FactorRuns) -> Option<String> {
    let curves: Vec<(f64, Vec<super::synthetic::CurvePoint>, f64)> = f
        .runs
        .iter()
        .map(|(v, r)| {
            let k = r.metrics.get("datasets").copied().unwrap_or(1.0).max(1.0);
            (*v, super::synthetic::curve(r), k)
        })
        .filter(|(_, c, _)| !c.is_empty())
        .collect();
    let (few, many) = (curves.first()?, curves.last()?);
    if curves.len() < 2 {
        return None;
    }
    let (a, b) = (few.1.first()?, many.1.first()?);
    let (a_end, b_end) = (few.1.last()?, many.1.last()?);
    let z = welch_z((a.gap, a.gap_sd, few.2), (b.gap, b.gap_sd, many.2));
    Some(format!(
        "**heads** ({HEADS_CLAIM}). Here it {}: at t = {} the averaged head's direction is {} from the SVM's with H = {} and {} with H = {} (Welch z = {:.1}); by t = {} the gaps are {} and {}. The final Δ̂ barely depends on H: the heads reach the same solution, sooner.",
        verdict(b.gap < a.gap, z),
        a.t,
        num(a.gap),
        label_num(few.0),
        num(b.gap),
        label_num(many.0),
        z,
        a_end.t,
        num(a_end.gap),
        num(b_end.gap),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn welch_z_is_the_difference_over_its_standard_error() {
        // (2 − 1) / √(1/4 + 1/4) = √2.
        let z = welch_z((1.0, 1.0, 4.0), (2.0, 1.0, 4.0));
        assert!((z - 2f64.sqrt()).abs() < 1e-12);
        assert!(welch_z((1.0, 0.0, 4.0), (1.0, 0.0, 4.0)).is_nan());
    }

    #[test]
    fn verdicts_separate_direction_from_noise() {
        assert_eq!(verdict(true, -5.0), "**held**");
        assert_eq!(verdict(true, 0.5), "**held only within the noise**");
        assert_eq!(verdict(false, 3.0), "**did not hold**");
        assert!(verdict(false, 1.0).starts_with("**not seen**"));
    }
}
