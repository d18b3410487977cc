//! # stab-data
//!
//! Data for stab runs.
//!
//! * [`tasks`] — the 11 GLUE/SuperGLUE tasks: readers of the official files, templates,
//!   labels, heads and metrics ([`TaskDef`], [`Example`]).
//! * [`encode`] — template texts and WSC/WiC span projection onto tokens.
//! * [`hub`] — task data from the Hugging Face Hub: parquet through the HF cache,
//!   converted to the official files' text ([`HubDataset`], [`DatasetCache`]).
//! * [`source`] — [`load_task`]: a task's rows from whichever source the recipe names.
//! * [`split`] — the fixed 90/10 train/dev split and per-seed perturbations ([`Splits`]).

pub mod encode;
pub mod hub;
pub mod source;
pub mod split;
pub mod tasks;

pub use hub::{DatasetCache, HubDataset, HubTask};
pub use source::{LoadedTask, load_task};
pub use split::{
    ResolvedSplit, SplitFiles, SplitSource, Splits, author_split, dev_split, fixed_split, perturb,
    resolve_split, split_files, splits_dir,
};
pub use tasks::{Example, HeadKind, TaskData, TaskDef, task_def};
