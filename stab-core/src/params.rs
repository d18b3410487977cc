//! Typed parameter schemas that plugins declare, and their validation against a recipe
//! table (`[[methods]]` entries). Each method plugin lists its parameters once; parsing,
//! defaults, range checks, `stab list methods` and did-you-mean errors all derive from it.

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
}

/// A parameter's default value.
#[derive(Debug, Clone, Copy)]
pub enum ParamDefault {
    Float(f64),
    Int(i64),
    Str(&'static str),
    Bool(bool),
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
    pub fn default_json(&self) -> serde_json::Value {
        match self.default {
            ParamDefault::Float(v) => serde_json::json!(v),
            ParamDefault::Int(v) => serde_json::json!(v),
            ParamDefault::Str(v) => serde_json::json!(v),
            ParamDefault::Bool(v) => serde_json::json!(v),
        }
    }

    /// The default rendered for humans (`stab list`).
    pub fn default_text(&self) -> String {
        match self.default {
            ParamDefault::Float(v) => format!("{v}"),
            ParamDefault::Int(v) => format!("{v}"),
            ParamDefault::Str(v) => format!("\"{v}\""),
            ParamDefault::Bool(v) => format!("{v}"),
        }
    }

    /// The type rendered for humans.
    pub fn kind_text(&self) -> String {
        match self.kind {
            ParamKind::Float { min, max } => format!("float in [{min}, {max}]"),
            ParamKind::Int { min, max } => format!("integer in [{min}, {max}]"),
            ParamKind::Choice(c) => format!("one of {}", c.join("|")),
            ParamKind::Bool => "true|false".to_string(),
        }
    }

    /// Check one recipe value against this spec.
    pub fn check(&self, value: &toml::Value) -> Result<serde_json::Value, String> {
        match self.kind {
            ParamKind::Float { min, max } => {
                let v = match value {
                    toml::Value::Float(f) => *f,
                    toml::Value::Integer(i) => *i as f64,
                    other => return Err(format!("expected a float, found {}", other.type_str())),
                };
                if !(min..=max).contains(&v) || v.is_nan() {
                    return Err(format!(
                        "{v} is out of range; expected a float in [{min}, {max}]"
                    ));
                }
                Ok(serde_json::json!(v))
            }
            ParamKind::Int { min, max } => {
                let toml::Value::Integer(v) = value else {
                    return Err(format!("expected an integer, found {}", value.type_str()));
                };
                if !(min..=max).contains(v) {
                    return Err(format!(
                        "{v} is out of range; expected an integer in [{min}, {max}]"
                    ));
                }
                Ok(serde_json::json!(v))
            }
            ParamKind::Choice(choices) => {
                let toml::Value::String(s) = value else {
                    return Err(format!(
                        "expected one of {}, found {}",
                        choices.join("|"),
                        value.type_str()
                    ));
                };
                if !choices.contains(&s.as_str()) {
                    return Err(format!(
                        "`{s}` is not one of {}{}",
                        choices.join("|"),
                        did_you_mean(s, choices.iter().copied())
                    ));
                }
                Ok(serde_json::json!(s))
            }
            ParamKind::Bool => match value {
                toml::Value::Boolean(b) => Ok(serde_json::json!(b)),
                other => Err(format!(
                    "expected true or false, found {}",
                    other.type_str()
                )),
            },
        }
    }
}

/// Validate a plugin table (without its `name` key) against `specs` and fill defaults.
/// `owner` names the table in errors, e.g. `methods[2] (mmr)`.
pub fn resolve_params(
    owner: &str,
    specs: &[ParamSpec],
    table: &toml::Table,
) -> Result<MethodParams, InputError> {
    let mut out = MethodParams::new();
    for (key, value) in table {
        let Some(spec) = specs.iter().find(|s| s.name == key) else {
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
}
