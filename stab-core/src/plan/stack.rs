//! Methods stacked in one run, as a typed value from the recipe to the record. A
//! `[[methods]]` table and its `stack = [...]` resolve into a [`Stack`] of
//! [`MethodCall`]s, each validated by its plugin's schema. A run's record keeps the stack's
//! identity in two fields, `method` (the names joined by `+`) and `method_params` (each
//! method's parameters under its name; a lone method's own), so run ids are what they were
//! before stacks existed; [`Stack::from_identity`] reads them back.

use crate::error::InputError;
use crate::params::{MethodParams, resolve_params};
use crate::recipe::Recipe;
use crate::registry;

use super::spec::RunSpec;

/// One method of a run with its validated parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct MethodCall {
    pub name: String,
    pub params: MethodParams,
}

/// The methods a run trains with, in the written order (one for an unstacked method).
#[derive(Debug, Clone, PartialEq)]
pub struct Stack(pub Vec<MethodCall>);

impl Stack {
    /// The methods, in stack order.
    pub fn calls(&self) -> &[MethodCall] {
        &self.0
    }

    /// The methods' names, in stack order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|c| c.name.as_str())
    }

    /// The record's `method` and `method_params`: one method keeps its own name and
    /// parameters (so a run's id is what it was before stacks existed); a stack is the
    /// names joined by `+` in the written order, with each one's parameters under its name.
    pub fn identity(&self) -> (String, MethodParams) {
        if let [one] = self.0.as_slice() {
            return (one.name.clone(), one.params.clone());
        }
        let name = self.names().collect::<Vec<_>>().join("+");
        let params = self
            .0
            .iter()
            .map(|c| {
                let obj: serde_json::Map<String, serde_json::Value> = c
                    .params
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                (c.name.clone(), serde_json::Value::Object(obj))
            })
            .collect();
        (name, params)
    }

    /// The stack a record's `method` and `method_params` name (the inverse of
    /// [`Stack::identity`]).
    pub fn from_identity(method: &str, params: &MethodParams) -> Self {
        if !method.contains('+') {
            return Stack(vec![MethodCall {
                name: method.to_string(),
                params: params.clone(),
            }]);
        }
        Stack(
            method
                .split('+')
                .map(|n| MethodCall {
                    name: n.to_string(),
                    params: params
                        .get(n)
                        .and_then(|v| v.as_object())
                        .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                        .unwrap_or_default(),
                })
                .collect(),
        )
    }
}

impl RunSpec {
    /// The methods of the run, in stack order, each with its parameters.
    pub fn stack(&self) -> Stack {
        Stack::from_identity(&self.method, &self.method_params)
    }
}

/// The `i`-th `[[methods]]` table and the methods it stacks, each resolved, in the
/// written order.
pub(super) fn resolve_stack(
    recipe: &Recipe,
    i: usize,
    table: &toml::Spanned<toml::Table>,
) -> Result<Stack, InputError> {
    let line = recipe.line_of(table.span().start);
    let at = |key: String, message: String| {
        InputError::new(message)
            .file(recipe.file.clone())
            .line(Some(line))
            .key(key)
    };
    let mut params = table.get_ref().clone();
    // The method's own training keys (`train = { lr = 5e-4 }`) are the plan's concern,
    // not the plugin's parameters ([`train_overrides`]).
    params.remove("train");
    let stacked = match params.remove("stack") {
        None => Vec::new(),
        Some(toml::Value::Array(items)) => items,
        Some(other) => {
            return Err(at(
                format!("methods[{i}].stack"),
                format!(
                    "methods[{i}].stack must be a list of method tables, found {}",
                    other.type_str()
                ),
            )
            .hint("e.g. stack = [{ name = \"llrd\", xi = 0.9 }]"));
        }
    };
    let mut stack = vec![resolve_method(
        recipe,
        &format!("methods[{i}]"),
        line,
        params,
    )?];
    for (j, item) in stacked.into_iter().enumerate() {
        let key = format!("methods[{i}].stack[{j}]");
        let toml::Value::Table(t) = item else {
            let message = format!("{key} must be a method table, found {}", item.type_str());
            return Err(at(key, message).hint("e.g. { name = \"llrd\", xi = 0.9 }"));
        };
        if t.contains_key("stack") {
            let message = format!("{key} has its own `stack`; stacks do not nest");
            return Err(at(format!("{key}.stack"), message)
                .hint("list every stacked method in the first table's `stack`"));
        }
        let m = resolve_method(recipe, &key, line, t)?;
        if stack.iter().any(|c: &MethodCall| c.name == m.name) {
            let message = format!("methods[{i}] stacks `{}` twice", m.name);
            return Err(at(key, message).hint(
                "a method appears at most once in a stack; set its parameters in one table",
            ));
        }
        stack.push(m);
    }
    Ok(Stack(stack))
}

/// The `i`-th `[[methods]]` table's own training keys (`train = { lr = 5e-4 }`): they
/// replace the recipe's `[train]` values (and swept ones) for this method's runs, so each
/// method of a comparison can run at its own learning rate. `None` without a `train` key.
pub(super) fn train_overrides(
    recipe: &Recipe,
    i: usize,
    table: &toml::Spanned<toml::Table>,
) -> Result<Option<toml::Table>, InputError> {
    match table.get_ref().get("train") {
        None => Ok(None),
        Some(toml::Value::Table(t)) => Ok(Some(t.clone())),
        Some(other) => Err(InputError::new(format!(
            "methods[{i}].train must be a table of [train] keys, found {}",
            other.type_str()
        ))
        .file(recipe.file.clone())
        .line(Some(recipe.line_of(table.span().start)))
        .key(format!("methods[{i}].train"))
        .hint("e.g. train = { lr = 5e-4 }")),
    }
}

/// One `[[methods]]` table (or stacked table): its registered name and its parameters,
/// validated by the plugin's schema.
fn resolve_method(
    recipe: &Recipe,
    owner_key: &str,
    line: usize,
    mut params: toml::Table,
) -> Result<MethodCall, InputError> {
    let name = match params.remove("name") {
        Some(toml::Value::String(s)) => s,
        _ => {
            return Err(InputError::new(format!("{owner_key} has no `name`"))
                .file(recipe.file.clone())
                .line(Some(line))
                .key(format!("{owner_key}.name"))
                .hint("e.g. name = \"mhloss\""));
        }
    };
    let entry = registry::method(&name).map_err(|e| InputError {
        file: Some(recipe.file.clone()),
        line: Some(line),
        key: Some(format!("{owner_key}.name")),
        ..e
    })?;
    let owner = format!("{owner_key} ({name})");
    let resolved = resolve_params(&owner, entry.params, &params).map_err(|e| {
        let key = e.key.clone().unwrap_or_default();
        let param_line = recipe
            .source
            .lines()
            .enumerate()
            .skip(line)
            .find(|(_, l)| l.trim_start().starts_with(&key) && l.contains('='));
        InputError {
            file: Some(recipe.file.clone()),
            line: Some(param_line.map_or(line, |(n, _)| n + 1)),
            key: Some(format!("{owner_key}.{key}")),
            ..e
        }
    })?;
    (entry.validate)(&resolved).map_err(|m| {
        InputError::new(format!("{owner}: {m}"))
            .file(recipe.file.clone())
            .line(Some(line))
            .key(owner_key.to_string())
    })?;
    Ok(MethodCall {
        name,
        params: resolved,
    })
}

/// Whether the sweep key `key` (`mhloss.heads`) sets a parameter of one of the methods of
/// the run's `method` (a stack is named `a+b`) rather than a section key (`train.lr`): such
/// a key names the method's configuration, not the cell it is compared in.
pub fn is_own_method_key(method: &str, key: &str) -> bool {
    key.split_once('.')
        .is_some_and(|(head, _)| method.split('+').any(|m| m == head))
}
