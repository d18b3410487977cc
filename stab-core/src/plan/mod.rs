//! Expansion of a recipe into its grid of independent runs (docs/design.md §6–7).
//!
//! Fine-tuning: tasks × methods × seeds × `[sweep]` values. Synthetic: one run per
//! (study, factor value). Each [`RunSpec`] carries every setting that affects its result,
//! and its `run_id` is a stable hash of exactly those settings, so resuming, sharding and
//! merging stores are all keyed on it.
//!
//! * [`spec`] — one grid cell ([`RunSpec`]) and its stable `run_id`.
//! * [`stack`] — a `[[methods]]` table and the methods it stacks, resolved against the
//!   plugins' schemas into a typed [`Stack`].
//! * [`finetune`] — the fine-tuning grid: tasks × methods × seeds × `[sweep]`, each cell's
//!   settings range-checked.
//! * [`synthetic`] — the synthetic grid: one run per (study, factor value).
//! * Shards: [`Plan::shard`], balanced by [`crate::cost`].

mod finetune;
pub mod spec;
pub mod stack;
mod synthetic;

use crate::error::InputError;
use crate::recipe::{Recipe, RecipeKind};

pub use spec::{FinetuneJob, RunJob, RunSpec};
pub use stack::{MethodCall, Stack, is_own_method_key};

/// The ordered runs of one recipe.
#[derive(Debug, Clone)]
pub struct Plan {
    pub recipe: String,
    pub kind: RecipeKind,
    pub runs: Vec<RunSpec>,
}

impl Plan {
    /// Validate a recipe against the registries and expand its grid.
    pub fn from_recipe(recipe: &Recipe) -> Result<Self, InputError> {
        let runs = match recipe.kind() {
            RecipeKind::Synthetic => synthetic::plan_synthetic(recipe)?,
            RecipeKind::Finetune => finetune::plan_finetune(recipe)?,
        };
        let mut seen = std::collections::HashSet::new();
        let runs: Vec<RunSpec> = runs
            .into_iter()
            .filter(|r| seen.insert(r.run_id.clone()))
            .collect();
        Ok(Plan {
            recipe: recipe.name().to_string(),
            kind: recipe.kind(),
            runs,
        })
    }

    /// The runs of shard `index` (0-based) of `count`, balanced by estimated cost
    /// ([`crate::cost::balanced_shards`]).
    pub fn shard(&self, index: usize, count: usize) -> Vec<&RunSpec> {
        crate::cost::shard_of(&self.runs, index, count)
    }

    /// Every run's shard among `count`, in plan order.
    pub fn shards(&self, count: usize) -> Vec<usize> {
        crate::cost::balanced_shards(&self.runs, count)
    }
}
