//! Hugging Face `config.json` for the encoder families stab supports (BERT, RoBERTa).

use std::path::Path;

use serde::Deserialize;
use stab_core::InputError;

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
        if c.num_attention_heads == 0 || !c.hidden_size.is_multiple_of(c.num_attention_heads) {
            return Err(InputError::new(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                c.hidden_size, c.num_attention_heads
            ))
            .file(file)
            .key("num_attention_heads"));
        }
        Ok(c)
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
    fn unsupported_type_names_the_supported_ones() {
        let e = EncoderConfig::parse(&BERT.replace("\"bert\"", "\"gpt2\""), "c.json").unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("unsupported model_type `gpt2`") && m.contains("bert, roberta"),
            "{m}"
        );
    }
}
