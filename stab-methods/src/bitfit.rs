//! BitFit (Ben Zaken, Ravfogel & Goldberg 2022, "BitFit: Simple Parameter-efficient
//! Fine-tuning for Transformer-based Masked Language-models"; docs/methods.md §11.2): only
//! the bias terms of the encoder — every Linear's bias (query, key, value, the attention
//! output, both FFN layers, the pooler) and every LayerNorm's β — and the task head train;
//! every other weight stays at its pre-trained value.

use stab_core::Refusal;
use stab_core::params::NoParams;

use stab_train::{Method, MethodPlugin};

/// Bias terms and the head.
pub struct BiasTermsOnly;

/// Whether a [`TaskModel`](stab_train::TaskModel) path is a bias term or in the head.
pub fn is_bias_or_head(path: &str) -> bool {
    path.starts_with("head.") || path.ends_with(".bias") || path.ends_with(".beta")
}

impl Method for BiasTermsOnly {
    fn capabilities(&self) -> stab_train::Capabilities {
        stab_train::Capabilities {
            chooses_trainable: true,
            ..Default::default()
        }
    }

    fn check_model(&self, config: &stab_models::EncoderConfig) -> Result<(), Refusal> {
        let layout = config.family.spec().layout();
        if layout.biases || layout.qkv_biases {
            return Ok(());
        }
        Err(format!(
            "BitFit trains the encoder's bias terms, and {} has none (no Linear or LayerNorm biases): it would be head tuning; use mode = \"head\" or another method",
            config.family.name()
        ).into())
    }

    fn trains(&self, path: &str) -> bool {
        is_bias_or_head(path)
    }
}

impl MethodPlugin for BiasTermsOnly {
    const NAME: &'static str = "bitfit";
    const SUMMARY: &'static str =
        "BitFit (Ben Zaken et al. 2022): only the encoder's bias terms and the task head train";
    type Params = NoParams;

    fn from_params(_: NoParams) -> Result<Self, Refusal> {
        Ok(BiasTermsOnly)
    }
}

stab_train::register_method!(BiasTermsOnly);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn biases_layer_norm_shifts_and_the_head_train() {
        for p in [
            "encoder.encoder.layer.0.attention.self_attn.query.bias",
            "encoder.encoder.layer.3.output.layer_norm.beta",
            "encoder.embeddings.layer_norm.beta",
            "encoder.pooler.dense.bias",
            "head.Classification.out.weight",
        ] {
            assert!(is_bias_or_head(p), "{p}");
        }
        for p in [
            "encoder.encoder.layer.0.attention.self_attn.query.weight",
            "encoder.encoder.layer.3.output.layer_norm.gamma",
            "encoder.embeddings.word_embeddings.weight",
        ] {
            assert!(!is_bias_or_head(p), "{p}");
        }
    }
}
