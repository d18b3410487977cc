//! # stab-models
//!
//! Pre-trained encoders for stab.
//!
//! * [`allocator`] — the binaries' allocator, mimalloc keeping freed memory ([`Allocator`]).
//! * [`config`] — Hugging Face `config.json` of every family ([`EncoderConfig`], [`ModelFamily`]).
//! * [`encoder`] — the shared encoder layers in burn, pooler and MLM head ([`Encoder`]).
//! * [`families`] — one file per family implementing [`families::Family`] (its config keys,
//!   module variant, positions, pooler, HF names), and the registry ([`families::FAMILIES`]).
//! * [`names`] — HF tensor names ↔ stab's module paths, through the config's family.
//! * [`activation`] — the exact GELU with a vectorised erf.
//! * [`dropout`] — inverted dropout drawing from a run's [`NoiseStream`] ([`FastDropout`]).
//! * [`fused`] — LayerNorm, GELU and masked softmax as single host kernels with their backward.
//! * [`fused_attention`] — attention (scores, mask, softmax, dropout, ·V) as one host kernel with its backward.
//! * [`placement`] — host kernels or their twins per device ([`KernelPath`]); counted reads ([`HostReads`]).
//! * [`heads`] — the jiant task heads with H output layers ([`TaskHead`], [`OutputLayers`]).
//! * [`peft`] — modules parameter-efficient methods add: LoRA's [`LowRank`], adapters' [`Bottleneck`].
//! * [`loader`] — weights from safetensors / PyTorch files with a [`LoadReport`].
//! * [`checkpoint`] — Hugging Face names for saved weights; safetensors read/write ([`TensorFile`]).
//! * [`tokenizer`], [`source`] — re-exported from `stab-text` (tokenization; model directories
//!   and hub ids), which needs no burn.
//! * [`simd`] — run-time CPU dispatch (AVX-512 / AVX2 / baseline) of the host kernels.

pub mod activation;
pub mod allocator;
pub mod checkpoint;
pub mod config;
pub mod dropout;
pub mod encoder;
pub mod families;
pub mod fused;
pub mod fused_attention;
pub mod heads;
pub mod loader;
pub mod names;
pub mod peft;
pub mod placement;
mod rows;
pub mod simd;
pub use stab_text::{source, tokenizer};

pub use allocator::Allocator;
pub use checkpoint::{NamedTensor, TensorFile, read_safetensors, write_safetensors};
pub use config::{EncoderConfig, ModelFamily};
pub use dropout::{FastDropout, NoiseStream};
pub use encoder::{Encoder, EncoderOutput, without_dropout};
pub use heads::{
    ClassificationHead, HeadInput, HeadOutput, HeadShape, OutputLayers, ScoreHead,
    SpanComparisonHead, TaskHead,
};
pub use loader::{LoadReport, load_encoder, materialize};
pub use peft::{Bottleneck, BottleneckActivation, LowRank};
pub use placement::{HostReads, KernelPath, is_host};
pub use stab_text::{TextEncoder, TextInput, TokenBatch, resolve_model, resolve_model_in};
