//! Typed parameter schemas that plugins declare, and their validation against a recipe
//! table (`[[methods]]` entries). A method plugin declares its parameters once, as a
//! struct written with [`method_params!`](crate::method_params): the struct the plugin
//! reads, its schema ([`TypedParams::SPECS`]: names, types, defaults, ranges, docs) and so
//! parsing, defaults, range checks, `stab list methods` and did-you-mean errors all come
//! from that one declaration.

use crate::error::Refusal;
use std::collections::BTreeMap;

use crate::error::InputError;
use crate::suggest::did_you_mean;

/// The type and admissible range of one parameter.
#[derive(Debug, Clone, Copy)]
pub enum ParamKind {
    /// A float in the closed interval `[min, max]`.
    Float { min: f64, max: f64 },
    /// An integer in the closed interval `[min, max]`.
    Int { min: i64, max: i64 },
    /// One of a fixed set of strings.
    Choice(&'static [&'static str]),
    /// A boolean.
    Bool,
    /// A non-empty list of distinct strings, each one of `allowed`.
    Names(&'static [&'static str]),
}

/// A parameter's default value.
#[derive(Debug, Clone, Copy)]
pub enum ParamDefault {
    Float(f64),
    Int(i64),
    Str(&'static str),
    Bool(bool),
    Names(&'static [&'static str]),
}

/// A parameter's type and default, as [`method_params!`](crate::method_params) fields
/// declare them (`xi: f64 = float(0.01, 1.0, 0.95)`).
#[derive(Debug, Clone, Copy)]
pub struct ParamType {
    pub kind: ParamKind,
    pub default: ParamDefault,
}

/// The constructors of [`ParamType`] that parameter declarations use.
pub mod kinds {
    use super::{ParamDefault, ParamKind, ParamType};

    /// A float in `[min, max]`.
    pub const fn float(min: f64, max: f64, default: f64) -> ParamType {
        ParamType {
            kind: ParamKind::Float { min, max },
            default: ParamDefault::Float(default),
        }
    }
    /// An integer in `[min, max]`.
    pub const fn int(min: i64, max: i64, default: i64) -> ParamType {
        ParamType {
            kind: ParamKind::Int { min, max },
            default: ParamDefault::Int(default),
        }
    }
    /// One of `choices` (the field is usually an enum with matching serde names).
    pub const fn choice(choices: &'static [&'static str], default: &'static str) -> ParamType {
        ParamType {
            kind: ParamKind::Choice(choices),
            default: ParamDefault::Str(default),
        }
    }
    /// A boolean.
    pub const fn flag(default: bool) -> ParamType {
        ParamType {
            kind: ParamKind::Bool,
            default: ParamDefault::Bool(default),
        }
    }
    /// A list of distinct strings out of `allowed`.
    pub const fn names(
        allowed: &'static [&'static str],
        default: &'static [&'static str],
    ) -> ParamType {
        ParamType {
            kind: ParamKind::Names(allowed),
            default: ParamDefault::Names(default),
        }
    }
}

/// A plugin's parameters as one typed struct, with the schema derived from its declaration
/// (write it with [`method_params!`](crate::method_params)).
pub trait TypedParams: Sized + serde::de::DeserializeOwned + serde::Serialize {
    /// The schema, one entry per field, in declaration order.
    const SPECS: &'static [ParamSpec];

    /// The typed value of parameters that [`resolve_params`] validated against
    /// [`Self::SPECS`].
    fn from_params(params: &MethodParams) -> Result<Self, Refusal> {
        let map: serde_json::Map<String, serde_json::Value> =
            params.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        serde_json::from_value(serde_json::Value::Object(map))
            .map_err(|e| format!("parameters do not fit the declaration: {e}").into())
    }

    /// Every parameter at its default.
    fn defaults() -> Self {
        let p: MethodParams = Self::SPECS
            .iter()
            .map(|s| (s.name.to_string(), s.default_json()))
            .collect();
        Self::from_params(&p).expect("a declaration's defaults fit its own struct")
    }
}

/// No parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

impl TypedParams for NoParams {
    const SPECS: &'static [ParamSpec] = &[];
}

/// Declare a plugin's parameters: a struct whose fields each carry a doc comment (the
/// one-line doc of `stab list methods` and of error hints) and a [`ParamType`] built with
/// [`kinds`]:
///
/// ```
/// stab_core::method_params! {
///     /// LLRD's parameters.
///     pub struct LlrdParams {
///         /// decay factor ξ per layer (1 = FineTune)
///         pub xi: f64 = float(0.01, 1.0, 0.95),
///     }
/// }
/// use stab_core::params::TypedParams;
/// assert_eq!(LlrdParams::SPECS[0].name, "xi");
/// assert_eq!(LlrdParams::defaults().xi, 0.95);
/// ```
///
/// The struct derives serde's traits through stab-core's own serde (the crate using the
/// macro needs no serde dependency; a choice field's enum does, for its own derive).
#[macro_export]
macro_rules! method_params {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[doc = $doc:literal])+
                $fvis:vis $field:ident : $ty:ty = $param:expr
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, $crate::__serde::Deserialize, $crate::__serde::Serialize)]
        #[serde(crate = "stab_core::__serde", deny_unknown_fields)]
        $vis struct $name {
            $( $(#[doc = $doc])+ $fvis $field: $ty, )*
        }

        impl $crate::params::TypedParams for $name {
            const SPECS: &'static [$crate::ParamSpec] = &[
                $(
                    $crate::ParamSpec::of(
                        stringify!($field),
                        {
                            #[allow(unused_imports)]
                            use $crate::params::kinds::*;
                            $param
                        },
                        concat!($($doc),+),
                    ),
                )*
            ];
        }
    };
}

/// One declared parameter of a plugin.
#[derive(Debug, Clone, Copy)]
pub struct ParamSpec {
    pub name: &'static str,
    pub kind: ParamKind,
    pub default: ParamDefault,
    /// One line for `stab list`, citing the spec section it implements.
    pub doc: &'static str,
}

/// Resolved parameters: every declared parameter present, defaults filled in.
/// Sorted, so its JSON form is canonical (it enters the run id).
pub type MethodParams = BTreeMap<String, serde_json::Value>;

impl ParamSpec {
    /// The spec of parameter `name` (a doc comment's leading spaces are dropped).
    pub const fn of(name: &'static str, ty: ParamType, doc: &'static str) -> Self {
        let mut bytes = doc.as_bytes();
        while let [b' ', rest @ ..] = bytes {
            bytes = rest;
        }
        let doc = match std::str::from_utf8(bytes) {
            Ok(d) => d,
            Err(_) => doc,
        };
        Self {
            name,
            kind: ty.kind,
            default: ty.default,
            doc,
        }
    }

    pub fn default_json(&self) -> serde_json::Value {
        match self.default {
            ParamDefault::Float(v) => serde_json::json!(v),
            ParamDefault::Int(v) => serde_json::json!(v),
            ParamDefault::Str(v) => serde_json::json!(v),
            ParamDefault::Bool(v) => serde_json::json!(v),
            ParamDefault::Names(v) => serde_json::json!(v),
        }
    }

    /// The default rendered for humans (`stab list`).
    pub fn default_text(&self) -> String {
        match self.default {
            ParamDefault::Float(v) => format!("{v}"),
            ParamDefault::Int(v) => format!("{v}"),
            ParamDefault::Str(v) => format!("\"{v}\""),
            ParamDefault::Bool(v) => format!("{v}"),
            ParamDefault::Names(v) => format!("{v:?}"),
        }
    }

    /// The type rendered for humans.
    pub fn kind_text(&self) -> String {
        match self.kind {
            ParamKind::Float { min, max } => format!("float in [{min}, {max}]"),
            ParamKind::Int { min, max } => format!("integer in [{min}, {max}]"),
            ParamKind::Choice(c) => format!("one of {}", c.join("|")),
            ParamKind::Bool => "true|false".to_string(),
            ParamKind::Names(a) => format!("list of distinct names out of {}", a.join("|")),
        }
    }

    /// Check one recipe value against this spec.
    pub fn check(&self, value: &toml::Value) -> Result<serde_json::Value, Refusal> {
        match self.kind {
            ParamKind::Float { min, max } => {
                let v = match value {
                    toml::Value::Float(f) => *f,
                    toml::Value::Integer(i) => *i as f64,
                    other => {
                        return Err(format!("expected a float, found {}", other.type_str()).into());
                    }
                };
                if !(min..=max).contains(&v) || v.is_nan() {
                    return Err(
                        format!("{v} is out of range; expected a float in [{min}, {max}]").into(),
                    );
                }
                Ok(serde_json::json!(v))
            }
            ParamKind::Int { min, max } => {
                let toml::Value::Integer(v) = value else {
                    return Err(format!("expected an integer, found {}", value.type_str()).into());
                };
                if !(min..=max).contains(v) {
                    return Err(format!(
                        "{v} is out of range; expected an integer in [{min}, {max}]"
                    )
                    .into());
                }
                Ok(serde_json::json!(v))
            }
            ParamKind::Choice(choices) => {
                let toml::Value::String(s) = value else {
                    return Err(format!(
                        "expected one of {}, found {}",
                        choices.join("|"),
                        value.type_str()
                    )
                    .into());
                };
                if !choices.contains(&s.as_str()) {
                    return Err(format!(
                        "`{s}` is not one of {}{}",
                        choices.join("|"),
                        did_you_mean(s, choices.iter().copied())
                    )
                    .into());
                }
                Ok(serde_json::json!(s))
            }
            ParamKind::Bool => match value {
                toml::Value::Boolean(b) => Ok(serde_json::json!(b)),
                other => Err(format!("expected true or false, found {}", other.type_str()).into()),
            },
            ParamKind::Names(allowed) => check_names(allowed, value),
        }
    }
}

/// A list of distinct names out of `allowed`, non-empty.
fn check_names(allowed: &[&str], value: &toml::Value) -> Result<serde_json::Value, Refusal> {
    let expected = format!("a list of names out of {}", allowed.join("|"));
    let toml::Value::Array(items) = value else {
        return Err(format!("expected {expected}, found {}", value.type_str()).into());
    };
    if items.is_empty() {
        return Err(format!("the list is empty; expected {expected}").into());
    }
    let mut out: Vec<&str> = Vec::new();
    for item in items {
        let toml::Value::String(s) = item else {
            return Err(format!("expected {expected}, found a {}", item.type_str()).into());
        };
        if !allowed.contains(&s.as_str()) {
            return Err(format!(
                "`{s}` is not one of {}{}",
                allowed.join("|"),
                did_you_mean(s, allowed.iter().copied())
            )
            .into());
        }
        if out.contains(&s.as_str()) {
            return Err(format!("`{s}` is listed twice").into());
        }
        out.push(s);
    }
    Ok(serde_json::json!(out))
}

/// Validate a plugin table (without its `name` key) against `specs` and fill defaults.
/// `owner` names the table in errors, e.g. `methods[2] (mmr)`.
/// The recipe table a common training, model or data key belongs to.
fn section_of(key: &str) -> Option<&'static str> {
    const TRAIN: [&str; 10] = [
        "lr",
        "epochs",
        "batch_size",
        "warmup",
        "weight_decay",
        "seeds",
        "max_steps",
        "grad_clip",
        "mode",
        "patience",
    ];
    if TRAIN.contains(&key) {
        Some("train")
    } else if ["max_len", "path", "pooling"].contains(&key) {
        Some("model")
    } else if ["tasks", "dir", "source"].contains(&key) {
        Some("data")
    } else {
        None
    }
}

pub fn resolve_params(
    owner: &str,
    specs: &[ParamSpec],
    table: &toml::Table,
) -> Result<MethodParams, InputError> {
    let mut out = MethodParams::new();
    for (key, value) in table {
        let Some(spec) = specs.iter().find(|s| s.name == key) else {
            if let Some(section) = section_of(key) {
                return Err(InputError::new(format!(
                    "`{key}` is a [{section}] key, not a parameter of {owner}"
                ))
                .key(key.clone())
                .hint(format!(
                    "set {section}.{key} in [{section}] (it applies to every method of the recipe), or sweep \"{section}.{key}\""
                )));
            }
            let valid: Vec<&str> = specs.iter().map(|s| s.name).collect();
            let listing = if valid.is_empty() {
                "it takes no parameters".to_string()
            } else {
                format!("valid parameters: {}", valid.join(", "))
            };
            return Err(InputError::new(format!(
                "unknown parameter `{key}` for {owner}{}",
                did_you_mean(key, valid.iter().copied())
            ))
            .key(key.clone())
            .hint(listing));
        };
        let v = spec.check(value).map_err(|m| {
            InputError::new(format!("{owner}: {m}"))
                .key(key.clone())
                .hint(spec.doc)
        })?;
        out.insert(key.clone(), v);
    }
    for spec in specs {
        out.entry(spec.name.to_string())
            .or_insert_with(|| spec.default_json());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[ParamSpec] = &[
        ParamSpec {
            name: "alpha",
            kind: ParamKind::Float { min: 0.0, max: 1e6 },
            default: ParamDefault::Float(1.0),
            doc: "weight",
        },
        ParamSpec {
            name: "variant",
            kind: ParamKind::Choice(&["ref", "author"]),
            default: ParamDefault::Str("ref"),
            doc: "variant",
        },
    ];

    fn table(s: &str) -> toml::Table {
        s.parse().unwrap()
    }

    #[test]
    fn defaults_fill_and_values_check() {
        let p = resolve_params("m", SPECS, &table("alpha = 2")).unwrap();
        assert_eq!(p["alpha"], serde_json::json!(2.0));
        assert_eq!(p["variant"], serde_json::json!("ref"));
    }

    #[test]
    fn unknown_parameter_names_nearest() {
        let e = resolve_params("m", SPECS, &table("alpah = 2")).unwrap_err();
        assert!(e.to_string().contains("did you mean `alpha`"), "{e}");
        assert_eq!(e.key.as_deref(), Some("alpah"));
    }

    #[test]
    fn wrong_type_and_range_are_errors() {
        let e = resolve_params("m", SPECS, &table("alpha = \"x\"")).unwrap_err();
        assert!(e.to_string().contains("expected a float"), "{e}");
        let e = resolve_params("m", SPECS, &table("alpha = -1.0")).unwrap_err();
        assert!(e.to_string().contains("out of range"), "{e}");
        let e = resolve_params("m", SPECS, &table("variant = \"autor\"")).unwrap_err();
        assert!(e.to_string().contains("did you mean `author`"), "{e}");
    }

    crate::method_params! {
        /// A declaration of every kind.
        struct Every {
            /// a weight
            alpha: f64 = float(0.0, 10.0, 1.0),
            /// a count,
            /// on two lines
            k: usize = int(0, 5, 2),
            /// a variant
            variant: String = choice(&["ref", "author"], "ref"),
            /// a switch
            on: bool = flag(true),
            /// targets
            targets: Vec<String> = names(&["query", "key", "value"], &["query", "value"]),
        }
    }

    #[test]
    fn a_declaration_gives_the_schema_and_the_typed_defaults() {
        let names: Vec<&str> = Every::SPECS.iter().map(|s| s.name).collect();
        assert_eq!(names, ["alpha", "k", "variant", "on", "targets"]);
        assert_eq!(Every::SPECS[0].doc, "a weight");
        assert_eq!(Every::SPECS[1].doc, "a count, on two lines");
        let d = Every::defaults();
        assert_eq!(
            d,
            Every {
                alpha: 1.0,
                k: 2,
                variant: "ref".into(),
                on: true,
                targets: vec!["query".into(), "value".into()]
            }
        );
        let p = resolve_params("m", Every::SPECS, &table("k = 4\ntargets = [\"key\"]")).unwrap();
        let typed = Every::from_params(&p).unwrap();
        assert_eq!((typed.k, typed.targets), (4, vec!["key".to_string()]));
    }

    #[test]
    fn name_lists_are_checked() {
        let check = |s: &str| {
            resolve_params("m", Every::SPECS, &table(s))
                .unwrap_err()
                .to_string()
        };
        assert!(check("targets = []").contains("empty"));
        assert!(check("targets = [\"qeury\"]").contains("did you mean `query`"));
        assert!(check("targets = [\"key\", \"key\"]").contains("twice"));
        assert!(check("targets = \"key\"").contains("expected a list"));
    }
}
