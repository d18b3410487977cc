//! How far fine-tuning moved the weights (docs/methods.md §8.1, the paper's Table 6):
//! ‖w* − w0‖_p / ‖w0‖_p for p = 2 and 1, and max|w* − w0| / max|w0| for p = ∞, over the
//! parameters that have a pre-trained value, in total and per layer.
//!
//! Parameters are matched by Hugging Face name (a `bert.`/`roberta.` prefix on either
//! side is ignored). The total covers the embeddings and the layers with their LayerNorms;
//! the pooler, when the pre-trained model has one, gets its own row but stays out of the
//! total (docs/methods.md §8.1), and the task head has no pre-trained value.

use std::collections::BTreeMap;

use burn::tensor::{Device, Tensor, TensorData};
use serde::Serialize;
use stab_core::InputError;
use stab_models::checkpoint::{HEAD_PREFIX, base_name};
use stab_models::{HostReads, KernelPath, TensorFile};

/// The three ratios of one group of parameters.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DistanceRow {
    /// `total`, `embeddings`, `layer 0` … `layer L−1`, or `pooler`.
    pub group: String,
    pub params: usize,
    /// ‖w* − w0‖₂ / ‖w0‖₂.
    pub l2: f64,
    /// ‖w* − w0‖₁ / ‖w0‖₁.
    pub l1: f64,
    /// max|w* − w0| / max|w0|.
    pub linf: f64,
    /// ‖w* − w0‖₂ itself (Thm 2.2's distance).
    pub l2_abs: f64,
    /// Whether the group counts in the total.
    pub in_total: bool,
}

/// Running sums for one group.
#[derive(Debug, Clone, Default)]
struct Sums {
    params: usize,
    d2: f64,
    w2: f64,
    d1: f64,
    w1: f64,
    dmax: f64,
    wmax: f64,
}

impl Sums {
    fn add(&mut self, w0: &[f32], w: &[f32]) {
        self.params += w0.len();
        for (&a, &b) in w0.iter().zip(w) {
            let (a, d) = (a as f64, b as f64 - a as f64);
            self.d2 += d * d;
            self.w2 += a * a;
            self.d1 += d.abs();
            self.w1 += a.abs();
            self.dmax = self.dmax.max(d.abs());
            self.wmax = self.wmax.max(a.abs());
        }
    }

    /// [`Sums::add`] as burn tensor operations on `device`, read back once per tensor
    /// (f32 sums, f64 accumulation across tensors).
    fn add_on(&mut self, w0: &[f32], w: &[f32], device: &Device) {
        let n = w0.len();
        let up = |v: &[f32]| Tensor::<1>::from_data(TensorData::new(v.to_vec(), [n]), device);
        let (a, b) = (up(w0), up(w));
        let d = b - a.clone();
        let parts = Tensor::cat(
            vec![
                d.clone().square().sum(),
                a.clone().square().sum(),
                d.clone().abs().sum(),
                a.clone().abs().sum(),
                d.abs().max(),
                a.abs().max(),
            ],
            0,
        );
        let v = HostReads::values(parts);
        self.params += n;
        self.d2 += v[0] as f64;
        self.w2 += v[1] as f64;
        self.d1 += v[2] as f64;
        self.w1 += v[3] as f64;
        self.dmax = self.dmax.max(v[4] as f64);
        self.wmax = self.wmax.max(v[5] as f64);
    }

    fn merge(&mut self, o: &Sums) {
        self.params += o.params;
        self.d2 += o.d2;
        self.w2 += o.w2;
        self.d1 += o.d1;
        self.w1 += o.w1;
        self.dmax = self.dmax.max(o.dmax);
        self.wmax = self.wmax.max(o.wmax);
    }

    fn row(&self, group: String, in_total: bool) -> DistanceRow {
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
        DistanceRow {
            group,
            params: self.params,
            l2: ratio(self.d2.sqrt(), self.w2.sqrt()),
            l1: ratio(self.d1, self.w1),
            linf: ratio(self.dmax, self.wmax),
            l2_abs: self.d2.sqrt(),
            in_total,
        }
    }
}

/// Weight distance between a pre-trained model and a fine-tuned one.
#[derive(Debug, Clone, Serialize)]
pub struct WeightDistance {
    /// The total (first) and one row per group, in model order.
    pub rows: Vec<DistanceRow>,
    /// Fine-tuned tensors with no pre-trained value (the head, a random pooler).
    pub without_pretrained: Vec<String>,
}

impl WeightDistance {
    pub fn total(&self) -> &DistanceRow {
        &self.rows[0]
    }
}

/// The group of a parameter name in any family's HF layout: `embeddings` (with ELECTRA's
/// projection and DeBERTa's relative table), `layer N` (`encoder.layer.N.` or ModernBERT's
/// `layers.N.`), `pooler` (ModernBERT's `head`), or the name's stem.
fn group_of(name: &str) -> (u8, usize, String) {
    if name.starts_with("embeddings")
        || name.starts_with("encoder.rel_embeddings.")
        || name.starts_with("encoder.LayerNorm.")
    {
        return (0, 0, "embeddings".into());
    }
    if let Some(n) = stab_models::names::layer_index(name) {
        return (1, n, format!("layer {n}"));
    }
    if name.starts_with("pooler.") || name.starts_with("head.") {
        return (2, 0, "pooler".into());
    }
    (3, 0, name.split('.').next().unwrap_or(name).to_string())
}

/// Compare every tensor of `finetuned` that `pretrained` also has (same shape required),
/// on the host in f64.
pub fn weight_distance(
    pretrained: &TensorFile,
    finetuned: &TensorFile,
) -> stab_core::Result<WeightDistance> {
    weight_distance_on(pretrained, finetuned, &Device::flex())
}

/// [`weight_distance`] on `device`: the host sums in f64 on the CPU, per-tensor sums as
/// device operations (f32) on an accelerator ([`KernelPath::of`]).
pub fn weight_distance_on(
    pretrained: &TensorFile,
    finetuned: &TensorFile,
    device: &Device,
) -> stab_core::Result<WeightDistance> {
    distance_on_path(pretrained, finetuned, device, KernelPath::of(device))
}

fn distance_on_path(
    pretrained: &TensorFile,
    finetuned: &TensorFile,
    device: &Device,
    path: KernelPath,
) -> stab_core::Result<WeightDistance> {
    let base: BTreeMap<&str, _> = pretrained
        .tensors
        .iter()
        .map(|(k, t)| (base_name(k), t))
        .collect();
    let mut groups: BTreeMap<(u8, usize, String), Sums> = BTreeMap::new();
    let mut without = Vec::new();
    for (name, t) in &finetuned.tensors {
        let name = base_name(name);
        if name.starts_with(HEAD_PREFIX) {
            without.push(name.to_string());
            continue;
        }
        let Some(w0) = base.get(name) else {
            without.push(name.to_string());
            continue;
        };
        if w0.shape != t.shape {
            return Err(InputError::new(format!(
                "tensor `{name}` is {:?} in the fine-tuned model but {:?} in the pre-trained one",
                t.shape, w0.shape
            ))
            .hint("compare a checkpoint with the model it was fine-tuned from")
            .into());
        }
        let sums = groups.entry(group_of(name)).or_default();
        match path {
            KernelPath::Host => sums.add(&w0.values, &t.values),
            KernelPath::Accelerator => sums.add_on(&w0.values, &t.values, device),
        }
    }
    if groups.is_empty() {
        return Err(InputError::new(
            "the two models share no tensor name: nothing to compare",
        )
        .hint("a head-tuning checkpoint holds only the head; fine-tune in mode = \"full\" with save_best = true")
        .into());
    }
    let mut total = Sums::default();
    let mut rows = Vec::new();
    for ((kind, _, label), sums) in &groups {
        let in_total = *kind < 2;
        if in_total {
            total.merge(sums);
        }
        rows.push(sums.row(label.clone(), in_total));
    }
    rows.insert(0, total.row("total".into(), true));
    Ok(WeightDistance {
        rows,
        without_pretrained: without,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use stab_models::NamedTensor;

    fn file(entries: &[(&str, Vec<f32>)]) -> TensorFile {
        let mut f = TensorFile::default();
        for (k, v) in entries {
            f.tensors.insert(
                k.to_string(),
                NamedTensor {
                    shape: vec![v.len()],
                    values: v.clone(),
                },
            );
        }
        f
    }

    #[test]
    fn every_familys_names_fall_into_embeddings_layers_and_pooler() {
        for (name, group) in [
            ("embeddings.tok_embeddings.weight", "embeddings"),
            ("embeddings_project.weight", "embeddings"),
            ("encoder.rel_embeddings.weight", "embeddings"),
            ("encoder.LayerNorm.weight", "embeddings"),
            ("layers.2.attn.Wqkv.weight", "layer 2"),
            (
                "encoder.layer.5.attention.self.query_proj.weight",
                "layer 5",
            ),
            ("head.dense.weight", "pooler"),
            ("pooler.dense.weight", "pooler"),
            ("final_norm.weight", "final_norm"),
        ] {
            assert_eq!(group_of(name).2, group, "{name}");
        }
    }

    #[test]
    fn a_model_is_at_distance_zero_from_itself() {
        let a = file(&[
            ("bert.embeddings.word_embeddings.weight", vec![1.0, -2.0]),
            ("bert.encoder.layer.0.output.dense.weight", vec![3.0, 4.0]),
        ]);
        // The prefix differs (bert. vs none); the names still match.
        let mut b = TensorFile::default();
        for (k, t) in &a.tensors {
            b.tensors.insert(base_name(k).to_string(), t.clone());
        }
        let d = weight_distance(&a, &b).unwrap();
        assert_eq!(d.rows.len(), 3);
        for r in &d.rows {
            assert_eq!((r.l2, r.l1, r.linf), (0.0, 0.0, 0.0), "{}", r.group);
        }
    }

    #[test]
    fn known_perturbations_give_known_norms() {
        // w0 = (3, 4) in layer 0 and (0, 0, 12) in the embeddings: ‖w0‖₂ = 13, ‖w0‖₁ = 19,
        // max = 12. Δ = (1, 0) and (0, 0, −2): ‖Δ‖₂ = √5, ‖Δ‖₁ = 3, max = 2.
        let w0 = file(&[
            ("encoder.layer.0.output.dense.weight", vec![3.0, 4.0]),
            ("embeddings.word_embeddings.weight", vec![0.0, 0.0, 12.0]),
            ("pooler.dense.weight", vec![1.0]),
        ]);
        let w = file(&[
            ("encoder.layer.0.output.dense.weight", vec![4.0, 4.0]),
            ("embeddings.word_embeddings.weight", vec![0.0, 0.0, 10.0]),
            ("pooler.dense.weight", vec![3.0]),
            ("stab_head.out.weight", vec![0.5]),
        ]);
        let d = weight_distance(&w0, &w).unwrap();
        let t = d.total();
        assert_eq!(t.params, 5, "the pooler stays out of the total");
        assert!((t.l2 - 5f64.sqrt() / 13.0).abs() < 1e-12);
        assert!((t.l1 - 3.0 / 19.0).abs() < 1e-12);
        assert!((t.linf - 2.0 / 12.0).abs() < 1e-12);
        assert!((t.l2_abs - 5f64.sqrt()).abs() < 1e-12);
        let groups: Vec<&str> = d.rows.iter().map(|r| r.group.as_str()).collect();
        assert_eq!(groups, ["total", "embeddings", "layer 0", "pooler"]);
        let layer = &d.rows[2];
        assert!((layer.l2 - 1.0 / 5.0).abs() < 1e-12 && (layer.linf - 0.25).abs() < 1e-12);
        let pooler = &d.rows[3];
        assert!(!pooler.in_total && (pooler.l2 - 2.0).abs() < 1e-12);
        assert_eq!(d.without_pretrained, ["stab_head.out.weight"]);
    }

    #[test]
    fn the_device_twin_gives_the_host_ratios() {
        let v = |n: usize, k: f32| (0..n).map(|i| ((i * 37 % 101) as f32 - 50.0) * k).collect();
        let w0 = file(&[
            ("encoder.layer.0.output.dense.weight", v(3000, 0.01)),
            ("embeddings.word_embeddings.weight", v(700, 0.02)),
        ]);
        let w = file(&[
            ("encoder.layer.0.output.dense.weight", v(3000, 0.0101)),
            ("embeddings.word_embeddings.weight", v(700, 0.0199)),
        ]);
        let host = weight_distance(&w0, &w).unwrap();
        let twin = distance_on_path(&w0, &w, &Device::flex(), KernelPath::Accelerator).unwrap();
        for (h, d) in host.rows.iter().zip(&twin.rows) {
            assert_eq!((h.params, &h.group), (d.params, &d.group));
            for (a, b) in [
                (h.l2, d.l2),
                (h.l1, d.l1),
                (h.linf, d.linf),
                (h.l2_abs, d.l2_abs),
            ] {
                assert!((a - b).abs() <= 1e-5 * a.abs(), "{}: {a} vs {b}", h.group);
            }
        }
    }

    #[test]
    fn mismatched_shapes_and_disjoint_models_are_input_errors() {
        let a = file(&[("embeddings.x", vec![1.0, 2.0])]);
        let b = file(&[("embeddings.x", vec![1.0])]);
        assert!(weight_distance(&a, &b).is_err());
        let c = file(&[("stab_head.out.weight", vec![1.0])]);
        let e = weight_distance(&a, &c).unwrap_err().to_string();
        assert!(e.contains("share no tensor"), "{e}");
    }
}
