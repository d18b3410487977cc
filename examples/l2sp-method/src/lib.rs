//! L2-SP as a stab method plugin (Li, Grandvalet & Davoine 2018, "Explicit Inductive Bias
//! for Transfer Learning with Convolutional Networks"): the task loss plus
//!
//! (β/2) · Σ_{w with a pre-trained value} ‖w − w⁰‖²,
//!
//! a penalty pulling the weights that came from the checkpoint towards their pre-trained
//! values w⁰ (the fresh head and a randomly initialised pooler are free).
//!
//! The whole plugin is this file: its parameters declared once with
//! [`stab_core::method_params!`] (the schema, defaults, ranges and docs come from it), the
//! [`Method`] hooks it needs, its [`MethodPlugin`] name and summary, and one
//! `register_method!`. Link it into a binary with `use l2sp_method as _;` (see
//! `src/main.rs`).

use burn::tensor::Tensor;
use stab_core::Refusal;
use stab_methods::engine::{Method, MethodPlugin, StepView, params};

stab_core::method_params! {
    /// CE + (β/2)·‖w − w⁰‖² over the pre-trained weights.
    #[derive(Copy)]
    pub struct L2StartingPoint {
        /// penalty weight β (0 = FineTune)
        pub beta: f64 = float(0.0, 1e6, 0.01),
    }
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

impl MethodPlugin for L2StartingPoint {
    const NAME: &'static str = "l2sp";
    const SUMMARY: &'static str =
        "L2-SP (Li et al. 2018): CE + (β/2)·‖w − w⁰‖² over the pre-trained weights";
    type Params = Self;

    fn from_params(p: Self) -> Result<Self, Refusal> {
        Ok(p)
    }
}

stab_methods::register_method!(L2StartingPoint);
