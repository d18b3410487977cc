//! The engine on the ELECTRA, DeBERTa-v3 and ModernBERT fixtures (tiny random-weight
//! models in `testdata/fixtures`, checked against PyTorch in stab-models' golden tests):
//! every task in both modes, falling loss on CB and RTE, every method in both modes,
//! MixOut and LNSR reaching the family's layers, and `save_best` under each family's HF
//! names, read back exactly.

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn::tensor::Device;
use stab_core::{Plan, Recipe, RunSpec};
use stab_methods as _;
use stab_methods::engine::{Checkpoint, Engine, Progress, params};
use stab_models::checkpoint::base_name;
use stab_models::read_safetensors;

use crate::assets;

const FAMILIES: [&str; 3] = ["tiny-electra", "tiny-deberta-v3", "tiny-modernbert"];
const DECODERS: [&str; 4] = ["tiny-gpt2", "tiny-llama", "tiny-qwen2", "tiny-qwen3"];

fn testdata() -> PathBuf {
    assets::root().join("testdata")
}

/// The runs of a recipe on fixture `family` and the task slices: `model_extra` goes into
/// `[model]`, `body` after `[data] dir`.
fn specs(family: &str, model_extra: &str, body: &str) -> Vec<RunSpec> {
    let text = format!(
        "name = \"t\"\n[model]\npath = \"{}\"\nmax_len = 64\n{model_extra}[data]\ndir = \"{}\"\n{body}",
        testdata().join("fixtures").join(family).display(),
        testdata().join("data").display()
    );
    let recipe = Recipe::parse(&text, "test.toml").unwrap_or_else(|e| panic!("{e}"));
    Plan::from_recipe(&recipe)
        .unwrap_or_else(|e| panic!("{family}: {e}"))
        .runs
}

fn quiet(_: Progress) {}

fn finite_losses(r: &stab_core::RunRecord) -> Vec<f64> {
    let losses: Vec<f64> = r.details["train_loss"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l[1].as_f64().unwrap())
        .collect();
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    losses
}

#[test]
fn every_task_in_both_modes_on_every_family() {
    let tasks = [
        "cola", "sst2", "mrpc", "rte", "wnli", "cb", "wsc", "multirc", "wic",
    ];
    let dir = tempfile::tempdir().unwrap();
    let eng = Engine::new(Device::flex(), dir.path());
    for family in FAMILIES {
        for mode in ["full", "head"] {
            let runs = specs(
                family,
                "",
                &format!(
                    "tasks = {tasks:?}\ntrain_fraction = 0.3\n[train]\nmode = \"{mode}\"\nbatch_size = 8\nmax_steps = 3\nseeds = 1\nlr = 1e-3\n[[methods]]\nname = \"finetune\"\n"
                ),
            );
            for spec in &runs {
                let (r, _) = eng
                    .run(spec, &quiet)
                    .unwrap_or_else(|e| panic!("{family} {} ({mode}): {e:#}", spec.task));
                assert_eq!(r.steps, 3, "{family} {}", spec.task);
                finite_losses(&r);
                let primary = r.metrics["primary"];
                assert!(
                    primary.is_finite() && (-1.0..=1.0).contains(&primary),
                    "{family} {} {mode}: {primary}",
                    spec.task
                );
            }
        }
    }
}

#[test]
fn loss_falls_on_cb_and_rte_on_every_family() {
    let dir = tempfile::tempdir().unwrap();
    let eng = Engine::new(Device::flex(), dir.path());
    for family in FAMILIES {
        for mode in ["head", "full"] {
            let (pooling, epochs, lr) = if mode == "head" {
                ("pooling = \"mean\"\n", 40, "1e-2")
            } else {
                ("", 20, "1e-3")
            };
            let runs = specs(
                family,
                pooling,
                &format!(
                    "tasks = [\"cb\", \"rte\"]\ntrain_fraction = 0.5\n[train]\nmode = \"{mode}\"\nbatch_size = 8\nepochs = {epochs}\nlr = {lr}\nwarmup = 0.0\npatience = 1000\nseeds = 1\n[[methods]]\nname = \"finetune\"\n"
                ),
            );
            for spec in &runs {
                let (r, _) = eng.run(spec, &quiet).unwrap();
                let curve = finite_losses(&r);
                let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
                let (first, last) = (mean(&curve[..3]), mean(&curve[curve.len() - 3..]));
                eprintln!(
                    "{family} {mode} {}: train loss {first:.3} → {last:.3}",
                    spec.task
                );
                assert!(
                    last < first - 0.03,
                    "{family} {mode} {}: loss {first} → {last}",
                    spec.task
                );
            }
        }
    }
}

/// Every registered method with settings small enough for a test.
const METHODS: &[&str] = &[
    "name = \"finetune\"",
    "name = \"mixout\"\np = 0.5",
    "name = \"lnsr\"",
    "name = \"lnsr\"\nvariant = \"original\"",
    "name = \"mmr\"",
    "name = \"mhloss\"\nheads = 3",
    "name = \"surt\"\nmlm_epochs = 1\nmlm_max_steps = 2",
    "name = \"reinit\"\nk = 1",
    "name = \"llrd\"",
    "name = \"lora\"\nr = 2",
    "name = \"adapter\"\nsize = 4",
    "name = \"bitfit\"",
    "name = \"rdrop\"",
    "name = \"r3f\"",
    "name = \"child_tuning\"\nfisher_batches = 2",
    "name = \"child_tuning\"\nvariant = \"f\"",
    "name = \"noisytune\"",
    "name = \"sam\"",
    "name = \"ema\"",
];

/// Every method on every one of `families` in both modes: it runs with finite losses, or it
/// is refused before training with its reason. The parameter-choosing methods (LoRA,
/// BitFit, adapters) are refused in head tuning, where they would do nothing; `refusal`
/// names what else a family refuses, and the words its message must contain.
fn every_method_in_both_modes(
    families: &[&str],
    refusal: impl Fn(&str, &str) -> Option<&'static str>,
) {
    let dir = tempfile::tempdir().unwrap();
    let eng = Engine::new(Device::flex(), dir.path());
    for &family in families {
        for mode in ["full", "head"] {
            for method in METHODS {
                let runs = specs(
                    family,
                    "",
                    &format!(
                        "tasks = [\"cb\"]\ntrain_fraction = 0.3\n[train]\nmode = \"{mode}\"\nbatch_size = 8\nmax_steps = 2\nseeds = 1\nlr = 1e-3\n[[methods]]\n{method}\n"
                    ),
                );
                let result = eng.check(&runs[0]).and_then(|()| eng.run(&runs[0], &quiet));
                let chooses = ["lora", "bitfit", "adapter"]
                    .iter()
                    .any(|m| method.contains(&format!("\"{m}\"")));
                let refused = if mode == "head" && chooses {
                    Some("freezes the encoder")
                } else {
                    refusal(family, method)
                };
                if let Some(reason) = refused {
                    let e = result.expect_err("refused");
                    assert!(
                        format!("{e:#}").contains(reason),
                        "{family} {mode} {method}: {e:#}"
                    );
                    continue;
                }
                let (r, _) = result.unwrap_or_else(|e| panic!("{family} {mode} {method}: {e:#}"));
                finite_losses(&r);
                assert!(r.metrics["primary"].is_finite(), "{family} {method}");
            }
        }
    }
}

#[test]
fn every_method_runs_on_every_family_in_both_modes() {
    every_method_in_both_modes(&FAMILIES, |family, method| {
        // BitFit refuses a model without biases.
        (family == "tiny-modernbert" && method.contains("bitfit")).then_some("ModernBERT has none")
    });
}

/// Every method on every decoder in both modes: it runs with finite losses, or is refused
/// before training with its reason (BitFit without biases). SURT re-trains them as causal
/// LMs.
#[test]
fn every_method_runs_on_every_decoder_in_both_modes() {
    every_method_in_both_modes(&DECODERS, |family, method| {
        if method.contains("bitfit") && family != "tiny-gpt2" && family != "tiny-qwen2" {
            Some("has none")
        } else {
            None
        }
    });
}

/// FineTune and LoRA lower the training loss of every decoder on CB over 20 epochs.
#[test]
fn loss_falls_on_cb_for_finetune_and_lora_on_every_decoder() {
    let dir = tempfile::tempdir().unwrap();
    let eng = Engine::new(Device::flex(), dir.path());
    for family in DECODERS {
        for method in [
            "name = \"finetune\"",
            "name = \"lora\"\nr = 4\ndropout = 0.0",
        ] {
            let runs = specs(
                family,
                "",
                &format!(
                    "tasks = [\"cb\"]\ntrain_fraction = 0.5\n[train]\nmode = \"full\"\nbatch_size = 8\nepochs = 20\nlr = 1e-3\nwarmup = 0.0\npatience = 1000\nseeds = 1\n[[methods]]\n{method}\n"
                ),
            );
            let (r, _) = eng.run(&runs[0], &quiet).unwrap();
            let curve = finite_losses(&r);
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
            let (first, last) = (mean(&curve[..3]), mean(&curve[curve.len() - 3..]));
            eprintln!("{family} {method}: train loss {first:.3} → {last:.3}");
            assert!(
                last < first - 0.03,
                "{family} {method}: loss {first} → {last}"
            );
        }
    }
}

#[test]
fn mixout_and_lnsr_reach_every_layer_of_each_family() {
    for family in FAMILIES {
        let (encoder, _) =
            stab_models::load_encoder(&testdata().join("fixtures").join(family), &Device::flex())
                .unwrap();
        let layers = encoder.encoder.layer.len();
        let paths: Vec<String> = params::collect(&encoder).into_keys().collect();
        let mixed: Vec<&String> = paths
            .iter()
            .filter(|p| stab_methods::mixout::is_mixed_linear(&format!("encoder.{p}"), 2))
            .collect();
        // q, k, v, attention output, FFN in and out per layer, the pooler, ELECTRA's projection.
        let extra = usize::from(family == "tiny-electra");
        assert_eq!(mixed.len(), 6 * layers + 1 + extra, "{family}: {mixed:?}");
        for l in 0..layers {
            assert!(
                mixed
                    .iter()
                    .filter(|p| p.starts_with(&format!("encoder.layer.{l}.")))
                    .count()
                    == 6,
                "{family} layer {l}"
            );
        }
        // LNSR's original variant compares every layer's output: one per layer.
        let batch = stab_models::TextEncoder::from_dir(
            &testdata().join("fixtures").join(family),
            encoder.config.pad_id(),
        )
        .unwrap()
        .encode(
            &[stab_models::TextInput {
                text: "a short test".into(),
                text_pair: None,
            }],
            16,
        )
        .unwrap();
        let out = encoder.forward(&batch);
        let again = encoder.forward_layers(
            out.hidden_states[0].clone(),
            &encoder.attention_context(&batch),
        );
        assert_eq!(again.len(), layers);
        let last = again
            .last()
            .unwrap()
            .clone()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let want = out.last().into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(
            last, want,
            "{family}: the layers from the embeddings reproduce the forward pass"
        );
    }
}

#[test]
fn save_best_writes_each_familys_hf_names_and_loads_back_exactly() {
    for family in FAMILIES.into_iter().chain(DECODERS) {
        let tmp = tempfile::tempdir().unwrap();
        let runs = specs(
            family,
            "",
            "tasks = [\"cb\"]\ntrain_fraction = 0.3\n[train]\nmode = \"full\"\nbatch_size = 8\nmax_steps = 4\neval_every = 2\nlr = 1e-3\nseeds = [3]\nsave_best = true\n[[methods]]\nname = \"finetune\"\n",
        );
        let trained = Engine::new(Device::flex(), tmp.path())
            .train(&runs[0], &|_: Progress| {})
            .unwrap();
        let dir = tmp
            .path()
            .join(trained.record.details["checkpoint"].as_str().unwrap());
        let source = read_safetensors(
            &testdata()
                .join("fixtures")
                .join(family)
                .join("model.safetensors"),
        )
        .unwrap();
        let saved = read_safetensors(&dir.join("model.safetensors")).unwrap();
        // Every base-model tensor of the pre-trained file, under its name and shape.
        let heads = [
            "lm_predictions.",
            "discriminator_predictions.",
            "decoder.",
            "head.",
            "lm_head.",
        ];
        // A decoder's checkpoint is its `*ForSequenceClassification`: the base model under
        // the task model's prefix (as the pre-trained causal-LM files name it) and `score`.
        let decoder = DECODERS.contains(&family);
        let expected: BTreeMap<&str, &Vec<usize>> = source
            .tensors
            .iter()
            .map(|(k, t)| (if decoder { k.as_str() } else { base_name(k) }, &t.shape))
            .filter(|(k, _)| !heads.iter().any(|h| base_name(k).starts_with(h)))
            .collect();
        let encoder: BTreeMap<&str, &Vec<usize>> = saved
            .tensors
            .iter()
            .filter(|(k, _)| {
                !k.starts_with("stab_head.")
                    && !k.starts_with("pooler.")
                    && !k.starts_with("head.")
                    && *k != "score.weight"
            })
            .map(|(k, t)| (k.as_str(), &t.shape))
            .collect();
        assert_eq!(encoder, expected, "{family}");
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap())
                .unwrap();
        if decoder {
            let hidden = trained.model.encoder.as_ref().unwrap().config.hidden_size;
            assert_eq!(saved.tensors["score.weight"].shape, [3, hidden], "{family}");
            let class = config["architectures"][0].as_str().unwrap();
            assert!(
                class.ends_with("ForSequenceClassification"),
                "{family}: {class}"
            );
            assert_eq!(config["id2label"]["2"], "neutral", "{family}");
            assert!(config["pad_token_id"].is_u64(), "{family}");
        } else {
            assert!(
                config.get("id2label").is_none(),
                "{family}: the config is copied"
            );
        }
        let ckpt = Checkpoint::open(&dir, &Device::flex()).unwrap();
        let want = params::collect(trained.model.encoder.as_ref().unwrap());
        let got = params::collect(ckpt.encoder.as_ref().unwrap());
        for (path, p) in &want {
            // A decoder has no pooler (its sequence vector is the last token): not saved.
            let unused_pooler = DECODERS.contains(&family) && path.starts_with("pooler.");
            if path.starts_with("mlm.") || path.starts_with("discriminator.") || unused_pooler {
                continue;
            }
            let host =
                |p: &params::FlatParam| p.values.clone().into_data().try_to_vec::<f32>().unwrap();
            assert_eq!(host(p), host(&got[path]), "{family} {path}");
        }
        // The head comes back as it was trained (the decoders' `score`, the jiant head).
        let (back, _) = ckpt.task_model(None, &Device::flex()).unwrap();
        let host =
            |p: &params::FlatParam| p.values.clone().into_data().try_to_vec::<f32>().unwrap();
        let want = params::collect(&trained.model.head);
        let got = params::collect(&back.head);
        assert_eq!(
            want.keys().collect::<Vec<_>>(),
            got.keys().collect::<Vec<_>>()
        );
        for (path, p) in &want {
            assert_eq!(host(p), host(&got[path]), "{family} head {path}");
        }
        assert_eq!(
            decoder,
            want.keys().any(|k| k.starts_with("Score.")),
            "{family}"
        );
    }
}
