//! RoBERTa (`model_type = "roberta"`; Liu et al. 2019): BERT's layers with positions
//! counted after the pad id — `p = pad + cumsum(id ≠ pad)` on real tokens, `pad` on padding
//! — so the position table fits `pad_id + 1` fewer tokens; one token type; pad id 1 unless
//! the config names one; MLM head `lm_head`; no pooler weights in the released checkpoints.

use serde_json::Value;

use super::{self as names, Target};
use super::{Family, FamilyInfo, ModelFamily, Registered};
use crate::config::{EncoderConfig, KeyError};

/// RoBERTa.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roberta;

pub const REGISTERED: Registered = Registered {
    info: FamilyInfo {
        model_type: "roberta",
        name: "RoBERTa",
        prefix: "roberta.",
        hub_ids: &["FacebookAI/roberta-base", "FacebookAI/roberta-large"],
        pooler: "tanh(W·h₀ + b), drawn (no pooler weights)",
        mlm: "lm_head",
        notes: "every method",
        ignored: &["lm_head.decoder."],
    },
    read,
};

fn read(_: &EncoderConfig, _: &Value) -> Result<ModelFamily, KeyError> {
    Ok(ModelFamily::Roberta)
}

impl Family for Roberta {
    fn info(&self) -> &'static FamilyInfo {
        &REGISTERED.info
    }

    fn default_pad_id(&self) -> usize {
        1
    }

    fn max_tokens(&self, c: &EncoderConfig) -> usize {
        c.max_position_embeddings.saturating_sub(c.pad_id() + 1)
    }

    fn position_ids(&self, ids: &[i64], _mask: &[i64], pad: i64, out: &mut [i64]) {
        let mut count = 0;
        for (o, &id) in out.iter_mut().zip(ids) {
            *o = if id != pad {
                count += 1;
                pad + count
            } else {
                pad
            };
        }
    }

    /// BERT's names, with the MLM head under `lm_head`.
    fn stab_paths(&self, name: &str) -> Vec<Target> {
        match names::strip_prefix(name).strip_prefix("lm_head.") {
            Some(rest) => names::to(format!("mlm.{rest}").replace("LayerNorm", "layer_norm")),
            None => super::bert::stab_paths(name),
        }
    }
}
