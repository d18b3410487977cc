//! The grid runner on real plans: synthetic studies through `SyntheticExecutor`, and an
//! executor of the test's own where the runner's bookkeeping is the subject (failures,
//! schedules, workers, claims).

use std::collections::BTreeMap;
use std::sync::Mutex;

use stab_core::store::ResultsStore;
use stab_core::{Plan, Recipe, RunRecord, RunSpec};
use stab_grid::{
    Executed, Executor, GridEvent, GridRunner, Next, RunContext, Schedule, Skip, SyntheticExecutor,
};
// The five studies register through `inventory`.
use stab_synthetic as _;

/// A synthetic recipe: the margin study at 3 values, tiny sizes (milliseconds per run).
fn plan() -> Plan {
    let recipe = Recipe::parse(
        "name = \"g\"\nkind = \"synthetic\"\n[synthetic]\nfactor = \"margin\"\nvalues = [0.1, 0.2, 0.4]\ndatasets = 2\npoints = 30\nsteps = 10\n",
        "g.toml",
    )
    .unwrap();
    Plan::from_recipe(&recipe).unwrap()
}

fn quiet(_: GridEvent<'_>) {}

/// Records a run as its seed and value would, failing the runs it is told to.
struct Scripted {
    fail: Vec<String>,
    executed: Mutex<Vec<String>>,
}

impl Scripted {
    fn new(fail: &[&str]) -> Self {
        Self {
            fail: fail.iter().map(|s| s.to_string()).collect(),
            executed: Mutex::new(Vec::new()),
        }
    }
}

impl Executor for Scripted {
    fn execute(&self, spec: &RunSpec, ctx: &RunContext<'_>) -> stab_core::Result<Executed> {
        self.executed.lock().unwrap().push(spec.run_id.clone());
        if self.fail.contains(&spec.run_id) {
            return Err(stab_core::internal!("scripted failure"));
        }
        let mut record = RunRecord::for_spec(spec);
        record.metrics = BTreeMap::from([("primary".to_string(), spec.seed as f64)]);
        record.threads = ctx.threads;
        Ok(Executed {
            summary: format!("done {}", record.run_id),
            record,
        })
    }
}

#[test]
fn a_synthetic_grid_records_each_run_once_and_resumes_without_repeating_it() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan();
    let specs: Vec<&RunSpec> = plan.runs.iter().collect();
    let datasets = Mutex::new(0usize);
    let runner = GridRunner::new(&SyntheticExecutor, dir.path());
    let first = runner
        .run(&specs, &|e| {
            if let GridEvent::Progress { .. } = e {
                *datasets.lock().unwrap() += 1;
            }
        })
        .unwrap();
    assert_eq!((first.planned, first.in_store, first.recorded), (3, 0, 3));
    assert_eq!(
        *datasets.lock().unwrap(),
        3 * 2,
        "one progress event per dataset"
    );
    let records = ResultsStore::read_dir(dir.path()).unwrap().records;
    assert_eq!(records.len(), 3);
    assert!(records.iter().all(|r| r.metrics.contains_key("delta_mean")));
    for r in &records {
        assert!(
            dir.path()
                .join("runs")
                .join(&r.run_id)
                .join("datasets.csv")
                .is_file()
        );
    }
    let again = runner.run(&specs, &quiet).unwrap();
    assert_eq!((again.in_store, again.recorded), (3, 0));
    assert_eq!(ResultsStore::read_dir(dir.path()).unwrap().records.len(), 3);
    // --fresh runs them again and appends.
    let fresh = GridRunner::new(&SyntheticExecutor, dir.path())
        .fresh(true)
        .run(&specs, &quiet)
        .unwrap();
    assert_eq!(fresh.recorded, 3);
    assert_eq!(ResultsStore::read_dir(dir.path()).unwrap().records.len(), 6);
}

#[test]
fn a_failed_run_records_nothing_and_the_grid_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan();
    let specs: Vec<&RunSpec> = plan.runs.iter().collect();
    let executor = Scripted::new(&[&specs[1].run_id]);
    let failed = Mutex::new(Vec::new());
    let summary = GridRunner::new(&executor, dir.path())
        .run(&specs, &|e| {
            if let GridEvent::RunFailed { spec, error } = e {
                failed
                    .lock()
                    .unwrap()
                    .push((spec.run_id.clone(), error.to_string()));
            }
        })
        .unwrap();
    assert_eq!((summary.recorded, summary.failed), (2, 1));
    assert_eq!(
        *failed.lock().unwrap(),
        vec![(specs[1].run_id.clone(), "scripted failure".to_string())]
    );
    let ids: Vec<String> = ResultsStore::read_dir(dir.path())
        .unwrap()
        .records
        .into_iter()
        .map(|r| r.run_id)
        .collect();
    assert_eq!(ids, vec![specs[0].run_id.clone(), specs[2].run_id.clone()]);
    // Resume runs only the failed one.
    let retry = Scripted::new(&[]);
    let summary = GridRunner::new(&retry, dir.path())
        .run(&specs, &quiet)
        .unwrap();
    assert_eq!((summary.in_store, summary.recorded), (2, 1));
    assert_eq!(
        *retry.executed.lock().unwrap(),
        vec![specs[1].run_id.clone()]
    );
}

#[test]
fn a_run_another_process_holds_is_skipped_and_left_unrecorded() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan();
    let specs: Vec<&RunSpec> = plan.runs.iter().collect();
    let other = ResultsStore::open(dir.path(), None).unwrap();
    let _held = other.claim(&specs[0].run_id).unwrap().expect("free");
    let skipped = Mutex::new(Vec::new());
    let executor = Scripted::new(&[]);
    let summary = GridRunner::new(&executor, dir.path())
        .run(&specs, &|e| {
            if let GridEvent::RunSkipped { spec, why } = e {
                skipped.lock().unwrap().push((spec.run_id.clone(), why));
            }
        })
        .unwrap();
    assert_eq!((summary.recorded, summary.skipped), (2, 1));
    assert_eq!(
        *skipped.lock().unwrap(),
        vec![(specs[0].run_id.clone(), Skip::RunningElsewhere)]
    );
}

#[test]
fn two_workers_record_what_one_records() {
    let plan = plan();
    let specs: Vec<&RunSpec> = plan.runs.iter().collect();
    let records = |jobs: usize| {
        let dir = tempfile::tempdir().unwrap();
        let executor = Scripted::new(&[]);
        let summary = GridRunner::new(&executor, dir.path())
            .jobs(jobs)
            .run(&specs, &quiet)
            .unwrap();
        assert_eq!(summary.recorded, 3);
        let mut r: Vec<(String, f64)> = ResultsStore::read_dir(dir.path())
            .unwrap()
            .records
            .into_iter()
            .map(|r| (r.run_id, r.metrics["primary"]))
            .collect();
        r.sort_by(|a, b| a.0.cmp(&b.0));
        r
    };
    assert_eq!(records(1), records(2));
}

/// Runs the first two specs, waits for both, then adds the third only if both were
/// recorded: the shape of a sequential design's rounds.
struct Rounds {
    specs: Vec<RunSpec>,
    handed: usize,
    ended: Vec<String>,
    waits: usize,
}

impl Schedule for Rounds {
    fn next(&mut self, in_flight: usize) -> Next {
        match self.handed {
            0 | 1 => {
                self.handed += 1;
                Next::Run(Box::new(self.specs[self.handed - 1].clone()))
            }
            2 if self.ended.len() < 2 => {
                assert!(in_flight > 0, "waiting with nothing in flight");
                self.waits += 1;
                Next::Wait
            }
            2 => {
                self.handed += 1;
                Next::Run(Box::new(self.specs[2].clone()))
            }
            _ => Next::Done,
        }
    }

    fn ended(&mut self, spec: &RunSpec, record: Option<&RunRecord>) {
        assert!(record.is_some());
        self.ended.push(spec.run_id.clone());
    }
}

#[test]
fn a_schedule_holds_free_workers_until_a_round_ends_and_then_adds_runs() {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan();
    let mut rounds = Rounds {
        specs: plan.runs.clone(),
        handed: 0,
        ended: Vec::new(),
        waits: 0,
    };
    let executor = Scripted::new(&[]);
    let summary = GridRunner::new(&executor, dir.path())
        .jobs(2)
        .run_schedule(&mut rounds, &quiet)
        .unwrap();
    assert_eq!(summary.recorded, 3);
    assert_eq!(rounds.ended.len(), 3);
    assert_eq!(
        rounds.ended[2], plan.runs[2].run_id,
        "the third ran after the round"
    );
    let executed = executor.executed.lock().unwrap();
    assert_eq!(executed[2], plan.runs[2].run_id);
}
