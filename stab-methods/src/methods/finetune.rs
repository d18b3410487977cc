//! FineTune (methods-spec §2.1): update every trainable parameter by the task
//! cross-entropy. Every [`Method`] hook keeps its default.

use stab_core::{MethodEntry, MethodParams};

use crate::engine::{Method, implementation};

/// Plain fine-tuning.
pub struct FineTune;

impl Method for FineTune {}

fn build(_: &MethodParams) -> Result<Box<dyn std::any::Any + Send>, String> {
    implementation(FineTune)
}

inventory::submit! {
    MethodEntry {
        name: "finetune",
        summary: "plain fine-tuning: task cross-entropy on every trainable parameter (§2.1)",
        params: &[],
        validate: super::no_extra_checks,
        build,
    }
}
