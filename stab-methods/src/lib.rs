//! # stab-methods
//!
//! Training engines and the built-in plugins.
//!
//! * [`linear`] — solvers for linear heads on fixed features: vectorised full-batch GD
//!   (single and multi-head) and the SMO hard-margin SVM.
//! * [`synthetic`] — the five synthetic factor studies of docs/methods.md §7, one plugin file
//!   each (heads, samples, margin, distance, bound).
//! * [`engine`] — the fine-tuning engine and the [`Method`](engine::Method) trait.
//! * [`analysis`] — weight distance, Taylor validity, LOO stability on real features and
//!   the paper's bounds (`stab analyze`).
//! * [`methods`] — the fine-tuning method plugins (FineTune, MHLoss, MMR, …), one file each.

pub mod analysis;
pub mod engine;
pub mod linear;
pub mod methods;
pub mod synthetic;

pub use engine::{Engine, Method, MethodPlugin};

/// What `register_method!` expands to (not an API).
#[doc(hidden)]
pub mod __private {
    pub use inventory;
    pub use stab_core::MethodEntry;
    pub use stab_core::params::TypedParams;
}
pub use linear::{AugmentedPoints, LogisticGd, Smo, SvmSolution};
