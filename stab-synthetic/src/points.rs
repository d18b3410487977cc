//! The two-ball generator (docs/methods.md §7.2).
//!
//! Per dataset: a unit direction u uniform on the sphere; centres ±a·u; n/2 points drawn
//! uniformly in the d-ball of radius r around each centre (direction = normalised
//! Gaussian, radius = r·U^{1/d}); label +1 for the +a·u ball; shuffled. Every point then
//! satisfies ‖x‖ ≤ a + r = B, and the hyperplane uᵀx = 0 separates the classes with
//! margin ≥ a − r = γ.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// Labelled points in R^d, row-major, labels ±1.
#[derive(Debug, Clone, PartialEq)]
pub struct LabeledPoints {
    pub dim: usize,
    /// n × dim, row-major.
    pub x: Vec<f64>,
    /// n labels in {−1, +1}.
    pub y: Vec<f64>,
}

impl LabeledPoints {
    pub fn len(&self) -> usize {
        self.y.len()
    }
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }
    /// Point i.
    pub fn point(&self, i: usize) -> &[f64] {
        &self.x[i * self.dim..(i + 1) * self.dim]
    }
    /// The same set without point i (S^i of the leave-one-out definitions).
    pub fn without(&self, i: usize) -> LabeledPoints {
        let mut x = self.x.clone();
        x.drain(i * self.dim..(i + 1) * self.dim);
        let mut y = self.y.clone();
        y.remove(i);
        LabeledPoints {
            dim: self.dim,
            x,
            y,
        }
    }
    /// max ‖x_i‖.
    pub fn max_norm(&self) -> f64 {
        (0..self.len())
            .map(|i| norm(self.point(i)))
            .fold(0.0, f64::max)
    }
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|a| a * a).sum::<f64>().sqrt()
}

/// Two balls of radius `radius` centred at ±`center`·u.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TwoBalls {
    pub points: usize,
    pub dim: usize,
    pub center: f64,
    pub radius: f64,
}

impl TwoBalls {
    /// The generator for margin γ and bound B: a = (B+γ)/2, r = (B−γ)/2.
    pub fn with_margin_and_bound(points: usize, dim: usize, margin: f64, bound: f64) -> Self {
        Self {
            points,
            dim,
            center: (bound + margin) / 2.0,
            radius: (bound - margin) / 2.0,
        }
    }

    /// Draw one dataset from a seed; the same seed always gives the same points.
    pub fn sample(&self, seed: u64) -> LabeledPoints {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let u = unit_vector(&mut rng, self.dim);
        let d = self.dim;
        let n_pos = self.points / 2;
        let mut x = Vec::with_capacity(self.points * d);
        let mut y = Vec::with_capacity(self.points);
        for i in 0..self.points {
            let label = if i < n_pos { 1.0 } else { -1.0 };
            let dir = unit_vector(&mut rng, d);
            let rho = self.radius * rng.random::<f64>().powf(1.0 / d as f64);
            for k in 0..d {
                x.push(label * self.center * u[k] + rho * dir[k]);
            }
            y.push(label);
        }
        // Fisher–Yates shuffle of the rows.
        for i in (1..self.points).rev() {
            let j = rng.random_range(0..=i);
            y.swap(i, j);
            for k in 0..d {
                x.swap(i * d + k, j * d + k);
            }
        }
        LabeledPoints { dim: d, x, y }
    }
}

/// A uniform unit vector in R^d (normalised standard Gaussian).
pub fn unit_vector(rng: &mut impl Rng, dim: usize) -> Vec<f64> {
    loop {
        let g: Vec<f64> = (0..dim).map(|_| StandardNormal.sample(rng)).collect();
        let n = norm(&g);
        if n > 1e-12 {
            return g.into_iter().map(|v| v / n).collect();
        }
    }
}

#[cfg(test)]
#[allow(clippy::needless_range_loop)]
mod tests {
    use super::*;

    #[test]
    fn respects_bound_margin_and_balance() {
        for dim in [1, 2, 10] {
            let g = TwoBalls::with_margin_and_bound(1000, dim, 0.5, 3.0);
            let s = g.sample(42);
            assert_eq!(s.len(), 1000);
            assert!(s.max_norm() <= 3.0 + 1e-12);
            assert_eq!(s.y.iter().filter(|&&y| y > 0.0).count(), 500);
            // Points of each class lie on their side of a hyperplane through 0 with margin γ:
            // recover u from the class means and check y·uᵀx ≥ γ.
            let mut mean = vec![0.0; dim];
            for i in 0..s.len() {
                for k in 0..dim {
                    mean[k] += s.y[i] * s.point(i)[k];
                }
            }
            let u: Vec<f64> = mean.iter().map(|m| m / norm(&mean)).collect();
            let min_margin = (0..s.len())
                .map(|i| s.y[i] * s.point(i).iter().zip(&u).map(|(a, b)| a * b).sum::<f64>())
                .fold(f64::INFINITY, f64::min);
            assert!(min_margin > 0.0, "dim {dim}: separable");
        }
    }

    #[test]
    fn same_seed_same_points() {
        let g = TwoBalls::with_margin_and_bound(50, 2, 0.5, 3.0);
        assert_eq!(g.sample(7), g.sample(7));
        assert_ne!(g.sample(7), g.sample(8));
    }

    #[test]
    fn without_removes_one_point() {
        let s = TwoBalls::with_margin_and_bound(10, 2, 0.5, 3.0).sample(1);
        let t = s.without(3);
        assert_eq!(t.len(), 9);
        assert_eq!(t.point(3), s.point(4));
        assert_eq!(t.point(2), s.point(2));
    }

    #[test]
    fn radius_fills_the_ball() {
        // Uniform in the disc: P(‖x − c‖ ≤ r/2) = 1/4 in 2-D.
        let g = TwoBalls {
            points: 20000,
            dim: 2,
            center: 5.0,
            radius: 1.0,
        };
        let s = g.sample(3);
        let mut inner = 0;
        let mut mean = [0.0; 2];
        for i in 0..s.len() {
            for k in 0..2 {
                mean[k] += s.y[i] * s.point(i)[k] / s.len() as f64;
            }
        }
        for i in 0..s.len() {
            let c = [s.y[i] * mean[0], s.y[i] * mean[1]];
            let p = s.point(i);
            if ((p[0] - c[0]).powi(2) + (p[1] - c[1]).powi(2)).sqrt() <= 0.5 {
                inner += 1;
            }
        }
        let frac = inner as f64 / s.len() as f64;
        assert!((frac - 0.25).abs() < 0.02, "{frac}");
    }
}
