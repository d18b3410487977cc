//! Sharpness-aware minimisation (Foret et al., ICLR 2021; for fine-tuning language
//! models, Bahri et al., ACL 2022; docs/methods.md §12.5). Each update takes two passes
//! over the batch:
//!
//! 1. g = ∇L(w), and the ascent step ε = ρ·g/‖g‖ (‖·‖ the global L2 norm over the
//!    trainable parameters);
//! 2. the update's gradient is ∇L(w + ε), applied at w (clipping and AdamW as usual).
//!
//! Both passes see the same dropout masks (the run's noise stream is rewound for the
//! second), so the ascent targets the stochastic loss the descent then measures. ρ = 0
//! takes the same two passes at w + 0, and is FineTune bit for bit. The recorded loss and
//! terms are those at w.
//!
//! Head tuning: both passes run on the head alone, so SAM may use cached features.

use burn::module::Param;
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use stab_core::Refusal;
use stab_models::HostReads;

use stab_train::optim;
use stab_train::params::{self, ParamRewrite};
use stab_train::{Capabilities, Method, MethodPlugin, StepContext, StepRunner, TaskModel};

stab_core::method_params! {
    /// The gradient at w + ρ·g/‖g‖, applied at w.
    #[derive(Copy)]
    pub struct Sam {
        /// radius ρ of the ascent step (§12.5; Foret et al. 0.05; 0 = FineTune)
        pub rho: f64 = float(0.0, 10.0, 0.05),
    }
}

/// The global L2 norm of the gradients of `model`'s parameters (one host read).
pub fn gradient_norm(model: &TaskModel, grads: &GradientsParams) -> f64 {
    optim::gradient_norm(model, grads).map_or(0.0, HostReads::scalar)
}

/// `model` at w + ρ·g/‖g‖ (parameters without a gradient unchanged), with the same
/// parameter ids, so its gradients apply to `model`.
pub fn ascent_point(model: &TaskModel, grads: &GradientsParams, rho: f64) -> TaskModel {
    struct Ascend<'a> {
        grads: &'a GradientsParams,
        scale: f64,
    }
    impl ParamRewrite for Ascend<'_> {
        fn rewrite<const D: usize>(
            &mut self,
            _: &str,
            param: Param<Tensor<D>>,
        ) -> Param<Tensor<D>> {
            let Some(g) = self.grads.get::<D>(param.id) else {
                return param;
            };
            let scale = self.scale;
            param.map(|w| (w.inner() + g.mul_scalar(scale)).autodiff().require_grad())
        }
    }
    let norm = gradient_norm(model, grads);
    let scale = if norm > 0.0 { rho / norm } else { 0.0 };
    params::rewrite(model.clone(), &mut Ascend { grads, scale })
}

impl Method for Sam {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            overrides_step: true,
            ..Capabilities::default()
        }
    }

    fn train_step(
        &self,
        model: &TaskModel,
        runner: &dyn StepRunner,
        ctx: &StepContext,
    ) -> Option<(f64, GradientsParams)> {
        let masks_from = ctx.noise.calls();
        let (loss, grads) = runner.loss_and_gradients(model);
        if !loss.is_finite() {
            return Some((loss, grads));
        }
        let perturbed = ascent_point(model, &grads, self.rho);
        drop(grads);
        ctx.noise.rewind_to(masks_from);
        let (_, at_ascent) = runner.loss_and_gradients(&perturbed);
        Some((loss, at_ascent))
    }
}

impl MethodPlugin for Sam {
    const NAME: &'static str = "sam";
    const SUMMARY: &'static str = "sharpness-aware minimisation (Foret et al. 2021): the gradient at w + ρ·g/‖g‖, applied at w";
    const COST: f64 = 2.0;
    type Params = Self;

    fn from_params(p: Self) -> Result<Self, Refusal> {
        Ok(p)
    }
}

stab_train::register_method!(Sam);
