//! NoisyTune (Wu et al., ACL 2022; docs/methods.md §12.4): before fine-tuning, every
//! parameter tensor θ of the pre-trained encoder gets matrix-wise uniform noise scaled by
//! its own spread,
//!
//! `θ̃ = θ + U(−λ/2, λ/2) ⊙ std(θ)`,
//!
//! std the tensor's sample standard deviation (n − 1, as `torch.std`). As in the authors'
//! code every named tensor is perturbed: weights, biases, LayerNorm and embeddings
//! (tensors of one element, whose std is undefined, and the unused masked-LM head are
//! left alone). The draws come from the run's preparation seed, a stream of their own.
//! λ = 0 changes nothing: FineTune bit for bit.
//!
//! Head tuning: the frozen encoder is the perturbed one; each run draws its own noise, so
//! its frozen features are encoded for the run (not taken from the feature cache).

use burn::tensor::Tensor;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Uniform};
use stab_core::Refusal;
use stab_core::recipe::TrainMode;
use stab_models::Encoder;

use stab_train::params::{self, ParamTransform};
use stab_train::{EncoderChange, Method, MethodPlugin, PrepareContext, Prepared};

stab_core::method_params! {
    /// θ + U(−λ/2, λ/2)·std(θ) per encoder tensor before training.
    #[derive(Copy)]
    pub struct NoisyTune {
        /// noise intensity λ (§12.4; Wu et al. use 0.15; 0 = FineTune)
        pub lambda: f64 = float(0.0, 10.0, 0.15),
    }
}

/// Sample standard deviation (n − 1) of `v`; `None` below two values.
pub fn sample_std(v: &[f32]) -> Option<f64> {
    let n = v.len();
    if n < 2 {
        return None;
    }
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n as f64;
    let ss: f64 = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum();
    Some((ss / (n - 1) as f64).sqrt())
}

/// `v` with NoisyTune's noise: each value plus u·std(v), u ~ U(−λ/2, λ/2) from `rng`.
pub fn perturb(v: &[f32], lambda: f64, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let (Some(std), true) = (sample_std(v), lambda > 0.0) else {
        return v.to_vec();
    };
    let half = (lambda / 2.0) as f32;
    let u = Uniform::new(-half, half).expect("λ > 0");
    v.iter().map(|&x| x + u.sample(rng) * std as f32).collect()
}

/// The encoder with every tensor perturbed, in parameter path order, from `seed`.
pub fn noisy_encoder(encoder: Encoder, lambda: f64, seed: u64) -> Encoder {
    struct Noise {
        lambda: f64,
        rng: ChaCha8Rng,
    }
    impl ParamTransform for Noise {
        fn apply<const D: usize>(&mut self, path: &str, value: Tensor<D>) -> Tensor<D> {
            if path.split('.').any(|s| s == "mlm") {
                return value;
            }
            let v: Vec<f32> = value
                .clone()
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .expect("float parameter");
            params::values_like(&value, perturb(&v, self.lambda, &mut self.rng))
        }
    }
    params::transform(
        encoder,
        &mut Noise {
            lambda,
            rng: ChaCha8Rng::seed_from_u64(seed),
        },
    )
}

impl Method for NoisyTune {
    fn encoder_change(&self, _mode: TrainMode) -> EncoderChange {
        if self.lambda == 0.0 {
            EncoderChange::Unchanged
        } else {
            EncoderChange::PerRun
        }
    }

    fn prepare_encoder(
        &self,
        encoder: Encoder,
        ctx: &PrepareContext,
    ) -> stab_core::Result<Prepared> {
        Ok(Prepared {
            encoder: noisy_encoder(encoder, self.lambda, ctx.seed),
            details: serde_json::json!({"method": "noisytune", "lambda": self.lambda}),
        })
    }
}

impl MethodPlugin for NoisyTune {
    const NAME: &'static str = "noisytune";
    const SUMMARY: &'static str = "NoisyTune (Wu et al. 2022): perturb each encoder tensor by U(−λ/2, λ/2)·std before fine-tuning";
    type Params = Self;

    fn from_params(p: Self) -> Result<Self, Refusal> {
        Ok(p)
    }
}

stab_train::register_method!(NoisyTune);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_uniform_and_scaled_by_each_tensors_own_std() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        // Two tensors with spreads 100 apart: the noise follows each one's std.
        for scale in [0.01f32, 1.0] {
            let v: Vec<f32> = (0..50_000)
                .map(|i| ((i % 17) as f32 - 8.0) * scale)
                .collect();
            let std = sample_std(&v).unwrap();
            let lambda = 0.15;
            let out = perturb(&v, lambda, &mut rng);
            let u: Vec<f64> = out
                .iter()
                .zip(&v)
                .map(|(a, b)| (a - b) as f64 / std)
                .collect();
            // u ~ U(−λ/2, λ/2): bounded, mean 0, variance λ²/12.
            assert!(u.iter().all(|x| x.abs() <= lambda / 2.0 + 1e-4));
            let mean = u.iter().sum::<f64>() / u.len() as f64;
            let var = u.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / u.len() as f64;
            assert!(mean.abs() < 1e-3, "mean {mean}");
            assert!(
                (var / (lambda * lambda / 12.0) - 1.0).abs() < 0.03,
                "var {var}"
            );
        }
        // n − 1 in the std, one-element tensors and λ = 0 untouched.
        assert!((sample_std(&[1.0, 3.0]).unwrap() - 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(perturb(&[4.0], 0.15, &mut rng), vec![4.0]);
        assert_eq!(perturb(&[1.0, 2.0], 0.0, &mut rng), vec![1.0, 2.0]);
    }
}
