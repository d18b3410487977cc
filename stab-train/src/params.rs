//! A module's float parameters by dotted path (`encoder.encoder.layer.3.attention.self_attn.query.weight`):
//! read them into a [`ParamMap`], rebuild a module with each parameter transformed
//! ([`transform`]), and save or load them as a checksummed safetensors snapshot. Methods use
//! this to reach weights by name (MixOut, L2-SP, re-initialisation); the engine uses it to
//! cache prepared encoders.
//!
//! Why these walks are stab's own and not burn-store's `ModuleSnapshot` (which gives the
//! optimiser its parameter paths, `optim::param_paths`, and loads Hugging Face weights):
//! a snapshot holds copies of the data, while [`collect`] hands out the live tensors
//! (MixOut and L2-SP keep the start values on the device, without a round trip through
//! host bytes); [`gradients`] reads a backward pass's `GradientsParams` by path, which a
//! snapshot does not carry; [`transform`]/[`rewrite`] rebuild a module in place keeping
//! every `ParamId` (the optimiser's state hangs on them); [`param_info`] needs each
//! parameter's `requires_grad`, which snapshots drop; and [`load`] converts a cached f32
//! snapshot to the module's own float type, where burn-store's apply refuses a dtype
//! mismatch (an f16 or f64 module would lose its cache).

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Shape, Tensor, TensorData};

use stab_models::{NamedTensor, TensorFile};

use crate::cache_file::{self, Cached};

/// One parameter, flattened.
#[derive(Debug, Clone)]
pub struct FlatParam {
    pub values: Tensor<1>,
    pub shape: Vec<usize>,
}

impl FlatParam {
    /// The tensor in its own shape.
    pub fn tensor<const D: usize>(&self) -> Tensor<D> {
        self.values.clone().reshape(Shape::from(self.shape.clone()))
    }
}

/// Float parameters by dotted path, in module order.
pub type ParamMap = BTreeMap<String, FlatParam>;

fn joined(stack: &[String]) -> String {
    stack
        .iter()
        .filter(|s| !s.is_empty())
        .cloned()
        .collect::<Vec<_>>()
        .join(".")
}

/// Every float parameter of `module` by path (tensor handles, no copies).
pub fn collect<M: Module>(module: &M) -> ParamMap {
    struct Collect {
        stack: Vec<String>,
        out: ParamMap,
    }
    impl ModuleVisitor for Collect {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.stack.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.stack.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let t = p.val();
            let shape = t.dims().to_vec();
            let n: usize = shape.iter().product();
            self.out.insert(
                joined(&self.stack),
                FlatParam {
                    values: t.reshape([n]),
                    shape,
                },
            );
        }
    }
    let mut c = Collect {
        stack: Vec::new(),
        out: ParamMap::new(),
    };
    module.visit(&mut c);
    c.out
}

/// Every gradient in `grads` of a parameter of `module`, flattened, by parameter path, in
/// module order.
pub fn gradients<M: Module>(module: &M, grads: &GradientsParams) -> Vec<(String, Tensor<1>)> {
    struct Read<'a> {
        stack: Vec<String>,
        grads: &'a GradientsParams,
        out: Vec<(String, Tensor<1>)>,
    }
    impl ModuleVisitor for Read<'_> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.stack.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.stack.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(p.id) {
                let n = g.shape().num_elements();
                self.out.push((joined(&self.stack), g.reshape([n])));
            }
        }
    }
    let mut r = Read {
        stack: Vec::new(),
        grads,
        out: Vec::new(),
    };
    module.visit(&mut r);
    r.out
}

/// `values` as a tensor like `like`: its shape, device and trainability (a parameter's
/// new value in a [`ParamTransform`]).
pub fn values_like<const D: usize>(like: &Tensor<D>, values: Vec<f32>) -> Tensor<D> {
    let t = Tensor::<D>::from_data(
        TensorData::new(values, like.dims().to_vec()),
        &like.device(),
    );
    if like.is_require_grad() {
        t.require_grad()
    } else {
        t
    }
}

/// A per-parameter transformation (generic over the tensor rank, hence a trait).
pub trait ParamTransform {
    /// The new value of the parameter at `path` (same shape).
    fn apply<const D: usize>(&mut self, path: &str, value: Tensor<D>) -> Tensor<D>;
}

/// A per-parameter rewrite of the parameter itself (value, trainability), for a walk that
/// knows each parameter's path (generic over the tensor rank, hence a trait).
pub trait ParamRewrite {
    fn rewrite<const D: usize>(&mut self, path: &str, param: Param<Tensor<D>>) -> Param<Tensor<D>>;
}

/// `module` with every float parameter replaced by `r.rewrite(path, param)`.
pub fn rewrite<M: Module, R: ParamRewrite>(module: M, r: &mut R) -> M {
    struct Mapper<'a, R> {
        stack: Vec<String>,
        r: &'a mut R,
    }
    impl<R: ParamRewrite> ModuleMapper for Mapper<'_, R> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.stack.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.stack.pop();
        }
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            self.r.rewrite(&joined(&self.stack), param)
        }
    }
    module.map(&mut Mapper {
        stack: Vec::new(),
        r,
    })
}

/// `module` with every float parameter replaced by `t.apply(path, value)`. Parameter ids
/// and trainability are kept, so optimiser state and gradients still match.
pub fn transform<M: Module, T: ParamTransform>(module: M, t: &mut T) -> M {
    struct Values<'a, T>(&'a mut T);
    impl<T: ParamTransform> ParamRewrite for Values<'_, T> {
        fn rewrite<const D: usize>(
            &mut self,
            path: &str,
            param: Param<Tensor<D>>,
        ) -> Param<Tensor<D>> {
            param.map(|v| self.0.apply(path, v))
        }
    }
    rewrite(module, &mut Values(t))
}

/// One float parameter as a path-aware walk sees it.
#[derive(Debug, Clone)]
pub struct ParamInfo {
    pub path: String,
    pub id: ParamId,
    /// Number of elements.
    pub elements: usize,
    /// Whether it requires a gradient (trains).
    pub trains: bool,
}

/// Every float parameter's path, id, size and trainability, in module order (no tensor
/// is read).
pub fn param_info<M: Module>(module: &M) -> Vec<ParamInfo> {
    struct Info {
        stack: Vec<String>,
        out: Vec<ParamInfo>,
    }
    impl ModuleVisitor for Info {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.stack.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.stack.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            self.out.push(ParamInfo {
                path: joined(&self.stack),
                id: p.id,
                elements: p.shape().num_elements(),
                trains: p.is_require_grad(),
            });
        }
    }
    let mut v = Info {
        stack: Vec::new(),
        out: Vec::new(),
    };
    module.visit(&mut v);
    v.out
}

/// The format of a parameter snapshot ([`cache_file`]): safetensors, one tensor per
/// parameter path in its own shape.
const FORMAT: &str = "parameters/3";

/// Write every float parameter of `module` to `path`, atomically and checksummed.
pub fn save<M: Module>(module: &M, path: &Path) -> stab_core::Result<()> {
    let mut file = TensorFile::default();
    for (name, p) in collect(module) {
        let values = p
            .values
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .map_err(|e| stab_core::internal!("{e:?}"))?;
        file.tensors.insert(
            name,
            NamedTensor {
                shape: p.shape,
                values,
            },
        );
    }
    cache_file::write(path, FORMAT, file)
}

/// Load a snapshot written by [`save`] into `module`: every parameter of the module must
/// be in the file with the same shape. Missing, or damaged / not fitting (with the
/// reason: the caller warns and recomputes).
pub fn load<M: Module>(module: M, path: &Path) -> Cached<M> {
    let file = match cache_file::read(path, FORMAT) {
        Cached::Valid(f) => f,
        Cached::Missing => return Cached::Missing,
        Cached::Damaged(why) => return Cached::Damaged(why),
    };
    struct Fill {
        file: TensorFile,
        ok: bool,
    }
    impl ParamTransform for Fill {
        fn apply<const D: usize>(&mut self, path: &str, value: Tensor<D>) -> Tensor<D> {
            match self.file.tensors.remove(path) {
                Some(t) if t.shape == value.dims().to_vec() => values_like(&value, t.values),
                _ => {
                    self.ok = false;
                    value
                }
            }
        }
    }
    let mut fill = Fill { file, ok: true };
    let module = transform(module, &mut fill);
    if fill.ok && fill.file.tensors.is_empty() {
        Cached::Valid(module)
    } else {
        Cached::Damaged("its parameters do not fit the model".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
    use burn::tensor::Device;

    #[derive(Module, Debug)]
    struct Toy {
        dense: Linear,
        layer_norm: LayerNorm,
    }

    #[test]
    fn paths_transform_and_snapshot_round_trip() {
        let dev = Device::flex();
        let toy = Toy {
            dense: LinearConfig::new(3, 2).init(&dev),
            layer_norm: LayerNormConfig::new(2).init(&dev),
        };
        let names: Vec<String> = collect(&toy).into_keys().collect();
        assert_eq!(
            names,
            [
                "dense.bias",
                "dense.weight",
                "layer_norm.beta",
                "layer_norm.gamma"
            ]
        );
        struct Double;
        impl ParamTransform for Double {
            fn apply<const D: usize>(&mut self, path: &str, v: Tensor<D>) -> Tensor<D> {
                if path == "dense.weight" {
                    v.mul_scalar(2.0)
                } else {
                    v
                }
            }
        }
        let before = collect(&toy)["dense.weight"].values.clone();
        let doubled = transform(toy.clone(), &mut Double);
        let after = collect(&doubled)["dense.weight"].values.clone();
        let (b, a): (Vec<f32>, Vec<f32>) = (
            before.into_data().try_to_vec::<f32>().unwrap(),
            after.into_data().try_to_vec::<f32>().unwrap(),
        );
        assert!(b.iter().zip(&a).all(|(x, y)| 2.0 * x == *y));

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("toy.bin");
        save(&doubled, &file).unwrap();
        let fresh = Toy {
            dense: LinearConfig::new(3, 2).init(&dev),
            layer_norm: LayerNormConfig::new(2).init(&dev),
        };
        let Cached::Valid(loaded) = load(fresh, &file) else {
            panic!("fits")
        };
        let got: Vec<f32> = collect(&loaded)["dense.weight"]
            .values
            .clone()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(got, a);
        // A torn file or another shape is refused.
        let bytes = std::fs::read(&file).unwrap();
        std::fs::write(&file, &bytes[..bytes.len() - 3]).unwrap();
        assert!(matches!(load(toy.clone(), &file), Cached::Damaged(_)));
        save(&doubled, &file).unwrap();
        let other = Toy {
            dense: LinearConfig::new(4, 2).init(&dev),
            layer_norm: LayerNormConfig::new(2).init(&dev),
        };
        assert!(matches!(load(other, &file), Cached::Damaged(m) if m.contains("do not fit")));
        // A flipped byte in the values: the checksum catches it.
        let mut bytes = std::fs::read(&file).unwrap();
        let at = bytes.len() - 20;
        bytes[at] ^= 0x10;
        std::fs::write(&file, &bytes).unwrap();
        assert!(matches!(load(toy.clone(), &file), Cached::Damaged(m) if m.contains("checksum")));
    }
}
