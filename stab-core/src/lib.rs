//! # stab-core
//!
//! The vocabulary every other stab crate speaks, and the contracts users rely on
//! (`docs/design.md` §3–5). This crate depends on no other stab crate.
//!
//! * [`recipe`] — the TOML recipe: its tables and their shape ([`Recipe`]), the sections
//!   as written ([`recipe::ModelSection`], …), with key-precise errors.
//! * [`overrides`] — `--set KEY=VALUE` applied to a recipe's source ([`Override`]).
//! * [`plan`] — expansion of a recipe into independent grid cells ([`RunSpec`], [`Plan`]):
//!   the spec, the fine-tuning and synthetic grids, method stacks ([`Stack`]).
//! * [`cost`], [`shard`] — estimated run cost and cost-balanced shards ([`Shard`]).
//! * [`record`] — the result record appended per finished run ([`RunRecord`]).
//! * [`store`] — the append-only JSONL results store with resume ([`ResultsStore`]).
//! * [`predictions`] — a run's test predictions, one file per run beside the store.
//! * [`registry`] — `inventory` registries of methods, tasks and synthetic studies.
//! * [`study`] — the trait a synthetic study plugin implements ([`SyntheticStudy`]).
//! * [`sequential`] — the `[seeds]` table: fixed or sequential seed allocation ([`sequential::SequentialDesign`]).
//! * [`seed`] — stable hashing and seed derivation ([`stable_hash`], [`derive_seed`]).
//! * [`error`] — [`InputError`], the "bad input" error class (exit code 2).
//! * [`limits`] — the bounds of every size that decides an allocation ([`limits::Limit`]).
//! * [`atomic`] — whole-file writes through a locked temporary, and stale-temporary cleanup.
//! * [`tune`] — `[tune]`: a search on dev per method before the seed study ([`tune::TuneTable`]).
//! * [`suggest`] — did-you-mean lookups ([`nearest`]).

pub mod atomic;
pub mod cost;
pub mod error;
pub mod limits;
pub mod overrides;
pub mod params;
pub mod plan;
pub mod predictions;
pub mod recipe;
pub mod record;
pub mod registry;
pub mod seed;
pub mod sequential;
pub mod shard;
pub mod store;
pub mod study;
pub mod suggest;
pub mod synthetic;
pub mod tune;

#[doc(hidden)]
pub use anyhow as __anyhow;
pub use error::{Context, Error, InputError, Refusal, Result};
pub use overrides::Override;
pub use params::{MethodParams, ParamKind, ParamSpec};
pub use plan::{FinetuneJob, MethodCall, Plan, RunJob, RunSpec, Stack};
pub use recipe::{
    CustomTaskSpec, DataOrigin, DataSection, DataSourceKind, HubDatasetSpec, Pooling, Recipe,
    RecipeKind, TrainMode,
};
pub use record::{InputFingerprint, RunRecord};
pub use registry::{MethodEntry, StudyEntry, TaskEntry};
pub use seed::{ComponentSeeds, derive_seed, stable_hash};
pub use shard::Shard;
pub use store::{ResultsStore, RunClaim};
pub use study::{StudyOutcome, SyntheticStudy};
pub use suggest::nearest;
pub use synthetic::SyntheticSettings;

// `method_params!` names this crate as `stab_core` also inside it.
extern crate self as stab_core;

/// serde, for the derives `method_params!` writes (not an API).
#[doc(hidden)]
pub use serde as __serde;

/// Version string written into every record (`stab_version`).
pub const STAB_VERSION: &str = env!("CARGO_PKG_VERSION");
