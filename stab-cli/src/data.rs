//! `stab data check --task NAME --data-dir DIR [--json]`: validate a task's files and print
//! the split sizes (train/dev after the fixed 90/10 split, test = official dev) and the
//! label distribution.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;
use stab_data::tasks::label_counts;
use stab_data::{SplitSource, resolve_split, task_def};

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
        #[arg(long)]
        data_dir: PathBuf,
        /// Fraction of train held out as dev (the seeded fallback).
        #[arg(long, default_value_t = 0.1)]
        dev_fraction: f64,
        /// Fixed split files <task>.json (default: <data dir>/splits when it exists).
        #[arg(long)]
        splits: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

pub fn data(args: DataArgs) -> anyhow::Result<()> {
    let DataCommand::Check {
        task,
        data_dir,
        dev_fraction,
        splits,
        json,
    } = args.command;
    if !(dev_fraction > 0.0 && dev_fraction < 1.0) {
        return Err(stab_core::InputError::new(format!(
            "--dev-fraction {dev_fraction} is out of range"
        ))
        .key("--dev-fraction")
        .hint("a fraction in (0, 1), e.g. 0.1")
        .into());
    }
    let def = task_def(&task)?;
    let loaded = def.load(&data_dir)?;
    let splits_dir = stab_data::splits_dir(&data_dir, splits.as_deref(), "--splits")?;
    let resolved = resolve_split(&loaded, splits_dir.as_deref(), dev_fraction)?;
    let split_text = match &resolved.source {
        SplitSource::File(p) => format!("fixed split file {}", p.display()),
        SplitSource::Seeded { dev_fraction } => format!("seeded split, dev = ⌈{dev_fraction}·n⌉"),
    };
    let s = resolved.splits;
    let labels = |rows: &[stab_data::Example]| -> serde_json::Map<String, serde_json::Value> {
        label_counts(def, rows)
            .into_iter()
            .map(|(l, c)| (l.to_string(), json!(c)))
            .collect()
    };
    if json {
        println!(
            "{}",
            json!({
                "task": def.name,
                "splits": {"train": s.train.len(), "dev": s.dev.len(), "test": s.test.len()},
                "labels": {"train": labels(&s.train), "dev": labels(&s.dev), "test": labels(&s.test)},
                "metric": def.metric,
                "split": {"source": split_text, "hash": resolved.hash},
            })
        );
    } else {
        println!(
            "{}: {} ({:?} head, metric {})",
            def.name,
            data_dir.join(def.dir).display(),
            def.head,
            def.metric
        );
        println!("  split: {split_text} ({})", resolved.hash);
        for (name, rows) in [("train", &s.train), ("dev", &s.dev), ("test", &s.test)] {
            let dist: Vec<String> = label_counts(def, rows)
                .into_iter()
                .map(|(l, c)| format!("{l}: {c}"))
                .collect();
            println!("  {name:<5} {:>6} rows   {}", rows.len(), dist.join(", "));
        }
    }
    Ok(())
}
