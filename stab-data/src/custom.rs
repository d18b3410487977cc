//! The user's own task (`[data.custom.<name>]`, docs/data.md §7): labelled rows from a
//! CSV, TSV, JSON Lines or parquet file, or from a Hugging Face Hub dataset's parquet
//! splits (through the Hugging Face cache, as the Hub source of the built-in tasks); the
//! text column(s) and the label column named by the recipe, the class names given or read
//! off the train file, and test rows from a file or held out of train by a fixed seed.
//!
//! Every malformed input is one located error: the file and line (parquet: row), the
//! column, what was expected, and the recipe key to change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value};
use stab_core::recipe::custom_task::{CustomSource, TestRows};
use stab_core::{CustomTaskSpec, InputError, derive_seed};

use crate::hub::{DatasetCache, HubDataset};
use crate::task::{CustomTask, Task};
use crate::tasks::{Example, TaskData, read_text};

/// A custom task's rows, the hash of its files, and the held-out test rows when test
/// comes from train.
#[derive(Debug, Clone)]
pub struct CustomLoad {
    pub data: TaskData,
    pub fingerprint: u64,
    pub held_out: Option<HeldOutTest>,
}

/// The train-file rows a custom task without a test file holds out as test: drawn once
/// with a fixed seed (the same for every run and every run seed), written beside the store
/// so that the test set of a study can be read and reused.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HeldOutTest {
    pub task: String,
    pub train_file: String,
    pub fraction: f64,
    /// Data rows of the train file.
    pub train_file_rows: usize,
    /// The 0-based data rows of the train file that form test, ascending.
    pub test: Vec<usize>,
}

impl HeldOutTest {
    /// The file's name: the task and the hash of its data files, so a changed file never
    /// replaces the row list another study used.
    pub fn file_name(&self, fingerprint: u64) -> String {
        format!("{}-test-{fingerprint:016x}.json", self.task)
    }
}

/// One table's rows: each with its line (text files) or row number (parquet), 1-based.
struct Table {
    /// The file, or the Hub dataset and split, in messages.
    file: String,
    /// The files read, in order (their bytes are the run's `inputs.data`).
    sources: Vec<PathBuf>,
    /// `line` or `row`, for messages.
    unit: &'static str,
    /// The class names of the file's `ClassLabel` columns (parquet from the `datasets`
    /// library), in id order; their cells already hold the names.
    class_names: BTreeMap<String, Vec<String>>,
    rows: Vec<(usize, Map<String, Value>)>,
}

/// Read the custom task `name` as its table `spec` describes (`cache` serves a Hub
/// dataset).
pub fn load(
    name: &str,
    spec: &CustomTaskSpec,
    cache: &DatasetCache,
) -> Result<CustomLoad, InputError> {
    let read = |k: &str, p: &Path| read_role(name, spec, k, p, cache);
    let train = read("train", &spec.train)?;
    let dev = spec.dev.as_deref().map(|p| read("dev", p)).transpose()?;
    let test = match spec.test_rows() {
        TestRows::File(p) => Some(read("test", p)?),
        TestRows::Held { .. } => None,
    };
    for table in [Some(&train), dev.as_ref(), test.as_ref()]
        .into_iter()
        .flatten()
    {
        check_columns(table, spec, name)?;
    }
    let labels = match &spec.labels {
        Some(l) => l.clone(),
        None => infer_labels(&train, spec, name)?,
    };
    check_metric(name, &spec.metric, &labels)?;
    let task = CustomTask {
        name: name.to_string(),
        labels,
        metric: spec.metric.clone(),
    };
    let rows = |t: &Table| examples(t, spec, &task);
    let mut train_rows = rows(&train)?;
    let dev_rows = dev.as_ref().map(rows).transpose()?;
    let (test_rows, held_out) = match (&test, spec.test_rows()) {
        (Some(t), _) => (rows(t)?, None),
        (None, TestRows::Held { fraction }) => {
            let held = hold_out(name, &train, fraction)?;
            let in_test: std::collections::HashSet<u64> =
                held.test.iter().map(|&r| r as u64).collect();
            let (test, rest) = train_rows
                .into_iter()
                .partition(|e| in_test.contains(&e.group));
            train_rows = rest;
            (test, Some(held))
        }
        (None, TestRows::File(_)) => unreachable!("a test file is read above"),
    };
    Ok(CustomLoad {
        data: TaskData {
            task: Task::Custom(Arc::new(task)),
            train: train_rows,
            dev: dev_rows,
            test: test_rows,
        },
        fingerprint: crate::source::hash_files(
            [Some(&train), dev.as_ref(), test.as_ref()]
                .into_iter()
                .flatten()
                .flat_map(|t| &t.sources),
        )?,
        held_out,
    })
}

/// One role's rows (`key`: train, dev or test): the file `p`, or the split `p` of the
/// table's Hub dataset.
fn read_role(
    name: &str,
    spec: &CustomTaskSpec,
    key: &str,
    p: &Path,
    cache: &DatasetCache,
) -> Result<Table, InputError> {
    let key = format!("data.custom.{name}.{key}");
    match spec.source() {
        CustomSource::Files => read_table(p, &key),
        CustomSource::Hub {
            dataset,
            config,
            revision,
        } => {
            let ds = HubDataset {
                task: name.to_string(),
                custom: true,
                repo: dataset.to_string(),
                config: config.to_string(),
                revision: revision.to_string(),
            };
            read_hub_split(&ds, &p.to_string_lossy(), &key, cache)
        }
    }
}

/// A Hub dataset's split: its parquet shards in name order, rows numbered across them.
fn read_hub_split(
    ds: &HubDataset,
    split: &str,
    key: &str,
    cache: &DatasetCache,
) -> Result<Table, InputError> {
    let shards = cache.shards(ds, split).map_err(|e| e.key(key))?;
    let mut rows = Vec::new();
    let mut class_names = BTreeMap::new();
    for shard in &shards {
        let mut read = read_parquet(shard)?;
        let offset = rows.len();
        rows.extend(read.rows.drain(..).map(|(i, r)| (offset + i, r)));
        class_names.append(&mut read.class_names);
    }
    let table = Table {
        file: format!("{} split {split}", ds.describe()),
        sources: shards,
        unit: "row",
        class_names,
        rows,
    };
    if table.rows.is_empty() {
        return Err(InputError::new("the split has no rows")
            .file(table.file.clone())
            .key(key)
            .hint("an empty split cannot be trained or evaluated"));
    }
    Ok(table)
}

/// Read a CSV, TSV, JSON Lines or parquet file, chosen by its extension.
fn read_table(path: &Path, key: &str) -> Result<Table, InputError> {
    let file = path.display().to_string();
    if !path.is_file() {
        return Err(InputError::new(format!("missing file {file}"))
            .key(key)
            .hint("the path is read from the directory stab runs in; give a CSV, TSV, JSON Lines or parquet file"));
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let table = match ext.as_deref() {
        Some("csv") => read_delimited(path, b',')?,
        Some("tsv") => read_delimited(path, b'\t')?,
        Some("jsonl") | Some("ndjson") => read_jsonl(path)?,
        Some("parquet") => read_parquet(path)?,
        _ => {
            return Err(InputError::new(format!(
                "cannot tell the format of {file} from its extension"
            ))
            .key(key)
            .hint("name the file .csv, .tsv, .jsonl or .parquet"));
        }
    };
    if table.rows.is_empty() {
        return Err(InputError::new("the file has no data rows")
            .file(file)
            .key(key)
            .hint("an empty split cannot be trained or evaluated"));
    }
    Ok(table)
}

/// A delimited file with a header row; quoted fields as Python's `csv` and pandas write them.
fn read_delimited(path: &Path, delimiter: u8) -> Result<Table, InputError> {
    let file = path.display().to_string();
    let text = read_text(path)?;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .from_reader(text.as_bytes());
    let located = |e: csv::Error, what: &str| {
        let line = e.position().map(|p| p.line() as usize);
        let message = match e.kind() {
            csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => format!("{len} fields where the header has {expected_len}"),
            _ => format!("{what}: {e}"),
        };
        InputError::new(message)
            .file(file.clone())
            .line(line)
            .hint(if delimiter == b'\t' {
                "a TSV file: a header row, then one row per example, fields separated by tabs (quote a field that holds a tab)"
            } else {
                "a CSV file: a header row, then one row per example; quote a field that holds a comma, a quote or a line break"
            })
    };
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| located(e, "cannot read the header"))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    if let Some(dup) = header
        .iter()
        .enumerate()
        .find(|(i, h)| header[..*i].contains(h))
    {
        return Err(
            InputError::new(format!("column `{}` appears twice in the header", dup.1))
                .file(file)
                .line(Some(1))
                .hint("give every column its own name"),
        );
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| located(e, "cannot read the row"))?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        let fields = header
            .iter()
            .zip(record.iter())
            .map(|(h, v)| (h.clone(), Value::String(v.to_string())))
            .collect();
        rows.push((line, fields));
    }
    Ok(Table {
        file,
        sources: vec![path.to_path_buf()],
        unit: "line",
        class_names: BTreeMap::new(),
        rows,
    })
}

/// One JSON object per line; blank lines are skipped.
fn read_jsonl(path: &Path) -> Result<Table, InputError> {
    let file = path.display().to_string();
    let text = read_text(path)?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |m: String| {
            InputError::new(m)
                .file(file.clone())
                .line(Some(i + 1))
                .hint("JSON Lines: one object per line, e.g. {\"text\": \"a fine film\", \"label\": \"positive\"}")
        };
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(m)) => rows.push((i + 1, m)),
            Ok(_) => return Err(bad("the line is JSON but not an object".into())),
            Err(e) => return Err(bad(format!("not JSON: {e}"))),
        }
    }
    Ok(Table {
        file,
        sources: vec![path.to_path_buf()],
        unit: "line",
        class_names: BTreeMap::new(),
        rows,
    })
}

fn read_parquet(path: &Path) -> Result<Table, InputError> {
    let mut read = crate::hub::parquet_rows::read(path).map_err(|mut e| {
        e.hint = Some(
            "a parquet file with one row per example (pandas' DataFrame.to_parquet writes one)"
                .into(),
        );
        e
    })?;
    // A `ClassLabel` cell holds the class id; the table holds its name (an id outside the
    // names, such as the Hub's -1 for a hidden label, stays as it is and is refused later).
    for row in &mut read.rows {
        for (column, names) in &read.class_names {
            if let Some(cell) = row.get_mut(column)
                && let Some(name) = cell
                    .as_u64()
                    .and_then(|id| names.get(usize::try_from(id).ok()?))
            {
                *cell = Value::String(name.clone());
            }
        }
    }
    Ok(Table {
        file: path.display().to_string(),
        sources: vec![path.to_path_buf()],
        unit: "row",
        class_names: std::mem::take(&mut read.class_names),
        rows: read
            .rows
            .drain(..)
            .enumerate()
            .map(|(i, r)| (i + 1, r))
            .collect(),
    })
}

/// A label cell as its class name: a string (trimmed), an integer or a boolean.
fn label_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The message for a row that lacks a column, or the error for a file that lacks it.
fn missing_column(t: &Table, line: usize, column: &str, key: String) -> InputError {
    let present: Vec<&str> = t.rows[0].1.keys().map(String::as_str).collect();
    InputError::new(format!(
        "column `{column}` is missing{}",
        stab_core::suggest::did_you_mean(column, present.iter().copied())
    ))
    .file(t.file.clone())
    .line(Some(line))
    .hint(format!(
        "the file's columns: {}; name the right one in {key}",
        present.join(", ")
    ))
}

/// The table's first row holds every column the task reads (a later row that lacks one
/// is refused where it is met).
fn check_columns(t: &Table, spec: &CustomTaskSpec, name: &str) -> Result<(), InputError> {
    let (line, first) = &t.rows[0];
    let keys = spec
        .text
        .iter()
        .map(|c| (c, "text"))
        .chain([(&spec.label, "label")]);
    for (column, key) in keys {
        if !first.contains_key(column) {
            return Err(missing_column(
                t,
                *line,
                column,
                format!("data.custom.{name}.{key}"),
            ));
        }
    }
    Ok(())
}

/// Train's distinct labels, sorted (numerically when all are integers).
fn infer_labels(
    train: &Table,
    spec: &CustomTaskSpec,
    name: &str,
) -> Result<Vec<String>, InputError> {
    // A dataset that names its classes gives them in its own id order.
    if let Some(names) = train.class_names.get(&spec.label)
        && names.len() >= 2
    {
        return Ok(names.clone());
    }
    let mut seen = std::collections::BTreeSet::new();
    for (line, row) in &train.rows {
        let cell = row.get(&spec.label).ok_or_else(|| {
            missing_column(
                train,
                *line,
                &spec.label,
                format!("data.custom.{name}.label"),
            )
        })?;
        seen.insert(label_text(cell).ok_or_else(|| no_label(train, *line, &spec.label))?);
    }
    let mut labels: Vec<String> = seen.into_iter().collect();
    if labels.iter().all(|l| l.parse::<i64>().is_ok()) {
        labels.sort_by_key(|l| l.parse::<i64>().expect("checked"));
    }
    if labels.len() < 2 {
        return Err(InputError::new(format!(
            "every row of the train file has the label `{}`",
            labels[0]
        ))
        .file(train.file.clone())
        .key(format!("data.custom.{name}.label"))
        .hint(
            "a classification task needs at least two classes; is the label column the right one?",
        ));
    }
    Ok(labels)
}

fn no_label(t: &Table, line: usize, column: &str) -> InputError {
    InputError::new(format!("the {} has no label in column `{column}`", t.unit))
        .file(t.file.clone())
        .line(Some(line))
        .hint("every example needs a label: a class name, an integer or true/false; drop unlabelled rows")
}

/// Metrics that need a positive class need exactly two classes.
fn check_metric(name: &str, metric: &str, labels: &[String]) -> Result<(), InputError> {
    if matches!(metric, "f1" | "acc_and_f1") && labels.len() != 2 {
        return Err(InputError::new(format!(
            "metric `{metric}` is the F1 of a positive class, but the task has {} classes ({})",
            labels.len(),
            labels.join(", ")
        ))
        .key(format!("data.custom.{name}.metric"))
        .hint("use macro_f1 or acc_and_macro_f1 for more than two classes"));
    }
    Ok(())
}

/// The table's rows as examples; `group` is the 0-based data row of the file.
fn examples(
    t: &Table,
    spec: &CustomTaskSpec,
    task: &CustomTask,
) -> Result<Vec<Example>, InputError> {
    let key = |k: &str| format!("data.custom.{}.{k}", task.name);
    let mut out = Vec::with_capacity(t.rows.len());
    for (i, (line, row)) in t.rows.iter().enumerate() {
        let mut segments = Vec::with_capacity(spec.text.len());
        for column in &spec.text {
            let cell = row
                .get(column)
                .ok_or_else(|| missing_column(t, *line, column, key("text")))?;
            let text = match cell {
                Value::String(s) if !s.trim().is_empty() => s.clone(),
                Value::String(_) | Value::Null => {
                    return Err(InputError::new(format!(
                        "the {} has no text in column `{column}`",
                        t.unit
                    ))
                    .file(t.file.clone())
                    .line(Some(*line))
                    .hint("every example needs its text; drop rows with an empty text"));
                }
                other => {
                    return Err(InputError::new(format!(
                        "column `{column}` holds {other}, not text"
                    ))
                    .file(t.file.clone())
                    .line(Some(*line))
                    .hint(format!(
                        "is `{column}` the text column? name it in {}",
                        key("text")
                    )));
                }
            };
            segments.push(text);
        }
        let cell = row
            .get(&spec.label)
            .ok_or_else(|| missing_column(t, *line, &spec.label, key("label")))?;
        let label = label_text(cell).ok_or_else(|| no_label(t, *line, &spec.label))?;
        let id = task
            .labels
            .iter()
            .position(|l| *l == label)
            .ok_or_else(|| {
                InputError::new(format!("unknown label `{label}`"))
                    .file(t.file.clone())
                    .line(Some(*line))
                    .hint(format!(
                        "the task's classes are {}; list every class in {}",
                        task.labels.join(", "),
                        key("labels")
                    ))
            })?;
        out.push(Example {
            segments,
            label: id,
            spans: Vec::new(),
            question: None,
            group: i as u64,
        });
    }
    Ok(out)
}

/// Hold ⌈fraction·n⌉ of train's rows out as test, drawn with the fixed seed of the task.
fn hold_out(name: &str, train: &Table, fraction: f64) -> Result<HeldOutTest, InputError> {
    let n = train.rows.len();
    let n_test = ((fraction * n as f64) - 1e-9).ceil().max(0.0) as usize;
    // Train keeps at least two rows: one for dev, one to train on.
    if n_test == 0 || n_test + 2 > n {
        return Err(InputError::new(format!(
            "test_fraction {fraction} of {n} rows leaves no test or no train rows"
        ))
        .file(train.file.clone())
        .key(format!("data.custom.{name}.test_fraction"))
        .hint("give more rows, another test_fraction, or a test file (`test = \"…\"`)"));
    }
    let mut rows: Vec<usize> = (0..n).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(0, &["test-split", name]));
    rows.shuffle(&mut rng);
    let mut test = rows[..n_test].to_vec();
    test.sort_unstable();
    Ok(HeldOutTest {
        task: name.to_string(),
        train_file: train.file.clone(),
        fraction,
        train_file_rows: n,
        test,
    })
}
