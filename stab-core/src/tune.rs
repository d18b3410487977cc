//! `[tune]`: a small search on dev before the seed study, so each method is compared at its
//! own best value of one training key (docs/recipes.md, docs/methods.md §4.3).
//!
//! Every arm (a method configuration on one task and sweep cell) runs `seeds` search runs
//! per value, on seeds `TUNE_SEED_BASE + i` that no study uses; the value with the best
//! mean dev score is the arm's, and its study runs at that value. Search runs stay in the
//! store, marked [`TuneStage::Search`]; study runs carry [`TuneStage::Chosen`].

use serde::{Deserialize, Serialize};

use crate::plan::spec::RunSpec;

/// The first seed of the search runs: far above any study's seeds, so a search run is
/// never a study run.
pub const TUNE_SEED_BASE: u64 = 1_000_000;

/// The `[tune]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TuneTable {
    /// The training key searched, e.g. `train.lr`.
    pub key: String,
    /// Its candidate values.
    pub values: Vec<toml::Value>,
    /// Search runs per value and arm.
    #[serde(default = "default_seeds")]
    pub seeds: u64,
}

fn default_seeds() -> u64 {
    3
}

/// Which part of a tuned grid a run belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TuneStage {
    /// A search run: dev decides the value; the report leaves it out of the study.
    Search,
    /// A study run at the value its arm's search chose.
    Chosen,
}

/// What a run of a tuned grid carries into its record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TuneMark {
    pub stage: TuneStage,
    /// The `[train]` key (without `train.`) and this run's value of it.
    pub key: String,
    pub value: serde_json::Value,
}

impl TuneTable {
    /// The `[train]` field searched (`lr` for `train.lr`).
    pub fn field(&self) -> &str {
        self.key.strip_prefix("train.").unwrap_or(&self.key)
    }

    /// The values as JSON, in order.
    pub fn json_values(&self) -> Vec<serde_json::Value> {
        self.values
            .iter()
            .map(|v| serde_json::to_value(v).unwrap_or_default())
            .collect()
    }
}

impl RunSpec {
    /// This run with its `[train]` key `field` set to `value` and seed `seed`, marked with
    /// `stage`; the run id is recomputed (the value and the seed change the result). The
    /// key is shown in `method_train` like a method's own `train = { … }`.
    pub fn with_train_value(
        &self,
        field: &str,
        value: &serde_json::Value,
        seed: u64,
        stage: TuneStage,
    ) -> Result<RunSpec, String> {
        let crate::plan::RunJob::Finetune(job) = &self.job else {
            return Err("only fine-tuning runs have [train] keys".into());
        };
        let mut train = serde_json::to_value(&job.train).map_err(|e| e.to_string())?;
        train[field] = value.clone();
        train["seeds"] = serde_json::json!([seed]);
        let train: crate::recipe::TrainSection =
            serde_json::from_value(train).map_err(|e| e.to_string())?;
        let mut spec = self.clone();
        let mut job = job.clone();
        job.train = train;
        spec.job = crate::plan::RunJob::Finetune(job);
        spec.seed = seed;
        spec.method_train.insert(field.to_string(), value.clone());
        spec.tune = Some(TuneMark {
            stage,
            key: field.to_string(),
            value: value.clone(),
        });
        let label = format!("{}-{}-s{seed}", spec.task, spec.method);
        Ok(spec.with_id(&label))
    }
}
