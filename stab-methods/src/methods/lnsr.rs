//! LNSR (Hua et al. 2021; methods-spec §2.3). `author`: Gaussian noise N(0, σ²) on the
//! word-embedding table, a stop-gradient noisy forward, loss = CE + λ·mean (H_c − H_n)² over
//! the final hidden states. `original`: noise at the embedding output, penalty on every
//! layer above it.

use stab_core::params::{ParamDefault, ParamKind};
use stab_core::{MethodEntry, ParamSpec};

inventory::submit! {
    MethodEntry {
        name: "lnsr",
        summary: "layer-wise noise stability regularisation (§2.3): CE + λ·‖H(x) − H(x + noise)‖²",
        params: &[
            ParamSpec { name: "lambda", kind: ParamKind::Float { min: 0.0, max: 1e6 }, default: ParamDefault::Float(1.0), doc: "regulariser weight λ (§2.3; dev grid 0.1, 1, 10)" },
            ParamSpec { name: "sigma", kind: ParamKind::Float { min: 0.0, max: 10.0 }, default: ParamDefault::Float(0.01), doc: "noise standard deviation σ (§2.3)" },
            ParamSpec { name: "variant", kind: ParamKind::Choice(&["author", "original"]), default: ParamDefault::Str("author"), doc: "author = the fork's embedding-table noise (§2.3.1), original = Hua et al. (§2.3.2)" },
        ],
        validate: super::no_extra_checks,
        build: |_| Err("its hook (loss_terms with a noisy forward) is in place; the LNSR implementation lands with the next engine issue".into()),
    }
}
