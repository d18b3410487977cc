//! The families' Hub ids resolve through a Hugging Face cache laid out by hand (the real
//! checkpoints cannot be downloaded here; the tiny fixtures stand in for their files) and
//! load as their family.

use std::path::Path;

use burn::tensor::Device;
use stab_models::{ModelFamily, load_encoder, resolve_model_in};

#[path = "../../testsupport/assets.rs"]
mod assets;

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
