//! MMR, the max-margin regulariser (paper Eq. 8–9; methods-spec §2.4):
//! L = CE + α·R, R = 1/(1 + ‖μ₊ − μ₋‖₂) over the features entering the final linear layer
//! of the batch (mean over class pairs for more than two classes).

use stab_core::params::{ParamDefault, ParamKind};
use stab_core::{MethodEntry, ParamSpec};

inventory::submit! {
    MethodEntry {
        name: "mmr",
        summary: "max-margin regulariser (§2.4): CE + α / (1 + ‖class-centroid distance‖)",
        params: &[
            ParamSpec { name: "alpha", kind: ParamKind::Float { min: 0.0, max: 1e6 }, default: ParamDefault::Float(1.0), doc: "regulariser weight α (§2.4; dev grid 0.1, 1, 10)" },
        ],
        validate: super::no_extra_checks,
    }
}
