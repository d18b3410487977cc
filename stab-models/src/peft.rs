//! Modules that parameter-efficient methods add to an encoder (docs/methods.md §11). An
//! encoder carries them in optional slots next to the layers they change, so an encoder
//! without them is exactly the pre-trained one.
//!
//! * [`LowRank`] — LoRA (Hu et al. 2021): a Linear `y = xW + b` becomes
//!   `y = xW + b + (α/r)·dropout(x)·A·B` with A `[d_in, r]`, B `[r, d_out]`; A starts
//!   Kaiming-uniform (U(−1/√d_in, 1/√d_in), PyTorch's `kaiming_uniform_(a = √5)` as HF PEFT
//!   uses it), B at zero, so the first forward equals the pre-trained one.
//! * [`Bottleneck`] — an adapter (Houlsby et al. 2019):
//!   `h ↦ h + W_up·f(W_down·h + b_down) + b_up` with a bottleneck of m units, inserted on
//!   a sub-layer's output before its residual connection and LayerNorm. W_down starts N(0, 0.02²), W_up and both biases at
//!   zero, so the adapter starts as the identity (stab's choice, like LoRA's B = 0).

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::activation::{relu, silu};
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::dropout::{FastDropout, NoiseStream};
use crate::rows::on_rows;

/// LoRA's update of one Linear layer.
#[derive(Module, Debug)]
pub struct LowRank {
    /// A, `[d_in, r]`.
    pub a: Param<Tensor<2>>,
    /// B, `[r, d_out]`.
    pub b: Param<Tensor<2>>,
    /// Dropout on the layer's input before A.
    pub dropout: FastDropout,
    /// α/r.
    #[module(skip)]
    pub scale: f64,
}

impl LowRank {
    /// A fresh update of rank `r` for a `d_in → d_out` layer, A drawn from `seed`.
    pub fn new(
        d_in: usize,
        d_out: usize,
        (r, alpha, dropout): (usize, f64, f64),
        seed: u64,
        noise: &NoiseStream,
        device: &Device,
    ) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let bound = 1.0 / (d_in as f64).sqrt();
        // PyTorch draws lora_A as [r, d_in]; stored transposed as [d_in, r].
        let torch: Vec<f32> = (0..r * d_in)
            .map(|_| rng.random_range(-bound..bound) as f32)
            .collect();
        let a: Vec<f32> = (0..d_in)
            .flat_map(|i| (0..r).map(move |k| (i, k)))
            .map(|(i, k)| torch[k * d_in + i])
            .collect();
        let mut drop = FastDropout::new(dropout);
        drop.stream = noise.clone();
        Self {
            a: Param::from_tensor(Tensor::from_data(TensorData::new(a, [d_in, r]), device)),
            b: Param::from_tensor(Tensor::zeros([r, d_out], device)),
            dropout: drop,
            scale: alpha / r as f64,
        }
    }

    /// The rank r.
    pub fn rank(&self) -> usize {
        self.a.dims()[1]
    }

    /// (α/r)·dropout(x)·A·B for x `[B, T, d_in]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let x = self.dropout.forward(x);
        on_rows(x, |x| x.matmul(self.a.val()).matmul(self.b.val())).mul_scalar(self.scale)
    }

    /// The update as a weight, (α/r)·A·B `[d_in, d_out]`.
    pub fn delta_weight(&self) -> Tensor<2> {
        self.a.val().matmul(self.b.val()).mul_scalar(self.scale)
    }
}

/// A Linear and its optional LoRA update: `xW + b (+ (α/r)·dropout(x)·A·B)`.
pub fn with_low_rank(
    dense: impl FnOnce(Tensor<3>) -> Tensor<3>,
    lora: &Option<LowRank>,
    x: Tensor<3>,
) -> Tensor<3> {
    match lora {
        None => dense(x),
        Some(l) => dense(x.clone()) + l.forward(x),
    }
}

/// `linear` with `lora`'s update merged into its weight: W* = W + (α/r)·A·B.
pub fn merge_low_rank(mut linear: Linear, lora: &LowRank) -> Linear {
    let merged = linear.weight.val() + lora.delta_weight();
    linear.weight = linear.weight.map(|_| merged);
    linear
}

/// The bottleneck's nonlinearity f.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BottleneckActivation {
    /// swish / SiLU (the Houlsby configuration of adapter-transformers).
    #[default]
    Swish,
    /// ReLU (its Pfeiffer configuration).
    Relu,
}

/// A bottleneck adapter of m units on a d-dimensional sub-layer output.
#[derive(Module, Debug)]
pub struct Bottleneck {
    /// W_down `[d, m]` and b_down.
    pub down: Linear,
    /// W_up `[m, d]` and b_up.
    pub up: Linear,
    #[module(skip)]
    pub activation: BottleneckActivation,
}

impl Bottleneck {
    /// A fresh adapter, W_down drawn from `seed`, starting as the identity.
    pub fn new(
        d: usize,
        m: usize,
        activation: BottleneckActivation,
        seed: u64,
        device: &Device,
    ) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let normal = Normal::new(0.0f32, 0.02).expect("valid std");
        let w: Vec<f32> = (0..d * m).map(|_| normal.sample(&mut rng)).collect();
        let linear = |w: Tensor<2>, b: usize| Linear {
            weight: Param::from_tensor(w),
            bias: Some(Param::from_tensor(Tensor::zeros([b], device))),
        };
        Self {
            down: linear(Tensor::from_data(TensorData::new(w, [d, m]), device), m),
            up: linear(Tensor::zeros([m, d], device), d),
            activation,
        }
    }

    /// h + up(f(down(h))) for h `[B, T, d]`.
    pub fn forward(&self, h: Tensor<3>) -> Tensor<3> {
        let update = on_rows(h.clone(), |h| {
            let z = self.down.forward(h);
            let z = match self.activation {
                BottleneckActivation::Swish => silu(z),
                BottleneckActivation::Relu => relu(z),
            };
            self.up.forward(z)
        });
        h + update
    }
}

/// `h`, through the adapter when there is one.
pub fn through_adapter(adapter: &Option<Bottleneck>, h: Tensor<3>) -> Tensor<3> {
    match adapter {
        None => h,
        Some(a) => a.forward(h),
    }
}
