//! Run setup: everything a run holds before its first update (docs/methods.md §4–5):
//! the run seed's training rows, the methods, the model (a pre-trained or prepared encoder
//! with a fresh head, or a head on cached frozen features), the added modules, the frozen
//! parameters and the schedule.

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor};
use stab_core::plan::FinetuneJob;
use stab_core::recipe::TrainMode;
use stab_core::{ComponentSeeds, RunSpec, derive_seed};
use stab_data::encode::EncodedRow;
use stab_data::perturb;
use stab_models::{EncoderConfig, NoiseStream, TaskHead, resolve_model};

use crate::evaluate::Source;
use crate::features::FeatureSet;
use crate::method::{AdaptContext, Capabilities, Method};
use crate::model::TaskModel;
use crate::params;
use crate::prepare::reinit_pooler;
use crate::schedule::LinearWarmupDecay;
use crate::session::{Engine, PreparedTask, finetune_job};
use crate::stack::MethodStack;
use crate::stats::{Progress, RunStats};

/// A run, ready to train.
pub(super) struct RunSetup<'a> {
    pub spec: &'a RunSpec,
    pub job: &'a FinetuneJob,
    pub method: MethodStack,
    pub model_dir: PathBuf,
    pub config: EncoderConfig,
    pub task: Arc<PreparedTask>,
    pub seeds: ComponentSeeds,
    pub noise: NoiseStream,
    /// The stream the engine's step context offers as `own_noise`. The stack hands each
    /// of its methods a stream of its own instead ([`MethodStack::with_noise_seed`]), so
    /// this one is drawn from only by a method called outside a stack.
    pub method_noise: NoiseStream,
    /// Indices of the run's rows in the task's train split, and the rows themselves.
    pub train_rows: Vec<usize>,
    pub train_encoded: Vec<EncodedRow>,
    /// Whether the head trains on cached frozen features (on the host).
    pub cached: bool,
    pub feature_sets: Option<Arc<Vec<FeatureSet>>>,
    /// Where the updates run.
    pub train_device: Device,
    /// The model at the start of fine-tuning (frozen parameters marked).
    pub model: TaskModel,
    /// Paths of the parameters whose start value is pre-trained.
    pub pretrained: BTreeSet<String>,
    /// What the method's encoder preparation recorded (null when none).
    pub prepare_details: serde_json::Value,
    pub plan: UpdatePlan,
    pub params: ParamCounts,
    pub stats: RunStats,
}

/// The schedule of a run's updates (docs/methods.md §4.1).
#[derive(Debug, Clone, Copy)]
pub(super) struct UpdatePlan {
    /// T = epochs·⌈n/batch⌉, capped by max_steps.
    pub total: u64,
    pub batch: usize,
    pub eval_every: u64,
    pub schedule: LinearWarmupDecay,
}

/// Trainable and total parameters of the fine-tuned model (the encoder without its
/// masked-LM head, the added modules and the task head).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ParamCounts {
    pub trainable: usize,
    pub total: usize,
}

impl RunSetup<'_> {
    /// Where the run's examples come from.
    pub fn source(&self) -> Source<'_> {
        match &self.feature_sets {
            Some(sets) => Source::Features {
                train: &sets[0],
                dev: &sets[1],
                test: &sets[2],
                train_rows: &self.train_rows,
            },
            None => Source::Tokens {
                train: &self.train_encoded,
                dev: &self.task.dev,
                test: &self.task.test,
                pad_id: self.task.pad_id,
            },
        }
    }
}

/// The encoder side of a run's model, as [`Engine::attach_encoder`] finds it.
struct EncoderSide {
    encoder: Option<stab_models::Encoder>,
    pretrained: BTreeSet<String>,
    prepare_details: serde_json::Value,
    feature_sets: Option<Arc<Vec<FeatureSet>>>,
    stats: RunStats,
}

/// What the encoder side depends on.
struct EncoderNeeds<'a> {
    spec: &'a RunSpec,
    job: &'a FinetuneJob,
    model_dir: &'a std::path::Path,
    task: &'a PreparedTask,
    method: &'a MethodStack,
    caps: Capabilities,
    seeds: &'a ComponentSeeds,
    noise: &'a NoiseStream,
    train: &'a [EncodedRow],
    cached: bool,
}

impl Engine {
    /// Set a run up.
    pub(super) fn setup<'a>(
        &self,
        spec: &'a RunSpec,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> stab_core::Result<RunSetup<'a>> {
        let job = finetune_job(spec)?;
        let seeds = ComponentSeeds::derive(spec.seed, &job.train.fixed_seeds);
        let method = MethodStack::build(&spec.stack())?.with_noise_seed(seeds.dropout);
        let caps = method.capabilities();
        let model_dir = resolve_model(&job.model.path)?;
        let config = EncoderConfig::from_dir(&model_dir)?;
        let task = self.task(job, &model_dir, &spec.task)?;
        let noise = NoiseStream::new(seeds.dropout);
        let train_rows = run_rows(&task, spec, job)?;
        let train_encoded: Vec<EncodedRow> =
            train_rows.iter().map(|&i| task.train[i].clone()).collect();
        let mode = job.train.mode;
        let cached =
            mode == TrainMode::Head && !job.train.head_encoder_dropout && caps.cached_features;
        // Where the updates run. A head trained on cached features is a few thousand
        // parameters fed from host memory: it trains fastest on the host CPU whatever the
        // device (measured on MiniLM/RTE: 0.6 ms per update on 2 cores against 64 ms on
        // lavapipe), so only its features are encoded on the device.
        let train_device = if cached {
            Device::flex().autodiff()
        } else {
            self.device.clone().autodiff()
        };
        let mut head = fresh_head(&config, &caps, &task, seeds.head_init, &train_device);
        head.set_noise(&noise);
        let side = self.attach_encoder(
            &EncoderNeeds {
                spec,
                job,
                model_dir: &model_dir,
                task: &task,
                method: &method,
                caps,
                seeds: &seeds,
                noise: &noise,
                train: &train_encoded,
                cached,
            },
            progress,
        )?;
        let model = method.adapt(
            TaskModel {
                encoder: side.encoder,
                head,
                pooling: job.model.pooling,
            },
            &AdaptContext {
                config: &config,
                seed: derive_seed(seeds.head_init, &["adapt"]),
                noise: &noise,
                mode,
                device: &train_device,
            },
        );
        let model = freeze(model, &method);
        let params = count_params(&model, &config, cached);
        Ok(RunSetup {
            spec,
            job,
            model_dir,
            plan: update_plan(job, train_rows.len())?,
            config,
            task,
            seeds,
            noise,
            method_noise: NoiseStream::new(derive_seed(seeds.dropout, &["method-noise"])),
            train_rows,
            train_encoded,
            cached,
            feature_sets: side.feature_sets,
            train_device,
            model,
            method,
            pretrained: side.pretrained,
            prepare_details: side.prepare_details,
            params,
            stats: side.stats,
        })
    }

    /// The encoder side of the model: cached frozen features, or the (prepared)
    /// pre-trained encoder with its pooler.
    fn attach_encoder(
        &self,
        n: &EncoderNeeds,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> stab_core::Result<EncoderSide> {
        let change = n.method.encoder_change(n.job.train.mode);
        let device = self.device.clone().autodiff();
        let run = (n.spec.seed, n.train);
        let mut side = EncoderSide {
            encoder: None,
            pretrained: BTreeSet::new(),
            prepare_details: serde_json::Value::Null,
            feature_sets: None,
            stats: RunStats::default(),
        };
        if n.cached {
            let frozen = self.frozen_features(
                n.job,
                n.model_dir,
                n.task,
                n.method,
                &change,
                run,
                &device,
                progress,
            )?;
            side.stats.encode_s = frozen.encode_s;
            side.stats.feature_source = frozen.source;
            side.prepare_details = frozen.details;
            side.feature_sets = Some(frozen.sets);
            return Ok(side);
        }
        let prepared = self.prepared_encoder(
            n.job,
            n.model_dir,
            n.task,
            n.method,
            &change,
            run,
            &device,
            progress,
        )?;
        side.prepare_details = prepared.details;
        let mut encoder = prepared.encoder;
        let initialised = &prepared.report.initialised;
        if initialised.iter().any(|p| p.starts_with("pooler")) {
            reinit_pooler(
                &mut encoder,
                derive_seed(n.seeds.head_init, &["pooler"]),
                &device,
            );
        }
        side.pretrained = params::collect(&encoder)
            .into_keys()
            .filter(|k| !initialised.contains(k))
            .map(|k| format!("encoder.{k}"))
            .collect();
        if !n.caps.dropout {
            encoder = stab_models::without_dropout(encoder);
        }
        encoder.set_noise(n.noise);
        if n.job.train.mode == TrainMode::Head {
            encoder = encoder.no_grad();
        }
        side.encoder = Some(encoder);
        Ok(side)
    }
}

/// The run seed's training rows (train_fraction / drop_fraction by group), as indices
/// into the task's train split.
fn run_rows(
    task: &PreparedTask,
    spec: &RunSpec,
    job: &FinetuneJob,
) -> stab_core::Result<Vec<usize>> {
    let kept = perturb(
        task.splits.clone(),
        task.def.name(),
        spec.seed,
        job.data.train_fraction,
        job.data.drop_fraction,
    );
    let kept_groups: HashSet<u64> = kept.train.iter().map(|e| e.group).collect();
    let rows: Vec<usize> = (0..task.train.len())
        .filter(|&i| kept_groups.contains(&task.splits.train[i].group))
        .collect();
    if rows.is_empty() {
        return Err(stab_core::internal!(
            "no training rows left after train_fraction/drop_fraction"
        ));
    }
    Ok(rows)
}

/// A fresh task head of the method's shape, seeded by `seed` (docs/methods.md §1.2),
/// with the model's hidden dropout unless the method turns dropout off.
fn fresh_head(
    config: &EncoderConfig,
    caps: &Capabilities,
    task: &PreparedTask,
    seed: u64,
    device: &Device,
) -> TaskHead {
    let dropout = if caps.dropout {
        config.hidden_dropout_prob
    } else {
        0.0
    };
    let classes = task.def.classes();
    crate::model::fresh_head(
        config,
        task.def.head(),
        classes,
        dropout,
        caps.head,
        seed,
        device,
    )
}

/// Protocol: T = epochs·⌈n/batch⌉ capped by max_steps, W = ⌊warmup·T⌋, an evaluation
/// every epoch unless `eval_every` says otherwise.
fn update_plan(job: &FinetuneJob, n: usize) -> stab_core::Result<UpdatePlan> {
    let t = &job.train;
    let batch = t.batch_size.max(1);
    let per_epoch = n.div_ceil(batch) as u64;
    let mut total = t.epochs.saturating_mul(per_epoch);
    if t.max_steps > 0 {
        total = total.min(t.max_steps);
    }
    if total == 0 {
        return Err(stab_core::internal!(
            "the schedule has no updates (epochs = {}, max_steps = {})",
            t.epochs,
            t.max_steps
        ));
    }
    Ok(UpdatePlan {
        total,
        batch,
        eval_every: if t.eval_every == 0 {
            per_epoch
        } else {
            t.eval_every
        },
        schedule: LinearWarmupDecay::new(t.lr, t.warmup, total),
    })
}

/// The model with every parameter the methods do not train frozen: no gradient is
/// computed for it, so the optimiser keeps no state for it and never moves it.
pub(super) fn freeze(model: TaskModel, method: &dyn Method) -> TaskModel {
    struct Freeze<'a>(&'a dyn Method);
    impl params::ParamRewrite for Freeze<'_> {
        fn rewrite<const D: usize>(
            &mut self,
            path: &str,
            param: Param<Tensor<D>>,
        ) -> Param<Tensor<D>> {
            if param.is_require_grad() && !self.0.trains(path) {
                param.set_require_grad(false)
            } else {
                param
            }
        }
    }
    params::rewrite(model, &mut Freeze(method))
}

/// Trainable and total parameters (a cached head's frozen encoder counted from its config).
fn count_params(model: &TaskModel, config: &EncoderConfig, cached: bool) -> ParamCounts {
    let mut counts = ParamCounts::default();
    // The masked-LM head is not part of the fine-tuned model.
    for p in params::param_info(model)
        .into_iter()
        .filter(|p| !p.path.split('.').any(|s| s == "mlm"))
    {
        counts.total += p.elements;
        if p.trains {
            counts.trainable += p.elements;
        }
    }
    if cached {
        // The frozen encoder of cached features: its config's count, less the MLM
        // head's dense layer that count includes.
        let h = config.hidden_size;
        counts.total += config.parameter_count() as usize - (h * h + h);
    }
    counts
}
