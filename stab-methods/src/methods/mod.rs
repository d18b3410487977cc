//! Fine-tuning method plugins, one file each. Each registers its name and parameter
//! schema (methods-spec §2), which is what recipe validation, `stab plan` and
//! `stab list methods` use. The training engine that executes them comes with the
//! encoder and task-data work; until then `stab run` refuses fine-tuning recipes
//! with a clear message instead of pretending to train.

mod finetune;
mod lnsr;
mod mhloss;
mod mixout;
mod mmr;
mod surt;

/// No cross-parameter constraints.
pub(crate) fn no_extra_checks(_: &stab_core::MethodParams) -> Result<(), String> {
    Ok(())
}
