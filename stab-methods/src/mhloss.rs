//! MHLoss, the multi-head loss (paper Eq. 10; docs/methods.md §2.5): H independent copies of
//! the final linear layer read the same features (one dropout draw); the loss is the mean
//! over heads of the cross-entropy, and the prediction the averaged logits, which equal
//! one linear layer holding the mean weights. The engine's loss and prediction already
//! average over the head's output layers, so the method only sets their number.
//! `replicate = "head"` replicates the dense + tanh layer with them (a recorded variant).

use serde::{Deserialize, Serialize};
use stab_core::Refusal;
use stab_models::HeadShape;

use stab_train::{Capabilities, Method, MethodPlugin, SeedBatching};

/// What the H copies replicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Replicate {
    /// The final linear layer (the paper's MHLoss).
    Linear,
    /// The dense + tanh layer too.
    Head,
}

stab_core::method_params! {
    /// MHLoss's parameters.
    pub struct MultiHeadParams {
        /// number of heads H (§2.5; ablation 1, 5, 50, 100, 200)
        pub heads: usize = int(1, 4096, 50),
        /// replicate the last Linear (default) or the whole jiant head (variant)
        pub replicate: Replicate = choice(&["linear", "head"], "linear"),
    }
}

/// H output layers.
pub struct MultiHeadLoss {
    pub shape: HeadShape,
}

impl Method for MultiHeadLoss {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            head: self.shape,
            seed_batch: SeedBatching::Stacked,
            ..Capabilities::default()
        }
    }
}

impl MethodPlugin for MultiHeadLoss {
    const NAME: &'static str = "mhloss";
    const SUMMARY: &'static str =
        "multi-head loss (§2.5): H final layers, mean CE, averaged logits";
    const COST: f64 = 1.05;
    type Params = MultiHeadParams;

    fn from_params(p: MultiHeadParams) -> Result<Self, Refusal> {
        Ok(MultiHeadLoss {
            shape: HeadShape {
                out_layers: p.heads,
                replicate_dense: p.replicate == Replicate::Head,
            },
        })
    }
}

stab_train::register_method!(MultiHeadLoss);
