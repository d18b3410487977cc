//! Dropout with a fast, seeded mask generator.
//!
//! burn's `Dropout` draws each mask element through the backend's ChaCha RNG on one
//! thread, which was ~15% of a MiniLM training step on 2 cores. This module draws the
//! keep-mask on the host with SplitMix64 in parallel chunks, each chunk seeded from
//! (seed, call number, chunk index), so masks are reproducible for a seed whatever the
//! thread count. On an accelerator the same host mask is uploaded (never the device's
//! shared RNG, which one seed call per draw would race under `--jobs`), so a run sees the
//! same noise on every device. Semantics match burn's and PyTorch's: in training, each element is kept
//! with probability 1 − p and scaled by 1/(1 − p); otherwise the identity. It is active
//! only on an autodiff device with its training flag on (see [`crate::without_dropout`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use burn::module::{Flag, Module, Param};
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;
use stab_core::seed::splitmix64;

/// A run's stream of random draws for dropout masks and method noise: a seed and a call
/// counter, shared by every module of one run's model and owned by that run (never by
/// the process), so runs in one process never disturb each other.
#[derive(Debug, Clone)]
pub struct NoiseStream {
    state: Arc<StreamState>,
}

#[derive(Debug)]
struct StreamState {
    seed: u64,
    calls: AtomicU64,
}

impl NoiseStream {
    pub fn new(seed: u64) -> Self {
        Self {
            state: Arc::new(StreamState {
                seed,
                calls: AtomicU64::new(0),
            }),
        }
    }

    /// The seed of the next draw: each call gets its own, in call order.
    pub fn next_seed(&self) -> u64 {
        let call = self.state.calls.fetch_add(1, Ordering::SeqCst);
        splitmix64(self.state.seed ^ splitmix64(call))
    }

    /// Draws made so far.
    pub fn calls(&self) -> u64 {
        self.state.calls.load(Ordering::SeqCst)
    }

    /// Make the next draws repeat the ones made from draw number `calls` on: a second
    /// pass over the same batch then sees the first pass's dropout masks (SAM's ascent
    /// and descent passes target the same stochastic loss).
    pub fn rewind_to(&self, calls: u64) {
        self.state.calls.store(calls, Ordering::SeqCst);
    }
}

impl Default for NoiseStream {
    fn default() -> Self {
        Self::new(0)
    }
}

/// Inverted dropout with probability `prob`, drawing from its run's [`NoiseStream`].
#[derive(Module, Debug)]
pub struct FastDropout {
    pub prob: f64,
    pub training: Param<Flag>,
    #[module(skip)]
    pub stream: NoiseStream,
}

const CHUNK: usize = 1 << 15;

/// The keep-mask (values 0 or 1/(1 − p)) of `n` elements for a draw seed, on the host:
/// SplitMix64 in parallel chunks, each seeded from (seed, chunk), so the mask does not
/// depend on the thread count.
pub fn host_keep_mask(n: usize, prob: f64, seed: u64) -> Vec<f32> {
    let rule = keep_rule(prob);
    let mut mask = vec![0f32; n];
    mask.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(c, chunk)| keep_mask_chunk(chunk, seed.wrapping_add(c as u64), 0, rule));
    mask
}

/// Elements `first .. first + out.len()` of [`host_keep_mask`]`(n, prob, seed)` (for any n
/// that covers them), drawn directly: element e is word (e mod CHUNK) / 2 of chunk
/// e / CHUNK's SplitMix64 sequence, so a kernel can draw the mask of the rows it works on
/// without the whole tensor's.
pub fn keep_mask_range(first: usize, out: &mut [f32], prob: f64, seed: u64) {
    let rule = keep_rule(prob);
    let mut done = 0;
    while done < out.len() {
        let (chunk, within) = ((first + done) / CHUNK, (first + done) % CHUNK);
        let take = (CHUNK - within).min(out.len() - done);
        let chunk_seed = seed.wrapping_add(chunk as u64);
        let part = &mut out[done..done + take];
        // An odd first element is the second half of its pair's word.
        let skip = within % 2;
        if skip == 1 {
            let mut pair = [0f32; 2];
            keep_mask_chunk(&mut pair, chunk_seed, within / 2, rule);
            part[0] = pair[1];
        }
        keep_mask_chunk(&mut part[skip..], chunk_seed, within.div_ceil(2), rule);
        done += take;
    }
}

/// The threshold on a word's top 24 bits below which an element is kept (as a fraction,
/// below 1 − p) and the kept value 1/(1 − p).
fn keep_rule(prob: f64) -> (u32, f32) {
    let keep = 1.0 - prob;
    ((keep * (1u64 << 24) as f64) as u32, (1.0 / keep) as f32)
}

/// The Weyl increment of the mask generator's SplitMix64 state.
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

crate::simd::multiversion! {
    /// Mask elements from pair `first_pair` of a chunk on: pair p takes the two halves of
    /// the word splitmix64(splitmix64(chunk seed) + (p + 1)·GOLDEN).
    fn keep_mask_chunk(chunk: &mut [f32], chunk_seed: u64, first_pair: usize, rule: (u32, f32)) {
        let (threshold, scale) = rule;
        let mut state = splitmix64(chunk_seed).wrapping_add(GOLDEN.wrapping_mul(first_pair as u64));
        for pair in chunk.chunks_mut(2) {
            state = state.wrapping_add(GOLDEN);
            let r = splitmix64(state);
            for (k, m) in pair.iter_mut().enumerate() {
                let bits = ((r >> (32 * k)) as u32) >> 8;
                *m = if bits < threshold { scale } else { 0.0 };
            }
        }
    }
}

impl FastDropout {
    pub fn new(prob: f64) -> Self {
        assert!(
            (0.0..1.0).contains(&prob),
            "dropout probability must be in [0, 1), got {prob}"
        );
        Self {
            prob,
            training: Param::from_bool(true),
            stream: NoiseStream::default(),
        }
    }

    /// The (p, draw seed) of this call's mask when dropout is active on `device` — one
    /// draw from the stream, as [`FastDropout::forward`] makes — for a kernel that applies
    /// the mask itself ([`crate::fused_attention`]); `None` when it is the identity.
    pub fn draw(&self, device: &burn::tensor::Device) -> Option<(f64, u64)> {
        (self.training.is_enabled() && device.is_autodiff() && self.prob != 0.0)
            .then(|| (self.prob, self.stream.next_seed()))
    }

    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        self.forward_members(input, std::slice::from_ref(&self.stream))
    }

    /// Dropout on a tensor that holds K seed-batched runs one after another (K equal
    /// member-major parts of the flat buffer), member k's part masked from `streams[k]`:
    /// each part gets the mask its run draws alone on a tensor of that part's shape.
    pub fn forward_members<const D: usize>(
        &self,
        input: Tensor<D>,
        streams: &[NoiseStream],
    ) -> Tensor<D> {
        let device = input.device();
        if !self.training.is_enabled() || !device.is_autodiff() || self.prob == 0.0 {
            return input;
        }
        let shape = input.shape();
        let n = shape.num_elements();
        let per = n / streams.len().max(1);
        debug_assert_eq!(per * streams.len(), n, "members of equal size");
        // Drawn on the host on every device and uploaded: the same masks everywhere.
        let mut values = Vec::with_capacity(n);
        for stream in streams {
            values.extend(host_keep_mask(per, self.prob, stream.next_seed()));
        }
        let mask = Tensor::<D>::from_data(TensorData::new(values, shape), &device);
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
        let mut d = FastDropout::new(0.1);
        let x = Tensor::<2>::ones([300, 1000], &dev);
        d.stream = NoiseStream::new(7);
        let a: Vec<f32> = d
            .forward(x.clone())
            .into_data()
            .convert::<f32>()
            .try_to_vec()
            .unwrap();
        let kept = a.iter().filter(|&&v| v != 0.0).count() as f64 / a.len() as f64;
        assert!((kept - 0.9).abs() < 0.003, "kept {kept}");
        assert!(a.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.9).abs() < 1e-6));
        d.stream = NoiseStream::new(7);
        let b: Vec<f32> = d
            .forward(x.clone())
            .into_data()
            .convert::<f32>()
            .try_to_vec()
            .unwrap();
        assert_eq!(a, b, "same seed, same mask");
        let c: Vec<f32> = d
            .forward(x)
            .into_data()
            .convert::<f32>()
            .try_to_vec()
            .unwrap();
        assert_ne!(b, c, "a new mask at every call");
    }

    #[test]
    fn two_streams_do_not_interfere() {
        let (a, b) = (NoiseStream::new(3), NoiseStream::new(3));
        let first = a.next_seed();
        let _ = NoiseStream::new(9).next_seed();
        assert_eq!(first, b.next_seed());
        assert_ne!(a.next_seed(), first);
    }

    #[test]
    fn identity_off_the_autodiff_device() {
        let d = FastDropout::new(0.5);
        let x = Tensor::<1>::ones([100], &Device::flex());
        assert_eq!(d.forward(x.clone()).into_data(), x.into_data());
    }
}
