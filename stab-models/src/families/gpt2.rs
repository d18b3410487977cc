//! GPT-2 (`model_type = "gpt2"`; Radford et al. 2019) as a classifier: the shared layer
//! stack made a decoder. Word embeddings plus learned absolute positions (positions count
//! the real tokens, so left and right padding agree), then per layer, with LayerNorm:
//!
//! * `x = x + W_proj · attn(LN₁(x))`, attention causal over the real tokens, `QKᵀ/√d`;
//! * `x = x + W_proj' · gelu_new(W_fc · LN₂(x))`;
//! * a final LayerNorm `ln_f`.
//!
//! Its weights are `Conv1D`s, stored [in, out] (a Linear's transpose): `c_attn` holds the
//! query, key and value projections side by side along the output.

use serde_json::Value;

use super::{self as names, Family, FamilyInfo, HfName, Layout, ModelFamily, NormPlacement};
use super::{Registered, Target};
use crate::config::{EncoderConfig, KeyError, flag, number};

pub const REGISTERED: Registered = Registered {
    info: FamilyInfo {
        model_type: "gpt2",
        name: "GPT-2",
        prefix: "transformer.",
        hub_ids: &["openai-community/gpt2", "distilbert/distilgpt2"],
        pooler: "none: the last token by HF's rule (pooling = \"pooler\" or \"last\")",
        mlm: "the tied word embeddings or lm_head.weight (causal-LM re-training)",
        notes: "decoder; Conv1D weights",
        ignored: &["lm_head.weight", "score.weight"],
    },
    read,
};

/// GPT-2 as its config sets it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gpt2 {
    /// `embd_pdrop`: dropout on the embedding sum.
    pub embedding_dropout: f64,
}

fn read(c: &EncoderConfig, v: &Value) -> Result<ModelFamily, KeyError> {
    for (key, want) in [
        ("scale_attn_weights", true),
        ("scale_attn_by_inverse_layer_idx", false),
        ("reorder_and_upcast_attn", false),
        ("add_cross_attention", false),
    ] {
        if flag(v, key, want)? != want {
            return Err((
                format!("GPT-2 with `{key} = {}` is not supported", !want),
                key,
            ));
        }
    }
    let _ = c;
    Ok(ModelFamily::Gpt2(Gpt2 {
        embedding_dropout: number(v, "embd_pdrop", 0.1)?,
    }))
}

impl Family for Gpt2 {
    fn info(&self) -> &'static FamilyInfo {
        &REGISTERED.info
    }

    fn has_token_types(&self) -> bool {
        false
    }

    /// `n_inner = null` means 4 × hidden.
    fn adjust(&self, c: &mut EncoderConfig) {
        if c.intermediate_size == 0 {
            c.intermediate_size = 4 * c.hidden_size;
        }
    }

    fn dropouts(&self, c: &EncoderConfig) -> Vec<(&'static str, f64)> {
        vec![
            ("resid_pdrop", c.hidden_dropout_prob),
            ("attn_pdrop", c.attention_probs_dropout_prob),
            ("embd_pdrop", self.embedding_dropout),
        ]
    }

    fn layout(&self) -> Layout {
        Layout {
            embedding_norm: false,
            causal: true,
            norm: NormPlacement::Pre,
            final_norm: true,
            ..Layout::BERT
        }
    }

    fn embedding_dropout(&self, _: &EncoderConfig) -> f64 {
        self.embedding_dropout
    }

    fn stab_paths(&self, name: &str) -> Vec<Target> {
        stab_paths(name)
    }

    fn hf_name(&self, path: &str) -> Option<HfName> {
        let (name, _) = names::hf_parameter(path)?;
        hf_name(&name)
    }
}

/// Where a GPT-2 tensor goes (the `transformer.` prefix stripped): `c_attn` into the
/// query, key and value (row blocks of its transpose, the bias's thirds); the attention's
/// mask buffers (`attn.bias`, `attn.masked_bias`) of old checkpoints dropped.
fn stab_paths(name: &str) -> Vec<Target> {
    let base = names::strip_prefix(name);
    match base {
        "wte.weight" => return names::to("embeddings.word_embeddings.weight".into()),
        "wpe.weight" => return names::to("embeddings.position_embeddings.weight".into()),
        "ln_f.weight" | "ln_f.bias" => {
            return names::to(format!("encoder.final_norm.{}", &base[5..]));
        }
        _ => {}
    }
    let Some((i, tail)) = base.strip_prefix("h.").and_then(|r| r.split_once('.')) else {
        return names::to(base.to_string());
    };
    let layer = format!("encoder.layer.{i}");
    let (module, param) = tail.rsplit_once('.').unwrap_or((tail, ""));
    let conv = param == "weight";
    let one = |path: &str| {
        vec![Target {
            path: format!("{layer}.{path}.{param}"),
            part: None,
            transpose: conv && !path.ends_with("layer_norm"),
        }]
    };
    match module {
        "attn" if matches!(param, "bias" | "masked_bias") => Vec::new(),
        "attn.c_attn" => ["query", "key", "value"]
            .iter()
            .enumerate()
            .map(|(k, m)| Target {
                path: format!("{layer}.attention.self_attn.{m}.{param}"),
                part: Some((k, 3)),
                transpose: conv,
            })
            .collect(),
        "attn.c_proj" => one("attention.output.dense"),
        "ln_1" => one("attention.output.layer_norm"),
        "ln_2" => one("output.layer_norm"),
        "mlp.c_fc" => one("intermediate.dense"),
        "mlp.c_proj" => one("output.dense"),
        _ => names::to(base.to_string()),
    }
}

/// A stab parameter (norm `gamma`/`beta` already `weight`/`bias`) under GPT2Model's names,
/// with the block of `c_attn` it fills. A Conv1D weight is stored as burn keeps a Linear's,
/// [in, out]; only `c_attn`'s blocks are turned for the join ([`HfName::conv1d`]).
fn hf_name(name: &str) -> Option<HfName> {
    let plain = |name: String| {
        Some(HfName {
            name,
            transposed: false,
            part: None,
            conv1d: false,
        })
    };
    match name {
        "embeddings.word_embeddings.weight" => return plain("wte.weight".into()),
        "embeddings.position_embeddings.weight" => return plain("wpe.weight".into()),
        _ => {}
    }
    if let Some(param) = name.strip_prefix("encoder.final_norm.") {
        return plain(format!("ln_f.{param}"));
    }
    let rest = name.strip_prefix("encoder.layer.")?;
    let (i, tail) = rest.split_once('.')?;
    let (module, param) = tail.rsplit_once('.')?;
    let (hf, part) = match module {
        "attention.self_attn.query" => ("attn.c_attn", Some((0, 3))),
        "attention.self_attn.key" => ("attn.c_attn", Some((1, 3))),
        "attention.self_attn.value" => ("attn.c_attn", Some((2, 3))),
        "attention.output.dense" => ("attn.c_proj", None),
        "attention.output.layer_norm" => ("ln_1", None),
        "output.layer_norm" => ("ln_2", None),
        "intermediate.dense" => ("mlp.c_fc", None),
        "output.dense" => ("mlp.c_proj", None),
        _ => return None,
    };
    // c_attn's weight joins three column blocks: each is written as a Linear's [out, in]
    // rows, and the joined [3·out, in] transposed back to Conv1D's [in, 3·out].
    let fused = part.is_some() && param == "weight";
    Some(HfName {
        name: format!("h.{i}.{hf}.{param}"),
        transposed: fused,
        part,
        conv1d: fused,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conv1d_weights_are_transposed_and_c_attn_splits_in_three() {
        let t = stab_paths("transformer.h.1.attn.c_attn.weight");
        assert_eq!(t.len(), 3);
        assert_eq!(
            t[2].path,
            "encoder.layer.1.attention.self_attn.value.weight"
        );
        assert_eq!((t[2].part, t[2].transpose), (Some((2, 3)), true));
        let b = stab_paths("h.1.attn.c_attn.bias");
        assert_eq!((b[0].part, b[0].transpose), (Some((0, 3)), false));
        let ln = stab_paths("h.0.ln_1.weight");
        assert_eq!(
            (ln[0].path.as_str(), ln[0].transpose),
            ("encoder.layer.0.attention.output.layer_norm.weight", false)
        );
        assert!(stab_paths("h.0.attn.bias").is_empty());
        let key = hf_name("encoder.layer.0.attention.self_attn.key.weight").unwrap();
        assert_eq!(
            (key.name.as_str(), key.part, key.transposed),
            ("h.0.attn.c_attn.weight", Some((1, 3)), true)
        );
    }
}
