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

fn curve(r: &RunRecord) -> Vec<(u64, f64, f64, f64, f64)> {
    r.details
        .get("curve")
        .and_then(|c| c.as_array())
        .map(|a| {
            a.iter()
                .map(|p| {
                    let f = |k: &str| p.get(k).and_then(|v| v.as_f64()).unwrap_or(f64::NAN);
                    (
                        p.get("t").and_then(|v| v.as_u64()).unwrap_or(0),
                        f("direction_gap_mean"),
                        f("direction_gap_sd"),
                        f("delta_mean"),
                        f("delta_sd"),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

impl SyntheticTables {
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
        factors.sort_by(|a, b| a.factor.cmp(&b.factor));
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

    /// Per factor: one summary table, and for the heads study the curve table.
    pub fn tables(&self) -> Vec<(String, Table)> {
        let mut out = Vec::new();
        for f in &self.factors {
            let names = Self::metric_names(f);
            let mut header = vec![
                f.axis_label.clone(),
                "datasets".to_string(),
                "n".to_string(),
                "T".to_string(),
            ];
            header.extend(names.iter().map(|n| {
                METRICS
                    .iter()
                    .find(|(m, _)| m == n)
                    .map_or(n.clone(), |(_, l)| l.to_string())
            }));
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
                        let m = r
                            .metrics
                            .get(&format!("{n}_mean"))
                            .copied()
                            .unwrap_or(f64::NAN);
                        let sd = r
                            .metrics
                            .get(&format!("{n}_sd"))
                            .copied()
                            .unwrap_or(f64::NAN);
                        mean_sd(m, sd)
                    }));
                    row
                })
                .collect();
            out.push((
                format!("Synthetic study `{}`: mean ± SD over datasets", f.factor),
                Table { header, rows },
            ));
            let curves: Vec<(f64, Vec<_>)> = f
                .runs
                .iter()
                .map(|(v, r)| (*v, curve(r)))
                .filter(|(_, c)| !c.is_empty())
                .collect();
            if !curves.is_empty() {
                let mut t = Table {
                    header: vec![
                        f.axis_label.clone(),
                        "t".into(),
                        "gap to SVM direction".into(),
                        "Δ̂ of averaged head".into(),
                    ],
                    rows: Vec::new(),
                };
                for (v, c) in curves {
                    for (step, g, gsd, d, dsd) in c {
                        t.rows.push(vec![
                            label_num(v),
                            step.to_string(),
                            mean_sd(g, gsd),
                            mean_sd(d, dsd),
                        ]);
                    }
                }
                out.push((
                    format!("Synthetic study `{}`: curve over iterations t", f.factor),
                    t,
                ));
            }
        }
        out
    }

    /// One section per table: its title and the table.
    pub fn document(&self) -> super::doc::Doc {
        let mut doc = super::doc::Doc::new();
        for (title, t) in self.tables() {
            doc.heading(title).table(t);
        }
        doc
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
                    for (t, g, gsd, d, dsd) in c {
                        let o = [
                            ("direction_gap_mean", g),
                            ("direction_gap_sd", gsd),
                            ("delta_mean", d),
                            ("delta_sd", dsd),
                        ];
                        out.push_str(&row(t.to_string(), &o));
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
            let mut series = vec![series_of("delta", "Δ̂")];
            if f.runs
                .iter()
                .any(|(_, r)| r.metrics.contains_key("gd_delta_mean"))
            {
                series.push(series_of("gd_delta", "GD Δ̂ at T"));
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
                            name: format!("{} = {}", f.factor, label_num(*v)),
                            points: c
                                .iter()
                                .map(|&(t, g, gsd, d, dsd)| {
                                    if which == 0 {
                                        (t as f64, g, gsd)
                                    } else {
                                        (t as f64, d, dsd)
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
