//! FineTune (methods-spec §2.1): update every parameter by the task cross-entropy.

use stab_core::MethodEntry;

inventory::submit! {
    MethodEntry {
        name: "finetune",
        summary: "plain fine-tuning: task cross-entropy on every trainable parameter (§2.1)",
        params: &[],
        validate: super::no_extra_checks,
    }
}
