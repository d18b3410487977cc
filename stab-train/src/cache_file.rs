//! stab's tensor cache files (frozen features, prepared encoders, parameter snapshots): one
//! format, safetensors, with two metadata entries of stab's own — `stab_format` (what the
//! file holds, and its version) and `stab_crc32`, a CRC-32 over the other metadata and
//! every tensor's name, shape and values in name order. A file is written whole and
//! atomically; on read, a missing file, a file that is not safetensors, another format, a
//! checksum mismatch (flipped bytes) or contents that do not fit are told apart, so the
//! caller can warn and rebuild instead of training on corrupt values. Any safetensors
//! reader opens the files.

use std::path::Path;

use stab_models::{TensorFile, read_safetensors, write_safetensors};

/// A value read from a cache file.
#[derive(Debug)]
pub enum Cached<T> {
    /// No file: compute and write it.
    Missing,
    /// A file that cannot be trusted or does not fit, and why: warn, then rebuild it.
    Damaged(String),
    Valid(T),
}

const FORMAT: &str = "stab_format";
const CRC: &str = "stab_crc32";

/// The checksum of a file's contents (its metadata except the checksum itself, and its
/// tensors), independent of the byte layout safetensors chooses.
fn checksum(file: &TensorFile) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for (k, v) in file.metadata.iter().filter(|(k, _)| k.as_str() != CRC) {
        for part in [k.as_bytes(), v.as_bytes()] {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part);
        }
    }
    for (name, t) in &file.tensors {
        h.update(&(name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update(&(t.shape.len() as u64).to_le_bytes());
        for &d in &t.shape {
            h.update(&(d as u64).to_le_bytes());
        }
        for v in &t.values {
            h.update(&v.to_le_bytes());
        }
    }
    h.finalize()
}

/// Write `file` as `format` (e.g. `features/3`), checksummed, atomically.
pub fn write(path: &Path, format: &str, mut file: TensorFile) -> stab_core::Result<()> {
    file.metadata.insert(FORMAT.into(), format.into());
    // The writer's own tag, set here so that the checksum covers what is written.
    file.metadata
        .entry("format".into())
        .or_insert_with(|| "pt".into());
    file.metadata.remove(CRC);
    let crc = checksum(&file);
    file.metadata.insert(CRC.into(), format!("{crc:08x}"));
    write_safetensors(path, &file)
}

/// Read and verify a file written by [`write`] as `format`.
pub fn read(path: &Path, format: &str) -> Cached<TensorFile> {
    if !path.exists() {
        return Cached::Missing;
    }
    let file = match read_safetensors(path) {
        Ok(f) => f,
        Err(e) => return Cached::Damaged(format!("{e}")),
    };
    match file.metadata.get(FORMAT) {
        Some(f) if f == format => {}
        other => {
            return Cached::Damaged(format!(
                "it holds {}, not {format} (an older format is rebuilt once)",
                other.map_or("no stab format", String::as_str)
            ));
        }
    }
    let stored = file.metadata.get(CRC).cloned().unwrap_or_default();
    if stored != format!("{:08x}", checksum(&file)) {
        return Cached::Damaged("its checksum does not match: the bytes were altered".into());
    }
    Cached::Valid(file)
}

impl<T> Cached<T> {
    /// Read `path` as `format` and turn it into a value with `parse` (`None`: the file
    /// does not describe one; `what` names the expectation).
    pub fn read(
        path: &Path,
        format: &str,
        what: &str,
        parse: impl FnOnce(TensorFile) -> Option<T>,
    ) -> Self {
        match read(path, format) {
            Cached::Missing => Cached::Missing,
            Cached::Damaged(why) => Cached::Damaged(why),
            Cached::Valid(file) => match parse(file) {
                Some(v) => Cached::Valid(v),
                None => Cached::Damaged(format!("its contents do not describe {what}")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stab_models::NamedTensor;

    #[test]
    fn flipped_torn_and_foreign_files_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.safetensors");
        assert!(matches!(read(&p, "test/1"), Cached::Missing));
        let mut file = TensorFile::default();
        file.tensors.insert(
            "x".into(),
            NamedTensor {
                shape: vec![5],
                values: vec![1.0, 2.0, 3.0, 4.0, 5.0],
            },
        );
        write(&p, "test/1", file.clone()).unwrap();
        match read(&p, "test/1") {
            Cached::Valid(v) => assert_eq!(v.tensors["x"].values, file.tensors["x"].values),
            other => panic!("{other:?}"),
        }
        let good = std::fs::read(&p).unwrap();
        let mut flipped = good.clone();
        let at = good.len() - 6;
        flipped[at] ^= 0x40;
        std::fs::write(&p, &flipped).unwrap();
        assert!(matches!(read(&p, "test/1"), Cached::Damaged(m) if m.contains("checksum")));
        std::fs::write(&p, &good[..good.len() - 2]).unwrap();
        assert!(matches!(read(&p, "test/1"), Cached::Damaged(_)));
        std::fs::write(&p, &good).unwrap();
        assert!(matches!(read(&p, "test/2"), Cached::Damaged(m) if m.contains("not test/2")));
        std::fs::write(&p, b"STABFT02 an older cache").unwrap();
        assert!(matches!(read(&p, "test/1"), Cached::Damaged(_)));
    }
}
