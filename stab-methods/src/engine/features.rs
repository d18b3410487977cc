//! Frozen-encoder features for head tuning (docs/methods.md §5, docs/design.md §6): in eval mode
//! the frozen encoder is a fixed function, so each example is encoded once and every
//! seed and method of a task trains its head on the cached vectors. The cache lives in
//! memory for the process and on disk under `<out>/cache/`, keyed by a hash of the model
//! files, task, split, max_len, pooling and head kind, so reruns and other shards skip
//! the encoding.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use stab_core::Pooling;
use stab_data::encode::EncodedRow;
use stab_models::{Encoder, HeadInput};

use super::cache_file::{self, Cached, Payload};
use super::model::{TokenInput, encoder_head_input};

/// Cached encoder outputs of one split.
#[derive(Debug, Clone, PartialEq)]
pub enum FeatureSet {
    /// Pooled vectors, `rows × dim`.
    Pooled { dim: usize, data: Vec<f32> },
    /// Span token vectors, `rows × 2 × width × dim`, with both spans' lengths per row.
    Spans {
        dim: usize,
        width: usize,
        data: Vec<f32>,
        lengths: Vec<u32>,
    },
}

impl FeatureSet {
    pub fn rows(&self) -> usize {
        match self {
            FeatureSet::Pooled { dim, data } => data.len() / dim,
            FeatureSet::Spans { lengths, .. } => lengths.len() / 2,
        }
    }

    /// The head input of the given rows, on `device`.
    pub fn batch(&self, rows: &[usize], device: &Device) -> HeadInput {
        let b = rows.len();
        match self {
            FeatureSet::Pooled { dim, data } => {
                let v: Vec<f32> = rows
                    .iter()
                    .flat_map(|&r| data[r * dim..(r + 1) * dim].iter().copied())
                    .collect();
                HeadInput::Pooled(Tensor::from_data(TensorData::new(v, [b, *dim]), device))
            }
            FeatureSet::Spans {
                dim,
                width,
                data,
                lengths,
            } => {
                let per = 2 * width * dim;
                let v: Vec<f32> = rows
                    .iter()
                    .flat_map(|&r| data[r * per..(r + 1) * per].iter().copied())
                    .collect();
                let mask: Vec<f32> = rows
                    .iter()
                    .flat_map(|&r| {
                        (0..2).flat_map(move |k| {
                            (0..*width).map(move |s| {
                                if (s as u32) < lengths[2 * r + k] {
                                    0.0
                                } else {
                                    -1e9
                                }
                            })
                        })
                    })
                    .collect();
                HeadInput::Spans {
                    tokens: Tensor::from_data(TensorData::new(v, [b, 2, *width, *dim]), device),
                    mask: Tensor::from_data(TensorData::new(mask, [b, 2, *width]), device),
                }
            }
        }
    }
}

/// Encode `rows` with the frozen encoder in eval mode (batches of 64, no dropout).
pub fn encode_features(
    encoder: &Encoder,
    pooling: Pooling,
    rows: &[EncodedRow],
    pad_id: i64,
    device: &Device,
) -> FeatureSet {
    let plain = device.clone().without_autodiff();
    let encoder = encoder.valid();
    let spans = rows.first().is_some_and(|r| !r.spans.is_empty());
    let width = rows
        .iter()
        .flat_map(|r| r.spans.iter().map(|&(a, b)| b + 1 - a))
        .max()
        .unwrap_or(1);
    let dim = encoder.config.hidden_size;
    let per_row = if spans { 2 * width * dim } else { dim };
    let mut data = vec![0f32; rows.len() * per_row];
    let mut lengths = vec![0u32; if spans { rows.len() * 2 } else { 0 }];
    // Encode in order of length so each batch pads little; results go back in row order.
    for chunk in by_length(rows).chunks(64) {
        let refs: Vec<&EncodedRow> = chunk.iter().map(|&i| &rows[i]).collect();
        let input = TokenInput::new(&refs, pad_id, Some(width));
        let (head_input, _) = encoder_head_input(&encoder, pooling, &input, &plain);
        let values: Vec<f32> = match head_input {
            HeadInput::Pooled(p) => p
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .expect("f32"),
            HeadInput::Spans { tokens, .. } => {
                let lens = input.spans.as_ref().expect("span rows").lengths();
                for (k, &i) in chunk.iter().enumerate() {
                    lengths[2 * i..2 * i + 2].copy_from_slice(&lens[2 * k..2 * k + 2]);
                }
                tokens
                    .into_data()
                    .convert::<f32>()
                    .try_to_vec::<f32>()
                    .expect("f32")
            }
        };
        for (k, &i) in chunk.iter().enumerate() {
            data[i * per_row..(i + 1) * per_row]
                .copy_from_slice(&values[k * per_row..(k + 1) * per_row]);
        }
    }
    if spans {
        FeatureSet::Spans {
            dim,
            width,
            data,
            lengths,
        }
    } else {
        FeatureSet::Pooled { dim, data }
    }
}

/// Row indices sorted by token count (stable), for batches with little padding.
pub fn by_length(rows: &[EncodedRow]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| rows[i].input_ids.len());
    order
}

/// Version 2 of the format: the STABFT01 payload, framed with a length and a CRC-32.
const MAGIC: &[u8; 8] = b"STABFT02";

/// Save feature sets atomically, checksummed (see [`cache_file`]), with a JSON sidecar
/// (`.json`) describing what they are (splits train, dev, test, and the key).
pub fn save(path: &Path, sets: &[FeatureSet], description: &str) -> anyhow::Result<()> {
    cache_file::write(path, MAGIC, |f| {
        f.write_all(&(sets.len() as u64).to_le_bytes())?;
        for s in sets {
            let (kind, dim, width, data, lengths): (u64, usize, usize, &[f32], &[u32]) = match s {
                FeatureSet::Pooled { dim, data } => (0, *dim, 1, data, &[]),
                FeatureSet::Spans {
                    dim,
                    width,
                    data,
                    lengths,
                } => (1, *dim, *width, data, lengths),
            };
            for v in [
                kind,
                dim as u64,
                width as u64,
                data.len() as u64,
                lengths.len() as u64,
            ] {
                f.write_all(&v.to_le_bytes())?;
            }
            for x in data {
                f.write_all(&x.to_le_bytes())?;
            }
            for x in lengths {
                f.write_all(&x.to_le_bytes())?;
            }
        }
        Ok(())
    })?;
    let sidecar = serde_json::json!({"key": description, "splits": ["train", "dev", "test"], "rows": sets.iter().map(FeatureSet::rows).collect::<Vec<_>>()});
    stab_core::atomic::write_file(
        &path.with_extension("json"),
        (sidecar.to_string() + "\n").as_bytes(),
    )
}

/// Load feature sets saved by [`save`], verifying the checksum and every size.
pub fn load(path: &Path) -> Cached<Vec<FeatureSet>> {
    Cached::read(path, MAGIC, "feature sets", parse)
}

fn parse(bytes: &[u8]) -> Option<Vec<FeatureSet>> {
    let mut p = Payload::new(bytes);
    let count = p.count(16, 40)?;
    let mut sets = Vec::with_capacity(count);
    for _ in 0..count {
        let kind = p.u64()?;
        let dim = usize::try_from(p.u64()?).ok()?;
        let width = usize::try_from(p.u64()?).ok()?;
        let n = p.count(stab_core::limits::CACHE_VALUES, 4)?;
        let m = p.count(stab_core::limits::CACHE_VALUES, 4)?;
        let data = p.f32s(n)?;
        let lengths = p.u32s(m)?;
        let per_row = match kind {
            0 => dim,
            1 => dim.checked_mul(width)?.checked_mul(2)?,
            _ => return None,
        };
        // Every row whole, and (spans) one pair of lengths per row within the width.
        if per_row == 0 || n % per_row != 0 {
            return None;
        }
        sets.push(match kind {
            0 if m == 0 && width == 1 => FeatureSet::Pooled { dim, data },
            1 if m == 2 * (n / per_row) && lengths.iter().all(|&l| l as usize <= width) => {
                FeatureSet::Spans {
                    dim,
                    width,
                    data,
                    lengths,
                }
            }
            _ => return None,
        });
    }
    p.is_done().then_some(sets)
}

/// The cache file for a key under an out directory.
pub fn cache_path(out: &Path, key: u64) -> PathBuf {
    out.join("cache").join(format!("features-{key:016x}.bin"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corrupt_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = cache_path(dir.path(), 42);
        let sets = vec![
            FeatureSet::Pooled {
                dim: 2,
                data: vec![1.0, 2.0, 3.0, 4.0],
            },
            FeatureSet::Spans {
                dim: 1,
                width: 2,
                data: vec![0.5; 8],
                lengths: vec![1, 2, 2, 1],
            },
        ];
        save(&p, &sets, "test").unwrap();
        match load(&p) {
            Cached::Valid(s) => assert_eq!(s, sets),
            other => panic!("{other:?}"),
        }
        let good = std::fs::read(&p).unwrap();
        let mut bytes = good.clone();
        bytes.truncate(bytes.len() - 3);
        std::fs::write(&p, bytes).unwrap();
        assert!(
            matches!(load(&p), Cached::Damaged(_)),
            "a torn cache file is ignored, not trusted"
        );
        // One flipped bit in a feature value: the checksum catches it.
        let mut flipped = good.clone();
        flipped[8 + 8 + 40 + 5] ^= 0x01;
        std::fs::write(&p, flipped).unwrap();
        assert!(matches!(load(&p), Cached::Damaged(m) if m.contains("checksum")));
    }

    #[test]
    fn a_pooled_set_with_a_span_width_is_not_a_valid_file() {
        // Found by the feature_cache fuzz target: a pooled set's width field must be 1,
        // or a damaged file would read back as valid yet differ from what was saved.
        let mut payload = 1u64.to_le_bytes().to_vec();
        for v in [0u64, 2, 7, 2, 0] {
            payload.extend(v.to_le_bytes());
        }
        payload.extend([1f32, 2.0].iter().flat_map(|x| x.to_le_bytes()));
        assert!(parse(&payload).is_none());
        payload[8 + 16..8 + 24].copy_from_slice(&1u64.to_le_bytes());
        assert!(parse(&payload).is_some());
    }
}
