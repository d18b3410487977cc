//! The analyses of `stab analyze` in a report: `DIR/analyses.jsonl` (append-only, one
//! JSON object per measurement; the latest per analysis and subject wins) rendered as
//! Markdown tables and SVG plots. `stab analyze` prints and plots through the same code.
//!
//! A record is `{"analysis": "distance"|"taylor"|"loo"|"bounds", "subject": …, "task": …,
//! "result": {…}, "stab_version": …, "at": unix seconds}`, where `result` is the
//! serialised outcome (`stab_analysis`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde_json::Value;

use super::PlotsWritten;
use super::doc::Doc;
use super::plot::{COLORS, Series, line_plot};
use super::table::{Table, num};

/// File name of the analyses store inside a results directory.
pub const FILE: &str = "analyses.jsonl";

/// Append one analysis record to `dir/analyses.jsonl` (one line, flushed and synced).
pub fn append(dir: &Path, record: &Value) -> stab_core::Result<PathBuf> {
    stab_core::atomic::create_dir(dir)?;
    let path = dir.join(FILE);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| stab_core::atomic::io_error("open", &path, e))?;
    let mut line = serde_json::to_string(record)?;
    line.push('\n');
    f.write_all(line.as_bytes())
        .and_then(|_| f.sync_data())
        .map_err(|e| stab_core::atomic::io_error("append to", &path, e))?;
    Ok(path)
}

/// The analyses of a directory: the latest record per (analysis, subject), in first-seen
/// order. Unreadable lines are skipped and named.
#[derive(Debug, Clone, Default)]
pub struct Analyses {
    pub records: Vec<Value>,
    pub skipped: Vec<String>,
}

impl Analyses {
    pub fn load(dir: &Path) -> stab_core::Result<Self> {
        let path = dir.join(FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(stab_core::atomic::io_error("read", &path, e)),
        };
        let mut order: Vec<(String, String)> = Vec::new();
        let mut latest: BTreeMap<(String, String), Value> = BTreeMap::new();
        let mut skipped = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Value>(line) {
                Ok(v) if v["analysis"].is_string() && v["result"].is_object() => {
                    let key = (
                        v["analysis"].as_str().unwrap_or_default().to_string(),
                        v["subject"].as_str().unwrap_or_default().to_string(),
                    );
                    if !latest.contains_key(&key) {
                        order.push(key.clone());
                    }
                    latest.insert(key, v);
                }
                Ok(_) => skipped.push(format!(
                    "{}:{}: not an analysis record",
                    path.display(),
                    i + 1
                )),
                Err(e) => skipped.push(format!("{}:{}: {e}", path.display(), i + 1)),
            }
        }
        let records = order
            .into_iter()
            .filter_map(|k| latest.remove(&k))
            .collect();
        Ok(Self { records, skipped })
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    fn of(&self, analysis: &str) -> Vec<&Value> {
        self.records
            .iter()
            .filter(|r| r["analysis"] == analysis)
            .collect()
    }

    /// Every analysis as Markdown sections.
    pub fn markdown(&self) -> String {
        self.document().markdown()
    }

    /// Every analysis as report sections.
    pub fn document(&self) -> Doc {
        let mut out = Doc::new();
        let distance = self.of("distance");
        if !distance.is_empty() {
            out.append(distance_doc(&distance));
        }
        let taylor = self.of("taylor");
        if !taylor.is_empty() {
            out.append(taylor_doc(&taylor));
        }
        let loo = self.of("loo");
        if !loo.is_empty() {
            out.append(loo_doc(&loo));
        }
        let bounds = self.of("bounds");
        if !bounds.is_empty() {
            out.append(bounds_doc(&bounds));
        }
        out
    }

    /// The analyses' SVG plots into `dir`.
    pub fn plots(&self, dir: &Path) -> PlotsWritten {
        let mut out = PlotsWritten::default();
        let mut note = |path: PathBuf, r: stab_core::Result<()>| match r {
            Ok(()) => out.written.push(path),
            Err(e) => out.failed.push((path, format!("{e:#}"))),
        };
        if let Err(e) = std::fs::create_dir_all(dir) {
            out.failed.push((dir.to_path_buf(), e.to_string()));
            return out;
        }
        for r in self.of("distance") {
            let path = dir.join(format!("distance-{}.svg", file_stem(&subject(r))));
            note(path.clone(), distance_bars(&path, r));
        }
        let taylor = self.of("taylor");
        if !taylor.is_empty() {
            let series: Vec<Series> = taylor
                .iter()
                .map(|r| Series {
                    name: subject(r),
                    points: r["result"]["points"]
                        .as_array()
                        .map(|ps| {
                            ps.iter()
                                .map(|p| (f(&p["p"]), f(&p["mean"]), f(&p["sd"])))
                                .collect()
                        })
                        .unwrap_or_default(),
                })
                .collect();
            let path = dir.join("taylor.svg");
            let r = line_plot(
                &path,
                "Taylor validity: |f̂ − f| / |f| (mean ± sd over perturbations)",
                "perturbation p",
                "normalised gap",
                &series,
                true,
                true,
            );
            note(path, r);
        }
        let loo = self.of("loo");
        if !loo.is_empty() {
            let mut series = Vec::new();
            for r in &loo {
                for problem in r["result"]["problems"].as_array().into_iter().flatten() {
                    let name = match problem["problem"].as_str() {
                        Some("all") | None => subject(r),
                        Some(p) => format!("{} ({p})", subject(r)),
                    };
                    let points = problem["rows"]
                        .as_array()
                        .map(|rows| {
                            rows.iter()
                                .map(|x| (f(&x["heads"]), f(&x["delta"]), f(&x["delta_sd"])))
                                .collect()
                        })
                        .unwrap_or_default();
                    series.push(Series { name, points });
                }
            }
            let path = dir.join("loo-vs-heads.svg");
            let r = line_plot(
                &path,
                "LOO stability of linear heads on frozen features",
                "heads H",
                "Δ̂ (mean ± sd over left-out points)",
                &series,
                true,
                false,
            );
            note(path, r);
        }
        out
    }
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn subject(r: &Value) -> String {
    r["subject"].as_str().unwrap_or("?").to_string()
}

fn task(r: &Value) -> String {
    r["task"].as_str().unwrap_or("").to_string()
}

fn file_stem(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn cells(v: &[String]) -> Vec<String> {
    v.to_vec()
}

/// Table 6 analogue (totals) and the per-layer tables.
pub fn distance_doc(records: &[&Value]) -> Doc {
    let mut out = Doc::new();
    out.heading("Weight distance after fine-tuning (paper Table 6)")
        .paragraph(
            "\
         ‖w* − w0‖_p / ‖w0‖_p over the parameters with a pre-trained value (embeddings and \
         layers; the pooler and the head are left out of the total), p = 2 and 1; for p = ∞, \
         max|w* − w0| / max|w0|.",
        );
    let mut totals = Table {
        header: cells(&["task", "checkpoint", "params", "L2", "L1", "L∞"].map(String::from)),
        rows: Vec::new(),
    };
    for r in records {
        let rows = r["result"]["rows"].as_array().cloned().unwrap_or_default();
        if let Some(t) = rows.first() {
            totals.rows.push(vec![
                task(r),
                subject(r),
                t["params"].to_string(),
                num(f(&t["l2"])),
                num(f(&t["l1"])),
                num(f(&t["linf"])),
            ]);
        }
    }
    out.table(totals);
    for r in records {
        out.subheading(format!("Per layer: {} ({})", subject(r), task(r)));
        let mut t = Table {
            header: cells(&["group", "params", "L2", "L1", "L∞", "in total"].map(String::from)),
            rows: Vec::new(),
        };
        for row in r["result"]["rows"].as_array().into_iter().flatten() {
            t.rows.push(vec![
                row["group"].as_str().unwrap_or("").to_string(),
                row["params"].to_string(),
                num(f(&row["l2"])),
                num(f(&row["l1"])),
                num(f(&row["linf"])),
                if row["in_total"] == true { "yes" } else { "no" }.into(),
            ]);
        }
        out.table(t);
    }
    out
}

/// Fig. 11 analogue as a table per checkpoint.
pub fn taylor_doc(records: &[&Value]) -> Doc {
    let mut out = Doc::new();
    out.heading("Taylor validity around the fine-tuned weights (paper Fig. 11)")
        .paragraph(
            "\
         f = mean cross-entropy on a fixed training batch in eval mode; w = w* ⊙ (1 + p(U − 0.5)); \
         f̂ = f(w*) + gᵀr + ½ rᵀHr with rᵀHr by central differences of gradients in f64. \
         Gap = |f̂ − f| / |f|, mean ± sd and max over the perturbations.",
        );
    for r in records {
        let res = &r["result"];
        out.subheading(format!(
            "{} ({}): f(w*) = {}, ‖∇f(w*)‖ = {}, {} parameters, {} perturbations per p, h = {}",
            subject(r),
            task(r),
            num(f(&res["f_star"])),
            num(f(&res["grad_norm"])),
            res["params"],
            res["settings"]["repeats"],
            num(f(&res["settings"]["h"])),
        ));
        let mut t = Table {
            header: cells(
                &[
                    "p",
                    "gap mean",
                    "gap sd",
                    "gap max",
                    "f(w) − f(w*)",
                    "gᵀr",
                    "½rᵀHr",
                ]
                .map(String::from),
            ),
            rows: Vec::new(),
        };
        for p in res["points"].as_array().into_iter().flatten() {
            t.rows.push(vec![
                num(f(&p["p"])),
                num(f(&p["mean"])),
                num(f(&p["sd"])),
                num(f(&p["max"])),
                num(f(&p["mean_change"])),
                num(f(&p["mean_linear"])),
                num(f(&p["mean_quadratic"])),
            ]);
        }
        out.table(t);
    }
    out
}

/// LOO stability per task, problem and head count, with the features' geometry.
pub fn loo_doc(records: &[&Value]) -> Doc {
    let mut out = Doc::new();
    out.heading("Leave-one-out stability of heads on frozen features (paper §4.3 on real data)")
        .paragraph(
            "\
         Linear heads on the pooled features (augmented with −1), full-batch logistic GD with \
         η = 1/β; H heads averaged (H = 1 is FineTune; MMR is FineTune here, its regulariser is \
         constant on frozen features). Δ̂ = mean over sampled left-out points of \
         ‖w̄_S/‖w̄_S‖ − w̄_{S∖i}/‖w̄_{S∖i}‖‖, ± sd. γ_S, B = max‖x‖ and r = min‖x‖ from the \
         hard-margin SVM on the same features.",
        );
    let mut geometry = Table {
        header: cells(
            &[
                "task",
                "problem",
                "n",
                "dim",
                "B",
                "r",
                "γ_S",
                "separable",
                "SVM Δ̂",
                "support",
            ]
            .map(String::from),
        ),
        rows: Vec::new(),
    };
    let mut deltas = Table {
        header: cells(
            &[
                "task",
                "problem",
                "method",
                "Δ̂ ± sd",
                "max Δ_i",
                "‖Δw‖",
                "gap to SVM",
            ]
            .map(String::from),
        ),
        rows: Vec::new(),
    };
    for r in records {
        for p in r["result"]["problems"].as_array().into_iter().flatten() {
            let g = &p["geometry"];
            let name = p["problem"].as_str().unwrap_or("").to_string();
            geometry.rows.push(vec![
                subject(r),
                name.clone(),
                g["n"].to_string(),
                g["dim"].to_string(),
                num(f(&g["bound"])),
                num(f(&g["min_norm"])),
                num(f(&g["margin"])),
                if g["separable"] == true {
                    "yes".into()
                } else if g["solved"] == false {
                    "no (SMO stopped)".into()
                } else {
                    format!("no ({} at C)", g["at_bound"])
                },
                g["svm_delta"]
                    .as_f64()
                    .map(num)
                    .unwrap_or_else(|| "–".into()),
                if g["solved"] == false {
                    "–".into()
                } else {
                    g["support"].to_string()
                },
            ]);
            for row in p["rows"].as_array().into_iter().flatten() {
                deltas.rows.push(vec![
                    subject(r),
                    name.clone(),
                    match row["heads"].as_u64() {
                        Some(1) => "FineTune (= MMR here)".to_string(),
                        Some(h) => format!("MHLoss H = {h}"),
                        None => "?".to_string(),
                    },
                    format!("{} ± {}", num(f(&row["delta"])), num(f(&row["delta_sd"]))),
                    num(f(&row["delta_max"])),
                    num(f(&row["distance"])),
                    num(f(&row["direction_gap"])),
                ]);
            }
        }
    }
    out.table(geometry).table(deltas);
    out
}

/// The bound terms per task with the constants they used.
pub fn bounds_doc(records: &[&Value]) -> Doc {
    let mut out = Doc::new();
    out.heading("The paper's bounds from measured constants (docs/methods.md §9)")
        .paragraph(
            "\
         Each constant is marked measured (on the task) or assumed; each bound lists its terms \
         and the one that dominates.",
        );
    for r in records {
        let res = &r["result"];
        out.subheading(subject(r));
        let mut k = Table {
            header: cells(&["constant", "value", "source"].map(String::from)),
            rows: Vec::new(),
        };
        if let Some(obj) = res["constants"].as_object() {
            for (name, c) in obj {
                k.rows.push(vec![
                    name.clone(),
                    num(f(&c["value"])),
                    if c["measured"] == true {
                        "measured"
                    } else {
                        "assumed"
                    }
                    .into(),
                ]);
            }
        }
        out.table(k);
        let mut b = Table {
            header: cells(&["bound", "terms", "total", "dominant", "note"].map(String::from)),
            rows: Vec::new(),
        };
        for bound in res["bounds"].as_array().into_iter().flatten() {
            let terms: Vec<String> = bound["terms"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| format!("{} {}", t[0].as_str().unwrap_or(""), num(f(&t[1]))))
                .collect();
            b.rows.push(vec![
                bound["bound"].as_str().unwrap_or("").to_string(),
                terms.join(" + "),
                num(f(&bound["total"])),
                bound["dominant"].as_str().unwrap_or("").to_string(),
                bound["note"].as_str().unwrap_or("").to_string(),
            ]);
        }
        out.table(b);
    }
    out
}

/// Per-layer L2 / L1 / L∞ ratios as grouped bars.
fn distance_bars(path: &Path, record: &Value) -> stab_core::Result<()> {
    let rows: Vec<(String, [f64; 3])> = record["result"]["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["group"].as_str().unwrap_or("").to_string(),
                [f(&r["l2"]), f(&r["l1"]), f(&r["linf"])],
            )
        })
        .collect();
    if rows.is_empty() {
        return Err(stab_core::internal!("no rows to plot"));
    }
    let top = rows
        .iter()
        .flat_map(|r| r.1)
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max)
        .max(1e-12)
        * 1.12;
    let k = rows.len();
    let width = (90 * k as u32 + 200).clamp(700, 2400);
    let mut svg = String::new();
    let root = SVGBackend::with_string(&mut svg, (width, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| stab_core::internal!("{e}"))?;
    let labels: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("weight distance per layer: {}", subject(record)),
            ("sans-serif", 20),
        )
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(-0.5f64..(k as f64 - 0.5), 0f64..top)
        .map_err(|e| stab_core::internal!("{e}"))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(k.max(1))
        .x_label_formatter(&|x: &f64| super::plot::category_label(&labels, *x))
        .x_desc("parameter group")
        .y_desc("‖w* − w0‖ / ‖w0‖")
        .draw()
        .map_err(|e| stab_core::internal!("{e}"))?;
    for (m, name) in ["L2", "L1", "L∞"].iter().enumerate() {
        let color = COLORS[m];
        let x0 = -0.36 + 0.24 * m as f64;
        chart
            .draw_series(
                rows.iter()
                    .enumerate()
                    .filter(|(_, r)| r.1[m].is_finite())
                    .map(|(i, r)| {
                        let x = i as f64 + x0;
                        Rectangle::new([(x, 0.0), (x + 0.22, r.1[m])], color.filled())
                    }),
            )
            .map_err(|e| stab_core::internal!("{e}"))?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| stab_core::internal!("{e}"))?;
    root.present().map_err(|e| stab_core::internal!("{e}"))?;
    drop(chart);
    drop(root);
    stab_core::atomic::write_file(path, svg.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_latest_record_per_subject_wins_and_every_kind_renders() {
        let dir = tempfile::tempdir().unwrap();
        let distance = |l2: f64| {
            json!({"analysis": "distance", "subject": "cb-finetune-s0", "task": "cb", "result": {
                "rows": [
                    {"group": "total", "params": 10, "l2": l2, "l1": 0.2, "linf": 0.3, "in_total": true},
                    {"group": "layer 0", "params": 10, "l2": l2, "l1": 0.2, "linf": 0.3, "in_total": true}
                ], "without_pretrained": []}})
        };
        append(dir.path(), &distance(0.5)).unwrap();
        append(dir.path(), &distance(0.25)).unwrap();
        append(dir.path(), &json!({"analysis": "taylor", "subject": "cb-x", "task": "cb", "result": {
            "f_star": 0.5, "grad_norm": 0.1, "params": 100, "max_curvature": 1.0,
            "settings": {"ps": [0.01, 0.02], "repeats": 2, "h": 0.001, "seed": 0},
            "points": [
                {"p": 0.01, "gaps": [0.001], "mean": 0.001, "sd": 0.0005, "max": 0.002, "mean_change": 0.1, "mean_linear": 0.05, "mean_quadratic": 0.05},
                {"p": 0.02, "gaps": [0.004], "mean": 0.004, "sd": 0.001, "max": 0.006, "mean_change": 0.2, "mean_linear": 0.1, "mean_quadratic": 0.1}
            ]}})).unwrap();
        append(dir.path(), &json!({"analysis": "loo", "subject": "rte", "task": "rte", "result": {
            "problems": [{"problem": "all",
                "geometry": {"n": 100, "dim": 8, "bound": 3.0, "min_norm": 1.0, "margin": 0.1, "separable": true, "at_bound": 0, "support": 12, "svm_delta": 0.01, "svm_delta_from": 12},
                "rows": [
                    {"heads": 1, "delta": 0.02, "delta_sd": 0.01, "delta_max": 0.04, "distance": 0.1, "direction_gap": 0.3},
                    {"heads": 5, "delta": 0.01, "delta_sd": 0.005, "delta_max": 0.02, "distance": 0.05, "direction_gap": 0.2}
                ]}]}})).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(FILE))
            .unwrap()
            .write_all(b"{torn\n")
            .unwrap();
        let a = Analyses::load(dir.path()).unwrap();
        assert_eq!(a.records.len(), 3);
        assert_eq!(a.skipped.len(), 1);
        let md = a.markdown();
        assert!(
            md.contains("| cb   | cb-finetune-s0 | 10     | 0.25"),
            "{md}"
        );
        assert!(
            !md.contains("0.5 "),
            "the older distance record is replaced"
        );
        assert!(md.contains("Taylor validity") && md.contains("Leave-one-out"));
        let plots = a.plots(&dir.path().join("plots"));
        assert!(plots.failed.is_empty(), "{:?}", plots.failed);
        let names: Vec<String> = plots
            .written
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "distance-cb-finetune-s0.svg",
                "taylor.svg",
                "loo-vs-heads.svg"
            ]
        );
    }
}
