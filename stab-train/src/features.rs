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
use stab_models::{Encoder, HeadInput, NamedTensor, TensorFile};

use crate::cache_file::{self, Cached};
use crate::model::{TokenInput, encoder_head_input};

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
        let (head_input, _) = encoder_head_input(&encoder, pooling, &input, None, &plain);
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

/// The format of a feature cache file ([`cache_file`]): safetensors with, per set i,
/// `i.values` `[rows, per-row]` and, for span sets, `i.lengths` `[rows, 2]`; metadata
/// `sets`, `i.kind` (pooled | spans), `i.dim`, `i.width` and `key`.
const FORMAT: &str = "features/3";

/// Save feature sets atomically, checksummed, with the key text they were encoded under.
pub fn save(path: &Path, sets: &[FeatureSet], description: &str) -> stab_core::Result<()> {
    let mut file = TensorFile::default();
    let meta = &mut file.metadata;
    meta.insert("sets".into(), sets.len().to_string());
    meta.insert("key".into(), description.to_string());
    for (i, s) in sets.iter().enumerate() {
        let rows = s.rows();
        let (kind, dim, width, data) = match s {
            FeatureSet::Pooled { dim, data } => ("pooled", *dim, 1, data),
            FeatureSet::Spans {
                dim, width, data, ..
            } => ("spans", *dim, *width, data),
        };
        file.metadata.insert(format!("{i}.kind"), kind.into());
        file.metadata.insert(format!("{i}.dim"), dim.to_string());
        file.metadata
            .insert(format!("{i}.width"), width.to_string());
        let per_row = data.len().checked_div(rows).unwrap_or(0);
        file.tensors.insert(
            format!("{i}.values"),
            NamedTensor {
                shape: vec![rows, per_row],
                values: data.clone(),
            },
        );
        if let FeatureSet::Spans { lengths, .. } = s {
            file.tensors.insert(
                format!("{i}.lengths"),
                NamedTensor {
                    shape: vec![rows, 2],
                    values: lengths.iter().map(|&l| l as f32).collect(),
                },
            );
        }
    }
    cache_file::write(path, FORMAT, file)
}

/// Load feature sets saved by [`save`], verifying the checksum and every size.
pub fn load(path: &Path) -> Cached<Vec<FeatureSet>> {
    Cached::read(path, FORMAT, "feature sets", parse)
}

fn parse(mut file: TensorFile) -> Option<Vec<FeatureSet>> {
    let meta = |k: &str| file.metadata.get(k).cloned();
    let count: usize = meta("sets")?.parse().ok()?;
    if count > 16 {
        return None;
    }
    let mut sets = Vec::with_capacity(count);
    for i in 0..count {
        let kind = meta(&format!("{i}.kind"))?;
        let dim: usize = meta(&format!("{i}.dim"))?.parse().ok()?;
        let width: usize = meta(&format!("{i}.width"))?.parse().ok()?;
        let values = file.tensors.remove(&format!("{i}.values"))?;
        let [rows, per_row] = values.shape[..] else {
            return None;
        };
        let expected = match kind.as_str() {
            "pooled" if width == 1 => dim,
            "spans" => dim.checked_mul(width)?.checked_mul(2)?,
            _ => return None,
        };
        if dim == 0 || (rows > 0 && per_row != expected) {
            return None;
        }
        let data = values.values;
        sets.push(match kind.as_str() {
            "pooled" => FeatureSet::Pooled { dim, data },
            _ => {
                let l = file.tensors.remove(&format!("{i}.lengths"))?;
                let ok = l.shape == [rows, 2]
                    && l.values
                        .iter()
                        .all(|&v| v >= 0.0 && v <= width as f32 && v.fract() == 0.0);
                if !ok {
                    return None;
                }
                FeatureSet::Spans {
                    dim,
                    width,
                    data,
                    lengths: l.values.iter().map(|&v| v as u32).collect(),
                }
            }
        });
    }
    file.tensors.is_empty().then_some(sets)
}

/// The cache file for a key under an out directory.
pub fn cache_path(out: &Path, key: u64) -> PathBuf {
    out.join("cache")
        .join(format!("features-{key:016x}.safetensors"))
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
        // Any safetensors reader opens the file.
        let file = stab_models::read_safetensors(&p).unwrap();
        assert_eq!(file.tensors["0.values"].shape, [2, 2]);
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
        let at = good.len() - 5;
        flipped[at] ^= 0x01;
        std::fs::write(&p, flipped).unwrap();
        assert!(matches!(load(&p), Cached::Damaged(m) if m.contains("checksum")));
    }
}
