//! # stab-models
//!
//! Pre-trained encoders for stab.
//!
//! * [`config`] — Hugging Face `config.json` for BERT and RoBERTa ([`EncoderConfig`]).
//! * [`encoder`] — the encoder layers in burn, pooler and MLM head ([`Encoder`]).
//! * [`activation`] — the exact GELU with a vectorised erf.
//! * [`dropout`] — seeded, parallel inverted dropout ([`FastDropout`]).
//! * [`loader`] — weights from safetensors / PyTorch files with a [`LoadReport`].
//! * [`tokenizer`] — padding, truncation and offsets ([`TextEncoder`], [`TokenBatch`]).
//! * [`source`] — local directories and hub ids through the HF cache ([`resolve_model`]).

pub mod activation;
pub mod config;
pub mod dropout;
pub mod encoder;
pub mod loader;
pub mod source;
pub mod tokenizer;

pub use config::{EncoderConfig, ModelFamily};
pub use dropout::{seed_dropout, FastDropout};
pub use encoder::{without_dropout, Encoder, EncoderOutput};
pub use loader::{load_encoder, materialize, LoadReport};
pub use source::{resolve_model, resolve_model_in};
pub use tokenizer::{TextEncoder, TextInput, TokenBatch};
