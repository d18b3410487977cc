//! # stab-analysis
//!
//! Measurements that explain stability (`stab analyze`; docs/methods.md §8–9).
//!
//! * [`distance`] — how far fine-tuning moved the weights (Table 6; [`WeightDistance`]).
//! * [`taylor`] — whether a second-order Taylor expansion describes the loss around the
//!   fine-tuned weights (Fig. 11; [`TaylorValidity`]), with a central-difference
//!   Hessian-vector product ([`Objective`]).
//! * [`loo`] — leave-one-out stability of heads trained on a real task's frozen features
//!   ([`HeadLooStability`]).
//! * [`bounds`] — the paper's stability bounds evaluated from measured constants
//!   ([`BoundTerms`]).

pub mod bounds;
pub mod distance;
pub mod loo;
pub mod taylor;

pub use bounds::{BoundConstants, BoundTerms};
pub use distance::{DistanceRow, WeightDistance, weight_distance, weight_distance_on};
pub use loo::{HeadLooStability, LinearLooSettings, linear_head_loo};
pub use taylor::{ModelLoss, Objective, TaylorSettings, TaylorValidity, taylor_validity};
