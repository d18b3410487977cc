//! # stab-models
//!
//! Pre-trained encoders for stab.
//!
//! * [`config`] — Hugging Face `config.json` for BERT and RoBERTa ([`EncoderConfig`]).
//! * [`encoder`] — the encoder layers in burn, pooler and MLM head ([`Encoder`]).
//! * [`loader`] — weights from safetensors / PyTorch files with a [`LoadReport`].
//! * [`tokenizer`] — padding, truncation and offsets ([`TextEncoder`], [`TokenBatch`]).
//! * [`source`] — local directories and hub ids through the HF cache ([`resolve_model`]).

pub mod config;
pub mod encoder;
pub mod loader;
pub mod source;
pub mod tokenizer;

pub use config::{EncoderConfig, ModelFamily};
pub use encoder::{without_dropout, Encoder, EncoderOutput};
pub use loader::{load_encoder, materialize, LoadReport};
pub use source::{resolve_model, resolve_model_in};
pub use tokenizer::{TextEncoder, TextInput, TokenBatch};
