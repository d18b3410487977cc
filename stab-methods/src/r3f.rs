//! R3F (Aghajanyan et al., ICLR 2021, "Better Fine-Tuning by Reducing Representational
//! Collapse"; docs/methods.md §12.2):
//!
//! `L = CE(f(x)) + λ·[KL(f(x)‖f(x + z)) + KL(f(x + z)‖f(x))]`,
//!
//! z ~ N(0, σ²I) (`noise = "normal"`) or U(−σ, σ) (`"uniform"`) added to the word
//! embeddings of the batch (every position, before the position and type embeddings, as
//! in the authors' fairseq code), both passes with gradient, the KL averaged over the batch.
//! z is drawn on the host from the method's own noise stream, so the dropout masks of the
//! clean pass are the ones FineTune would draw; the noisy pass draws its own dropout masks
//! from the run's stream. λ = 0 adds nothing and draws nothing: FineTune bit for bit.
//!
//! Head tuning: the noise enters below the frozen encoder, so R3F (λ > 0) cannot train
//! on cached features; the frozen encoder runs at every step, its dropout on.

use burn::tensor::{Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, Uniform};
use serde::{Deserialize, Serialize};
use stab_core::Refusal;

use super::rdrop::symmetric_kl;
use stab_train::{Capabilities, Method, MethodPlugin, StepView};

/// The distribution of the embedding noise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum R3fNoise {
    Normal,
    Uniform,
}

stab_core::method_params! {
    /// CE + λ·KL_sym(f(x) ‖ f(x + z)).
    #[derive(Copy)]
    pub struct R3f {
        /// weight λ of the symmetric KL (§12.2; 0 = FineTune)
        pub lambda: f64 = float(0.0, 1e6, 1.0),
        /// noise scale σ: the standard deviation (normal) or half-width (uniform) (§12.2)
        pub sigma: f64 = float(0.0, 10.0, 1e-5),
        /// normal = z ~ N(0, σ²), uniform = z ~ U(−σ, σ)
        pub noise: R3fNoise = choice(&["normal", "uniform"], "normal"),
    }
}

/// `n` noise values of scale `sigma` drawn from `seed` (ChaCha8).
pub fn embedding_noise(n: usize, sigma: f64, kind: R3fNoise, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let sigma = sigma as f32;
    match kind {
        R3fNoise::Normal => {
            let d = Normal::new(0.0f32, sigma).expect("σ ≥ 0");
            (0..n).map(|_| d.sample(&mut rng)).collect()
        }
        R3fNoise::Uniform if sigma == 0.0 => vec![0.0; n],
        R3fNoise::Uniform => {
            let d = Uniform::new(-sigma, sigma).expect("σ > 0");
            (0..n).map(|_| d.sample(&mut rng)).collect()
        }
    }
}

impl Method for R3f {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            cached_features: self.lambda == 0.0,
            ..Capabilities::default()
        }
    }

    fn loss_terms(&self, step: &StepView) -> Vec<(&'static str, Tensor<1>)> {
        let (Some(input), Some(encoder)) = (step.input, step.model.encoder.as_ref()) else {
            return Vec::new();
        };
        if self.lambda == 0.0 {
            return Vec::new();
        }
        let (b, t, d) = (
            input.tokens.batch,
            input.tokens.seq_len,
            encoder.config.embedding_size(),
        );
        let seed = step.ctx.own_noise.next_seed();
        let z = Tensor::<3>::from_data(
            TensorData::new(
                embedding_noise(b * t * d, self.sigma, self.noise, seed),
                [b, t, d],
            ),
            step.ctx.device,
        );
        let noisy = step.forward_shifted(z).expect("a token batch");
        let kl = symmetric_kl(step.forward.head.logits.clone(), noisy.head.logits);
        vec![("r3f", kl.mul_scalar(self.lambda))]
    }
}

impl MethodPlugin for R3f {
    const NAME: &'static str = "r3f";
    const SUMMARY: &'static str = "R3F (Aghajanyan et al. 2021): CE + λ·symmetric KL between the clean pass and one with noise on the word embeddings";
    const COST: f64 = 2.0;
    type Params = Self;

    fn from_params(p: Self) -> Result<Self, Refusal> {
        Ok(p)
    }
}

stab_train::register_method!(R3f);

#[cfg(test)]
mod tests {
    use super::*;

    fn moments(v: &[f32]) -> (f64, f64) {
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        (mean, var)
    }

    #[test]
    fn noise_has_the_moments_of_its_distribution() {
        let n = 200_000;
        let sigma = 0.3;
        // N(0, σ²): mean 0, variance σ²; the mean's sd is σ/√n.
        let (m, v) = moments(&embedding_noise(n, sigma, R3fNoise::Normal, 7));
        assert!(m.abs() < 4.0 * sigma / (n as f64).sqrt(), "mean {m}");
        assert!((v / (sigma * sigma) - 1.0).abs() < 0.02, "var {v}");
        // U(−σ, σ): mean 0, variance σ²/3, every value within ±σ.
        let u = embedding_noise(n, sigma, R3fNoise::Uniform, 7);
        let (m, v) = moments(&u);
        assert!(m.abs() < 4.0 * sigma / (3.0 * n as f64).sqrt(), "mean {m}");
        assert!((v / (sigma * sigma / 3.0) - 1.0).abs() < 0.02, "var {v}");
        assert!(u.iter().all(|&x| (x as f64).abs() <= sigma));
        // Seeded: the same seed gives the same draws, another seed others.
        assert_eq!(
            embedding_noise(5, 1.0, R3fNoise::Normal, 3),
            embedding_noise(5, 1.0, R3fNoise::Normal, 3)
        );
        assert_ne!(
            embedding_noise(5, 1.0, R3fNoise::Normal, 3),
            embedding_noise(5, 1.0, R3fNoise::Normal, 4)
        );
        assert!(
            embedding_noise(9, 0.0, R3fNoise::Uniform, 1)
                .iter()
                .all(|&x| x == 0.0)
        );
    }
}
