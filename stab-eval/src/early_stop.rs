//! `stop_failed` replayed on stored dev curves (`stab analyze stop-failed`): which finished
//! runs the rule would have stopped, whether any of them would have recovered, and the
//! updates it would have saved (docs/methods.md §13.1).

use std::collections::BTreeMap;

use serde::Serialize;
use stab_core::RunRecord;

/// The majority-class primary scores of one task's dev and test splits.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Majority {
    pub dev: f64,
    pub test: f64,
}

/// One (task, method) row.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StopRow {
    pub task: String,
    pub method: String,
    pub runs: usize,
    /// Runs the rule stops.
    pub stopped: usize,
    /// Of those, runs whose dev score later rose above the majority.
    pub recovered_dev: usize,
    /// Of those, runs whose best dev evaluation came after the stop: the only runs whose
    /// record the stop changes (a stopped run keeps its best-dev weights, so a run whose
    /// best came before the stop is recorded with the same test scores).
    pub changed: usize,
    /// Of the changed runs, those whose full run ended above the test majority: at most
    /// this many good runs the rule would have turned into worse ones.
    pub good_lost: usize,
    /// Runs that are failed at the end (test at or below the majority).
    pub failed: usize,
    pub updates: u64,
    pub updates_saved: u64,
}

/// `stop_failed = { after = K }`: evaluations in a row, after warmup, at or below the
/// majority-class dev score; a NaN score counts as below. The engine stops a run with it;
/// [`stop_step`] replays it on a stored curve.
#[derive(Debug, Clone)]
pub struct FailedWatch {
    pub after: u64,
    pub majority_dev: f64,
    /// Evaluations at or before this update do not count.
    pub warmup: u64,
    below: u64,
}

impl FailedWatch {
    pub fn new(after: u64, majority_dev: f64, warmup: u64) -> Self {
        Self {
            after: after.max(1),
            majority_dev,
            warmup,
            below: 0,
        }
    }

    /// Whether the run has now failed, counting the evaluation at `step`.
    pub fn observe(&mut self, step: u64, dev: f64) -> bool {
        if step <= self.warmup {
            return false;
        }
        if dev.is_nan() || dev <= self.majority_dev + 1e-12 {
            self.below += 1;
        } else {
            self.below = 0;
        }
        self.below >= self.after
    }
}

/// The update at which `stop_failed = { after }` stops a run with this dev curve, or `None`.
pub fn stop_step(curve: &[(u64, f64)], warmup: u64, majority_dev: f64, after: u64) -> Option<u64> {
    let mut watch = FailedWatch::new(after, majority_dev, warmup);
    curve
        .iter()
        .find(|&&(step, dev)| watch.observe(step, dev))
        .map(|&(step, _)| step)
}

/// Replay the rule over every fine-tuning record with a dev curve; `label` names a
/// record's row (the report's row label).
pub fn replay(
    records: &[&RunRecord],
    majority: &BTreeMap<String, Majority>,
    after: u64,
    label: impl Fn(&RunRecord) -> String,
) -> Vec<StopRow> {
    let mut rows: BTreeMap<(String, String), StopRow> = BTreeMap::new();
    for r in records {
        let Some(m) = majority.get(&r.task) else {
            continue;
        };
        let curve: Vec<(u64, f64)> = r.details["dev_curve"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| {
                        Some((p.get(0)?.as_u64()?, p.get(1)?.as_f64().unwrap_or(f64::NAN)))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let warmup = r.details["warmup_steps"].as_u64().unwrap_or(0);
        let method = label(r);
        let row = rows
            .entry((r.task.clone(), method.clone()))
            .or_insert_with(|| StopRow {
                task: r.task.clone(),
                method,
                ..Default::default()
            });
        let test = r.metrics.get("primary").copied().unwrap_or(f64::NAN);
        row.runs += 1;
        row.updates += r.steps;
        if test.is_nan() || test <= m.test + 1e-12 {
            row.failed += 1;
        }
        if let Some(step) = stop_step(&curve, warmup, m.dev, after) {
            row.stopped += 1;
            row.updates_saved += r.steps.saturating_sub(step);
            if curve.iter().any(|&(s, d)| s > step && d > m.dev + 1e-12) {
                row.recovered_dev += 1;
            }
            if r.best_step.is_some_and(|b| b > step) {
                row.changed += 1;
                if test > m.test + 1e-12 {
                    row.good_lost += 1;
                }
            }
        }
    }
    rows.into_values().collect()
}

/// The rows as a table, with a total.
pub fn table(rows: &[StopRow]) -> crate::report::table::Table {
    let mut out: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.task.clone(),
                r.method.clone(),
                r.runs.to_string(),
                r.failed.to_string(),
                r.stopped.to_string(),
                r.recovered_dev.to_string(),
                r.changed.to_string(),
                r.good_lost.to_string(),
                format!("{} of {}", r.updates_saved, r.updates),
            ]
        })
        .collect();
    let sum = |f: fn(&StopRow) -> u64| rows.iter().map(f).sum::<u64>();
    out.push(vec![
        "all".into(),
        String::new(),
        sum(|r| r.runs as u64).to_string(),
        sum(|r| r.failed as u64).to_string(),
        sum(|r| r.stopped as u64).to_string(),
        sum(|r| r.recovered_dev as u64).to_string(),
        sum(|r| r.changed as u64).to_string(),
        sum(|r| r.good_lost as u64).to_string(),
        format!("{} of {}", sum(|r| r.updates_saved), sum(|r| r.updates)),
    ]);
    crate::report::table::Table {
        header: [
            "task",
            "method",
            "runs",
            "failed",
            "stopped",
            "dev recovered later",
            "record changed (best dev after the stop)",
            "of those, good runs",
            "updates saved",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        rows: out,
    }
}

#[cfg(test)]
mod tests {
    use super::{FailedWatch, stop_step};

    #[test]
    fn a_run_fails_after_k_evaluations_in_a_row_at_or_below_the_majority_after_warmup() {
        let mut w = FailedWatch::new(3, 0.5, 10);
        // During warmup nothing counts.
        assert!(!w.observe(5, 0.1) && !w.observe(10, 0.1));
        // Two at the majority, a recovery resets, then three in a row (NaN counts).
        assert!(!w.observe(11, 0.5) && !w.observe(12, 0.4) && !w.observe(13, 0.6));
        assert!(!w.observe(14, 0.5) && !w.observe(15, f64::NAN));
        assert!(w.observe(16, 0.3));
    }

    #[test]
    fn stops_after_k_in_a_row_past_warmup() {
        let curve = [
            (10, 0.3),
            (20, 0.3),
            (30, 0.3),
            (40, 0.6),
            (50, 0.3),
            (60, 0.2),
            (70, 0.3),
        ];
        assert_eq!(stop_step(&curve, 10, 0.5, 3), Some(70));
        assert_eq!(stop_step(&curve, 0, 0.5, 3), Some(30));
        assert_eq!(stop_step(&curve, 0, 0.1, 3), None);
    }
}
