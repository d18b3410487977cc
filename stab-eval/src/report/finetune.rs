//! The paper's results tables for fine-tuning runs (docs/methods.md §4.2): per task and
//! method, mean ± SD over seeds of the test primary metric ×100; the AVG column is the
//! mean of the per-task means, its "±" the mean of the per-task SDs (§3.2).

use std::collections::BTreeMap;

use stab_core::RunRecord;

use super::doc::Doc;
use super::plot::{Series, line_plot};
use super::table::{Table, csv_field};
use crate::stats::Summary;
use crate::variance::{bootstrap_sd_interval, brown_forsythe, expected_max, holm};

/// (sweep key, method label without the sweep, task).
pub type SweptCell = (String, String, String);
/// Swept value (by its bits) → (value, per-seed scores ×100).
pub type SweptScores = BTreeMap<u64, (f64, Vec<f64>)>;

/// Scores grouped as method → task → per-seed primary metrics (×100).
#[derive(Debug, Clone, Default)]
pub struct FinetuneTable {
    pub cells: BTreeMap<String, BTreeMap<String, Vec<f64>>>,
    /// Each row label's sweep part (" model.pooling=\"mean\"", or empty): a method is
    /// compared with FineTune at the same sweep values.
    pub sweeps: BTreeMap<String, String>,
    /// Scores of runs with exactly one numeric sweep value, for the sd-vs-factor plots:
    /// (sweep key, method label without the sweep, task) → value → scores.
    pub swept: BTreeMap<SweptCell, SweptScores>,
    /// Variance attribution by seed component, where the grid varies one at a time.
    pub attribution: Vec<super::attribution::Attribution>,
    /// (row label, task) → runs at or below the majority-class test score, filled from
    /// the report's findings ([`super::findings::Findings::failed_counts`]).
    pub failed: BTreeMap<(String, String), usize>,
}

/// A row label: the method, the parameters in which its runs differ from other runs of
/// the same method (`mixout variant=author p=0.1`), and the sweep values.
fn group_name(r: &RunRecord, varying: &BTreeMap<String, Vec<String>>) -> (String, String) {
    group_name_without(r, varying, None)
}

/// [`group_name`] leaving out one sweep key.
fn group_name_without(
    r: &RunRecord,
    varying: &BTreeMap<String, Vec<String>>,
    skip: Option<&str>,
) -> (String, String) {
    let mut name = r.method.clone();
    for k in varying.get(&r.method).into_iter().flatten() {
        if let Some(v) = r.method_params.get(k) {
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            name.push_str(&format!(" {k}={v}"));
        }
    }
    let sweep: String = r
        .sweep
        .iter()
        .filter(|(k, _)| Some(k.as_str()) != skip)
        .map(|(k, v)| format!(" {k}={v}"))
        .collect();
    (format!("{name}{sweep}"), sweep)
}

/// Each record's row label and sweep part, in the order given.
pub fn group_labels(records: &[&RunRecord]) -> Vec<(String, String)> {
    let varying = varying_params(records);
    records.iter().map(|r| group_name(r, &varying)).collect()
}

/// Per method name, the parameters whose values differ between its runs.
fn varying_params(records: &[&RunRecord]) -> BTreeMap<String, Vec<String>> {
    let mut seen: BTreeMap<&str, BTreeMap<&str, Vec<&serde_json::Value>>> = BTreeMap::new();
    for r in records {
        for (k, v) in &r.method_params {
            let vals = seen.entry(&r.method).or_default().entry(k).or_default();
            if !vals.contains(&v) {
                vals.push(v);
            }
        }
    }
    seen.into_iter()
        .map(|(m, params)| {
            let keys = params
                .into_iter()
                .filter(|(_, vals)| vals.len() > 1)
                .map(|(k, _)| k.to_string())
                .collect();
            (m.to_string(), keys)
        })
        .collect()
}

impl FinetuneTable {
    pub fn from_records(records: &[&RunRecord]) -> Self {
        let mut cells: BTreeMap<String, BTreeMap<String, Vec<f64>>> = BTreeMap::new();
        let mut sweeps = BTreeMap::new();
        let mut swept: BTreeMap<SweptCell, SweptScores> = BTreeMap::new();
        let varying = varying_params(records);
        for r in records {
            if let Some(p) = r.metrics.get("primary") {
                let (label, sweep) = group_name(r, &varying);
                if let [(key, value)] = r.sweep.iter().collect::<Vec<_>>()[..]
                    && let Some(x) = value.as_f64()
                {
                    let base = label.strip_suffix(&sweep).unwrap_or(&label).to_string();
                    swept
                        .entry((key.clone(), base, r.task.clone()))
                        .or_default()
                        .entry(x.to_bits())
                        .or_insert_with(|| (x, Vec::new()))
                        .1
                        .push(100.0 * p);
                }
                sweeps.insert(label.clone(), sweep);
                cells
                    .entry(label)
                    .or_default()
                    .entry(r.task.clone())
                    .or_default()
                    .push(100.0 * p);
            }
        }
        let attribution = super::attribution::attribute(records, |r| {
            group_name_without(r, &varying, Some("train.fixed_seeds")).0
        });
        Self {
            cells,
            sweeps,
            swept,
            attribution,
            failed: BTreeMap::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }

    pub fn tasks(&self) -> Vec<String> {
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
                let mut single = false;
                for t in &tasks {
                    match by_task.get(t) {
                        Some(v) => {
                            let s = Summary::of(v);
                            means.push(s.mean);
                            sds.push(s.sd);
                            single |= s.n < 2;
                            let sd = (s.n > 1).then_some(s.sd);
                            let failed = match self.failed.get(&(method.clone(), t.clone())) {
                                Some(k) => format!(", {k} failed"),
                                None => String::new(),
                            };
                            row.push(format!("{} (n={}{failed})", mean_sd(s.mean, sd), s.n));
                        }
                        None => row.push("–".to_string()),
                    }
                }
                let avg = Summary::of(&means).mean;
                let avg_sd = Summary::of(&sds).mean;
                row.push(if means.len() == tasks.len() {
                    // The mean of the SDs is undefined when one task has a single seed.
                    mean_sd(avg, (!single).then_some(avg_sd))
                } else {
                    "–".to_string()
                });
                row
            })
            .collect();
        Table { header, rows }
    }

    pub fn markdown(&self) -> String {
        self.document().markdown()
    }

    /// The tables without the findings' sections and without plots (a library caller's
    /// quick view; `stab report` adds the findings).
    pub fn document(&self) -> Doc {
        let mut doc = self.main_section(false);
        let rows = self.stability();
        if !rows.is_empty() {
            doc.section(
                "Stability against FineTune",
                "Per task, each method's SD over seeds with a 95% percentile-bootstrap interval (2,000 resamples), its change against FineTune's SD, and the Brown–Forsythe test of equal variances (Levene, median-centred) with Holm's adjustment over the whole table. ↓ marks a lower SD; * marks a difference significant at 5% after adjustment.",
                stability_table(&rows),
            );
        }
        doc.append(self.attribution_section());
        doc.append(self.expected_max_section(false));
        doc
    }

    /// The mean ± SD table, and (with `plots`) the per-task violin plots after it.
    pub fn main_section(&self, plots: bool) -> Doc {
        let mut doc = Doc::new();
        doc.section(
            "Fine-tuning: test primary metric ×100, mean ± SD over seeds",
            "SD is the sample SD over seeds (ddof = 1); AVG is the mean of the per-task means ± the mean of the per-task SDs (the paper's convention). \"k failed\": runs at or below the score of always predicting the test split's majority class.",
            self.table(),
        );
        if plots {
            for t in self.tasks() {
                doc.plot(
                    format!("{t}: test score per seed"),
                    format!("violin-{t}.svg"),
                );
            }
        }
        doc
    }

    /// The variance attribution table, when the grid has one.
    pub fn attribution_section(&self) -> Doc {
        let mut doc = Doc::new();
        if self.attribution.is_empty() {
            return doc;
        }
        doc.section(
            "Variance attribution by seed component",
            "Runs that differ in one seed component only (the others pinned with `[train] fixed_seeds`): the pooled SD of the score ×100 due to each component, with the runs it rests on, and its share of the summed variance.",
            super::attribution::table(&self.attribution),
        );
        doc
    }

    /// The expected-max table, and (with `plots`) its per-task plots after it.
    pub fn expected_max_section(&self, plots: bool) -> Doc {
        let mut doc = Doc::new();
        doc.section(
            "Expected best test score of n runs",
            "E[max of n runs drawn from the observed seeds] ± its sd (Dodge et al. 2019): what a practitioner who keeps the best of n fine-tuning runs can expect.",
            self.expected_max_table(),
        );
        if plots {
            for t in self.tasks() {
                doc.plot(
                    format!("{t}: expected best of n runs"),
                    format!("expected-max-{t}.svg"),
                );
            }
        }
        doc
    }

    /// One violin plot per task (paper Fig. 10): `violin-<task>.svg`; for a numeric
    /// sweep, the SD over seeds against the swept value per task (paper Figs. 1–4):
    /// `sd-vs-<key>-<task>.svg`, one line per method; and the expected best score of n
    /// runs per task: `expected-max-<task>.svg`.
    pub fn plots(&self, dir: &std::path::Path) -> super::PlotsWritten {
        let mut out = super::PlotsWritten::default();
        let mut record = |path: std::path::PathBuf, r: anyhow::Result<()>| match r {
            Ok(()) => out.written.push(path),
            Err(e) => out.failed.push((path, format!("{e:#}"))),
        };
        let mut by_plot: BTreeMap<(String, String), Vec<Series>> = BTreeMap::new();
        for ((key, method, task), values) in &self.swept {
            let points: Vec<(f64, f64, f64)> = values
                .values()
                .filter(|(_, v)| v.len() >= 2)
                .map(|(x, v)| (*x, Summary::of(v).sd, 0.0))
                .collect();
            if points.len() >= 2 {
                by_plot
                    .entry((key.clone(), task.clone()))
                    .or_default()
                    .push(Series {
                        name: method.clone(),
                        points,
                    });
            }
        }
        for ((key, task), series) in &by_plot {
            let xs: Vec<f64> = series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.0))
                .collect();
            let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let log_x = lo > 0.0 && hi / lo >= 20.0;
            let safe = key.replace(|c: char| !c.is_ascii_alphanumeric(), "_");
            let path = dir.join(format!("sd-vs-{safe}-{task}.svg"));
            let r = line_plot(
                &path,
                &format!("{task}: SD over seeds vs {key}"),
                key,
                "SD of test ×100",
                series,
                log_x,
                false,
            );
            record(path, r);
        }
        for task in self.tasks() {
            let series: Vec<Series> = self
                .cells
                .iter()
                .filter_map(|(m, by_task)| {
                    let v = by_task.get(&task)?;
                    let points = (1..=v.len())
                        .map(|n| {
                            let (mean, var) = expected_max(v, n);
                            (n as f64, mean, var.sqrt())
                        })
                        .collect();
                    Some(Series {
                        name: m.clone(),
                        points,
                    })
                })
                .collect();
            let path = dir.join(format!("expected-max-{task}.svg"));
            let r = line_plot(
                &path,
                &format!("{task}: expected best test score of n runs"),
                "runs n",
                "E[max] of test ×100",
                &series,
                false,
                false,
            );
            record(path, r);
        }
        for task in self.tasks() {
            let groups: Vec<(String, Vec<f64>)> = self
                .cells
                .iter()
                .filter_map(|(m, by_task)| by_task.get(&task).map(|v| (m.clone(), v.clone())))
                .collect();
            let path = dir.join(format!("violin-{task}.svg"));
            match super::violin::violin_plot(
                &path,
                &format!("{task}: test primary metric ×100 per seed"),
                "test ×100",
                &groups,
            ) {
                Ok(()) => out.written.push(path),
                Err(e) => out.failed.push((path, format!("{e:#}"))),
            }
        }
        out
    }

    /// Expected best test score of n runs (Dodge et al. 2019) per task and method, for
    /// n = 1, 3, 5 and 10 (up to the number of seeds), as "mean ± sd".
    pub fn expected_max_table(&self) -> Table {
        let ns = [1usize, 3, 5, 10];
        let mut header = vec!["task".to_string(), "method".to_string()];
        header.extend(ns.iter().map(|n| format!("n = {n}")));
        let mut rows = Vec::new();
        for task in self.tasks() {
            for (method, by_task) in &self.cells {
                let Some(v) = by_task.get(&task) else {
                    continue;
                };
                let mut row = vec![task.clone(), method.clone()];
                for &n in &ns {
                    row.push(if n <= v.len() {
                        let (m, var) = expected_max(v, n);
                        if v.iter().any(|x| !x.is_finite()) {
                            "diverged run".to_string()
                        } else {
                            format!("{m:.2}±{:.2}", var.sqrt())
                        }
                    } else {
                        "–".to_string()
                    });
                }
                rows.push(row);
            }
        }
        Table { header, rows }
    }

    /// Every (task, method) with its SD compared with FineTune's on the same task.
    pub fn stability(&self) -> Vec<StabilityRow> {
        let mut rows = Vec::new();
        for (method, by_task) in &self.cells {
            let sweep = self.sweeps.get(method).cloned().unwrap_or_default();
            let baseline = format!("{BASELINE}{sweep}");
            if *method == baseline {
                continue;
            }
            let Some(base) = self.cells.get(&baseline) else {
                continue;
            };
            for (task, v) in by_task {
                let Some(b) = base.get(task) else { continue };
                if v.len() < 2 || b.len() < 2 {
                    continue;
                }
                let sd = Summary::of(v).sd;
                let base_sd = Summary::of(b).sd;
                let p = brown_forsythe(&[v, b]).map_or(f64::NAN, |(_, p)| p);
                rows.push(StabilityRow {
                    task: task.clone(),
                    method: method.clone(),
                    n: v.len(),
                    sd,
                    ci: bootstrap_sd_interval(v, 2000, 0.05, 0),
                    base_sd,
                    p,
                    p_holm: f64::NAN,
                });
            }
        }
        let tested: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].p.is_finite()).collect();
        let adjusted = holm(&tested.iter().map(|&i| rows[i].p).collect::<Vec<_>>());
        for (&i, a) in tested.iter().zip(adjusted) {
            rows[i].p_holm = a;
        }
        rows.sort_by(|a, b| (&a.task, &a.method).cmp(&(&b.task, &b.method)));
        rows
    }

    pub fn latex(&self) -> String {
        let mut out = self
            .table()
            .latex("Fine-tuning: test primary metric x100, mean ± SD over seeds");
        let rows = self.stability();
        if !rows.is_empty() {
            out.push_str(&stability_table(&rows).latex(
                "SD against FineTune: bootstrap 95% CI, Brown--Forsythe p, Holm-adjusted p",
            ));
        }
        out
    }

    /// One line per method and task: mean and SD over seeds, and (against FineTune) the
    /// bootstrap interval of the SD, FineTune's SD and the Brown–Forsythe p-values (empty
    /// for FineTune itself), then the `columns` named in `header` (`columns(method, task)`
    /// gives one line's fields, comma-separated).
    pub fn csv(&self, header: &str, columns: impl Fn(&str, &str) -> String) -> String {
        let stability: BTreeMap<(String, String), StabilityRow> = self
            .stability()
            .into_iter()
            .map(|r| ((r.method.clone(), r.task.clone()), r))
            .collect();
        let mut out = format!(
            "method,task,seeds,mean,sd,sd_ci_low,sd_ci_high,finetune_sd,p_brown_forsythe,p_holm,{header}\n"
        );
        for (method, by_task) in &self.cells {
            for (task, v) in by_task {
                let s = Summary::of(v);
                let extra = stability.get(&(method.clone(), task.clone())).map_or_else(
                    || ",,,,".to_string(),
                    |r| format!("{},{},{},{},{}", r.ci.0, r.ci.1, r.base_sd, r.p, r.p_holm),
                );
                out.push_str(&format!(
                    "{},{},{},{},{},{extra},{}\n",
                    csv_field(method),
                    csv_field(task),
                    s.n,
                    s.mean,
                    s.sd,
                    columns(method, task)
                ));
            }
        }
        out
    }
}

/// The method every other is compared with.
pub const BASELINE: &str = "finetune";

/// One method's SD on one task against FineTune's.
#[derive(Debug, Clone, PartialEq)]
pub struct StabilityRow {
    pub task: String,
    pub method: String,
    pub n: usize,
    pub sd: f64,
    /// 95% percentile-bootstrap interval of `sd`.
    pub ci: (f64, f64),
    pub base_sd: f64,
    /// Brown–Forsythe p-value (NaN when untestable, e.g. no spread at all).
    pub p: f64,
    /// Holm-adjusted over every row of the table.
    pub p_holm: f64,
}

fn stability_table(rows: &[StabilityRow]) -> Table {
    let header = [
        "task",
        "method",
        "n",
        "SD [95% CI]",
        "FineTune SD",
        "SD change",
        "p (B–F)",
        "p (Holm)",
    ]
    .map(String::from)
    .to_vec();
    let rows = rows
        .iter()
        .map(|r| {
            let change = if r.base_sd > 0.0 {
                let pct = 100.0 * (r.sd / r.base_sd - 1.0);
                let arrow = if pct < 0.0 { " ↓" } else { "" };
                let star = if r.p_holm < 0.05 { " *" } else { "" };
                format!("{pct:+.0}%{arrow}{star}")
            } else {
                "–".to_string()
            };
            let p = |v: f64| {
                if v.is_finite() {
                    format!("{v:.3}")
                } else {
                    "–".into()
                }
            };
            vec![
                r.task.clone(),
                r.method.clone(),
                r.n.to_string(),
                format!("{:.2} [{:.2}, {:.2}]", r.sd, r.ci.0, r.ci.1),
                format!("{:.2}", r.base_sd),
                change,
                p(r.p),
                p(r.p_holm),
            ]
        })
        .collect();
    Table { header, rows }
}

/// "mean±sd" with two decimals; an undefined SD (one run) is "n/a", and a non-finite
/// mean is a diverged run, not a number.
fn mean_sd(mean: f64, sd: Option<f64>) -> String {
    match sd {
        _ if !mean.is_finite() => "diverged".to_string(),
        None => format!("{mean:.2}±n/a"),
        Some(sd) => format!("{mean:.2}±{sd:.2}"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use stab_core::RecipeKind;

    /// A finished fine-tuning record with only the fields the tables read.
    pub(crate) fn rec(task: &str, method: &str, primary: f64) -> RunRecord {
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
            inputs: None,
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

    #[test]
    fn stability_rows_compare_each_sd_with_finetunes() {
        let mut rs = Vec::new();
        for (i, v) in [60.0, 70.0, 80.0, 65.0, 75.0, 55.0, 85.0, 70.0]
            .iter()
            .enumerate()
        {
            let mut r = rec("cb", "finetune", v / 100.0);
            r.run_id = format!("f{i}");
            rs.push(r);
        }
        for (i, v) in [70.0, 70.5, 69.5, 70.2, 69.8, 70.1, 69.9, 70.0]
            .iter()
            .enumerate()
        {
            let mut r = rec("cb", "mhloss", v / 100.0);
            r.run_id = format!("m{i}");
            rs.push(r);
        }
        let refs: Vec<&RunRecord> = rs.iter().collect();
        let table = FinetuneTable::from_records(&refs);
        let rows = table.stability();
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(
            (r.task.as_str(), r.method.as_str(), r.n),
            ("cb", "mhloss", 8)
        );
        assert!(r.sd < r.base_sd && r.ci.0 <= r.sd && r.sd <= r.ci.1);
        assert!(r.p < 0.05 && r.p_holm == r.p, "{r:?}");
        let md = table.markdown();
        assert!(
            md.contains("Stability against FineTune") && md.contains("↓ *"),
            "{md}"
        );
    }

    #[test]
    fn sweeps_get_sd_vs_factor_plots_and_tasks_get_violins_and_expected_max() {
        let mut rs = Vec::new();
        for (h, spread) in [(1.0, 4.0), (5.0, 2.0), (50.0, 1.0)] {
            for seed in 0..4 {
                let mut r = rec("cb", "mhloss", (60.0 + spread * seed as f64) / 100.0);
                r.run_id = format!("h{h}-s{seed}");
                r.sweep = [("mhloss.heads".to_string(), serde_json::json!(h))].into();
                rs.push(r);
            }
        }
        let refs: Vec<&RunRecord> = rs.iter().collect();
        let table = FinetuneTable::from_records(&refs);
        let dir = tempfile::tempdir().unwrap();
        let out = table.plots(dir.path());
        assert!(out.failed.is_empty(), "{:?}", out.failed);
        let names: Vec<String> = out
            .written
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        for want in [
            "sd-vs-mhloss_heads-cb.svg",
            "violin-cb.svg",
            "expected-max-cb.svg",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
        }
        let svg = std::fs::read_to_string(dir.path().join("sd-vs-mhloss_heads-cb.svg")).unwrap();
        assert!(
            svg.contains(">\nmhloss\n<"),
            "one line per method, legend named"
        );
    }

    #[test]
    fn runs_of_one_method_with_different_parameters_get_their_own_rows() {
        let with = |variant: &str, p: f64, primary: f64| {
            let mut r = rec("cb", "mixout", primary);
            r.method_params = [
                ("variant".to_string(), serde_json::json!(variant)),
                ("p".to_string(), serde_json::json!(p)),
                ("backward".to_string(), serde_json::json!("reference")),
            ]
            .into();
            r
        };
        let rs = [
            with("ref", 0.9, 0.5),
            with("author", 0.1, 0.6),
            rec("cb", "mmr", 0.7),
        ];
        let refs: Vec<&RunRecord> = rs.iter().collect();
        let t = FinetuneTable::from_records(&refs).table();
        let names: Vec<&str> = t.rows.iter().map(|r| r[0].as_str()).collect();
        assert_eq!(
            names,
            [
                "mixout p=0.1 variant=author",
                "mixout p=0.9 variant=ref",
                "mmr"
            ]
        );
    }
}
