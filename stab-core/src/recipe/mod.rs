//! The TOML recipe (docs/design.md §4): parsed with serde, every unknown key an error that
//! names the nearest valid key, every error located at file:line.

pub mod custom_task;
mod sections;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::error::InputError;
use crate::suggest::did_you_mean;
use crate::synthetic::SyntheticTable;

pub use custom_task::CustomTaskSpec;
pub use sections::*;

/// What a recipe runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecipeKind {
    /// Fine-tuning of a pre-trained encoder on real tasks.
    #[default]
    Finetune,
    /// The synthetic linear-head studies of docs/methods.md §7.
    Synthetic,
}

/// A parsed recipe, with its source kept for locating later (semantic) errors.
#[derive(Debug, Clone)]
pub struct Recipe {
    pub body: RecipeBody,
    /// File the recipe came from (for messages).
    pub file: String,
    /// The TOML source.
    pub source: String,
}

/// The recipe's tables, exactly as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipeBody {
    pub name: Spanned<String>,
    #[serde(default)]
    pub kind: RecipeKind,
    pub out: Option<PathBuf>,
    pub model: Option<ModelSection>,
    pub data: Option<DataSection>,
    pub train: Option<TrainSection>,
    #[serde(default)]
    pub methods: Vec<Spanned<toml::Table>>,
    #[serde(default)]
    pub sweep: BTreeMap<String, Spanned<Vec<toml::Value>>>,
    pub synthetic: Option<SyntheticTable>,
    /// How seeds are spent: `train.seeds` for every arm, or rounds (docs/methods.md §13.6).
    pub seeds: Option<crate::sequential::SeedPolicy>,
    /// A search on dev of one `[train]` key per method before the seed study.
    pub tune: Option<crate::tune::TuneTable>,
}

impl Recipe {
    /// Read and parse a recipe file.
    pub fn from_file(path: &Path) -> Result<Self, InputError> {
        let file = path.display().to_string();
        let source = std::fs::read_to_string(path).map_err(|e| {
            InputError::new(format!("cannot read the recipe: {e}"))
                .file(file.clone())
                .hint("pass the path of a TOML recipe, e.g. recipes/quickstart.toml")
        })?;
        Self::parse(&source, &file)
    }

    /// Parse recipe text; `file` names it in errors.
    pub fn parse(source: &str, file: &str) -> Result<Self, InputError> {
        let body: RecipeBody = toml::from_str(source).map_err(|e| toml_error(&e, source, file))?;
        let recipe = Recipe {
            body,
            file: file.to_string(),
            source: source.to_string(),
        };
        recipe.check_shape()?;
        Ok(recipe)
    }

    pub fn name(&self) -> &str {
        self.body.name.get_ref()
    }

    pub fn kind(&self) -> RecipeKind {
        self.body.kind
    }

    /// The sequential design, when `[seeds] policy = "sequential"`.
    pub fn sequential(&self) -> Option<&crate::sequential::SequentialDesign> {
        match &self.body.seeds {
            Some(crate::sequential::SeedPolicy::Sequential(d)) => Some(d),
            _ => None,
        }
    }

    /// The results directory: `out`, or `runs/<name>`.
    pub fn out_dir(&self) -> PathBuf {
        self.body
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from("runs").join(self.name()))
    }

    /// 1-based line of a byte offset in the source.
    pub fn line_of(&self, offset: usize) -> usize {
        line_of(&self.source, offset)
    }

    /// An input error located at a span of this recipe.
    pub fn error_at(
        &self,
        span: std::ops::Range<usize>,
        key: &str,
        message: impl Into<String>,
    ) -> InputError {
        InputError::new(message)
            .file(self.file.clone())
            .line(Some(self.line_of(span.start)))
            .key(key)
    }

    /// An input error in this recipe without a precise location.
    pub fn error(&self, key: &str, message: impl Into<String>) -> InputError {
        let line = find_key_line(&self.source, key.rsplit('.').next().unwrap_or(key));
        InputError::new(message)
            .file(self.file.clone())
            .line(line)
            .key(key)
    }

    /// Which tables a kind needs and forbids.
    fn check_shape(&self) -> Result<(), InputError> {
        let b = &self.body;
        let name = b.name.get_ref();
        if name.trim().is_empty() {
            return Err(self
                .error_at(b.name.span(), "name", "the recipe name is empty")
                .hint("name it, e.g. name = \"head-tuning-rte\""));
        }
        if name.chars().any(char::is_control) {
            return Err(self
                .error_at(
                    b.name.span(),
                    "name",
                    "the recipe name contains a control character (newline, tab, …)",
                )
                .hint("use letters, digits, '-', '_' and '.'"));
        }
        if b.out.is_none()
            && (name.contains('/')
                || name.contains('\\')
                || name.split(['/', '\\']).any(|c| c == ".." || c == ".")
                || Path::new(name).is_absolute())
        {
            return Err(self
                .error_at(b.name.span(), "name", format!("the name `{name}` would put the default out dir (runs/<name>) outside runs/"))
                .hint("use a plain name such as \"head-tuning-rte\", or set `out` explicitly"));
        }
        if b.out.as_ref().is_some_and(|o| o.as_os_str().is_empty()) {
            return Err(self.error("out", "`out` is empty").hint("name a results directory, e.g. out = \"runs/my-study\", or omit it for runs/<name>"));
        }
        match b.kind {
            RecipeKind::Synthetic => {
                let foreign = [
                    ("model", b.model.is_some()),
                    ("data", b.data.is_some()),
                    ("train", b.train.is_some()),
                    ("methods", !b.methods.is_empty()),
                    ("sweep", !b.sweep.is_empty()),
                    ("seeds", b.seeds.is_some()),
                    ("tune", b.tune.is_some()),
                ];
                if let Some((key, _)) = foreign.iter().find(|(_, present)| *present) {
                    return Err(self
                        .error(
                            key,
                            format!("`{key}` does not apply to kind = \"synthetic\""),
                        )
                        .hint("synthetic recipes are configured by their [synthetic] table only"));
                }
                if b.synthetic.is_none() {
                    return Err(self
                        .error("synthetic", "kind = \"synthetic\" needs a [synthetic] table")
                        .hint("add [synthetic] with factor = \"margin\" (or [[synthetic.studies]] entries)"));
                }
            }
            RecipeKind::Finetune => {
                if b.synthetic.is_some() {
                    return Err(self
                        .error(
                            "synthetic",
                            "[synthetic] only applies to kind = \"synthetic\"",
                        )
                        .hint("set kind = \"synthetic\" or remove the [synthetic] table"));
                }
                for (key, present) in [("model", b.model.is_some()), ("data", b.data.is_some())] {
                    if !present {
                        return Err(self
                            .error(key, format!("a fine-tuning recipe needs a [{key}] table"))
                            .hint("see the recipe reference in docs/recipes.md"));
                    }
                }
                if b.methods.is_empty() {
                    return Err(self
                        .error(
                            "methods",
                            "a fine-tuning recipe needs at least one [[methods]] entry",
                        )
                        .hint("add\n[[methods]]\nname = \"finetune\""));
                }
            }
        }
        Ok(())
    }
}

/// 1-based line number of a byte offset.
pub fn line_of(source: &str, offset: usize) -> usize {
    source[..offset.min(source.len())]
        .bytes()
        .filter(|&b| b == b'\n')
        .count()
        + 1
}

/// The first line that assigns `key` (`key = …` or `"key" = …`), if any.
pub fn find_key_line(source: &str, key: &str) -> Option<usize> {
    source
        .lines()
        .position(|l| {
            let t = l.trim_start();
            let t = t
                .strip_prefix('"')
                .map(|r| r.replacen('"', "", 1))
                .unwrap_or_else(|| t.to_string());
            (t.starts_with(key) && t[key.len()..].trim_start().starts_with('='))
                || l.trim() == format!("[{key}]")
                || l.trim() == format!("[[{key}]]")
        })
        .map(|i| i + 1)
}

/// The dotted name of the table that encloses `line` (`train`, `synthetic.studies`), or "".
fn enclosing_table(source: &str, line: usize) -> String {
    source
        .lines()
        .take(line)
        .filter_map(|l| {
            let t = l.trim();
            t.strip_prefix("[[")
                .and_then(|r| r.strip_suffix("]]"))
                .or_else(|| t.strip_prefix('[').and_then(|r| r.strip_suffix(']')))
                .map(|s| s.trim().to_string())
        })
        .last()
        .unwrap_or_default()
}

/// Backticked names in a serde message ("expected one of `a`, `b`").
fn backticked(s: &str) -> Vec<&str> {
    s.split('`').skip(1).step_by(2).collect()
}

/// Turn a toml/serde error into one clear message with file:line, key and hint.
fn toml_error(e: &toml::de::Error, source: &str, file: &str) -> InputError {
    let msg = e.message().trim().to_string();
    let line = e.span().map(|s| line_of(source, s.start));
    let table = line.map(|l| enclosing_table(source, l)).unwrap_or_default();
    let scoped = |name: &str| {
        if table.is_empty() {
            name.to_string()
        } else {
            format!("{table}.{name}")
        }
    };
    let base = InputError::new(msg.clone()).file(file).line(line);
    for (prefix, what) in [("unknown field `", "key"), ("unknown variant `", "value")] {
        if let Some(rest) = msg.strip_prefix(prefix) {
            let name = rest.split('`').next().unwrap_or_default();
            let expected = backticked(rest.split_once("expected").map(|(_, r)| r).unwrap_or(""));
            let where_ = if table.is_empty() {
                "at the top level".to_string()
            } else {
                format!("in [{table}]")
            };
            let mut err = InputError::new(format!(
                "unknown {what} `{name}` {where_}{}",
                did_you_mean(name, expected.iter().copied())
            ))
            .file(file)
            .line(line)
            .hint(format!("valid {what}s: {}", expected.join(", ")));
            if what == "key" {
                err = err.key(scoped(name));
            }
            return err;
        }
    }
    if let Some(rest) = msg.strip_prefix("missing field `") {
        let name = rest.split('`').next().unwrap_or_default();
        return base
            .message_with(format!("missing required key `{name}`"))
            .key(scoped(name))
            .hint("see the recipe reference in docs/recipes.md");
    }
    if msg.starts_with("invalid type") || msg.starts_with("invalid value") {
        let key = line.and_then(|l| source.lines().nth(l - 1)).and_then(|l| {
            l.split_once('=')
                .map(|(k, _)| k.trim().trim_matches('"').to_string())
        });
        let mut err =
            base.hint("check the value's type against the recipe reference in docs/recipes.md");
        if let Some(k) = key.filter(|k| !k.is_empty() && !k.starts_with('[')) {
            err = err.key(scoped(&k));
        }
        return err;
    }
    base.hint("the recipe must be valid TOML (https://toml.io)")
}

impl InputError {
    fn message_with(mut self, m: String) -> Self {
        self.message = m;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(src: &str) -> InputError {
        Recipe::parse(src, "r.toml").unwrap_err()
    }

    #[test]
    fn unknown_key_names_nearest_and_line() {
        let e = err(
            "name = \"x\"\n[model]\npath = \"m\"\n[data]\ndir = \"d\"\ntasks = [\"rte\"]\n[train]\nlr_rate = 1e-5\n[[methods]]\nname = \"finetune\"\n",
        );
        assert_eq!(e.line, Some(8), "{e}");
        assert_eq!(e.key.as_deref(), Some("train.lr_rate"));
        assert!(e.to_string().contains("did you mean `lr`"), "{e}");
    }

    #[test]
    fn wrong_type_is_located() {
        let e = err(
            "name = \"x\"\nkind = \"synthetic\"\n[synthetic]\nfactor = \"margin\"\ndatasets = \"many\"\n",
        );
        assert_eq!(e.line, Some(5), "{e}");
        assert_eq!(e.key.as_deref(), Some("synthetic.datasets"), "{e}");
    }

    #[test]
    fn unknown_kind_suggests() {
        let e = err("name = \"x\"\nkind = \"synthetc\"\n");
        assert!(e.to_string().contains("did you mean `synthetic`"), "{e}");
    }

    #[test]
    fn synthetic_recipe_rejects_train_table() {
        let e = err(
            "name = \"x\"\nkind = \"synthetic\"\n[synthetic]\nfactor = \"margin\"\n[train]\nlr = 1.0\n",
        );
        assert_eq!(e.key.as_deref(), Some("train"));
        assert_eq!(e.line, Some(5));
    }

    #[test]
    fn finetune_recipe_parses_with_defaults() {
        let r = Recipe::parse(
            "name = \"rte\"\n[model]\npath = \"m\"\n[data]\ndir = \"d\"\ntasks = [\"rte\"]\n[[methods]]\nname = \"mmr\"\nalpha = 0.5\n[sweep]\n\"train.lr\" = [1e-5, 2e-5]\n",
            "r.toml",
        )
        .unwrap();
        assert_eq!(r.kind(), RecipeKind::Finetune);
        assert_eq!(r.out_dir(), PathBuf::from("runs/rte"));
        assert_eq!(TrainSection::default().seeds.values().len(), 10);
    }
}
