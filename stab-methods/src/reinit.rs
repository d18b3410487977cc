//! Re-initialising the top encoder layers before fine-tuning (Zhang et al. 2021,
//! "Revisiting Few-sample BERT Fine-tuning", §5.2): the top `k` transformer layers get
//! the pre-training initialisation again — N(0, 0.02²) weights, zero biases, unit
//! LayerNorm — and the pooler with them (when k > 0), so the layers most specialised to
//! the pre-training objective start fresh.
//!
//! In full fine-tuning each run re-initialises from its own seed. In head tuning the
//! encoder is frozen, so a per-seed random top would measure encoder draws rather than
//! head training; there the re-initialised encoder is drawn once per task (like the frozen
//! random pooler) and its features are cached.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use stab_core::Refusal;
use stab_core::recipe::TrainMode;
use stab_models::Encoder;

use burn::tensor::Tensor;

use stab_train::params::{self, ParamTransform};
use stab_train::{
    Capabilities, EncoderChange, Method, MethodPlugin, PrepareContext, Prepared, SeedBatching,
};

/// Re-initialise the top `layers` encoder layers.
#[derive(Debug, Clone, Copy)]
pub struct ReinitTopLayers {
    pub layers: usize,
}

/// The encoder with layers `first..` and the pooler re-initialised from `seed`, in
/// parameter path order.
pub fn reinit_from(encoder: Encoder, first: usize, seed: u64) -> Encoder {
    struct Reinit {
        first: usize,
        rng: ChaCha8Rng,
    }
    impl ParamTransform for Reinit {
        fn apply<const D: usize>(&mut self, path: &str, value: Tensor<D>) -> Tensor<D> {
            let layer = path
                .strip_prefix("encoder.layer.")
                .and_then(|rest| rest.split('.').next())
                .and_then(|i| i.parse::<usize>().ok());
            let targeted = layer.is_some_and(|l| l >= self.first) || path.starts_with("pooler.");
            if !targeted {
                return value;
            }
            let dims = value.dims();
            let n: usize = dims.iter().product();
            let v: Vec<f32> = if path.ends_with("gamma") {
                vec![1.0; n]
            } else if path.ends_with("weight") {
                let normal = Normal::new(0.0f32, 0.02).expect("valid std");
                (0..n).map(|_| normal.sample(&mut self.rng)).collect()
            } else {
                vec![0.0; n]
            };
            params::values_like(&value, v)
        }
    }
    params::transform(
        encoder,
        &mut Reinit {
            first,
            rng: ChaCha8Rng::seed_from_u64(seed),
        },
    )
}

impl Method for ReinitTopLayers {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            seed_batch: SeedBatching::Stacked,
            ..Capabilities::default()
        }
    }

    fn check_model(&self, config: &stab_models::EncoderConfig) -> Result<(), Refusal> {
        let total = config.num_hidden_layers;
        if self.layers > total {
            return Err(format!(
                "k = {} but the model has {total} layers; use k in 0..={total}",
                self.layers
            )
            .into());
        }
        Ok(())
    }

    fn encoder_change(&self, mode: TrainMode) -> EncoderChange {
        match (self.layers, mode) {
            (0, _) => EncoderChange::Unchanged,
            (k, TrainMode::Head) => EncoderChange::PerTask(format!("reinit|k={k}")),
            (_, TrainMode::Full) => EncoderChange::PerRun,
        }
    }

    fn prepare_encoder(
        &self,
        encoder: Encoder,
        ctx: &PrepareContext,
    ) -> stab_core::Result<Prepared> {
        let total = encoder.encoder.layer.len();
        if self.layers > total {
            return Err(stab_core::internal!(
                "reinit.k = {} but the model has {total} layers",
                self.layers
            ));
        }
        let first = total - self.layers;
        Ok(Prepared {
            encoder: reinit_from(encoder, first, ctx.seed),
            details: serde_json::json!({"method": "reinit", "layers": (first..total).collect::<Vec<_>>()}),
        })
    }
}

stab_core::method_params! {
    /// Re-initialisation's parameters.
    pub struct ReinitParams {
        /// number of top layers to re-initialise (0 = FineTune)
        pub k: usize = int(0, 128, 2),
    }
}

impl MethodPlugin for ReinitTopLayers {
    const NAME: &'static str = "reinit";
    const SUMMARY: &'static str = "re-initialise the top k encoder layers and the pooler before fine-tuning (Zhang et al. 2021)";
    type Params = ReinitParams;

    fn from_params(p: ReinitParams) -> Result<Self, Refusal> {
        Ok(ReinitTopLayers { layers: p.k })
    }
}

stab_train::register_method!(ReinitTopLayers);
