//! The `Method` trait: the hooks a stabilisation method has on a fine-tuning run
//! (docs/design.md §6, docs/plugins.md). A method is one file that implements this trait
//! and [`MethodPlugin`](crate::MethodPlugin), and registers with one
//! `stab_methods::register_method!`; the engine never names a method.
//!
//! Hooks, in the order a run calls them:
//! * [`Method::check_model`] — before any run: can the method run on this model?
//! * [`Method::capabilities`] — what the run may assume: cached features, dropout, the
//!   head's shape, and which exclusive hooks the method takes.
//! * [`Method::encoder_change`], [`Method::prepare_encoder`] — change the pre-trained
//!   encoder before fine-tuning (SURT's masked-LM phase, re-initialising the top layers).
//!   A change that is the same for every seed of a task is prepared once and cached.
//! * [`Method::adapt`] — add modules to the model (LoRA's low-rank updates, adapters);
//!   they train and are saved with it.
//! * [`Method::trains`] — which parameters train (the others are frozen: no gradient, no
//!   AdamW state).
//! * [`Method::lr_scale`] — a per-parameter learning-rate factor (layer-wise decay).
//! * [`Method::training_model`] — the model a training forward sees (MixOut).
//! * [`Method::loss_terms`] — named terms added to the task loss (MMR, LNSR).
//! * [`Method::before_training`] — look at the training set through the engine's
//!   gradients before the first update (ChildTuning-D's Fisher information).
//! * [`Method::train_step`] — the step's gradients, when a method computes them its own
//!   way (two forward/backward passes, as SAM does).
//! * [`Method::adjust_gradients`] — change the gradients between backward and clipping.
//! * [`Method::after_update`] — see the weights after each optimiser step (a moving
//!   average of the weights).
//! * [`Method::eval_model`] — the model scored at each evaluation (MixOut-author, LoRA's
//!   merged weights).
//! * [`Method::checkpoint_files`] — files saved beside the checkpoint (LoRA's PEFT adapter).
//!
//! A method value belongs to one run: the run's setup builds it from the recipe's
//! parameters and drops it with the run. State a method keeps across hooks (ChildTuning-D's
//! mask, EMA's average) lives in it behind a `Mutex`, and is the run's, never the
//! process's. A method's own random draws come from [`StepContext::own_noise`], a stream
//! of its own derived from the run's dropout seed and the method's name, so they never
//! shift the dropout masks the run would draw without the method.

use stab_core::Refusal;
use std::collections::BTreeSet;

use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use stab_core::recipe::TrainMode;
use stab_data::encode::EncodedRow;
use stab_models::{Encoder, EncoderConfig, HeadInput, HeadShape, NoiseStream, TextEncoder};

use crate::model::{Forward, TaskModel, TokenInput};

/// What a method declares about the run it joins, in one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Whether head tuning may train on cached eval-mode encoder features (a method that
    /// perturbs the encoder's forward cannot).
    pub cached_features: bool,
    /// Whether the model's dropout stays on in training (MixOut-ref replaces it).
    pub dropout: bool,
    /// Output layers of the head (MHLoss: H of them).
    pub head: HeadShape,
    /// The method replaces the model a training forward sees ([`Method::training_model`]);
    /// at most one method of a stack may.
    pub replaces_training_model: bool,
    /// The method computes the step's gradients itself ([`Method::train_step`]); at most
    /// one method of a stack may.
    pub overrides_step: bool,
    /// The model scored on test is the evaluated model of the selected evaluation (EMA:
    /// the average as it stood then), not the selected raw weights passed through
    /// [`Method::eval_model`] again.
    pub selects_evaluated: bool,
    /// The method chooses which parameters train ([`Method::trains`] names its own set:
    /// LoRA's matrices, BitFit's biases, the adapters). A stack trains only what every
    /// method lets train, so two such methods would leave only the head: at most one
    /// method of a stack may.
    pub chooses_trainable: bool,
    /// Whether head tuning on cached features may train this method's runs of one
    /// configuration K seeds at once (docs/methods.md §4.5), and how.
    pub seed_batch: SeedBatching,
}

/// How a method's runs take part in a seed batch (docs/methods.md §4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SeedBatching {
    /// Each run trains alone (the default: the engine cannot split the method's hooks by
    /// run).
    #[default]
    Alone,
    /// The runs train as one stacked model: the method has no per-step hook (a head
    /// shape, an encoder change prepared per task, learning-rate factors).
    Stacked,
    /// As `Stacked`, and [`Method::loss_terms`] is called once per run on that run's own
    /// view of the step (its rows, its slice of the forward, its head); the method has
    /// no other per-step hook.
    StackedWithTerms,
}

impl Default for Capabilities {
    fn default() -> Self {
        Self {
            cached_features: true,
            dropout: true,
            head: HeadShape::default(),
            replaces_training_model: false,
            overrides_step: false,
            selects_evaluated: false,
            chooses_trainable: false,
            seed_batch: SeedBatching::Alone,
        }
    }
}

/// How a method changes the pre-trained encoder before fine-tuning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncoderChange {
    /// Not at all ([`Method::prepare_encoder`] is never called).
    Unchanged,
    /// The same way for every seed of a task: prepared once from a task-level seed and
    /// cached (in head tuning its frozen features are cached too). The string identifies
    /// the change (method and the parameters it depends on) in cache keys.
    PerTask(String),
    /// Differently for each run (from the run's seed).
    PerRun,
}

/// What a method sees before fine-tuning starts.
pub struct PrepareContext<'a> {
    /// The training rows the change may read, tokenized with the task template: the
    /// run's (possibly perturbed) rows for a per-run change, the whole train split for a
    /// per-task one.
    pub train: &'a [EncodedRow],
    pub tokenizer: &'a TextEncoder,
    pub pad_id: i64,
    /// The pre-trained model's directory (tensors the encoder does not load: a decoder's
    /// untied `lm_head.weight`).
    pub model_dir: &'a std::path::Path,
    /// The seed of the change: derived from the task for [`EncoderChange::PerTask`],
    /// from the run seed for [`EncoderChange::PerRun`].
    pub seed: u64,
    /// A noise stream of the change's own (dropout masks), seeded from `seed`.
    pub noise: &'a NoiseStream,
    /// Encoder parameter paths the checkpoint lacked (initialised at load).
    pub initialised: &'a [String],
    pub mode: TrainMode,
    /// The training (autodiff) device.
    pub device: &'a Device,
    /// Progress of a long preparation: `(step, total steps, loss)`.
    pub report: &'a (dyn Fn(u64, u64, f64) + Sync),
}

/// What [`Method::adapt`] sees: the model's config and the run's seeds for new modules.
pub struct AdaptContext<'a> {
    pub config: &'a EncoderConfig,
    /// The seed for the initial values of added modules (from the run's head-init seed).
    pub seed: u64,
    /// The run's noise stream (for dropout inside added modules).
    pub noise: &'a NoiseStream,
    pub mode: TrainMode,
    pub device: &'a Device,
}

/// What [`Method::checkpoint_files`] sees besides the trained weights.
pub struct ExportContext<'a> {
    /// The pre-trained model directory the run started from.
    pub model_dir: &'a std::path::Path,
}

/// A file a method adds to a run's checkpoint directory.
pub enum CheckpointFile {
    /// Written as given.
    Bytes(Vec<u8>),
    /// Written as safetensors.
    Tensors(stab_models::TensorFile),
}

/// The run's training rows as [`Method::before_training`] sees them.
pub trait TrainingData {
    /// Number of training rows of the run.
    fn rows(&self) -> usize;
    /// The run's batch size.
    fn batch_size(&self) -> usize;
    /// Forward of `model` on the training rows `rows` (indices below [`TrainingData::rows`]),
    /// the mean cross-entropy (no method terms) and its gradients by parameter id. Dropout
    /// is whatever `model` has: pass `stab_models::without_dropout(model)` for an
    /// eval-mode pass that draws nothing from the run's noise stream.
    fn loss_and_gradients(&self, model: &TaskModel, rows: &[usize]) -> (f64, GradientsParams);
}

/// The engine's training step, which [`Method::train_step`] may run (twice for SAM).
pub trait StepRunner {
    /// Forward on `model` (after [`Method::training_model`]), the mean cross-entropy plus
    /// the stack's loss terms, and the gradients of that loss: `(loss, gradients)`. The
    /// gradients are keyed by parameter id, so the gradients of a perturbed copy of the
    /// model (same ids) apply to the model itself.
    fn loss_and_gradients(&self, model: &TaskModel) -> (f64, GradientsParams);
}

/// A prepared encoder and what the preparation reports into the run's record.
pub struct Prepared {
    pub encoder: Encoder,
    /// Recorded under `details.prepare` (e.g. SURT's masked-LM loss curve).
    pub details: serde_json::Value,
}

/// What a method sees around a training step or evaluation.
#[derive(Clone, Copy)]
pub struct StepContext<'a> {
    /// The weights at the start of fine-tuning (pre-trained encoder, fresh head).
    pub start: &'a TaskModel,
    /// Paths (in [`TaskModel`]) of the parameters whose start value is pre-trained: the
    /// encoder's checkpoint tensors (empty when the head trains on cached features).
    pub pretrained: &'a BTreeSet<String>,
    /// The run's stream of dropout masks (a method that draws here shifts every later mask).
    pub noise: &'a NoiseStream,
    /// The method's own stream (seeded from the run's dropout seed and the method's name):
    /// where a method's own noise comes from.
    pub own_noise: &'a NoiseStream,
    /// Updates done so far.
    pub step: u64,
    /// Updates planned for the run (T).
    pub total: u64,
    pub device: &'a Device,
}

/// One training step's forward pass, for [`Method::loss_terms`].
#[derive(Clone, Copy)]
pub struct StepView<'a> {
    /// The model the forward ran (after [`Method::training_model`]).
    pub model: &'a TaskModel,
    pub forward: &'a Forward,
    /// The token batch, when the encoder ran (not on cached features).
    pub input: Option<&'a TokenInput>,
    /// The batch's cached encoder features, when the head trains on them.
    pub features: Option<&'a HeadInput>,
    pub labels: &'a [usize],
    pub classes: usize,
    pub ctx: &'a StepContext<'a>,
}

impl StepView<'_> {
    /// Another forward of [`StepView::model`] on the same batch, in training mode: new
    /// dropout masks from the run's stream (R-Drop's second pass).
    pub fn forward_again(&self) -> Forward {
        match (self.input, self.features) {
            (Some(input), _) => self.model.forward_tokens(input, self.ctx.device),
            (None, Some(features)) => self.model.forward_features(features.clone()),
            (None, None) => unreachable!("a training forward reads tokens or features"),
        }
    }

    /// A forward on the same tokens with `word_shift` `[B, T, d]` added to the word
    /// embeddings (R3F's input noise); `None` on cached features, where no encoder runs.
    pub fn forward_shifted(&self, word_shift: Tensor<3>) -> Option<Forward> {
        let input = self.input?;
        Some(
            self.model
                .forward_tokens_shifted(input, Some(word_shift), self.ctx.device),
        )
    }
}

/// A stabilisation method. Every hook has the FineTune behaviour as its default; the rule
/// that combines each hook when methods are stacked is in [`crate::MethodStack`].
pub trait Method: Send {
    /// Whether the method can run on a model with this config (checked before any run,
    /// an `Err` is the reader's error message: say what is wrong and what fits).
    fn check_model(&self, _config: &EncoderConfig) -> Result<(), Refusal> {
        Ok(())
    }

    /// What the run may assume about this method.
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    /// Whether (and how) [`Method::prepare_encoder`] changes the encoder in this mode.
    fn encoder_change(&self, _mode: TrainMode) -> EncoderChange {
        EncoderChange::Unchanged
    }

    /// Change the pre-trained encoder before fine-tuning (called only when
    /// [`Method::encoder_change`] is not `Unchanged`). Everything the preparation wants
    /// recorded goes into [`Prepared::details`]: a per-task preparation is read back from
    /// its cache without calling this again.
    fn prepare_encoder(
        &self,
        encoder: Encoder,
        _ctx: &PrepareContext,
    ) -> stab_core::Result<Prepared> {
        Ok(Prepared {
            encoder,
            details: serde_json::Value::Null,
        })
    }

    /// Add modules to the model before training (after preparation): they are part of
    /// the start model, train with it and are saved with it.
    fn adapt(&self, model: TaskModel, _ctx: &AdaptContext) -> TaskModel {
        model
    }

    /// Whether the parameter at `path` (a [`TaskModel`] path such as
    /// `encoder.encoder.layer.3.output.dense.weight`, `head.Classification.out.weight`)
    /// trains. A frozen parameter gets no gradient and no optimiser state.
    fn trains(&self, _path: &str) -> bool {
        true
    }

    /// Why the method changes nothing in `mode`, if it does (its runs there equal
    /// FineTune's: MixOut's author variant, LNSR and LLRD in head tuning). A protocol may
    /// list such a run on purpose, so it is not refused: the plan says so up front and the
    /// record carries the reason (`details.no_op`).
    fn no_op(&self, _mode: stab_core::recipe::TrainMode) -> Option<&'static str> {
        None
    }

    /// Learning-rate factor of the parameter at `path` in a model with `layers` encoder
    /// layers. Read once when the optimiser is built.
    fn lr_scale(&self, _path: &str, _layers: usize) -> f64 {
        1.0
    }

    /// The model a training forward sees, if not the trained model itself (declare
    /// [`Capabilities::replaces_training_model`]).
    fn training_model(&self, _model: &TaskModel, _ctx: &StepContext) -> Option<TaskModel> {
        None
    }

    /// Named terms added to the mean cross-entropy (each a one-element tensor). Each
    /// name gets its own curve in the record (`details.loss_terms`).
    fn loss_terms(&self, _step: &StepView) -> Vec<(&'static str, Tensor<1>)> {
        Vec::new()
    }

    /// Called once before the first update with the start model and the run's training
    /// rows (ChildTuning-D estimates its Fisher information here).
    fn before_training(
        &self,
        _model: &TaskModel,
        _data: &dyn TrainingData,
        _ctx: &StepContext,
    ) -> stab_core::Result<()> {
        Ok(())
    }

    /// The step's loss and gradients computed the method's own way, through the engine's
    /// `runner` (declare [`Capabilities::overrides_step`]); `None` keeps the engine's step.
    fn train_step(
        &self,
        _model: &TaskModel,
        _runner: &dyn StepRunner,
        _ctx: &StepContext,
    ) -> Option<(f64, GradientsParams)> {
        None
    }

    /// Change the step's gradients after backward, before global-norm clipping.
    fn adjust_gradients(
        &self,
        grads: GradientsParams,
        _model: &TaskModel,
        _ctx: &StepContext,
    ) -> GradientsParams {
        grads
    }

    /// Called after each optimiser step with the updated model (`ctx.step` counts the
    /// update just made from 0).
    fn after_update(&self, _model: &TaskModel, _ctx: &StepContext) {}

    /// The model scored at an evaluation (a validation copy of the trained model).
    fn eval_model(&self, model: TaskModel, _ctx: &StepContext) -> TaskModel {
        model
    }

    /// Files the method adds to the run's checkpoint directory (`save_best`), from the
    /// selected weights before [`Method::eval_model`] (LoRA: its update in HF PEFT's format).
    fn checkpoint_files(
        &self,
        _trained: &TaskModel,
        _ctx: &ExportContext,
    ) -> stab_core::Result<Vec<(String, CheckpointFile)>> {
        Ok(Vec::new())
    }
}
