//! The rule replayed over a store (`stab analyze sequential DIR`, and the report of a
//! sequential grid): each arm's scores taken in seed order, look after look, as a
//! sequential grid would have seen them. Arms are the report's rows
//! ([`Grouping`](crate::report::finetune::Grouping)), each compared with the baseline's
//! row of the same task and sweep cell.

use std::collections::BTreeMap;

use serde::Serialize;
use stab_core::RunRecord;
use stab_core::sequential::SequentialDesign;

use super::{Comparison, Decision, Rule, score};
use crate::report::finetune::Grouping;

/// One arm on one question.
#[derive(Debug, Clone, Serialize)]
pub struct ArmReplay {
    pub task: String,
    /// The report's row label of the arm (method, parameters, sweep cell).
    pub method: String,
    pub question: &'static str,
    pub decision: Decision,
    /// Seeds per arm at the deciding (or last) look.
    pub n: usize,
    /// Looks made.
    pub rounds: usize,
    /// Scored seeds the store holds for the arm.
    pub available: usize,
    /// Seeds the store holds beyond those the rule used (what a sequential grid saves).
    pub saved: usize,
    /// Seeds the next look needs when the store ran out before a decision.
    pub next_n: Option<usize>,
    pub p: f64,
    pub level: f64,
    /// SD ratio (mean absolute deviations) or mean difference, at the last look.
    pub estimate: f64,
}

/// The rule over a whole store.
#[derive(Debug, Clone, Serialize)]
pub struct SequentialReplay {
    pub design: SequentialDesign,
    /// Comparisons alpha was shared over (arms × questions).
    pub comparisons: usize,
    pub arms: Vec<ArmReplay>,
    /// Per (task, baseline row): seeds the baseline needed (its longest arm's) and held.
    pub baselines: Vec<BaselineUse>,
    /// Runs in the store the rule never looked at (arms' and baselines').
    pub runs_saved: usize,
    /// Scored runs of the compared arms and baselines in the store.
    pub runs_available: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct BaselineUse {
    pub task: String,
    pub method: String,
    pub n: usize,
    pub available: usize,
}

/// A report row: its sweep part and its scores by seed (`None`: diverged).
type Row = (String, BTreeMap<u64, Option<f64>>);

/// (task, row label) → row.
type Rows = BTreeMap<(String, String), Row>;

/// The records as the report's rows.
fn rows(records: &[&RunRecord]) -> Rows {
    let grouping = Grouping::of(records);
    let mut rows = Rows::new();
    for r in records {
        let (label, sweep) = grouping.label(r, None);
        rows.entry((r.task.clone(), label))
            .or_insert_with(|| (sweep, BTreeMap::new()))
            .1
            .insert(r.seed, score(r));
    }
    rows
}

/// A row's scores in seed order, diverged runs left out.
fn ordered(rows: &Rows, task: &str, label: &str) -> Vec<f64> {
    rows[&(task.to_string(), label.to_string())]
        .1
        .values()
        .flatten()
        .copied()
        .collect()
}

/// (task, arm row, baseline row) for every row with a baseline row in its cell.
fn pairs(rows: &Rows, design: &SequentialDesign) -> Vec<(String, String, String)> {
    rows.iter()
        .filter_map(|((task, label), (sweep, _))| {
            let base = format!("{}{sweep}", design.baseline);
            (*label != base && rows.contains_key(&(task.clone(), base.clone())))
                .then(|| (task.clone(), label.clone(), base))
        })
        .collect()
}

/// One arm's outcomes on every question, and the seeds the rule used of it. An arm the
/// store ran out on before a decision used every seed there is (the rule wanted more):
/// none is saved.
fn replay_arm(
    outcomes: &[super::Outcome],
    task: &str,
    label: &str,
    a: &[f64],
    b: &[f64],
) -> (Vec<ArmReplay>, usize) {
    let used = outcomes
        .iter()
        .map(|o| {
            if o.next_n.is_some() {
                a.len().max(b.len())
            } else {
                o.n
            }
        })
        .max()
        .unwrap_or(0);
    let saved = a.len() - used.min(a.len());
    let out = outcomes
        .iter()
        .map(|o| ArmReplay {
            task: task.to_string(),
            method: label.to_string(),
            question: o.question,
            decision: o.decision,
            n: o.n,
            rounds: o.rounds,
            available: a.len(),
            saved,
            next_n: o.next_n,
            p: o.p,
            level: o.level,
            estimate: o.estimate,
        })
        .collect();
    (out, used)
}

/// Replay `design` over `records` (fine-tuning runs; the latest record of each run): all
/// arms together, as one grid shares alpha.
pub fn replay(records: &[&RunRecord], design: &SequentialDesign) -> SequentialReplay {
    let rows = rows(records);
    let pairs = pairs(&rows, design);
    let rule = Rule::new(design);
    let questions = design.question.asked();
    let scores: Vec<(Vec<f64>, Vec<f64>)> = pairs
        .iter()
        .map(|(task, label, base)| (ordered(&rows, task, label), ordered(&rows, task, base)))
        .collect();
    let comparisons: Vec<Comparison> = scores
        .iter()
        .flat_map(|(a, b)| {
            questions.iter().map(move |&question| Comparison {
                question,
                arm: a,
                base: b,
            })
        })
        .collect();
    let outcomes = rule.replay_grid(&comparisons);
    let mut arms = Vec::new();
    let (mut base_n, mut arm_avail, mut arm_saved) =
        (BTreeMap::<(String, String), usize>::new(), 0, 0);
    for (((task, label, base), (a, b)), outcomes) in pairs
        .iter()
        .zip(&scores)
        .zip(outcomes.chunks(questions.len()))
    {
        let (replayed, used) = replay_arm(outcomes, task, label, a, b);
        arm_avail += a.len();
        arm_saved += replayed[0].saved;
        arms.extend(replayed);
        let e = base_n.entry((task.clone(), base.clone())).or_default();
        *e = (*e).max(used);
    }
    let baselines: Vec<BaselineUse> = base_n
        .into_iter()
        .map(|((task, method), n)| {
            let available = ordered(&rows, &task, &method).len();
            BaselineUse {
                n: n.min(available),
                task,
                method,
                available,
            }
        })
        .collect();
    let runs_saved = arm_saved + baselines.iter().map(|b| b.available - b.n).sum::<usize>();
    let runs_available = arm_avail + baselines.iter().map(|b| b.available).sum::<usize>();
    SequentialReplay {
        design: design.clone(),
        comparisons: comparisons.len(),
        arms,
        baselines,
        runs_saved,
        runs_available,
    }
}

/// The design of a sequential grid's records, if the store holds one (the latest run's).
pub fn recorded_design(records: &[&RunRecord]) -> Option<SequentialDesign> {
    records
        .iter()
        .rev()
        .find_map(|r| r.sequential.as_ref().map(|m| m.design.clone()))
}

impl SequentialReplay {
    /// Each arm's decision, seeds and rounds as a table.
    pub fn table(&self) -> crate::report::table::Table {
        let header = [
            "task", "method", "question", "decision", "seeds", "rounds", "in store", "saved",
            "estimate", "p", "level",
        ];
        let rows = self
            .arms
            .iter()
            .map(|a| {
                let decision = match (a.decision, a.next_n) {
                    (Decision::Undecided, Some(n)) => format!("undecided (next look at {n} seeds)"),
                    (d, _) => d.name().to_string(),
                };
                let estimate = if a.question == "sd" {
                    format!("SD ratio {:.2}", a.estimate)
                } else {
                    format!("{:+.2} points", a.estimate)
                };
                vec![
                    a.task.clone(),
                    a.method.clone(),
                    a.question.to_string(),
                    decision,
                    a.n.to_string(),
                    a.rounds.to_string(),
                    a.available.to_string(),
                    a.saved.to_string(),
                    estimate,
                    fmt_p(a.p),
                    fmt_p(a.level),
                ]
            })
            .collect();
        crate::report::table::Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows,
        }
    }

    /// The replay as a report section.
    pub fn document(&self, heading: &str) -> crate::report::doc::Doc {
        let d = &self.design;
        let mut doc = crate::report::doc::Doc::new();
        doc.heading(heading);
        doc.paragraph(format!(
            "Each arm against {} on the same task, its seeds taken in seed order: a look at {} seeds, then every {} more up to {}; \
             *lower*/*higher* is decided when Brown–Forsythe's permutation p-value (SD) or Welch's (mean) falls below the look's level \
             (alpha = {} spent over the looks by {}, shared over {} comparisons by Holm's rule: a rejection passes its share on), \
             *no_difference* when the SD ratio lies within ({}, {:.2}) at the look's share of beta = {} (docs/methods.md §13.6). \
             Lower SD is more stable.",
            d.baseline, d.min, d.step, d.max, d.alpha, d.spending, self.comparisons, d.smallest_ratio, 1.0 / d.smallest_ratio, d.beta
        ));
        doc.table(self.table());
        let decided = self.arms.iter().filter(|a| a.decision.is_decided()).count();
        let mut items = vec![format!(
            "{decided} of {} comparisons decided.",
            self.arms.len()
        )];
        for b in &self.baselines {
            items.push(format!(
                "{} {}: the baseline needed {} of its {} seeds.",
                b.task, b.method, b.n, b.available
            ));
        }
        if self.runs_saved > 0 {
            items.push(format!(
                "A sequential grid would have run {} of these {} runs ({} saved, {:.0}%).",
                self.runs_available - self.runs_saved,
                self.runs_available,
                self.runs_saved,
                100.0 * self.runs_saved as f64 / self.runs_available.max(1) as f64
            ));
        }
        doc.list(items);
        doc
    }
}

fn fmt_p(p: f64) -> String {
    if !p.is_finite() {
        "–".into()
    } else if p < 1e-4 {
        format!("{p:.1e}")
    } else {
        format!("{p:.4}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(method: &str, seed: u64, primary: f64) -> RunRecord {
        serde_json::from_value(serde_json::json!({
            "run_id": format!("{method}-{seed}"), "recipe": "r", "task": "cb", "method": method,
            "method_params": {}, "seed": seed, "mode": "head", "sweep": {},
            "metrics": {"primary": primary}, "dev_best": null, "best_step": null, "steps": 1,
            "wall_s": 0.0, "stab_version": "0"
        }))
        .unwrap()
    }

    #[test]
    fn a_store_too_small_for_the_first_look_saves_nothing_and_names_the_next_look() {
        let records: Vec<RunRecord> = (0..3)
            .flat_map(|s| {
                [
                    rec("finetune", s, 0.5 + 0.01 * s as f64),
                    rec("mmr", s, 0.6 - 0.02 * s as f64),
                ]
            })
            .collect();
        let refs: Vec<&RunRecord> = records.iter().collect();
        let r = replay(&refs, &SequentialDesign::default());
        assert_eq!(r.arms.len(), 1);
        let a = &r.arms[0];
        assert_eq!(
            (a.decision, a.n, a.next_n, a.saved),
            (Decision::Undecided, 0, Some(5), 0)
        );
        assert_eq!((r.runs_saved, r.runs_available), (0, 6));
        assert_eq!(r.baselines[0].n, 3);
    }
}
