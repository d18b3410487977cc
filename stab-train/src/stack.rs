//! Methods stacked in one run (`[[methods]] name = "reinit"`, `stack = [{ name = "llrd" }]`),
//! as one [`Method`]. Each hook combines the stacked methods by one rule
//! (docs/plugins.md, "Stacking"):
//!
//! | hook | rule |
//! |---|---|
//! | `check_model` | every method must accept the model |
//! | `capabilities` | cached features and dropout only if every method allows them; the head shape of the one method that sets one; the test scores the selected evaluated model if any method asks |
//! | `encoder_change`, `prepare_encoder` | the one method that changes the encoder |
//! | `adapt`, `before_training`, `adjust_gradients`, `after_update`, `eval_model` | each method in the written order |
//! | `trains` | a parameter trains only if every method lets it; at most one method may choose its own set (`capabilities().chooses_trainable`: LoRA, BitFit, adapters), and none in head mode, where the encoder is frozen |
//! | `lr_scale` | the product of the factors |
//! | `training_model`, `train_step` | the one method that declares it |
//! | `loss_terms` | all terms, in the written order |
//! | `checkpoint_files` | every method's files (one file name per stack) |
//!
//! A stack where two methods would need the same exclusive hook (two head shapes, two
//! encoder changes, two training models, two train steps) or the same method twice is an
//! input error before any run.
//!
//! Each method's hooks see [`StepContext::own_noise`] as a stream of the method's own,
//! seeded from the run's dropout seed and the method's name ([`MethodStack::with_noise_seed`]).

use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use stab_core::Refusal;
use stab_core::derive_seed;
use stab_core::recipe::TrainMode;
use stab_core::{InputError, Stack};
use stab_models::{Encoder, EncoderConfig, HeadShape, NoiseStream};

use crate::method::{
    AdaptContext, Capabilities, CheckpointFile, EncoderChange, ExportContext, Method,
    PrepareContext, Prepared, SeedBatching, StepContext, StepRunner, StepView, TrainingData,
};
use crate::model::TaskModel;
use crate::plugin::build;

/// The methods of one run, in the written order.
pub struct MethodStack {
    parts: Vec<(String, Box<dyn Method>)>,
    /// Each method's own noise stream, in the order of `parts`.
    streams: Vec<NoiseStream>,
}

impl MethodStack {
    /// Build and check a run's stack (`RunSpec::method_stack`).
    pub fn build(stack: &Stack) -> Result<Self, InputError> {
        let mut parts: Vec<(String, Box<dyn Method>)> = Vec::new();
        for call in stack.calls() {
            let name = &call.name;
            if parts.iter().any(|(n, _)| n == name) {
                return Err(conflict(format!("`{name}` is stacked twice")));
            }
            parts.push((name.clone(), build(name, &call.params)?));
        }
        let streams = vec![NoiseStream::default(); parts.len()];
        let s = Self { parts, streams };
        s.exclusive("set the head's shape", |m| {
            m.capabilities().head != HeadShape::default()
        })?;
        s.exclusive("replace the training model", |m| {
            m.capabilities().replaces_training_model
        })?;
        s.exclusive("override the train step", |m| {
            m.capabilities().overrides_step
        })?;
        s.exclusive(
            "choose which parameters train (stacked, only what every one of them lets train would: the head)",
            |m| m.capabilities().chooses_trainable,
        )?;
        for mode in [TrainMode::Full, TrainMode::Head] {
            s.exclusive("change the encoder", |m| {
                m.encoder_change(mode) != EncoderChange::Unchanged
            })?;
        }
        Ok(s)
    }

    /// Refuse a stack whose parameter-choosing method would do nothing in `mode`: head
    /// tuning freezes the encoder, so LoRA, BitFit or adapters there would be plain head
    /// tuning recorded under their name.
    pub fn check_mode(&self, mode: TrainMode) -> Result<(), InputError> {
        if mode != TrainMode::Head {
            return Ok(());
        }
        match self.parts.iter().find(|(_, m)| m.capabilities().chooses_trainable) {
            Some((name, _)) => Err(InputError::new(format!(
                "`{name}` chooses which encoder parameters train, but mode = \"head\" freezes the encoder: the run would be plain head tuning recorded as {name}"
            ))
            .key("train.mode")
            .hint(format!("run {name} with mode = \"full\" (it trains only its own parameters there)"))),
            None => Ok(()),
        }
    }

    /// Give each method its own noise stream, seeded from `seed` (the run's dropout seed)
    /// and the method's name: a method's draws never shift another's, nor the dropout masks.
    pub fn with_noise_seed(mut self, seed: u64) -> Self {
        self.streams = self
            .parts
            .iter()
            .map(|(name, _)| NoiseStream::new(derive_seed(seed, &["method-noise", name])))
            .collect();
        self
    }

    /// Each method with the step context it sees (its own noise stream).
    fn with_ctx<'a>(
        &'a self,
        ctx: &StepContext<'a>,
    ) -> impl Iterator<Item = (&'a dyn Method, StepContext<'a>)> {
        let ctx = *ctx;
        self.parts
            .iter()
            .zip(&self.streams)
            .map(move |((_, m), noise)| {
                (
                    m.as_ref(),
                    StepContext {
                        own_noise: noise,
                        ..ctx
                    },
                )
            })
    }

    /// The stacked method names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.parts.iter().map(|(n, _)| n.as_str()).collect()
    }

    fn methods(&self) -> impl Iterator<Item = &dyn Method> {
        self.parts.iter().map(|(_, m)| m.as_ref())
    }

    /// At most one method may take a hook that cannot be combined.
    fn exclusive(&self, what: &str, takes: impl Fn(&dyn Method) -> bool) -> Result<(), InputError> {
        let takers: Vec<&str> = self
            .parts
            .iter()
            .filter(|(_, m)| takes(m.as_ref()))
            .map(|(n, _)| n.as_str())
            .collect();
        if takers.len() > 1 {
            return Err(conflict(format!(
                "{} each {what}, and only one method of a stack may",
                takers.join(" and ")
            )));
        }
        Ok(())
    }

    /// The one method that takes an exclusive hook, if any.
    fn taker(&self, takes: impl Fn(&dyn Method) -> bool) -> Option<&dyn Method> {
        self.methods().find(|m| takes(*m))
    }

    fn changer(&self, mode: TrainMode) -> Option<&dyn Method> {
        self.taker(|m| m.encoder_change(mode) != EncoderChange::Unchanged)
    }
}

fn conflict(message: String) -> InputError {
    InputError::new(format!("impossible method stack: {message}"))
        .key("methods")
        .hint("docs/plugins.md (\"Stacking\") lists how each hook combines; run such methods as separate [[methods]] entries")
}

impl Method for MethodStack {
    fn check_model(&self, config: &EncoderConfig) -> Result<(), Refusal> {
        for (name, m) in &self.parts {
            m.check_model(config).map_err(|e| {
                if self.parts.len() > 1 {
                    Refusal {
                        reason: format!("{name}: {}", e.reason),
                        ..e
                    }
                } else {
                    e
                }
            })?;
        }
        Ok(())
    }

    fn capabilities(&self) -> Capabilities {
        let mut c = Capabilities {
            seed_batch: SeedBatching::Stacked,
            ..Capabilities::default()
        };
        for m in self.methods() {
            let mc = m.capabilities();
            c.seed_batch = match (c.seed_batch, mc.seed_batch) {
                (SeedBatching::Alone, _) | (_, SeedBatching::Alone) => SeedBatching::Alone,
                (SeedBatching::StackedWithTerms, _) | (_, SeedBatching::StackedWithTerms) => {
                    SeedBatching::StackedWithTerms
                }
                _ => SeedBatching::Stacked,
            };
            c.cached_features &= mc.cached_features;
            c.dropout &= mc.dropout;
            if mc.head != HeadShape::default() {
                c.head = mc.head;
            }
            c.replaces_training_model |= mc.replaces_training_model;
            c.overrides_step |= mc.overrides_step;
            c.selects_evaluated |= mc.selects_evaluated;
        }
        c
    }

    fn encoder_change(&self, mode: TrainMode) -> EncoderChange {
        self.changer(mode)
            .map_or(EncoderChange::Unchanged, |m| m.encoder_change(mode))
    }

    fn prepare_encoder(
        &self,
        encoder: Encoder,
        ctx: &PrepareContext,
    ) -> stab_core::Result<Prepared> {
        match self.changer(ctx.mode) {
            Some(m) => m.prepare_encoder(encoder, ctx),
            None => Ok(Prepared {
                encoder,
                details: serde_json::Value::Null,
            }),
        }
    }

    fn adapt(&self, model: TaskModel, ctx: &AdaptContext) -> TaskModel {
        self.methods().fold(model, |model, m| m.adapt(model, ctx))
    }

    fn trains(&self, path: &str) -> bool {
        self.methods().all(|m| m.trains(path))
    }

    fn no_op(&self, mode: TrainMode) -> Option<&'static str> {
        // A stack does nothing only when none of its methods does anything; the reason
        // of the first stands for the stack.
        let reasons: Vec<&'static str> = self
            .methods()
            .map(|m| m.no_op(mode))
            .collect::<Option<_>>()?;
        reasons.first().copied()
    }

    fn lr_scale(&self, path: &str, layers: usize) -> f64 {
        self.methods().map(|m| m.lr_scale(path, layers)).product()
    }

    fn training_model(&self, model: &TaskModel, ctx: &StepContext) -> Option<TaskModel> {
        self.with_ctx(ctx)
            .find_map(|(m, ctx)| m.training_model(model, &ctx))
    }

    fn loss_terms(&self, step: &StepView) -> Vec<(&'static str, Tensor<1>)> {
        self.with_ctx(step.ctx)
            .flat_map(|(m, ctx)| m.loss_terms(&StepView { ctx: &ctx, ..*step }))
            .collect()
    }

    fn before_training(
        &self,
        model: &TaskModel,
        data: &dyn TrainingData,
        ctx: &StepContext,
    ) -> stab_core::Result<()> {
        for (m, ctx) in self.with_ctx(ctx) {
            m.before_training(model, data, &ctx)?;
        }
        Ok(())
    }

    fn train_step(
        &self,
        model: &TaskModel,
        runner: &dyn StepRunner,
        ctx: &StepContext,
    ) -> Option<(f64, GradientsParams)> {
        self.with_ctx(ctx)
            .find(|(m, _)| m.capabilities().overrides_step)
            .and_then(|(m, ctx)| m.train_step(model, runner, &ctx))
    }

    fn adjust_gradients(
        &self,
        grads: GradientsParams,
        model: &TaskModel,
        ctx: &StepContext,
    ) -> GradientsParams {
        self.with_ctx(ctx)
            .fold(grads, |g, (m, ctx)| m.adjust_gradients(g, model, &ctx))
    }

    fn after_update(&self, model: &TaskModel, ctx: &StepContext) {
        for (m, ctx) in self.with_ctx(ctx) {
            m.after_update(model, &ctx);
        }
    }

    fn eval_model(&self, model: TaskModel, ctx: &StepContext) -> TaskModel {
        self.with_ctx(ctx)
            .fold(model, |model, (m, ctx)| m.eval_model(model, &ctx))
    }

    fn checkpoint_files(
        &self,
        trained: &TaskModel,
        ctx: &ExportContext,
    ) -> stab_core::Result<Vec<(String, CheckpointFile)>> {
        let mut out: Vec<(String, CheckpointFile)> = Vec::new();
        for (name, m) in &self.parts {
            for (file, content) in m.checkpoint_files(trained, ctx)? {
                if out.iter().any(|(f, _)| *f == file) {
                    return Err(stab_core::internal!(
                        "{name} writes the checkpoint file {file}, which another method of the stack writes too"
                    ));
                }
                out.push((file, content));
            }
        }
        Ok(out)
    }
}
