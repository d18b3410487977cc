//! The map between Hugging Face tensor names and stab's module paths, both ways:
//! [`stab_paths`] for loading a checkpoint, [`hf_name`] for saving one (`save_best`) under
//! the family's base-model names (what `AutoModel` reads). Each family states its own map
//! (`Family::stab_paths`, `Family::hf_name`, in `crate::families`); this file holds what
//! every family shares.
//!
//! stab's paths follow BERT's module tree with Rust-friendly names (`attention.self_attn`,
//! `layer_norm`); burn-store's `PyTorchToBurnAdapter` then transposes Linear weights and
//! maps LayerNorm `weight`/`bias` to `gamma`/`beta`.

use crate::families::{FAMILIES, ModelFamily};
pub use crate::families::{HfName, Target, hf_parameter, strip_prefix, to, to_each};

/// Where a source tensor goes: the module paths it fills (ModernBERT's `head` fills both
/// the pooler and the MLM head), or itself unchanged when it is unknown (it then shows as
/// unexpected in the load report). Tensors deliberately not loaded are [`ignored`].
pub fn stab_paths(family: ModelFamily, name: &str) -> Vec<Target> {
    family.spec().stab_paths(name)
}

/// Names deliberately not loaded (tied decoders, buffers, pre-training heads): what any
/// family lists as ignored.
pub fn ignored(name: &str) -> bool {
    let base = strip_prefix(name);
    FAMILIES
        .iter()
        .flat_map(|f| f.info.ignored)
        .any(|i| base.starts_with(i))
}

pub fn hf_name(family: ModelFamily, burn_path: &str) -> Option<HfName> {
    family.spec().hf_name(burn_path)
}

/// The layer index of a tensor named in any family's HF layout (`encoder.layer.N.`,
/// ModernBERT's and Llama's `layers.N.`, GPT-2's `h.N.`), after [`strip_prefix`].
pub fn layer_index(name: &str) -> Option<usize> {
    let base = strip_prefix(name);
    let rest = base
        .strip_prefix("encoder.layer.")
        .or_else(|| base.strip_prefix("layers."))
        .or_else(|| base.strip_prefix("h."))?;
    rest.split('.').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Activation, ModernBertLayout};

    fn modern() -> ModelFamily {
        ModelFamily::ModernBert(ModernBertLayout {
            global_every: 3,
            window_half: 64,
            global_theta: 160_000.0,
            local_theta: 10_000.0,
            embedding_dropout: 0.0,
            attention_dropout: 0.0,
            mlp_dropout: 0.0,
            mean_pooling: false,
            pooler_act: Activation::Gelu,
        })
    }

    #[test]
    fn bert_paths_map_to_bert_model_names() {
        let cases = [
            (
                "encoder.layer.3.attention.self_attn.query.weight",
                "encoder.layer.3.attention.self.query.weight",
                true,
            ),
            (
                "encoder.layer.0.attention.output.layer_norm.gamma",
                "encoder.layer.0.attention.output.LayerNorm.weight",
                false,
            ),
            (
                "embeddings.layer_norm.beta",
                "embeddings.LayerNorm.bias",
                false,
            ),
            (
                "embeddings.word_embeddings.weight",
                "embeddings.word_embeddings.weight",
                false,
            ),
            ("pooler.dense.weight", "pooler.dense.weight", true),
            ("pooler.dense.bias", "pooler.dense.bias", false),
        ];
        for (burn, hf, t) in cases {
            let got = hf_name(ModelFamily::Bert, burn).unwrap();
            assert_eq!((got.name.as_str(), got.transposed), (hf, t), "{burn}");
            // …and back.
            let back = stab_paths(ModelFamily::Bert, &format!("bert.{hf}"));
            let want = burn.replace(".gamma", ".weight").replace(".beta", ".bias");
            assert_eq!(back[0].path, want);
        }
        assert_eq!(hf_name(ModelFamily::Bert, "mlm.dense.weight"), None);
    }

    #[test]
    fn modernbert_fused_qkv_splits_and_joins() {
        let targets = stab_paths(modern(), "model.layers.2.attn.Wqkv.weight");
        assert_eq!(targets.len(), 3);
        assert_eq!(
            targets[1].path,
            "encoder.layer.2.attention.self_attn.key.weight"
        );
        assert_eq!(targets[1].part, Some((1, 3)));
        let back = hf_name(modern(), "encoder.layer.2.attention.self_attn.value.weight").unwrap();
        assert_eq!(
            (back.name.as_str(), back.part),
            ("layers.2.attn.Wqkv.weight", Some((2, 3)))
        );
        assert_eq!(
            hf_name(
                modern(),
                "encoder.layer.1.attention.output.layer_norm.gamma"
            )
            .unwrap()
            .name,
            "layers.1.attn_norm.weight"
        );
        assert_eq!(stab_paths(modern(), "head.norm.weight").len(), 2);
        assert_eq!(layer_index("model.layers.7.mlp.Wi.weight"), Some(7));
        assert_eq!(
            layer_index("deberta.encoder.layer.3.output.dense.weight"),
            Some(3)
        );
        assert!(ignored("decoder.weight") && ignored("deberta.embeddings.position_ids"));
    }
}
