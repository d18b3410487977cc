//! Frozen-encoder features for head tuning: from memory, from the disk cache, or encoded
//! now (and saved), one encoding per key per process whatever `--jobs`.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use burn::module::Module;
use burn::tensor::Device;
use stab_core::plan::FinetuneJob;
use stab_core::recipe::TrainMode;
use stab_core::{InputError, RunSpec, derive_seed};
use stab_data::encode::EncodedRow;
use stab_models::{load_encoder, resolve_model};

use crate::cache_file::Cached;
use crate::features::{self, FeatureSet};
use crate::method::{EncoderChange, Method};
use crate::prepare::reinit_pooler;
use crate::run::Progress;
use crate::session::{Engine, PreparedTask, cache_key, finetune_job};
use crate::stack::MethodStack;

/// A task's training rows as frozen-encoder features.
#[derive(Debug, Clone)]
pub struct TrainFeatures {
    pub dim: usize,
    /// rows × dim, row-major.
    pub features: Vec<f64>,
    pub labels: Vec<usize>,
    /// Label names, by label id.
    pub classes: Vec<String>,
}

/// What a task's frozen features depend on.
#[derive(serde::Serialize)]
struct FeatureKey<'a> {
    cache: &'static str,
    version: u32,
    model: String,
    task: &'a str,
    /// The task files' hash: a custom task's file can change under the same name.
    data: String,
    split: &'a str,
    max_len: usize,
    pooling: stab_core::Pooling,
    head: stab_data::tasks::HeadKind,
    /// The per-task encoder change the features are encoded after.
    prepared: Option<&'a str>,
}

impl Engine {
    /// The frozen encoder's pooled features of a task's training rows (all of them: no
    /// train/drop fraction), as head tuning with this spec's model, pooling and method
    /// would see them — from the same cache. For the analyses of heads on real features.
    pub fn train_features(
        &self,
        spec: &RunSpec,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> stab_core::Result<TrainFeatures> {
        let job = finetune_job(spec)?;
        let method = MethodStack::build(&spec.stack())?;
        let model_dir = resolve_model(&job.model.path)?;
        let task = self.task(job, &model_dir, &spec.task)?;
        let device = self.device.clone().autodiff();
        let change = method.encoder_change(TrainMode::Head);
        let frozen = self.frozen_features(
            job,
            &model_dir,
            &task,
            &method,
            &change,
            (spec.seed, &task.train),
            &device,
            progress,
        )?;
        let FeatureSet::Pooled { dim, data } = &frozen.sets[0] else {
            return Err(InputError::new(format!(
                "task {} has a span head: its features are token spans, not one vector per example",
                spec.task
            ))
            .hint("analyse a classification task (RTE, CB, MRPC, …)")
            .into());
        };
        Ok(TrainFeatures {
            dim: *dim,
            features: data.iter().map(|&v| v as f64).collect(),
            labels: task.train.iter().map(|r| r.label).collect(),
            classes: task
                .def
                .labels()
                .into_iter()
                .map(|l| l.to_string())
                .collect(),
        })
    }

    /// A task's features from memory, or from the disk cache (then kept in memory), with
    /// where they came from; `None` (a damaged or mismatched file warned about) to encode.
    fn cached_features(
        &self,
        key: u64,
        path: &Path,
        task: &PreparedTask,
    ) -> Option<(Arc<Vec<FeatureSet>>, &'static str)> {
        if let Some(sets) = self.features.lock().expect("feature cache").get(&key) {
            return Some((sets.clone(), "memory"));
        }
        let expected = [task.train.len(), task.dev.len(), task.test.len()];
        match features::load(path) {
            Cached::Valid(sets) if sets.iter().map(|f| f.rows()).eq(expected) => {
                let sets = Arc::new(sets);
                self.features
                    .lock()
                    .expect("feature cache")
                    .insert(key, sets.clone());
                return Some((sets, "disk"));
            }
            Cached::Valid(_) => tracing::warn!(
                "the feature cache {} has other row counts than the task; encoding again",
                path.display()
            ),
            Cached::Damaged(why) => tracing::warn!(
                "the feature cache {} cannot be used ({why}); encoding again",
                path.display()
            ),
            Cached::Missing => {}
        }
        None
    }

    /// Encode train, dev and test with the frozen encoder in eval mode (the method's
    /// prepared encoder when it changes the encoder), and what the preparation recorded.
    #[allow(clippy::too_many_arguments)]
    fn encode_frozen(
        &self,
        job: &FinetuneJob,
        model_dir: &Path,
        task: &PreparedTask,
        method: &dyn Method,
        change: &EncoderChange,
        run: (u64, &[EncodedRow]),
        device: &Device,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> stab_core::Result<(Vec<FeatureSet>, serde_json::Value)> {
        let plain = device.clone().without_autodiff();
        let (mut encoder, report, details) = if *change == EncoderChange::Unchanged {
            let (encoder, report) = load_encoder(model_dir, &plain)?;
            (encoder, report, serde_json::Value::Null)
        } else {
            let p =
                self.prepared_encoder(job, model_dir, task, method, change, run, device, progress)?;
            (p.encoder.valid(), p.report, p.details)
        };
        if report.initialised.iter().any(|p| p.starts_with("pooler")) {
            // The frozen random pooler of a checkpoint without one: fixed per task (seed 0),
            // so every seed and method of the task reads the same features.
            reinit_pooler(
                &mut encoder,
                derive_seed(0, &["frozen-pooler", task.def.name()]),
                &plain,
            );
        }
        let sets = [&task.train, &task.dev, &task.test]
            .iter()
            .map(|rows| {
                features::encode_features(&encoder, job.model.pooling, rows, task.pad_id, &plain)
            })
            .collect();
        Ok((sets, details))
    }

    /// Frozen eval-mode features of train, dev and test: from memory, from the disk
    /// cache, or encoded now (and saved). With a per-task encoder change the prepared
    /// encoder is encoded (and the change is part of the key); with a per-run change the
    /// run's own prepared encoder is encoded and nothing is cached.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn frozen_features(
        &self,
        job: &FinetuneJob,
        model_dir: &Path,
        task: &PreparedTask,
        method: &dyn Method,
        change: &EncoderChange,
        run: (u64, &[EncodedRow]),
        device: &Device,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> stab_core::Result<Frozen> {
        let (key_text, key) = cache_key(&FeatureKey {
            cache: "features",
            version: 3,
            model: format!("{:016x}", self.model_hash(model_dir)?),
            task: task.def.name(),
            data: format!("{:016x}", task.data_hash),
            split: &task.split_hash,
            max_len: job.model.max_len,
            pooling: job.model.pooling,
            head: task.def.head(),
            prepared: match change {
                EncoderChange::PerTask(k) => Some(k),
                _ => None,
            },
        });
        let per_run = *change == EncoderChange::PerRun;
        let recorded = || match change {
            EncoderChange::PerTask(k) => self
                .prepared_sidecar(job, model_dir, task, k)
                .ok()
                .flatten(),
            _ => None,
        };
        // One encoding per key per process, whatever `--jobs`: the other jobs wait here
        // and then find the features in memory.
        let lock = (!per_run).then(|| self.key_lock(key));
        let _guard = lock.as_ref().map(|l| l.lock().expect("feature lock"));
        let path = features::cache_path(&self.out, key);
        if !per_run && let Some((sets, source)) = self.cached_features(key, &path, task) {
            return Ok(Frozen {
                sets,
                encode_s: 0.0,
                source,
                details: recorded().unwrap_or_default(),
            });
        }
        let t0 = Instant::now();
        let (sets, details) =
            self.encode_frozen(job, model_dir, task, method, change, run, device, progress)?;
        let encode_s = t0.elapsed().as_secs_f64();
        let sets = Arc::new(sets);
        if per_run {
            return Ok(Frozen {
                sets,
                encode_s,
                source: "encoded-for-run",
                details,
            });
        }
        if let Err(e) = features::save(&path, &sets, &key_text) {
            tracing::warn!(
                "could not write the feature cache {}: {e:#}",
                path.display()
            );
        }
        self.features
            .lock()
            .expect("feature cache")
            .insert(key, sets.clone());
        Ok(Frozen {
            sets,
            encode_s,
            source: "encoded",
            details,
        })
    }
}

/// Frozen features and where they came from.
pub(super) struct Frozen {
    pub(super) sets: Arc<Vec<FeatureSet>>,
    pub(super) encode_s: f64,
    pub(super) source: &'static str,
    pub(super) details: serde_json::Value,
}
