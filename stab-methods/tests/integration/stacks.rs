//! Method API v2 on the tiny-bert fixture: stacked methods combine each hook by its rule
//! (docs/plugins.md), an impossible stack is an input error before any run, and each new
//! hook does what it says — frozen parameters never move, a method's own train step and
//! gradient hook reach the update, and records count the trainable parameters.

use std::path::{Path, PathBuf};

use burn::optim::GradientsParams;
use burn::tensor::Device;
use stab_core::{Plan, Recipe, RunRecord, RunSpec};
use stab_methods::engine::params;
use stab_methods::engine::{
    Capabilities, EncoderChange, Engine, Method, MethodPlugin, PrepareContext, Prepared, Progress,
    StepContext, StepRunner, TaskModel,
};
use stab_methods::llrd::LayerwiseLrDecay;
use stab_methods::reinit::ReinitTopLayers;
use stab_models::{Encoder, EncoderConfig};

use crate::assets;

fn testdata() -> PathBuf {
    assets::root().join("testdata")
}

fn specs(methods: &str, mode: &str) -> Result<Vec<RunSpec>, String> {
    let text = format!(
        "name = \"t\"\n[model]\npath = \"{}\"\nmax_len = 64\n[data]\ndir = \"{}\"\ntasks = [\"cb\"]\ntrain_fraction = 0.3\n[train]\nmode = \"{mode}\"\nbatch_size = 8\nmax_steps = 8\neval_every = 4\nlr = 1e-3\nseeds = [2]\n{methods}\n",
        testdata().join("fixtures/tiny-bert").display(),
        testdata().join("data").display()
    );
    let recipe = Recipe::parse(&text, "test.toml").map_err(|e| e.to_string())?;
    Plan::from_recipe(&recipe)
        .map(|p| p.runs)
        .map_err(|e| e.to_string())
}

fn engine(dir: &Path) -> Engine {
    Engine::new(Device::flex(), dir)
}

fn run(eng: &Engine, methods: &str, mode: &str) -> RunRecord {
    let spec = &specs(methods, mode).unwrap_or_else(|e| panic!("{e}"))[0];
    eng.run(spec, &|_: Progress| {})
        .unwrap_or_else(|e| panic!("{methods}: {e:#}"))
        .0
}

fn same_training(a: &RunRecord, b: &RunRecord) -> bool {
    a.details["train_loss"] == b.details["train_loss"]
        && a.details["dev_curve"] == b.details["dev_curve"]
        && a.metrics == b.metrics
}

/// reinit and llrd written as one method by hand: reinit's encoder change, llrd's factors.
struct ReinitWithDecay {
    reinit: ReinitTopLayers,
    decay: LayerwiseLrDecay,
}
impl Method for ReinitWithDecay {
    fn check_model(&self, config: &EncoderConfig) -> Result<(), stab_core::Refusal> {
        self.reinit.check_model(config)
    }
    fn encoder_change(&self, mode: stab_core::TrainMode) -> EncoderChange {
        self.reinit.encoder_change(mode)
    }
    fn prepare_encoder(
        &self,
        encoder: Encoder,
        ctx: &PrepareContext,
    ) -> stab_core::Result<Prepared> {
        self.reinit.prepare_encoder(encoder, ctx)
    }
    fn lr_scale(&self, path: &str, layers: usize) -> f64 {
        self.decay.lr_scale(path, layers)
    }
}
impl MethodPlugin for ReinitWithDecay {
    const NAME: &'static str = "test-reinit-with-decay";
    const SUMMARY: &'static str = "test only: reinit k = 1 and llrd ξ = 0.8 in one method";
    type Params = stab_core::params::NoParams;
    fn from_params(_: Self::Params) -> Result<Self, stab_core::Refusal> {
        Ok(Self {
            reinit: ReinitTopLayers { layers: 1 },
            decay: LayerwiseLrDecay { xi: 0.8 },
        })
    }
}
stab_methods::register_method!(ReinitWithDecay);

/// FineTune without dropout whose train step runs the engine's step twice and keeps the
/// second pass (equal to the first without dropout): proves the step override is the step.
struct TwiceStep;
static TWICE_CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
impl Method for TwiceStep {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            dropout: false,
            overrides_step: true,
            ..Capabilities::default()
        }
    }
    fn train_step(
        &self,
        model: &TaskModel,
        runner: &dyn StepRunner,
        _: &StepContext,
    ) -> Option<(f64, GradientsParams)> {
        TWICE_CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let _ = runner.loss_and_gradients(model);
        Some(runner.loss_and_gradients(model))
    }
}
impl MethodPlugin for TwiceStep {
    const NAME: &'static str = "test-twice-step";
    const SUMMARY: &'static str = "test only: the engine's step run twice";
    type Params = stab_core::params::NoParams;
    fn from_params(_: Self::Params) -> Result<Self, stab_core::Refusal> {
        Ok(Self)
    }
}
stab_methods::register_method!(TwiceStep);

/// A second step override, so that two of them can be stacked (refused).
struct OtherStep;
impl Method for OtherStep {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            overrides_step: true,
            ..Capabilities::default()
        }
    }
}
impl MethodPlugin for OtherStep {
    const NAME: &'static str = "test-other-step";
    const SUMMARY: &'static str = "test only: declares a train step";
    type Params = stab_core::params::NoParams;
    fn from_params(_: Self::Params) -> Result<Self, stab_core::Refusal> {
        Ok(Self)
    }
}
stab_methods::register_method!(OtherStep);

/// A gradient hook that keeps only the head's gradients.
struct HeadGradientsOnly;
impl Method for HeadGradientsOnly {
    fn adjust_gradients(
        &self,
        mut grads: GradientsParams,
        model: &TaskModel,
        _: &StepContext,
    ) -> GradientsParams {
        struct Drop<'a>(&'a mut GradientsParams);
        impl burn::module::ModuleVisitor for Drop<'_> {
            fn visit_float<const D: usize>(
                &mut self,
                p: &burn::module::Param<burn::tensor::Tensor<D>>,
            ) {
                self.0.remove::<D>(p.id);
            }
        }
        if let Some(encoder) = &model.encoder {
            burn::module::Module::visit(encoder, &mut Drop(&mut grads));
        }
        grads
    }
}
impl MethodPlugin for HeadGradientsOnly {
    const NAME: &'static str = "test-head-gradients-only";
    const SUMMARY: &'static str = "test only: drops the encoder's gradients";
    type Params = stab_core::params::NoParams;
    fn from_params(_: Self::Params) -> Result<Self, stab_core::Refusal> {
        Ok(Self)
    }
}
stab_methods::register_method!(HeadGradientsOnly);

/// Freezes the encoder through `trains`.
struct HeadOnly;
impl Method for HeadOnly {
    fn trains(&self, path: &str) -> bool {
        path.starts_with("head.")
    }
}
impl MethodPlugin for HeadOnly {
    const NAME: &'static str = "test-head-only";
    const SUMMARY: &'static str = "test only: trains the head alone";
    type Params = stab_core::params::NoParams;
    fn from_params(_: Self::Params) -> Result<Self, stab_core::Refusal> {
        Ok(Self)
    }
}
stab_methods::register_method!(HeadOnly);

#[test]
fn a_stack_gets_the_joined_name_and_each_methods_parameters() {
    let runs = specs(
        "[[methods]]\nname = \"reinit\"\nk = 1\nstack = [{ name = \"llrd\", xi = 0.9 }]",
        "full",
    )
    .unwrap();
    assert_eq!(runs[0].method, "reinit+llrd");
    assert_eq!(
        serde_json::to_value(&runs[0].method_params).unwrap(),
        serde_json::json!({"reinit": {"k": 1}, "llrd": {"xi": 0.9}})
    );
    let stack = runs[0].stack();
    assert_eq!(stack.names().collect::<Vec<_>>(), ["reinit", "llrd"]);
    // The record's two fields read back into the stack the recipe wrote.
    assert_eq!(
        stab_core::Stack::from_identity(&runs[0].method, &runs[0].method_params),
        stack
    );
    assert_eq!(
        stack.identity(),
        (runs[0].method.clone(), runs[0].method_params.clone())
    );
}

#[test]
fn reinit_plus_llrd_equals_the_hand_composed_method_and_xi_one_is_reinit_alone() {
    let dir = tempfile::tempdir().unwrap();
    let eng = engine(dir.path());
    let stacked = run(
        &eng,
        "[[methods]]\nname = \"reinit\"\nk = 1\nstack = [{ name = \"llrd\", xi = 0.8 }]",
        "full",
    );
    let by_hand = run(
        &eng,
        "[[methods]]\nname = \"test-reinit-with-decay\"",
        "full",
    );
    assert!(
        same_training(&stacked, &by_hand),
        "reinit+llrd ≠ hand-composed"
    );
    let reinit = run(&eng, "[[methods]]\nname = \"reinit\"\nk = 1", "full");
    let with_one = run(
        &eng,
        "[[methods]]\nname = \"reinit\"\nk = 1\nstack = [{ name = \"llrd\", xi = 1.0 }]",
        "full",
    );
    assert!(
        same_training(&reinit, &with_one),
        "reinit+llrd(ξ = 1) ≠ reinit"
    );
    assert!(!same_training(&reinit, &stacked));
    assert_eq!(stacked.method, "reinit+llrd");
}

#[test]
fn impossible_stacks_are_input_errors_before_any_run() {
    let twice = specs(
        "[[methods]]\nname = \"mmr\"\nstack = [{ name = \"mmr\", alpha = 2.0 }]",
        "full",
    )
    .unwrap_err();
    assert!(twice.contains("stacks `mmr` twice"), "{twice}");
    let nested = specs(
        "[[methods]]\nname = \"mmr\"\nstack = [{ name = \"llrd\", stack = [] }]",
        "full",
    )
    .unwrap_err();
    assert!(nested.contains("do not nest"), "{nested}");
    let dir = tempfile::tempdir().unwrap();
    let eng = engine(dir.path());
    for (methods, why) in [
        (
            "name = \"test-twice-step\"\nstack = [{ name = \"test-other-step\" }]",
            "override the train step",
        ),
        (
            "name = \"reinit\"\nstack = [{ name = \"surt\" }]",
            "change the encoder",
        ),
        (
            "name = \"lora\"\nstack = [{ name = \"bitfit\" }]",
            "each choose which parameters train",
        ),
        (
            "name = \"adapter\"\nstack = [{ name = \"lora\" }]",
            "each choose which parameters train",
        ),
        (
            "name = \"mhloss\"\nstack = [{ name = \"mixout\" }, { name = \"test-head-only\" }]",
            "",
        ),
    ] {
        let spec = &specs(&format!("[[methods]]\n{methods}"), "full").unwrap()[0];
        let checked = eng.check(spec);
        if why.is_empty() {
            checked.unwrap_or_else(|e| panic!("{methods}: {e:#}"));
            continue;
        }
        let e = checked.unwrap_err();
        let input = e.as_input().expect("an input error");
        assert!(input.message.contains(why), "{methods}: {input}");
    }
}

#[test]
fn a_train_step_override_is_the_step() {
    let dir = tempfile::tempdir().unwrap();
    let eng = engine(dir.path());
    let plain = run(
        &eng,
        "[[methods]]\nname = \"test-finetune-no-dropout\"",
        "full",
    );
    let twice = run(&eng, "[[methods]]\nname = \"test-twice-step\"", "full");
    assert_eq!(twice.steps, 8);
    assert_eq!(TWICE_CALLS.load(std::sync::atomic::Ordering::SeqCst), 8);
    assert!(same_training(&plain, &twice));
}

/// Every encoder parameter of a trained run's model, against the pre-trained values.
fn encoder_unchanged(model: &TaskModel) -> bool {
    let (start, _) =
        stab_models::load_encoder(&testdata().join("fixtures/tiny-bert"), &Device::flex()).unwrap();
    let before = params::collect(&start);
    let after = params::collect(model.encoder.as_ref().unwrap());
    before.iter().all(|(path, p)| {
        let a = p.values.clone().into_data().try_to_vec::<f32>().unwrap();
        let b = after[path]
            .values
            .clone()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        path.starts_with("pooler.") || a == b
    })
}

fn trained(eng: &Engine, methods: &str) -> stab_methods::engine::TrainedRun {
    let spec = &specs(methods, "full").unwrap()[0];
    eng.train(spec, &|_: Progress| {}).unwrap()
}

#[test]
fn frozen_parameters_and_dropped_gradients_never_move() {
    let dir = tempfile::tempdir().unwrap();
    let eng = engine(dir.path());
    let head_only = trained(&eng, "[[methods]]\nname = \"test-head-only\"");
    assert!(encoder_unchanged(&head_only.model));
    let d = &head_only.record.details;
    let head_params = d["trainable_params"].as_u64().unwrap();
    assert!(head_params > 0 && head_params < d["total_params"].as_u64().unwrap());
    let dropped = trained(&eng, "[[methods]]\nname = \"test-head-gradients-only\"");
    assert!(encoder_unchanged(&dropped.model));
    let finetune = trained(&eng, "[[methods]]\nname = \"finetune\"");
    assert!(!encoder_unchanged(&finetune.model));
}

#[test]
fn records_count_trainable_and_total_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let eng = engine(dir.path());
    let full = run(&eng, "[[methods]]\nname = \"finetune\"", "full");
    let head = run(&eng, "[[methods]]\nname = \"finetune\"", "head");
    let count = |r: &RunRecord, k: &str| r.details[k].as_u64().unwrap();
    assert_eq!(
        count(&full, "trainable_params"),
        count(&full, "total_params")
    );
    // Cached head tuning counts the frozen encoder from its config: the same total.
    assert_eq!(count(&head, "total_params"), count(&full, "total_params"));
    let config = EncoderConfig::from_dir(&testdata().join("fixtures/tiny-bert")).unwrap();
    let (h, classes) = (config.hidden_size as u64, 3);
    assert_eq!(
        count(&head, "trainable_params"),
        h * h + h + h * classes + classes
    );
}

#[test]
fn loss_term_curves_reach_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let eng = engine(dir.path());
    let r = run(&eng, "[[methods]]\nname = \"mmr\"\nalpha = 0.5", "full");
    let terms = &r.details["loss_terms"];
    let ce = terms["ce"].as_array().unwrap();
    let mmr = terms["mmr"].as_array().unwrap();
    let total = r.details["train_loss"].as_array().unwrap();
    assert_eq!((ce.len(), mmr.len()), (total.len(), total.len()));
    for ((c, m), t) in ce.iter().zip(mmr).zip(total) {
        let (c, m, t) = (
            c[1].as_f64().unwrap(),
            m[1].as_f64().unwrap(),
            t[1].as_f64().unwrap(),
        );
        assert!(
            (c + m - t).abs() < 1e-6 * t.abs().max(1.0),
            "{c} + {m} ≠ {t}"
        );
        assert!(m > 0.0 && m <= 0.5);
    }
    let plain = run(&eng, "[[methods]]\nname = \"finetune\"", "full");
    assert!(plain.details.get("loss_terms").is_none());
}
