//! The engine session: one process's device, out directory and caches shared by the
//! runs it executes (tokenized tasks, model hashes, checked model directories, one lock
//! per cache key), and what a run needs before it starts: input checks and the
//! fingerprint of its inputs.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use burn::tensor::Device;
use serde::Serialize;
use stab_core::Context as _;
use stab_core::plan::{FinetuneJob, RunJob};
use stab_core::{InputError, InputFingerprint, RunSpec, stable_hash};
use stab_data::encode::{EncodedRow, encode_examples};
use stab_data::{DatasetCache, Splits, Task, resolve_split};
use stab_models::{EncoderConfig, TextEncoder, load_encoder, resolve_model};

use crate::features::FeatureSet;
use crate::method::Method;
use crate::stack::MethodStack;

/// A cache key: a typed value, as its JSON text (stored beside cached data, so a file can
/// be checked against its key) and that text's stable hash (the file name).
pub(super) fn cache_key<K: Serialize>(key: &K) -> (String, u64) {
    let text = serde_json::to_string(key).expect("cache keys serialise");
    let hash = stable_hash(text.as_bytes());
    (text, hash)
}

/// What a tokenized task depends on (the in-memory task cache's key).
#[derive(Serialize)]
struct TaskKey<'a> {
    model_dir: &'a Path,
    task: &'a str,
    max_len: usize,
    data: &'a stab_core::DataSection,
    splits: Option<&'a stab_data::SplitFiles>,
    dev_fraction: f64,
}

/// A task read, split and tokenized once per process and shared by its runs.
pub struct PreparedTask {
    pub def: Task,
    pub splits: Splits,
    pub train: Vec<EncodedRow>,
    pub dev: Vec<EncodedRow>,
    pub test: Vec<EncodedRow>,
    /// `file:<hash>` or `seeded:<hash>`.
    pub split_hash: String,
    /// Hash of the task's train and test files (the run record's `inputs.data`).
    pub data_hash: u64,
    pub tokenizer: TextEncoder,
    pub pad_id: i64,
}

/// The fine-tuning engine of one process: the device, the out directory for caches, and
/// the tokenized tasks and frozen features shared by the runs it executes. Runs own
/// their randomness, so runs executed here one after another or at the same time give
/// the same records as each run alone.
pub struct Engine {
    /// The base device (the host CPU, or an accelerator); training uses its autodiff form.
    pub device: Device,
    /// The device as the user named it (`cpu`, `wgpu:0`), for records.
    pub device_name: String,
    pub out: PathBuf,
    pub(super) tasks: Mutex<HashMap<String, Arc<PreparedTask>>>,
    pub(super) features: Mutex<HashMap<u64, Arc<Vec<FeatureSet>>>>,
    pub(super) model_hashes: Mutex<HashMap<PathBuf, u64>>,
    /// Model directories whose files were read whole and found consistent.
    pub(super) models_checked: Mutex<HashSet<PathBuf>>,
    /// One lock per cache key (frozen features, prepared encoders), so runs in parallel
    /// compute each once per process whatever `--jobs`.
    pub(super) key_locks: Mutex<HashMap<u64, Arc<Mutex<()>>>>,
    /// A fixed batch order replacing the seeded shuffle (see [`Engine::with_batch_order`]).
    pub(super) batch_order: Option<Arc<Vec<Vec<usize>>>>,
}

impl Engine {
    pub fn new(device: Device, out: &Path) -> Self {
        let device_name = match stab_models::KernelPath::of(&device) {
            stab_models::KernelPath::Host => "cpu",
            stab_models::KernelPath::Accelerator => "accelerator",
        };
        Self {
            device_name: device_name.to_string(),
            device,
            out: out.to_path_buf(),
            tasks: Mutex::new(HashMap::new()),
            features: Mutex::new(HashMap::new()),
            model_hashes: Mutex::new(HashMap::new()),
            models_checked: Mutex::new(HashSet::new()),
            key_locks: Mutex::new(HashMap::new()),
            batch_order: None,
        }
    }

    /// The same engine, training every run on these batches (indices into the run's
    /// training rows, update by update) instead of the seeded per-epoch shuffle: for
    /// parity checks against another implementation that reads the same order.
    pub fn with_batch_order(mut self, batches: Vec<Vec<usize>>) -> Self {
        self.batch_order = Some(Arc::new(batches));
        self
    }

    /// The lock of one cache key (see `key_locks`).
    /// The same engine, with the device recorded under `name` (as `--device` gave it).
    pub fn with_device_name(mut self, name: &str) -> Self {
        self.device_name = name.to_string();
        self
    }

    pub(super) fn key_lock(&self, key: u64) -> Arc<Mutex<()>> {
        self.key_locks
            .lock()
            .expect("key locks")
            .entry(key)
            .or_default()
            .clone()
    }

    /// Read a model directory's files whole once per process — the validated config,
    /// the tokenizer against the vocabulary, and every weight against the config — so a
    /// damaged or mismatched model is one input error before any run, not a failure of
    /// every run.
    pub(super) fn check_model(&self, model_dir: &Path) -> stab_core::Result<EncoderConfig> {
        let config = EncoderConfig::from_dir(model_dir)?;
        if self
            .models_checked
            .lock()
            .expect("model checks")
            .contains(model_dir)
        {
            return Ok(config);
        }
        TextEncoder::for_model(model_dir, &config)?;
        load_encoder(model_dir, &self.device)?;
        self.models_checked
            .lock()
            .expect("model checks")
            .insert(model_dir.to_path_buf());
        Ok(config)
    }

    /// What a run reads besides its settings, as content hashes (the record's `inputs`):
    /// resume reuses a finished run only while these are unchanged.
    pub fn inputs(&self, spec: &RunSpec) -> stab_core::Result<InputFingerprint> {
        let job = finetune_job(spec)?;
        let model_dir = resolve_model(&job.model.path)?;
        let task = self.task(job, &model_dir, &spec.task)?;
        self.fingerprint(&model_dir, &task)
    }

    pub(super) fn fingerprint(
        &self,
        model_dir: &Path,
        task: &PreparedTask,
    ) -> stab_core::Result<InputFingerprint> {
        Ok(InputFingerprint {
            model: format!("{:016x}", self.model_hash(model_dir)?),
            data: format!("{:016x}", task.data_hash),
            split: task.split_hash.clone(),
        })
    }

    /// Check that a spec can run here (its method is implemented, its data and model
    /// resolve), without training: input errors surface before any run starts.
    pub fn check(&self, spec: &RunSpec) -> stab_core::Result<()> {
        let job = finetune_job(spec)?;
        let method = MethodStack::build(&spec.stack())?;
        method.check_mode(job.train.mode)?;
        let model_dir = resolve_model(&job.model.path)?;
        let config = self.check_model(&model_dir)?;
        method.check_model(&config).map_err(|why| {
            InputError::new(format!("method `{}`: {why}", spec.method))
                .key("methods")
                .file(model_dir.join("config.json").display().to_string())
                .hint("`stab list methods` shows each method's parameters")
        })?;
        let limit = config.max_tokens();
        if job.model.max_len > limit || job.model.max_len < 8 {
            return Err(InputError::new(format!(
                "model.max_len = {} does not fit the model: its {} position embeddings allow {limit} tokens",
                job.model.max_len, config.max_position_embeddings
            ))
            .key("model.max_len")
            .hint(format!("use a max_len in 8..={limit} (128 or 256 are usual)"))
            .into());
        }
        self.task(job, &model_dir, &spec.task)?;
        Ok(())
    }

    /// The task's splits and tokenized rows, prepared once per process.
    pub(super) fn task(
        &self,
        job: &FinetuneJob,
        model_dir: &Path,
        name: &str,
    ) -> stab_core::Result<Arc<PreparedTask>> {
        let split_files =
            stab_data::split_files(job.data.origin(), job.data.splits.as_deref(), "data.splits")?;
        let (key, _) = cache_key(&TaskKey {
            model_dir,
            task: name,
            max_len: job.model.max_len,
            data: &job.data,
            splits: split_files.as_ref(),
            dev_fraction: job.data.dev_fraction,
        });
        if let Some(t) = self.tasks.lock().expect("task cache").get(&key) {
            return Ok(t.clone());
        }
        let loaded = stab_data::load_recipe_task(name, &job.data, &DatasetCache::from_env())?;
        if let Some(held) = &loaded.held_out {
            self.write_held_out(held, loaded.fingerprint)?;
        }
        let (data, data_hash) = (loaded.data, loaded.fingerprint);
        let def = data.task.clone();
        let resolved = resolve_split(&data, split_files.as_ref(), job.data.dev_fraction)?;
        let config = EncoderConfig::from_dir(model_dir)?;
        let tokenizer = TextEncoder::for_model(model_dir, &config)?;
        let encode = |rows: &[stab_data::Example], part: &str| {
            encode_examples(&tokenizer, rows, job.model.max_len)
                .with_context(|| format!("tokenizing {name} {part}"))
        };
        let splits = resolved.splits;
        let prepared = Arc::new(PreparedTask {
            def,
            train: encode(&splits.train, "train")?,
            dev: encode(&splits.dev, "dev")?,
            test: encode(&splits.test, "test")?,
            splits,
            split_hash: resolved.hash,
            data_hash,
            pad_id: config.pad_id() as i64,
            tokenizer,
        });
        self.tasks
            .lock()
            .expect("task cache")
            .insert(key, prepared.clone());
        Ok(prepared)
    }

    /// Write a custom task's held-out test rows to `<out>/splits/`, once: the file is named
    /// by the data's hash, so an existing one holds the same rows.
    fn write_held_out(
        &self,
        held: &stab_data::custom::HeldOutTest,
        fingerprint: u64,
    ) -> stab_core::Result<()> {
        let dir = self.out.join("splits");
        let path = dir.join(held.file_name(fingerprint));
        if path.is_file() {
            return Ok(());
        }
        stab_core::atomic::create_dir(&dir)?;
        let text = serde_json::to_string_pretty(held).expect("a split serialises");
        stab_core::atomic::write_file(&path, format!("{text}\n").as_bytes())
    }

    /// Hash of a model directory's config and weights (the feature cache key's model part).
    pub(super) fn model_hash(&self, dir: &Path) -> stab_core::Result<u64> {
        if let Some(h) = self.model_hashes.lock().expect("hash cache").get(dir) {
            return Ok(*h);
        }
        let mut bytes = std::fs::read(dir.join("config.json"))?;
        for file in stab_models::loader::weight_files(dir)? {
            bytes.extend(std::fs::read(file)?);
        }
        let h = stable_hash(&bytes);
        self.model_hashes
            .lock()
            .expect("hash cache")
            .insert(dir.to_path_buf(), h);
        Ok(h)
    }
}

pub(super) fn finetune_job(spec: &RunSpec) -> stab_core::Result<&FinetuneJob> {
    match &spec.job {
        RunJob::Finetune(j) => Ok(j),
        RunJob::Synthetic(_) => Err(InputError::new(format!(
            "{} is a synthetic run, not a fine-tuning run",
            spec.run_id
        ))
        .hint("pass a fine-tuning recipe (one with [model] and [data])")
        .into()),
    }
}
