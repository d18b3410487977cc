//! Method plugins: the one declaration a plugin makes ([`MethodPlugin`] +
//! [`register_method!`](crate::register_method)) and the registry of implementations
//! that builds a run's methods from its record fields (docs/plugins.md).
//!
//! A plugin is a type with typed parameters (a struct written with
//! [`stab_core::method_params!`]) that implements [`Method`]. `register_method!(MyMethod)`
//! submits both halves of its registration from that one type: the burn-free
//! [`MethodEntry`](stab_core::MethodEntry) that recipe validation, planning, cost estimates
//! and `stab list methods` read, and the [`MethodBuilder`] the engine builds it with.

use stab_core::Refusal;
use stab_core::params::TypedParams;
use stab_core::{InputError, MethodParams};

use crate::Method;

/// A method plugin: its name, summary, cost and typed parameters.
pub trait MethodPlugin: Method + Sized + 'static {
    /// The `[[methods]] name = ...` (no `+`).
    const NAME: &'static str;
    /// One line for `stab list methods` (the formula and the paper).
    const SUMMARY: &'static str;
    /// Compute of an update relative to FineTune's, for balancing shards.
    const COST: f64 = 1.0;
    /// The parameters, declared with [`stab_core::method_params!`].
    type Params: TypedParams;

    /// The method from its parameters, or why these parameters cannot run (a
    /// cross-parameter constraint; each parameter's own range is checked already).
    fn from_params(params: Self::Params) -> Result<Self, Refusal>;
}

/// How the engine builds a registered method from a run's parameters.
pub struct MethodBuilder {
    pub name: &'static str,
    pub build: fn(&MethodParams) -> Result<Box<dyn Method>, Refusal>,
}
inventory::collect!(MethodBuilder);

/// [`MethodBuilder::build`] of a plugin.
pub fn build_plugin<P: MethodPlugin>(params: &MethodParams) -> Result<Box<dyn Method>, Refusal> {
    let typed = P::Params::from_params(params)?;
    Ok(Box::new(P::from_params(typed)?))
}

/// [`MethodEntry::validate`](stab_core::MethodEntry::validate) of a plugin: it builds.
pub fn validate_plugin<P: MethodPlugin>(params: &MethodParams) -> Result<(), Refusal> {
    P::from_params(P::Params::from_params(params)?).map(|_| ())
}

/// Register a method plugin: `stab_methods::register_method!(MyMethod);` next to its
/// `impl MethodPlugin`. The binary must link the plugin's crate (`use my_plugin as _;`).
#[macro_export]
macro_rules! register_method {
    ($plugin:ty) => {
        $crate::__private::inventory::submit! {
            $crate::__private::MethodEntry {
                name: <$plugin as $crate::MethodPlugin>::NAME,
                summary: <$plugin as $crate::MethodPlugin>::SUMMARY,
                params: <<$plugin as $crate::MethodPlugin>::Params
                    as $crate::__private::TypedParams>::SPECS,
                validate: $crate::plugin::validate_plugin::<$plugin>,
                cost: <$plugin as $crate::MethodPlugin>::COST,
            }
        }
        $crate::__private::inventory::submit! {
            $crate::MethodBuilder {
                name: <$plugin as $crate::MethodPlugin>::NAME,
                build: $crate::plugin::build_plugin::<$plugin>,
            }
        }
    };
}

/// Build the registered method `name` from validated parameters.
pub fn build(name: &str, params: &MethodParams) -> Result<Box<dyn Method>, InputError> {
    stab_core::registry::method(name)?;
    let builder = inventory::iter::<MethodBuilder>
        .into_iter()
        .find(|b| b.name == name)
        .ok_or_else(|| {
            InputError::new(format!(
                "method `{name}` has a schema but no implementation in this build"
            ))
            .key("methods")
            .hint("register a plugin with stab_methods::register_method!, which submits both")
        })?;
    (builder.build)(params).map_err(|why| {
        InputError::new(format!("method `{name}` cannot run: {why}"))
            .key("methods")
            .hint("`stab list methods` shows what each method takes")
    })
}

/// Methods whose registration cannot build an implementation from its default parameters,
/// or from any of its choices or allowed names, with the reason. Empty when every registration is sound.
pub fn unimplemented_methods() -> Vec<String> {
    use stab_core::params::ParamKind;
    let mut out = Vec::new();
    for entry in stab_core::registry::methods() {
        let defaults: MethodParams = entry
            .params
            .iter()
            .map(|p| (p.name.to_string(), p.default_json()))
            .collect();
        let mut variants = vec![defaults.clone()];
        for p in entry.params {
            let values: Vec<serde_json::Value> = match p.kind {
                ParamKind::Choice(choices) => {
                    choices.iter().map(|c| serde_json::json!(c)).collect()
                }
                ParamKind::Names(allowed) => {
                    allowed.iter().map(|c| serde_json::json!([c])).collect()
                }
                _ => Vec::new(),
            };
            for value in values {
                let mut v = defaults.clone();
                v.insert(p.name.to_string(), value);
                variants.push(v);
            }
        }
        for params in variants {
            // A choice may be refused by a cross-parameter check (MixOut p = 1); only a
            // declaration that does not fit its own struct is a defect here.
            if let Err(e) = build(entry.name, &params)
                && (params == defaults || e.message.contains("do not fit"))
            {
                out.push(format!("`{}` with {params:?}: {e}", entry.name));
            }
        }
    }
    out
}
