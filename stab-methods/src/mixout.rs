//! MixOut (Lee et al. 2019; docs/methods.md §2.2), two variants.
//!
//! * `ref` (§2.2.1, the published method): every Linear weight W (out × in in PyTorch;
//!   burn stores `[in, out]`) of the encoder, pooler and head is mixed with its start value
//!   U at every training forward, `W_eff = U + M ⊙ (W − U) / (1 − p)`, with one
//!   Bernoulli(1 − p) mask value per **input** column shared by every output row, a fresh
//!   mask per forward. Biases, embeddings and LayerNorm are not mixed; dropout is off; at
//!   evaluation `W_eff = W`. Backward (`backward`): `reference` copies Lee et al.'s code,
//!   grad_W = grad_{W_eff} ⊙ M (without the 1/(1 − p) of the exact derivative); `exact`
//!   differentiates the formula.
//! * `author` (§2.2.2, the fork): plain FineTune training, and at every evaluation each
//!   encoder tensor is mixed element-wise with its start value, `(1 − M) ⊙ W + M ⊙ W0`,
//!   M ~ Bernoulli(p), no rescaling, a fresh mask per evaluation. In head tuning the
//!   encoder equals W0, so this is a no-op (§5).

use burn::module::Module;
use burn::tensor::{Shape, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use stab_core::Refusal;
use stab_core::recipe::TrainMode;
use stab_models::NoiseStream;
use stab_models::dropout::host_keep_mask;

use stab_train::params::{self, ParamMap, ParamTransform};
use stab_train::{Capabilities, Method, MethodPlugin, StepContext, TaskModel};

/// Which MixOut.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MixOut {
    /// Lee et al.: mix at every training forward; `exact_backward` picks the gradient form.
    Reference { p: f64, exact_backward: bool },
    /// The fork: mix the encoder with its start value at every evaluation.
    Author { p: f64 },
}

/// Whether the parameter at `path` (rank `rank`) is a Linear weight that MixOut-ref mixes:
/// the encoder's attention, feed-forward and pooler weights and the head's layers, not
/// the embeddings and not the unused MLM head.
pub fn is_mixed_linear(path: &str, rank: usize) -> bool {
    path.ends_with(".weight")
        && (rank == 2 || rank == 3)
        && !path.contains("_embeddings")
        && !path.contains(".mlm.")
        && !path.contains(".discriminator.")
}

/// The scaled keep mask of a weight of shape `dims` (burn layout, inputs on the
/// second-to-last axis): one value per input column (per output layer for `[H, in, out]`),
/// 1/(1 − p) with probability 1 − p and 0 otherwise; shape `dims` with the last axis 1.
pub fn column_mask(dims: &[usize], p: f64, seed: u64) -> (Vec<f32>, Vec<usize>) {
    let mut shape = dims.to_vec();
    *shape.last_mut().expect("a weight has axes") = 1;
    let n = shape.iter().product();
    (host_keep_mask(n, p, seed), shape)
}

/// Element-wise 0/1 mask with P(1) = `p` (MixOut-author's revert mask).
pub fn revert_mask(n: usize, p: f64, seed: u64) -> Vec<f32> {
    host_keep_mask(n, p, seed)
        .into_iter()
        .map(|k| if k > 0.0 { 0.0 } else { 1.0 })
        .collect()
}

struct MixTraining<'a> {
    start: ParamMap,
    p: f64,
    exact: bool,
    noise: &'a NoiseStream,
}

impl ParamTransform for MixTraining<'_> {
    fn apply<const D: usize>(&mut self, path: &str, w: Tensor<D>) -> Tensor<D> {
        if !is_mixed_linear(path, D) {
            return w;
        }
        let Some(start) = self.start.get(path) else {
            return w;
        };
        let u = start.tensor::<D>().detach();
        let device = w.device();
        let (scaled, shape) = column_mask(&w.dims(), self.p, self.noise.next_seed());
        let ones: Vec<f32> = scaled
            .iter()
            .map(|&v| if v > 0.0 { 1.0 } else { 0.0 })
            .collect();
        let mask = |v: Vec<f32>| {
            Tensor::<D>::from_data(TensorData::new(v, Shape::from(shape.clone())), &device)
        };
        let scaled = mask(scaled);
        if self.exact {
            // d W_eff / d W = M / (1 − p).
            return u.clone() + (w - u).mul(scaled);
        }
        // Value U + M⊙(W − U)/(1 − p); gradient grad ⊙ M (Lee et al.'s MixLinear backward).
        let m = mask(ones);
        let wd = w.clone().detach();
        let rest = (u.clone() + (wd.clone() - u).mul(scaled) - wd.mul(m.clone())).detach();
        w.mul(m) + rest
    }
}

struct MixEval<'a> {
    start: ParamMap,
    p: f64,
    noise: &'a NoiseStream,
}

impl ParamTransform for MixEval<'_> {
    fn apply<const D: usize>(&mut self, path: &str, w: Tensor<D>) -> Tensor<D> {
        if !path.starts_with("encoder.") || path.contains(".mlm.") {
            return w;
        }
        let Some(start) = self.start.get(path) else {
            return w;
        };
        let w0 = start.tensor::<D>();
        let dims = w.dims();
        let n = dims.iter().product();
        let m = Tensor::<D>::from_data(
            TensorData::new(
                revert_mask(n, self.p, self.noise.next_seed()),
                Shape::from(dims.to_vec()),
            ),
            &w.device(),
        );
        w.clone() + (w0 - w).mul(m)
    }
}

impl Method for MixOut {
    fn no_op(&self, mode: TrainMode) -> Option<&'static str> {
        (matches!(self, MixOut::Author { .. }) && mode == TrainMode::Head).then_some(
            "the author variant mixes the encoder with its start values at evaluation, and head tuning keeps the encoder at its start values",
        )
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            // MixOut-ref replaces dropout; the fork trains plainly.
            dropout: matches!(self, MixOut::Author { .. }),
            replaces_training_model: matches!(self, MixOut::Reference { .. }),
            ..Capabilities::default()
        }
    }

    fn training_model(&self, model: &TaskModel, ctx: &StepContext) -> Option<TaskModel> {
        match *self {
            MixOut::Reference { p, exact_backward } if p > 0.0 => {
                let mut mix = MixTraining {
                    start: params::collect(ctx.start),
                    p,
                    exact: exact_backward,
                    noise: ctx.noise,
                };
                Some(params::transform(model.clone(), &mut mix))
            }
            _ => None,
        }
    }

    fn eval_model(&self, model: TaskModel, ctx: &StepContext) -> TaskModel {
        match *self {
            MixOut::Author { p } if p > 0.0 && model.encoder.is_some() => {
                let mut mix = MixEval {
                    start: params::collect(&ctx.start.valid()),
                    p,
                    noise: ctx.noise,
                };
                params::transform(model, &mut mix)
            }
            _ => model,
        }
    }
}

/// Which MixOut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MixOutVariant {
    /// Lee et al. 2020, in training.
    Ref,
    /// The fork's evaluation-time mixing.
    Author,
}

/// The ref variant's gradient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MixOutBackward {
    Reference,
    Exact,
}

stab_core::method_params! {
    /// MixOut's parameters.
    pub struct MixOutParams {
        /// mixing probability p (§2.2; the author variant is usually run with 0.1)
        pub p: f64 = float(0.0, 1.0, 0.9),
        /// ref = published MixOut, author = the fork's eval-time mixing (§2.2.2)
        pub variant: MixOutVariant = choice(&["ref", "author"], "ref"),
        /// ref variant's gradient: reference = grad ⊙ M as Lee et al.'s code, exact = grad ⊙ M/(1 − p)
        pub backward: MixOutBackward = choice(&["reference", "exact"], "reference"),
    }
}

impl MethodPlugin for MixOut {
    const NAME: &'static str = "mixout";
    const SUMMARY: &'static str = "mix weights with their start values (§2.2); variant ref (Lee et al.) or author (eval-time mixing)";
    const COST: f64 = 1.05;
    type Params = MixOutParams;

    fn from_params(p: MixOutParams) -> Result<Self, Refusal> {
        match p.variant {
            MixOutVariant::Ref if p.p >= 1.0 => Err(
                "p = 1 makes every weight its start value; use p < 1 with variant = \"ref\"".into(),
            ),
            MixOutVariant::Ref => Ok(MixOut::Reference {
                p: p.p,
                exact_backward: p.backward == MixOutBackward::Exact,
            }),
            MixOutVariant::Author => Ok(MixOut::Author { p: p.p }),
        }
    }
}

stab_train::register_method!(MixOut);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_masks_share_one_value_per_input_column_at_rate_one_minus_p() {
        let p = 0.7;
        let (mut ones, mut total) = (0usize, 0usize);
        for seed in 0..400u64 {
            let (m, shape) = column_mask(&[64, 32], p, seed);
            assert_eq!(shape, [64, 1]);
            for &v in &m {
                assert!(v == 0.0 || (v - 1.0 / 0.3).abs() < 1e-5, "{v}");
                ones += usize::from(v > 0.0);
                total += 1;
            }
        }
        let share = ones as f64 / total as f64;
        let sd = (0.3f64 * 0.7 / total as f64).sqrt();
        assert!((share - 0.3).abs() < 3.0 * sd, "share {share}");
        // [H, in, out]: one value per (layer, input).
        let (m, shape) = column_mask(&[5, 8, 3], 0.5, 1);
        assert_eq!((m.len(), shape), (40, vec![5, 8, 1]));
    }

    #[test]
    fn revert_mask_has_rate_p() {
        let m = revert_mask(200_000, 0.1, 7);
        let share = m.iter().sum::<f32>() as f64 / m.len() as f64;
        let sd = (0.09f64 / m.len() as f64).sqrt();
        assert!((share - 0.1).abs() < 3.0 * sd, "{share}");
    }

    #[test]
    fn which_weights_mix() {
        assert!(is_mixed_linear(
            "encoder.encoder.layer.0.attention.self_attn.query.weight",
            2
        ));
        assert!(is_mixed_linear("encoder.pooler.dense.weight", 2));
        assert!(is_mixed_linear("head.out.weight", 3));
        assert!(!is_mixed_linear(
            "encoder.embeddings.word_embeddings.weight",
            2
        ));
        assert!(!is_mixed_linear(
            "encoder.encoder.layer.0.output.dense.bias",
            1
        ));
        assert!(!is_mixed_linear("encoder.mlm.dense.weight", 2));
    }
}
