//! `stab data check` and `stab data fetch`.
//!
//! * `check --task NAME (--data-dir DIR | --hub) [--json]`: read a task from either
//!   source, print the split sizes (train/dev after the fixed 90/10 split, test = official
//!   dev) and the label distribution.
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
    /// Validate a task's files and print counts per split and label.
    Check {
        #[arg(long)]
        task: String,
        /// The official layouts (source = "dir").
        #[arg(long, required_unless_present = "hub", conflicts_with = "hub")]
        data_dir: Option<PathBuf>,
        /// Read the task from the Hugging Face Hub through the cache (source = "hub").
        #[arg(long)]
        hub: bool,
        /// Fraction of train held out as dev (the seeded fallback).
        #[arg(long, default_value_t = 0.1)]
        dev_fraction: f64,
        /// Fixed split files <task>.json (default: <data dir>/splits when it exists; the
        /// author's built-in files with --hub).
        #[arg(long)]
        splits: Option<PathBuf>,
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
            data_dir,
            hub,
            dev_fraction,
            splits,
            json,
        } => check(
            &task,
            data_dir.as_deref(),
            hub,
            dev_fraction,
            splits.as_deref(),
            json,
        ),
        DataCommand::Fetch {
            tasks,
            to,
            overwrite,
        } => fetch(&tasks, to.as_deref(), overwrite),
    }
}

fn check(
    task: &str,
    data_dir: Option<&Path>,
    hub: bool,
    dev_fraction: f64,
    splits: Option<&Path>,
    json: bool,
) -> stab_core::Result<()> {
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
    let resolved = resolve_split(&loaded.data, files.as_ref(), dev_fraction)?;
    let split_text = match &resolved.source {
        SplitSource::File(p) => format!("fixed split file {}", p.display()),
        SplitSource::Author(t) => format!("the author's split file {t}.json (built in)"),
        SplitSource::Seeded { dev_fraction } => format!("seeded split, dev = ⌈{dev_fraction}·n⌉"),
    };
    let source = match origin {
        DataOrigin::Dir(dir) => dir.join(def.dir).display().to_string(),
        DataOrigin::Hub(o) => format!("Hub {}", HubDataset::of(def, o).describe()),
    };
    let s = resolved.splits;
    let labels = |rows: &[stab_data::Example]| -> serde_json::Map<String, serde_json::Value> {
        label_counts(def, rows)
            .into_iter()
            .map(|(l, c)| (l.to_string(), json!(c)))
            .collect()
    };
    if json {
        outln!(
            "{}",
            json!({
                "task": def.name,
                "source": source,
                "splits": {"train": s.train.len(), "dev": s.dev.len(), "test": s.test.len()},
                "labels": {"train": labels(&s.train), "dev": labels(&s.dev), "test": labels(&s.test)},
                "metric": def.metric,
                "split": {"source": split_text, "hash": resolved.hash},
                "data": format!("{:016x}", loaded.fingerprint),
            })
        );
    } else {
        outln!(
            "{}: {source} ({:?} head, metric {})",
            def.name,
            def.head,
            def.metric
        );
        outln!("  split: {split_text} ({})", resolved.hash);
        for (name, rows) in [("train", &s.train), ("dev", &s.dev), ("test", &s.test)] {
            let dist: Vec<String> = label_counts(def, rows)
                .into_iter()
                .map(|(l, c)| format!("{l}: {c}"))
                .collect();
            outln!("  {name:<5} {:>6} rows   {}", rows.len(), dist.join(", "));
        }
    }
    Ok(())
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
