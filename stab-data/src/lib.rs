//! # stab-data
//!
//! Data for stab runs.
//!
//! * [`tasks`] — the 11 GLUE/SuperGLUE tasks: readers of the official files, templates,
//!   labels, heads and metrics ([`TaskDef`], [`Example`]).
//! * [`encode`] — template texts and WSC/WiC span projection onto tokens.
//! * [`split`] — the fixed 90/10 train/dev split and per-seed perturbations ([`Splits`]).
//! * [`synthetic`] — the two-ball generator of the synthetic head-tuning studies
//!   (docs/methods.md §7.2): [`TwoBalls`] → [`LabeledPoints`].

pub mod encode;
pub mod split;
pub mod synthetic;
pub mod tasks;

pub use split::{
    ResolvedSplit, SplitSource, Splits, dev_split, fixed_split, perturb, resolve_split, splits_dir,
};
pub use synthetic::{LabeledPoints, TwoBalls};
pub use tasks::{Example, HeadKind, TaskData, TaskDef, task_def};
