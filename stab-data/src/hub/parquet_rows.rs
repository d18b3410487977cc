//! Rows of a Hub parquet file as JSON objects (column name → value), read with the
//! `parquet` crate's record reader, and the class names the file's Hugging Face metadata
//! gives its `ClassLabel` columns.

use std::path::Path;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use serde_json::{Map, Value};
use stab_core::InputError;

/// The most rows one file may declare (the largest task, QQP, has 364k).
const MAX_ROWS: u64 = 100_000_000;

/// One parquet file's rows and its label names (when the file says them).
pub struct ParquetRows {
    pub rows: Vec<Map<String, Value>>,
    /// The `label` column's class names.
    pub label_names: Option<Vec<String>>,
    /// Every `ClassLabel` column's class names, in id order.
    pub class_names: std::collections::BTreeMap<String, Vec<String>>,
}

fn bad(file: &Path, what: String) -> InputError {
    InputError::new(what)
        .file(file.display().to_string())
        .hint("the file must be a parquet file of a Hugging Face dataset; delete it from the cache and fetch again (`stab data fetch`)")
}

/// Read every row of `file`.
pub fn read(file: &Path) -> Result<ParquetRows, InputError> {
    let reader = std::fs::File::open(file)
        .map_err(|e| bad(file, format!("cannot open: {e}")))
        .and_then(|f| {
            SerializedFileReader::new(f).map_err(|e| bad(file, format!("not a parquet file: {e}")))
        })?;
    let n = reader.metadata().file_metadata().num_rows();
    let limit = MAX_ROWS;
    if n < 0 || n as u64 > limit {
        return Err(bad(
            file,
            format!("the file declares {n} rows (at most {limit} are read)"),
        ));
    }
    let class_names = class_names(&reader);
    let label_names = class_names.get("label").cloned();
    let mut rows = Vec::with_capacity(n as usize);
    let iter = reader
        .get_row_iter(None)
        .map_err(|e| bad(file, format!("cannot read the rows: {e}")))?;
    for (i, row) in iter.enumerate() {
        let row = row.map_err(|e| bad(file, format!("row {i}: {e}")))?;
        let object = row
            .get_column_iter()
            .map(|(name, field)| (name.clone(), json(field)))
            .collect();
        rows.push(object);
    }
    Ok(ParquetRows {
        rows,
        label_names,
        class_names,
    })
}

/// A parquet value as JSON: strings, integers, booleans, structs; anything else the
/// task readers never ask for becomes null.
fn json(field: &Field) -> Value {
    match field {
        Field::Null => Value::Null,
        Field::Bool(b) => Value::Bool(*b),
        Field::Byte(v) => (*v).into(),
        Field::Short(v) => (*v).into(),
        Field::Int(v) => (*v).into(),
        Field::Long(v) => (*v).into(),
        Field::UByte(v) => (*v).into(),
        Field::UShort(v) => (*v).into(),
        Field::UInt(v) => (*v).into(),
        Field::ULong(v) => (*v).into(),
        Field::Str(s) => Value::String(s.clone()),
        Field::Group(row) => Value::Object(
            row.get_column_iter()
                .map(|(name, field)| (name.clone(), json(field)))
                .collect(),
        ),
        _ => Value::Null,
    }
}

/// The `names` of every `ClassLabel` in `info.features` of the file's `huggingface`
/// metadata, which the `datasets` library writes into every parquet file it makes.
fn class_names(
    reader: &SerializedFileReader<std::fs::File>,
) -> std::collections::BTreeMap<String, Vec<String>> {
    let features = || -> Option<Map<String, Value>> {
        let kv = reader.metadata().file_metadata().key_value_metadata()?;
        let text = kv.iter().find(|k| k.key == "huggingface")?.value.as_ref()?;
        let meta: Value = serde_json::from_str(text).ok()?;
        meta.pointer("/info/features")?.as_object().cloned()
    };
    features()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(column, f)| {
            let names = f.get("names")?.as_array()?;
            let names: Option<Vec<String>> = names
                .iter()
                .map(|n| n.as_str().map(str::to_string))
                .collect();
            Some((column, names?))
        })
        .collect()
}
