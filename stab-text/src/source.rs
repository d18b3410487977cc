//! Where a model's files come from: a local Hugging Face directory, or a hub id resolved
//! through the standard Hugging Face cache (`HF_HOME`, `HF_HUB_CACHE`), downloading with
//! `hf-hub` only when allowed (not under `HF_HUB_OFFLINE=1`) and reachable.

use anyhow::Context as _;
use std::path::{Path, PathBuf};

use stab_core::InputError;

/// The files that can hold a model's weights, in the order they are preferred: each
/// format's single file, then its sharded index (`weight_map` from tensor name to shard).
pub const WEIGHT_FILES: [(&str, &str); 2] = [
    ("model.safetensors", "model.safetensors.index.json"),
    ("pytorch_model.bin", "pytorch_model.bin.index.json"),
];

/// Files a model directory must have (one of each group).
const REQUIRED: &[&[&str]] = &[
    &["config.json"],
    &[
        WEIGHT_FILES[0].0,
        WEIGHT_FILES[0].1,
        WEIGHT_FILES[1].0,
        WEIGHT_FILES[1].1,
    ],
];
const TOKENIZER: &[&str] = &["tokenizer.json", "vocab.txt", "vocab.json", "merges.txt"];

/// The standard cache: `HF_HUB_CACHE` (or the legacy `HUGGINGFACE_HUB_CACHE`), else
/// `$HF_HOME/hub`, else `~/.cache/huggingface/hub` (hf-hub itself reads only `HF_HOME`).
pub fn hub_cache() -> hf_hub::Cache {
    ["HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"]
        .iter()
        .find_map(|k| std::env::var_os(k).filter(|v| !v.is_empty()))
        .map(|p| hf_hub::Cache::new(PathBuf::from(p)))
        .unwrap_or_else(hf_hub::Cache::from_env)
}

/// `HF_HUB_OFFLINE` is set (to anything but `0`): nothing is downloaded.
pub fn hub_offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Resolve `spec` (a directory or a hub id such as `roberta-base` or
/// `FacebookAI/roberta-base`) to a local directory holding the model's files.
pub fn resolve_model(spec: &str) -> Result<PathBuf, InputError> {
    resolve_model_in(spec, &hub_cache(), !hub_offline())
}

/// [`resolve_model`] with an explicit cache and download permission.
pub fn resolve_model_in(
    spec: &str,
    cache: &hf_hub::Cache,
    allow_download: bool,
) -> Result<PathBuf, InputError> {
    let p = Path::new(spec);
    if p.is_dir() {
        return Ok(p.to_path_buf());
    }
    let looks_like_path = spec.starts_with('.')
        || spec.starts_with('/')
        || spec.matches('/').count() > 1
        || p.exists();
    if looks_like_path {
        return Err(InputError::new(format!("model directory {spec} does not exist"))
            .key("model.path")
            .hint("point model.path at a Hugging Face model directory (config.json, model.safetensors, tokenizer.json)"));
    }
    let mut ids = vec![spec.to_string()];
    if !spec.contains('/') {
        // Legacy ids (`roberta-base`) now live under an organisation (`FacebookAI/roberta-base`).
        if let Ok(entries) = std::fs::read_dir(cache.path()) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if let Some(rest) = name.strip_prefix("models--")
                    && let Some((org, model)) = rest.split_once("--")
                    && model == spec
                {
                    ids.push(format!("{org}/{model}"));
                }
            }
        }
    }
    for id in &ids {
        if let Some(dir) = cached_dir(cache, id) {
            return Ok(dir);
        }
    }
    if allow_download && let Ok(dir) = download(spec) {
        return Ok(dir);
    }
    Err(InputError::new(format!(
        "model `{spec}` is not a directory and is not in the Hugging Face cache at {}{}",
        cache.path().display(),
        if allow_download { " (and downloading it failed)" } else { " (HF_HUB_OFFLINE is set, so nothing was downloaded)" }
    ))
    .key("model.path")
    .hint(format!(
        "download it where there is a network (`huggingface-cli download {spec}`, which fills that cache; or set HF_HOME to a copied cache), or point model.path at a directory with config.json, model.safetensors and tokenizer.json"
    )))
}

/// Hub ids with an entry in the local Hugging Face cache (`HF_HUB_CACHE`, `HF_HOME`).
pub fn cached_models() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(hub_cache().path()) else {
        return Vec::new();
    };
    let mut v: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix("models--"))
                .map(|n| n.replace("--", "/"))
        })
        .collect();
    v.sort();
    v
}

/// The local directory of a cached hub id, when the cache holds a complete model (never
/// downloads).
pub fn cached_model_dir(id: &str) -> Option<PathBuf> {
    cached_dir(&hub_cache(), id)
}

fn cached_dir(cache: &hf_hub::Cache, id: &str) -> Option<PathBuf> {
    let repo = cache.model(id.to_string());
    let config = repo.get("config.json")?;
    let dir = config.parent()?.to_path_buf();
    let has = |names: &[&str]| names.iter().any(|n| dir.join(n).exists());
    (REQUIRED.iter().all(|g| has(g)) && has(TOKENIZER)).then_some(dir)
}

fn download(id: &str) -> stab_core::Result<PathBuf> {
    let api = hf_hub::api::sync::ApiBuilder::from_env()
        .with_cache_dir(hub_cache().path().clone())
        .with_progress(false)
        .build()
        .context("cannot set up the Hugging Face Hub client")?;
    let repo = api.model(id.to_string());
    let config = repo
        .get("config.json")
        .with_context(|| format!("cannot download {id}'s config.json"))?;
    download_weights(&repo).with_context(|| format!("cannot download {id}'s weights"))?;
    repo.get("tokenizer.json")
        .or_else(|_| repo.get("vocab.json").and_then(|_| repo.get("merges.txt")))
        .or_else(|_| repo.get("vocab.txt"))
        .with_context(|| format!("cannot download {id}'s tokenizer"))?;
    let _ = repo.get("tokenizer_config.json");
    Ok(config
        .parent()
        .expect("a file in a snapshot directory")
        .to_path_buf())
}

/// A repo's weights: the single file, or a sharded checkpoint's index and every shard it
/// names (safetensors preferred).
fn download_weights(repo: &hf_hub::api::sync::ApiRepo) -> anyhow::Result<()> {
    for (single, index) in WEIGHT_FILES {
        if repo.get(single).is_ok() {
            return Ok(());
        }
        if let Ok(path) = repo.get(index) {
            let map: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
            let shards: std::collections::BTreeSet<&str> = map["weight_map"]
                .as_object()
                .context("the index has no weight_map")?
                .values()
                .filter_map(serde_json::Value::as_str)
                .collect();
            for shard in shards {
                repo.get(shard)
                    .with_context(|| format!("cannot download the shard {shard}"))?;
            }
            return Ok(());
        }
    }
    anyhow::bail!(
        "the repo has none of model.safetensors, pytorch_model.bin or their sharded indexes"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_directory_is_a_clear_error() {
        let e = resolve_model("./no/such/model").unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
    }

    #[test]
    fn hub_id_resolves_through_the_cache_layout() {
        let tmp = tempfile::tempdir().unwrap();
        let snap = tmp
            .path()
            .join("models--FacebookAI--tiny-test/snapshots/abc123");
        std::fs::create_dir_all(&snap).unwrap();
        for f in ["config.json", "model.safetensors", "tokenizer.json"] {
            std::fs::write(snap.join(f), "{}").unwrap();
        }
        std::fs::create_dir_all(tmp.path().join("models--FacebookAI--tiny-test/refs")).unwrap();
        std::fs::write(
            tmp.path().join("models--FacebookAI--tiny-test/refs/main"),
            "abc123",
        )
        .unwrap();
        let cache = hf_hub::Cache::new(tmp.path().to_path_buf());
        assert_eq!(cached_dir(&cache, "FacebookAI/tiny-test").unwrap(), snap);
        assert!(cached_dir(&cache, "FacebookAI/other").is_none());
        // A legacy id finds the organisation's copy.
        assert_eq!(resolve_model_in("tiny-test", &cache, false).unwrap(), snap);
    }

    #[test]
    fn offline_and_not_cached_says_where_it_looked() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = hf_hub::Cache::new(tmp.path().to_path_buf());
        let e = resolve_model_in("roberta-base", &cache, false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("not in the Hugging Face cache")
                && e.contains(&tmp.path().display().to_string()),
            "{e}"
        );
        assert!(e.contains("HF_HUB_OFFLINE") && e.contains("hint"), "{e}");
    }
}
