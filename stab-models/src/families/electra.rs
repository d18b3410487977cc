//! ELECTRA (`model_type = "electra"`; Clark et al., ICLR 2020), the discriminator as an
//! encoder: BERT's layers over embeddings `embedding_size` wide. When `embedding_size` ≠
//! `hidden_size` (electra-small), `embeddings_project` (a Linear with bias, no LayerNorm
//! after it) maps the embedding output, after its dropout, to the hidden size:
//!
//! ```text
//! x₀ = W_p · drop(LN_E(word[ids] + pos[p] + type[τ])) + b_p
//! ```
//!
//! HF names: `electra.embeddings.*` (BERT's), `electra.embeddings_project`,
//! `electra.encoder.layer.N.*` (BERT's), and the replaced-token head
//! `discriminator_predictions.{dense, dense_prediction}`:
//! `logit = dense_prediction(gelu(dense(h)))` per token. A discriminator checkpoint has no
//! MLM head; SURT draws one of the generator's shape (`hidden → embedding_size`, LayerNorm,
//! decoder tied to the word embeddings).

use serde_json::Value;

use super::{self as names, HfName, Target};
use super::{Family, FamilyInfo, ModelFamily, Registered};
use crate::config::{EncoderConfig, KeyError, count};

/// ELECTRA, with the width of its embedding tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Electra {
    /// `embedding_size` (the hidden size when absent).
    pub embedding_size: usize,
}

pub const REGISTERED: Registered = Registered {
    info: FamilyInfo {
        model_type: "electra",
        name: "ELECTRA",
        prefix: "electra.",
        hub_ids: &[
            "google/electra-base-discriminator",
            "google/electra-large-discriminator",
        ],
        pooler: "gelu(W·h₀ + b), drawn (ElectraClassificationHead's dense layer)",
        mlm: "generator-shaped head (hidden → embedding_size), drawn: a discriminator has none",
        notes: "every method; MixOut also mixes embeddings_project",
        ignored: &["generator_lm_head.weight"],
    },
    read,
};

fn read(c: &EncoderConfig, v: &Value) -> Result<ModelFamily, KeyError> {
    Ok(ModelFamily::Electra(Electra {
        embedding_size: count(v, "embedding_size", c.hidden_size)?,
    }))
}

impl Family for Electra {
    fn info(&self) -> &'static FamilyInfo {
        &REGISTERED.info
    }

    fn embedding_size(&self, _: &EncoderConfig) -> usize {
        self.embedding_size
    }

    fn validate(&self, _: &EncoderConfig) -> Result<(), stab_core::InputError> {
        stab_core::limits::HIDDEN_SIZE.check_usize("embedding_size", self.embedding_size)
    }

    fn pooler(&self) -> super::PoolerSpec {
        super::PoolerSpec::of(crate::config::Activation::Gelu)
    }

    /// BERT's names, plus the projection, the generator-shaped MLM head and the
    /// discriminator head.
    fn stab_paths(&self, name: &str) -> Vec<Target> {
        let base = names::strip_prefix(name);
        let path = if base == "generator_lm_head.bias" {
            "mlm.bias".to_string()
        } else if let Some(rest) = base.strip_prefix("generator_predictions.") {
            format!("mlm.{rest}")
        } else if let Some(rest) = base.strip_prefix("embeddings_project.") {
            format!("embeddings.project.{rest}")
        } else if let Some(rest) = base.strip_prefix("discriminator_predictions.") {
            format!("discriminator.{rest}")
        } else {
            return super::bert::stab_paths(name);
        };
        names::to(path.replace("LayerNorm", "layer_norm"))
    }

    fn hf_name(&self, path: &str) -> Option<HfName> {
        let mut hf = super::bert::hf_name(path)?;
        if let Some(rest) = hf.name.strip_prefix("embeddings.project.") {
            hf.name = format!("embeddings_project.{rest}");
        }
        Some(hf)
    }
}
