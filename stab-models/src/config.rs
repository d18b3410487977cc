//! Hugging Face `config.json` for the encoder families stab supports: BERT, RoBERTa,
//! ELECTRA, DeBERTa-v2/v3 and ModernBERT. Fields shared by all families are read by name
//! (ModernBERT's `hidden_activation` and `norm_eps` are aliases); what a family adds is
//! read into its [`ModelFamily`] variant (docs/models.md).

use stab_core::Refusal;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;
use stab_core::InputError;

pub use crate::families::{Electra, ModelFamily, ModernBertLayout, RelativeAttention};

/// The fewest tokens a model must allow (the smallest `max_len` stab accepts).
pub const MIN_TOKENS: usize = 8;

/// The `model_type` values with a port in this crate (the family registry's).
pub fn supported_model_types() -> Vec<&'static str> {
    crate::families::FAMILIES
        .iter()
        .map(|f| f.info.model_type)
        .collect()
}

/// The activation named by `hidden_act`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Exact GELU, x·Φ(x) (`gelu`).
    Gelu,
    /// tanh approximation (`gelu_new`, `gelu_pytorch_tanh`).
    GeluTanh,
    Relu,
    /// x·σ(x) (`silu`, `swish`): the gate of Llama's and Qwen's SwiGLU.
    Silu,
}

impl Activation {
    pub(crate) fn parse(name: &str) -> Result<Self, Refusal> {
        match name {
            "gelu" => Ok(Activation::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" => Ok(Activation::GeluTanh),
            "relu" => Ok(Activation::Relu),
            "silu" | "swish" => Ok(Activation::Silu),
            other => Err(format!("unsupported activation `{other}`").into()),
        }
    }
}

/// The fields of `config.json` the forward pass needs; unknown fields are ignored. GPT-2's
/// names (`n_embd`, `n_layer`, `n_head`, `n_inner`, `n_positions`, `activation_function`,
/// `layer_norm_epsilon`, `resid_pdrop`, `attn_pdrop`) and Llama's (`rms_norm_eps`,
/// `attention_dropout`) are aliases of BERT's.
#[derive(Debug, Clone, Deserialize)]
pub struct EncoderConfig {
    pub model_type: String,
    pub vocab_size: usize,
    #[serde(alias = "n_embd")]
    pub hidden_size: usize,
    #[serde(alias = "n_layer")]
    pub num_hidden_layers: usize,
    #[serde(alias = "n_head")]
    pub num_attention_heads: usize,
    /// Key/value heads of grouped-query attention (Llama, Qwen); `None`: one per head.
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// The width of one attention head when the config sets it (Llama, Qwen3); else
    /// `hidden_size / num_attention_heads`.
    #[serde(default, rename = "head_dim")]
    pub head_dim_key: Option<usize>,
    /// 0 when absent or null (GPT-2's `n_inner = null`: the family fills in 4 × hidden).
    #[serde(default, alias = "n_inner", deserialize_with = "null_as_zero")]
    pub intermediate_size: usize,
    #[serde(
        default = "default_act",
        alias = "hidden_activation",
        alias = "activation_function"
    )]
    pub hidden_act: String,
    #[serde(default = "default_dropout", alias = "resid_pdrop")]
    pub hidden_dropout_prob: f64,
    #[serde(
        default = "default_dropout",
        alias = "attn_pdrop",
        alias = "attention_dropout"
    )]
    pub attention_probs_dropout_prob: f64,
    #[serde(alias = "n_positions")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(
        default = "default_eps",
        alias = "norm_eps",
        alias = "layer_norm_epsilon",
        alias = "rms_norm_eps"
    )]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub pad_token_id: Option<usize>,
    /// Whether a decoder's LM head is its word embeddings (`None`: the key is absent).
    #[serde(default)]
    pub tie_word_embeddings: Option<bool>,
    /// σ of the N(0, σ²) initialisation of fresh weights (the decoders' `score` head).
    #[serde(default = "default_initializer_range")]
    pub initializer_range: f64,
    /// `dtype` (transformers ≥ 4.56) or `torch_dtype` (older files).
    #[serde(default, alias = "torch_dtype")]
    pub dtype: Option<String>,
    /// The family and what it adds, read from the same file by [`EncoderConfig::parse`].
    #[serde(skip, default = "default_family")]
    pub family: ModelFamily,
}

fn null_as_zero<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    Ok(Option::<usize>::deserialize(d)?.unwrap_or(0))
}

fn default_act() -> String {
    "gelu".to_string()
}
fn default_dropout() -> f64 {
    0.1
}
fn default_initializer_range() -> f64 {
    0.02
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_family() -> ModelFamily {
    ModelFamily::Bert
}

/// A family key's error: the message and the key it names.
pub(crate) type KeyError = (String, &'static str);

/// A family key's value read by `read` (`what` names the expected type), with its default
/// when absent or null.
fn field<'a, T>(
    v: &'a Value,
    key: &'static str,
    default: T,
    what: &str,
    read: impl FnOnce(&'a Value) -> Option<T>,
) -> Result<T, KeyError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(x) => read(x).ok_or_else(|| (format!("`{key}` must be {what}, found {x}"), key)),
    }
}
pub(crate) fn number(v: &Value, key: &'static str, default: f64) -> Result<f64, KeyError> {
    field(v, key, default, "a number", Value::as_f64)
}
/// A count (a non-negative integer) at `key`; a negative or fractional value is refused as
/// written, never wrapped to another value.
pub(crate) fn count(v: &Value, key: &'static str, default: usize) -> Result<usize, KeyError> {
    let x = number(v, key, default as f64)?;
    if x < 0.0 || x.fract() != 0.0 || x > u32::MAX as f64 {
        return Err((
            format!("`{key}` must be a whole non-negative number, found {x}"),
            key,
        ));
    }
    Ok(x as usize)
}
pub(crate) fn flag(v: &Value, key: &'static str, default: bool) -> Result<bool, KeyError> {
    field(v, key, default, "true or false", Value::as_bool)
}
pub(crate) fn text<'a>(
    v: &'a Value,
    key: &'static str,
    default: &'a str,
) -> Result<&'a str, KeyError> {
    field(v, key, default, "a string", Value::as_str)
}

impl EncoderConfig {
    /// Read `DIR/config.json`.
    pub fn from_dir(dir: &Path) -> Result<Self, InputError> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            InputError::new(format!("cannot read config.json: {e}"))
                .file(path.display().to_string())
                .hint("a model directory needs the Hugging Face files config.json, model.safetensors (or pytorch_model.bin) and tokenizer.json")
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parse config text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, InputError> {
        let bad = |e: serde_json::Error| {
            InputError::new(format!("not a valid encoder config: {e}"))
                .file(file)
                .line(Some(e.line()))
                .hint("expected a Hugging Face config.json with model_type, hidden_size, num_hidden_layers, …")
        };
        let value: Value = serde_json::from_str(text).map_err(bad)?;
        let mut c: EncoderConfig = serde_json::from_value(value.clone()).map_err(bad)?;
        c.family = ModelFamily::read(&c, &value).map_err(|(m, key)| {
            let hint = if key == "model_type" {
                format!("supported model types: {}", supported_model_types().join(", "))
            } else {
                format!(
                    "stab's `{}` port supports the configurations of the released checkpoints (docs/models.md)",
                    c.model_type
                )
            };
            InputError::new(m).file(file).key(key).hint(hint)
        })?;
        let family = c.family;
        family.spec().adjust(&mut c);
        if family.is_decoder() && c.pad_token_id.is_none() {
            // A decoder without a pad token (GPT-2, Llama 3) pads with its eos, the usual
            // `tokenizer.pad_token = tokenizer.eos_token`; HF's last-token rule then skips
            // trailing eos tokens, as it does for GPT-2's own pad = eos.
            c.pad_token_id = match value.get("eos_token_id") {
                Some(Value::Array(ids)) => ids.first().and_then(Value::as_u64),
                Some(id) => id.as_u64(),
                None => None,
            }
            .map(|id| id as usize);
        }
        if !c.family.has_token_types() {
            c.type_vocab_size = 0;
        }
        c.activation().map_err(|m| {
            InputError::new(m.reason)
                .file(file)
                .key("hidden_act")
                .hint("supported: gelu, gelu_new, gelu_pytorch_tanh, relu, silu")
        })?;
        c.validate().map_err(|e| InputError {
            file: Some(file.to_string()),
            ..e
        })?;
        Ok(c)
    }

    /// The one validation pass over every field a run relies on: sizes within
    /// [`stab_core::limits`], probabilities in [0, 1), a finite positive epsilon, a pad
    /// id inside the vocabulary, room for [`MIN_TOKENS`] tokens, and a parameter count
    /// that fits in memory — all before any tensor is allocated.
    pub fn validate(&self) -> Result<(), InputError> {
        use stab_core::limits;
        let hint =
            "config.json does not describe a usable encoder; is it the file the weights came with?";
        for (key, value, limit) in [
            ("vocab_size", self.vocab_size, limits::VOCAB_SIZE),
            ("hidden_size", self.hidden_size, limits::HIDDEN_SIZE),
            ("num_hidden_layers", self.num_hidden_layers, limits::LAYERS),
            (
                "num_attention_heads",
                self.num_attention_heads,
                limits::ATTENTION_HEADS,
            ),
            (
                "intermediate_size",
                self.intermediate_size,
                limits::INTERMEDIATE_SIZE,
            ),
            (
                "max_position_embeddings",
                self.max_position_embeddings,
                limits::POSITIONS,
            ),
        ] {
            limit.check_usize(key, value)?;
        }
        if self.family.has_token_types() {
            limits::TYPE_VOCAB.check_usize("type_vocab_size", self.type_vocab_size)?;
        }
        self.family.spec().validate(self)?;
        if let Some(d) = self.head_dim_key {
            limits::HIDDEN_SIZE.check_usize("head_dim", d)?;
        }
        let kv = self.kv_heads();
        if kv != self.num_attention_heads && !self.family.spec().layout().grouped_query {
            return Err(InputError::new(format!(
                "num_key_value_heads = {kv} differs from num_attention_heads = {}, and {} has no grouped-query attention",
                self.num_attention_heads,
                self.family.name()
            ))
            .key("num_key_value_heads")
            .hint(format!(
                "{}'s Hugging Face model ignores the key; remove it or set it to num_attention_heads",
                self.family.name()
            )));
        }
        if kv == 0 || !self.num_attention_heads.is_multiple_of(kv) {
            return Err(InputError::new(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {kv}",
                self.num_attention_heads
            ))
            .key("num_key_value_heads")
            .hint(hint));
        }
        if self.head_dim_key.is_none() && !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Err(InputError::new(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ))
            .key("num_attention_heads")
            .hint(hint));
        }
        for (key, p) in self.family.spec().dropouts(self) {
            if !(0.0..1.0).contains(&p) {
                return Err(
                    InputError::new(format!("{key} = {p} is not a probability in [0, 1)"))
                        .key(key)
                        .hint("dropout probabilities are 0.1 in BERT and RoBERTa"),
                );
            }
        }
        if !(self.layer_norm_eps.is_finite()
            && self.layer_norm_eps > 0.0
            && self.layer_norm_eps < 1.0)
        {
            return Err(InputError::new(format!(
                "layer_norm_eps = {} is not a small positive number",
                self.layer_norm_eps
            ))
            .key("layer_norm_eps")
            .hint("BERT uses 1e-12, RoBERTa 1e-5"));
        }
        if let Some(pad) = self.pad_token_id.filter(|&p| p >= self.vocab_size) {
            return Err(InputError::new(format!(
                "pad_token_id = {pad} is outside the vocabulary of {} tokens",
                self.vocab_size
            ))
            .key("pad_token_id")
            .hint(hint));
        }
        if self.max_tokens() < MIN_TOKENS {
            return Err(InputError::new(format!(
                "max_position_embeddings = {} leaves room for {} tokens; stab needs at least {MIN_TOKENS}",
                self.max_position_embeddings,
                self.max_tokens()
            ))
            .key("max_position_embeddings")
            .hint("BERT and RoBERTa have 512 positions"));
        }
        let params = self.parameter_count();
        limits::PARAMETERS.check("parameters", params.min(u64::MAX as u128) as u64).map_err(|_| {
            InputError::new(format!(
                "the configured encoder has about {params} parameters, more than stab can hold ({})",
                limits::PARAMETERS.max
            ))
            .key("hidden_size")
            .hint(limits::PARAMETERS.hint)
        })
    }

    /// The encoder's parameter count implied by the configuration (embeddings, layers,
    /// pooler; the MLM head adds one h × h layer), without overflow.
    pub fn parameter_count(&self) -> u128 {
        let h = self.hidden_size as u128;
        let i = self.intermediate_size as u128;
        let e = self.embedding_size() as u128;
        let positions = if self.family.has_absolute_positions() {
            self.max_position_embeddings
        } else {
            0
        };
        let rows = (self.vocab_size + positions + self.type_vocab_size) as u128;
        let embeddings = rows * e + 2 * e + if e == h { 0 } else { e * h + h };
        let ffn_out = self.intermediate_width() as u128;
        let layer = 4 * (h * h + h) + (h * ffn_out + ffn_out) + (i * h + h) + 4 * h;
        let relative = self.family.spec().extra_parameters(self);
        embeddings + relative + self.num_hidden_layers as u128 * layer + 2 * (h * h + h)
    }

    /// The first feed-forward projection's output width: `intermediate_size`, twice that
    /// for ModernBERT's gated GeGLU (input and gate).
    pub fn intermediate_width(&self) -> usize {
        self.family.spec().intermediate_width(self)
    }

    /// The width of the embedding tables (ELECTRA's `embedding_size`; else the hidden size).
    pub fn embedding_size(&self) -> usize {
        self.family.spec().embedding_size(self)
    }

    pub fn activation(&self) -> Result<Activation, Refusal> {
        Activation::parse(&self.hidden_act)
    }

    /// The padding id (BERT 0, RoBERTa 1 unless the config says otherwise).
    pub fn pad_id(&self) -> usize {
        self.pad_token_id
            .unwrap_or_else(|| self.family.spec().default_pad_id())
    }

    /// The longest input the position embeddings allow (RoBERTa's positions start after
    /// the pad id, so it fits pad_id + 1 fewer tokens).
    pub fn max_tokens(&self) -> usize {
        self.family.spec().max_tokens(self)
    }

    /// `n` tokens per input (given as `key`) fit the position embeddings, else one input
    /// error naming the key and the largest that fits.
    pub fn check_tokens(&self, key: &str, n: usize) -> Result<(), InputError> {
        let limit = self.max_tokens();
        if n <= limit {
            return Ok(());
        }
        Err(
            InputError::new(format!("{key} {n} exceeds the model's {limit} positions"))
                .key(key)
                .hint(format!("use {key} {limit} or less")),
        )
    }

    /// The width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.head_dim_key
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// Key/value heads (grouped-query attention); the attention heads without it.
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }
}

impl stab_text::VocabConfig for EncoderConfig {
    fn pad_id(&self) -> usize {
        EncoderConfig::pad_id(self)
    }
    fn vocab_size(&self) -> usize {
        self.vocab_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BERT: &str = r#"{"model_type":"bert","vocab_size":10,"hidden_size":8,"num_hidden_layers":1,
        "num_attention_heads":2,"intermediate_size":16,"max_position_embeddings":32,"torch_dtype":"float32",
        "some_future_field":[1,2]}"#;

    #[test]
    fn parses_and_ignores_unknown_fields() {
        let c = EncoderConfig::parse(BERT, "c.json").unwrap();
        assert_eq!(c.family, ModelFamily::Bert);
        assert_eq!(c.dtype.as_deref(), Some("float32"));
        assert_eq!(c.pad_id(), 0);
        assert_eq!(c.layer_norm_eps, 1e-12);
        let d = EncoderConfig::parse(&BERT.replace("torch_dtype", "dtype"), "c.json").unwrap();
        assert_eq!(d.dtype.as_deref(), Some("float32"));
    }

    #[test]
    fn every_field_a_run_relies_on_is_range_checked() {
        for (from, to, key) in [
            (
                "\"intermediate_size\":16",
                "\"intermediate_size\":16,\"hidden_dropout_prob\":1.5",
                "hidden_dropout_prob",
            ),
            (
                "\"intermediate_size\":16",
                "\"intermediate_size\":16,\"attention_probs_dropout_prob\":-0.1",
                "attention_probs_dropout_prob",
            ),
            ("\"vocab_size\":10", "\"vocab_size\":0", "vocab_size"),
            (
                "\"hidden_size\":8",
                "\"hidden_size\":7",
                "num_attention_heads",
            ),
            (
                "\"num_hidden_layers\":1",
                "\"num_hidden_layers\":0",
                "num_hidden_layers",
            ),
            (
                "\"max_position_embeddings\":32",
                "\"max_position_embeddings\":2",
                "max_position_embeddings",
            ),
            (
                "\"intermediate_size\":16",
                "\"intermediate_size\":16,\"layer_norm_eps\":0",
                "layer_norm_eps",
            ),
            (
                "\"intermediate_size\":16",
                "\"intermediate_size\":16,\"pad_token_id\":10",
                "pad_token_id",
            ),
            ("\"hidden_size\":8", "\"hidden_size\":65536", "hidden_size"),
        ] {
            let text = BERT.replace(from, to);
            assert_ne!(text, BERT, "{from}");
            let e = EncoderConfig::parse(&text, "c.json").unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{to}: {e}");
            assert_eq!(e.file.as_deref(), Some("c.json"), "{e}");
        }
        let e = EncoderConfig::parse(&BERT.replace(":32", ":2"), "c.json").unwrap_err();
        assert!(e.message.contains("room for 2 tokens"), "{e}");
    }

    /// A config of `family` from the fixtures, with `edit` applied to its JSON value.
    fn family_config(
        family: &str,
        edit: impl FnOnce(&mut Value),
    ) -> Result<EncoderConfig, InputError> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../testdata/fixtures")
            .join(family)
            .join("config.json");
        let mut v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        edit(&mut v);
        EncoderConfig::parse(&v.to_string(), "config.json")
    }

    #[test]
    fn family_keys_are_read_and_bad_ones_named() {
        let c = family_config("tiny-deberta-v3", |_| {}).unwrap();
        let ModelFamily::Deberta(r) = c.family else {
            panic!("{:?}", c.family)
        };
        assert_eq!((r.span(), r.max_relative, r.terms()), (16, 64, 3));
        assert_eq!(c.type_vocab_size, 0);
        let e =
            family_config("tiny-deberta-v3", |v| v["share_att_key"] = false.into()).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("share_att_key"), "{e}");
        let e = family_config("tiny-deberta-v3", |v| {
            v["pos_att_type"] = serde_json::json!(["p2p"])
        })
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("pos_att_type"), "{e}");

        let c = family_config("tiny-modernbert", |_| {}).unwrap();
        let ModelFamily::ModernBert(m) = c.family else {
            panic!("{:?}", c.family)
        };
        assert_eq!(
            (m.window_half, m.global_theta, m.local_theta),
            (4, 160_000.0, 10_000.0)
        );
        assert!(m.is_global(0) && !m.is_global(1) && m.is_global(2));
        assert_eq!(c.layer_norm_eps, 1e-5, "norm_eps is read");
        // Configs written by older transformers: legacy rope keys.
        let c = family_config("tiny-modernbert", |v| {
            let o = v.as_object_mut().unwrap();
            o.remove("rope_parameters");
            o.remove("layer_types");
            o.insert("global_rope_theta".into(), 80_000.0.into());
            o.insert("local_rope_theta".into(), 5_000.0.into());
        })
        .unwrap();
        let ModelFamily::ModernBert(m) = c.family else {
            panic!()
        };
        assert_eq!((m.global_theta, m.local_theta), (80_000.0, 5_000.0));
        // ModernBERT's dropout keys are range-checked under their own names.
        for key in ["embedding_dropout", "attention_dropout", "mlp_dropout"] {
            let e = family_config("tiny-modernbert", |v| v[key] = 1.5.into()).unwrap_err();
            assert_eq!(e.key.as_deref(), Some(key), "{e}");
        }
        let e = family_config("tiny-modernbert", |v| v["mlp_bias"] = true.into()).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("mlp_bias"), "{e}");
        let e = family_config("tiny-modernbert", |v| {
            v["layer_types"] =
                serde_json::json!(["sliding_attention", "full_attention", "full_attention"])
        })
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("layer_types"), "{e}");

        let c = family_config("tiny-electra", |_| {}).unwrap();
        assert_eq!(
            c.family,
            ModelFamily::Electra(Electra { embedding_size: 16 })
        );
        assert_eq!(c.embedding_size(), 16);
    }

    #[test]
    fn unsupported_type_names_the_supported_ones() {
        let e = EncoderConfig::parse(&BERT.replace("\"bert\"", "\"t5\""), "c.json").unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("unsupported model_type `t5`") && m.contains("bert, roberta"),
            "{m}"
        );
    }
}
