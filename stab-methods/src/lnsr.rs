//! LNSR, layer-wise noise stability regularisation (Hua et al. 2021; docs/methods.md §2.3).
//!
//! * `author` (§2.3.1, the fork's code): i.i.d. N(0, σ²) noise on the word-embedding table
//!   (every occurrence of a token id in the step gets the same noise vector), a second
//!   forward in train mode **without gradient** (its dropout masks independent of the
//!   clean pass), and loss = CE + λ·mean over all B·T·d elements of (H_c − H_n)², H the
//!   final hidden states, padding included. It also penalises dropout inconsistency.
//! * `original` (§2.3.2, Hua et al.'s concept with stab's defaults): N(0, σ²) noise added
//!   to the embedding output (r = embeddings), both branches propagated through every layer
//!   above with gradient, and λ times the equally weighted mean over layers 1…L of the
//!   mean squared difference of the layer outputs.
//!
//! Only the noise rows of the token ids in the batch are drawn (the rest of the table
//! never reaches the loss); they are drawn on the host from the run's noise stream in
//! sorted-id order. With cached frozen features (head tuning) there is no encoder pass to
//! perturb, and the term is absent: in head tuning LNSR has no gradient on trainable
//! parameters (§5), so the run equals FineTune.

use stab_core::Refusal;
use stab_core::recipe::TrainMode;
use std::collections::BTreeMap;

use burn::module::Module;
use burn::tensor::{Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use stab_train::{Method, MethodPlugin, StepView};

/// Where the noise goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LnsrVariant {
    Author,
    Original,
}

stab_core::method_params! {
    /// CE + λ·noise-stability penalty.
    #[derive(Copy)]
    pub struct NoiseStability {
        /// regulariser weight λ (§2.3; dev grid 0.1, 1, 10)
        pub lambda: f64 = float(0.0, 1e6, 1.0),
        /// noise standard deviation σ (§2.3)
        pub sigma: f64 = float(0.0, 10.0, 0.01),
        /// author = the fork's embedding-table noise (§2.3.1), original = Hua et al. (§2.3.2)
        pub variant: LnsrVariant = choice(&["author", "original"], "author"),
    }
}

/// Noise for the token ids of a `[B, T]` batch, `[B·T·d]` row-major: one N(0, σ²) vector
/// per distinct id (drawn in sorted-id order from `seed`), repeated at each occurrence.
pub fn word_noise(ids: &[i64], dim: usize, sigma: f64, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0f32, sigma as f32).expect("σ ≥ 0");
    let mut table: BTreeMap<i64, Vec<f32>> = ids.iter().map(|&id| (id, Vec::new())).collect();
    for row in table.values_mut() {
        *row = (0..dim).map(|_| normal.sample(&mut rng)).collect();
    }
    ids.iter()
        .flat_map(|id| table[id].iter().copied())
        .collect()
}

impl Method for NoiseStability {
    fn no_op(&self, mode: TrainMode) -> Option<&'static str> {
        (mode == TrainMode::Head).then_some(
            "with a frozen encoder its noise term has no gradient on a trainable parameter",
        )
    }

    fn loss_terms(&self, step: &StepView) -> Vec<(&'static str, Tensor<1>)> {
        let (Some(input), Some(hidden), Some(encoder)) = (
            step.input,
            step.forward.hidden.as_ref(),
            step.model.encoder.as_ref(),
        ) else {
            return Vec::new();
        };
        if self.lambda == 0.0 {
            return Vec::new();
        }
        let device = step.ctx.device;
        let tokens = &input.tokens;
        let dim = encoder.config.embedding_size();
        let seed = step.ctx.noise.next_seed();
        let term = match self.variant {
            LnsrVariant::Author => {
                let noise = Tensor::<3>::from_data(
                    TensorData::new(
                        word_noise(&tokens.input_ids, dim, self.sigma, seed),
                        [tokens.batch, tokens.seq_len, dim],
                    ),
                    device,
                );
                // Stop-gradient branch: no parameter of this copy requires a gradient.
                let noisy = encoder
                    .clone()
                    .no_grad()
                    .forward_perturbed(tokens, Some(noise))
                    .last()
                    .detach();
                (hidden.last() - noisy).square().mean()
            }
            LnsrVariant::Original => {
                let [b, t, d] = hidden.hidden_states[0].dims();
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let normal = Normal::new(0.0f32, self.sigma as f32).expect("σ ≥ 0");
                let eps: Vec<f32> = (0..b * t * d).map(|_| normal.sample(&mut rng)).collect();
                let eps = Tensor::<3>::from_data(TensorData::new(eps, [b, t, d]), device);
                let noisy = encoder.forward_layers(
                    hidden.hidden_states[0].clone() + eps,
                    &encoder.attention_context(tokens),
                );
                let layers = noisy.len();
                noisy
                    .into_iter()
                    .zip(&hidden.hidden_states[1..])
                    .map(|(n, c)| (c.clone() - n).square().mean())
                    .reduce(|a, b| a + b)
                    .expect("at least one layer")
                    .div_scalar(layers as f64)
            }
        };
        vec![("lnsr", term.mul_scalar(self.lambda).reshape([1]))]
    }
}

impl MethodPlugin for NoiseStability {
    const NAME: &'static str = "lnsr";
    const SUMMARY: &'static str =
        "layer-wise noise stability regularisation (§2.3): CE + λ·‖H(x) − H(x + noise)‖²";
    const COST: f64 = 1.4;
    type Params = Self;

    fn from_params(p: Self) -> Result<Self, Refusal> {
        Ok(p)
    }
}

stab_train::register_method!(NoiseStability);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_id_gets_the_same_noise_and_the_spread_is_sigma() {
        let ids = [5i64, 9, 5, 2];
        let n = word_noise(&ids, 3, 0.5, 1);
        assert_eq!(n.len(), 12);
        assert_eq!(n[0..3], n[6..9]);
        assert_ne!(n[0..3], n[3..6]);
        let big: Vec<i64> = (0..20_000).collect();
        let v = word_noise(&big, 4, 0.01, 2);
        let var = v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>() / v.len() as f64;
        assert!((var.sqrt() - 0.01).abs() < 2e-4, "sd {}", var.sqrt());
        assert!(word_noise(&ids, 3, 0.0, 1).iter().all(|&x| x == 0.0));
    }
}
