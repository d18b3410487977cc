//! Hub rows → the text of the official GLUE TSV / SuperGLUE JSONL file.
//!
//! The Hub stores labels as integers of a `ClassLabel` whose names the parquet metadata
//! gives; they are checked against the names each task expects ([`hub_label_names`]),
//! then written as the official file writes them (RTE `entailment`, BoolQ `true`,
//! MultiRC `1`, …). Rows are ordered by `idx` (MultiRC: `idx.answer`), which must number
//! them 0..n−1. Columns the Hub does not carry are filled in: CoLA's source column
//! (`hub`), MRPC's sentence ids and QQP's ids (the row's `idx`); no reader uses them.

use std::path::Path;

use serde_json::{Map, Value, json};
use stab_core::InputError;

use super::{HubDataset, parquet_rows};
use crate::tasks::{TaskDef, TaskText};

/// The names of the Hub's `ClassLabel` of a task, in id order.
pub fn hub_label_names(task: &str) -> &'static [&'static str] {
    match task {
        "cola" => &["unacceptable", "acceptable"],
        "sst2" => &["negative", "positive"],
        "mrpc" => &["not_equivalent", "equivalent"],
        "qqp" => &["not_duplicate", "duplicate"],
        "rte" => &["entailment", "not_entailment"],
        "wnli" => &["not_entailment", "entailment"],
        "cb" => &["entailment", "contradiction", "neutral"],
        _ => &["False", "True"],
    }
}

/// One Hub row, located for messages.
struct At<'a> {
    file: &'a Path,
    row: usize,
    obj: &'a Map<String, Value>,
}

impl<'a> At<'a> {
    fn err(&self, msg: String) -> InputError {
        InputError::new(format!("row {}: {msg}", self.row))
            .file(self.file.display().to_string())
            .hint("the rows must have the columns of the task's Hugging Face dataset (`stab list tasks` names it); check the [data.hub] override")
    }

    fn get(&self, col: &str) -> Result<&'a Value, InputError> {
        self.obj
            .get(col)
            .ok_or_else(|| self.err(format!("no column `{col}`")))
    }

    fn str(&self, col: &str) -> Result<&'a str, InputError> {
        self.get(col)?
            .as_str()
            .ok_or_else(|| self.err(format!("column `{col}` is not a string")))
    }

    /// A text column of a TSV task: no tab or line break, which the format cannot carry.
    fn tsv(&self, col: &str) -> Result<&'a str, InputError> {
        let s = self.str(col)?;
        if s.contains(['\t', '\n', '\r']) {
            return Err(self.err(format!(
                "column `{col}` holds a tab or line break, which the official TSV file cannot carry"
            )));
        }
        Ok(s)
    }

    fn int(&self, col: &str) -> Result<i64, InputError> {
        self.get(col)?
            .as_i64()
            .ok_or_else(|| self.err(format!("column `{col}` is not an integer")))
    }

    fn group(&self, col: &str) -> Result<At<'a>, InputError> {
        let obj = self
            .get(col)?
            .as_object()
            .ok_or_else(|| self.err(format!("column `{col}` is not a struct")))?;
        Ok(At { obj, ..*self })
    }

    /// The label id, in range; −1 (a hidden test label) is refused.
    fn label(&self, def: &TaskDef) -> Result<usize, InputError> {
        let v = self.int("label")?;
        if v == -1 {
            return Err(self.err(
                "label −1: the labels are hidden (a test split is never read as data)".into(),
            ));
        }
        usize::try_from(v)
            .ok()
            .filter(|&v| v < def.labels.len())
            .ok_or_else(|| {
                self.err(format!(
                    "label {v} is outside the {} classes of {}",
                    def.labels.len(),
                    def.name
                ))
            })
    }

    /// The row's position in the official file: `idx`, or MultiRC's `idx.answer`.
    fn position(&self, def: &TaskDef) -> Result<i64, InputError> {
        match def.name {
            "multirc" => self.group("idx")?.int("answer"),
            _ => self.int("idx"),
        }
    }
}

/// Read the shards of one split and write the official file's text.
pub fn convert(
    def: &TaskDef,
    ds: &HubDataset,
    split: &str,
    shards: &[std::path::PathBuf],
) -> Result<TaskText, InputError> {
    let mut tables = Vec::new();
    for file in shards {
        let table = parquet_rows::read(file)?;
        let expected = hub_label_names(def.name);
        if let Some(names) = &table.label_names
            && !names
                .iter()
                .map(String::as_str)
                .eq(expected.iter().copied())
        {
            return Err(InputError::new(format!(
                "the dataset's labels are [{}], but {} expects [{}] in that order",
                names.join(", "),
                def.name,
                expected.join(", ")
            ))
            .file(file.display().to_string())
            .hint(format!(
                "{} is not the dataset stab maps {} to; check the [data.hub] override",
                ds.describe(),
                def.name
            )));
        }
        tables.push((file.as_path(), table.rows));
    }
    let mut rows = Vec::new();
    for (file, objects) in &tables {
        for (row, obj) in objects.iter().enumerate() {
            let at = At { file, row, obj };
            rows.push((at.position(def)?, at));
        }
    }
    rows.sort_by_key(|(p, _)| *p);
    if let Some((i, (p, at))) = rows.iter().enumerate().find(|(i, (p, _))| *p != *i as i64) {
        let what = if i > 0 && rows[i - 1].0 == *p {
            "repeats"
        } else {
            "skips to"
        };
        return Err(at.err(format!(
            "the `idx` column {what} {p} where the official order has {i}: its {} rows are not the official file's rows 0..{}",
            rows.len(),
            rows.len()
        ))
        .hint(format!(
            "stab orders Hub rows by `idx` so that split files apply unchanged; {} {split} does not number its rows that way",
            ds.describe()
        )));
    }
    let ordered: Vec<At> = rows.into_iter().map(|(_, at)| at).collect();
    let text = match def.name {
        "multirc" => multirc(def, &ordered)?,
        _ => {
            let mut lines: Vec<String> = header(def.name).into_iter().map(String::from).collect();
            for at in &ordered {
                lines.push(line(def, at)?);
            }
            lines.join("\n") + "\n"
        }
    };
    let origin = match shards {
        [one] => one.display().to_string(),
        [first, ..] => format!("{} (and {} more shards)", first.display(), shards.len() - 1),
        [] => ds.describe(),
    };
    Ok(TaskText {
        origin: format!("{origin}, as the official {split} file"),
        text,
    })
}

fn header(task: &str) -> Option<&'static str> {
    match task {
        "sst2" => Some("sentence\tlabel"),
        "mrpc" => Some("Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"),
        "qqp" => Some("id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate"),
        "rte" | "wnli" => Some("index\tsentence1\tsentence2\tlabel"),
        _ => None,
    }
}

/// One row of every task but MultiRC, as its official line.
fn line(def: &TaskDef, at: &At) -> Result<String, InputError> {
    let label = at.label(def)?;
    let name = def.labels[label];
    let truth = label == 1;
    let idx = at.int("idx")?;
    Ok(match def.name {
        "cola" => {
            let mark = if truth { "" } else { "*" };
            format!("hub\t{name}\t{mark}\t{}", at.tsv("sentence")?)
        }
        "sst2" => format!("{}\t{name}", at.tsv("sentence")?),
        "mrpc" => format!("{name}\t{idx}\t{idx}\t{}\t{}", at.tsv("sentence1")?, at.tsv("sentence2")?),
        "qqp" => format!("{idx}\t{idx}\t{idx}\t{}\t{}\t{name}", at.tsv("question1")?, at.tsv("question2")?),
        "rte" | "wnli" => format!("{idx}\t{}\t{}\t{name}", at.tsv("sentence1")?, at.tsv("sentence2")?),
        "cb" => json!({"premise": at.str("premise")?, "hypothesis": at.str("hypothesis")?, "label": name, "idx": idx}).to_string(),
        "boolq" => json!({"question": at.str("question")?, "passage": at.str("passage")?, "idx": idx, "label": truth}).to_string(),
        "wic" => json!({
            "word": at.str("word")?, "sentence1": at.str("sentence1")?, "sentence2": at.str("sentence2")?,
            "idx": idx, "label": truth,
            "start1": at.int("start1")?, "start2": at.int("start2")?, "end1": at.int("end1")?, "end2": at.int("end2")?,
        })
        .to_string(),
        "wsc" => json!({
            "text": at.str("text")?,
            "target": {
                "span1_index": at.int("span1_index")?, "span1_text": at.str("span1_text")?,
                "span2_index": at.int("span2_index")?, "span2_text": at.str("span2_text")?,
            },
            "idx": idx, "label": truth,
        })
        .to_string(),
        other => unreachable!("task {other} has no Hub line format"),
    })
}

/// MultiRC's flat answer rows, nested back into passages → questions → answers.
fn multirc(def: &TaskDef, rows: &[At]) -> Result<String, InputError> {
    let mut lines = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut passage: Option<(i64, Value)> = None;
    let flush = |passage: &mut Option<(i64, Value)>, lines: &mut Vec<String>| {
        if let Some((_, p)) = passage.take() {
            lines.push(p.to_string());
        }
    };
    for at in rows {
        let idx = at.group("idx")?;
        let (p, q, a) = (
            idx.int("paragraph")?,
            idx.int("question")?,
            idx.int("answer")?,
        );
        let text = at.str("paragraph")?;
        if passage.as_ref().is_none_or(|(cur, _)| *cur != p) {
            flush(&mut passage, &mut lines);
            if !seen.insert(p) {
                return Err(at.err(format!(
                    "passage {p} appears again after other passages: its answers are not contiguous"
                )));
            }
            passage = Some((
                p,
                json!({"idx": p, "passage": {"text": text, "questions": []}}),
            ));
        }
        let (_, obj) = passage.as_mut().expect("set above");
        if obj["passage"]["text"] != text {
            return Err(at.err(format!("passage {p} has two different texts")));
        }
        let questions = obj["passage"]["questions"]
            .as_array_mut()
            .expect("an array");
        if questions.last().is_none_or(|last| last["idx"] != q) {
            if questions.iter().any(|x| x["idx"] == q) {
                return Err(at.err(format!("question {q} appears again after other questions")));
            }
            questions.push(json!({"question": at.str("question")?, "answers": [], "idx": q}));
        }
        let answers = questions
            .last_mut()
            .and_then(|x| x["answers"].as_array_mut())
            .expect("an array");
        answers.push(json!({"text": at.str("answer")?, "idx": a, "label": at.label(def)?}));
    }
    flush(&mut passage, &mut lines);
    Ok(lines.join("\n") + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task_def;

    /// Lines of hand-made Hub rows, parsed back by the task's reader.
    fn parse(task: &str, rows: &[Value]) -> crate::TaskData {
        let def = task_def(task).unwrap();
        let file = Path::new("hand.parquet");
        let mut lines: Vec<String> = header(task).into_iter().map(String::from).collect();
        for (row, v) in rows.iter().enumerate() {
            let at = At {
                file,
                row,
                obj: v.as_object().unwrap(),
            };
            lines.push(line(def, &at).unwrap());
        }
        let text = TaskText {
            origin: "hand".into(),
            text: lines.join("\n") + "\n",
        };
        def.parse(&text, &text).unwrap()
    }

    #[test]
    fn qqp_and_boolq_rows_become_their_official_lines() {
        // Neither has a slice in testdata (no QQP files, no BoolQ train file).
        let qqp = parse(
            "qqp",
            &[
                json!({"question1": "How do I learn Rust?", "question2": "What is the best way to learn Rust?", "label": 1, "idx": 0}),
                json!({"question1": "Why is the sky blue?", "question2": "Why is grass green?", "label": 0, "idx": 1}),
            ],
        );
        assert_eq!(qqp.train.len(), 2);
        assert_eq!(
            qqp.train[0].segments,
            [
                "How do I learn Rust?",
                "What is the best way to learn Rust?"
            ]
        );
        assert_eq!((qqp.train[0].label, qqp.train[1].label), (1, 0));
        let boolq = parse(
            "boolq",
            &[
                json!({"question": "is the sky blue", "passage": "The sky is blue by day.", "idx": 0, "label": 1}),
            ],
        );
        // BoolQ puts the question first; label 1 is `True`.
        assert_eq!(
            boolq.train[0].segments,
            ["is the sky blue", "The sky is blue by day."]
        );
        assert_eq!(
            task_def("boolq").unwrap().labels[boolq.train[0].label],
            "True"
        );
    }

    #[test]
    fn a_text_a_tsv_cannot_carry_is_refused() {
        let def = task_def("rte").unwrap();
        let v = json!({"sentence1": "a\tb", "sentence2": "c", "label": 0, "idx": 0});
        let at = At {
            file: Path::new("x.parquet"),
            row: 3,
            obj: v.as_object().unwrap(),
        };
        let e = line(def, &at).unwrap_err().to_string();
        assert!(
            e.contains("row 3") && e.contains("`sentence1`") && e.contains("x.parquet"),
            "{e}"
        );
    }
}
