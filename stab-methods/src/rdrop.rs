//! R-Drop (Liang et al., NeurIPS 2021; docs/methods.md §12.1): every training batch goes
//! through the model twice with independent dropout masks, and the loss is
//!
//! `L = CE(p₁) + CE(p₂) + α·½[KL(p₁‖p₂) + KL(p₂‖p₁)]`,
//!
//! p₁, p₂ the two passes' class distributions, the KL averaged over the batch (and the
//! output layers of a multi-head model). The first pass is the engine's; the second pass
//! and the KL are this method's terms, `rdrop_ce` and `rdrop_kl`. With α = 0 R-Drop still
//! trains on two dropout passes (not FineTune). Under AdamW the sum of the two
//! cross-entropies (the paper's) and their mean differ only through clipping.
//!
//! Head tuning: on cached features the two passes differ by the head's dropout, so
//! R-Drop regularises the head's dropout noise there and may use cached features.

use burn::tensor::Tensor;
use burn::tensor::activation::log_softmax;
use stab_core::Refusal;

use stab_train::{Capabilities, Method, MethodPlugin, SeedBatching, StepView, cross_entropy};

stab_core::method_params! {
    /// CE of both dropout passes + α·½·KL_sym.
    #[derive(Copy)]
    pub struct RDrop {
        /// weight α of the symmetric KL between the two dropout passes (§12.1; Liang et al. use 0.1–5 on GLUE)
        pub alpha: f64 = float(0.0, 1e6, 1.0),
    }
}

/// `KL(p‖q) + KL(q‖p)` of the softmax distributions of logits `[H, B, C]`, averaged over
/// the H·B rows: `Σ_c (p_c − q_c)(log p_c − log q_c)` per row. A one-element tensor.
pub fn symmetric_kl(a: Tensor<3>, b: Tensor<3>) -> Tensor<1> {
    let [h, n, _] = a.dims();
    let (la, lb) = (log_softmax(a, 2), log_softmax(b, 2));
    let gap = la.clone().exp() - lb.clone().exp();
    (gap * (la - lb))
        .sum()
        .div_scalar((h * n) as f64)
        .reshape([1])
}

impl Method for RDrop {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            seed_batch: SeedBatching::StackedWithTerms,
            ..Capabilities::default()
        }
    }

    fn loss_terms(&self, step: &StepView) -> Vec<(&'static str, Tensor<1>)> {
        let second = step.forward_again();
        let ce = cross_entropy(second.head.logits.clone(), step.labels, step.ctx.device);
        let kl = symmetric_kl(step.forward.head.logits.clone(), second.head.logits);
        vec![
            ("rdrop_ce", ce),
            ("rdrop_kl", kl.mul_scalar(self.alpha / 2.0)),
        ]
    }
}

impl MethodPlugin for RDrop {
    const NAME: &'static str = "rdrop";
    const SUMMARY: &'static str = "R-Drop (Liang et al. 2021): two dropout passes, CE of both + α·½·symmetric KL between them";
    const COST: f64 = 2.0;
    type Params = Self;

    fn from_params(p: Self) -> Result<Self, Refusal> {
        Ok(p)
    }
}

stab_train::register_method!(RDrop);

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    #[test]
    fn symmetric_kl_matches_the_definition_by_hand() {
        let dev = Device::flex();
        let a = [[1.0f32, 0.0, -1.0], [0.5, 0.5, 2.0]];
        let b = [[0.0f32, 0.3, 0.1], [2.0, -1.0, 0.0]];
        let softmax = |r: &[f32; 3]| {
            let z: f64 = r.iter().map(|&x| (x as f64).exp()).sum();
            r.map(|x| (x as f64).exp() / z)
        };
        let kl = |p: [f64; 3], q: [f64; 3]| -> f64 {
            p.iter().zip(&q).map(|(p, q)| p * (p / q).ln()).sum()
        };
        let want: f64 = (0..2)
            .map(|i| {
                let (p, q) = (softmax(&a[i]), softmax(&b[i]));
                kl(p, q) + kl(q, p)
            })
            .sum::<f64>()
            / 2.0;
        let t =
            |v: [[f32; 3]; 2]| Tensor::<3>::from_data(TensorData::new(v.concat(), [1, 2, 3]), &dev);
        let got = symmetric_kl(t(a), t(b)).into_scalar::<f64>();
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        assert!(symmetric_kl(t(a), t(a)).into_scalar::<f64>().abs() < 1e-7);
    }
}
