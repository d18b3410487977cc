//! The record appended to the results store for each finished run (docs/design.md §5).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::params::MethodParams;
use crate::plan::spec::RunSpec;
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
    /// Non-finite values are written as the strings "NaN", "inf", "-inf".
    #[serde(with = "nonfinite::map")]
    pub metrics: BTreeMap<String, f64>,
    #[serde(default, with = "nonfinite::option")]
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
    /// The run diverged: a non-finite loss or metric (its values are kept as written).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub diverged: bool,
    /// The run's random-stream seeds (fine-tuning runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seeds: Option<crate::seed::ComponentSeeds>,
    /// Which train/dev split the run used: `file:<hash>` of a fixed split file, or
    /// `seeded:<hash>` of the seeded fallback's dev rows (fine-tuning runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<String>,
    /// Fingerprints of the files the run read (fine-tuning runs): resume refuses a
    /// finished run whose inputs have changed since (see [`InputFingerprint`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<InputFingerprint>,
    /// The round of a sequential grid the run belonged to, and the design
    /// (`[seeds] policy = "sequential"`), so reports replay its decisions from the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequential: Option<crate::sequential::SequentialMark>,
    /// A tuned grid's search run (`stage = "search"`, left out of the study's statistics)
    /// or a study run at its arm's chosen value (`"chosen"`), with the key and value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tune: Option<crate::tune::TuneMark>,
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
            diverged: false,
            seeds: None,
            split: None,
            inputs: None,
            sequential: spec.sequential.clone(),
            tune: spec.tune.clone(),
            details: serde_json::Value::Null,
        }
    }
}

/// What a fine-tuning run read besides its settings, as content hashes: the model
/// directory (config and weights), the task's data files and its train/dev split. The
/// `run_id` covers the settings (the plan needs no file to compute it); these cover the
/// files, so a finished run is only reused while all three are unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputFingerprint {
    /// `config.json` and the weights file.
    pub model: String,
    /// The task's train and test files.
    pub data: String,
    /// `file:<hash>` of a fixed split file's dev rows, or `seeded:<hash>`.
    pub split: String,
}

impl InputFingerprint {
    /// The parts that differ from `other`, as `name: old → new`.
    pub fn changes_from(&self, other: &InputFingerprint) -> Vec<String> {
        [
            ("model", &other.model, &self.model),
            ("data", &other.data, &self.data),
            ("split", &other.split, &self.split),
        ]
        .into_iter()
        .filter(|(_, a, b)| a != b)
        .map(|(n, a, b)| format!("{n}: {a} → {b}"))
        .collect()
    }
}

/// JSON has no NaN or infinity: write them as strings and read them back, so a diverged
/// run's record round-trips instead of being unreadable (and re-run forever).
mod nonfinite {
    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Num {
        Finite(f64),
        Text(String),
    }

    fn to_f64<E: serde::de::Error>(n: Num) -> Result<f64, E> {
        match n {
            Num::Finite(v) => Ok(v),
            Num::Text(t) => match t.as_str() {
                "NaN" => Ok(f64::NAN),
                "inf" => Ok(f64::INFINITY),
                "-inf" => Ok(f64::NEG_INFINITY),
                other => Err(E::custom(format!(
                    "expected a number, \"NaN\", \"inf\" or \"-inf\", found \"{other}\""
                ))),
            },
        }
    }

    fn write<S: Serializer>(v: f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_nan() {
            s.serialize_str("NaN")
        } else if v.is_infinite() {
            s.serialize_str(if v > 0.0 { "inf" } else { "-inf" })
        } else {
            s.serialize_f64(v)
        }
    }

    pub mod map {
        use std::collections::BTreeMap;

        use serde::ser::SerializeMap;

        use super::*;

        pub fn serialize<S: Serializer>(
            m: &BTreeMap<String, f64>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            struct One(f64);
            impl serde::Serialize for One {
                fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                    write(self.0, s)
                }
            }
            let mut out = s.serialize_map(Some(m.len()))?;
            for (k, v) in m {
                out.serialize_entry(k, &One(*v))?;
            }
            out.end()
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<BTreeMap<String, f64>, D::Error> {
            BTreeMap::<String, Num>::deserialize(d)?
                .into_iter()
                .map(|(k, v)| Ok((k, to_f64(v)?)))
                .collect()
        }
    }

    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
            match v {
                Some(x) => write(*x, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
            Option::<Num>::deserialize(d)?.map(to_f64).transpose()
        }
    }
}
