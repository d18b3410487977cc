//! The paper's results tables for fine-tuning runs (methods-spec §4.2): per task and
//! method, mean ± SD over seeds of the test primary metric ×100; the AVG column is the
//! mean of the per-task means, its "±" the mean of the per-task SDs (§3.2).

use std::collections::BTreeMap;

use stab_core::RunRecord;

use super::table::{Table, csv_field};
use crate::stats::Summary;

/// Scores grouped as method → task → per-seed primary metrics (×100).
#[derive(Debug, Clone, Default)]
pub struct FinetuneTable {
    pub cells: BTreeMap<String, BTreeMap<String, Vec<f64>>>,
}

fn group_name(r: &RunRecord) -> String {
    let mut name = r.method.clone();
    for (k, v) in &r.sweep {
        name.push_str(&format!(" {k}={v}"));
    }
    name
}

impl FinetuneTable {
    pub fn from_records(records: &[&RunRecord]) -> Self {
        let mut cells: BTreeMap<String, BTreeMap<String, Vec<f64>>> = BTreeMap::new();
        for r in records {
            if let Some(p) = r.metrics.get("primary") {
                cells
                    .entry(group_name(r))
                    .or_default()
                    .entry(r.task.clone())
                    .or_default()
                    .push(100.0 * p);
            }
        }
        Self { cells }
    }

    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    fn tasks(&self) -> Vec<String> {
        let mut t: Vec<String> = self
            .cells
            .values()
            .flat_map(|m| m.keys().cloned())
            .collect();
        t.sort();
        t.dedup();
        t
    }

    pub fn table(&self) -> Table {
        let tasks = self.tasks();
        let mut header = vec!["method".to_string()];
        header.extend(tasks.iter().cloned());
        header.push("AVG".to_string());
        let rows = self
            .cells
            .iter()
            .map(|(method, by_task)| {
                let mut row = vec![method.clone()];
                let (mut means, mut sds) = (Vec::new(), Vec::new());
                for t in &tasks {
                    match by_task.get(t) {
                        Some(v) => {
                            let s = Summary::of(v);
                            means.push(s.mean);
                            sds.push(s.sd);
                            row.push(format!("{:.2}±{:.2} (n={})", s.mean, s.sd, s.n));
                        }
                        None => row.push("–".to_string()),
                    }
                }
                let avg = Summary::of(&means).mean;
                let avg_sd = Summary::of(&sds).mean;
                row.push(if means.len() == tasks.len() {
                    format!("{avg:.2}±{avg_sd:.2}")
                } else {
                    "–".to_string()
                });
                row
            })
            .collect();
        Table { header, rows }
    }

    pub fn markdown(&self) -> String {
        format!(
            "## Fine-tuning: test primary metric ×100, mean ± SD over seeds\n\n{}\n",
            self.table().markdown()
        )
    }

    pub fn latex(&self) -> String {
        self.table()
            .latex("Fine-tuning: test primary metric x100, mean ± SD over seeds")
    }

    pub fn csv(&self) -> String {
        let mut out = "method,task,seeds,mean,sd\n".to_string();
        for (method, by_task) in &self.cells {
            for (task, v) in by_task {
                let s = Summary::of(v);
                out.push_str(&format!(
                    "{},{},{},{},{}\n",
                    csv_field(method),
                    csv_field(task),
                    s.n,
                    s.mean,
                    s.sd
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stab_core::RecipeKind;

    fn rec(task: &str, method: &str, primary: f64) -> RunRecord {
        RunRecord {
            run_id: format!("{task}-{method}-{primary}"),
            recipe: "r".into(),
            kind: RecipeKind::Finetune,
            task: task.into(),
            method: method.into(),
            method_params: Default::default(),
            seed: 0,
            mode: None,
            sweep: Default::default(),
            metrics: [("primary".to_string(), primary)].into(),
            dev_best: None,
            best_step: None,
            steps: 1,
            wall_s: 0.0,
            stab_version: "t".into(),
            threads: 1,
            synthetic: None,
            diverged: false,
            seeds: None,
            split: None,
            details: serde_json::Value::Null,
        }
    }

    #[test]
    fn avg_is_mean_of_means_and_mean_of_sds() {
        let rs = [
            rec("cb", "mmr", 0.80),
            rec("cb", "mmr", 0.90),
            rec("rte", "mmr", 0.70),
            rec("rte", "mmr", 0.70),
        ];
        let refs: Vec<&RunRecord> = rs.iter().collect();
        let t = FinetuneTable::from_records(&refs).table();
        assert_eq!(t.header, ["method", "cb", "rte", "AVG"]);
        // cb: 85 ± 7.07; rte: 70 ± 0 → AVG 77.50 ± 3.54.
        assert_eq!(t.rows[0][1], "85.00±7.07 (n=2)");
        assert_eq!(t.rows[0][3], "77.50±3.54");
    }
}
