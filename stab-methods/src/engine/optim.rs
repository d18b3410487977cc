//! AdamW as Hugging Face and jiant use it (methods-spec §4.1): β 0.9/0.999, ε 1e-8, bias
//! correction, decoupled weight decay on every parameter except those whose name
//! contains `bias` or `LayerNorm` (burn names LayerNorm parameters `layer_norm.gamma/beta`),
//! and PyTorch's `clip_grad_norm_`: one global L2 norm over all trainable gradients.

use burn::module::{Module, ModuleVisitor, Param, ParamGroup, ParamId};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::Tensor;

/// Every float parameter's dotted path and id, in module order.
pub fn param_paths<M: Module>(module: &M) -> Vec<(String, ParamId)> {
    struct Paths {
        stack: Vec<String>,
        out: Vec<(String, ParamId)>,
    }
    impl ModuleVisitor for Paths {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.stack.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.stack.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let path = self
                .stack
                .iter()
                .filter(|s| !s.is_empty())
                .cloned()
                .collect::<Vec<_>>()
                .join(".");
            self.out.push((path, p.id));
        }
    }
    let mut v = Paths {
        stack: Vec::new(),
        out: Vec::new(),
    };
    module.visit(&mut v);
    v.out
}

/// Whether a parameter is exempt from weight decay (HF's `no_decay = ["bias", "LayerNorm.weight"]`).
pub fn is_no_decay(path: &str) -> bool {
    path.contains("bias") || path.contains("layer_norm") || path.contains("LayerNorm")
}

/// AdamW with weight decay `weight_decay` except on bias and LayerNorm parameters of `module`.
pub fn adamw<M: Module>(module: &M, weight_decay: f64) -> ModuleOptimizer {
    let config = |wd: f64| {
        AdamWConfig::new()
            .with_beta_1(0.9)
            .with_beta_2(0.999)
            .with_epsilon(1e-8)
            .with_weight_decay(wd as f32)
    };
    let no_decay: Vec<ParamId> = param_paths(module)
        .into_iter()
        .filter(|(p, _)| is_no_decay(p))
        .map(|(_, id)| id)
        .collect();
    config(weight_decay).init().with_group(
        ParamGroup::from_ids(no_decay),
        config(0.0).build(),
        None,
    )
}

/// Scale every gradient by `max_norm / (‖g‖ + 1e-6)` when the global norm ‖g‖ exceeds
/// `max_norm` (torch `clip_grad_norm_`); returns ‖g‖ before clipping.
pub fn clip_global_norm<M: Module>(module: &M, grads: &mut GradientsParams, max_norm: f64) -> f64 {
    struct SumSq<'a> {
        grads: &'a GradientsParams,
        acc: Option<Tensor<1>>,
    }
    impl ModuleVisitor for SumSq<'_> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(p.id) {
                let s = g.square().sum();
                self.acc = Some(match self.acc.take() {
                    Some(a) => a + s,
                    None => s,
                });
            }
        }
    }
    struct Scale<'a> {
        grads: &'a mut GradientsParams,
        k: f64,
    }
    impl ModuleVisitor for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.remove::<D>(p.id) {
                self.grads.register::<D>(p.id, g.mul_scalar(self.k));
            }
        }
    }
    let mut sq = SumSq { grads, acc: None };
    module.visit(&mut sq);
    let norm = sq.acc.map_or(0.0, |t| t.into_scalar::<f64>()).sqrt();
    if max_norm > 0.0 && norm > max_norm {
        module.visit(&mut Scale {
            grads,
            k: max_norm / (norm + 1e-6),
        });
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
    use burn::tensor::Device;

    #[derive(Module, Debug)]
    struct Toy {
        dense: Linear,
        layer_norm: LayerNorm,
    }

    fn toy(dev: &Device) -> Toy {
        Toy {
            dense: LinearConfig::new(3, 2).init(dev),
            layer_norm: LayerNormConfig::new(2).init(dev),
        }
    }

    fn vals<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_to_vec().unwrap()
    }

    #[test]
    fn weight_decay_skips_bias_and_layer_norm_by_name() {
        let paths: Vec<String> = param_paths(&toy(&Device::flex()))
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(
            paths,
            [
                "dense.weight",
                "dense.bias",
                "layer_norm.gamma",
                "layer_norm.beta"
            ]
        );
        let decayed: Vec<bool> = paths.iter().map(|p| !is_no_decay(p)).collect();
        assert_eq!(decayed, [true, false, false, false]);
        // With zero gradients, one step at lr·wd = 0.05 shrinks only the weight, by exactly 0.95.
        let dev = Device::flex().autodiff();
        let m = toy(&dev);
        let x = Tensor::<2>::ones([1, 3], &dev);
        let loss = m
            .layer_norm
            .forward(m.dense.forward(x))
            .sum()
            .mul_scalar(0.0);
        let grads = GradientsParams::from_grads(loss.backward(), &m);
        let mut opt = adamw(&m, 0.5);
        let before = (
            vals(m.dense.weight.val()),
            vals(m.dense.bias.as_ref().unwrap().val()),
            vals(m.layer_norm.gamma.val()),
        );
        let after = opt.step(0.1, m, grads);
        for (a, b) in vals(after.dense.weight.val()).iter().zip(&before.0) {
            assert!((a - 0.95 * b).abs() < 1e-7, "{a} vs {}", 0.95 * b);
        }
        assert_eq!(vals(after.dense.bias.as_ref().unwrap().val()), before.1);
        assert_eq!(vals(after.layer_norm.gamma.val()), before.2);
    }

    #[test]
    fn clipping_uses_the_global_norm() {
        let dev = Device::flex().autodiff();
        let m = toy(&dev);
        let x = Tensor::<2>::from_data([[1.0f32, -2.0, 3.0]], &dev);
        let loss = m.dense.forward(x).sum().mul_scalar(10.0);
        let mut grads = GradientsParams::from_grads(loss.backward(), &m);
        // d/dW = 10·x per output column, d/db = 10: ‖g‖² = 2·100·14 + 2·100.
        let want = (2.0f64 * 100.0 * 14.0 + 200.0).sqrt();
        let norm = clip_global_norm(&m, &mut grads, 1.0);
        assert!((norm - want).abs() < 1e-3, "{norm} vs {want}");
        let after = clip_global_norm(&m, &mut grads, f64::INFINITY);
        assert!(
            (after - want / (want + 1e-6)).abs() < 1e-5,
            "clipped norm {after}"
        );
    }
}
