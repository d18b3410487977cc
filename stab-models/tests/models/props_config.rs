//! Property tests of `config.json`: any JSON with any values parses into a configuration
//! whose every field is in range, or fails with one located error — never a panic and
//! never an allocation, even for sizes near `u64::MAX`.

use proptest::prelude::*;
use serde_json::{Value, json};
use stab_models::EncoderConfig;

fn size() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (1u64..200).prop_map(Value::from),
        1 => Just(json!(0)),
        1 => Just(json!(u64::MAX)),
        1 => Just(json!(1u64 << 40)),
        1 => Just(json!(-3)),
        1 => Just(json!(2.5)),
        1 => Just(json!("32")),
        1 => Just(Value::Null),
    ]
}

fn prob() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => (0.0f64..0.99).prop_map(Value::from),
        1 => Just(json!(1.5)),
        1 => Just(json!(-0.1)),
        1 => Just(json!(1.0)),
        1 => Just(json!(1e308)),
    ]
}

fn config() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("bert"), Just("roberta"), Just("gpt2"), Just("")],
        proptest::collection::vec(size(), 7),
        (prob(), prob()),
        prop_oneof![
            Just(json!(1e-12)),
            Just(json!(0)),
            Just(json!(-1)),
            Just(json!(5.0))
        ],
        prop_oneof![Just("gelu"), Just("relu"), Just("swish")],
        proptest::collection::vec(any::<bool>(), 13),
    )
        .prop_map(|(ty, sizes, (p1, p2), eps, act, drop)| {
            let keys = [
                "vocab_size",
                "hidden_size",
                "num_hidden_layers",
                "num_attention_heads",
                "intermediate_size",
                "max_position_embeddings",
                "type_vocab_size",
            ];
            let mut m = serde_json::Map::new();
            m.insert("model_type".into(), json!(ty));
            for (k, v) in keys.iter().zip(sizes) {
                m.insert(k.to_string(), v);
            }
            m.insert("hidden_dropout_prob".into(), p1);
            m.insert("attention_probs_dropout_prob".into(), p2);
            m.insert("layer_norm_eps".into(), eps);
            m.insert("hidden_act".into(), json!(act));
            m.insert("pad_token_id".into(), json!(1));
            // Drop some keys (required or defaulted ones).
            let names: Vec<String> = m.keys().cloned().collect();
            for (k, d) in names.iter().zip(drop) {
                if d && k != "model_type" {
                    m.remove(k);
                }
            }
            Value::Object(m).to_string()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn configs_are_valid_or_one_located_error(text in config()) {
        match EncoderConfig::parse(&text, "config.json") {
            Ok(c) => {
                prop_assert!((0.0..1.0).contains(&c.hidden_dropout_prob));
                prop_assert!((0.0..1.0).contains(&c.attention_probs_dropout_prob));
                prop_assert!(c.hidden_size % c.num_attention_heads == 0);
                prop_assert!(c.max_tokens() >= stab_models::config::MIN_TOKENS);
                prop_assert!(c.parameter_count() <= stab_core::limits::PARAMETERS.max as u128);
                prop_assert!(c.pad_id() < c.vocab_size || c.pad_token_id.is_none());
            }
            Err(e) => prop_assert_eq!(e.file.as_deref(), Some("config.json")),
        }
    }

    #[test]
    fn arbitrary_text_is_never_a_panic(text in ".{0,200}") {
        let _ = EncoderConfig::parse(&text, "config.json");
    }
}
