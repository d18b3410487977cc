//! The parameter-efficient plugins against their formulas, on the tiny-bert fixture
//! (h = 32, FFN 64, 2 layers): LoRA's trainable count r·(d_in + d_out) per target, its
//! first forward equal to FineTune's (B = 0), its frozen weights bit-identical after
//! training, its merged W* − W0 of rank ≤ r and its PEFT files; BitFit moving only biases
//! and the head; adapters' count 2·d·m + m + d per adapter, starting as the identity.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use burn::tensor::Device;
use stab_core::{Plan, Recipe, RunRecord};
use stab_methods::engine::params;
use stab_methods::engine::{Engine, Progress, TaskModel, TrainedRun};
use stab_models::EncoderConfig;

use crate::assets;

fn testdata() -> PathBuf {
    assets::root().join("testdata")
}

fn tiny() -> PathBuf {
    testdata().join("fixtures/tiny-bert")
}

fn train(eng: &Engine, methods: &str, extra_train: &str) -> (TrainedRun, Vec<f64>) {
    train_on(&tiny(), eng, methods, extra_train)
}

fn train_on(
    model: &std::path::Path,
    eng: &Engine,
    methods: &str,
    extra_train: &str,
) -> (TrainedRun, Vec<f64>) {
    let text = format!(
        "name = \"t\"\n[model]\npath = \"{}\"\nmax_len = 64\n[data]\ndir = \"{}\"\ntasks = [\"cb\"]\ntrain_fraction = 0.3\n[train]\nmode = \"full\"\nbatch_size = 8\nmax_steps = 8\neval_every = 4\nlr = 1e-2\nseeds = [4]\n{extra_train}[[methods]]\n{methods}\n",
        model.display(),
        testdata().join("data").display()
    );
    let recipe = Recipe::parse(&text, "t.toml").unwrap_or_else(|e| panic!("{e}"));
    let spec = &Plan::from_recipe(&recipe).unwrap().runs[0];
    let losses = Mutex::new(Vec::new());
    let run = eng
        .train(spec, &|p| {
            if let Progress::Step { loss, .. } = p {
                losses.lock().unwrap().push(loss);
            }
        })
        .unwrap_or_else(|e| panic!("{methods}: {e:#}"));
    (run, losses.into_inner().unwrap())
}

fn counts(r: &RunRecord) -> (u64, u64) {
    let d = &r.details;
    (
        d["trainable_params"].as_u64().unwrap(),
        d["total_params"].as_u64().unwrap(),
    )
}

/// Every float parameter as host values, by path.
fn values(model: &impl burn::module::Module) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    params::collect(model)
        .into_iter()
        .map(|(k, p)| {
            let v = p.values.into_data().try_to_vec::<f32>().unwrap();
            (k, (p.shape, v))
        })
        .collect()
}

/// The pre-trained encoder's parameters; tiny-bert has no pooler (a run draws its own),
/// so the pooler is left out.
fn pretrained() -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    let (encoder, _) = stab_models::load_encoder(&tiny(), &Device::flex()).unwrap();
    let mut v = values(&encoder);
    v.retain(|k, _| !k.starts_with("pooler."));
    v
}

fn encoder_of(model: &TaskModel) -> BTreeMap<String, (Vec<usize>, Vec<f32>)> {
    values(model.encoder.as_ref().unwrap())
}

/// The numerical rank of a row-major `rows × cols` matrix (Gaussian elimination with
/// full pivoting, pivots below `tol`·max|a| count as zero).
fn rank(mut a: Vec<f64>, rows: usize, cols: usize, tol: f64) -> usize {
    let scale = a.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if scale == 0.0 {
        return 0;
    }
    let mut r = 0;
    let mut used_cols = vec![false; cols];
    for _ in 0..rows.min(cols) {
        let mut best = (0.0, 0, 0);
        for i in r..rows {
            for j in 0..cols {
                if !used_cols[j] && a[i * cols + j].abs() > best.0 {
                    best = (a[i * cols + j].abs(), i, j);
                }
            }
        }
        if best.0 <= tol * scale {
            break;
        }
        let (_, pi, pj) = best;
        for j in 0..cols {
            a.swap(r * cols + j, pi * cols + j);
        }
        used_cols[pj] = true;
        for i in r + 1..rows {
            let f = a[i * cols + pj] / a[r * cols + pj];
            for j in 0..cols {
                a[i * cols + j] -= f * a[r * cols + j];
            }
        }
        r += 1;
    }
    r
}

#[test]
fn lora_counts_its_updates_starts_as_finetune_and_keeps_frozen_weights() {
    let dir = tempfile::tempdir().unwrap();
    let eng = Engine::new(Device::flex(), dir.path());
    let config = EncoderConfig::from_dir(&tiny()).unwrap();
    let (h, i, layers) = (32u64, 64u64, 2u64);
    assert_eq!((config.hidden_size, config.intermediate_size), (32, 64));
    let head = h * h + h + h * 3 + 3;
    let (base, base_losses) = train(&eng, "name = \"test-finetune-no-dropout\"", "");
    let r = 4u64;
    let (lora, lora_losses) = train(
        &eng,
        "name = \"lora\"\nr = 4\ndropout = 0.0\ntargets = [\"query\", \"value\", \"intermediate\"]\nstack = [{ name = \"test-finetune-no-dropout\" }]",
        "",
    );
    let (trainable, total) = counts(&lora.record);
    // query and value: r·(h + h) each; intermediate: r·(h + i).
    let updates = layers * (2 * r * (h + h) + r * (h + i));
    assert_eq!(trainable, updates + head);
    assert_eq!(total, counts(&base.record).1 + updates);
    // B = 0: the first update's loss is FineTune's, bit for bit; then they part.
    assert_eq!(lora_losses[0], base_losses[0]);
    assert_ne!(lora_losses[1], base_losses[1]);

    // Every weight of the pre-trained encoder is where it started (the selected weights,
    // before the merge).
    let start = pretrained();
    let trained = encoder_of(&lora.selected);
    for (path, v) in &start {
        assert!(&trained[path] == v, "{path} moved");
    }
    // The merged weights differ from W0 by a matrix of rank ≤ r on the targets only.
    let merged = encoder_of(&lora.model);
    assert!(merged.keys().all(|k| !k.contains("lora")), "merged away");
    let mut targets = 0;
    for (path, (shape, w0)) in &start {
        let w = &merged[path].1;
        let is_target = path.ends_with(".weight")
            && [
                "self_attn.query.",
                "self_attn.value.",
                "intermediate.dense.",
            ]
            .iter()
            .any(|t| path.contains(t));
        if !is_target {
            assert!(w == w0, "{path} is not a target but changed");
            continue;
        }
        targets += 1;
        let delta: Vec<f64> = w.iter().zip(w0).map(|(a, b)| (*a - *b) as f64).collect();
        let k = rank(delta, shape[0], shape[1], 1e-3);
        assert!(k >= 1 && k as u64 <= r, "{path}: rank {k}");
    }
    assert_eq!(targets, 6);
}

#[test]
fn lora_checkpoints_merged_weights_and_its_update_in_peft_format() {
    let dir = tempfile::tempdir().unwrap();
    let eng = Engine::new(Device::flex(), dir.path());
    let (run, _) = train(
        &eng,
        "name = \"lora\"\nr = 2\nalpha = 8.0",
        "save_best = true\n",
    );
    let ckpt = dir
        .path()
        .join(run.record.details["checkpoint"].as_str().unwrap());
    let model = stab_models::read_safetensors(&ckpt.join("model.safetensors")).unwrap();
    let adapter =
        stab_models::read_safetensors(&ckpt.join("peft/adapter_model.safetensors")).unwrap();
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ckpt.join("peft/adapter_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(config["peft_type"], "LORA");
    assert_eq!(
        config["fan_in_fan_out"], false,
        "BERT's modules are Linears"
    );
    assert_eq!(config["r"], 2);
    assert_eq!(
        config["target_modules"],
        serde_json::json!([
            "encoder.layer.0.attention.self.query",
            "encoder.layer.0.attention.self.value",
            "encoder.layer.1.attention.self.query",
            "encoder.layer.1.attention.self.value"
        ])
    );
    assert_eq!(adapter.tensors.len(), 2 * 2 * 2);
    let base = stab_models::read_safetensors(&tiny().join("model.safetensors")).unwrap();
    // W* = W0 + (α/r)·B·A in torch layouts ([out, in]).
    for layer in 0..2 {
        for m in ["query", "value"] {
            let key = format!("encoder.layer.{layer}.attention.self.{m}");
            let a = &adapter.tensors[&format!("base_model.model.{key}.lora_A.weight")];
            let b = &adapter.tensors[&format!("base_model.model.{key}.lora_B.weight")];
            assert_eq!(
                (a.shape.clone(), b.shape.clone()),
                (vec![2, 32], vec![32, 2])
            );
            // tiny-bert is a BertForMaskedLM file (`bert.` names).
            let w0 = &base.tensors[&format!("bert.{key}.weight")];
            let w = &model.tensors[&format!("{key}.weight")];
            for o in 0..32 {
                for i in 0..32 {
                    let ba: f32 = (0..2)
                        .map(|k| b.values[o * 2 + k] * a.values[k * 32 + i])
                        .sum();
                    let want = w0.values[o * 32 + i] + 4.0 * ba;
                    let got = w.values[o * 32 + i];
                    assert!(
                        (got - want).abs() < 1e-5,
                        "{key} [{o}, {i}]: {got} vs {want}"
                    );
                }
            }
        }
    }
}

#[test]
fn bitfit_moves_only_biases_and_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let eng = Engine::new(Device::flex(), dir.path());
    let (run, _) = train(&eng, "name = \"bitfit\"", "");
    let start = pretrained();
    let trained = encoder_of(&run.selected);
    let mut moved = 0;
    for (path, v) in &start {
        let bias = path.ends_with(".bias") || path.ends_with(".beta");
        if !bias || path.starts_with("mlm.") {
            assert!(&trained[path] == v, "{path} moved");
        } else if &trained[path] != v {
            moved += 1;
        }
    }
    assert!(moved > 10, "only {moved} bias terms moved");
    let (trainable, _) = counts(&run.record);
    let biases: usize = start
        .iter()
        .filter(|(p, _)| (p.ends_with(".bias") || p.ends_with(".beta")) && !p.starts_with("mlm."))
        .map(|(_, (s, _))| s.iter().product::<usize>())
        .sum();
    // The pooler's bias trains too (tiny-bert's pooler is drawn by the run).
    assert_eq!(trainable as usize, biases + 32 + 32 * 32 + 32 + 32 * 3 + 3);
}

#[test]
fn adapters_count_by_the_formula_and_start_as_the_identity() {
    let dir = tempfile::tempdir().unwrap();
    let eng = Engine::new(Device::flex(), dir.path());
    let (base, base_losses) = train(&eng, "name = \"test-finetune-no-dropout\"", "");
    let (d, m, layers) = (32u64, 8u64, 2u64);
    let per_adapter = 2 * d * m + m + d;
    let layer_norms = 2 * d * (1 + 2 * layers);
    let head = d * d + d + d * 3 + 3;
    for (placement, per_layer) in [("houlsby", 2), ("pfeiffer", 1)] {
        let (run, losses) = train(
            &eng,
            &format!(
                "name = \"adapter\"\nsize = 8\nplacement = \"{placement}\"\nstack = [{{ name = \"test-finetune-no-dropout\" }}]"
            ),
            "",
        );
        let (trainable, total) = counts(&run.record);
        let adapters = layers * per_layer * per_adapter;
        assert_eq!(trainable, adapters + layer_norms + head, "{placement}");
        assert_eq!(total, counts(&base.record).1 + adapters, "{placement}");
        assert_eq!(losses[0], base_losses[0], "{placement}: identity at start");
        // The frozen weights (all but LayerNorms, adapters, head) never move.
        let start = pretrained();
        let trained = encoder_of(&run.selected);
        for (path, v) in &start {
            if !path.contains("layer_norm") {
                assert!(&trained[path] == v, "{placement}: {path} moved");
            }
        }
        assert!(trained.keys().any(|k| k.contains(".adapter.up.")));
    }
}

#[test]
fn peft_methods_change_training_and_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let eng = Engine::new(Device::flex(), dir.path());
    let (finetune, _) = train(&eng, "name = \"finetune\"", "");
    for m in ["name = \"lora\"", "name = \"bitfit\"", "name = \"adapter\""] {
        let (run, _) = train(&eng, m, "");
        assert_ne!(
            run.record.details["train_loss"], finetune.record.details["train_loss"],
            "{m}"
        );
    }
    let names: Vec<&str> = stab_core::registry::methods()
        .iter()
        .map(|e| e.name)
        .collect();
    for n in ["lora", "bitfit", "adapter"] {
        assert!(names.contains(&n));
    }
}

/// A LoRA run's PEFT file `file` under results directory `out`.
fn adapter_file(out: &std::path::Path, run: &TrainedRun, file: &str) -> PathBuf {
    out.join(run.record.details["checkpoint"].as_str().unwrap())
        .join("peft")
        .join(file)
}

/// A LoRA run's `peft/adapter_config.json`.
fn adapter_config(out: &std::path::Path, run: &TrainedRun) -> serde_json::Value {
    let text = std::fs::read_to_string(adapter_file(out, run, "adapter_config.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A LoRA run's `peft/adapter_model.safetensors`.
fn adapter_weights(out: &std::path::Path, run: &TrainedRun) -> stab_models::TensorFile {
    stab_models::read_safetensors(&adapter_file(out, run, "adapter_model.safetensors")).unwrap()
}

/// Each family's adapter files name that family's Hugging Face modules (issue #34:
/// DeBERTa's were BERT's). ModernBERT fuses query, key and value into `attn.Wqkv`: the
/// query and value updates become one update of rank 2r there, A stacking theirs and B
/// holding each in its row block, with α doubled so the scale stays α/r. (HF PEFT itself
/// loads each family's files: scripts/check_peft.py.)
#[test]
fn peft_files_use_each_familys_module_names() {
    let dir = tempfile::tempdir().unwrap();
    let eng = Engine::new(Device::flex(), dir.path());
    let lora = "name = \"lora\"\nr = 2\nalpha = 8.0";
    let (deberta, _) = train_on(
        &testdata().join("fixtures/tiny-deberta-v3"),
        &eng,
        lora,
        "save_best = true\n",
    );
    let config = adapter_config(dir.path(), &deberta);
    assert_eq!(
        config["target_modules"][0],
        "encoder.layer.0.attention.self.query_proj"
    );
    let (modern, _) = train_on(
        &testdata().join("fixtures/tiny-modernbert"),
        &eng,
        lora,
        "save_best = true\n",
    );
    let config = adapter_config(dir.path(), &modern);
    assert_eq!(config["target_modules"][0], "layers.0.attn.Wqkv");
    assert_eq!(config["rank_pattern"]["layers.0.attn.Wqkv"], 4);
    assert_eq!(config["alpha_pattern"]["layers.0.attn.Wqkv"], 16.0);
    let adapter = adapter_weights(dir.path(), &modern);
    let b = &adapter.tensors["base_model.model.layers.0.attn.Wqkv.lora_B.weight"];
    let h = b.shape[0] / 3;
    assert_eq!(b.shape[1], 4);
    // Key rows (the middle block) are untouched; the query block uses only the first rank
    // pair, the value block only the second.
    for row in 0..3 * h {
        for k in 0..4 {
            let v = b.values[row * 4 + k];
            let live = (row < h && k < 2) || (row >= 2 * h && k >= 2);
            if !live {
                assert_eq!(v, 0.0, "row {row}, rank {k}");
            }
        }
    }
}

/// A decoder's adapter is PEFT's `SEQ_CLS` form of its `*ForSequenceClassification`
/// checkpoint: modules under the task model's prefix, named as PEFT names them (the recipe
/// may use those names), every linear target including Llama's `up_proj`, and `score`
/// saved whole. GPT-2's `c_attn` (query, key and value) is one module of rank 3r.
/// (HF PEFT loads these files and gives the merged checkpoint's logits:
/// scripts/check_decoder_checkpoints.py.)
#[test]
fn decoder_adapters_are_peft_sequence_classifiers() {
    let dir = tempfile::tempdir().unwrap();
    let eng = Engine::new(Device::flex(), dir.path());
    let all = "targets = [\"q_proj\", \"k_proj\", \"v_proj\", \"o_proj\", \"gate_proj\", \"up_proj\", \"down_proj\"]";
    let (llama, _) = train_on(
        &testdata().join("fixtures/tiny-llama"),
        &eng,
        &format!("name = \"lora\"\nr = 2\nalpha = 8.0\n{all}"),
        "save_best = true\n",
    );
    let config = adapter_config(dir.path(), &llama);
    assert_eq!(config["task_type"], "SEQ_CLS");
    assert_eq!(config["modules_to_save"], serde_json::json!(["score"]));
    let modules: Vec<&str> = config["target_modules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(modules.len(), 2 * 7, "{modules:?}");
    assert!(
        modules.contains(&"model.layers.1.mlp.up_proj"),
        "{modules:?}"
    );
    let adapter = adapter_weights(dir.path(), &llama);
    assert_eq!(
        adapter.tensors["base_model.model.score.weight"].shape,
        [3, 32]
    );
    let up = &adapter.tensors["base_model.model.model.layers.0.mlp.up_proj.lora_B.weight"];
    assert_eq!(up.shape, [64, 2]);
    assert!(
        up.values.iter().any(|&v| v != 0.0),
        "the up projection's update trained"
    );

    let (gpt2, _) = train_on(
        &testdata().join("fixtures/tiny-gpt2"),
        &eng,
        "name = \"lora\"\nr = 2\nalpha = 8.0\ntargets = [\"c_attn\"]",
        "save_best = true\n",
    );
    let config = adapter_config(dir.path(), &gpt2);
    assert_eq!(config["fan_in_fan_out"], true);
    assert_eq!(config["rank_pattern"]["transformer.h.0.attn.c_attn"], 6);
    assert_eq!(config["alpha_pattern"]["transformer.h.0.attn.c_attn"], 24.0);
}

/// A PEFT module name of another family, or `up` where the feed-forward has no separate up
/// projection, is refused before training with the reason.
#[test]
fn lora_refuses_module_names_of_other_families() {
    let eng = Engine::new(Device::flex(), tempfile::tempdir().unwrap().path());
    let cases = [
        ("tiny-bert", "q_proj", "module name of Llama"),
        ("tiny-llama", "c_attn", "module name of GPT-2"),
        ("tiny-gpt2", "down_proj", "module name of Llama"),
        ("tiny-bert", "up", "separate up projection"),
    ];
    for (model, target, why) in cases {
        let text = format!(
            "name = \"t\"\n[model]\npath = \"{}\"\nmax_len = 64\n[data]\ndir = \"{}\"\ntasks = [\"cb\"]\n[train]\nmode = \"full\"\nseeds = [4]\n[[methods]]\nname = \"lora\"\ntargets = [\"{target}\"]\n",
            testdata().join("fixtures").join(model).display(),
            testdata().join("data").display()
        );
        let recipe = Recipe::parse(&text, "t.toml").unwrap();
        let spec = &Plan::from_recipe(&recipe).unwrap().runs[0];
        let err = format!("{:#}", eng.check(spec).expect_err("refused"));
        assert!(
            err.contains(why) && err.contains(target),
            "{model} {target}: {err}"
        );
    }
}
