//! The TOML recipe (docs/design.md §4): parsed with serde, every unknown key an error that
//! names the nearest valid key, every error located at file:line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::error::InputError;
use crate::suggest::did_you_mean;
use crate::synthetic::SyntheticTable;

/// What a recipe runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecipeKind {
    /// Fine-tuning of a pre-trained encoder on real tasks.
    #[default]
    Finetune,
    /// The synthetic linear-head studies of docs/methods.md §7.
    Synthetic,
}

/// A parsed recipe, with its source kept for locating later (semantic) errors.
#[derive(Debug, Clone)]
pub struct Recipe {
    pub body: RecipeBody,
    /// File the recipe came from (for messages).
    pub file: String,
    /// The TOML source.
    pub source: String,
}

/// The recipe's tables, exactly as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipeBody {
    pub name: Spanned<String>,
    #[serde(default)]
    pub kind: RecipeKind,
    pub out: Option<PathBuf>,
    pub model: Option<ModelSection>,
    pub data: Option<DataSection>,
    pub train: Option<TrainSection>,
    #[serde(default)]
    pub methods: Vec<Spanned<toml::Table>>,
    #[serde(default)]
    pub sweep: BTreeMap<String, Spanned<Vec<toml::Value>>>,
    pub synthetic: Option<SyntheticTable>,
}

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

/// The vector a classification head reads from the encoder (docs/design.md §4).
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
}

impl<'de> Deserialize<'de> for Pooling {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const NAMES: &[&str] = &["pooler", "cls", "mean"];
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Pooling;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "one of the strings \"pooler\", \"cls\", \"mean\" (e.g. pooling = \"cls\")",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Pooling, E> {
                match v {
                    "pooler" => Ok(Pooling::Pooler),
                    "cls" => Ok(Pooling::Cls),
                    "mean" => Ok(Pooling::Mean),
                    other => Err(E::unknown_variant(other, NAMES)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// `[data]`: where the task files are and how they are split and perturbed.
///
/// `source` and `hub` are left out of the serialised form at their defaults, so run ids
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
    /// Write each run's best-dev weights as safetensors with Hugging Face names
    /// (`<out>/checkpoints/<run_id>/`), for `stab analyze` and any HF tool.
    #[serde(default, skip_serializing_if = "is_false")]
    pub save_best: bool,
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

impl Recipe {
    /// Read and parse a recipe file.
    pub fn from_file(path: &Path) -> Result<Self, InputError> {
        let file = path.display().to_string();
        let source = std::fs::read_to_string(path).map_err(|e| {
            InputError::new(format!("cannot read the recipe: {e}"))
                .file(file.clone())
                .hint("pass the path of a TOML recipe, e.g. recipes/quickstart.toml")
        })?;
        Self::parse(&source, &file)
    }

    /// Read a recipe file and apply `--set` overrides ([`crate::overrides`]).
    pub fn from_file_with(path: &Path, sets: &[crate::Override]) -> Result<Self, InputError> {
        if sets.is_empty() {
            return Self::from_file(path);
        }
        let file = path.display().to_string();
        let source = std::fs::read_to_string(path).map_err(|e| {
            InputError::new(format!("cannot read the recipe: {e}"))
                .file(file.clone())
                .hint("pass the path of a TOML recipe, e.g. recipes/quickstart.toml")
        })?;
        crate::overrides::apply(&source, &file, sets)
    }

    /// Parse recipe text; `file` names it in errors.
    pub fn parse(source: &str, file: &str) -> Result<Self, InputError> {
        let body: RecipeBody = toml::from_str(source).map_err(|e| toml_error(&e, source, file))?;
        let recipe = Recipe {
            body,
            file: file.to_string(),
            source: source.to_string(),
        };
        recipe.check_shape()?;
        Ok(recipe)
    }

    pub fn name(&self) -> &str {
        self.body.name.get_ref()
    }

    pub fn kind(&self) -> RecipeKind {
        self.body.kind
    }

    /// The results directory: `out`, or `runs/<name>`.
    pub fn out_dir(&self) -> PathBuf {
        self.body
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs").join(self.name()))
    }

    /// 1-based line of a byte offset in the source.
    pub fn line_of(&self, offset: usize) -> usize {
        line_of(&self.source, offset)
    }

    /// An input error located at a span of this recipe.
    pub fn error_at(
        &self,
        span: std::ops::Range<usize>,
        key: &str,
        message: impl Into<String>,
    ) -> InputError {
        InputError::new(message)
            .file(self.file.clone())
            .line(Some(self.line_of(span.start)))
            .key(key)
    }

    /// An input error in this recipe without a precise location.
    pub fn error(&self, key: &str, message: impl Into<String>) -> InputError {
        let line = find_key_line(&self.source, key.rsplit('.').next().unwrap_or(key));
        InputError::new(message)
            .file(self.file.clone())
            .line(line)
            .key(key)
    }

    /// Which tables a kind needs and forbids.
    fn check_shape(&self) -> Result<(), InputError> {
        let b = &self.body;
        let name = b.name.get_ref();
        if name.trim().is_empty() {
            return Err(self
                .error_at(b.name.span(), "name", "the recipe name is empty")
                .hint("name it, e.g. name = \"head-tuning-rte\""));
        }
        if name.chars().any(char::is_control) {
            return Err(self
                .error_at(
                    b.name.span(),
                    "name",
                    "the recipe name contains a control character (newline, tab, …)",
                )
                .hint("use letters, digits, '-', '_' and '.'"));
        }
        if b.out.is_none()
            && (name.contains('/')
                || name.contains('\\')
                || name.split(['/', '\\']).any(|c| c == ".." || c == ".")
                || Path::new(name).is_absolute())
        {
            return Err(self
                .error_at(b.name.span(), "name", format!("the name `{name}` would put the default out dir (runs/<name>) outside runs/"))
                .hint("use a plain name such as \"head-tuning-rte\", or set `out` explicitly"));
        }
        if b.out.as_ref().is_some_and(|o| o.as_os_str().is_empty()) {
            return Err(self.error("out", "`out` is empty").hint("name a results directory, e.g. out = \"runs/my-study\", or omit it for runs/<name>"));
        }
        match b.kind {
            RecipeKind::Synthetic => {
                let foreign = [
                    ("model", b.model.is_some()),
                    ("data", b.data.is_some()),
                    ("train", b.train.is_some()),
                    ("methods", !b.methods.is_empty()),
                    ("sweep", !b.sweep.is_empty()),
                ];
                if let Some((key, _)) = foreign.iter().find(|(_, present)| *present) {
                    return Err(self
                        .error(
                            key,
                            format!("`{key}` does not apply to kind = \"synthetic\""),
                        )
                        .hint("synthetic recipes are configured by their [synthetic] table only"));
                }
                if b.synthetic.is_none() {
                    return Err(self
                        .error("synthetic", "kind = \"synthetic\" needs a [synthetic] table")
                        .hint("add [synthetic] with factor = \"margin\" (or [[synthetic.studies]] entries)"));
                }
            }
            RecipeKind::Finetune => {
                if b.synthetic.is_some() {
                    return Err(self
                        .error(
                            "synthetic",
                            "[synthetic] only applies to kind = \"synthetic\"",
                        )
                        .hint("set kind = \"synthetic\" or remove the [synthetic] table"));
                }
                for (key, present) in [("model", b.model.is_some()), ("data", b.data.is_some())] {
                    if !present {
                        return Err(self
                            .error(key, format!("a fine-tuning recipe needs a [{key}] table"))
                            .hint("see the recipe reference in docs/recipes.md"));
                    }
                }
                if b.methods.is_empty() {
                    return Err(self
                        .error(
                            "methods",
                            "a fine-tuning recipe needs at least one [[methods]] entry",
                        )
                        .hint("add\n[[methods]]\nname = \"finetune\""));
                }
            }
        }
        Ok(())
    }
}

/// 1-based line number of a byte offset.
pub fn line_of(source: &str, offset: usize) -> usize {
    source[..offset.min(source.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

/// The first line that assigns `key` (`key = …` or `"key" = …`), if any.
pub fn find_key_line(source: &str, key: &str) -> Option<usize> {
    source
        .lines()
        .position(|l| {
            let t = l.trim_start();
            let t = t
                .strip_prefix('"')
                .map(|r| r.replacen('"', "", 1))
                .unwrap_or_else(|| t.to_string());
            (t.starts_with(key) && t[key.len()..].trim_start().starts_with('='))
                || l.trim() == format!("[{key}]")
                || l.trim() == format!("[[{key}]]")
        })
        .map(|i| i + 1)
}

/// The dotted name of the table that encloses `line` (`train`, `synthetic.studies`), or "".
fn enclosing_table(source: &str, line: usize) -> String {
    source
        .lines()
        .take(line)
        .filter_map(|l| {
            let t = l.trim();
            t.strip_prefix("[[")
                .and_then(|r| r.strip_suffix("]]"))
                .or_else(|| t.strip_prefix('[').and_then(|r| r.strip_suffix(']')))
                .map(|s| s.trim().to_string())
        })
        .last()
        .unwrap_or_default()
}

/// Backticked names in a serde message ("expected one of `a`, `b`").
fn backticked(s: &str) -> Vec<&str> {
    s.split('`').skip(1).step_by(2).collect()
}

/// Turn a toml/serde error into one clear message with file:line, key and hint.
fn toml_error(e: &toml::de::Error, source: &str, file: &str) -> InputError {
    let msg = e.message().trim().to_string();
    let line = e.span().map(|s| line_of(source, s.start));
    let table = line.map(|l| enclosing_table(source, l)).unwrap_or_default();
    let scoped = |name: &str| {
        if table.is_empty() {
            name.to_string()
        } else {
            format!("{table}.{name}")
        }
    };
    let base = InputError::new(msg.clone()).file(file).line(line);
    for (prefix, what) in [("unknown field `", "key"), ("unknown variant `", "value")] {
        if let Some(rest) = msg.strip_prefix(prefix) {
            let name = rest.split('`').next().unwrap_or_default();
            let expected = backticked(rest.split_once("expected").map(|(_, r)| r).unwrap_or(""));
            let where_ = if table.is_empty() {
                "at the top level".to_string()
            } else {
                format!("in [{table}]")
            };
            let mut err = InputError::new(format!(
                "unknown {what} `{name}` {where_}{}",
                did_you_mean(name, expected.iter().copied())
            ))
            .file(file)
            .line(line)
            .hint(format!("valid {what}s: {}", expected.join(", ")));
            if what == "key" {
                err = err.key(scoped(name));
            }
            return err;
        }
    }
    if let Some(rest) = msg.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or_default();
        return base
            .message_with(format!("missing required key `{name}`"))
            .key(scoped(name))
            .hint("see the recipe reference in docs/recipes.md");
    }
    if msg.starts_with("invalid type") || msg.starts_with("invalid value") {
        let key = line.and_then(|l| source.lines().nth(l - 1)).and_then(|l| {
            l.split_once('=')
                .map(|(k, _)| k.trim().trim_matches('"').to_string())
        });
        let mut err =
            base.hint("check the value's type against the recipe reference in docs/recipes.md");
        if let Some(k) = key.filter(|k| !k.is_empty() && !k.starts_with('[')) {
            err = err.key(scoped(&k));
        }
        return err;
    }
    base.hint("the recipe must be valid TOML (https://toml.io)")
}

impl InputError {
    fn message_with(mut self, m: String) -> Self {
        self.message = m;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(src: &str) -> InputError {
        Recipe::parse(src, "r.toml").unwrap_err()
    }

    #[test]
    fn unknown_key_names_nearest_and_line() {
        let e = err(
            "name = \"x\"\n[model]\npath = \"m\"\n[data]\ndir = \"d\"\ntasks = [\"rte\"]\n[train]\nlr_rate = 1e-5\n[[methods]]\nname = \"finetune\"\n",
        );
        assert_eq!(e.line, Some(8), "{e}");
        assert_eq!(e.key.as_deref(), Some("train.lr_rate"));
        assert!(e.to_string().contains("did you mean `lr`"), "{e}");
    }

    #[test]
    fn wrong_type_is_located() {
        let e = err(
            "name = \"x\"\nkind = \"synthetic\"\n[synthetic]\nfactor = \"margin\"\ndatasets = \"many\"\n",
        );
        assert_eq!(e.line, Some(5), "{e}");
        assert_eq!(e.key.as_deref(), Some("synthetic.datasets"), "{e}");
    }

    #[test]
    fn unknown_kind_suggests() {
        let e = err("name = \"x\"\nkind = \"synthetc\"\n");
        assert!(e.to_string().contains("did you mean `synthetic`"), "{e}");
    }

    #[test]
    fn synthetic_recipe_rejects_train_table() {
        let e = err(
            "name = \"x\"\nkind = \"synthetic\"\n[synthetic]\nfactor = \"margin\"\n[train]\nlr = 1.0\n",
        );
        assert_eq!(e.key.as_deref(), Some("train"));
        assert_eq!(e.line, Some(5));
    }

    #[test]
    fn finetune_recipe_parses_with_defaults() {
        let r = Recipe::parse(
            "name = \"rte\"\n[model]\npath = \"m\"\n[data]\ndir = \"d\"\ntasks = [\"rte\"]\n[[methods]]\nname = \"mmr\"\nalpha = 0.5\n[sweep]\n\"train.lr\" = [1e-5, 2e-5]\n",
            "r.toml",
        )
        .unwrap();
        assert_eq!(r.kind(), RecipeKind::Finetune);
        assert_eq!(r.out_dir(), PathBuf::from("runs/rte"));
        assert_eq!(TrainSection::default().seeds.values().len(), 10);
    }
}
