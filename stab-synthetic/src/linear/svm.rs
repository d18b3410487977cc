//! Linear C-SVM with an unregularised bias, solved by SMO (docs/methods.md §7.3).
//!
//! Primal: min ½‖v‖² + C Σ ξ_i  s.t.  y_i(vᵀx_i − b) ≥ 1 − ξ_i, ξ ≥ 0.
//! Dual:   min ½ αᵀQα − Σ α_i  s.t.  yᵀα = 0, 0 ≤ α ≤ C,  Q_ij = y_i y_j x_iᵀx_j,
//! with v = Σ α_i y_i x_i. SMO with LIBSVM's second-order working-set selection
//! (Fan, Chen & Lin 2005) on the two-variable subproblem; it stops when the maximal
//! KKT violation m(α) − M(α) falls below `tol`. With the linear kernel v is kept
//! explicitly, so the gradient G_i = y_i vᵀx_i − 1 costs O(d) per point and no kernel
//! matrix is stored. The default C = 10⁶ makes it a hard-margin SVM, checked by
//! [`SvmSolution::is_hard_margin`].

use crate::points::LabeledPoints;

/// Largest set whose Gram matrix is cached (5,000² f64 = 200 MB).
const GRAM_MAX_POINTS: usize = 5_000;

/// Solver settings.
#[derive(Debug, Clone, Copy)]
pub struct Smo {
    pub c: f64,
    pub tol: f64,
    pub max_iter: u64,
}

impl Default for Smo {
    fn default() -> Self {
        Self {
            c: 1e6,
            tol: 1e-6,
            max_iter: 50_000_000,
        }
    }
}

/// A solved SVM.
#[derive(Debug, Clone)]
pub struct SvmSolution {
    /// Normal vector v.
    pub v: Vec<f64>,
    /// Bias b: the decision value is vᵀx − b.
    pub b: f64,
    /// Dual variables α.
    pub alpha: Vec<f64>,
    pub c: f64,
    pub iterations: u64,
    /// m(α) − M(α) at the end.
    pub violation: f64,
}

impl SvmSolution {
    /// The augmented weight w = [v; b] (decision value wᵀ[x; −1]).
    pub fn augmented(&self) -> Vec<f64> {
        let mut w = self.v.clone();
        w.push(self.b);
        w
    }
    /// Geometric margin γ_S = 1/‖v‖.
    pub fn margin(&self) -> f64 {
        1.0 / self.v.iter().map(|a| a * a).sum::<f64>().sqrt()
    }
    /// Indices with α_i > 0.
    pub fn support(&self) -> Vec<usize> {
        (0..self.alpha.len())
            .filter(|&i| self.alpha[i] > 0.0)
            .collect()
    }
    /// No α at the box bound C, i.e. the data were separated exactly.
    pub fn is_hard_margin(&self) -> bool {
        self.alpha.iter().all(|&a| a < self.c)
    }
    fn decision(&self, x: &[f64]) -> f64 {
        self.v.iter().zip(x).map(|(a, b)| a * b).sum::<f64>() - self.b
    }
    /// Largest violation of the KKT conditions, in units of the functional margin:
    /// α = 0 ⇒ y f ≥ 1; 0 < α < C ⇒ y f = 1; α = C ⇒ y f ≤ 1; plus |Σ α_i y_i|.
    pub fn kkt_residual(&self, data: &LabeledPoints) -> f64 {
        let mut worst = self
            .alpha
            .iter()
            .zip(&data.y)
            .map(|(a, y)| a * y)
            .sum::<f64>()
            .abs();
        for i in 0..data.len() {
            let m = data.y[i] * self.decision(data.point(i));
            let a = self.alpha[i];
            let r = if a <= 0.0 {
                (1.0 - m).max(0.0)
            } else if a >= self.c {
                (m - 1.0).max(0.0)
            } else {
                (m - 1.0).abs()
            };
            worst = worst.max(r);
        }
        worst
    }
    /// ½‖v‖² − (Σα − ½‖v‖²) relative to ½‖v‖²: the duality gap of the hard-margin
    /// problem once the constraints hold (their violation is [`Self::kkt_residual`]).
    /// With C = 10⁶ the hinge term of the soft primal would turn 1e-12 of rounding in b
    /// into a spurious gap, so the hard-margin check separates the two.
    pub fn relative_objective_gap(&self) -> f64 {
        let vv: f64 = self.v.iter().map(|a| a * a).sum();
        (vv - self.alpha.iter().sum::<f64>()) / (0.5 * vv).max(1.0)
    }
    /// Primal minus dual objective (≥ 0; 0 at the optimum), relative to the primal.
    pub fn relative_duality_gap(&self, data: &LabeledPoints) -> f64 {
        let vv: f64 = self.v.iter().map(|a| a * a).sum();
        let xi: f64 = (0..data.len())
            .map(|i| (1.0 - data.y[i] * self.decision(data.point(i))).max(0.0))
            .sum();
        let primal = 0.5 * vv + self.c * xi;
        let dual = self.alpha.iter().sum::<f64>() - 0.5 * vv;
        (primal - dual) / primal.abs().max(1.0)
    }
}

impl Smo {
    pub fn hard_margin(tol: f64) -> Self {
        Self {
            tol,
            ..Self::default()
        }
    }

    /// Solve the SVM on `data` (both classes must be present).
    pub fn solve(&self, data: &LabeledPoints) -> anyhow::Result<SvmSolution> {
        let n = data.len();
        let d = data.dim;
        let y = &data.y;
        let x = &data.x;
        anyhow::ensure!(
            y.iter().any(|&v| v > 0.0) && y.iter().any(|&v| v < 0.0),
            "the SVM needs both classes"
        );
        let c = self.c;
        let kdiag: Vec<f64> = (0..n)
            .map(|i| data.point(i).iter().map(|a| a * a).sum())
            .collect();
        let dot_raw =
            |i: usize, j: usize| -> f64 { (0..d).map(|k| x[i * d + k] * x[j * d + k]).sum() };
        // High-dimensional features (real encoder features, d in the hundreds): every
        // iteration would recompute two kernel rows at n·d each, so the whole Gram matrix is
        // computed once (same sums, same order: the solution is unchanged). Low d (the
        // synthetic sets) keeps the on-the-fly dots, which are cheaper than the memory.
        let gram: Option<Vec<f64>> = (d >= 16 && n <= GRAM_MAX_POINTS).then(|| {
            use rayon::prelude::*;
            let mut g = vec![0.0; n * n];
            g.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
                for (j, v) in row.iter_mut().enumerate() {
                    *v = dot_raw(i, j);
                }
            });
            g
        });
        let dot = |i: usize, j: usize| -> f64 {
            match &gram {
                Some(g) => g[i * n + j],
                None => dot_raw(i, j),
            }
        };
        let mut alpha = vec![0.0; n];
        let mut v = vec![0.0; d];
        let mut grad = vec![-1.0; n]; // G = Qα − 1
        let mut iterations = 0;
        let mut violation;
        loop {
            // Working set selection (WSS 2).
            let mut gmax = f64::NEG_INFINITY;
            let mut i_sel = usize::MAX;
            let mut gmax2 = f64::NEG_INFINITY;
            for t in 0..n {
                let up = if y[t] > 0.0 {
                    alpha[t] < c
                } else {
                    alpha[t] > 0.0
                };
                let low = if y[t] > 0.0 {
                    alpha[t] > 0.0
                } else {
                    alpha[t] < c
                };
                let mg = -y[t] * grad[t];
                if up && mg >= gmax {
                    gmax = mg;
                    i_sel = t;
                }
                if low && -mg >= gmax2 {
                    gmax2 = -mg;
                }
            }
            violation = gmax + gmax2;
            if violation < self.tol || iterations >= self.max_iter {
                break;
            }
            let i = i_sel;
            let mut j_sel = usize::MAX;
            let mut obj_min = f64::INFINITY;
            for t in 0..n {
                let low = if y[t] > 0.0 {
                    alpha[t] > 0.0
                } else {
                    alpha[t] < c
                };
                if !low {
                    continue;
                }
                let b = gmax + y[t] * grad[t];
                if b > 0.0 {
                    let mut a = kdiag[i] + kdiag[t] - 2.0 * dot(i, t);
                    if a <= 0.0 {
                        a = 1e-12;
                    }
                    let obj = -(b * b) / a;
                    if obj <= obj_min {
                        obj_min = obj;
                        j_sel = t;
                    }
                }
            }
            if j_sel == usize::MAX {
                break;
            }
            let j = j_sel;
            iterations += 1;
            // Two-variable update with clipping (LIBSVM).
            let (old_i, old_j) = (alpha[i], alpha[j]);
            let mut quad = kdiag[i] + kdiag[j] - 2.0 * dot(i, j);
            if quad <= 0.0 {
                quad = 1e-12;
            }
            let (mut ai, mut aj) = (old_i, old_j);
            if y[i] != y[j] {
                let delta = (-grad[i] - grad[j]) / quad;
                let diff = ai - aj;
                ai += delta;
                aj += delta;
                if diff > 0.0 {
                    if aj < 0.0 {
                        aj = 0.0;
                        ai = diff;
                    }
                } else if ai < 0.0 {
                    ai = 0.0;
                    aj = -diff;
                }
                if diff > 0.0 {
                    if ai > c {
                        ai = c;
                        aj = c - diff;
                    }
                } else if aj > c {
                    aj = c;
                    ai = c + diff;
                }
            } else {
                let delta = (grad[i] - grad[j]) / quad;
                let sum = ai + aj;
                ai -= delta;
                aj += delta;
                if sum > c {
                    if ai > c {
                        ai = c;
                        aj = sum - c;
                    }
                } else if aj < 0.0 {
                    aj = 0.0;
                    ai = sum;
                }
                if sum > c {
                    if aj > c {
                        aj = c;
                        ai = sum - c;
                    }
                } else if ai < 0.0 {
                    ai = 0.0;
                    aj = sum;
                }
            }
            alpha[i] = ai;
            alpha[j] = aj;
            let (di, dj) = ((ai - old_i) * y[i], (aj - old_j) * y[j]);
            for k in 0..d {
                v[k] += di * x[i * d + k] + dj * x[j * d + k];
            }
            match &gram {
                // LIBSVM's incremental update, O(n) with the cached kernel.
                Some(g) => {
                    for t in 0..n {
                        grad[t] += y[t] * (di * g[t * n + i] + dj * g[t * n + j]);
                    }
                }
                None => {
                    for t in 0..n {
                        grad[t] = y[t] * (0..d).map(|k| v[k] * x[t * d + k]).sum::<f64>() - 1.0;
                    }
                }
            }
        }
        anyhow::ensure!(
            violation < self.tol,
            "SMO did not converge in {} iterations (violation {violation:e})",
            self.max_iter
        );
        // Recompute v from α to shed accumulated rounding, then b (LIBSVM's ρ).
        v = vec![0.0; d];
        for i in 0..n {
            if alpha[i] > 0.0 {
                for k in 0..d {
                    v[k] += alpha[i] * y[i] * x[i * d + k];
                }
            }
        }
        let (mut ub, mut lb, mut sum_free, mut n_free) =
            (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0usize);
        for t in 0..n {
            let g = y[t] * (0..d).map(|k| v[k] * x[t * d + k]).sum::<f64>() - 1.0;
            let yg = y[t] * g;
            if alpha[t] >= c {
                if y[t] < 0.0 {
                    ub = ub.min(yg)
                } else {
                    lb = lb.max(yg)
                }
            } else if alpha[t] <= 0.0 {
                if y[t] > 0.0 {
                    ub = ub.min(yg)
                } else {
                    lb = lb.max(yg)
                }
            } else {
                sum_free += yg;
                n_free += 1;
            }
        }
        let b = if n_free > 0 {
            sum_free / n_free as f64
        } else {
            (ub + lb) / 2.0
        };
        Ok(SvmSolution {
            v,
            b,
            alpha,
            c,
            iterations,
            violation,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::points::TwoBalls;

    #[test]
    fn two_points() {
        let data = LabeledPoints {
            dim: 2,
            x: vec![1.0, 0.0, -1.0, 0.0],
            y: vec![1.0, -1.0],
        };
        let s = Smo::hard_margin(1e-9).solve(&data).unwrap();
        assert!(
            (s.v[0] - 1.0).abs() < 1e-12 && s.v[1].abs() < 1e-12,
            "{:?}",
            s.v
        );
        assert!(s.b.abs() < 1e-12);
        assert!((s.margin() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn kkt_and_duality_gap_on_random_separable_sets() {
        for seed in 0..20u64 {
            // dim ≥ 16 takes the cached-Gram path with incremental gradients.
            let dim = [2, 3, 5, 24][seed as usize % 4];
            let margin = [0.1, 0.5, 1.0][seed as usize % 3];
            let data = TwoBalls::with_margin_and_bound(400, dim, margin, 3.0).sample(seed);
            let s = Smo::hard_margin(1e-9).solve(&data).unwrap();
            assert!(s.is_hard_margin());
            let kkt = s.kkt_residual(&data);
            let gap = s.relative_objective_gap();
            assert!(kkt < 1e-6, "seed {seed}: KKT residual {kkt:e}");
            assert!(gap.abs() < 1e-6, "seed {seed}: duality gap {gap:e}");
            assert!(s.margin() >= margin - 1e-9, "SVM margin ≥ generator margin");
        }
    }

    #[test]
    fn soft_margin_duality_gap_on_overlapping_classes() {
        for seed in 0..10u64 {
            // Negative γ: the balls overlap, so some ξ_i > 0 and some α_i = C.
            let dim = if seed % 2 == 0 { 2 } else { 32 };
            let data = TwoBalls::with_margin_and_bound(300, dim, -0.5, 3.0).sample(seed);
            let s = Smo {
                c: 1.0,
                tol: 1e-9,
                ..Smo::default()
            }
            .solve(&data)
            .unwrap();
            // (In 32 dimensions 300 points may still be separable.)
            assert!(dim > 2 || !s.is_hard_margin());
            let kkt = s.kkt_residual(&data);
            let gap = s.relative_duality_gap(&data);
            assert!(kkt < 1e-6, "seed {seed}: KKT residual {kkt:e}");
            assert!(
                (0.0..1e-6).contains(&gap.abs()),
                "seed {seed}: duality gap {gap:e}"
            );
        }
    }

    /// Convex hull (Andrew's monotone chain), counter-clockwise.
    fn hull(mut p: Vec<[f64; 2]>) -> Vec<[f64; 2]> {
        p.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let cross = |o: [f64; 2], a: [f64; 2], b: [f64; 2]| {
            (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])
        };
        let mut h: Vec<[f64; 2]> = Vec::new();
        for pass in 0..2 {
            let start = h.len();
            let iter: Box<dyn Iterator<Item = &[f64; 2]>> = if pass == 0 {
                Box::new(p.iter())
            } else {
                Box::new(p.iter().rev())
            };
            for &q in iter {
                while h.len() >= start + 2 && cross(h[h.len() - 2], h[h.len() - 1], q) <= 0.0 {
                    h.pop();
                }
                h.push(q);
            }
            h.pop();
        }
        h
    }

    /// Nearest points of two segments (exact for disjoint convex polygons' edges).
    fn closest_on_segment(p: [f64; 2], a: [f64; 2], b: [f64; 2]) -> [f64; 2] {
        let ab = [b[0] - a[0], b[1] - a[1]];
        let len2 = ab[0] * ab[0] + ab[1] * ab[1];
        let t = if len2 == 0.0 {
            0.0
        } else {
            (((p[0] - a[0]) * ab[0] + (p[1] - a[1]) * ab[1]) / len2).clamp(0.0, 1.0)
        };
        [a[0] + t * ab[0], a[1] + t * ab[1]]
    }

    /// The max-margin hyperplane from the nearest points p ∈ conv(A), q ∈ conv(B):
    /// v = 2(p − q)/‖p − q‖², b = vᵀ(p + q)/2.
    fn hull_svm(data: &LabeledPoints) -> (Vec<f64>, f64) {
        let pts = |s: f64| {
            (0..data.len())
                .filter(|&i| data.y[i] == s)
                .map(|i| [data.point(i)[0], data.point(i)[1]])
                .collect::<Vec<_>>()
        };
        let (ha, hb) = (hull(pts(1.0)), hull(pts(-1.0)));
        let mut best = (f64::INFINITY, [0.0; 2], [0.0; 2]);
        for (h1, h2, flip) in [(&ha, &hb, false), (&hb, &ha, true)] {
            for &p in h1.iter() {
                for k in 0..h2.len() {
                    let q = closest_on_segment(p, h2[k], h2[(k + 1) % h2.len()]);
                    let dist = ((p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)).sqrt();
                    if dist < best.0 {
                        best = if flip { (dist, q, p) } else { (dist, p, q) };
                    }
                }
            }
        }
        let (dist, p, q) = best;
        let v = vec![
            2.0 * (p[0] - q[0]) / (dist * dist),
            2.0 * (p[1] - q[1]) / (dist * dist),
        ];
        let b = v[0] * (p[0] + q[0]) / 2.0 + v[1] * (p[1] + q[1]) / 2.0;
        (v, b)
    }

    #[test]
    fn agrees_with_convex_hull_nearest_points_in_2d() {
        for seed in 0..25u64 {
            let margin = [0.05, 0.2, 0.5, 1.0, 2.0][seed as usize % 5];
            let data =
                TwoBalls::with_margin_and_bound(300, 2, margin, 3.0 + margin).sample(100 + seed);
            let s = Smo::hard_margin(1e-10).solve(&data).unwrap();
            let (v, b) = hull_svm(&data);
            let scale = v.iter().map(|a| a.abs()).fold(b.abs(), f64::max);
            for k in 0..2 {
                assert!(
                    (s.v[k] - v[k]).abs() < 1e-6 * scale,
                    "seed {seed}: v {:?} vs hull {:?}",
                    s.v,
                    v
                );
            }
            assert!(
                (s.b - b).abs() < 1e-6 * scale,
                "seed {seed}: b {} vs hull {}",
                s.b,
                b
            );
        }
    }

    #[test]
    fn removing_a_non_support_vector_changes_nothing() {
        let data = TwoBalls::with_margin_and_bound(200, 2, 0.5, 3.0).sample(9);
        let s = Smo::hard_margin(1e-10).solve(&data).unwrap();
        let i = (0..data.len()).find(|&i| s.alpha[i] == 0.0).unwrap();
        let t = Smo::hard_margin(1e-10).solve(&data.without(i)).unwrap();
        for k in 0..2 {
            assert!((s.v[k] - t.v[k]).abs() < 1e-7);
        }
        assert!((s.b - t.b).abs() < 1e-7);
    }
}
