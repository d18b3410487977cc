//! `stab embed --max-len` and every tokenization: for any texts and any limit, the
//! bounded, chunked encoding gives at most `max_len` ids and equals `tokenizers`' own
//! `longest_first` truncation, or refuses a limit below the special tokens.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use stab_models::{EncoderConfig, TextEncoder, TextInput};
use tokenizers::{TruncationDirection, TruncationParams, TruncationStrategy};

fn encoders() -> &'static [TextEncoder; 2] {
    static TOK: OnceLock<[TextEncoder; 2]> = OnceLock::new();
    TOK.get_or_init(|| {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/fixtures");
        ["tiny-bert", "tiny-roberta"].map(|n| {
            let dir = root.join(n);
            TextEncoder::for_model(&dir, &EncoderConfig::from_dir(&dir).unwrap()).unwrap()
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let [a, b, rest @ ..] = data else { return };
    let max_len = usize::from(*a % 48);
    let tok = &encoders()[usize::from(*b & 1)];
    let chunk = 1 + usize::from(*b >> 1);
    let text = String::from_utf8_lossy(rest);
    let input = match text.split_once('\u{1}') {
        Some((x, y)) => TextInput::pair(x, y),
        None => TextInput::single(text.as_ref()),
    };
    let inputs = [input];
    match tok.encode_chunked(&inputs, max_len, chunk) {
        Ok(batch) => {
            assert!(batch.seq_len <= max_len);
            let mut t = tok.tokenizer().clone();
            t.with_truncation(Some(TruncationParams {
                max_length: max_len,
                strategy: TruncationStrategy::LongestFirst,
                direction: TruncationDirection::Right,
                stride: 0,
            }))
            .unwrap();
            t.with_padding(None);
            let i = &inputs[0];
            let want = match &i.text_pair {
                Some(p) => t.encode_char_offsets((i.text.as_str(), p.as_str()), true),
                None => t.encode_char_offsets(i.text.as_str(), true),
            }
            .unwrap();
            let got: Vec<u32> = batch.input_ids.iter().map(|&v| v as u32).collect();
            assert_eq!(
                got,
                want.get_ids(),
                "{:?} max_len {max_len} chunk {chunk}",
                i
            );
            assert_eq!(batch.offsets[0], want.get_offsets());
        }
        Err(e) => assert!(e.to_string().contains("leaves no room"), "{e}"),
    }
});
