//! The model families, one file each, and the registry that lists them: the encoders
//! (BERT, RoBERTa, ELECTRA, DeBERTa-v3, ModernBERT) and the decoders fine-tuned as
//! classifiers (GPT-2, Llama, Qwen2, Qwen3), which are the same layer stack made causal.
//!
//! A family is a value that implements [`Family`]: the questions the shared code asks about
//! a model — which keys its `config.json` adds, which variant of the shared modules it
//! builds (biases, norm placement, gating, positions, pooler), how its Hugging Face tensor
//! names map onto stab's module paths, and what `stab list models` says about it. The
//! shared encoder ([`crate::encoder`]), the config reader ([`crate::config`]), the loader
//! and the checkpoint writer ([`crate::names`]) ask these questions and name no family.
//!
//! The registry is this file: the [`ModelFamily`] value a config holds, its arm in
//! [`ModelFamily::spec`], and its entry in [`FAMILIES`]. Adding a family is one new file
//! plus those lines (the checklist: docs/models.md §8).

pub mod bert;
pub mod deberta;
pub mod electra;
pub mod gpt2;
pub mod llama;
pub mod mistral;
pub mod modernbert;
pub mod qwen2;
pub mod qwen3;
pub mod roberta;

use burn::tensor::{Device, Tensor};
use serde_json::Value;
use stab_core::InputError;

use crate::config::{Activation, EncoderConfig, KeyError};

pub use deberta::RelativeAttention;
pub use electra::Electra;
pub use llama::{LlamaLayout, Rope};
pub use modernbert::ModernBertLayout;

/// A model family as a config holds it: which family, with what its keys add.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ModelFamily {
    Bert,
    Roberta,
    Electra(Electra),
    Deberta(RelativeAttention),
    ModernBert(ModernBertLayout),
    Gpt2(gpt2::Gpt2),
    /// Llama, Mistral, Qwen2 and Qwen3 (which its [`LlamaLayout::kind`] says).
    Llama(LlamaLayout),
}

/// Every family with a port, in `stab list models` order.
pub const FAMILIES: &[Registered] = &[
    bert::REGISTERED,
    roberta::REGISTERED,
    electra::REGISTERED,
    deberta::REGISTERED,
    modernbert::REGISTERED,
    gpt2::REGISTERED,
    llama::REGISTERED,
    mistral::REGISTERED,
    qwen2::REGISTERED,
    qwen3::REGISTERED,
];

impl ModelFamily {
    /// The family's answers to the shared code's questions.
    pub fn spec(&self) -> &dyn Family {
        match self {
            Self::Bert => &bert::Bert,
            Self::Roberta => &roberta::Roberta,
            Self::Electra(e) => e,
            Self::Deberta(r) => r,
            Self::ModernBert(m) => m,
            Self::Gpt2(g) => g,
            Self::Llama(l) => l,
        }
    }

    /// The family of `c.model_type`, reading the keys it adds from the whole file `v`.
    pub(crate) fn read(c: &EncoderConfig, v: &Value) -> Result<Self, KeyError> {
        let known = FAMILIES
            .iter()
            .find(|f| f.info.model_type == c.model_type)
            .ok_or_else(|| {
                (
                    format!("unsupported model_type `{}`", c.model_type),
                    "model_type",
                )
            })?;
        (known.read)(c, v)
    }

    /// The family's name in messages and `stab list models`.
    pub fn name(&self) -> &'static str {
        self.spec().info().name
    }

    /// Whether the embeddings add a token-type table.
    pub fn has_token_types(&self) -> bool {
        self.spec().has_token_types()
    }

    /// Whether the embeddings add an absolute position table.
    pub fn has_absolute_positions(&self) -> bool {
        self.spec().has_absolute_positions()
    }

    /// The Hugging Face class a decoder's `save_best` checkpoint is (`architectures` in
    /// its config.json); `None` for the encoders, whose checkpoints hold stab's jiant head
    /// beside the base model.
    pub fn sequence_classifier(&self) -> Option<&'static str> {
        match self {
            Self::Gpt2(_) => Some("GPT2ForSequenceClassification"),
            Self::Llama(l) => Some(match l.kind {
                llama::LlamaKind::Llama => "LlamaForSequenceClassification",
                llama::LlamaKind::Mistral => "MistralForSequenceClassification",
                llama::LlamaKind::Qwen2 => "Qwen2ForSequenceClassification",
                llama::LlamaKind::Qwen3 => "Qwen3ForSequenceClassification",
            }),
            _ => None,
        }
    }

    /// Whether the family is a decoder: causal attention, positions from the attention
    /// mask, the last real token as the sequence's vector.
    pub fn is_decoder(&self) -> bool {
        self.spec().layout().causal
    }
}

/// A family in the registry: what `stab list models` says, and how its keys are read.
#[derive(Debug, Clone, Copy)]
pub struct Registered {
    pub info: FamilyInfo,
    pub read: fn(&EncoderConfig, &Value) -> Result<ModelFamily, KeyError>,
}

/// What `stab list models` says about a family.
#[derive(Debug, Clone, Copy)]
pub struct FamilyInfo {
    /// `model_type` in `config.json`.
    pub model_type: &'static str,
    pub name: &'static str,
    /// The prefix of the task model's names (`bert.` in `BertForSequenceClassification`).
    pub prefix: &'static str,
    /// Tensors deliberately not loaded (tied decoders, buffers, pre-training heads), after
    /// the prefix.
    pub ignored: &'static [&'static str],
    /// Hub ids of the usual base checkpoints.
    pub hub_ids: &'static [&'static str],
    /// What `pooling = "pooler"` computes.
    pub pooler: &'static str,
    /// The MLM head SURT re-trains.
    pub mlm: &'static str,
    /// What differs for the methods.
    pub notes: &'static str,
}

/// Where a layer puts its LayerNorms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormPlacement {
    /// `x = LN(x + f(x))` for each sub-layer (BERT, RoBERTa, ELECTRA, DeBERTa).
    Post,
    /// `x = x + f(LN(x))` (ModernBERT).
    Pre,
}

/// The pooler's activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolerActivation {
    /// BERT's `tanh(W·h₀ + b)`.
    Tanh,
    /// DeBERTa's `ContextPooler`, ELECTRA's classification head, ModernBERT's `head`.
    Of(Activation),
}

/// The family's position information inside attention.
#[derive(Debug, Clone)]
pub enum Positions {
    /// Positions were added to the embeddings (BERT, RoBERTa, ELECTRA).
    InEmbeddings,
    /// DeBERTa's disentangled attention ([`deberta::Relative`]).
    Relative(Box<deberta::Relative>),
    /// ModernBERT's rotary embeddings and sliding window ([`modernbert::Rotary`]).
    Rotary(Box<modernbert::Rotary>),
    /// A decoder's rotary embeddings at each row's own positions ([`llama::RowRotary`]).
    RotaryRows(Box<llama::RowRotary>),
}

/// Which variant of the shared layer stack a family builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Linear layers and LayerNorms have biases (all but ModernBERT, Llama and Qwen).
    pub biases: bool,
    /// The query, key and value projections have biases (Qwen2's, while its others
    /// have none).
    pub qkv_biases: bool,
    /// RMSNorm (`x / √(mean(x²) + ε) · w`, Llama, Qwen) instead of LayerNorm.
    pub rms_norm: bool,
    /// A norm after the embeddings (the encoders; decoders have none).
    pub embedding_norm: bool,
    /// Causal attention: position i attends to keys j ≤ i (the decoders).
    pub causal: bool,
    /// Qwen3's RMSNorm of each query and key head before the rotation.
    pub qk_norm: bool,
    /// Where each layer puts its norms.
    pub norm: NormPlacement,
    /// A gated feed-forward, `act(a) ⊙ g` (ModernBERT's GeGLU, Llama's SwiGLU).
    pub gated: bool,
    /// The gate's two projections are separate Linears (Llama's `gate_proj` and `up_proj`:
    /// `intermediate.dense` and `intermediate.up`), not halves of one (ModernBERT's `Wi`).
    pub split_gate: bool,
    /// Layer 0 has an attention norm (ModernBERT's relies on the embeddings' norm).
    pub first_attention_norm: bool,
    /// A norm after the last layer.
    pub final_norm: bool,
    /// The attention output is dropped with the attention-probability dropout (else the
    /// hidden dropout).
    pub attention_output_dropout: bool,
    /// Padded positions of the embedding output are zeroed (DeBERTa's mask multiply).
    pub zero_padding: bool,
    /// The relative-position table is dropped with the hidden dropout (DeBERTa).
    pub position_dropout: bool,
    /// Grouped-query attention: the config's `num_key_value_heads` is read (Llama, Mistral,
    /// Qwen); elsewhere Hugging Face ignores the key, and stab refuses a value other than
    /// `num_attention_heads`.
    pub grouped_query: bool,
}

impl Layout {
    /// BERT's layer: biases, post-norm, plain feed-forward.
    pub const BERT: Layout = Layout {
        biases: true,
        qkv_biases: true,
        rms_norm: false,
        embedding_norm: true,
        causal: false,
        qk_norm: false,
        norm: NormPlacement::Post,
        gated: false,
        split_gate: false,
        first_attention_norm: true,
        final_norm: false,
        attention_output_dropout: false,
        zero_padding: false,
        position_dropout: false,
        grouped_query: false,
    };
}

/// What the pooler computes for `pooling = "pooler"` (docs/models.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolerSpec {
    pub activation: PoolerActivation,
    /// A LayerNorm after the activation (ModernBERT's `head.norm`).
    pub norm: bool,
    /// The pooler reads the mean of the real tokens instead of the first token.
    pub mean: bool,
}

impl PoolerSpec {
    /// BERT's `tanh(W·h₀ + b)`.
    pub const TANH: PoolerSpec = PoolerSpec {
        activation: PoolerActivation::Tanh,
        norm: false,
        mean: false,
    };

    /// `act(W·h₀ + b)` on the first token.
    pub fn of(activation: Activation) -> Self {
        Self {
            activation: PoolerActivation::Of(activation),
            norm: false,
            mean: false,
        }
    }
}

/// The questions shared code asks a family. Every method has BERT's answer as its
/// default, so a family states only how it differs.
pub trait Family: Sync {
    /// What `stab list models` says about it.
    fn info(&self) -> &'static FamilyInfo;

    // config.json

    /// Whether the embeddings add a token-type table.
    fn has_token_types(&self) -> bool {
        true
    }
    /// Whether the embeddings add an absolute position table.
    fn has_absolute_positions(&self) -> bool {
        true
    }
    /// The width of the embedding tables.
    fn embedding_size(&self, c: &EncoderConfig) -> usize {
        c.hidden_size
    }
    /// The first feed-forward projection's output width.
    fn intermediate_width(&self, c: &EncoderConfig) -> usize {
        c.intermediate_size
    }
    /// Parameters outside the shared layout (DeBERTa's relative table).
    fn extra_parameters(&self, c: &EncoderConfig) -> u128 {
        let _ = c;
        0
    }
    /// The padding id when `config.json` names none.
    fn default_pad_id(&self) -> usize {
        0
    }
    /// The longest input the position embeddings allow.
    fn max_tokens(&self, c: &EncoderConfig) -> usize {
        c.max_position_embeddings
    }
    /// Fill shared fields from the family's own keys, right after reading.
    fn adjust(&self, c: &mut EncoderConfig) {
        let _ = c;
    }
    /// The dropout probabilities validated, under the keys the file names them by.
    fn dropouts(&self, c: &EncoderConfig) -> Vec<(&'static str, f64)> {
        vec![
            ("hidden_dropout_prob", c.hidden_dropout_prob),
            (
                "attention_probs_dropout_prob",
                c.attention_probs_dropout_prob,
            ),
        ]
    }
    /// Checks of the family's own keys, beyond the shared ones; errors name the key.
    fn validate(&self, c: &EncoderConfig) -> Result<(), InputError> {
        let _ = c;
        Ok(())
    }

    // modules

    /// The variant of the shared layer stack.
    fn layout(&self) -> Layout {
        Layout::BERT
    }
    /// The embeddings' dropout probability.
    fn embedding_dropout(&self, c: &EncoderConfig) -> f64 {
        c.hidden_dropout_prob
    }
    /// Whether layer `i` attends only within a sliding window.
    fn local_attention(&self, layer: usize) -> bool {
        let _ = layer;
        false
    }
    /// The pooler.
    fn pooler(&self) -> PoolerSpec {
        PoolerSpec::TANH
    }
    /// Rows of a relative-position table and whether it passes a LayerNorm (DeBERTa).
    fn relative_table(&self) -> Option<(usize, bool)> {
        None
    }
    /// Position ids of one row of token ids (`mask`: its attention mask): 0..T−1; a
    /// decoder's count the real tokens before each (`cumsum(mask) − 1`), 1 at padding,
    /// so that left and right padding give the same positions.
    fn position_ids(&self, ids: &[i64], mask: &[i64], pad: i64, out: &mut [i64]) {
        let _ = (ids, pad);
        if self.layout().causal {
            let mut seen = 0i64;
            for (o, &m) in out.iter_mut().zip(mask) {
                seen += i64::from(m != 0);
                *o = if m != 0 { seen - 1 } else { 1 };
            }
            return;
        }
        for (k, o) in out.iter_mut().enumerate() {
            *o = k as i64;
        }
    }
    /// A decoder's rotary embedding (Llama, Qwen); `None` for the rest.
    fn rope(&self) -> Option<Rope> {
        None
    }
    /// The position information every layer's attention needs for length `t`, from the
    /// relative table (after its norm) when the family has one.
    fn positions(
        &self,
        table: Option<Tensor<2>>,
        c: &EncoderConfig,
        t: usize,
        device: &Device,
    ) -> Positions {
        let _ = (table, c, t, device);
        Positions::InEmbeddings
    }

    // names

    /// Where a Hugging Face tensor goes in stab's module tree.
    fn stab_paths(&self, name: &str) -> Vec<Target> {
        bert::stab_paths(name)
    }
    /// A stab parameter's name in the family's base model.
    fn hf_name(&self, path: &str) -> Option<HfName> {
        bert::hf_name(path)
    }
}

// What every family's names share.

/// One destination of a source tensor: a module path, and for a fused tensor the block of
/// rows it takes (`part` of `parts` equal row blocks: ModernBERT's `Wqkv`). `transpose`:
/// the source is a GPT-2 `Conv1D` weight, stored [in, out], which is transposed to a
/// Linear's [out, in] before anything else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub path: String,
    pub part: Option<(usize, usize)>,
    pub transpose: bool,
}

/// The whole tensor into `path`.
pub fn to(path: String) -> Vec<Target> {
    vec![Target {
        path,
        part: None,
        transpose: false,
    }]
}

/// The same whole tensor into each of `paths`.
pub fn to_each(paths: &[&str]) -> Vec<Target> {
    paths
        .iter()
        .map(|p| Target {
            path: p.to_string(),
            part: None,
            transpose: false,
        })
        .collect()
}

/// A name without a family's task-model prefix (`bert.`, `roberta.`, …, `model.`,
/// `transformer.`).
pub fn strip_prefix(name: &str) -> &str {
    for f in FAMILIES {
        if let Some(rest) = name.strip_prefix(f.info.prefix) {
            return rest;
        }
    }
    name
}

/// A parameter's name in the family's base model (`BertModel`, `ElectraModel`,
/// `DebertaV2Model`, `ModernBertModel`; the pooler under the name the family's
/// sequence-classification model loads), with whether its values are transposed (burn keeps
/// Linear weights `[in, out]`) and, for a block of a fused tensor, which block. `None` for
/// what the base model does not have (the MLM and discriminator heads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HfName {
    pub name: String,
    pub transposed: bool,
    pub part: Option<(usize, usize)>,
    /// The fused tensor is a GPT-2 `Conv1D` weight ([in, out]): its blocks are written
    /// transposed as row blocks and the joined tensor is transposed back.
    pub conv1d: bool,
}

/// What every family shares in `names::hf_name`: `None` for the pre-training heads; a norm's
/// `gamma`/`beta` as `weight`/`bias`; whether the values are a transposed Linear weight.
pub fn hf_parameter(burn_path: &str) -> Option<(String, bool)> {
    if burn_path.starts_with("mlm.") || burn_path.starts_with("discriminator.") {
        return None;
    }
    let in_norm = burn_path.contains("layer_norm.") || burn_path.contains("norm.");
    let mut name = burn_path.to_string();
    if in_norm {
        if let Some(stem) = name.strip_suffix(".gamma") {
            name = format!("{stem}.weight");
        } else if let Some(stem) = name.strip_suffix(".beta") {
            name = format!("{stem}.bias");
        }
    }
    let linear_weight = name.ends_with(".weight")
        && !name.starts_with("embeddings.word_embeddings")
        && !name.starts_with("embeddings.position_embeddings")
        && !name.starts_with("embeddings.token_type_embeddings")
        && !name.starts_with("encoder.rel_embeddings")
        && !in_norm;
    Some((name, linear_weight))
}
