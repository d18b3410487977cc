//! One fine-tuning run, end to end (docs/design.md §6; docs/methods.md §4–5), as a short
//! sequence of named steps: [set up](crate::setup) (task rows, methods, model, frozen
//! parameters, schedule) → [fit](crate::fit) (updates, dev evaluations, early stopping) →
//! the selected weights scored once on test → the [`RunRecord`] (and the checkpoint).
//!
//! Step timings are tracing spans (`update`, and inside it `forward`, `backward`, `clip`,
//! `optimizer`) at TRACE level: `STAB_LOG=stab_train=trace stab run …` prints
//! each span's time when it closes.

use std::time::Instant;

use stab_core::{RunRecord, RunSpec};

use crate::evaluate::{majority_dev_score, majority_score};
use crate::fit::{Fit, fit, test_metrics};
use crate::method::{ExportContext, Method};
use crate::model::TaskModel;
use crate::session::Engine;
use crate::setup::RunSetup;
use stab_core::predictions::RunPredictions;

pub use crate::step::cross_entropy;

pub use crate::stats::{Progress, RunStats};

/// A finished run: its record, its stats and the selected model (a validation copy).
pub struct TrainedRun {
    pub record: RunRecord,
    pub stats: RunStats,
    /// The selected weights as scored (after the methods' `eval_model`: LoRA merged).
    pub model: TaskModel,
    /// The selected weights as trained (LoRA's updates still apart).
    pub selected: TaskModel,
}

impl Engine {
    /// Execute one fine-tuning run.
    pub fn run(
        &self,
        spec: &RunSpec,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> stab_core::Result<(RunRecord, RunStats)> {
        self.train(spec, progress).map(|t| (t.record, t.stats))
    }

    /// Execute one fine-tuning run and keep its selected (best-dev) model.
    pub fn train(
        &self,
        spec: &RunSpec,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> stab_core::Result<TrainedRun> {
        let start = Instant::now();
        let setup = self.setup(spec, progress)?;
        let mut stats = setup.stats.clone();
        let fit = fit(
            &setup,
            self.batch_order.as_deref().map(Vec::as_slice),
            &mut stats,
            progress,
        )?;
        self.conclude(&setup, fit, stats, start)
    }

    /// A fitted run's end: the selected weights scored on test, the predictions (and the
    /// checkpoint) written, the record made.
    pub(super) fn conclude(
        &self,
        setup: &RunSetup,
        fit: Fit,
        stats: RunStats,
        start: Instant,
    ) -> stab_core::Result<TrainedRun> {
        let spec = setup.spec;
        let test = test_metrics(setup, &fit)?;
        let model = test.model;
        let mut record = self.record(setup, &fit, test.metrics, &stats)?;
        record.details["majority_test"] = majority_score(&setup.task)?.into();
        // Written before the record is appended, so a record never names a missing file.
        stab_core::predictions::write(
            &self.out,
            &RunPredictions {
                format: stab_core::predictions::FORMAT.into(),
                run_id: spec.run_id.clone(),
                task: spec.task.clone(),
                split: setup.task.split_hash.clone(),
                data: format!("{:016x}", setup.task.data_hash),
                predicted: test.predictions.iter().map(|&p| p as u32).collect(),
            },
        )?;
        record.wall_s = start.elapsed().as_secs_f64();
        if setup.job.train.save_best {
            // Written before the record is appended, so a record never names a missing file.
            let rel = self.save_checkpoint(setup, &fit, &model)?;
            record.details["checkpoint"] = serde_json::Value::String(rel);
        }
        Ok(TrainedRun {
            record,
            stats,
            model,
            selected: fit.selected,
        })
    }

    /// The run's record (wall time aside).
    fn record(
        &self,
        s: &RunSetup,
        fit: &Fit,
        metrics: std::collections::BTreeMap<String, f64>,
        stats: &RunStats,
    ) -> stab_core::Result<RunRecord> {
        let (best_step, dev_best) = fit
            .stopping
            .best()
            .map_or((None, None), |(s, v)| (Some(s), Some(v)));
        let task = &s.task;
        let mut record = RunRecord::for_spec(s.spec);
        record.metrics = metrics;
        record.dev_best = dev_best;
        record.best_step = best_step;
        record.steps = fit.steps;
        record.threads = rayon::current_num_threads();
        record.diverged = fit.diverged || record.metrics.values().any(|v| !v.is_finite());
        record.seeds = Some(s.seeds);
        record.split = Some(task.split_hash.clone());
        record.inputs = Some(self.fingerprint(&s.model_dir, task)?);
        record.details = serde_json::json!({
            "dev_curve": fit.stopping.curve,
            "train_loss": fit.loss_curve,
            "train_rows": s.train_rows.len(),
            "planned_steps": s.plan.total,
            "warmup_steps": s.plan.schedule.warmup_steps,
            "eval_every": s.plan.eval_every,
            "feature_cache": stats.feature_source,
            "clipped_span_rows": task.train.iter().chain(&task.dev).chain(&task.test).filter(|r| r.clipped).count(),
            "seconds": {"encode": stats.encode_s, "train_loop": stats.train_s, "eval": stats.eval_s},
            "device": self.device_name,
            "update_device": if s.cached { "cpu" } else { self.device_name.as_str() },
            "update_host_reads": stats.update_host_reads,
            "trainable_params": s.params.trainable,
            "total_params": s.params.total,
            "settings": settings(s, &self.device_name),
        });
        if !fit.term_curves.is_empty() {
            record.details["loss_terms"] = serde_json::json!(fit.term_curves);
        }
        if !s.spec.method_train.is_empty() {
            record.details["method_train"] = serde_json::json!(s.spec.method_train);
        }
        if s.job.train.stop_failed.is_some() {
            record.details["majority_dev"] = majority_dev_score(task)?.into();
        }
        if let Some(step) = fit.stopped_failed {
            record.details["stopped"] = "failed".into();
            record.details["stopped_at"] = step.into();
        }
        if let Some(why) = s.method.no_op(s.job.train.mode) {
            record.details["no_op"] = why.into();
        }
        if !s.prepare_details.is_null() {
            record.details["prepare"] = s.prepare_details.clone();
        }
        if !s.job.train.adam_bias_correction {
            record.details["adam_bias_correction"] = serde_json::Value::Bool(false);
        }
        Ok(record)
    }

    /// Save the selected model as an HF model directory under `checkpoints/<run id>`;
    /// returns that path relative to the out directory.
    fn save_checkpoint(
        &self,
        s: &RunSetup,
        fit: &Fit,
        model: &TaskModel,
    ) -> stab_core::Result<String> {
        let spec = s.spec;
        let job = s.job;
        let rel = format!("checkpoints/{}", spec.run_id);
        let best_step = fit.stopping.best().map_or(fit.steps, |(step, _)| step);
        let shape = s.method.capabilities().head;
        let metadata = [
            ("stab_run_id", spec.run_id.clone()),
            ("stab_task", spec.task.clone()),
            ("stab_method", spec.method.clone()),
            ("stab_mode", format!("{:?}", job.train.mode).to_lowercase()),
            (
                "stab_pooling",
                format!("{:?}", job.model.pooling).to_lowercase(),
            ),
            ("stab_best_step", best_step.to_string()),
            ("stab_model", s.model_dir.display().to_string()),
            ("stab_max_len", job.model.max_len.to_string()),
            ("stab_head_layers", shape.out_layers.to_string()),
            (
                "stab_head_replicate_dense",
                shape.replicate_dense.to_string(),
            ),
        ]
        .into_iter()
        .chain(custom_task_metadata(s))
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let extra = s.method.checkpoint_files(
            &fit.selected,
            &ExportContext {
                model_dir: &s.model_dir,
            },
        )?;
        crate::checkpoint::save(model, &s.model_dir, &self.out.join(&rel), metadata, &extra)?;
        Ok(rel)
    }
}

/// A custom task's classes, metric and table, for its checkpoints
/// ([`crate::checkpoint::CUSTOM_TASK_KEYS`]); nothing for a built-in task.
fn custom_task_metadata(s: &RunSetup) -> Vec<(&'static str, String)> {
    let Some(spec) = s.job.data.custom_task(&s.spec.task) else {
        return Vec::new();
    };
    let [labels, metric, table] = crate::checkpoint::CUSTOM_TASK_KEYS;
    vec![
        (labels, serde_json::json!(s.task.def.labels()).to_string()),
        (metric, s.task.def.metric().to_string()),
        (
            table,
            serde_json::to_string(spec).expect("a table serialises"),
        ),
    ]
}

/// The settings a report's "what was run" block shows (stab-eval's `report::settings`):
/// the model and its family, mode, pooling, length, the optimiser's schedule, the device.
fn settings(s: &RunSetup, device: &str) -> serde_json::Value {
    let (model, train) = (&s.job.model, &s.job.train);
    serde_json::json!({
        "model": model.path,
        "family": s.config.family.name(),
        "mode": train.mode,
        "pooling": model.pooling,
        "max_len": model.max_len,
        "lr": train.lr,
        "batch_size": train.batch_size,
        "epochs": train.epochs,
        "max_steps": train.max_steps,
        "warmup": train.warmup,
        "weight_decay": train.weight_decay,
        "grad_clip": train.grad_clip,
        "patience": train.patience,
        "device": device,
    })
}
