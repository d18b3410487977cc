//! MMR, the max-margin regulariser (paper Eq. 8–9; docs/methods.md §2.4): L = CE + α·R with
//! R = 1/(1 + ‖μ₊ − μ₋‖₂), the class centroids μ of the features entering the final linear
//! layer (before its dropout), over the mini-batch. With more than two classes R is the
//! mean over the class pairs present in the batch; with fewer than two classes R = 0.

use burn::tensor::{Tensor, TensorData};
use stab_core::Refusal;
use stab_train::{Capabilities, Method, MethodPlugin, SeedBatching, StepView};

stab_core::method_params! {
    /// CE + α·R.
    pub struct MaxMarginRegulariser {
        /// regulariser weight α (§2.4; dev grid 0.1, 1, 10)
        pub alpha: f64 = float(0.0, 1e6, 1.0),
    }
}

/// R over a batch: `features` `[H', B, e]` (averaged over the H' feature copies),
/// `labels` the batch's label ids. `None` when fewer than two classes are present.
pub fn max_margin_regulariser(
    features: Tensor<3>,
    labels: &[usize],
    classes: usize,
) -> Option<Tensor<1>> {
    let [h, b, _] = features.dims();
    let counts: Vec<usize> = (0..classes)
        .map(|c| labels.iter().filter(|&&l| l == c).count())
        .collect();
    let present: Vec<usize> = (0..classes).filter(|&c| counts[c] > 0).collect();
    if present.len() < 2 {
        return None;
    }
    let pairs: Vec<(usize, usize)> = present
        .iter()
        .enumerate()
        .flat_map(|(i, &a)| present[i + 1..].iter().map(move |&b| (a, b)))
        .collect();
    // Row k of P holds +1/n_a on class a's examples and −1/n_b on class b's, so P·E = μ_a − μ_b.
    let mut p = vec![0f32; pairs.len() * b];
    for (k, &(ca, cb)) in pairs.iter().enumerate() {
        for (i, &l) in labels.iter().enumerate() {
            if l == ca {
                p[k * b + i] = 1.0 / counts[ca] as f32;
            } else if l == cb {
                p[k * b + i] = -1.0 / counts[cb] as f32;
            }
        }
    }
    let device = features.device();
    let p = Tensor::<3>::from_data(TensorData::new(p, [1, pairs.len(), b]), &device).expand([
        h,
        pairs.len(),
        b,
    ]);
    let diff = p.matmul(features); // [H', pairs, e]
    let dist = diff.square().sum_dim(2).add_scalar(1e-12).sqrt(); // [H', pairs, 1]
    Some(dist.add_scalar(1.0).recip().mean().reshape([1]))
}

impl Method for MaxMarginRegulariser {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            seed_batch: SeedBatching::StackedWithTerms,
            ..Capabilities::default()
        }
    }

    fn loss_terms(&self, step: &StepView) -> Vec<(&'static str, Tensor<1>)> {
        max_margin_regulariser(
            step.forward.head.features.clone(),
            step.labels,
            step.classes,
        )
        .map(|r| vec![("mmr", r.mul_scalar(self.alpha))])
        .unwrap_or_default()
    }
}

impl MethodPlugin for MaxMarginRegulariser {
    const NAME: &'static str = "mmr";
    const SUMMARY: &'static str =
        "max-margin regulariser (§2.4): CE + α / (1 + ‖class-centroid distance‖)";
    type Params = Self;

    fn from_params(p: Self) -> Result<Self, Refusal> {
        Ok(p)
    }
}

stab_train::register_method!(MaxMarginRegulariser);

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    fn r(points: Vec<f32>, dim: usize, labels: &[usize], classes: usize) -> Option<f64> {
        let b = labels.len();
        let f = Tensor::<3>::from_data(TensorData::new(points, [1, b, dim]), &Device::flex());
        max_margin_regulariser(f, labels, classes).map(|t| t.into_scalar::<f64>())
    }

    #[test]
    fn two_points_give_one_over_one_plus_distance() {
        let v = r(vec![0.0, 0.0, 3.0, 4.0], 2, &[0, 1], 2).unwrap();
        assert!((v - 1.0 / 6.0).abs() < 1e-6, "{v}");
    }

    #[test]
    fn label_flip_leaves_r_unchanged_and_centroids_are_means() {
        let pts = vec![0.0, 0.0, 2.0, 0.0, 1.0, 5.0, 1.0, 3.0];
        let a = r(pts.clone(), 2, &[0, 0, 1, 1], 2).unwrap();
        let b = r(pts, 2, &[1, 1, 0, 0], 2).unwrap();
        assert_eq!(a, b);
        // Centroids (1, 0) and (1, 4): distance 4.
        assert!((a - 0.2).abs() < 1e-6, "{a}");
    }

    #[test]
    fn single_class_batch_gives_zero_and_three_classes_average_pairs() {
        assert!(r(vec![1.0, 2.0, 3.0, 4.0], 2, &[1, 1], 2).is_none());
        // Classes at 0, 1 and 3 on a line: pairs at distances 1, 3, 2.
        let v = r(vec![0.0, 1.0, 3.0], 1, &[0, 1, 2], 3).unwrap();
        let want = (1.0 / 2.0 + 1.0 / 4.0 + 1.0 / 3.0) / 3.0;
        assert!((v - want).abs() < 1e-6, "{v} vs {want}");
    }
}
