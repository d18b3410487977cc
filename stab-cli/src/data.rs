//! `stab data check` and `stab data fetch`.
//!
//! * `check --task NAME (--data-dir DIR | --hub) [--json]`: read a task from either
//!   source, print the split sizes (train/dev after the fixed 90/10 split, test = official
//!   dev) and the label distribution; `check --recipe R [--task NAME]`: the same for the
//!   tasks of a recipe as its runs read them, its own `[data.custom]` tasks included.
//! * `fetch --tasks T,… [--to DIR]`: put the tasks' Hub parquet files in the Hugging Face
//!   cache (for machines without a network, which then run with `source = "hub"` and
//!   `HF_HUB_OFFLINE=1`), and with `--to` also write the official layout and the author's
//!   split files into DIR (for `source = "dir"`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::json;
use stab_core::{DataOrigin, InputError};
use stab_data::tasks::label_counts;
use stab_data::{DatasetCache, HubDataset, SplitSource, resolve_split, task_def};

#[derive(Args)]
pub struct DataArgs {
    #[command(subcommand)]
    command: DataCommand,
}

#[derive(Subcommand)]
enum DataCommand {
    /// Validate a task's files and print counts per split and label: a built-in task from
    /// --data-dir or --hub, or the tasks of a recipe (its own tasks included) as its runs
    /// read them.
    Check {
        /// A built-in task; with --recipe, one of the recipe's tasks (default: all of them).
        #[arg(long, required_unless_present = "recipe")]
        task: Option<String>,
        /// Check the tasks of this recipe, `[data.custom]` tasks included.
        #[arg(long, conflicts_with_all = ["data_dir", "hub", "splits", "dev_fraction"])]
        recipe: Option<PathBuf>,
        /// The official layouts (source = "dir").
        #[arg(long, required_unless_present_any = ["hub", "recipe"], conflicts_with = "hub")]
        data_dir: Option<PathBuf>,
        /// Read the task from the Hugging Face Hub through the cache (source = "hub").
        #[arg(long)]
        hub: bool,
        /// Fraction of train held out as dev (the seeded fallback; --recipe uses the
        /// recipe's data.dev_fraction).
        #[arg(long, default_value_t = 0.1)]
        dev_fraction: f64,
        /// Fixed split files <task>.json (default: <data dir>/splits when it exists; the
        /// author's built-in files with --hub).
        #[arg(long)]
        splits: Option<PathBuf>,
        /// One JSON object per task, a line each.
        #[arg(long)]
        json: bool,
    },
    /// Download tasks from the Hugging Face Hub into its cache (and the official layout).
    Fetch {
        /// Comma-separated task names (`stab list tasks`).
        #[arg(long, value_delimiter = ',', required = true)]
        tasks: Vec<String>,
        /// Also write glue/<TASK>/…, superglue/<Task>/… and splits/ into DIR.
        #[arg(long)]
        to: Option<PathBuf>,
        /// Replace files under --to that differ from what the Hub holds (without it, a
        /// differing file is refused before anything is written).
        #[arg(long)]
        overwrite: bool,
    },
}

pub fn data(args: DataArgs) -> stab_core::Result<()> {
    match args.command {
        DataCommand::Check {
            task,
            recipe,
            data_dir,
            hub,
            dev_fraction,
            splits,
            json,
        } => {
            let checks = match (&recipe, &task) {
                (Some(r), _) => recipe_checks(r, task.as_deref())?,
                (None, Some(t)) => vec![flag_check(
                    t,
                    data_dir.as_deref(),
                    hub,
                    dev_fraction,
                    splits.as_deref(),
                )?],
                (None, None) => unreachable!("clap requires --task without --recipe"),
            };
            for c in &checks {
                print_check(c, json);
            }
            Ok(())
        }
        DataCommand::Fetch {
            tasks,
            to,
            overwrite,
        } => fetch(&tasks, to.as_deref(), overwrite),
    }
}

/// One task as a run would read it, and where it came from.
pub(crate) struct TaskCheck {
    pub(crate) loaded: stab_data::LoadedTask,
    pub(crate) split: stab_data::ResolvedSplit,
    /// The files or the Hub dataset, in words.
    source: String,
}

/// A built-in task from the flags' source.
fn flag_check(
    task: &str,
    data_dir: Option<&Path>,
    hub: bool,
    dev_fraction: f64,
    splits: Option<&Path>,
) -> stab_core::Result<TaskCheck> {
    if !(dev_fraction > 0.0 && dev_fraction < 1.0) {
        return Err(
            InputError::new(format!("--dev-fraction {dev_fraction} is out of range"))
                .key("--dev-fraction")
                .hint("a fraction in (0, 1), e.g. 0.1")
                .into(),
        );
    }
    let def = task_def(task)?;
    let no_overrides = BTreeMap::new();
    let origin = match (hub, data_dir) {
        (false, Some(dir)) => DataOrigin::Dir(dir),
        _ => DataOrigin::Hub(&no_overrides),
    };
    let loaded = stab_data::load_task(def, origin, &DatasetCache::from_env())?;
    let files = stab_data::split_files(origin, splits, "--splits")?;
    let split = resolve_split(&loaded.data, files.as_ref(), dev_fraction)?;
    Ok(TaskCheck {
        loaded,
        split,
        source: builtin_source(def, origin),
    })
}

fn builtin_source(def: &'static stab_data::TaskDef, origin: DataOrigin<'_>) -> String {
    match origin {
        DataOrigin::Dir(dir) => dir.join(def.dir).display().to_string(),
        DataOrigin::Hub(o) => format!("Hub {}", HubDataset::of(def, o).describe()),
    }
}

/// The tasks of a recipe (or the one `task` names), each as its first run reads it.
pub(crate) fn recipe_checks(
    recipe: &Path,
    task: Option<&str>,
) -> stab_core::Result<Vec<TaskCheck>> {
    let (_, plan) = crate::load_plan(recipe, &[])?;
    let mut jobs: Vec<(&str, &stab_core::FinetuneJob)> = Vec::new();
    for spec in &plan.runs {
        if let stab_core::RunJob::Finetune(job) = &spec.job
            && !jobs.iter().any(|(t, _)| *t == spec.task)
        {
            jobs.push((&spec.task, job));
        }
    }
    if jobs.is_empty() {
        return Err(InputError::new("the recipe fine-tunes on no task")
            .file(recipe.display().to_string())
            .hint("`stab data check --recipe` reads the tasks of a fine-tuning recipe")
            .into());
    }
    if let Some(t) = task
        && !jobs.iter().any(|(name, _)| *name == t)
    {
        let names: Vec<&str> = jobs.iter().map(|(n, _)| *n).collect();
        return Err(InputError::new(format!(
            "the recipe has no task `{t}`{}",
            stab_core::suggest::did_you_mean(t, names.iter().copied())
        ))
        .key("--task")
        .hint(format!("its tasks: {}", names.join(", ")))
        .into());
    }
    let cache = DatasetCache::from_env();
    jobs.into_iter()
        .filter(|(name, _)| task.is_none_or(|t| t == *name))
        .map(|(name, job)| {
            let data = &job.data;
            let loaded = stab_data::load_recipe_task(name, data, &cache)?;
            let files =
                stab_data::split_files(data.origin(), data.splits.as_deref(), "data.splits")?;
            let split = resolve_split(&loaded.data, files.as_ref(), data.dev_fraction)?;
            let source = match (data.custom_task(name), loaded.data.task.builtin()) {
                (Some(spec), _) => custom_source(spec),
                (None, Some(def)) => builtin_source(def, data.origin()),
                (None, None) => unreachable!("a task not in [data.custom] is built in"),
            };
            Ok(TaskCheck {
                loaded,
                split,
                source,
            })
        })
        .collect()
}

/// A custom task's files, in words.
fn custom_source(spec: &stab_core::CustomTaskSpec) -> String {
    use stab_core::recipe::custom_task::TestRows;
    let mut parts: Vec<String> = spec
        .files()
        .into_iter()
        .map(|(k, p)| format!("{k} {}", p.display()))
        .collect();
    if let TestRows::Held { fraction } = spec.test_rows() {
        parts.push(format!("test = {fraction} of train, held out"));
    }
    parts.join(", ")
}

fn print_check(c: &TaskCheck, json: bool) {
    let task = &c.loaded.data.task;
    let split_text = match &c.split.source {
        SplitSource::File(p) => format!("fixed split file {}", p.display()),
        SplitSource::Author(t) => format!("the author's split file {t}.json (built in)"),
        SplitSource::Seeded { dev_fraction } => format!("seeded split, dev = ⌈{dev_fraction}·n⌉"),
        SplitSource::DevFile => "the task's dev file".to_string(),
    };
    let s = &c.split.splits;
    let labels = |rows: &[stab_data::Example]| -> serde_json::Map<String, serde_json::Value> {
        label_counts(task, rows)
            .into_iter()
            .map(|(l, c)| (l.to_string(), json!(c)))
            .collect()
    };
    if json {
        outln!(
            "{}",
            json!({
                "task": task.name(),
                "source": c.source,
                "splits": {"train": s.train.len(), "dev": s.dev.len(), "test": s.test.len()},
                "labels": {"train": labels(&s.train), "dev": labels(&s.dev), "test": labels(&s.test)},
                "metric": task.metric(),
                "split": {"source": split_text, "hash": c.split.hash},
                "data": format!("{:016x}", c.loaded.fingerprint),
            })
        );
        return;
    }
    outln!(
        "{}: {} ({:?} head, metric {})",
        task.name(),
        c.source,
        task.head(),
        task.metric()
    );
    outln!("  split: {split_text} ({})", c.split.hash);
    for (name, rows) in [("train", &s.train), ("dev", &s.dev), ("test", &s.test)] {
        let dist: Vec<String> = label_counts(task, rows)
            .into_iter()
            .map(|(l, c)| format!("{l}: {c}"))
            .collect();
        outln!("  {name:<5} {:>6} rows   {}", rows.len(), dist.join(", "));
    }
}

fn fetch(tasks: &[String], to: Option<&Path>, overwrite: bool) -> stab_core::Result<()> {
    let defs = tasks
        .iter()
        .map(|t| {
            task_def(t.trim()).map_err(|e| InputError {
                key: Some("--tasks".into()),
                ..e
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let cache = DatasetCache::from_env().for_fetch();
    let no_overrides = BTreeMap::new();
    let mut fetched = Vec::new();
    for def in defs {
        let ds = HubDataset::of(def, &no_overrides);
        let task = stab_data::hub::load(def, &ds, &cache)?;
        outln!(
            "{}: {} — {} train, {} test rows ({} parquet files in {})",
            def.name,
            ds.describe(),
            task.data.train.len(),
            task.data.test.len(),
            task.files.len(),
            cache.root().display()
        );
        fetched.push((def, task));
    }
    if let Some(dir) = to {
        let files: Vec<(PathBuf, Vec<u8>)> = fetched
            .iter()
            .flat_map(|(def, task)| official_files(dir, def, task))
            .collect();
        for (path, bytes) in &files {
            stab_core::atomic::check_replace(path, Some(bytes), "--to", overwrite)?;
        }
        for (path, bytes) in &files {
            write(path, bytes)?;
            outln!("  wrote {}", path.display());
        }
        outln!(
            "use it with [data] source = \"dir\", dir = \"{}\" (or stab data check --task T --data-dir {})",
            dir.display(),
            dir.display()
        );
    }
    Ok(())
}

/// A task's official files and its author split file (when it has one) under `dir`, with
/// their contents.
fn official_files(
    dir: &Path,
    def: &stab_data::TaskDef,
    task: &stab_data::HubTask,
) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for (file, text) in [
        (def.files.0, &task.train_text),
        (def.files.1, &task.test_text),
    ] {
        files.push((def.path(dir, file), text.text.as_bytes().to_vec()));
    }
    if let Some(split) = stab_data::author_split(def.name) {
        let path = dir.join("splits").join(format!("{}.json", def.name));
        // The author split indexes the full train file: a partial dataset (a mirror's
        // slice) would get a split file that does not fit it.
        match stab_data::split::fixed_split_text(&task.data, split, &path.display().to_string()) {
            Ok(_) => files.push((path, split.as_bytes().to_vec())),
            Err(e) => tracing::warn!(
                "{}: the author's split does not fit the fetched train split ({}); no split file written, so runs on this directory use the seeded dev split",
                def.name,
                e.message
            ),
        }
    }
    files
}

fn write(path: &Path, bytes: &[u8]) -> stab_core::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| stab_core::atomic::io_error("create", parent, e))?;
    }
    stab_core::atomic::write_file(path, bytes)
}
