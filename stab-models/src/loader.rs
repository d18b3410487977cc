//! Loading Hugging Face weights into an [`Encoder`] through burn-store, whatever the name
//! prefix (`bert.`, `roberta.`, none), from `model.safetensors` or `pytorch_model.bin`.
//!
//! Key renames (source → burn): drop `bert.`/`roberta.`; `attention.self` → `self_attn`
//! (`self` is a Rust keyword); `LayerNorm` → `layer_norm`; BERT `cls.predictions.transform.*`
//! and `cls.predictions.bias`, RoBERTa `lm_head.*` → `mlm.*`. `PyTorchToBurnAdapter`
//! transposes Linear weights and maps LayerNorm `weight/bias` to `gamma/beta`; every float
//! tensor is cast to f32. The tied MLM decoder and the `position_ids` buffer are skipped.

use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::store::{
    ApplyError, FloatCastAdapter, KeyRemapper, ModuleAdapter, ModuleSnapshot, PyTorchToBurnAdapter,
    PytorchStore, SafetensorsStore,
};
use burn::tensor::{DType, Device, Tensor};
use stab_core::InputError;

use crate::config::EncoderConfig;
use crate::encoder::Encoder;

/// Parameters a checkpoint may lack; they keep their random init.
const MAY_BE_MISSING: &[&str] = &["pooler.", "mlm."];
/// Source tensors that are expected and deliberately not loaded.
const IGNORED_SOURCE: &[&str] = &[
    "embeddings.position_ids",
    "mlm.decoder.",
    "cls.seq_relationship.",
    "cls.predictions.decoder.",
];

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

fn remapper() -> KeyRemapper {
    KeyRemapper::from_patterns(vec![
        (r"^(bert|roberta)\.", ""),
        (r"^cls\.predictions\.transform\.", "mlm."),
        (r"^cls\.predictions\.bias$", "mlm.bias"),
        (r"^lm_head\.", "mlm."),
        (r"\.attention\.self\.", ".attention.self_attn."),
        (r"LayerNorm", "layer_norm"),
    ])
    .expect("valid patterns")
}

/// The weights file of a model directory.
pub fn weights_file(dir: &Path) -> Result<PathBuf, InputError> {
    ["model.safetensors", "pytorch_model.bin"]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.exists())
        .ok_or_else(|| {
            InputError::new("no weights: neither model.safetensors nor pytorch_model.bin is there")
                .file(dir.display().to_string())
                .hint("download the model's weights into the directory (safetensors preferred)")
        })
}

/// Build an encoder from a model directory: config, random init (seeded by the caller
/// through `device.seed`), then the checkpoint's tensors.
pub fn load_encoder(dir: &Path, device: &Device) -> anyhow::Result<(Encoder, LoadReport)> {
    let config = EncoderConfig::from_dir(dir)?;
    let weights = weights_file(dir)?;
    let mut encoder = Encoder::new(&config, device);
    materialize(&encoder);
    let adapter = || PyTorchToBurnAdapter.chain(FloatCastAdapter::to(DType::F32));
    let file = weights.display().to_string();
    let result = if weights.extension().is_some_and(|e| e == "safetensors") {
        let mut store = SafetensorsStore::from_file(&weights)
            .with_from_adapter(adapter())
            .remap(remapper())
            .allow_partial(true);
        encoder
            .load_from(&mut store)
            .map_err(|e| corrupt(&file, e.to_string()))?
    } else {
        let mut store = PytorchStore::from_file(&weights)
            .remap(remapper())
            .allow_partial(true);
        encoder
            .load_from(&mut store)
            .map_err(|e| corrupt(&file, e.to_string()))?
    };
    if let Some(err) = result.errors.first() {
        return Err(match err {
            ApplyError::ShapeMismatch {
                path,
                expected,
                found,
            } => InputError::new(format!(
                "tensor `{path}` has shape {:?} in the checkpoint, but config.json implies {:?}",
                found, expected
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
        return Err(InputError::new(format!(
            "the checkpoint lacks {} encoder tensors: {}",
            missing.len(),
            missing.join(", ")
        ))
        .file(file)
        .hint("is this a BERT/RoBERTa checkpoint matching config.json?")
        .into());
    }
    let unexpected = result
        .unused
        .iter()
        .filter(|k| !IGNORED_SOURCE.iter().any(|i| k.starts_with(i)))
        .cloned()
        .collect();
    let report = LoadReport {
        weights,
        loaded: result.applied.len(),
        initialised,
        unexpected,
    };
    Ok((encoder, report))
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
