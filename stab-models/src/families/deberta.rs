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

use crate::config::RelativeAttention;

/// The relative-position inputs of every layer's attention for one sequence length.
#[derive(Debug, Clone)]
pub struct Relative {
    /// `LN(rel_embeddings)` [2S, d] (shared by all layers; each applies its own dropout).
    pub table: Tensor<2>,
    /// idx(i, j) [1, 1, T, T] and its transpose.
    index: Tensor<4, Int>,
    index_t: Tensor<4, Int>,
    c2p: bool,
    p2c: bool,
    /// 1 + the number of position terms (the score divisor is √(terms·d)).
    pub terms: usize,
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
            c2p: r.c2p,
            p2c: r.p2c,
            terms: r.terms(),
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
        let [b, n, t, _] = q.dims();
        let mut s = q.clone().matmul(k.clone().swap_dims(2, 3));
        if self.c2p {
            let c2p = q.matmul(pk.swap_dims(2, 3)); // [B, n, T, 2S]
            s = s + c2p.gather(3, self.index.clone().expand([b, n, t, t]));
        }
        if self.p2c {
            let p2c = k.matmul(pq.swap_dims(2, 3)); // [B, n, T(keys), 2S]
            let g = p2c.gather(3, self.index_t.clone().expand([b, n, t, t])); // [j, i]
            s = s + g.swap_dims(2, 3);
        }
        s
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
