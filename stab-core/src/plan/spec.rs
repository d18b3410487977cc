//! One grid cell: everything a run needs and its stable id (docs/design.md §5).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::params::MethodParams;
use crate::recipe::{DataSection, ModelSection, RecipeKind, TrainMode, TrainSection};
use crate::seed::stable_hash;
use crate::synthetic::SyntheticSettings;

/// One grid cell: everything needed to execute one run, and its stable id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    pub run_id: String,
    pub recipe: String,
    /// Task name; `synthetic` for the synthetic studies.
    pub task: String,
    /// Method name; for synthetic runs, the factor studied.
    pub method: String,
    pub method_params: MethodParams,
    pub seed: u64,
    /// The swept keys and this cell's values (for synthetic runs: the factor and its value).
    pub sweep: BTreeMap<String, serde_json::Value>,
    /// What the run does, with the settings of its kind.
    pub job: RunJob,
    /// The [train] keys its `[[methods]]` table set for it (`train = { lr = 5e-4 }`),
    /// already in `job`; kept to show in the record. Not hashed on its own: `job` is.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub method_train: BTreeMap<String, serde_json::Value>,
    /// The round of a sequential grid that runs it, set by the schedule; a label, not part
    /// of the run's identity (the same seed is the same run in any round or design).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequential: Option<crate::sequential::SequentialMark>,
    /// A tuned grid's search run, or a study run at its arm's chosen value (`[tune]`);
    /// the value itself is in `job`, which the id hashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tune: Option<crate::tune::TuneMark>,
}

/// The kind-specific part of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum RunJob {
    /// Fine-tune a pre-trained encoder on one task with one method and seed.
    Finetune(FinetuneJob),
    /// One factor value of a synthetic study.
    Synthetic(SyntheticSettings),
}

/// The resolved sections of one fine-tuning run (its `data.tasks` names its one task,
/// its `train.seeds` its one seed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinetuneJob {
    pub model: ModelSection,
    pub data: DataSection,
    pub train: TrainSection,
}

fn json<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).expect("settings serialise")
}

impl RunSpec {
    /// Compute the stable id: `<label>-<16 hex digits of the settings hash>`.
    pub(crate) fn with_id(mut self, label: &str) -> Self {
        let hash = stable_hash(self.canonical().to_string().as_bytes());
        let label: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.run_id = format!("{label}-{hash:016x}");
        self
    }

    /// The settings that identify the run, in the flat form run ids have always been
    /// hashed from (`kind, task, method, method_params, seed, mode, sweep, model, data,
    /// train, synthetic`, absent parts null), so ids stay stable across this type's layout.
    pub fn canonical(&self) -> serde_json::Value {
        let (kind, mode, model, data, train, synthetic) = match &self.job {
            RunJob::Finetune(j) => (
                RecipeKind::Finetune,
                json(&Some(j.train.mode)),
                json(&Some(&j.model)),
                json(&Some(&j.data)),
                // How many seeds train at once changes no result.
                json(&Some(crate::recipe::TrainSection {
                    seed_batch: None,
                    ..j.train.clone()
                })),
                serde_json::Value::Null,
            ),
            RunJob::Synthetic(s) => (
                RecipeKind::Synthetic,
                serde_json::Value::Null,
                serde_json::Value::Null,
                serde_json::Value::Null,
                serde_json::Value::Null,
                json(&Some(s)),
            ),
        };
        let mut canonical = serde_json::json!({
            "kind": json(&kind),
            "task": self.task,
            "method": self.method,
            "method_params": self.method_params,
            "seed": self.seed,
            "mode": mode,
            "sweep": self.sweep,
            "model": model,
            "data": data,
            "train": train,
            "synthetic": synthetic,
        });
        positive_zero(&mut canonical);
        canonical
    }

    /// The run's settings without its seed (`canonical` less `seed` and `train.seeds`):
    /// what the seeds of one configuration share (seed batches, shards).
    pub fn configuration(&self) -> String {
        let mut key = self.canonical();
        if let Some(o) = key.as_object_mut() {
            o.remove("seed");
            if let Some(t) = o.get_mut("train").and_then(|t| t.as_object_mut()) {
                t.remove("seeds");
            }
        }
        key.to_string()
    }

    /// The recipe kind of the run.
    pub fn kind(&self) -> RecipeKind {
        match self.job {
            RunJob::Finetune(_) => RecipeKind::Finetune,
            RunJob::Synthetic(_) => RecipeKind::Synthetic,
        }
    }

    /// Full or head tuning, for fine-tuning runs.
    pub fn mode(&self) -> Option<TrainMode> {
        match &self.job {
            RunJob::Finetune(j) => Some(j.train.mode),
            RunJob::Synthetic(_) => None,
        }
    }

    /// The synthetic settings, for synthetic runs.
    pub fn synthetic(&self) -> Option<&SyntheticSettings> {
        match &self.job {
            RunJob::Synthetic(s) => Some(s),
            RunJob::Finetune(_) => None,
        }
    }
}

/// `-0.0` and `0.0` are one value of a setting: every negative zero becomes `0.0`, so they
/// name one run.
fn positive_zero(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Number(n)
            if n.as_f64().is_some_and(|x| x == 0.0 && x.is_sign_negative()) =>
        {
            *v = serde_json::json!(0.0);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(positive_zero),
        serde_json::Value::Object(o) => o.values_mut().for_each(positive_zero),
        _ => {}
    }
}
