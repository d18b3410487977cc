//! Splits (docs/methods.md §3.3, §6): a fixed 90/10 split of the official train set into
//! train and dev (the same for every run seed; MultiRC split by passage), the official dev
//! set as test, and per-seed `train_fraction` subsampling and `drop_fraction` removal
//! that only ever touch the train part.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use stab_core::derive_seed;

use std::path::{Path, PathBuf};

use stab_core::{InputError, stable_hash};

use crate::tasks::{Example, TaskData};

/// Which split a run uses, for records and `stab data check`.
#[derive(Debug, Clone, PartialEq)]
pub enum SplitSource {
    /// A fixed split file (`<splits dir>/<task>.json`), e.g. the paper author's.
    File(std::path::PathBuf),
    /// The paper author's split file of the task, built into stab.
    Author(&'static str),
    /// The seeded ⌈dev_fraction·n⌉ fallback.
    Seeded { dev_fraction: f64 },
    /// A custom task's own dev file (`[data.custom.<name>] dev`).
    DevFile,
}

/// A split and where it came from; `hash` identifies its dev rows.
#[derive(Debug, Clone)]
pub struct ResolvedSplit {
    pub splits: Splits,
    pub source: SplitSource,
    /// `file:<16 hex>` or `seeded:<16 hex>`: a hash of the sorted dev group ids.
    pub hash: String,
}

/// Where a run's fixed split files come from.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum SplitFiles {
    /// `<task>.json` files in a directory.
    Dir(PathBuf),
    /// The paper author's files built into stab ([`author_split`]).
    Author,
}

/// The paper author's fixed 90/10 split files (docs/methods.md §3.3), as row numbers of
/// the official train files; the same files as `shared/data/splits`.
const AUTHOR_SPLITS: &[(&str, &str)] = &[
    ("cb", include_str!("../splits/cb.json")),
    ("cola", include_str!("../splits/cola.json")),
    ("mrpc", include_str!("../splits/mrpc.json")),
    ("rte", include_str!("../splits/rte.json")),
    ("sst2", include_str!("../splits/sst2.json")),
    ("wnli", include_str!("../splits/wnli.json")),
    ("wsc", include_str!("../splits/wsc.json")),
];

/// The text of the paper author's split file of `task`, when there is one (QQP, BoolQ,
/// MultiRC and WiC have none and use the seeded split).
pub fn author_split(task: &str) -> Option<&'static str> {
    AUTHOR_SPLITS
        .iter()
        .find(|(t, _)| *t == task)
        .map(|(_, text)| *text)
}

/// The fixed split files of a data source: `named` (the recipe's `data.splits` or
/// `--splits`, given as `key`), which must exist; else `<dir>/splits` when it exists
/// (`source = "dir"`), or the author's built-in files (`source = "hub"`).
pub fn split_files(
    origin: stab_core::DataOrigin<'_>,
    named: Option<&Path>,
    key: &str,
) -> Result<Option<SplitFiles>, InputError> {
    match origin {
        stab_core::DataOrigin::Hub(_) if named.is_none() => Ok(Some(SplitFiles::Author)),
        stab_core::DataOrigin::Hub(_) => {
            Ok(splits_dir(Path::new(""), named, key)?.map(SplitFiles::Dir))
        }
        stab_core::DataOrigin::Dir(dir) => Ok(splits_dir(dir, named, key)?.map(SplitFiles::Dir)),
    }
}

/// The directory of fixed split files a run uses: `named` (the recipe's `data.splits` or
/// `--splits`, given as `key`), which must exist, else `<data_dir>/splits` when it
/// exists, else none (the seeded split).
pub fn splits_dir(
    data_dir: &Path,
    named: Option<&Path>,
    key: &str,
) -> Result<Option<std::path::PathBuf>, InputError> {
    match named {
        Some(dir) if !dir.is_dir() => Err(InputError::new(format!(
            "the split directory {} does not exist",
            dir.display()
        ))
        .key(key)
        .hint(format!(
            "point {key} at a directory of <task>.json split files, or leave it out to use <data dir>/splits or the seeded split"
        ))),
        Some(dir) => Ok(Some(dir.to_path_buf())),
        None => Ok(Some(data_dir.join("splits")).filter(|d| d.is_dir())),
    }
}

/// The split of a task: a custom task's own dev file; a built-in task's
/// `<splits_dir>/<task>.json` when that file exists; else the seeded fallback. A split
/// file that does not fit the train file is an input error.
pub fn resolve_split(
    data: &TaskData,
    files: Option<&SplitFiles>,
    dev_fraction: f64,
) -> Result<ResolvedSplit, InputError> {
    let (splits, source) = match (&data.dev, files) {
        (Some(dev), _) => (
            Splits {
                train: data.train.clone(),
                dev: dev.clone(),
                test: data.test.clone(),
            },
            SplitSource::DevFile,
        ),
        // Split files number the rows of the official train files: built-in tasks only.
        (None, _) if data.task.builtin().is_none() => (
            dev_split(data, dev_fraction),
            SplitSource::Seeded { dev_fraction },
        ),
        (None, files) => split_for(data, files, dev_fraction)?,
    };
    let mut groups: Vec<u64> = splits.dev.iter().map(|e| e.group).collect();
    groups.dedup();
    let bytes: Vec<u8> = groups.iter().flat_map(|g| g.to_le_bytes()).collect();
    let kind = if !matches!(source, SplitSource::Seeded { .. }) {
        "file"
    } else {
        "seeded"
    };
    let hash = format!("{kind}:{:016x}", stable_hash(&bytes));
    Ok(ResolvedSplit {
        splits,
        source,
        hash,
    })
}

/// A built-in task's dev split: its fixed split file when there is one, else seeded.
fn split_for(
    data: &TaskData,
    files: Option<&SplitFiles>,
    dev_fraction: f64,
) -> Result<(Splits, SplitSource), InputError> {
    let name = data.task.name();
    Ok(match files {
        Some(SplitFiles::Dir(d)) if d.join(format!("{name}.json")).is_file() => {
            let path = d.join(format!("{name}.json"));
            (fixed_split(data, &path)?, SplitSource::File(path))
        }
        Some(SplitFiles::Author) if author_split(name).is_some() => {
            let text = author_split(name).expect("checked");
            let origin = format!("stab's built-in author split {name}.json");
            (
                fixed_split_text(data, text, &origin)?,
                SplitSource::Author(data.task.builtin().expect("a built-in task").name),
            )
        }
        _ => (
            dev_split(data, dev_fraction),
            SplitSource::Seeded { dev_fraction },
        ),
    })
}

#[derive(serde::Deserialize)]
struct SplitFile {
    train_rows: usize,
    dev_rows: usize,
    dev: Vec<usize>,
}

/// Read a fixed split file: `{"train_rows", "dev_rows", "dev": [0-based train-file rows]}`.
pub fn fixed_split(data: &TaskData, path: &Path) -> Result<Splits, InputError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        InputError::new(format!("cannot read the split file: {e}")).file(file.clone())
    })?;
    fixed_split_text(data, &text, &file)
}

/// [`fixed_split`] of a split file's text; `file` names it in messages.
pub fn fixed_split_text(data: &TaskData, text: &str, file: &str) -> Result<Splits, InputError> {
    let file = file.to_string();
    let bad = |m: String| {
        InputError::new(m).file(file.clone()).hint(format!(
            "a split file lists the 0-based data rows of {}'s train file that form dev; remove it to use the seeded 90/10 split",
            data.task.name()
        ))
    };
    let f: SplitFile = serde_json::from_str(text)
        .map_err(|e| bad(format!("not a split file: {e}")).line(Some(e.line())))?;
    let n = data
        .train
        .iter()
        .map(|e| e.group)
        .max()
        .map_or(0, |g| g as usize + 1);
    if n > 2 * data.train.len() + 1_000_000 {
        return Err(bad(format!(
            "the train file's group ids reach {}, far beyond its {} rows",
            n - 1,
            data.train.len()
        )));
    }
    if f.train_rows.checked_add(f.dev_rows) != Some(n) {
        return Err(bad(format!(
            "the split has {} train + {} dev rows, but the train file has {n}",
            f.train_rows, f.dev_rows
        )));
    }
    if f.dev_rows == 0 {
        return Err(bad(
            "the dev split is empty: early stopping would select on no examples".into(),
        ));
    }
    if f.train_rows == 0 {
        return Err(bad(format!(
            "the dev split covers all {n} rows of the train file, leaving none to train on"
        )));
    }
    if f.dev.len() != f.dev_rows {
        return Err(bad(format!(
            "`dev` lists {} rows, but dev_rows = {}",
            f.dev.len(),
            f.dev_rows
        )));
    }
    let mut seen = vec![false; n];
    for &r in &f.dev {
        if r >= n {
            return Err(bad(format!(
                "dev row {r} is out of range: the train file has {n} rows (0-based)"
            )));
        }
        if std::mem::replace(&mut seen[r], true) {
            return Err(bad(format!("dev row {r} is listed twice")));
        }
    }
    let (dev, train) = data
        .train
        .iter()
        .cloned()
        .partition(|e| seen[e.group as usize]);
    Ok(Splits {
        train,
        dev,
        test: data.test.clone(),
    })
}

/// Train / dev / test rows of one run.
#[derive(Debug, Clone)]
pub struct Splits {
    pub train: Vec<Example>,
    pub dev: Vec<Example>,
    pub test: Vec<Example>,
}

/// Shuffle the split groups with a fixed seed (0, per task) and send ⌈dev_fraction·groups⌉
/// of them to dev. Row order within each part follows the file.
pub fn dev_split(data: &TaskData, dev_fraction: f64) -> Splits {
    let mut groups: Vec<u64> = data.train.iter().map(|e| e.group).collect();
    groups.sort_unstable();
    groups.dedup();
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(0, &["dev-split", data.task.name()]));
    groups.shuffle(&mut rng);
    let n_dev = ((dev_fraction * groups.len() as f64) - 1e-9)
        .ceil()
        .max(0.0) as usize;
    let dev_groups: std::collections::HashSet<u64> =
        groups[..n_dev.min(groups.len())].iter().copied().collect();
    let (dev, train) = data
        .train
        .iter()
        .cloned()
        .partition(|e| dev_groups.contains(&e.group));
    Splits {
        train,
        dev,
        test: data.test.clone(),
    }
}

/// The run seed's train set: keep a `train_fraction` subset, then remove `drop_fraction`
/// of it (both by group, both drawn from the run seed). Dev and test are untouched.
pub fn perturb(
    mut splits: Splits,
    task: &str,
    seed: u64,
    train_fraction: f64,
    drop_fraction: f64,
) -> Splits {
    let select = |rows: Vec<Example>, keep: f64, purpose: &str| -> Vec<Example> {
        if keep >= 1.0 {
            return rows;
        }
        let mut groups: Vec<u64> = rows.iter().map(|e| e.group).collect();
        groups.sort_unstable();
        groups.dedup();
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(seed, &[purpose, task]));
        groups.shuffle(&mut rng);
        let n = (keep * groups.len() as f64).round() as usize;
        let kept: std::collections::HashSet<u64> = groups[..n].iter().copied().collect();
        rows.into_iter()
            .filter(|e| kept.contains(&e.group))
            .collect()
    };
    splits.train = select(splits.train, train_fraction, "train-fraction");
    splits.train = select(splits.train, 1.0 - drop_fraction, "drop-fraction");
    splits
}
