//! Fine-tuning method plugins, one file each. Each registers one `MethodEntry` with its
//! name, parameter schema (methods-spec §2) and `build` function; recipe validation,
//! `stab list methods` and the engine all read that one registration.

pub mod finetune;
pub mod llrd;
pub mod lnsr;
pub mod mhloss;
pub mod mixout;
pub mod mmr;
pub mod reinit;
pub mod surt;

/// No cross-parameter constraints.
pub(crate) fn no_extra_checks(_: &stab_core::MethodParams) -> Result<(), String> {
    Ok(())
}
