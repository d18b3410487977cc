//! Is the loss near the fine-tuned weights quadratic? (docs/methods.md §8.2, the paper's
//! Fig. 11 and Eq. 17–18.)
//!
//! For perturbations w = w* ⊙ (1 + p(U − 0.5)), U ~ Uniform[0, 1) element-wise, the
//! second-order Taylor estimate f̂(w) = f(w*) + gᵀr + ½ rᵀHr, r = w − w*, g = ∇f(w*), is
//! compared with f(w): the normalised gap |f̂ − f| / |f| per p. burn has no double
//! backward, so the quadratic form is a central difference of gradients,
//! rᵀHr ≈ r·(∇f(w* + hr) − ∇f(w* − hr)) / (2h), with error O(h²); everything is f64.
//!
//! [`Objective`] abstracts f: closed forms in the tests, and [`ModelLoss`] — a task model's
//! mean cross-entropy on a fixed batch in eval mode — for real checkpoints.

use std::collections::BTreeMap;

use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use stab_eval::stats::Summary;

use stab_train::model::{TaskModel, TokenInput};
use stab_train::params::{self, ParamTransform};
use stab_train::run::cross_entropy;

/// A differentiable scalar function of a flat f64 parameter vector.
pub trait Objective {
    /// Number of parameters.
    fn dim(&self) -> usize;
    /// f(w) and ∇f(w).
    fn value_grad(&mut self, w: &[f64]) -> stab_core::Result<(f64, Vec<f64>)>;
    /// f(w) (the default computes the gradient too).
    fn value(&mut self, w: &[f64]) -> stab_core::Result<f64> {
        Ok(self.value_grad(w)?.0)
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// rᵀ∇²f(w)r by central differences of gradients with step h.
pub fn quadratic_form(
    f: &mut dyn Objective,
    w: &[f64],
    r: &[f64],
    h: f64,
) -> stab_core::Result<f64> {
    let shifted = |s: f64| -> Vec<f64> { w.iter().zip(r).map(|(a, b)| a + s * b).collect() };
    let (_, gp) = f.value_grad(&shifted(h))?;
    let (_, gm) = f.value_grad(&shifted(-h))?;
    Ok(r.iter()
        .zip(gp.iter().zip(&gm))
        .map(|(ri, (p, m))| ri * (p - m))
        .sum::<f64>()
        / (2.0 * h))
}

/// The Taylor check's settings.
#[derive(Debug, Clone, Serialize)]
pub struct TaylorSettings {
    /// Perturbation sizes p.
    pub ps: Vec<f64>,
    /// Perturbations per p.
    pub repeats: usize,
    /// Central-difference step h (relative to r).
    pub h: f64,
    pub seed: u64,
}

impl Default for TaylorSettings {
    /// docs/methods.md §8.2: p ∈ {0.001 … 0.05}, 100 repeats, h = 1e-3.
    fn default() -> Self {
        Self {
            ps: vec![0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05],
            repeats: 100,
            h: 1e-3,
            seed: 0,
        }
    }
}

/// The gaps at one p.
#[derive(Debug, Clone, Serialize)]
pub struct TaylorPoint {
    pub p: f64,
    /// |f̂ − f| / |f| per repeat.
    pub gaps: Vec<f64>,
    pub mean: f64,
    pub sd: f64,
    pub max: f64,
    /// Mean of f(w) − f(w*), and of the first- and second-order terms, for the record.
    pub mean_change: f64,
    pub mean_linear: f64,
    pub mean_quadratic: f64,
}

/// The Taylor check's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct TaylorValidity {
    pub settings: TaylorSettings,
    pub params: usize,
    pub f_star: f64,
    pub grad_norm: f64,
    /// The largest observed curvature rᵀHr/‖r‖² (a lower estimate of the smoothness β).
    pub max_curvature: f64,
    pub points: Vec<TaylorPoint>,
}

/// Run the check around `w_star`.
pub fn taylor_validity(
    f: &mut dyn Objective,
    w_star: &[f64],
    settings: &TaylorSettings,
    mut progress: impl FnMut(usize, usize),
) -> stab_core::Result<TaylorValidity> {
    if w_star.len() != f.dim() {
        return Err(stab_core::internal!("w* has the wrong length"));
    }
    let (f_star, g) = f.value_grad(w_star)?;
    let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
    let mut points = Vec::new();
    let mut max_curvature = f64::NEG_INFINITY;
    let total = settings.ps.len() * settings.repeats;
    let mut done = 0;
    for &p in &settings.ps {
        let mut gaps = Vec::new();
        let (mut change, mut lin, mut quad) = (0.0, 0.0, 0.0);
        for _ in 0..settings.repeats {
            let r: Vec<f64> = w_star
                .iter()
                .map(|&w| w * p * (rng.random::<f64>() - 0.5))
                .collect();
            let w: Vec<f64> = w_star.iter().zip(&r).map(|(a, b)| a + b).collect();
            let fw = f.value(&w)?;
            let linear = dot(&g, &r);
            let rhr = quadratic_form(f, w_star, &r, settings.h)?;
            let estimate = f_star + linear + 0.5 * rhr;
            gaps.push((estimate - fw).abs() / fw.abs());
            let rr = dot(&r, &r);
            if rr > 0.0 {
                max_curvature = max_curvature.max(rhr / rr);
            }
            change += fw - f_star;
            lin += linear;
            quad += 0.5 * rhr;
            done += 1;
            progress(done, total);
        }
        let k = settings.repeats.max(1) as f64;
        let s = Summary::of(&gaps);
        points.push(TaylorPoint {
            p,
            mean: s.mean,
            sd: s.sd,
            max: gaps.iter().copied().fold(0.0, f64::max),
            gaps,
            mean_change: change / k,
            mean_linear: lin / k,
            mean_quadratic: quad / k,
        });
    }
    Ok(TaylorValidity {
        settings: settings.clone(),
        params: w_star.len(),
        f_star,
        grad_norm: dot(&g, &g).sqrt(),
        max_curvature,
        points,
    })
}

/// A task model's mean cross-entropy (of the averaged logits) on one fixed batch, in eval
/// mode, as a function of every parameter the forward pass uses (encoder and head; the MLM
/// head is left out). Build it on an f64 autodiff device.
pub struct ModelLoss {
    model: TaskModel,
    input: TokenInput,
    labels: Vec<usize>,
    device: Device,
    /// Parameter paths and sizes, in the order of the flat vector.
    layout: Vec<(String, usize)>,
}

impl ModelLoss {
    /// `model` must have its encoder (a full checkpoint); dropout is switched off.
    pub fn new(
        model: TaskModel,
        input: TokenInput,
        labels: Vec<usize>,
        device: &Device,
    ) -> stab_core::Result<Self> {
        if model.encoder.is_none() {
            return Err(stab_core::internal!(
                "the Taylor check needs the encoder's weights (a full fine-tuning checkpoint)"
            ));
        }
        let model = stab_models::without_dropout(model);
        let layout = params::collect(&model)
            .into_iter()
            .filter(|(k, _)| used(k))
            .map(|(k, p)| (k, p.shape.iter().product()))
            .collect();
        Ok(Self {
            model,
            input,
            labels,
            device: device.clone(),
            layout,
        })
    }

    /// The model's current parameters as one f64 vector.
    pub fn vector(&self) -> stab_core::Result<Vec<f64>> {
        let all = params::collect(&self.model);
        let mut out = Vec::new();
        for (path, _) in &self.layout {
            let v = all[path]
                .values
                .clone()
                .into_data()
                .convert::<f64>()
                .try_into_vec::<f64>()
                .map_err(|e| stab_core::internal!("{e:?}"))?;
            out.extend(v);
        }
        Ok(out)
    }

    /// Parameter paths and element counts, in the order of the flat vector.
    pub fn layout(&self) -> Vec<(String, usize)> {
        self.layout.clone()
    }

    fn with(&self, w: &[f64]) -> TaskModel {
        struct Fill<'a> {
            offsets: BTreeMap<&'a str, usize>,
            w: &'a [f64],
        }
        impl ParamTransform for Fill<'_> {
            fn apply<const D: usize>(&mut self, path: &str, value: Tensor<D>) -> Tensor<D> {
                let Some(&at) = self.offsets.get(path) else {
                    return value;
                };
                let dims = value.dims();
                let n: usize = dims.iter().product();
                let t = Tensor::<D>::from_data(
                    TensorData::new(self.w[at..at + n].to_vec(), dims.to_vec()),
                    &value.device(),
                );
                t.require_grad()
            }
        }
        let mut offsets = BTreeMap::new();
        let mut at = 0;
        for (path, n) in &self.layout {
            offsets.insert(path.as_str(), at);
            at += n;
        }
        params::transform(self.model.clone(), &mut Fill { offsets, w })
    }
}

/// Whether a parameter takes part in the classification forward pass.
fn used(path: &str) -> bool {
    !path.starts_with("encoder.mlm.")
}

impl Objective for ModelLoss {
    fn dim(&self) -> usize {
        self.layout.iter().map(|(_, n)| n).sum()
    }

    fn value_grad(&mut self, w: &[f64]) -> stab_core::Result<(f64, Vec<f64>)> {
        let model = self.with(w);
        let forward = model.forward_tokens(&self.input, &self.device);
        let [_, b, c] = forward.head.logits.dims();
        let mean = forward.head.logits.clone().mean_dim(0).reshape([1, b, c]);
        let loss = cross_entropy(mean, &self.labels, &self.device);
        let value = loss.clone().into_scalar::<f64>();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let mut by_path: BTreeMap<String, Tensor<1>> =
            params::gradients(&model, &grads).into_iter().collect();
        let mut g = Vec::with_capacity(w.len());
        for (path, n) in &self.layout {
            match by_path.remove(path) {
                Some(t) => g.extend(
                    t.into_data()
                        .convert::<f64>()
                        .try_into_vec::<f64>()
                        .map_err(|e| {
                            stab_core::internal!("cannot read the gradient of {path}: {e:?}")
                        })?,
                ),
                None => g.extend(std::iter::repeat_n(0.0, *n)),
            }
        }
        Ok((value, g))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// f(w) = ½ wᵀAw + bᵀw + c with A symmetric.
    struct Quadratic {
        a: Vec<f64>,
        b: Vec<f64>,
        c: f64,
    }

    impl Objective for Quadratic {
        fn dim(&self) -> usize {
            self.b.len()
        }
        fn value_grad(&mut self, w: &[f64]) -> stab_core::Result<(f64, Vec<f64>)> {
            let d = self.dim();
            let aw: Vec<f64> = (0..d)
                .map(|i| dot(&self.a[i * d..(i + 1) * d], w))
                .collect();
            let f = 0.5 * dot(w, &aw) + dot(&self.b, w) + self.c;
            Ok((f, aw.iter().zip(&self.b).map(|(x, y)| x + y).collect()))
        }
    }

    /// Mean logistic loss of labelled points (x_i, y_i): f(w) = mean log(1 + e^(−y wᵀx)).
    struct Logistic {
        x: Vec<Vec<f64>>,
        y: Vec<f64>,
    }

    impl Objective for Logistic {
        fn dim(&self) -> usize {
            self.x[0].len()
        }
        fn value_grad(&mut self, w: &[f64]) -> stab_core::Result<(f64, Vec<f64>)> {
            let n = self.x.len() as f64;
            let mut f = 0.0;
            let mut g = vec![0.0; self.dim()];
            for (x, y) in self.x.iter().zip(&self.y) {
                let u = y * dot(w, x);
                f += (1.0 + (-u).exp()).ln() / n;
                let s = 1.0 / (1.0 + u.exp());
                for (gk, xk) in g.iter_mut().zip(x) {
                    *gk -= s * y * xk / n;
                }
            }
            Ok((f, g))
        }
    }

    fn rel(a: f64, b: f64) -> f64 {
        (a - b).abs() / b.abs()
    }

    #[test]
    fn hvp_matches_a_quadratic_exactly() {
        let a = vec![4.0, 1.0, 0.5, 1.0, 3.0, -0.2, 0.5, -0.2, 2.0];
        let mut q = Quadratic {
            a: a.clone(),
            b: vec![0.3, -1.0, 2.0],
            c: 1.5,
        };
        let r = [0.7, -0.4, 1.1];
        let exact: f64 = (0..3).map(|i| r[i] * dot(&a[i * 3..i * 3 + 3], &r)).sum();
        let est = quadratic_form(&mut q, &[0.1, 0.2, -0.3], &r, 1e-3).unwrap();
        assert!(rel(est, exact) < 1e-6, "{est} vs {exact}");
    }

    #[test]
    fn hvp_matches_logistic_regression_closed_form() {
        // ∇²f = mean σ(u)(1 − σ(u)) x xᵀ, so rᵀHr = mean σ(1 − σ)(rᵀx)².
        let x = vec![
            vec![1.0, 0.5, -1.0],
            vec![-0.3, 2.0, 1.0],
            vec![0.8, -1.2, 1.0],
            vec![1.5, 0.1, -1.0],
        ];
        let y: Vec<f64> = vec![1.0, -1.0, 1.0, -1.0];
        let w = [0.4, -0.7, 0.2];
        let r = [0.3, 0.9, -0.5];
        let exact: f64 = x
            .iter()
            .zip(&y)
            .map(|(xi, yi)| {
                let s = 1.0 / (1.0 + (-yi * dot(&w, xi)).exp());
                s * (1.0 - s) * dot(&r, xi).powi(2)
            })
            .sum::<f64>()
            / 4.0;
        let mut f = Logistic { x, y };
        let est = quadratic_form(&mut f, &w, &r, 1e-3).unwrap();
        assert!(rel(est, exact) < 1e-6, "{est} vs {exact}");
    }

    #[test]
    fn the_taylor_gap_of_a_quadratic_is_zero() {
        let mut q = Quadratic {
            a: vec![2.0, 0.3, 0.3, 1.0],
            b: vec![-1.0, 0.5],
            c: 3.0,
        };
        let settings = TaylorSettings {
            ps: vec![0.01, 0.5],
            repeats: 5,
            ..TaylorSettings::default()
        };
        let out = taylor_validity(&mut q, &[1.0, -2.0], &settings, |_, _| {}).unwrap();
        for p in &out.points {
            assert!(p.max < 1e-10, "p = {}: {}", p.p, p.max);
        }
        // A non-quadratic function has a gap that grows with p.
        let mut f = Logistic {
            x: vec![vec![1.0, 2.0], vec![-1.5, 0.5]],
            y: vec![1.0, -1.0],
        };
        let settings = TaylorSettings {
            ps: vec![0.01, 1.0],
            repeats: 5,
            ..TaylorSettings::default()
        };
        let out = taylor_validity(&mut f, &[0.5, 0.8], &settings, |_, _| {}).unwrap();
        assert!(out.points[1].mean > 100.0 * out.points[0].mean);
    }
}
