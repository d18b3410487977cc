//! The plugin reaches the real binary: `stab-l2sp list methods` shows L2-SP, a recipe
//! trains with it, β = 0 is FineTune and β > 0 changes training; and the penalty is
//! (β/2)·Σ‖w − w⁰‖² over the pre-trained weights.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use burn::tensor::{Device, Tensor};
use l2sp_method::L2StartingPoint;
use stab_core::Pooling;
use stab_methods::engine::params::{self, ParamTransform};
use stab_methods::engine::{Method, StepContext, StepView, TaskModel, TokenInput};
use stab_models::{HeadShape, NoiseStream, TaskHead, TextEncoder, load_encoder};

#[path = "../../../testsupport/assets.rs"]
mod assets;

fn testdata() -> PathBuf {
    assets::root().join("testdata")
}

fn stab_l2sp() -> Command {
    Command::new(env!("CARGO_BIN_EXE_stab-l2sp"))
}

#[test]
fn the_plugin_binary_lists_l2sp_beside_the_built_in_methods() {
    let out = stab_l2sp().args(["list", "methods"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for name in ["l2sp", "finetune", "mixout", "surt", "llrd"] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    assert!(text.contains("beta"), "{text}");
}

#[test]
fn a_recipe_trains_with_l2sp_and_beta_zero_is_finetune() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = dir.path().join("l2sp.toml");
    std::fs::write(
        &recipe,
        format!(
            "name = \"l2sp\"\nout = \"{out}\"\n[model]\npath = \"{model}\"\nmax_len = 64\n[data]\ndir = \"{data}\"\ntasks = [\"cb\"]\ntrain_fraction = 0.3\n[train]\nbatch_size = 8\nmax_steps = 8\neval_every = 4\nlr = 1e-3\nseeds = [1]\n[[methods]]\nname = \"finetune\"\n[[methods]]\nname = \"l2sp\"\nbeta = 0.0\n[[methods]]\nname = \"l2sp\"\nbeta = 100.0\n",
            out = dir.path().join("out").display(),
            model = testdata().join("fixtures/tiny-bert").display(),
            data = testdata().join("data").display(),
        ),
    )
    .unwrap();
    let run = stab_l2sp().arg("run").arg(&recipe).output().unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let store = std::fs::read_to_string(dir.path().join("out/runs.jsonl")).unwrap();
    let records: Vec<serde_json::Value> = store
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 3);
    let by = |method: &str, beta: Option<f64>| {
        records
            .iter()
            .find(|r| {
                r["method"] == method
                    && beta.is_none_or(|b| r["method_params"]["beta"].as_f64() == Some(b))
            })
            .unwrap()
            .clone()
    };
    let (finetune, zero, strong) = (
        by("finetune", None),
        by("l2sp", Some(0.0)),
        by("l2sp", Some(100.0)),
    );
    for key in ["train_loss", "dev_curve"] {
        assert_eq!(finetune["details"][key], zero["details"][key], "{key}");
    }
    assert_eq!(finetune["metrics"], zero["metrics"]);
    assert_ne!(
        finetune["details"]["train_loss"],
        strong["details"]["train_loss"]
    );
}

#[test]
fn the_penalty_is_half_beta_times_the_squared_distance_to_the_pretrained_weights() {
    let dev = Device::flex().autodiff();
    let tiny = testdata().join("fixtures/tiny-bert");
    let (encoder, _) = load_encoder(&tiny, &dev).unwrap();
    let pad = encoder.config.pad_id();
    let head = TaskHead::classification(
        encoder.config.hidden_size,
        3,
        0.0,
        HeadShape::default(),
        1,
        &dev,
    );
    let start = TaskModel {
        encoder: Some(encoder),
        head,
        pooling: Pooling::Cls,
    };
    // Move every parameter by 0.1: each pre-trained element adds 0.01 to Σ‖w − w⁰‖².
    struct Shift;
    impl ParamTransform for Shift {
        fn apply<const D: usize>(&mut self, _: &str, v: Tensor<D>) -> Tensor<D> {
            Tensor::from_data(v.add_scalar(0.1).into_data(), &dev_of())
        }
    }
    fn dev_of() -> Device {
        Device::flex().autodiff()
    }
    let moved = params::transform(start.clone(), &mut Shift);
    let all = params::collect(&start);
    let pretrained: BTreeSet<String> = all
        .keys()
        .filter(|k| k.starts_with("encoder.") && !k.starts_with("encoder.pooler"))
        .cloned()
        .collect();
    let elements: usize = pretrained
        .iter()
        .filter(|k| !k.contains(".mlm."))
        .map(|k| all[k].shape.iter().product::<usize>())
        .sum();
    let tok = TextEncoder::from_dir(&tiny, pad).unwrap();
    let data = stab_data_rows(&tok);
    let refs: Vec<_> = data.iter().take(4).collect();
    let input = TokenInput::new(&refs, pad as i64, None);
    let forward = moved.forward_tokens(&input, &dev);
    let noise = NoiseStream::new(0);
    let ctx = StepContext {
        start: &start,
        pretrained: &pretrained,
        noise: &noise,
        own_noise: &noise,
        step: 0,
        total: 1,
        device: &dev,
    };
    let labels: Vec<usize> = refs.iter().map(|r| r.label).collect();
    let view = StepView {
        model: &moved,
        forward: &forward,
        input: Some(&input),
        features: None,
        labels: &labels,
        classes: 3,
        ctx: &ctx,
    };
    let terms = L2StartingPoint { beta: 2.0 }.loss_terms(&view);
    let got = terms[0].1.clone().into_scalar::<f64>();
    let want = elements as f64 * 0.01; // (β/2)·Σ 0.1² with β = 2
    assert!((got - want).abs() < 1e-3 * want, "{got} vs {want}");
    assert!(L2StartingPoint { beta: 0.0 }.loss_terms(&view).is_empty());
}

fn stab_data_rows(tok: &TextEncoder) -> Vec<stab_data::encode::EncodedRow> {
    let data = stab_data::task_def("cb")
        .unwrap()
        .load(&testdata().join("data"))
        .unwrap();
    stab_data::encode::encode_examples(tok, &data.train, 64).unwrap()
}
