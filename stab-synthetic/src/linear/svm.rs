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
    pub fn solve(&self, data: &LabeledPoints) -> stab_core::Result<SvmSolution> {
        let y = &data.y;
        if !(y.iter().any(|&v| v > 0.0) && y.iter().any(|&v| v < 0.0)) {
            return Err(stab_core::internal!("the SVM needs both classes"));
        }
        let (n, d, x) = (data.len(), data.dim, &data.x);
        let problem = Dual::new(data, self.c);
        let mut alpha = vec![0.0; n];
        let mut v = vec![0.0; d];
        let mut grad = vec![-1.0; n]; // G = Qα − 1
        let mut iterations = 0;
        let mut violation;
        loop {
            let (i, gmax, gmax2) = problem.select_i(&alpha, &grad);
            violation = gmax + gmax2;
            if violation < self.tol || iterations >= self.max_iter {
                break;
            }
            let Some(j) = problem.select_j(i, gmax, &alpha, &grad) else {
                break;
            };
            iterations += 1;
            let (old_i, old_j) = (alpha[i], alpha[j]);
            let (ai, aj) = problem.pair_update(i, j, old_i, old_j, &grad);
            alpha[i] = ai;
            alpha[j] = aj;
            let (di, dj) = ((ai - old_i) * y[i], (aj - old_j) * y[j]);
            for k in 0..d {
                v[k] += di * x[i * d + k] + dj * x[j * d + k];
            }
            problem.update_gradient(&mut grad, &v, (i, di), (j, dj));
        }
        // NaN counts as not converged.
        if violation.partial_cmp(&self.tol) != Some(std::cmp::Ordering::Less) {
            return Err(stab_core::internal!(
                "SMO did not converge in {} iterations (violation {violation:e})",
                self.max_iter
            ));
        }
        // Recompute v from α to shed accumulated rounding, then b (LIBSVM's ρ).
        let v = problem.normal(&alpha);
        let b = problem.intercept(&alpha, &v);
        Ok(SvmSolution {
            v,
            b,
            alpha,
            c: self.c,
            iterations,
            violation,
        })
    }
}

/// The dual problem of one data set: the points, the box bound C, the kernel diagonal
/// and, for high-dimensional features, the cached Gram matrix.
struct Dual<'a> {
    x: &'a [f64],
    y: &'a [f64],
    n: usize,
    d: usize,
    c: f64,
    kdiag: Vec<f64>,
    gram: Option<Vec<f64>>,
}

// The loops index parallel arrays (y, α, G, the kernel) by the point index, as SMO's
// formulas do.
#[allow(clippy::needless_range_loop)]
impl<'a> Dual<'a> {
    fn new(data: &'a LabeledPoints, c: f64) -> Self {
        let (n, d) = (data.len(), data.dim);
        let kdiag = (0..n)
            .map(|i| data.point(i).iter().map(|a| a * a).sum())
            .collect();
        let mut dual = Self {
            x: &data.x,
            y: &data.y,
            n,
            d,
            c,
            kdiag,
            gram: None,
        };
        // High-dimensional features (real encoder features, d in the hundreds): every
        // iteration would recompute two kernel rows at n·d each, so the whole Gram matrix is
        // computed once (same sums, same order: the solution is unchanged). Low d (the
        // synthetic sets) keeps the on-the-fly dots, which are cheaper than the memory.
        if d >= 16 && n <= GRAM_MAX_POINTS {
            use rayon::prelude::*;
            let mut g = vec![0.0; n * n];
            g.par_chunks_mut(n).enumerate().for_each(|(i, row)| {
                for (j, v) in row.iter_mut().enumerate() {
                    *v = dual.dot_raw(i, j);
                }
            });
            dual.gram = Some(g);
        }
        dual
    }

    fn dot_raw(&self, i: usize, j: usize) -> f64 {
        let (x, d) = (self.x, self.d);
        (0..d).map(|k| x[i * d + k] * x[j * d + k]).sum()
    }

    fn dot(&self, i: usize, j: usize) -> f64 {
        match &self.gram {
            Some(g) => g[i * self.n + j],
            None => self.dot_raw(i, j),
        }
    }

    /// α_t can grow along y_t (the set I_up).
    fn up(&self, alpha: &[f64], t: usize) -> bool {
        if self.y[t] > 0.0 {
            alpha[t] < self.c
        } else {
            alpha[t] > 0.0
        }
    }

    /// α_t can shrink along y_t (the set I_low).
    fn low(&self, alpha: &[f64], t: usize) -> bool {
        if self.y[t] > 0.0 {
            alpha[t] > 0.0
        } else {
            alpha[t] < self.c
        }
    }

    /// The first index of the working set (WSS 2): i = argmax over I_up of −y_t G_t, with
    /// m(α) = that maximum and −M(α) = the maximum over I_low of y_t G_t.
    fn select_i(&self, alpha: &[f64], grad: &[f64]) -> (usize, f64, f64) {
        let mut gmax = f64::NEG_INFINITY;
        let mut i_sel = usize::MAX;
        let mut gmax2 = f64::NEG_INFINITY;
        for t in 0..self.n {
            let mg = -self.y[t] * grad[t];
            if self.up(alpha, t) && mg >= gmax {
                gmax = mg;
                i_sel = t;
            }
            if self.low(alpha, t) && -mg >= gmax2 {
                gmax2 = -mg;
            }
        }
        (i_sel, gmax, gmax2)
    }

    /// The second index (second-order selection): j in I_low minimising −b²/a with
    /// b = m(α) + y_t G_t > 0 and a = K_ii + K_tt − 2K_it.
    fn select_j(&self, i: usize, gmax: f64, alpha: &[f64], grad: &[f64]) -> Option<usize> {
        let mut j_sel = None;
        let mut obj_min = f64::INFINITY;
        for t in 0..self.n {
            if !self.low(alpha, t) {
                continue;
            }
            let b = gmax + self.y[t] * grad[t];
            if b > 0.0 {
                let mut a = self.kdiag[i] + self.kdiag[t] - 2.0 * self.dot(i, t);
                if a <= 0.0 {
                    a = 1e-12;
                }
                let obj = -(b * b) / a;
                if obj <= obj_min {
                    obj_min = obj;
                    j_sel = Some(t);
                }
            }
        }
        j_sel
    }

    /// The two-variable subproblem's solution, clipped to the box (LIBSVM).
    fn pair_update(&self, i: usize, j: usize, ai: f64, aj: f64, grad: &[f64]) -> (f64, f64) {
        let c = self.c;
        let mut quad = self.kdiag[i] + self.kdiag[j] - 2.0 * self.dot(i, j);
        if quad <= 0.0 {
            quad = 1e-12;
        }
        let (mut ai, mut aj) = (ai, aj);
        if self.y[i] != self.y[j] {
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
        (ai, aj)
    }

    /// G after α_i and α_j moved by `di`/y_i and `dj`/y_j: LIBSVM's incremental update
    /// with the cached kernel (O(n)), else recomputed from v (O(n·d)).
    fn update_gradient(
        &self,
        grad: &mut [f64],
        v: &[f64],
        (i, di): (usize, f64),
        (j, dj): (usize, f64),
    ) {
        let (n, d, x, y) = (self.n, self.d, self.x, self.y);
        match &self.gram {
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

    /// v = Σ α_i y_i x_i.
    fn normal(&self, alpha: &[f64]) -> Vec<f64> {
        let (d, x, y) = (self.d, self.x, self.y);
        let mut v = vec![0.0; d];
        for i in 0..self.n {
            if alpha[i] > 0.0 {
                for k in 0..d {
                    v[k] += alpha[i] * y[i] * x[i * d + k];
                }
            }
        }
        v
    }

    /// The bias b (LIBSVM's ρ): the mean of y_t G_t over free α_t, else the middle of the
    /// bounds the others give.
    fn intercept(&self, alpha: &[f64], v: &[f64]) -> f64 {
        let (c, d, x, y) = (self.c, self.d, self.x, self.y);
        let (mut ub, mut lb, mut sum_free, mut n_free) =
            (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0usize);
        for t in 0..self.n {
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
        if n_free > 0 {
            sum_free / n_free as f64
        } else {
            (ub + lb) / 2.0
        }
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
