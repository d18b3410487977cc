//! Classification metrics and the jiant primary metric per task (docs/methods.md §3.2).
//! Values are fractions in [0, 1]; tables show them ×100.

use std::collections::BTreeMap;

/// Fraction of equal entries.
pub fn accuracy(pred: &[usize], gold: &[usize]) -> f64 {
    assert_eq!(pred.len(), gold.len());
    if gold.is_empty() {
        return 0.0;
    }
    pred.iter().zip(gold).filter(|(p, g)| p == g).count() as f64 / gold.len() as f64
}

/// F1 of class `positive` (one-vs-rest); 0 when nothing is predicted or present positive.
pub fn f1(pred: &[usize], gold: &[usize], positive: usize) -> f64 {
    let tp = pred
        .iter()
        .zip(gold)
        .filter(|(p, g)| **p == positive && **g == positive)
        .count() as f64;
    let pp = pred.iter().filter(|p| **p == positive).count() as f64;
    let ap = gold.iter().filter(|g| **g == positive).count() as f64;
    if pp == 0.0 || ap == 0.0 || tp == 0.0 {
        return 0.0;
    }
    let (precision, recall) = (tp / pp, tp / ap);
    2.0 * precision * recall / (precision + recall)
}

/// Mean of the one-vs-rest F1 over `classes` classes.
pub fn macro_f1(pred: &[usize], gold: &[usize], classes: usize) -> f64 {
    (0..classes).map(|c| f1(pred, gold, c)).sum::<f64>() / classes as f64
}

/// Matthews correlation (multi-class form of Gorodkin 2004; binary MCC for 2 classes),
/// with 0/0 defined as 0 as in scikit-learn.
pub fn matthews(pred: &[usize], gold: &[usize], classes: usize) -> f64 {
    let n = gold.len() as f64;
    let mut c = vec![vec![0f64; classes]; classes];
    for (&p, &g) in pred.iter().zip(gold) {
        c[g][p] += 1.0;
    }
    let t: Vec<f64> = (0..classes).map(|k| c[k].iter().sum()).collect(); // true counts
    let p: Vec<f64> = (0..classes)
        .map(|k| (0..classes).map(|g| c[g][k]).sum())
        .collect(); // predicted counts
    let correct: f64 = (0..classes).map(|k| c[k][k]).sum();
    let cov_ytyp = correct * n - t.iter().zip(&p).map(|(a, b)| a * b).sum::<f64>();
    let cov_ypyp = n * n - p.iter().map(|a| a * a).sum::<f64>();
    let cov_ytyt = n * n - t.iter().map(|a| a * a).sum::<f64>();
    let denom = (cov_ytyt * cov_ypyp).sqrt();
    if denom == 0.0 { 0.0 } else { cov_ytyp / denom }
}

/// MultiRC exact match: the fraction of questions (grouped by `question`) whose answer
/// rows are all predicted right.
pub fn exact_match_by_group(pred: &[usize], gold: &[usize], question: &[u64]) -> f64 {
    let mut all_right: BTreeMap<u64, bool> = BTreeMap::new();
    for ((p, g), q) in pred.iter().zip(gold).zip(question) {
        let e = all_right.entry(*q).or_insert(true);
        *e &= p == g;
    }
    if all_right.is_empty() {
        return 0.0;
    }
    all_right.values().filter(|v| **v).count() as f64 / all_right.len() as f64
}

/// The jiant "major" metric of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrimaryMetric {
    /// Matthews correlation (CoLA).
    Mcc,
    /// Accuracy (SST-2, RTE, WNLI, BoolQ, WiC, WSC).
    Accuracy,
    /// (accuracy + F1 of class 1) / 2 (MRPC, QQP).
    AccAndF1,
    /// (accuracy + macro-F1) / 2 (CB).
    AccAndMacroF1,
    /// (exact match by question + F1 over answer rows) / 2 (MultiRC).
    EmAndF1a,
    /// Macro-averaged F1 over the classes (a custom task's `macro_f1`).
    MacroF1,
    /// F1 of the positive class, label id 1 (a custom two-class task's `f1`).
    F1,
}

impl PrimaryMetric {
    /// The registry name of the metric.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "mcc" => Self::Mcc,
            "accuracy" => Self::Accuracy,
            "acc_and_f1" => Self::AccAndF1,
            "acc_and_macro_f1" => Self::AccAndMacroF1,
            "em_and_f1a" => Self::EmAndF1a,
            "macro_f1" => Self::MacroF1,
            "f1" => Self::F1,
            _ => return None,
        })
    }

    /// The primary score of always predicting the most frequent gold label (the lowest
    /// label id among ties): the score at or below which a run has failed (Mosbach et al.
    /// 2021; MCC gives 0).
    pub fn majority(self, gold: &[usize], classes: usize, question: Option<&[u64]>) -> f64 {
        let mut counts = vec![0usize; classes];
        for &g in gold {
            counts[g] += 1;
        }
        let majority = (0..counts.len())
            .max_by_key(|&c| (counts[c], std::cmp::Reverse(c)))
            .unwrap_or(0);
        self.evaluate(&vec![majority; gold.len()], gold, classes, question)["primary"]
    }

    /// `primary` plus every component metric. `question` is required for MultiRC.
    pub fn evaluate(
        self,
        pred: &[usize],
        gold: &[usize],
        classes: usize,
        question: Option<&[u64]>,
    ) -> BTreeMap<String, f64> {
        let mut m = BTreeMap::new();
        let acc = accuracy(pred, gold);
        m.insert("accuracy".to_string(), acc);
        let primary = match self {
            Self::Mcc => {
                let v = matthews(pred, gold, classes);
                m.insert("mcc".into(), v);
                v
            }
            Self::Accuracy => acc,
            Self::AccAndF1 => {
                let v = f1(pred, gold, 1);
                m.insert("f1".into(), v);
                (acc + v) / 2.0
            }
            Self::AccAndMacroF1 => {
                let v = macro_f1(pred, gold, classes);
                m.insert("macro_f1".into(), v);
                (acc + v) / 2.0
            }
            Self::MacroF1 => {
                let v = macro_f1(pred, gold, classes);
                m.insert("macro_f1".into(), v);
                v
            }
            Self::F1 => {
                let v = f1(pred, gold, 1);
                m.insert("f1".into(), v);
                v
            }
            Self::EmAndF1a => {
                let em =
                    exact_match_by_group(pred, gold, question.expect("MultiRC needs question ids"));
                let f1a = f1(pred, gold, 1);
                m.insert("em".into(), em);
                m.insert("f1a".into(), f1a);
                (em + f1a) / 2.0
            }
        };
        m.insert("primary".into(), primary);
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn constant(n_pos: usize, n: usize, predict: usize) -> (Vec<usize>, Vec<usize>) {
        let gold: Vec<usize> = (0..n).map(|i| usize::from(i < n_pos)).collect();
        (vec![predict; n], gold)
    }

    fn pct(v: f64) -> f64 {
        (v * 10000.0).round() / 100.0
    }

    #[test]
    fn qqp_constant_predictors() {
        // QQP dev: 14,885 positives of 40,430 (docs/methods.md §3.2).
        let (p, g) = constant(14885, 40430, 1);
        assert_eq!(
            pct(PrimaryMetric::AccAndF1.evaluate(&p, &g, 2, None)["primary"]),
            45.32
        );
        let (p, g) = constant(14885, 40430, 0);
        assert_eq!(
            pct(PrimaryMetric::AccAndF1.evaluate(&p, &g, 2, None)["primary"]),
            31.59
        );
    }

    #[test]
    fn mrpc_all_positive_is_74_8() {
        let (p, g) = constant(279, 408, 1);
        let m = PrimaryMetric::AccAndF1.evaluate(&p, &g, 2, None);
        assert_eq!((m["primary"] * 1000.0).round() / 10.0, 74.8);
        assert_eq!((m["accuracy"] * 1000.0).round() / 10.0, 68.4);
        assert_eq!((m["f1"] * 1000.0).round() / 10.0, 81.2);
    }

    #[test]
    fn cb_all_contradiction_is_36_1() {
        // CB test: 23 entailment (0), 28 contradiction (1), 5 neutral (2).
        let gold: Vec<usize> = [vec![0; 23], vec![1; 28], vec![2; 5]].concat();
        let pred = vec![1; 56];
        let m = PrimaryMetric::AccAndMacroF1.evaluate(&pred, &gold, 3, None);
        assert_eq!((m["primary"] * 1000.0).round() / 10.0, 36.1);
        assert!((m["macro_f1"] - (2.0 / 3.0) / 3.0).abs() < 1e-12);
    }

    #[test]
    fn mcc_values() {
        let (p, g) = constant(721, 1043, 1);
        assert_eq!(matthews(&p, &g, 2), 0.0, "constant predictor: 0/0 = 0");
        // Hand-computed: TP 3, TN 2, FP 1, FN 1 → (6 − 1)/√(4·3·4·3) = 5/12.
        let gold = [1, 1, 1, 1, 0, 0, 0];
        let pred = [1, 1, 1, 0, 1, 0, 0];
        assert!((matthews(&pred, &gold, 2) - 5.0 / 12.0).abs() < 1e-12);
        assert!((matthews(&gold, &gold, 2) - 1.0).abs() < 1e-12);
        let inverted: Vec<usize> = gold.iter().map(|g| 1 - g).collect();
        assert!((matthews(&inverted, &gold, 2) + 1.0).abs() < 1e-12);
    }

    #[test]
    fn f1_edge_cases() {
        assert_eq!(f1(&[0, 0, 0], &[1, 0, 1], 1), 0.0, "no predicted positives");
        // TP 1, FP 1, FN 1 → P = R = 0.5 → F1 0.5.
        assert!((f1(&[1, 1, 0], &[1, 0, 1], 1) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn multirc_exact_match_groups_by_question() {
        let question = [7, 7, 7, 9, 9, 4];
        let gold = [1, 0, 1, 0, 1, 0];
        let pred = [1, 0, 1, 0, 0, 0]; // q7 all right, q9 wrong, q4 right
        let m = PrimaryMetric::EmAndF1a.evaluate(&pred, &gold, 2, Some(&question));
        assert!((m["em"] - 2.0 / 3.0).abs() < 1e-12);
        // F1a: TP 2, FP 0, FN 1 → P 1, R 2/3 → 0.8.
        assert!((m["f1a"] - 0.8).abs() < 1e-12);
        assert!((m["primary"] - (2.0 / 3.0 + 0.8) / 2.0).abs() < 1e-12);
    }
}
