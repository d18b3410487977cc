//! The one place where sizes that decide an allocation are bounded, before anything is
//! allocated: recipe counts, command-line counts, model configurations and the sizes read
//! from cache files. A value outside its range is an [`InputError`] naming the key, the
//! range and a hint, never an allocation failure.
//!
//! The bounds are far above what the paper or any real model uses and far below what
//! would exhaust memory on their own.

use crate::error::InputError;

/// An inclusive range of a count, with the hint shown when a value falls outside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub min: u64,
    pub max: u64,
    pub hint: &'static str,
}

impl Limit {
    pub const fn new(min: u64, max: u64, hint: &'static str) -> Self {
        Self { min, max, hint }
    }

    /// `Ok` when `value` is in range; else an error naming `key`.
    pub fn check(&self, key: &str, value: u64) -> Result<(), InputError> {
        if (self.min..=self.max).contains(&value) {
            return Ok(());
        }
        let what = if value > self.max {
            "too large"
        } else {
            "out of range"
        };
        Err(InputError::new(format!(
            "{key} = {value} is {what}; expected {}..={}",
            self.min, self.max
        ))
        .key(key)
        .hint(self.hint))
    }

    /// Like [`Limit::check`] for a `usize`.
    pub fn check_usize(&self, key: &str, value: usize) -> Result<(), InputError> {
        self.check(key, value as u64)
    }
}

// Recipes (fine-tuning).
pub const SEEDS: Limit = Limit::new(1, 10_000, "e.g. seeds = 10 or seeds = [0, 3, 7]");
pub const BENCH_REPEATS: Limit = Limit::new(1, 10_000, "e.g. --repeats 10");
pub const EPOCHS: Limit = Limit::new(
    1,
    1_000_000,
    "e.g. epochs = 10 (the author profile uses 10000)",
);
pub const BATCH_SIZE: Limit = Limit::new(1, 4096, "e.g. batch_size = 16");
pub const SEED_BATCH: Limit = Limit::new(
    1,
    4096,
    "e.g. seed_batch = 16 (1 trains every seed alone; unset: as many as memory allows, up to 64)",
);
pub const PATIENCE: Limit = Limit::new(1, 1_000_000, "e.g. patience = 20");
pub const MAX_STEPS: Limit = Limit::new(0, 100_000_000, "0 = no cap");
pub const EVAL_EVERY: Limit = Limit::new(0, 100_000_000, "0 = once per epoch");
/// Tokens per example; the model's position embeddings bound it further.
pub const MAX_LEN: Limit = Limit::new(
    8,
    8192,
    "e.g. max_len = 128 (the model's position embeddings bound it too)",
);

// Recipes (synthetic studies).
pub const DATASETS: Limit = Limit::new(1, 100_000, "the paper's sizes are far below this");
pub const POINTS: Limit = Limit::new(1, 1_000_000, "the paper's sizes are far below this");
pub const HEADS: Limit = Limit::new(1, 4096, "the paper's sizes are far below this");
pub const GD_STEPS: Limit = Limit::new(1, 10_000_000, "the paper's sizes are far below this");
pub const LOO_SAMPLES: Limit = Limit::new(0, 10_000, "the paper's sizes are far below this");

// Command lines.
pub const THREADS: Limit = Limit::new(1, 1024, "use 1..=1024, e.g. --threads 4");
pub const JOBS: Limit = Limit::new(1, 1024, "use 1..=1024, e.g. --jobs 2");
pub const SHARDS: Limit = Limit::new(1, 100_000, "e.g. --shards 8");
pub const LOO_HEADS: Limit = Limit::new(1, 4096, "e.g. --heads 1,5,20,50");
pub const LOO_POINTS: Limit = Limit::new(1, 10_000, "e.g. --points 10");
pub const LOO_STEPS: Limit = Limit::new(1, 10_000_000, "e.g. --steps 1000");
pub const SVM_SAMPLES: Limit = Limit::new(0, 100_000, "0 = all support vectors; e.g. 50");
pub const SVM_MAX_ITER: Limit = Limit::new(1, 10_000_000_000, "e.g. --svm-max-iter 2000000");
pub const TAYLOR_BATCH: Limit = Limit::new(1, 4096, "e.g. --batch 32");
pub const TAYLOR_REPEATS: Limit = Limit::new(1, 1_000_000, "e.g. --repeats 100");
pub const TAYLOR_PS: Limit = Limit::new(1, 1000, "e.g. --ps 0.001,0.01,0.1");
pub const EMBED_INPUTS: Limit = Limit::new(
    1,
    1024,
    "the inputs are encoded as one padded batch; split them into files of at most 1024 lines",
);

// Model configurations (`config.json`).
pub const VOCAB_SIZE: Limit = Limit::new(1, 10_000_000, "a vocabulary of at most 10M tokens");
pub const HIDDEN_SIZE: Limit = Limit::new(1, 65_536, "hidden_size of a real encoder is 128..=4096");
pub const LAYERS: Limit = Limit::new(1, 1024, "num_hidden_layers of a real encoder is 1..=48");
pub const ATTENTION_HEADS: Limit = Limit::new(1, 1024, "num_attention_heads is 1..=64 in practice");
pub const INTERMEDIATE_SIZE: Limit =
    Limit::new(1, 262_144, "intermediate_size is usually 4 × hidden_size");
pub const POSITIONS: Limit = Limit::new(
    1,
    1_048_576,
    "max_position_embeddings is 512 for BERT and RoBERTa",
);
pub const TYPE_VOCAB: Limit = Limit::new(1, 1024, "type_vocab_size is 2 for BERT, 1 for RoBERTa");
/// Parameters of an encoder, from its configuration, before any tensor is made.
pub const PARAMETERS: Limit = Limit::new(
    1,
    5_000_000_000,
    "config.json describes an encoder larger than any stab can hold in memory",
);

// Sizes read from cache files (a damaged size must not become an allocation).
/// Float values of one cached feature set (16 GiB of f32).
pub const CACHE_VALUES: u64 = 4_000_000_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_range_passes_and_out_of_range_names_the_key_and_range() {
        assert!(SEEDS.check("train.seeds", 10).is_ok());
        let e = SEEDS.check("train.seeds", 1 << 40).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("train.seeds"));
        assert!(e.message.contains("too large; expected 1..=10000"), "{e}");
        let e = MAX_LEN.check_usize("--max-len", 2).unwrap_err();
        assert!(e.message.contains("out of range; expected 8..=8192"), "{e}");
    }
}
