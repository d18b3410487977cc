//! Seed batching (docs/methods.md §4.5): K runs trained as one head on cached features
//! give, bit for bit, the records and predictions of the same runs trained alone — for
//! every method that batches, with early stopping, a failed-run stop, gradient clipping,
//! BERT's Adam, a span task and runs of other row counts in one call.

use std::path::Path;

use burn::tensor::Device;
use serde_json::Value;
use stab_core::{Plan, Recipe, RunSpec};
use stab_methods::engine::{Engine, Progress};

use crate::tiny_cb::{quiet, testdata, tiny};

/// The plan of a head-tuning recipe; `train` may start with `[data]` keys, then a
/// blank line and the `[train]` keys.
fn specs(task: &str, train: &str, method: &str, seeds: usize) -> Vec<RunSpec> {
    let (data, train) = train.split_once("\n\n").unwrap_or(("", train));
    let lr = if train.contains("lr =") {
        ""
    } else {
        "lr = 1e-3\n"
    };
    let text = format!(
        "name = \"batch\"\n[model]\npath = \"{}\"\nmax_len = 64\n[data]\ndir = \"{}\"\ntasks = [\"{task}\"]\n{data}\n[train]\nmode = \"head\"\nbatch_size = 8\nseeds = {seeds}\n{lr}{train}\n[[methods]]\n{method}\n",
        tiny().display(),
        testdata().join("data").display()
    );
    let recipe = Recipe::parse(&text, "batch.toml").unwrap_or_else(|e| panic!("{e}"));
    Plan::from_recipe(&recipe).unwrap().runs
}

/// A record without its timings and cache source; with its predictions file.
fn comparable(out: &Path, r: &stab_core::RunRecord) -> Value {
    let mut v = serde_json::to_value(r).unwrap();
    v["wall_s"] = Value::Null;
    let d = v["details"].as_object_mut().unwrap();
    d.remove("seconds");
    d.remove("feature_cache");
    if let Some(p) = d.get_mut("prepare").and_then(Value::as_object_mut) {
        p.remove("seconds");
    }
    let predictions = out.join("predictions").join(format!("{}.json", r.run_id));
    v["predictions"] =
        serde_json::from_str(&std::fs::read_to_string(predictions).unwrap()).unwrap();
    v
}

/// The runs trained alone and as one seed batch, compared record by record; the solo
/// records.
fn check(task: &str, train: &str, method: &str, seeds: usize) -> Vec<stab_core::RunRecord> {
    let specs = specs(task, train, method, seeds);
    let refs: Vec<&RunSpec> = specs.iter().collect();
    let (solo_dir, batch_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let solo = Engine::new(Device::flex(), solo_dir.path());
    let batch = Engine::new(Device::flex(), batch_dir.path());
    let keys: Vec<_> = refs.iter().map(|s| batch.seed_batch_key(s)).collect();
    assert!(keys[0].is_some(), "{method}: batches");
    assert!(
        keys.iter().all(|k| k == &keys[0]),
        "{method}: one key for every seed"
    );
    let progress: Vec<&(dyn Fn(Progress) + Sync)> = refs.iter().map(|_| &quiet as _).collect();
    let batched = batch.train_seed_batch(&refs, &progress);
    let mut records = Vec::new();
    for (spec, got) in refs.iter().zip(batched) {
        let got = got.unwrap_or_else(|e| panic!("{method}: {e:#}"));
        let want = solo.train(spec, &quiet).unwrap();
        assert_eq!(
            comparable(batch_dir.path(), &got.record),
            comparable(solo_dir.path(), &want.record),
            "{task} {method} {train} seed {}: batched ≠ solo",
            spec.seed
        );
        records.push(want.record);
    }
    records
}

const SHORT: &str = "max_steps = 12\neval_every = 2";

#[test]
fn every_batchable_method_gives_the_solo_records_with_seven_seeds() {
    for method in [
        "name = \"finetune\"",
        "name = \"mhloss\"\nheads = 5",
        "name = \"mhloss\"\nheads = 3\nreplicate = \"head\"",
        "name = \"reinit\"\nk = 1",
        "name = \"llrd\"\nxi = 0.7",
        "name = \"surt\"\nmlm_max_steps = 3",
        // Loss terms, each computed on its member's own view of the step.
        "name = \"mmr\"\nalpha = 0.5",
        "name = \"rdrop\"",
        "name = \"mhloss\"\nheads = 2\nstack = [{ name = \"rdrop\" }, { name = \"mmr\" }]",
        // No-ops in head tuning: they batch as FineTune.
        "name = \"mixout\"\np = 0.5\nvariant = \"author\"",
        "name = \"lnsr\"",
        "name = \"child_tuning\"\nvariant = \"d\"",
    ] {
        check("cb", SHORT, method, 7);
    }
}

#[test]
fn members_that_stop_early_clip_or_use_berts_adam_keep_their_solo_records() {
    // Patience 1: members stop at different evaluations and leave the batch.
    let runs = check(
        "cb",
        "max_steps = 60\neval_every = 1\npatience = 4\nlr = 3e-3",
        "name = \"finetune\"",
        7,
    );
    let steps: std::collections::BTreeSet<u64> = runs.iter().map(|r| r.steps).collect();
    assert!(
        steps.len() >= 2 && steps.first() < Some(&60),
        "stops at {steps:?}"
    );
    // A clip every member hits, and a failed-run stop.
    let runs = check(
        "cb",
        "max_steps = 12\neval_every = 3\ngrad_clip = 0.05\nstop_failed = { after = 1 }",
        "name = \"finetune\"",
        7,
    );
    let failed = runs
        .iter()
        .filter(|r| r.details.get("stopped").is_some())
        .count();
    assert!(failed > 0, "a failed-run stop happened");
    check(
        "cb",
        "max_steps = 8\nadam_bias_correction = false\nweight_decay = 0.1",
        "name = \"mhloss\"\nheads = 2",
        5,
    );
    // Other row counts per seed: batches by count, alone when a count is one seed's.
    check(
        "cb",
        "train_fraction = 0.5\n\nmax_steps = 6",
        "name = \"finetune\"",
        6,
    );
}

#[test]
fn a_span_task_batches_like_a_classification_task() {
    check("wsc", SHORT, "name = \"finetune\"", 5);
    check(
        "wsc",
        SHORT,
        "name = \"rdrop\"\nstack = [{ name = \"mmr\" }]",
        5,
    );
}

#[test]
fn sixty_four_members_give_the_solo_records() {
    check(
        "cb",
        "max_steps = 6\neval_every = 3",
        "name = \"finetune\"",
        64,
    );
}

#[test]
fn methods_with_other_step_hooks_or_a_per_run_encoder_do_not_batch() {
    let dir = tempfile::tempdir().unwrap();
    let eng = Engine::new(Device::flex(), dir.path());
    for method in [
        "name = \"mixout\"\np = 0.5",
        "name = \"ema\"",
        "name = \"sam\"",
        "name = \"noisytune\"",
    ] {
        let s = &specs("cb", SHORT, method, 1)[0];
        assert_eq!(eng.seed_batch_key(s), None, "{method}");
    }
}

#[test]
fn runs_of_several_configurations_in_one_call_batch_by_configuration() {
    let mut all = specs("cb", SHORT, "name = \"finetune\"", 3);
    all.extend(specs("cb", SHORT, "name = \"mhloss\"\nheads = 2", 3));
    all.extend(specs(
        "cb",
        "max_steps = 12\neval_every = 2\nlr = 5e-3",
        "name = \"finetune\"",
        2,
    ));
    let refs: Vec<&RunSpec> = all.iter().collect();
    let (solo_dir, batch_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let solo = Engine::new(Device::flex(), solo_dir.path());
    let batch = Engine::new(Device::flex(), batch_dir.path());
    let progress: Vec<&(dyn Fn(Progress) + Sync)> = refs.iter().map(|_| &quiet as _).collect();
    for (spec, got) in refs.iter().zip(batch.train_seed_batch(&refs, &progress)) {
        let want = solo.train(spec, &quiet).unwrap();
        assert_eq!(
            comparable(batch_dir.path(), &got.unwrap().record),
            comparable(solo_dir.path(), &want.record),
            "{}",
            spec.run_id
        );
    }
}
