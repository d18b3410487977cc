//! From task rows to model inputs: the template's texts (docs/methods.md §3.1) and the
//! projection of WSC/WiC character spans onto token indices through the tokenizer's
//! offset mapping — the first and last token of the span's text that overlap it.

use stab_core::InputError;
use stab_text::{TextEncoder, TextInput, TokenBatch};

use crate::tasks::Example;

/// The separator the tokenizer recognises as special text between WiC's sentences:
/// `</s></s>` for RoBERTa (jiant's `<s> w </s></s> s1 </s></s> s2 </s>`), `[SEP]` for BERT.
pub fn separator_for(pad_token: &str) -> &'static str {
    if pad_token == "<pad>" {
        "</s></s>"
    } else {
        "[SEP]"
    }
}

/// The tokenizer input of a row, and its spans as (sequence id, char start, char end).
/// MultiRC's [paragraph, question, answer] become (`paragraph question`, answer). WiC's
/// three texts become the pair (word, sentence1 ⟨sep⟩ sentence2), and the sentence-2
/// span is shifted by the characters before it.
pub fn model_input(e: &Example, separator: &str) -> (TextInput, Vec<(usize, usize, usize)>) {
    match e.segments.len() {
        1 => (TextInput::single(e.segments[0].clone()), e.spans.clone()),
        2 => (
            TextInput::pair(e.segments[0].clone(), e.segments[1].clone()),
            e.spans.clone(),
        ),
        3 if e.question.is_some() => (
            TextInput::pair(
                format!("{} {}", e.segments[0], e.segments[1]),
                e.segments[2].clone(),
            ),
            Vec::new(),
        ),
        _ => {
            let shift = e.segments[1].chars().count() + separator.chars().count();
            let second = format!("{}{separator}{}", e.segments[1], e.segments[2]);
            let spans = e
                .spans
                .iter()
                .map(|&(seg, a, b)| match seg {
                    0 => (0, a, b),
                    1 => (1, a, b),
                    _ => (1, a + shift, b + shift),
                })
                .collect();
            (TextInput::pair(e.segments[0].clone(), second), spans)
        }
    }
}

/// Tokenize rows as one batch (truncated `longest_first` to `max_len`), with MultiRC's
/// rule first: only the paragraph is cut, to max_len − specials − len(question) −
/// len(answer) tokens, so the question and answer always survive (docs/methods.md §3.1).
pub fn encode_rows(
    tok: &TextEncoder,
    rows: &[Example],
    max_len: usize,
) -> stab_core::Result<TokenBatch> {
    let pad = tok.tokenizer().id_to_token(tok.pad_id).unwrap_or_default();
    let sep = separator_for(&pad);
    let specials = tok.pair_special_tokens();
    let mut inputs = Vec::with_capacity(rows.len());
    for e in rows {
        let (mut input, _) = model_input(e, sep);
        if e.question.is_some() && e.segments.len() == 3 {
            // Bounded prefixes: no count below needs more than max_len + 1 tokens, so a
            // huge paragraph, question or answer costs no more than a short one.
            let need = max_len + 1;
            let para = tok.bounded_prefix(&e.segments[0], need)?;
            let question = tok.bounded_prefix(&e.segments[1], need)?;
            let para_chars = para.chars().count();
            let joined = tok.encode_plain(&format!("{para} {question}"))?;
            let offsets = joined.get_offsets();
            let q_start = offsets
                .iter()
                .position(|o| o.0 > para_chars)
                .unwrap_or(offsets.len());
            let q_len = offsets.len() - q_start;
            let a_len = tok.count_tokens_upto(&e.segments[2], need)?;
            let budget = max_len.saturating_sub(specials + q_len + a_len);
            if q_start > budget {
                let cut = if budget == 0 {
                    0
                } else {
                    offsets[budget - 1].1
                };
                let para: String = e.segments[0].chars().take(cut).collect();
                input.text = format!("{para} {}", e.segments[1]);
            }
        }
        inputs.push(input);
    }
    tok.encode(&inputs, max_len)
}

/// One row tokenized for training: unpadded ids, its spans as inclusive token ranges,
/// its label and (MultiRC) question id.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedRow {
    pub input_ids: Vec<i64>,
    pub token_type_ids: Vec<i64>,
    /// Span-comparison tasks: the two spans' [first, last] token positions.
    pub spans: Vec<(usize, usize)>,
    pub label: usize,
    pub question: Option<u64>,
    /// A span lay (partly) beyond `max_len` and was clipped to the last token of its text.
    pub clipped: bool,
}

/// Tokenize every row (in chunks of 256, each padded to its own longest row, then
/// stripped of padding) and project the spans of span-comparison tasks. A span that
/// truncation cut away is clipped to the last kept token of its text (or the last real
/// token), and the row is marked `clipped`, so no row is silently lost from a split.
pub fn encode_examples(
    tok: &TextEncoder,
    rows: &[Example],
    max_len: usize,
) -> stab_core::Result<Vec<EncodedRow>> {
    let pad = tok.tokenizer().id_to_token(tok.pad_id).unwrap_or_default();
    let sep = separator_for(&pad);
    let mut out = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(256) {
        let batch = encode_rows(tok, chunk, max_len)?;
        let lengths = batch.lengths();
        for (r, e) in chunk.iter().enumerate() {
            let n = lengths[r];
            let (_, char_spans) = model_input(e, sep);
            let mut clipped = false;
            let spans = char_spans
                .iter()
                .map(|&(seq, a, b)| {
                    project_span(&batch, r, seq, a, b).unwrap_or_else(|_| {
                        clipped = true;
                        let last = (0..n)
                            .rev()
                            .find(|&k| batch.sequence_ids[r].get(k).copied().flatten() == Some(seq))
                            .unwrap_or(n.saturating_sub(2));
                        (last, last)
                    })
                })
                .collect::<Vec<_>>();
            out.push(EncodedRow {
                input_ids: batch.row(&batch.input_ids, r)[..n].to_vec(),
                token_type_ids: batch.row(&batch.token_type_ids, r)[..n].to_vec(),
                spans,
                label: e.label,
                question: e.question,
                clipped,
            });
        }
    }
    Ok(out)
}

/// Pad rows into one batch (right padding with `pad_id`, mask 0 on padding).
pub fn collate(rows: &[&EncodedRow], pad_id: i64) -> TokenBatch {
    let seq_len = rows.iter().map(|r| r.input_ids.len()).max().unwrap_or(0);
    let mut b = TokenBatch {
        batch: rows.len(),
        seq_len,
        input_ids: Vec::with_capacity(rows.len() * seq_len),
        attention_mask: Vec::with_capacity(rows.len() * seq_len),
        token_type_ids: Vec::with_capacity(rows.len() * seq_len),
        offsets: Vec::new(),
        sequence_ids: Vec::new(),
    };
    for r in rows {
        let pad = seq_len - r.input_ids.len();
        b.input_ids.extend(
            r.input_ids
                .iter()
                .copied()
                .chain(std::iter::repeat_n(pad_id, pad)),
        );
        b.attention_mask
            .extend(std::iter::repeat_n(1, r.input_ids.len()).chain(std::iter::repeat_n(0, pad)));
        b.token_type_ids.extend(
            r.token_type_ids
                .iter()
                .copied()
                .chain(std::iter::repeat_n(0, pad)),
        );
    }
    b
}

/// Token indices [first, last] (inclusive, positions in the padded row, so `<s>`/`[CLS]`
/// is 0) of the tokens of sequence `seq` whose character offsets overlap [start, end).
pub fn project_span(
    batch: &TokenBatch,
    row: usize,
    seq: usize,
    start: usize,
    end: usize,
) -> Result<(usize, usize), InputError> {
    let hits: Vec<usize> = (0..batch.seq_len)
        .filter(|&k| batch.sequence_ids[row].get(k).copied().flatten() == Some(seq))
        .filter(|&k| {
            let (a, b) = batch.offsets[row][k];
            a < end && b > start
        })
        .collect();
    match (hits.first(), hits.last()) {
        (Some(&f), Some(&l)) => Ok((f, l)),
        _ => Err(InputError::new(format!(
            "the span [{start}, {end}) of text {seq} has no token in row {row}"
        ))
        .hint("it was truncated away; raise max_len")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wic_shift_moves_the_second_span() {
        let e = Example {
            segments: vec!["bank".into(), "a river bank".into(), "the bank paid".into()],
            label: 1,
            spans: vec![(1, 8, 12), (2, 4, 8)],
            question: None,
            group: 0,
        };
        let (input, spans) = model_input(&e, "</s></s>");
        assert_eq!(
            input.text_pair.as_deref(),
            Some("a river bank</s></s>the bank paid")
        );
        let second: String = input
            .text_pair
            .unwrap()
            .chars()
            .skip(spans[1].1)
            .take(spans[1].2 - spans[1].1)
            .collect();
        assert_eq!(second, "bank");
        assert_eq!(spans[0], (1, 8, 12));
    }
}
