//! Tables and plots of the synthetic studies, one section per factor.

use std::path::{Path, PathBuf};

use stab_core::RunRecord;

use super::plot::{Series, line_plot};
use super::table::{Table, csv_field, label_num, mean_sd};

/// Metric display order and labels; others follow alphabetically.
const METRICS: &[(&str, &str)] = &[
    ("delta", "Δ̂"),
    ("delta_max", "max Δ_i"),
    ("gd_delta", "GD Δ̂ at T"),
    ("gd_direction_gap", "GD gap to SVM at T"),
    ("direction_gap", "gap to SVM at T"),
    ("svm_delta", "SVM Δ̂"),
    ("stability", "‖A(Sⁱ) − A(S)‖"),
    ("margin", "γ_S"),
    ("support", "#SV"),
    ("bound_measured", "max ‖x‖"),
    ("optimum_norm", "‖w*‖"),
    ("optimum_steps", "steps to w*"),
];

/// The CSV columns, fixed so scripts can rely on them.
const CSV_COLUMNS: &[&str] = &[
    "factor",
    "value",
    "t",
    "datasets",
    "points",
    "steps",
    "delta_mean",
    "delta_sd",
    "margin_mean",
    "margin_sd",
    "direction_gap_mean",
    "direction_gap_sd",
    "delta_max_mean",
    "gd_delta_mean",
    "gd_delta_sd",
    "gd_direction_gap_mean",
    "svm_delta_mean",
    "svm_delta_sd",
    "stability_mean",
    "stability_sd",
    "support_mean",
    "run_id",
];

/// One factor's runs, sorted by value.
#[derive(Debug, Clone)]
pub struct FactorRuns {
    pub factor: String,
    pub axis_label: String,
    pub log_axis: bool,
    pub runs: Vec<(f64, RunRecord)>,
}

/// All synthetic sections of a store.
#[derive(Debug, Clone, Default)]
pub struct SyntheticTables {
    pub factors: Vec<FactorRuns>,
}

fn value_of(r: &RunRecord) -> f64 {
    r.sweep
        .get(&r.method)
        .and_then(|v| v.as_f64())
        .unwrap_or(f64::NAN)
}

/// One checkpoint of the heads study's curve: mean ± SD over datasets of the averaged
/// head's direction gap to the SVM and of its Δ̂, at iteration `t`.
#[derive(Debug, Clone, Copy)]
pub struct CurvePoint {
    pub t: u64,
    pub gap: f64,
    pub gap_sd: f64,
    pub delta: f64,
    pub delta_sd: f64,
}

/// A record's curve (`details.curve`; empty for the studies without one).
pub fn curve(r: &RunRecord) -> Vec<CurvePoint> {
    r.details
        .get("curve")
        .and_then(|c| c.as_array())
        .map(|a| {
            a.iter()
                .map(|p| {
                    let f = |k: &str| p.get(k).and_then(|v| v.as_f64()).unwrap_or(f64::NAN);
                    CurvePoint {
                        t: p.get("t").and_then(|v| v.as_u64()).unwrap_or(0),
                        gap: f("direction_gap_mean"),
                        gap_sd: f("direction_gap_sd"),
                        delta: f("delta_mean"),
                        delta_sd: f("delta_sd"),
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

impl SyntheticTables {
    /// The records grouped by study, in the paper's figure order, each study's runs sorted
    /// by its factor value.
    pub fn from_records(records: &[&RunRecord]) -> Self {
        let mut factors: Vec<FactorRuns> = Vec::new();
        for r in records {
            let idx = match factors.iter().position(|f| f.factor == r.method) {
                Some(i) => i,
                None => {
                    let label = r
                        .details
                        .get("axis_label")
                        .and_then(|v| v.as_str())
                        .unwrap_or(&r.method)
                        .to_string();
                    let log = r
                        .details
                        .get("log_axis")
                        .and_then(|v| v.as_bool())
                        .unwrap_or(false);
                    factors.push(FactorRuns {
                        factor: r.method.clone(),
                        axis_label: label,
                        log_axis: log,
                        runs: Vec::new(),
                    });
                    factors.len() - 1
                }
            };
            factors[idx].runs.push((value_of(r), (*r).clone()));
        }
        for f in &mut factors {
            f.runs.sort_by(|a, b| {
                a.0.total_cmp(&b.0)
                    .then_with(|| a.1.run_id.cmp(&b.1.run_id))
            });
        }
        // The paper's order (Figs. 5–9), which is every shipped recipe's; a store merged from
        // shards has no order of its own. Studies the paper does not have come last.
        factors.sort_by_key(|f| {
            (
                super::synthetic_trends::figure_rank(&f.factor),
                f.factor.clone(),
            )
        });
        Self { factors }
    }

    pub fn is_empty(&self) -> bool {
        self.factors.is_empty()
    }

    fn metric_names(f: &FactorRuns) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for (_, r) in &f.runs {
            for k in r.metrics.keys() {
                if let Some(base) = k.strip_suffix("_mean")
                    && !names.iter().any(|n| n == base)
                {
                    names.push(base.to_string());
                }
            }
        }
        let rank = |n: &str| {
            METRICS
                .iter()
                .position(|(m, _)| *m == n)
                .unwrap_or(METRICS.len())
        };
        names.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
        names
    }

    /// The label of `metric` in `f`'s table and plots.
    fn label(f: &FactorRuns, metric: &str) -> String {
        super::synthetic_trends::metric_label(&f.factor, metric)
            .or_else(|| METRICS.iter().find(|(m, _)| *m == metric).map(|(_, l)| *l))
            .map_or_else(|| metric.to_string(), str::to_string)
    }

    /// One study's table: a row per factor value, mean ± SD over datasets.
    fn summary_table(f: &FactorRuns) -> Table {
        let names = Self::metric_names(f);
        let mut header = vec![
            f.axis_label.clone(),
            "datasets".to_string(),
            "n".to_string(),
            "T".to_string(),
        ];
        header.extend(names.iter().map(|n| Self::label(f, n)));
        let rows = f
            .runs
            .iter()
            .map(|(v, r)| {
                let s = r.synthetic.as_ref();
                let mut row = vec![
                    label_num(*v),
                    format!("{}", r.metrics.get("datasets").copied().unwrap_or(f64::NAN)),
                    s.map_or("–".into(), |s| s.points.to_string()),
                    s.map_or("–".into(), |s| s.steps.to_string()),
                ];
                row.extend(names.iter().map(|n| {
                    let get = |k: String| r.metrics.get(&k).copied().unwrap_or(f64::NAN);
                    mean_sd(get(format!("{n}_mean")), get(format!("{n}_sd")))
                }));
                row
            })
            .collect();
        Table { header, rows }
    }

    /// The heads study's curves as two tables, a row per H and a column per checkpoint t:
    /// the direction gap to the SVM, and Δ̂ of the averaged head.
    fn curve_tables(f: &FactorRuns) -> Option<[Table; 2]> {
        let curves: Vec<(f64, Vec<CurvePoint>)> = f
            .runs
            .iter()
            .map(|(v, r)| (*v, curve(r)))
            .filter(|(_, c)| !c.is_empty())
            .collect();
        let ts: Vec<u64> = curves.first()?.1.iter().map(|p| p.t).collect();
        let table = |value: &dyn Fn(&CurvePoint) -> String| {
            let mut header = vec![f.axis_label.clone()];
            header.extend(ts.iter().map(|t| format!("t = {t}")));
            let rows = curves
                .iter()
                .map(|(v, c)| {
                    let mut row = vec![label_num(*v)];
                    row.extend(
                        ts.iter()
                            .map(|t| c.iter().find(|p| p.t == *t).map_or("–".into(), value)),
                    );
                    row
                })
                .collect();
            Table { header, rows }
        };
        Some([
            table(&|p| mean_sd(p.gap, p.gap_sd)),
            table(&|p| mean_sd(p.delta, p.delta_sd)),
        ])
    }

    /// Per study: its table, and for the heads study its two curve tables (titles and
    /// tables, for LaTeX).
    pub fn tables(&self) -> Vec<(String, Table)> {
        let mut out = Vec::new();
        for f in &self.factors {
            out.push((
                format!("Synthetic study `{}`: mean ± SD over datasets", f.factor),
                Self::summary_table(f),
            ));
            if let Some([gap, delta]) = Self::curve_tables(f) {
                out.push((
                    format!(
                        "Synthetic study `{}`: direction gap to the SVM at iteration t",
                        f.factor
                    ),
                    gap,
                ));
                out.push((
                    format!(
                        "Synthetic study `{}`: Δ̂ of the averaged head at iteration t",
                        f.factor
                    ),
                    delta,
                ));
            }
        }
        out
    }

    /// The report: what Δ̂ is, a summary line per study (the paper's prediction and whether
    /// it held), then a section per study in recipe order — its table with the columns equal
    /// on every row said once above it, and its plots.
    pub fn document(&self) -> super::doc::Doc {
        let mut doc = super::doc::Doc::new();
        doc.heading("Synthetic stability studies (the paper's §4.3)")
            .paragraph(INTRO)
            .list(self.factors.iter().filter_map(study_line).collect());
        for f in &self.factors {
            let curves = Self::curve_tables(f);
            let mut summary = Self::summary_table(f);
            if curves.is_some() {
                // The final gap and Δ̂ are the curve tables' last columns.
                summary = drop_columns(
                    summary,
                    &[&Self::label(f, "delta"), &Self::label(f, "direction_gap")],
                );
            }
            let (table, same) = split_constant_columns(summary);
            doc.subheading(study_title(f));
            if !same.is_empty() {
                doc.paragraph(format!("Every row: {}.", same.join("; ")));
            }
            if table.header.len() > 1 {
                doc.table(table);
            }
            if let Some([gap, delta]) = curves {
                doc.paragraph("The averaged head's direction gap to the SVM, mean ± SD over datasets, at each checkpoint t:")
                    .table(gap)
                    .paragraph("Its Δ̂ at each checkpoint t:")
                    .table(delta);
            }
            for (file, caption) in Self::plot_files(f) {
                doc.plot(caption, file);
            }
        }
        doc
    }

    /// A study's plot files and their captions (what [`SyntheticTables::plots`] writes).
    fn plot_files(f: &FactorRuns) -> Vec<(String, String)> {
        let against = (
            format!("synthetic-{}.svg", f.factor),
            format!(
                "Mean over datasets against {}, bars ±1 SD; lower is more stable. Log axes: a bar that runs to the bottom without a cap continues below zero (its SD exceeds its mean).",
                f.axis_label
            ),
        );
        if f.runs.iter().all(|(_, r)| curve(r).is_empty()) {
            return vec![against];
        }
        // The curves tell the study's story; the final Δ̂ against the factor comes last.
        vec![
            (
                format!("synthetic-{}-gap-vs-t.svg", f.factor),
                "The averaged head's direction gap to the SVM against the iteration t, one line per head count: the more heads, the lower the line starts.".to_string(),
            ),
            (
                format!("synthetic-{}-delta-vs-t.svg", f.factor),
                "Δ̂ of the averaged head against the iteration t, one line per head count.".to_string(),
            ),
            against,
        ]
    }

    pub fn latex(&self) -> String {
        self.tables()
            .iter()
            .map(|(title, t)| t.latex(title))
            .collect()
    }

    /// One row per (factor, value) — and per t for studies with a curve.
    pub fn csv(&self) -> String {
        let mut out = CSV_COLUMNS.join(",");
        out.push('\n');
        for f in &self.factors {
            for (v, r) in &f.runs {
                let metric = |k: &str| r.metrics.get(k).map_or(String::new(), |x| format!("{x}"));
                let s = r.synthetic.as_ref();
                let row = |t: String, overrides: &[(&str, f64)]| -> String {
                    CSV_COLUMNS
                        .iter()
                        .map(|c| match *c {
                            "factor" => csv_field(&f.factor),
                            "value" => format!("{v}"),
                            "t" => t.clone(),
                            "run_id" => csv_field(&r.run_id),
                            "points" => s.map_or(String::new(), |s| s.points.to_string()),
                            "steps" => s.map_or(String::new(), |s| s.steps.to_string()),
                            other => overrides
                                .iter()
                                .find(|(k, _)| *k == other)
                                .map_or_else(|| metric(other), |(_, x)| format!("{x}")),
                        })
                        .collect::<Vec<_>>()
                        .join(",")
                };
                let c = curve(r);
                if c.is_empty() {
                    out.push_str(&row(String::new(), &[]));
                    out.push('\n');
                } else {
                    for p in c {
                        let o = [
                            ("direction_gap_mean", p.gap),
                            ("direction_gap_sd", p.gap_sd),
                            ("delta_mean", p.delta),
                            ("delta_sd", p.delta_sd),
                        ];
                        out.push_str(&row(p.t.to_string(), &o));
                        out.push('\n');
                    }
                }
            }
        }
        out
    }

    /// Per factor: Δ̂ against the factor value (error bars = SD over datasets); for the
    /// heads study, the direction gap and Δ̂ against t, one line per H.
    /// Write every plot it can: the files written, and the files it could not write
    /// with the reason (one failed plot never stops the others).
    pub fn plots(&self, dir: &Path) -> super::PlotsWritten {
        let mut files = Vec::new();
        let mut failed = Vec::new();
        let mut keep = |path: PathBuf, result: stab_core::Result<()>| match result {
            Ok(()) => files.push(path),
            Err(e) => failed.push((path, format!("{e:#}"))),
        };
        for f in &self.factors {
            let series_of = |name: &str, label: &str| Series {
                name: label.to_string(),
                points: f
                    .runs
                    .iter()
                    .filter_map(|(v, r)| {
                        let m = *r.metrics.get(&format!("{name}_mean"))?;
                        let sd = r.metrics.get(&format!("{name}_sd")).copied().unwrap_or(0.0);
                        Some((*v, m, sd))
                    })
                    .collect(),
            };
            let mut series = vec![series_of("delta", &Self::label(f, "delta"))];
            if f.runs
                .iter()
                .any(|(_, r)| r.metrics.contains_key("gd_delta_mean"))
            {
                let steps = f
                    .runs
                    .first()
                    .and_then(|(_, r)| r.synthetic.as_ref())
                    .map(|s| s.steps);
                series.push(series_of(
                    "gd_delta",
                    &steps.map_or("GD Δ̂ at T".into(), |t| format!("GD Δ̂ at T = {t}")),
                ));
            }
            let path = dir.join(format!("synthetic-{}.svg", f.factor));
            let result = line_plot(
                &path,
                &format!("LOO stability vs {}", f.axis_label),
                &f.axis_label,
                "normalised LOO stability Δ̂",
                &series,
                f.log_axis,
                true,
            );
            keep(path, result);
            let curves: Vec<(f64, Vec<_>)> = f
                .runs
                .iter()
                .map(|(v, r)| (*v, curve(r)))
                .filter(|(_, c)| !c.is_empty())
                .collect();
            if !curves.is_empty() {
                for (which, ylabel, file) in [
                    (0, "direction gap to the SVM", "gap"),
                    (1, "Δ̂ of the averaged head", "delta"),
                ] {
                    let series: Vec<Series> = curves
                        .iter()
                        .map(|(v, c)| Series {
                            name: format!("H = {}", label_num(*v)),
                            points: c
                                .iter()
                                .map(|p| {
                                    if which == 0 {
                                        (p.t as f64, p.gap, p.gap_sd)
                                    } else {
                                        (p.t as f64, p.delta, p.delta_sd)
                                    }
                                })
                                .collect(),
                        })
                        .collect();
                    let path = dir.join(format!("synthetic-{}-{file}-vs-t.svg", f.factor));
                    let result = line_plot(
                        &path,
                        &format!("{ylabel} vs iteration t"),
                        "iteration t",
                        ylabel,
                        &series,
                        true,
                        true,
                    );
                    keep(path, result);
                }
            }
        }
        super::PlotsWritten {
            written: files,
            failed,
        }
    }
}

/// The synthetic report's opening paragraph: what the studies measure, and which way is
/// better.
const INTRO: &str = "Each study trains linear heads on random linearly separable datasets (docs/methods.md §7) and measures **Δ̂, the normalised leave-one-out stability**: how far the direction of the head trained on all n points moves when one training point is left out (the paper's Def. 2.3). **Lower Δ̂ means more stable.** SVM Δ̂ is exact for the max-margin direction that gradient descent on the logistic loss converges to; GD Δ̂ at T is measured on the head after T gradient steps. Every number is a mean ± SD over the study's random datasets. What each study predicts, and whether it held here:";

/// A study's line in the summary list.
fn study_line(f: &FactorRuns) -> Option<String> {
    if f.factor == "heads" {
        return super::synthetic_trends::heads_line(f);
    }
    let p = super::synthetic_trends::PREDICTIONS
        .iter()
        .find(|p| p.factor == f.factor)?;
    super::synthetic_trends::prediction_line(p, f)
}

/// A study's section title: its figure and the factor it varies.
fn study_title(f: &FactorRuns) -> String {
    let figure = if f.factor == "heads" {
        Some("Fig. 5")
    } else {
        super::synthetic_trends::PREDICTIONS
            .iter()
            .find(|p| p.factor == f.factor)
            .map(|p| p.figure)
    };
    match figure {
        Some(fig) => format!("{fig}: stability against {} (`{}`)", f.axis_label, f.factor),
        None => format!("Stability against {} (`{}`)", f.axis_label, f.factor),
    }
}

/// The table without the columns named `names`.
fn drop_columns(t: Table, names: &[&str]) -> Table {
    let keep: Vec<bool> = t
        .header
        .iter()
        .map(|h| !names.contains(&h.as_str()))
        .collect();
    t.keep_columns(&keep)
}

/// The table without its columns that hold one value on every row or repeat the first
/// column (the factor, which always stays), and the constant columns as "name value"
/// phrases.
fn split_constant_columns(t: Table) -> (Table, Vec<String>) {
    if t.rows.len() < 2 {
        return (t, Vec::new());
    }
    let constant = |c: usize| c > 0 && t.rows.iter().all(|r| r[c] == t.rows[0][c]);
    // A column that repeats the factor (the samples study's n) says nothing either.
    let repeats_factor = |c: usize| c > 0 && t.rows.iter().all(|r| r[c] == r[0]);
    let keep: Vec<bool> = (0..t.header.len())
        .map(|c| !constant(c) && !repeats_factor(c))
        .collect();
    let same = (0..t.header.len())
        .filter(|c| constant(*c))
        .map(|c| format!("{} {}", t.header[c], t.rows[0][c]))
        .collect();
    (t.keep_columns(&keep), same)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_equal_on_every_row_are_said_once() {
        let t = Table {
            header: vec!["ρ".into(), "datasets".into(), "Δ̂".into()],
            rows: vec![
                vec!["0.01".into(), "200".into(), "1e-4".into()],
                vec!["0.1".into(), "200".into(), "2e-4".into()],
            ],
        };
        let (t, same) = split_constant_columns(t);
        assert_eq!(t.header, ["ρ", "Δ̂"]);
        assert_eq!(same, ["datasets 200"]);
    }
}
