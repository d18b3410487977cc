//! `stab run RECIPE [--out DIR] [--shard I/N] [--device cpu|wgpu[:N]|cuda:N] [--threads N] [--jobs K] [--fresh] [--track T]`

use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::Context as _;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use stab_core::{RecipeKind, RunSpec, Shard};
use stab_grid::{Executor, GridEvent, GridRunner, RunProgress, Skip, SyntheticExecutor};

use crate::Done;

#[derive(Args)]
pub struct RunArgs {
    /// The recipe (TOML).
    recipe: PathBuf,
    /// Results directory (default: the recipe's `out`, else runs/<name>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run only shard I of N (0-based), into runs.shard-I-of-N.jsonl.
    #[arg(long)]
    shard: Option<String>,
    /// cpu; wgpu or wgpu:N (`stab list devices`) in builds with the `wgpu` feature; cuda:N
    /// in builds with the `cuda` feature.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Worker threads (default: all cores, or RAYON_NUM_THREADS).
    #[arg(long)]
    threads: Option<usize>,
    /// Fine-tuning runs trained at once; the threads are split evenly between them (each
    /// run's results do not depend on its thread count).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Most seeds of one configuration trained at once as one batch (head tuning on cached
    /// features, methods that batch; records equal the solo runs'). Default: as many as a
    /// quarter of the free memory holds, up to 64; 1 trains every seed alone. The recipe
    /// key `train.seed_batch` caps it too.
    #[arg(long, value_name = "K")]
    seed_batch: Option<usize>,
    /// Run every planned run again, even those already in the store (records are appended;
    /// reports use the latest record of a run).
    #[arg(long)]
    fresh: bool,
    /// Override a recipe value, e.g. --set model.path=models/minilm --set train.lr=3e-5
    /// (repeatable; validated like the file).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Send each run's curves, settings and results to a tracker as the grid runs
    /// (repeatable): `tensorboard` (event files in DIR/tensorboard), `tensorboard=PATH`, or
    /// `mlflow=URL` (an MLflow tracking server). Tracking never changes a run; a tracker
    /// that is down never stops the grid (docs/tracking.md).
    #[arg(long = "track", value_name = "TRACKER")]
    track: Vec<String>,
    /// Seconds the grid waits at its end for a tracking server to take what is still
    /// queued; what is left is reported (`stab track` sends it later from the store).
    #[arg(long, default_value_t = 15.0, value_name = "SECONDS")]
    track_wait: f64,
}

pub fn run(args: RunArgs) -> stab_core::Result<Done> {
    let (recipe, plan) = crate::load_plan(&args.recipe, &args.sets)?;
    let targets = crate::track::targets(&args.track, "--track")?;
    let wait = crate::track::wait(args.track_wait, "--track-wait")?;
    let shard: Option<Shard> = args.shard.as_deref().map(str::parse).transpose()?;
    let device = crate::device::parse(&args.device)?;
    if recipe.kind() != RecipeKind::Finetune && !stab_models::is_host(&device.device) {
        return Err(stab_core::InputError::new(format!(
            "device `{}`: the synthetic studies run on the host CPU (their solvers are host code)",
            device.name
        ))
        .key("--device")
        .hint("drop --device (or use --device cpu) for a synthetic recipe")
        .into());
    }
    use stab_core::limits;
    if let Some(n) = args.threads {
        limits::THREADS.check_usize("--threads", n)?;
    }
    limits::JOBS.check_usize("--jobs", args.jobs)?;
    if let Some(k) = args.seed_batch {
        limits::SEED_BATCH.check_usize("--seed-batch", k)?;
    }
    if let Some(n) = args.threads.filter(|&n| n < args.jobs) {
        return Err(stab_core::InputError::new(format!(
            "--jobs {} needs at least {} threads, but --threads is {n}",
            args.jobs, args.jobs
        ))
        .key("--jobs")
        .hint(format!(
            "each job runs on threads/jobs threads: use --threads {} or more, or --jobs {n} or fewer",
            args.jobs
        ))
        .into());
    }
    if let Some(n) = args.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build_global()
            .context("cannot size the thread pool")?;
    }
    let threads = rayon::current_num_threads();
    if args.jobs > threads && recipe.kind() == RecipeKind::Finetune {
        tracing::warn!(
            "--jobs {} on {threads} threads: each job gets 1 thread and the machine is oversubscribed",
            args.jobs
        );
    }
    let out = args.out.unwrap_or_else(|| recipe.out_dir());
    let engine;
    let executor: &dyn Executor = if recipe.kind() == RecipeKind::Finetune {
        engine =
            stab_train::Engine::new(device.device.clone(), &out).with_device_name(&device.name);
        &engine
    } else {
        &SyntheticExecutor
    };
    let runner = GridRunner::new(executor, &out)
        .shard(shard)
        .jobs(args.jobs)
        .seed_batch(seed_batch_cap(args.seed_batch, &plan))
        .fresh(args.fresh);
    let bar = Bar::new(recipe.kind());
    let tracker = crate::track::tracker(&targets, &out, &plan.runs, shard)?;
    let ran = grid(&runner, &recipe, &plan, shard, &bar, &tracker, &out);
    crate::track::close(tracker, wait);
    ran
}

/// The smaller of `--seed-batch` and the recipe's `train.seed_batch`; `None`: neither.
fn seed_batch_cap(flag: Option<usize>, plan: &stab_core::Plan) -> Option<usize> {
    let recipe = plan.runs.iter().find_map(|r| match &r.job {
        stab_core::RunJob::Finetune(j) => j.train.seed_batch,
        stab_core::RunJob::Synthetic(_) => None,
    });
    match (flag, recipe) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The grid itself: the `[tune]` search if any, then the plain or sequential grid.
fn grid(
    runner: &GridRunner<'_>,
    recipe: &stab_core::Recipe,
    plan: &stab_core::Plan,
    shard: Option<Shard>,
    bar: &Bar,
    tracker: &stab_track::Tracker,
    out: &std::path::Path,
) -> stab_core::Result<Done> {
    let mut runs = plan.runs.clone();
    let mut search_failed = 0;
    if let Some(tune) = &recipe.body.tune {
        let (tuned, failed) = search(runner, tune, &plan.runs, shard, bar, tracker, out)?;
        search_failed = failed;
        match tuned {
            Some(tuned) => runs = tuned,
            // Another shard's search runs are still to come: not a failure of this task.
            None if failed == 0 && shard.is_some() => return Ok(Done::Ok),
            None => return Ok(Done::RunsFailed),
        }
    }
    let mine: Vec<&RunSpec> = match shard {
        Some(s) => stab_core::cost::shard_of(&runs, s.index, s.count),
        None => runs.iter().collect(),
    };
    let planned = format!(
        "{}: {} runs planned{}",
        recipe.name(),
        runs.len(),
        shard.map_or(String::new(), |s| format!(", {} in shard {s}", mine.len())),
    );
    let summary = match recipe.sequential() {
        Some(design) => {
            let all: Vec<&RunSpec> = runs.iter().collect();
            let planned = format!(
                "{}: sequential, at most {} runs ({} seeds per arm in rounds of {} after the first {}){}",
                recipe.name(),
                runs.len(),
                design.max,
                design.step,
                design.min,
                shard.map_or(String::new(), |s| format!(", one round's shard {s}")),
            );
            let ran = runner.run_sequential(&all, design, &watch(bar, tracker, &planned, out));
            bar.bar.finish_and_clear();
            let (summary, states) = ran?;
            show_decisions(&states, design, shard.is_some());
            summary
        }
        None => {
            let ran = runner.run(&mine, &watch(bar, tracker, &planned, out));
            bar.bar.finish_and_clear();
            ran?
        }
    };
    Ok(if summary.failed + search_failed > 0 {
        Done::RunsFailed
    } else {
        Done::Ok
    })
}

/// Where a grid's events go: the trackers, then the progress bar and its lines.
fn watch<'a>(
    bar: &'a Bar,
    tracker: &'a stab_track::Tracker,
    planned: &'a str,
    out: &'a std::path::Path,
) -> impl Fn(GridEvent<'_>) + Sync + 'a {
    move |event| {
        tracker.observe(&event);
        bar.show(event, planned, out)
    }
}

/// `[tune]`: run the search (this shard's share of it), then read every arm's choice from
/// the store: the study's runs at the chosen values (`None` while a search run is missing:
/// failed here, or another shard's still to run), and the search runs that failed here.
fn search(
    runner: &GridRunner<'_>,
    tune: &stab_core::tune::TuneTable,
    universe: &[RunSpec],
    shard: Option<Shard>,
    bar: &Bar,
    tracker: &stab_track::Tracker,
    out: &std::path::Path,
) -> stab_core::Result<(Option<Vec<RunSpec>>, usize)> {
    let all: Vec<&RunSpec> = universe.iter().collect();
    let search = stab_grid::tune::search_runs(tune, &all)?;
    let mine: Vec<&RunSpec> = match shard {
        Some(s) => stab_core::cost::shard_of(&search, s.index, s.count),
        None => search.iter().collect(),
    };
    let planned = format!(
        "[tune] search of {} over {} values, {} seeds per value and arm: {} runs{}",
        tune.key,
        tune.values.len(),
        tune.seeds,
        search.len(),
        shard.map_or(String::new(), |s| format!(", {} in shard {s}", mine.len())),
    );
    let ran = runner.run(&mine, &watch(bar, tracker, &planned, out));
    bar.bar.finish_and_clear();
    let summary = ran?;
    let records = stab_core::ResultsStore::read_dir(out)?.latest();
    let choices = stab_grid::tune::choices(tune, &all, &records)?;
    for c in &choices {
        let values: Vec<String> = c
            .values
            .iter()
            .map(|(v, scores)| {
                let done: Vec<f64> = scores.iter().flatten().copied().collect();
                let mean = done.iter().sum::<f64>() / done.len().max(1) as f64;
                format!(
                    "{v}: dev {:.4} ({} of {} runs)",
                    mean,
                    done.len(),
                    scores.len()
                )
            })
            .collect();
        let chosen = c
            .chosen
            .as_ref()
            .map_or("not yet".to_string(), |v| v.to_string());
        errln!(
            "tune {} {}: {} → {} = {chosen}",
            c.task,
            c.arm,
            values.join(", "),
            tune.key
        );
    }
    if choices.iter().any(|c| c.chosen.is_none()) {
        errln!(
            "the [tune] search is not complete{}: run again to go on to the study",
            if shard.is_some() {
                " (other shards' search runs, or a failed one)"
            } else {
                " (a search run failed, see above)"
            }
        );
        return Ok((None, summary.failed));
    }
    let tuned = stab_grid::tune::tuned_runs(tune, &all, &choices)?;
    Ok((Some(tuned), summary.failed))
}

/// Each arm's decisions after the rounds run, and what is left to run.
fn show_decisions(
    states: &[stab_grid::ArmState],
    design: &stab_core::sequential::SequentialDesign,
    sharded: bool,
) {
    let mut open = 0;
    for s in states {
        let decisions: Vec<String> = s
            .outcomes
            .iter()
            .map(|o| {
                format!(
                    "{} {} after {} seeds ({} rounds)",
                    o.question,
                    o.decision.name(),
                    o.n,
                    o.rounds
                )
            })
            .collect();
        if s.outcomes.iter().any(|o| o.next_n.is_some()) {
            open += 1;
        }
        errln!(
            "{} {} vs {}: {}",
            s.task,
            s.label,
            design.baseline,
            decisions.join("; ")
        );
    }
    if open > 0 {
        let why = if sharded {
            "run the next round's array"
        } else {
            "a run failed (see above); run again to retry it and go on"
        };
        errln!("{open} arm(s) still need seeds: {why}");
    } else {
        errln!("every arm is decided or at seeds.max = {}", design.max);
    }
}

/// The progress bar and the lines printed as a grid runs: datasets for a synthetic grid,
/// updates of the run in flight for one fine-tuning job, finished runs for several.
struct Bar {
    bar: ProgressBar,
    kind: RecipeKind,
    workers: Mutex<usize>,
    /// Runs the grid will execute (for "run k/N").
    pending: Mutex<usize>,
    last_dev: Mutex<f64>,
    head: Mutex<String>,
}

impl Bar {
    fn new(kind: RecipeKind) -> Self {
        Self {
            bar: ProgressBar::new(0),
            kind,
            workers: Mutex::new(1),
            pending: Mutex::new(0),
            last_dev: Mutex::new(f64::NAN),
            head: Mutex::new(String::new()),
        }
    }

    fn style(&self, template: &str) {
        self.bar
            .set_style(ProgressStyle::with_template(template).expect("valid template"));
    }

    fn show(&self, event: GridEvent<'_>, planned: &str, out: &std::path::Path) {
        let bar = &self.bar;
        let workers = *self.workers.lock().expect("workers");
        match event {
            GridEvent::Started {
                pending,
                in_store,
                workers,
                threads_per_worker,
                ..
            } => {
                *self.workers.lock().expect("workers") = workers;
                *self.pending.lock().expect("pending") = pending.len();
                let threads = rayon::current_num_threads();
                tracing::info!(
                    "{planned}, {in_store} already in the store, {} to run, {threads} threads, results in {}",
                    pending.len(),
                    out.display()
                );
                if self.kind == RecipeKind::Synthetic {
                    self.style("{spinner} [{elapsed_precise}] {bar:32} {pos}/{len} datasets ({eta} left) {msg}");
                    bar.set_length(pending.iter().map(|r| datasets(r)).sum());
                } else if workers > 1 && pending.is_empty() {
                    // A sequential grid: rounds are decided as it goes.
                    self.style("{spinner} [{elapsed_precise}] {pos} runs {msg}");
                    bar.set_message(format!("{workers} jobs × {threads_per_worker} threads"));
                } else if workers > 1 {
                    self.style("{spinner} [{elapsed_precise}] {bar:28} {pos}/{len} runs ({eta} left) {msg}");
                    bar.set_length(pending.len() as u64);
                    bar.set_message(format!("{workers} jobs × {threads_per_worker} threads"));
                } else {
                    self.style("{spinner} [{elapsed_precise}] {bar:28} {pos}/{len} steps {msg}");
                }
            }
            GridEvent::RunStarted { spec, index } if workers == 1 => {
                let pending = *self.pending.lock().expect("pending");
                // A sequential grid does not know its run count in advance.
                let of = if pending > 0 {
                    format!("/{pending}")
                } else {
                    String::new()
                };
                let head = format!("run {}{of}: {}", index + 1, spec.run_id);
                bar.set_message(head.clone());
                *self.head.lock().expect("head") = head;
            }
            GridEvent::RunStarted { .. } => {}
            GridEvent::Progress { progress, .. } if workers == 1 => self.progress(progress),
            GridEvent::Progress { .. } => {}
            GridEvent::RunFinished { summary, .. } => {
                bar.suspend(|| errln!("{summary}"));
                if workers > 1 {
                    bar.inc(1);
                }
            }
            GridEvent::RunFailed { spec, error } => {
                bar.suspend(|| errln!("FAILED {}: {error:#}", spec.run_id));
                if workers > 1 {
                    bar.inc(1);
                }
            }
            GridEvent::RunSkipped { spec, why } => {
                match why {
                    Skip::RunningElsewhere => {
                        tracing::info!("{} is running in another process; skipped", spec.run_id)
                    }
                    Skip::FinishedElsewhere => {
                        tracing::info!("{} was finished by another process; skipped", spec.run_id)
                    }
                }
                if self.kind == RecipeKind::Synthetic {
                    bar.inc(datasets(spec));
                } else if workers > 1 {
                    bar.inc(1);
                }
            }
            GridEvent::Finished {
                recorded,
                failed,
                skipped,
                store,
            } => {
                bar.finish_and_clear();
                let elsewhere = if skipped > 0 {
                    format!(", {skipped} left to other processes")
                } else {
                    String::new()
                };
                tracing::info!(
                    "{recorded} runs recorded by this process, {failed} failed{elsewhere}; store: {}",
                    store.display()
                );
            }
        }
    }

    fn progress(&self, progress: RunProgress) {
        let bar = &self.bar;
        let head = self.head.lock().expect("head").clone();
        match progress {
            RunProgress::Start { total } => {
                bar.set_length(total);
                bar.set_position(0);
            }
            RunProgress::Step { step, loss } => {
                bar.set_position(step);
                let dev = *self.last_dev.lock().expect("dev");
                bar.set_message(format!("{head} loss {loss:.4} dev {dev:.4}"));
            }
            RunProgress::Eval { dev, .. } => *self.last_dev.lock().expect("dev") = dev,
            RunProgress::Prepare { step, total, loss } => {
                bar.set_length(total);
                bar.set_position(step);
                bar.set_message(format!("{head} preparing the encoder: loss {loss:.4}"));
            }
            RunProgress::Dataset => bar.inc(1),
        }
    }
}

/// Progress units of a synthetic run: its datasets.
fn datasets(spec: &RunSpec) -> u64 {
    spec.synthetic().map_or(1, |s| s.datasets as u64)
}
