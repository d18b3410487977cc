//! Weight averaging (docs/methods.md §12.6): every evaluation, and the final test score,
//! use an average of the weights along the training trajectory instead of the last ones.
//!
//! * EMA (Polyak averaging as used for fine-tuning by Lu et al., EMNLP Findings 2022):
//!   w̄₀ = w₀ (the start of fine-tuning), and after update t (t = 0, 1, …)
//!   `w̄ ← d_t·w̄ + (1 − d_t)·w`, with `d_t = min(decay, (1 + t)/(10 + t))` when `warmup`
//!   is on (TensorFlow's `ExponentialMovingAverage` with `num_updates`: a run of a few
//!   hundred updates is not dominated by w₀), `d_t = decay` otherwise. decay = 0 is the
//!   last weights: FineTune bit for bit.
//! * SWA (`swa = true`, Izmailov et al. 2018): the equal-weight mean of the weights after
//!   every update n ≥ ⌈start·T⌉ (n counted from 1, T the planned updates),
//!   `w̄ ← w̄ + (w − w̄)/k` for the k-th averaged update; before that the weights are
//!   evaluated as they are. The learning-rate schedule is unchanged.
//!
//! Only trainable parameters are averaged (the others never move). Early stopping and
//! checkpoint selection read the averaged model, and the test scores the average as it
//! stood at the selected evaluation (`selects_evaluated`).
//!
//! Head tuning: the head's weights are averaged, on cached features.

use stab_core::Refusal;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use burn::tensor::Tensor;

use stab_train::params::{self, ParamTransform};
use stab_train::{Capabilities, Method, MethodPlugin, StepContext, TaskModel};

stab_core::method_params! {
    /// Evaluate an average of the weights.
    #[derive(Copy)]
    pub struct EmaParams {
        /// EMA decay d (§12.6; 0 = the last weights, FineTune)
        pub decay: f64 = float(0.0, 1.0, 0.999),
        /// true = equal-weight average (SWA) from `start`, false = exponential moving average
        pub swa: bool = flag(false),
        /// SWA: the share of the planned updates after which averaging starts
        pub start: f64 = float(0.0, 1.0, 0.75),
        /// EMA: d_t = min(decay, (1 + t)/(10 + t)), so short runs are not dominated by w₀
        pub warmup: bool = flag(true),
    }
}

/// The running average: flattened trainable parameters by path, on the plain device.
struct Average {
    params: BTreeMap<String, Tensor<1>>,
    /// Updates averaged so far (SWA's k).
    count: u64,
}

/// Weight averaging (EMA or SWA) of one run.
pub struct WeightAverage {
    pub params: EmaParams,
    average: Mutex<Option<Average>>,
}

impl WeightAverage {
    pub fn new(params: EmaParams) -> Self {
        Self {
            params,
            average: Mutex::new(None),
        }
    }

    /// The EMA decay after update `t` (from 0).
    pub fn decay_at(&self, t: u64) -> f64 {
        let d = self.params.decay;
        if self.params.warmup {
            d.min((1.0 + t as f64) / (10.0 + t as f64))
        } else {
            d
        }
    }

    /// The first update (counted from 1) that SWA averages in a run of `total` updates.
    pub fn swa_first(&self, total: u64) -> u64 {
        ((self.params.start * total as f64).ceil() as u64).max(1)
    }

    /// The trainable parameters of `model`, flattened, off the autodiff graph.
    fn trainable(model: &TaskModel) -> BTreeMap<String, Tensor<1>> {
        let trains: BTreeSet<String> = params::param_info(model)
            .into_iter()
            .filter(|p| p.trains)
            .map(|p| p.path)
            .collect();
        params::collect(model)
            .into_iter()
            .filter(|(k, _)| trains.contains(k))
            .map(|(k, p)| (k, p.values.inner()))
            .collect()
    }
}

impl Average {
    /// Fold the weights `now` into the average, each average tensor `a` becoming
    /// `next(a, w)` (a tensor not averaged yet starts at `w`).
    fn fold(
        &mut self,
        now: BTreeMap<String, Tensor<1>>,
        next: impl Fn(Tensor<1>, Tensor<1>) -> Tensor<1>,
    ) {
        self.count += 1;
        for (path, w) in now {
            let value = match self.params.remove(&path) {
                Some(a) => next(a, w),
                None => w,
            };
            self.params.insert(path, value);
        }
    }
}

impl Method for WeightAverage {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            selects_evaluated: true,
            ..Capabilities::default()
        }
    }

    fn after_update(&self, model: &TaskModel, ctx: &StepContext) {
        let mut slot = self.average.lock().expect("average");
        let now = Self::trainable(model);
        if self.params.swa {
            if ctx.step + 1 < self.swa_first(ctx.total) {
                return;
            }
            let avg = slot.get_or_insert_with(|| Average {
                params: BTreeMap::new(),
                count: 0,
            });
            // The k-th averaged update: w̄ + (w − w̄)/k.
            let k = (avg.count + 1) as f64;
            avg.fold(now, |a, w| a.clone() + (w - a).div_scalar(k));
            return;
        }
        let avg = slot.get_or_insert_with(|| Average {
            params: Self::trainable(ctx.start),
            count: 0,
        });
        let d = self.decay_at(ctx.step);
        avg.fold(now, |a, w| a.mul_scalar(d) + w.mul_scalar(1.0 - d));
    }

    fn eval_model(&self, model: TaskModel, _ctx: &StepContext) -> TaskModel {
        struct Swap<'a>(&'a BTreeMap<String, Tensor<1>>);
        impl ParamTransform for Swap<'_> {
            fn apply<const D: usize>(&mut self, path: &str, value: Tensor<D>) -> Tensor<D> {
                match self.0.get(path) {
                    Some(a) => a.clone().to_device(&value.device()).reshape(value.dims()),
                    None => value,
                }
            }
        }
        let slot = self.average.lock().expect("average");
        match slot.as_ref() {
            Some(avg) if avg.count > 0 => params::transform(model, &mut Swap(&avg.params)),
            _ => model,
        }
    }
}

impl MethodPlugin for WeightAverage {
    const NAME: &'static str = "ema";
    const SUMMARY: &'static str = "weight averaging: evaluate an exponential moving average of the weights (or SWA's equal-weight average from a share of training)";
    const COST: f64 = 1.05;
    type Params = EmaParams;

    fn from_params(p: EmaParams) -> Result<Self, Refusal> {
        Ok(WeightAverage::new(p))
    }
}

stab_train::register_method!(WeightAverage);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decay_warms_up_and_swa_starts_at_its_share() {
        let m = WeightAverage::new(EmaParams {
            decay: 0.999,
            swa: false,
            start: 0.75,
            warmup: true,
        });
        assert_eq!(m.decay_at(0), 0.1);
        assert!((m.decay_at(150) - 151.0 / 160.0).abs() < 1e-15);
        assert_eq!(m.decay_at(1_000_000), 0.999);
        assert_eq!(m.swa_first(150), 113);
        assert_eq!(m.swa_first(4), 3);
        let plain = WeightAverage::new(EmaParams {
            warmup: false,
            ..m.params
        });
        assert_eq!(plain.decay_at(0), 0.999);
    }
}
