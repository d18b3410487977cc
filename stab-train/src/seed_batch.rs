//! Seed-batched head tuning (docs/methods.md §4.5): the runs of one configuration that
//! differ only in seed train on cached features as one model of K members. Member k's
//! head is layers `[k·L, (k+1)·L)` of every stacked layer, its rows are the k-th block of
//! the batch, its dropout masks come from its own stream, and its loss, gradient norm,
//! clipping, AdamW state, evaluations, early stopping and selection are its own — so each
//! member computes, op for op, what its run computes alone, and its record, predictions
//! and checkpoint are the solo run's. A member that stops leaves the batch.

use std::collections::BTreeMap;
use std::time::Instant;

use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use stab_core::RunSpec;
use stab_core::recipe::TrainMode;
use stab_models::{HeadInput, HeadOutput, HostReads, TaskHead, resolve_model};

use crate::fit::{Next, Training, context, epoch_batches, fit};
use crate::member_optim::{MemberAdamW, clip_factors};
use crate::method::{EncoderChange, Method, SeedBatching, StepView};
use crate::model::{Forward, TaskModel};
use crate::run::TrainedRun;
use crate::session::{Engine, finetune_job};
use crate::setup::RunSetup;
use crate::stack::MethodStack;
use crate::stats::{Progress, RunStats};
use crate::step::{StepLoss, cross_entropy_members};

/// A run's progress callback.
pub type ProgressFn<'a> = &'a (dyn Fn(Progress) + Sync);

impl Engine {
    /// What runs share when they may train in one seed batch: the run's settings without
    /// its seed. `None` when the run trains alone: not head tuning on cached features, a
    /// method that cannot batch ([`crate::Capabilities::seed_batch`]), an encoder changed
    /// per run, or a fixed batch order.
    pub fn seed_batch_key(&self, spec: &RunSpec) -> Option<String> {
        if self.batch_order.is_some() {
            return None;
        }
        let job = finetune_job(spec).ok()?;
        if job.train.mode != TrainMode::Head || job.train.head_encoder_dropout {
            return None;
        }
        let method = MethodStack::build(&spec.stack()).ok()?;
        let caps = method.capabilities();
        // A method that changes nothing in head tuning runs as FineTune does.
        let batches =
            caps.seed_batch != SeedBatching::Alone || method.no_op(TrainMode::Head).is_some();
        if !batches
            || !caps.cached_features
            || method.encoder_change(TrainMode::Head) == EncoderChange::PerRun
        {
            return None;
        }
        Some(spec.configuration())
    }

    /// What one more member adds to a seed batch of `spec`'s key, in bytes: its head's
    /// weights, gradient, two AdamW moments and the update's temporaries, and a batch's
    /// activations (an upper estimate; the runner sizes batches to memory with it).
    pub fn seed_batch_member_bytes(&self, spec: &RunSpec) -> u64 {
        let estimate = || -> Option<u64> {
            let job = finetune_job(spec).ok()?;
            let config =
                stab_models::EncoderConfig::from_dir(&resolve_model(&job.model.path).ok()?).ok()?;
            let shape = MethodStack::build(&spec.stack()).ok()?.capabilities().head;
            let classes = stab_data::task_def(&spec.task).map_or(16, |t| t.labels.len()) as u64;
            let (d, h) = (config.hidden_size as u64, shape.out_layers as u64);
            let dense = if shape.replicate_dense { h } else { 1 };
            // The span head's final layer reads 2d: count it for every head.
            let params = dense * (d * d + d) + h * (2 * d * classes + classes) + d + 1;
            let rows = job.train.batch_size as u64;
            let activations = rows * (2 * d + dense * d * 3 + h * classes * 4);
            Some(params * 4 * 6 + activations * 4 * 2)
        };
        estimate().unwrap_or(64 << 20)
    }

    /// Train runs that share a [`Engine::seed_batch_key`] together; one result per spec,
    /// in order, each what [`Engine::train`] gives for it alone (timings aside). Runs of
    /// other keys or other training-row counts (a `train_fraction`) form batches of their
    /// own; a run that cannot batch trains alone.
    pub fn train_seed_batch(
        &self,
        specs: &[&RunSpec],
        progress: &[ProgressFn],
    ) -> Vec<stab_core::Result<TrainedRun>> {
        let start = Instant::now();
        let mut results: Vec<Option<stab_core::Result<TrainedRun>>> =
            specs.iter().map(|_| None).collect();
        let mut setups = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            match self.setup(spec, progress[i]) {
                Ok(s) => setups.push((i, s)),
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        let mut groups: BTreeMap<(Option<String>, usize, u64), Vec<usize>> = BTreeMap::new();
        for (j, (i, s)) in setups.iter().enumerate() {
            let key = self.seed_batch_key(specs[*i]).filter(|_| s.cached);
            groups
                .entry((key, s.train_rows.len(), s.plan.total))
                .or_default()
                .push(j);
        }
        for ((key, _, _), members) in groups {
            let runs: Vec<&RunSetup> = members.iter().map(|&j| &setups[j].1).collect();
            let calls: Vec<ProgressFn> = members.iter().map(|&j| progress[setups[j].0]).collect();
            let outcome = if key.is_some() && runs.len() > 1 {
                self.fit_batch(&runs, &calls, start)
            } else {
                runs.iter()
                    .zip(&calls)
                    .map(|(s, p)| self.fit_alone(s, *p, start))
                    .collect()
            };
            for (&j, r) in members.iter().zip(outcome) {
                results[setups[j].0] = Some(r);
            }
        }
        results
            .into_iter()
            .map(|r| r.expect("every spec has a result"))
            .collect()
    }

    fn fit_alone(
        &self,
        s: &RunSetup,
        progress: ProgressFn,
        start: Instant,
    ) -> stab_core::Result<TrainedRun> {
        let mut stats = s.stats.clone();
        let fit = fit(s, None, &mut stats, progress)?;
        self.conclude(s, fit, stats, start)
    }

    /// Fit K ≥ 2 set-up runs as one batch and conclude each.
    fn fit_batch(
        &self,
        setups: &[&RunSetup],
        progress: &[ProgressFn],
        start: Instant,
    ) -> Vec<stab_core::Result<TrainedRun>> {
        let mut stats: Vec<RunStats> = setups.iter().map(|s| s.stats.clone()).collect();
        let fits = match SeedBatch::new(setups, progress) {
            Ok(batch) => batch.fit(&mut stats),
            Err(e) => {
                return setups
                    .iter()
                    .map(|_| Err(stab_core::internal!("{e:#}")))
                    .collect();
            }
        };
        fits.into_iter()
            .zip(setups)
            .zip(stats)
            .map(|((fit, s), st)| self.conclude(s, fit?, st, start))
            .collect()
    }
}

/// K runs training together.
struct SeedBatch<'a> {
    setups: &'a [&'a RunSetup<'a>],
    progress: &'a [ProgressFn<'a>],
    runs: Vec<Training<'a>>,
    /// The runs still training, in their order in the stacked head.
    active: Vec<usize>,
    model: TaskModel,
    optim: MemberAdamW,
    /// Whether the methods add loss terms, computed per member on its own view.
    with_terms: bool,
}

impl<'a> SeedBatch<'a> {
    fn new(
        setups: &'a [&'a RunSetup<'a>],
        progress: &'a [ProgressFn<'a>],
    ) -> stab_core::Result<Self> {
        let runs = setups
            .iter()
            .zip(progress)
            .map(|(s, p)| Training::start(s, *p))
            .collect::<stab_core::Result<Vec<_>>>()?;
        let heads: Vec<&TaskHead> = setups.iter().map(|s| &s.model.head).collect();
        let model = TaskModel {
            encoder: None,
            head: TaskHead::stack(&heads),
            pooling: setups[0].model.pooling,
        };
        let optim = MemberAdamW::new(&model, setups[0]);
        let with_terms =
            setups[0].method.capabilities().seed_batch == SeedBatching::StackedWithTerms;
        Ok(Self {
            with_terms,
            setups,
            progress,
            runs,
            active: (0..setups.len()).collect(),
            model,
            optim,
        })
    }

    /// Member `pos` of the stack as its own model (the run's noise stream attached).
    fn member(&self, pos: usize) -> TaskModel {
        let s = self.setups[self.active[pos]];
        let mut head = self.model.head.member(pos, self.active.len());
        head.set_noise(&s.noise);
        TaskModel {
            encoder: None,
            head,
            pooling: self.model.pooling,
        }
    }

    /// Train until every member has stopped or the plan's updates are done; each
    /// member's fit, in the setups' order.
    fn fit(mut self, stats: &mut [RunStats]) -> Vec<stab_core::Result<crate::fit::Fit>> {
        let k0 = self.setups.len();
        let mut orders: Vec<ChaCha8Rng> = self
            .setups
            .iter()
            .map(|s| ChaCha8Rng::seed_from_u64(s.seeds.data_order))
            .collect();
        let total = self.setups[0].plan.total;
        let loop_start = Instant::now();
        let mut errors: Vec<Option<stab_core::Error>> = (0..k0).map(|_| None).collect();
        'epochs: loop {
            let mut epochs: Vec<Vec<Vec<usize>>> = vec![Vec::new(); k0];
            for &m in &self.active {
                epochs[m] = epoch_batches(self.setups[m], &mut orders[m], None);
            }
            let batches = epochs[self.active[0]].len();
            for b in 0..batches {
                if self.runs[self.active[0]].fit.steps >= total {
                    break 'epochs;
                }
                let stopped = self.update(&epochs, b, stats, &mut errors);
                self.leave(&stopped);
                if self.active.is_empty() {
                    break 'epochs;
                }
            }
        }
        let elapsed = loop_start.elapsed().as_secs_f64();
        for pos in 0..self.active.len() {
            let m = self.active[pos];
            self.runs[m].model = self.member(pos);
        }
        self.runs
            .into_iter()
            .zip(stats.iter_mut())
            .zip(errors)
            .map(|((run, st), err)| {
                // Each run's share of the batch's loop.
                st.train_s = elapsed / k0 as f64;
                match err {
                    Some(e) => Err(e),
                    None => Ok(run.finish(st)),
                }
            })
            .collect()
    }

    /// One update of every active member on its `b`-th batch of the epoch, then the
    /// evaluations when due; returns the members that stopped.
    fn update(
        &mut self,
        epochs: &[Vec<Vec<usize>>],
        b: usize,
        stats: &mut [RunStats],
        errors: &mut [Option<stab_core::Error>],
    ) -> Vec<usize> {
        let s0 = self.setups[self.active[0]];
        let step = self.runs[self.active[0]].fit.steps;
        let k = self.active.len();
        let reads_before = HostReads::count();
        let (mut rows, mut labels, mut streams) = (Vec::new(), Vec::new(), Vec::new());
        for &m in &self.active {
            let s = self.setups[m];
            rows.extend(epochs[m][b].iter().map(|&i| s.train_rows[i]));
            labels.extend(epochs[m][b].iter().map(|&i| s.train_encoded[i].label));
            streams.push(s.noise.clone());
        }
        let sets = s0.feature_sets.as_ref().expect("cached features");
        let device = &s0.train_device;
        let input = sets[0].batch(&rows, device);
        let out = self.model.head.forward_members(input.clone(), &streams);
        let ce = cross_entropy_members(out.logits.clone(), &labels, k, device);
        let (root, mut losses) = if self.with_terms {
            self.with_member_terms(ce, &out, &input, &labels, step)
        } else {
            let values = HostReads::values(ce.clone());
            let losses = values
                .into_iter()
                .map(|v| StepLoss {
                    total: f64::from(v),
                    terms: Vec::new(),
                })
                .collect();
            (ce.sum(), losses)
        };
        let grads = GradientsParams::from_grads(root.backward(), &self.model);
        let factors = clip_factors(&self.model, &grads, s0.job.train.grad_clip, k);
        let diverged: Vec<usize> = (0..k).filter(|&p| !losses[p].total.is_finite()).collect();
        let before: Vec<(usize, TaskModel)> =
            diverged.iter().map(|&p| (p, self.member(p))).collect();
        let model = std::mem::replace(&mut self.model, s0.model.clone());
        self.model = self
            .optim
            .step(s0.plan.schedule.lr(step), model, grads, &factors);
        let reads = HostReads::count() - reads_before;
        let mut stopped = Vec::new();
        for (pos, &m) in self.active.iter().enumerate() {
            if let Some((_, pre)) = before.iter().find(|(p, _)| *p == pos) {
                self.runs[m].model = pre.clone();
            }
            let loss = std::mem::replace(
                &mut losses[pos],
                StepLoss {
                    total: 0.0,
                    terms: Vec::new(),
                },
            );
            if let Next::Stop = self.runs[m].stepped(loss, reads, &mut stats[m], self.progress[m]) {
                stopped.push(m);
            }
        }
        for pos in 0..k {
            let m = self.active[pos];
            if stopped.contains(&m) || !self.runs[m].evaluation_due() {
                continue;
            }
            self.runs[m].model = self.member(pos);
            match self.runs[m].evaluate(&mut stats[m], self.progress[m]) {
                Ok(Next::Continue) => {}
                Ok(Next::Stop) => stopped.push(m),
                Err(e) => {
                    errors[m] = Some(e);
                    stopped.push(m);
                }
            }
        }
        stopped
    }

    /// Each member's loss with its methods' terms, computed on the member's own view of
    /// the step (its rows, its slice of the forward, its head as views into the stack):
    /// the sum to differentiate and each member's loss as its solo step reports it.
    fn with_member_terms(
        &self,
        ce: Tensor<1>,
        out: &HeadOutput,
        input: &HeadInput,
        labels: &[usize],
        step: u64,
    ) -> (Tensor<1>, Vec<StepLoss>) {
        let k = self.active.len();
        let b = labels.len() / k;
        let (h, hd) = (out.logits.dims()[0] / k, out.features.dims()[0] / k);
        let (mut read, mut names, mut losses) = (Vec::new(), Vec::new(), Vec::new());
        for pos in 0..k {
            let m = self.active[pos];
            let s = self.setups[m];
            let mut head = self.model.head.member_view(pos, k);
            head.set_noise(&s.noise);
            let model = TaskModel {
                encoder: None,
                head,
                pooling: self.model.pooling,
            };
            let forward = Forward {
                head: HeadOutput {
                    features: out.features.clone().narrow(0, pos * hd, hd),
                    logits: out.logits.clone().narrow(0, pos * h, h),
                },
                hidden: None,
            };
            let rows = member_rows(input, pos, b);
            let ctx = context(s, &self.runs[m].start, step);
            let view = StepView {
                model: &model,
                forward: &forward,
                input: None,
                features: Some(&rows),
                labels: &labels[pos * b..(pos + 1) * b],
                classes: s.task.def.classes(),
                ctx: &ctx,
            };
            let terms = s.method.loss_terms(&view);
            let ce_k = ce.clone().narrow(0, pos, 1);
            let mut loss = ce_k.clone();
            for (_, t) in &terms {
                loss = loss + t.clone();
            }
            losses.push(loss.clone());
            read.push(loss);
            if !terms.is_empty() {
                read.push(ce_k);
                read.extend(terms.iter().map(|(_, t)| t.clone()));
            }
            names.push(terms.into_iter().map(|(n, _)| n).collect::<Vec<_>>());
        }
        // One read for every member's loss and terms, as a solo step reads its own.
        let values = HostReads::values(Tensor::cat(read, 0));
        let mut at = 0;
        let mut steps = Vec::with_capacity(k);
        for names in names {
            let total = f64::from(values[at]);
            let mut terms = Vec::new();
            if !names.is_empty() {
                terms.push(("ce", f64::from(values[at + 1])));
                terms.extend(
                    names
                        .iter()
                        .zip(&values[at + 2..])
                        .map(|(n, &v)| (*n, f64::from(v))),
                );
                at += 1 + names.len();
            }
            at += 1;
            steps.push(StepLoss { total, terms });
        }
        (Tensor::cat(losses, 0).sum(), steps)
    }

    /// Take the stopped members out of the stack (their runs keep their weights).
    fn leave(&mut self, stopped: &[usize]) {
        if stopped.is_empty() {
            return;
        }
        let k = self.active.len();
        let keep: Vec<usize> = (0..k)
            .filter(|&p| !stopped.contains(&self.active[p]))
            .collect();
        for (pos, &m) in self.active.iter().enumerate() {
            if stopped.contains(&m) && !self.runs[m].fit.diverged {
                self.runs[m].model = self.member(pos);
            }
        }
        if !keep.is_empty() {
            let heads: Vec<TaskHead> = keep.iter().map(|&p| self.model.head.member(p, k)).collect();
            let refs: Vec<&TaskHead> = heads.iter().collect();
            self.model.head = TaskHead::stack(&refs);
            self.optim.keep(&keep, k);
        }
        self.active = keep.iter().map(|&p| self.active[p]).collect();
    }
}

/// Member `pos`'s `b` rows of a batch's head input.
fn member_rows(input: &HeadInput, pos: usize, b: usize) -> HeadInput {
    match input {
        HeadInput::Pooled(p) => HeadInput::Pooled(p.clone().narrow(0, pos * b, b)),
        HeadInput::Spans { tokens, mask } => HeadInput::Spans {
            tokens: tokens.clone().narrow(0, pos * b, b),
            mask: mask.clone().narrow(0, pos * b, b),
        },
    }
}
