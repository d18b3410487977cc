//! MultiRC's paragraph budget counts tokens of the texts alone: padding or truncation
//! built into a `tokenizer.json` (MiniLM's pads and truncates to 128) must not change
//! which part of the paragraph a row keeps. Before the fix, such a tokenizer made the
//! answer count 128 tokens and the whole paragraph was cut away.

use stab_data::Example;
use stab_data::encode::encode_examples;
use stab_models::{EncoderConfig, TextEncoder};

#[path = "../../testsupport/assets.rs"]
mod assets;

fn encoder(dir: &std::path::Path) -> TextEncoder {
    TextEncoder::for_model(dir, &EncoderConfig::from_dir(dir).unwrap()).unwrap()
}

#[test]
fn built_in_padding_and_truncation_do_not_change_multirc_rows() {
    let tiny = assets::fixtures().join("tiny-bert");
    let padded = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(&tiny).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, padded.path().join(p.file_name().unwrap())).unwrap();
    }
    let path = padded.path().join("tokenizer.json");
    let mut t: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    t["truncation"] = serde_json::json!({"direction": "Right", "max_length": 24, "strategy": "LongestFirst", "stride": 0});
    t["padding"] = serde_json::json!({"strategy": {"Fixed": 48}, "direction": "Right", "pad_to_multiple_of": null, "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"});
    std::fs::write(&path, t.to_string()).unwrap();
    let rows: Vec<Example> = [4usize, 40]
        .iter()
        .map(|&words| Example {
            segments: vec![
                "the bank of the river was wide and green ".repeat(words),
                "what was wide?".into(),
                "the bank".into(),
            ],
            label: 1,
            spans: Vec::new(),
            question: Some(7),
            group: 0,
        })
        .collect();
    let plain = encode_examples(&encoder(&tiny), &rows, 32).unwrap();
    let built_in = encode_examples(&encoder(padded.path()), &rows, 32).unwrap();
    assert_eq!(plain, built_in);
    // The long paragraph is cut, not dropped: most of the 32 tokens are paragraph.
    let first_sep = plain[1].input_ids.iter().position(|&i| i == 3).unwrap_or(0);
    assert!(
        first_sep > 16,
        "paragraph + question tokens before [SEP]: {first_sep}"
    );
}
