//! The fit loop (docs/methods.md §4.1): epochs of seeded shuffles (or a fixed batch
//! order), one update per batch, a dev evaluation every `eval_every` updates with early
//! stopping on it, and the best-dev weights kept.

use std::collections::BTreeMap;
use std::time::Instant;

use burn::module::Module;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use stab_models::HostReads;

use crate::evaluate::{Part, Source};
use crate::method::{Method, StepContext};
use crate::model::TaskModel;
use crate::optim::{AdamWSettings, adamw_with};
use crate::setup::RunSetup;
use crate::stats::{Progress, RunStats};
use crate::step::{StepLoss, TrainRows, update};
use crate::stopping::{EarlyStopping, Verdict};
use stab_eval::early_stop::FailedWatch;

/// Mean of a value over the updates since the last evaluation.
#[derive(Debug, Clone, Copy, Default)]
struct IntervalMean {
    sum: f64,
    count: u64,
}

impl IntervalMean {
    fn add(&mut self, v: f64) {
        self.sum += v;
        self.count += 1;
    }
    fn take(&mut self) -> f64 {
        let m = self.sum / self.count.max(1) as f64;
        *self = Self::default();
        m
    }
}

/// What the fit loop leaves: the selected weights and the curves of the record.
pub(super) struct Fit {
    /// The best-dev weights (a validation copy), or the last ones if dev never scored.
    pub selected: TaskModel,
    pub stopping: EarlyStopping,
    /// (update, mean training loss since the previous evaluation).
    pub loss_curve: Vec<(u64, f64)>,
    /// The same per loss term (`ce` and each method term), when the methods add terms.
    pub term_curves: BTreeMap<&'static str, Vec<(u64, f64)>>,
    pub steps: u64,
    pub diverged: bool,
    /// `stop_failed`: the update at which the run was stopped as failed.
    pub stopped_failed: Option<u64>,
}

/// Whether the loop goes on after a step.
pub(super) enum Next {
    Continue,
    Stop,
}

/// The state of the fit loop between updates (of one run; a seed batch keeps one per run).
pub(super) struct Training<'a> {
    pub(super) s: &'a RunSetup<'a>,
    source: Source<'a>,
    /// The start-of-training weights the methods compare against.
    pub(super) start: TaskModel,
    pub(super) model: TaskModel,
    optim: burn::optim::ModuleOptimizer,
    best: Option<TaskModel>,
    loss_mean: IntervalMean,
    term_means: BTreeMap<&'static str, IntervalMean>,
    /// Whether the test scores the evaluated model of the selected evaluation.
    selects_evaluated: bool,
    pub(super) fit: Fit,
    failed: Option<FailedWatch>,
}

/// Train a set-up run: epochs of batches, one update each, a dev evaluation when due.
pub(super) fn fit(
    s: &RunSetup,
    fixed_order: Option<&[Vec<usize>]>,
    stats: &mut RunStats,
    progress: &(dyn Fn(Progress) + Sync),
) -> stab_core::Result<Fit> {
    check_fixed_order(s, fixed_order)?;
    let mut t = Training::start(s, progress)?;
    let mut order = ChaCha8Rng::seed_from_u64(s.seeds.data_order);
    let loop_start = Instant::now();
    'epochs: loop {
        for batch in epoch_batches(s, &mut order, fixed_order) {
            if t.fit.steps >= s.plan.total {
                break 'epochs;
            }
            if let Next::Stop = t.update(&batch, stats, progress) {
                break 'epochs;
            }
            if t.evaluation_due()
                && let Next::Stop = t.evaluate(stats, progress)?
            {
                break 'epochs;
            }
        }
    }
    stats.train_s = loop_start.elapsed().as_secs_f64();
    Ok(t.finish(stats))
}

/// A fixed batch order must cover the planned updates with rows the run has.
fn check_fixed_order(s: &RunSetup, fixed: Option<&[Vec<usize>]>) -> stab_core::Result<()> {
    let (n, total) = (s.train_rows.len(), s.plan.total);
    let Some(fixed) = fixed else {
        return Ok(());
    };
    if (fixed.len() as u64) < total || fixed.iter().flatten().any(|&i| i >= n) {
        return Err(stab_core::internal!(
            "the fixed batch order has {} batches for {total} updates, or a row beyond the {n} training rows",
            fixed.len()
        ));
    }
    Ok(())
}

/// One epoch's batches: the seeded shuffle (drawn every epoch, also under a fixed order,
/// so the data-order stream is the same either way), or the fixed order.
pub(super) fn epoch_batches(
    s: &RunSetup,
    order: &mut ChaCha8Rng,
    fixed: Option<&[Vec<usize>]>,
) -> Vec<Vec<usize>> {
    let mut rows: Vec<usize> = (0..s.train_rows.len()).collect();
    rows.shuffle(order);
    match fixed {
        Some(fixed) => fixed.to_vec(),
        None => rows.chunks(s.plan.batch).map(<[usize]>::to_vec).collect(),
    }
}

impl<'a> Training<'a> {
    /// A run's fit state before its first update: progress told, the failed-run watch
    /// armed, the methods' look at the training rows taken.
    pub(super) fn start(
        s: &'a RunSetup<'a>,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> stab_core::Result<Self> {
        progress(Progress::Start {
            total: s.plan.total,
        });
        let mut t = Training::new(s);
        if let Some(stop) = s.job.train.stop_failed {
            t.failed = Some(FailedWatch::new(
                stop.after,
                crate::evaluate::majority_dev_score(&s.task)?,
                s.plan.schedule.warmup_steps,
            ));
        }
        t.before_training()?;
        Ok(t)
    }

    fn new(s: &'a RunSetup<'a>) -> Self {
        let train = &s.job.train;
        let layers = s.config.num_hidden_layers;
        let optim = adamw_with(
            &s.model,
            AdamWSettings {
                weight_decay: train.weight_decay,
                bias_correction: train.adam_bias_correction,
            },
            |path| s.method.lr_scale(path, layers),
        );
        Self {
            s,
            source: s.source(),
            start: s.model.clone(),
            model: s.model.clone(),
            optim,
            best: None,
            loss_mean: IntervalMean::default(),
            term_means: BTreeMap::new(),
            selects_evaluated: s.method.capabilities().selects_evaluated,
            fit: Fit {
                selected: s.model.valid(),
                stopping: EarlyStopping::new(train.patience.max(1)),
                loss_curve: Vec::new(),
                term_curves: BTreeMap::new(),
                steps: 0,
                diverged: false,
                stopped_failed: None,
            },
            failed: None,
        }
    }

    /// The methods' look at the training rows before the first update.
    fn before_training(&self) -> stab_core::Result<()> {
        let s = self.s;
        let labels: Vec<usize> = s.train_encoded.iter().map(|r| r.label).collect();
        let data = TrainRows {
            source: &self.source,
            labels: &labels,
            batch: s.plan.batch,
            device: &s.train_device,
        };
        s.method
            .before_training(&self.model, &data, &context(s, &self.start, 0))
    }

    /// One update on `batch`; a diverged loss stops the run (the record says so and
    /// keeps the best weights so far).
    fn update(
        &mut self,
        batch: &[usize],
        stats: &mut RunStats,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Next {
        let s = self.s;
        let step = self.fit.steps;
        let _span = tracing::trace_span!("update", step).entered();
        let labels: Vec<usize> = batch.iter().map(|&i| s.train_encoded[i].label).collect();
        let classes = s.task.def.classes();
        let reads_before = HostReads::count();
        let ctx = context(s, &self.start, step);
        let model = std::mem::replace(&mut self.model, self.start.clone());
        let (model, loss) = update(
            model,
            &mut self.optim,
            s.plan.schedule.lr(step),
            s.job.train.grad_clip,
            &self.source,
            &s.method,
            (batch, &labels, classes),
            &ctx,
        );
        if loss.total.is_finite() {
            s.method.after_update(&model, &ctx);
        }
        self.model = model;
        self.stepped(loss, HostReads::count() - reads_before, stats, progress)
    }

    /// The bookkeeping of an update that gave `loss` and read the device `reads` times:
    /// a diverged loss stops the run (the model is the one before the update).
    pub(super) fn stepped(
        &mut self,
        loss: StepLoss,
        reads: u64,
        stats: &mut RunStats,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Next {
        let step = self.fit.steps;
        if !loss.total.is_finite() {
            self.fit.diverged = true;
            progress(Progress::Step {
                step,
                loss: loss.total,
            });
            return Next::Stop;
        }
        stats.update_host_reads += reads;
        self.fit.steps += 1;
        self.loss_mean.add(loss.total);
        for (name, v) in &loss.terms {
            self.term_means.entry(name).or_default().add(*v);
        }
        progress(Progress::Step {
            step: self.fit.steps,
            loss: loss.total,
        });
        Next::Continue
    }

    pub(super) fn evaluation_due(&self) -> bool {
        let (step, plan) = (self.fit.steps, self.s.plan);
        step.is_multiple_of(plan.eval_every) || step == plan.total
    }

    /// A dev evaluation: the curves' interval means, the score, early stopping.
    pub(super) fn evaluate(
        &mut self,
        stats: &mut RunStats,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> stab_core::Result<Next> {
        let (s, step) = (self.s, self.fit.steps);
        let eval_start = Instant::now();
        // The weights are kept unmixed; a method that changes the evaluated model
        // (MixOut-author, LoRA's merge) does so afresh at every evaluation.
        let weights = self.model.valid();
        let evaluated = s
            .method
            .eval_model(weights.clone(), &context(s, &self.start, step));
        let dev = self.source.score(&evaluated, Part::Dev, &s.task)?;
        let train_loss = self.loss_mean.take();
        self.fit.loss_curve.push((step, train_loss));
        let mut terms = Vec::with_capacity(self.term_means.len());
        for (name, m) in &mut self.term_means {
            let mean = m.take();
            terms.push((*name, mean));
            self.fit
                .term_curves
                .entry(name)
                .or_default()
                .push((step, mean));
        }
        progress(Progress::Eval {
            step,
            dev,
            train_loss,
            terms,
            lr: s.plan.schedule.lr(step.saturating_sub(1)),
        });
        stats.eval_s += eval_start.elapsed().as_secs_f64();
        let next = match self.fit.stopping.observe(step, dev) {
            Verdict::Improved => {
                self.best = Some(if self.selects_evaluated {
                    evaluated
                } else {
                    weights
                });
                Next::Continue
            }
            Verdict::Stop if step >= s.job.train.min_steps => Next::Stop,
            Verdict::Continue | Verdict::Stop => Next::Continue,
        };
        if let Some(watch) = &mut self.failed
            && watch.observe(step, dev)
        {
            self.fit.stopped_failed = Some(step);
            return Ok(Next::Stop);
        }
        Ok(next)
    }

    /// The fit's result: the best-dev weights, or the last ones if dev never scored.
    pub(super) fn finish(mut self, stats: &mut RunStats) -> Fit {
        stats.updates = self.fit.steps;
        self.fit.selected = self.best.take().unwrap_or_else(|| self.model.valid());
        self.fit
    }
}

/// What the methods see around update `step`.
pub(super) fn context<'a>(s: &'a RunSetup, start: &'a TaskModel, step: u64) -> StepContext<'a> {
    StepContext {
        start,
        pretrained: &s.pretrained,
        noise: &s.noise,
        own_noise: &s.method_noise,
        step,
        total: s.plan.total,
        device: &s.train_device,
    }
}

/// The selected weights as the methods evaluate them, scored on test: the model, every
/// metric, and the predicted label of each test row.
pub(super) fn test_metrics(s: &RunSetup, fit: &Fit) -> stab_core::Result<TestScore> {
    let start = s.model.clone();
    let model = if s.method.capabilities().selects_evaluated {
        fit.selected.clone()
    } else {
        s.method
            .eval_model(fit.selected.clone(), &context(s, &start, fit.steps))
    };
    let source: Source = s.source();
    let (metrics, predictions) = source.metrics_and_predictions(&model, Part::Test, &s.task)?;
    Ok(TestScore {
        model,
        metrics,
        predictions,
    })
}

/// What the test of the selected model gives.
pub(super) struct TestScore {
    pub model: TaskModel,
    pub metrics: BTreeMap<String, f64>,
    pub predictions: Vec<usize>,
}
