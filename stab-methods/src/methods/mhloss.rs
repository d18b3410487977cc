//! MHLoss, the multi-head loss (paper Eq. 10; methods-spec §2.5): H independent copies of
//! the final linear layer read the same features (one dropout draw); the loss is the mean
//! over heads of the cross-entropy, and the prediction the averaged logits, which equal
//! one linear layer holding the mean weights. The engine's loss and prediction already
//! average over the head's output layers, so the method only sets their number.
//! `replicate = "head"` replicates the dense + tanh layer with them (a recorded variant).

use stab_core::params::{ParamDefault, ParamKind};
use stab_core::{MethodEntry, MethodParams, ParamSpec};
use stab_models::HeadShape;

use crate::engine::{Method, implementation};

/// H output layers.
pub struct MultiHeadLoss {
    pub shape: HeadShape,
}

impl Method for MultiHeadLoss {
    fn head_shape(&self) -> HeadShape {
        self.shape
    }
}

fn build(p: &MethodParams) -> Result<Box<dyn std::any::Any + Send>, String> {
    let heads = p["heads"].as_u64().ok_or("heads must be an integer")? as usize;
    let replicate_dense = p["replicate"] == "head";
    implementation(MultiHeadLoss {
        shape: HeadShape {
            out_layers: heads,
            replicate_dense,
        },
    })
}

inventory::submit! {
    MethodEntry {
        name: "mhloss",
        summary: "multi-head loss (§2.5): H final layers, mean CE, averaged logits",
        params: &[
            ParamSpec { name: "heads", kind: ParamKind::Int { min: 1, max: 4096 }, default: ParamDefault::Int(50), doc: "number of heads H (§2.5; ablation 1, 5, 50, 100, 200)" },
            ParamSpec { name: "replicate", kind: ParamKind::Choice(&["linear", "head"]), default: ParamDefault::Str("linear"), doc: "replicate the last Linear (default) or the whole jiant head (variant)" },
        ],
        validate: super::no_extra_checks,
        build,
    }
}
