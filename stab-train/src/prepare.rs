//! A run's encoder as the method changes it before fine-tuning: unchanged, prepared for
//! the run, or prepared once per task and cached on disk with a JSON sidecar of the
//! details the preparation recorded.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use stab_core::derive_seed;
use stab_core::plan::FinetuneJob;
use stab_data::encode::EncodedRow;
use stab_models::{Encoder, LoadReport, NoiseStream, load_encoder};

use crate::cache_file::Cached;
use crate::method::{EncoderChange, Method, PrepareContext};
use crate::params;
use crate::session::{Engine, PreparedTask, cache_key};
use crate::stats::Progress;

/// Where a run's encoder stands after [`Method::prepare_encoder`].
pub(super) struct PreparedEncoder {
    pub(super) encoder: Encoder,
    pub(super) report: LoadReport,
    /// What the preparation reported (null when the method changes nothing).
    pub(super) details: serde_json::Value,
}

/// What a per-task prepared encoder depends on.
#[derive(serde::Serialize)]
struct PreparedKey<'a> {
    cache: &'static str,
    version: u32,
    model: String,
    task: &'a str,
    /// The task files' hash: a custom task's file can change under the same name.
    data: String,
    split: &'a str,
    max_len: usize,
    /// The method's own description of its change ([`EncoderChange::PerTask`]).
    change: &'a str,
}

impl Engine {
    /// Cache key of a per-task prepared encoder.
    pub(super) fn prepared_key(
        &self,
        job: &FinetuneJob,
        model_dir: &Path,
        task: &PreparedTask,
        change_key: &str,
    ) -> stab_core::Result<u64> {
        let key = PreparedKey {
            cache: "prepared-encoder",
            version: 3,
            model: format!("{:016x}", self.model_hash(model_dir)?),
            task: task.def.name(),
            data: format!("{:016x}", task.data_hash),
            split: &task.split_hash,
            max_len: job.model.max_len,
            change: change_key,
        };
        Ok(cache_key(&key).1)
    }

    pub(super) fn prepared_paths(&self, key: u64) -> (PathBuf, PathBuf) {
        let dir = self.out.join("cache");
        (
            dir.join(format!("encoder-{key:016x}.safetensors")),
            dir.join(format!("encoder-{key:016x}.json")),
        )
    }

    /// The recorded details of a per-task prepared encoder already on disk.
    pub(super) fn prepared_sidecar(
        &self,
        job: &FinetuneJob,
        model_dir: &Path,
        task: &PreparedTask,
        change_key: &str,
    ) -> stab_core::Result<Option<serde_json::Value>> {
        let key = self.prepared_key(job, model_dir, task, change_key)?;
        let (_, side) = self.prepared_paths(key);
        let Ok(text) = std::fs::read_to_string(side) else {
            return Ok(None);
        };
        let v: serde_json::Value = serde_json::from_str(&text)?;
        Ok(Some(v["details"].clone()))
    }

    /// The pre-trained encoder on `device` (autodiff), changed by the method: unchanged,
    /// prepared once per task (from a task-level seed on the whole train split, cached
    /// under `<out>/cache/encoder-<hash>.safetensors` with a JSON sidecar holding the details),
    /// or prepared for this run (from the run seed on the run's train rows).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn prepared_encoder(
        &self,
        job: &FinetuneJob,
        model_dir: &Path,
        task: &PreparedTask,
        method: &dyn Method,
        change: &EncoderChange,
        (run_seed, run_train): (u64, &[EncodedRow]),
        device: &Device,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> stab_core::Result<PreparedEncoder> {
        let (encoder, report) = load_encoder(model_dir, device)?;
        let step_report = |step, total, loss| progress(Progress::Prepare { step, total, loss });
        let prepare = |encoder: Encoder, seed: u64, train: &[EncodedRow]| {
            let noise = NoiseStream::new(derive_seed(seed, &["prepare-noise"]));
            let mut encoder = encoder;
            encoder.set_noise(&noise);
            let ctx = PrepareContext {
                train,
                tokenizer: &task.tokenizer,
                pad_id: task.pad_id,
                model_dir,
                seed,
                noise: &noise,
                initialised: &report.initialised,
                mode: job.train.mode,
                device,
                report: &step_report,
            };
            let t0 = Instant::now();
            let prepared = method.prepare_encoder(encoder, &ctx)?;
            Ok::<_, stab_core::Error>((prepared, t0.elapsed().as_secs_f64()))
        };
        match change {
            EncoderChange::Unchanged => Ok(PreparedEncoder {
                encoder,
                details: serde_json::Value::Null,
                report,
            }),
            EncoderChange::PerRun => {
                let (p, secs) = prepare(encoder, derive_seed(run_seed, &["prepare"]), run_train)?;
                let mut details = p.details;
                if details.is_object() {
                    details["seconds"] = secs.into();
                }
                Ok(PreparedEncoder {
                    encoder: p.encoder,
                    details,
                    report,
                })
            }
            EncoderChange::PerTask(change_key) => {
                let key = self.prepared_key(job, model_dir, task, change_key)?;
                let lock = self.key_lock(key);
                let _guard = lock.lock().expect("prepare lock");
                let (bin, side) = self.prepared_paths(key);
                if let Some((loaded, details)) = read_prepared(&bin, &side, &encoder) {
                    return Ok(PreparedEncoder {
                        encoder: loaded,
                        details,
                        report,
                    });
                }
                let seed = derive_seed(0, &["prepare", task.def.name(), change_key]);
                let (p, secs) = prepare(encoder, seed, &task.train)?;
                let mut details = p.details;
                if details.is_object() {
                    details["seconds"] = secs.into();
                    details["cache"] = "prepared".into();
                }
                write_prepared((&bin, &side), &p.encoder, change_key, task, &details);
                Ok(PreparedEncoder {
                    encoder: p.encoder,
                    details,
                    report,
                })
            }
        }
    }
}

/// A per-task prepared encoder from its cache (the snapshot and the JSON sidecar with its
/// recorded details), or `None` (missing, or damaged: warned about, to prepare again).
fn read_prepared(bin: &Path, side: &Path, like: &Encoder) -> Option<(Encoder, serde_json::Value)> {
    let sidecar = std::fs::read_to_string(side)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
    match (sidecar, params::load(like.clone(), bin)) {
        (Some(sidecar), Cached::Valid(loaded)) => {
            let mut details = sidecar["details"].clone();
            if details.is_object() {
                details["cache"] = "disk".into();
            }
            return Some((loaded, details));
        }
        (_, Cached::Damaged(why)) => tracing::warn!(
            "the prepared-encoder cache {} cannot be used ({why}); preparing again",
            bin.display()
        ),
        (None, Cached::Valid(_)) => tracing::warn!(
            "the prepared-encoder cache {} has no readable sidecar; preparing again",
            bin.display()
        ),
        (_, Cached::Missing) => {}
    }
    None
}

/// Save a per-task prepared encoder and its sidecar; a failure is a warning (the run
/// goes on with the encoder in memory).
fn write_prepared(
    (bin, side): (&Path, &Path),
    encoder: &Encoder,
    change_key: &str,
    task: &PreparedTask,
    details: &serde_json::Value,
) {
    let saved = params::save(encoder, bin).and_then(|_| {
        let text = serde_json::to_string(&serde_json::json!({
            "change": change_key,
            "task": task.def.name(),
            "split": task.split_hash,
            "details": details,
        }))?;
        stab_core::atomic::write_file(side, text.as_bytes())
    });
    if let Err(e) = saved {
        tracing::warn!(
            "could not write the prepared-encoder cache {}: {e:#}",
            bin.display()
        );
    }
}

/// Replace a randomly initialised pooler (absent from the checkpoint) with N(0, 0.02²)
/// weights and a zero bias drawn from `seed` (docs/methods.md §1.1).
pub(super) fn reinit_pooler(encoder: &mut stab_models::Encoder, seed: u64, device: &Device) {
    let dense = &mut encoder.pooler.dense;
    let [d_in, d_out] = dense.weight.dims();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0f32, 0.02).expect("valid std");
    let w: Vec<f32> = (0..d_in * d_out).map(|_| normal.sample(&mut rng)).collect();
    dense.weight = Param::from_tensor(Tensor::from_data(TensorData::new(w, [d_in, d_out]), device));
    if let Some(b) = &mut dense.bias {
        *b = Param::from_tensor(Tensor::zeros([d_out], device));
    }
    if let Some(norm) = &mut encoder.pooler.norm {
        norm.gamma = Param::from_tensor(Tensor::ones([d_out], device));
        if let Some(beta) = &mut norm.beta {
            *beta = Param::from_tensor(Tensor::zeros([d_out], device));
        }
    }
}
