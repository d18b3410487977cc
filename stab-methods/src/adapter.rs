//! Bottleneck adapters (Houlsby et al. 2019, "Parameter-Efficient Transfer Learning for
//! NLP"; Pfeiffer et al. 2021, "AdapterFusion"; docs/methods.md §11.3): the encoder is
//! frozen, and a sub-layer output h passes
//!
//! h ↦ h + W_up·f(W_down·h + b_down) + b_up,   W_down `[d, m]`, W_up `[m, d]`,
//!
//! before its residual connection and LayerNorm. `placement = "houlsby"` puts one after the
//! attention output and one after the FFN of every layer (f = swish); `"pfeiffer"` one after
//! the FFN only (f = ReLU). The adapters, every LayerNorm (as Houlsby et al. train them)
//! and the task head train: per adapter 2·d·m + m + d parameters. Each adapter starts as
//! the identity (W_up = 0), so the first forward equals FineTune's.
//!
//! In head tuning the encoder is frozen and adapters add nothing (the run equals FineTune's).

use serde::{Deserialize, Serialize};
use stab_core::Refusal;
use stab_core::derive_seed;
use stab_core::recipe::TrainMode;
use stab_models::{Bottleneck, BottleneckActivation};

use stab_train::{AdaptContext, Method, MethodPlugin, TaskModel};

/// Where the adapters go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// After the attention output and after the FFN.
    Houlsby,
    /// After the FFN only.
    Pfeiffer,
}

stab_core::method_params! {
    /// The adapters' parameters.
    pub struct BottleneckAdapters {
        /// bottleneck size m
        pub size: usize = int(1, 65536, 64),
        /// houlsby: after the attention output and the FFN; pfeiffer: after the FFN only
        pub placement: Placement = choice(&["houlsby", "pfeiffer"], "houlsby"),
    }
}

impl BottleneckAdapters {
    /// Adapters per encoder layer.
    pub fn per_layer(&self) -> usize {
        match self.placement {
            Placement::Houlsby => 2,
            Placement::Pfeiffer => 1,
        }
    }
}

impl Method for BottleneckAdapters {
    fn capabilities(&self) -> stab_train::Capabilities {
        stab_train::Capabilities {
            chooses_trainable: true,
            ..Default::default()
        }
    }

    fn adapt(&self, mut model: TaskModel, ctx: &AdaptContext) -> TaskModel {
        let Some(encoder) = model.encoder.as_mut() else {
            return model;
        };
        if ctx.mode == TrainMode::Head {
            return model;
        }
        let d = ctx.config.hidden_size;
        let f = match self.placement {
            Placement::Houlsby => BottleneckActivation::Swish,
            Placement::Pfeiffer => BottleneckActivation::Relu,
        };
        let new = |i: usize, at: &str| {
            let seed = derive_seed(ctx.seed, &["adapter", &i.to_string(), at]);
            Some(Bottleneck::new(d, self.size, f, seed, ctx.device))
        };
        for (i, layer) in encoder.encoder.layer.iter_mut().enumerate() {
            if self.placement == Placement::Houlsby {
                layer.attention.output.adapter = new(i, "attention");
            }
            layer.output.adapter = new(i, "ffn");
        }
        model
    }

    fn trains(&self, path: &str) -> bool {
        path.starts_with("head.")
            || path.contains(".adapter.")
            // Every LayerNorm of the encoder (ModernBERT's final and pooler norms too).
            || (path.contains("norm.") && !path.starts_with("encoder.mlm."))
    }
}

impl MethodPlugin for BottleneckAdapters {
    const NAME: &'static str = "adapter";
    const SUMMARY: &'static str = "bottleneck adapters (Houlsby et al. 2019): frozen encoder, h + W_up·f(W_down·h) after the attention output and the FFN";
    const COST: f64 = 1.05;
    type Params = Self;

    fn from_params(p: Self) -> Result<Self, Refusal> {
        Ok(p)
    }
}

stab_train::register_method!(BottleneckAdapters);
