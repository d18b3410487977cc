//! The Taylor check's objective on a real (tiny) BERT in f64: its gradient is the
//! derivative of its value, and the central-difference quadratic form is stable in h.
//! One test per process: the f64 default must be set before any tensor exists.

use burn::tensor::{Device, FloatDType};
use rand::{Rng, SeedableRng};
use stab_analysis::taylor::quadratic_form;
use stab_analysis::{ModelLoss, Objective};
use stab_core::Pooling;
use stab_data::encode::encode_examples;
use stab_models::{HeadShape, TaskHead, TextEncoder, load_encoder};
use stab_train::{TaskModel, TokenInput};

#[path = "../../testsupport/assets.rs"]
mod assets;

#[test]
fn model_loss_in_f64_has_consistent_gradient_and_curvature() {
    let mut base = Device::flex();
    base.configure(FloatDType::F64).unwrap();
    let dev = base.autodiff();
    let tiny = assets::root().join("testdata/fixtures/tiny-bert");
    let (encoder, _) = load_encoder(&tiny, &dev).unwrap();
    let tok = TextEncoder::from_dir(&tiny, encoder.config.pad_id()).unwrap();
    let data = stab_data::task_def("cb")
        .unwrap()
        .load(&assets::root().join("testdata/data"))
        .unwrap();
    let rows = encode_examples(&tok, &data.train[..8], 64).unwrap();
    let refs: Vec<_> = rows.iter().collect();
    let input = TokenInput::new(&refs, encoder.config.pad_id() as i64, None);
    let labels: Vec<usize> = rows.iter().map(|r| r.label).collect();
    let shape = HeadShape {
        out_layers: 2,
        replicate_dense: false,
    };
    let model = TaskModel {
        encoder: Some(encoder),
        head: TaskHead::classification(32, 3, 0.1, shape, 7, &dev),
        pooling: Pooling::Pooler,
    };
    let mut f = ModelLoss::new(model, input, labels, &dev).unwrap();
    let w = f.vector().unwrap();
    assert_eq!(w.len(), f.dim());
    let (v0, g) = f.value_grad(&w).unwrap();
    assert!(v0.is_finite() && v0 > 0.0);
    // Same value twice: eval mode, no dropout.
    assert_eq!(f.value(&w).unwrap(), v0);

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let r: Vec<f64> = w
        .iter()
        .map(|x| x * 0.01 * (rng.random::<f64>() - 0.5) + 1e-4 * (rng.random::<f64>() - 0.5))
        .collect();
    let at = |s: f64| -> Vec<f64> { w.iter().zip(&r).map(|(a, b)| a + s * b).collect() };
    let h = 1e-4;
    let fd = (f.value(&at(h)).unwrap() - f.value(&at(-h)).unwrap()) / (2.0 * h);
    let gr: f64 = g.iter().zip(&r).map(|(a, b)| a * b).sum();
    // Truncation (relative 1e-7) plus the central difference's own rounding: the two
    // losses carry a few ulps each (the kernels' summation order follows the buffers'
    // alignment), divided by 2h. Without it the check once failed at 1.4e-7 relative in
    // a full test run; a wrong gradient is off by orders of magnitude more.
    let rounding = 4.0 * f64::EPSILON * v0.abs() / h;
    assert!(
        (fd - gr).abs() <= 1e-7 * gr.abs().max(1e-12) + rounding,
        "directional derivative {fd} vs gᵀr {gr}"
    );

    let q3 = quadratic_form(&mut f, &w, &r, 1e-3).unwrap();
    let q4 = quadratic_form(&mut f, &w, &r, 1e-4).unwrap();
    assert!(
        (q3 - q4).abs() <= 1e-4 * q4.abs(),
        "rᵀHr {q3} (h = 1e-3) vs {q4} (h = 1e-4)"
    );
    // Second difference of the value agrees too: f(w+sr) − 2f(w) + f(w−sr) ≈ s²·rᵀHr.
    let s = 1e-2;
    let second = (f.value(&at(s)).unwrap() - 2.0 * v0 + f.value(&at(-s)).unwrap()) / (s * s);
    assert!(
        (second - q4).abs() <= 1e-3 * q4.abs(),
        "second difference {second} vs {q4}"
    );
}
