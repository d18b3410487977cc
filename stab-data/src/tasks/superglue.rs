//! SuperGLUE JSONL readers (one JSON object per line, official v2 files).

use serde_json::Value;
use stab_core::InputError;

use super::{Example, TaskDef, TaskText};

/// The most rows (and passage ids) a task file may have.
const MAX_ROWS: u64 = 100_000_000;

struct Lines<'a> {
    src: &'a TaskText,
}

impl Lines<'_> {
    fn err(&self, line: usize, m: String) -> InputError {
        InputError::new(m)
            .file(self.src.origin.clone())
            .line(Some(line))
            .hint("each line must be one JSON object of the official SuperGLUE file")
    }

    /// Parsed objects with their 1-based line numbers.
    fn read(&self) -> Result<Vec<(usize, Value)>, InputError> {
        let mut out = Vec::new();
        for (i, line) in self.src.text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(line)
                .map_err(|e| self.err(i + 1, format!("invalid JSON: {e}")))?;
            if !v.is_object() {
                return Err(self.err(i + 1, "expected a JSON object".into()));
            }
            out.push((i + 1, v));
        }
        Ok(out)
    }

    fn str<'v>(&self, v: &'v Value, key: &str, line: usize) -> Result<&'v str, InputError> {
        v.get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| self.err(line, format!("missing string field `{key}`")))
    }

    fn uint(&self, v: &Value, key: &str, line: usize) -> Result<u64, InputError> {
        v.get(key)
            .and_then(Value::as_u64)
            .ok_or_else(|| self.err(line, format!("missing non-negative integer field `{key}`")))
    }

    /// A label as the string of the task's label set (`true` → "True").
    fn label(&self, def: &TaskDef, v: &Value, line: usize) -> Result<usize, InputError> {
        let raw = v
            .get("label")
            .ok_or_else(|| self.err(line, "missing field `label`".into()))?;
        let s = match raw {
            Value::Bool(true) => "True".to_string(),
            Value::Bool(false) => "False".to_string(),
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            other => other.to_string(),
        };
        def.label_id(&s, &self.src.origin, line)
    }
}

fn example(segments: Vec<String>, label: usize, group: u64) -> Example {
    Example {
        segments,
        label,
        spans: Vec::new(),
        question: None,
        group,
    }
}

/// CB: premise, hypothesis, label.
pub fn cb(src: &TaskText, def: &TaskDef) -> Result<Vec<Example>, InputError> {
    let l = Lines { src };
    l.read()?
        .into_iter()
        .enumerate()
        .map(|(k, (n, v))| {
            Ok(example(
                vec![
                    l.str(&v, "premise", n)?.into(),
                    l.str(&v, "hypothesis", n)?.into(),
                ],
                l.label(def, &v, n)?,
                k as u64,
            ))
        })
        .collect()
}

/// BoolQ: question first, then passage.
pub fn boolq(src: &TaskText, def: &TaskDef) -> Result<Vec<Example>, InputError> {
    let l = Lines { src };
    l.read()?
        .into_iter()
        .enumerate()
        .map(|(k, (n, v))| {
            Ok(example(
                vec![
                    l.str(&v, "question", n)?.into(),
                    l.str(&v, "passage", n)?.into(),
                ],
                l.label(def, &v, n)?,
                k as u64,
            ))
        })
        .collect()
}

/// Character spans (start, end exclusive) of the whitespace-separated words of `text`.
pub fn word_char_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = None;
    let mut n = 0;
    for (i, c) in text.chars().enumerate() {
        if c.is_whitespace() {
            if let Some(s) = start.take() {
                spans.push((s, i));
            }
        } else if start.is_none() {
            start = Some(i);
        }
        n = i + 1;
    }
    if let Some(s) = start {
        spans.push((s, n));
    }
    spans
}

/// WSC: the text, span1 = noun phrase at word `span1_index` (as many words as
/// `span1_text`), span2 = pronoun at `span2_index`.
pub fn wsc(src: &TaskText, def: &TaskDef) -> Result<Vec<Example>, InputError> {
    let l = Lines { src };
    l.read()?
        .into_iter()
        .enumerate()
        .map(|(k, (n, v))| {
            let text = l.str(&v, "text", n)?;
            let target = v
                .get("target")
                .ok_or_else(|| l.err(n, "missing object field `target`".into()))?;
            let words = word_char_spans(text);
            let mut spans = Vec::new();
            for which in ["span1", "span2"] {
                let idx = l.uint(target, &format!("{which}_index"), n)? as usize;
                let len = l
                    .str(target, &format!("{which}_text"), n)?
                    .split_whitespace()
                    .count()
                    .max(1);
                if idx.checked_add(len).is_none_or(|end| end > words.len()) {
                    return Err(l.err(
                        n,
                        format!(
                            "{which}_index {idx} (+{len} words) is beyond the text's {} words",
                            words.len()
                        ),
                    ));
                }
                spans.push((0, words[idx].0, words[idx + len - 1].1));
            }
            let mut e = example(vec![text.to_string()], l.label(def, &v, n)?, k as u64);
            e.spans = spans;
            Ok(e)
        })
        .collect()
}

/// WiC: word, sentence1, sentence2; spans [start1, end1) in sentence1, [start2, end2) in sentence2.
pub fn wic(src: &TaskText, def: &TaskDef) -> Result<Vec<Example>, InputError> {
    let l = Lines { src };
    l.read()?
        .into_iter()
        .enumerate()
        .map(|(k, (n, v))| {
            let s1 = l.str(&v, "sentence1", n)?;
            let s2 = l.str(&v, "sentence2", n)?;
            let (a, b) = (
                l.uint(&v, "start1", n)? as usize,
                l.uint(&v, "end1", n)? as usize,
            );
            let (c, d) = (
                l.uint(&v, "start2", n)? as usize,
                l.uint(&v, "end2", n)? as usize,
            );
            if a >= b || b > s1.chars().count() || c >= d || d > s2.chars().count() {
                return Err(l.err(n, "start/end offsets fall outside their sentence".into()));
            }
            let mut e = example(
                vec![l.str(&v, "word", n)?.into(), s1.into(), s2.into()],
                l.label(def, &v, n)?,
                k as u64,
            );
            e.spans = vec![(1, a, b), (2, c, d)];
            Ok(e)
        })
        .collect()
}

/// MultiRC: one row per answer with segments [paragraph, question, answer]; the template
/// joins the first two with a space (`paragraph question`, no separator) and pairs them with
/// the answer. Rows carry the global question idx and are grouped by passage for the split.
pub fn multirc(src: &TaskText, def: &TaskDef) -> Result<Vec<Example>, InputError> {
    let l = Lines { src };
    let mut out = Vec::new();
    for (n, v) in l.read()? {
        let passage_idx = l.uint(&v, "idx", n)?;
        // The passage idx is the split's group: a row number, bounded like one.
        if passage_idx >= MAX_ROWS {
            return Err(l.err(
                n,
                format!("passage idx {passage_idx} is not a row number (at most {MAX_ROWS})"),
            ));
        }
        let passage = v
            .get("passage")
            .ok_or_else(|| l.err(n, "missing object field `passage`".into()))?;
        let text = l.str(passage, "text", n)?;
        let questions = passage
            .get("questions")
            .and_then(Value::as_array)
            .ok_or_else(|| l.err(n, "missing array `passage.questions`".into()))?;
        for q in questions {
            let qtext = l.str(q, "question", n)?;
            let qidx = l.uint(q, "idx", n)?;
            let answers = q
                .get("answers")
                .and_then(Value::as_array)
                .ok_or_else(|| l.err(n, "missing array `answers`".into()))?;
            for a in answers {
                let mut e = example(
                    vec![
                        text.to_string(),
                        qtext.to_string(),
                        l.str(a, "text", n)?.into(),
                    ],
                    l.label(def, a, n)?,
                    passage_idx,
                );
                e.question = Some(qidx);
                out.push(e);
            }
        }
    }
    Ok(out)
}
