//! DeBERTa-v2/v3 (`model_type = "deberta-v2"`; He et al., ICLR 2021 §3.1, and DeBERTaV3,
//! ICLR 2023): disentangled attention over log-bucketed relative positions.
//!
//! For query i and key j, with δ = bucket(i − j) and idx(i, j) = clamp(δ + S, 0, 2S − 1)
//! (S = `position_buckets`, the table's half size), the score is
//!
//! ```text
//! s(i, j) = (qᵢ·kⱼ + qᵢ·Pk[idx(i, j)] + kⱼ·Pq[idx(i, j)]) / √(3·d)
//! ```
//!
//! with `R = LN(rel_embeddings)` and, because `share_att_key`, `Pq = query_proj(R)`,
//! `Pk = key_proj(R)` (biases included). The p2c term uses the same index as c2p: HF gathers
//! `kₐ·Pq[clamp(−bucket(a − b) + S)]` and transposes, and the bucket function is odd.
//!
//! bucket(δ) = δ for |δ| ≤ mid = S/2, else
//! sign(δ)·(⌈ln(|δ|/mid) / ln((M − 1)/mid)·(mid − 1)⌉ + mid), with
//! M = `max_relative_positions`, evaluated in f32 as HF does. Without buckets (v2 configs
//! with `position_buckets` ≤ 0) δ = i − j and S = M.
//!
//! HF names: `deberta.embeddings.{word_embeddings, LayerNorm}`, `deberta.encoder.rel_embeddings`,
//! `deberta.encoder.LayerNorm` (the table's norm), layers as BERT's with
//! `attention.self.{query,key,value}_proj`, MLM head `lm_predictions.lm_head.{dense, LayerNorm, bias}`.

use burn::tensor::{Device, Int, Tensor, TensorData};

use serde_json::Value;

use stab_core::InputError;

use super::{Family, FamilyInfo, Layout, ModelFamily, PoolerSpec, Registered};
use super::{HfName, Positions, Target};
use crate::config::{Activation, EncoderConfig, KeyError, flag, number, text};

pub const REGISTERED: Registered = Registered {
    info: FamilyInfo {
        model_type: "deberta-v2",
        name: "DeBERTa-v2/v3",
        prefix: "deberta.",
        hub_ids: &["microsoft/deberta-v3-base", "microsoft/deberta-v3-large"],
        pooler: "pooler_hidden_act(W·h₀ + b), drawn (HF ContextPooler)",
        mlm: "lm_predictions.lm_head (enhanced-decoder names, legacy = false)",
        notes: "every method; needs tokenizer.json (convert spm.model once with transformers)",
        ignored: &["mask_predictions.", "lm_predictions.lm_head.decoder."],
    },
    read,
};

fn read(c: &EncoderConfig, v: &Value) -> Result<ModelFamily, KeyError> {
    read_config(c, v).map(ModelFamily::Deberta)
}

impl Family for RelativeAttention {
    fn info(&self) -> &'static FamilyInfo {
        &REGISTERED.info
    }

    fn has_token_types(&self) -> bool {
        false
    }

    fn has_absolute_positions(&self) -> bool {
        false
    }

    /// The relative table and its norm.
    fn extra_parameters(&self, c: &EncoderConfig) -> u128 {
        let h = c.hidden_size as u128;
        2 * self.span() as u128 * h + 2 * h
    }

    fn validate(&self, _: &EncoderConfig) -> Result<(), InputError> {
        if self.span() == 0 || self.span() > stab_core::limits::POSITIONS.max as usize {
            return Err(InputError::new(format!(
                "the relative position table would have {} rows",
                2 * self.span()
            ))
            .key("position_buckets")
            .hint("DeBERTa-v3 uses position_buckets = 256"));
        }
        Ok(())
    }

    fn layout(&self) -> Layout {
        Layout {
            zero_padding: true,
            position_dropout: true,
            ..Layout::BERT
        }
    }

    fn pooler(&self) -> PoolerSpec {
        PoolerSpec::of(self.pooler_act)
    }

    fn relative_table(&self) -> Option<(usize, bool)> {
        Some((2 * self.span(), self.norm_table))
    }

    /// `LN(rel_embeddings)` and the bucket indices for length `t`.
    fn positions(
        &self,
        table: Option<Tensor<2>>,
        _: &EncoderConfig,
        t: usize,
        device: &Device,
    ) -> Positions {
        let table = table.expect("DeBERTa has a relative table");
        Positions::Relative(Box::new(Relative::new(self, table, t, device)))
    }

    /// BERT's names with `{query,key,value}_proj` and the MLM head under `lm_predictions`.
    fn stab_paths(&self, name: &str) -> Vec<Target> {
        let base = super::strip_prefix(name);
        let mut path = match base.strip_prefix("lm_predictions.lm_head.") {
            Some(rest) => format!("mlm.{rest}").replace("LayerNorm", "layer_norm"),
            None => super::bert::stab_path(name),
        };
        for (from, into) in [
            ("self_attn.query_proj.", "self_attn.query."),
            ("self_attn.key_proj.", "self_attn.key."),
            ("self_attn.value_proj.", "self_attn.value."),
        ] {
            path = path.replace(from, into);
        }
        super::to(path)
    }

    fn hf_name(&self, path: &str) -> Option<HfName> {
        let mut hf = super::bert::hf_name(path)?;
        for m in ["query", "key", "value"] {
            hf.name = hf
                .name
                .replace(&format!(".self.{m}."), &format!(".self.{m}_proj."));
        }
        Some(hf)
    }
}

/// DeBERTa's relative attention (He et al. 2021, §3.1; v3's log buckets).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RelativeAttention {
    /// `position_buckets` (v3: 256); `None` = plain clipped distances (v2 without buckets).
    pub buckets: Option<usize>,
    /// `max_relative_positions` (−1 → `max_position_embeddings`).
    pub max_relative: usize,
    /// Content→position (`c2p`) and position→content (`p2c`) terms.
    pub c2p: bool,
    pub p2c: bool,
    /// `norm_rel_ebd` contains `layer_norm`: the relative table passes `encoder.LayerNorm`.
    pub norm_table: bool,
    /// The pooler's activation (`pooler_hidden_act`, HF's `ContextPooler`).
    pub pooler_act: Activation,
}

impl RelativeAttention {
    /// Half the relative table's rows (HF `pos_ebd_size`): the buckets, or the maximum distance.
    pub fn span(&self) -> usize {
        self.buckets.unwrap_or(self.max_relative)
    }
    /// How many score terms the attention sums (content plus each position term): the
    /// scores are divided by √(terms · head_dim).
    pub fn terms(&self) -> usize {
        1 + self.c2p as usize + self.p2c as usize
    }
}

/// The DeBERTa keys of `config.json` (`v`); errors name the key.
pub fn read_config(c: &EncoderConfig, v: &Value) -> Result<RelativeAttention, KeyError> {
    let need =
        |ok: bool, key: &'static str, what: String| if ok { Ok(()) } else { Err((what, key)) };
    need(
        flag(v, "relative_attention", false)?,
        "relative_attention",
        "DeBERTa without relative attention (`relative_attention = false`) is not supported".into(),
    )?;
    need(flag(v, "share_att_key", false)?,
        "share_att_key", "DeBERTa with separate position projections (`share_att_key = false`) is not supported; DeBERTa-v3 shares them".into())?;
    need(!flag(v, "position_biased_input", true)?,
        "position_biased_input", "DeBERTa with absolute position embeddings (`position_biased_input = true`) is not supported; DeBERTa-v3 has none".into())?;
    let conv = number(v, "conv_kernel_size", 0.0)?;
    need(
        conv == 0.0,
        "conv_kernel_size",
        "DeBERTa-v2's convolution layer (`conv_kernel_size`) is not supported".into(),
    )?;
    let emb = number(v, "embedding_size", c.hidden_size as f64)?;
    need(
        emb as usize == c.hidden_size,
        "embedding_size",
        "DeBERTa with `embedding_size` ≠ `hidden_size` is not supported".into(),
    )?;
    let types: Vec<String> = match v.get("pos_att_type") {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
        Some(Value::String(s)) => s.split('|').map(|x| x.trim().to_string()).collect(),
        _ => vec![],
    };
    if let Some(bad) = types.iter().find(|t| !matches!(t.as_str(), "c2p" | "p2c")) {
        return Err((
            format!("unsupported `pos_att_type` entry `{bad}` (supported: c2p, p2c)"),
            "pos_att_type",
        ));
    }
    let max_rel = number(v, "max_relative_positions", -1.0)?;
    let max_relative = if max_rel < 1.0 {
        c.max_position_embeddings
    } else {
        max_rel as usize
    };
    let buckets = number(v, "position_buckets", -1.0)?;
    let pooler = text(v, "pooler_hidden_act", "gelu")?;
    Ok(RelativeAttention {
        buckets: (buckets > 0.0).then_some(buckets as usize),
        max_relative,
        c2p: types.iter().any(|t| t == "c2p"),
        p2c: types.iter().any(|t| t == "p2c"),
        norm_table: text(v, "norm_rel_ebd", "none")?.contains("layer_norm"),
        pooler_act: Activation::parse(pooler).map_err(|m| (m.reason, "pooler_hidden_act"))?,
    })
}

/// The relative-position inputs of every layer's attention for one sequence length.
#[derive(Debug, Clone)]
pub struct Relative {
    /// `LN(rel_embeddings)` [2S, d] (shared by all layers; each applies its own dropout).
    pub table: Tensor<2>,
    /// idx(i, j) [1, 1, T, T] and its transpose.
    index: Tensor<4, Int>,
    index_t: Tensor<4, Int>,
    pub attention: RelativeAttention,
}

/// HF's `make_log_bucket_position` for one distance, in f32 like HF.
pub fn log_bucket(delta: i64, bucket_size: usize, max_position: usize) -> i64 {
    let mid = (bucket_size / 2) as i64;
    if delta.abs() <= mid {
        return delta;
    }
    let abs = delta.abs() as f32;
    let mid_f = mid as f32;
    let ratio = (abs / mid_f).ln() / ((max_position as f32 - 1.0) / mid_f).ln();
    let log_pos = (ratio * (mid_f - 1.0)).ceil() as i64 + mid;
    log_pos * delta.signum()
}

/// The bucketed relative position of query i and key j for a sequence of `t` tokens
/// (row-major [T, T]).
pub fn relative_positions(r: &RelativeAttention, t: usize) -> Vec<i64> {
    let mut out = Vec::with_capacity(t * t);
    for i in 0..t as i64 {
        for j in 0..t as i64 {
            out.push(match r.buckets {
                Some(b) => log_bucket(i - j, b, r.max_relative),
                None => i - j,
            });
        }
    }
    out
}

impl Relative {
    pub fn new(r: &RelativeAttention, table: Tensor<2>, t: usize, device: &Device) -> Self {
        let span = r.span() as i64;
        let buckets = relative_positions(r, t);
        let idx: Vec<i64> = buckets
            .iter()
            .map(|&d| (d + span).clamp(0, 2 * span - 1))
            .collect();
        let mut idx_t = vec![0i64; t * t];
        for i in 0..t {
            for j in 0..t {
                idx_t[j * t + i] = idx[i * t + j];
            }
        }
        let ints = |v: Vec<i64>| {
            Tensor::<2, Int>::from_data(TensorData::new(v, [t, t]), device).reshape([1, 1, t, t])
        };
        Self {
            table,
            index: ints(idx),
            index_t: ints(idx_t),
            attention: *r,
        }
    }

    /// A projected table [1, 2S, H] as heads [1, n, 2S, d].
    pub fn split_heads(&self, p: Tensor<3>, heads: usize) -> Tensor<4> {
        let [_, rows, h] = p.dims();
        p.reshape([1, rows, heads, h / heads]).swap_dims(1, 2)
    }

    /// The unscaled disentangled scores [B, n, T, T]: q·kᵀ plus c2p and p2c, from q, k
    /// [B, n, T, d] and the projected tables pq, pk [1, n, 2S, d].
    pub fn scores(&self, q: Tensor<4>, k: Tensor<4>, pq: Tensor<4>, pk: Tensor<4>) -> Tensor<4> {
        let s = q.clone().matmul(k.clone().swap_dims(2, 3));
        match self.bias(q, k, pq, pk) {
            Some(bias) => s + bias,
            None => s,
        }
    }

    /// The relative terms of the raw scores, c2p + p2c (those `pos_att_type` names),
    /// `[B, n, T, T]`; `None` when it names neither. The scores are QKᵀ plus this.
    pub fn bias(
        &self,
        q: Tensor<4>,
        k: Tensor<4>,
        pq: Tensor<4>,
        pk: Tensor<4>,
    ) -> Option<Tensor<4>> {
        let [b, n, t, _] = q.dims();
        let c2p = self.attention.c2p.then(|| {
            let c2p = q.matmul(pk.swap_dims(2, 3)); // [B, n, T, 2S]
            c2p.gather(3, self.index.clone().expand([b, n, t, t]))
        });
        let p2c = self.attention.p2c.then(|| {
            let p2c = k.matmul(pq.swap_dims(2, 3)); // [B, n, T(keys), 2S]
            let g = p2c.gather(3, self.index_t.clone().expand([b, n, t, t])); // [j, i]
            g.swap_dims(2, 3)
        });
        match (c2p, p2c) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_exact_near_and_logarithmic_far() {
        // position_buckets 16, max 64 (the tiny fixture): exact up to 8, then log steps.
        for d in -8..=8 {
            assert_eq!(log_bucket(d, 16, 64), d);
        }
        assert_eq!(log_bucket(9, 16, 64), 9);
        assert_eq!(log_bucket(-47, 16, 64), -log_bucket(47, 16, 64));
        assert!(log_bucket(63, 16, 64) <= 15);
        // deberta-v3-base: 256 buckets over 512 positions.
        assert_eq!(log_bucket(128, 256, 512), 128);
        assert!(log_bucket(511, 256, 512) <= 255);
    }
}
