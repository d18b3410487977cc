//! Task data from the Hugging Face Hub (`[data] source = "hub"`, docs/data.md).
//!
//! Each task maps to a Hub dataset and config ([`TaskDef::hub`], overridable per task in
//! `[data.hub.<task>]`). Its `train` and `validation` splits (the Hub's `test` split has
//! hidden labels and is never read) are parquet shards in the standard Hugging Face
//! cache, downloaded there when missing and allowed ([`DatasetCache`]). The rows are put
//! in the official order by their `idx` column — so the fixed split files, which number
//! the rows of the official train files, apply unchanged — and written out as the text of
//! the official file ([`official`]), which the task's own reader then parses: the Hub and
//! the official files go through one parser, and `stab data fetch --to` writes exactly
//! what a run reads.

mod cache;
pub mod official;
pub(crate) mod parquet_rows;

use std::collections::BTreeMap;
use std::path::PathBuf;

use stab_core::{HubDatasetSpec, InputError};

use crate::tasks::{TaskData, TaskDef, TaskText};

pub use cache::DatasetCache;

/// One task's Hub dataset.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HubDataset {
    /// The task it serves (a built-in task's name, or a custom task's).
    pub task: String,
    /// Whether the task is a `[data.custom]` one (`stab data fetch` serves only built-in
    /// tasks; a custom one is fetched by reading it, e.g. with `stab data check`).
    #[serde(skip)]
    pub custom: bool,
    /// The repository id, e.g. `nyu-mll/glue`.
    pub repo: String,
    pub config: String,
    /// Branch, tag or commit (`main` by default).
    pub revision: String,
}

impl HubDataset {
    /// The task's dataset: the recipe's override, else stab's mapping.
    pub fn of(def: &TaskDef, overrides: &BTreeMap<String, HubDatasetSpec>) -> Self {
        match overrides.get(def.name) {
            Some(o) => HubDataset {
                task: def.name.into(),
                custom: false,
                repo: o.dataset.clone(),
                config: o.config.clone(),
                revision: o.revision.clone().unwrap_or_else(|| "main".into()),
            },
            None => HubDataset {
                task: def.name.into(),
                custom: false,
                repo: def.hub.0.into(),
                config: def.hub.1.into(),
                revision: "main".into(),
            },
        }
    }

    /// The folders of the repository that may hold the config's parquet files: the
    /// config's own, and for `default` also `data/` (how `push_to_hub` lays out a dataset
    /// without configs).
    pub fn folders(&self) -> Vec<&str> {
        let mut out = vec![self.config.as_str()];
        if self.config == "default" {
            out.push("data");
        }
        out
    }

    /// `nyu-mll/glue (config rte)`, with a revision other than main.
    pub fn describe(&self) -> String {
        let rev = if self.revision == "main" {
            String::new()
        } else {
            format!(", revision {}", self.revision)
        };
        format!("{} (config {}{rev})", self.repo, self.config)
    }
}

/// The Hub's name of the official dev set, stab's test split.
pub const VALIDATION: &str = "validation";

/// A task read from the Hub.
#[derive(Debug, Clone)]
pub struct HubTask {
    pub data: TaskData,
    /// The official-format texts of train and test (what `stab data fetch --to` writes).
    pub train_text: TaskText,
    pub test_text: TaskText,
    /// The parquet files read, train's then validation's.
    pub files: Vec<PathBuf>,
    /// Hash of those files' bytes, in that order, each with its length.
    pub fingerprint: u64,
}

/// Read a task's train and validation splits from the Hub dataset `ds`.
pub fn load(
    def: &'static TaskDef,
    ds: &HubDataset,
    cache: &DatasetCache,
) -> Result<HubTask, InputError> {
    let mut files = Vec::new();
    let mut texts = Vec::new();
    for split in ["train", VALIDATION] {
        let shards = cache.shards(ds, split)?;
        texts.push(official::convert(def, ds, split, &shards)?);
        files.extend(shards);
    }
    let fingerprint = crate::source::hash_files(&files)?;
    let test_text = texts.pop().expect("two splits");
    let train_text = texts.pop().expect("two splits");
    Ok(HubTask {
        data: def.parse(&train_text, &test_text)?,
        train_text,
        test_text,
        files,
        fingerprint,
    })
}
