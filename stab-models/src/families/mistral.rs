//! Mistral (`model_type = "mistral"`; Mistral-7B v0.2 and v0.3, and the configs that copy
//! them): Llama's layout ([`super::llama`]) under another name. Mistral-7B v0.1 attends
//! within a sliding window (`sliding_window = 4096`); that is refused by name, and
//! `sliding_window = null` (v0.2 onwards) loads as Llama.

use super::llama::{LlamaKind, read};
use super::{FamilyInfo, Registered};
use crate::config::count;

pub const REGISTERED: Registered = Registered {
    info: FamilyInfo {
        model_type: "mistral",
        name: "Mistral",
        prefix: "model.",
        hub_ids: &["mistralai/Mistral-7B-v0.3"],
        pooler: "none: the last token by HF's rule (pooling = \"pooler\" or \"last\")",
        mlm: "the tied word embeddings or lm_head.weight (causal-LM re-training)",
        notes: "decoder; Llama's layout; sliding_window must be null",
        ignored: &["lm_head.weight", "score.weight"],
    },
    read: |c, v| {
        if v.get("sliding_window").is_some_and(|w| !w.is_null()) {
            let window = count(v, "sliding_window", 0)?;
            return Err((
                format!(
                    "sliding-window attention (`sliding_window = {window}`) is not supported; the port reads Mistral configs with `sliding_window = null` (v0.2 onwards)"
                ),
                "sliding_window",
            ));
        }
        read(c, v, LlamaKind::Mistral)
    },
};
