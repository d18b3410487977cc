//! The tiny-bert fixture on the CB slice, for the method tests of stab-methods (included
//! by `stab-methods/tests/integration/main.rs` beside `mod assets;`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor};
use stab_core::RunRecord;
use stab_data::encode::{EncodedRow, encode_examples};
use stab_methods::engine::{Engine, Progress};
use stab_models::TextEncoder;

/// `testdata/`: fixtures and task-file slices.
pub fn testdata() -> PathBuf {
    crate::assets::root().join("testdata")
}

/// The tiny-bert model directory.
pub fn tiny() -> PathBuf {
    testdata().join("fixtures/tiny-bert")
}

/// A progress callback that ignores everything.
pub fn quiet(_: Progress) {}

/// An engine on the host CPU writing under `dir`.
pub fn engine(dir: &Path) -> Engine {
    Engine::new(Device::flex(), dir)
}

/// The CB slice's training rows, tokenized for tiny-bert (max_len 64).
pub fn cb_rows(tok: &TextEncoder) -> Vec<EncodedRow> {
    let data = stab_data::task_def("cb")
        .unwrap()
        .load(&testdata().join("data"))
        .unwrap();
    encode_examples(tok, &data.train, 64).unwrap()
}

/// Whether two runs trained and scored identically (loss curve, dev curve, metrics).
pub fn same_training(a: &RunRecord, b: &RunRecord) -> bool {
    a.details["train_loss"] == b.details["train_loss"]
        && a.details["dev_curve"] == b.details["dev_curve"]
        && a.metrics == b.metrics
}

/// A tensor's values on the host.
pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
}
