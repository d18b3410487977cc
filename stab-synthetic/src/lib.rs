//! # stab-synthetic
//!
//! The paper's synthetic head-tuning studies (§4.3; docs/methods.md §7), every piece but
//! the recipe's `[synthetic]` table (`stab_core::SyntheticSettings`) and the report section
//! (`stab_eval::report`). No burn: the solvers are vectorised host code.
//!
//! * [`points`] — the two-ball generator ([`TwoBalls`] → [`LabeledPoints`]).
//! * [`linear`] — linear heads on fixed features: full-batch logistic GD for many weight
//!   vectors in lockstep ([`LogisticGd`]) and the hard-margin SVM ([`Smo`]).
//! * [`studies`] — the five factor studies (heads, samples, margin, distance, bound), one
//!   plugin file each, registered as `stab_core::StudyEntry`s, and the per-dataset
//!   machinery a third-party study builds on ([`studies::over_datasets`], …).

pub mod linear;
pub mod points;
pub mod studies;

pub use linear::{AugmentedPoints, LogisticGd, Smo, SvmSolution};
pub use points::{LabeledPoints, TwoBalls};
