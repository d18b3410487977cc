//! # stab-train
//!
//! The fine-tuning engine and the `Method` API plugins implement (docs/design.md §6;
//! docs/methods.md §4–5); burn-train's place in stab. The method plugins themselves are
//! `stab-methods`; the grid runner that drives the engine is `stab-grid`.
//!
//! * [`run`] — one run end to end ([`Engine`], [`Progress`], [`RunStats`]).
//! * [`method`] — the [`Method`] trait plugins implement, with [`Capabilities`].
//! * [`plugin`] — the [`MethodPlugin`] declaration, `register_method!` and the registry
//!   of implementations ([`build`]).
//! * [`stack`] — methods stacked in one run ([`MethodStack`]) and how each hook combines.
//! * [`model`] — encoder + head ([`TaskModel`]) and token batches.
//! * [`checkpoint`] — a run's best weights as an HF model directory, and back ([`Checkpoint`]).
//! * [`features`] — frozen-encoder features for head tuning, cached in memory and on disk.
//! * [`optim`] — AdamW with HF's weight-decay groups and per-parameter lr scales, BERT's
//!   Adam without bias correction, global-norm clipping.
//! * [`params`] — parameters by path: transform, save and load ([`ParamTransform`]).
//! * [`schedule`] — HF's linear warmup/decay ([`LinearWarmupDecay`]).
//! * `seed_batch` — K runs that differ only in seed trained as one head on cached
//!   features ([`Engine::train_seed_batch`]), each member bit for bit its solo run.
//! * [`stopping`] — early stopping on the dev score ([`EarlyStopping`]).
//! * [`executor`] — the engine as the grid runner's executor (`stab_grid::Executor`).

pub mod cache_file;
pub mod checkpoint;
mod evaluate;
pub mod executor;
pub mod features;
mod fit;
mod frozen;
mod member_optim;
pub mod method;
pub mod model;
pub mod optim;
pub mod params;
pub mod plugin;
mod prepare;
pub mod run;
pub mod schedule;
mod seed_batch;
mod session;
mod setup;
pub mod stack;
mod stats;
mod step;
pub mod stopping;

pub use checkpoint::Checkpoint;
pub use frozen::TrainFeatures;
pub use method::{
    AdaptContext, Capabilities, CheckpointFile, EncoderChange, ExportContext, Method,
    PrepareContext, Prepared, SeedBatching, StepContext, StepRunner, StepView, TrainingData,
};
pub use model::{Forward, TaskModel, TokenInput};
pub use params::{ParamMap, ParamTransform};
pub use plugin::{MethodBuilder, MethodPlugin, build, unimplemented_methods};
pub use run::{Progress, RunStats, TrainedRun, cross_entropy};
pub use schedule::LinearWarmupDecay;
pub use session::{Engine, PreparedTask};
pub use stack::MethodStack;
pub use stopping::EarlyStopping;

/// What `register_method!` expands to (not an API).
#[doc(hidden)]
pub mod __private {
    pub use inventory;
    pub use stab_core::MethodEntry;
    pub use stab_core::params::TypedParams;
}
