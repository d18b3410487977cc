//! The sequential schedule with an executor of the test's own that draws each run's score
//! from its arm's distribution (the schedule's bookkeeping is the subject): rounds, early
//! decisions, the baseline's seeds, resume, a killed round, and Slurm-style shards.

use std::collections::{BTreeMap, HashMap};

use stab_core::sequential::{Question, SequentialDesign};
use stab_core::store::ResultsStore;
use stab_core::{RunRecord, RunSpec};
use stab_eval::sequential::Decision;
use stab_grid::{Executed, Executor, GridEvent, GridRunner, RunContext};
// The synthetic studies register through `inventory` (the test borrows a job from one).
use stab_synthetic as _;

fn quiet(_: GridEvent<'_>) {}

/// Scores: 70 + spread × a fixed normal quantile per seed (method-specific order).
struct Drawn {
    spread: HashMap<&'static str, f64>,
    fail_seed: Option<u64>,
}

impl Executor for Drawn {
    fn execute(&self, spec: &RunSpec, _ctx: &RunContext<'_>) -> stab_core::Result<Executed> {
        if self.fail_seed == Some(spec.seed) && spec.method == "mmr" {
            return Err(stab_core::internal!("scripted failure"));
        }
        let k = (spec.seed * 37 + spec.method.len() as u64 * 11) % 97;
        let z = statrs::distribution::ContinuousCDF::inverse_cdf(
            &statrs::distribution::Normal::standard(),
            (k as f64 + 0.5) / 97.0,
        );
        let mut record = RunRecord::for_spec(spec);
        let score = 0.70 + self.spread[spec.method.as_str()] * z / 100.0;
        record.metrics = BTreeMap::from([("primary".to_string(), score)]);
        Ok(Executed {
            summary: String::new(),
            record,
        })
    }
}

/// The universe of a grid: one task, three methods, seeds 0..max.
fn universe(max: u64) -> Vec<RunSpec> {
    // Any job will do: the test's executor reads only the method and the seed.
    let recipe = stab_core::Recipe::parse(
        "name = \"g\"\nkind = \"synthetic\"\n[synthetic]\nfactor = \"margin\"\nvalues = [0.1]\n",
        "g.toml",
    )
    .unwrap();
    let job = stab_core::Plan::from_recipe(&recipe).unwrap().runs[0]
        .job
        .clone();
    let mut specs = Vec::new();
    for method in ["finetune", "mmr", "mhloss"] {
        for seed in 0..max {
            specs.push(RunSpec {
                run_id: format!("cb-{method}-s{seed}"),
                recipe: "seq".into(),
                task: "cb".into(),
                method: method.into(),
                method_params: Default::default(),
                seed,
                sweep: BTreeMap::new(),
                job: job.clone(),
                method_train: BTreeMap::new(),
                sequential: None,
                tune: None,
            });
        }
    }
    specs
}

fn design() -> SequentialDesign {
    SequentialDesign {
        min: 5,
        step: 5,
        max: 30,
        question: Question::Sd,
        smallest_ratio: 0.5,
        ..Default::default()
    }
}

fn executor(fail_seed: Option<u64>) -> Drawn {
    Drawn {
        // MMR's spread is a tenth of FineTune's: decided lower early. MHLoss's is
        // FineTune's: it runs on.
        spread: HashMap::from([("finetune", 5.0), ("mmr", 0.5), ("mhloss", 5.0)]),
        fail_seed,
    }
}

fn seeds_of(dir: &std::path::Path, method: &str) -> Vec<(u64, usize)> {
    let mut v: Vec<(u64, usize)> = ResultsStore::read_dir(dir)
        .unwrap()
        .latest()
        .into_iter()
        .filter(|r| r.method == method)
        .map(|r| (r.seed, r.sequential.as_ref().expect("a round").round))
        .collect();
    v.sort();
    v
}

#[test]
fn undecided_arms_get_rounds_decided_ones_stop_and_the_store_says_which_round() {
    let tmp = tempfile::tempdir().unwrap();
    let specs = universe(30);
    let refs: Vec<&RunSpec> = specs.iter().collect();
    let exec = executor(None);
    let (summary, states) = GridRunner::new(&exec, tmp.path())
        .run_sequential(&refs, &design(), &quiet)
        .unwrap();
    let mmr = states.iter().find(|s| s.label == "mmr").unwrap();
    assert_eq!(mmr.outcomes[0].decision, Decision::Lower, "{states:?}");
    let stopped_at = mmr.outcomes[0].n;
    assert!(stopped_at < 30, "{states:?}");
    // MMR ran exactly the seeds of its rounds; each seed is marked with its round.
    let mmr_seeds = seeds_of(tmp.path(), "mmr");
    assert_eq!(mmr_seeds.len(), stopped_at);
    for (seed, round) in &mmr_seeds {
        assert_eq!(*round, (*seed / 5) as usize);
    }
    // The baseline ran as long as its longest arm (MHLoss, undecided or no difference).
    let mhloss = states.iter().find(|s| s.label == "mhloss").unwrap();
    assert_eq!(seeds_of(tmp.path(), "finetune").len(), mhloss.outcomes[0].n);
    assert_eq!(summary.recorded, stopped_at + 2 * mhloss.outcomes[0].n);

    // Resume: nothing runs again, the same decisions.
    let (again, states_again) = GridRunner::new(&exec, tmp.path())
        .run_sequential(&refs, &design(), &quiet)
        .unwrap();
    assert_eq!(again.recorded, 0);
    assert_eq!(format!("{states:?}"), format!("{states_again:?}"));

    // The report's replay of the store agrees with the schedule and saves nothing.
    let records = ResultsStore::read_dir(tmp.path()).unwrap().latest();
    let refs_r: Vec<&RunRecord> = records.iter().collect();
    let replay = stab_eval::sequential::replay::replay(&refs_r, &design());
    for arm in &replay.arms {
        let state = states.iter().find(|s| s.label == arm.method).unwrap();
        assert_eq!(
            (arm.decision, arm.n),
            (state.outcomes[0].decision, state.outcomes[0].n)
        );
        assert_eq!(arm.saved, 0);
    }
    assert_eq!(replay.runs_saved, 0);
}

#[test]
fn a_failed_run_stalls_its_arm_only_and_a_rerun_goes_on_to_the_same_store() {
    let tmp = tempfile::tempdir().unwrap();
    let specs = universe(30);
    let refs: Vec<&RunSpec> = specs.iter().collect();
    // MMR's seed 2 fails in the first round: MMR stalls; MHLoss and the baseline go on.
    let (summary, _) = GridRunner::new(&executor(Some(2)), tmp.path())
        .run_sequential(&refs, &design(), &quiet)
        .unwrap();
    assert_eq!(summary.failed, 1);
    assert_eq!(seeds_of(tmp.path(), "mmr").len(), 4);
    // The rerun retries it and finishes as a grid without the failure would have.
    GridRunner::new(&executor(None), tmp.path())
        .run_sequential(&refs, &design(), &quiet)
        .unwrap();
    let whole = tempfile::tempdir().unwrap();
    GridRunner::new(&executor(None), whole.path())
        .run_sequential(&refs, &design(), &quiet)
        .unwrap();
    for method in ["finetune", "mmr", "mhloss"] {
        assert_eq!(
            seeds_of(tmp.path(), method),
            seeds_of(whole.path(), method),
            "{method}"
        );
    }
}

#[test]
fn shards_run_one_round_at_a_time_and_end_with_the_unsharded_store() {
    let tmp = tempfile::tempdir().unwrap();
    let specs = universe(30);
    let refs: Vec<&RunSpec> = specs.iter().collect();
    let exec = executor(None);
    let mut arrays = 0;
    loop {
        let mut recorded = 0;
        // The tasks of one array, in an order that leaves shard 1 last.
        for index in [0, 2, 1] {
            let shard = stab_core::Shard { index, count: 3 };
            let (s, _) = GridRunner::new(&exec, tmp.path())
                .shard(Some(shard))
                .run_sequential(&refs, &design(), &quiet)
                .unwrap();
            recorded += s.recorded;
        }
        if recorded == 0 {
            break;
        }
        arrays += 1;
        assert!(arrays <= design().looks().len(), "more arrays than rounds");
    }
    let whole = tempfile::tempdir().unwrap();
    GridRunner::new(&exec, whole.path())
        .run_sequential(&refs, &design(), &quiet)
        .unwrap();
    for method in ["finetune", "mmr", "mhloss"] {
        assert_eq!(
            seeds_of(tmp.path(), method),
            seeds_of(whole.path(), method),
            "{method}"
        );
    }
    let rounds = seeds_of(whole.path(), "finetune")
        .iter()
        .map(|s| s.1)
        .max()
        .unwrap()
        + 1;
    assert_eq!(arrays, rounds, "one array per round");
}
