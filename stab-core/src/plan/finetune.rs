//! The fine-tuning grid: tasks × methods (with their stacks) × seeds × `[sweep]` values,
//! each cell's resolved sections range-checked with errors at the recipe's keys.

use std::collections::BTreeMap;

use crate::error::InputError;
use crate::recipe::{DataSection, DataSourceKind, ModelSection, Recipe, TrainSection, custom_task};
use crate::registry;

use super::spec::{FinetuneJob, RunJob, RunSpec};
use crate::params::resolve_params;

use super::stack::{MethodCall, Stack, resolve_stack, train_overrides};

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
/// Where a fine-tuning setting is written: the recipe, or the sweep when the cell sets it.
struct CellAt<'a> {
    recipe: &'a Recipe,
    cell: &'a [(String, toml::Value)],
}

impl CellAt<'_> {
    /// An input error at `key` (`sweep.KEY` when the cell sweeps it).
    fn err(&self, key: &str, msg: String, hint: &str) -> InputError {
        let swept = self.swept(key);
        let shown = if swept {
            format!("sweep.{key}")
        } else {
            key.to_string()
        };
        let e = if swept {
            self.recipe
                .error(&format!("sweep.{key}"), format!("swept {msg}"))
        } else {
            self.recipe.error(key, msg)
        };
        InputError {
            key: Some(shown),
            ..e.hint(hint)
        }
    }

    fn swept(&self, key: &str) -> bool {
        self.cell.iter().any(|(k, _)| k == key)
    }
}

fn check_finetune(
    recipe: &Recipe,
    cell: &[(String, toml::Value)],
    train: &TrainSection,
    data: &DataSection,
    model: &ModelSection,
) -> Result<(), InputError> {
    let at = CellAt { recipe, cell };
    // Every range and count at once: a user fixes them in one edit.
    let mut errors = check_float_ranges(&at, train, data);
    errors.extend(check_counts(&at, train, model));
    errors.extend(check_data(&at, data).err());
    let mut errors = errors.into_iter();
    match errors.next() {
        Some(first) => Err(first.with_more(errors.collect())),
        None => Ok(()),
    }
}

/// The float settings within their ranges.
fn check_float_ranges(
    at: &CellAt<'_>,
    train: &TrainSection,
    data: &DataSection,
) -> Vec<InputError> {
    let mut errors = Vec::new();
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
            errors.push(at.err(
                key,
                format!("{key} = {v} is out of range; expected a number in {range}"),
                hint,
            ));
        }
    }
    errors
}

/// A sequential design's values, and its fit with the recipe: the design chooses the
/// seeds, and its baseline is one of the recipe's methods.
fn check_sequential(
    recipe: &Recipe,
    design: &crate::sequential::SequentialDesign,
    stacks: &[Stack],
    given_train: &[String],
) -> Result<(), InputError> {
    design.check().map_err(|e| {
        let key = e.key.clone().unwrap_or_else(|| "seeds".into());
        let mut located = recipe.error(&key, e.message);
        located.hint = e.hint;
        located
    })?;
    if given_train.iter().any(|k| k == "seeds") || recipe.body.sweep.contains_key("train.seeds") {
        return Err(recipe
            .error("train.seeds", "train.seeds and [seeds] policy = \"sequential\" both choose the seeds")
            .hint("drop train.seeds: a sequential grid runs seeds 0, 1, … up to seeds.max, round by round"));
    }
    let names: Vec<String> = stacks.iter().map(|s| s.identity().0).collect();
    if !names.contains(&design.baseline) {
        return Err(recipe
            .error(
                "seeds.baseline",
                format!(
                    "seeds.baseline = \"{}\" is not a method of this recipe{}",
                    design.baseline,
                    crate::suggest::did_you_mean(
                        &design.baseline,
                        names.iter().map(String::as_str)
                    )
                ),
            )
            .hint(format!("the recipe's methods: {}", names.join(", "))));
    }
    if names.len() < 2 {
        return Err(recipe
            .error("seeds", "a sequential grid compares methods with the baseline, but this recipe has one method")
            .hint("add the methods to compare with [[methods]] tables, or use train.seeds"));
    }
    Ok(())
}

/// The counts within `crate::limits`.
fn check_counts(at: &CellAt<'_>, train: &TrainSection, model: &ModelSection) -> Vec<InputError> {
    let mut errors = Vec::new();
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
    let ints = ints.into_iter().chain(
        train
            .seed_batch
            .map(|k| ("train.seed_batch", k as u64, limits::SEED_BATCH)),
    );
    for (key, v, limit) in ints {
        if let Err(e) = limit.check(key, v) {
            errors.push(at.err(key, e.message, limit.hint));
        }
    }
    errors
}

/// The data source and the tasks.
fn check_data(at: &CellAt<'_>, data: &DataSection) -> Result<(), InputError> {
    check_data_source(data).map_err(|(key, msg, hint)| at.err(&key, msg, &hint))?;
    if data.tasks.is_empty() {
        return Err(at.err(
            "data.tasks",
            "`tasks` is empty".into(),
            "e.g. tasks = [\"rte\", \"cb\"]",
        ));
    }
    for task in &data.tasks {
        if let Err(e) = known_task(data, task) {
            let swept = at.swept("data.tasks");
            return Err(at.err(
                "data.tasks",
                if swept {
                    format!("value {}", e.message)
                } else {
                    e.message
                },
                e.hint.as_deref().unwrap_or(""),
            ));
        }
    }
    Ok(())
}

/// A task `tasks` may list: a built-in one or one of `[data.custom]`; an unknown name's
/// error suggests the nearest of both.
fn known_task(data: &DataSection, task: &str) -> Result<(), InputError> {
    if data.custom.contains_key(task) {
        return Ok(());
    }
    if registry::task(task).is_ok() {
        return Ok(());
    }
    let names: Vec<&str> = registry::tasks()
        .into_iter()
        .map(|t| t.name)
        .chain(data.custom.keys().map(String::as_str))
        .collect();
    let mut err = registry::unknown("task", task, &names);
    err.hint = err.hint.map(|h| {
        format!(
            "{h}; a task of your own is defined in a [data.custom.<name>] table (docs/data.md §7)"
        )
    });
    Err(err)
}

/// `data.source` against `data.dir` and `[data.hub]`: (key, message, hint) of the first
/// inconsistency.
fn check_data_source(data: &DataSection) -> Result<(), (String, String, String)> {
    let fail = |key: &str, msg: &str, hint: &str| Err((key.into(), msg.into(), hint.into()));
    match data.source {
        DataSourceKind::Dir if data.dir.is_none() && data.lists_builtin() => {
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
    for (task, spec) in &data.custom {
        let key = format!("data.custom.{task}");
        if let Err(msg) = custom_task::check_task_name(task) {
            return fail(&key, &msg, "rename the table, e.g. [data.custom.reviews]");
        }
        if registry::task(task).is_ok() {
            return fail(
                &key,
                &format!("`{task}` is a built-in task"),
                "give your own task another name, e.g. [data.custom.my_rte]",
            );
        }
        spec.check()
            .map_err(|(k, m, h)| (format!("{key}.{k}"), m, h))?;
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

pub(super) fn plan_finetune(recipe: &Recipe) -> Result<Vec<RunSpec>, InputError> {
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
        known_task(&data, task).map_err(|e| {
            let mut located = recipe.error("data.tasks", e.message);
            located.hint = e.hint;
            located
        })?;
    }
    // Methods: name + parameters validated by the plugin's declared schema; a table may
    // stack further methods on its own (`stack = [{ name = "llrd", xi = 0.9 }]`).
    let stacks = b
        .methods
        .iter()
        .enumerate()
        .map(|(i, table)| resolve_stack(recipe, i, table))
        .collect::<Result<Vec<_>, _>>()?;
    let own_train = b
        .methods
        .iter()
        .enumerate()
        .map(|(i, table)| train_overrides(recipe, i, table))
        .collect::<Result<Vec<_>, _>>()?;
    let cells = sweep_cells(recipe, &stacks)?;
    let given_train = given_train_keys(recipe);
    let mut train = train;
    if let Some(design) = recipe.sequential() {
        check_sequential(recipe, design, &stacks, &given_train)?;
        // The universe of a sequential grid: seeds 0..max, run ids as a fixed grid's.
        train.seeds = crate::recipe::Seeds::Count(design.max);
    }
    let mut runs = Vec::new();
    for cell in &cells {
        let (train_c, data_c, model_c, method_overrides) =
            cell_sections(recipe, cell, (&train, &data, &model), &given_train)?;
        // The same checks whether a value is written in its section or swept.
        check_finetune(recipe, cell, &train_c, &data_c, &model_c)?;
        // The swept section keys, as the records show them; each stack adds its own.
        let section_sweep: BTreeMap<String, serde_json::Value> = cell
            .iter()
            .filter(|(key, _)| {
                let head = key.split_once('.').map(|(h, _)| h).unwrap_or("");
                ["train", "data", "model"].contains(&head)
            })
            .map(|(key, v)| (key.clone(), serde_json::to_value(v).unwrap_or_default()))
            .collect();
        for (i, (stack, own)) in stacks.iter().zip(&own_train).enumerate() {
            let mut sweep = section_sweep.clone();
            let stack = with_swept_params(recipe, stack, &method_overrides, &mut sweep)?;
            let train_m = match own {
                Some(own) => method_train(recipe, i, &train_c, own, cell, (&data_c, &model_c))?,
                None => train_c.clone(),
            };
            let cell = Cell {
                recipe,
                model: &model_c,
                data: &data_c,
                train: &train_m,
                sweep: &sweep,
            };
            let shown: BTreeMap<String, serde_json::Value> = own
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or_default()))
                .collect();
            runs.extend(cell.runs(&stack).into_iter().map(|mut spec| {
                spec.method_train = shown.clone();
                spec
            }));
        }
    }
    if let Some(tune) = &b.tune {
        check_tune(recipe, tune, &runs, &own_train)?;
    }
    Ok(runs)
}

/// Whether a search may vary the `[train]` field: any field but the seeds and the mode.
fn tunable(field: &str) -> bool {
    let defaults = toml::Value::try_from(TrainSection::default()).expect("train serialises");
    let shown = defaults.as_table().is_some_and(|t| t.contains_key(field));
    // Fields a default [train] leaves out of its serialisation.
    let optional = [
        "stop_failed",
        "save_best",
        "adam_bias_correction",
        "head_encoder_dropout",
    ];
    (shown || optional.contains(&field)) && !["seeds", "fixed_seeds", "mode"].contains(&field)
}

/// `[tune]`: a `[train]` key no method and no sweep sets, whose every value makes a valid
/// run (checked like the key written in `[train]`).
fn check_tune(
    recipe: &Recipe,
    tune: &crate::tune::TuneTable,
    runs: &[RunSpec],
    own_train: &[Option<toml::Table>],
) -> Result<(), InputError> {
    let field = tune.field();
    if !tune.key.starts_with("train.") || !tunable(field) {
        return Err(recipe
            .error(
                "tune.key",
                format!(
                    "tune.key = \"{}\" is not a [train] key a search can vary",
                    tune.key
                ),
            )
            .hint("e.g. key = \"train.lr\" (any [train] key but seeds, fixed_seeds and mode)"));
    }
    if tune.values.is_empty() {
        return Err(recipe
            .error("tune.values", "tune.values is empty")
            .hint("e.g. values = [1e-5, 2e-5, 5e-5]"));
    }
    crate::limits::SEEDS
        .check("tune.seeds", tune.seeds)
        .map_err(|e| recipe.error("tune.seeds", e.message).hint("e.g. seeds = 3"))?;
    if recipe.body.sweep.contains_key(&tune.key) {
        return Err(recipe
            .error("tune.key", format!("{} is swept and tuned", tune.key))
            .hint("tune it or sweep it, not both"));
    }
    if let Some(i) = own_train
        .iter()
        .position(|own| own.as_ref().is_some_and(|t| t.contains_key(field)))
    {
        return Err(recipe
            .error(
                "tune.key",
                format!(
                    "{} is tuned, and methods[{i}] sets it with its own train = {{ … }}",
                    tune.key
                ),
            )
            .hint("drop the method's own value: the search chooses one per method"));
    }
    let Some(first) = runs.first() else {
        return Ok(());
    };
    for v in &tune.values {
        let value = serde_json::to_value(v).unwrap_or_default();
        let bad = |msg: String| {
            recipe
                .error(
                    "tune.values",
                    format!("tune.values: {} = {v} {msg}", tune.key),
                )
                .hint("every value must be one [train] would take")
        };
        let spec = first
            .with_train_value(
                field,
                &value,
                crate::tune::TUNE_SEED_BASE,
                crate::tune::TuneStage::Search,
            )
            .map_err(|e| bad(format!("is not a valid value ({e})")))?;
        let RunJob::Finetune(job) = &spec.job else {
            continue;
        };
        check_finetune(recipe, &[], &job.train, &job.data, &job.model)
            .map_err(|e| bad(format!("is refused: {}", e.message)))?;
    }
    Ok(())
}

/// The sweep's cells: the cartesian product over its keys, each key addressing a section
/// field or a method parameter (`mmr.alpha`) of one of `methods`.
fn sweep_cells(recipe: &Recipe, methods: &[Stack]) -> Result<Vec<SweepCell>, InputError> {
    let mut cells: Vec<SweepCell> = vec![Vec::new()];
    for (key, values) in &recipe.body.sweep {
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
        let names = || methods.iter().flat_map(Stack::names);
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
    Ok(cells)
}

/// The [train] keys the recipe sets itself (a profile fills only the others).
fn given_train_keys(recipe: &Recipe) -> Vec<String> {
    recipe
        .source
        .parse::<toml::Table>()
        .ok()
        .and_then(|t| {
            t.get("train")
                .and_then(|v| v.as_table())
                .map(|t| t.keys().cloned().collect())
        })
        .unwrap_or_default()
}

/// One sweep cell: (key, value) pairs.
type SweepCell = Vec<(String, toml::Value)>;

/// The sections as this cell sets them (swept values written in, the train profile
/// applied), and the cell's method overrides.
fn cell_sections<'c>(
    recipe: &Recipe,
    cell: &'c [(String, toml::Value)],
    (train, data, model): (&TrainSection, &DataSection, &ModelSection),
    given_train: &[String],
) -> Result<
    (
        TrainSection,
        DataSection,
        ModelSection,
        Vec<MethodOverride<'c>>,
    ),
    InputError,
> {
    let mut train_v = toml::Value::try_from(train).expect("train serialises");
    let mut data_v = toml::Value::try_from(data).expect("data serialises");
    let mut model_v = toml::Value::try_from(model).expect("model serialises");
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
    let mut given = given_train.to_vec();
    given.extend(
        cell.iter()
            .filter_map(|(k, _)| k.strip_prefix("train.").map(str::to_string)),
    );
    train_c.apply_profile(&given);
    let data_c: DataSection = data_v.try_into().map_err(|e| sweep_err("data", e))?;
    let model_c: ModelSection = model_v.try_into().map_err(|e| sweep_err("model", e))?;
    Ok((train_c, data_c, model_c, method_overrides))
}

/// The cell's [train] with the `i`-th method's own keys written over it, checked like
/// the section itself and located at `methods[i].train.KEY`.
fn method_train(
    recipe: &Recipe,
    i: usize,
    train: &TrainSection,
    own: &toml::Table,
    cell: &[(String, toml::Value)],
    (data, model): (&DataSection, &ModelSection),
) -> Result<TrainSection, InputError> {
    // At the table's `train = …` line.
    let span = recipe.body.methods[i].span();
    let line = recipe.source.get(span.start..).and_then(|text| {
        let mut offset = 0;
        for (n, l) in text.split_inclusive('\n').enumerate() {
            let t = l.trim_start();
            if n > 0 && t.starts_with('[') {
                break;
            }
            if t.starts_with("train") {
                return Some(span.start + offset);
            }
            offset += l.len();
        }
        None
    });
    let at = |key: &str, message: String| {
        let full = format!("methods[{i}].train.{key}");
        recipe.error_at(line.map_or(span.clone(), |l| l..l), &full, message)
    };
    let mut v = toml::Value::try_from(train).expect("train serialises");
    for (key, value) in own {
        if key == "seeds" || key == "fixed_seeds" {
            return Err(at(key, format!("`{key}` is the grid's, not one method's"))
                .hint("every method runs on the same seeds; set them in [train]"));
        }
        if cell
            .iter()
            .any(|(k, _)| k.strip_prefix("train.") == Some(key))
        {
            return Err(at(
                key,
                format!("train.{key} is swept, and this method sets it too"),
            )
            .hint(
                "sweep it or set it per method, not both (the record would show the swept value)",
            ));
        }
        set_path(&mut v, key, value);
    }
    let train_m: TrainSection = v.try_into().map_err(|e: toml::de::Error| {
        let key = own
            .keys()
            .find(|k| e.message().contains(&format!("`{k}`")))
            .cloned()
            .unwrap_or_default();
        at(&key, format!("not a [train] value: {}", e.message()))
            .hint("methods[i].train takes the keys of [train], e.g. train = { lr = 5e-4 }")
    })?;
    check_finetune(recipe, cell, &train_m, data, model).map_err(|e| {
        let key = e
            .key
            .as_deref()
            .and_then(|k| k.strip_prefix("train."))
            .unwrap_or("");
        let located = at(key, e.message.clone());
        InputError {
            hint: e.hint,
            ..located
        }
    })?;
    Ok(train_m)
}

/// A method override of the sweep: (method, parameter, value).
type MethodOverride<'a> = (&'a str, &'a str, &'a toml::Value);

/// `stack` with this cell's swept method parameters (`mmr.alpha`), each validated by its
/// plugin and recorded in `sweep`.
fn with_swept_params(
    recipe: &Recipe,
    stack: &Stack,
    overrides: &[MethodOverride<'_>],
    sweep: &mut BTreeMap<String, serde_json::Value>,
) -> Result<Stack, InputError> {
    let mut resolved = Vec::new();
    for call in stack.calls() {
        let mut params = call.params.clone();
        for (head, field, v) in overrides.iter().filter(|(h, _, _)| *h == call.name) {
            let entry = registry::method(&call.name).expect("validated");
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
        resolved.push(MethodCall {
            name: call.name.clone(),
            params,
        });
    }
    Ok(Stack(resolved))
}

/// One cell of the sweep: its resolved sections and swept values.
struct Cell<'a> {
    recipe: &'a Recipe,
    model: &'a ModelSection,
    data: &'a DataSection,
    train: &'a TrainSection,
    sweep: &'a BTreeMap<String, serde_json::Value>,
}

impl Cell<'_> {
    /// The cell's runs of one stack: task × seed, in that order.
    fn runs(&self, stack: &Stack) -> Vec<RunSpec> {
        let (method, method_params) = stack.identity();
        let mut runs = Vec::new();
        for task in &self.data.tasks {
            for seed in self.train.seeds.values() {
                let mut data = self.data.clone();
                data.tasks = vec![task.clone()];
                let mut train = self.train.clone();
                train.seeds = crate::recipe::Seeds::List(vec![seed]);
                let spec = RunSpec {
                    run_id: String::new(),
                    recipe: self.recipe.name().to_string(),
                    task: task.clone(),
                    method: method.clone(),
                    method_params: method_params.clone(),
                    seed,
                    sweep: self.sweep.clone(),
                    method_train: BTreeMap::new(),
                    sequential: None,
                    tune: None,
                    job: RunJob::Finetune(FinetuneJob {
                        model: self.model.clone(),
                        data,
                        train,
                    }),
                };
                runs.push(spec.with_id(&format!("{task}-{method}-s{seed}")));
            }
        }
        runs
    }
}
