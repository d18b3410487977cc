//! The optimiser of a seed batch (docs/methods.md §4.5): each member's global-norm clip
//! factor, and AdamW (or BERT's Adam) over the stacked head in one fused pass per
//! parameter on the host.
//!
//! A solo run's AdamW is a chain of elementwise tensor ops, each a pass over the weights
//! (`m ← m·β₁ + g·(1−β₁)`, …). For K stacked members each pass streams K times the
//! weights through memory, which made a batch slower than its runs alone (MiniLM's dense
//! head layer is 590 KB a member). Here every element goes through the same f32
//! operations in the same order — IEEE-exact, no fused multiply-add — in one loop, so a
//! member's update is bit for bit its solo run's and the batch reads its state once.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;
use stab_models::HostReads;

use crate::method::Method;
use crate::model::TaskModel;
use crate::optim::is_no_decay;
use crate::params::{self, ParamRewrite};
use crate::setup::RunSetup;

/// β₁, β₂ and ε of every stab AdamW (`crate::optim`).
const BETA_1: f32 = 0.9;
const BETA_2: f32 = 0.999;
const EPSILON: f32 = 1e-8;

/// Each member's clip factor (`clip_global_norm` per member): `max_norm / (‖g‖ + 1e-6)`
/// when its norm ‖g‖ — over its rows of every gradient, in the module's order — exceeds
/// `max_norm`, else exactly 1.
pub(super) fn clip_factors<M: Module>(
    module: &M,
    grads: &GradientsParams,
    max_norm: f64,
    k: usize,
) -> Vec<f32> {
    struct SumSq<'a> {
        grads: &'a GradientsParams,
        k: usize,
        acc: Option<Tensor<2>>,
    }
    impl ModuleVisitor for SumSq<'_> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(p.id) {
                let n = g.shape().num_elements();
                let s = g.reshape([self.k, n / self.k]).square().sum_dim(1);
                self.acc = Some(match self.acc.take() {
                    Some(a) => a + s,
                    None => s,
                });
            }
        }
    }
    if !(max_norm > 0.0 && max_norm.is_finite()) {
        return vec![1.0; k];
    }
    let mut sq = SumSq {
        grads,
        k,
        acc: None,
    };
    module.visit(&mut sq);
    let Some(acc) = sq.acc else {
        return vec![1.0; k];
    };
    HostReads::values(acc.sqrt())
        .iter()
        .map(|&v| {
            let v = f64::from(v);
            if v <= max_norm {
                1.0
            } else {
                (max_norm / (v + 1e-6)) as f32
            }
        })
        .collect()
}

/// A parameter's moments, flat, member after member.
struct Moments {
    m: Vec<f32>,
    v: Vec<f32>,
    /// Updates so far.
    time: i32,
}

/// AdamW over the stacked head: per parameter (in the module's order) its lr factor,
/// weight decay and moments.
pub(super) struct MemberAdamW {
    rules: Vec<(f64, f64)>,
    states: Vec<Option<Moments>>,
    bias_correction: bool,
}

impl MemberAdamW {
    pub(super) fn new(model: &TaskModel, s: &RunSetup) -> Self {
        let train = &s.job.train;
        let layers = s.config.num_hidden_layers;
        let rules: Vec<(f64, f64)> = crate::optim::param_paths(model)
            .into_iter()
            .map(|(path, _)| {
                let wd = if is_no_decay(&path) {
                    0.0
                } else {
                    train.weight_decay
                };
                (s.method.lr_scale(&path, layers), wd)
            })
            .collect();
        Self {
            states: rules.iter().map(|_| None).collect(),
            rules,
            bias_correction: train.adam_bias_correction,
        }
    }

    /// One step at learning rate `lr`, member k's gradient scaled by `factors[k]` first
    /// (its clip).
    pub(super) fn step(
        &mut self,
        lr: f64,
        model: TaskModel,
        mut grads: GradientsParams,
        factors: &[f32],
    ) -> TaskModel {
        struct Update<'a> {
            optim: &'a mut MemberAdamW,
            grads: &'a mut GradientsParams,
            lr: f64,
            factors: &'a [f32],
            index: usize,
        }
        impl ParamRewrite for Update<'_> {
            fn rewrite<const D: usize>(
                &mut self,
                _path: &str,
                param: Param<Tensor<D>>,
            ) -> Param<Tensor<D>> {
                let i = self.index;
                self.index += 1;
                let Some(grad) = self.grads.remove::<D>(param.id) else {
                    return param;
                };
                let (id, tensor, _) = param.consume();
                let shape = tensor.shape();
                let device = tensor.device();
                let mut p = host(tensor.inner());
                let g = host(grad);
                self.optim.update(i, self.lr, &mut p, &g, self.factors);
                let next =
                    Tensor::<D>::from_data(TensorData::new(p, shape), &device.without_autodiff());
                Param::initialized(id, Tensor::from_inner(next).require_grad())
            }
        }
        params::rewrite(
            model,
            &mut Update {
                optim: self,
                grads: &mut grads,
                lr,
                factors,
                index: 0,
            },
        )
    }

    /// Parameter `i`'s update in place: burn's `AdamW::step` (or `crate::optim::BertAdamW`)
    /// element by element, with the same f32 operations in the same order.
    fn update(&mut self, i: usize, lr: f64, p: &mut [f32], g: &[f32], factors: &[f32]) {
        let (scale, wd) = self.rules[i];
        let lr = if scale == 1.0 { lr } else { lr * scale };
        let per = p.len() / factors.len();
        let first = self.states[i].is_none();
        let state = self.states[i].get_or_insert_with(|| Moments {
            m: vec![0.0; p.len()],
            v: vec![0.0; p.len()],
            time: 0,
        });
        state.time += 1;
        let rule = Rule::new(lr, wd, state.time, self.bias_correction, first);
        p.par_chunks_mut(per)
            .zip(g.par_chunks(per))
            .zip(state.m.par_chunks_mut(per))
            .zip(state.v.par_chunks_mut(per))
            .zip(factors.par_iter())
            .for_each(|((((p, g), m), v), &factor)| adam(p, g, m, v, factor, rule));
    }

    /// Keep the state rows of the members at positions `keep` of `k`.
    pub(super) fn keep(&mut self, keep: &[usize], k: usize) {
        let rows = |t: &[f32]| {
            let per = t.len() / k;
            keep.iter()
                .flat_map(|&p| t[p * per..(p + 1) * per].iter().copied())
                .collect::<Vec<f32>>()
        };
        for state in self.states.iter_mut().flatten() {
            state.m = rows(&state.m);
            state.v = rows(&state.v);
        }
    }
}

/// The scalars of one parameter's step, as burn's optimisers convert them to f32. Where
/// a solo step skips an op, the factor here is exactly 1 (x·1 = x/1 = x in IEEE
/// arithmetic), so one branch-free loop serves every case.
#[derive(Clone, Copy)]
struct Rule {
    /// `1 − lr·λ` as the decay's `mul_scalar` takes it (1 when lr·λ = 0).
    decay: f32,
    lr: f32,
    /// `1 − β₁ᵗ`, `1 − β₂ᵗ` with bias correction (1 without: BERT's Adam).
    c1: f32,
    c2: f32,
    /// The first step: the moments start from the gradient.
    first: bool,
}

impl Rule {
    fn new(lr: f64, wd: f64, time: i32, bias_correction: bool, first: bool) -> Self {
        // AdamW holds its decay as f32 (`AdamWConfig::with_weight_decay`); BERT's Adam as f64.
        let decay_rate = if bias_correction {
            lr * f64::from(wd as f32)
        } else {
            lr * wd
        };
        let (c1, c2) = if bias_correction {
            (1f32 - BETA_1.powi(time), 1f32 - BETA_2.powi(time))
        } else {
            (1.0, 1.0)
        };
        Self {
            decay: if decay_rate == 0.0 {
                1.0
            } else {
                (1.0 - decay_rate) as f32
            },
            lr: lr as f32,
            c1,
            c2,
            first,
        }
    }
}

stab_models::multiversion! {
    /// One member's rows of a parameter: clip (exactly `g` when `factor` is 1), moments,
    /// step — the solo optimiser's f32 operations in its order, vectorised.
    fn adam(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], factor: f32, r: Rule) {
        let (f1, f2) = (1.0 - BETA_1, 1.0 - BETA_2);
        let n = p.len();
        let (g, m, v) = (&g[..n], &mut m[..n], &mut v[..n]);
        if r.first {
            for j in 0..n {
                let g = g[j] * factor;
                m[j] = g * f1;
                v[j] = (g * g) * f2;
            }
        } else {
            for j in 0..n {
                let g = g[j] * factor;
                m[j] = m[j] * BETA_1 + g * f1;
                v[j] = v[j] * BETA_2 + (g * g) * f2;
            }
        }
        for j in 0..n {
            let delta = (m[j] / r.c1) / ((v[j] / r.c2).sqrt() + EPSILON);
            p[j] = p[j] * r.decay - delta * r.lr;
        }
    }
}

/// A float tensor's values on the host (a head's parameter or gradient).
fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 values")
}
