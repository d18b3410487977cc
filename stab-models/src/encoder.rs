//! The transformer encoder every family shares, in burn, layer for layer as in Hugging
//! Face transformers: embeddings, a stack of attention + feed-forward layers, pooler and MLM
//! head, with separate hidden and attention-probability dropout (active only on an autodiff
//! device in training mode) and all hidden states returned. BERT's module tree is the
//! common shape; what a family changes is a variant, not a copy (docs/models.md):
//!
//! * ELECTRA: narrower embeddings and `embeddings.project` ([`crate::families::electra`]);
//! * DeBERTa-v3: no absolute positions, the relative table `encoder.rel_embeddings` and
//!   disentangled attention scores ([`crate::families::deberta`]);
//! * ModernBERT: pre-norm layers without biases, RoPE, a gated (GeGLU) feed-forward,
//!   sliding-window attention on local layers and a final norm
//!   ([`crate::families::modernbert`]).
//!
//! Module and field names mirror BERT's HF state dict; each family file maps its own HF
//! names onto them (see [`crate::loader`]).

use burn::module::{Module, Param};
use burn::nn::{
    Embedding, EmbeddingConfig, Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig,
};
use burn::tensor::activation::{gelu_approximate, relu, tanh};

use crate::{fused, fused_attention};
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::config::{Activation, EncoderConfig};
use crate::dropout::FastDropout as Dropout;
use crate::families::{NormPlacement, PoolerActivation, Positions};
use crate::peft::{Bottleneck, LowRank, through_adapter, with_low_rank};
use crate::rows::on_rows;
use crate::tokenizer::TokenBatch;

fn act<const D: usize>(a: Activation, x: Tensor<D>) -> Tensor<D> {
    match a {
        Activation::Gelu => fused::gelu(x),
        Activation::GeluTanh => gelu_approximate(x),
        Activation::Relu => relu(x),
        Activation::Silu => crate::activation::silu(x),
    }
}

/// A norm over the last dimension: LayerNorm, or RMSNorm `x / √(mean(x²) + ε) · γ` (the
/// same module, whose `gamma` is the weight, without `beta`) for Llama and Qwen.
pub fn norm<const D: usize>(ln: &LayerNorm, x: Tensor<D>, eps: f64, rms: bool) -> Tensor<D> {
    if !rms {
        return fused::layer_norm(ln, x, eps);
    }
    if let Some(y) = fused::rms_norm_inference(&x, &ln.gamma.val(), eps) {
        return y;
    }
    let inv = x
        .clone()
        .powi_scalar(2)
        .mean_dim(D - 1)
        .add_scalar(eps)
        .sqrt()
        .recip();
    x * inv * ln.gamma.val().unsqueeze::<D>()
}

/// A Linear layer on [B, T, in] as one [B·T, in] × [in, out] product. burn keeps a 3-D
/// input batched when T is a multiple of 32 (16 single-threaded products, each re-packing
/// the weight); one large product lets the gemm kernel split the work across threads.
fn dense(l: &Linear, x: Tensor<3>) -> Tensor<3> {
    on_rows(x, |x| l.forward(x))
}

fn hf_embedding(rows: usize, d: usize, device: &Device) -> Embedding {
    EmbeddingConfig::new(rows, d)
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

/// A Linear layer with HF's init, with a bias unless the family has none (ModernBERT).
fn family_linear(c: &EncoderConfig, d_in: usize, d_out: usize, device: &Device) -> Linear {
    linear(c.family.spec().layout().biases, d_in, d_out, device)
}

/// A Linear layer with HF's init: N(0, 0.02²) weights, zero bias when `biased`.
fn linear(biased: bool, d_in: usize, d_out: usize, device: &Device) -> Linear {
    zero_bias(
        LinearConfig::new(d_in, d_out)
            .with_bias(biased)
            .with_initializer(Initializer::Normal {
                mean: 0.0,
                std: 0.02,
            })
            .init(device),
    )
}

fn layer_norm_of(c: &EncoderConfig, d: usize, device: &Device) -> LayerNorm {
    LayerNormConfig::new(d)
        .with_epsilon(c.layer_norm_eps)
        .with_bias(c.family.spec().layout().biases)
        .init(device)
}

fn layer_norm(c: &EncoderConfig, device: &Device) -> LayerNorm {
    layer_norm_of(c, c.hidden_size, device)
}

/// Word (+ position + token-type) embeddings, LayerNorm, dropout, and ELECTRA's
/// projection to the hidden size.
#[derive(Module, Debug)]
pub struct Embeddings {
    pub word_embeddings: Embedding,
    /// Absolute positions (BERT, RoBERTa, ELECTRA).
    pub position_embeddings: Option<Embedding>,
    /// Token types (BERT, RoBERTa, ELECTRA).
    pub token_type_embeddings: Option<Embedding>,
    /// The encoders' norm of the embedding sum (decoders have none).
    pub layer_norm: Option<LayerNorm>,
    pub dropout: Dropout,
    /// ELECTRA's `embeddings_project` (`embedding_size` → `hidden_size`), after dropout.
    pub project: Option<Linear>,
    /// DeBERTa zeroes the embedding output at padding (`x · mask`).
    #[module(skip)]
    pub zero_padding: bool,
}

/// Multi-head self-attention with an additive padding mask, and the family's positions
/// ([`AttentionContext`]).
#[derive(Module, Debug)]
pub struct SelfAttention {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    pub dropout: Dropout,
    pub heads: usize,
    /// Key/value heads: query head j reads key/value head `j / (heads / kv_heads)`.
    pub kv_heads: usize,
    /// The width of one head.
    pub head_dim: usize,
    /// Qwen3's RMSNorm of each query and key head, before the rotation.
    pub q_norm: Option<LayerNorm>,
    pub k_norm: Option<LayerNorm>,
    #[module(skip)]
    pub norm_eps: f64,
    /// DeBERTa's dropout on the relative table (HF `pos_dropout`), one mask per layer.
    pub position_dropout: Option<Dropout>,
    /// ModernBERT: whether this layer attends within the sliding window only.
    #[module(skip)]
    pub local: bool,
    /// LoRA updates of the projections ([`crate::peft`]).
    pub lora_query: Option<LowRank>,
    pub lora_key: Option<LowRank>,
    pub lora_value: Option<LowRank>,
}

/// Attention output projection with residual and the attention sub-block's LayerNorm
/// (post-norm: after the residual; pre-norm: before the attention, absent on ModernBERT's
/// layer 0).
#[derive(Module, Debug)]
pub struct SelfOutput {
    pub dense: Linear,
    pub layer_norm: Option<LayerNorm>,
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

/// The first feed-forward projection: `d → intermediate`, or `d → 2·intermediate` when
/// gated (GeGLU: the first half is the input, the second the gate); Llama's gate is
/// `dense` and its up projection `up`.
#[derive(Module, Debug)]
pub struct Intermediate {
    pub dense: Linear,
    pub up: Option<Linear>,
    /// A LoRA update of `dense`.
    pub lora: Option<LowRank>,
    /// A LoRA update of `up` (Llama's `up_proj`).
    pub lora_up: Option<LowRank>,
}

/// Feed-forward output projection with residual and the FFN sub-block's LayerNorm
/// (post-norm: after the residual; pre-norm: before the feed-forward).
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

/// One transformer layer.
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
    #[module(skip)]
    pub norm: NormPlacement,
    /// A gated feed-forward, `act(a) ⊙ g` (ModernBERT's GeGLU, Llama's SwiGLU).
    #[module(skip)]
    pub gated: bool,
    /// RMSNorm instead of LayerNorm.
    #[module(skip)]
    pub rms: bool,
}

/// The layer stack (HF `encoder.layer.N`), with what a family keeps beside it.
#[derive(Module, Debug)]
pub struct Layers {
    pub layer: Vec<Layer>,
    /// DeBERTa's relative position table `encoder.rel_embeddings` [2·span, d].
    pub rel_embeddings: Option<Embedding>,
    /// DeBERTa's LayerNorm of that table (`encoder.LayerNorm`).
    pub layer_norm: Option<LayerNorm>,
    /// The norm after the last layer (ModernBERT's `final_norm`, GPT-2's `ln_f`, Llama's
    /// `norm`).
    pub final_norm: Option<LayerNorm>,
}

/// The pooler, per family HF's sequence-classification pooling (docs/models.md §3):
/// BERT, RoBERTa `tanh(W·h₀ + b)`; ELECTRA `gelu(W·h₀ + b)` (the dense layer of
/// `ElectraClassificationHead`); DeBERTa `act(W·h₀ + b)` (`ContextPooler`,
/// `pooler_hidden_act`); ModernBERT `LN(act(W·p))` with p the first token or the mean of
/// the real tokens (`classifier_pooling`), its `head` loaded from the checkpoint. Weights
/// the checkpoint lacks are N(0, 0.02²) with zero bias (docs/methods.md §1.1).
#[derive(Module, Debug)]
pub struct Pooler {
    pub dense: Linear,
    pub norm: Option<LayerNorm>,
    #[module(skip)]
    pub activation: PoolerActivation,
    #[module(skip)]
    pub mean: bool,
}

/// Masked-LM head: dense → activation → LayerNorm → decoder tied to the word embeddings,
/// plus an output bias (BERT `cls.predictions.*`, RoBERTa `lm_head.*`, DeBERTa
/// `lm_predictions.lm_head.*`, ModernBERT `head.*` + `decoder.bias`; ELECTRA's generator
/// shape, `hidden → embedding_size`, drawn fresh for a discriminator checkpoint).
#[derive(Module, Debug)]
pub struct MlmHead {
    pub dense: Linear,
    pub layer_norm: LayerNorm,
    pub bias: Param<Tensor<1>>,
    #[module(skip)]
    pub activation: Activation,
}

/// ELECTRA's replaced-token-detection head (`discriminator_predictions`):
/// `dense_prediction(act(dense(h)))`, one logit per token. Loaded when present; not trained.
#[derive(Module, Debug)]
pub struct DiscriminatorHead {
    pub dense: Linear,
    pub dense_prediction: Linear,
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
    /// ELECTRA's discriminator head, when the checkpoint has one.
    pub discriminator: Option<DiscriminatorHead>,
    #[module(skip)]
    pub config: EncoderConfig,
}

/// What every layer's attention needs besides its input, built once per batch.
#[derive(Debug, Clone)]
pub struct AttentionContext {
    /// The additive key mask [B, 1, 1, T]: 0 at real tokens, the most negative float at
    /// padding; a decoder's is [B, 1, T, T], also closing the keys after each query.
    pub mask: Tensor<4>,
    pub positions: Positions,
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

impl Embeddings {
    fn new(c: &EncoderConfig, device: &Device) -> Self {
        let (e, h, family) = (c.embedding_size(), c.hidden_size, c.family.spec());
        let dropout = family.embedding_dropout(c);
        Self {
            word_embeddings: hf_embedding(c.vocab_size, e, device),
            position_embeddings: family
                .has_absolute_positions()
                .then(|| hf_embedding(c.max_position_embeddings, e, device)),
            token_type_embeddings: family
                .has_token_types()
                .then(|| hf_embedding(c.type_vocab_size, e, device)),
            layer_norm: family
                .layout()
                .embedding_norm
                .then(|| layer_norm_of(c, e, device)),
            dropout: Dropout::new(dropout),
            project: (e != h).then(|| family_linear(c, e, h, device)),
            zero_padding: family.layout().zero_padding,
        }
    }
}

impl Layer {
    /// Layer `i` of the family's stack.
    fn new(c: &EncoderConfig, i: usize, device: &Device) -> Self {
        let h = c.hidden_size;
        let family = c.family.spec();
        let layout = family.layout();
        let (n, kv, d) = (c.num_attention_heads, c.kv_heads(), c.head_dim());
        let head_norm = || layout.qk_norm.then(|| layer_norm_of(c, d, device));
        let self_attn = SelfAttention {
            query: linear(layout.qkv_biases, h, n * d, device),
            key: linear(layout.qkv_biases, h, kv * d, device),
            value: linear(layout.qkv_biases, h, kv * d, device),
            dropout: Dropout::new(c.attention_probs_dropout_prob),
            heads: n,
            kv_heads: kv,
            head_dim: d,
            q_norm: head_norm(),
            k_norm: head_norm(),
            norm_eps: c.layer_norm_eps,
            position_dropout: layout
                .position_dropout
                .then(|| Dropout::new(c.hidden_dropout_prob)),
            local: family.local_attention(i),
            lora_query: None,
            lora_key: None,
            lora_value: None,
        };
        let output = SelfOutput {
            dense: family_linear(c, n * d, h, device),
            layer_norm: (layout.first_attention_norm || i > 0).then(|| layer_norm(c, device)),
            dropout: Dropout::new(if layout.attention_output_dropout {
                c.attention_probs_dropout_prob
            } else {
                c.hidden_dropout_prob
            }),
            lora: None,
            adapter: None,
        };
        Self {
            attention: Attention { self_attn, output },
            intermediate: Intermediate {
                dense: family_linear(c, h, c.intermediate_width(), device),
                up: layout
                    .split_gate
                    .then(|| family_linear(c, h, c.intermediate_size, device)),
                lora: None,
                lora_up: None,
            },
            output: Output {
                dense: family_linear(c, c.intermediate_size, h, device),
                layer_norm: layer_norm(c, device),
                dropout: Dropout::new(c.hidden_dropout_prob),
                lora: None,
                adapter: None,
            },
            activation: c.activation().expect("validated config"),
            layer_norm_eps: c.layer_norm_eps,
            norm: layout.norm,
            gated: layout.gated,
            rms: layout.rms_norm,
        }
    }
}

impl Pooler {
    fn new(c: &EncoderConfig, device: &Device) -> Self {
        let spec = c.family.spec().pooler();
        Self {
            dense: family_linear(c, c.hidden_size, c.hidden_size, device),
            norm: spec.norm.then(|| layer_norm(c, device)),
            activation: spec.activation,
            mean: spec.mean,
        }
    }
}

impl Encoder {
    /// A randomly initialised encoder for `config` (HF init: N(0, 0.02²) weights, zero
    /// biases, unit LayerNorm). Call [`crate::materialize`] before loading weights.
    pub fn new(config: &EncoderConfig, device: &Device) -> Self {
        let c = config;
        let (rel_embeddings, rel_norm) = match c.family.spec().relative_table() {
            Some((rows, norm)) => (
                Some(hf_embedding(rows, c.hidden_size, device)),
                norm.then(|| layer_norm(c, device)),
            ),
            None => (None, None),
        };
        let final_norm = c.family.spec().layout().final_norm;
        Self {
            embeddings: Embeddings::new(c, device),
            encoder: Layers {
                layer: (0..c.num_hidden_layers)
                    .map(|i| Layer::new(c, i, device))
                    .collect(),
                rel_embeddings,
                layer_norm: rel_norm,
                final_norm: final_norm.then(|| layer_norm(c, device)),
            },
            pooler: Pooler::new(c, device),
            mlm: MlmHead {
                dense: family_linear(c, c.hidden_size, c.embedding_size(), device),
                layer_norm: layer_norm_of(c, c.embedding_size(), device),
                bias: Param::from_tensor(Tensor::zeros([c.vocab_size], device)),
                activation: c.activation().expect("validated config"),
            },
            discriminator: None,
            config: config.clone(),
        }
    }

    /// ELECTRA's discriminator head, for checkpoints that have one (the loader adds it).
    pub fn with_discriminator(mut self, device: &Device) -> Self {
        let (c, h) = (&self.config, self.config.hidden_size);
        self.discriminator = Some(DiscriminatorHead {
            dense: family_linear(c, h, h, device),
            dense_prediction: family_linear(c, h, 1, device),
            activation: c.activation().expect("validated config"),
        });
        self
    }

    /// Give every dropout of the encoder the run's noise stream.
    pub fn set_noise(&mut self, stream: &crate::dropout::NoiseStream) {
        self.embeddings.dropout.stream = stream.clone();
        for l in &mut self.encoder.layer {
            l.attention.self_attn.dropout.stream = stream.clone();
            if let Some(d) = &mut l.attention.self_attn.position_dropout {
                d.stream = stream.clone();
            }
            l.attention.output.dropout.stream = stream.clone();
            l.output.dropout.stream = stream.clone();
        }
    }

    /// Mean of the last layer over the real tokens of `batch` [B, H] (sentence-encoder
    /// pooling).
    pub fn mean_pool(&self, out: &EncoderOutput, batch: &TokenBatch) -> Tensor<2> {
        let attention_mask = self.real_tokens(batch);
        let h = out.last();
        let [b, t, _] = h.dims();
        let m = attention_mask.reshape([b, t, 1]);
        let count = m.clone().sum_dim(1).clamp_min(1.0); // [B, 1, 1]
        (h * m).sum_dim(1).div(count).squeeze_dim::<2>(1)
    }

    /// Position ids: 0..T−1 (BERT, ELECTRA; DeBERTa's relative grid and ModernBERT's RoPE
    /// use the same); RoBERTa pad + cumsum(id ≠ pad) on real tokens, pad on padding.
    pub fn position_ids(&self, batch: &TokenBatch) -> Vec<i64> {
        let (b, t) = (batch.batch, batch.seq_len);
        let pad = self.config.pad_id() as i64;
        let mut out = vec![0i64; b * t];
        let family = self.config.family.spec();
        for r in 0..b {
            let row = r * t..(r + 1) * t;
            family.position_ids(
                &batch.input_ids[row.clone()],
                &batch.attention_mask[row.clone()],
                pad,
                &mut out[row],
            );
        }
        out
    }

    /// The token types the model is fed: the tokenizer's, or zeros where the model has a
    /// single type (RoBERTa) or none.
    pub fn fed_token_types(&self, batch: &TokenBatch) -> Vec<i64> {
        if self.config.type_vocab_size <= 1 {
            vec![0; batch.input_ids.len()]
        } else {
            batch.token_type_ids.clone()
        }
    }

    /// Run the encoder on a tokenized batch; returns every hidden state.
    pub fn forward(&self, batch: &TokenBatch) -> EncoderOutput {
        self.forward_perturbed(batch, None)
    }

    /// 1 at the real tokens of `batch`, 0 at padding [B, T].
    fn real_tokens(&self, batch: &TokenBatch) -> Tensor<2> {
        let m: Vec<f32> = batch.attention_mask.iter().map(|&v| v as f32).collect();
        Tensor::<2>::from_data(
            TensorData::new(m, [batch.batch, batch.seq_len]),
            &self.device(),
        )
    }

    fn device(&self) -> Device {
        self.embeddings.word_embeddings.weight.val().device()
    }

    /// The additive key mask [B, 1, 1, T] of a batch: 0 at real tokens, the most negative
    /// float at padding. A decoder's is [B, 1, T, T] and closes the keys after each query
    /// too; a query with no open key (a left pad) attends evenly to all, finitely.
    pub fn attention_bias(&self, batch: &TokenBatch) -> Tensor<4> {
        let (b, t) = (batch.batch, batch.seq_len);
        if self.config.family.is_decoder() {
            let mut bias = vec![f32::MIN; b * t * t];
            for r in 0..b {
                for i in 0..t {
                    for j in 0..=i {
                        if batch.attention_mask[r * t + j] != 0 {
                            bias[(r * t + i) * t + j] = 0.0;
                        }
                    }
                }
            }
            return Tensor::<4>::from_data(TensorData::new(bias, [b, 1, t, t]), &self.device());
        }
        let bias: Vec<f32> = batch
            .attention_mask
            .iter()
            .map(|&m| if m == 0 { f32::MIN } else { 0.0 })
            .collect();
        Tensor::<2>::from_data(TensorData::new(bias, [b, t]), &self.device()).reshape([b, 1, 1, t])
    }

    /// The attention context of a batch: its key mask and the family's positions (DeBERTa's
    /// normalised relative table and bucket indices, ModernBERT's rotations and window).
    pub fn attention_context(&self, batch: &TokenBatch) -> AttentionContext {
        let positions = match self.config.family.spec().rope() {
            Some(rope) => Positions::RotaryRows(Box::new(crate::families::llama::RowRotary::new(
                &rope,
                self.config.head_dim(),
                &self.position_ids(batch),
                batch.batch,
                &self.device(),
            ))),
            None => self.positions(batch.seq_len),
        };
        AttentionContext {
            mask: self.attention_bias(batch),
            positions,
        }
    }

    /// The index of each row's last token as Hugging Face's `*ForSequenceClassification`
    /// picks it for a decoder: the rightmost token whose id is not the pad id (the
    /// attention mask is not read, so with GPT-2's pad = eos a trailing eos is skipped);
    /// 0 for a row of pads only.
    pub fn last_token_index(&self, batch: &TokenBatch) -> Vec<usize> {
        let pad = self.config.pad_id() as i64;
        batch
            .input_ids
            .chunks(batch.seq_len.max(1))
            .map(|row| row.iter().rposition(|&id| id != pad).unwrap_or(0))
            .collect()
    }

    /// The last layer's vector at each row's [`Encoder::last_token_index`] [B, H].
    pub fn last_token(&self, out: &EncoderOutput, batch: &TokenBatch) -> Tensor<2> {
        let h = out.last();
        let [b, t, d] = h.dims();
        let index: Vec<i64> = self
            .last_token_index(batch)
            .iter()
            .enumerate()
            .map(|(r, &k)| (r * t + k) as i64)
            .collect();
        let index = Tensor::<1, Int>::from_data(TensorData::new(index, [b]), &self.device());
        h.reshape([b * t, d]).select(0, index)
    }

    fn positions(&self, t: usize) -> Positions {
        let table = self.encoder.rel_embeddings.as_ref().map(|e| {
            let table = e.weight.val();
            match &self.encoder.layer_norm {
                Some(ln) => fused::layer_norm(ln, table, self.config.layer_norm_eps),
                None => table,
            }
        });
        self.config
            .family
            .spec()
            .positions(table, &self.config, t, &self.device())
    }

    /// [`Encoder::forward`] with `word_shift` [B, T, E] added to the word embeddings
    /// before position and type embeddings (LNSR's noise on the embedding table, §2.3.1).
    pub fn forward_perturbed(
        &self,
        batch: &TokenBatch,
        word_shift: Option<Tensor<3>>,
    ) -> EncoderOutput {
        let device = self.device();
        let (b, t) = (batch.batch, batch.seq_len);
        let ints = |v: Vec<i64>| Tensor::<2, Int>::from_data(TensorData::new(v, [b, t]), &device);
        let ids = ints(batch.input_ids.clone());
        let types = ints(self.fed_token_types(batch));
        let positions = ints(self.position_ids(batch));
        let ctx = self.attention_context(batch);
        let padding = self
            .embeddings
            .zero_padding
            .then(|| self.real_tokens(batch).reshape([b, t, 1]));
        self.forward_shifted(ids, types, positions, ctx, padding, word_shift)
    }

    fn forward_shifted(
        &self,
        ids: Tensor<2, Int>,
        types: Tensor<2, Int>,
        positions: Tensor<2, Int>,
        ctx: AttentionContext,
        padding: Option<Tensor<3>>,
        word_shift: Option<Tensor<3>>,
    ) -> EncoderOutput {
        let e = &self.embeddings;
        let mut x = e.word_embeddings.forward(ids);
        if let Some(shift) = word_shift {
            x = x + shift;
        }
        if let Some(p) = &e.position_embeddings {
            x = x + p.forward(positions);
        }
        if let Some(table) = &e.token_type_embeddings {
            x = x + table.forward(types);
        }
        if let Some(ln) = &e.layer_norm {
            x = fused::layer_norm(ln, x, self.config.layer_norm_eps);
        }
        if let Some(m) = padding {
            x = x * m;
        }
        let mut x = e.dropout.forward(x);
        if let Some(project) = &e.project {
            x = dense(project, x);
        }
        let mut hidden_states = Vec::with_capacity(self.encoder.layer.len() + 1);
        hidden_states.push(x.clone());
        hidden_states.extend(self.forward_layers(x, &ctx));
        EncoderOutput { hidden_states }
    }

    /// Every layer's output, starting from an embedding output `x` [B, T, H] (LNSR's
    /// noisy branch above the embeddings, §2.3.2). The last passes ModernBERT's final norm.
    pub fn forward_layers(&self, mut x: Tensor<3>, ctx: &AttentionContext) -> Vec<Tensor<3>> {
        let mut out = Vec::with_capacity(self.encoder.layer.len());
        for layer in &self.encoder.layer {
            x = layer.forward(x, ctx);
            out.push(x.clone());
        }
        if let (Some(ln), Some(last)) = (&self.encoder.final_norm, out.last_mut()) {
            let rms = self.config.family.spec().layout().rms_norm;
            *last = norm(ln, last.clone(), self.config.layer_norm_eps, rms);
        }
        out
    }

    /// The pooled output [B, H] (see [`Pooler`] for each family's form); `batch` gives the
    /// real tokens for ModernBERT's mean pooling.
    pub fn pool(&self, out: &EncoderOutput, batch: &TokenBatch) -> Tensor<2> {
        let p = &self.pooler;
        let input = if p.mean {
            self.mean_pool(out, batch)
        } else {
            out.first_token()
        };
        let y = p.dense.forward(input);
        let y = match p.activation {
            PoolerActivation::Tanh => tanh(y),
            PoolerActivation::Of(a) => act(a, y),
        };
        match &p.norm {
            Some(ln) => fused::layer_norm(ln, y, self.config.layer_norm_eps),
            None => y,
        }
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
        let w = self.embeddings.word_embeddings.weight.val(); // [V, E]
        let v = w.dims()[0];
        let logits =
            x.reshape([b * t, h]).matmul(w.transpose()) + m.bias.val().unsqueeze_dim::<2>(0);
        logits.reshape([b, t, v])
    }

    /// ELECTRA's replaced-token logits [B, T] from hidden states [B, T, H], when the
    /// checkpoint has the discriminator head.
    pub fn discriminator_logits(&self, hidden: Tensor<3>) -> Option<Tensor<2>> {
        let d = self.discriminator.as_ref()?;
        let y = dense(
            &d.dense_prediction,
            act(d.activation, dense(&d.dense, hidden)),
        );
        let [b, t, _] = y.dims();
        Some(y.reshape([b, t]))
    }
}

impl Layer {
    /// A post-LN layer `x = LN(x + f(x))` per sub-layer, or a pre-LN one `x = x + f(LN(x))`.
    /// A sub-layer's output passes its adapter (if any) before the residual, and each
    /// dense layer adds its LoRA update (if any).
    pub fn forward(&self, x: Tensor<3>, ctx: &AttentionContext) -> Tensor<3> {
        let (eps, rms) = (self.layer_norm_eps, self.rms);
        let norm_of = |ln: &Option<LayerNorm>, x: Tensor<3>| match ln {
            Some(ln) => norm(ln, x, eps, rms),
            None => x,
        };
        let o = &self.attention.output;
        let out = &self.output;
        match self.norm {
            NormPlacement::Post => {
                let a = self.attention.self_attn.forward(x.clone(), ctx);
                let h = o
                    .dropout
                    .forward(with_low_rank(|a| dense(&o.dense, a), &o.lora, a));
                let x = norm_of(&o.layer_norm, through_adapter(&o.adapter, h) + x);
                let h = self.feed_forward(x.clone());
                fused::layer_norm(&out.layer_norm, through_adapter(&out.adapter, h) + x, eps)
            }
            NormPlacement::Pre => {
                let a = self
                    .attention
                    .self_attn
                    .forward(norm_of(&o.layer_norm, x.clone()), ctx);
                let h = o
                    .dropout
                    .forward(with_low_rank(|a| dense(&o.dense, a), &o.lora, a));
                let x = through_adapter(&o.adapter, h) + x;
                let h = self.feed_forward(norm(&out.layer_norm, x.clone(), eps, rms));
                through_adapter(&out.adapter, h) + x
            }
        }
    }

    /// The feed-forward sub-layer before the residual: `W₂·act(W₁x)` with dropout after
    /// W₂, or gated `W₂·drop(act(a) ⊙ g)` with `[a | g] = W₁x` (ModernBERT's order).
    fn feed_forward(&self, x: Tensor<3>) -> Tensor<3> {
        let i = &self.intermediate;
        let out = &self.output;
        if let Some(up) = &i.up {
            let gate = with_low_rank(|x| dense(&i.dense, x), &i.lora, x.clone());
            let z = out.dropout.forward(
                act(self.activation, gate) * with_low_rank(|x| dense(up, x), &i.lora_up, x),
            );
            return with_low_rank(|z| dense(&out.dense, z), &out.lora, z);
        }
        let inter = with_low_rank(|x| dense(&i.dense, x), &i.lora, x);
        if self.gated {
            let [b, t, w] = inter.dims();
            let half = w / 2;
            let input = inter.clone().slice([0..b, 0..t, 0..half]);
            let gate = inter.slice([0..b, 0..t, half..w]);
            let z = out.dropout.forward(act(self.activation, input) * gate);
            with_low_rank(|z| dense(&out.dense, z), &out.lora, z)
        } else {
            let inter = act(self.activation, inter);
            out.dropout
                .forward(with_low_rank(|z| dense(&out.dense, z), &out.lora, inter))
        }
    }
}

impl SelfAttention {
    /// softmax(scores + mask) → dropout → ·V, heads merged back to [B, T, H], where the
    /// scores are QKᵀ/√d (BERT), DeBERTa's disentangled sum over √(3d)
    /// ([`deberta::Relative::scores`]), or RoPE-rotated QKᵀ/√d with ModernBERT's window on
    /// local layers. On the host (f32) every family's attention is one kernel per
    /// (sequence, head) ([`fused_attention`], bit for bit the operations it replaces,
    /// 20–30% faster at MiniLM's shapes), DeBERTa's relative terms and ModernBERT's window
    /// entering as a bias on the raw scores; other devices take the products around the
    /// fused softmax ([`fused::masked_softmax`]'s burn twin).
    /// burn's own fused attention (`module::attention`) measured slower for these shapes.
    pub fn forward(&self, x: Tensor<3>, ctx: &AttentionContext) -> Tensor<3> {
        let [b, t, _] = x.dims();
        let (n, kv, d) = (self.heads, self.kv_heads, self.head_dim);
        let split = |y: Tensor<3>, heads: usize| y.reshape([b, t, heads, d]).swap_dims(1, 2);
        let project = |l: &Linear, lora: &Option<LowRank>, x: Tensor<3>| {
            with_low_rank(|x| dense(l, x), lora, x)
        };
        let head_norm = |ln: &Option<LayerNorm>, y: Tensor<4>| match ln {
            Some(ln) => norm(ln, y, self.norm_eps, true),
            None => y,
        };
        let q = head_norm(
            &self.q_norm,
            split(project(&self.query, &self.lora_query, x.clone()), n),
        );
        let k = head_norm(
            &self.k_norm,
            split(project(&self.key, &self.lora_key, x.clone()), kv),
        );
        let v = split(project(&self.value, &self.lora_value, x), kv);
        if kv != n {
            return self.grouped(q, k, v, ctx);
        }
        let (scores, scale_dim) = match &ctx.positions {
            Positions::Relative(rel) => {
                let table = match &self.position_dropout {
                    Some(drop) => drop.forward(rel.table.clone().unsqueeze_dim::<3>(0)),
                    None => rel.table.clone().unsqueeze_dim::<3>(0),
                };
                let pq = rel.split_heads(project(&self.query, &self.lora_query, table.clone()), n);
                let pk = rel.split_heads(project(&self.key, &self.lora_key, table), n);
                let scale_dim = rel.attention.terms() * d;
                if fused_attention::applies(&q, &k, &ctx.mask) {
                    let bias = rel.bias(q.clone(), k.clone(), pq, pk);
                    return self.fused(q, k, v, ctx, (bias, scale_dim));
                }
                (rel.scores(q, k, pq, pk), scale_dim)
            }
            Positions::Rotary(rot) if self.local => {
                let (q, k) = (rot.rotate(q, true), rot.rotate(k, true));
                if fused_attention::applies(&q, &k, &ctx.mask) {
                    return self.fused(q, k, v, ctx, (Some(rot.window_bias()), d));
                }
                (rot.window(q.matmul(k.swap_dims(2, 3)), true), d)
            }
            Positions::Rotary(rot) => {
                return self.attend(rot.rotate(q, false), rot.rotate(k, false), v, ctx);
            }
            Positions::RotaryRows(rot) => return self.attend(rot.rotate(q), rot.rotate(k), v, ctx),
            Positions::InEmbeddings => return self.attend(q, k, v, ctx),
        };
        self.weigh(scores, v, scale_dim, ctx)
    }

    /// softmax(QKᵀ/√d + mask) → dropout → ·V, heads merged: the fused kernel where it
    /// applies ([`fused_attention`]: one task per (sequence, head)), else the products
    /// around [`fused::masked_softmax`].
    fn attend(
        &self,
        q: Tensor<4>,
        k: Tensor<4>,
        v: Tensor<4>,
        ctx: &AttentionContext,
    ) -> Tensor<3> {
        let d = self.head_dim;
        if fused_attention::applies(&q, &k, &ctx.mask) {
            return self.fused(q, k, v, ctx, (None, d));
        }
        self.weigh(q.matmul(k.swap_dims(2, 3)), v, d, ctx)
    }

    /// The fused kernel, with `bias` added to the raw scores (ModernBERT's window,
    /// DeBERTa's relative terms), the scale 1/√`scale_dim`, and this layer's dropout draw.
    fn fused(
        &self,
        q: Tensor<4>,
        k: Tensor<4>,
        v: Tensor<4>,
        ctx: &AttentionContext,
        (bias, scale_dim): (Option<Tensor<4>>, usize),
    ) -> Tensor<3> {
        let dropout = self.dropout.draw(&q.device());
        fused_attention::attention((q, k, v), (&ctx.mask, bias), scale_dim, dropout)
    }

    /// The probabilities of raw `scores` [B, heads, T, T] (scaled by 1/√`scale_dim`),
    /// dropped out, times V, heads merged to [B, T, heads·d].
    fn weigh(
        &self,
        scores: Tensor<4>,
        v: Tensor<4>,
        scale_dim: usize,
        ctx: &AttentionContext,
    ) -> Tensor<3> {
        let [b, n, t, d] = v.dims();
        let probs = fused::masked_softmax(scores, ctx.mask.clone(), scale_dim);
        let probs = self.dropout.forward(probs);
        probs.matmul(v).swap_dims(1, 2).reshape([b, t, n * d])
    }

    /// Grouped-query attention (Llama, Qwen): query heads `g·j … g·j + g − 1` read key/value
    /// head j (g = heads / kv_heads). The g query heads of a group are stacked as the rows
    /// of one [g·T, d] block, so each key/value head enters its products once instead of
    /// being copied g times; the scores [B, kv, g·T, T] are the [B, heads, T, T] of the
    /// plain layout, reshaped. Only the Llama layout reads `num_key_value_heads` (the
    /// config refuses it elsewhere, `Layout::grouped_query`), so the positions are its
    /// rotations.
    fn grouped(
        &self,
        q: Tensor<4>,
        k: Tensor<4>,
        v: Tensor<4>,
        ctx: &AttentionContext,
    ) -> Tensor<3> {
        let [b, n, t, d] = q.dims();
        let kv = self.kv_heads;
        let (q, k) = match &ctx.positions {
            Positions::RotaryRows(rot) => (rot.rotate(q), rot.rotate(k)),
            _ => (q, k),
        };
        if fused_attention::applies(&q, &k, &ctx.mask) {
            return self.fused(q, k, v, ctx, (None, self.head_dim));
        }
        let g = n / kv;
        let scores = q
            .reshape([b, kv, g * t, d])
            .matmul(k.swap_dims(2, 3))
            .reshape([b, n, t, t]);
        let probs = fused::masked_softmax(scores, ctx.mask.clone(), d);
        let probs = self.dropout.forward(probs).reshape([b, kv, g * t, t]);
        probs
            .matmul(v)
            .reshape([b, n, t, d])
            .swap_dims(1, 2)
            .reshape([b, t, n * d])
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
