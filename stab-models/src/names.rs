//! The map between each family's Hugging Face tensor names and stab's module paths, both
//! ways: [`stab_paths`] for loading a checkpoint, [`hf_name`] for saving one (`save_best`)
//! under the family's base-model names (what `AutoModel` reads).
//!
//! stab's paths follow BERT's module tree with Rust-friendly names (`attention.self_attn`,
//! `layer_norm`); burn-store's `PyTorchToBurnAdapter` then transposes Linear weights and
//! maps LayerNorm `weight`/`bias` to `gamma`/`beta`.

use crate::config::ModelFamily;

/// One destination of a source tensor: a module path, and for a fused tensor the block of
/// rows it takes (`part` of `parts` equal row blocks: ModernBERT's `Wqkv`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub path: String,
    pub part: Option<(usize, usize)>,
}

fn to(path: String) -> Vec<Target> {
    vec![Target { path, part: None }]
}

/// The same whole tensor into each of `paths`.
fn to_each(paths: &[&str]) -> Vec<Target> {
    paths
        .iter()
        .map(|p| Target {
            path: p.to_string(),
            part: None,
        })
        .collect()
}

/// Where a source tensor goes: the module paths it fills (ModernBERT's `head` fills both
/// the pooler and the MLM head), none for tensors deliberately not loaded (the tied
/// decoder, buffers, pre-training heads), or itself unchanged when it is unknown (it then
/// shows as unexpected in the load report).
pub fn stab_paths(family: ModelFamily, name: &str) -> Vec<Target> {
    match family {
        ModelFamily::ModernBert(_) => modernbert(name),
        _ => bert_like(family, name),
    }
}

/// Names deliberately not loaded, for every family.
pub fn ignored(name: &str) -> bool {
    const IGNORED: &[&str] = &[
        "embeddings.position_ids",
        "cls.seq_relationship.",
        "cls.predictions.decoder.",
        "lm_head.decoder.",
        "generator_lm_head.weight",
        "mask_predictions.",
        "lm_predictions.lm_head.decoder.",
        "decoder.weight",
    ];
    let base = strip_prefix(name);
    IGNORED.iter().any(|i| base.starts_with(i))
}

/// A name without the task-model prefix (`bert.`, `roberta.`, `electra.`, `deberta.`, `model.`).
pub fn strip_prefix(name: &str) -> &str {
    for p in ["bert.", "roberta.", "electra.", "deberta.", "model."] {
        if let Some(rest) = name.strip_prefix(p) {
            return rest;
        }
    }
    name
}

fn bert_like(family: ModelFamily, name: &str) -> Vec<Target> {
    let base = strip_prefix(name);
    let mut path = if let Some(rest) = base.strip_prefix("cls.predictions.transform.") {
        format!("mlm.{rest}")
    } else if base == "cls.predictions.bias" || base == "generator_lm_head.bias" {
        "mlm.bias".to_string()
    } else if let Some(rest) = base
        .strip_prefix("lm_head.")
        .or_else(|| base.strip_prefix("lm_predictions.lm_head."))
        .or_else(|| base.strip_prefix("generator_predictions."))
    {
        format!("mlm.{rest}")
    } else if let Some(rest) = base.strip_prefix("embeddings_project.") {
        format!("embeddings.project.{rest}")
    } else if let Some(rest) = base.strip_prefix("discriminator_predictions.") {
        format!("discriminator.{rest}")
    } else {
        base.to_string()
    };
    path = path.replace(".attention.self.", ".attention.self_attn.");
    if matches!(family, ModelFamily::Deberta(_)) {
        for (from, into) in [
            ("self_attn.query_proj.", "self_attn.query."),
            ("self_attn.key_proj.", "self_attn.key."),
            ("self_attn.value_proj.", "self_attn.value."),
        ] {
            path = path.replace(from, into);
        }
    }
    to(path.replace("LayerNorm", "layer_norm"))
}

fn modernbert(name: &str) -> Vec<Target> {
    let base = strip_prefix(name);
    let simple = |p: &str| to(p.to_string());
    match base {
        "embeddings.tok_embeddings.weight" => return simple("embeddings.word_embeddings.weight"),
        "embeddings.norm.weight" => return simple("embeddings.layer_norm.weight"),
        "final_norm.weight" => return simple("encoder.final_norm.weight"),
        "decoder.bias" => return simple("mlm.bias"),
        "head.dense.weight" => return to_each(&["pooler.dense.weight", "mlm.dense.weight"]),
        "head.norm.weight" => return to_each(&["pooler.norm.weight", "mlm.layer_norm.weight"]),
        _ => {}
    }
    let Some((n, rest)) = base.strip_prefix("layers.").and_then(|r| r.split_once('.')) else {
        return simple(base);
    };
    let layer = format!("encoder.layer.{n}");
    match rest {
        "attn.Wqkv.weight" => ["query", "key", "value"]
            .iter()
            .enumerate()
            .map(|(i, m)| Target {
                path: format!("{layer}.attention.self_attn.{m}.weight"),
                part: Some((i, 3)),
            })
            .collect(),
        "attn.Wo.weight" => to(format!("{layer}.attention.output.dense.weight")),
        "attn_norm.weight" => to(format!("{layer}.attention.output.layer_norm.weight")),
        "mlp_norm.weight" => to(format!("{layer}.output.layer_norm.weight")),
        "mlp.Wi.weight" => to(format!("{layer}.intermediate.dense.weight")),
        "mlp.Wo.weight" => to(format!("{layer}.output.dense.weight")),
        _ => simple(base),
    }
}

/// A parameter's name in the family's base model (`BertModel`, `ElectraModel`,
/// `DebertaV2Model`, `ModernBertModel`; the pooler under the name the family's
/// sequence-classification model loads), with whether its values are transposed (burn keeps
/// Linear weights `[in, out]`) and, for a block of a fused tensor, which block. `None` for
/// what the base model does not have (the MLM and discriminator heads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HfName {
    pub name: String,
    pub transposed: bool,
    pub part: Option<(usize, usize)>,
}

pub fn hf_name(family: ModelFamily, burn_path: &str) -> Option<HfName> {
    if burn_path.starts_with("mlm.") || burn_path.starts_with("discriminator.") {
        return None;
    }
    let in_norm = burn_path.contains("layer_norm.") || burn_path.contains("norm.");
    let mut name = burn_path.to_string();
    if in_norm {
        if let Some(stem) = name.strip_suffix(".gamma") {
            name = format!("{stem}.weight");
        } else if let Some(stem) = name.strip_suffix(".beta") {
            name = format!("{stem}.bias");
        }
    }
    let linear_weight = name.ends_with(".weight")
        && !name.starts_with("embeddings.word_embeddings")
        && !name.starts_with("embeddings.position_embeddings")
        && !name.starts_with("embeddings.token_type_embeddings")
        && !name.starts_with("encoder.rel_embeddings")
        && !in_norm;
    let mut part = None;
    let name = match family {
        ModelFamily::ModernBert(_) => {
            let (n, p) = modernbert_name(&name)?;
            part = p;
            n
        }
        _ => {
            let mut n = name
                .replace(".self_attn.", ".self.")
                .replace("layer_norm", "LayerNorm");
            if let Some(rest) = n.strip_prefix("embeddings.project.") {
                n = format!("embeddings_project.{rest}");
            }
            if matches!(family, ModelFamily::Deberta(_)) {
                for m in ["query", "key", "value"] {
                    n = n.replace(&format!(".self.{m}."), &format!(".self.{m}_proj."));
                }
            }
            n
        }
    };
    Some(HfName {
        name,
        transposed: linear_weight,
        part,
    })
}

fn modernbert_name(path: &str) -> Option<(String, Option<(usize, usize)>)> {
    let fixed = match path {
        "embeddings.word_embeddings.weight" => Some("embeddings.tok_embeddings.weight"),
        "embeddings.layer_norm.weight" => Some("embeddings.norm.weight"),
        "encoder.final_norm.weight" => Some("final_norm.weight"),
        "pooler.dense.weight" => Some("head.dense.weight"),
        "pooler.norm.weight" => Some("head.norm.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some((f.to_string(), None));
    }
    let (n, rest) = path.strip_prefix("encoder.layer.")?.split_once('.')?;
    let (hf, part) = match rest {
        "attention.self_attn.query.weight" => ("attn.Wqkv.weight", Some((0, 3))),
        "attention.self_attn.key.weight" => ("attn.Wqkv.weight", Some((1, 3))),
        "attention.self_attn.value.weight" => ("attn.Wqkv.weight", Some((2, 3))),
        "attention.output.dense.weight" => ("attn.Wo.weight", None),
        "attention.output.layer_norm.weight" => ("attn_norm.weight", None),
        "output.layer_norm.weight" => ("mlp_norm.weight", None),
        "intermediate.dense.weight" => ("mlp.Wi.weight", None),
        "output.dense.weight" => ("mlp.Wo.weight", None),
        _ => return Some((format!("layers.{n}.{rest}"), None)),
    };
    Some((format!("layers.{n}.{hf}"), part))
}

/// The layer index of a tensor named in any family's HF layout (`encoder.layer.N.` or
/// ModernBERT's `layers.N.`), after [`strip_prefix`].
pub fn layer_index(name: &str) -> Option<usize> {
    let base = strip_prefix(name);
    let rest = base
        .strip_prefix("encoder.layer.")
        .or_else(|| base.strip_prefix("layers."))?;
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
