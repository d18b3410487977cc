//! The recipe's sections as written: `[model]`, `[data]` (with `[data.hub.<task>]`) and
//! `[train]`, with their defaults. Every table denies unknown keys.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// `[model]`: which pre-trained encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// A Hugging Face model directory, or a hub id such as `roberta-base`.
    pub path: String,
    #[serde(default = "default_max_len")]
    pub max_len: usize,
    /// Which encoder output the classification head reads.
    #[serde(default)]
    pub pooling: Pooling,
}

/// The vector a classification head reads from the encoder (docs/design.md §4). A decoder
/// (GPT-2, Llama, Qwen) has no pooler: `pooler`, the default, reads its last token, as
/// Hugging Face's `*ForSequenceClassification` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// tanh(W·h₀ + b), the pooler (jiant; random N(0, 0.02²) when the checkpoint lacks it).
    #[default]
    Pooler,
    /// The last layer's first-token vector h₀.
    Cls,
    /// The mean of the last layer over real tokens (sentence encoders such as MiniLM).
    Mean,
    /// The last layer's vector at the last token: the rightmost whose id is not the pad
    /// id (Hugging Face's rule for decoders).
    Last,
}

impl<'de> Deserialize<'de> for Pooling {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const NAMES: &[&str] = &["pooler", "cls", "mean", "last"];
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Pooling;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "one of the strings \"pooler\", \"cls\", \"mean\", \"last\" (e.g. pooling = \"cls\")",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Pooling, E> {
                match v {
                    "pooler" => Ok(Pooling::Pooler),
                    "cls" => Ok(Pooling::Cls),
                    "mean" => Ok(Pooling::Mean),
                    "last" => Ok(Pooling::Last),
                    other => Err(E::unknown_variant(other, NAMES)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// `[data]`: where the task files are and how they are split and perturbed.
///
/// `source`, `hub` and `custom` are left out of the serialised form at their defaults, so run ids
/// of directory-sourced recipes stay what they were before the Hub source existed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    #[serde(default, skip_serializing_if = "DataSourceKind::is_dir")]
    pub source: DataSourceKind,
    /// The official layouts (`source = "dir"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    pub tasks: Vec<String>,
    #[serde(default = "default_dev_fraction")]
    pub dev_fraction: f64,
    #[serde(default = "one")]
    pub train_fraction: f64,
    #[serde(default)]
    pub drop_fraction: f64,
    /// Fixed split files `<task>.json` (default: `<dir>/splits` when it exists; with
    /// `source = "hub"`, the paper author's split files built into stab).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub splits: Option<PathBuf>,
    /// Per-task Hub datasets replacing the default mapping (`[data.hub.rte]`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hub: BTreeMap<String, HubDatasetSpec>,
    /// The user's own tasks, by the name `tasks` lists them under (`[data.custom.reviews]`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom: BTreeMap<String, super::CustomTaskSpec>,
}

/// Where `[data]` reads the task files from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataSourceKind {
    /// `data.dir` in the official GLUE/SuperGLUE layouts.
    #[default]
    Dir,
    /// Hugging Face datasets (parquet) through the Hugging Face cache.
    Hub,
}

impl DataSourceKind {
    pub fn is_dir(&self) -> bool {
        *self == DataSourceKind::Dir
    }
}

/// One task's Hugging Face dataset: `dataset` (a Hub repository id), its `config`, and
/// an optional `revision` (a branch, tag or commit; default `main`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubDatasetSpec {
    pub dataset: String,
    pub config: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

/// Where one recipe's task data comes from, as the sum type the data path works with
/// ([`DataSection::origin`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DataOrigin<'a> {
    Dir(&'a Path),
    Hub(&'a BTreeMap<String, HubDatasetSpec>),
}

impl DataSection {
    /// The user's own task named `task`, when the recipe defines one.
    pub fn custom_task(&self, task: &str) -> Option<&super::CustomTaskSpec> {
        self.custom.get(task)
    }

    /// Whether any listed task is a built-in one (read from `dir` or the Hub).
    pub fn lists_builtin(&self) -> bool {
        self.tasks.iter().any(|t| !self.custom.contains_key(t))
    }

    /// The source of the task files; a checked recipe always has one.
    pub fn origin(&self) -> DataOrigin<'_> {
        match (self.source, &self.dir) {
            (DataSourceKind::Dir, Some(dir)) => DataOrigin::Dir(dir),
            (DataSourceKind::Dir, None) => DataOrigin::Dir(Path::new("data")),
            (DataSourceKind::Hub, _) => DataOrigin::Hub(&self.hub),
        }
    }
}

/// Seed components pinned across a grid (`[train] fixed_seeds = { data_order = 0 }`);
/// unpinned components are derived from the run seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixedSeeds {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_init: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_order: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropout: Option<u64>,
}

impl FixedSeeds {
    pub fn is_empty(&self) -> bool {
        *self == FixedSeeds::default()
    }
}

/// Full fine-tuning or head tuning with a frozen encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrainMode {
    #[default]
    Full,
    Head,
}

/// Hyper-parameter profile (docs/methods.md §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    #[default]
    Standard,
    Author,
}

/// `seeds = 10` (seeds 0..10) or an explicit list `seeds = [0, 3, 7]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Seeds {
    Count(u64),
    List(Vec<u64>),
}

impl Seeds {
    /// How many seeds, without making them (a count is checked before it is expanded).
    pub fn len(&self) -> u64 {
        match self {
            Seeds::Count(n) => *n,
            Seeds::List(v) => v.len() as u64,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn values(&self) -> Vec<u64> {
        match self {
            Seeds::Count(n) => (0..*n).collect(),
            Seeds::List(v) => v.clone(),
        }
    }
}

const SEEDS_EXPECTED: &str = "a seed count (seeds = 10 runs seeds 0..9) or a list of non-negative integer seeds (seeds = [0, 3, 7])";

impl<'de> Deserialize<'de> for Seeds {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Seeds;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(SEEDS_EXPECTED)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Seeds, E> {
                Ok(Seeds::Count(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Seeds, E> {
                u64::try_from(v).map(Seeds::Count).map_err(|_| {
                    E::custom(format!(
                        "invalid value: seeds = {v} is negative; expected {SEEDS_EXPECTED}"
                    ))
                })
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Seeds, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = a.next_element::<toml::Value>()? {
                    match v {
                        toml::Value::Integer(i) if i >= 0 => out.push(i as u64),
                        other => {
                            return Err(serde::de::Error::custom(format!(
                                "invalid value: the seed {other} is not a non-negative integer; expected {SEEDS_EXPECTED}"
                            )));
                        }
                    }
                }
                Ok(Seeds::List(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// `[train]`: the training protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSection {
    #[serde(default)]
    pub mode: TrainMode,
    #[serde(default)]
    pub profile: Profile,
    #[serde(default = "default_epochs")]
    pub epochs: u64,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    #[serde(default = "default_lr")]
    pub lr: f64,
    #[serde(default = "default_warmup")]
    pub warmup: f64,
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
    /// Steps between dev evaluations; 0 = once per epoch.
    #[serde(default)]
    pub eval_every: u64,
    #[serde(default = "default_patience")]
    pub patience: u64,
    #[serde(default = "default_seeds")]
    pub seeds: Seeds,
    /// Cap on optimisation steps (0 = none).
    #[serde(default)]
    pub max_steps: u64,
    /// Global gradient-norm clip.
    #[serde(default = "one")]
    pub grad_clip: f64,
    /// No early stop before this many updates (the author profile's 20,000).
    #[serde(default)]
    pub min_steps: u64,
    /// Pin seed components across the grid.
    #[serde(default, skip_serializing_if = "FixedSeeds::is_empty")]
    pub fixed_seeds: FixedSeeds,
    /// Head mode: keep the frozen encoder in train mode (the fork's quirk, no feature cache).
    #[serde(default, skip_serializing_if = "is_false")]
    pub head_encoder_dropout: bool,
    /// Adam's bias correction of the moments; `false` is the original BERT Adam, which
    /// Mosbach et al. (2021) traced as a cause of failed fine-tuning runs.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub adam_bias_correction: bool,
    /// Stop a run whose dev score stays at or below the majority-class score for
    /// `after` evaluations in a row once warmup is over (`stop_failed = { after = 5 }`);
    /// it is recorded as the failed run it is (`details.stopped = "failed"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_failed: Option<StopFailed>,
    /// Write each run's best-dev weights as safetensors with Hugging Face names
    /// (`<out>/checkpoints/<run_id>/`), for `stab analyze` and any HF tool.
    #[serde(default, skip_serializing_if = "is_false")]
    pub save_best: bool,
    /// Most seeds of one configuration trained at once in head tuning on cached features
    /// (docs/methods.md §4.5); unset: as many as memory allows, up to 64; 1: every seed
    /// alone. Not part of a run's identity: a batched run's record is its solo run's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed_batch: Option<usize>,
}

/// `[train] stop_failed = { after = K }` (docs/methods.md §13.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopFailed {
    /// Evaluations in a row at or below the majority-class dev score.
    pub after: u64,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_true(b: &bool) -> bool {
    *b
}

fn yes() -> bool {
    true
}

impl TrainSection {
    /// Fill the keys a recipe did not set from its profile (docs/methods.md §4.1). `given`
    /// names the keys the recipe's `[train]` table sets; those always win.
    ///
    /// * `standard`: the serde defaults (lr 2e-5, 10 epochs, one evaluation per epoch),
    ///   with updates capped at 20,000.
    /// * `author`: the fork's script — lr 1e-4, 10,000 "epochs" (so the 10% warmup never
    ///   ends on most tasks), evaluation every 500 updates, at least 20,000 updates.
    pub fn apply_profile(&mut self, given: &[String]) {
        let set = |k: &str| given.iter().any(|g| g == k);
        match self.profile {
            Profile::Standard => {
                if !set("max_steps") {
                    self.max_steps = 20_000;
                }
            }
            Profile::Author => {
                if !set("lr") {
                    self.lr = 1e-4;
                }
                if !set("epochs") {
                    self.epochs = 10_000;
                }
                if !set("eval_every") {
                    self.eval_every = 500;
                }
                if !set("min_steps") {
                    self.min_steps = 20_000;
                }
            }
        }
    }
}

impl Default for TrainSection {
    fn default() -> Self {
        toml::from_str("").expect("every [train] key has a default")
    }
}

fn default_max_len() -> usize {
    128
}
fn default_dev_fraction() -> f64 {
    0.1
}
fn one() -> f64 {
    1.0
}
fn default_epochs() -> u64 {
    10
}
fn default_batch_size() -> usize {
    16
}
fn default_lr() -> f64 {
    2e-5
}
fn default_warmup() -> f64 {
    0.1
}
fn default_weight_decay() -> f64 {
    0.01
}
fn default_patience() -> u64 {
    20
}
fn default_seeds() -> Seeds {
    Seeds::Count(10)
}
