//! Span projection on real WSC and WiC rows with a WordPiece (tiny-bert) and a byte-level
//! BPE (tiny-roberta) tokenizer: the tokens of each projected span spell exactly the span's
//! text (after the tokenizer's own normalisation), plus hand-checked token indices.

use std::path::PathBuf;

use stab_data::encode::{model_input, project_span, separator_for};
use stab_data::task_def;
use stab_models::{EncoderConfig, TextEncoder};

#[path = "../../testsupport/assets.rs"]
mod assets;

/// `testdata/`: the fixtures and the sliced task files, laid out like `shared/`.
fn shared() -> PathBuf {
    assets::root().join("testdata")
}

fn tokenizer(name: &str) -> TextEncoder {
    let dir = shared().join("fixtures").join(name);
    TextEncoder::from_dir(&dir, EncoderConfig::from_dir(&dir).unwrap().pad_id()).unwrap()
}

/// Lower-case, strip accents (tiny-bert normalises so) and drop non-alphanumerics.
fn norm(s: &str, bert: bool) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .map(|c| {
            if bert {
                c.to_lowercase().next().unwrap()
            } else {
                c
            }
        })
        .collect()
}

/// Check the first `n` rows of a task; returns how many spans were verified.
fn check(task: &str, model: &str, n: usize) -> usize {
    let bert = model == "tiny-bert";
    let tok = tokenizer(model);
    let pad = tok.tokenizer().id_to_token(tok.pad_id).unwrap();
    let sep = separator_for(&pad);
    let data = task_def(task)
        .unwrap()
        .load(&shared().join("data"))
        .unwrap();
    let mut verified = 0;
    for e in data.train.iter().take(n) {
        let (input, spans) = model_input(e, sep);
        let batch = tok.encode(std::slice::from_ref(&input), 256).unwrap();
        let tokens = tok.tokens(&batch, 0);
        for &(seq, a, b) in &spans {
            let text = if seq == 0 {
                &input.text
            } else {
                input.text_pair.as_ref().unwrap()
            };
            let piece: String = text.chars().skip(a).take(b - a).collect();
            let (f, l) = project_span(&batch, 0, seq, a, b).unwrap();
            let spelled: String = tokens[f..=l]
                .iter()
                .map(|t| t.trim_start_matches("##").trim_start_matches('Ġ'))
                .collect();
            if spelled.contains("[UNK]") {
                continue; // tiny-bert's 1000-word vocabulary maps unseen words to [UNK]
            }
            // The tokens cover the span, and no more than its words.
            let (ns, np) = (norm(&spelled, bert), norm(&piece, bert));
            assert!(
                ns.contains(&np) || np.contains(&ns),
                "{task}/{model}: span `{piece}` projected to {:?} = `{spelled}`",
                &tokens[f..=l]
            );
            assert!(
                ns.len() <= np.len() + 12,
                "{task}/{model}: span `{piece}` overreaches to `{spelled}`"
            );
            assert!(
                f >= 1 && l < batch.lengths()[0] - 1,
                "inside the special tokens"
            );
            verified += 1;
        }
    }
    verified
}

#[test]
fn wsc_and_wic_spans_with_wordpiece_and_bpe() {
    let mut total = 0;
    for model in ["tiny-bert", "tiny-roberta"] {
        for task in ["wsc", "wic"] {
            total += check(task, model, 15);
        }
    }
    eprintln!("{total} spans verified");
    assert!(total >= 40, "only {total} spans verified");
}

#[test]
fn hand_checked_indices() {
    // RoBERTa BPE, tokens: <s> word </s> </s> sentence1 </s></s> sentence2 </s>.
    let tok = tokenizer("tiny-roberta");
    let e = stab_data::Example {
        segments: vec!["cat".into(), "The cat sat.".into(), "A cat ran.".into()],
        label: 1,
        spans: vec![(1, 4, 7), (2, 2, 5)],
        question: None,
        group: 0,
    };
    let (input, spans) = model_input(&e, "</s></s>");
    let batch = tok.encode(&[input], 64).unwrap();
    let tokens = tok.tokens(&batch, 0);
    let (f1, l1) = project_span(&batch, 0, spans[0].0, spans[0].1, spans[0].2).unwrap();
    let (f2, l2) = project_span(&batch, 0, spans[1].0, spans[1].1, spans[1].2).unwrap();
    let joined = |f: usize, l: usize| tokens[f..=l].concat();
    assert_eq!(joined(f1, l1), "Ġcat", "{tokens:?}");
    assert_eq!(joined(f2, l2), "Ġcat", "{tokens:?}");
    assert!(
        f1 < f2 && tokens[..f2].iter().filter(|t| *t == "</s>").count() == 4,
        "{tokens:?}"
    );
    // BERT WordPiece: [CLS] the cat sat . [SEP] → "cat" is token 2.
    let tok = tokenizer("tiny-bert");
    let e = stab_data::Example {
        segments: vec!["The cat sat.".into()],
        label: 0,
        spans: vec![(0, 4, 7), (0, 0, 3)],
        question: None,
        group: 0,
    };
    let (input, spans) = model_input(&e, "[SEP]");
    let batch = tok.encode(&[input], 64).unwrap();
    assert_eq!(
        project_span(&batch, 0, 0, spans[0].1, spans[0].2).unwrap(),
        (2, 2)
    );
    assert_eq!(
        project_span(&batch, 0, 0, spans[1].1, spans[1].2).unwrap(),
        (1, 1)
    );
    // A span truncated away is an error, not a silent wrong index.
    let batch = tok
        .encode(
            &[stab_models::TextInput::single(
                "one two three four five six seven",
            )],
            4,
        )
        .unwrap();
    assert!(project_span(&batch, 0, 0, 30, 35).is_err());
}

#[test]
fn multirc_truncates_only_the_paragraph() {
    for model in ["tiny-bert", "tiny-roberta"] {
        let tok = tokenizer(model);
        let data = task_def("multirc")
            .unwrap()
            .load(&shared().join("data"))
            .unwrap();
        let rows: Vec<_> = data.test.iter().take(3).cloned().collect();
        let batch = stab_data::encode::encode_rows(&tok, &rows, 64).unwrap();
        assert_eq!(batch.seq_len, 64, "long paragraphs fill max_len");
        for (r, e) in rows.iter().enumerate() {
            let tokens = tok.tokens(&batch, r);
            let spelled: String = tokens
                .iter()
                .map(|t| t.trim_start_matches("##").trim_start_matches('Ġ'))
                .collect::<String>()
                .to_lowercase();
            let squash = |s: &str| {
                s.chars()
                    .filter(|c| c.is_alphanumeric())
                    .collect::<String>()
                    .to_lowercase()
            };
            // The question's last word and the answer's first word are still there.
            let q_last = squash(e.segments[1].split_whitespace().last().unwrap());
            let a_first = squash(e.segments[2].split_whitespace().next().unwrap());
            if !spelled.contains("[unk]") {
                assert!(
                    squash(&spelled).contains(&q_last),
                    "{model}: question cut: {tokens:?}"
                );
                assert!(
                    squash(&spelled).contains(&a_first),
                    "{model}: answer cut: {tokens:?}"
                );
            }
            assert_eq!(batch.lengths()[r], 64);
        }
    }
}
