//! Weights in Hugging Face layout: the inverse of the loader's renames, and plain
//! safetensors reading and writing.
//!
//! A fine-tuned run's checkpoint (`[train] save_best`) is a model directory: `config.json`
//! and the tokenizer files copied from the pre-trained model, and `model.safetensors` with
//! the encoder under the family's base-model names ([`crate::names::hf_name`]: BertModel's
//! `embeddings.*`, `encoder.layer.N.*`, `pooler.*`, ModernBertModel's `layers.N.*`, …;
//! Linear weights `[out, in]`, LayerNorm `weight`/`bias`), so that `AutoModel` and stab's own
//! loader read it, plus the task head under `stab_head.*` in stab's layout (HF has no
//! equivalent for a multi-head head; HF tools ignore the extra keys).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use stab_core::InputError;

/// One tensor by name, as f32 values in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// Tensors by name, with the file's string metadata.
#[derive(Debug, Clone, Default)]
pub struct TensorFile {
    pub tensors: BTreeMap<String, NamedTensor>,
    pub metadata: BTreeMap<String, String>,
}

/// Prefix of the task head's tensors in a checkpoint.
pub const HEAD_PREFIX: &str = "stab_head.";

/// `values` of a `[rows, cols]` matrix, transposed to `[cols, rows]`.
pub fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    out
}

/// Write `file` to `path` as safetensors (f32), atomically (a temporary file renamed).
pub fn write_safetensors(path: &Path, file: &TensorFile) -> stab_core::Result<()> {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = file
        .tensors
        .iter()
        .map(|(name, t)| {
            let raw = t.values.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name.clone(), raw, t.shape.clone())
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, raw, shape)| {
            TensorView::new(Dtype::F32, shape.clone(), raw).map(|v| (name.as_str(), v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| stab_core::internal!("{e}"))?;
    let mut metadata: HashMap<String, String> = file.metadata.clone().into_iter().collect();
    metadata
        .entry("format".into())
        .or_insert_with(|| "pt".into());
    let encoded = safetensors::serialize(views, Some(metadata))
        .map_err(|e| stab_core::internal!("cannot write {}: {e}", path.display()))?;
    stab_core::atomic::write_file(path, &encoded)
}

/// Read every floating-point tensor of a safetensors file as f32 (F32, F64, F16 and BF16
/// are converted; integer buffers such as `position_ids` are skipped).
pub fn read_safetensors(path: &Path) -> stab_core::Result<TensorFile> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| {
        InputError::new(format!("cannot read: {e}"))
            .file(name.clone())
            .hint("a model directory holds model.safetensors; a run checkpoint is <out>/checkpoints/<run_id>")
    })?;
    let corrupt = |e: String| {
        InputError::new(format!("not a safetensors file: {e}"))
            .file(name.clone())
            .hint("re-download or re-create the file")
    };
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let mut out = TensorFile {
        metadata: meta
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        ..TensorFile::default()
    };
    for (key, view) in st.tensors() {
        let data = view.data();
        let values: Vec<f32> = match view.dtype() {
            Dtype::F32 => data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect(),
            Dtype::F64 => data
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
                .collect(),
            Dtype::BF16 => data
                .chunks_exact(2)
                .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16))
                .collect(),
            Dtype::F16 => data
                .chunks_exact(2)
                .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
            _ => continue,
        };
        out.tensors.insert(
            key,
            NamedTensor {
                shape: view.shape().to_vec(),
                values,
            },
        );
    }
    Ok(out)
}

/// IEEE half → single precision.
fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as u32;
    let bits = match exp {
        0 if frac == 0 => sign,
        0 => {
            // Subnormal: value = frac · 2^−24.
            let v = frac as f32 * 2f32.powi(-24);
            return if sign != 0 { -v } else { v };
        }
        0x1f => sign | 0x7f80_0000 | (frac << 13),
        e => sign | (((e - 15 + 127) as u32) << 23) | (frac << 13),
    };
    f32::from_bits(bits)
}

/// A tensor name without the task-model prefix some checkpoints carry (`bert.`,
/// `roberta.`, `electra.`, `deberta.`, `model.`).
pub fn base_name(name: &str) -> &str {
    crate::names::strip_prefix(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safetensors_round_trip_and_half_precision() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let mut file = TensorFile::default();
        file.tensors.insert(
            "a.weight".into(),
            NamedTensor {
                shape: vec![2, 3],
                values: vec![1.0, -2.0, 3.5, 0.0, 1e-3, 7.0],
            },
        );
        file.metadata.insert("stab_run_id".into(), "x".into());
        write_safetensors(&path, &file).unwrap();
        let back = read_safetensors(&path).unwrap();
        assert_eq!(back.tensors, file.tensors);
        assert_eq!(back.metadata["stab_run_id"], "x");
        assert_eq!(back.metadata["format"], "pt");
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(
            transpose(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3),
            [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
        );
    }
}
