//! A module's float parameters by dotted path (`encoder.encoder.layer.3.attention.self_attn.query.weight`):
//! read them into a [`ParamMap`], rebuild a module with each parameter transformed
//! ([`transform`]), and save or load them as a flat little-endian snapshot. Methods use
//! this to reach weights by name (MixOut, L2-SP, re-initialisation); the engine uses it to
//! cache prepared encoders.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

use anyhow::Context;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Shape, Tensor, TensorData};

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

/// A per-parameter transformation (generic over the tensor rank, hence a trait).
pub trait ParamTransform {
    /// The new value of the parameter at `path` (same shape).
    fn apply<const D: usize>(&mut self, path: &str, value: Tensor<D>) -> Tensor<D>;
}

/// `module` with every float parameter replaced by `t.apply(path, value)`. Parameter ids
/// and trainability are kept, so optimiser state and gradients still match.
pub fn transform<M: Module, T: ParamTransform>(module: M, t: &mut T) -> M {
    struct Mapper<'a, T> {
        stack: Vec<String>,
        t: &'a mut T,
    }
    impl<T: ParamTransform> ModuleMapper for Mapper<'_, T> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.stack.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.stack.pop();
        }
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let path = joined(&self.stack);
            param.map(|v| self.t.apply(&path, v))
        }
    }
    module.map(&mut Mapper {
        stack: Vec::new(),
        t,
    })
}

const MAGIC: &[u8; 8] = b"STABPRM1";

/// Write every float parameter of `module` to `path` (atomically: a temporary file renamed).
/// Layout: magic, count, then per parameter its path, rank, dims and f32 values.
pub fn save<M: Module>(module: &M, path: &Path) -> anyhow::Result<()> {
    let dir = path.parent().context("snapshot path has no directory")?;
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    {
        let mut w = std::io::BufWriter::new(tmp.as_file_mut());
        let params = collect(module);
        w.write_all(MAGIC)?;
        w.write_all(&(params.len() as u64).to_le_bytes())?;
        for (name, p) in &params {
            w.write_all(&(name.len() as u64).to_le_bytes())?;
            w.write_all(name.as_bytes())?;
            w.write_all(&(p.shape.len() as u64).to_le_bytes())?;
            for &d in &p.shape {
                w.write_all(&(d as u64).to_le_bytes())?;
            }
            let v: Vec<f32> = p
                .values
                .clone()
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            for x in v {
                w.write_all(&x.to_le_bytes())?;
            }
        }
        w.flush()?;
    }
    tmp.persist(path)?;
    Ok(())
}

/// Load a snapshot written by [`save`] into `module`: every parameter of the module must
/// be in the file with the same shape. `None` when the file is missing, torn or does not
/// fit (the caller recomputes).
pub fn load<M: Module>(module: M, path: &Path) -> Option<M> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .read_to_end(&mut bytes)
        .ok()?;
    let mut at = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let s = bytes.get(at..at + n)?;
        at += n;
        Some(s)
    };
    if take(8)? != MAGIC {
        return None;
    }
    let u64_of = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize;
    let count = u64_of(take(8)?);
    let mut table: BTreeMap<String, (Vec<usize>, Vec<f32>)> = BTreeMap::new();
    for _ in 0..count {
        let len = u64_of(take(8)?);
        let name = String::from_utf8(take(len)?.to_vec()).ok()?;
        let rank = u64_of(take(8)?);
        let mut shape = Vec::with_capacity(rank);
        for _ in 0..rank {
            shape.push(u64_of(take(8)?));
        }
        let n: usize = shape.iter().product();
        let raw = take(n.checked_mul(4)?)?;
        let values = raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        table.insert(name, (shape, values));
    }
    struct Fill {
        table: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
        ok: bool,
    }
    impl ParamTransform for Fill {
        fn apply<const D: usize>(&mut self, path: &str, value: Tensor<D>) -> Tensor<D> {
            match self.table.remove(path) {
                Some((shape, v)) if shape == value.dims().to_vec() => {
                    let t = Tensor::<D>::from_data(
                        TensorData::new(v, Shape::from(shape)),
                        &value.device(),
                    );
                    if value.is_require_grad() {
                        t.require_grad()
                    } else {
                        t
                    }
                }
                _ => {
                    self.ok = false;
                    value
                }
            }
        }
    }
    let mut fill = Fill { table, ok: true };
    let module = transform(module, &mut fill);
    fill.ok.then_some(module)
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
        let loaded = load(fresh, &file).expect("fits");
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
        assert!(load(toy.clone(), &file).is_none());
        save(&doubled, &file).unwrap();
        let other = Toy {
            dense: LinearConfig::new(4, 2).init(&dev),
            layer_norm: LayerNormConfig::new(2).init(&dev),
        };
        assert!(load(other, &file).is_none());
    }
}
