//! Expansion of a recipe into its grid of independent runs (docs/design.md §6–7).
//!
//! Fine-tuning: tasks × methods × seeds × `[sweep]` values. Synthetic: one run per
//! (study, factor value). Each [`RunSpec`] carries every setting that affects its result,
//! and its `run_id` is a stable hash of exactly those settings, so resuming, sharding and
//! merging stores are all keyed on it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::InputError;
use crate::params::{MethodParams, resolve_params};
use crate::recipe::{
    DataSection, DataSourceKind, ModelSection, Recipe, RecipeKind, TrainMode, TrainSection,
};
use crate::registry;
use crate::seed::stable_hash;
use crate::synthetic::{SyntheticSettings, SyntheticTable};

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

/// The ordered runs of one recipe.
#[derive(Debug, Clone)]
pub struct Plan {
    pub recipe: String,
    pub kind: RecipeKind,
    pub runs: Vec<RunSpec>,
}

impl RunSpec {
    /// Compute the stable id: `<label>-<16 hex digits of the settings hash>`.
    fn with_id(mut self, label: &str) -> Self {
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
                json(&Some(&j.train)),
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
        serde_json::json!({
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
        })
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

impl Plan {
    /// Validate a recipe against the registries and expand its grid.
    pub fn from_recipe(recipe: &Recipe) -> Result<Self, InputError> {
        let runs = match recipe.kind() {
            RecipeKind::Synthetic => plan_synthetic(recipe)?,
            RecipeKind::Finetune => plan_finetune(recipe)?,
        };
        let mut seen = std::collections::HashSet::new();
        let runs: Vec<RunSpec> = runs
            .into_iter()
            .filter(|r| seen.insert(r.run_id.clone()))
            .collect();
        Ok(Plan {
            recipe: recipe.name().to_string(),
            kind: recipe.kind(),
            runs,
        })
    }

    /// The runs of shard `index` (0-based) of `count`, balanced by estimated cost
    /// ([`crate::cost::balanced_shards`]).
    pub fn shard(&self, index: usize, count: usize) -> Vec<&RunSpec> {
        let assignment = self.shards(count);
        self.runs
            .iter()
            .zip(assignment)
            .filter(|(_, s)| *s == index)
            .map(|(r, _)| r)
            .collect()
    }

    /// Every run's shard among `count`, in plan order.
    pub fn shards(&self, count: usize) -> Vec<usize> {
        crate::cost::balanced_shards(&self.runs, count)
    }
}

fn overlay(s: &mut SyntheticSettings, t: &SyntheticTable) {
    macro_rules! set {
        ($($f:ident),*) => { $( if let Some(v) = &t.$f { s.$f = v.get_ref().clone(); } )* };
    }
    set!(
        datasets,
        points,
        dim,
        steps,
        checkpoints,
        loo_samples,
        heads,
        init_std,
        mu,
        svm_c,
        svm_tol,
        gd_loo,
        seed
    );
    let margin = t.margin.as_ref().map_or(s.margin, |v| *v.get_ref());
    let bound = t.bound.as_ref().map_or(s.bound, |v| *v.get_ref());
    s.set_margin_and_bound(margin, bound);
}

fn plan_synthetic(recipe: &Recipe) -> Result<Vec<RunSpec>, InputError> {
    let top = recipe.body.synthetic.as_ref().expect("shape checked");
    let entries: Vec<(&SyntheticTable, String)> = match &top.studies {
        Some(list) if !list.is_empty() => {
            if top.factor.is_some() || top.values.is_some() {
                return Err(recipe
                    .error(
                        "synthetic.factor",
                        "use either `factor` in [synthetic] or [[synthetic.studies]], not both",
                    )
                    .hint("move `factor`/`values` into a [[synthetic.studies]] entry"));
            }
            list.iter()
                .enumerate()
                .map(|(i, t)| (t, format!("synthetic.studies[{i}]")))
                .collect()
        }
        Some(_) => {
            return Err(recipe
                .error("synthetic.studies", "`studies` is empty")
                .hint("add at least one [[synthetic.studies]] entry with a factor"));
        }
        None => vec![(top, "synthetic".to_string())],
    };
    let mut runs = Vec::new();
    for (table, path) in entries {
        if table.studies.is_some() {
            return Err(recipe.error(&format!("{path}.studies"), "studies cannot be nested"));
        }
        let Some(factor) = &table.factor else {
            let names: Vec<&str> = registry::studies().iter().map(|e| e.factor).collect();
            return Err(recipe
                .error(&path, "missing `factor`")
                .hint(format!("set factor to one of: {}", names.join(", "))));
        };
        let study = registry::study(factor.get_ref()).map_err(|e| {
            let mut located = recipe.error_at(factor.span(), &format!("{path}.factor"), e.message);
            located.hint = e.hint;
            located
        })?;
        let steps = table
            .steps
            .as_ref()
            .or(top.steps.as_ref())
            .map_or(study.default_steps(), |s| *s.get_ref());
        let mut base = SyntheticSettings::defaults(study.factor(), steps);
        if !std::ptr::eq(table, top) {
            overlay(&mut base, top);
        }
        overlay(&mut base, table);
        let explicit_checkpoints = table.checkpoints.is_some() || top.checkpoints.is_some();
        if !explicit_checkpoints {
            base.checkpoints = SyntheticSettings::default_checkpoints(base.steps);
        }
        check_base(recipe, &path, table, top, &base)?;
        let values = match &table.values {
            Some(v) if v.get_ref().is_empty() => {
                return Err(recipe
                    .error_at(v.span(), &format!("{path}.values"), "`values` is empty")
                    .hint(format!(
                        "list at least one value, e.g. values = {:?} (the paper's), or omit `values`",
                        study.default_values()
                    )));
            }
            Some(v) if v.get_ref().len() > 10_000 => {
                return Err(recipe
                    .error_at(
                        v.span(),
                        &format!("{path}.values"),
                        format!("`values` lists {} values; at most 10000", v.get_ref().len()),
                    )
                    .hint("one run per value: split the study into several recipes"));
            }
            Some(v) => v.get_ref().clone(),
            None => study.default_values(),
        };
        for value in values {
            let settings = study.apply(&base, value).map_err(|m| {
                let span = table.values.as_ref().map(|v| v.span());
                let key = format!("{path}.values");
                match span {
                    Some(span) => recipe.error_at(span, &key, m),
                    None => recipe.error(&key, m),
                }
                .hint("change the value, or the fixed settings it combines with")
            })?;
            let mut sweep = BTreeMap::new();
            sweep.insert(study.factor().to_string(), serde_json::json!(value));
            let spec = RunSpec {
                run_id: String::new(),
                recipe: recipe.name().to_string(),
                task: "synthetic".to_string(),
                method: study.factor().to_string(),
                method_params: MethodParams::new(),
                seed: settings.seed,
                sweep,
                job: RunJob::Synthetic(settings),
            };
            runs.push(spec.with_id(&format!("{}-{}", study.factor(), value)));
        }
    }
    Ok(runs)
}

/// Checks of the fixed settings that hold whatever the factor value.
fn check_base(
    recipe: &Recipe,
    path: &str,
    table: &SyntheticTable,
    top: &SyntheticTable,
    s: &SyntheticSettings,
) -> Result<(), InputError> {
    let at = |key: &str, span: Option<std::ops::Range<usize>>, msg: String| {
        let full = format!("{path}.{key}");
        match span {
            Some(sp) => recipe.error_at(sp, &full, msg),
            None => recipe.error(&full, msg),
        }
    };
    macro_rules! span {
        ($f:ident) => {
            table.$f.as_ref().or(top.$f.as_ref()).map(|v| v.span())
        };
    }
    // Every float finite (TOML can spell nan and inf).
    for (key, v, sp) in [
        ("margin", s.margin, span!(margin)),
        ("bound", s.bound, span!(bound)),
        ("init_std", s.init_std, span!(init_std)),
        ("mu", s.mu, span!(mu)),
        ("svm_c", s.svm_c, span!(svm_c)),
        ("svm_tol", s.svm_tol, span!(svm_tol)),
    ] {
        if !v.is_finite() {
            return Err(at(key, sp, format!("{key} = {v} is not a finite number"))
                .hint("use a finite value"));
        }
    }
    if let Some(v) = table
        .values
        .as_ref()
        .filter(|v| v.get_ref().iter().any(|x| !x.is_finite()))
    {
        return Err(at(
            "values",
            Some(v.span()),
            "`values` holds a non-finite number".into(),
        )
        .hint("use finite factor values"));
    }
    // Sizes: bounded by what a study can use (`crate::limits`), so no input asks for
    // absurd memory or time.
    use crate::limits;
    for (key, v, limit, sp) in [
        (
            "datasets",
            s.datasets as u64,
            limits::DATASETS,
            span!(datasets),
        ),
        ("points", s.points as u64, limits::POINTS, span!(points)),
        ("heads", s.heads as u64, limits::HEADS, span!(heads)),
        ("steps", s.steps, limits::GD_STEPS, span!(steps)),
        (
            "loo_samples",
            s.loo_samples as u64,
            limits::LOO_SAMPLES,
            span!(loo_samples),
        ),
    ] {
        if v > limit.max {
            return Err(at(
                key,
                sp,
                format!("{key} = {v} is too large; at most {}", limit.max),
            )
            .hint(limit.hint));
        }
    }
    if s.steps == 0 {
        return Err(at(
            "steps",
            span!(steps),
            "steps = 0 leaves nothing to compute".into(),
        )
        .hint("GD needs at least one iteration, e.g. steps = 1000"));
    }
    if s.loo_samples == 0 && (s.gd_loo || s.factor == "heads" || s.factor == "distance") {
        return Err(at(
            "loo_samples",
            span!(loo_samples),
            "loo_samples = 0 leaves no left-out point to measure".into(),
        )
        .hint("the default is 10"));
    }
    if s.loo_samples > s.points {
        return Err(at(
            "loo_samples",
            span!(loo_samples),
            format!(
                "loo_samples = {} exceeds points = {}",
                s.loo_samples, s.points
            ),
        )
        .hint("sample at most as many left-out points as there are points"));
    }
    if s.checkpoints.is_empty() {
        return Err(at(
            "checkpoints",
            span!(checkpoints),
            "`checkpoints` is empty".into(),
        )
        .hint("e.g. checkpoints = [10, 100, 1000], or omit it"));
    }
    if s.factor != "margin" && s.margin >= s.bound {
        let span = span!(margin).or(span!(bound));
        return Err(at(
            "margin",
            span,
            format!(
                "margin γ = {} must be smaller than bound B = {}",
                s.margin, s.bound
            ),
        )
        .hint("the balls have radius (B − γ)/2 > 0; e.g. margin = 0.5, bound = 3"));
    }
    if s.factor != "margin" && s.margin <= 0.0 {
        return Err(at(
            "margin",
            span!(margin),
            format!("margin γ = {} must be positive", s.margin),
        )
        .hint("e.g. margin = 0.5"));
    }
    if s.datasets == 0 {
        return Err(at(
            "datasets",
            span!(datasets),
            "datasets must be at least 1".into(),
        )
        .hint("the paper uses 500"));
    }
    if s.points < 4 {
        return Err(at(
            "points",
            span!(points),
            format!("points = {} is too few; need at least 4", s.points),
        )
        .hint("the paper uses 2000"));
    }
    if s.dim == 0 || s.dim > 64 {
        return Err(at(
            "dim",
            span!(dim),
            format!("dim = {} is out of range; expected 1..=64", s.dim),
        )
        .hint("the default is 2"));
    }
    if s.heads == 0 {
        return Err(at("heads", span!(heads), "heads must be at least 1".into()));
    }
    if s.svm_c <= 0.0 || s.svm_tol <= 0.0 || s.mu < 0.0 || s.init_std < 0.0 {
        return Err(at(
            "svm_c",
            None,
            "svm_c and svm_tol must be positive, mu and init_std non-negative".into(),
        ));
    }
    let cps = &s.checkpoints;
    if cps.iter().any(|&t| t == 0 || t > s.steps) || cps.windows(2).any(|w| w[0] >= w[1]) {
        return Err(at(
            "checkpoints",
            span!(checkpoints),
            format!(
                "checkpoints {cps:?} must increase strictly within 1..={}",
                s.steps
            ),
        )
        .hint("e.g. checkpoints = [10, 100, 1000] with steps = 1000"));
    }
    Ok(())
}

/// The sections a sweep key may address, with their TOML form for generic assignment.
fn set_path(value: &mut toml::Value, field: &str, v: &toml::Value) -> bool {
    match value.as_table_mut() {
        Some(t) => {
            t.insert(field.to_string(), v.clone());
            true
        }
        None => false,
    }
}

/// Range checks of the fine-tuning sections (and of swept values, named by their sweep key).
fn check_finetune(
    recipe: &Recipe,
    cell: &[(String, toml::Value)],
    train: &TrainSection,
    data: &DataSection,
    model: &ModelSection,
) -> Result<(), InputError> {
    let err = |key: &str, msg: String, hint: &str| {
        let swept = cell.iter().any(|(k, _)| k == key);
        let shown = if swept {
            format!("sweep.{key}")
        } else {
            key.to_string()
        };
        let e = if swept {
            recipe.error(&format!("sweep.{key}"), format!("swept {msg}"))
        } else {
            recipe.error(key, msg)
        };
        Err(InputError {
            key: Some(shown),
            ..e.hint(hint)
        })
    };
    // (key, value, low, low included, high, high included, hint)
    let floats = [
        (
            "train.lr",
            train.lr,
            0.0,
            false,
            10.0,
            true,
            "a learning rate such as 2e-5",
        ),
        (
            "train.warmup",
            train.warmup,
            0.0,
            true,
            1.0,
            true,
            "a fraction of the updates in [0, 1], e.g. 0.1",
        ),
        (
            "train.weight_decay",
            train.weight_decay,
            0.0,
            true,
            1.0,
            false,
            "e.g. 0.01",
        ),
        (
            "train.grad_clip",
            train.grad_clip,
            0.0,
            true,
            1e6,
            true,
            "a global-norm bound such as 1.0 (0 turns clipping off)",
        ),
        (
            "data.dev_fraction",
            data.dev_fraction,
            0.0,
            false,
            1.0,
            false,
            "a fraction in (0, 1), e.g. 0.1",
        ),
        (
            "data.train_fraction",
            data.train_fraction,
            0.0,
            false,
            1.0,
            true,
            "a fraction in (0, 1], e.g. 0.5",
        ),
        (
            "data.drop_fraction",
            data.drop_fraction,
            0.0,
            true,
            1.0,
            false,
            "a fraction in [0, 1), e.g. 0.1",
        ),
    ];
    for (key, v, lo, lo_in, hi, hi_in, hint) in floats {
        let ok = v.is_finite()
            && (if lo_in { v >= lo } else { v > lo })
            && (if hi_in { v <= hi } else { v < hi });
        if !ok {
            let range = format!(
                "{}{lo}, {hi}{}",
                if lo_in { "[" } else { "(" },
                if hi_in { "]" } else { ")" }
            );
            return err(
                key,
                format!("{key} = {v} is out of range; expected a number in {range}"),
                hint,
            );
        }
    }
    use crate::limits;
    let ints = [
        ("train.epochs", train.epochs, limits::EPOCHS),
        (
            "train.batch_size",
            train.batch_size as u64,
            limits::BATCH_SIZE,
        ),
        ("train.patience", train.patience, limits::PATIENCE),
        ("train.max_steps", train.max_steps, limits::MAX_STEPS),
        ("train.eval_every", train.eval_every, limits::EVAL_EVERY),
        ("model.max_len", model.max_len as u64, limits::MAX_LEN),
        ("train.seeds", train.seeds.len(), limits::SEEDS),
    ];
    for (key, v, limit) in ints {
        if let Err(e) = limit.check(key, v) {
            return err(key, e.message, limit.hint);
        }
    }
    check_data_source(data).or_else(|(key, msg, hint)| err(&key, msg, &hint))?;
    if data.tasks.is_empty() {
        return err(
            "data.tasks",
            "`tasks` is empty".into(),
            "e.g. tasks = [\"rte\", \"cb\"]",
        );
    }
    for task in &data.tasks {
        if let Err(e) = registry::task(task) {
            let swept = cell.iter().any(|(k, _)| k == "data.tasks");
            return err(
                "data.tasks",
                if swept {
                    format!("value {}", e.message)
                } else {
                    e.message
                },
                e.hint.as_deref().unwrap_or(""),
            );
        }
    }
    Ok(())
}

/// `data.source` against `data.dir` and `[data.hub]`: (key, message, hint) of the first
/// inconsistency.
fn check_data_source(data: &DataSection) -> Result<(), (String, String, String)> {
    let fail = |key: &str, msg: &str, hint: &str| Err((key.into(), msg.into(), hint.into()));
    match data.source {
        DataSourceKind::Dir if data.dir.is_none() => {
            return fail(
                "data.dir",
                "`dir` is missing: source = \"dir\" reads the task files from a directory",
                "set dir = \"path/to/data\" (holding glue/<TASK>/… and superglue/<Task>/…), or source = \"hub\" to read the tasks from the Hugging Face Hub",
            );
        }
        DataSourceKind::Dir if !data.hub.is_empty() => {
            return fail(
                "data.hub",
                "[data.hub] only applies with source = \"hub\"",
                "set source = \"hub\", or remove the [data.hub] table",
            );
        }
        DataSourceKind::Hub if data.dir.is_some() => {
            return fail(
                "data.dir",
                "`dir` is not read with source = \"hub\"",
                "remove `dir`, or set source = \"dir\" to read that directory",
            );
        }
        _ => {}
    }
    for (task, spec) in &data.hub {
        let key = format!("data.hub.{task}");
        if let Err(e) = registry::task(task) {
            return Err((key, e.message, e.hint.unwrap_or_default()));
        }
        let repo_ok = spec.dataset.split('/').count() == 2
            && spec
                .dataset
                .split('/')
                .all(|p| !p.is_empty() && !p.contains(char::is_whitespace));
        if !repo_ok {
            return fail(
                &format!("{key}.dataset"),
                &format!("`{}` is not a Hub dataset id", spec.dataset),
                "an id is `owner/name`, e.g. dataset = \"nyu-mll/glue\"",
            );
        }
        if spec.config.trim().is_empty() || spec.config.contains(['/', '\\']) {
            return fail(
                &format!("{key}.config"),
                &format!("`{}` is not a dataset config name", spec.config),
                "the config is the dataset's subset, e.g. config = \"rte\"",
            );
        }
        if spec
            .revision
            .as_deref()
            .is_some_and(|r| r.trim().is_empty() || r.contains(".."))
        {
            return fail(
                &format!("{key}.revision"),
                "the revision is empty or not a revision name",
                "a branch, tag or commit, e.g. revision = \"main\"; leave it out for main",
            );
        }
    }
    Ok(())
}

fn plan_finetune(recipe: &Recipe) -> Result<Vec<RunSpec>, InputError> {
    let b = &recipe.body;
    let model = b.model.clone().expect("shape checked");
    let data = b.data.clone().expect("shape checked");
    let train = b.train.clone().unwrap_or_default();
    if data.tasks.is_empty() {
        return Err(recipe
            .error("data.tasks", "`tasks` is empty")
            .hint("e.g. tasks = [\"rte\", \"cb\"]"));
    }
    for task in &data.tasks {
        registry::task(task).map_err(|e| {
            let mut located = recipe.error("data.tasks", e.message);
            located.hint = e.hint;
            located
        })?;
    }
    // Methods: name + parameters validated by the plugin's declared schema; a table may
    // stack further methods on its own (`stack = [{ name = "llrd", xi = 0.9 }]`).
    let methods = b
        .methods
        .iter()
        .enumerate()
        .map(|(i, table)| resolve_stack(recipe, i, table))
        .collect::<Result<Vec<_>, _>>()?;
    // Sweep: cartesian product over keys, each key addressing a section field or a
    // method parameter (`mmr.alpha`).
    let mut cells: Vec<Vec<(String, toml::Value)>> = vec![Vec::new()];
    for (key, values) in &b.sweep {
        if values.get_ref().is_empty() {
            return Err(recipe
                .error_at(
                    values.span(),
                    &format!("sweep.{key}"),
                    "sweep values are empty",
                )
                .hint("list at least one value"));
        }
        let (head, _field) = key.split_once('.').ok_or_else(|| {
            recipe
                .error_at(
                    values.span(),
                    &format!("sweep.{key}"),
                    format!("sweep key `{key}` must be `section.key`"),
                )
                .hint("e.g. \"train.lr\" = [1e-5, 2e-5], or \"mmr.alpha\" = [0.1, 1, 10]")
        })?;
        let known_section = ["train", "data", "model"].contains(&head);
        let names = || methods.iter().flatten().map(|(n, _)| n.as_str());
        if !known_section && !names().any(|n| n == head) {
            let mut options = vec!["train", "data", "model"];
            options.extend(names());
            return Err(recipe
                .error_at(values.span(), &format!("sweep.{key}"), format!("sweep key `{key}` addresses `{head}`, which is neither a section nor a method of this recipe{}", crate::suggest::did_you_mean(head, options.iter().copied())))
                .hint("sweep keys look like \"train.lr\" or \"<method>.<param>\""));
        }
        let planned = cells.len().saturating_mul(values.get_ref().len());
        if planned > 1_000_000 {
            return Err(recipe
                .error_at(
                    values.span(),
                    &format!("sweep.{key}"),
                    format!("the sweep grows to {planned} cells; at most 1000000"),
                )
                .hint("sweep fewer keys or values at once"));
        }
        cells = cells
            .into_iter()
            .flat_map(|cell| {
                values.get_ref().iter().map(move |v| {
                    let mut c = cell.clone();
                    c.push((key.clone(), v.clone()));
                    c
                })
            })
            .collect();
    }
    // The [train] keys the recipe sets itself (a profile fills only the others).
    let given_train: Vec<String> = recipe
        .source
        .parse::<toml::Table>()
        .ok()
        .and_then(|t| {
            t.get("train")
                .and_then(|v| v.as_table())
                .map(|t| t.keys().cloned().collect())
        })
        .unwrap_or_default();
    let mut runs = Vec::new();
    for cell in &cells {
        let mut train_v = toml::Value::try_from(&train).expect("train serialises");
        let mut data_v = toml::Value::try_from(&data).expect("data serialises");
        let mut model_v = toml::Value::try_from(&model).expect("model serialises");
        let mut method_overrides: Vec<(&str, &str, &toml::Value)> = Vec::new();
        for (key, v) in cell {
            let (head, field) = key.split_once('.').expect("checked");
            match head {
                "train" => set_path(&mut train_v, field, v),
                "data" => set_path(&mut data_v, field, v),
                "model" => set_path(&mut model_v, field, v),
                _ => {
                    method_overrides.push((head, field, v));
                    true
                }
            };
        }
        let sweep_err = |section: &str, e: toml::de::Error| {
            recipe
                .error(
                    &format!("sweep.{section}"),
                    format!("a swept value does not fit [{section}]: {}", e.message()),
                )
                .hint("sweep keys must name existing keys with values of their type")
        };
        let mut train_c: TrainSection = train_v.try_into().map_err(|e| sweep_err("train", e))?;
        let mut given = given_train.clone();
        given.extend(
            cell.iter()
                .filter_map(|(k, _)| k.strip_prefix("train.").map(str::to_string)),
        );
        train_c.apply_profile(&given);
        let data_c: DataSection = data_v.try_into().map_err(|e| sweep_err("data", e))?;
        let model_c: ModelSection = model_v.try_into().map_err(|e| sweep_err("model", e))?;
        // The same checks whether a value is written in its section or swept.
        check_finetune(recipe, cell, &train_c, &data_c, &model_c)?;
        for stack in &methods {
            let mut sweep = BTreeMap::new();
            for (key, v) in cell {
                let head = key.split_once('.').map(|(h, _)| h).unwrap_or("");
                if ["train", "data", "model"].contains(&head) {
                    sweep.insert(key.clone(), serde_json::to_value(v).unwrap_or_default());
                }
            }
            let mut resolved = Vec::new();
            for (mname, base_params) in stack {
                let mut params = base_params.clone();
                for (head, field, v) in &method_overrides {
                    if head != mname {
                        continue;
                    }
                    let entry = registry::method(mname).expect("validated");
                    let mut t = toml::Table::new();
                    t.insert(field.to_string(), (*v).clone());
                    let one = resolve_params(&format!("sweep `{head}.{field}`"), entry.params, &t)
                        .map_err(|e| InputError {
                            file: Some(recipe.file.clone()),
                            key: Some(format!("sweep.{head}.{field}")),
                            ..e
                        })?;
                    params.insert(field.to_string(), one[*field].clone());
                    (entry.validate)(&params).map_err(|m| {
                        recipe
                            .error(
                                &format!("sweep.{head}.{field}"),
                                format!("swept {head}.{field} = {v}: {m}"),
                            )
                            .hint("the same values are refused in the method's own table")
                    })?;
                    sweep.insert(
                        format!("{head}.{field}"),
                        serde_json::to_value(v).unwrap_or_default(),
                    );
                }
                resolved.push((mname.clone(), params));
            }
            let (mname, params) = stack_identity(&resolved);
            for task in &data_c.tasks {
                for seed in train_c.seeds.values() {
                    let mut d = data_c.clone();
                    d.tasks = vec![task.clone()];
                    let mut t = train_c.clone();
                    t.seeds = crate::recipe::Seeds::List(vec![seed]);
                    let spec = RunSpec {
                        run_id: String::new(),
                        recipe: recipe.name().to_string(),
                        task: task.clone(),
                        method: mname.clone(),
                        method_params: params.clone(),
                        seed,
                        sweep: sweep.clone(),
                        job: RunJob::Finetune(FinetuneJob {
                            model: model_c.clone(),
                            data: d,
                            train: t,
                        }),
                    };
                    runs.push(spec.with_id(&format!("{task}-{mname}-s{seed}")));
                }
            }
        }
    }
    Ok(runs)
}

/// The `i`-th `[[methods]]` table and the methods it stacks, each resolved, in the
/// written order.
fn resolve_stack(
    recipe: &Recipe,
    i: usize,
    table: &toml::Spanned<toml::Table>,
) -> Result<Vec<(String, MethodParams)>, InputError> {
    let line = recipe.line_of(table.span().start);
    let at = |key: String, message: String| {
        InputError::new(message)
            .file(recipe.file.clone())
            .line(Some(line))
            .key(key)
    };
    let mut params = table.get_ref().clone();
    let stacked = match params.remove("stack") {
        None => Vec::new(),
        Some(toml::Value::Array(items)) => items,
        Some(other) => {
            return Err(at(
                format!("methods[{i}].stack"),
                format!(
                    "methods[{i}].stack must be a list of method tables, found {}",
                    other.type_str()
                ),
            )
            .hint("e.g. stack = [{ name = \"llrd\", xi = 0.9 }]"));
        }
    };
    let mut stack = vec![resolve_method(
        recipe,
        &format!("methods[{i}]"),
        line,
        params,
    )?];
    for (j, item) in stacked.into_iter().enumerate() {
        let key = format!("methods[{i}].stack[{j}]");
        let toml::Value::Table(t) = item else {
            let message = format!("{key} must be a method table, found {}", item.type_str());
            return Err(at(key, message).hint("e.g. { name = \"llrd\", xi = 0.9 }"));
        };
        if t.contains_key("stack") {
            let message = format!("{key} has its own `stack`; stacks do not nest");
            return Err(at(format!("{key}.stack"), message)
                .hint("list every stacked method in the first table's `stack`"));
        }
        let m = resolve_method(recipe, &key, line, t)?;
        if stack.iter().any(|(n, _)| *n == m.0) {
            let message = format!("methods[{i}] stacks `{}` twice", m.0);
            return Err(at(key, message).hint(
                "a method appears at most once in a stack; set its parameters in one table",
            ));
        }
        stack.push(m);
    }
    Ok(stack)
}

/// One `[[methods]]` table (or stacked table): its registered name and its parameters,
/// validated by the plugin's schema.
fn resolve_method(
    recipe: &Recipe,
    owner_key: &str,
    line: usize,
    mut params: toml::Table,
) -> Result<(String, MethodParams), InputError> {
    let name = match params.remove("name") {
        Some(toml::Value::String(s)) => s,
        _ => {
            return Err(InputError::new(format!("{owner_key} has no `name`"))
                .file(recipe.file.clone())
                .line(Some(line))
                .key(format!("{owner_key}.name"))
                .hint("e.g. name = \"mhloss\""));
        }
    };
    let entry = registry::method(&name).map_err(|e| InputError {
        file: Some(recipe.file.clone()),
        line: Some(line),
        key: Some(format!("{owner_key}.name")),
        ..e
    })?;
    let owner = format!("{owner_key} ({name})");
    let resolved = resolve_params(&owner, entry.params, &params).map_err(|e| {
        let key = e.key.clone().unwrap_or_default();
        let param_line = recipe
            .source
            .lines()
            .enumerate()
            .skip(line)
            .find(|(_, l)| l.trim_start().starts_with(&key) && l.contains('='));
        InputError {
            file: Some(recipe.file.clone()),
            line: Some(param_line.map_or(line, |(n, _)| n + 1)),
            key: Some(format!("{owner_key}.{key}")),
            ..e
        }
    })?;
    (entry.validate)(&resolved).map_err(|m| {
        InputError::new(format!("{owner}: {m}"))
            .file(recipe.file.clone())
            .line(Some(line))
            .key(owner_key.to_string())
    })?;
    Ok((name, resolved))
}

/// A run's `method` and `method_params` for a stack: one method keeps its own name and
/// parameters (so a run's id is what it was before stacks existed); a stack is the names
/// joined by `+` in the written order, with each one's parameters under its name.
pub fn stack_identity(stack: &[(String, MethodParams)]) -> (String, MethodParams) {
    if let [(name, params)] = stack {
        return (name.clone(), params.clone());
    }
    let name = stack
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join("+");
    let params = stack
        .iter()
        .map(|(n, p)| {
            let obj: serde_json::Map<String, serde_json::Value> =
                p.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            (n.clone(), serde_json::Value::Object(obj))
        })
        .collect();
    (name, params)
}

impl RunSpec {
    /// The methods of the run, in stack order, each with its parameters (the inverse of
    /// [`stack_identity`]).
    pub fn method_stack(&self) -> Vec<(String, MethodParams)> {
        if !self.method.contains('+') {
            return vec![(self.method.clone(), self.method_params.clone())];
        }
        self.method
            .split('+')
            .map(|n| {
                let params = self
                    .method_params
                    .get(n)
                    .and_then(|v| v.as_object())
                    .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default();
                (n.to_string(), params)
            })
            .collect()
    }
}
