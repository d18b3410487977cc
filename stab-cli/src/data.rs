//! `stab data check --task NAME --data-dir DIR [--json]`: validate a task's files and print
//! the split sizes (train/dev after the fixed 90/10 split, test = official dev) and the
//! label distribution.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;
use stab_data::tasks::label_counts;
use stab_data::{dev_split, task_def};

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
        /// Fraction of train held out as dev.
        #[arg(long, default_value_t = 0.1)]
        dev_fraction: f64,
        #[arg(long)]
        json: bool,
    },
}

pub fn data(args: DataArgs) -> anyhow::Result<()> {
    let DataCommand::Check { task, data_dir, dev_fraction, json } = args.command;
    let def = task_def(&task)?;
    let loaded = def.load(&data_dir)?;
    let s = dev_split(&loaded, dev_fraction);
    let labels = |rows: &[stab_data::Example]| -> serde_json::Map<String, serde_json::Value> {
        label_counts(def, rows).into_iter().map(|(l, c)| (l.to_string(), json!(c))).collect()
    };
    if json {
        println!(
            "{}",
            json!({
                "task": def.name,
                "splits": {"train": s.train.len(), "dev": s.dev.len(), "test": s.test.len()},
                "labels": {"train": labels(&s.train), "dev": labels(&s.dev), "test": labels(&s.test)},
                "metric": def.metric,
            })
        );
    } else {
        println!("{}: {} ({:?} head, metric {})", def.name, data_dir.join(def.dir).display(), def.head, def.metric);
        for (name, rows) in [("train", &s.train), ("dev", &s.dev), ("test", &s.test)] {
            let dist: Vec<String> = label_counts(def, rows).into_iter().map(|(l, c)| format!("{l}: {c}")).collect();
            println!("  {name:<5} {:>6} rows   {}", rows.len(), dist.join(", "));
        }
    }
    Ok(())
}
