//! Loading Hugging Face weights into an [`Encoder`] through burn-store, for every family
//! and whatever the name prefix (`bert.`, `electra.`, `deberta.`, `model.`, none), from
//! `model.safetensors` or `pytorch_model.bin`.
//!
//! The checkpoint's tensors are read, renamed by the family's map ([`crate::names`]; a
//! fused tensor is split into row blocks, a shared one copied to each of its modules) and
//! applied with `PyTorchToBurnAdapter`, which transposes Linear weights and maps LayerNorm
//! `weight/bias` to `gamma/beta`; every float tensor is cast to f32. Tied decoders,
//! buffers and pre-training heads are skipped.

use stab_core::Refusal;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::store::burn_pack::Tensor as PackTensor;
use burn::store::{
    ApplyError, FloatCastAdapter, ModuleAdapter, ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter,
    PytorchStore, SafetensorsStore,
};
use burn::tensor::{DType, Device, Tensor};
use stab_core::InputError;

use crate::config::EncoderConfig;
use crate::encoder::Encoder;
use crate::names;

/// Parameters a checkpoint may lack; they keep their random init.
const MAY_BE_MISSING: &[&str] = &["pooler.", "mlm."];

/// What a load did.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    pub weights: PathBuf,
    /// Tensors loaded from the checkpoint.
    pub loaded: usize,
    /// Parameters the checkpoint lacks, randomly initialised (pooler, MLM head).
    pub initialised: Vec<String>,
    /// Source tensors that match nothing in the model.
    pub unexpected: Vec<String>,
}

impl std::fmt::Display for LoadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} tensors loaded",
            self.weights.display(),
            self.loaded
        )?;
        if !self.initialised.is_empty() {
            write!(
                f,
                "; randomly initialised (not in the checkpoint): {}",
                self.initialised.join(", ")
            )?;
        }
        if !self.unexpected.is_empty() {
            write!(
                f,
                "; unexpected tensors ignored: {}",
                self.unexpected.join(", ")
            )?;
        }
        Ok(())
    }
}

/// Touch every parameter once, in module order, so lazy initialisers run now (after the
/// caller seeded the device) rather than interleaved with later random draws.
pub fn materialize<M: Module>(module: &M) {
    struct Touch;
    impl ModuleVisitor for Touch {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let _ = p.val();
        }
    }
    module.visit(&mut Touch);
}

/// The weights file of a model directory.
pub fn weights_file(dir: &Path) -> Result<PathBuf, InputError> {
    stab_text::source::WEIGHT_FILES
        .iter()
        .flat_map(|(single, index)| [single, index])
        .map(|f| dir.join(f))
    .find(|p| p.exists())
    .ok_or_else(|| {
        InputError::new("no weights: neither model.safetensors nor pytorch_model.bin (nor a sharded index of either) is there")
            .file(dir.display().to_string())
            .hint("download the model's weights into the directory (safetensors preferred)")
    })
}

/// The files that hold the weights: the one [`weights_file`], or for a sharded checkpoint
/// (`*.index.json`, Hugging Face's `weight_map` from tensor name to shard) every shard it
/// names, once each, in name order.
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>, InputError> {
    let first = weights_file(dir)?;
    let Some(name) = first.file_name().and_then(|n| n.to_str()) else {
        return Ok(vec![first]);
    };
    if !name.ends_with(".index.json") {
        return Ok(vec![first]);
    }
    let file = first.display().to_string();
    let bad = |why: String| {
        InputError::new(why)
            .file(file.clone())
            .hint("a sharded checkpoint's index maps every tensor name to a shard file beside it (`weight_map`)")
    };
    let text = std::fs::read_to_string(&first).map_err(|e| bad(format!("cannot read: {e}")))?;
    let index: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not JSON: {e}")))?;
    let map = index
        .get("weight_map")
        .and_then(serde_json::Value::as_object)
        .ok_or_else(|| bad("no `weight_map` object".into()))?;
    let mut shards = std::collections::BTreeSet::new();
    for (tensor, shard) in map {
        let shard = shard
            .as_str()
            .filter(|s| !s.contains('/') && !s.contains('\\'))
            .ok_or_else(|| {
                bad(format!(
                    "`weight_map.{tensor}` is not a file name beside the index"
                ))
            })?;
        shards.insert(shard.to_string());
    }
    let files: Vec<PathBuf> = shards.iter().map(|s| dir.join(s)).collect();
    if let Some(missing) = files.iter().find(|f| !f.is_file()) {
        return Err(bad(format!("the shard {} is missing", missing.display())));
    }
    if files.is_empty() {
        return Err(bad("`weight_map` names no shard".into()));
    }
    Ok(files)
}

/// One tensor of a model directory's weights by its checkpoint name (`lm_head.weight`), as
/// f32 values and its shape; `None` when the checkpoint has no such tensor.
pub fn read_tensor(dir: &Path, name: &str) -> stab_core::Result<Option<(Vec<f32>, Vec<usize>)>> {
    let mut all = read_all(&weight_files(dir)?)?;
    let Some(t) = all.remove(name) else {
        return Ok(None);
    };
    let file = weights_file(dir)?.display().to_string();
    let bytes = t.to_bytes().map_err(|e| corrupt(&file, e.to_string()))?;
    let shape = t.shape.to_vec();
    let data = burn::tensor::TensorData::from_bytes_vec(bytes.to_vec(), shape.clone(), t.dtype);
    let values = data
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| corrupt(&file, format!("{e:?}")))?;
    Ok(Some((values, shape)))
}

/// Every tensor of the weight files by name (a sharded checkpoint's shards together).
fn read_all(files: &[PathBuf]) -> Result<BTreeMap<String, PackTensor>, InputError> {
    let mut all = BTreeMap::new();
    for f in files {
        for (name, t) in read_tensors(f)? {
            if all.insert(name.clone(), t).is_some() {
                return Err(InputError::new(format!("tensor `{name}` is in two shards"))
                    .file(f.display().to_string())
                    .hint("the shards of one checkpoint hold each tensor once"));
            }
        }
    }
    Ok(all)
}

/// Every tensor of a weights file by name.
fn read_tensors(weights: &Path) -> Result<BTreeMap<String, PackTensor>, InputError> {
    let file = weights.display().to_string();
    if weights.extension().is_some_and(|e| e == "safetensors") {
        let mut store = SafetensorsStore::from_file(weights);
        store
            .get_all_tensors()
            .cloned()
            .map_err(|e| corrupt(&file, e.to_string()))
    } else {
        let mut store = PytorchStore::from_file(weights);
        store
            .get_all_tensors()
            .cloned()
            .map_err(|e| corrupt(&file, e.to_string()))
    }
}

/// Row block `part` of `parts` equal blocks of `t` (raw bytes `bytes`), named `path`.
fn row_block(
    t: &PackTensor,
    bytes: &[u8],
    path: String,
    (part, parts): (usize, usize),
) -> Result<PackTensor, Refusal> {
    let mut shape = t.shape.to_vec();
    if shape.is_empty() || !shape[0].is_multiple_of(parts) {
        return Err(format!(
            "`{}` of shape {shape:?} does not split into {parts} row blocks",
            t.name
        )
        .into());
    }
    shape[0] /= parts;
    let block = bytes.len() / parts;
    let data = bytes[part * block..(part + 1) * block].to_vec();
    Ok(PackTensor::new(
        path,
        t.dtype,
        shape,
        None,
        burn::tensor::Bytes::from_bytes_vec(data),
    ))
}

/// A 2-D tensor [r, c] (raw bytes) as [c, r]: a GPT-2 `Conv1D` weight, stored [in, out],
/// as the [out, in] a Linear's checkpoint holds.
fn transposed(t: PackTensor, bytes: Vec<u8>) -> Result<(PackTensor, Vec<u8>), Refusal> {
    let [r, c] = t.shape.as_slice() else {
        return Err(format!(
            "`{}` of shape {:?} is not a 2-D Conv1D weight",
            t.name, t.shape
        )
        .into());
    };
    let (r, c) = (*r, *c);
    let width = t.dtype.size();
    if bytes.len() != r * c * width {
        return Err(format!(
            "`{}` holds {} bytes, not {r} × {c} values",
            t.name,
            bytes.len()
        )
        .into());
    }
    let mut out = vec![0u8; bytes.len()];
    for i in 0..r {
        for j in 0..c {
            let (from, to) = ((i * c + j) * width, (j * r + i) * width);
            out[to..to + width].copy_from_slice(&bytes[from..from + width]);
        }
    }
    let t = PackTensor::new(
        t.name.clone(),
        t.dtype,
        vec![c, r],
        None,
        burn::tensor::Bytes::from_bytes_vec(out.clone()),
    );
    Ok((t, out))
}

/// The checkpoint's tensors under stab's paths (the names left out on purpose dropped).
/// A fused tensor's bytes are read once for all its blocks.
fn renamed(
    config: &EncoderConfig,
    source: BTreeMap<String, PackTensor>,
    file: &str,
) -> Result<Vec<PackTensor>, InputError> {
    let mismatch = |m: Refusal| {
        InputError::new(m.reason)
            .file(file)
            .hint("config.json and the weights do not belong together")
    };
    let mut out = Vec::with_capacity(source.len());
    for (name, t) in source {
        if names::ignored(&name) {
            continue;
        }
        let targets = names::stab_paths(config.family, &name);
        if targets
            .iter()
            .any(|target| target.part.is_some() || target.transpose)
        {
            let mut bytes = t
                .to_bytes()
                .map_err(|e| corrupt(file, e.to_string()))?
                .to_vec();
            let mut t = t;
            if targets.iter().any(|target| target.transpose) {
                (t, bytes) = transposed(t, bytes).map_err(mismatch)?;
            }
            for target in targets {
                let part = target.part.unwrap_or((0, 1));
                out.push(row_block(&t, &bytes, target.path, part).map_err(mismatch)?);
            }
        } else if let Some((last, shared)) = targets.split_last() {
            // A tensor with several homes (ModernBERT's `head`) is copied; the last takes it.
            for target in shared {
                let mut c = t.clone();
                c.name = target.path.clone();
                out.push(c);
            }
            let mut t = t;
            t.name = last.path.clone();
            out.push(t);
        }
    }
    Ok(out)
}

/// Build an encoder from a model directory: config, random init (seeded by the caller
/// through `device.seed`), then the checkpoint's tensors.
pub fn load_encoder(dir: &Path, device: &Device) -> stab_core::Result<(Encoder, LoadReport)> {
    let config = EncoderConfig::from_dir(dir)?;
    let weights = weights_file(dir)?;
    let file = weights.display().to_string();
    let source = read_all(&weight_files(dir)?)?;
    let mut encoder = Encoder::new(&config, device);
    if source
        .keys()
        .any(|k| k.starts_with("discriminator_predictions."))
    {
        encoder = encoder.with_discriminator(device);
    }
    materialize(&encoder);
    check_layers(&config, &source, &file)?;
    check_finite(&source, &file)?;
    let tensors = renamed(&config, source, &file)?;
    let adapter: Box<dyn ModuleAdapter> =
        Box::new(PyTorchToBurnAdapter.chain(FloatCastAdapter::to(DType::F32)));
    let result = encoder.apply(tensors, None, Some(adapter), false);
    if let Some(err) = result.errors.first() {
        return Err(match err {
            ApplyError::ShapeMismatch {
                path,
                expected,
                found,
            } => InputError::new(format!(
                "tensor `{}` has shape {:?} in the checkpoint, but config.json implies {:?}",
                names::hf_name(config.family, path).map_or_else(|| path.clone(), |h| h.name),
                found.as_slice(),
                expected.as_slice()
            ))
            .file(file)
            .hint("config.json and the weights do not belong together"),
            other => corrupt(&file, other.to_string()),
        }
        .into());
    }
    let (initialised, missing): (Vec<String>, Vec<String>) = result
        .missing
        .iter()
        .map(|(p, _)| p.clone())
        .partition(|p| MAY_BE_MISSING.iter().any(|m| p.starts_with(m)));
    if !missing.is_empty() {
        // Named as the checkpoint would name them.
        let shown: Vec<String> = missing
            .iter()
            .map(|p| names::hf_name(config.family, p).map_or_else(|| p.clone(), |h| h.name))
            .collect();
        return Err(InputError::new(format!(
            "the checkpoint lacks {} encoder tensors: {}",
            missing.len(),
            shown.join(", ")
        ))
        .file(file)
        .hint(format!(
            "is this a {} checkpoint matching config.json?",
            config.family.name()
        ))
        .into());
    }
    let report = LoadReport {
        weights,
        loaded: result.applied.len(),
        initialised,
        unexpected: result.unused.clone(),
    };
    Ok((encoder, report))
}

/// The weights hold no more layers than `config.json` says (extra layers would be
/// dropped in silence).
fn check_layers(
    config: &EncoderConfig,
    source: &BTreeMap<String, PackTensor>,
    file: &str,
) -> Result<(), InputError> {
    let deepest = source
        .keys()
        .filter_map(|name| names::layer_index(name).map(|i| (i, name)))
        .max_by_key(|(i, _)| *i);
    match deepest {
        Some((i, name)) if i >= config.num_hidden_layers => Err(InputError::new(format!(
            "config.json says num_hidden_layers = {}, but the weights hold layer {i} (`{name}`)",
            config.num_hidden_layers
        ))
        .file(file)
        .key("num_hidden_layers")
        .hint("config.json and the weights do not belong together; use the config the weights came with")),
        _ => Ok(()),
    }
}

/// Every float value of the weights is finite: a model with NaN or infinite weights
/// would train and score as if it were a model.
fn check_finite(source: &BTreeMap<String, PackTensor>, file: &str) -> Result<(), InputError> {
    for (name, t) in source {
        // A value is non-finite when its exponent bits are all ones.
        let (width, mask): (usize, u64) = match t.dtype {
            DType::F64 => (8, 0x7FF0_0000_0000_0000),
            DType::F32 => (4, 0x7F80_0000),
            DType::F16 => (2, 0x7C00),
            DType::BF16 => (2, 0x7F80),
            _ => continue,
        };
        let bytes = t.to_bytes().map_err(|e| corrupt(file, e.to_string()))?;
        let bad = bytes.chunks_exact(width).position(|b| {
            let mut word = [0u8; 8];
            word[..width].copy_from_slice(b);
            u64::from_le_bytes(word) & mask == mask
        });
        if let Some(at) = bad {
            return Err(InputError::new(format!(
                "tensor `{name}` holds a non-finite value (NaN or infinity) at element {at}"
            ))
            .file(file)
            .hint("the weights are damaged or come from a diverged training run; use a finite checkpoint"));
        }
    }
    Ok(())
}

fn corrupt(file: &str, detail: String) -> InputError {
    if detail.contains("ShapeMismatch") {
        return InputError::new(format!(
            "the weights do not have the shapes config.json implies: {detail}"
        ))
        .file(file)
        .hint("config.json and the weights do not belong together");
    }
    InputError::new(format!("cannot read the weights: {detail}"))
        .file(file)
        .hint("the file is damaged or not a safetensors/PyTorch checkpoint; download it again")
}
