//! `stab run RECIPE [--out DIR] [--shard I/N] [--device cpu|wgpu[:N]|cuda:N] [--threads N] [--jobs K] [--fresh]`

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use stab_core::store::ResultsStore;
use stab_core::{RecipeKind, RunRecord, RunSpec, Shard};

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
    /// Run every planned run again, even those already in the store (records are appended;
    /// reports use the latest record of a run).
    #[arg(long)]
    fresh: bool,
    /// Override a recipe value, e.g. --set model.path=models/minilm --set train.lr=3e-5
    /// (repeatable; validated like the file).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
}

pub fn run(args: RunArgs) -> anyhow::Result<Done> {
    let (recipe, plan) = crate::load_plan(&args.recipe, &args.sets)?;
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
    let mine: Vec<&RunSpec> = match shard {
        Some(s) => plan.shard(s.index, s.count),
        None => plan.runs.iter().collect(),
    };
    let contents = ResultsStore::read_dir(&out)?;
    if !contents.skipped.is_empty() {
        tracing::warn!(
            "{} store line(s) skipped (torn, not UTF-8 or not a record); their runs count as unfinished. First: {}",
            contents.skipped.len(),
            contents.skipped[0]
        );
    }
    let finished = contents.finished();
    // Fine-tuning: every input checked (one exit-2 error before anything is written),
    // and the finished runs' recorded inputs compared with today's files.
    let engine = (recipe.kind() == RecipeKind::Finetune).then(|| {
        stab_methods::Engine::new(device.device.clone(), &out).with_device_name(&device.name)
    });
    if let Some(engine) = &engine {
        check_inputs(engine, &mine)?;
        if !args.fresh {
            check_resume(engine, &mine, &contents, &out)?;
        }
    }
    let pending: Vec<&RunSpec> = mine
        .iter()
        .copied()
        .filter(|r| args.fresh || !finished.contains(&r.run_id))
        .collect();
    let skipped = mine.len() - pending.len();
    tracing::info!(
        "{}: {} runs planned{}, {} already in the store, {} to run, {threads} threads, results in {}",
        recipe.name(),
        plan.runs.len(),
        shard.map_or(String::new(), |s| format!(", {} in shard {s}", mine.len())),
        skipped,
        pending.len(),
        out.display()
    );
    if pending.is_empty() {
        return Ok(Done::Ok);
    }
    if let Some(engine) = engine {
        if args.jobs > 1 {
            return run_finetune_jobs(
                &engine, &pending, &out, shard, threads, args.jobs, args.fresh,
            );
        }
        return run_finetune(&engine, &pending, &out, shard, threads, args.fresh);
    }
    let mut store = ResultsStore::open(&out, shard)?;
    let total: u64 = pending
        .iter()
        .map(|r| r.synthetic().map_or(1, |s| s.datasets as u64))
        .sum();
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:32} {pos}/{len} datasets ({eta} left) {msg}",
        )
        .expect("valid template"),
    );
    let mut failed = 0;
    for (k, spec) in pending.iter().enumerate() {
        let Some(_claim) = claim(&store, &out, spec, args.fresh)? else {
            bar.inc(spec.synthetic().map_or(1, |s| s.datasets as u64));
            continue;
        };
        bar.set_message(format!("run {}/{}: {}", k + 1, pending.len(), spec.run_id));
        match execute(spec, &mut store, &bar, threads) {
            Ok(record) => bar.suspend(|| {
                eprintln!(
                    "done {} in {:.1}s: Δ̂ = {:.4e}",
                    record.run_id,
                    record.wall_s,
                    record
                        .metrics
                        .get("delta_mean")
                        .copied()
                        .unwrap_or(f64::NAN)
                )
            }),
            Err(e) => {
                failed += 1;
                bar.suspend(|| eprintln!("FAILED {}: {e:#}", spec.run_id));
            }
        }
    }
    bar.finish_and_clear();
    tracing::info!(
        "{} runs recorded, {failed} failed; store: {}",
        pending.len() - failed,
        store.path().display()
    );
    Ok(if failed > 0 {
        Done::RunsFailed
    } else {
        Done::Ok
    })
}

/// Run one synthetic spec; write its artifact, then append its record (the commit point).
fn execute(
    spec: &RunSpec,
    store: &mut ResultsStore,
    bar: &ProgressBar,
    threads: usize,
) -> anyhow::Result<RunRecord> {
    let settings = spec
        .synthetic()
        .context("a synthetic run without settings")?;
    let study = stab_core::registry::study(&settings.factor)?;
    let start = Instant::now();
    let done = AtomicU64::new(0);
    let progress = || {
        done.fetch_add(1, Ordering::Relaxed);
        bar.inc(1);
    };
    let outcome = study.run(settings, &progress)?;
    let wall_s = start.elapsed().as_secs_f64();
    if !outcome.per_dataset.is_empty() {
        let dir = store.artifact_dir(&spec.run_id)?;
        stab_core::atomic::write_file(
            &dir.join("datasets.csv"),
            (outcome.per_dataset.join("\n") + "\n").as_bytes(),
        )?;
    }
    let mut record = RunRecord::for_spec(spec);
    record.metrics = outcome.metrics;
    record.details = outcome.details;
    record.steps = settings.steps;
    record.wall_s = wall_s;
    record.threads = threads;
    store.append(&record)?;
    Ok(record)
}

/// Fine-tuning runs: check every run's inputs first (a bad model, data file or method is
/// one exit-2 error before anything is written), then train them one by one, appending
/// each record as it finishes.
fn run_finetune(
    engine: &stab_methods::Engine,
    pending: &[&RunSpec],
    out: &std::path::Path,
    shard: Option<Shard>,
    threads: usize,
    fresh: bool,
) -> anyhow::Result<Done> {
    let mut store = ResultsStore::open(out, shard)?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:28} {pos}/{len} steps {msg}",
        )
        .expect("valid template"),
    );
    let mut failed = 0;
    for (k, spec) in pending.iter().enumerate() {
        let Some(_claim) = claim(&store, out, spec, fresh)? else {
            continue;
        };
        let head = format!("run {}/{} {}", k + 1, pending.len(), spec.run_id);
        bar.set_message(head.clone());
        let last_dev = std::sync::Mutex::new(f64::NAN);
        let progress = |p: stab_methods::engine::Progress| match p {
            stab_methods::engine::Progress::Start { total } => {
                bar.set_length(total);
                bar.set_position(0);
            }
            stab_methods::engine::Progress::Step { step, loss } => {
                bar.set_position(step);
                let dev = *last_dev.lock().expect("dev");
                bar.set_message(format!("{head} loss {loss:.4} dev {dev:.4}"));
            }
            stab_methods::engine::Progress::Eval { dev, .. } => {
                *last_dev.lock().expect("dev") = dev
            }
            stab_methods::engine::Progress::Prepare { step, total, loss } => {
                bar.set_length(total);
                bar.set_position(step);
                bar.set_message(format!("{head} preparing the encoder: loss {loss:.4}"));
            }
        };
        match engine
            .run(spec, &progress)
            .and_then(|(record, stats)| store.append(&record).map(|_| (record, stats)))
        {
            Ok((record, stats)) => bar.suspend(|| eprintln!("{}", done_line(&record, &stats))),
            Err(e) => {
                failed += 1;
                bar.suspend(|| eprintln!("FAILED {}: {e:#}", spec.run_id));
            }
        }
    }
    bar.finish_and_clear();
    tracing::info!(
        "{} runs recorded, {failed} failed; store: {}, {threads} threads",
        pending.len() - failed,
        store.path().display()
    );
    Ok(if failed > 0 {
        Done::RunsFailed
    } else {
        Done::Ok
    })
}

/// The line printed when a fine-tuning run finishes.
fn done_line(record: &RunRecord, stats: &stab_methods::engine::RunStats) -> String {
    format!(
        "done {} in {:.1}s ({} updates, train loop {:.1}s of which eval {:.1}s{}): test primary = {:.4}, dev best {:.4} at update {}",
        record.run_id,
        record.wall_s,
        stats.updates,
        stats.train_s,
        stats.eval_s,
        if stats.feature_source.is_empty() {
            String::new()
        } else {
            format!(", features {} {:.1}s", stats.feature_source, stats.encode_s)
        },
        record.metrics.get("primary").copied().unwrap_or(f64::NAN),
        record.dev_best.unwrap_or(f64::NAN),
        record.best_step.unwrap_or(0)
    )
}

/// `--jobs K`: K workers, each with its own pool of threads/K threads, take the pending
/// runs in plan order from a shared queue; each record is appended under a lock as its run
/// finishes. The inputs are checked first, as with one job.
fn run_finetune_jobs(
    engine: &stab_methods::Engine,
    pending: &[&RunSpec],
    out: &std::path::Path,
    shard: Option<Shard>,
    threads: usize,
    jobs: usize,
    fresh: bool,
) -> anyhow::Result<Done> {
    let jobs = jobs.min(pending.len()).max(1);
    let per_job = (threads / jobs).max(1);
    let store = std::sync::Mutex::new(ResultsStore::open(out, shard)?);
    let bar = ProgressBar::new(pending.len() as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:28} {pos}/{len} runs ({eta} left) {msg}",
        )
        .expect("valid template"),
    );
    bar.set_message(format!("{jobs} jobs × {per_job} threads"));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicUsize::new(0);
    let worker = || -> anyhow::Result<()> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(per_job)
            .build()
            .context("cannot build a job's thread pool")?;
        loop {
            let k = next.fetch_add(1, Ordering::SeqCst);
            let Some(spec) = pending.get(k) else {
                return Ok(());
            };
            let claimed = {
                let store = store.lock().expect("store");
                claim(&store, out, spec, fresh)?
            };
            let Some(_claim) = claimed else {
                bar.inc(1);
                continue;
            };
            let result = pool
                .install(|| engine.run(spec, &|_| {}))
                .and_then(|(record, stats)| {
                    store.lock().expect("store").append(&record)?;
                    Ok((record, stats))
                });
            match result {
                Ok((record, stats)) => bar.suspend(|| eprintln!("{}", done_line(&record, &stats))),
                Err(e) => {
                    failed.fetch_add(1, Ordering::SeqCst);
                    bar.suspend(|| eprintln!("FAILED {}: {e:#}", spec.run_id));
                }
            }
            bar.inc(1);
        }
    };
    let outcomes: Vec<anyhow::Result<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..jobs).map(|_| s.spawn(worker)).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    bar.finish_and_clear();
    for o in outcomes {
        o?;
    }
    let failed = failed.into_inner();
    tracing::info!(
        "{} runs recorded, {failed} failed; store: {}, {jobs} jobs × {per_job} threads",
        pending.len() - failed,
        store.into_inner().expect("store").path().display()
    );
    Ok(if failed > 0 {
        Done::RunsFailed
    } else {
        Done::Ok
    })
}

/// Claim a run for this process (see `ResultsStore::claim`), then make sure no other
/// process finished it meanwhile. `None`: skip it (running or done elsewhere).
fn claim(
    store: &ResultsStore,
    out: &std::path::Path,
    spec: &RunSpec,
    fresh: bool,
) -> anyhow::Result<Option<stab_core::RunClaim>> {
    let Some(claim) = store.claim(&spec.run_id)? else {
        tracing::info!("{} is running in another process; skipped", spec.run_id);
        return Ok(None);
    };
    if !fresh
        && ResultsStore::read_dir(out)?
            .finished()
            .contains(&spec.run_id)
    {
        tracing::info!("{} was finished by another process; skipped", spec.run_id);
        return Ok(None);
    }
    Ok(Some(claim))
}

/// Check every fine-tuning spec's inputs (method, model files, data, split) before any run
/// starts; runs that differ only in seed or training settings need one check.
fn check_inputs(engine: &stab_methods::Engine, specs: &[&RunSpec]) -> anyhow::Result<()> {
    let mut checked = std::collections::HashSet::new();
    for spec in specs {
        let mut key = spec.canonical();
        if let Some(o) = key.as_object_mut() {
            o.remove("seed");
            o.remove("train");
        }
        if checked.insert(key.to_string()) {
            engine.check(spec)?;
        }
    }
    Ok(())
}

/// Resume reuses a finished run only if it read the same files: its recorded `inputs`
/// (model, data, split hashes) must equal today's. A change is one exit-2 error before
/// anything runs, so a new experiment never inherits the records of an old one.
fn check_resume(
    engine: &stab_methods::Engine,
    specs: &[&RunSpec],
    contents: &stab_core::store::StoreContents,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    let latest: std::collections::HashMap<&str, &RunRecord> = contents
        .records
        .iter()
        .map(|r| (r.run_id.as_str(), r))
        .collect();
    let (mut changed, mut unknown, mut first) = (0usize, 0usize, None);
    for spec in specs {
        let Some(record) = latest.get(spec.run_id.as_str()) else {
            continue;
        };
        let now = engine.inputs(spec)?;
        let diff = match &record.inputs {
            Some(then) => now.changes_from(then),
            // Records older than input fingerprints still name their split.
            None => match &record.split {
                Some(split) if *split != now.split => {
                    vec![format!("split: {split} → {}", now.split)]
                }
                _ => {
                    unknown += 1;
                    Vec::new()
                }
            },
        };
        if !diff.is_empty() {
            changed += 1;
            first.get_or_insert_with(|| (spec.run_id.clone(), diff.join(", ")));
        }
    }
    if unknown > 0 {
        tracing::warn!(
            "{unknown} finished run(s) were recorded before stab kept input fingerprints; they are reused as they are"
        );
    }
    match first {
        None => Ok(()),
        Some((run_id, diff)) => Err(stab_core::InputError::new(format!(
            "{changed} finished run(s) in this store read other files than this recipe reads now; {run_id} was recorded with other inputs ({diff})"
        ))
        .file(out.display().to_string())
        .hint("the split file, data or model changed since: write the new experiment to another --out, or pass --fresh to run every run again (records are appended; reports use the latest)")
        .into()),
    }
}
