//! # stab-grid
//!
//! The grid runner (docs/design.md §7): one claim → run → append loop for every kind of
//! grid, with resume, shards, `--jobs` workers, a [`Schedule`] that decides which run comes
//! next, and [`GridEvent`]s for progress bars and trackers. It knows no model and no study:
//! an [`Executor`] runs one [`RunSpec`](stab_core::RunSpec) — the fine-tuning engine
//! (`stab-methods`) or the synthetic studies ([`SyntheticExecutor`]).
//!
//! * [`executor`] — what runs one spec ([`Executor`], [`RunContext`], [`Executed`]).
//! * [`event`] — what a grid reports while it runs ([`GridEvent`], [`RunProgress`]).
//! * [`schedule`] — which run comes next ([`Schedule`], [`PlanOrder`]).
//! * [`sequential`] — rounds of seeds for the arms still undecided ([`SequentialSchedule`]).
//! * [`tune`] — `[tune]`: each arm's search runs, its chosen value, the study at it.
//! * [`runner`] — the loop itself ([`GridRunner`], [`GridSummary`]).
//! * [`resume`] — which finished runs a grid may reuse.
//! * [`synthetic`] — the executor of the synthetic studies.

pub mod event;
pub mod executor;
pub mod resume;
pub mod runner;
pub mod schedule;
pub mod sequential;
pub mod synthetic;
pub mod tune;

pub use event::{GridEvent, RunProgress, Skip};
pub use executor::{Executed, Executor, RunContext};
pub use runner::{GridRunner, GridSummary};
pub use schedule::{Next, PlanOrder, Schedule};
pub use sequential::{ArmState, SequentialSchedule};
pub use synthetic::SyntheticExecutor;
