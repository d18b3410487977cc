//! ModernBERT (`model_type = "modernbert"`; Warner et al. 2024): pre-norm layers without
//! biases, rotary position embeddings, a GeGLU feed-forward, and attention that alternates
//! between global layers and local ones limited to a sliding window, with a final norm.
//!
//! * RoPE, rotate-half form (Su et al. 2021): for position p and head size d,
//!   `inv_freq_k = θ^(−2k/d)`, k < d/2; `c = cos(p·[inv_freq, inv_freq])`, `s = sin(…)`;
//!   `rope(x) = x ⊙ c + [−x₂, x₁] ⊙ s` (x₁, x₂ the halves of x). θ is `rope_theta` of the
//!   layer type (160 000 global, 10 000 local in ModernBERT-base), in f32 as HF computes it.
//! * Layer i is global iff i % `global_attn_every_n_layers` == 0; a local layer's query i
//!   sees key j iff |i − j| ≤ `local_attention / 2` (and j is a real token). The window is
//!   a finite additive bias (−1e30) so that fully masked padding rows stay finite.
//! * Layer: `h = x` on layer 0 (no `attn_norm`), else `LN(x)`; `x += Wo·attn(h)`;
//!   `[a | g] = LN(x)·Wiᵀ`; `x += Wo·(gelu(a) ⊙ g)`; after the last layer `LN_final(x)`.
//!
//! HF names: `model.embeddings.{tok_embeddings, norm}`, `model.layers.N.{attn.Wqkv, attn.Wo,
//! attn_norm, mlp_norm, mlp.Wi, mlp.Wo}`, `model.final_norm`, `head.{dense, norm}`,
//! `decoder.bias`. `Wqkv` holds q, k and v as consecutive row blocks; stab keeps BERT's
//! three projections (so LoRA, MixOut and the analyses address q, k and v alike) and
//! splits it on load, joining it again on save.

use burn::tensor::{Device, Tensor, TensorData};

use serde_json::Value;

use stab_core::InputError;

use super::{self as names, HfName, NormPlacement, PoolerActivation, Positions, Target};
use super::{Family, FamilyInfo, Layout, ModelFamily, PoolerSpec, Registered};
use crate::config::{Activation, EncoderConfig, KeyError, count, flag, number, text};

pub const REGISTERED: Registered = Registered {
    info: FamilyInfo {
        model_type: "modernbert",
        name: "ModernBERT",
        prefix: "model.",
        hub_ids: &[
            "answerdotai/ModernBERT-base",
            "answerdotai/ModernBERT-large",
        ],
        pooler: "LN(act(W·p)), p = [CLS] or the mean (classifier_pooling), W and LN loaded from `head`",
        mlm: "head + decoder.bias",
        notes: "no biases: BitFit is refused; dropout 0 in the released configs (R-Drop's two passes coincide)",
        ignored: &["decoder.weight"],
    },
    read,
};

fn read(c: &EncoderConfig, v: &Value) -> Result<ModelFamily, KeyError> {
    read_config(c, v).map(ModelFamily::ModernBert)
}

impl Family for ModernBertLayout {
    fn info(&self) -> &'static FamilyInfo {
        &REGISTERED.info
    }

    fn has_token_types(&self) -> bool {
        false
    }

    fn has_absolute_positions(&self) -> bool {
        false
    }

    /// GeGLU's input and gate.
    fn intermediate_width(&self, c: &EncoderConfig) -> usize {
        2 * c.intermediate_size
    }

    /// ModernBERT's own dropout keys fill the shared ones.
    fn adjust(&self, c: &mut EncoderConfig) {
        c.hidden_dropout_prob = self.mlp_dropout;
        c.attention_probs_dropout_prob = self.attention_dropout;
    }

    fn dropouts(&self, c: &EncoderConfig) -> Vec<(&'static str, f64)> {
        vec![
            ("embedding_dropout", self.embedding_dropout),
            ("attention_dropout", c.attention_probs_dropout_prob),
            ("mlp_dropout", c.hidden_dropout_prob),
        ]
    }

    fn validate(&self, c: &EncoderConfig) -> Result<(), InputError> {
        if self.window_half == 0 {
            return Err(InputError::new("local_attention must be at least 2")
                .key("local_attention")
                .hint("ModernBERT uses local_attention = 128"));
        }
        if !c.head_dim().is_multiple_of(2)
            || !self.global_theta.is_finite()
            || self.global_theta <= 1.0
            || !self.local_theta.is_finite()
            || self.local_theta <= 1.0
        {
            return Err(InputError::new(
                "RoPE needs an even head size and rope_theta values above 1",
            )
            .key("rope_parameters")
            .hint("ModernBERT uses head size 64 and rope_theta 160000 (global) / 10000 (local)"));
        }
        Ok(())
    }

    fn layout(&self) -> Layout {
        Layout {
            biases: false,
            qkv_biases: false,
            norm: NormPlacement::Pre,
            gated: true,
            first_attention_norm: false,
            final_norm: true,
            attention_output_dropout: true,
            ..Layout::BERT
        }
    }

    fn embedding_dropout(&self, _: &EncoderConfig) -> f64 {
        self.embedding_dropout
    }

    fn local_attention(&self, layer: usize) -> bool {
        !self.is_global(layer)
    }

    fn pooler(&self) -> PoolerSpec {
        PoolerSpec {
            activation: PoolerActivation::Of(self.pooler_act),
            norm: true,
            mean: self.mean_pooling,
        }
    }

    fn positions(
        &self,
        _: Option<Tensor<2>>,
        c: &EncoderConfig,
        t: usize,
        device: &Device,
    ) -> Positions {
        Positions::Rotary(Box::new(Rotary::new(self, c.head_dim(), t, device)))
    }

    fn stab_paths(&self, name: &str) -> Vec<Target> {
        stab_paths(name)
    }

    fn hf_name(&self, path: &str) -> Option<HfName> {
        let (name, transposed) = names::hf_parameter(path)?;
        let (name, part) = hf_name(&name)?;
        Some(HfName {
            name,
            transposed,
            part,
            conv1d: false,
        })
    }
}

/// ModernBERT's layer pattern, rotary bases and dropouts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModernBertLayout {
    /// Layer i attends globally iff i % `global_every` == 0 (`global_attn_every_n_layers`).
    pub global_every: usize,
    /// A local layer's query i sees keys j with |i − j| ≤ `window_half` (`local_attention / 2`).
    pub window_half: usize,
    /// RoPE θ of global and local layers.
    pub global_theta: f64,
    pub local_theta: f64,
    /// `embedding_dropout`, `attention_dropout` (probabilities and output), `mlp_dropout`;
    /// config parsing copies the last two into the shared `attention_probs_dropout_prob`
    /// and `hidden_dropout_prob`, which the encoder and validation read.
    pub embedding_dropout: f64,
    pub attention_dropout: f64,
    pub mlp_dropout: f64,
    /// `classifier_pooling = "mean"`: the pooler reads the mean of the real tokens.
    pub mean_pooling: bool,
    /// The pooler's (HF `head`) activation, `classifier_activation`.
    pub pooler_act: Activation,
}

impl ModernBertLayout {
    pub fn is_global(&self, layer: usize) -> bool {
        layer.is_multiple_of(self.global_every)
    }
}

/// The ModernBERT keys of `config.json` (`v`); errors name the key.
pub fn read_config(c: &EncoderConfig, v: &Value) -> Result<ModernBertLayout, KeyError> {
    for key in ["norm_bias", "attention_bias", "mlp_bias"] {
        if flag(v, key, false)? {
            return Err((
                format!(
                    "ModernBERT with `{key} = true` is not supported (the released checkpoints have no biases)"
                ),
                key,
            ));
        }
    }
    let every = count(v, "global_attn_every_n_layers", 3)?;
    if every == 0 {
        return Err((
            "`global_attn_every_n_layers` is 0: ModernBERT needs a global layer every n ≥ 1 layers"
                .into(),
            "global_attn_every_n_layers",
        ));
    }
    check_layer_types(c, v, every)?;
    refuse_rope_scaling(v)?;
    let theta = |kind: &str, legacy: &'static str, default: f64| -> Result<f64, KeyError> {
        match v
            .get("rope_parameters")
            .and_then(|r| r.get(kind))
            .and_then(|r| r.get("rope_theta"))
        {
            Some(x) => x.as_f64().ok_or_else(|| {
                (
                    format!("rope_parameters.{kind}.rope_theta must be a number"),
                    "rope_parameters",
                )
            }),
            None => number(v, legacy, default),
        }
    };
    let window = number(v, "local_attention", 128.0)? as usize;
    let pooling = text(v, "classifier_pooling", "cls")?;
    if !matches!(pooling, "cls" | "mean") {
        return Err((
            format!("classifier_pooling `{pooling}` is not cls or mean"),
            "classifier_pooling",
        ));
    }
    let act = text(v, "classifier_activation", &c.hidden_act)?;
    Ok(ModernBertLayout {
        global_every: every,
        window_half: window / 2,
        global_theta: theta("full_attention", "global_rope_theta", 160_000.0)?,
        local_theta: theta("sliding_attention", "local_rope_theta", 10_000.0)?,
        embedding_dropout: number(v, "embedding_dropout", 0.0)?,
        attention_dropout: number(v, "attention_dropout", 0.0)?,
        mlp_dropout: number(v, "mlp_dropout", 0.0)?,
        mean_pooling: pooling == "mean",
        pooler_act: Activation::parse(act).map_err(|m| (m.reason, "classifier_activation"))?,
    })
}

/// `layer_types`, when given, lists every layer and follows the regular pattern of
/// `global_attn_every_n_layers` (the only one the port implements).
fn check_layer_types(c: &EncoderConfig, v: &Value, every: usize) -> Result<(), KeyError> {
    if let Some(types) = v.get("layer_types").filter(|t| !t.is_null()) {
        let Value::Array(types) = types else {
            return Err(("`layer_types` must be a list".into(), "layer_types"));
        };
        if types.len() != c.num_hidden_layers {
            return Err((
                format!(
                    "`layer_types` lists {} layers, but num_hidden_layers = {}",
                    types.len(),
                    c.num_hidden_layers
                ),
                "layer_types",
            ));
        }
        for (i, t) in types.iter().enumerate() {
            let want = if i.is_multiple_of(every) {
                "full_attention"
            } else {
                "sliding_attention"
            };
            if t.as_str() != Some(want) {
                return Err((
                    format!(
                        "layer_types[{i}] is {t}, but global_attn_every_n_layers = {every} implies \"{want}\" (stab supports the regular pattern only)"
                    ),
                    "layer_types",
                ));
            }
        }
    }
    Ok(())
}

/// RoPE scaling (YaRN, linear, dynamic…) changes the rotations: refused, not ignored.
fn refuse_rope_scaling(v: &Value) -> Result<(), KeyError> {
    for (path, scaling) in [
        ("rope_scaling", v.get("rope_scaling")),
        (
            "rope_parameters.full_attention",
            v.get("rope_parameters")
                .and_then(|r| r.get("full_attention")),
        ),
        (
            "rope_parameters.sliding_attention",
            v.get("rope_parameters")
                .and_then(|r| r.get("sliding_attention")),
        ),
    ] {
        let kind = scaling.filter(|s| !s.is_null()).map(|s| {
            s.get("rope_type")
                .or_else(|| s.get("type"))
                .and_then(Value::as_str)
                .unwrap_or("default")
        });
        if let Some(kind) = kind.filter(|k| *k != "default") {
            return Err((
                format!(
                    "RoPE scaling `{kind}` ({path}) is not supported: stab's ModernBERT port implements the default rotations"
                ),
                if path == "rope_scaling" {
                    "rope_scaling"
                } else {
                    "rope_parameters"
                },
            ));
        }
    }
    Ok(())
}

/// The bias that closes a key outside the window (finite: see the module docs).
const CLOSED: f32 = -1e30;

/// Rotations of both layer types and the local window for one sequence length.
#[derive(Debug, Clone)]
pub struct Rotary {
    global: (Tensor<4>, Tensor<4>),
    local: (Tensor<4>, Tensor<4>),
    /// [1, 1, T, T]: 0 inside the window, −1e30 outside.
    window: Tensor<4>,
}

/// cos and sin [T, d] of positions 0..T−1 for base `theta`, in f32 (HF's order of operations).
pub fn rotation_tables(theta: f64, head_dim: usize, t: usize) -> (Vec<f32>, Vec<f32>) {
    let half = head_dim / 2;
    let inv_freq: Vec<f32> = (0..half)
        .map(|k| 1.0 / (theta as f32).powf((2 * k) as f32 / head_dim as f32))
        .collect();
    let mut cos = Vec::with_capacity(t * head_dim);
    let mut sin = Vec::with_capacity(t * head_dim);
    for p in 0..t {
        for _ in 0..2 {
            for f in &inv_freq {
                let angle = p as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
    }
    (cos, sin)
}

impl Rotary {
    pub fn new(m: &ModernBertLayout, head_dim: usize, t: usize, device: &Device) -> Self {
        let table = |theta: f64| {
            let (c, s) = rotation_tables(theta, head_dim, t);
            let make = |v| {
                Tensor::<2>::from_data(TensorData::new(v, [t, head_dim]), device)
                    .reshape([1, 1, t, head_dim])
            };
            (make(c), make(s))
        };
        let half = m.window_half as i64;
        let window: Vec<f32> = (0..t as i64)
            .flat_map(|i| {
                (0..t as i64).map(move |j| if (i - j).abs() <= half { 0.0 } else { CLOSED })
            })
            .collect();
        Self {
            global: table(m.global_theta),
            local: table(m.local_theta),
            window: Tensor::<2>::from_data(TensorData::new(window, [t, t]), device)
                .reshape([1, 1, t, t]),
        }
    }

    /// `rope(x)` for heads x [B, n, T, d] with the tables of a global or a local layer.
    pub fn rotate(&self, x: Tensor<4>, local: bool) -> Tensor<4> {
        let (cos, sin) = if local { &self.local } else { &self.global };
        let [b, n, t, d] = x.dims();
        let x1 = x.clone().slice([0..b, 0..n, 0..t, 0..d / 2]);
        let x2 = x.clone().slice([0..b, 0..n, 0..t, d / 2..d]);
        let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
        x * cos.clone() + rotated * sin.clone()
    }

    /// The window as a bias `[1, 1, T, T]` on raw scores: 0 inside, −1e30 outside.
    pub fn window_bias(&self) -> Tensor<4> {
        self.window.clone()
    }

    /// Raw scores [B, n, T, T] with keys outside a local layer's window closed.
    pub fn window(&self, scores: Tensor<4>, local: bool) -> Tensor<4> {
        if local {
            scores + self.window.clone()
        } else {
            scores
        }
    }
}

/// Where a ModernBERT tensor goes: `Wqkv` into three row blocks, `head` into both the
/// pooler and the MLM head.
fn stab_paths(name: &str) -> Vec<Target> {
    let base = names::strip_prefix(name);
    let simple = |p: &str| names::to(p.to_string());
    match base {
        "embeddings.tok_embeddings.weight" => return simple("embeddings.word_embeddings.weight"),
        "embeddings.norm.weight" => return simple("embeddings.layer_norm.weight"),
        "final_norm.weight" => return simple("encoder.final_norm.weight"),
        "decoder.bias" => return simple("mlm.bias"),
        "head.dense.weight" => {
            return names::to_each(&["pooler.dense.weight", "mlm.dense.weight"]);
        }
        "head.norm.weight" => {
            return names::to_each(&["pooler.norm.weight", "mlm.layer_norm.weight"]);
        }
        _ => {}
    }
    let Some((n, rest)) = base.strip_prefix("layers.").and_then(|r| r.split_once('.')) else {
        return simple(base);
    };
    let layer = format!("encoder.layer.{n}");
    match rest {
        "attn.Wqkv.weight" => ["query", "key", "value"]
            .iter()
            .enumerate()
            .map(|(i, m)| Target {
                path: format!("{layer}.attention.self_attn.{m}.weight"),
                part: Some((i, 3)),
                transpose: false,
            })
            .collect(),
        "attn.Wo.weight" => names::to(format!("{layer}.attention.output.dense.weight")),
        "attn_norm.weight" => names::to(format!("{layer}.attention.output.layer_norm.weight")),
        "mlp_norm.weight" => names::to(format!("{layer}.output.layer_norm.weight")),
        "mlp.Wi.weight" => names::to(format!("{layer}.intermediate.dense.weight")),
        "mlp.Wo.weight" => names::to(format!("{layer}.output.dense.weight")),
        _ => simple(base),
    }
}

/// A stab parameter's ModernBertModel name, and its block of `Wqkv`.
fn hf_name(path: &str) -> Option<(String, Option<(usize, usize)>)> {
    let fixed = match path {
        "embeddings.word_embeddings.weight" => Some("embeddings.tok_embeddings.weight"),
        "embeddings.layer_norm.weight" => Some("embeddings.norm.weight"),
        "encoder.final_norm.weight" => Some("final_norm.weight"),
        "pooler.dense.weight" => Some("head.dense.weight"),
        "pooler.norm.weight" => Some("head.norm.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some((f.to_string(), None));
    }
    let (n, rest) = path.strip_prefix("encoder.layer.")?.split_once('.')?;
    let (hf, part) = match rest {
        "attention.self_attn.query.weight" => ("attn.Wqkv.weight", Some((0, 3))),
        "attention.self_attn.key.weight" => ("attn.Wqkv.weight", Some((1, 3))),
        "attention.self_attn.value.weight" => ("attn.Wqkv.weight", Some((2, 3))),
        "attention.output.dense.weight" => ("attn.Wo.weight", None),
        "attention.output.layer_norm.weight" => ("attn_norm.weight", None),
        "output.layer_norm.weight" => ("mlp_norm.weight", None),
        "intermediate.dense.weight" => ("mlp.Wi.weight", None),
        "output.dense.weight" => ("mlp.Wo.weight", None),
        _ => return Some((format!("layers.{n}.{rest}"), None)),
    };
    Some((format!("layers.{n}.{hf}"), part))
}
