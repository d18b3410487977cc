//! L2-SP as a stab method plugin (Li, Grandvalet & Davoine 2018, "Explicit Inductive Bias
//! for Transfer Learning with Convolutional Networks"): the task loss plus
//!
//! (β/2) · Σ_{w with a pre-trained value} ‖w − w⁰‖²,
//!
//! a penalty pulling the weights that came from the checkpoint towards their pre-trained
//! values w⁰ (the fresh head and a randomly initialised pooler are free).
//!
//! The whole plugin is this file: a type implementing [`Method`] and one
//! `inventory::submit!` of a [`MethodEntry`] carrying the name, the parameter schema and
//! the build function. Link it into a binary with `use l2sp_method as _;` (see
//! `src/main.rs`).

use burn::tensor::Tensor;
use stab_core::params::{ParamDefault, ParamKind};
use stab_core::{MethodEntry, MethodParams, ParamSpec};
use stab_methods::engine::{Method, StepView, implementation, params};

/// CE + (β/2)·‖w − w⁰‖² over the pre-trained weights.
#[derive(Debug, Clone, Copy)]
pub struct L2StartingPoint {
    pub beta: f64,
}

impl L2StartingPoint {
    /// Σ ‖w − w⁰‖² over the pre-trained parameters of the step's model (`None` when there
    /// are none: head tuning on cached features).
    pub fn squared_distance(step: &StepView) -> Option<Tensor<1>> {
        let now = params::collect(step.model);
        let start = params::collect(step.ctx.start);
        step.ctx
            .pretrained
            .iter()
            .filter(|path| !path.contains(".mlm.")) // the unused MLM head never moves
            .filter_map(|path| {
                let (w, w0) = (now.get(path)?, start.get(path)?);
                Some(
                    (w.values.clone() - w0.values.clone().detach())
                        .square()
                        .sum(),
                )
            })
            .reduce(|a, b| a + b)
    }
}

impl Method for L2StartingPoint {
    fn loss_terms(&self, step: &StepView) -> Vec<(&'static str, Tensor<1>)> {
        if self.beta == 0.0 {
            return Vec::new();
        }
        Self::squared_distance(step)
            .map(|d| vec![("l2sp", d.mul_scalar(self.beta / 2.0))])
            .unwrap_or_default()
    }
}

fn build(p: &MethodParams) -> Result<Box<dyn std::any::Any + Send>, String> {
    implementation(L2StartingPoint {
        beta: p["beta"].as_f64().ok_or("beta must be a number")?,
    })
}

inventory::submit! {
    MethodEntry {
        name: "l2sp",
        summary: "L2-SP (Li et al. 2018): CE + (β/2)·‖w − w⁰‖² over the pre-trained weights",
        params: &[
            ParamSpec {
                name: "beta",
                kind: ParamKind::Float { min: 0.0, max: 1e6 },
                default: ParamDefault::Float(0.01),
                doc: "penalty weight β (0 = FineTune)",
            },
        ],
        validate: |_| Ok(()),
        build,
    }
}
