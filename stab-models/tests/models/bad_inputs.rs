//! Each bad model directory gives one clear error that names the file and the problem.

use std::path::Path;

use burn::tensor::Device;
use stab_models::load_encoder;

use crate::assets;

/// A copy of tiny-bert with `skip` left out and `edit` applied.
fn variant(skip: &[&str], edit: impl FnOnce(&Path)) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    assets::copy_fixture("tiny-bert", tmp.path(), skip);
    edit(tmp.path());
    tmp
}

fn error_of(dir: &Path) -> String {
    match load_encoder(dir, &Device::flex()).expect_err("loading must fail") {
        stab_core::Error::Input(e) => e.to_string(),
        e => panic!("a bad model is bad input (exit code 2): {e}"),
    }
}

fn edit_config(dir: &Path, from: &str, to: &str) {
    let p = dir.join("config.json");
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains(from), "config lacks {from}");
    std::fs::write(&p, text.replace(from, to)).unwrap();
}

#[test]
fn missing_config() {
    let d = variant(&["config.json"], |_| {});
    let m = error_of(d.path());
    assert!(m.contains("config.json") && m.contains("hint"), "{m}");
}

#[test]
fn missing_weights() {
    let d = variant(&["model.safetensors"], |_| {});
    let m = error_of(d.path());
    assert!(
        m.contains("model.safetensors") && m.contains("pytorch_model.bin"),
        "{m}"
    );
}

#[test]
fn unsupported_model_type() {
    let d = variant(&[], |p| {
        edit_config(p, "\"model_type\": \"bert\"", "\"model_type\": \"t5\"")
    });
    let m = error_of(d.path());
    assert!(
        m.contains("unsupported model_type `t5`") && m.contains("bert, roberta"),
        "{m}"
    );
}

#[test]
fn tensor_shape_mismatch_names_tensor_and_shapes() {
    let d = variant(&[], |p| {
        edit_config(p, "\"intermediate_size\": 64", "\"intermediate_size\": 48")
    });
    let m = error_of(d.path());
    assert!(
        m.contains("intermediate.dense") && m.contains("64") && m.contains("48"),
        "{m}"
    );
}

#[test]
fn corrupt_safetensors() {
    let d = variant(&[], |p| {
        std::fs::write(
            p.join("model.safetensors"),
            b"\x08\x00\x00\x00\x00\x00\x00\x00not json at all",
        )
        .unwrap()
    });
    let m = error_of(d.path());
    assert!(
        m.contains("model.safetensors") && m.contains("cannot read the weights"),
        "{m}"
    );
}

/// DeBERTa-v3 as the Hub ships it: `spm.model` without `tokenizer.json`. The error says how
/// to write tokenizer.json once.
#[test]
fn sentencepiece_only_directory_says_how_to_convert() {
    let d = variant(&["tokenizer.json", "vocab.txt"], |p| {
        std::fs::write(p.join("spm.model"), b"not read").unwrap();
    });
    let err = stab_models::TextEncoder::from_dir(d.path(), 0)
        .err()
        .expect("no tokenizer.json")
        .to_string();
    assert!(
        err.contains("spm.model") && err.contains("save_pretrained") && err.contains("hint"),
        "{err}"
    );
}

/// A tensor missing from the weights is named as the checkpoint names it, not by stab's
/// internal path (issue #34).
#[test]
fn a_missing_tensor_is_named_as_the_checkpoint_names_it() {
    let d = variant(&[], |p| {
        let file = p.join("model.safetensors");
        let mut w = stab_models::read_safetensors(&file).unwrap();
        w.tensors
            .retain(|name, _| !name.ends_with("encoder.layer.1.attention.self.query.weight"));
        stab_models::write_safetensors(&file, &w).unwrap();
    });
    let m = error_of(d.path());
    assert!(
        m.contains("lacks 1 encoder tensors: encoder.layer.1.attention.self.query.weight"),
        "{m}"
    );
    assert!(!m.contains("self_attn"), "{m}");
}

/// `num_key_value_heads` below `num_attention_heads` on a family without grouped-query
/// attention (every encoder, GPT-2: their Hugging Face models ignore the key) is refused
/// by its key, not run into a crash (it used to stop DeBERTa and ModernBERT on a shape
/// error or an unreachable branch); equal to the heads it is harmless.
#[test]
fn grouped_key_value_heads_are_refused_where_the_family_has_none() {
    for fixture in [
        "tiny-bert",
        "tiny-deberta-v3",
        "tiny-modernbert",
        "tiny-gpt2",
    ] {
        let dir = assets::fixtures().join(fixture);
        let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
        let mut config: serde_json::Value = serde_json::from_str(&text).unwrap();
        let heads = config
            .get("num_attention_heads")
            .or_else(|| config.get("n_head"))
            .and_then(serde_json::Value::as_u64)
            .unwrap();
        config["num_key_value_heads"] = (heads / 2).into();
        let err = stab_models::EncoderConfig::parse(&config.to_string(), "config.json")
            .expect_err(fixture)
            .to_string();
        assert!(
            err.contains("num_key_value_heads") && err.contains("no grouped-query attention"),
            "{fixture}: {err}"
        );
        config["num_key_value_heads"] = heads.into();
        stab_models::EncoderConfig::parse(&config.to_string(), "config.json")
            .unwrap_or_else(|e| panic!("{fixture}: {e}"));
    }
}
