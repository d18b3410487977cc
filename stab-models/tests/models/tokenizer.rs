//! Tokenizers built from the classic vocabulary files give the same ids as `tokenizer.json`
//! (checked against the golden ids), and stab's padding/truncation override what
//! `tokenizer.json` has built in.

use std::path::PathBuf;

use serde_json::Value;
use stab_models::{EncoderConfig, TextEncoder, TextInput};

use crate::assets;

/// `testdata/`: the fixtures and the sliced task files, laid out like `shared/`.
fn shared() -> PathBuf {
    assets::root().join("testdata")
}

fn golden_ids(name: &str) -> (Vec<TextInput>, Vec<i64>, usize) {
    let g: Value = serde_json::from_str(
        &std::fs::read_to_string(shared().join(format!("fixtures/golden/{name}.json"))).unwrap(),
    )
    .unwrap();
    let inputs = g["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| TextInput {
            text: i["text"].as_str().unwrap().into(),
            text_pair: i["text_pair"].as_str().map(String::from),
        })
        .collect();
    let ids = g["input_ids"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_i64().unwrap()))
        .collect();
    (
        inputs,
        ids,
        g["tokenizer_settings"]["max_length"].as_u64().unwrap() as usize,
    )
}

fn without_tokenizer_json(name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    assets::copy_fixture(name, tmp.path(), &["tokenizer.json"]);
    tmp
}

#[test]
fn wordpiece_from_vocab_txt_matches_tokenizer_json() {
    let d = without_tokenizer_json("tiny-bert");
    let cfg = EncoderConfig::from_dir(d.path()).unwrap();
    let tok = TextEncoder::from_dir(d.path(), cfg.pad_id()).unwrap();
    let (inputs, ids, max_len) = golden_ids("tiny-bert");
    let b = tok.encode(&inputs, max_len).unwrap();
    assert_eq!(b.input_ids, ids);
}

#[test]
fn byte_level_bpe_from_vocab_json_and_merges_matches_tokenizer_json() {
    let d = without_tokenizer_json("tiny-roberta");
    let cfg = EncoderConfig::from_dir(d.path()).unwrap();
    let tok = TextEncoder::from_dir(d.path(), cfg.pad_id()).unwrap();
    let (inputs, ids, max_len) = golden_ids("tiny-roberta");
    let b = tok.encode(&inputs, max_len).unwrap();
    assert_eq!(b.input_ids, ids);
}

#[test]
fn truncation_padding_and_offsets() {
    let dir = shared().join("fixtures/tiny-bert");
    let tok = TextEncoder::from_dir(&dir, 0).unwrap();
    let b = tok
        .encode(
            &[
                TextInput::single("the cat sat"),
                TextInput::pair("the cat sat on the mat near the bridge", "a dog ran"),
            ],
            10,
        )
        .unwrap();
    assert_eq!(b.batch, 2);
    assert_eq!(
        b.seq_len, 10,
        "padded to the longest row, truncated to max_len"
    );
    assert_eq!(b.lengths()[1], 10);
    assert!(b.lengths()[0] < 10);
    let row0 = b.row(&b.input_ids, 0);
    assert!(
        row0[b.lengths()[0]..].iter().all(|&id| id == 0),
        "padding uses the pad id"
    );
    // Offsets map tokens back to characters of their own text.
    let toks = tok.tokens(&b, 0);
    let cat = toks.iter().position(|t| t == "cat").unwrap();
    assert_eq!(b.offsets[0][cat], (4, 7));
    assert_eq!(
        b.sequence_ids[1][b.lengths()[1] - 2],
        Some(1),
        "the second text's tokens carry sequence id 1"
    );
}
