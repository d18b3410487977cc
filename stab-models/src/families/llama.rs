//! Llama (`model_type = "llama"`; Touvron et al. 2023; SmolLM2, Llama 3.x) as a classifier:
//! the shared layer stack made a decoder. Per layer, with RMSNorm
//! `rms(x) = x / √(mean(x²) + ε) · w` and no biases:
//!
//! * `x = x + W_o · attn(rms₁(x))`, attention causal over the real tokens, queries and
//!   keys rotated by RoPE (rotate-half: `rope(x) = x ⊙ cos + [−x₂, x₁] ⊙ sin`, angle
//!   `p · θ^(−2k/d)` in f32 at position p = the real tokens before it), and grouped-query:
//!   query head j reads key/value head `j / (heads / num_key_value_heads)`;
//! * `x = x + W_down · (silu(W_gate · rms₂(x)) ⊙ W_up · rms₂(x))` (SwiGLU; the gate is
//!   `intermediate.dense`, the up projection `intermediate.up`);
//! * a final RMSNorm after the last layer.
//!
//! Qwen2 ([`super::qwen2`]) adds biases to the query, key and value projections; Qwen3
//! ([`super::qwen3`]) an RMSNorm of each query and key head before the rotation and an
//! explicit `head_dim`. All three share this file's config reader, rotations and names;
//! [`LlamaLayout::kind`] says which it is. RoPE scaling of the `llama3` type (Llama 3.1/3.2)
//! is implemented; other scalings are refused by name.

use burn::tensor::{Device, Tensor, TensorData};
use serde_json::Value;
use stab_core::InputError;

use super::{self as names, Family, FamilyInfo, HfName, Layout, ModelFamily, NormPlacement};
use super::{Registered, Target};
use crate::config::{EncoderConfig, KeyError, count, flag, number};

pub const REGISTERED: Registered = Registered {
    info: FamilyInfo {
        model_type: "llama",
        name: "Llama",
        prefix: "model.",
        hub_ids: &["HuggingFaceTB/SmolLM2-135M", "meta-llama/Llama-3.2-1B"],
        pooler: "none: the last token by HF's rule (pooling = \"pooler\" or \"last\")",
        mlm: "the tied word embeddings or lm_head.weight (causal-LM re-training)",
        notes: "decoder; no biases (BitFit refused)",
        ignored: &["lm_head.weight", "score.weight"],
    },
    read: |c, v| read(c, v, LlamaKind::Llama),
};

/// Which member of the Llama layout a config is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LlamaKind {
    Llama,
    /// Llama's layout under Mistral's name (no sliding window).
    Mistral,
    /// Biases on the query, key and value projections.
    Qwen2,
    /// Per-head RMSNorm of queries and keys; `head_dim` defaults to 128.
    Qwen3,
}

/// A Llama-layout family as its config sets it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LlamaLayout {
    pub kind: LlamaKind,
    pub rope: Rope,
    /// `attention_dropout` (HF Llama has no other dropout).
    pub attention_dropout: f64,
}

/// Rotary position embedding: base θ and scaling.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rope {
    pub theta: f64,
    pub scaling: RopeScaling,
}

/// The RoPE scalings the port implements.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RopeScaling {
    None,
    /// Llama 3.1's: frequencies with wavelengths above `original / low` divided by
    /// `factor`, below `original / high` kept, and smoothly interpolated between.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: f64,
    },
}

impl Rope {
    /// The inverse frequencies θ^(−2k/d), k < d/2, in f32 as HF computes them, then scaled.
    pub fn inv_freq(&self, head_dim: usize) -> Vec<f32> {
        let base: Vec<f32> = (0..head_dim / 2)
            .map(|k| 1.0 / (self.theta as f32).powf((2 * k) as f32 / head_dim as f32))
            .collect();
        match self.scaling {
            RopeScaling::None => base,
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings: original,
            } => {
                let (factor, low, high, original) = (
                    factor as f32,
                    low_freq_factor as f32,
                    high_freq_factor as f32,
                    original as f32,
                );
                let (low_wavelen, high_wavelen) = (original / low, original / high);
                base.into_iter()
                    .map(|f| {
                        let wavelen = 2.0 * std::f32::consts::PI / f;
                        if wavelen > low_wavelen {
                            f / factor
                        } else if wavelen < high_wavelen {
                            f
                        } else {
                            let smooth = (original / wavelen - low) / (high - low);
                            (1.0 - smooth) * f / factor + smooth * f
                        }
                    })
                    .collect()
            }
        }
    }
}

/// cos and sin [B, 1, T, d] at each row's positions, for heads [B, n, T, d].
#[derive(Debug, Clone)]
pub struct RowRotary {
    cos: Tensor<4>,
    sin: Tensor<4>,
    /// The same angles' cosines and sines on the host, [B, T, d] row-major (the one-pass
    /// rotation of inference).
    host: (Vec<f32>, Vec<f32>),
}

impl RowRotary {
    /// The rotations of `positions` ([B·T], row-major) for `rope` and head width `d`.
    pub fn new(rope: &Rope, d: usize, positions: &[i64], b: usize, device: &Device) -> Self {
        let inv = rope.inv_freq(d);
        let t = positions.len() / b.max(1);
        let mut cos = Vec::with_capacity(positions.len() * d);
        let mut sin = Vec::with_capacity(positions.len() * d);
        for &p in positions {
            for _ in 0..2 {
                for f in &inv {
                    let angle = p as f32 * f;
                    cos.push(angle.cos());
                    sin.push(angle.sin());
                }
            }
        }
        let make =
            |v: &[f32]| Tensor::<4>::from_data(TensorData::new(v.to_vec(), [b, 1, t, d]), device);
        Self {
            cos: make(&cos),
            sin: make(&sin),
            host: (cos, sin),
        }
    }

    /// `rope(x)` for heads x [B, n, T, d].
    pub fn rotate(&self, x: Tensor<4>) -> Tensor<4> {
        if let Some(y) = self.rotate_inference(&x) {
            return y;
        }
        let [b, n, t, d] = x.dims();
        let x1 = x.clone().slice([0..b, 0..n, 0..t, 0..d / 2]);
        let x2 = x.clone().slice([0..b, 0..n, 0..t, d / 2..d]);
        let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
        x * self.cos.clone() + rotated * self.sin.clone()
    }
}

impl RowRotary {
    /// [`RowRotary::rotate`] in one pass on the host for inference (f32, no autodiff),
    /// with the same operations in the same order (x·cos, then + rotated·sin); `None`
    /// elsewhere.
    fn rotate_inference(&self, x: &Tensor<4>) -> Option<Tensor<4>> {
        let device = x.device();
        if x.dtype() != burn::tensor::DType::F32
            || !crate::placement::is_host(&device)
            || device.is_autodiff()
        {
            return None;
        }
        let [b, n, t, d] = x.dims();
        let v: Vec<f32> = x.to_data().convert::<f32>().try_into_vec::<f32>().ok()?;
        let (cos, sin) = &self.host;
        let mut out = vec![0f32; v.len()];
        let half = d / 2;
        use rayon::prelude::*;
        out.par_chunks_mut(t * d)
            .enumerate()
            .for_each(|(bh, block)| {
                let row0 = (bh / n) * t;
                for (ti, o) in block.chunks_mut(d).enumerate() {
                    let xr = &v[(bh * t + ti) * d..][..d];
                    let (c, s) = (&cos[(row0 + ti) * d..][..d], &sin[(row0 + ti) * d..][..d]);
                    for i in 0..d {
                        let rotated = if i < half {
                            -xr[i + half]
                        } else {
                            xr[i - half]
                        };
                        o[i] = xr[i] * c[i] + rotated * s[i];
                    }
                }
            });
        Some(Tensor::from_data(
            TensorData::new(out, [b, n, t, d]),
            &device,
        ))
    }
}

/// The keys of a Llama-layout config (`v`); errors name the key.
pub(crate) fn read(c: &EncoderConfig, v: &Value, kind: LlamaKind) -> Result<ModelFamily, KeyError> {
    for key in ["attention_bias", "mlp_bias"] {
        let default = false;
        if kind != LlamaKind::Qwen2 && flag(v, key, default)? {
            return Err((
                format!(
                    "`{key} = true` is not supported (the released checkpoints have no such biases)"
                ),
                key,
            ));
        }
    }
    if flag(v, "use_sliding_window", false)? {
        return Err((
            "sliding-window attention (`use_sliding_window = true`) is not supported".into(),
            "use_sliding_window",
        ));
    }
    if count(v, "pretraining_tp", 1)? != 1 {
        return Err((
            "`pretraining_tp` other than 1 is not supported".into(),
            "pretraining_tp",
        ));
    }
    let _ = c;
    Ok(ModelFamily::Llama(LlamaLayout {
        kind,
        rope: read_rope(v)?,
        attention_dropout: number(v, "attention_dropout", 0.0)?,
    }))
}

/// `rope_parameters` (transformers ≥ 5) or the older `rope_theta` and `rope_scaling`.
fn read_rope(v: &Value) -> Result<Rope, KeyError> {
    let params = v.get("rope_parameters").filter(|p| !p.is_null());
    let (scaling, key) = match params {
        Some(p) => (Some(p), "rope_parameters"),
        None => (
            v.get("rope_scaling").filter(|s| !s.is_null()),
            "rope_scaling",
        ),
    };
    let theta = match params.and_then(|p| p.get("rope_theta")) {
        Some(t) => t.as_f64().ok_or_else(|| {
            (
                "rope_parameters.rope_theta must be a number".to_string(),
                "rope_parameters",
            )
        })?,
        None => number(v, "rope_theta", 10_000.0)?,
    };
    if !(theta.is_finite() && theta > 1.0) {
        return Err((
            format!("rope_theta = {theta} must be a number above 1"),
            "rope_theta",
        ));
    }
    let kind = scaling
        .and_then(|s| s.get("rope_type").or_else(|| s.get("type")))
        .and_then(Value::as_str)
        .unwrap_or("default");
    let scaling = match kind {
        "default" => RopeScaling::None,
        "llama3" => {
            let s = scaling.expect("a rope_type was read from it");
            let get = |k: &str| {
                s.get(k)
                    .and_then(Value::as_f64)
                    .filter(|x| x.is_finite() && *x > 0.0)
                    .ok_or_else(|| {
                        (
                            format!("{key}.{k} must be a positive number for rope_type llama3"),
                            key,
                        )
                    })
            };
            let (factor, low, high) = (
                get("factor")?,
                get("low_freq_factor")?,
                get("high_freq_factor")?,
            );
            if high <= low {
                return Err((
                    format!("{key}: high_freq_factor must exceed low_freq_factor"),
                    key,
                ));
            }
            RopeScaling::Llama3 {
                factor,
                low_freq_factor: low,
                high_freq_factor: high,
                original_max_position_embeddings: get("original_max_position_embeddings")?,
            }
        }
        other => {
            return Err((
                format!(
                    "RoPE scaling `{other}` is not supported: stab implements the default rotations and Llama 3's"
                ),
                key,
            ));
        }
    };
    Ok(Rope { theta, scaling })
}

impl Family for LlamaLayout {
    fn info(&self) -> &'static FamilyInfo {
        match self.kind {
            LlamaKind::Llama => &REGISTERED.info,
            LlamaKind::Mistral => &super::mistral::REGISTERED.info,
            LlamaKind::Qwen2 => &super::qwen2::REGISTERED.info,
            LlamaKind::Qwen3 => &super::qwen3::REGISTERED.info,
        }
    }

    fn has_token_types(&self) -> bool {
        false
    }

    fn has_absolute_positions(&self) -> bool {
        false
    }

    fn adjust(&self, c: &mut EncoderConfig) {
        c.hidden_dropout_prob = 0.0;
        c.attention_probs_dropout_prob = self.attention_dropout;
        if self.kind == LlamaKind::Qwen3 && c.head_dim_key.is_none() {
            c.head_dim_key = Some(128);
        }
    }

    fn dropouts(&self, c: &EncoderConfig) -> Vec<(&'static str, f64)> {
        vec![("attention_dropout", c.attention_probs_dropout_prob)]
    }

    fn validate(&self, c: &EncoderConfig) -> Result<(), InputError> {
        if !c.head_dim().is_multiple_of(2) {
            return Err(InputError::new(format!(
                "head_dim {} is odd: RoPE rotates pairs of dimensions",
                c.head_dim()
            ))
            .key("head_dim")
            .hint("Llama and Qwen use head_dim 64 or 128"));
        }
        Ok(())
    }

    fn layout(&self) -> Layout {
        Layout {
            biases: false,
            qkv_biases: self.kind == LlamaKind::Qwen2,
            rms_norm: true,
            embedding_norm: false,
            causal: true,
            qk_norm: self.kind == LlamaKind::Qwen3,
            norm: NormPlacement::Pre,
            gated: true,
            split_gate: true,
            final_norm: true,
            grouped_query: true,
            ..Layout::BERT
        }
    }

    fn embedding_dropout(&self, _: &EncoderConfig) -> f64 {
        0.0
    }

    fn rope(&self) -> Option<Rope> {
        Some(self.rope)
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

/// Where a Llama-layout tensor goes (the `model.` prefix stripped); the rotary buffers of
/// old checkpoints are dropped.
fn stab_paths(name: &str) -> Vec<Target> {
    let base = names::strip_prefix(name);
    match base {
        "embed_tokens.weight" => return names::to("embeddings.word_embeddings.weight".into()),
        "norm.weight" => return names::to("encoder.final_norm.weight".into()),
        _ => {}
    }
    let Some(rest) = base.strip_prefix("layers.") else {
        return names::to(base.to_string());
    };
    let Some((i, tail)) = rest.split_once('.') else {
        return names::to(base.to_string());
    };
    if tail.ends_with("rotary_emb.inv_freq") {
        return Vec::new();
    }
    let layer = format!("encoder.layer.{i}");
    let (module, param) = tail.rsplit_once('.').unwrap_or((tail, ""));
    let path = match module {
        "self_attn.q_proj" => "attention.self_attn.query",
        "self_attn.k_proj" => "attention.self_attn.key",
        "self_attn.v_proj" => "attention.self_attn.value",
        "self_attn.o_proj" => "attention.output.dense",
        "self_attn.q_norm" => "attention.self_attn.q_norm",
        "self_attn.k_norm" => "attention.self_attn.k_norm",
        "input_layernorm" => "attention.output.layer_norm",
        "post_attention_layernorm" => "output.layer_norm",
        "mlp.down_proj" => "output.dense",
        "mlp.gate_proj" => "intermediate.dense",
        "mlp.up_proj" => "intermediate.up",
        _ => return names::to(base.to_string()),
    };
    names::to(format!("{layer}.{path}.{param}"))
}

/// A stab parameter (norm `gamma` already `weight`) under LlamaModel's names.
fn hf_name(name: &str) -> Option<(String, Option<(usize, usize)>)> {
    match name {
        "embeddings.word_embeddings.weight" => return Some(("embed_tokens.weight".into(), None)),
        "encoder.final_norm.weight" => return Some(("norm.weight".into(), None)),
        _ => {}
    }
    let rest = name.strip_prefix("encoder.layer.")?;
    let (i, tail) = rest.split_once('.')?;
    let (module, param) = tail.rsplit_once('.')?;
    let (hf, part) = match module {
        "attention.self_attn.query" => ("self_attn.q_proj", None),
        "attention.self_attn.key" => ("self_attn.k_proj", None),
        "attention.self_attn.value" => ("self_attn.v_proj", None),
        "attention.output.dense" => ("self_attn.o_proj", None),
        "attention.self_attn.q_norm" => ("self_attn.q_norm", None),
        "attention.self_attn.k_norm" => ("self_attn.k_norm", None),
        "attention.output.layer_norm" => ("input_layernorm", None),
        "output.layer_norm" => ("post_attention_layernorm", None),
        "output.dense" => ("mlp.down_proj", None),
        "intermediate.dense" => ("mlp.gate_proj", None),
        "intermediate.up" => ("mlp.up_proj", None),
        _ => return None,
    };
    Some((format!("layers.{i}.{hf}.{param}"), part))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Llama 3.2's scaling (factor 32, low 1, high 4, original 8192, θ 500000, d 64) at the
    /// three kinds of frequency, against the formula of transformers'
    /// `_compute_llama3_parameters` evaluated by hand in f64.
    #[test]
    fn llama3_scaling_divides_low_frequencies_and_keeps_high_ones() {
        let rope = Rope {
            theta: 500_000.0,
            scaling: RopeScaling::Llama3 {
                factor: 32.0,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_position_embeddings: 8192.0,
            },
        };
        let plain = Rope {
            scaling: RopeScaling::None,
            ..rope
        };
        let (scaled, base) = (rope.inv_freq(64), plain.inv_freq(64));
        // k = 0: wavelength 2π < 8192/4: kept.
        assert_eq!(scaled[0], base[0]);
        // k = 31: wavelength far above 8192: divided by 32.
        assert!((scaled[31] - base[31] / 32.0).abs() <= 1e-6 * base[31]);
        // A medium frequency: (1 − s)·f/32 + s·f with s = (8192/λ − 1)/(4 − 1).
        let k = (0..32)
            .find(|&k| {
                let w = 2.0 * std::f64::consts::PI / f64::from(base[k]);
                (2048.0..=8192.0).contains(&w)
            })
            .expect("a medium frequency");
        let f = f64::from(base[k]);
        let s = (8192.0 / (2.0 * std::f64::consts::PI / f) - 1.0) / 3.0;
        let want = (1.0 - s) * f / 32.0 + s * f;
        assert!(
            (f64::from(scaled[k]) - want).abs() <= 1e-5 * want,
            "{} vs {want}",
            scaled[k]
        );
    }

    #[test]
    fn names_map_both_ways() {
        let t = stab_paths("model.layers.1.mlp.up_proj.weight");
        assert_eq!(t[0].path, "encoder.layer.1.intermediate.up.weight");
        assert_eq!(
            stab_paths("model.layers.0.self_attn.k_norm.weight")[0].path,
            "encoder.layer.0.attention.self_attn.k_norm.weight"
        );
        assert!(stab_paths("model.layers.0.self_attn.rotary_emb.inv_freq").is_empty());
        assert_eq!(
            hf_name("encoder.layer.3.attention.output.layer_norm.weight"),
            Some(("layers.3.input_layernorm.weight".into(), None))
        );
    }
}
