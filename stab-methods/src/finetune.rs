//! FineTune (docs/methods.md §2.1): update every trainable parameter by the task
//! cross-entropy. Every [`Method`] hook keeps its default.

use stab_core::Refusal;
use stab_core::params::NoParams;

use stab_train::{Capabilities, Method, MethodPlugin, SeedBatching};

/// Plain fine-tuning.
pub struct FineTune;

impl Method for FineTune {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            seed_batch: SeedBatching::Stacked,
            ..Capabilities::default()
        }
    }
}

impl MethodPlugin for FineTune {
    const NAME: &'static str = "finetune";
    const SUMMARY: &'static str =
        "plain fine-tuning: task cross-entropy on every trainable parameter (§2.1)";
    type Params = NoParams;

    fn from_params(_: NoParams) -> Result<Self, Refusal> {
        Ok(FineTune)
    }
}

stab_train::register_method!(FineTune);
