//! # stab-text
//!
//! Text in, token ids out, and where a model's files come from — the pieces that both the
//! models and the task data need, without burn.
//!
//! * [`tokenizer`] — padding, truncation and offsets ([`TextEncoder`], [`TokenBatch`]).
//! * [`source`] — local directories and hub ids through the HF cache ([`resolve_model`]).

pub mod source;
pub mod tokenizer;

pub use source::{resolve_model, resolve_model_in};
pub use tokenizer::{TextEncoder, TextInput, TokenBatch, VocabConfig};
