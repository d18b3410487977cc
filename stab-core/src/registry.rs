//! Plugin registries, filled with `inventory::submit!` from any linked crate.
//!
//! Binaries and test binaries outside the submitting crate must reference it
//! (`use stab_methods as _;`), or the linker drops its registrations (docs/burn.md §8.2).
//! Lookups fail with an [`InputError`] that names the nearest valid name.

use crate::error::InputError;
use crate::error::Refusal;
use crate::params::{MethodParams, ParamSpec};
use crate::study::SyntheticStudy;
use crate::suggest::did_you_mean;

/// The burn-free half of a fine-tuning method plugin (FineTune, MixOut, LNSR, MMR, MHLoss,
/// SURT, LoRA, …, or a user's): what recipe validation, planning and `stab list` need. The
/// implementation half is registered by the same declaration in `stab_methods`
/// (`stab_methods::register_method!`), which fills this entry from the plugin's types.
pub struct MethodEntry {
    /// The name `[[methods]] name = ...` selects (no `+`: stacks join names with it).
    pub name: &'static str,
    /// One line for `stab list methods`.
    pub summary: &'static str,
    /// The parameters its `[[methods]]` table accepts.
    pub params: &'static [ParamSpec],
    /// Cross-parameter checks beyond each parameter's own range (the plugin builds itself
    /// from the parameters; an `Err` is the reason it cannot).
    pub validate: fn(&MethodParams) -> Result<(), Refusal>,
    /// Compute of an update relative to FineTune's (1.0), for balancing shards: a second
    /// forward pass is about 1.4, a masked-LM phase before training 1.3.
    pub cost: f64,
}
inventory::collect!(MethodEntry);

/// A GLUE/SuperGLUE task definition.
pub struct TaskEntry {
    pub name: &'static str,
    pub summary: &'static str,
    /// The jiant primary metric (docs/methods.md §3.2).
    pub metric: &'static str,
    /// Rows of the official train file, for cost estimates.
    pub train_rows: u64,
}
inventory::collect!(TaskEntry);

/// A synthetic factor study (docs/methods.md §7).
pub struct StudyEntry {
    pub factor: &'static str,
    pub summary: &'static str,
    pub build: fn() -> Box<dyn SyntheticStudy>,
}
inventory::collect!(StudyEntry);

/// All registered methods, sorted by name.
pub fn methods() -> Vec<&'static MethodEntry> {
    let mut v: Vec<_> = inventory::iter::<MethodEntry>.into_iter().collect();
    v.sort_by_key(|e| e.name);
    v
}

/// All registered tasks, sorted by name.
pub fn tasks() -> Vec<&'static TaskEntry> {
    let mut v: Vec<_> = inventory::iter::<TaskEntry>.into_iter().collect();
    v.sort_by_key(|e| e.name);
    v
}

/// All registered synthetic studies, sorted by factor.
pub fn studies() -> Vec<&'static StudyEntry> {
    let mut v: Vec<_> = inventory::iter::<StudyEntry>.into_iter().collect();
    v.sort_by_key(|e| e.factor);
    v
}

pub(crate) fn unknown(kind: &str, name: &str, names: &[&str]) -> InputError {
    let known = if names.is_empty() {
        format!("no {kind}s are registered in this build")
    } else {
        format!("known {kind}s: {}", names.join(", "))
    };
    InputError::new(format!(
        "unknown {kind} `{name}`{}",
        did_you_mean(name, names.iter().copied())
    ))
    .hint(format!("{known} (`stab list` shows them all)"))
}

/// Look up a method by name.
pub fn method(name: &str) -> Result<&'static MethodEntry, InputError> {
    let all = methods();
    all.iter().find(|e| e.name == name).copied().ok_or_else(|| {
        let names: Vec<&str> = all.iter().map(|e| e.name).collect();
        unknown("method", name, &names)
    })
}

/// Look up a task by name.
pub fn task(name: &str) -> Result<&'static TaskEntry, InputError> {
    let all = tasks();
    all.iter().find(|e| e.name == name).copied().ok_or_else(|| {
        let names: Vec<&str> = all.iter().map(|e| e.name).collect();
        unknown("task", name, &names)
    })
}

/// Look up a synthetic study by factor name and build it.
pub fn study(factor: &str) -> Result<Box<dyn SyntheticStudy>, InputError> {
    let all = studies();
    all.iter()
        .find(|e| e.factor == factor)
        .map(|e| (e.build)())
        .ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|e| e.factor).collect();
            unknown("factor", factor, &names)
        })
}

/// Names registered twice, per registry (an empty result means the registries are sound).
pub fn duplicate_names() -> Vec<String> {
    fn dups(kind: &str, mut names: Vec<&str>) -> Vec<String> {
        names.sort_unstable();
        names
            .windows(2)
            .filter(|w| w[0] == w[1])
            .map(|w| format!("{kind} `{}`", w[0]))
            .collect()
    }
    let mut out = dups("method", methods().iter().map(|e| e.name).collect());
    out.extend(
        methods()
            .iter()
            .filter(|e| e.name.contains('+') || e.name.is_empty())
            .map(|e| {
                format!(
                    "method `{}` (a name may not be empty or contain `+`)",
                    e.name
                )
            }),
    );
    out.extend(dups("task", tasks().iter().map(|e| e.name).collect()));
    out.extend(dups("factor", studies().iter().map(|e| e.factor).collect()));
    out
}
