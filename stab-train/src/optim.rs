//! AdamW as Hugging Face and jiant use it (docs/methods.md §4.1): β 0.9/0.999, ε 1e-8, bias
//! correction, decoupled weight decay on every parameter except those whose name
//! contains `bias` or `LayerNorm` (burn names LayerNorm parameters `layer_norm.gamma/beta`),
//! and PyTorch's `clip_grad_norm_`: one global L2 norm over all trainable gradients.
//! Two options on top: a learning-rate factor per parameter (layer-wise decay), and the
//! original BERT Adam without bias correction (Mosbach et al. 2021 trace failed runs to
//! it; `[train] adam_bias_correction = false`).

use std::collections::BTreeMap;

use burn::module::{Module, ModuleVisitor, Param, ParamGroup, ParamId};
use burn::optim::{
    AdamWConfig, AdaptiveMomentumState, GradientsParams, ModuleOptimizer, Optimizer,
};
use burn::tensor::{Device, Tensor};
use stab_models::{HostReads, KernelPath};

/// Every float parameter's path and id, in module order, as burn-store's snapshot names
/// them (`dense.weight`, `head.Classification.out.bias`).
pub fn param_paths<M: Module>(module: &M) -> Vec<(String, ParamId)> {
    use burn::store::ModuleSnapshot;
    module
        .collect(None, None, false)
        .into_iter()
        .filter_map(|t| Some((t.name, ParamId::from(t.param_id?))))
        .collect()
}

/// Whether a parameter is exempt from weight decay (HF's `no_decay = ["bias", "LayerNorm.weight"]`).
pub fn is_no_decay(path: &str) -> bool {
    path.contains("bias") || path.contains("layer_norm") || path.contains("LayerNorm")
}

pub(crate) fn adamw_config(wd: f64) -> AdamWConfig {
    AdamWConfig::new()
        .with_beta_1(0.9)
        .with_beta_2(0.999)
        .with_epsilon(1e-8)
        .with_weight_decay(wd as f32)
}

/// How the optimiser treats the parameters of one run.
#[derive(Debug, Clone, Copy)]
pub struct AdamWSettings {
    pub weight_decay: f64,
    /// Adam's bias correction of the moments (false: BERT's original Adam).
    pub bias_correction: bool,
}

/// AdamW with weight decay `weight_decay` except on bias and LayerNorm parameters of
/// `module`, every parameter at the schedule's learning rate.
pub fn adamw<M: Module>(module: &M, weight_decay: f64) -> ModuleOptimizer {
    adamw_with(
        module,
        AdamWSettings {
            weight_decay,
            bias_correction: true,
        },
        |_| 1.0,
    )
}

/// AdamW as [`adamw`], with the moments' bias correction switchable and the parameter at
/// path `p` updated at `lr_scale(p)` times the schedule's learning rate.
pub fn adamw_with<M: Module>(
    module: &M,
    settings: AdamWSettings,
    lr_scale: impl Fn(&str) -> f64,
) -> ModuleOptimizer {
    // Parameter groups by (lr factor, decayed); the base group is (1, decayed).
    let mut groups: BTreeMap<(u64, bool), Vec<ParamId>> = BTreeMap::new();
    for (path, id) in param_paths(module) {
        let scale = lr_scale(&path);
        groups
            .entry((scale.to_bits(), !is_no_decay(&path)))
            .or_default()
            .push(id);
    }
    let wd = settings.weight_decay;
    let bc = settings.bias_correction;
    let mut optim = if bc {
        adamw_config(wd).init()
    } else {
        ModuleOptimizer::from(BertAdamW::new(wd))
    };
    for ((bits, decayed), ids) in groups {
        let scale = f64::from_bits(bits);
        if scale == 1.0 && decayed {
            continue;
        }
        let wd = if decayed { wd } else { 0.0 };
        let group = ParamGroup::from_ids(ids);
        optim = match (bc, scale == 1.0) {
            (true, true) => optim.with_group(group, adamw_config(wd).build(), None),
            (true, false) => optim.with_group(
                group,
                Scaled {
                    inner: adamw_config(wd).build(),
                    scale,
                },
                None,
            ),
            (false, true) => optim.with_group(group, BertAdamW::new(wd), None),
            (false, false) => optim.with_group(
                group,
                Scaled {
                    inner: BertAdamW::new(wd),
                    scale,
                },
                None,
            ),
        };
    }
    optim
}

/// An optimiser whose learning rate is `scale` times the one it is given.
#[derive(Clone)]
pub struct Scaled<O> {
    pub inner: O,
    pub scale: f64,
}

impl<O: Optimizer> Optimizer for Scaled<O> {
    type State<const D: usize> = O::State<D>;

    fn step<const D: usize>(
        &self,
        lr: f64,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        self.inner.step(lr * self.scale, tensor, grad, state)
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        O::to_device(state, device)
    }
}

/// BERT's original Adam with decoupled weight decay and **no bias correction**:
/// m ← β₁m + (1−β₁)g, v ← β₂v + (1−β₂)g², θ ← θ(1 − lr·λ) − lr·m/(√v + ε), with
/// β = (0.9, 0.999), ε = 1e-8 (Devlin et al.'s `BertAdam`; Mosbach et al. 2021, §5).
#[derive(Clone, Debug)]
pub struct BertAdamW {
    pub weight_decay: f64,
}

impl BertAdamW {
    pub fn new(weight_decay: f64) -> Self {
        Self { weight_decay }
    }
}

impl Optimizer for BertAdamW {
    type State<const D: usize> = AdaptiveMomentumState<D>;

    fn step<const D: usize>(
        &self,
        lr: f64,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
        let state = match state {
            Some(mut s) => {
                s.moment_1 = s
                    .moment_1
                    .mul_scalar(b1)
                    .add(grad.clone().mul_scalar(1.0 - b1));
                s.moment_2 = s
                    .moment_2
                    .mul_scalar(b2)
                    .add(grad.square().mul_scalar(1.0 - b2));
                s.time += 1;
                s
            }
            None => AdaptiveMomentumState::new(
                1,
                grad.clone().mul_scalar(1.0 - b1),
                grad.square().mul_scalar(1.0 - b2),
            ),
        };
        let delta = state
            .moment_1
            .clone()
            .div(state.moment_2.clone().sqrt().add_scalar(eps));
        let decay = lr * self.weight_decay;
        let decayed = if decay == 0.0 {
            tensor
        } else {
            tensor.mul_scalar(1.0 - decay)
        };
        (decayed - delta.mul_scalar(lr), Some(state))
    }

    fn to_device<const D: usize>(mut state: Self::State<D>, device: &Device) -> Self::State<D> {
        state.moment_1 = state.moment_1.to_device(device);
        state.moment_2 = state.moment_2.to_device(device);
        state
    }
}

/// Scale every gradient by `k = min(1, max_norm / (‖g‖ + 1e-6))` (torch
/// `clip_grad_norm_`); returns the global norm ‖g‖ before clipping, on the device.
///
/// On the host the norm is read and the gradients are scaled only when ‖g‖ > max_norm
/// (no pass at all otherwise). On an accelerator k stays a one-element device tensor that
/// every gradient is multiplied by, so clipping reads nothing back.
pub fn clip_global_norm<M: Module>(
    module: &M,
    grads: &mut GradientsParams,
    max_norm: f64,
) -> Option<Tensor<1>> {
    clip_on_path(module, grads, max_norm, None)
}

/// The global L2 norm ‖g‖ of the gradients of `module`'s parameters, on the device
/// (`None` when no parameter has a gradient).
pub fn gradient_norm<M: Module>(module: &M, grads: &GradientsParams) -> Option<Tensor<1>> {
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
    let mut sq = SumSq { grads, acc: None };
    module.visit(&mut sq);
    Some(sq.acc?.sqrt())
}

/// [`clip_global_norm`] on a given kernel path (`None`: the gradients' device's own).
fn clip_on_path<M: Module>(
    module: &M,
    grads: &mut GradientsParams,
    max_norm: f64,
    path: Option<KernelPath>,
) -> Option<Tensor<1>> {
    let norm = gradient_norm(module, grads)?;
    if !(max_norm > 0.0 && max_norm.is_finite()) {
        return Some(norm);
    }
    let path = path.unwrap_or_else(|| KernelPath::of(&norm.device()));
    let factor = if path == KernelPath::Host {
        let value = HostReads::scalar(norm.clone());
        if value <= max_norm {
            return Some(norm);
        }
        Factor::Host(max_norm / (value + 1e-6))
    } else {
        let k = norm.clone().add_scalar(1e-6).recip().mul_scalar(max_norm);
        Factor::Device(Box::new(k.clamp_max(1.0)))
    };
    module.visit(&mut ScaleGrads { grads, factor });
    Some(norm)
}

/// The clipping factor: a number read on the host, or a device tensor.
enum Factor {
    Host(f64),
    Device(Box<Tensor<1>>),
}

struct ScaleGrads<'a> {
    grads: &'a mut GradientsParams,
    factor: Factor,
}

impl ModuleVisitor for ScaleGrads<'_> {
    fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.remove::<D>(p.id) {
            let scaled = match &self.factor {
                Factor::Host(k) => g.mul_scalar(*k),
                Factor::Device(k) => g.mul(k.as_ref().clone().reshape([1; D])),
            };
            self.grads.register::<D>(p.id, scaled);
        }
    }
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

    /// burn-store's snapshot names every parameter of a task model as stab's own walk does,
    /// with the same ids, in the same order (the optimiser's groups hang on both).
    #[test]
    fn snapshot_paths_are_the_walks_paths_on_a_task_model() {
        let config = stab_models::EncoderConfig::parse(
            r#"{"model_type":"deberta-v2","vocab_size":30,"hidden_size":8,"num_hidden_layers":2,
            "num_attention_heads":2,"intermediate_size":16,"max_position_embeddings":64,
            "relative_attention":true,"share_att_key":true,"position_biased_input":false,
            "pos_att_type":["p2c","c2p"],"position_buckets":8,"norm_rel_ebd":"layer_norm"}"#,
            "config.json",
        )
        .unwrap();
        let dev = Device::flex();
        let model = crate::TaskModel {
            encoder: Some(stab_models::Encoder::new(&config, &dev)),
            head: stab_models::TaskHead::span(8, 2, 0.1, Default::default(), 0, &dev),
            pooling: stab_core::Pooling::Mean,
        };
        let walk: Vec<(String, ParamId)> = crate::params::param_info(&model)
            .into_iter()
            .map(|p| (p.path, p.id))
            .collect();
        assert!(walk.len() > 30);
        assert_eq!(param_paths(&model), walk);
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

    /// One AdamW step from zero state on a toy whose loss has gradient `g` on every weight.
    fn first_update(settings: AdamWSettings, scale: f64) -> Vec<f32> {
        let dev = Device::flex().autodiff();
        let m = toy(&dev);
        let x = Tensor::<2>::ones([1, 3], &dev);
        let loss = m.dense.forward(x).sum().mul_scalar(0.5);
        let grads = GradientsParams::from_grads(loss.backward(), &m);
        let before = vals(m.dense.weight.val());
        let mut opt = adamw_with(
            &m,
            settings,
            |p| if p == "dense.weight" { scale } else { 1.0 },
        );
        let after = opt.step(0.01, m, grads);
        vals(after.dense.weight.val())
            .iter()
            .zip(&before)
            .map(|(a, b)| a - b)
            .collect()
    }

    #[test]
    fn bias_correction_off_is_berts_adam_and_lr_scales_apply_per_parameter() {
        let plain = AdamWSettings {
            weight_decay: 0.0,
            bias_correction: true,
        };
        let bert = AdamWSettings {
            bias_correction: false,
            ..plain
        };
        // Corrected Adam's first step is −lr·sign(g); BERT's is −lr·(1−β₁)g/(√((1−β₂)g²)+ε)
        // = −lr·0.1/√0.001 ≈ −3.162·lr for g = 0.5.
        let want = -0.01 * 0.1 * 0.5 / ((0.001f64 * 0.25).sqrt() + 1e-8);
        for d in first_update(plain, 1.0) {
            assert!((d as f64 + 0.01).abs() < 1e-6, "{d}");
        }
        for d in first_update(bert, 1.0) {
            assert!((d as f64 - want).abs() < 1e-5, "{d} vs {want}");
        }
        // A factor on one parameter scales its step, with or without bias correction.
        for d in first_update(plain, 0.25) {
            assert!((d as f64 + 0.0025).abs() < 1e-6, "{d}");
        }
        for d in first_update(bert, 0.5) {
            assert!((d as f64 - 0.5 * want).abs() < 1e-5, "{d}");
        }
    }

    #[test]
    fn clipping_uses_the_global_norm_and_the_device_twin_agrees() {
        let dev = Device::flex().autodiff();
        let m = toy(&dev);
        let grads = || {
            let x = Tensor::<2>::from_data([[1.0f32, -2.0, 3.0]], &dev);
            let loss = m.dense.forward(x).sum().mul_scalar(10.0);
            GradientsParams::from_grads(loss.backward(), &m)
        };
        // d/dW = 10·x per output column, d/db = 10: ‖g‖² = 2·100·14 + 2·100.
        let want = (2.0f64 * 100.0 * 14.0 + 200.0).sqrt();
        let norm_of = |g: &mut GradientsParams, max: f64, path| {
            HostReads::scalar(clip_on_path(&m, g, max, path).unwrap())
        };
        let weight = |g: &GradientsParams| vals(g.get::<2>(m.dense.weight.id).unwrap());
        let mut twins = Vec::new();
        for path in [KernelPath::Host, KernelPath::Accelerator] {
            let mut g = grads();
            let norm = norm_of(&mut g, 1.0, Some(path));
            assert!((norm - want).abs() < 1e-3, "{path:?}: {norm} vs {want}");
            let after = norm_of(&mut g, f64::INFINITY, Some(path));
            assert!(
                (after - want / (want + 1e-6)).abs() < 1e-5,
                "{path:?}: clipped norm {after}"
            );
            // Under the threshold nothing changes, on either path.
            let mut g = grads();
            let before = weight(&g);
            norm_of(&mut g, 1e3, Some(path));
            assert_eq!(weight(&g), before, "{path:?}");
            let mut g = grads();
            norm_of(&mut g, 1.0, Some(path));
            twins.push(weight(&g));
        }
        for (a, b) in twins[0].iter().zip(&twins[1]) {
            assert!((a - b).abs() < 1e-6, "host {a} vs device twin {b}");
        }
    }
}
