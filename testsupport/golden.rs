//! What the golden-file tests of the encoders (`stab-models/tests/models/golden.rs`) and the
//! decoders (`golden_decoders.rs`) share: reading a golden file, its inputs and number
//! arrays, a tensor's values, the classifier of a recorded AdamW run and the global norm of
//! its gradients. Included by `stab-models/tests/models/main.rs` as `mod golden_files;`
//! beside `mod assets;`; not part of any library's API.
#![allow(dead_code)]

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use serde_json::Value;
use stab_models::{Encoder, TextInput};

/// `testdata/fixtures/golden/NAME.json`.
pub fn golden(name: &str) -> Value {
    let p = super::assets::root()
        .join("testdata/fixtures/golden")
        .join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

/// Every integer of a (nested) JSON array, row-major.
pub fn ints(v: &Value) -> Vec<i64> {
    match v {
        Value::Array(a) => a.iter().flat_map(ints).collect(),
        Value::Number(n) => vec![n.as_i64().unwrap()],
        other => panic!("not an integer: {other}"),
    }
}

/// Every number of a (nested) JSON array, row-major.
pub fn floats(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(a) => a.iter().flat_map(floats).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap()],
        other => panic!("not a number: {other}"),
    }
}

/// A tensor's values, row-major.
pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect()
}

/// The golden file's inputs (singles, and pairs with `text_pair`).
pub fn inputs(g: &Value) -> Vec<TextInput> {
    g["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| TextInput {
            text: i["text"].as_str().unwrap().to_string(),
            text_pair: i["text_pair"].as_str().map(String::from),
        })
        .collect()
}

/// An encoder with a linear head, as the recorded AdamW runs train it.
#[derive(Module, Debug)]
pub struct Classifier {
    pub encoder: Encoder,
    pub head: Linear,
}

/// The L2 norm over every gradient of `model`.
pub fn global_norm<M: Module>(model: &M, grads: &GradientsParams) -> f64 {
    struct Sq<'a> {
        grads: &'a GradientsParams,
        acc: f64,
    }
    impl burn::module::ModuleVisitor for Sq<'_> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(p.id) {
                self.acc += to_vec(g).iter().map(|v| v * v).sum::<f64>();
            }
        }
    }
    let mut v = Sq { grads, acc: 0.0 };
    model.visit(&mut v);
    v.acc.sqrt()
}
