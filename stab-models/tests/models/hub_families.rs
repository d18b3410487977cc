//! The families' Hub ids resolve through a Hugging Face cache laid out by hand (the real
//! checkpoints cannot be downloaded here; the tiny fixtures stand in for their files) and
//! load as their family.

use std::path::Path;

use burn::tensor::Device;
use stab_models::{ModelFamily, load_encoder, resolve_model_in};

use crate::assets;

fn lay_out(cache: &Path, id: &str, fixture: &str) -> std::path::PathBuf {
    let repo = cache.join(format!("models--{}", id.replace('/', "--")));
    let snap = repo.join("snapshots/0123abcd");
    assets::copy_fixture(fixture, &snap, &[]);
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "0123abcd").unwrap();
    snap
}

#[test]
fn family_hub_ids_resolve_through_the_cache_and_load() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = hf_hub::Cache::new(tmp.path().to_path_buf());
    for (id, fixture, want) in [
        (
            "microsoft/deberta-v3-base",
            "tiny-deberta-v3",
            "DeBERTa-v2/v3",
        ),
        (
            "answerdotai/ModernBERT-base",
            "tiny-modernbert",
            "ModernBERT",
        ),
        (
            "google/electra-base-discriminator",
            "tiny-electra",
            "ELECTRA",
        ),
    ] {
        let snap = lay_out(tmp.path(), id, fixture);
        let dir = resolve_model_in(id, &cache, false).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(dir, snap);
        let (encoder, report) = load_encoder(&dir, &Device::flex()).unwrap();
        assert_eq!(encoder.config.family.name(), want, "{id}");
        assert!(report.unexpected.is_empty(), "{id}: {report}");
        if let ModelFamily::Electra(e) = encoder.config.family {
            assert_eq!(e.embedding_size, 16);
        }
    }
    // A legacy id without the organisation finds the organisation's copy.
    assert!(resolve_model_in("deberta-v3-base", &cache, false).is_ok());
}

/// The decoders' Hub ids resolve and load the same way, and a sharded checkpoint (the
/// layout of every Llama and Qwen above ~2B parameters: `model.safetensors.index.json`
/// mapping each tensor to one of several shards) loads to the same weights as the single
/// file; an index naming a missing shard is refused by its file.
#[test]
fn decoder_hub_ids_and_sharded_checkpoints_load() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = hf_hub::Cache::new(tmp.path().to_path_buf());
    for (id, fixture, want) in [
        ("openai-community/gpt2", "tiny-gpt2", "GPT-2"),
        ("HuggingFaceTB/SmolLM2-135M", "tiny-llama", "Llama"),
        ("Qwen/Qwen2.5-0.5B", "tiny-qwen2", "Qwen2"),
        ("Qwen/Qwen3-0.6B", "tiny-qwen3", "Qwen3"),
    ] {
        let snap = lay_out(tmp.path(), id, fixture);
        let dir = resolve_model_in(id, &cache, false).unwrap_or_else(|e| panic!("{id}: {e}"));
        assert_eq!(dir, snap);
        let (encoder, report) = load_encoder(&dir, &Device::flex()).unwrap();
        assert_eq!(encoder.config.family.name(), want, "{id}");
        assert!(report.unexpected.is_empty(), "{id}: {report}");
        assert!(encoder.config.family.is_decoder(), "{id}");
    }

    // Llama 3.2 3B's layout: the tiny Llama's tensors in two shards and an index.
    let id = "meta-llama/Llama-3.2-3B";
    let snap = lay_out(tmp.path(), id, "tiny-llama");
    let whole = stab_models::read_safetensors(&snap.join("model.safetensors")).unwrap();
    std::fs::remove_file(snap.join("model.safetensors")).unwrap();
    let mut shards = [
        stab_models::TensorFile::default(),
        stab_models::TensorFile::default(),
    ];
    let mut map = serde_json::Map::new();
    for (k, (name, t)) in whole.tensors.iter().enumerate() {
        let shard = k % 2;
        shards[shard].tensors.insert(name.clone(), t.clone());
        let file = format!("model-0000{}-of-00002.safetensors", shard + 1);
        map.insert(name.clone(), file.into());
    }
    for (k, shard) in shards.iter().enumerate() {
        let file = snap.join(format!("model-0000{}-of-00002.safetensors", k + 1));
        stab_models::write_safetensors(&file, shard).unwrap();
    }
    let index = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": map});
    std::fs::write(snap.join("model.safetensors.index.json"), index.to_string()).unwrap();
    let dir = resolve_model_in(id, &cache, false).unwrap();
    let (sharded, report) = load_encoder(&dir, &Device::flex()).unwrap();
    assert!(report.unexpected.is_empty(), "{report}");
    let (single, _) =
        load_encoder(&assets::fixtures().join("tiny-llama"), &Device::flex()).unwrap();
    let host = |w: burn::tensor::Tensor<2>| w.into_data().try_to_vec::<f32>().unwrap();
    // The embeddings and a weight of the last layer, each from its shard.
    let embeddings = |e: &stab_models::Encoder| host(e.embeddings.word_embeddings.weight.val());
    assert_eq!(embeddings(&sharded), embeddings(&single));
    let last = |e: &stab_models::Encoder| host(e.encoder.layer[1].output.dense.weight.val());
    assert_eq!(last(&sharded), last(&single));
    std::fs::remove_file(snap.join("model-00002-of-00002.safetensors")).unwrap();
    let err = load_encoder(&dir, &Device::flex()).unwrap_err().to_string();
    assert!(
        err.contains("model-00002-of-00002.safetensors") && err.contains("missing"),
        "{err}"
    );
}
