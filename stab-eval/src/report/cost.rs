//! What each configuration cost against FineTune on the same task: the median wall time
//! of a run, and the median time per update (`wall_s / steps`), which stays comparable
//! when early stopping or a different epoch count changes the number of updates.
//!
//! Medians, not means: one run slowed by a busy machine moves a mean, not a median.
//! A record's wall time covers the whole run (loading, any preparation pass such as
//! ChildTuning-D's Fisher estimate, training, evaluation, test), so the per-update figure
//! charges a method's preparation to its updates.

use std::collections::BTreeMap;

use serde::Serialize;
use stab_core::RunRecord;

use super::finetune::{BASELINE, group_labels};
use super::table::Table;
use crate::variance::median;

/// One (task, configuration) of the cost table.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CostRow {
    pub task: String,
    pub method: String,
    pub runs: usize,
    /// Median wall time of a run, seconds.
    pub wall_s: f64,
    /// Median wall time per update, seconds.
    pub s_per_update: f64,
    /// `wall_s` over FineTune's at the same task and sweep values.
    pub wall_ratio: Option<f64>,
    /// `s_per_update` over FineTune's.
    pub update_ratio: Option<f64>,
    /// The thread counts the runs reported (a ratio across counts is not a like one).
    pub threads: Vec<usize>,
}

/// Per (task, configuration): wall times and time per update of the finished runs.
pub fn cost_rows(records: &[&RunRecord]) -> Vec<CostRow> {
    type Times = (Vec<f64>, Vec<f64>, Vec<usize>);
    let labels = group_labels(records);
    let mut cells: BTreeMap<(String, String), (Times, String)> = BTreeMap::new();
    for (r, (label, sweep)) in records.iter().zip(labels) {
        if r.steps == 0 || !r.wall_s.is_finite() || r.wall_s <= 0.0 {
            continue;
        }
        let ((wall, per_update, threads), _) = cells
            .entry((r.task.clone(), label))
            .or_insert_with(|| (Default::default(), sweep));
        wall.push(r.wall_s);
        per_update.push(r.wall_s / r.steps as f64);
        if !threads.contains(&r.threads) {
            threads.push(r.threads);
        }
    }
    let medians: BTreeMap<(String, String), (f64, f64)> = cells
        .iter()
        .map(|(k, ((w, u, _), _))| (k.clone(), (median(w), median(u))))
        .collect();
    cells
        .into_iter()
        .map(|((task, method), ((wall, _, mut threads), sweep))| {
            let (w, u) = medians[&(task.clone(), method.clone())];
            let base = medians.get(&(task.clone(), format!("{BASELINE}{sweep}")));
            threads.sort_unstable();
            CostRow {
                wall_ratio: base.map(|(bw, _)| w / bw),
                update_ratio: base.map(|(_, bu)| u / bu),
                task,
                method,
                runs: wall.len(),
                wall_s: w,
                s_per_update: u,
                threads,
            }
        })
        .collect()
}

/// The cost rows for the JSON report: `cost[task][method]` = the row without its keys.
pub fn cost_json(records: &[&RunRecord]) -> serde_json::Value {
    let mut doc = serde_json::Map::new();
    for row in cost_rows(records) {
        let mut cell = serde_json::to_value(&row).expect("cost rows serialise");
        if let Some(obj) = cell.as_object_mut() {
            obj.remove("task");
            obj.remove("method");
        }
        let by_task = doc
            .entry(row.task.clone())
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
        by_task[row.method.as_str()] = cell;
    }
    serde_json::Value::Object(doc)
}

/// The cost rows as a table.
pub fn cost_table(rows: &[CostRow]) -> Table {
    let ratio = |x: Option<f64>| x.map_or_else(|| "–".to_string(), |x| format!("{x:.2}×"));
    let header = [
        "task",
        "method",
        "runs",
        "median wall s",
        "× FineTune",
        "median s/update",
        "× FineTune",
        "threads",
    ];
    Table {
        header: header.iter().map(|h| h.to_string()).collect(),
        rows: rows
            .iter()
            .map(|r| {
                let threads: Vec<String> = r.threads.iter().map(usize::to_string).collect();
                vec![
                    r.task.clone(),
                    r.method.clone(),
                    r.runs.to_string(),
                    format!("{:.1}", r.wall_s),
                    ratio(r.wall_ratio),
                    format!("{:.3}", r.s_per_update),
                    ratio(r.update_ratio),
                    threads.join(", "),
                ]
            })
            .collect(),
    }
}

/// The report's cost section (empty without timed runs).
pub fn cost_section(records: &[&RunRecord]) -> super::doc::Doc {
    let mut doc = super::doc::Doc::new();
    let rows = cost_rows(records);
    if rows.is_empty() {
        return doc;
    }
    doc.section(
        "Cost against FineTune",
        "Median wall time of a run and per update (wall time over updates, so early stopping does not flatter a method), each against FineTune's on the same task. A run's wall time includes loading, any preparation pass, evaluation and the test; runs that shared a busy machine inflate it, so compare medians of runs made alike.",
        cost_table(&rows),
    );
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(task: &str, method: &str, seed: u64, wall_s: f64, steps: u64) -> RunRecord {
        let mut r = crate::report::finetune::tests::rec(task, method, 0.5);
        r.run_id = format!("{task}-{method}-s{seed}");
        r.seed = seed;
        r.wall_s = wall_s;
        r.steps = steps;
        r.threads = 2;
        r
    }

    #[test]
    fn medians_and_ratios_against_finetune() {
        let records = [
            rec("cb", "finetune", 0, 100.0, 150),
            rec("cb", "finetune", 1, 120.0, 150),
            rec("cb", "finetune", 2, 900.0, 150), // a contended run: the median ignores it
            rec("cb", "sam", 0, 200.0, 150),
            rec("cb", "sam", 1, 260.0, 150),
            rec("cb", "sam", 2, 220.0, 100), // stopped early: 2.2 s per update
            rec("rte", "sam", 0, 50.0, 10),
        ];
        let refs: Vec<&RunRecord> = records.iter().collect();
        let rows = cost_rows(&refs);
        assert_eq!(rows.len(), 3);
        let ft = &rows[0];
        assert_eq!(
            (ft.method.as_str(), ft.runs, ft.wall_s),
            ("finetune", 3, 120.0)
        );
        assert!((ft.s_per_update - 0.8).abs() < 1e-12);
        assert_eq!(ft.wall_ratio, Some(1.0));
        let sam = &rows[1];
        assert_eq!(sam.wall_s, 220.0);
        // per update: 200/150, 260/150, 2.2 → median 260/150
        assert!((sam.s_per_update - 260.0 / 150.0).abs() < 1e-12);
        assert!((sam.wall_ratio.unwrap() - 220.0 / 120.0).abs() < 1e-12);
        assert!((sam.update_ratio.unwrap() - (260.0 / 150.0) / 0.8).abs() < 1e-12);
        // No FineTune on RTE: no ratio.
        assert_eq!(rows[2].task, "rte");
        assert_eq!(rows[2].update_ratio, None);
        let md = cost_section(&refs).markdown();
        assert!(md.contains("## Cost against FineTune"), "{md}");
        assert!(md.contains("1.83×"), "{md}");
        let json = cost_json(&refs);
        assert_eq!(json["cb"]["sam"]["runs"], 3);
        assert_eq!(json["cb"]["finetune"]["wall_ratio"], 1.0);
        assert!(json["rte"]["sam"]["update_ratio"].is_null());
    }

    #[test]
    fn runs_without_updates_or_time_are_left_out() {
        let records = [
            rec("cb", "finetune", 0, 0.0, 150),
            rec("cb", "finetune", 1, 10.0, 0),
        ];
        let refs: Vec<&RunRecord> = records.iter().collect();
        assert!(cost_rows(&refs).is_empty());
        assert!(cost_section(&refs).is_empty());
    }
}
