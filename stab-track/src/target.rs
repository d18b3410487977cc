//! `--track` values: where a grid's events go.

use std::path::{Path, PathBuf};
use std::time::Duration;

use stab_core::InputError;

use crate::mlflow::MlflowSink;
use crate::sink::Sink;
use crate::tensorboard::TensorBoardSink;

/// A tracking destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `tensorboard[=DIR]`: event files under DIR (default `<results>/tensorboard`).
    TensorBoard(Option<PathBuf>),
    /// `mlflow=URL`: an MLflow tracking server.
    Mlflow(String),
}

/// How long one call to a tracking server may take before it counts as unreachable.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

impl Target {
    /// Parse one `--track` value; `key` names the option in the error and its hint.
    pub fn parse(value: &str, key: &str) -> Result<Self, InputError> {
        let (name, arg) = match value.split_once('=') {
            Some((n, a)) => (n, Some(a)),
            None => (value, None),
        };
        match (name, arg) {
            ("tensorboard", None) => Ok(Self::TensorBoard(None)),
            ("tensorboard", Some(dir)) if !dir.is_empty() => Ok(Self::TensorBoard(Some(dir.into()))),
            ("mlflow", Some(url)) if url.starts_with("http://") || url.starts_with("https://") => {
                Ok(Self::Mlflow(url.to_string()))
            }
            ("mlflow", _) => Err(InputError::new(format!(
                "`{value}`: MLflow needs its tracking server's address, http://HOST:PORT or https://…"
            ))
            .key(key)
            .hint(format!("start one with `mlflow server --host 127.0.0.1 --port 5000`, then {key} mlflow=http://127.0.0.1:5000"))),
            _ => Err(InputError::new(format!(
                "`{value}` is not a tracker: expected tensorboard[=DIR] or mlflow=URL"
            ))
            .key(key)
            .hint(format!("use {key} tensorboard, {key} tensorboard=DIR or {key} mlflow=http://HOST:PORT"))),
        }
    }

    /// The sink writing to this target; a relative TensorBoard directory is under `out`.
    pub fn sink(&self, out: &Path) -> Box<dyn Sink> {
        match self {
            Self::TensorBoard(dir) => {
                let dir = dir.clone().unwrap_or_else(|| out.join("tensorboard"));
                Box::new(TensorBoardSink::new(dir))
            }
            Self::Mlflow(url) => Box::new(MlflowSink::start(url, CALL_TIMEOUT)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_bad_ones_name_the_option() {
        assert_eq!(
            Target::parse("tensorboard", "--track").unwrap(),
            Target::TensorBoard(None)
        );
        assert_eq!(
            Target::parse("tensorboard=tb", "--track").unwrap(),
            Target::TensorBoard(Some("tb".into()))
        );
        assert_eq!(
            Target::parse("mlflow=http://127.0.0.1:5000", "--track").unwrap(),
            Target::Mlflow("http://127.0.0.1:5000".into())
        );
        let e = Target::parse("mlflow", "--track").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("--track"));
        assert!(e.message.contains("address"), "{}", e.message);
        let e = Target::parse("wandb", "--track").unwrap_err();
        assert!(e.message.contains("not a tracker"), "{}", e.message);
    }
}
