//! `TextEncoder::encode` reads long texts chunk by chunk so that memory does not grow
//! with the text. It must give exactly what `tokenizers` gives with its own
//! `longest_first` truncation and batch padding: ids, types, masks, offsets and sequence
//! ids, for singles and pairs, for WordPiece (tiny-bert) and byte-level BPE
//! (tiny-roberta, and the decoders' tokenizers with the BOS/EOS their post-processors add:
//! tiny-gpt2, tiny-llama, tiny-qwen2, tiny-qwen3). Chunks of a few bytes make every text of the test take the chunked
//! path. `PROPTEST_CASES=10000` runs the long campaign.

use proptest::prelude::*;
use stab_models::{EncoderConfig, TextEncoder, TextInput, TokenBatch};
use tokenizers::{
    PaddingDirection, PaddingParams, PaddingStrategy, TruncationDirection, TruncationParams,
    TruncationStrategy,
};

use crate::assets;

/// Every tokenizer the tests cover.
const TOKENIZERS: [&str; 6] = [
    "tiny-bert",
    "tiny-roberta",
    "tiny-gpt2",
    "tiny-llama",
    "tiny-qwen2",
    "tiny-qwen3",
];

fn encoder(name: &str) -> TextEncoder {
    let dir = assets::fixtures().join(name);
    let config = EncoderConfig::from_dir(&dir).unwrap();
    TextEncoder::from_dir(&dir, config.pad_id()).unwrap()
}

/// The reference: the whole texts through `tokenizers` with its truncation and padding.
fn reference(tok: &TextEncoder, inputs: &[TextInput], max_len: usize) -> TokenBatch {
    let mut t = tok.tokenizer().clone();
    t.with_truncation(Some(TruncationParams {
        max_length: max_len,
        strategy: TruncationStrategy::LongestFirst,
        direction: TruncationDirection::Right,
        stride: 0,
    }))
    .unwrap();
    let pad_token = t.id_to_token(tok.pad_id).unwrap();
    t.with_padding(Some(PaddingParams {
        strategy: PaddingStrategy::BatchLongest,
        direction: PaddingDirection::Right,
        pad_to_multiple_of: None,
        pad_id: tok.pad_id,
        pad_type_id: 0,
        pad_token,
    }));
    let encs = t
        .encode_batch_char_offsets(
            inputs
                .iter()
                .map(|i| match &i.text_pair {
                    Some(b) => {
                        tokenizers::EncodeInput::Dual(i.text.as_str().into(), b.as_str().into())
                    }
                    None => tokenizers::EncodeInput::Single(i.text.as_str().into()),
                })
                .collect::<Vec<_>>(),
            true,
        )
        .unwrap();
    let seq_len = encs.iter().map(|e| e.len()).max().unwrap_or(0);
    let flat = |f: &dyn Fn(&tokenizers::Encoding) -> Vec<u32>| -> Vec<i64> {
        encs.iter()
            .flat_map(|e| f(e).into_iter().map(i64::from))
            .collect()
    };
    TokenBatch {
        batch: encs.len(),
        seq_len,
        input_ids: flat(&|e| e.get_ids().to_vec()),
        attention_mask: flat(&|e| e.get_attention_mask().to_vec()),
        token_type_ids: flat(&|e| e.get_type_ids().to_vec()),
        offsets: encs.iter().map(|e| e.get_offsets().to_vec()).collect(),
        sequence_ids: encs.iter().map(|e| e.get_sequence_ids()).collect(),
    }
}

/// Words of the tiny vocabularies, punctuation, accents, runs of spaces and newlines.
fn text() -> impl Strategy<Value = String> {
    let word = prop_oneof![
        Just("the".to_string()),
        Just("hello".to_string()),
        Just("world".to_string()),
        Just("bank".to_string()),
        Just("Zürich".to_string()),
        Just("don't".to_string()),
        Just("...".to_string()),
        Just("日本".to_string()),
        "[a-z]{1,12}",
        "[A-Za-z0-9]{1,30}",
    ];
    let gap = prop_oneof![
        4 => Just(" ".to_string()),
        1 => Just("  ".to_string()),
        1 => Just("\n".to_string()),
        1 => Just(" \t ".to_string()),
    ];
    (
        prop::collection::vec((word, gap), 0..60),
        prop::bool::ANY,
        prop::bool::ANY,
    )
        .prop_map(|(parts, lead, trail)| {
            let mut s = String::new();
            if lead {
                s.push(' ');
            }
            for (w, g) in parts {
                s.push_str(&w);
                s.push_str(&g);
            }
            if !trail {
                s = s.trim_end().to_string();
            }
            s
        })
}

fn input() -> impl Strategy<Value = TextInput> {
    (text(), prop::option::of(text())).prop_map(|(a, b)| TextInput {
        text: a,
        text_pair: b,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn chunked_encoding_equals_the_tokenizers_truncation(
        inputs in prop::collection::vec(input(), 1..4),
        max_len in 8usize..40,
        chunk in 1usize..48,
        family in 0usize..TOKENIZERS.len(),
    ) {
        let tok = encoder(TOKENIZERS[family]);
        let want = reference(&tok, &inputs, max_len);
        let got = tok.encode_chunked(&inputs, max_len, chunk).unwrap();
        prop_assert_eq!(&got, &want);
        prop_assert!(got.seq_len <= max_len);
        prop_assert_eq!(tok.encode(&inputs, max_len).unwrap(), want);
    }

    #[test]
    fn bounded_prefixes_start_the_whole_texts_tokens(t in text(), n in 0usize..40) {
        for name in TOKENIZERS {
            let tok = encoder(name);
            let whole = tok.tokenizer().encode(t.as_str(), false).unwrap();
            let count = tok.count_tokens_upto(&t, usize::MAX).unwrap();
            prop_assert_eq!(count, whole.len());
            prop_assert_eq!(tok.count_tokens_upto(&t, n).unwrap().min(n), whole.len().min(n));
        }
    }
}

#[test]
fn a_max_len_below_the_special_tokens_is_an_error_not_a_silent_overflow() {
    let tok = encoder("tiny-roberta");
    let pair = [TextInput::pair(
        "a long first text here",
        "and a second one",
    )];
    for max_len in [0, 2, 3, 5] {
        let e = tok.encode(&pair, max_len).unwrap_err();
        assert!(e.to_string().contains("leaves no room"), "{max_len}: {e}");
    }
    let b = tok.encode(&pair, 6).unwrap();
    assert_eq!(b.seq_len, 6);
    let single = [TextInput::single("x y z w v u t s r q p o n m")];
    assert_eq!(tok.encode(&single, 3).unwrap().seq_len, 3);
}

#[test]
fn a_megabyte_line_is_tokenized_as_far_as_truncation_keeps() {
    for name in ["tiny-bert", "tiny-llama", "tiny-qwen3"] {
        megabyte_line(name);
    }
}

fn megabyte_line(name: &str) {
    let tok = encoder(name);
    let long = "hello world ".repeat(200_000);
    let inputs = [
        TextInput::pair(long.clone(), "the bank"),
        TextInput::single(long),
    ];
    let started = std::time::Instant::now();
    let b = tok.encode(&inputs, 16).unwrap();
    assert_eq!(b.seq_len, 16);
    let short = [
        TextInput::pair("hello world ".repeat(20), "the bank"),
        TextInput::single("hello world ".repeat(20)),
    ];
    assert_eq!(b, tok.encode(&short, 16).unwrap());
    eprintln!(
        "{name}: 2.4 MB of text encoded in {:.2}s",
        started.elapsed().as_secs_f64()
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// `stab embed --max-len`: any limit gives at most that many ids, or a clear error
    /// when the special tokens alone do not fit.
    #[test]
    fn any_max_len_is_respected_or_refused(inputs in prop::collection::vec(input(), 1..3), max_len in 0usize..24, family in 0usize..TOKENIZERS.len()) {
        let tok = encoder(TOKENIZERS[family]);
        match tok.encode(&inputs, max_len) {
            Ok(b) => {
                prop_assert!(b.seq_len <= max_len);
                prop_assert_eq!(b, reference(&tok, &inputs, max_len));
            }
            Err(e) => prop_assert!(e.to_string().contains("leaves no room"), "{e}"),
        }
    }
}
