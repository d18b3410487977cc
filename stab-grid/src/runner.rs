//! The grid runner: claim → run → append, for every kind of grid (docs/design.md §7).
//!
//! A run is *claimed* (an advisory lock in `DIR/claims/`, released by the OS when a process
//! dies), the store is re-read so a run another process finished meanwhile is skipped, the
//! [`Executor`] runs it, and its record is appended with one `write` + `fsync`: the commit
//! point. A killed grid leaves no record for the run in flight, which resume runs again.
//! With `jobs` workers, each computes on its own pool of threads/jobs threads; a run's
//! record does not depend on its thread count.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use anyhow::Context as _;
use stab_core::store::ResultsStore;
use stab_core::{RunClaim, RunRecord, RunSpec, Shard};

use crate::event::{EventSink, GridEvent, Skip};
use crate::executor::{Executed, Executor, RunContext};
use crate::resume;
use crate::schedule::{Next, PlanOrder, Schedule};
use crate::sequential::{ArmState, SequentialSchedule};
use stab_core::sequential::SequentialDesign;

/// Runs a grid's specs through an [`Executor`] into one results directory.
pub struct GridRunner<'e> {
    executor: &'e (dyn Executor + 'e),
    out: PathBuf,
    shard: Option<Shard>,
    jobs: usize,
    fresh: bool,
    /// Most runs in one seed batch (`None`: as many as memory allows, up to
    /// [`AUTO_SEED_BATCH`]; 1: every run alone).
    seed_batch: Option<usize>,
}

/// The largest seed batch chosen without a cap: past it a batch of head-tuning runs gains
/// little (measured in docs/speed.md) and a slow member holds back more runs.
pub const AUTO_SEED_BATCH: usize = 64;

/// What a grid did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GridSummary {
    /// Runs the grid was given.
    pub planned: usize,
    /// Of which already finished in the store (reused, not run).
    pub in_store: usize,
    /// Runs executed and recorded now.
    pub recorded: usize,
    /// Runs that failed (nothing recorded for them).
    pub failed: usize,
    /// Runs another process was running or had finished.
    pub skipped: usize,
}

struct Queue<'s> {
    schedule: &'s mut dyn Schedule,
    in_flight: usize,
    started: usize,
}

/// What the workers of one grid share: the schedule, the store, the counts, the events.
struct Shared<'s, 'v> {
    queue: Mutex<Queue<'s>>,
    wake: Condvar,
    store: Mutex<ResultsStore>,
    recorded: AtomicUsize,
    failed: AtomicUsize,
    skipped: AtomicUsize,
    events: EventSink<'v>,
}

/// One worker's compute: its thread count and, beside other workers, its own pool.
struct Worker {
    threads: usize,
    pool: Option<rayon::ThreadPool>,
}

impl<'e> GridRunner<'e> {
    /// A runner writing into `out` (`runs.jsonl`), one job, resuming.
    pub fn new(executor: &'e (dyn Executor + 'e), out: impl Into<PathBuf>) -> Self {
        Self {
            executor,
            out: out.into(),
            shard: None,
            jobs: 1,
            fresh: false,
            seed_batch: None,
        }
    }

    /// Cap the runs of one seed batch (`Some(1)`: every run alone; `None`: as many as a
    /// quarter of the available memory holds, up to [`AUTO_SEED_BATCH`]).
    pub fn seed_batch(mut self, most: Option<usize>) -> Self {
        self.seed_batch = most.map(|k| k.max(1));
        self
    }

    /// How many runs of `key` go in one batch: the cap, within a quarter of the
    /// available memory shared by the workers.
    fn batch_size(&self, spec: &RunSpec) -> usize {
        let cap = self.seed_batch.unwrap_or(AUTO_SEED_BATCH);
        let budget = available_memory() / 4 / self.jobs as u64;
        let member = self.executor.batch_member_bytes(spec).max(1);
        let fits = (budget / member).max(1) as usize;
        cap.min(fits)
    }

    /// Write this shard's store file (`runs.shard-I-of-N.jsonl`).
    pub fn shard(mut self, shard: Option<Shard>) -> Self {
        self.shard = shard;
        self
    }

    /// Runs executed at once when the executor allows it (threads split evenly).
    pub fn jobs(mut self, jobs: usize) -> Self {
        self.jobs = jobs.max(1);
        self
    }

    /// Run every spec again, even those already in the store (records are appended).
    pub fn fresh(mut self, fresh: bool) -> Self {
        self.fresh = fresh;
        self
    }

    /// The results directory.
    pub fn out(&self) -> &Path {
        &self.out
    }

    /// Run `specs` (a plan, or a shard of one) in plan order. Every input is checked and
    /// finished runs are compared with today's files before anything is written; runs
    /// already in the store are skipped unless the runner is `fresh`.
    pub fn run(&self, specs: &[&RunSpec], events: EventSink<'_>) -> stab_core::Result<GridSummary> {
        let contents = ResultsStore::read_dir(&self.out)?;
        if !contents.skipped.is_empty() {
            tracing::warn!(
                "{} store line(s) skipped (torn, not UTF-8 or not a record); their runs count as unfinished. First: {}",
                contents.skipped.len(),
                contents.skipped[0]
            );
        }
        self.executor.check_inputs(specs)?;
        if !self.fresh {
            resume::check_unchanged(self.executor, specs, &contents, &self.out)?;
        }
        let finished = contents.finished();
        let pending: Vec<&RunSpec> = specs
            .iter()
            .copied()
            .filter(|s| self.fresh || !finished.contains(&s.run_id))
            .collect();
        let mut schedule = PlanOrder::new(pending.iter().map(|s| (*s).clone()));
        let in_store = specs.len() - pending.len();
        self.drive(&mut schedule, &pending, in_store, pending.len(), events)
    }

    /// Run a sequential grid (docs/methods.md §13.6): `specs` is its universe (every arm's
    /// seeds up to `design.max`); rounds are handed out by a [`SequentialSchedule`] from
    /// what the store holds, checked like [`GridRunner::run`] before anything is written.
    /// With a shard, only that shard's share of the next round runs (one Slurm array
    /// task). Returns the summary and every arm's decisions after the rounds run.
    pub fn run_sequential(
        &self,
        specs: &[&RunSpec],
        design: &SequentialDesign,
        events: EventSink<'_>,
    ) -> stab_core::Result<(GridSummary, Vec<ArmState>)> {
        let contents = ResultsStore::read_dir(&self.out)?;
        self.executor.check_inputs(specs)?;
        if !self.fresh {
            resume::check_unchanged(self.executor, specs, &contents, &self.out)?;
        }
        let records = if self.fresh {
            Vec::new()
        } else {
            contents.latest()
        };
        let mut schedule = SequentialSchedule::new(design, specs, &records, self.shard)?;
        let finished = contents.finished();
        let in_store = specs
            .iter()
            .filter(|s| finished.contains(&s.run_id))
            .count();
        let summary = self.drive(&mut schedule, &[], in_store, usize::MAX, events)?;
        Ok((summary, schedule.states()))
    }

    /// Run what `schedule` hands out until it says `Done`. The schedule decides which runs
    /// exist and in which order (it leaves out what it considers finished); the runner
    /// still claims each run and skips one another process finished.
    pub fn run_schedule(
        &self,
        schedule: &mut dyn Schedule,
        events: EventSink<'_>,
    ) -> stab_core::Result<GridSummary> {
        self.drive(schedule, &[], 0, usize::MAX, events)
    }

    fn drive(
        &self,
        schedule: &mut dyn Schedule,
        pending: &[&RunSpec],
        in_store: usize,
        most: usize,
        events: EventSink<'_>,
    ) -> stab_core::Result<GridSummary> {
        let threads = rayon::current_num_threads();
        let workers = if self.executor.concurrent() {
            self.jobs.min(most).max(1)
        } else {
            1
        };
        let per_worker = (threads / workers).max(1);
        events(GridEvent::Started {
            planned: pending.len() + in_store,
            in_store,
            pending,
            workers,
            threads_per_worker: per_worker,
        });
        let mut summary = GridSummary {
            planned: pending.len() + in_store,
            in_store,
            recorded: 0,
            failed: 0,
            skipped: 0,
        };
        if most == 0 {
            return Ok(summary);
        }
        let shared = Shared {
            queue: Mutex::new(Queue {
                schedule,
                in_flight: 0,
                started: 0,
            }),
            wake: Condvar::new(),
            store: Mutex::new(ResultsStore::open(&self.out, self.shard)?),
            recorded: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            skipped: AtomicUsize::new(0),
            events,
        };
        if workers == 1 {
            let worker = Worker {
                threads,
                pool: None,
            };
            self.work(&shared, &worker)?;
        } else {
            let outcomes: Vec<stab_core::Result<()>> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..workers)
                    .map(|_| {
                        s.spawn(|| {
                            let pool = rayon::ThreadPoolBuilder::new()
                                .num_threads(per_worker)
                                .build()
                                .context("cannot build a job's thread pool")?;
                            let worker = Worker {
                                threads: per_worker,
                                pool: Some(pool),
                            };
                            self.work(&shared, &worker)
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                    .collect()
            });
            outcomes.into_iter().collect::<stab_core::Result<()>>()?;
        }
        summary.recorded = shared.recorded.into_inner();
        summary.failed = shared.failed.into_inner();
        summary.skipped = shared.skipped.into_inner();
        let store = shared.store.into_inner().expect("store");
        events(GridEvent::Finished {
            recorded: summary.recorded,
            failed: summary.failed,
            skipped: summary.skipped,
            store: store.path(),
        });
        Ok(summary)
    }

    /// One worker: take runs from the schedule until it is done.
    fn work(&self, shared: &Shared<'_, '_>, worker: &Worker) -> stab_core::Result<()> {
        loop {
            let (specs, index) = {
                let mut q = shared.queue.lock().expect("schedule");
                loop {
                    let in_flight = q.in_flight;
                    match q.schedule.next(in_flight) {
                        Next::Run(spec) => {
                            let specs = self.with_batch(*spec, &mut *q.schedule);
                            let first = q.started;
                            q.in_flight += specs.len();
                            q.started += specs.len();
                            break (specs, first);
                        }
                        Next::Done => return Ok(()),
                        Next::Wait if q.in_flight > 0 => q = shared.wake.wait(q).expect("schedule"),
                        Next::Wait => {
                            return Err(stab_core::internal!(
                                "the grid's schedule waits for a run to end, but none is running (a bug in the schedule)"
                            ));
                        }
                    }
                }
            };
            let outcomes = match specs.as_slice() {
                [spec] => vec![self.one(spec, index, shared, worker)],
                _ => self.batch(&specs, index, shared, worker),
            };
            let mut q = shared.queue.lock().expect("schedule");
            q.in_flight -= specs.len();
            for (spec, outcome) in specs.iter().zip(&outcomes) {
                q.schedule
                    .ended(spec, outcome.as_ref().ok().and_then(Option::as_ref));
            }
            shared.wake.notify_all();
            drop(q);
            for outcome in outcomes {
                outcome?;
            }
        }
    }

    /// `spec` and the runs the schedule hands out now that may train with it in one
    /// seed batch.
    fn with_batch(&self, spec: RunSpec, schedule: &mut dyn Schedule) -> Vec<RunSpec> {
        if self.seed_batch == Some(1) {
            return vec![spec];
        }
        let Some(key) = self.executor.batch_key(&spec) else {
            return vec![spec];
        };
        let most = self.batch_size(&spec);
        let mut same = |s: &RunSpec| self.executor.batch_key(s).as_ref() == Some(&key);
        let others = schedule.take_matching(&mut same, most.saturating_sub(1));
        std::iter::once(spec).chain(others).collect()
    }

    /// Claim, execute as one seed batch, and record runs that share a batch key; one
    /// outcome per spec, as [`GridRunner::one`] gives it.
    fn batch(
        &self,
        specs: &[RunSpec],
        index: usize,
        shared: &Shared<'_, '_>,
        worker: &Worker,
    ) -> Vec<stab_core::Result<Option<RunRecord>>> {
        let events = shared.events;
        let mut outcomes: Vec<Option<stab_core::Result<Option<RunRecord>>>> =
            specs.iter().map(|_| None).collect();
        let mut claims = Vec::new();
        let mut run: Vec<usize> = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let claimed = claim(
                &shared.store.lock().expect("store"),
                &self.out,
                spec,
                self.fresh,
            );
            match claimed {
                Ok(Ok(c)) => {
                    claims.push(c);
                    run.push(i);
                }
                Ok(Err(why)) => {
                    shared.skipped.fetch_add(1, Ordering::SeqCst);
                    events(GridEvent::RunSkipped { spec, why });
                    outcomes[i] = Some(Ok(None));
                }
                Err(e) => outcomes[i] = Some(Err(e)),
            }
        }
        for (n, &i) in run.iter().enumerate() {
            events(GridEvent::RunStarted {
                spec: &specs[i],
                index: index + n,
            });
        }
        let progress: Vec<_> = run
            .iter()
            .map(|&i| {
                let spec = &specs[i];
                move |progress| events(GridEvent::Progress { spec, progress })
            })
            .collect();
        let ctxs: Vec<RunContext> = progress
            .iter()
            .map(|p| RunContext {
                out: &self.out,
                threads: worker.threads,
                progress: p,
            })
            .collect();
        let members: Vec<&RunSpec> = run.iter().map(|&i| &specs[i]).collect();
        let execute = || self.executor.execute_batch(&members, &ctxs);
        let results = match &worker.pool {
            Some(pool) => pool.install(execute),
            None => execute(),
        };
        for (&i, result) in run.iter().zip(results) {
            outcomes[i] = Some(Ok(self.record(&specs[i], result, shared)));
        }
        drop(claims);
        outcomes
            .into_iter()
            .map(|o| o.expect("every run has an outcome"))
            .collect()
    }

    /// Append an executed run's record (the commit point) and say so; a failed run is
    /// counted and reported. `Some(record)` when the run was recorded.
    fn record(
        &self,
        spec: &RunSpec,
        result: stab_core::Result<Executed>,
        shared: &Shared<'_, '_>,
    ) -> Option<RunRecord> {
        let events = shared.events;
        let result = result.and_then(|done| {
            shared.store.lock().expect("store").append(&done.record)?;
            Ok(done)
        });
        match result {
            Ok(done) => {
                shared.recorded.fetch_add(1, Ordering::SeqCst);
                events(GridEvent::RunFinished {
                    record: &done.record,
                    summary: &done.summary,
                });
                Some(done.record)
            }
            Err(error) => {
                shared.failed.fetch_add(1, Ordering::SeqCst);
                events(GridEvent::RunFailed {
                    spec,
                    error: &error,
                });
                None
            }
        }
    }

    /// Claim, execute and record one run. `Ok(None)`: skipped or failed (an event says
    /// which); `Err`: the store or the claims cannot be used, which stops the grid.
    fn one(
        &self,
        spec: &RunSpec,
        index: usize,
        shared: &Shared<'_, '_>,
        worker: &Worker,
    ) -> stab_core::Result<Option<RunRecord>> {
        let events = shared.events;
        let claimed = claim(
            &shared.store.lock().expect("store"),
            &self.out,
            spec,
            self.fresh,
        )?;
        let _claim = match claimed {
            Ok(claim) => claim,
            Err(why) => {
                shared.skipped.fetch_add(1, Ordering::SeqCst);
                events(GridEvent::RunSkipped { spec, why });
                return Ok(None);
            }
        };
        events(GridEvent::RunStarted { spec, index });
        let progress = |progress| events(GridEvent::Progress { spec, progress });
        let ctx = RunContext {
            out: &self.out,
            threads: worker.threads,
            progress: &progress,
        };
        let execute = || self.executor.execute(spec, &ctx);
        let result = match &worker.pool {
            Some(pool) => pool.install(execute),
            None => execute(),
        };
        Ok(self.record(spec, result, shared))
    }
}

/// Claim a run for this process (see `ResultsStore::claim`), then make sure no other
/// process finished it meanwhile.
fn claim(
    store: &ResultsStore,
    out: &Path,
    spec: &RunSpec,
    fresh: bool,
) -> stab_core::Result<Result<RunClaim, Skip>> {
    let Some(claim) = store.claim(&spec.run_id)? else {
        return Ok(Err(Skip::RunningElsewhere));
    };
    if !fresh
        && ResultsStore::read_dir(out)?
            .finished()
            .contains(&spec.run_id)
    {
        return Ok(Err(Skip::FinishedElsewhere));
    }
    Ok(Ok(claim))
}

/// Bytes of memory available now (`MemAvailable` of /proc/meminfo); 4 GiB where the
/// system does not say.
fn available_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(4 << 30)
}
