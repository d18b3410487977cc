//! Full-batch gradient descent on the logistic loss of a linear head (docs/methods.md §7.3),
//! for many weight vectors in lockstep: the H heads of a multi-head predictor (§7.4), and
//! the paired leave-one-out runs (§7.5) that train the same inits on S^i = S \ {i}.
//!
//! Objective of one vector: f(w) = (1/n) Σ_i ℓ(y_i wᵀx̃_i) + (μ/2)‖w‖², ℓ(u) = log(1+e^{−u}),
//! with x̃ = [x; −1]. Step η = 1/(β_L + μ), β_L = σ_max(X̃)²/(4n), the smoothness of the
//! mean logistic loss (σ_max by power iteration on X̃ᵀX̃). S^i runs keep S's η.

use super::kernel::{AugmentedPoints, sigmoid_neg};

/// GD on one dataset; each weight vector may leave one point out.
#[derive(Debug)]
pub struct LogisticGd<'a> {
    pub data: &'a AugmentedPoints,
    /// Step size η.
    pub eta: f64,
    /// L2 weight μ (0 for the plain logistic loss).
    pub mu: f64,
}

/// λ_max of a symmetric PSD matrix (row-major, d × d) by power iteration.
pub fn largest_eigenvalue(m: &[f64], d: usize) -> f64 {
    let mut v = vec![1.0 / (d as f64).sqrt(); d];
    let mut lambda = 0.0;
    for _ in 0..10_000 {
        let mut mv = vec![0.0; d];
        for a in 0..d {
            for b in 0..d {
                mv[a] += m[a * d + b] * v[b];
            }
        }
        let norm = mv.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm == 0.0 {
            return 0.0;
        }
        let next = norm;
        v = mv.into_iter().map(|x| x / norm).collect();
        if (next - lambda).abs() <= 1e-15 * next {
            return next;
        }
        lambda = next;
    }
    lambda
}

impl<'a> LogisticGd<'a> {
    /// β_L = σ_max(X̃)² / (4n).
    pub fn smoothness(data: &AugmentedPoints) -> f64 {
        largest_eigenvalue(&data.gram(), data.dim) / (4.0 * data.len as f64)
    }

    /// GD with the paper's step η = 1/(β_L + μ).
    pub fn new(data: &'a AugmentedPoints, mu: f64) -> Self {
        let eta = 1.0 / (Self::smoothness(data) + mu);
        Self { data, eta, mu }
    }

    /// One GD step of every vector in `ws` (rows of `dim`). `removed[j] = Some(i)` makes
    /// vector j train on S^i. `scratch` is reused between calls.
    pub fn step(&self, ws: &mut [f64], removed: &[Option<usize>], scratch: &mut Vec<f64>) {
        let d = self.data.dim;
        debug_assert_eq!(ws.len(), removed.len() * d);
        scratch.resize(ws.len(), 0.0);
        self.data.sigmoid_weighted_sums(ws, scratch);
        let n = self.data.len as f64;
        for (j, rem) in removed.iter().enumerate() {
            let w = &mut ws[j * d..(j + 1) * d];
            let g = &mut scratch[j * d..(j + 1) * d];
            let mut n_eff = n;
            if let Some(i) = *rem {
                let z = self.data.z(i);
                let u: f64 = w.iter().zip(&z).map(|(a, b)| a * b).sum();
                let s = sigmoid_neg(u);
                for k in 0..d {
                    g[k] -= s * z[k];
                }
                n_eff = n - 1.0;
            }
            for k in 0..d {
                w[k] += self.eta * (g[k] / n_eff - self.mu * w[k]);
            }
        }
    }

    /// Run `steps` steps; `observe(t, ws)` is called after each step t in `checkpoints`.
    pub fn run(
        &self,
        ws: &mut [f64],
        removed: &[Option<usize>],
        steps: u64,
        checkpoints: &[u64],
        mut observe: impl FnMut(u64, &[f64]),
    ) {
        let mut scratch = Vec::new();
        let mut next = 0;
        for t in 1..=steps {
            self.step(ws, removed, &mut scratch);
            if next < checkpoints.len() && checkpoints[next] == t {
                observe(t, ws);
                next += 1;
            }
        }
    }

    /// ‖∇f(w)‖ on the full set.
    pub fn gradient_norm(&self, w: &[f64]) -> f64 {
        let mut g = vec![0.0; w.len()];
        self.data.sigmoid_weighted_sums(w, &mut g);
        let n = self.data.len as f64;
        g.iter()
            .zip(w)
            .map(|(gk, wk)| (-gk / n + self.mu * wk).powi(2))
            .sum::<f64>()
            .sqrt()
    }

    /// Iterate from `w` until ‖∇f‖ ≤ `tol` (or `max_steps`); returns the steps taken.
    /// Only meaningful for μ > 0, where the optimum is finite.
    pub fn minimize(&self, w: &mut [f64], tol: f64, max_steps: u64) -> u64 {
        let mut scratch = Vec::new();
        for t in 0..max_steps {
            if t % 16 == 0 && self.gradient_norm(w) <= tol {
                return t;
            }
            self.step(w, &[None], &mut scratch);
        }
        max_steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::points::TwoBalls;

    #[allow(clippy::needless_range_loop)]
    fn loss(p: &crate::points::LabeledPoints, w: &[f64], mu: f64) -> f64 {
        let mut l = 0.0;
        for i in 0..p.len() {
            let mut u = -p.y[i] * w[p.dim];
            for k in 0..p.dim {
                u += p.y[i] * w[k] * p.point(i)[k];
            }
            l += (1.0 + (-u).exp()).ln();
        }
        l / p.len() as f64 + 0.5 * mu * w.iter().map(|x| x * x).sum::<f64>()
    }

    #[test]
    fn step_is_a_gradient_step_and_loss_decreases() {
        let p = TwoBalls::with_margin_and_bound(200, 2, 0.5, 3.0).sample(11);
        let a = AugmentedPoints::new(&p);
        let gd = LogisticGd::new(&a, 0.0);
        // Finite-difference gradient check of one step.
        let w0 = vec![0.3, -0.2, 0.1];
        let mut w = w0.clone();
        gd.step(&mut w, &[None], &mut Vec::new());
        for k in 0..3 {
            let h = 1e-6;
            let mut wp = w0.clone();
            wp[k] += h;
            let mut wm = w0.clone();
            wm[k] -= h;
            let grad = (loss(&p, &wp, 0.0) - loss(&p, &wm, 0.0)) / (2.0 * h);
            assert!(
                ((w0[k] - w[k]) / gd.eta - grad).abs() < 1e-7,
                "component {k}"
            );
        }
        let mut prev = loss(&p, &w, 0.0);
        let mut scratch = Vec::new();
        for _ in 0..200 {
            gd.step(&mut w, &[None], &mut scratch);
            let l = loss(&p, &w, 0.0);
            assert!(l <= prev + 1e-15, "GD with η = 1/β_L must descend");
            prev = l;
        }
    }

    #[test]
    fn leave_one_out_vector_equals_training_on_the_smaller_set() {
        let p = TwoBalls::with_margin_and_bound(64, 2, 0.5, 3.0).sample(2);
        let a = AugmentedPoints::new(&p);
        let gd = LogisticGd::new(&a, 0.01);
        let mut ws = vec![0.1, 0.2, -0.3, 0.1, 0.2, -0.3];
        gd.run(&mut ws, &[None, Some(5)], 50, &[], |_, _| {});
        let smaller = p.without(5);
        let b = AugmentedPoints::new(&smaller);
        let gd_b = LogisticGd {
            data: &b,
            eta: gd.eta,
            mu: 0.01,
        };
        let mut w = vec![0.1, 0.2, -0.3];
        gd_b.run(&mut w, &[None], 50, &[], |_, _| {});
        for k in 0..3 {
            assert!(
                (ws[3 + k] - w[k]).abs() < 1e-12,
                "{} vs {}",
                ws[3 + k],
                w[k]
            );
        }
        assert!(
            (ws[0] - w[0]).abs() > 1e-6,
            "removing a point changes the run"
        );
    }

    #[test]
    fn minimize_reaches_a_stationary_point_of_the_regularised_loss() {
        let p = TwoBalls::with_margin_and_bound(300, 2, 0.5, 3.0).sample(4);
        let a = AugmentedPoints::new(&p);
        let gd = LogisticGd::new(&a, 1e-2);
        let mut w = vec![0.0; 3];
        let steps = gd.minimize(&mut w, 1e-10, 1_000_000);
        assert!(steps < 1_000_000);
        assert!(gd.gradient_norm(&w) <= 1e-10);
    }

    #[test]
    fn power_iteration_finds_the_top_eigenvalue() {
        let m = [4.0, 1.0, 0.0, 1.0, 3.0, 0.0, 0.0, 0.0, 1.0];
        let want = (7.0 + 5f64.sqrt()) / 2.0;
        assert!((largest_eigenvalue(&m, 3) - want).abs() < 1e-12);
    }
}
