//! stab's errors, as a caller tells them apart (docs/design.md §3).
//!
//! - [`InputError`]: a recipe, data file, model directory or store the user must fix —
//!   where (file, line, key), what was expected, and a hint. The CLI exits with code 2.
//! - [`Error`]: what a library call returns — [`Error::Input`] or [`Error::Internal`] (an
//!   I/O failure, a backend error, a bug, with its chain of context; exit code 1).
//! - [`Refusal`]: the plugin API's "no" to a value, placed at a recipe key by the caller.
//!
//! An `InputError` is deliberately not a `std::error::Error`: it cannot disappear into an
//! `anyhow::Error`, so every path that can produce one returns [`Result`], and a caller
//! matches on [`Error::Input`] instead of searching an error chain.

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
    /// Context and further problems, rare enough to live behind a pointer (an error
    /// stays small on the paths that return it).
    pub extra: Option<Box<Extra>>,
}

/// The rarer parts of an [`InputError`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extra {
    /// What was being done when it was found, outermost first (`DIR against BASE`),
    /// shown before the place.
    pub context: Vec<String>,
    /// Further problems found in the same check, shown after this one (a recipe with
    /// several bad values says all of them at once).
    pub more: Vec<InputError>,
}

impl InputError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            file: None,
            line: None,
            key: None,
            message: message.into(),
            hint: None,
            extra: None,
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
    /// This error followed by `more` found in the same check.
    pub fn with_more(mut self, more: Vec<InputError>) -> Self {
        if !more.is_empty() {
            self.extra.get_or_insert_default().more.extend(more);
        }
        self
    }

    /// What was being done, shown before the place (outermost first).
    pub fn context(&self) -> &[String] {
        self.extra.as_ref().map_or(&[], |x| &x.context)
    }

    /// Further problems found in the same check.
    pub fn more(&self) -> &[InputError] {
        self.extra.as_ref().map_or(&[], |x| &x.more)
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for context in self.context() {
            write!(f, "{context}: ")?;
        }
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
        for more in self.more() {
            write!(f, "\nerror: {more}")?;
        }
        Ok(())
    }
}

/// What a stab library call returns on failure. Its `Debug` is its message, so that
/// `fn main() -> stab_core::Result<()>` prints a readable error.
pub enum Error {
    /// The user must fix an input.
    Input(InputError),
    /// Anything else, with its chain of context.
    Internal(anyhow::Error),
}

/// A stab library result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The input error, if this is one.
    pub fn as_input(&self) -> Option<&InputError> {
        match self {
            Self::Input(e) => Some(e),
            Self::Internal(_) => None,
        }
    }

    /// Add context (what was being done): an internal error's chain grows; an input error
    /// shows it before its place.
    pub fn context(self, context: impl fmt::Display + Send + Sync + 'static) -> Self {
        match self {
            Self::Input(mut e) => {
                e.extra
                    .get_or_insert_default()
                    .context
                    .insert(0, context.to_string());
                Self::Input(e)
            }
            Self::Internal(e) => Self::Internal(e.context(context)),
        }
    }

    /// This error as an `anyhow::Error` for a caller that only reports it (tests,
    /// examples); an input error keeps its message.
    pub fn into_anyhow(self) -> anyhow::Error {
        match self {
            Self::Input(e) => anyhow::Error::msg(e.to_string()),
            Self::Internal(e) => e,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Input(e) => e.fmt(f),
            // The whole chain: a context is followed by its reason.
            Self::Internal(e) => write!(f, "{e:#}"),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Input(e) => write!(f, "{e}"),
            Self::Internal(e) => write!(f, "{e:?}"),
        }
    }
}

impl From<InputError> for Error {
    fn from(e: InputError) -> Self {
        Self::Input(e)
    }
}

/// Sound because an `anyhow::Error` cannot hold an [`InputError`] (not a `std::error::Error`).
impl From<anyhow::Error> for Error {
    fn from(e: anyhow::Error) -> Self {
        Self::Internal(e)
    }
}

/// An I/O failure is internal (a caller that knows the file names it with `context`).
impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Self::Internal(e.into())
    }
}

/// A JSON failure of stab's own values is internal (input files are read with located
/// errors of their own).
impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Self::Internal(e.into())
    }
}

/// `.context(…)` on a stab [`Result`], like anyhow's on its own.
pub trait Context<T> {
    fn context<C: fmt::Display + Send + Sync + 'static>(self, context: C) -> Result<T>;
    fn with_context<C: fmt::Display + Send + Sync + 'static>(
        self,
        context: impl FnOnce() -> C,
    ) -> Result<T>;
}

impl<T> Context<T> for Result<T> {
    fn context<C: fmt::Display + Send + Sync + 'static>(self, context: C) -> Result<T> {
        self.map_err(|e| e.context(context))
    }
    fn with_context<C: fmt::Display + Send + Sync + 'static>(
        self,
        context: impl FnOnce() -> C,
    ) -> Result<T> {
        self.map_err(|e| e.context(context()))
    }
}

/// An internal error from a message: `return Err(internal!("…"))`.
#[macro_export]
macro_rules! internal {
    ($($arg:tt)*) => {
        $crate::error::Error::Internal($crate::__anyhow::anyhow!($($arg)*))
    };
}

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

// Not a `std::error::Error` either: a refusal is placed at its key ([`Refusal::at`]) or
// turned into an input error by its caller, never passed on as an internal error.

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
