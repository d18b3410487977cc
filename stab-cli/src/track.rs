//! `--track` on `stab run`, and `stab track DIR --to T`: a results directory's records sent
//! to a tracker again (a grid that ran without tracking, or runs a server missed).

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use stab_track::{Target, Tracker};

use crate::Done;

#[derive(Args)]
pub struct TrackArgs {
    /// The results directory (every runs*.jsonl; each run's latest record).
    dir: PathBuf,
    /// Where to send them (repeatable): `tensorboard`, `tensorboard=PATH` or `mlflow=URL`.
    #[arg(long = "to", value_name = "TRACKER", required = true)]
    to: Vec<String>,
    /// Seconds to wait for a tracking server to take everything before reporting what is
    /// left.
    #[arg(long, default_value_t = 60.0, value_name = "SECONDS")]
    wait: f64,
}

/// `stab track`: every finished run of DIR, in store order. A run an MLflow server
/// already holds as finished is left alone, so sending twice adds nothing.
pub fn run(args: TrackArgs) -> stab_core::Result<Done> {
    let targets = targets(&args.to, "--to")?;
    let wait = wait(args.wait, "--wait")?;
    let contents = stab_core::ResultsStore::read_dir(&args.dir)?;
    let records = contents.latest();
    if records.is_empty() {
        return Err(stab_core::InputError::new(format!(
            "{}: no run records (runs*.jsonl) to send",
            args.dir.display()
        ))
        .hint("give the results directory of a grid that ran (`stab run` prints it)")
        .into());
    }
    let tracker = Tracker::new(targets.iter().map(|t| t.sink(&args.dir)).collect());
    stab_track::replay(&records, &tracker);
    send_report(&args.dir, &records, &tracker)?;
    Ok(if close(tracker, wait) {
        Done::Ok
    } else {
        Done::RunsFailed
    })
}

/// The directory's `stab report` files, if it has them, to each recipe's experiment.
fn send_report(
    dir: &Path,
    records: &[stab_core::RunRecord],
    tracker: &Tracker,
) -> stab_core::Result<()> {
    let mut files = Vec::new();
    for name in ["report.html", "report.md", "report.json"] {
        let path = dir.join(name);
        if path.is_file() {
            let bytes = std::fs::read(&path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            files.push((name.to_string(), bytes));
        }
    }
    if files.is_empty() {
        return Ok(());
    }
    let recipes: std::collections::BTreeSet<&str> =
        records.iter().map(|r| r.recipe.as_str()).collect();
    for recipe in recipes {
        tracker.send(&stab_track::TrackEvent::Report {
            recipe: recipe.to_string(),
            files: files.clone(),
            at_ms: stab_track::event::now_ms(),
        });
    }
    errln!(
        "tracking: the report ({}) goes with the runs",
        files
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// The `--track`/`--to` values, each checked.
pub fn targets(values: &[String], key: &str) -> stab_core::Result<Vec<Target>> {
    Ok(values
        .iter()
        .map(|v| Target::parse(v, key))
        .collect::<Result<_, _>>()?)
}

/// A non-negative number of seconds.
pub fn wait(seconds: f64, key: &str) -> stab_core::Result<Duration> {
    Duration::try_from_secs_f64(seconds).map_err(|_| {
        stab_core::InputError::new(format!("{seconds} is not a number of seconds ≥ 0"))
            .key(key)
            .into()
    })
}

/// The tracker of a grid writing into `out`. The runs of this process's share of the plan
/// (`shard` of `runs`) that the store already holds are sent first, as replays: a tracker
/// that missed some (it was down, or the grid was killed before it delivered them) gets
/// them now, one that has them keeps them as they are. Other shards' runs are theirs to
/// send.
pub fn tracker(
    targets: &[Target],
    out: &Path,
    runs: &[stab_core::RunSpec],
    shard: Option<stab_core::Shard>,
) -> stab_core::Result<Tracker> {
    let tracker = Tracker::new(targets.iter().map(|t| t.sink(out)).collect());
    if !targets.is_empty() {
        let mine: std::collections::HashSet<&str> = match shard {
            Some(s) => stab_core::cost::shard_of(runs, s.index, s.count),
            None => runs.iter().collect(),
        }
        .into_iter()
        .map(|r| r.run_id.as_str())
        .collect();
        let records = stab_core::ResultsStore::read_dir(out)?.latest();
        let ours = records.iter().filter(|r| mine.contains(r.run_id.as_str()));
        stab_track::replay(ours, &tracker);
    }
    Ok(tracker)
}

/// Close the tracker and say what each destination got; `false` when something did not
/// arrive (the runs' records are in the store either way).
pub fn close(tracker: Tracker, wait: Duration) -> bool {
    if tracker.is_empty() {
        return true;
    }
    let mut complete = true;
    for delivery in tracker.close(wait) {
        errln!("tracking: {delivery}");
        complete &= delivery.complete();
    }
    if !complete {
        errln!(
            "tracking: the records are in the store; `stab track DIR --to TRACKER` sends what is missing"
        );
    }
    complete
}
