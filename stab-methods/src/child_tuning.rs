//! ChildTuning (Xu et al., EMNLP 2021, "Raise a Child in Large Language Model";
//! docs/methods.md §12.3): each update changes only a child network, by masking the
//! gradient before the optimiser.
//!
//! * `variant = "f"` (task-free): every step, every gradient element of every trainable
//!   parameter is kept with probability p and scaled by 1/p (`g ← g ⊙ M/p`,
//!   M ~ Bernoulli(p)), the masks drawn from the method's own noise stream. p = 1 is
//!   FineTune bit for bit.
//! * `variant = "d"` (task-driven): before training, the Fisher information of each
//!   parameter of the encoder layers is estimated on the training set,
//!   `F(θ) = Σ_batches (∂L/∂θ)²` (mean cross-entropy of each batch, dropout off, the
//!   run's rows in order, the first `fisher_batches` batches or all when 0), and the
//!   child network is the top-p share of those parameters by F (ties at the threshold
//!   kept). Their gradients pass unscaled, the other encoder-layer gradients are zeroed;
//!   the embeddings, pooler and task head train as in FineTune (the authors' code masks
//!   only parameters named `layer`).
//!
//! The mask is applied where stab's gradient hook sits, between backward and the
//! global-norm clip (the authors mask inside AdamW, after clipping): the clip sees the
//! masked gradient.
//!
//! Head tuning: only the head trains. ChildTuning-F masks the head's gradients;
//! ChildTuning-D has no encoder-layer gradient to mask and equals FineTune. Both may use
//! cached features.

use stab_core::Refusal;
use stab_core::recipe::TrainMode;
use std::collections::BTreeMap;
use std::sync::Mutex;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};
use stab_models::HostReads;
use stab_models::dropout::host_keep_mask;

use stab_train::params;
use stab_train::{Method, MethodPlugin, StepContext, TaskModel, TrainingData};

/// Which child network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChildVariant {
    /// Task-free: a fresh Bernoulli(p) mask every step.
    F,
    /// Task-driven: a fixed mask of the top-p parameters by Fisher information.
    D,
}

stab_core::method_params! {
    /// Update only a child network.
    #[derive(Copy)]
    pub struct ChildTuningParams {
        /// d = fixed top-p mask by Fisher information, f = a Bernoulli(p) mask each step (§12.3)
        pub variant: ChildVariant = choice(&["d", "f"], "d"),
        /// share p of the gradient kept (Xu et al.: 0.1–0.3; f with p = 1 is FineTune)
        pub p: f64 = float(0.001, 1.0, 0.3),
        /// d: training batches for the Fisher estimate (0 = the whole training set)
        pub fisher_batches: usize = int(0, 1_000_000, 0),
    }
}

/// ChildTuning of one run: the parameters and, for `d`, the mask found before training.
pub struct ChildTuning {
    pub params: ChildTuningParams,
    /// ChildTuning-D's 0/1 masks, flattened, by parameter id.
    masks: Mutex<BTreeMap<ParamId, Tensor<1>>>,
}

/// Whether ChildTuning-D masks the parameter at `path`: the encoder's transformer layers.
pub fn in_child_search(path: &str) -> bool {
    path.starts_with("encoder.encoder.layer.")
}

/// The 0/1 mask keeping the top `p` share of `fisher` (at least one value; every value
/// tied with the threshold kept).
pub fn top_share_mask(fisher: &[f32], p: f64) -> Vec<f32> {
    if fisher.is_empty() {
        return Vec::new();
    }
    let keep = ((p * fisher.len() as f64).ceil() as usize).clamp(1, fisher.len());
    let mut sorted = fisher.to_vec();
    let (_, &mut threshold, _) = sorted.select_nth_unstable_by(keep - 1, |a, b| b.total_cmp(a));
    fisher
        .iter()
        .map(|&f| if f >= threshold { 1.0 } else { 0.0 })
        .collect()
}

/// Visit every gradient of `model` with its parameter's rank, through `f(id, path, grad)`
/// returning the new gradient.
fn map_grads<F>(model: &TaskModel, grads: &mut GradientsParams, f: F)
where
    F: FnMut(ParamId, Tensor<1>) -> Tensor<1>,
{
    struct Map<'a, F> {
        grads: &'a mut GradientsParams,
        f: F,
    }
    impl<F: FnMut(ParamId, Tensor<1>) -> Tensor<1>> ModuleVisitor for Map<'_, F> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.remove::<D>(p.id) {
                let dims = g.dims();
                let n: usize = dims.iter().product();
                let out = (self.f)(p.id, g.reshape([n]));
                self.grads.register::<D>(p.id, out.reshape(dims));
            }
        }
    }
    model.visit(&mut Map { grads, f });
}

impl ChildTuning {
    pub fn new(params: ChildTuningParams) -> Self {
        Self {
            params,
            masks: Mutex::new(BTreeMap::new()),
        }
    }

    /// The Fisher information `Σ_batches g²` of each searched trainable parameter, by id
    /// (flattened, on the plain device), from the first `fisher_batches` batches.
    pub fn fisher(
        &self,
        model: &TaskModel,
        data: &dyn TrainingData,
    ) -> BTreeMap<ParamId, (String, Tensor<1>)> {
        let searched: BTreeMap<ParamId, String> = params::param_info(model)
            .into_iter()
            .filter(|p| p.trains && in_child_search(&p.path))
            .map(|p| (p.id, p.path))
            .collect();
        let mut fisher: BTreeMap<ParamId, (String, Tensor<1>)> = BTreeMap::new();
        if searched.is_empty() {
            return fisher;
        }
        let eval = stab_models::without_dropout(model.clone());
        let rows: Vec<usize> = (0..data.rows()).collect();
        let batches = match self.params.fisher_batches {
            0 => usize::MAX,
            n => n,
        };
        for batch in rows.chunks(data.batch_size().max(1)).take(batches) {
            let (_, mut grads) = data.loss_and_gradients(&eval, batch);
            map_grads(&eval, &mut grads, |id, g| {
                if let Some(path) = searched.get(&id) {
                    let sq = g.clone().square();
                    let sum = match fisher.remove(&id) {
                        Some((_, f)) => f + sq,
                        None => sq,
                    };
                    fisher.insert(id, (path.clone(), sum));
                }
                g
            });
        }
        fisher
    }
}

impl Method for ChildTuning {
    fn no_op(&self, mode: TrainMode) -> Option<&'static str> {
        (self.params.variant == ChildVariant::D && mode == TrainMode::Head)
            .then_some("the task-driven mask selects encoder gradients, and head tuning has none")
    }

    fn before_training(
        &self,
        model: &TaskModel,
        data: &dyn TrainingData,
        _ctx: &StepContext,
    ) -> stab_core::Result<()> {
        if self.params.variant != ChildVariant::D {
            return Ok(());
        }
        let fisher = self.fisher(model, data);
        // One global threshold over every searched parameter.
        let mut all = Vec::new();
        let mut spans = Vec::new();
        for (id, (_, f)) in &fisher {
            let v = HostReads::data(f.clone())
                .convert::<f32>()
                .try_into_vec::<f32>()
                .map_err(|e| stab_core::internal!("{e:?}"))?;
            spans.push((*id, all.len(), v.len(), f.device()));
            all.extend(v);
        }
        let mask = top_share_mask(&all, self.params.p);
        let mut masks = self.masks.lock().expect("masks");
        for (id, at, n, device) in spans {
            let m = TensorData::new(mask[at..at + n].to_vec(), [n]);
            masks.insert(id, Tensor::<1>::from_data(m, &device));
        }
        Ok(())
    }

    fn adjust_gradients(
        &self,
        mut grads: GradientsParams,
        model: &TaskModel,
        ctx: &StepContext,
    ) -> GradientsParams {
        match self.params.variant {
            ChildVariant::D => {
                let masks = self.masks.lock().expect("masks");
                map_grads(model, &mut grads, |id, g| match masks.get(&id) {
                    Some(m) => g * m.clone(),
                    None => g,
                });
            }
            ChildVariant::F if self.params.p >= 1.0 => {}
            ChildVariant::F => {
                let p = self.params.p;
                map_grads(model, &mut grads, |_, g| {
                    let n = g.dims()[0];
                    // Kept with probability p, scaled by 1/p.
                    let keep = host_keep_mask(n, 1.0 - p, ctx.own_noise.next_seed());
                    let m = Tensor::<1>::from_data(TensorData::new(keep, [n]), &g.device());
                    g * m
                });
            }
        }
        grads
    }
}

impl MethodPlugin for ChildTuning {
    const NAME: &'static str = "child_tuning";
    const SUMMARY: &'static str = "ChildTuning (Xu et al. 2021): mask the gradient to a child network, Bernoulli(p)/p each step (f) or the top-p by Fisher information (d)";
    const COST: f64 = 1.1;
    type Params = ChildTuningParams;

    fn from_params(p: ChildTuningParams) -> Result<Self, Refusal> {
        Ok(ChildTuning::new(p))
    }
}

stab_train::register_method!(ChildTuning);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_top_share_keeps_the_largest_values_and_ties() {
        let f = [0.5f32, 3.0, 1.0, 2.0, 0.1, 2.0, 0.0, 4.0, 1.5, 0.2];
        assert_eq!(
            top_share_mask(&f, 0.3),
            [0., 1., 0., 1., 0., 1., 0., 1., 0., 0.] // 4.0, 3.0 and the tied 2.0s
        );
        assert_eq!(
            top_share_mask(&f, 0.1),
            [0., 0., 0., 0., 0., 0., 0., 1., 0., 0.]
        );
        assert!(top_share_mask(&f, 1.0).iter().all(|&m| m == 1.0));
        assert_eq!(top_share_mask(&f, 0.001).iter().sum::<f32>(), 1.0);
    }
}
