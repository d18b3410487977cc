//! The jiant task heads (docs/methods.md §1.2), with H output layers so that the
//! multi-head loss (§2.5) is a head of this shape and not a special case.
//!
//! * Classification: `x = dropout(p); e = tanh(W1 x + b1); logits = W2 dropout(e) + b2`.
//! * Span comparison (WSC, WiC): a self-attentive extractor per span (one shared scorer
//!   `a_t = wᵀh_t + c`, softmax over the span's tokens, weighted sum), the two span vectors
//!   concatenated to `e` (2d), then `logits = W dropout(e) + b`.
//!
//! * Score (the decoders' head, as Hugging Face's `*ForSequenceClassification` draws it):
//!   one bias-free linear layer on the last token's vector, `logits = W p`, W drawn
//!   N(0, σ²) with σ the config's `initializer_range`; no dropout.
//!
//! Every head returns `e`, the features entering the final linear layer before its
//! dropout (what MMR regularises, §2.4), and logits `[H, B, C]`, one slice per output
//! layer. Every layer starts from PyTorch's `nn.Linear` default U(−1/√fan_in, 1/√fan_in)
//! for weight and bias, drawn on the host from the run's head-init stream so that a run's
//! initialisation never depends on another run or on the backend's global RNG.

use burn::module::{Module, Param, ParamId};
use burn::tensor::activation::{softmax, tanh};
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::dropout::{FastDropout, NoiseStream};

/// H independent linear layers d_in → d_out: weight `[H, d_in, d_out]`, bias `[H, 1, d_out]`
/// (none in the score head).
#[derive(Module, Debug)]
pub struct OutputLayers {
    pub weight: Param<Tensor<3>>,
    pub bias: Option<Param<Tensor<3>>>,
}

impl OutputLayers {
    /// H layers, each with nn.Linear's default init, drawn in order (layer 0's weight,
    /// layer 0's bias, layer 1's weight, …) from `rng`.
    pub fn new(
        heads: usize,
        d_in: usize,
        d_out: usize,
        rng: &mut ChaCha8Rng,
        device: &Device,
    ) -> Self {
        let bound = 1.0 / (d_in as f64).sqrt();
        let mut w = Vec::with_capacity(heads * d_in * d_out);
        let mut b = Vec::with_capacity(heads * d_out);
        for _ in 0..heads {
            // PyTorch draws the weight as [out, in]; store it transposed as burn's [in, out].
            let mut torch = vec![0f32; d_out * d_in];
            for v in &mut torch {
                *v = rng.random_range(-bound..bound) as f32;
            }
            for i in 0..d_in {
                for o in 0..d_out {
                    w.push(torch[o * d_in + i]);
                }
            }
            for _ in 0..d_out {
                b.push(rng.random_range(-bound..bound) as f32);
            }
        }
        Self {
            weight: Param::from_tensor(Tensor::from_data(
                TensorData::new(w, [heads, d_in, d_out]),
                device,
            )),
            bias: Some(Param::from_tensor(Tensor::from_data(
                TensorData::new(b, [heads, 1, d_out]),
                device,
            ))),
        }
    }

    /// H bias-free layers with weights N(0, σ²), drawn in PyTorch's `[out, in]` order
    /// layer after layer from `rng` (Hugging Face's `_init_weights` for `score`).
    pub fn normal(
        heads: usize,
        d_in: usize,
        d_out: usize,
        sigma: f64,
        rng: &mut ChaCha8Rng,
        device: &Device,
    ) -> Self {
        let normal = Normal::new(0.0f64, sigma).expect("a finite, non-negative initializer_range");
        let mut w = Vec::with_capacity(heads * d_in * d_out);
        for _ in 0..heads {
            let torch: Vec<f32> = (0..d_out * d_in)
                .map(|_| normal.sample(rng) as f32)
                .collect();
            w.extend(
                (0..d_in)
                    .flat_map(|i| (0..d_out).map(move |o| (i, o)))
                    .map(|(i, o)| torch[o * d_in + i]),
            );
        }
        Self {
            weight: Param::from_tensor(Tensor::from_data(
                TensorData::new(w, [heads, d_in, d_out]),
                device,
            )),
            bias: None,
        }
    }

    /// Number of layers H.
    pub fn heads(&self) -> usize {
        self.weight.dims()[0]
    }

    /// `x` is `[H, B, d_in]`, or `[G, B, d_in]` with G dividing H: group g (one seed-batched
    /// run; G = 1 alone) shared by its H/G consecutive layers. Returns `[H, B, d_out]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let h = self.heads();
        let [hx, b, d] = x.dims();
        let x = if hx == 1 && h > 1 {
            x.expand([h, b, d])
        } else if hx < h {
            x.reshape([hx, 1, b, d])
                .expand([hx, h / hx, b, d])
                .reshape([h, b, d])
        } else {
            x
        };
        let y = x.matmul(self.weight.val());
        match &self.bias {
            Some(b) => y + b.val(),
            None => y,
        }
    }

    /// The layers of several stacks one after another (seed-batched runs): weight
    /// `[ΣH, d_in, d_out]`, new parameters.
    pub fn stack(parts: &[&OutputLayers]) -> OutputLayers {
        let cat = |ts: Vec<Tensor<3>>| Param::from_tensor(Tensor::cat(ts, 0).detach());
        OutputLayers {
            weight: cat(parts.iter().map(|p| p.weight.val()).collect()),
            bias: parts[0].bias.as_ref().map(|_| {
                cat(parts
                    .iter()
                    .map(|p| p.bias.as_ref().expect("every part has a bias").val())
                    .collect())
            }),
        }
    }

    /// Layers `[first, first + count)` as a stack of their own (new parameters).
    pub fn layers(&self, first: usize, count: usize) -> OutputLayers {
        let part = |t: Tensor<3>| Param::from_tensor(t.narrow(0, first, count).detach());
        OutputLayers {
            weight: part(self.weight.val()),
            bias: self.bias.as_ref().map(|b| part(b.val())),
        }
    }

    /// Layers `[first, first + count)` as views into this stack: a loss computed with
    /// them sends its gradient to this stack's parameters.
    pub fn layer_view(&self, first: usize, count: usize) -> OutputLayers {
        let part = |t: Tensor<3>| Param::initialized(ParamId::new(), t.narrow(0, first, count));
        OutputLayers {
            weight: part(self.weight.val()),
            bias: self.bias.as_ref().map(|b| part(b.val())),
        }
    }

    /// One layer holding the mean weights and bias: its output equals the mean of the H
    /// layers' outputs (the MHLoss predictor is one linear model, paper §3.2).
    pub fn averaged(&self) -> OutputLayers {
        OutputLayers {
            weight: Param::from_tensor(self.weight.val().mean_dim(0)),
            bias: self
                .bias
                .as_ref()
                .map(|b| Param::from_tensor(b.val().mean_dim(0))),
        }
    }
}

/// What a head reads from the encoder (tensor handles, so the variants stay unboxed).
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum HeadInput {
    /// A pooled vector per example `[B, d]` (classification).
    Pooled(Tensor<2>),
    /// The two spans' token vectors `[B, 2, S, d]`, padded to S tokens, with an additive
    /// mask `[B, 2, S]` (0 on span tokens, a large negative number on padding).
    Spans { tokens: Tensor<4>, mask: Tensor<3> },
}

/// A head's forward pass.
#[derive(Debug, Clone)]
pub struct HeadOutput {
    /// Features entering the final linear layer, before its dropout: `[H', B, e]` with
    /// H' = 1 unless the whole head is replicated.
    pub features: Tensor<3>,
    /// Logits of every output layer `[H, B, C]`.
    pub logits: Tensor<3>,
}

impl HeadOutput {
    /// The prediction's logits: the mean over output layers `[B, C]`.
    pub fn mean_logits(&self) -> Tensor<2> {
        self.logits.clone().mean_dim(0).squeeze_dim::<2>(0)
    }
}

/// The classification head: dropout → dense + tanh → dropout → out.
#[derive(Module, Debug)]
pub struct ClassificationHead {
    pub dense: OutputLayers,
    pub out: OutputLayers,
    pub dropout: FastDropout,
}

/// The span-comparison head: self-attentive span extractor → concat → dropout → out.
#[derive(Module, Debug)]
pub struct SpanComparisonHead {
    pub scorer: OutputLayers,
    pub out: OutputLayers,
    pub dropout: FastDropout,
}

/// The decoders' classification head: `score`, bias-free, on the pooled vector.
#[derive(Module, Debug)]
pub struct ScoreHead {
    pub out: OutputLayers,
}

/// A task's head.
#[derive(Module, Debug)]
pub enum TaskHead {
    Classification(ClassificationHead),
    Span(SpanComparisonHead),
    Score(ScoreHead),
}

/// How many copies of the head's layers: `out_layers` final layers, and whether the
/// dense layer is replicated with them (MHLoss `replicate = "head"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadShape {
    pub out_layers: usize,
    pub replicate_dense: bool,
}

impl Default for HeadShape {
    fn default() -> Self {
        Self {
            out_layers: 1,
            replicate_dense: false,
        }
    }
}

impl TaskHead {
    /// A fresh classification head for `hidden`-dim pooled vectors and `classes` labels.
    pub fn classification(
        hidden: usize,
        classes: usize,
        dropout: f64,
        shape: HeadShape,
        seed: u64,
        device: &Device,
    ) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let dense_layers = if shape.replicate_dense {
            shape.out_layers
        } else {
            1
        };
        let dense = OutputLayers::new(dense_layers, hidden, hidden, &mut rng, device);
        let out = OutputLayers::new(shape.out_layers, hidden, classes, &mut rng, device);
        TaskHead::Classification(ClassificationHead {
            dense,
            out,
            dropout: FastDropout::new(dropout),
        })
    }

    /// A fresh score head (Hugging Face's `*ForSequenceClassification` on a decoder):
    /// `shape.out_layers` bias-free layers `hidden → classes` drawn N(0, `sigma`²).
    pub fn score(
        hidden: usize,
        classes: usize,
        sigma: f64,
        shape: HeadShape,
        seed: u64,
        device: &Device,
    ) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let out = OutputLayers::normal(shape.out_layers, hidden, classes, sigma, &mut rng, device);
        TaskHead::Score(ScoreHead { out })
    }

    /// A fresh span-comparison head (two spans of `hidden`-dim tokens, 2 labels).
    pub fn span(
        hidden: usize,
        classes: usize,
        dropout: f64,
        shape: HeadShape,
        seed: u64,
        device: &Device,
    ) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let scorer = OutputLayers::new(1, hidden, 1, &mut rng, device);
        let out = OutputLayers::new(shape.out_layers, 2 * hidden, classes, &mut rng, device);
        TaskHead::Span(SpanComparisonHead {
            scorer,
            out,
            dropout: FastDropout::new(dropout),
        })
    }

    /// The heads of K runs as one head whose every layer stack holds run 0's layers, then
    /// run 1's, … ([`TaskHead::forward_members`] trains them together). The heads must have
    /// one kind and shape; the stack's dropout stream is unused (each run brings its own).
    pub fn stack(heads: &[&TaskHead]) -> TaskHead {
        let layers = |f: fn(&TaskHead) -> &OutputLayers| {
            OutputLayers::stack(&heads.iter().map(|h| f(h)).collect::<Vec<_>>())
        };
        match heads[0] {
            TaskHead::Classification(h) => TaskHead::Classification(ClassificationHead {
                dense: layers(|h| match h {
                    TaskHead::Classification(h) => &h.dense,
                    _ => panic!("stacked heads of one kind"),
                }),
                out: layers(TaskHead::out_layers),
                dropout: FastDropout::new(h.dropout.prob),
            }),
            TaskHead::Span(h) => TaskHead::Span(SpanComparisonHead {
                scorer: layers(|h| match h {
                    TaskHead::Span(h) => &h.scorer,
                    _ => panic!("stacked heads of one kind"),
                }),
                out: layers(TaskHead::out_layers),
                dropout: FastDropout::new(h.dropout.prob),
            }),
            TaskHead::Score(_) => TaskHead::Score(ScoreHead {
                out: layers(TaskHead::out_layers),
            }),
        }
    }

    /// Run `k`'s head out of a stack of `of` runs' heads ([`TaskHead::stack`]), as new
    /// parameters with a fresh dropout stream.
    pub fn member(&self, k: usize, of: usize) -> TaskHead {
        self.member_with(k, of, OutputLayers::layers)
    }

    /// Run `k`'s head as views into the stack's parameters (a loss term computed with it
    /// sends its gradient to the stack), with a fresh dropout stream.
    pub fn member_view(&self, k: usize, of: usize) -> TaskHead {
        self.member_with(k, of, OutputLayers::layer_view)
    }

    fn member_with(
        &self,
        k: usize,
        of: usize,
        take: fn(&OutputLayers, usize, usize) -> OutputLayers,
    ) -> TaskHead {
        let part = |l: &OutputLayers| {
            let per = l.heads() / of;
            take(l, k * per, per)
        };
        match self {
            TaskHead::Classification(h) => TaskHead::Classification(ClassificationHead {
                dense: part(&h.dense),
                out: part(&h.out),
                dropout: FastDropout::new(h.dropout.prob),
            }),
            TaskHead::Span(h) => TaskHead::Span(SpanComparisonHead {
                scorer: part(&h.scorer),
                out: part(&h.out),
                dropout: FastDropout::new(h.dropout.prob),
            }),
            TaskHead::Score(h) => TaskHead::Score(ScoreHead { out: part(&h.out) }),
        }
    }

    /// Give the head's dropout the run's noise stream.
    pub fn set_noise(&mut self, stream: &NoiseStream) {
        match self {
            TaskHead::Classification(h) => h.dropout.stream = stream.clone(),
            TaskHead::Span(h) => h.dropout.stream = stream.clone(),
            TaskHead::Score(_) => {}
        }
    }

    /// The final output layers.
    pub fn out_layers(&self) -> &OutputLayers {
        match self {
            TaskHead::Classification(h) => &h.out,
            TaskHead::Span(h) => &h.out,
            TaskHead::Score(h) => &h.out,
        }
    }

    pub fn forward(&self, input: HeadInput) -> HeadOutput {
        match self {
            TaskHead::Classification(h) => {
                self.forward_members(input, std::slice::from_ref(&h.dropout.stream))
            }
            TaskHead::Span(h) => {
                self.forward_members(input, std::slice::from_ref(&h.dropout.stream))
            }
            TaskHead::Score(_) => self.forward_members(input, &[NoiseStream::default()]),
        }
    }

    /// The forward of K seed-batched runs' heads stacked by [`TaskHead::stack`]
    /// (K = `streams.len()`): the input holds each run's B rows one run after another
    /// (`[K·B, …]`), run k's dropout draws from `streams[k]`, and the output's leading
    /// dimension is run-major (`logits` `[K·H, B, C]`). Run k's slice is what its head
    /// computes alone: every product is per layer, every mask per run.
    pub fn forward_members(&self, input: HeadInput, streams: &[NoiseStream]) -> HeadOutput {
        let k = streams.len();
        match (self, input) {
            (TaskHead::Classification(h), HeadInput::Pooled(p)) => {
                let [rows, d] = p.dims();
                let x = h
                    .dropout
                    .forward_members(p, streams)
                    .reshape([k, rows / k, d]);
                let features = tanh(h.dense.forward(x));
                let logits = h
                    .out
                    .forward(h.dropout.forward_members(features.clone(), streams));
                HeadOutput { features, logits }
            }
            (TaskHead::Span(h), HeadInput::Spans { tokens, mask }) => {
                let [rows, two, s, d] = tokens.dims();
                let b = rows / k;
                let scores = h
                    .scorer
                    .forward(tokens.clone().reshape([k, b * two * s, d]))
                    .reshape([rows, two, s])
                    + mask;
                let weights = softmax(scores, 2).reshape([rows, two, s, 1]);
                let spans = (tokens * weights).sum_dim(2).reshape([k, b, two * d]);
                let logits = h
                    .out
                    .forward(h.dropout.forward_members(spans.clone(), streams));
                HeadOutput {
                    features: spans,
                    logits,
                }
            }
            (TaskHead::Score(h), HeadInput::Pooled(p)) => {
                let [rows, d] = p.dims();
                let features = p.reshape([k, rows / k, d]);
                let logits = h.out.forward(features.clone());
                HeadOutput { features, logits }
            }
            (TaskHead::Classification(_) | TaskHead::Score(_), HeadInput::Spans { .. }) => {
                panic!("a classification head reads pooled vectors")
            }
            (TaskHead::Span(_), HeadInput::Pooled(_)) => panic!("a span head reads span tokens"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vec3(t: Tensor<3>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_to_vec().unwrap()
    }

    #[test]
    fn averaged_logits_equal_one_layer_with_mean_weights() {
        let dev = Device::flex();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let layers = OutputLayers::new(7, 5, 3, &mut rng, &dev);
        let x = Tensor::<3>::random(
            [1, 4, 5],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &dev,
        );
        let mean = vec3(layers.forward(x.clone()).mean_dim(0));
        let single = vec3(layers.averaged().forward(x));
        for (a, b) in mean.iter().zip(&single) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn init_is_pytorch_default_and_seeded() {
        let dev = Device::flex();
        let a = OutputLayers::new(2, 100, 3, &mut ChaCha8Rng::seed_from_u64(5), &dev);
        let b = OutputLayers::new(2, 100, 3, &mut ChaCha8Rng::seed_from_u64(5), &dev);
        let w = vec3(a.weight.val());
        assert_eq!(w, vec3(b.weight.val()));
        assert!(w.iter().all(|v| v.abs() <= 0.1));
        assert!(w.iter().any(|v| v.abs() > 0.09), "fills the interval");
        // The first layer of an H-layer stack is the layer a single-layer head draws.
        let one = OutputLayers::new(1, 100, 3, &mut ChaCha8Rng::seed_from_u64(5), &dev);
        assert_eq!(vec3(one.weight.val()), w[..300].to_vec());
    }

    #[test]
    fn span_head_attends_within_the_span_only() {
        let dev = Device::flex();
        let head = TaskHead::span(4, 2, 0.1, HeadShape::default(), 3, &dev);
        let tokens = Tensor::<4>::random(
            [2, 2, 3, 4],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &dev,
        );
        // Second example: only the first token of each span is real.
        let mut m = vec![0f32; 12];
        for k in [7, 8, 10, 11] {
            m[k] = -1e9;
        }
        let mask = Tensor::<3>::from_data(TensorData::new(m, [2, 2, 3]), &dev);
        let out = head.forward(HeadInput::Spans {
            tokens: tokens.clone(),
            mask,
        });
        let f = vec3(out.features);
        let t = vec3(tokens.reshape([1, 12, 4]));
        // Example 1's span vectors are exactly the first token of each of its spans
        // (token rows 1·6 + 0·3 and 1·6 + 1·3 of the flattened [B·2·S, d]).
        assert!((0..4).all(|k| (f[8 + k] - t[24 + k]).abs() < 1e-6));
        assert!((0..4).all(|k| (f[12 + k] - t[36 + k]).abs() < 1e-6));
        assert_eq!(out.logits.dims(), [1, 2, 2]);
    }
}
