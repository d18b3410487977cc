//! `--set key=value` on `stab run` and `stab plan`: recipe values given on the command
//! line (`--set model.path=models/minilm --set data.dir=/data/glue --set train.lr=3e-5`).
//!
//! Each override sets one dotted key of the recipe's TOML; the value is read as a TOML
//! value (`3e-5`, `true`, `["rte", "cb"]`) and otherwise as a string. The result is
//! validated exactly like a recipe file, and an error caused by an override names the
//! `--set` that caused it.

use crate::error::InputError;
use crate::recipe::Recipe;

/// One `--set key=value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    pub key: String,
    pub raw: String,
    pub value: toml::Value,
}

impl std::str::FromStr for Override {
    type Err = InputError;

    fn from_str(s: &str) -> Result<Self, InputError> {
        let bad = |why: &str| {
            InputError::new(format!("--set {s}: {why}"))
                .key("--set")
                .hint("use --set KEY=VALUE with a dotted recipe key, e.g. --set model.path=models/minilm or --set train.lr=3e-5")
        };
        let (key, raw) = s.split_once('=').ok_or_else(|| bad("expected KEY=VALUE"))?;
        let key = key.trim();
        if key.is_empty() || key.split('.').any(|c| c.trim().is_empty()) {
            return Err(bad("the key is empty or has an empty component"));
        }
        let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.to_string()));
        Ok(Self {
            key: key.to_string(),
            raw: raw.to_string(),
            value,
        })
    }
}

impl Override {
    fn label(&self) -> String {
        format!("--set {}={}", self.key, self.raw)
    }

    /// Whether an error about `key` is about this override.
    fn covers(&self, key: &str) -> bool {
        key == self.key
            || key.starts_with(&format!("{}.", self.key))
            || self.key.ends_with(&format!(".{key}"))
            // METHOD.PARAM, resolved to methods[i].PARAM.
            || self.key.split_once('.').is_some_and(|(_, param)| {
                key.starts_with("methods[") && key.ends_with(&format!("].{param}"))
            })
    }
}

/// Point an error at the `--set` that caused it, when one did.
pub fn locate(err: InputError, sets: &[Override]) -> InputError {
    match err
        .key
        .as_deref()
        .and_then(|k| sets.iter().find(|o| o.covers(k)))
    {
        Some(o) => InputError {
            file: Some(o.label()),
            line: None,
            ..err
        },
        None => err,
    }
}

/// `methods[i]` → i.
fn method_index(part: &str) -> Option<usize> {
    part.strip_prefix("methods[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The key an override sets: `<method>.<param>` (a method of the recipe's [[methods]]
/// tables, not a table of the recipe) is that table's parameter, `methods[i].<param>`;
/// any other key as written.
fn method_key(table: &toml::Table, o: &Override) -> Result<String, InputError> {
    let Some((head, rest)) = o.key.split_once('.') else {
        return Ok(o.key.clone());
    };
    if table.contains_key(head) || TABLES.contains(&head) || method_index(head).is_some() {
        return Ok(o.key.clone());
    }
    let methods = table.get("methods").and_then(|m| m.as_array());
    let named: Vec<usize> = methods
        .into_iter()
        .flatten()
        .enumerate()
        .filter(|(_, t)| t.get("name").and_then(|n| n.as_str()) == Some(head))
        .map(|(i, _)| i)
        .collect();
    match named[..] {
        [i] => Ok(format!("methods[{i}].{rest}")),
        [] => {
            let names: Vec<&str> = methods
                .into_iter()
                .flatten()
                .filter_map(|t| t.get("name").and_then(|n| n.as_str()))
                .collect();
            let mut options: Vec<&str> = TABLES.to_vec();
            options.extend(&names);
            Err(InputError::new(format!(
                "{}: `{head}` is neither a table of the recipe nor one of its [[methods]]{}",
                o.label(),
                crate::suggest::did_you_mean(head, options.iter().copied())
            ))
            .key("--set")
            .hint(format!(
                "--set reaches model.KEY, data.KEY, train.KEY, sweep.KEY, and a method's parameter as METHOD.PARAM or methods[i].PARAM (this recipe's methods: {})",
                names.join(", ")
            )))
        }
        _ => Err(InputError::new(format!(
            "{}: {} [[methods]] tables are named `{head}`",
            o.label(),
            named.len()
        ))
        .key("--set")
        .hint(format!(
            "name the table by its place: --set methods[{}].{rest}={}",
            named[0], o.raw
        ))),
    }
}

/// The tables a recipe may hold.
const TABLES: [&str; 6] = ["model", "data", "train", "sweep", "synthetic", "methods"];

/// The recipe at `file` (source `source`) with `sets` applied and validated.
pub fn apply(source: &str, file: &str, sets: &[Override]) -> Result<Recipe, InputError> {
    if sets.is_empty() {
        return Recipe::parse(source, file);
    }
    // A problem the overrides do not touch is reported at its line in the file itself.
    if let Err(e) = Recipe::parse(source, file)
        && !e
            .key
            .as_deref()
            .is_some_and(|k| sets.iter().any(|o| o.covers(k)))
        && !e.message.contains("needs a [")
    {
        return Err(e);
    }
    let mut table: toml::Table =
        toml::from_str(source).map_err(|_| Recipe::parse(source, file).unwrap_err())?;
    for o in sets {
        let key = method_key(&table, o)?;
        let parts: Vec<&str> = key.split('.').map(str::trim).collect();
        let (last, path) = parts.split_last().expect("non-empty key");
        if let Some(i) = path.first().and_then(|p| method_index(p)) {
            let methods = table.get_mut("methods").and_then(|m| m.as_array_mut());
            let Some(entry) = methods
                .and_then(|m| m.get_mut(i))
                .and_then(|t| t.as_table_mut())
            else {
                return Err(InputError::new(format!(
                    "{}: the recipe has no [[methods]] table {i} (counting from 0)",
                    o.label()
                ))
                .key("--set")
                .hint("methods[0] is the first [[methods]] table of the recipe"));
            };
            if path.len() != 1 {
                return Err(InputError::new(format!(
                    "{}: a method's parameters are one level deep (methods[{i}].PARAM)",
                    o.label()
                ))
                .key("--set"));
            }
            entry.insert(last.to_string(), o.value.clone());
            continue;
        }
        let mut at = &mut table;
        for (i, part) in path.iter().enumerate() {
            let entry = at
                .entry(part.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            at = match entry {
                toml::Value::Table(t) => t,
                other => {
                    return Err(InputError::new(format!(
                        "{}: `{}` is {}, not a table, so it has no key `{}`",
                        o.label(),
                        parts[..=i].join("."),
                        describe(other),
                        parts[i + 1]
                    ))
                    .key("--set")
                    .hint("--set reaches keys of tables such as model, data, train and sweep; [[methods]] entries are edited in the recipe"));
                }
            };
        }
        at.insert(last.to_string(), o.value.clone());
    }
    let text = toml::to_string(&table)
        .map_err(|e| InputError::new(format!("cannot apply --set: {e}")).key("--set"))?;
    let labels: Vec<String> = sets.iter().map(Override::label).collect();
    let generated = format!("{file} with {}", labels.join(" "));
    Recipe::parse(&text, &generated).map_err(|e| relocate(value_key(e, sets), sets, source, file))
}

/// An error about a value that names no key (serde's "unknown value `lora`") gets the
/// key of the `--set` that gave that value, and a method named as a value is pointed to
/// `[[methods]]`.
fn value_key(mut e: InputError, sets: &[Override]) -> InputError {
    let Some(value) = e
        .message
        .strip_prefix("unknown value `")
        .and_then(|r| r.split('`').next())
    else {
        return e;
    };
    if e.key.is_none()
        && let Some(o) = sets.iter().find(|o| o.value.as_str() == Some(value))
    {
        e.key = Some(o.key.clone());
    }
    if crate::registry::methods().iter().any(|m| m.name == value) {
        let method =
            format!("`{value}` is a method: add a [[methods]] table with name = \"{value}\"");
        e.hint = Some(match e.hint.take() {
            Some(hint) => format!("{hint}; {method}"),
            None => method,
        });
    }
    e
}

/// Place an error found in a recipe with `sets` applied: at the `--set` that caused it,
/// else at the key's line in the recipe file itself (`source`, named `file`) — never at a
/// line of the generated document, whose lines mean nothing to the user.
pub fn relocate(err: InputError, sets: &[Override], source: &str, file: &str) -> InputError {
    if sets.is_empty() {
        return err;
    }
    if err
        .key
        .as_deref()
        .is_some_and(|k| sets.iter().any(|o| o.covers(k)))
    {
        return locate(err, sets);
    }
    let labels: Vec<String> = sets.iter().map(Override::label).collect();
    let line = err.key.as_deref().and_then(|k| line_of_key(source, k));
    InputError {
        file: Some(format!("{file} with {}", labels.join(" "))),
        line: None,
        ..err
    }
    .with_recipe_line(file, line)
}

impl InputError {
    fn with_recipe_line(self, file: &str, line: Option<usize>) -> Self {
        match line {
            Some(l) => InputError {
                file: Some(file.to_string()),
                line: Some(l),
                ..self
            },
            None => self,
        }
    }
}

/// The 1-based line of the recipe `source` that sets the dotted `key`
/// (`train.lr` → the `lr = …` line under `[train]`), if it is written there.
pub fn line_of_key(source: &str, key: &str) -> Option<usize> {
    let (table, name) = match key.rsplit_once('.') {
        Some((t, n)) => (t, n),
        None => ("", key),
    };
    let mut current = String::new();
    for (i, raw) in source.lines().enumerate() {
        let line = raw.trim();
        if let Some(h) = line.strip_prefix('[') {
            current = h
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            if current == key {
                return Some(i + 1);
            }
            continue;
        }
        if let Some((k, _)) = line.split_once('=') {
            let k = k.trim().trim_matches('"');
            let full = if current.is_empty() {
                k.to_string()
            } else {
                format!("{current}.{k}")
            };
            if (current == table && k == name) || full == key {
                return Some(i + 1);
            }
        }
    }
    None
}

fn describe(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::Array(_) => "an array",
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date",
        toml::Value::Table(_) => "a table",
    }
}

impl Recipe {
    /// Read a recipe file and apply `--set` overrides.
    pub fn from_file_with(path: &std::path::Path, sets: &[Override]) -> Result<Self, InputError> {
        if sets.is_empty() {
            return Self::from_file(path);
        }
        let file = path.display().to_string();
        let source = std::fs::read_to_string(path).map_err(|e| {
            InputError::new(format!("cannot read the recipe: {e}"))
                .file(file.clone())
                .hint("pass the path of a TOML recipe, e.g. recipes/quickstart.toml")
        })?;
        apply(&source, &file, sets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECIPE: &str = "name = \"r\"\n[model]\npath = \"m\"\n[data]\ndir = \"d\"\ntasks = [\"cb\"]\n[train]\nlr = 2e-5\n[[methods]]\nname = \"finetune\"\n";

    fn sets(s: &[&str]) -> Vec<Override> {
        s.iter().map(|x| x.parse().unwrap()).collect()
    }

    #[test]
    fn values_are_toml_or_strings_and_land_on_their_keys() {
        let r = apply(
            RECIPE,
            "r.toml",
            &sets(&[
                "model.path=models/minilm",
                "train.lr=3e-5",
                "data.tasks=[\"rte\", \"cb\"]",
                "train.seeds=3",
            ]),
        )
        .unwrap();
        let text = &r.source;
        assert!(text.contains("models/minilm"), "{text}");
        assert!(text.contains("3e-5") || text.contains("0.00003"), "{text}");
        assert!(text.contains("rte"), "{text}");
        assert!(r.file.contains("--set model.path=models/minilm"));
    }

    #[test]
    fn a_bad_override_is_the_same_error_naming_the_set() {
        let e = apply(RECIPE, "r.toml", &sets(&["train.lrr=1"])).unwrap_err();
        assert!(e.to_string().contains("did you mean `lr`"), "{e}");
        assert_eq!(e.file.as_deref(), Some("--set train.lrr=1"));
        let e = apply(RECIPE, "r.toml", &sets(&["train.mode=\"headd\""])).unwrap_err();
        assert!(e.to_string().contains("head"), "{e}");
        let e = apply(RECIPE, "r.toml", &sets(&["data.tasks.x=1"])).unwrap_err();
        assert!(e.to_string().contains("is an array"), "{e}");
        assert!("noequals".parse::<Override>().is_err());
        assert!("a..b=1".parse::<Override>().is_err());
        // An error the overrides do not touch keeps its line in the file.
        let broken = RECIPE.replace("lr = 2e-5", "lr = 2e-5\nepochz = 3");
        let e = apply(&broken, "r.toml", &sets(&["model.path=x"])).unwrap_err();
        assert_eq!(
            (e.file.as_deref(), e.line),
            (Some("r.toml"), Some(9)),
            "{e}"
        );
    }

    #[test]
    fn an_error_no_override_caused_alone_points_at_the_recipe_line() {
        // The recipe's own factor is what fails (no study is registered in this crate's
        // tests), found in the plan after an unrelated override was applied: name the
        // recipe's line, not one of the generated document.
        let recipe =
            "name = \"s\"\nkind = \"synthetic\"\n\n[synthetic]\nfactor = \"margin\"\nsteps = 5\n";
        let set = sets(&["synthetic.points=30"]);
        let with = apply(recipe, "s.toml", &set).unwrap();
        let raw = crate::Plan::from_recipe(&with).unwrap_err();
        assert!(raw.file.as_deref().unwrap().contains("with --set"), "{raw}");
        let e = relocate(raw, &set, recipe, "s.toml");
        assert_eq!(
            (e.file.as_deref(), e.line),
            (Some("s.toml"), Some(5)),
            "{e}"
        );
        assert_eq!(line_of_key(RECIPE, "train.lr"), Some(8));
        assert_eq!(line_of_key(RECIPE, "name"), Some(1));
        assert_eq!(line_of_key(RECIPE, "train.nothing"), None);
    }
}
