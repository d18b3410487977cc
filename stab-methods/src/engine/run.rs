//! One fine-tuning run, end to end (design.md §6; methods-spec §4–5): task data (fixed
//! split, per-seed perturbation) → tokenized rows → model (pre-trained encoder + fresh
//! head, or a head on cached frozen features) → method hooks → the training loop
//! (forward → CE + method terms → backward → global clip → AdamW with the linear
//! warmup/decay schedule) with dev evaluation and early stopping → the best-dev weights
//! scored once on test → a [`RunRecord`].

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use burn::module::{Module, Param};
use burn::optim::GradientsParams;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use stab_core::plan::{FinetuneJob, RunJob};
use stab_core::recipe::TrainMode;
use stab_core::{
    ComponentSeeds, InputError, InputFingerprint, RunRecord, RunSpec, derive_seed, stable_hash,
};
use stab_data::encode::{EncodedRow, encode_examples};
use stab_data::tasks::HeadKind;
use stab_data::{Splits, TaskDef, perturb, resolve_split, task_def};
use stab_eval::metrics::PrimaryMetric;
use stab_models::{
    Encoder, EncoderConfig, HostReads, LoadReport, NoiseStream, TaskHead, TextEncoder,
    load_encoder, resolve_model,
};

use super::cache_file::Cached;
use super::features::{self, FeatureSet};
use super::method::{EncoderChange, Method, PrepareContext, StepContext, StepView};
use super::model::{Forward, TaskModel, TokenInput};
use super::optim::{AdamWSettings, adamw_with, clip_global_norm};
use super::params;
use super::schedule::LinearWarmupDecay;
use super::stack::MethodStack;
use super::stopping::{EarlyStopping, Verdict};

/// Evaluation batch size (jiant: twice the training batch of 16).
const EVAL_BATCH: usize = 32;

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

/// A task read, split and tokenized once per process and shared by its runs.
pub struct PreparedTask {
    pub def: TaskDef,
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

/// Progress of the run in flight.
#[derive(Debug, Clone, Copy)]
pub enum Progress {
    /// The run starts: `total` planned updates.
    Start { total: u64 },
    /// Update `step` (1-based) finished with this training loss.
    Step { step: u64, loss: f64 },
    /// A dev evaluation.
    Eval { step: u64, dev: f64 },
    /// A step of the method's encoder preparation (SURT's masked-LM phase).
    Prepare { step: u64, total: u64, loss: f64 },
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
    tasks: Mutex<HashMap<String, Arc<PreparedTask>>>,
    features: Mutex<HashMap<u64, Arc<Vec<FeatureSet>>>>,
    model_hashes: Mutex<HashMap<PathBuf, u64>>,
    /// Model directories whose files were read whole and found consistent.
    models_checked: Mutex<HashSet<PathBuf>>,
    /// One lock per cache key (frozen features, prepared encoders), so runs in parallel
    /// compute each once per process whatever `--jobs`.
    key_locks: Mutex<HashMap<u64, Arc<Mutex<()>>>>,
    /// A fixed batch order replacing the seeded shuffle (see [`Engine::with_batch_order`]).
    batch_order: Option<Arc<Vec<Vec<usize>>>>,
}

/// Where a run's encoder stands after [`Method::prepare_encoder`].
struct PreparedEncoder {
    encoder: Encoder,
    report: LoadReport,
    /// What the preparation reported (null when the method changes nothing).
    details: serde_json::Value,
}

/// Timings and counts a run reports beside its record.
#[derive(Debug, Clone, Default)]
pub struct RunStats {
    /// Seconds spent encoding frozen features (0 when they came from a cache).
    pub encode_s: f64,
    /// Where the features came from: "memory", "disk", "encoded", or "" (no cache).
    pub feature_source: &'static str,
    /// Seconds in the training loop (updates and evaluations).
    pub train_s: f64,
    /// Of which, seconds in dev evaluations.
    pub eval_s: f64,
    pub updates: u64,
    /// Reads from the device to the host during the updates (evaluations excluded): one
    /// per update on an accelerator, the logged loss.
    pub update_host_reads: u64,
}

/// A finished run: its record, its stats and the selected model (a validation copy).
pub struct TrainedRun {
    pub record: RunRecord,
    pub stats: RunStats,
    pub model: TaskModel,
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

    fn key_lock(&self, key: u64) -> Arc<Mutex<()>> {
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
    fn check_model(&self, model_dir: &Path) -> anyhow::Result<EncoderConfig> {
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
    pub fn inputs(&self, spec: &RunSpec) -> anyhow::Result<InputFingerprint> {
        let job = finetune_job(spec)?;
        let model_dir = resolve_model(&job.model.path)?;
        let task = self.task(job, &model_dir, &spec.task)?;
        self.fingerprint(&model_dir, &task)
    }

    fn fingerprint(
        &self,
        model_dir: &Path,
        task: &PreparedTask,
    ) -> anyhow::Result<InputFingerprint> {
        Ok(InputFingerprint {
            model: format!("{:016x}", self.model_hash(model_dir)?),
            data: format!("{:016x}", task.data_hash),
            split: task.split_hash.clone(),
        })
    }

    /// Check that a spec can run here (its method is implemented, its data and model
    /// resolve), without training: input errors surface before any run starts.
    pub fn check(&self, spec: &RunSpec) -> anyhow::Result<()> {
        let job = finetune_job(spec)?;
        let method = MethodStack::build(&spec.method_stack())?;
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

    /// Execute one fine-tuning run.
    pub fn run(
        &self,
        spec: &RunSpec,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> anyhow::Result<(RunRecord, RunStats)> {
        self.train(spec, progress).map(|t| (t.record, t.stats))
    }

    /// Execute one fine-tuning run and keep its selected (best-dev) model.
    pub fn train(
        &self,
        spec: &RunSpec,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> anyhow::Result<TrainedRun> {
        let start = Instant::now();
        let job = finetune_job(spec)?;
        let train_cfg = &job.train;
        let method = MethodStack::build(&spec.method_stack())?;
        let model_dir = resolve_model(&job.model.path)?;
        let config = EncoderConfig::from_dir(&model_dir)?;
        let task = self.task(job, &model_dir, &spec.task)?;
        let seeds = ComponentSeeds::derive(spec.seed, &train_cfg.fixed_seeds);
        let device = self.device.clone().autodiff();
        let noise = NoiseStream::new(seeds.dropout);
        let mut stats = RunStats::default();

        // The run seed's training rows (train_fraction / drop_fraction by group).
        let kept = perturb(
            task.splits.clone(),
            task.def.name,
            spec.seed,
            job.data.train_fraction,
            job.data.drop_fraction,
        );
        let kept_groups: HashSet<u64> = kept.train.iter().map(|e| e.group).collect();
        let train_rows: Vec<usize> = (0..task.train.len())
            .filter(|&i| kept_groups.contains(&task.splits.train[i].group))
            .collect();
        anyhow::ensure!(
            !train_rows.is_empty(),
            "no training rows left after train_fraction/drop_fraction"
        );
        let train_encoded: Vec<EncodedRow> =
            train_rows.iter().map(|&i| task.train[i].clone()).collect();

        let mode = train_cfg.mode;
        let change = method.encoder_change(mode);
        let caps = method.capabilities();
        let cached =
            mode == TrainMode::Head && !train_cfg.head_encoder_dropout && caps.cached_features;
        // Where the updates run. A head trained on cached features is a few thousand
        // parameters fed from host memory: it trains fastest on the host CPU whatever the
        // device (measured on MiniLM/RTE: 0.6 ms per update on 2 cores against 64 ms on
        // lavapipe, and a GPU pays a kernel launch per operation and a loss read per
        // update), so only its features are encoded on the device. Everything else trains
        // on the device.
        let train_device = if cached {
            Device::flex().autodiff()
        } else {
            device.clone()
        };

        // Model: a fresh head (and pooler when the checkpoint has none), seeded by head_init.
        let classes = task.def.labels.len();
        let hidden = config.hidden_size;
        let head_dropout = if caps.dropout {
            config.hidden_dropout_prob
        } else {
            0.0
        };
        let mut head = match task.def.head {
            HeadKind::Classification => TaskHead::classification(
                hidden,
                classes,
                head_dropout,
                caps.head,
                seeds.head_init,
                &train_device,
            ),
            HeadKind::SpanComparison => TaskHead::span(
                hidden,
                classes,
                head_dropout,
                caps.head,
                seeds.head_init,
                &train_device,
            ),
        };
        head.set_noise(&noise);
        let mut feature_sets = None;
        let mut pretrained = BTreeSet::new();
        let prepare_details;
        let model = if cached {
            let frozen = self.frozen_features(
                job,
                &model_dir,
                &task,
                &method,
                &change,
                (spec.seed, &train_encoded),
                &device,
                progress,
            )?;
            stats.encode_s = frozen.encode_s;
            stats.feature_source = frozen.source;
            prepare_details = frozen.details;
            feature_sets = Some(frozen.sets);
            TaskModel {
                encoder: None,
                head,
                pooling: job.model.pooling,
            }
        } else {
            let prepared = self.prepared_encoder(
                job,
                &model_dir,
                &task,
                &method,
                &change,
                (spec.seed, &train_encoded),
                &device,
                progress,
            )?;
            prepare_details = prepared.details;
            let mut encoder = prepared.encoder;
            let initialised = &prepared.report.initialised;
            if initialised.iter().any(|p| p.starts_with("pooler")) {
                reinit_pooler(
                    &mut encoder,
                    derive_seed(seeds.head_init, &["pooler"]),
                    &device,
                );
            }
            pretrained = params::collect(&encoder)
                .into_keys()
                .filter(|k| !initialised.contains(k))
                .map(|k| format!("encoder.{k}"))
                .collect();
            if !caps.dropout {
                encoder = stab_models::without_dropout(encoder);
            }
            encoder.set_noise(&noise);
            if mode == TrainMode::Head {
                encoder = encoder.no_grad();
            }
            TaskModel {
                encoder: Some(encoder),
                head,
                pooling: job.model.pooling,
            }
        };
        let source = match &feature_sets {
            Some(sets) => Source::Features {
                train: &sets[0],
                dev: &sets[1],
                test: &sets[2],
                train_rows: &train_rows,
            },
            None => Source::Tokens {
                train: &train_encoded,
                dev: &task.dev,
                test: &task.test,
                pad_id: task.pad_id,
            },
        };

        // Protocol: T = epochs·⌈n/batch⌉ capped by max_steps, W = ⌊warmup·T⌋.
        let n = train_rows.len();
        let batch = train_cfg.batch_size.max(1);
        let per_epoch = n.div_ceil(batch) as u64;
        let mut total = train_cfg.epochs.saturating_mul(per_epoch);
        if train_cfg.max_steps > 0 {
            total = total.min(train_cfg.max_steps);
        }
        anyhow::ensure!(
            total > 0,
            "the schedule has no updates (epochs = {}, max_steps = {})",
            train_cfg.epochs,
            train_cfg.max_steps
        );
        let schedule = LinearWarmupDecay::new(train_cfg.lr, train_cfg.warmup, total);
        let eval_every = if train_cfg.eval_every == 0 {
            per_epoch
        } else {
            train_cfg.eval_every
        };
        progress(Progress::Start { total });

        let start_model = model.clone();
        let mut model = model;
        let layers = config.num_hidden_layers;
        let mut optim = adamw_with(
            &model,
            AdamWSettings {
                weight_decay: train_cfg.weight_decay,
                bias_correction: train_cfg.adam_bias_correction,
            },
            |path| method.lr_scale(path, layers),
        );
        let mut order = ChaCha8Rng::seed_from_u64(seeds.data_order);
        let mut stopping = EarlyStopping::new(train_cfg.patience.max(1));
        let mut best: Option<TaskModel> = None;
        let mut loss_curve: Vec<(u64, f64)> = Vec::new();
        let mut interval_loss = (0.0, 0u64);
        let mut step = 0u64;
        let mut diverged = false;
        // STAB_STEP_TIMES=1 prints the phases of every update (profiling).
        let step_times = std::env::var_os("STAB_STEP_TIMES").is_some();
        let loop_start = Instant::now();
        if let Some(fixed) = &self.batch_order {
            anyhow::ensure!(
                fixed.len() as u64 >= total && fixed.iter().flatten().all(|&i| i < n),
                "the fixed batch order has {} batches for {total} updates, or a row beyond the {n} training rows",
                fixed.len()
            );
        }
        'epochs: loop {
            let mut rows: Vec<usize> = (0..n).collect();
            rows.shuffle(&mut order);
            let batches: Vec<&[usize]> = match &self.batch_order {
                Some(fixed) => fixed.iter().map(Vec::as_slice).collect(),
                None => rows.chunks(batch).collect(),
            };
            for chunk in batches {
                if step >= total {
                    break 'epochs;
                }
                let labels: Vec<usize> = chunk.iter().map(|&i| train_encoded[i].label).collect();
                let ctx = StepContext {
                    start: &start_model,
                    pretrained: &pretrained,
                    noise: &noise,
                    step,
                    device: &train_device,
                };
                let reads_before = HostReads::count();
                let trained = method.training_model(&model, &ctx);
                let fwd_model = trained.as_ref().unwrap_or(&model);
                let t_fwd = Instant::now();
                let (forward, input) = source.forward_train(fwd_model, chunk, &train_device);
                let ce = cross_entropy(forward.head.logits.clone(), &labels, &train_device);
                let view = StepView {
                    model: fwd_model,
                    forward: &forward,
                    input: input.as_ref(),
                    labels: &labels,
                    classes,
                    ctx: &ctx,
                };
                let mut loss = ce;
                for (_, term) in method.loss_terms(&view) {
                    loss = loss + term;
                }
                let loss_value = HostReads::scalar(loss.clone());
                let t_bwd = Instant::now();
                if !loss_value.is_finite() {
                    // Diverged: stop here; the record says so and keeps the best weights so far.
                    diverged = true;
                    progress(Progress::Step {
                        step,
                        loss: loss_value,
                    });
                    break 'epochs;
                }
                let mut grads = GradientsParams::from_grads(loss.backward(), &model);
                let t_clip = Instant::now();
                clip_global_norm(&model, &mut grads, train_cfg.grad_clip);
                let t_step = Instant::now();
                model = optim.step(schedule.lr(step), model, grads);
                stats.update_host_reads += HostReads::count() - reads_before;
                if step_times {
                    let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
                    let end = Instant::now();
                    eprintln!(
                        "step {step}: forward+loss {:.0} ms, backward {:.0} ms, clip {:.0} ms, AdamW {:.0} ms",
                        ms(t_fwd, t_bwd),
                        ms(t_bwd, t_clip),
                        ms(t_clip, t_step),
                        ms(t_step, end)
                    );
                }
                step += 1;
                interval_loss = (interval_loss.0 + loss_value, interval_loss.1 + 1);
                progress(Progress::Step {
                    step,
                    loss: loss_value,
                });
                if step.is_multiple_of(eval_every) || step == total {
                    let eval_start = Instant::now();
                    let ctx = StepContext {
                        start: &start_model,
                        pretrained: &pretrained,
                        noise: &noise,
                        step,
                        device: &train_device,
                    };
                    // The weights are kept unmixed; a method that changes the evaluated
                    // model (MixOut-author) does so afresh at every evaluation, the final
                    // test evaluation included.
                    let weights = model.valid();
                    let eval_model = method.eval_model(weights.clone(), &ctx);
                    let dev = source.score(&eval_model, Part::Dev, &task)?;
                    loss_curve.push((step, interval_loss.0 / interval_loss.1.max(1) as f64));
                    interval_loss = (0.0, 0);
                    progress(Progress::Eval { step, dev });
                    stats.eval_s += eval_start.elapsed().as_secs_f64();
                    match stopping.observe(step, dev) {
                        Verdict::Improved => best = Some(weights),
                        Verdict::Continue => {}
                        Verdict::Stop if step >= train_cfg.min_steps => break 'epochs,
                        Verdict::Stop => {}
                    }
                }
            }
        }
        stats.train_s = loop_start.elapsed().as_secs_f64();
        stats.updates = step;

        // The best-dev weights, scored once on test (the last weights if dev never scored).
        let (best_step, dev_best) = stopping
            .best()
            .map_or((None, None), |(s, v)| (Some(s), Some(v)));
        let final_model = method.eval_model(
            best.unwrap_or_else(|| model.valid()),
            &StepContext {
                start: &start_model,
                pretrained: &pretrained,
                noise: &noise,
                step,
                device: &train_device,
            },
        );
        let metrics = source.metrics(&final_model, Part::Test, &task)?;

        let mut record = RunRecord::for_spec(spec);
        record.metrics = metrics;
        record.dev_best = dev_best;
        record.best_step = best_step;
        record.steps = step;
        record.wall_s = start.elapsed().as_secs_f64();
        record.threads = rayon::current_num_threads();
        record.diverged = diverged || record.metrics.values().any(|v| !v.is_finite());
        record.seeds = Some(seeds);
        record.split = Some(task.split_hash.clone());
        record.inputs = Some(self.fingerprint(&model_dir, &task)?);
        record.details = serde_json::json!({
            "dev_curve": stopping.curve,
            "train_loss": loss_curve,
            "train_rows": n,
            "planned_steps": total,
            "warmup_steps": schedule.warmup_steps,
            "eval_every": eval_every,
            "feature_cache": stats.feature_source,
            "clipped_span_rows": task.train.iter().chain(&task.dev).chain(&task.test).filter(|r| r.clipped).count(),
            "seconds": {"encode": stats.encode_s, "train_loop": stats.train_s, "eval": stats.eval_s},
            "device": self.device_name,
            "update_device": if cached { "cpu" } else { self.device_name.as_str() },
            "update_host_reads": stats.update_host_reads,
        });
        if !prepare_details.is_null() {
            record.details["prepare"] = prepare_details;
        }
        if !train_cfg.adam_bias_correction {
            record.details["adam_bias_correction"] = serde_json::Value::Bool(false);
        }
        if train_cfg.save_best {
            // Written before the record is appended, so a record never names a missing file.
            let rel = format!("checkpoints/{}", spec.run_id);
            let metadata = [
                ("stab_run_id", spec.run_id.clone()),
                ("stab_task", spec.task.clone()),
                ("stab_method", spec.method.clone()),
                ("stab_mode", format!("{mode:?}").to_lowercase()),
                (
                    "stab_pooling",
                    format!("{:?}", job.model.pooling).to_lowercase(),
                ),
                ("stab_best_step", best_step.unwrap_or(step).to_string()),
                ("stab_model", model_dir.display().to_string()),
                ("stab_max_len", job.model.max_len.to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            super::checkpoint::save(&final_model, &model_dir, &self.out.join(&rel), metadata)?;
            record.details["checkpoint"] = serde_json::Value::String(rel);
        }
        Ok(TrainedRun {
            record,
            stats,
            model: final_model,
        })
    }

    /// The frozen encoder's pooled features of a task's training rows (all of them: no
    /// train/drop fraction), as head tuning with this spec's model, pooling and method
    /// would see them — from the same cache. For the analyses of heads on real features.
    pub fn train_features(
        &self,
        spec: &RunSpec,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> anyhow::Result<TrainFeatures> {
        let job = finetune_job(spec)?;
        let method = MethodStack::build(&spec.method_stack())?;
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
            classes: task.def.labels.iter().map(|l| l.to_string()).collect(),
        })
    }

    /// The task's splits and tokenized rows, prepared once per process.
    fn task(
        &self,
        job: &FinetuneJob,
        model_dir: &Path,
        name: &str,
    ) -> anyhow::Result<Arc<PreparedTask>> {
        let splits_dir =
            stab_data::splits_dir(&job.data.dir, job.data.splits.as_deref(), "data.splits")?;
        let key = format!(
            "{}|{}|{}|{}|{:?}|{}",
            model_dir.display(),
            name,
            job.model.max_len,
            job.data.dir.display(),
            splits_dir,
            job.data.dev_fraction
        );
        if let Some(t) = self.tasks.lock().expect("task cache").get(&key) {
            return Ok(t.clone());
        }
        let def = *task_def(name)?;
        let data = def.load(&job.data.dir)?;
        let data_hash = task_files_hash(&def, &job.data.dir)?;
        let resolved = resolve_split(&data, splits_dir.as_deref(), job.data.dev_fraction)?;
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

    /// Hash of a model directory's config and weights (the feature cache key's model part).
    fn model_hash(&self, dir: &Path) -> anyhow::Result<u64> {
        if let Some(h) = self.model_hashes.lock().expect("hash cache").get(dir) {
            return Ok(*h);
        }
        let mut bytes = std::fs::read(dir.join("config.json"))?;
        bytes.extend(std::fs::read(stab_models::loader::weights_file(dir)?)?);
        let h = stable_hash(&bytes);
        self.model_hashes
            .lock()
            .expect("hash cache")
            .insert(dir.to_path_buf(), h);
        Ok(h)
    }

    /// Frozen eval-mode features of train, dev and test: from memory, from the disk
    /// cache, or encoded now (and saved). With a per-task encoder change the prepared
    /// encoder is encoded (and the change is part of the key); with a per-run change the
    /// run's own prepared encoder is encoded and nothing is cached.
    #[allow(clippy::too_many_arguments)]
    fn frozen_features(
        &self,
        job: &FinetuneJob,
        model_dir: &Path,
        task: &PreparedTask,
        method: &dyn Method,
        change: &EncoderChange,
        run: (u64, &[EncodedRow]),
        device: &Device,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> anyhow::Result<Frozen> {
        let mut key_text = format!(
            "features|v1|{:016x}|{}|{}|{}|{:?}|{:?}",
            self.model_hash(model_dir)?,
            task.def.name,
            task.split_hash,
            job.model.max_len,
            job.model.pooling,
            task.def.head
        );
        if let EncoderChange::PerTask(k) = change {
            key_text.push_str(&format!("|prepared:{k}"));
        }
        let key = stable_hash(key_text.as_bytes());
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
        if !per_run && let Some(sets) = self.features.lock().expect("feature cache").get(&key) {
            return Ok(Frozen {
                sets: sets.clone(),
                encode_s: 0.0,
                source: "memory",
                details: recorded().unwrap_or_default(),
            });
        }
        let path = features::cache_path(&self.out, key);
        let expected = [task.train.len(), task.dev.len(), task.test.len()];
        if !per_run {
            match features::load(&path) {
                Cached::Valid(sets) if sets.iter().map(|f| f.rows()).eq(expected) => {
                    let sets = Arc::new(sets);
                    self.features
                        .lock()
                        .expect("feature cache")
                        .insert(key, sets.clone());
                    return Ok(Frozen {
                        sets,
                        encode_s: 0.0,
                        source: "disk",
                        details: recorded().unwrap_or_default(),
                    });
                }
                Cached::Valid(_) => tracing_free_warn(&format!(
                    "the feature cache {} has other row counts than the task; encoding again",
                    path.display()
                )),
                Cached::Damaged(why) => tracing_free_warn(&format!(
                    "the feature cache {} cannot be used ({why}); encoding again",
                    path.display()
                )),
                Cached::Missing => {}
            }
        }
        let t0 = Instant::now();
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
                derive_seed(0, &["frozen-pooler", task.def.name]),
                &plain,
            );
        }
        let sets: Vec<FeatureSet> = [&task.train, &task.dev, &task.test]
            .iter()
            .map(|rows| {
                features::encode_features(&encoder, job.model.pooling, rows, task.pad_id, &plain)
            })
            .collect();
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
            tracing_free_warn(&format!(
                "could not write the feature cache {}: {e:#}",
                path.display()
            ));
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

    /// Cache key of a per-task prepared encoder.
    fn prepared_key(
        &self,
        job: &FinetuneJob,
        model_dir: &Path,
        task: &PreparedTask,
        change_key: &str,
    ) -> anyhow::Result<u64> {
        let text = format!(
            "prepared-encoder|v1|{:016x}|{}|{}|{}|{change_key}",
            self.model_hash(model_dir)?,
            task.def.name,
            task.split_hash,
            job.model.max_len,
        );
        Ok(stable_hash(text.as_bytes()))
    }

    fn prepared_paths(&self, key: u64) -> (PathBuf, PathBuf) {
        let dir = self.out.join("cache");
        (
            dir.join(format!("encoder-{key:016x}.bin")),
            dir.join(format!("encoder-{key:016x}.json")),
        )
    }

    /// The recorded details of a per-task prepared encoder already on disk.
    fn prepared_sidecar(
        &self,
        job: &FinetuneJob,
        model_dir: &Path,
        task: &PreparedTask,
        change_key: &str,
    ) -> anyhow::Result<Option<serde_json::Value>> {
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
    /// under `<out>/cache/encoder-<hash>.bin` with a JSON sidecar holding the details),
    /// or prepared for this run (from the run seed on the run's train rows).
    #[allow(clippy::too_many_arguments)]
    fn prepared_encoder(
        &self,
        job: &FinetuneJob,
        model_dir: &Path,
        task: &PreparedTask,
        method: &dyn Method,
        change: &EncoderChange,
        (run_seed, run_train): (u64, &[EncodedRow]),
        device: &Device,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> anyhow::Result<PreparedEncoder> {
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
                seed,
                noise: &noise,
                initialised: &report.initialised,
                mode: job.train.mode,
                device,
                report: &step_report,
            };
            let t0 = Instant::now();
            let prepared = method.prepare_encoder(encoder, &ctx)?;
            anyhow::Ok((prepared, t0.elapsed().as_secs_f64()))
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
                let sidecar = std::fs::read_to_string(&side)
                    .ok()
                    .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
                match (sidecar, params::load(encoder.clone(), &bin)) {
                    (Some(sidecar), Cached::Valid(loaded)) => {
                        let mut details = sidecar["details"].clone();
                        if details.is_object() {
                            details["cache"] = "disk".into();
                        }
                        return Ok(PreparedEncoder {
                            encoder: loaded,
                            details,
                            report,
                        });
                    }
                    (_, Cached::Damaged(why)) => tracing_free_warn(&format!(
                        "the prepared-encoder cache {} cannot be used ({why}); preparing again",
                        bin.display()
                    )),
                    (None, Cached::Valid(_)) => tracing_free_warn(&format!(
                        "the prepared-encoder cache {} has no readable sidecar; preparing again",
                        bin.display()
                    )),
                    (_, Cached::Missing) => {}
                }
                let seed = derive_seed(0, &["prepare", task.def.name, change_key]);
                let (p, secs) = prepare(encoder, seed, &task.train)?;
                let mut details = p.details;
                if details.is_object() {
                    details["seconds"] = secs.into();
                    details["cache"] = "prepared".into();
                }
                let saved = params::save(&p.encoder, &bin).and_then(|_| {
                    let text = serde_json::to_string(&serde_json::json!({
                        "change": change_key,
                        "task": task.def.name,
                        "split": task.split_hash,
                        "details": details,
                    }))?;
                    stab_core::atomic::write_file(&side, text.as_bytes())
                });
                if let Err(e) = saved {
                    tracing_free_warn(&format!(
                        "could not write the prepared-encoder cache {}: {e:#}",
                        bin.display()
                    ));
                }
                Ok(PreparedEncoder {
                    encoder: p.encoder,
                    details,
                    report,
                })
            }
        }
    }
}

/// Frozen features and where they came from.
struct Frozen {
    sets: Arc<Vec<FeatureSet>>,
    encode_s: f64,
    source: &'static str,
    details: serde_json::Value,
}

/// Hash of a task's train and test files, in that order, each with its length.
fn task_files_hash(def: &TaskDef, data_dir: &Path) -> anyhow::Result<u64> {
    let mut bytes = Vec::new();
    for name in [def.files.0, def.files.1] {
        let path = data_dir.join(def.dir).join(name);
        let content =
            std::fs::read(&path).map_err(|e| stab_core::atomic::io_error("read", &path, e))?;
        bytes.extend_from_slice(&(content.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&content);
    }
    Ok(stable_hash(&bytes))
}

fn tracing_free_warn(msg: &str) {
    eprintln!("warning: {msg}");
}

fn finetune_job(spec: &RunSpec) -> anyhow::Result<&FinetuneJob> {
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

/// Replace a randomly initialised pooler (absent from the checkpoint) with N(0, 0.02²)
/// weights and a zero bias drawn from `seed` (methods-spec §1.1).
fn reinit_pooler(encoder: &mut stab_models::Encoder, seed: u64, device: &Device) {
    let dense = &mut encoder.pooler.dense;
    let [d_in, d_out] = dense.weight.dims();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0f32, 0.02).expect("valid std");
    let w: Vec<f32> = (0..d_in * d_out).map(|_| normal.sample(&mut rng)).collect();
    dense.weight = Param::from_tensor(Tensor::from_data(TensorData::new(w, [d_in, d_out]), device));
    dense.bias = Some(Param::from_tensor(Tensor::zeros([d_out], device)));
}

/// Mean cross-entropy over the batch and the H output layers of logits `[H, B, C]`.
pub fn cross_entropy(logits: Tensor<3>, labels: &[usize], device: &Device) -> Tensor<1> {
    let [h, b, _] = logits.dims();
    let idx: Vec<i64> = (0..h)
        .flat_map(|_| labels.iter().map(|&l| l as i64))
        .collect();
    let idx = Tensor::<3, Int>::from_data(TensorData::new(idx, [h, b, 1]), device);
    log_softmax(logits, 2)
        .gather(2, idx)
        .mean()
        .neg()
        .reshape([1])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Dev,
    Test,
}

/// Where a run's examples come from: token rows (the encoder runs) or cached features.
enum Source<'a> {
    Tokens {
        train: &'a [EncodedRow],
        dev: &'a [EncodedRow],
        test: &'a [EncodedRow],
        pad_id: i64,
    },
    Features {
        train: &'a FeatureSet,
        dev: &'a FeatureSet,
        test: &'a FeatureSet,
        train_rows: &'a [usize],
    },
}

impl Source<'_> {
    fn forward_train(
        &self,
        model: &TaskModel,
        rows: &[usize],
        device: &Device,
    ) -> (Forward, Option<TokenInput>) {
        match self {
            Source::Tokens { train, pad_id, .. } => {
                let refs: Vec<&EncodedRow> = rows.iter().map(|&i| &train[i]).collect();
                let input = TokenInput::new(&refs, *pad_id, None);
                (model.forward_tokens(&input, device), Some(input))
            }
            Source::Features {
                train, train_rows, ..
            } => {
                let idx: Vec<usize> = rows.iter().map(|&i| train_rows[i]).collect();
                (model.forward_features(train.batch(&idx, device)), None)
            }
        }
    }

    /// Predicted label ids of every row of a part (eval mode, batches of 32).
    fn predict(&self, model: &TaskModel, part: Part) -> Vec<usize> {
        let mut out = Vec::new();
        match self {
            Source::Tokens {
                dev, test, pad_id, ..
            } => {
                let rows = if part == Part::Dev { dev } else { test };
                let device = model.head.out_layers().weight.val().device();
                out = vec![0; rows.len()];
                for chunk in features::by_length(rows).chunks(EVAL_BATCH) {
                    let refs: Vec<&EncodedRow> = chunk.iter().map(|&i| &rows[i]).collect();
                    let input = TokenInput::new(&refs, *pad_id, None);
                    for (&i, p) in chunk.iter().zip(argmax(
                        model.forward_tokens(&input, &device).head.mean_logits(),
                    )) {
                        out[i] = p;
                    }
                }
            }
            Source::Features { dev, test, .. } => {
                let set = if part == Part::Dev { dev } else { test };
                let device = model.head.out_layers().weight.val().device();
                let all: Vec<usize> = (0..set.rows()).collect();
                for chunk in all.chunks(256) {
                    out.extend(argmax(
                        model
                            .forward_features(set.batch(chunk, &device))
                            .head
                            .mean_logits(),
                    ));
                }
            }
        }
        out
    }

    /// Every metric of the task on a part.
    fn metrics(
        &self,
        model: &TaskModel,
        part: Part,
        task: &PreparedTask,
    ) -> anyhow::Result<std::collections::BTreeMap<String, f64>> {
        let rows = if part == Part::Dev {
            &task.dev
        } else {
            &task.test
        };
        let pred = self.predict(model, part);
        let gold: Vec<usize> = rows.iter().map(|r| r.label).collect();
        let questions: Option<Vec<u64>> = rows.iter().map(|r| r.question).collect();
        let metric = PrimaryMetric::parse(task.def.metric)
            .with_context(|| format!("unknown metric {}", task.def.metric))?;
        Ok(metric.evaluate(&pred, &gold, task.def.labels.len(), questions.as_deref()))
    }

    /// The primary metric on a part.
    fn score(&self, model: &TaskModel, part: Part, task: &PreparedTask) -> anyhow::Result<f64> {
        Ok(self.metrics(model, part, task)?["primary"])
    }
}

fn argmax(logits: Tensor<2>) -> Vec<usize> {
    let [b, _] = logits.dims();
    let ids = logits.argmax(1).reshape([b]);
    HostReads::data(ids)
        .convert::<i64>()
        .try_to_vec::<i64>()
        .expect("int ids")
        .into_iter()
        .map(|v| v as usize)
        .collect()
}
