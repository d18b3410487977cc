//! MixOut (Lee et al. 2019; methods-spec §2.2). `ref`: W_eff = U + M⊙(W − U)/(1 − p) with
//! one Bernoulli(1 − p) mask value per input column of every Linear, dropout off.
//! `author`: plain training, and at every evaluation each encoder tensor is mixed with its
//! start value element-wise, (1 − M)⊙W + M⊙W0, M ~ Bernoulli(p).

use stab_core::params::{ParamDefault, ParamKind};
use stab_core::{MethodEntry, MethodParams, ParamSpec};

fn validate(p: &MethodParams) -> Result<(), String> {
    let prob = p["p"].as_f64().unwrap_or(0.0);
    if p["variant"] == "ref" && prob >= 1.0 {
        return Err(
            "p = 1 makes every weight its start value; use p < 1 with variant = \"ref\"".into(),
        );
    }
    Ok(())
}

inventory::submit! {
    MethodEntry {
        name: "mixout",
        summary: "mix weights with their start values (§2.2); variant ref (Lee et al.) or author (eval-time mixing)",
        params: &[
            ParamSpec { name: "p", kind: ParamKind::Float { min: 0.0, max: 1.0 }, default: ParamDefault::Float(0.9), doc: "mixing probability p (§2.2; the author variant is usually run with 0.1)" },
            ParamSpec { name: "variant", kind: ParamKind::Choice(&["ref", "author"]), default: ParamDefault::Str("ref"), doc: "ref = published MixOut, author = the fork's eval-time mixing (§2.2.2)" },
        ],
        validate,
        build: |_| Err("its hooks (training_model, eval_model) are in place; the MixOut implementation lands with the next engine issue".into()),
    }
}
