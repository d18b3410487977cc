//! MHLoss, the multi-head loss (paper Eq. 10; methods-spec §2.5): H independent copies of
//! the final linear layer on the same features, loss = mean over heads of CE, prediction =
//! the averaged logits (one linear layer with the mean weights).

use stab_core::params::{ParamDefault, ParamKind};
use stab_core::{MethodEntry, ParamSpec};

inventory::submit! {
    MethodEntry {
        name: "mhloss",
        summary: "multi-head loss (§2.5): H final layers, mean CE, averaged logits",
        params: &[
            ParamSpec { name: "heads", kind: ParamKind::Int { min: 1, max: 4096 }, default: ParamDefault::Int(50), doc: "number of heads H (§2.5; ablation 1, 5, 50, 100, 200)" },
            ParamSpec { name: "replicate", kind: ParamKind::Choice(&["linear", "head"]), default: ParamDefault::Str("linear"), doc: "replicate the last Linear (default) or the whole jiant head (variant)" },
        ],
        validate: super::no_extra_checks,
    }
}
