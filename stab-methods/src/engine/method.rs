//! The `Method` trait: the hooks a stabilisation method has on a fine-tuning run
//! (design.md §6). A method is one file that implements this trait and registers one
//! [`MethodEntry`](stab_core::MethodEntry) carrying its parameter schema and its
//! `build` function; the engine never names a method.
//!
//! Hooks, in the order a run calls them:
//! * [`Method::check_model`] — before any run: can the method run on this model?
//! * [`Method::head_shape`] — how many output layers the head has (MHLoss).
//! * [`Method::uses_cached_features`], [`Method::dropout_enabled`] — what the run may
//!   assume (a method that perturbs the encoder's forward cannot use cached features;
//!   MixOut replaces dropout).
//! * [`Method::encoder_change`], [`Method::prepare_encoder`] — change the pre-trained
//!   encoder before fine-tuning (SURT's masked-LM phase on the task's train texts,
//!   re-initialising the top layers). A change that is the same for every seed of a task
//!   is prepared once and cached on disk by the engine.
//! * [`Method::lr_scale`] — a per-parameter learning-rate factor (layer-wise decay).
//! * [`Method::training_model`] — the model a training forward sees (MixOut: a masked
//!   mix of the current and start weights whose gradient flows to the current ones).
//! * [`Method::loss_terms`] — terms added to the task loss, given the forward pass, the
//!   batch and the model (MMR on the features; LNSR with an extra noisy forward).
//! * [`Method::eval_model`] — the model scored at each evaluation (MixOut-author).

use std::any::Any;
use std::collections::BTreeSet;

use burn::tensor::{Device, Tensor};
use stab_core::recipe::TrainMode;
use stab_core::{InputError, MethodParams};
use stab_data::encode::EncodedRow;
use stab_models::{Encoder, EncoderConfig, HeadShape, NoiseStream, TextEncoder};

use super::model::{Forward, TaskModel, TokenInput};

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

/// A prepared encoder and what the preparation reports into the run's record.
pub struct Prepared {
    pub encoder: Encoder,
    /// Recorded under `details.prepare` (e.g. SURT's masked-LM loss curve).
    pub details: serde_json::Value,
}

/// What a method sees around a training step or evaluation.
pub struct StepContext<'a> {
    /// The weights at the start of fine-tuning (pre-trained encoder, fresh head).
    pub start: &'a TaskModel,
    /// Paths (in [`TaskModel`]) of the parameters whose start value is pre-trained: the
    /// encoder's checkpoint tensors (empty when the head trains on cached features).
    pub pretrained: &'a BTreeSet<String>,
    pub noise: &'a NoiseStream,
    /// Updates done so far.
    pub step: u64,
    pub device: &'a Device,
}

/// One training step's forward pass, for [`Method::loss_terms`].
pub struct StepView<'a> {
    /// The model the forward ran (after [`Method::training_model`]).
    pub model: &'a TaskModel,
    pub forward: &'a Forward,
    /// The token batch, when the encoder ran (not on cached features).
    pub input: Option<&'a TokenInput>,
    pub labels: &'a [usize],
    pub classes: usize,
    pub ctx: &'a StepContext<'a>,
}

/// A stabilisation method. Every hook has the FineTune behaviour as its default.
pub trait Method: Send {
    /// Whether the method can run on a model with this config (checked before any run,
    /// an `Err` is the reader's error message: say what is wrong and what fits).
    fn check_model(&self, _config: &EncoderConfig) -> Result<(), String> {
        Ok(())
    }

    /// Output layers of the head (MHLoss: H of them).
    fn head_shape(&self) -> HeadShape {
        HeadShape::default()
    }

    /// Whether head tuning may train on cached eval-mode encoder features.
    fn uses_cached_features(&self) -> bool {
        true
    }

    /// Whether the model's dropout stays on in training.
    fn dropout_enabled(&self) -> bool {
        true
    }

    /// Whether (and how) [`Method::prepare_encoder`] changes the encoder in this mode.
    fn encoder_change(&self, _mode: TrainMode) -> EncoderChange {
        EncoderChange::Unchanged
    }

    /// Change the pre-trained encoder before fine-tuning (called only when
    /// [`Method::encoder_change`] is not `Unchanged`).
    fn prepare_encoder(
        &mut self,
        encoder: Encoder,
        _ctx: &PrepareContext,
    ) -> anyhow::Result<Prepared> {
        Ok(Prepared {
            encoder,
            details: serde_json::Value::Null,
        })
    }

    /// Learning-rate factor of the parameter at `path` (a [`TaskModel`] path such as
    /// `encoder.encoder.layer.3.output.dense.weight`) in a model with `layers` encoder
    /// layers. Read once when the optimiser is built.
    fn lr_scale(&self, _path: &str, _layers: usize) -> f64 {
        1.0
    }

    /// The model a training forward sees, if not the trained model itself.
    fn training_model(&self, _model: &TaskModel, _ctx: &StepContext) -> Option<TaskModel> {
        None
    }

    /// Named terms added to the mean cross-entropy (each a one-element tensor).
    fn loss_terms(&self, _step: &StepView) -> Vec<(&'static str, Tensor<1>)> {
        Vec::new()
    }

    /// The model scored at an evaluation (a validation copy of the trained model).
    fn eval_model(&self, model: TaskModel, _ctx: &StepContext) -> TaskModel {
        model
    }
}

/// Pack a method for [`MethodEntry::build`](stab_core::MethodEntry::build).
pub fn implementation<M: Method + 'static>(method: M) -> Result<Box<dyn Any + Send>, String> {
    Ok(Box::new(Box::new(method) as Box<dyn Method>))
}

/// Methods whose registration cannot build an implementation from its default parameters
/// (a schema without an implementation, or a build that returns something other than a
/// [`Method`]), with the reason. Empty when every registration is sound.
pub fn unimplemented_methods() -> Vec<String> {
    stab_core::registry::methods()
        .iter()
        .filter_map(|entry| {
            let defaults: MethodParams = entry
                .params
                .iter()
                .map(|p| (p.name.to_string(), p.default_json()))
                .collect();
            build(entry.name, &defaults)
                .err()
                .map(|e| format!("`{}`: {e}", entry.name))
        })
        .collect()
}

/// Build the registered method `name` from validated parameters.
pub fn build(name: &str, params: &MethodParams) -> Result<Box<dyn Method>, InputError> {
    let entry = stab_core::registry::method(name)?;
    let any = (entry.build)(params).map_err(|why| {
        InputError::new(format!("method `{name}` cannot run: {why}"))
            .key("methods")
            .hint("`stab list methods` shows what each method takes")
    })?;
    any.downcast::<Box<dyn Method>>().map(|b| *b).map_err(|_| {
        InputError::new(format!("method `{name}` registered a build function that does not return a stab_methods::engine::Method"))
            .hint("a method plugin's build must return stab_methods::engine::implementation(..)")
    })
}
