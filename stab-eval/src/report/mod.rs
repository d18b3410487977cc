//! Reports from a results store: tables (Markdown, CSV, LaTeX) and SVG plots.
//!
//! [`Report::load`] merges every `runs*.jsonl` of a directory (the latest record per
//! `run_id` wins) and renders what it finds: the synthetic studies per factor
//! ([`synthetic`]), fine-tuning results per task and method ([`finetune`]), and the
//! measurements of `stab analyze` in `analyses.jsonl` ([`analyses`]).

pub mod analyses;
pub mod attribution;
pub mod conclusions;
pub mod cost;
pub mod doc;
pub mod findings;
pub mod finetune;
pub mod html;
pub mod plot;
pub mod seed_scores;
pub mod settings;
pub mod synthetic;
pub mod synthetic_trends;
pub mod table;
pub mod tune;

/// Where the Markdown's images point by default: `plots/` beside the saved report
/// (`stab report DIR > DIR/report.md`, the plots in `DIR/plots/`).
pub const DEFAULT_PLOTS_LINK: &str = "plots/";

use stab_core::Refusal;
use std::path::{Path, PathBuf};

use stab_core::store::ResultsStore;
use stab_core::{RecipeKind, RunRecord};

/// Output format of `stab report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Markdown,
    Csv,
    Latex,
    /// Every table as one JSON document ([`findings::Findings`] plus the main table).
    Json,
}

impl std::str::FromStr for ReportFormat {
    type Err = Refusal;
    fn from_str(s: &str) -> Result<Self, Refusal> {
        match s {
            "md" | "markdown" => Ok(Self::Markdown),
            "csv" => Ok(Self::Csv),
            "latex" | "tex" => Ok(Self::Latex),
            "json" => Ok(Self::Json),
            other => {
                Err(format!("unknown format `{other}`; expected md, csv, latex or json").into())
            }
        }
    }
}

/// The records of one store directory, ready to render.
/// The plots a report wrote, and those it could not write with the reason.
#[derive(Debug, Default)]
pub struct PlotsWritten {
    pub written: Vec<PathBuf>,
    pub failed: Vec<(PathBuf, String)>,
}

#[derive(Debug, Clone)]
pub struct Report {
    /// The runs the report's statistics use (a `[tune]` search's runs left out).
    pub records: Vec<RunRecord>,
    /// A `[tune]` search's runs: shown in their own section, never in the study's.
    pub tuning: Vec<RunRecord>,
    /// `stab analyze` results of the directory.
    pub analyses: analyses::Analyses,
    /// Store lines that could not be read (`file:line: reason`).
    pub skipped: Vec<String>,
    /// Run ids recorded several times with different results; the report uses the latest
    /// record of each and says so.
    pub conflicts: Vec<String>,
    /// The store directory (where the runs' prediction files are), if loaded from one.
    pub dir: Option<PathBuf>,
    findings: std::sync::OnceLock<findings::Findings>,
}

impl Report {
    /// Read every `runs*.jsonl` in `dir`.
    pub fn load(dir: &Path) -> stab_core::Result<Self> {
        let contents = ResultsStore::read_dir(dir)?;
        let analyses = analyses::Analyses::load(dir)?;
        let (tuning, records) = split_search(contents.latest());
        let conflicts = contents.conflicting();
        let mut skipped = contents.skipped;
        skipped.extend(analyses.skipped.iter().cloned());
        Ok(Self {
            records,
            tuning,
            analyses,
            skipped,
            conflicts,
            dir: Some(dir.to_path_buf()),
            findings: std::sync::OnceLock::new(),
        })
    }

    pub fn from_records(records: Vec<RunRecord>) -> Self {
        let (tuning, records) = split_search(records);
        Self {
            records,
            tuning,
            analyses: analyses::Analyses::default(),
            skipped: Vec::new(),
            conflicts: Vec::new(),
            dir: None,
            findings: std::sync::OnceLock::new(),
        }
    }

    /// What the fine-tuning runs let one conclude (computed once).
    pub fn findings(&self) -> &findings::Findings {
        self.findings.get_or_init(|| {
            findings::Findings::from_records(
                &self.of_kind(RecipeKind::Finetune),
                self.dir.as_deref(),
                findings::Settings::default(),
            )
        })
    }

    fn of_kind(&self, kind: RecipeKind) -> Vec<&RunRecord> {
        self.records.iter().filter(|r| r.kind == kind).collect()
    }

    /// The fine-tuning tables, their failed runs counted by the findings.
    fn finetune_table(&self) -> finetune::FinetuneTable {
        let mut fine = finetune::FinetuneTable::from_records(&self.of_kind(RecipeKind::Finetune));
        if !fine.is_empty() {
            fine.failed = self.findings().failed_counts();
        }
        fine
    }

    /// Render every table in `format`.
    pub fn render(&self, format: ReportFormat) -> String {
        let synth =
            || synthetic::SyntheticTables::from_records(&self.of_kind(RecipeKind::Synthetic));
        match format {
            ReportFormat::Csv => {
                let (synth, fine) = (synth(), self.finetune_table());
                // One CSV per kind; a store holds one kind in practice.
                if !synth.is_empty() {
                    synth.csv()
                } else {
                    let f = self.findings();
                    fine.csv(conclusions::CSV_COLUMNS, |method, task| {
                        conclusions::csv_fields(f, method, task)
                    })
                }
            }
            ReportFormat::Json => {
                // The contract keys (runs, stability, aggregate, predictions) at the top.
                let mut doc = serde_json::to_value(self.findings()).expect("findings serialise");
                doc["format"] = "stab-report/2".into();
                doc["cost"] = cost::cost_json(&self.of_kind(RecipeKind::Finetune));
                let fine = self.of_kind(RecipeKind::Finetune);
                if !fine.is_empty() {
                    doc["what_was_run"] =
                        serde_json::to_value(settings::WhatWasRun::from_records(&fine))
                            .expect("settings serialise");
                }
                if !self.tuning.is_empty() {
                    doc["tuning"] = tune::tuning_json(&self.tuning, &self.records);
                }
                if let Some(replay) = self.sequential() {
                    let (arms, design) = sequential_json(&replay);
                    doc["sequential"] = arms;
                    doc["sequential_design"] = design;
                }
                let mut text = serde_json::to_string_pretty(&doc).expect("findings serialise");
                text.push('\n');
                text
            }
            ReportFormat::Markdown => self.markdown(DEFAULT_PLOTS_LINK),
            ReportFormat::Latex => {
                let (synth, fine) = (synth(), self.finetune_table());
                let mut out = String::new();
                if !synth.is_empty() {
                    out.push_str(&synth.latex());
                }
                if !fine.is_empty() {
                    out.push_str(&fine.latex());
                }
                out
            }
        }
    }

    /// The report as Markdown whose images link to `plots_link` + the file name (the plots
    /// folder as seen from where the Markdown is saved; [`DEFAULT_PLOTS_LINK`] for
    /// `DIR/report.md` beside `DIR/plots/`).
    pub fn markdown(&self, plots_link: &str) -> String {
        let doc = self.document();
        if doc.is_empty() {
            return "(no finished runs in this store)\n".into();
        }
        doc.markdown_linking(plots_link)
    }

    /// The decisions of a sequential grid, replayed from its records with the design they
    /// carry (`None` for a fixed-design store).
    pub fn sequential(&self) -> Option<crate::sequential::replay::SequentialReplay> {
        let fine = self.of_kind(RecipeKind::Finetune);
        let design = crate::sequential::replay::recorded_design(&fine)?;
        Some(crate::sequential::replay::replay(&fine, &design))
    }

    /// The report as a document (what the Markdown and the HTML page render): the
    /// synthetic tables, then the fine-tuning summary, tables, findings and cost, then the
    /// analyses. Plot blocks name the files [`Report::write_plots`] writes.
    pub fn document(&self) -> doc::Doc {
        let mut doc = doc::Doc::new();
        let synth = synthetic::SyntheticTables::from_records(&self.of_kind(RecipeKind::Synthetic));
        if !synth.is_empty() {
            doc.append(synth.document());
        }
        let fine = self.finetune_table();
        if !fine.is_empty() {
            let f = self.findings();
            let what = settings::WhatWasRun::from_records(&self.of_kind(RecipeKind::Finetune));
            doc.append(what.document())
                .append(conclusions::summary(f, what.summary_item()))
                .append(fine.main_section(true))
                .append(conclusions::sections(f, true));
            if !self.tuning.is_empty() {
                doc.append(tune::tuning_section(&self.tuning, &self.records));
            }
            if let Some(replay) = self.sequential() {
                doc.append(replay.document("Sequential seeds: decisions and seeds spent"));
            }
            doc.append(fine.attribution_section())
                .append(fine.expected_max_section(true))
                .append(cost::cost_section(&self.of_kind(RecipeKind::Finetune)));
        }
        doc.append(self.analyses.document());
        doc
    }

    /// Write the SVG plots into `dir`: the files written, and those it could not write
    /// with the reason.
    pub fn write_plots(&self, dir: &Path) -> stab_core::Result<PlotsWritten> {
        let synth = synthetic::SyntheticTables::from_records(&self.of_kind(RecipeKind::Synthetic));
        let fine = finetune::FinetuneTable::from_records(&self.of_kind(RecipeKind::Finetune));
        if synth.is_empty() && fine.is_empty() && self.analyses.is_empty() {
            return Ok(PlotsWritten::default());
        }
        stab_core::atomic::create_dir(dir)?;
        let mut out = if synth.is_empty() {
            PlotsWritten::default()
        } else {
            synth.plots(dir)
        };
        if !fine.is_empty() {
            let more = fine.plots(dir);
            out.written.extend(more.written);
            out.failed.extend(more.failed);
            conclusions::plots(self.findings(), dir, &mut out);
        }
        if !self.analyses.is_empty() {
            let more = self.analyses.plots(dir);
            out.written.extend(more.written);
            out.failed.extend(more.failed);
        }
        Ok(out)
    }
}

/// (a `[tune]` search's runs, the rest).
fn split_search(records: Vec<RunRecord>) -> (Vec<RunRecord>, Vec<RunRecord>) {
    records.into_iter().partition(|r| {
        r.tune
            .as_ref()
            .is_some_and(|t| t.stage == stab_core::tune::TuneStage::Search)
    })
}

/// `sequential[task][method] = {decision, n, rounds, …}` (one object per question when
/// both are asked: `{sd: {…}, mean: {…}}`), and the design with the seeds spent.
fn sequential_json(
    replay: &crate::sequential::replay::SequentialReplay,
) -> (serde_json::Value, serde_json::Value) {
    let mut by_task = serde_json::Map::new();
    for a in &replay.arms {
        let task = by_task
            .entry(a.task.clone())
            .or_insert_with(|| serde_json::json!({}));
        let entry = &mut task[&a.method];
        if entry.is_null() {
            *entry = serde_json::json!({});
        }
        let v = serde_json::to_value(a).expect("arm serialises");
        if replay.design.question.asked().len() == 1 {
            *entry = v;
        } else {
            entry[a.question] = v;
        }
    }
    let design = serde_json::json!({
        "design": replay.design,
        "comparisons": replay.comparisons,
        "baselines": replay.baselines,
        "runs_saved": replay.runs_saved,
        "runs_available": replay.runs_available,
    });
    (serde_json::Value::Object(by_task), design)
}
