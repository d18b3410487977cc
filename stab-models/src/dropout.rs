//! Dropout with a fast, seeded mask generator.
//!
//! burn's `Dropout` draws each mask element through the backend's ChaCha RNG on one
//! thread, which was ~15% of a MiniLM training step on 2 cores. This module draws the
//! keep-mask on the host with SplitMix64 in parallel chunks, each chunk seeded from
//! (seed, call number, chunk index), so masks are reproducible for a seed whatever the
//! thread count. Semantics match burn's and PyTorch's: in training, each element is kept
//! with probability 1 − p and scaled by 1/(1 − p); otherwise the identity. It is active
//! only on an autodiff device with its training flag on (see [`crate::without_dropout`]).

use std::sync::atomic::{AtomicU64, Ordering};

use burn::module::{Flag, Module, Param};
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;
use stab_core::seed::splitmix64;

static SEED: AtomicU64 = AtomicU64::new(0);
static CALLS: AtomicU64 = AtomicU64::new(0);

/// Restart the dropout stream from `seed` (call at the start of each run).
pub fn seed_dropout(seed: u64) {
    SEED.store(seed, Ordering::SeqCst);
    CALLS.store(0, Ordering::SeqCst);
}

/// Inverted dropout with probability `prob`.
#[derive(Module, Debug)]
pub struct FastDropout {
    pub prob: f64,
    pub training: Param<Flag>,
}

const CHUNK: usize = 1 << 15;

impl FastDropout {
    pub fn new(prob: f64) -> Self {
        assert!((0.0..1.0).contains(&prob), "dropout probability must be in [0, 1), got {prob}");
        Self { prob, training: Param::from_bool(true) }
    }

    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        if !self.training.is_enabled() || !input.device().is_autodiff() || self.prob == 0.0 {
            return input;
        }
        let shape = input.shape();
        let n = shape.num_elements();
        let call = CALLS.fetch_add(1, Ordering::SeqCst);
        let base = splitmix64(SEED.load(Ordering::SeqCst) ^ splitmix64(call));
        let keep = 1.0 - self.prob;
        let scale = (1.0 / keep) as f32;
        // Keep when the top 24 bits, as a fraction, fall below 1 − p.
        let threshold = (keep * (1u64 << 24) as f64) as u32;
        let mut mask = vec![0f32; n];
        mask.par_chunks_mut(CHUNK).enumerate().for_each(|(c, chunk)| {
            let mut state = splitmix64(base.wrapping_add(c as u64));
            for pair in chunk.chunks_mut(2) {
                state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let r = splitmix64(state);
                for (k, m) in pair.iter_mut().enumerate() {
                    let bits = ((r >> (32 * k)) as u32) >> 8;
                    *m = if bits < threshold { scale } else { 0.0 };
                }
            }
        });
        let mask = Tensor::<D>::from_data(TensorData::new(mask, shape), &input.device());
        input * mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    #[test]
    fn keeps_the_right_fraction_scaled_and_is_reproducible() {
        let dev = Device::flex().autodiff();
        let d = FastDropout::new(0.1);
        let x = Tensor::<2>::ones([300, 1000], &dev);
        seed_dropout(7);
        let a: Vec<f32> = d.forward(x.clone()).into_data().convert::<f32>().try_to_vec().unwrap();
        let kept = a.iter().filter(|&&v| v != 0.0).count() as f64 / a.len() as f64;
        assert!((kept - 0.9).abs() < 0.003, "kept {kept}");
        assert!(a.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.9).abs() < 1e-6));
        seed_dropout(7);
        let b: Vec<f32> = d.forward(x.clone()).into_data().convert::<f32>().try_to_vec().unwrap();
        assert_eq!(a, b, "same seed, same mask");
        let c: Vec<f32> = d.forward(x).into_data().convert::<f32>().try_to_vec().unwrap();
        assert_ne!(b, c, "a new mask at every call");
    }

    #[test]
    fn identity_off_the_autodiff_device() {
        let d = FastDropout::new(0.5);
        let x = Tensor::<1>::ones([100], &Device::flex());
        assert_eq!(d.forward(x.clone()).into_data(), x.into_data());
    }
}
