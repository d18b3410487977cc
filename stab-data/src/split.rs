//! Splits (methods-spec §3.3, §6): a fixed 90/10 split of the official train set into
//! train and dev (the same for every run seed; MultiRC split by passage), the official dev
//! set as test, and per-seed `train_fraction` subsampling and `drop_fraction` removal
//! that only ever touch the train part.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use stab_core::derive_seed;

use crate::tasks::{Example, TaskData};

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
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(0, &["dev-split", data.def.name]));
    groups.shuffle(&mut rng);
    let n_dev = ((dev_fraction * groups.len() as f64) - 1e-9).ceil().max(0.0) as usize;
    let dev_groups: std::collections::HashSet<u64> = groups[..n_dev.min(groups.len())].iter().copied().collect();
    let (dev, train) = data.train.iter().cloned().partition(|e| dev_groups.contains(&e.group));
    Splits { train, dev, test: data.test.clone() }
}

/// The run seed's train set: keep a `train_fraction` subset, then remove `drop_fraction`
/// of it (both by group, both drawn from the run seed). Dev and test are untouched.
pub fn perturb(mut splits: Splits, task: &str, seed: u64, train_fraction: f64, drop_fraction: f64) -> Splits {
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
        rows.into_iter().filter(|e| kept.contains(&e.group)).collect()
    };
    splits.train = select(splits.train, train_fraction, "train-fraction");
    splits.train = select(splits.train, 1.0 - drop_fraction, "drop-fraction");
    splits
}
