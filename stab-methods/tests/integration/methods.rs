//! The methods of docs/methods.md §2 and the two beyond the paper, on the tiny-bert fixture:
//! each does what its formula says, changes training compared with FineTune on the same
//! seed, and equals FineTune where its parameter makes it a no-op (or where §5 says head
//! tuning makes it one).

use std::collections::BTreeSet;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use stab_core::{Plan, Pooling, Recipe, RunRecord, RunSpec};
use stab_data::encode::EncodedRow;
use stab_methods::engine::params::{self, ParamTransform};
use stab_methods::engine::{
    Engine, Method, PrepareContext, StepContext, StepView, TaskModel, TokenInput,
};
use stab_methods::lnsr::{LnsrVariant, NoiseStability};
use stab_methods::mixout::MixOut;
use stab_methods::surt::{MaskedLmSettings, causal_lm_training, masked_lm_training};
use stab_models::{HeadShape, NoiseStream, TaskHead, TextEncoder, load_encoder};

use crate::tiny_cb::{cb_rows, engine, quiet, same_training, testdata, tiny, values};

fn specs(body: &str) -> Vec<RunSpec> {
    let text = format!(
        "name = \"t\"\n[model]\npath = \"{}\"\nmax_len = 64\n[data]\ndir = \"{}\"\n{body}",
        tiny().display(),
        testdata().join("data").display()
    );
    let recipe = Recipe::parse(&text, "test.toml").unwrap_or_else(|e| panic!("{e}"));
    Plan::from_recipe(&recipe)
        .unwrap_or_else(|e| panic!("{e}"))
        .runs
}

/// A record without timing fields, for exact comparisons.
fn comparable(mut r: RunRecord) -> RunRecord {
    r.wall_s = 0.0;
    r.threads = 0;
    r.run_id.clear();
    r.method.clear();
    r.method_params.clear();
    if let Some(d) = r.details.as_object_mut() {
        d.remove("seconds");
        d.remove("feature_cache");
        d.remove("prepare");
    }
    r
}

/// CB, 12 updates with an evaluation every 4, one seed, in `mode`.
fn cb_run(eng: &Engine, mode: &str, method: &str, extra_train: &str) -> RunRecord {
    let body = format!(
        "tasks = [\"cb\"]\ntrain_fraction = 0.3\n[train]\nmode = \"{mode}\"\nbatch_size = 8\nmax_steps = 12\neval_every = 4\nlr = 1e-3\nseeds = [1]\n{extra_train}[[methods]]\n{method}\n"
    );
    let spec = &specs(&body)[0];
    eng.run(spec, &quiet)
        .unwrap_or_else(|e| panic!("{method} ({mode}): {e:#}"))
        .0
}

#[test]
fn every_registered_method_has_an_implementation() {
    assert_eq!(
        stab_methods::engine::unimplemented_methods(),
        Vec::<String>::new()
    );
}

#[test]
fn parameters_that_make_a_method_finetune_give_finetune_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let eng = engine(dir.path());
    let finetune = comparable(cb_run(&eng, "full", "name = \"finetune\"", ""));
    for m in [
        "name = \"reinit\"\nk = 0",
        "name = \"llrd\"\nxi = 1.0",
        "name = \"lnsr\"\nlambda = 0.0",
        "name = \"mixout\"\nvariant = \"author\"\np = 0.0",
    ] {
        let r = comparable(cb_run(&eng, "full", m, ""));
        assert!(same_training(&finetune, &r), "{m} differs from FineTune");
    }
    let no_dropout = comparable(cb_run(
        &eng,
        "full",
        "name = \"test-finetune-no-dropout\"",
        "",
    ));
    let mixout0 = comparable(cb_run(&eng, "full", "name = \"mixout\"\np = 0.0", ""));
    assert!(
        same_training(&no_dropout, &mixout0),
        "MixOut-ref(p = 0) = FineTune without dropout"
    );
    assert!(!same_training(&finetune, &no_dropout));
}

#[test]
fn every_method_changes_full_fine_tuning() {
    let dir = tempfile::tempdir().unwrap();
    let eng = engine(dir.path());
    let finetune = cb_run(&eng, "full", "name = \"finetune\"", "");
    let first = |r: &RunRecord| r.details["train_loss"][0].clone();
    for m in [
        "name = \"mixout\"\np = 0.5",
        "name = \"mixout\"\np = 0.5\nbackward = \"exact\"",
        "name = \"lnsr\"\nlambda = 10.0",
        "name = \"lnsr\"\nvariant = \"original\"\nlambda = 10.0",
        "name = \"surt\"\nmlm_max_steps = 4",
        "name = \"reinit\"\nk = 1",
        "name = \"llrd\"\nxi = 0.5",
    ] {
        let r = cb_run(&eng, "full", m, "");
        assert_ne!(first(&r), first(&finetune), "{m} leaves training unchanged");
    }
    // Original BERT Adam (no bias correction) changes the updates too.
    let bert_adam = cb_run(
        &eng,
        "full",
        "name = \"finetune\"",
        "adam_bias_correction = false\n",
    );
    assert_ne!(
        bert_adam.details["train_loss"],
        finetune.details["train_loss"]
    );
    assert_eq!(bert_adam.details["adam_bias_correction"], false);
    // MixOut-author trains plainly: the losses before its first evaluation are FineTune's;
    // its evaluations mix the encoder with its start weights, so dev scores move.
    let author = cb_run(
        &eng,
        "full",
        "name = \"mixout\"\nvariant = \"author\"\np = 0.5",
        "",
    );
    assert_eq!(first(&author), first(&finetune));
    assert_ne!(author.details["dev_curve"], finetune.details["dev_curve"]);
}

#[test]
fn head_tuning_no_ops_and_changes_follow_section_5() {
    let dir = tempfile::tempdir().unwrap();
    let eng = engine(dir.path());
    let finetune = comparable(cb_run(&eng, "head", "name = \"finetune\"", ""));
    // LNSR has no gradient on the head, MixOut-author mixes an encoder that equals its
    // start, and llrd gives the head the full lr: all three are FineTune (§5).
    for m in [
        "name = \"lnsr\"",
        "name = \"mixout\"\nvariant = \"author\"\np = 0.5",
        "name = \"llrd\"\nxi = 0.5",
    ] {
        let r = comparable(cb_run(&eng, "head", m, ""));
        assert!(same_training(&finetune, &r), "{m} in head tuning");
    }
    // MixOut-ref mixes the head's layers; SURT and reinit change the frozen features.
    for m in [
        "name = \"mixout\"\np = 0.5",
        "name = \"surt\"\nmlm_max_steps = 4",
        "name = \"reinit\"\nk = 1",
    ] {
        let r = comparable(cb_run(&eng, "head", m, ""));
        assert!(!same_training(&finetune, &r), "{m} in head tuning");
    }
}

#[test]
fn surt_records_its_masked_lm_curve_and_shares_it_across_seeds() {
    let dir = tempfile::tempdir().unwrap();
    let runs = specs(
        "tasks = [\"cb\"]\n[train]\nbatch_size = 8\nmax_steps = 2\nseeds = 2\n[[methods]]\nname = \"surt\"\nmlm_epochs = 2\n",
    );
    let eng = engine(dir.path());
    let a = eng.run(&runs[0], &quiet).unwrap().0;
    let b = engine(dir.path()).run(&runs[1], &quiet).unwrap().0;
    assert_eq!(a.details["prepare"]["cache"], "prepared");
    assert_eq!(b.details["prepare"]["cache"], "disk");
    assert_eq!(
        a.details["prepare"]["mlm_loss"],
        b.details["prepare"]["mlm_loss"]
    );
    assert!(
        !a.details["prepare"]["mlm_loss"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let share = a.details["prepare"]["selected_share"].as_f64().unwrap();
    assert!((0.1..0.2).contains(&share), "selected share {share}");
    // share_mlm = false re-trains per run, from the run's seed.
    let own = specs(
        "tasks = [\"cb\"]\n[train]\nbatch_size = 8\nmax_steps = 2\nseeds = 2\n[[methods]]\nname = \"surt\"\nmlm_epochs = 2\nshare_mlm = false\n",
    );
    let c = eng.run(&own[0], &quiet).unwrap().0;
    let d = eng.run(&own[1], &quiet).unwrap().0;
    assert!(c.details["prepare"].get("cache").is_none());
    assert_ne!(
        c.details["prepare"]["mlm_loss"],
        d.details["prepare"]["mlm_loss"]
    );
}

type Retraining = fn(
    stab_models::Encoder,
    &PrepareContext,
    &MaskedLmSettings,
) -> stab_core::Result<stab_methods::engine::Prepared>;

/// SURT's re-training phase `phase` of the model in `dir` on CB's train rows (8 epochs,
/// lr 1e-3, batch 8, seed 5): its details and the mean loss of each epoch under `key`.
fn retrained(dir: &std::path::Path, phase: Retraining, key: &str) -> (serde_json::Value, Vec<f64>) {
    let dev = Device::flex().autodiff();
    let (encoder, report) = load_encoder(dir, &dev).unwrap();
    let tok = TextEncoder::from_dir(dir, encoder.config.pad_id()).unwrap();
    let rows = cb_rows(&tok);
    let noise = NoiseStream::new(1);
    let ctx = PrepareContext {
        train: &rows,
        tokenizer: &tok,
        pad_id: encoder.config.pad_id() as i64,
        model_dir: dir,
        seed: 5,
        noise: &noise,
        initialised: &report.initialised,
        mode: stab_core::recipe::TrainMode::Full,
        device: &dev,
        report: &|_, _, _| {},
    };
    let settings = MaskedLmSettings {
        mask_rate: 0.15,
        epochs: 8,
        lr: 1e-3,
        batch_size: 8,
        max_steps: 0,
    };
    let p = phase(encoder, &ctx, &settings).unwrap();
    let epochs: Vec<f64> = p.details[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(epochs.len(), 8);
    (p.details, epochs)
}

#[test]
fn masked_lm_loss_falls_on_tiny_bert() {
    let (_, epochs) = retrained(&tiny(), masked_lm_training, "mlm_epoch_loss");
    eprintln!("MLM loss per epoch: {epochs:?}");
    assert!(
        epochs[7] < 0.8 * epochs[0],
        "the masked-LM loss falls: {epochs:?}"
    );
}

/// SURT on a decoder: causal-LM training on CB's inputs lowers the next-token loss, with a
/// tied head (GPT-2) and an own one (Llama).
#[test]
fn causal_lm_loss_falls_on_the_tiny_decoders() {
    for name in ["tiny-gpt2", "tiny-llama"] {
        let model = testdata().join("fixtures").join(name);
        let (details, epochs) = retrained(&model, causal_lm_training, "clm_epoch_loss");
        eprintln!(
            "{name}: causal-LM loss per epoch: {epochs:?} ({} head)",
            details["lm_head"]
        );
        assert!(
            epochs[7] < 0.8 * epochs[0],
            "{name}: the causal-LM loss falls: {epochs:?}"
        );
    }
}

/// tiny-bert with a fresh 3-class head, on the autodiff device.
fn task_model(dropout: bool) -> (TaskModel, Device) {
    let dev = Device::flex().autodiff();
    let (mut encoder, _) = load_encoder(&tiny(), &dev).unwrap();
    if !dropout {
        encoder = stab_models::without_dropout(encoder);
    }
    let hidden = encoder.config.hidden_size;
    let head = TaskHead::classification(hidden, 3, 0.0, HeadShape::default(), 7, &dev);
    (
        TaskModel {
            encoder: Some(encoder),
            head,
            pooling: Pooling::Cls,
        },
        dev,
    )
}

/// Every parameter shifted by `by` (a "trained" model distinct from its start).
fn shifted(model: TaskModel, by: f32) -> TaskModel {
    struct Shift(f32);
    impl ParamTransform for Shift {
        fn apply<const D: usize>(&mut self, _: &str, v: Tensor<D>) -> Tensor<D> {
            let out = Tensor::<D>::from_data(
                v.clone().detach().add_scalar(self.0).into_data(),
                &v.device(),
            );
            if v.is_require_grad() {
                out.require_grad()
            } else {
                out
            }
        }
    }
    params::transform(model, &mut Shift(by))
}

const QUERY: &str = "encoder.encoder.layer.0.attention.self_attn.query.weight";

#[test]
fn mixout_ref_mixes_linear_weights_by_input_column_with_the_chosen_backward() {
    let (start, dev) = task_model(false);
    let trained = shifted(start.clone(), 1.0);
    let noise = NoiseStream::new(9);
    let pretrained = BTreeSet::new();
    let ctx = StepContext {
        start: &start,
        pretrained: &pretrained,
        noise: &noise,
        own_noise: &noise,
        step: 0,
        total: 1,
        device: &dev,
    };
    let p = 0.6f64;
    for exact in [false, true] {
        let method = MixOut::Reference {
            p,
            exact_backward: exact,
        };
        let mixed = method.training_model(&trained, &ctx).expect("p > 0 mixes");
        let before = params::collect(&start);
        let after = params::collect(&mixed);
        // Biases, embeddings and LayerNorm are not mixed: they are the trained values.
        let now = params::collect(&trained);
        for path in [
            "encoder.encoder.layer.0.attention.self_attn.query.bias",
            "encoder.embeddings.word_embeddings.weight",
            "encoder.embeddings.layer_norm.gamma",
        ] {
            assert_eq!(
                values(after[path].values.clone()),
                values(now[path].values.clone()),
                "{path}"
            );
        }
        // A Linear weight [in, out]: each input row is U (dropped) or U + (W − U)/(1 − p).
        let u: Vec<f32> = values(before[QUERY].tensor::<2>());
        let w_eff: Vec<f32> = values(after[QUERY].tensor::<2>());
        let [d_in, d_out] = [before[QUERY].shape[0], before[QUERY].shape[1]];
        let mut kept_rows = 0;
        for i in 0..d_in {
            let row = |v: &[f32]| v[i * d_out..(i + 1) * d_out].to_vec();
            let (ur, wr) = (row(&u), row(&w_eff));
            let dropped = ur.iter().zip(&wr).all(|(a, b)| (a - b).abs() < 1e-5);
            let kept = ur
                .iter()
                .zip(&wr)
                .all(|(a, b)| (a + 1.0 / (1.0 - p as f32) - b).abs() < 1e-4);
            assert!(dropped ^ kept, "row {i} mixes per column");
            kept_rows += usize::from(kept);
        }
        assert!(
            kept_rows > 0 && kept_rows < d_in,
            "{kept_rows} of {d_in} rows kept"
        );
        // Backward: d Σ W_eff / dW is M (reference) or M / (1 − p) (exact), by row.
        let loss = after[QUERY].tensor::<2>().sum();
        let grads = loss.backward();
        let w = match &trained.encoder {
            Some(e) => e.encoder.layer[0].attention.self_attn.query.weight.val(),
            None => unreachable!(),
        };
        let g = values(w.grad(&grads).expect("W receives a gradient"));
        let scale = if exact { 1.0 / (1.0 - p as f32) } else { 1.0 };
        for i in 0..d_in {
            let kept = (w_eff[i * d_out] - u[i * d_out] - 1.0 / (1.0 - p as f32)).abs() < 1e-4;
            let want = if kept { scale } else { 0.0 };
            assert!(
                (g[i * d_out] - want).abs() < 1e-5,
                "row {i}: {}",
                g[i * d_out]
            );
        }
    }
    // At evaluation W_eff = W: the model is returned as it is.
    let method = MixOut::Reference {
        p,
        exact_backward: false,
    };
    let eval = method.eval_model(trained.valid(), &ctx);
    assert_eq!(
        values(params::collect(&eval)[QUERY].values.clone()),
        values(params::collect(&trained)[QUERY].values.clone())
    );
}

#[test]
fn mixout_author_reverts_a_share_p_of_encoder_weights_only_at_evaluation() {
    let (start, dev) = task_model(true);
    let trained = shifted(start.clone(), 1.0);
    let noise = NoiseStream::new(4);
    let pretrained = BTreeSet::new();
    let ctx = StepContext {
        start: &start,
        pretrained: &pretrained,
        noise: &noise,
        own_noise: &noise,
        step: 0,
        total: 1,
        device: &dev,
    };
    let method = MixOut::Author { p: 0.3 };
    assert!(method.training_model(&trained, &ctx).is_none());
    let eval = params::collect(&method.eval_model(trained.valid(), &ctx));
    let now = params::collect(&trained);
    let (mut reverted, mut total) = (0usize, 0usize);
    for (path, p) in &eval {
        let (a, b) = (values(p.values.clone()), values(now[path].values.clone()));
        if path.starts_with("head.") || path.contains(".mlm.") {
            assert_eq!(a, b, "{path} is not mixed");
            continue;
        }
        for (x, y) in a.iter().zip(&b) {
            total += 1;
            if (x - y).abs() > 0.5 {
                reverted += 1;
            }
        }
    }
    let share = reverted as f64 / total as f64;
    let sd = (0.21 / total as f64).sqrt();
    assert!((share - 0.3).abs() < 4.0 * sd, "reverted share {share}");
}

/// LNSR's term on a CB batch of tiny-bert without dropout, noise seed fixed.
fn lnsr_term(model: &TaskModel, dev: &Device, variant: LnsrVariant, sigma: f64) -> Tensor<1> {
    let pad = model.encoder.as_ref().unwrap().config.pad_id();
    let tok = TextEncoder::from_dir(&tiny(), pad).unwrap();
    let rows = cb_rows(&tok);
    let refs: Vec<&EncodedRow> = rows.iter().take(6).collect();
    let input = TokenInput::new(&refs, pad as i64, None);
    let forward = model.forward_tokens(&input, dev);
    let noise = NoiseStream::new(21);
    let pretrained = BTreeSet::new();
    let ctx = StepContext {
        start: model,
        pretrained: &pretrained,
        noise: &noise,
        own_noise: &noise,
        step: 0,
        total: 1,
        device: dev,
    };
    let labels: Vec<usize> = refs.iter().map(|r| r.label).collect();
    let view = StepView {
        model,
        forward: &forward,
        input: Some(&input),
        features: None,
        labels: &labels,
        classes: 3,
        ctx: &ctx,
    };
    let method = NoiseStability {
        lambda: 1.0,
        sigma,
        variant,
    };
    let mut terms = method.loss_terms(&view);
    assert_eq!(terms.len(), 1);
    terms.remove(0).1
}

#[test]
fn lnsr_term_is_zero_without_noise_and_its_gradient_matches_a_central_difference() {
    let (model, dev) = task_model(false);
    for variant in [LnsrVariant::Author, LnsrVariant::Original] {
        let zero = lnsr_term(&model, &dev, variant, 0.0).into_scalar::<f64>();
        assert_eq!(zero, 0.0, "{variant:?}: no noise, no dropout → 0");
        let term = lnsr_term(&model, &dev, variant, 0.5);
        assert!(term.clone().into_scalar::<f64>() > 0.0);
        if variant == LnsrVariant::Author {
            // The noisy branch is stop-gradient: only the clean branch carries a gradient,
            // so a finite difference (which moves both branches) does not apply.
            let grads = term.backward();
            let w = model.encoder.as_ref().unwrap().encoder.layer[0]
                .attention
                .self_attn
                .query
                .weight
                .val();
            let g = values(w.grad(&grads).unwrap());
            assert!(g.iter().all(|x| x.is_finite()) && g.iter().any(|&x| x != 0.0));
            continue;
        }
        // Directional derivative along a random direction of one layer's query weight.
        let grads = term.backward();
        let w = model.encoder.as_ref().unwrap().encoder.layer[0]
            .attention
            .self_attn
            .query
            .weight
            .val();
        let g = values(w.grad(&grads).unwrap());
        let n = g.len();
        let dir: Vec<f32> = (0..n)
            .map(|k| ((k * 7919 % 13) as f32 - 6.0) / 6.0)
            .collect();
        let analytic: f64 = g
            .iter()
            .zip(&dir)
            .map(|(a, b)| (*a as f64) * (*b as f64))
            .sum();
        let h = 1e-2f32;
        let at = |s: f32| {
            struct Along<'a>(&'a [f32], f32);
            impl ParamTransform for Along<'_> {
                fn apply<const D: usize>(&mut self, path: &str, v: Tensor<D>) -> Tensor<D> {
                    if path != QUERY {
                        return v;
                    }
                    let shape = v.shape();
                    let d = Tensor::<D>::from_data(
                        TensorData::new(self.0.to_vec(), shape),
                        &v.device(),
                    );
                    v.detach() + d.mul_scalar(self.1)
                }
            }
            let m = params::transform(model.clone(), &mut Along(&dir, s));
            lnsr_term(&m, &dev, variant, 0.5).into_scalar::<f64>()
        };
        let numeric = (at(h) - at(-h)) / (2.0 * h as f64);
        let rel = (numeric - analytic).abs() / analytic.abs().max(1e-12);
        eprintln!("{variant:?}: analytic {analytic:.6e}, central difference {numeric:.6e}");
        assert!(rel < 0.05, "{variant:?}: {analytic} vs {numeric}");
    }
}
