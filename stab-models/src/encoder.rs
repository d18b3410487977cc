//! BERT/RoBERTa encoders in burn, layer for layer as in Hugging Face transformers
//! (`modeling_bert.py`, `modeling_roberta.py`): post-LayerNorm layers, exact-erf GELU,
//! separate hidden and attention-probability dropout (active only on an autodiff device
//! in training mode), all hidden states returned. Module and field names mirror the HF
//! state dict so weights load with three key renames (see [`crate::loader`]).

use burn::module::{Module, Param};
use burn::nn::{
    Embedding, EmbeddingConfig, Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig,
};
use burn::tensor::activation::{gelu_approximate, relu, tanh};

use crate::fused;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::config::{Activation, EncoderConfig, ModelFamily};
use crate::dropout::FastDropout as Dropout;
use crate::peft::{Bottleneck, LowRank, through_adapter, with_low_rank};
use crate::tokenizer::TokenBatch;

fn act(a: Activation, x: Tensor<3>) -> Tensor<3> {
    match a {
        Activation::Gelu => fused::gelu(x),
        Activation::GeluTanh => gelu_approximate(x),
        Activation::Relu => relu(x),
    }
}

/// A Linear layer on [B, T, in] as one [B·T, in] × [in, out] product. burn keeps a 3-D
/// input batched when T is a multiple of 32 (16 single-threaded products, each re-packing
/// the weight); one large product lets the gemm kernel split the work across threads.
fn dense(l: &Linear, x: Tensor<3>) -> Tensor<3> {
    on_rows(x, |x| l.forward(x))
}

/// `f` applied to [B, T, in] as one [B·T, in] matrix, the result back as [B, T, out] (the
/// shape of every per-token linear map: see [`dense`]).
pub(crate) fn on_rows(x: Tensor<3>, f: impl FnOnce(Tensor<2>) -> Tensor<2>) -> Tensor<3> {
    let [b, t, d] = x.dims();
    let y = f(x.reshape([b * t, d]));
    let n = y.dims()[1];
    y.reshape([b, t, n])
}

/// HF initialisation of pre-trained-model weights: N(0, 0.02²), zero bias.
fn hf_linear(d_in: usize, d_out: usize, device: &Device) -> Linear {
    LinearConfig::new(d_in, d_out)
        .with_initializer(Initializer::Normal {
            mean: 0.0,
            std: 0.02,
        })
        .init(device)
}

fn zero_bias(mut l: Linear) -> Linear {
    l.bias = l.bias.map(|b| Param::from_tensor(b.val().zeros_like()));
    l
}

fn layer_norm(c: &EncoderConfig, device: &Device) -> LayerNorm {
    LayerNormConfig::new(c.hidden_size)
        .with_epsilon(c.layer_norm_eps)
        .init(device)
}

/// Word + position + token-type embeddings, LayerNorm, dropout.
#[derive(Module, Debug)]
pub struct Embeddings {
    pub word_embeddings: Embedding,
    pub position_embeddings: Embedding,
    pub token_type_embeddings: Embedding,
    pub layer_norm: LayerNorm,
    pub dropout: Dropout,
}

/// Multi-head self-attention with an additive padding mask.
#[derive(Module, Debug)]
pub struct SelfAttention {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    pub dropout: Dropout,
    pub heads: usize,
    /// LoRA updates of the projections ([`crate::peft`]).
    pub lora_query: Option<LowRank>,
    pub lora_key: Option<LowRank>,
    pub lora_value: Option<LowRank>,
}

/// Attention output projection with residual and LayerNorm.
#[derive(Module, Debug)]
pub struct SelfOutput {
    pub dense: Linear,
    pub layer_norm: LayerNorm,
    pub dropout: Dropout,
    /// A LoRA update of `dense`.
    pub lora: Option<LowRank>,
    /// An adapter on the sub-layer output, before the residual (Houlsby).
    pub adapter: Option<Bottleneck>,
}

#[derive(Module, Debug)]
pub struct Attention {
    pub self_attn: SelfAttention,
    pub output: SelfOutput,
}

#[derive(Module, Debug)]
pub struct Intermediate {
    pub dense: Linear,
    /// A LoRA update of `dense`.
    pub lora: Option<LowRank>,
}

/// Feed-forward output projection with residual and LayerNorm.
#[derive(Module, Debug)]
pub struct Output {
    pub dense: Linear,
    pub layer_norm: LayerNorm,
    pub dropout: Dropout,
    /// A LoRA update of `dense`.
    pub lora: Option<LowRank>,
    /// An adapter on the sub-layer output, before the residual (Houlsby, Pfeiffer).
    pub adapter: Option<Bottleneck>,
}

/// One post-LN transformer layer.
#[derive(Module, Debug)]
pub struct Layer {
    pub attention: Attention,
    pub intermediate: Intermediate,
    pub output: Output,
    #[module(skip)]
    pub activation: Activation,
    /// The LayerNorms' ε (burn's `LayerNorm` keeps its own private).
    #[module(skip)]
    pub layer_norm_eps: f64,
}

/// The layer stack (HF `encoder.layer.N`).
#[derive(Module, Debug)]
pub struct Layers {
    pub layer: Vec<Layer>,
}

/// Pooler: tanh(W·h₀ + b) on the first token. Loaded when the checkpoint has it,
/// otherwise N(0, 0.02²) with zero bias (docs/methods.md §1.1).
#[derive(Module, Debug)]
pub struct Pooler {
    pub dense: Linear,
}

/// Masked-LM head: dense → activation → LayerNorm → decoder tied to the word embeddings,
/// plus an output bias (BERT `cls.predictions.*`, RoBERTa `lm_head.*`).
#[derive(Module, Debug)]
pub struct MlmHead {
    pub dense: Linear,
    pub layer_norm: LayerNorm,
    pub bias: Param<Tensor<1>>,
    #[module(skip)]
    pub activation: Activation,
}

/// A pre-trained encoder with its pooler and MLM head.
#[derive(Module, Debug)]
pub struct Encoder {
    pub embeddings: Embeddings,
    pub encoder: Layers,
    pub pooler: Pooler,
    pub mlm: MlmHead,
    #[module(skip)]
    pub config: EncoderConfig,
}

/// Every hidden state of a forward pass.
#[derive(Debug, Clone)]
pub struct EncoderOutput {
    /// L + 1 tensors [B, T, H]: the embedding output, then each layer's output.
    pub hidden_states: Vec<Tensor<3>>,
}

impl EncoderOutput {
    /// The last layer's output [B, T, H].
    pub fn last(&self) -> Tensor<3> {
        self.hidden_states
            .last()
            .expect("at least the embeddings")
            .clone()
    }
    /// The first token's vector of the last layer [B, H].
    pub fn first_token(&self) -> Tensor<2> {
        let h = self.last();
        let [b, _, d] = h.dims();
        h.slice([0..b, 0..1, 0..d]).reshape([b, d])
    }
}

impl Encoder {
    /// A randomly initialised encoder for `config` (HF init: N(0, 0.02²) weights, zero
    /// biases, unit LayerNorm). Call [`crate::materialize`] before loading weights.
    pub fn new(config: &EncoderConfig, device: &Device) -> Self {
        let c = config;
        let activation = c.activation().expect("validated config");
        let normal = Initializer::Normal {
            mean: 0.0,
            std: 0.02,
        };
        let hidden_drop = || Dropout::new(c.hidden_dropout_prob);
        let embeddings = Embeddings {
            word_embeddings: EmbeddingConfig::new(c.vocab_size, c.hidden_size)
                .with_initializer(normal.clone())
                .init(device),
            position_embeddings: EmbeddingConfig::new(c.max_position_embeddings, c.hidden_size)
                .with_initializer(normal.clone())
                .init(device),
            token_type_embeddings: EmbeddingConfig::new(c.type_vocab_size, c.hidden_size)
                .with_initializer(normal.clone())
                .init(device),
            layer_norm: layer_norm(c, device),
            dropout: hidden_drop(),
        };
        let h = c.hidden_size;
        let layer = (0..c.num_hidden_layers)
            .map(|_| Layer {
                attention: Attention {
                    self_attn: SelfAttention {
                        query: zero_bias(hf_linear(h, h, device)),
                        key: zero_bias(hf_linear(h, h, device)),
                        value: zero_bias(hf_linear(h, h, device)),
                        dropout: Dropout::new(c.attention_probs_dropout_prob),
                        heads: c.num_attention_heads,
                        lora_query: None,
                        lora_key: None,
                        lora_value: None,
                    },
                    output: SelfOutput {
                        dense: zero_bias(hf_linear(h, h, device)),
                        layer_norm: layer_norm(c, device),
                        dropout: hidden_drop(),
                        lora: None,
                        adapter: None,
                    },
                },
                intermediate: Intermediate {
                    dense: zero_bias(hf_linear(h, c.intermediate_size, device)),
                    lora: None,
                },
                output: Output {
                    dense: zero_bias(hf_linear(c.intermediate_size, h, device)),
                    layer_norm: layer_norm(c, device),
                    dropout: hidden_drop(),
                    lora: None,
                    adapter: None,
                },
                activation,
                layer_norm_eps: c.layer_norm_eps,
            })
            .collect();
        Self {
            embeddings,
            encoder: Layers { layer },
            pooler: Pooler {
                dense: zero_bias(hf_linear(h, h, device)),
            },
            mlm: MlmHead {
                dense: zero_bias(hf_linear(h, h, device)),
                layer_norm: layer_norm(c, device),
                bias: Param::from_tensor(Tensor::zeros([c.vocab_size], device)),
                activation,
            },
            config: config.clone(),
        }
    }

    /// Give every dropout of the encoder the run's noise stream.
    pub fn set_noise(&mut self, stream: &crate::dropout::NoiseStream) {
        self.embeddings.dropout.stream = stream.clone();
        for l in &mut self.encoder.layer {
            l.attention.self_attn.dropout.stream = stream.clone();
            l.attention.output.dropout.stream = stream.clone();
            l.output.dropout.stream = stream.clone();
        }
    }

    /// Mean of the last layer over real tokens [B, H] (sentence-encoder pooling).
    pub fn mean_pool(out: &EncoderOutput, attention_mask: Tensor<2>) -> Tensor<2> {
        let h = out.last();
        let [b, t, _] = h.dims();
        let m = attention_mask.reshape([b, t, 1]);
        let count = m.clone().sum_dim(1).clamp_min(1.0); // [B, 1, 1]
        (h * m).sum_dim(1).div(count).squeeze_dim::<2>(1)
    }

    /// Position ids: BERT 0..T−1; RoBERTa pad + cumsum(id ≠ pad) on real tokens, pad on padding.
    pub fn position_ids(&self, batch: &TokenBatch) -> Vec<i64> {
        let (b, t) = (batch.batch, batch.seq_len);
        let pad = self.config.pad_id() as i64;
        let mut out = vec![0i64; b * t];
        for r in 0..b {
            let mut count = 0;
            for k in 0..t {
                out[r * t + k] = match self.config.family() {
                    Ok(ModelFamily::Roberta) => {
                        let id = batch.input_ids[r * t + k];
                        if id != pad {
                            count += 1;
                            pad + count
                        } else {
                            pad
                        }
                    }
                    _ => k as i64,
                };
            }
        }
        out
    }

    /// Run the encoder on a tokenized batch; returns every hidden state.
    pub fn forward(&self, batch: &TokenBatch) -> EncoderOutput {
        self.forward_perturbed(batch, None)
    }

    /// The additive key mask [B, 1, 1, T] of a batch: 0 at real tokens, the most negative
    /// float at padding.
    pub fn attention_bias(&self, batch: &TokenBatch) -> Tensor<4> {
        let device = self.embeddings.word_embeddings.weight.val().device();
        let (b, t) = (batch.batch, batch.seq_len);
        let bias: Vec<f32> = batch
            .attention_mask
            .iter()
            .map(|&m| if m == 0 { f32::MIN } else { 0.0 })
            .collect();
        Tensor::<2>::from_data(TensorData::new(bias, [b, t]), &device).reshape([b, 1, 1, t])
    }

    /// [`Encoder::forward`] with `word_shift` [B, T, H] added to the word embeddings
    /// before position and type embeddings (LNSR's noise on the embedding table, §2.3.1).
    pub fn forward_perturbed(
        &self,
        batch: &TokenBatch,
        word_shift: Option<Tensor<3>>,
    ) -> EncoderOutput {
        let device = self.embeddings.word_embeddings.weight.val().device();
        let (b, t) = (batch.batch, batch.seq_len);
        let ints = |v: Vec<i64>| Tensor::<2, Int>::from_data(TensorData::new(v, [b, t]), &device);
        let ids = ints(batch.input_ids.clone());
        let types = if self.config.type_vocab_size == 1 {
            ints(vec![0; b * t])
        } else {
            ints(batch.token_type_ids.clone())
        };
        let positions = ints(self.position_ids(batch));
        let mask = self.attention_bias(batch);
        self.forward_shifted(ids, types, positions, mask, word_shift)
    }

    /// The forward pass on prepared tensors (ids, type ids, position ids [B, T]; additive
    /// key mask [B, 1, 1, T]).
    pub fn forward_tensors(
        &self,
        ids: Tensor<2, Int>,
        types: Tensor<2, Int>,
        positions: Tensor<2, Int>,
        mask: Tensor<4>,
    ) -> EncoderOutput {
        self.forward_shifted(ids, types, positions, mask, None)
    }

    fn forward_shifted(
        &self,
        ids: Tensor<2, Int>,
        types: Tensor<2, Int>,
        positions: Tensor<2, Int>,
        mask: Tensor<4>,
        word_shift: Option<Tensor<3>>,
    ) -> EncoderOutput {
        let e = &self.embeddings;
        let mut words = e.word_embeddings.forward(ids);
        if let Some(shift) = word_shift {
            words = words + shift;
        }
        let x = words
            + e.position_embeddings.forward(positions)
            + e.token_type_embeddings.forward(types);
        let x = e.dropout.forward(fused::layer_norm(
            &e.layer_norm,
            x,
            self.config.layer_norm_eps,
        ));
        let mut hidden_states = Vec::with_capacity(self.encoder.layer.len() + 1);
        hidden_states.push(x.clone());
        hidden_states.extend(self.forward_layers(x, mask));
        EncoderOutput { hidden_states }
    }

    /// Every layer's output, starting from an embedding output `x` [B, T, H] (LNSR's
    /// noisy branch above the embeddings, §2.3.2).
    pub fn forward_layers(&self, mut x: Tensor<3>, mask: Tensor<4>) -> Vec<Tensor<3>> {
        let mut out = Vec::with_capacity(self.encoder.layer.len());
        for layer in &self.encoder.layer {
            x = layer.forward(x, mask.clone());
            out.push(x.clone());
        }
        out
    }

    /// Pooled output tanh(W·h₀ + b) [B, H].
    pub fn pool(&self, out: &EncoderOutput) -> Tensor<2> {
        tanh(self.pooler.dense.forward(out.first_token()))
    }

    /// MLM logits [B, T, V] from hidden states [B, T, H] (decoder tied to word embeddings).
    pub fn mlm_logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        let m = &self.mlm;
        let x = fused::layer_norm(
            &m.layer_norm,
            act(m.activation, dense(&m.dense, hidden)),
            self.config.layer_norm_eps,
        );
        let [b, t, h] = x.dims();
        let w = self.embeddings.word_embeddings.weight.val(); // [V, H]
        let v = w.dims()[0];
        let logits =
            x.reshape([b * t, h]).matmul(w.transpose()) + m.bias.val().unsqueeze_dim::<2>(0);
        logits.reshape([b, t, v])
    }
}

impl Layer {
    /// A post-LN layer; a sub-layer's output passes its adapter (if any) before the
    /// residual, and each dense layer adds its LoRA update (if any).
    pub fn forward(&self, x: Tensor<3>, mask: Tensor<4>) -> Tensor<3> {
        let a = self.attention.self_attn.forward(x.clone(), mask);
        let o = &self.attention.output;
        let eps = self.layer_norm_eps;
        let h = o
            .dropout
            .forward(with_low_rank(|a| dense(&o.dense, a), &o.lora, a));
        let x = fused::layer_norm(&o.layer_norm, through_adapter(&o.adapter, h) + x, eps);
        let i = &self.intermediate;
        let inter = act(
            self.activation,
            with_low_rank(|x| dense(&i.dense, x), &i.lora, x.clone()),
        );
        let out = &self.output;
        let h = out
            .dropout
            .forward(with_low_rank(|z| dense(&out.dense, z), &out.lora, inter));
        fused::layer_norm(&out.layer_norm, through_adapter(&out.adapter, h) + x, eps)
    }
}

impl SelfAttention {
    /// softmax(QKᵀ/√d + mask) → dropout → ·V, heads merged back to [B, T, H]. The scale,
    /// mask and softmax are one fused pass on the host ([`fused::masked_softmax`]), in
    /// training and in evaluation alike: burn's fused attention (`module::attention`)
    /// measured slower for these shapes (MiniLM eval forward 16 × 128: 0.39 s against
    /// 0.35 s on a 2-core Zen 4).
    pub fn forward(&self, x: Tensor<3>, mask: Tensor<4>) -> Tensor<3> {
        let [b, t, h] = x.dims();
        let n = self.heads;
        let d = h / n;
        let split = |y: Tensor<3>| y.reshape([b, t, n, d]).swap_dims(1, 2);
        let q = split(with_low_rank(
            |x| dense(&self.query, x),
            &self.lora_query,
            x.clone(),
        ));
        let k = split(with_low_rank(
            |x| dense(&self.key, x),
            &self.lora_key,
            x.clone(),
        ));
        let v = split(with_low_rank(
            |x| dense(&self.value, x),
            &self.lora_value,
            x,
        ));
        let probs = fused::masked_softmax(q.matmul(k.swap_dims(2, 3)), mask, d);
        let probs = self.dropout.forward(probs);
        probs.matmul(v).swap_dims(1, 2).reshape([b, t, h])
    }
}

/// The same module with every dropout switched off (eval-mode numerics) while staying on
/// the autodiff device, so gradients still flow (docs/burn.md §2.4).
pub fn without_dropout<M: Module>(module: M) -> M {
    struct FlagsOff;
    impl burn::module::ModuleMapper for FlagsOff {
        fn map_flag(&mut self, flag: Param<burn::module::Flag>) -> Param<burn::module::Flag> {
            flag.with_value(false)
        }
    }
    module.map(&mut FlagsOff)
}
