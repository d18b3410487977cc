//! Property test of `stab embed --inputs` parsing: any bytes give inputs or one error that
//! names the file (and the line where there is one), never a panic.

use proptest::prelude::*;
use stab_models::tokenizer::read_inputs;

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn any_inputs_file_parses_or_fails_cleanly(
        lines in proptest::collection::vec(prop_oneof![
            Just("{\"text\": \"a\"}".to_string()),
            Just("{\"text\": \"a\", \"text_pair\": null}".to_string()),
            Just("{\"text\": \"a\", \"text_pair\": 3}".to_string()),
            Just("\u{feff}{\"text\": \"b\"}".to_string()),
            Just(String::new()),
            ".{0,40}",
        ], 0..6),
        raw in proptest::collection::vec(any::<u8>(), 0..40),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in.jsonl");
        let mut bytes = lines.join("\n").into_bytes();
        bytes.extend(raw);
        std::fs::write(&p, &bytes).unwrap();
        match read_inputs(&p) {
            Ok(v) => prop_assert!(!v.is_empty()),
            Err(e) => prop_assert!(e.file.is_some(), "{}", e),
        }
    }
}
