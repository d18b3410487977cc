//! FineTune with every dropout off, as the method `test-finetune-no-dropout`: the
//! deterministic baseline several stab-methods tests compare against (included once by
//! `stab-methods/tests/integration/main.rs`; not part of any API).

use stab_methods::engine::{Capabilities, Method, MethodPlugin};

/// FineTune without dropout.
pub struct NoDropout;

impl Method for NoDropout {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            dropout: false,
            ..Capabilities::default()
        }
    }
}

impl MethodPlugin for NoDropout {
    const NAME: &'static str = "test-finetune-no-dropout";
    const SUMMARY: &'static str = "test only: FineTune with every dropout off";
    type Params = stab_core::params::NoParams;
    fn from_params(_: Self::Params) -> Result<Self, stab_core::Refusal> {
        Ok(Self)
    }
}

stab_methods::register_method!(NoDropout);
