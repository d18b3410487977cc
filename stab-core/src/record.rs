//! The record appended to the results store for each finished run (design.md §5).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::params::MethodParams;
use crate::plan::RunSpec;
use crate::recipe::{RecipeKind, TrainMode};
use crate::synthetic::SyntheticSettings;

/// One finished run. Written once, never rewritten.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    pub recipe: String,
    #[serde(default)]
    pub kind: RecipeKind,
    pub task: String,
    pub method: String,
    pub method_params: MethodParams,
    pub seed: u64,
    pub mode: Option<TrainMode>,
    pub sweep: BTreeMap<String, serde_json::Value>,
    /// `primary` plus every task metric, on test (= the original dev set); for synthetic
    /// runs, the aggregates over datasets (`delta_mean`, `delta_sd`, `margin_mean`, …).
    pub metrics: BTreeMap<String, f64>,
    pub dev_best: Option<f64>,
    pub best_step: Option<u64>,
    pub steps: u64,
    pub wall_s: f64,
    pub stab_version: String,
    /// Worker threads the run used (results are recorded with it for reproducibility).
    #[serde(default)]
    pub threads: usize,
    /// The synthetic settings of the run, for synthetic runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synthetic: Option<SyntheticSettings>,
    /// The run's random-stream seeds (fine-tuning runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seeds: Option<crate::seed::ComponentSeeds>,
    /// Which train/dev split the run used: `file:<hash>` of a fixed split file, or
    /// `seeded:<hash>` of the seeded fallback's dev rows (fine-tuning runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<String>,
    /// Kind-specific structured output (e.g. curves).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub details: serde_json::Value,
}

impl RunRecord {
    /// A record for `spec` with the spec's identifying fields filled in.
    pub fn for_spec(spec: &RunSpec) -> Self {
        RunRecord {
            run_id: spec.run_id.clone(),
            recipe: spec.recipe.clone(),
            kind: spec.kind(),
            task: spec.task.clone(),
            method: spec.method.clone(),
            method_params: spec.method_params.clone(),
            seed: spec.seed,
            mode: spec.mode(),
            sweep: spec.sweep.clone(),
            metrics: BTreeMap::new(),
            dev_best: None,
            best_step: None,
            steps: 0,
            wall_s: 0.0,
            stab_version: crate::STAB_VERSION.to_string(),
            threads: 0,
            synthetic: spec.synthetic().cloned(),
            seeds: None,
            split: None,
            details: serde_json::Value::Null,
        }
    }
}
