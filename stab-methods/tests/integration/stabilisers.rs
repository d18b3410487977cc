//! The stabilisers beyond the paper (issue #20; docs/methods.md §12) on the tiny-bert
//! fixture: each against its formula on hand-made inputs, each no-op parameter equal to
//! FineTune bit for bit, each changing full fine-tuning, their head-tuning behaviour (§12.7)
//! and their composition with the other methods.

use std::collections::BTreeSet;

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use stab_core::{Plan, Pooling, Recipe, RunRecord, RunSpec};
use stab_data::encode::EncodedRow;
use stab_methods::child_tuning::{ChildTuning, ChildTuningParams, ChildVariant, in_child_search};
use stab_methods::ema::{EmaParams, WeightAverage};
use stab_methods::engine::params::{self, ParamTransform};
use stab_methods::engine::{
    Engine, Method, StepContext, StepRunner, StepView, TaskModel, TokenInput, TrainingData,
    cross_entropy,
};
use stab_methods::noisytune::{noisy_encoder, sample_std};
use stab_methods::rdrop::RDrop;
use stab_methods::sam::{Sam, ascent_point};
use stab_models::{HeadShape, NoiseStream, TaskHead, TextEncoder, load_encoder};

use crate::tiny_cb::{engine, quiet, same_training, testdata, tiny, values};

/// CB, 12 updates with an evaluation every 4, one seed, in `mode`.
fn cb_spec(mode: &str, methods: &str) -> RunSpec {
    let text = format!(
        "name = \"t\"\n[model]\npath = \"{}\"\nmax_len = 64\n[data]\ndir = \"{}\"\ntasks = [\"cb\"]\ntrain_fraction = 0.3\n[train]\nmode = \"{mode}\"\nbatch_size = 8\nmax_steps = 12\neval_every = 4\nlr = 1e-3\nseeds = [1]\n{methods}\n",
        tiny().display(),
        testdata().join("data").display()
    );
    let recipe = Recipe::parse(&text, "test.toml").unwrap_or_else(|e| panic!("{e}"));
    Plan::from_recipe(&recipe)
        .unwrap_or_else(|e| panic!("{methods}: {e}"))
        .runs
        .remove(0)
}

fn cb_run(eng: &Engine, mode: &str, method: &str) -> RunRecord {
    let spec = cb_spec(mode, &format!("[[methods]]\n{method}"));
    eng.run(&spec, &quiet)
        .unwrap_or_else(|e| panic!("{method} ({mode}): {e:#}"))
        .0
}

/// Every float parameter of a model, by path, on the host.
fn weights(model: &TaskModel) -> Vec<(String, Vec<f32>)> {
    params::collect(model)
        .into_iter()
        .map(|(k, p)| (k, values(p.values)))
        .collect()
}

#[test]
fn no_op_parameters_give_finetune_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let eng = engine(dir.path());
    for mode in ["full", "head"] {
        let finetune = cb_run(&eng, mode, "name = \"finetune\"");
        for m in [
            "name = \"r3f\"\nlambda = 0.0",
            "name = \"child_tuning\"\nvariant = \"f\"\np = 1.0",
            "name = \"noisytune\"\nlambda = 0.0",
            "name = \"sam\"\nrho = 0.0",
            "name = \"ema\"\ndecay = 0.0",
        ] {
            let r = cb_run(&eng, mode, m);
            assert!(
                same_training(&finetune, &r),
                "{m} ({mode}) differs from FineTune"
            );
        }
    }
}

#[test]
fn every_stabiliser_changes_full_fine_tuning() {
    let dir = tempfile::tempdir().unwrap();
    let eng = engine(dir.path());
    let finetune = cb_run(&eng, "full", "name = \"finetune\"");
    let loss = |r: &RunRecord| r.details["train_loss"].clone();
    for m in [
        "name = \"rdrop\"",
        "name = \"rdrop\"\nalpha = 0.0",
        "name = \"r3f\"\nsigma = 0.1",
        "name = \"child_tuning\"",
        "name = \"child_tuning\"\nvariant = \"f\"",
        "name = \"noisytune\"",
        "name = \"sam\"",
    ] {
        let r = cb_run(&eng, "full", m);
        assert_ne!(loss(&r), loss(&finetune), "{m} leaves training unchanged");
    }
    // R-Drop's record carries its two terms, R3F its one.
    let r = cb_run(&eng, "full", "name = \"rdrop\"");
    let terms = r.details["loss_terms"].as_object().unwrap();
    assert!(terms.contains_key("rdrop_ce") && terms.contains_key("rdrop_kl"));
    // EMA trains exactly as FineTune; what it scores is the average.
    let spec = |m: &str| cb_spec("full", &format!("[[methods]]\n{m}"));
    let plain = eng.train(&spec("name = \"finetune\""), &quiet).unwrap();
    for m in ["name = \"ema\"", "name = \"ema\"\nswa = true\nstart = 0.5"] {
        let ema = eng.train(&spec(m), &quiet).unwrap();
        assert_eq!(
            loss(&ema.record),
            loss(&plain.record),
            "{m} trains as FineTune"
        );
        assert!(
            weights(&ema.model) != weights(&plain.model),
            "{m} scores its average"
        );
    }
}

#[test]
fn head_tuning_behaviour_follows_section_12_7() {
    let dir = tempfile::tempdir().unwrap();
    let eng = engine(dir.path());
    let finetune = cb_run(&eng, "head", "name = \"finetune\"");
    let cache = |r: &RunRecord| r.details["feature_cache"].as_str().unwrap().to_string();
    assert_ne!(
        cache(&finetune),
        "",
        "FineTune's head trains on cached features"
    );
    // ChildTuning-D masks only encoder-layer gradients: none train in head tuning.
    let d = cb_run(&eng, "head", "name = \"child_tuning\"");
    assert!(
        same_training(&finetune, &d),
        "ChildTuning-D in head tuning is FineTune"
    );
    // On cached features: R-Drop (the head's dropout), ChildTuning-F (the head's
    // gradients), SAM (the head's sharpness) change the head's training.
    for m in [
        "name = \"rdrop\"",
        "name = \"child_tuning\"\nvariant = \"f\"",
        "name = \"sam\"\nrho = 0.5",
    ] {
        let r = cb_run(&eng, "head", m);
        assert_ne!(cache(&r), "", "{m} may use cached features");
        assert_ne!(
            r.details["train_loss"], finetune.details["train_loss"],
            "{m}"
        );
    }
    // R3F's noise enters below the frozen encoder: it runs the encoder every step.
    let r3f = cb_run(&eng, "head", "name = \"r3f\"\nsigma = 0.1");
    assert_eq!(cache(&r3f), "", "R3F cannot use cached features");
    assert_ne!(r3f.details["train_loss"], finetune.details["train_loss"]);
    // NoisyTune perturbs the frozen encoder per run: features encoded for the run.
    let noisy = cb_run(&eng, "head", "name = \"noisytune\"");
    assert_eq!(cache(&noisy), "encoded-for-run");
    assert_ne!(noisy.details["train_loss"], finetune.details["train_loss"]);
    // EMA averages the head on cached features.
    let spec = |m: &str| cb_spec("head", &format!("[[methods]]\n{m}"));
    let plain = eng.train(&spec("name = \"finetune\""), &quiet).unwrap();
    let ema = eng.train(&spec("name = \"ema\""), &quiet).unwrap();
    assert_ne!(cache(&ema.record), "");
    assert!(
        weights(&ema.model) != weights(&plain.model),
        "EMA averages the head"
    );
}

#[test]
fn stabilisers_compose_with_the_other_methods() {
    let dir = tempfile::tempdir().unwrap();
    let eng = engine(dir.path());
    let run = |methods: &str| {
        eng.train(&cb_spec("full", methods), &quiet)
            .unwrap_or_else(|e| panic!("{methods}: {e:#}"))
    };
    // The practitioners' recipe: reinit + llrd trained as without EMA, scored averaged.
    let practitioners =
        run("[[methods]]\nname = \"reinit\"\nstack = [{ name = \"llrd\" }, { name = \"ema\" }]");
    let without = run("[[methods]]\nname = \"reinit\"\nstack = [{ name = \"llrd\" }]");
    assert_eq!(practitioners.record.method, "reinit+llrd+ema");
    assert_eq!(
        practitioners.record.details["train_loss"],
        without.record.details["train_loss"]
    );
    assert!(
        weights(&practitioners.model) != weights(&without.model),
        "EMA scores the average"
    );
    // Loss terms and a train step combine: R-Drop's terms inside both SAM passes.
    let both = run("[[methods]]\nname = \"sam\"\nstack = [{ name = \"rdrop\" }]");
    assert!(both.record.details["loss_terms"]["rdrop_kl"].is_array());
    // Two encoder changes cannot stack.
    let spec = cb_spec(
        "full",
        "[[methods]]\nname = \"noisytune\"\nstack = [{ name = \"reinit\" }]",
    );
    let err = eng.run(&spec, &quiet).unwrap_err().to_string();
    assert!(err.contains("change the encoder"), "{err}");
}

/// tiny-bert with a fresh 3-class head (dropout on or off), on the autodiff device.
fn task_model(dropout: bool) -> (TaskModel, Device) {
    let dev = Device::flex().autodiff();
    let (mut encoder, _) = load_encoder(&tiny(), &dev).unwrap();
    if !dropout {
        encoder = stab_models::without_dropout(encoder);
    }
    let hidden = encoder.config.hidden_size;
    let head = TaskHead::classification(hidden, 3, 0.1, HeadShape::default(), 7, &dev);
    let model = TaskModel {
        encoder: Some(encoder),
        head,
        pooling: Pooling::Cls,
    };
    let model = if dropout {
        model
    } else {
        stab_models::without_dropout(model)
    };
    (model, dev)
}

fn cb_rows(model: &TaskModel) -> (Vec<EncodedRow>, i64) {
    let pad = model.encoder.as_ref().unwrap().config.pad_id();
    let tok = TextEncoder::from_dir(&tiny(), pad).unwrap();
    (crate::tiny_cb::cb_rows(&tok), pad as i64)
}

/// The CE gradients of a model on CB rows, computed here (not by the engine).
struct Rows {
    rows: Vec<EncodedRow>,
    pad: i64,
    device: Device,
}

impl Rows {
    fn input(&self, rows: &[usize]) -> (TokenInput, Vec<usize>) {
        let refs: Vec<&EncodedRow> = rows.iter().map(|&i| &self.rows[i]).collect();
        let labels = refs.iter().map(|r| r.label).collect();
        (TokenInput::new(&refs, self.pad, None), labels)
    }

    fn loss(&self, model: &TaskModel, rows: &[usize]) -> Tensor<1> {
        let (input, labels) = self.input(rows);
        let logits = model.forward_tokens(&input, &self.device).head.logits;
        cross_entropy(logits, &labels, &self.device)
    }
}

impl TrainingData for Rows {
    fn rows(&self) -> usize {
        self.rows.len()
    }
    fn batch_size(&self) -> usize {
        8
    }
    fn loss_and_gradients(&self, model: &TaskModel, rows: &[usize]) -> (f64, GradientsParams) {
        let loss = self.loss(model, rows);
        let v = loss.clone().into_scalar::<f64>();
        (v, GradientsParams::from_grads(loss.backward(), model))
    }
}

/// Every gradient by parameter path, on the host, in module order.
fn grads_by_path(model: &TaskModel, grads: &GradientsParams) -> Vec<(String, Vec<f32>)> {
    params::gradients(model, grads)
        .into_iter()
        .map(|(p, g)| (p, values(g)))
        .collect()
}

fn context<'a>(
    start: &'a TaskModel,
    pretrained: &'a BTreeSet<String>,
    noise: &'a NoiseStream,
    own: &'a NoiseStream,
    dev: &'a Device,
) -> StepContext<'a> {
    StepContext {
        start,
        pretrained,
        noise,
        own_noise: own,
        step: 0,
        total: 4,
        device: dev,
    }
}

#[test]
fn rdrop_terms_are_the_second_pass_ce_and_half_alpha_times_the_symmetric_kl() {
    let (model, dev) = task_model(true);
    let (rows, pad) = cb_rows(&model);
    let data = Rows {
        rows,
        pad,
        device: dev.clone(),
    };
    let noise = NoiseStream::new(3);
    let mut model = model;
    model.encoder.as_mut().unwrap().set_noise(&noise);
    model.head.set_noise(&noise);
    let (input, labels) = data.input(&[0, 1, 2, 3, 4, 5]);
    let forward = model.forward_tokens(&input, &dev);
    let second_from = noise.calls();
    let pretrained = BTreeSet::new();
    let own = NoiseStream::new(4);
    let ctx = context(&model, &pretrained, &noise, &own, &dev);
    let view = StepView {
        model: &model,
        forward: &forward,
        input: Some(&input),
        features: None,
        labels: &labels,
        classes: 3,
        ctx: &ctx,
    };
    let terms = RDrop { alpha: 3.0 }.loss_terms(&view);
    // The second pass again, from the same point of the noise stream.
    noise.rewind_to(second_from);
    let second = model.forward_tokens(&input, &dev).head.logits;
    let (l1, l2) = (values(forward.head.logits.clone()), values(second.clone()));
    assert_ne!(l1, l2, "the passes have independent dropout masks");
    let by_hand = |a: &[f32], b: &[f32]| -> f64 {
        let soft = |r: &[f32]| -> Vec<f64> {
            let z: f64 = r.iter().map(|&x| (x as f64).exp()).sum();
            r.iter().map(|&x| (x as f64).exp() / z).collect()
        };
        let kl =
            |p: &[f64], q: &[f64]| -> f64 { p.iter().zip(q).map(|(p, q)| p * (p / q).ln()).sum() };
        a.chunks(3)
            .zip(b.chunks(3))
            .map(|(x, y)| {
                let (p, q) = (soft(x), soft(y));
                kl(&p, &q) + kl(&q, &p)
            })
            .sum::<f64>()
            / 6.0
    };
    let ce2 = cross_entropy(second, &labels, &dev).into_scalar::<f64>();
    let got: Vec<(&str, f64)> = terms
        .into_iter()
        .map(|(n, t)| (n, t.into_scalar::<f64>()))
        .collect();
    assert_eq!(got[0].0, "rdrop_ce");
    assert!((got[0].1 - ce2).abs() < 1e-6, "{got:?} vs {ce2}");
    assert_eq!(got[1].0, "rdrop_kl");
    let kl = 1.5 * by_hand(&l1, &l2);
    assert!(
        (got[1].1 - kl).abs() < 1e-5 * kl.max(1.0),
        "{got:?} vs {kl}"
    );
}

#[test]
fn child_tuning_f_keeps_a_share_p_of_gradient_entries_scaled_by_one_over_p() {
    let (model, dev) = task_model(false);
    let (rows, pad) = cb_rows(&model);
    let data = Rows {
        rows,
        pad,
        device: dev.clone(),
    };
    let p = 0.4;
    let method = ChildTuning::new(ChildTuningParams {
        variant: ChildVariant::F,
        p,
        fisher_batches: 0,
    });
    let (_, grads) = data.loss_and_gradients(&model, &(0..8).collect::<Vec<_>>());
    let before = grads_by_path(&model, &grads);
    let (pretrained, noise, own) = (BTreeSet::new(), NoiseStream::new(1), NoiseStream::new(2));
    let ctx = context(&model, &pretrained, &noise, &own, &dev);
    let after = grads_by_path(&model, &method.adjust_gradients(grads, &model, &ctx));
    let (mut kept, mut total) = (0usize, 0usize);
    for ((path, g), (_, m)) in before.iter().zip(&after) {
        for (&g, &m) in g.iter().zip(m) {
            if g == 0.0 {
                continue;
            }
            total += 1;
            if m != 0.0 {
                kept += 1;
                assert_eq!(m, g * (1.0 / p as f32), "{path}: kept entries are g/p");
            }
        }
    }
    let share = kept as f64 / total as f64;
    let sd = (p * (1.0 - p) / total as f64).sqrt();
    assert!(
        (share - p).abs() < 4.0 * sd,
        "kept share {share} of {total}"
    );
    assert_eq!(
        noise.calls(),
        0,
        "the masks come from the method's own stream"
    );
    assert!(own.calls() > 0);
}

#[test]
fn child_tuning_d_keeps_the_top_p_of_a_fisher_computed_by_hand() {
    let (model, dev) = task_model(true);
    let (rows, pad) = cb_rows(&model);
    let data = Rows {
        rows: rows.into_iter().take(40).collect(),
        pad,
        device: dev.clone(),
    };
    let p = 0.25;
    let method = ChildTuning::new(ChildTuningParams {
        variant: ChildVariant::D,
        p,
        fisher_batches: 3,
    });
    // By hand: Σ over the first 3 batches of 8 of g², eval mode, encoder layers only.
    let eval = stab_models::without_dropout(model.clone());
    let mut fisher: Vec<(String, Vec<f32>)> = Vec::new();
    for b in 0..3 {
        let rows: Vec<usize> = (8 * b..8 * b + 8).collect();
        let (_, g) = data.loss_and_gradients(&eval, &rows);
        for (i, (path, g)) in grads_by_path(&eval, &g)
            .into_iter()
            .filter(|(p, _)| in_child_search(p))
            .enumerate()
        {
            let sq: Vec<f32> = g.iter().map(|x| x * x).collect();
            match fisher.get_mut(i) {
                Some((_, f)) => f.iter_mut().zip(&sq).for_each(|(f, s)| *f += s),
                None => fisher.push((path, sq)),
            }
        }
    }
    let mut all: Vec<f32> = fisher.iter().flat_map(|(_, f)| f.clone()).collect();
    let keep = (p * all.len() as f64).ceil() as usize;
    all.sort_by(|a, b| b.total_cmp(a));
    let threshold = all[keep - 1];

    let (pretrained, noise, own) = (BTreeSet::new(), NoiseStream::new(1), NoiseStream::new(2));
    let ctx = context(&model, &pretrained, &noise, &own, &dev);
    method.before_training(&model, &data, &ctx).unwrap();
    assert_eq!(noise.calls(), 0, "the Fisher pass draws no dropout mask");
    // The mask the method applies, read through gradients of ones.
    let (_, grads) = data.loss_and_gradients(&model, &[0, 1, 2, 3]);
    let ones = {
        let mut g = grads;
        struct Ones<'a>(&'a mut GradientsParams);
        impl ModuleVisitor for Ones<'_> {
            fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
                if let Some(g) = self.0.remove::<D>(p.id) {
                    self.0.register::<D>(p.id, g.ones_like());
                }
            }
        }
        model.visit(&mut Ones(&mut g));
        g
    };
    let masked = grads_by_path(&model, &method.adjust_gradients(ones, &model, &ctx));
    let mut searched = fisher.iter();
    let mut kept = 0usize;
    for (path, m) in &masked {
        if !in_child_search(path) {
            assert!(m.iter().all(|&v| v == 1.0), "{path} trains as in FineTune");
            continue;
        }
        let (fpath, f) = searched.next().unwrap();
        assert_eq!(path, fpath);
        for (&m, &f) in m.iter().zip(f) {
            assert_eq!(m, if f >= threshold { 1.0 } else { 0.0 }, "{path}");
            kept += m as usize;
        }
    }
    let n: usize = fisher.iter().map(|(_, f)| f.len()).sum();
    assert!(
        kept >= keep && (kept as f64) < (p + 0.01) * n as f64,
        "kept {kept} of {n}"
    );
}

#[test]
fn noisytune_noise_is_uniform_times_each_tensors_std() {
    let dev = Device::flex();
    let (encoder, _) = load_encoder(&tiny(), &dev).unwrap();
    let before = params::collect(&encoder);
    let lambda = 0.4;
    let after = params::collect(&noisy_encoder(encoder, lambda, 11));
    let mut checked = 0;
    for (path, p) in &before {
        let (a, b) = (values(p.values.clone()), values(after[path].values.clone()));
        if path.contains("mlm") || a.len() < 2 {
            assert_eq!(a, b, "{path} is left alone");
            continue;
        }
        let std = sample_std(&a).unwrap();
        if std == 0.0 {
            assert_eq!(
                a, b,
                "{path}: a constant tensor has no spread to scale noise by"
            );
            continue;
        }
        let u: Vec<f64> = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (y - x) as f64 / std)
            .collect();
        assert!(u.iter().all(|v| v.abs() <= lambda / 2.0 + 1e-3), "{path}");
        if u.len() >= 1024 {
            let var = u.iter().map(|v| v * v).sum::<f64>() / u.len() as f64;
            assert!(
                (var / (lambda * lambda / 12.0) - 1.0).abs() < 0.15,
                "{path}: {var}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 3, "large tensors checked: {checked}");
}

/// The engine's step as a test runner: CE on a fixed batch, no terms.
struct FixedBatch<'a> {
    data: &'a Rows,
    rows: Vec<usize>,
}

impl StepRunner for FixedBatch<'_> {
    fn loss_and_gradients(&self, model: &TaskModel) -> (f64, GradientsParams) {
        self.data.loss_and_gradients(model, &self.rows)
    }
}

/// `model` with every parameter at `w + h·r` for host vectors by path.
fn moved(
    model: &TaskModel,
    w: &[(String, Vec<f32>)],
    r: &[(String, Vec<f32>)],
    h: f32,
) -> TaskModel {
    struct Set<'a>(&'a [(String, Vec<f32>)], &'a [(String, Vec<f32>)], f32);
    impl ParamTransform for Set<'_> {
        fn apply<const D: usize>(&mut self, path: &str, v: Tensor<D>) -> Tensor<D> {
            let Some(i) = self.0.iter().position(|(p, _)| p == path) else {
                return v;
            };
            let r = self.1.iter().find(|(p, _)| p == path).map(|(_, r)| r);
            let vals: Vec<f32> = self.0[i]
                .1
                .iter()
                .enumerate()
                .map(|(k, &x)| x + r.map_or(0.0, |r| self.2 * r[k]))
                .collect();
            Tensor::<D>::from_data(TensorData::new(vals, v.dims().to_vec()), &v.device())
                .require_grad()
        }
    }
    params::transform(model.clone(), &mut Set(w, r, h))
}

fn dot(a: &[(String, Vec<f32>)], b: &[(String, Vec<f32>)]) -> f64 {
    a.iter()
        .zip(b)
        .flat_map(|((_, x), (_, y))| x.iter().zip(y).map(|(x, y)| *x as f64 * *y as f64))
        .sum()
}

#[test]
fn sam_ascends_by_rho_along_the_gradient_and_takes_the_gradient_there() {
    let (model, dev) = task_model(false);
    let (rows, pad) = cb_rows(&model);
    let data = Rows {
        rows,
        pad,
        device: dev.clone(),
    };
    let runner = FixedBatch {
        data: &data,
        rows: (0..8).collect(),
    };
    let rho = 0.5;
    let (_, g) = runner.loss_and_gradients(&model);
    let by_path = |mut v: Vec<(String, Vec<f32>)>| {
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    let g_host = by_path(grads_by_path(&model, &g));
    let norm = dot(&g_host, &g_host).sqrt();
    // ε = ρ·g/‖g‖, parameter by parameter.
    let w: Vec<(String, Vec<f32>)> = weights(&model)
        .into_iter()
        .filter(|(p, _)| g_host.iter().any(|(q, _)| q == p))
        .collect();
    let lifted = weights(&ascent_point(&model, &g, rho));
    for ((path, w), (_, g)) in w.iter().zip(&g_host) {
        let (_, up) = lifted.iter().find(|(p, _)| p == path).unwrap();
        for ((&w, &g), &u) in w.iter().zip(g).zip(up) {
            let want = w as f64 + rho * g as f64 / norm;
            assert!((u as f64 - want).abs() < 1e-6 + 1e-6 * want.abs(), "{path}");
        }
    }
    // The step's gradient is ∇L(w + ε): a central difference of L at w + ε along two
    // directions (the SAM gradient's own and the plain gradient's) agrees with it.
    let (pretrained, noise, own) = (BTreeSet::new(), NoiseStream::new(1), NoiseStream::new(2));
    let ctx = context(&model, &pretrained, &noise, &own, &dev);
    let (_, sam) = Sam { rho }.train_step(&model, &runner, &ctx).unwrap();
    let sam_host = by_path(grads_by_path(&model, &sam));
    let eps: Vec<(String, Vec<f32>)> = g_host
        .iter()
        .map(|(p, g)| {
            (
                p.clone(),
                g.iter().map(|&x| (rho / norm) as f32 * x).collect(),
            )
        })
        .collect();
    let at: Vec<(String, Vec<f32>)> = w
        .iter()
        .zip(&eps)
        .map(|((p, w), (_, e))| (p.clone(), w.iter().zip(e).map(|(a, b)| a + b).collect()))
        .collect();
    let loss_at = |h: f32, r: &[(String, Vec<f32>)]| {
        data.loss(&moved(&model, &at, r, h), &runner.rows)
            .into_scalar::<f64>()
    };
    let unit = |v: &[(String, Vec<f32>)]| -> Vec<(String, Vec<f32>)> {
        let n = dot(v, v).sqrt() as f32;
        v.iter()
            .map(|(p, x)| (p.clone(), x.iter().map(|y| y / n).collect()))
            .collect()
    };
    let h = 1e-2;
    for r in [unit(&sam_host), unit(&g_host)] {
        let fd = (loss_at(h, &r) - loss_at(-h, &r)) / (2.0 * h as f64);
        let analytic = dot(&sam_host, &r);
        assert!(
            (fd - analytic).abs() < 2e-3 * analytic.abs().max(0.1),
            "finite difference {fd} vs ∇L(w + ε)·r {analytic}"
        );
    }
    // And it is not the gradient at w.
    let moved_by =
        dot(&sam_host, &sam_host) + dot(&g_host, &g_host) - 2.0 * dot(&sam_host, &g_host);
    assert!(moved_by.sqrt() > 1e-3 * norm, "∇L(w + ε) ≠ ∇L(w)");
}

#[test]
fn ema_and_swa_average_the_weights_as_their_updates_say() {
    let (start, dev) = task_model(false);
    let shift = |m: &TaskModel, by: f32| {
        struct Shift(f32);
        impl ParamTransform for Shift {
            fn apply<const D: usize>(&mut self, _: &str, v: Tensor<D>) -> Tensor<D> {
                let out = v.clone().inner().add_scalar(self.0).autodiff();
                if v.is_require_grad() {
                    out.require_grad()
                } else {
                    out
                }
            }
        }
        params::transform(m.clone(), &mut Shift(by))
    };
    let path = "head.Classification.out.weight";
    let head = |m: &TaskModel| {
        weights(m)
            .into_iter()
            .find(|(p, _)| p == path)
            .map(|(_, v)| v[0] as f64)
            .unwrap_or_else(|| panic!("{path}"))
    };
    let w0 = head(&start);
    let (pretrained, noise, own) = (BTreeSet::new(), NoiseStream::new(1), NoiseStream::new(2));
    let mut ctx = context(&start, &pretrained, &noise, &own, &dev);
    // EMA, d = 0.9 without warm-up: w̄ = 0.9·(0.9·w0 + 0.1·w1) + 0.1·w2.
    let ema = WeightAverage::new(EmaParams {
        decay: 0.9,
        swa: false,
        start: 0.75,
        warmup: false,
    });
    let (w1, w2) = (shift(&start, 1.0), shift(&start, 3.0));
    ctx.step = 0;
    ema.after_update(&w1, &ctx);
    ctx.step = 1;
    ema.after_update(&w2, &ctx);
    let want = 0.9 * (0.9 * w0 + 0.1 * (w0 + 1.0)) + 0.1 * (w0 + 3.0);
    let got = head(&ema.eval_model(w2.valid(), &ctx));
    assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    // With warm-up the first decay is min(0.9, 1/10) = 0.1.
    let warm = WeightAverage::new(EmaParams {
        warmup: true,
        ..ema.params
    });
    ctx.step = 0;
    warm.after_update(&w1, &ctx);
    let got = head(&warm.eval_model(w1.valid(), &ctx));
    assert!((got - (0.1 * w0 + 0.9 * (w0 + 1.0))).abs() < 1e-5);
    // SWA from ⌈0.5·4⌉ = update 2: before it the weights as they are, then the mean of
    // the weights after updates 2, 3 and 4.
    let swa = WeightAverage::new(EmaParams {
        decay: 0.999,
        swa: true,
        start: 0.5,
        warmup: true,
    });
    for (step, by) in [(0u64, 1.0f32), (1, 2.0), (2, 4.0), (3, 9.0)] {
        ctx.step = step;
        let w = shift(&start, by);
        swa.after_update(&w, &ctx);
        let got = head(&swa.eval_model(w.valid(), &ctx));
        let want = match step {
            0 => w0 + 1.0,
            1 => w0 + 2.0,
            2 => w0 + 3.0,
            _ => w0 + 5.0,
        };
        assert!(
            (got - want).abs() < 1e-5,
            "update {}: {got} vs {want}",
            step + 1
        );
    }
}

#[test]
fn r3f_term_is_lambda_times_the_symmetric_kl_to_a_pass_with_its_own_noise() {
    use stab_methods::r3f::{R3f, R3fNoise, embedding_noise};
    use stab_methods::rdrop::symmetric_kl;
    let (model, dev) = task_model(false);
    let (rows, pad) = cb_rows(&model);
    let data = Rows {
        rows,
        pad,
        device: dev.clone(),
    };
    let (input, labels) = data.input(&[0, 1, 2, 3]);
    let forward = model.forward_tokens(&input, &dev);
    let (pretrained, noise) = (BTreeSet::new(), NoiseStream::new(1));
    let own = NoiseStream::new(9);
    let ctx = context(&model, &pretrained, &noise, &own, &dev);
    let view = StepView {
        model: &model,
        forward: &forward,
        input: Some(&input),
        features: None,
        labels: &labels,
        classes: 3,
        ctx: &ctx,
    };
    let method = R3f {
        lambda: 2.0,
        sigma: 0.05,
        noise: R3fNoise::Uniform,
    };
    let terms = method.loss_terms(&view);
    assert_eq!(terms[0].0, "r3f");
    let got = terms[0].1.clone().into_scalar::<f64>();
    assert_eq!(
        (noise.calls(), own.calls()),
        (0, 1),
        "z comes from the method's stream"
    );
    // The same z again from the method stream's first seed.
    let z_seed = NoiseStream::new(9).next_seed();
    let d = model.encoder.as_ref().unwrap().config.hidden_size;
    let (b, t) = (input.tokens.batch, input.tokens.seq_len);
    let z = Tensor::<3>::from_data(
        TensorData::new(
            embedding_noise(b * t * d, 0.05, R3fNoise::Uniform, z_seed),
            [b, t, d],
        ),
        &dev,
    );
    let noisy = model.forward_tokens_shifted(&input, Some(z), &dev);
    let want =
        2.0 * symmetric_kl(forward.head.logits.clone(), noisy.head.logits).into_scalar::<f64>();
    assert!(
        want > 0.0 && (got - want).abs() < 1e-6 * want.max(1e-3),
        "{got} vs {want}"
    );
    // λ = 0 adds no term and draws nothing.
    let own0 = NoiseStream::new(9);
    let ctx0 = context(&model, &pretrained, &noise, &own0, &dev);
    let view0 = StepView { ctx: &ctx0, ..view };
    let zero = R3f {
        lambda: 0.0,
        ..method
    };
    assert!(zero.loss_terms(&view0).is_empty());
    assert_eq!(own0.calls(), 0);
}
