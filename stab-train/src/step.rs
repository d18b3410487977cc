//! One training update (docs/methods.md §4.1): forward → mean cross-entropy + the methods'
//! loss terms → backward (or the method's own step) → the methods' gradient hooks →
//! global-norm clipping → AdamW at the schedule's learning rate.

use std::cell::RefCell;

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use stab_models::HostReads;

use crate::evaluate::Source;
use crate::method::{Method, StepContext, StepRunner, StepView, TrainingData};
use crate::model::TaskModel;
use crate::optim::clip_global_norm;

/// Mean cross-entropy over the batch and the H output layers of logits `[H, B, C]`.
pub fn cross_entropy(logits: Tensor<3>, labels: &[usize], device: &Device) -> Tensor<1> {
    let [h, b, _] = logits.dims();
    let idx: Vec<i64> = (0..h)
        .flat_map(|_| labels.iter().map(|&l| l as i64))
        .collect();
    let idx = Tensor::<3, Int>::from_data(TensorData::new(idx, [h, b, 1]), device);
    log_softmax(logits, 2)
        .gather(2, idx)
        .mean()
        .neg()
        .reshape([1])
}

/// Each run's mean cross-entropy in a seed batch of `k` runs (docs/methods.md §4.5):
/// logits `[K·H, B, C]` and `labels` (K·B) run after run; returns `[K]`. Each run's
/// value is computed by the ops [`cross_entropy`] uses on one run.
pub(crate) fn cross_entropy_members(
    logits: Tensor<3>,
    labels: &[usize],
    k: usize,
    device: &Device,
) -> Tensor<1> {
    let [kh, b, _] = logits.dims();
    let h = kh / k;
    let idx: Vec<i64> = labels
        .chunks(b)
        .flat_map(|run| (0..h).flat_map(move |_| run.iter().map(|&l| l as i64)))
        .collect();
    let idx = Tensor::<3, Int>::from_data(TensorData::new(idx, [kh, b, 1]), device);
    log_softmax(logits, 2)
        .gather(2, idx)
        .reshape([k, h * b])
        .mean_dim(1)
        .neg()
        .reshape([k])
}

/// What one update reports.
pub(super) struct StepLoss {
    /// The training loss (CE + terms); not finite when the run diverged (no update then).
    pub total: f64,
    /// Each loss term's value, in the methods' order ("ce" first when there are terms).
    pub terms: Vec<(&'static str, f64)>,
}

/// The engine's step on one batch: the default [`StepRunner`].
struct BatchStep<'a> {
    source: &'a Source<'a>,
    method: &'a dyn Method,
    rows: &'a [usize],
    labels: &'a [usize],
    classes: usize,
    ctx: &'a StepContext<'a>,
    /// The loss terms of the first pass, for the record.
    terms: RefCell<Option<Vec<(&'static str, f64)>>>,
}

impl StepRunner for BatchStep<'_> {
    fn loss_and_gradients(&self, model: &TaskModel) -> (f64, GradientsParams) {
        let _span = tracing::trace_span!("forward").entered();
        let device = self.ctx.device;
        let trained = self.method.training_model(model, self.ctx);
        let fwd_model = trained.as_ref().unwrap_or(model);
        let (forward, batch) = self.source.forward_train(fwd_model, self.rows, device);
        let ce = cross_entropy(forward.head.logits.clone(), self.labels, device);
        let view = StepView {
            model: fwd_model,
            forward: &forward,
            input: batch.tokens(),
            features: batch.features(),
            labels: self.labels,
            classes: self.classes,
            ctx: self.ctx,
        };
        let terms = self.method.loss_terms(&view);
        let mut loss = ce.clone();
        for (_, t) in &terms {
            loss = loss + t.clone();
        }
        let (total, values) = if terms.is_empty() {
            (HostReads::scalar(loss.clone()), Vec::new())
        } else {
            // One read for the loss and every term.
            let mut parts = vec![loss.clone(), ce];
            parts.extend(terms.iter().map(|(_, t)| t.clone()));
            let read = HostReads::values(Tensor::cat(parts, 0));
            let mut values = vec![("ce", f64::from(read[1]))];
            values.extend(
                terms
                    .iter()
                    .zip(&read[2..])
                    .map(|((n, _), &v)| (*n, f64::from(v))),
            );
            (f64::from(read[0]), values)
        };
        self.terms.borrow_mut().get_or_insert(values);
        drop(_span);
        if !total.is_finite() {
            return (total, GradientsParams::new());
        }
        let _span = tracing::trace_span!("backward").entered();
        (total, GradientsParams::from_grads(loss.backward(), model))
    }
}

/// One update of `model` on the batch `rows`; `None` in the loss means the run diverged
/// and the model is returned unchanged.
#[allow(clippy::too_many_arguments)]
pub(super) fn update(
    model: TaskModel,
    optim: &mut ModuleOptimizer,
    lr: f64,
    grad_clip: f64,
    source: &Source,
    method: &dyn Method,
    (rows, labels, classes): (&[usize], &[usize], usize),
    ctx: &StepContext,
) -> (TaskModel, StepLoss) {
    let runner = BatchStep {
        source,
        method,
        rows,
        labels,
        classes,
        ctx,
        terms: RefCell::new(None),
    };
    let (total, grads) = method
        .train_step(&model, &runner, ctx)
        .unwrap_or_else(|| runner.loss_and_gradients(&model));
    let terms = runner.terms.into_inner().unwrap_or_default();
    if !total.is_finite() {
        return (model, StepLoss { total, terms });
    }
    let grads = method.adjust_gradients(grads, &model, ctx);
    let mut grads = grads;
    {
        let _span = tracing::trace_span!("clip").entered();
        clip_global_norm(&model, &mut grads, grad_clip);
    }
    let _span = tracing::trace_span!("optimizer").entered();
    let model = optim.step(lr, model, grads);
    (model, StepLoss { total, terms })
}

/// The run's training rows for [`Method::before_training`]: plain cross-entropy
/// gradients of any batch.
pub(super) struct TrainRows<'a> {
    pub source: &'a Source<'a>,
    /// The label of each training row of the run.
    pub labels: &'a [usize],
    pub batch: usize,
    pub device: &'a Device,
}

impl TrainingData for TrainRows<'_> {
    fn rows(&self) -> usize {
        self.labels.len()
    }

    fn batch_size(&self) -> usize {
        self.batch
    }

    fn loss_and_gradients(&self, model: &TaskModel, rows: &[usize]) -> (f64, GradientsParams) {
        let labels: Vec<usize> = rows.iter().map(|&i| self.labels[i]).collect();
        let (forward, _) = self.source.forward_train(model, rows, self.device);
        let loss = cross_entropy(forward.head.logits, &labels, self.device);
        let value = HostReads::scalar(loss.clone());
        (value, GradientsParams::from_grads(loss.backward(), model))
    }
}
