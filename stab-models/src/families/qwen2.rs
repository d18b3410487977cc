//! Qwen2 (`model_type = "qwen2"`; Qwen2 and Qwen2.5): Llama's layout
//! ([`super::llama`]) with biases on the query, key and value projections.

use super::llama::{LlamaKind, read};
use super::{FamilyInfo, Registered};

pub const REGISTERED: Registered = Registered {
    info: FamilyInfo {
        model_type: "qwen2",
        name: "Qwen2",
        prefix: "model.",
        hub_ids: &["Qwen/Qwen2.5-0.5B"],
        pooler: "none: the last token by HF's rule (pooling = \"pooler\" or \"last\")",
        mlm: "the tied word embeddings or lm_head.weight (causal-LM re-training)",
        notes: "decoder; biases on q/k/v only",
        ignored: &["lm_head.weight", "score.weight"],
    },
    read: |c, v| read(c, v, LlamaKind::Qwen2),
};
