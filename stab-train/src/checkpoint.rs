//! A run's selected weights as a Hugging Face model directory (`[train] save_best`), and
//! the way back: a checkpoint directory into a [`TaskModel`] for the analyses.
//!
//! Layout of `<out>/checkpoints/<run_id>/`: `model.safetensors` (encoder under BertModel
//! names, head under `stab_head.*`; see [`stab_models::checkpoint`]), and `config.json`
//! plus the tokenizer files copied from the pre-trained model, and the files the methods
//! add (LoRA: `peft/adapter_model.safetensors` + `peft/adapter_config.json`, HF PEFT's format). In head tuning on cached
//! features the encoder is the frozen one: only the head is written, and the metadata key
//! `stab_encoder` names the model directory it sits on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use stab_core::InputError;
use stab_data::Task;
use stab_models::checkpoint::{HEAD_PREFIX, transpose};
use stab_models::names::hf_name;
use stab_models::{
    Encoder, HeadShape, NamedTensor, TaskHead, TensorFile, load_encoder, read_safetensors,
};

use crate::method::CheckpointFile;
use crate::model::TaskModel;
use crate::params::{self, ParamTransform};

/// Files of a model directory that make a checkpoint loadable on its own.
const COPIED: &[&str] = &[
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
];

fn host(values: &Tensor<1>) -> stab_core::Result<Vec<f32>> {
    values
        .clone()
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| stab_core::internal!("{e:?}"))
}

/// The model's tensors under checkpoint names.
pub fn tensors(model: &TaskModel) -> stab_core::Result<BTreeMap<String, NamedTensor>> {
    let mut out = BTreeMap::new();
    if let Some(encoder) = &model.encoder {
        // Blocks of fused tensors (ModernBERT's Wqkv), joined in block order below.
        let mut blocks: BTreeMap<String, Vec<(usize, NamedTensor)>> = BTreeMap::new();
        let mut conv1d = std::collections::BTreeSet::new();
        for (path, p) in params::collect(encoder) {
            let Some(hf) = hf_name(encoder.config.family, &path) else {
                continue;
            };
            let mut values = host(&p.values)?;
            let mut shape = p.shape.clone();
            if hf.transposed && shape.len() == 2 {
                values = transpose(&values, shape[0], shape[1]);
                shape.swap(0, 1);
            }
            let tensor = NamedTensor { shape, values };
            match hf.part {
                None => {
                    out.insert(hf.name, tensor);
                }
                Some((part, _)) => {
                    if hf.conv1d {
                        conv1d.insert(hf.name.clone());
                    }
                    blocks.entry(hf.name).or_default().push((part, tensor));
                }
            }
        }
        for (name, mut parts) in blocks {
            parts.sort_by_key(|(i, _)| *i);
            let mut shape = parts[0].1.shape.clone();
            shape[0] = parts.iter().map(|(_, t)| t.shape[0]).sum();
            let mut values: Vec<f32> = parts.into_iter().flat_map(|(_, t)| t.values).collect();
            if conv1d.contains(&name) && shape.len() == 2 {
                values = transpose(&values, shape[0], shape[1]);
                shape.swap(0, 1);
            }
            out.insert(name, NamedTensor { shape, values });
        }
    }
    if let Some(score) = hf_score(model)? {
        let prefix = model
            .encoder
            .as_ref()
            .map_or("", |e| e.config.family.spec().info().prefix);
        out = out
            .into_iter()
            .map(|(k, v)| (format!("{prefix}{k}"), v))
            .collect();
        out.insert("score.weight".into(), score);
    }
    for (path, p) in params::collect(&model.head) {
        out.insert(
            format!("{HEAD_PREFIX}{path}"),
            NamedTensor {
                shape: p.shape.clone(),
                values: host(&p.values)?,
            },
        );
    }
    Ok(out)
}

/// Whether a checkpoint of `model` is a Hugging Face `*ForSequenceClassification`: a
/// decoder's full model with the `score` head reading the last token (pooling `last` or
/// `pooler`). Then its base-model tensors carry the task model's prefix (`model.`,
/// `transformer.`) and the head is also written as `score.weight` ([`hf_score`]).
pub fn is_hf_classifier(model: &TaskModel) -> bool {
    let last = matches!(
        model.pooling,
        stab_core::Pooling::Last | stab_core::Pooling::Pooler
    );
    let decoder = model
        .encoder
        .as_ref()
        .is_some_and(|e| e.config.family.is_decoder());
    decoder && last && matches!(model.head, TaskHead::Score(_))
}

/// The `score.weight` `[C, d]` of a checkpoint that [`is_hf_classifier`] (the mean of
/// MHLoss's layers, the predictor stab scores); `None` for any other.
pub fn hf_score(model: &TaskModel) -> stab_core::Result<Option<NamedTensor>> {
    let TaskHead::Score(head) = &model.head else {
        return Ok(None);
    };
    if !is_hf_classifier(model) {
        return Ok(None);
    }
    let w = head.out.averaged().weight.val();
    let [_, d, c] = w.dims();
    let values = host(&w.reshape([d * c]))?;
    Ok(Some(NamedTensor {
        shape: vec![c, d],
        values: transpose(&values, d, c),
    }))
}

/// The model directory's `config.json`, made a sequence classifier's where the checkpoint
/// is one ([`is_hf_classifier`]): `architectures`, the task's labels (`id2label`, `label2id`, so
/// `num_labels`), and `pad_token_id` (stab's pad, the eos token where the config has none,
/// so HF finds the last token the same way).
fn classifier_config(
    model: &TaskModel,
    model_dir: &Path,
    task: Option<&Task>,
) -> stab_core::Result<Option<Vec<u8>>> {
    let (Some(encoder), Some(task)) = (&model.encoder, task) else {
        return Ok(None);
    };
    let Some(class) = encoder.config.family.sequence_classifier() else {
        return Ok(None);
    };
    if !is_hf_classifier(model) {
        return Ok(None);
    }
    let path = model_dir.join("config.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| stab_core::atomic::io_error("read", &path, e))?;
    let mut config: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| stab_core::internal!("{}: {e}", path.display()))?;
    let labels = task.labels();
    let id2label: serde_json::Map<_, _> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (i.to_string(), serde_json::json!(l)))
        .collect();
    let label2id: serde_json::Map<_, _> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.to_string(), serde_json::json!(i)))
        .collect();
    config["architectures"] = serde_json::json!([class]);
    config["id2label"] = id2label.into();
    config["label2id"] = label2id.into();
    config["problem_type"] = serde_json::json!("single_label_classification");
    config["pad_token_id"] = serde_json::json!(encoder.config.pad_id());
    let mut bytes = serde_json::to_vec_pretty(&config).expect("json");
    bytes.push(b'\n');
    Ok(Some(bytes))
}

/// Metadata keys a checkpoint of a custom task carries: its class names (JSON list), its
/// metric, and its `[data.custom]` table (JSON), so the checkpoint names its classes and
/// `analyze` can read the task's files again.
pub const CUSTOM_TASK_KEYS: [&str; 3] = ["stab_labels", "stab_metric", "stab_task_spec"];

/// The task a checkpoint was trained on: a built-in task by name, else the custom task its
/// metadata describes.
pub fn task_of(meta: &BTreeMap<String, String>, name: &str, dir: &Path) -> stab_core::Result<Task> {
    let Some(labels) = meta.get("stab_labels") else {
        return Ok(Task::Builtin(stab_data::task_def(name)?));
    };
    let labels: Vec<String> = serde_json::from_str(labels).map_err(|e| {
        InputError::new(format!(
            "the metadata's stab_labels is not a list of names: {e}"
        ))
        .file(dir.display().to_string())
    })?;
    Ok(Task::Custom(std::sync::Arc::new(stab_data::CustomTask {
        name: name.to_string(),
        labels,
        metric: meta
            .get("stab_metric")
            .cloned()
            .unwrap_or_else(|| "accuracy".into()),
    })))
}

/// Write `model` as `<dir>` (a model directory), replacing an older one atomically: the
/// files go to a temporary sibling directory that is then renamed into place.
pub fn save(
    model: &TaskModel,
    model_dir: &Path,
    dir: &Path,
    metadata: BTreeMap<String, String>,
    extra: &[(String, CheckpointFile)],
) -> stab_core::Result<()> {
    let tmp = stab_core::atomic::AtomicDir::create(dir)?;
    let mut file = TensorFile {
        tensors: tensors(model)?,
        metadata,
    };
    if model.encoder.is_none() {
        file.metadata
            .insert("stab_encoder".into(), model_dir.display().to_string());
    }
    stab_models::write_safetensors(&tmp.path().join("model.safetensors"), &file)?;
    let task = file
        .metadata
        .get("stab_task")
        .map(|name| task_of(&file.metadata, name, dir))
        .transpose()?;
    let config = classifier_config(model, model_dir, task.as_ref())?;
    if let Some(bytes) = &config {
        stab_core::atomic::write_file(&tmp.path().join("config.json"), bytes)?;
    }
    for name in COPIED
        .iter()
        .filter(|n| config.is_none() || **n != "config.json")
    {
        let src = model_dir.join(name);
        if src.is_file() {
            std::fs::copy(&src, tmp.path().join(name))
                .map_err(|e| stab_core::atomic::io_error("copy", &src, e))?;
        }
    }
    for (name, file) in extra {
        // Both writers create the file's directory (`peft/`) themselves.
        let path = tmp.path().join(name);
        match file {
            CheckpointFile::Bytes(bytes) => stab_core::atomic::write_file(&path, bytes)?,
            CheckpointFile::Tensors(t) => stab_models::write_safetensors(&path, t)?,
        }
    }
    tmp.commit()
}

/// A checkpoint directory read back: the encoder (when the checkpoint has one) and the head
/// tensors, ready to fill a head of the same shape.
pub struct Checkpoint {
    pub dir: PathBuf,
    pub encoder: Option<Encoder>,
    pub file: TensorFile,
}

impl Checkpoint {
    /// Read `<dir>/model.safetensors` (and its encoder through the regular loader).
    pub fn open(dir: &Path, device: &Device) -> stab_core::Result<Self> {
        let weights = dir.join("model.safetensors");
        if !weights.is_file() {
            return Err(InputError::new("no model.safetensors here")
                .file(dir.display().to_string())
                .hint("a run checkpoint is <out>/checkpoints/<run_id>, written with [train] save_best = true")
                .into());
        }
        let file = read_safetensors(&weights)?;
        let encoder = if file.metadata.contains_key("stab_encoder") {
            None
        } else {
            Some(load_encoder(dir, device)?.0)
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            encoder,
            file,
        })
    }

    /// `head` (built with the checkpoint's shape) with the checkpoint's values.
    pub fn fill_head(&self, head: TaskHead) -> stab_core::Result<TaskHead> {
        struct Fill<'a> {
            file: &'a TensorFile,
            missing: Vec<String>,
        }
        impl ParamTransform for Fill<'_> {
            fn apply<const D: usize>(&mut self, path: &str, value: Tensor<D>) -> Tensor<D> {
                match self.file.tensors.get(&format!("{HEAD_PREFIX}{path}")) {
                    Some(t) if t.shape == value.dims().to_vec() => Tensor::<D>::from_data(
                        TensorData::new(t.values.clone(), t.shape.clone()),
                        &value.device(),
                    ),
                    _ => {
                        self.missing.push(path.to_string());
                        value
                    }
                }
            }
        }
        let mut fill = Fill {
            file: &self.file,
            missing: Vec::new(),
        };
        let head = params::transform(head, &mut fill);
        if !fill.missing.is_empty() {
            return Err(InputError::new(format!(
                "the checkpoint's head does not fit: {} missing or of another shape",
                fill.missing.join(", ")
            ))
            .file(self.dir.display().to_string())
            .hint("analyse a checkpoint with the task and method it was trained with")
            .into());
        }
        Ok(head)
    }

    /// The task model this checkpoint holds, for task `task` (default: the one its metadata
    /// names): the encoder, a head of the saved shape filled with the saved values, and the
    /// pooling it was trained with. The head's shape comes from the metadata the run wrote
    /// (`stab_head_layers`, `stab_head_replicate_dense`); checkpoints written before those
    /// keys are read from their tensors' shapes. The head is in the dropout-free eval form.
    /// Returns the model and its task's definition.
    pub fn task_model(
        &self,
        task: Option<&str>,
        device: &Device,
    ) -> stab_core::Result<(TaskModel, Task)> {
        let meta = &self.file.metadata;
        let task = task
            .map(str::to_string)
            .or_else(|| meta.get("stab_task").cloned())
            .ok_or_else(|| {
                InputError::new("the checkpoint does not name its task")
                    .file(self.dir.display().to_string())
                    .hint("pass --task NAME")
            })?;
        let def = if meta.get("stab_task") == Some(&task) {
            task_of(meta, &task, &self.dir)?
        } else {
            Task::Builtin(stab_data::task_def(&task)?)
        };
        let Some(encoder) = self.encoder.clone() else {
            return Err(InputError::new(
                "a head-tuning checkpoint holds no encoder weights (its metadata names the frozen encoder)",
            )
            .file(self.dir.display().to_string())
            .hint("use a full fine-tuning checkpoint (mode = \"full\", save_best = true)")
            .into());
        };
        let pooling = match meta.get("stab_pooling").map(String::as_str) {
            Some("cls") => stab_core::Pooling::Cls,
            Some("mean") => stab_core::Pooling::Mean,
            Some("last") => stab_core::Pooling::Last,
            _ => stab_core::Pooling::Pooler,
        };
        let shape = self.head_shape();
        let classes = def.classes();
        let head =
            crate::model::fresh_head(&encoder.config, def.head(), classes, 0.0, shape, 0, device);
        let head = self.fill_head(head)?;
        let model = TaskModel {
            encoder: Some(encoder),
            head,
            pooling,
        };
        Ok((model, def))
    }

    /// The saved head's shape: from the metadata, else from its tensors (older checkpoints).
    pub fn head_shape(&self) -> HeadShape {
        let meta = &self.file.metadata;
        let layers = meta.get("stab_head_layers").and_then(|v| v.parse().ok());
        let replicate = meta
            .get("stab_head_replicate_dense")
            .and_then(|v| v.parse().ok());
        HeadShape {
            out_layers: layers.or_else(|| self.heads()).unwrap_or(1),
            replicate_dense: replicate.unwrap_or_else(|| {
                self.file.tensors.iter().any(|(k, t)| {
                    k.starts_with(HEAD_PREFIX) && k.ends_with(".dense.weight") && t.shape[0] > 1
                })
            }),
        }
    }

    /// Number of output layers H of the saved head.
    pub fn heads(&self) -> Option<usize> {
        self.file
            .tensors
            .iter()
            .find(|(k, _)| k.starts_with(HEAD_PREFIX) && k.ends_with(".out.weight"))
            .map(|(_, t)| t.shape[0])
    }
}
