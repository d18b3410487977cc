//! Every built-in method's record on the tiny-bert fixture, compared bit for bit with the
//! records the engine wrote before the Method API v2 refactor (`testdata/engine_records.json`).
//! A refactor of the engine or of the plugin API must leave them unchanged; a change of the
//! science is a new golden file, written with `STAB_BLESS=1` and explained in its commit.

use std::path::PathBuf;

use burn::tensor::Device;
use stab_core::{Plan, Recipe, RunRecord};
use stab_methods as _;
use stab_methods::engine::{Engine, Progress};

use crate::assets;

/// The method tables of the comparison, each run in full and head tuning.
const METHODS: &[&str] = &[
    "name = \"finetune\"",
    "name = \"mixout\"\np = 0.5",
    "name = \"mixout\"\np = 0.5\nvariant = \"author\"",
    "name = \"mixout\"\np = 0.5\nbackward = \"exact\"",
    "name = \"lnsr\"",
    "name = \"lnsr\"\nvariant = \"original\"\nsigma = 0.1",
    "name = \"mmr\"\nalpha = 0.5",
    "name = \"mhloss\"\nheads = 5",
    "name = \"mhloss\"\nheads = 3\nreplicate = \"head\"",
    "name = \"surt\"\nmlm_max_steps = 3",
    "name = \"surt\"\nmlm_max_steps = 2\nshare_mlm = false",
    "name = \"reinit\"\nk = 1",
    "name = \"llrd\"\nxi = 0.7",
];

/// Record fields the golden file predates: the parameter counts, the curve of each loss
/// term and the majority-class test score. Everything else is compared bit for bit.
const ADDED_BY_V2: &[&str] = &[
    "trainable_params",
    "total_params",
    "loss_terms",
    "majority_test",
];

fn golden_path() -> PathBuf {
    assets::root().join("testdata/engine_records.json")
}

/// A record without what varies between runs of the same spec (timings, cache sources).
fn comparable(r: &RunRecord) -> serde_json::Value {
    let mut v = serde_json::to_value(r).expect("record json");
    let o = v.as_object_mut().expect("record object");
    // The run id hashes the model and data paths, which differ between checkouts.
    for k in ["wall_s", "threads", "stab_version", "run_id"] {
        o.remove(k);
    }
    if let Some(d) = o.get_mut("details").and_then(|d| d.as_object_mut()) {
        d.remove("seconds");
        d.remove("feature_cache");
        // Added by Method API v2 (new information, not a change of the run).
        for k in ADDED_BY_V2 {
            d.remove(*k);
        }
        // A label on the record, not a result (checked in no_op.rs).
        d.remove("no_op");
        // The settings the report's "what was run" block reads (added with #38): a copy
        // of the run's inputs, holding the model's path, which differs between checkouts.
        d.remove("settings");
        if let Some(p) = d.get_mut("prepare").and_then(|p| p.as_object_mut()) {
            p.remove("seconds");
            p.remove("cache");
        }
    }
    v
}

fn records() -> Vec<serde_json::Value> {
    let testdata = assets::root().join("testdata");
    let dir = tempfile::tempdir().unwrap();
    let eng = Engine::new(Device::flex(), dir.path());
    let mut out = Vec::new();
    for mode in ["full", "head"] {
        for method in METHODS {
            let text = format!(
                "name = \"golden\"\n[model]\npath = \"{}\"\nmax_len = 64\n[data]\ndir = \"{}\"\ntasks = [\"cb\"]\ntrain_fraction = 0.3\n[train]\nmode = \"{mode}\"\nbatch_size = 8\nmax_steps = 6\neval_every = 2\nlr = 1e-3\nseeds = [3]\n[[methods]]\n{method}\n",
                testdata.join("fixtures/tiny-bert").display(),
                testdata.join("data").display()
            );
            let recipe = Recipe::parse(&text, "golden.toml").unwrap_or_else(|e| panic!("{e}"));
            let spec = &Plan::from_recipe(&recipe).unwrap().runs[0];
            let (r, _) = eng
                .run(spec, &|_: Progress| {})
                .unwrap_or_else(|e| panic!("{method} ({mode}): {e:#}"));
            out.push(comparable(&r));
        }
    }
    out
}

#[test]
fn every_method_gives_the_records_it_gave_before_the_refactor() {
    let got = records();
    let path = golden_path();
    if std::env::var_os("STAB_BLESS").is_some() {
        let text = serde_json::to_string_pretty(&got).unwrap();
        std::fs::write(&path, text + "\n").unwrap();
        eprintln!("wrote {}", path.display());
        return;
    }
    let mut want: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for w in &mut want {
        // Written before the run id was left out of the comparison.
        w.as_object_mut().unwrap().remove("run_id");
    }
    assert_eq!(got.len(), want.len(), "number of golden records");
    let mut differ = Vec::new();
    for (g, w) in got.iter().zip(&want) {
        if g != w {
            differ.push(format!(
                "{} {} ({}):\n  got  {}\n  want {}",
                w["method"], w["mode"], w["method_params"], g, w
            ));
        }
    }
    assert!(
        differ.is_empty(),
        "{} of {} records differ from {}:\n{}",
        differ.len(),
        want.len(),
        path.display(),
        differ.join("\n")
    );
}
