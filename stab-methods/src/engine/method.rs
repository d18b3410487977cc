//! The `Method` trait: the hooks a stabilisation method has on a fine-tuning run
//! (design.md §6). A method is one file that implements this trait and registers one
//! [`MethodEntry`](stab_core::MethodEntry) carrying its parameter schema and its
//! `build` function; the engine never names a method.
//!
//! Hooks, in the order a run calls them:
//! * [`Method::head_shape`] — how many output layers the head has (MHLoss).
//! * [`Method::uses_cached_features`], [`Method::dropout_enabled`] — what the run may
//!   assume (a method that perturbs the encoder's forward cannot use cached features;
//!   MixOut replaces dropout).
//! * [`Method::prepare_encoder`] — change the pre-trained encoder before fine-tuning
//!   (SURT's masked-LM phase on the task's train texts).
//! * [`Method::training_model`] — the model a training forward sees (MixOut: a masked
//!   mix of the current and start weights whose gradient flows to the current ones).
//! * [`Method::loss_terms`] — terms added to the task loss, given the forward pass, the
//!   batch and the model (MMR on the features; LNSR with an extra noisy forward).
//! * [`Method::eval_model`] — the model scored at each evaluation (MixOut-author).

use std::any::Any;

use burn::tensor::{Device, Tensor};
use stab_core::{InputError, MethodParams};
use stab_data::encode::EncodedRow;
use stab_models::{Encoder, HeadShape, NoiseStream, TextEncoder};

use super::model::{Forward, TaskModel, TokenInput};

/// What a method sees before fine-tuning starts.
pub struct PrepareContext<'a> {
    /// The run's (possibly perturbed) training rows, tokenized with the task template.
    pub train: &'a [EncodedRow],
    pub tokenizer: &'a TextEncoder,
    pub pad_id: i64,
    /// The run's noise stream (masks, noise).
    pub noise: &'a NoiseStream,
    /// The training (autodiff) device.
    pub device: &'a Device,
}

/// What a method sees around a training step or evaluation.
pub struct StepContext<'a> {
    /// The weights at the start of fine-tuning (pre-trained encoder, fresh head).
    pub start: &'a TaskModel,
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

    /// Change the pre-trained encoder before fine-tuning.
    fn prepare_encoder(
        &mut self,
        encoder: Encoder,
        _ctx: &PrepareContext,
    ) -> anyhow::Result<Encoder> {
        Ok(encoder)
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
