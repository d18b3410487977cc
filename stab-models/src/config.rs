//! Hugging Face `config.json` for the encoder families stab supports (BERT, RoBERTa).

use std::path::Path;

use serde::Deserialize;
use stab_core::InputError;

/// The fewest tokens a model must allow (the smallest `max_len` stab accepts).
pub const MIN_TOKENS: usize = 8;

/// The encoder families with a port in this crate.
pub const SUPPORTED_MODEL_TYPES: &[&str] = &["bert", "roberta"];

/// BERT or RoBERTa: they differ in position ids, token types and the MLM head's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFamily {
    Bert,
    Roberta,
}

/// The activation named by `hidden_act`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Exact GELU, x·Φ(x) (`gelu`).
    Gelu,
    /// tanh approximation (`gelu_new`, `gelu_pytorch_tanh`).
    GeluTanh,
    Relu,
}

/// The fields of `config.json` the forward pass needs; unknown fields are ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct EncoderConfig {
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub pad_token_id: Option<usize>,
    /// `dtype` (transformers ≥ 4.56) or `torch_dtype` (older files).
    #[serde(default, alias = "torch_dtype")]
    pub dtype: Option<String>,
}

fn default_act() -> String {
    "gelu".to_string()
}
fn default_dropout() -> f64 {
    0.1
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
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
        let c: EncoderConfig = serde_json::from_str(text).map_err(|e| {
            InputError::new(format!("not a valid encoder config: {e}"))
                .file(file)
                .line(Some(e.line()))
                .hint("expected a Hugging Face config.json with model_type, hidden_size, num_hidden_layers, …")
        })?;
        c.family().map_err(|m| {
            InputError::new(m)
                .file(file)
                .key("model_type")
                .hint(format!(
                    "supported model types: {}",
                    SUPPORTED_MODEL_TYPES.join(", ")
                ))
        })?;
        c.activation().map_err(|m| {
            InputError::new(m)
                .file(file)
                .key("hidden_act")
                .hint("supported: gelu, gelu_new, gelu_pytorch_tanh, relu")
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
            ("type_vocab_size", self.type_vocab_size, limits::TYPE_VOCAB),
        ] {
            limit.check_usize(key, value)?;
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(InputError::new(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ))
            .key("num_attention_heads")
            .hint(hint));
        }
        for (key, p) in [
            ("hidden_dropout_prob", self.hidden_dropout_prob),
            (
                "attention_probs_dropout_prob",
                self.attention_probs_dropout_prob,
            ),
        ] {
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
        let rows = (self.vocab_size + self.max_position_embeddings + self.type_vocab_size) as u128;
        let embeddings = rows * h + 2 * h;
        let layer = 4 * (h * h + h) + (h * i + i) + (i * h + h) + 4 * h;
        embeddings + self.num_hidden_layers as u128 * layer + 2 * (h * h + h)
    }

    pub fn family(&self) -> Result<ModelFamily, String> {
        match self.model_type.as_str() {
            "bert" => Ok(ModelFamily::Bert),
            "roberta" => Ok(ModelFamily::Roberta),
            other => Err(format!("unsupported model_type `{other}`")),
        }
    }

    pub fn activation(&self) -> Result<Activation, String> {
        match self.hidden_act.as_str() {
            "gelu" => Ok(Activation::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" => Ok(Activation::GeluTanh),
            "relu" => Ok(Activation::Relu),
            other => Err(format!("unsupported hidden_act `{other}`")),
        }
    }

    /// The padding id (BERT 0, RoBERTa 1 unless the config says otherwise).
    pub fn pad_id(&self) -> usize {
        self.pad_token_id.unwrap_or(match self.family() {
            Ok(ModelFamily::Roberta) => 1,
            _ => 0,
        })
    }

    /// The longest input the position embeddings allow (RoBERTa's positions start after
    /// the pad id, so it fits pad_id + 1 fewer tokens).
    pub fn max_tokens(&self) -> usize {
        match self.family() {
            Ok(ModelFamily::Roberta) => self
                .max_position_embeddings
                .saturating_sub(self.pad_id() + 1),
            _ => self.max_position_embeddings,
        }
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

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
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
        assert_eq!(c.family().unwrap(), ModelFamily::Bert);
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

    #[test]
    fn unsupported_type_names_the_supported_ones() {
        let e = EncoderConfig::parse(&BERT.replace("\"bert\"", "\"gpt2\""), "c.json").unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("unsupported model_type `gpt2`") && m.contains("bert, roberta"),
            "{m}"
        );
    }
}
