//! # stab-data
//!
//! Data for stab runs.
//!
//! * [`tasks`] — the 11 GLUE/SuperGLUE tasks: readers of the official files, templates,
//!   labels, heads and metrics ([`TaskDef`], [`Example`]).
//! * [`encode`] — template texts and WSC/WiC span projection onto tokens.
//! * [`hub`] — task data from the Hugging Face Hub: parquet through the HF cache,
//!   converted to the official files' text ([`HubDataset`], [`DatasetCache`]).
//! * [`task`] — [`Task`]: a built-in definition or the user's own task.
//! * [`custom`] — the user's own tasks (`[data.custom.<name>]`): CSV, TSV, JSON Lines or
//!   parquet files, their columns, classes and held-out test rows.
//! * [`source`] — [`load_task`]: a task's rows from whichever source the recipe names.
//! * [`split`] — the fixed 90/10 train/dev split and per-seed perturbations ([`Splits`]).

pub mod custom;
pub mod encode;
pub mod hub;
pub mod source;
pub mod split;
pub mod task;
pub mod tasks;

pub use hub::{DatasetCache, HubDataset, HubTask};
pub use source::{LoadedTask, load_recipe_task, load_task};
pub use split::{
    ResolvedSplit, SplitFiles, SplitSource, Splits, author_split, dev_split, fixed_split, perturb,
    resolve_split, split_files, splits_dir,
};
pub use task::{CustomTask, Task};
pub use tasks::{Example, HeadKind, TaskData, TaskDef, task_def};
