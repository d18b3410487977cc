//! BERT (`model_type = "bert"`; Devlin et al. 2019): the shared encoder as it is —
//! absolute positions 0..T−1 and token types added to the word embeddings, post-norm
//! layers, `tanh(W·h₀ + b)` pooler, MLM head `cls.predictions`.
//!
//! Its names are the shared tree's: stab's module paths follow BertModel's state dict with
//! Rust-friendly names (`attention.self_attn`, `layer_norm`), so the other post-norm
//! families (RoBERTa, ELECTRA, DeBERTa) start from [`stab_path`] and [`bert_name`] and
//! change what they name differently.

use serde_json::Value;

use super::{self as names, HfName, Target};
use super::{Family, FamilyInfo, ModelFamily, Registered};
use crate::config::{EncoderConfig, KeyError};

/// BERT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bert;

pub const REGISTERED: Registered = Registered {
    info: FamilyInfo {
        model_type: "bert",
        name: "BERT",
        prefix: "bert.",
        hub_ids: &[
            "bert-base-uncased",
            "sentence-transformers/all-MiniLM-L6-v2",
        ],
        pooler: "tanh(W·h₀ + b), loaded when the checkpoint has it",
        mlm: "cls.predictions (drawn when absent)",
        notes: "every method",
        ignored: &[
            "embeddings.position_ids",
            "cls.seq_relationship.",
            "cls.predictions.decoder.",
        ],
    },
    read,
};

fn read(_: &EncoderConfig, _: &Value) -> Result<ModelFamily, KeyError> {
    Ok(ModelFamily::Bert)
}

impl Family for Bert {
    fn info(&self) -> &'static FamilyInfo {
        &REGISTERED.info
    }
}

/// A BERT-layout tensor name (task prefix stripped) as a stab module path.
pub fn stab_path(name: &str) -> String {
    let base = names::strip_prefix(name);
    let path = if let Some(rest) = base.strip_prefix("cls.predictions.transform.") {
        format!("mlm.{rest}")
    } else if base == "cls.predictions.bias" {
        "mlm.bias".to_string()
    } else {
        base.to_string()
    };
    path.replace(".attention.self.", ".attention.self_attn.")
        .replace("LayerNorm", "layer_norm")
}

/// [`Family::stab_paths`] of the BERT layout.
pub fn stab_paths(name: &str) -> Vec<Target> {
    names::to(stab_path(name))
}

/// A stab parameter name (LayerNorm's `gamma`/`beta` already `weight`/`bias`) under
/// BertModel's names.
pub fn bert_name(name: &str) -> String {
    name.replace(".self_attn.", ".self.")
        .replace("layer_norm", "LayerNorm")
}

/// [`Family::hf_name`] of the BERT layout.
pub fn hf_name(path: &str) -> Option<HfName> {
    let (name, transposed) = names::hf_parameter(path)?;
    Some(HfName {
        name: bert_name(&name),
        transposed,
        part: None,
        conv1d: false,
    })
}
