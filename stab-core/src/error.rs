//! The "bad input" error class: a recipe, data file or model the user must fix.
//!
//! The CLI maps an [`InputError`] anywhere in an error chain to exit code 2
//! (docs/design.md §3); every other failure is exit code 1.

use std::fmt;

/// A user-facing input error: where (file, line, key), what was expected, and a hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputError {
    /// File the problem is in, if any.
    pub file: Option<String>,
    /// 1-based line, if known.
    pub line: Option<usize>,
    /// Dotted key path (`train.lr`, `synthetic.values`), if the problem is a key.
    pub key: Option<String>,
    /// What is wrong and what was expected.
    pub message: String,
    /// How to fix it, if there is a useful hint.
    pub hint: Option<String>,
}

impl InputError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            file: None,
            line: None,
            key: None,
            message: message.into(),
            hint: None,
        }
    }
    pub fn file(mut self, file: impl Into<String>) -> Self {
        self.file = Some(file.into());
        self
    }
    pub fn line(mut self, line: Option<usize>) -> Self {
        self.line = line;
        self
    }
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{file}:{line}: ")?,
            (Some(file), None) => write!(f, "{file}: ")?,
            (None, Some(line)) => write!(f, "line {line}: ")?,
            (None, None) => {}
        }
        if let Some(key) = &self.key {
            write!(f, "key `{key}`: ")?;
        }
        write!(f, "{}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for InputError {}

/// Why a plugin refuses what it was given — a combination of its parameters, a model it
/// cannot run on, a factor value — or why a value is refused where no file is known yet.
/// The plugin API's error type; the caller places it at the recipe's key as an
/// [`InputError`] ([`Refusal::at`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// What is wrong, as a sentence about the value.
    pub reason: String,
    /// What to do instead, when there is a useful hint.
    pub hint: Option<String>,
}

impl Refusal {
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            hint: None,
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// This refusal as an input error `at` a place (file, line, key), its message prefixed
    /// by `at`'s message when it has one (`methods[0] (mhloss): …`); the refusal's hint
    /// wins over `at`'s.
    pub fn at(self, at: InputError) -> InputError {
        let message = if at.message.is_empty() {
            self.reason
        } else {
            format!("{}: {}", at.message, self.reason)
        };
        InputError {
            message,
            hint: self.hint.or(at.hint),
            ..at
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Refusal {}

impl From<String> for Refusal {
    fn from(reason: String) -> Self {
        Self::new(reason)
    }
}

impl From<&str> for Refusal {
    fn from(reason: &str) -> Self {
        Self::new(reason)
    }
}

/// True when `err` (or anything in its chain) is an [`InputError`].
pub fn is_input_error(err: &anyhow::Error) -> bool {
    err.chain()
        .any(|e| e.downcast_ref::<InputError>().is_some())
}
