//! The 11 GLUE/SuperGLUE tasks (docs/methods.md §3): readers for the official file layouts,
//! input templates, label sets, head kinds and primary metrics, registered by name.

mod glue;
mod superglue;

use std::path::{Path, PathBuf};

use stab_core::{InputError, TaskEntry};

use crate::task::Task;

/// One model input row.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// Input texts in template order: one (single), two (pair), three for WiC
    /// (`word </s></s> sentence1 </s></s> sentence2`).
    pub segments: Vec<String>,
    /// Label id (index into the task's label list).
    pub label: usize,
    /// Character spans for span-comparison heads: (segment, start, end), end exclusive.
    pub spans: Vec<(usize, usize, usize)>,
    /// MultiRC: the global question idx (exact match groups by it).
    pub question: Option<u64>,
    /// The unit the dev split draws: the example itself, or the MultiRC passage.
    pub group: u64,
}

/// Which head a task trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HeadKind {
    Classification,
    SpanComparison,
}

/// A task's definition.
#[derive(Debug, Clone, Copy)]
pub struct TaskDef {
    pub name: &'static str,
    /// Label strings in id order.
    pub labels: &'static [&'static str],
    pub head: HeadKind,
    /// The jiant primary metric (`stab_eval::PrimaryMetric::parse`).
    pub metric: &'static str,
    /// Directory under the data dir, e.g. `glue/CoLA`.
    pub dir: &'static str,
    /// Train and test (= official dev) file names.
    pub files: (&'static str, &'static str),
    /// Rows of the official train file (MultiRC: answer rows), for run cost estimates.
    pub train_rows: u64,
    /// The task's Hugging Face dataset and config (`source = "hub"`).
    pub hub: (&'static str, &'static str),
    reader: fn(&TaskText, &TaskDef) -> Result<Vec<Example>, InputError>,
}

/// The text of one task file in its official format, and where it came from (a path,
/// or the Hub files it was converted from), for messages.
#[derive(Debug, Clone)]
pub struct TaskText {
    pub origin: String,
    pub text: String,
}

/// A task's rows: train, dev when the task has its own dev file (a custom task's `dev`;
/// else dev is split off train), and test (for the built-in tasks, the official dev set).
#[derive(Debug, Clone)]
pub struct TaskData {
    pub task: Task,
    pub train: Vec<Example>,
    pub dev: Option<Vec<Example>>,
    pub test: Vec<Example>,
}

pub const TASKS: &[TaskDef] = &[
    TaskDef {
        name: "cola",
        hub: ("nyu-mll/glue", "cola"),
        train_rows: 8551,
        labels: &["0", "1"],
        head: HeadKind::Classification,
        metric: "mcc",
        dir: "glue/CoLA",
        files: ("train.tsv", "dev.tsv"),
        reader: glue::cola,
    },
    TaskDef {
        name: "sst2",
        hub: ("nyu-mll/glue", "sst2"),
        train_rows: 67349,
        labels: &["0", "1"],
        head: HeadKind::Classification,
        metric: "accuracy",
        dir: "glue/SST-2",
        files: ("train.tsv", "dev.tsv"),
        reader: glue::sst2,
    },
    TaskDef {
        name: "mrpc",
        hub: ("nyu-mll/glue", "mrpc"),
        train_rows: 3668,
        labels: &["0", "1"],
        head: HeadKind::Classification,
        metric: "acc_and_f1",
        dir: "glue/MRPC",
        files: ("train.tsv", "dev.tsv"),
        reader: glue::mrpc,
    },
    TaskDef {
        name: "qqp",
        hub: ("nyu-mll/glue", "qqp"),
        train_rows: 363846,
        labels: &["0", "1"],
        head: HeadKind::Classification,
        metric: "acc_and_f1",
        dir: "glue/QQP",
        files: ("train.tsv", "dev.tsv"),
        reader: glue::qqp,
    },
    TaskDef {
        name: "rte",
        hub: ("nyu-mll/glue", "rte"),
        train_rows: 2490,
        labels: &["entailment", "not_entailment"],
        head: HeadKind::Classification,
        metric: "accuracy",
        dir: "glue/RTE",
        files: ("train.tsv", "dev.tsv"),
        reader: glue::rte_wnli,
    },
    TaskDef {
        name: "wnli",
        hub: ("nyu-mll/glue", "wnli"),
        train_rows: 635,
        labels: &["0", "1"],
        head: HeadKind::Classification,
        metric: "accuracy",
        dir: "glue/WNLI",
        files: ("train.tsv", "dev.tsv"),
        reader: glue::rte_wnli,
    },
    TaskDef {
        name: "cb",
        hub: ("aps/super_glue", "cb"),
        train_rows: 250,
        labels: &["entailment", "contradiction", "neutral"],
        head: HeadKind::Classification,
        metric: "acc_and_macro_f1",
        dir: "superglue/CB",
        files: ("train.jsonl", "val.jsonl"),
        reader: superglue::cb,
    },
    TaskDef {
        name: "wsc",
        hub: ("aps/super_glue", "wsc.fixed"),
        train_rows: 554,
        labels: &["False", "True"],
        head: HeadKind::SpanComparison,
        metric: "accuracy",
        dir: "superglue/WSC",
        files: ("train.jsonl", "val.jsonl"),
        reader: superglue::wsc,
    },
    TaskDef {
        name: "boolq",
        hub: ("aps/super_glue", "boolq"),
        train_rows: 9427,
        labels: &["False", "True"],
        head: HeadKind::Classification,
        metric: "accuracy",
        dir: "superglue/BoolQ",
        files: ("train.jsonl", "val.jsonl"),
        reader: superglue::boolq,
    },
    TaskDef {
        name: "multirc",
        hub: ("aps/super_glue", "multirc"),
        train_rows: 27243,
        labels: &["0", "1"],
        head: HeadKind::Classification,
        metric: "em_and_f1a",
        dir: "superglue/MultiRC",
        files: ("train.jsonl", "val.jsonl"),
        reader: superglue::multirc,
    },
    TaskDef {
        name: "wic",
        hub: ("aps/super_glue", "wic"),
        train_rows: 5428,
        labels: &["False", "True"],
        head: HeadKind::SpanComparison,
        metric: "accuracy",
        dir: "superglue/WiC",
        files: ("train.jsonl", "val.jsonl"),
        reader: superglue::wic,
    },
];

macro_rules! register {
    ($($name:literal: $summary:literal),* $(,)?) => {
        $( inventory::submit! { TaskEntry { name: $name, summary: $summary, metric: def($name).metric, train_rows: def($name).train_rows } } )*
    };
}

const fn def(name: &str) -> &'static TaskDef {
    let mut i = 0;
    while i < TASKS.len() {
        if const_eq(TASKS[i].name, name) {
            return &TASKS[i];
        }
        i += 1;
    }
    panic!("unknown task")
}

const fn const_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

register! {
    "cola": "CoLA: acceptability of one sentence (GLUE)",
    "sst2": "SST-2: sentiment of one sentence (GLUE)",
    "mrpc": "MRPC: paraphrase of a sentence pair (GLUE)",
    "qqp": "QQP: duplicate question pair (GLUE)",
    "rte": "RTE: entailment of a premise/hypothesis pair (GLUE)",
    "wnli": "WNLI: entailment with pronoun resolution (GLUE)",
    "cb": "CB: 3-way entailment (SuperGLUE)",
    "wsc": "WSC: coreference of two spans (SuperGLUE, span head)",
    "boolq": "BoolQ: yes/no question about a passage, question first (SuperGLUE)",
    "multirc": "MultiRC: one row per answer option (SuperGLUE)",
    "wic": "WiC: same sense of a word in two sentences (SuperGLUE, span head)",
}

/// The definition of a task by name, with a did-you-mean error.
pub fn task_def(name: &str) -> Result<&'static TaskDef, InputError> {
    stab_core::registry::task(name)?;
    Ok(TASKS
        .iter()
        .find(|t| t.name == name)
        .expect("registered tasks are defined"))
}

impl TaskDef {
    /// Expected path of one of the task's files.
    pub fn path(&self, data_dir: &Path, file: &str) -> PathBuf {
        data_dir.join(self.dir).join(file)
    }

    /// Read train and test (official dev) from the official layout under `data_dir`.
    pub fn load(&'static self, data_dir: &Path) -> Result<TaskData, InputError> {
        let read = |file: &str| -> Result<TaskText, InputError> {
            let path = self.path(data_dir, file);
            if !path.is_file() {
                return Err(InputError::new(format!("missing file {}", path.display()))
                    .hint(format!(
                        "the {} task expects {dir}/{} and {dir}/{} under the data dir ({}); GLUE as glue/<TASK>/{{train,dev}}.tsv, SuperGLUE as superglue/<Task>/{{train,val}}.jsonl (`stab data fetch --tasks {} --to DIR` writes them from the Hugging Face Hub)",
                        self.name,
                        self.files.0,
                        self.files.1,
                        data_dir.display(),
                        self.name,
                        dir = self.dir
                    )));
            }
            Ok(TaskText {
                origin: path.display().to_string(),
                text: read_text(&path)?,
            })
        };
        self.parse(&read(self.files.0)?, &read(self.files.1)?)
    }

    /// Parse the texts of the train and test (official dev) files.
    pub fn parse(&'static self, train: &TaskText, test: &TaskText) -> Result<TaskData, InputError> {
        let rows = |src: &TaskText| -> Result<Vec<Example>, InputError> {
            let rows = (self.reader)(src, self)?;
            if rows.is_empty() {
                return Err(InputError::new("the file has no examples")
                    .file(src.origin.clone())
                    .hint("an empty split cannot be trained or evaluated; check the download"));
            }
            Ok(rows)
        };
        Ok(TaskData {
            task: Task::Builtin(self),
            train: rows(train)?,
            dev: None,
            test: rows(test)?,
        })
    }

    /// The label id of `label`, or a located error listing the label set.
    fn label_id(&self, label: &str, file: &str, line: usize) -> Result<usize, InputError> {
        self.labels.iter().position(|l| *l == label).ok_or_else(|| {
            InputError::new(format!("unknown label `{label}` for {}", self.name))
                .file(file.to_string())
                .line(Some(line))
                .hint(format!("expected one of: {}", self.labels.join(", ")))
        })
    }
}

/// A file's text with a UTF-8 BOM removed; invalid UTF-8 is an error naming the line.
pub(crate) fn read_text(path: &Path) -> Result<String, InputError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path)
        .map_err(|e| InputError::new(format!("cannot read: {e}")).file(file.clone()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = good.iter().filter(|&&b| b == b'\n').count() + 1;
        InputError::new(format!(
            "not UTF-8 text: invalid byte at offset {}",
            good.len()
        ))
        .file(file.clone())
        .line(Some(line))
        .hint("the official GLUE/SuperGLUE files are UTF-8; re-download or re-encode the file")
    })?;
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

/// Label counts in label order.
pub fn label_counts<'a>(task: &'a Task, rows: &[Example]) -> Vec<(&'a str, usize)> {
    task.labels()
        .into_iter()
        .enumerate()
        .map(|(i, l)| (l, rows.iter().filter(|e| e.label == i).count()))
        .collect()
}
