//! Linear heads on fixed features: the solvers of the synthetic studies (docs/methods.md §7.3).
//!
//! * [`AugmentedPoints`] and its vectorised σ-weighted sum kernel.
//! * [`LogisticGd`] — full-batch GD for many weight vectors in lockstep (multi-head, LOO).
//! * [`Smo`] — the hard-margin SVM with unregularised bias.

pub mod gd;
pub mod kernel;
pub mod svm;

pub use gd::LogisticGd;
pub use kernel::{AugmentedPoints, kernel_isa};
pub use svm::{Smo, SvmSolution};
