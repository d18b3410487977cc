//! GLUE TSV readers. The official files are tab-separated without quoting (quotes are
//! literal text), may start with a UTF-8 BOM (MRPC), and may lack a final newline (CoLA dev).

use stab_core::InputError;

use super::{Example, TaskDef, TaskText};

/// Rows of a TSV file as (1-based line, fields), header skipped when `header`.
fn rows(
    src: &TaskText,
    header: Option<&[&str]>,
    columns: usize,
) -> Result<Vec<(usize, Vec<String>)>, InputError> {
    let file = src.origin.clone();
    let mut out = Vec::new();
    for (i, line) in src.text.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if let (0, Some(names)) = (i, header) {
            let found: Vec<&str> = line.split('\t').map(str::trim).collect();
            if !found
                .iter()
                .map(|f| f.to_lowercase())
                .eq(names.iter().map(|n| n.to_lowercase()))
            {
                return Err(InputError::new(format!(
                    "unexpected header: expected the columns {}, found {}",
                    names.join(" | "),
                    found.join(" | ")
                ))
                .file(file.clone())
                .line(Some(1))
                .hint(
                    "the file must be the official GLUE TSV, whose first line names its columns",
                ));
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        let fields: Vec<String> = line.split('\t').map(str::to_string).collect();
        if fields.len() != columns {
            return Err(InputError::new(format!(
                "expected {columns} tab-separated columns, found {}",
                fields.len()
            ))
            .file(file.clone())
            .line(Some(i + 1))
            .hint("the file must be the official GLUE TSV (no quoting; one example per line)"));
        }
        out.push((i + 1, fields));
    }
    Ok(out)
}

fn build(
    src: &TaskText,
    def: &TaskDef,
    header: Option<&[&str]>,
    columns: usize,
    label: usize,
    texts: &[usize],
) -> Result<Vec<Example>, InputError> {
    rows(src, header, columns)?
        .into_iter()
        .enumerate()
        .map(|(k, (line, f))| {
            Ok(Example {
                segments: texts.iter().map(|&c| f[c].clone()).collect(),
                label: def.label_id(f[label].trim(), &src.origin, line)?,
                spans: Vec::new(),
                question: None,
                group: k as u64,
            })
        })
        .collect()
}

/// CoLA: no header; source, label, original label, sentence.
pub fn cola(src: &TaskText, def: &TaskDef) -> Result<Vec<Example>, InputError> {
    build(src, def, None, 4, 1, &[3])
}

/// SST-2: sentence, label.
pub fn sst2(src: &TaskText, def: &TaskDef) -> Result<Vec<Example>, InputError> {
    build(src, def, Some(&["sentence", "label"]), 2, 1, &[0])
}

/// MRPC: Quality, #1 ID, #2 ID, #1 String, #2 String.
pub fn mrpc(src: &TaskText, def: &TaskDef) -> Result<Vec<Example>, InputError> {
    build(
        src,
        def,
        Some(&["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]),
        5,
        0,
        &[3, 4],
    )
}

/// QQP: id, qid1, qid2, question1, question2, is_duplicate.
pub fn qqp(src: &TaskText, def: &TaskDef) -> Result<Vec<Example>, InputError> {
    build(
        src,
        def,
        Some(&[
            "id",
            "qid1",
            "qid2",
            "question1",
            "question2",
            "is_duplicate",
        ]),
        6,
        5,
        &[3, 4],
    )
}

/// RTE and WNLI: index, sentence1, sentence2, label.
pub fn rte_wnli(src: &TaskText, def: &TaskDef) -> Result<Vec<Example>, InputError> {
    build(
        src,
        def,
        Some(&["index", "sentence1", "sentence2", "label"]),
        4,
        3,
        &[1, 2],
    )
}
