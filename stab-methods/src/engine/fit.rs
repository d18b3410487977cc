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

use super::evaluate::{Part, Source};
use super::method::{Method, StepContext};
use super::model::TaskModel;
use super::optim::{AdamWSettings, adamw_with};
use super::run::{Progress, RunStats};
use super::setup::RunSetup;
use super::step::update;
use super::stopping::{EarlyStopping, Verdict};

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
}

/// Train a set-up run.
pub(super) fn fit(
    s: &RunSetup,
    fixed_order: Option<&[Vec<usize>]>,
    stats: &mut RunStats,
    progress: &(dyn Fn(Progress) + Sync),
) -> anyhow::Result<Fit> {
    let train = &s.job.train;
    let plan = s.plan;
    let source = s.source();
    let n = s.train_rows.len();
    if let Some(fixed) = fixed_order {
        anyhow::ensure!(
            fixed.len() as u64 >= plan.total && fixed.iter().flatten().all(|&i| i < n),
            "the fixed batch order has {} batches for {} updates, or a row beyond the {n} training rows",
            fixed.len(),
            plan.total
        );
    }
    progress(Progress::Start { total: plan.total });
    let start = s.model.clone();
    let mut model = s.model.clone();
    let layers = s.config.num_hidden_layers;
    let mut optim = adamw_with(
        &model,
        AdamWSettings {
            weight_decay: train.weight_decay,
            bias_correction: train.adam_bias_correction,
        },
        |path| s.method.lr_scale(path, layers),
    );
    let mut order = ChaCha8Rng::seed_from_u64(s.seeds.data_order);
    let mut fit = Fit {
        selected: model.valid(),
        stopping: EarlyStopping::new(train.patience.max(1)),
        loss_curve: Vec::new(),
        term_curves: BTreeMap::new(),
        steps: 0,
        diverged: false,
    };
    let mut best: Option<TaskModel> = None;
    let mut loss_mean = IntervalMean::default();
    let mut term_means: BTreeMap<&'static str, IntervalMean> = BTreeMap::new();
    let classes = s.task.def.labels.len();
    let loop_start = Instant::now();
    'epochs: loop {
        let mut rows: Vec<usize> = (0..n).collect();
        rows.shuffle(&mut order);
        let batches: Vec<&[usize]> = match fixed_order {
            Some(fixed) => fixed.iter().map(Vec::as_slice).collect(),
            None => rows.chunks(plan.batch).collect(),
        };
        for chunk in batches {
            if fit.steps >= plan.total {
                break 'epochs;
            }
            let step = fit.steps;
            let _span = tracing::trace_span!("update", step).entered();
            let labels: Vec<usize> = chunk.iter().map(|&i| s.train_encoded[i].label).collect();
            let ctx = context(s, &start, step);
            let reads_before = HostReads::count();
            let (next, loss) = update(
                model,
                &mut optim,
                plan.schedule.lr(step),
                train.grad_clip,
                &source,
                &s.method,
                (chunk, &labels, classes),
                &ctx,
            );
            model = next;
            if !loss.total.is_finite() {
                // Diverged: stop here; the record says so and keeps the best weights so far.
                fit.diverged = true;
                progress(Progress::Step {
                    step,
                    loss: loss.total,
                });
                break 'epochs;
            }
            stats.update_host_reads += HostReads::count() - reads_before;
            fit.steps += 1;
            let step = fit.steps;
            loss_mean.add(loss.total);
            for (name, v) in &loss.terms {
                term_means.entry(name).or_default().add(*v);
            }
            progress(Progress::Step {
                step,
                loss: loss.total,
            });
            if step.is_multiple_of(plan.eval_every) || step == plan.total {
                let eval_start = Instant::now();
                // The weights are kept unmixed; a method that changes the evaluated model
                // (MixOut-author, LoRA's merge) does so afresh at every evaluation.
                let weights = model.valid();
                let evaluated = s
                    .method
                    .eval_model(weights.clone(), &context(s, &start, step));
                let dev = source.score(&evaluated, Part::Dev, &s.task)?;
                fit.loss_curve.push((step, loss_mean.take()));
                for (name, m) in &mut term_means {
                    fit.term_curves
                        .entry(name)
                        .or_default()
                        .push((step, m.take()));
                }
                progress(Progress::Eval { step, dev });
                stats.eval_s += eval_start.elapsed().as_secs_f64();
                match fit.stopping.observe(step, dev) {
                    Verdict::Improved => best = Some(weights),
                    Verdict::Continue => {}
                    Verdict::Stop if step >= train.min_steps => break 'epochs,
                    Verdict::Stop => {}
                }
            }
        }
    }
    stats.train_s = loop_start.elapsed().as_secs_f64();
    stats.updates = fit.steps;
    fit.selected = best.unwrap_or_else(|| model.valid());
    Ok(fit)
}

/// What the methods see around update `step`.
pub(super) fn context<'a>(s: &'a RunSetup, start: &'a TaskModel, step: u64) -> StepContext<'a> {
    StepContext {
        start,
        pretrained: &s.pretrained,
        noise: &s.noise,
        step,
        device: &s.train_device,
    }
}

/// The selected weights as the methods evaluate them, scored on test.
pub(super) fn test_metrics(
    s: &RunSetup,
    fit: &Fit,
) -> anyhow::Result<(TaskModel, BTreeMap<String, f64>)> {
    let start = s.model.clone();
    let model = s
        .method
        .eval_model(fit.selected.clone(), &context(s, &start, fit.steps));
    let source: Source = s.source();
    let metrics = source.metrics(&model, Part::Test, &s.task)?;
    Ok((model, metrics))
}
