//! `[train] save_best`: a run's best weights as a Hugging Face model directory that stab's
//! loader (and HF's) reads back exactly.

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn::tensor::Device;
use stab_core::{Plan, Recipe};
use stab_methods::engine::params;
use stab_methods::engine::{Checkpoint, Engine, Progress};
use stab_models::checkpoint::base_name;
use stab_models::{HeadShape, TaskHead, read_safetensors};

use crate::assets;

fn testdata() -> PathBuf {
    assets::root().join("testdata")
}

fn run(mode: &str, out: &std::path::Path) -> stab_methods::engine::TrainedRun {
    let text = format!(
        "name = \"t\"\n[model]\npath = \"{}\"\nmax_len = 64\n[data]\ndir = \"{}\"\ntasks = [\"cb\"]\ntrain_fraction = 0.3\n[train]\nmode = \"{mode}\"\nbatch_size = 8\nmax_steps = 8\neval_every = 4\nlr = 1e-3\nseeds = [3]\nsave_best = true\n[[methods]]\nname = \"mhloss\"\nheads = 3\n",
        testdata().join("fixtures/tiny-bert").display(),
        testdata().join("data").display()
    );
    let recipe = Recipe::parse(&text, "t.toml").unwrap();
    let spec = &Plan::from_recipe(&recipe).unwrap().runs[0];
    Engine::new(Device::flex(), out)
        .train(spec, &|_: Progress| {})
        .unwrap()
}

fn host(p: &params::FlatParam) -> Vec<f32> {
    p.values.clone().into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn full_tuning_checkpoint_has_hf_names_and_loads_back_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let trained = run("full", tmp.path());
    let rel = trained.record.details["checkpoint"].as_str().unwrap();
    assert_eq!(rel, format!("checkpoints/{}", trained.record.run_id));
    let dir = tmp.path().join(rel);
    for f in [
        "model.safetensors",
        "config.json",
        "vocab.txt",
        "tokenizer.json",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    assert!(
        std::fs::read_dir(tmp.path().join("checkpoints"))
            .unwrap()
            .all(|e| !e.unwrap().file_name().to_string_lossy().starts_with('.')),
        "no temporary directory left"
    );

    // Every tensor of the pre-trained BertModel is there under its HF name and shape.
    let source =
        read_safetensors(&testdata().join("fixtures/tiny-bert/model.safetensors")).unwrap();
    let saved = read_safetensors(&dir.join("model.safetensors")).unwrap();
    let expected: BTreeMap<&str, &Vec<usize>> = source
        .tensors
        .iter()
        .map(|(k, t)| (base_name(k), &t.shape))
        .filter(|(k, _)| !k.starts_with("cls.") && !k.ends_with("position_ids"))
        .collect();
    // (tiny-bert has no pooler: the run's randomly initialised one is saved too.)
    let encoder: BTreeMap<&str, &Vec<usize>> = saved
        .tensors
        .iter()
        .filter(|(k, _)| !k.starts_with("stab_head.") && !k.starts_with("pooler."))
        .map(|(k, t)| (k.as_str(), &t.shape))
        .collect();
    assert_eq!(encoder, expected);
    assert_eq!(saved.tensors["pooler.dense.weight"].shape, [32, 32]);
    assert_eq!(saved.metadata["stab_task"], "cb");
    assert_eq!(saved.metadata["stab_method"], "mhloss");

    // Read back through the loader: the same values as the trained model, encoder and head.
    let ckpt = Checkpoint::open(&dir, &Device::flex()).unwrap();
    assert_eq!(ckpt.heads(), Some(3));
    let want = params::collect(trained.model.encoder.as_ref().unwrap());
    let got = params::collect(ckpt.encoder.as_ref().unwrap());
    for (path, p) in &want {
        if path.starts_with("mlm.") {
            continue;
        }
        assert_eq!(host(p), host(&got[path]), "{path}");
    }
    let fresh = TaskHead::classification(
        32,
        3,
        0.0,
        HeadShape {
            out_layers: 3,
            replicate_dense: false,
        },
        99,
        &Device::flex(),
    );
    let head = ckpt.fill_head(fresh).unwrap();
    let want = params::collect(&trained.model.head);
    let got = params::collect(&head);
    assert_eq!(want.len(), got.len());
    for (path, p) in &want {
        assert_eq!(host(p), host(&got[path]), "{path}");
    }
    // A head of another shape is refused with the names that do not fit.
    let wrong = TaskHead::classification(32, 3, 0.0, HeadShape::default(), 1, &Device::flex());
    let err = ckpt.fill_head(wrong).err().unwrap().to_string();
    assert!(err.contains("does not fit"), "{err}");
}

#[test]
fn head_tuning_checkpoint_holds_the_head_and_names_the_frozen_encoder() {
    let tmp = tempfile::tempdir().unwrap();
    let trained = run("head", tmp.path());
    let dir = tmp
        .path()
        .join(trained.record.details["checkpoint"].as_str().unwrap());
    let saved = read_safetensors(&dir.join("model.safetensors")).unwrap();
    assert!(saved.tensors.keys().all(|k| k.starts_with("stab_head.")));
    assert!(saved.metadata["stab_encoder"].ends_with("tiny-bert"));
    let ckpt = Checkpoint::open(&dir, &Device::flex()).unwrap();
    assert!(ckpt.encoder.is_none());
}
