//! The paper's results tables for fine-tuning runs (docs/methods.md §4.2): per task and
//! method, mean ± SD over seeds of the test primary metric ×100; the AVG column is the
//! mean of the per-task means, its "±" the mean of the per-task SDs (§3.2).

use std::collections::BTreeMap;

use stab_core::RunRecord;

use super::doc::Doc;
use super::plot::{Series, line_plot};
use super::table::{Table, csv_field};
use crate::stats::Summary;
use crate::variance::{
    bootstrap_sd_interval, brown_forsythe, curve_points, expected_max, expected_max_curve, holm,
};

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
    /// (row label, task) → diverged runs: a non-finite loss or metric, so their metrics
    /// are not scores; they are left out of every statistic and counted here.
    pub diverged: BTreeMap<(String, String), usize>,
}

/// How the report names its rows: the method, the parameters in which its runs differ
/// from other runs of the same method (`mixout variant=author p=0.1`), the sweep values,
/// and — so that runs of different experiments are never pooled — every input in which
/// the runs of a task differ (`mode=head`, `model=7eb634c1`, `data=…`, `split=…`), plus
/// the recipe where one method's runs of one seed came from several recipes (different
/// settings). The context is part of the sweep part, so a method is compared with the
/// FineTune runs of the same experiment.
pub struct Grouping {
    varying: BTreeMap<String, Vec<String>>,
    context: BTreeMap<String, Vec<ContextKey>>,
    by_recipe: std::collections::BTreeSet<(String, String)>,
    /// Rows that still hold one seed twice from different run ids (one recipe name, two
    /// settings): (task, row label, seed, the two run ids).
    pub pooled: Vec<(String, String, u64, [String; 2])>,
}

/// An input that makes runs different experiments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ContextKey {
    Mode,
    Model,
    Data,
    Split,
}

impl ContextKey {
    const ALL: [ContextKey; 4] = [Self::Mode, Self::Model, Self::Data, Self::Split];

    fn name(self) -> &'static str {
        match self {
            Self::Mode => "mode",
            Self::Model => "model",
            Self::Data => "data",
            Self::Split => "split",
        }
    }

    /// The record's value (a fingerprint shortened to 8 characters); a seeded split is
    /// drawn per seed, so all seeded splits are one value.
    fn value(self, r: &RunRecord) -> Option<String> {
        let short = |h: &str| h.chars().take(8).collect::<String>();
        match self {
            Self::Mode => r.mode.map(|m| format!("{m:?}").to_lowercase()),
            Self::Model => r.inputs.as_ref().map(|i| short(&i.model)),
            Self::Data => r.inputs.as_ref().map(|i| short(&i.data)),
            Self::Split => r.split.as_deref().map(|s| match s.strip_prefix("file:") {
                Some(h) => format!("file:{}", short(h)),
                None => "seeded".to_string(),
            }),
        }
    }
}

impl Grouping {
    pub fn of(records: &[&RunRecord]) -> Self {
        let varying = varying_params(records);
        let mut values: BTreeMap<&str, BTreeMap<&'static str, Vec<Option<String>>>> =
            BTreeMap::new();
        for r in records {
            for key in ContextKey::ALL {
                let seen = values
                    .entry(&r.task)
                    .or_default()
                    .entry(key.name())
                    .or_default();
                let v = key.value(r);
                if !seen.contains(&v) {
                    seen.push(v);
                }
            }
        }
        let context = values
            .into_iter()
            .map(|(task, keys)| {
                let differ = ContextKey::ALL
                    .into_iter()
                    .filter(|k| keys.get(k.name()).is_some_and(|v| v.len() > 1))
                    .collect();
                (task.to_string(), differ)
            })
            .collect();
        let mut grouping = Self {
            varying,
            context,
            by_recipe: Default::default(),
            pooled: Vec::new(),
        };
        grouping.by_recipe = grouping.mixed_recipes(records);
        grouping.pooled = grouping.same_seed_twice(records);
        grouping
    }

    /// Every record whose (task, row label, seed) an earlier record with another run id
    /// already holds: (that record, the earlier one).
    fn seeds_held_twice<'r>(
        &self,
        records: &[&'r RunRecord],
    ) -> Vec<(&'r RunRecord, &'r RunRecord)> {
        let mut first: BTreeMap<(String, String, u64), &RunRecord> = BTreeMap::new();
        let mut twice = Vec::new();
        for &r in records {
            let key = (r.task.clone(), self.label(r, None).0, r.seed);
            match first.get(&key) {
                Some(&earlier) if earlier.run_id != r.run_id => twice.push((r, earlier)),
                Some(_) => {}
                None => {
                    first.insert(key, r);
                }
            }
        }
        twice
    }

    /// (task, method) groups in which one row would hold one seed twice from different
    /// recipes: their rows name the recipe.
    fn mixed_recipes(
        &self,
        records: &[&RunRecord],
    ) -> std::collections::BTreeSet<(String, String)> {
        self.seeds_held_twice(records)
            .into_iter()
            .filter(|(r, earlier)| r.recipe != earlier.recipe)
            .map(|(r, _)| (r.task.clone(), r.method.clone()))
            .collect()
    }

    /// Rows that hold one seed twice from different runs after the recipes are told apart.
    fn same_seed_twice(&self, records: &[&RunRecord]) -> Vec<(String, String, u64, [String; 2])> {
        self.seeds_held_twice(records)
            .into_iter()
            .map(|(r, earlier)| {
                let label = self.label(r, None).0;
                (
                    r.task.clone(),
                    label,
                    r.seed,
                    [earlier.run_id.clone(), r.run_id.clone()],
                )
            })
            .collect()
    }

    /// A record's row label and its sweep part (sweep values and experiment context),
    /// leaving out the sweep key `skip`.
    pub fn label(&self, r: &RunRecord, skip: Option<&str>) -> (String, String) {
        // A swept parameter of the run's own method (`mhloss.heads`) is in its
        // `method_params`, so it names the row through them; it is not part of the cell
        // the method is compared with FineTune in (FineTune has no such key).
        let own = |k: &str| stab_core::plan::is_own_method_key(&r.method, k);
        let skip_param = skip
            .filter(|k| own(k))
            .and_then(|k| k.split_once('.'))
            .map(|(_, p)| p);
        let mut name = r.method.clone();
        for k in self.varying.get(&r.method).into_iter().flatten() {
            if Some(k.as_str()) == skip_param {
                continue;
            }
            if let Some(v) = r.method_params.get(k) {
                let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                name.push_str(&format!(" {k}={v}"));
            }
        }
        let mut sweep: String = r
            .sweep
            .iter()
            .filter(|(k, _)| Some(k.as_str()) != skip && !own(k))
            .map(|(k, v)| format!(" {k}={v}"))
            .collect();
        for key in self.context.get(&r.task).into_iter().flatten() {
            let v = key.value(r).unwrap_or_else(|| "unrecorded".into());
            sweep.push_str(&format!(" {}={v}", key.name()));
        }
        if self.by_recipe.contains(&(r.task.clone(), r.method.clone())) {
            sweep.push_str(&format!(" recipe={}", r.recipe));
        }
        (format!("{name}{sweep}"), sweep)
    }
}

/// Each record's row label and sweep part, in the order given.
pub fn group_labels(records: &[&RunRecord]) -> Vec<(String, String)> {
    let grouping = Grouping::of(records);
    records.iter().map(|r| grouping.label(r, None)).collect()
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
        let grouping = Grouping::of(records);
        let mut diverged: BTreeMap<(String, String), usize> = BTreeMap::new();
        for r in records {
            if r.diverged {
                let (label, sweep) = grouping.label(r, None);
                sweeps.insert(label.clone(), sweep);
                *diverged.entry((label, r.task.clone())).or_default() += 1;
                continue;
            }
            if let Some(p) = r.metrics.get("primary") {
                let (label, sweep) = grouping.label(r, None);
                if let [(key, value)] = r.sweep.iter().collect::<Vec<_>>()[..]
                    && let Some(x) = value.as_f64()
                {
                    let (without, rest) = grouping.label(r, Some(key));
                    let base = without.strip_suffix(&rest).unwrap_or(&without).to_string();
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
            grouping.label(r, Some("train.fixed_seeds")).0
        });
        Self {
            cells,
            sweeps,
            swept,
            attribution,
            failed: BTreeMap::new(),
            diverged,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.cells.is_empty() && self.diverged.is_empty()
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

    /// The tasks and row labels of the scored runs and of the diverged ones.
    fn rows_with_diverged(&self) -> (Vec<String>, Vec<String>) {
        let mut tasks = self.tasks();
        tasks.extend(self.diverged.keys().map(|(_, t)| t.clone()));
        tasks.sort();
        tasks.dedup();
        let mut labels: Vec<String> = self.cells.keys().cloned().collect();
        labels.extend(self.diverged.keys().map(|(l, _)| l.clone()));
        labels.sort();
        labels.dedup();
        (tasks, labels)
    }

    pub fn table(&self) -> Table {
        let (tasks, labels) = self.rows_with_diverged();
        let mut header = vec!["method".to_string()];
        header.extend(tasks.iter().cloned());
        header.push("AVG".to_string());
        let empty = BTreeMap::new();
        let rows = labels
            .iter()
            .map(|method| {
                let by_task = self.cells.get(method).unwrap_or(&empty);
                let mut row = vec![method.clone()];
                let (mut means, mut sds) = (Vec::new(), Vec::new());
                let mut single = false;
                for t in &tasks {
                    let key = (method.clone(), t.clone());
                    let mut notes = String::new();
                    if let Some(k) = self.failed.get(&key) {
                        notes.push_str(&format!(", {k} failed"));
                    }
                    if let Some(k) = self.diverged.get(&key) {
                        notes.push_str(&format!(", {k} diverged"));
                    }
                    match by_task.get(t) {
                        Some(v) => {
                            let s = Summary::of(v);
                            means.push(s.mean);
                            sds.push(s.sd);
                            single |= s.n < 2;
                            let sd = (s.n > 1).then_some(s.sd);
                            row.push(format!("{} (n={}{notes})", mean_sd(s.mean, sd), s.n));
                        }
                        None if !notes.is_empty() => row.push(format!("– (n=0{notes})")),
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

    /// The mean ± SD table, and (with `plots`) the per-task plots of the seeds' scores after
    /// it.
    pub fn main_section(&self, plots: bool) -> Doc {
        let mut doc = Doc::new();
        doc.section(
            "Fine-tuning: test primary metric ×100, mean ± SD over seeds",
            "SD is the sample SD over seeds (ddof = 1); AVG is the mean of the per-task means ± the mean of the per-task SDs (the paper's convention). \"k failed\": runs at or below the score of always predicting the test split's majority class.",
            self.table(),
        );
        if plots {
            for t in self.tasks() {
                let shape = if super::seed_scores::as_violins(&self.score_groups(&t)) {
                    "the shaded shape a kernel density of the scores"
                } else {
                    "the box from the first to the third quartile with the median across it, whiskers to the lowest and highest score (fewer than 10 runs: too few for a density)"
                };
                doc.plot(
                    format!("Each dot is one seed's test score, the black bar the mean; {shape}."),
                    format!("scores-{t}.svg"),
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
                    "The score a practitioner can expect from keeping the best of n runs (mean ± sd of the maximum); a method whose line rises steeply gains from re-running seeds.",
                    format!("expected-max-{t}.svg"),
                );
            }
        }
        doc
    }

    /// Each method's per-seed test scores on `task`, in the table's row order.
    fn score_groups(&self, task: &str) -> Vec<(String, Vec<f64>)> {
        self.cells
            .iter()
            .filter_map(|(m, by_task)| by_task.get(task).map(|v| (m.clone(), v.clone())))
            .collect()
    }

    /// One plot of the seeds' scores per task (paper Fig. 10): `scores-<task>.svg`; for a numeric
    /// sweep, the SD over seeds against the swept value per task (paper Figs. 1–4):
    /// `sd-vs-<key>-<task>.svg`, one line per method; and the expected best score of n
    /// runs per task: `expected-max-<task>.svg`.
    pub fn plots(&self, dir: &std::path::Path) -> super::PlotsWritten {
        let mut out = super::PlotsWritten::default();
        let mut record = |path: std::path::PathBuf, r: stab_core::Result<()>| match r {
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
                    let ns = curve_points(v.len());
                    let points = ns
                        .iter()
                        .zip(expected_max_curve(v, &ns))
                        .map(|(&n, (mean, var))| (n as f64, mean, var.sqrt()))
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
            let groups = self.score_groups(&task);
            let path = dir.join(format!("scores-{task}.svg"));
            match super::seed_scores::seed_scores_plot(
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
        let (tasks, labels) = self.rows_with_diverged();
        for task in &tasks {
            for method in &labels {
                let v = self
                    .cells
                    .get(method)
                    .and_then(|t| t.get(task))
                    .map_or(&[][..], Vec::as_slice);
                let diverged = self.diverged.get(&(method.clone(), task.clone()));
                if v.is_empty() && diverged.is_none() {
                    continue;
                }
                let label = match diverged {
                    Some(1) => format!("{method} (1 diverged run left out)"),
                    Some(k) => format!("{method} ({k} diverged runs left out)"),
                    None => method.clone(),
                };
                let mut row = vec![task.clone(), label];
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
            sequential: None,
            tune: None,
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
    fn sweeps_get_sd_vs_factor_plots_and_tasks_get_score_plots_and_expected_max() {
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
            "scores-cb.svg",
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

    /// Runs of two models in one store are two experiments: their own rows, each compared
    /// with its own FineTune (issue #34: "finetune, cb, n = 4" with seeds counted twice).
    #[test]
    fn runs_of_different_models_are_never_pooled() {
        let run = |method: &str, model: &str, seed: u64, primary: f64| {
            let mut r = rec("cb", method, primary);
            r.run_id = format!("cb-{method}-{model}-{seed}");
            r.seed = seed;
            r.inputs = Some(stab_core::InputFingerprint {
                model: model.into(),
                data: "d".into(),
                split: "file:s".into(),
            });
            r
        };
        let rs = [
            run("finetune", "aaaaaaaaaa", 0, 0.5),
            run("finetune", "aaaaaaaaaa", 1, 0.6),
            run("finetune", "bbbbbbbbbb", 0, 0.7),
            run("finetune", "bbbbbbbbbb", 1, 0.8),
            run("mmr", "bbbbbbbbbb", 0, 0.75),
            run("mmr", "bbbbbbbbbb", 1, 0.85),
        ];
        let refs: Vec<&RunRecord> = rs.iter().collect();
        let table = FinetuneTable::from_records(&refs);
        let names: Vec<&String> = table.cells.keys().collect();
        assert_eq!(
            names,
            [
                "finetune model=aaaaaaaa",
                "finetune model=bbbbbbbb",
                "mmr model=bbbbbbbb"
            ]
        );
        assert!(table.cells.values().all(|t| t["cb"].len() == 2));
        let stab = table.stability();
        let mmr = stab.iter().find(|r| r.method.starts_with("mmr")).unwrap();
        assert_eq!(mmr.base_sd, Summary::of(&[70.0, 80.0]).sd);
        // One recipe name, two settings, one seed twice: named, not hidden.
        let mut again = run("finetune", "aaaaaaaaaa", 0, 0.9);
        again.run_id = "cb-finetune-other-settings".into();
        let mut with_dup = refs.clone();
        with_dup.push(&again);
        assert_eq!(Grouping::of(&with_dup).pooled.len(), 1);
        // From another recipe: that recipe gets its own row instead.
        again.recipe = "r2".into();
        let mut with_other = refs.clone();
        with_other.push(&again);
        let grouping = Grouping::of(&with_other);
        assert!(grouping.pooled.is_empty());
        assert!(grouping.label(&again, None).0.ends_with("recipe=r2"));
    }

    /// A diverged run has no score: counted, shown, left out of every statistic.
    #[test]
    fn diverged_runs_are_counted_not_scored() {
        let mut bad = rec("cb", "finetune", 0.33);
        bad.diverged = true;
        bad.run_id = "cb-finetune-bad".into();
        bad.seed = 2;
        let mut second = rec("cb", "finetune", 0.7);
        second.seed = 1;
        let rs = [rec("cb", "finetune", 0.5), second, bad];
        let refs: Vec<&RunRecord> = rs.iter().collect();
        let table = FinetuneTable::from_records(&refs);
        assert_eq!(table.cells["finetune"]["cb"], [50.0, 70.0]);
        let row = &table.table().rows[0];
        assert!(row[1].contains("n=2, 1 diverged"), "{row:?}");
        let f = super::super::findings::Findings::from_records(&refs, None, Default::default());
        assert_eq!(
            (
                f.runs["cb"]["finetune"].n,
                f.runs["cb"]["finetune"].diverged
            ),
            (2, 1)
        );
    }

    /// A method-parameter sweep (`mhloss.heads`) belongs to that method's rows: FineTune has
    /// no such key, and each value is compared with the FineTune of the same cell.
    #[test]
    fn a_method_parameter_sweep_is_compared_with_finetune() {
        let mut rs = Vec::new();
        for seed in 0..3u64 {
            let mut f = rec("cb", "finetune", 0.5 + 0.01 * seed as f64);
            f.seed = seed;
            f.run_id = format!("f{seed}");
            rs.push(f);
            for heads in [5, 50] {
                let mut m = rec("cb", "mhloss", 0.6 + 0.02 * seed as f64);
                m.seed = seed;
                m.run_id = format!("m{heads}-{seed}");
                m.sweep = [("mhloss.heads".to_string(), serde_json::json!(heads))].into();
                m.method_params = [("heads".to_string(), serde_json::json!(heads))].into();
                rs.push(m);
            }
        }
        let refs: Vec<&RunRecord> = rs.iter().collect();
        let table = FinetuneTable::from_records(&refs);
        let compared: Vec<String> = table.stability().into_iter().map(|r| r.method).collect();
        assert_eq!(compared, ["mhloss heads=5", "mhloss heads=50"]);
        // The SD-against-heads plot still gets one line over the swept values.
        assert_eq!(table.swept.len(), 1, "{:?}", table.swept.keys());
    }
}
