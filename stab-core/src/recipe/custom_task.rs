//! `[data.custom.<name>]`: a task of the user's own, read from local files or from a
//! dataset on the Hugging Face Hub (docs/data.md §7). It trains a classification head like
//! the built-in tasks and goes through every mode, method, report and analysis; what it
//! needs beyond them is said here: which columns hold the text and the label, the class
//! names, the metric, and where its test rows come from.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The metrics a custom task may name (`stab_eval::PrimaryMetric`'s names). `f1` is the F1
/// of the positive class, the second entry of `labels`.
pub const CUSTOM_METRICS: &[&str] = &[
    "accuracy",
    "macro_f1",
    "mcc",
    "f1",
    "acc_and_f1",
    "acc_and_macro_f1",
];

/// The test share of train when a custom task names no test file.
pub const DEFAULT_TEST_FRACTION: f64 = 0.2;

/// One custom task, as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomTaskSpec {
    /// The labelled rows: a `.csv`, `.tsv`, `.jsonl` or `.parquet` file; with `dataset`,
    /// the name of the Hub dataset's split (`"train"`).
    pub train: PathBuf,
    /// Rows for early stopping and selection (default: the seeded `data.dev_fraction` of
    /// train, as for the built-in tasks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<PathBuf>,
    /// Rows the reported scores come from (default: a seeded `test_fraction` of train,
    /// whose row list is written beside the store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<PathBuf>,
    /// The text column, or two for a sentence pair (`["premise", "hypothesis"]`).
    #[serde(deserialize_with = "one_or_two")]
    pub text: Vec<String>,
    /// The label column.
    #[serde(default = "default_label")]
    pub label: String,
    /// The class names in label-id order (default: train's distinct labels, sorted:
    /// numerically when every one is an integer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<String>>,
    /// The primary metric ([`CUSTOM_METRICS`]).
    #[serde(default = "default_metric")]
    pub metric: String,
    /// The share of train held out as test when `test` is not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_fraction: Option<f64>,
    /// A Hugging Face Hub dataset id (`owner/name`): `train`, `dev` and `test` then name
    /// its splits, read as parquet through the Hugging Face cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// The dataset's config (default `"default"`: the Hub's `default/` folder or, as
    /// `push_to_hub` lays it out, `data/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// Branch, tag or commit of the dataset (default `"main"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
}

/// Where a custom task's rows are read from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CustomSource<'a> {
    /// Local files (`train`, `dev`, `test` are paths).
    Files,
    /// A Hub dataset (`train`, `dev`, `test` name its splits).
    Hub {
        dataset: &'a str,
        config: &'a str,
        revision: &'a str,
    },
}

fn default_label() -> String {
    "label".into()
}

fn default_metric() -> String {
    "accuracy".into()
}

fn one_or_two<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(
        untagged,
        expecting = "a column name, or a list of one or two column names"
    )]
    enum Columns {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Columns::deserialize(d)? {
        Columns::One(c) => vec![c],
        Columns::Many(v) => v,
    })
}

/// Where a custom task's test rows come from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TestRows<'a> {
    /// A file of its own.
    File(&'a Path),
    /// A seeded share of the train file.
    Held { fraction: f64 },
}

impl CustomTaskSpec {
    pub fn source(&self) -> CustomSource<'_> {
        match &self.dataset {
            None => CustomSource::Files,
            Some(dataset) => CustomSource::Hub {
                dataset,
                config: self.config.as_deref().unwrap_or("default"),
                revision: self.revision.as_deref().unwrap_or("main"),
            },
        }
    }

    pub fn test_rows(&self) -> TestRows<'_> {
        match &self.test {
            Some(path) => TestRows::File(path),
            None => TestRows::Held {
                fraction: self.test_fraction.unwrap_or(DEFAULT_TEST_FRACTION),
            },
        }
    }

    /// The files (with `dataset`: the split names) the task reads, with their recipe keys,
    /// in the order train, dev, test.
    pub fn files(&self) -> Vec<(&'static str, &Path)> {
        [
            ("train", Some(self.train.as_path())),
            ("dev", self.dev.as_deref()),
            ("test", self.test.as_deref()),
        ]
        .into_iter()
        .filter_map(|(k, p)| p.map(|p| (k, p)))
        .collect()
    }

    /// The first inconsistency of the table as (key below the table, message, hint). The
    /// files themselves are read, and checked row by row, when a run loads the task.
    pub fn check(&self) -> Result<(), (String, String, String)> {
        let fail = |key: &str, msg: String, hint: &str| Err((key.into(), msg, hint.into()));
        if self.text.is_empty() || self.text.len() > 2 {
            return fail(
                "text",
                format!("{} text columns given", self.text.len()),
                "name one column (text = \"sentence\") or two for a pair (text = [\"premise\", \"hypothesis\"])",
            );
        }
        if let Some(c) = self.text.iter().find(|c| c.trim().is_empty()) {
            return fail(
                "text",
                format!("`{c}` is not a column name"),
                "name the header of the column that holds the text",
            );
        }
        if self.text.contains(&self.label) {
            return fail(
                "label",
                format!(
                    "`{}` is both a text column and the label column",
                    self.label
                ),
                "the label column must be another column than the text",
            );
        }
        if let Some(labels) = &self.labels {
            check_labels(labels).map_or(Ok(()), |(m, h)| fail("labels", m, h))?;
        }
        if !CUSTOM_METRICS.contains(&self.metric.as_str()) {
            return fail(
                "metric",
                format!(
                    "unknown metric `{}`{}",
                    self.metric,
                    crate::suggest::did_you_mean(&self.metric, CUSTOM_METRICS.iter().copied())
                ),
                &format!("one of: {}", CUSTOM_METRICS.join(", ")),
            );
        }
        self.check_source()
            .map_or(Ok(()), |(k, m, h)| fail(k, m, h))?;
        match (self.test.is_some(), self.test_fraction) {
            (true, Some(_)) => fail(
                "test_fraction",
                "`test_fraction` applies only without a test file".into(),
                "remove test_fraction, or remove `test` to hold out a share of train",
            ),
            (false, Some(f)) if !(f > 0.0 && f < 1.0) => fail(
                "test_fraction",
                format!("{f} is not a fraction in (0, 1)"),
                "e.g. test_fraction = 0.2",
            ),
            _ => Ok(()),
        }
    }

    /// `dataset`, `config` and `revision` agree with each other and with the split names.
    fn check_source(&self) -> Option<(&'static str, String, &'static str)> {
        let Some(dataset) = &self.dataset else {
            return [("config", &self.config), ("revision", &self.revision)]
                .into_iter()
                .find(|(_, v)| v.is_some())
                .map(|(k, _)| {
                    (
                        k,
                        format!("`{k}` applies only to a Hub dataset"),
                        "add dataset = \"owner/name\", or remove the key",
                    )
                });
        };
        let parts: Vec<&str> = dataset.split('/').collect();
        let name_ok = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        if parts.len() > 2 || !parts.iter().all(|p| name_ok(p)) {
            return Some((
                "dataset",
                format!("`{dataset}` is not a Hugging Face dataset id"),
                "write the id as on the Hub, e.g. dataset = \"stanfordnlp/imdb\"",
            ));
        }
        let file_like = |p: &str| {
            [".csv", ".tsv", ".jsonl", ".ndjson", ".parquet"]
                .iter()
                .any(|e| p.to_ascii_lowercase().ends_with(e))
        };
        self.files()
            .into_iter()
            .find(|(_, p)| !p.to_str().is_some_and(|p| name_ok(p) && !file_like(p)))
            .map(|(k, p)| {
                (
                    k,
                    format!("`{}` is not a split name", p.display()),
                    "with `dataset`, train, dev and test name the dataset's splits, e.g. train = \"train\", test = \"test\"",
                )
            })
    }
}

fn check_labels(labels: &[String]) -> Option<(String, &'static str)> {
    if labels.len() < 2 {
        return Some((
            format!("{} class name(s) given", labels.len()),
            "a classification task needs at least two classes, e.g. labels = [\"negative\", \"positive\"]",
        ));
    }
    if let Some(l) = labels.iter().find(|l| l.trim().is_empty()) {
        return Some((
            format!("`{l}` is not a class name"),
            "write each class as the label column holds it",
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    labels.iter().find(|l| !seen.insert(*l)).map(|l| {
        (
            format!("class `{l}` is listed twice"),
            "list each class once",
        )
    })
}

/// A custom task's name, which names files (the held-out split, caches): lower-case
/// letters, digits, `_` and `-`, starting with a letter, at most 64 characters.
pub fn check_task_name(name: &str) -> Result<(), String> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a task name: lower-case letters, digits, `_` and `-`, starting with a letter"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: &str) -> Result<CustomTaskSpec, toml::de::Error> {
        toml::from_str(&format!("train = \"t.csv\"\ntext = \"sentence\"\n{extra}"))
    }

    #[test]
    fn text_is_one_or_two_columns_and_defaults_apply() {
        let s = spec("").unwrap();
        assert_eq!(s.text, ["sentence"]);
        assert_eq!((s.label.as_str(), s.metric.as_str()), ("label", "accuracy"));
        assert_eq!(s.test_rows(), TestRows::Held { fraction: 0.2 });
        let pair: CustomTaskSpec =
            toml::from_str("train = \"t.csv\"\ntext = [\"a\", \"b\"]\ntest = \"x.csv\"").unwrap();
        assert_eq!(pair.text, ["a", "b"]);
        assert_eq!(pair.test_rows(), TestRows::File(Path::new("x.csv")));
        assert!(pair.check().is_ok());
    }

    #[test]
    fn inconsistent_tables_name_their_key() {
        let key = |extra: &str| spec(extra).unwrap().check().unwrap_err().0;
        assert_eq!(key("label = \"sentence\""), "label");
        assert_eq!(key("labels = [\"a\"]"), "labels");
        assert_eq!(key("labels = [\"a\", \"a\"]"), "labels");
        assert_eq!(key("metric = \"f2\""), "metric");
        assert_eq!(key("test_fraction = 1.0"), "test_fraction");
        assert_eq!(
            key("test = \"x.csv\"\ntest_fraction = 0.1"),
            "test_fraction"
        );
        let too_many: CustomTaskSpec =
            toml::from_str("train = \"t\"\ntext = [\"a\", \"b\", \"c\"]").unwrap();
        assert_eq!(too_many.check().unwrap_err().0, "text");
        assert!(spec("colour = 1").is_err(), "unknown keys are refused");
    }

    #[test]
    fn a_hub_dataset_names_splits_and_its_keys_need_it() {
        let key = |extra: &str| spec(extra).unwrap().check().unwrap_err().0;
        assert_eq!(key("config = \"plain_text\""), "config");
        assert_eq!(key("revision = \"v1\""), "revision");
        // train = "t.csv" is a file name, not a split.
        assert_eq!(key("dataset = \"stanfordnlp/imdb\""), "train");
        let hub: CustomTaskSpec = toml::from_str(
            "dataset = \"stanfordnlp/imdb\"\ntrain = \"train\"\ntest = \"test\"\ntext = \"text\"",
        )
        .unwrap();
        assert!(hub.check().is_ok());
        assert_eq!(
            hub.source(),
            CustomSource::Hub {
                dataset: "stanfordnlp/imdb",
                config: "default",
                revision: "main"
            }
        );
        let mut bad = hub.clone();
        bad.dataset = Some("not an id".into());
        assert_eq!(bad.check().unwrap_err().0, "dataset");
    }

    #[test]
    fn task_names_are_file_safe() {
        assert!(check_task_name("reviews_v2").is_ok());
        for bad in ["Reviews", "2x", "a/b", "", "a b", "../x"] {
            assert!(check_task_name(bad).is_err(), "{bad}");
        }
    }
}
