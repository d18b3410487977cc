//! `config.json`: any bytes parse into a configuration whose every field is in range, or
//! fail with one error naming the file — never a panic, never an allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stab_models::EncoderConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match EncoderConfig::parse(text, "config.json") {
        Ok(c) => {
            assert!((0.0..1.0).contains(&c.hidden_dropout_prob));
            assert!((0.0..1.0).contains(&c.attention_probs_dropout_prob));
            assert!(c.hidden_size % c.num_attention_heads == 0);
            assert!(c.max_tokens() >= stab_models::config::MIN_TOKENS);
        }
        Err(e) => assert_eq!(e.file.as_deref(), Some("config.json")),
    }
});
