//! End-to-end parity of full fine-tuning with PyTorch + transformers (issue #19, item 5):
//! MiniLM on CB (the sliced files in `testdata/`), dropout off, 30 updates with the real
//! schedule (linear warmup over ⌊0.1·30⌋ updates, then decay), global-norm clipping at 1.0
//! and AdamW with HF's weight-decay groups, on a batch order both sides read from
//! `testdata/parity/cb_minilm.json`. `scripts/parity_torch.py` wrote that file: the order,
//! PyTorch's loss at every update and its test predictions after the 30 updates. The head
//! starts from stab's own initialisation, which this test exports for the script:
//!
//! ```sh
//! STAB_MINILM_DIR=… STAB_PARITY_EXPORT=/tmp/parity cargo test -p stab-methods --test parity_torch
//! /tmp/torchenv/bin/python scripts/parity_torch.py --model $STAB_MINILM_DIR --init /tmp/parity/head_init.json
//! ```
//!
//! A change of the protocol that makes the losses differ is a protocol difference with
//! PyTorch, and must be explained in docs/methods.md before the golden file is rewritten.

use std::path::PathBuf;

use burn::tensor::Device;
use stab_core::{ComponentSeeds, Plan, Recipe, RunSpec};
use stab_methods::engine::{Engine, Progress};
use stab_models::{HeadShape, TaskHead};

#[path = "../../testsupport/assets.rs"]
mod assets;
#[path = "../../testsupport/no_dropout.rs"]
mod no_dropout;

fn golden_path() -> PathBuf {
    assets::root().join("testdata/parity/cb_minilm.json")
}

fn spec(minilm: &std::path::Path) -> RunSpec {
    let text = format!(
        "name = \"parity\"\n[model]\npath = \"{}\"\nmax_len = 128\n[data]\ndir = \"{}\"\ntasks = [\"cb\"]\n[train]\nmode = \"full\"\nbatch_size = 16\nmax_steps = 30\neval_every = 30\nlr = 1e-4\nwarmup = 0.1\nweight_decay = 0.01\ngrad_clip = 1.0\nseeds = [0]\n[[methods]]\nname = \"test-finetune-no-dropout\"\n",
        minilm.display(),
        assets::slices().display()
    );
    let recipe = Recipe::parse(&text, "parity.toml").unwrap_or_else(|e| panic!("{e}"));
    Plan::from_recipe(&recipe).unwrap().runs.remove(0)
}

/// The fresh head of the run, as stab initialises it, for the PyTorch script.
fn export_head_init(spec: &RunSpec, hidden: usize, dir: &std::path::Path) {
    let stab_core::plan::RunJob::Finetune(job) = &spec.job else {
        unreachable!()
    };
    let seeds = ComponentSeeds::derive(spec.seed, &job.train.fixed_seeds);
    let head = TaskHead::classification(
        hidden,
        3,
        0.0,
        HeadShape::default(),
        seeds.head_init,
        &Device::flex(),
    );
    let mut tensors = serde_json::Map::new();
    for (path, p) in stab_methods::engine::params::collect(&head) {
        let values = p.values.into_data().try_to_vec::<f32>().unwrap();
        tensors.insert(path, serde_json::json!({"dims": p.shape, "values": values}));
    }
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("head_init.json");
    std::fs::write(&path, serde_json::Value::Object(tensors).to_string()).unwrap();
    eprintln!("wrote {}", path.display());
}

#[test]
fn full_fine_tuning_matches_pytorch_update_by_update() {
    let Some(minilm) = assets::minilm("parity_torch") else {
        return;
    };
    let spec = spec(&minilm);
    if let Some(dir) = std::env::var_os("STAB_PARITY_EXPORT") {
        let config = stab_models::EncoderConfig::from_dir(&minilm).unwrap();
        export_head_init(&spec, config.hidden_size, std::path::Path::new(&dir));
        return;
    }
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(golden_path()).unwrap()).unwrap();
    let order: Vec<Vec<usize>> = serde_json::from_value(golden["batch_order"].clone()).unwrap();
    let want: Vec<f64> = serde_json::from_value(golden["losses"].clone()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let eng = Engine::new(Device::flex(), dir.path()).with_batch_order(order);
    let losses = std::sync::Mutex::new(Vec::new());
    let trained = eng
        .train(&spec, &|p| {
            if let Progress::Step { loss, .. } = p {
                losses.lock().unwrap().push(loss);
            }
        })
        .unwrap_or_else(|e| panic!("{e:#}"));
    let got = losses.into_inner().unwrap();
    assert_eq!(got.len(), want.len(), "updates");
    let worst = got
        .iter()
        .zip(&want)
        .map(|(g, w)| (g - w).abs() / w.abs().max(1e-12))
        .fold(0.0f64, f64::max);
    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
        eprintln!("update {:2}: stab {g:.7}  torch {w:.7}", k + 1);
    }
    eprintln!(
        "largest relative difference over {} updates: {worst:.2e}",
        got.len()
    );
    assert!(
        worst <= 1e-4,
        "per-update losses differ from PyTorch's by up to {worst:.2e} (relative)"
    );

    // The test predictions of the trained weights, against PyTorch's.
    let r = &trained.record;
    let torch_metrics = &golden["test_metrics"];
    for (name, value) in torch_metrics.as_object().unwrap() {
        let v = value.as_f64().unwrap();
        assert!(
            (r.metrics[name] - v).abs() < 1e-9,
            "test {name}: stab {} torch {v}",
            r.metrics[name]
        );
    }
}
