//! A task's parquet shards in the standard Hugging Face cache
//! (`<cache>/datasets--<owner>--<name>/snapshots/<commit>/<config>/<split>-*.parquet`),
//! downloaded with `hf-hub` when they are missing and downloading is allowed.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Repo, RepoType};
use stab_core::InputError;

use super::HubDataset;

/// The cache a data source reads, and whether it may download into it.
#[derive(Debug, Clone)]
pub struct DatasetCache {
    root: PathBuf,
    allow_download: bool,
    progress: bool,
    /// The caller is `stab data fetch`: its failures get hints that do not recommend it.
    fetching: bool,
}

impl DatasetCache {
    /// The cache of `HF_HUB_CACHE` / `HF_HOME` (as for models), downloading unless
    /// `HF_HUB_OFFLINE` is set.
    pub fn from_env() -> Self {
        Self::new(
            stab_text::source::hub_cache().path().clone(),
            !stab_text::source::hub_offline(),
        )
    }

    pub fn new(root: PathBuf, allow_download: bool) -> Self {
        Self {
            root,
            allow_download,
            progress: false,
            fetching: false,
        }
    }

    /// For `stab data fetch`: progress bars, and failures explained without recommending
    /// the command that failed.
    pub fn for_fetch(mut self) -> Self {
        self.progress = true;
        self.fetching = true;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The cache directory of the dataset's repository.
    fn repo_dir(&self, ds: &HubDataset) -> PathBuf {
        self.root
            .join(format!("datasets--{}", ds.repo.replace('/', "--")))
    }

    /// The snapshot directory of the dataset's revision, when the cache has one.
    fn snapshot(&self, ds: &HubDataset) -> Option<PathBuf> {
        let repo = self.repo_dir(ds);
        let commit = std::fs::read_to_string(repo.join("refs").join(&ds.revision))
            .map(|c| c.trim().to_string())
            .unwrap_or_else(|_| ds.revision.clone());
        Some(repo.join("snapshots").join(commit)).filter(|d| d.is_dir())
    }

    /// A ref of the revision that names no snapshot (a damaged cache), as a sentence.
    fn broken_ref(&self, ds: &HubDataset) -> Option<String> {
        let file = self.repo_dir(ds).join("refs").join(&ds.revision);
        let commit = std::fs::read_to_string(&file).ok()?;
        let commit = commit.trim();
        let ok = !commit.is_empty()
            && !commit.contains(['/', '\\'])
            && self.repo_dir(ds).join("snapshots").join(commit).is_dir();
        (!ok).then(|| {
            format!(
                "the cache's ref {} names the commit `{}`, which has no snapshot in the cache",
                file.display(),
                commit.chars().take(64).collect::<String>()
            )
        })
    }

    /// The split's shards in the cache, in name order (empty when none).
    pub fn cached_shards(&self, ds: &HubDataset, split: &str) -> Vec<PathBuf> {
        let Some(snapshot) = self.snapshot(ds) else {
            return Vec::new();
        };
        for folder in ds.folders() {
            let mut files: Vec<PathBuf> = walk(&snapshot.join(folder), 2)
                .into_iter()
                .filter(|p| {
                    p.strip_prefix(&snapshot)
                        .ok()
                        .and_then(Path::to_str)
                        .is_some_and(|rel| is_shard(&rel.replace('\\', "/"), folder, split))
                })
                .collect();
            if !files.is_empty() {
                files.sort();
                return files;
            }
        }
        Vec::new()
    }

    /// The split's shards: from the cache, else downloaded (when allowed).
    pub fn shards(&self, ds: &HubDataset, split: &str) -> Result<Vec<PathBuf>, InputError> {
        let cached = self.cached_shards(ds, split);
        if !cached.is_empty() {
            return Ok(cached);
        }
        if let Some(broken) = self.broken_ref(ds) {
            return Err(InputError::new(format!(
                "dataset {}: {broken}",
                ds.describe()
            ))
            .file(self.repo_dir(ds).display().to_string())
            .hint("the cache is damaged: delete that dataset's directory from the cache and fetch it again"));
        }
        let why = if self.allow_download {
            match self.download(ds, split) {
                Ok(files) if !files.is_empty() => return Ok(files),
                Ok(_) => format!(
                    "the dataset has no {split} parquet files under {}/",
                    ds.config
                ),
                // What was being done, then the root cause (the chain between repeats it).
                Err(stab_core::Error::Internal(e)) if e.chain().count() > 1 => {
                    format!("downloading failed: {e}: {}", e.root_cause())
                }
                Err(e) => format!("downloading failed: {e}"),
            }
        } else {
            "HF_HUB_OFFLINE is set, so nothing was downloaded".to_string()
        };
        let hint = if self.fetching {
            "stab data fetch needs a connection to huggingface.co (or a mirror in HF_ENDPOINT); on a machine without one, copy a cache filled elsewhere and point HF_HOME / HF_HUB_CACHE at it".to_string()
        } else if ds.custom {
            "read it once where there is a network (`stab data check --recipe R --task TASK` fills that cache), then copy the cache or point HF_HOME / HF_HUB_CACHE at a copy".to_string()
        } else {
            format!(
                "fetch it where there is a network: `stab data fetch --tasks {}` fills that cache (copy it, or point HF_HOME / HF_HUB_CACHE at a copy); or `stab data fetch --tasks {} --to DIR` writes the official files for source = \"dir\"",
                ds.task, ds.task
            )
        };
        Err(InputError::new(format!(
            "dataset {} has no {split} split in the Hugging Face cache at {} ({why})",
            ds.describe(),
            self.root.display()
        ))
        .hint(hint))
    }

    /// Download the split's shards into the cache; the files as the cache holds them.
    fn download(&self, ds: &HubDataset, split: &str) -> stab_core::Result<Vec<PathBuf>> {
        let api = ApiBuilder::from_env()
            .with_cache_dir(self.root.clone())
            .with_progress(false)
            .build()
            .context("cannot set up the Hugging Face Hub client")?;
        let repo = Repo::with_revision(ds.repo.clone(), RepoType::Dataset, ds.revision.clone());
        let remote = api.repo(repo.clone());
        let listed: Vec<String> = remote
            .info()
            .with_context(|| format!("cannot list the files of the dataset {}", ds.repo))?
            .siblings
            .into_iter()
            .map(|s| s.rfilename)
            .collect();
        // The first folder of the config that holds the split.
        let mut names: Vec<String> = ds
            .folders()
            .into_iter()
            .map(|folder| {
                listed
                    .iter()
                    .filter(|name| is_shard(name, folder, split))
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .find(|names| !names.is_empty())
            .unwrap_or_default();
        names.sort();
        let cache = hf_hub::Cache::new(self.root.clone()).repo(repo);
        let mut files = Vec::new();
        for name in names {
            let path = match cache.get(&name) {
                Some(path) => path,
                None => if self.progress {
                    remote.download_with_progress(&name, Bar::new())
                } else {
                    remote.download(&name)
                }
                .with_context(|| format!("cannot download {name} of the dataset {}", ds.repo))?,
            };
            files.push(path);
        }
        Ok(files)
    }
}

/// `<config>/<split>-….parquet` (the `datasets` layout) or `<config>/<split>/….parquet`
/// (the Hub's converted-parquet layout).
fn is_shard(rel: &str, config: &str, split: &str) -> bool {
    rel.strip_prefix(config)
        .and_then(|r| r.strip_prefix('/'))
        .and_then(|r| {
            r.strip_prefix(split)
                .filter(|r| r.starts_with('-') || r.starts_with('/'))
        })
        .is_some_and(|r| r.ends_with(".parquet") && !r[1..].contains('/'))
}

/// Files under `dir`, at most `depth` directories down.
fn walk(dir: &Path, depth: usize) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            if depth > 1 {
                out.extend(walk(&path, depth - 1));
            }
        } else {
            out.push(path);
        }
    }
    out
}

/// A download progress bar (hf-hub's own uses another indicatif release).
struct Bar(indicatif::ProgressBar);

impl Bar {
    fn new() -> Self {
        Bar(indicatif::ProgressBar::new(0))
    }
}

impl hf_hub::api::Progress for Bar {
    fn init(&mut self, size: usize, filename: &str) {
        self.0.set_length(size as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{msg:40} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
        ) {
            self.0.set_style(style.progress_chars("=> "));
        }
        self.0.set_message(filename.to_string());
    }

    fn update(&mut self, size: usize) {
        self.0.inc(size as u64);
    }

    fn finish(&mut self) {
        self.0.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::is_shard;

    #[test]
    fn shard_names_of_both_hub_layouts() {
        assert!(is_shard("rte/train-00000-of-00001.parquet", "rte", "train"));
        assert!(is_shard("rte/train/0000.parquet", "rte", "train"));
        assert!(is_shard(
            "wsc.fixed/validation-00000-of-00001.parquet",
            "wsc.fixed",
            "validation"
        ));
        assert!(!is_shard("rte/test-00000-of-00001.parquet", "rte", "train"));
        assert!(!is_shard("rte/trainx-0.parquet", "rte", "train"));
        assert!(!is_shard("rtex/train-0.parquet", "rte", "train"));
        assert!(!is_shard("rte/train-0.json", "rte", "train"));
        assert!(!is_shard("rte/train/a/0.parquet", "rte", "train"));
        assert!(!is_shard(
            "mnli/validation_matched-0.parquet",
            "mnli",
            "validation"
        ));
    }
}
