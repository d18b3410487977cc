//! Qwen3 (`model_type = "qwen3"`): Llama's layout ([`super::llama`]) with an RMSNorm of
//! every query and key head (`q_norm`, `k_norm`, weights of width `head_dim`) before the
//! rotation, and `head_dim` read from the config (its default is 128, not
//! `hidden_size / num_attention_heads`).

use super::llama::{LlamaKind, read};
use super::{FamilyInfo, Registered};

pub const REGISTERED: Registered = Registered {
    info: FamilyInfo {
        model_type: "qwen3",
        name: "Qwen3",
        prefix: "model.",
        hub_ids: &["Qwen/Qwen3-0.6B-Base"],
        pooler: "none: the last token by HF's rule (pooling = \"pooler\" or \"last\")",
        mlm: "the tied word embeddings or lm_head.weight (causal-LM re-training)",
        notes: "decoder; per-head q/k RMSNorm; no biases (BitFit refused)",
        ignored: &["lm_head.weight", "score.weight"],
    },
    read: |c, v| read(c, v, LlamaKind::Qwen3),
};
