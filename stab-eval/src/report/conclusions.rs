//! The reader's view of [`Findings`]: a summary in plain words, the tables of failed
//! runs, stochastic order and power, the across-task aggregates and the prediction
//! instability, and their plots (the SD-change heatmap, the IQM intervals, the
//! per-example agreement histograms). A plot is placed in the Markdown as an image line
//! (`![caption](file.svg)`) right after its table; the HTML page inlines it there.

use std::fmt::Write as _;
use std::path::Path;

use super::PlotsWritten;
use super::doc::Doc;
use super::findings::Findings;
use super::table::Table;

/// A value with two decimals, or "–".
fn num(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.2}"))
}

fn interval(v: Option<[f64; 2]>) -> String {
    v.map_or_else(|| "–".into(), |[a, b]| format!("[{a:.1}, {b:.1}]"))
}

/// A seeds-needed count, or what it means that the search found none.
fn seeds_text(n: Option<usize>) -> String {
    n.map_or("more than the search's limit".into(), |n| n.to_string())
}

/// The file names of this view's plots (written by [`plots`]).
pub const HEATMAP: &str = "sd-change-heatmap.svg";
pub const IQM_PLOT: &str = "iqm.svg";

pub fn agreement_plot(task: &str) -> String {
    format!("agreement-{task}.svg")
}

/// The summary list: whether the arms differ beyond the method (`settings`,
/// [`super::settings::WhatWasRun::summary_item`]), what is significant, what the grid can
/// detect, what failed.
pub fn summary(f: &Findings, settings: String) -> Doc {
    let items = [
        Some(settings),
        Some(failed_item(f)),
        diverged_item(f),
        pooled_item(f),
        Some(sd_item(f)),
        Some(aso_item(f)),
        detectable_item(f),
        Some(across_tasks_item(f)),
        predictions_line(f),
        identical_item(f),
    ];
    let mut doc = Doc::new();
    doc.heading("Summary")
        .list(items.into_iter().flatten().collect());
    doc
}

/// The summary's failed runs, per task.
fn failed_item(f: &Findings) -> String {
    let runs: usize = f.runs.values().flat_map(|m| m.values()).map(|r| r.n).sum();
    // Failed runs per task (the main table has them per method).
    let by_task: Vec<(String, usize, usize)> = f
        .runs
        .iter()
        .map(|(t, m)| {
            let failed = m.values().map(|r| r.failed).sum();
            (t.clone(), failed, m.values().map(|r| r.n).sum())
        })
        .collect();
    let total_failed: usize = by_task.iter().map(|t| t.1).sum();
    let judged = f
        .runs
        .values()
        .flat_map(|m| m.values())
        .any(|r| r.majority.is_some());
    let tasks: Vec<String> = by_task
        .iter()
        .filter(|t| t.1 > 0)
        .map(|(t, k, n)| format!("{t} {k} of {n}"))
        .collect();
    format!(
        "**Failed runs** (test score at or below the majority class): {}.",
        if !judged {
            "not judged (the records predate the majority-class score)".to_string()
        } else if total_failed == 0 {
            format!("none of {runs} runs")
        } else {
            format!(
                "{total_failed} of {runs} runs; by task: {} (per method in the main table)",
                tasks.join(", ")
            )
        }
    )
}

/// The summary's diverged runs (no score: left out of every statistic), by row.
fn diverged_item(f: &Findings) -> Option<String> {
    let rows: Vec<String> = f
        .runs
        .iter()
        .flat_map(|(t, m)| {
            m.iter()
                .filter(|(_, r)| r.diverged > 0)
                .map(move |(name, r)| {
                    format!("{name} on {t} {} of {}", r.diverged, r.n + r.diverged)
                })
        })
        .collect();
    (!rows.is_empty()).then(|| {
        format!(
            "**Diverged runs** (a non-finite loss or metric: no score, so left out of every statistic; the main table counts them): {}.",
            rows.join(", ")
        )
    })
}

/// The summary's warning about rows that hold one seed twice from different settings.
fn pooled_item(f: &Findings) -> Option<String> {
    let first = f.pooled.first()?;
    Some(format!(
        "**Runs of different settings pooled** ({} seeds held twice; the report cannot tell the experiments apart): e.g. {} on {}, seed {}: `{}` and `{}`. Run each setting into its own directory, or sweep the setting in one recipe.",
        f.pooled.len(),
        first.method,
        first.task,
        first.seed,
        first.run_ids[0],
        first.run_ids[1]
    ))
}

/// The summary's SD comparisons significant after Holm's adjustment.
fn sd_item(f: &Findings) -> String {
    let mut sig = Vec::new();
    let mut tested = 0;
    for (task, m) in &f.stability {
        for (method, s) in m {
            if let (Some(p), Some(r)) = (s.bf_p_holm, s.sd_ratio) {
                tested += 1;
                if p < 0.05 {
                    let dir = if r < 1.0 { "lower" } else { "higher" };
                    sig.push(format!(
                        "{method} on {task} ({dir}, ratio {r:.2}, p_Holm {p:.3})"
                    ));
                }
            }
        }
    }
    format!(
        "**SD against FineTune**: {} of {tested} comparisons significant after Holm's adjustment{}.",
        sig.len(),
        if sig.is_empty() {
            String::new()
        } else {
            format!(": {}", sig.join("; "))
        }
    )
}

/// The summary's methods almost stochastically better than FineTune.
fn aso_item(f: &Findings) -> String {
    let better: Vec<String> = f
        .stability
        .iter()
        .flat_map(|(t, m)| {
            m.iter()
                .filter(|(_, s)| s.aso_eps_min.is_some_and(|e| e < 0.5))
                .map(move |(name, s)| {
                    format!("{name} on {t} (ε_min {:.2})", s.aso_eps_min.unwrap_or(1.0))
                })
        })
        .collect();
    format!(
        "**Scores against FineTune** (Almost Stochastic Order, 95% confidence): {}.",
        if better.is_empty() {
            "no method is almost stochastically better than FineTune on any task".to_string()
        } else {
            format!("almost stochastically better: {}", better.join("; "))
        }
    )
}

/// The summary's line on the SD ratio this grid can detect.
fn detectable_item(f: &Findings) -> Option<String> {
    let compared: Vec<&super::findings::Stability> =
        f.stability.values().flat_map(|m| m.values()).collect();
    if !compared.is_empty() && compared.iter().all(|s| s.min_detectable_sd_ratio.is_none()) {
        return Some(format!(
            "**What this grid can detect**: too few seeds for Brown–Forsythe to reach 80% power even for an SD ratio of 0.01; a ratio of 0.7 needs {} seeds per arm.",
            seeds_text(compared[0].seeds_for_ratio_0_7)
        ));
    }
    if let Some(s) = compared
        .iter()
        .find(|s| s.min_detectable_sd_ratio.is_some())
    {
        let n = s.n;
        return Some(format!(
            "**What this grid can detect**: with {n} seeds per arm, Brown–Forsythe detects (80% power, α = 0.05) an SD ratio of {} or below, i.e. only reductions of the SD by {:.0}% or more; a ratio of 0.7 needs {} seeds per arm, 0.5 needs {} (simulation under normality, {} draws per point). A non-significant SD difference here is not evidence of equal stability.",
            num(s.min_detectable_sd_ratio),
            100.0 * (1.0 - s.min_detectable_sd_ratio.unwrap_or(1.0)),
            seeds_text(s.seeds_for_ratio_0_7),
            seeds_text(s.seeds_for_ratio_0_5),
            f.settings.power_simulations
        ));
    }
    None
}

/// The summary's across-task probabilities of improvement that exclude 50%.
fn across_tasks_item(f: &Findings) -> String {
    let improving: Vec<String> = f
        .aggregate
        .iter()
        .filter_map(|(m, a)| {
            let [lo, hi] = a.p_improvement_ci?;
            (lo > 50.0 || hi < 50.0).then(|| {
                let word = if lo > 50.0 { "better" } else { "worse" };
                format!(
                    "{m} ({word}: P = {:.0}% [{lo:.0}, {hi:.0}])",
                    a.p_improvement.unwrap_or(0.0)
                )
            })
        })
        .collect();
    format!(
        "**Across tasks** (probability of improving on FineTune, stratified bootstrap): {}.",
        if improving.is_empty() {
            "no interval excludes 50%".to_string()
        } else {
            improving.join("; ")
        }
    )
}

/// The summary's methods bit-identical to FineTune, with the tasks where they are.
fn identical_item(f: &Findings) -> Option<String> {
    // Methods bit-identical to FineTune, with the tasks where they are.
    let mut same_by_method: std::collections::BTreeMap<&String, Vec<&String>> = Default::default();
    for (t, m) in &f.runs {
        for (name, r) in m {
            if r.identical_to_finetune {
                same_by_method.entry(name).or_default().push(t);
            }
        }
    }
    let same: Vec<String> = same_by_method
        .iter()
        .map(|(m, tasks)| {
            if tasks.len() == f.runs.len() {
                format!("{m} (every task)")
            } else {
                let t: Vec<&str> = tasks.iter().map(|t| t.as_str()).collect();
                format!("{m} ({})", t.join(", "))
            }
        })
        .collect();
    (!same.is_empty()).then(|| {
        format!(
            "**Identical to FineTune** (every seed bit for bit, not separate results): {}.",
            same.join(", ")
        )
    })
}

/// The tables and plot references of the findings (after the main table).
pub fn sections(f: &Findings, plots: bool) -> Doc {
    let mut doc = Doc::new();
    if !f.stability.is_empty() {
        stability_section(&mut doc, f, plots);
    }
    if !f.aggregate.is_empty() {
        aggregate_section(&mut doc, f, plots);
    }
    if !f.predictions.is_empty() {
        predictions_section(&mut doc, f, plots);
    }
    doc
}

/// Each method's SD against FineTune's, per task: the table and the heatmap.
fn stability_section(doc: &mut Doc, f: &Findings, plots: bool) {
    let header = [
        "task",
        "method",
        "n",
        "SD [95% CI]",
        "FineTune SD",
        "SD change",
        "p (B–F)",
        "p (Holm)",
        "w/o failed: ratio, p, ε_min",
        "ASO ε_min",
        "detectable SD ratio",
    ]
    .map(String::from)
    .to_vec();
    let p3 = |v: Option<f64>| v.map_or("–".into(), |p| format!("{p:.3}"));
    let mut rows = Vec::new();
    for (task, m) in &f.stability {
        for (method, s) in m {
            let mut row = vec![task.clone(), method.clone(), s.n.to_string()];
            if f.runs[task][method].identical_to_finetune {
                row.push("= FineTune (bit-identical runs)".into());
                row.extend(std::iter::repeat_n(String::new(), 7));
                rows.push(row);
                continue;
            }
            let change = match s.sd_ratio {
                Some(r) => {
                    let arrow = if r < 1.0 { " ↓" } else { "" };
                    let star = if s.bf_p_holm.is_some_and(|p| p < 0.05) {
                        " *"
                    } else {
                        ""
                    };
                    format!("{:+.0}%{arrow}{star}", 100.0 * (r - 1.0))
                }
                None => "–".into(),
            };
            row.extend([
                match (s.sd, s.sd_ci) {
                    (Some(sd), Some([a, b])) => format!("{sd:.2} [{a:.2}, {b:.2}]"),
                    _ => "–".into(),
                },
                num(s.finetune_sd),
                change,
                p3(s.bf_p),
                p3(s.bf_p_holm),
                format!(
                    "{}, {}, {}",
                    num(s.sd_ratio_without_failed),
                    p3(s.bf_p_without_failed),
                    num(s.aso_eps_min_without_failed)
                ),
                num(s.aso_eps_min),
                s.min_detectable_sd_ratio
                    .map_or("none (too few seeds)".into(), |r| format!("≤ {r:.2}")),
            ]);
            rows.push(row);
        }
    }
    doc.section(
        "Stability against FineTune",
        &format!("Per task, each method's SD over seeds with a 95% percentile-bootstrap interval (2,000 resamples), its change against FineTune's SD (↓ lower; * significant at 5% after Holm's adjustment over the table), the Brown–Forsythe test of equal variances (Levene, median-centred), the same without failed runs, ASO's ε_min of the method over FineTune (below 0.5: almost stochastically better; deep-significance's computation, 95% confidence, {} bootstrap resamples), and the SD ratios these seed counts detect with 80% power (≤ r: a method whose SD is at most r times FineTune's is found; none: no ratio down to 0.01 is).",
        f.settings.aso_bootstrap),
        Table { header, rows },
    );
    if plots {
        doc.plot(
            "Each cell is a method's SD over seeds divided by FineTune's on that task: blue below 1 (more stable), red above; a black outline and * mark a difference significant after Holm's adjustment.",
            HEATMAP,
        );
    }
}

/// The across-task aggregates (IQM, probability of improvement) and their plot.
fn aggregate_section(doc: &mut Doc, f: &Findings, plots: bool) {
    let header = [
        "method",
        "tasks",
        "IQM [95% CI]",
        "P(> FineTune) % [95% CI]",
        "w/o failed: IQM, P",
    ]
    .map(String::from)
    .to_vec();
    let rows = f
        .aggregate
        .iter()
        .map(|(m, a)| {
            vec![
                m.clone(),
                a.tasks.to_string(),
                format!("{} {}", num(a.iqm), interval(a.iqm_ci)),
                match a.p_improvement {
                    Some(p) => format!("{p:.1} {}", interval(a.p_improvement_ci)),
                    None => "–".into(),
                },
                format!(
                    "{}, {}",
                    num(a.iqm_without_failed),
                    a.p_improvement_without_failed
                        .map_or("–".into(), |p| format!("{p:.1}"))
                ),
            ]
        })
        .collect();
    doc.section(
        "Across tasks",
        &format!("Scores normalised per task (0 = the majority class, 100 = a perfect score). IQM: the interquartile mean of every run of every task; P(> FineTune): the probability that a run of the method beats a run of FineTune on the same task, averaged over tasks (rliable's aggregates); 95% stratified-bootstrap intervals ({} resamples).",
        f.settings.aggregate_bootstrap),
        Table { header, rows },
    );
    if plots {
        doc.plot(
            "The dot is each method's IQM, the bar its 95% stratified-bootstrap interval; overlapping bars are no evidence of a difference.",
            IQM_PLOT,
        );
    }
}

/// Prediction churn per task and method, rejected prediction files, agreement plots.
fn predictions_section(doc: &mut Doc, f: &Findings, plots: bool) {
    let header = [
        "task",
        "method",
        "runs",
        "disagreement %",
        "unstable examples %",
        "disagreement − FineTune's [95% CI]",
        "w/o failed: disagreement %",
    ]
    .map(String::from)
    .to_vec();
    let rows = f
        .predictions
        .iter()
        .flat_map(|(t, m)| {
            m.iter().map(move |(name, p)| {
                vec![
                    t.clone(),
                    name.clone(),
                    if p.runs < p.cell_runs {
                        format!("{} of {} (fewer runs)", p.runs, p.cell_runs)
                    } else {
                        p.runs.to_string()
                    },
                    format!("{:.1}", p.disagreement),
                    format!("{:.1}", p.unstable_share),
                    interval(p.disagreement_vs_finetune_ci),
                    p.disagreement_without_failed
                        .map_or("–".into(), |d| format!("{d:.1}")),
                ]
            })
        })
        .collect();
    doc.section(
        "Prediction instability",
        "From each run's stored test predictions: the mean share of test examples two seeds predict differently (churn), the share of examples not predicted alike by every seed, and the difference in churn from FineTune with a 95% bootstrap interval over examples. Two methods with equal score SDs can differ here.",
        Table { header, rows },
    );
    if let Some(rejected) = rejected_paragraph(f) {
        doc.paragraph(rejected);
    }
    if plots {
        for t in f.predictions.keys() {
            doc.plot(
                "For each test example, the share of seeds that agree with its most common prediction; the taller the last bar (every seed agrees), the fewer examples a re-run would flip.",
                agreement_plot(t),
            );
        }
    }
}

/// The summary's line on prediction churn: which methods' seed-to-seed disagreement differs
/// from FineTune's, and whether any cell's statistic used fewer runs than it holds.
fn predictions_line(f: &Findings) -> Option<String> {
    let churn: Vec<String> = f
        .predictions
        .iter()
        .flat_map(|(t, m)| {
            m.iter().filter_map(move |(name, p)| {
                let [lo, hi] = p.disagreement_vs_finetune_ci?;
                (lo > 0.0 || hi < 0.0).then(|| {
                    let word = if lo > 0.0 { "more" } else { "less" };
                    let fewer = if p.runs < p.cell_runs {
                        format!(", over {} of its {} runs", p.runs, p.cell_runs)
                    } else {
                        String::new()
                    };
                    format!(
                        "{name} on {t} ({word} churn: {:.1}% of examples per seed pair{fewer})",
                        p.disagreement
                    )
                })
            })
        })
        .collect();
    let short = f
        .predictions
        .values()
        .flat_map(|m| m.values())
        .filter(|p| p.runs < p.cell_runs)
        .count();
    if f.predictions.is_empty() {
        return None;
    }
    Some(format!(
        "**Predictions**{}: {}.",
        if short > 0 {
            format!(
                " (computed over fewer runs than their cells hold for {short} method×task cells; {} prediction files not used)",
                f.rejected_predictions.len()
            )
        } else {
            String::new()
        },
        if churn.is_empty() {
            "no method's seed-to-seed disagreement differs from FineTune's (95% bootstrap over examples)".to_string()
        } else {
            format!(
                "disagreement differs from FineTune's for {}",
                churn.join("; ")
            )
        }
    ))
}

/// The prediction files a report did not use, named with the reason (empty when none).
fn rejected_paragraph(f: &Findings) -> Option<String> {
    if f.rejected_predictions.is_empty() {
        return None;
    }
    let named: Vec<String> = f
        .rejected_predictions
        .iter()
        .map(|r| format!("`{}` {}", r.file, r.reason))
        .collect();
    Some(format!(
        "**Prediction files not used** ({}; those runs are left out of this section's statistics, and the runs column says how many remain): {}.",
        named.len(),
        named.join("; ")
    ))
}

/// The findings' CSV columns after the fine-tuning table's: failed runs, ASO ε_min, the
/// detectable SD ratio, churn and the unstable share.
pub const CSV_COLUMNS: &str =
    "failed,aso_eps_min,min_detectable_sd_ratio,disagreement,unstable_share";

/// The [`CSV_COLUMNS`] fields of one method on one task (empty where undefined).
pub fn csv_fields(f: &Findings, method: &str, task: &str) -> String {
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    let run = f.runs.get(task).and_then(|m| m.get(method));
    let st = f.stability.get(task).and_then(|m| m.get(method));
    let pr = f.predictions.get(task).and_then(|m| m.get(method));
    format!(
        "{},{},{},{},{}",
        run.map_or(String::new(), |r| r.failed.to_string()),
        opt(st.and_then(|s| s.aso_eps_min)),
        opt(st.and_then(|s| s.min_detectable_sd_ratio)),
        opt(pr.map(|p| p.disagreement)),
        opt(pr.map(|p| p.unstable_share)),
    )
}

/// Write the heatmap, the IQM plot and the agreement histograms into `dir`.
pub fn plots(f: &Findings, dir: &Path, out: &mut PlotsWritten) {
    let mut save = |name: String, svg: Option<String>| {
        let path = dir.join(name);
        if let Some(svg) = svg {
            match stab_core::atomic::write_file(&path, svg.as_bytes()) {
                Ok(()) => out.written.push(path),
                Err(e) => out.failed.push((path, format!("{e:#}"))),
            }
        }
    };
    save(HEATMAP.into(), heatmap(f));
    save(IQM_PLOT.into(), iqm_plot(f));
    for (task, m) in &f.predictions {
        save(agreement_plot(task), agreement_histogram(task, m));
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Task × method cells coloured by log₂ of the SD ratio (blue: lower SD, red: higher),
/// significant cells (Holm) outlined and starred, bit-identical ones marked "=".
fn heatmap(f: &Findings) -> Option<String> {
    let tasks: Vec<&String> = f.stability.keys().collect();
    let mut methods: Vec<&String> = f.stability.values().flat_map(|m| m.keys()).collect();
    methods.sort();
    methods.dedup();
    if tasks.is_empty() || methods.is_empty() {
        return None;
    }
    let (cw, ch, left, top) = (90.0, 34.0, 220.0, 70.0);
    let w = (left + cw * tasks.len() as f64 + 20.0).max(700.0);
    let h = top + ch * methods.len() as f64 + 60.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{}\" y=\"24\" font-size=\"16\" text-anchor=\"middle\">SD against FineTune (ratio; * significant after Holm)</text>\n",
        w / 2.0
    );
    for (j, t) in tasks.iter().enumerate() {
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            left + cw * (j as f64 + 0.5),
            top - 10.0,
            esc(t)
        );
    }
    for (i, m) in methods.iter().enumerate() {
        let y = top + ch * i as f64;
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            left - 8.0,
            y + ch * 0.62,
            esc(m)
        );
        for (j, t) in tasks.iter().enumerate() {
            let x = left + cw * j as f64;
            let Some(st) = f.stability[*t].get(*m) else {
                continue;
            };
            let identical = f.runs[*t][*m].identical_to_finetune;
            let dark = st.sd_ratio.is_some_and(|r| r > 0.0 && r.log2().abs() > 1.0) && !identical;
            let (fill, label) = match st.sd_ratio {
                _ if identical => ("#eeeeee".to_string(), "=".to_string()),
                Some(r) if r > 0.0 => {
                    let v = r.log2().clamp(-2.0, 2.0) / 2.0;
                    let (rr, gg, bb) = if v < 0.0 {
                        (255.0 * (1.0 + v), 255.0 * (1.0 + 0.6 * v), 255.0)
                    } else {
                        (255.0, 255.0 * (1.0 - 0.6 * v), 255.0 * (1.0 - v))
                    };
                    let star = if st.bf_p_holm.is_some_and(|p| p < 0.05) {
                        " *"
                    } else {
                        ""
                    };
                    (
                        format!("rgb({},{},{})", rr as u8, gg as u8, bb as u8),
                        format!("{r:.2}{star}"),
                    )
                }
                _ => ("#ffffff".to_string(), "–".to_string()),
            };
            let stroke = if st.bf_p_holm.is_some_and(|p| p < 0.05) {
                "stroke=\"black\" stroke-width=\"2.5\""
            } else {
                "stroke=\"#999\""
            };
            let _ = writeln!(
                s,
                "<rect x=\"{x}\" y=\"{y}\" width=\"{cw}\" height=\"{ch}\" fill=\"{fill}\" {stroke}/>\n<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"{}\">{}</text>",
                x + cw / 2.0,
                y + ch * 0.62,
                if dark { "white" } else { "black" },
                esc(&label)
            );
        }
    }
    let _ = writeln!(
        s,
        "<text x=\"{left}\" y=\"{}\" fill=\"#555\">blue: lower SD than FineTune; red: higher; grey \"=\": bit-identical to FineTune</text>\n</svg>",
        h - 20.0
    );
    Some(s)
}

/// One row per method: the IQM as a dot and its 95% interval as a bar.
fn iqm_plot(f: &Findings) -> Option<String> {
    let rows: Vec<(&String, f64, [f64; 2])> = f
        .aggregate
        .iter()
        .filter_map(|(m, a)| Some((m, a.iqm?, a.iqm_ci.unwrap_or([a.iqm?; 2]))))
        .collect();
    if rows.is_empty() {
        return None;
    }
    let lo = rows.iter().map(|r| r.2[0]).fold(f64::INFINITY, f64::min);
    let hi = rows
        .iter()
        .map(|r| r.2[1])
        .fold(f64::NEG_INFINITY, f64::max);
    let pad = ((hi - lo) * 0.1).max(1.0);
    let (x0, x1) = ((lo - pad).floor(), (hi + pad).ceil());
    let (left, width, rh, top) = (220.0, 520.0, 28.0, 50.0);
    let h = top + rh * rows.len() as f64 + 70.0;
    let sx = |v: f64| left + width * (v - x0) / (x1 - x0);
    let total = left + width + 40.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{total}\" height=\"{h}\" viewBox=\"0 0 {total} {h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{}\" y=\"24\" font-size=\"16\" text-anchor=\"middle\">IQM of normalised scores with 95% CI</text>\n",
        total / 2.0
    );
    for (i, (m, v, [a, b])) in rows.iter().enumerate() {
        let y = top + rh * (i as f64 + 0.5);
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n<line x1=\"{}\" x2=\"{}\" y1=\"{y}\" y2=\"{y}\" stroke=\"{}\" stroke-width=\"3\"/>\n<circle cx=\"{}\" cy=\"{y}\" r=\"5\" fill=\"{}\"/>",
            left - 8.0,
            y + 4.0,
            esc(m),
            sx(*a),
            sx(*b),
            super::plot::hex(0),
            sx(*v),
            super::plot::hex(3)
        );
    }
    let axis_y = top + rh * rows.len() as f64 + 8.0;
    let _ = writeln!(
        s,
        "<line x1=\"{left}\" x2=\"{}\" y1=\"{axis_y}\" y2=\"{axis_y}\" stroke=\"black\"/>",
        left + width
    );
    for k in 0..=4 {
        let v = x0 + (x1 - x0) * k as f64 / 4.0;
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{v:.1}</text>",
            sx(v),
            axis_y + 16.0
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">normalised score (0: the majority class, 100: perfect)</text>",
        left + width / 2.0,
        axis_y + 36.0
    );
    s.push_str("</svg>\n");
    Some(s)
}

/// Per method, the share of test examples at each level of agreement across seeds.
fn agreement_histogram(
    task: &str,
    m: &std::collections::BTreeMap<String, super::findings::PredictionStability>,
) -> Option<String> {
    if m.is_empty() {
        return None;
    }
    let (left, width, top, height) = (90.0, 600.0, 50.0, 260.0);
    let total_w = left + width + 220.0;
    let total_h = top + height + 50.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{total_w}\" height=\"{total_h}\" viewBox=\"0 0 {total_w} {total_h}\" font-family=\"sans-serif\" font-size=\"13\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{}\" y=\"24\" font-size=\"16\" text-anchor=\"middle\">{}: share of test examples by agreement across seeds</text>\n",
        total_w / 2.0,
        esc(task)
    );
    // The y axis: share of test examples (%), from 0 to the tallest bar's tick.
    let tallest = m
        .values()
        .flat_map(|p| {
            let n = p.examples.max(1) as f64;
            p.agreement_histogram
                .iter()
                .map(move |&c| 100.0 * c as f64 / n)
        })
        .fold(0.0, f64::max);
    let y_ticks = super::plot::ticks(0.0, tallest.max(1.0), false);
    let y_top = y_ticks
        .last()
        .copied()
        .filter(|t| *t >= tallest)
        .unwrap_or(tallest)
        .max(1.0);
    let sy = |share: f64| top + height * (1.0 - share / y_top);
    let _ = writeln!(
        s,
        "<line x1=\"{left}\" x2=\"{left}\" y1=\"{top}\" y2=\"{}\" stroke=\"black\"/>",
        top + height
    );
    for t in &y_ticks {
        let y = sy(*t);
        let _ = writeln!(
            s,
            "<line x1=\"{}\" x2=\"{left}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"black\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left - 5.0,
            left - 8.0,
            y + 4.0,
            super::table::label_num(*t),
        );
    }
    let _ = writeln!(
        s,
        "<text transform=\"translate({},{}) rotate(-90)\" text-anchor=\"middle\">test examples %</text>",
        left - 52.0,
        top + height / 2.0
    );
    let k = m.len() as f64;
    let bw = width / 10.0;
    for (i, (name, p)) in m.iter().enumerate() {
        let color = super::plot::COLORS[i % super::plot::COLORS.len()];
        let fill = format!("rgb({},{},{})", color.0, color.1, color.2);
        let n = p.examples.max(1) as f64;
        for (b, &count) in p.agreement_histogram.iter().enumerate() {
            let bar_h = top + height - sy(100.0 * count as f64 / n);
            let x = left + bw * b as f64 + bw * i as f64 / k;
            let _ = writeln!(
                s,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bar_h:.1}\" fill=\"{fill}\"/>",
                top + height - bar_h,
                bw / k
            );
        }
        let _ = writeln!(
            s,
            "<rect x=\"{}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{fill}\"/><text x=\"{}\" y=\"{}\">{}</text>",
            left + width + 20.0,
            top + 18.0 * i as f64,
            left + width + 38.0,
            top + 18.0 * i as f64 + 10.0,
            esc(name)
        );
    }
    let base = top + height;
    let _ = writeln!(
        s,
        "<line x1=\"{left}\" x2=\"{}\" y1=\"{base}\" y2=\"{base}\" stroke=\"black\"/>",
        left + width
    );
    for b in 0..=10 {
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{:.1}</text>",
            left + bw * b as f64,
            base + 16.0,
            b as f64 / 10.0
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">share of seeds agreeing with the most common prediction (last bin: all agree)</text>\n</svg>",
        left + width / 2.0,
        base + 36.0
    );
    Some(s)
}
