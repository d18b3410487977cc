//! Estimated cost of a run, for balancing shards (`stab plan --shards N`, `stab run
//! --shard I/N`): work units proportional to the compute a run needs, not seconds.
//!
//! Fine-tuning: the updates the schedule plans (training rows × epochs / batch, capped by
//! `max_steps`) × the batch's tokens (batch × max_len) × a mode factor (head tuning on
//! cached features is about 1/50 of an encoder pass) × the method's declared cost factor
//! (LNSR runs a second forward, SURT adds its masked-LM phase, …). Training rows come from
//! the official train sizes the task registrations declare (the 90% split of them), scaled
//! by `train_fraction` and `1 − drop_fraction`.
//! Synthetic: datasets × points × (steps + LOO refits).

use crate::plan::spec::{RunJob, RunSpec};
use crate::plan::stack::Stack;
use crate::recipe::TrainMode;

/// Official train-file rows of a task, as its registration declares them (5,000 for a
/// task this build does not know).
fn train_rows(task: &str) -> f64 {
    crate::registry::task(task).map_or(5000.0, |t| t.train_rows as f64)
}

/// Relative cost of a method's update against FineTune's, as the plugins declare it: the
/// product over a stack (`reinit+llrd`); an unknown plugin counts as FineTune.
fn method_factor(stack: &Stack) -> f64 {
    stack
        .names()
        .map(|m| crate::registry::method(m).map_or(1.0, |e| e.cost))
        .product()
}

/// Work units of a run.
pub fn run_cost(spec: &RunSpec) -> f64 {
    match &spec.job {
        RunJob::Finetune(j) => {
            let t = &j.train;
            let rows = train_rows(&spec.task)
                * 0.9
                * j.data.train_fraction
                * (1.0 - j.data.drop_fraction).max(0.0);
            let batch = t.batch_size.max(1) as f64;
            let mut updates = (rows / batch).ceil().max(1.0) * t.epochs as f64;
            if t.max_steps > 0 {
                updates = updates.min(t.max_steps as f64);
            }
            if t.min_steps > 0 {
                updates = updates.max(t.min_steps as f64);
            }
            let mode = match t.mode {
                TrainMode::Head if !t.head_encoder_dropout => 0.02,
                _ => 1.0,
            };
            updates * batch * j.model.max_len as f64 * mode * method_factor(&spec.stack())
        }
        RunJob::Synthetic(s) => {
            (s.datasets.max(1) * s.points.max(1)) as f64
                * (s.steps as f64 + s.loo_samples as f64).max(1.0)
        }
    }
}

/// The runs of shard `index` (0-based) of `count`, in order ([`balanced_shards`]).
pub fn shard_of(runs: &[RunSpec], index: usize, count: usize) -> Vec<&RunSpec> {
    runs.iter()
        .zip(balanced_shards(runs, count))
        .filter(|(_, s)| *s == index)
        .map(|(r, _)| r)
        .collect()
}

/// What keeps runs in one shard: the seeds of one head-tuning configuration, which a
/// shard trains as one seed batch (docs/methods.md §4.5); any other run is its own unit.
fn shard_unit(spec: &RunSpec) -> String {
    match &spec.job {
        RunJob::Finetune(j) if j.train.mode == TrainMode::Head => spec.configuration(),
        _ => spec.run_id.clone(),
    }
}

/// Shard of every run (in plan order) among `count` shards, balanced by cost: the units
/// (a run, or the seeds of one head-tuning configuration, which stay together so that
/// their shard trains them as one seed batch), most expensive first (ties by their
/// first run id), each go to the least loaded shard (ties to the lowest index) — the
/// longest-processing-time rule, deterministic for a plan.
pub fn balanced_shards(runs: &[RunSpec], count: usize) -> Vec<usize> {
    let count = count.max(1);
    let mut units: std::collections::BTreeMap<String, (f64, &str, Vec<usize>)> =
        std::collections::BTreeMap::new();
    for (i, run) in runs.iter().enumerate() {
        let unit = units
            .entry(shard_unit(run))
            .or_insert((0.0, run.run_id.as_str(), Vec::new()));
        unit.0 += run_cost(run);
        unit.1 = unit.1.min(run.run_id.as_str());
        unit.2.push(i);
    }
    let mut order: Vec<(f64, &str, Vec<usize>)> = units.into_values().collect();
    order.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    let mut load = vec![0.0f64; count];
    let mut out = vec![0usize; runs.len()];
    for (cost, _, members) in order {
        let (best, _) = load
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1).then(a.0.cmp(&b.0)))
            .expect("at least one shard");
        for i in members {
            out[i] = best;
        }
        load[best] += cost;
    }
    out
}
