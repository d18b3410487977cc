//! The framing of stab's binary cache files (frozen features, prepared encoders): an
//! 8-byte magic, the payload, then a trailer with the payload's length and its CRC-32.
//! A file is written whole through [`stab_core::atomic`]; on read, a missing file, a
//! wrong magic (another format or version), a wrong length (torn) or a checksum mismatch
//! (flipped bytes) is told apart, so the caller can warn about damage and rebuild
//! instead of training on corrupt values.

use std::io::{self, Write};
use std::path::Path;

/// A value read from a cache file (the verified payload itself for [`read`]).
#[derive(Debug)]
pub enum Cached<T> {
    /// No file: compute and write it.
    Missing,
    /// A file that cannot be trusted or does not fit, and why: warn, then rebuild it.
    Damaged(String),
    Valid(T),
}

const TRAILER: usize = 12;

/// Write `magic`, the payload `fill` writes, and the trailer, atomically.
pub fn write(
    path: &Path,
    magic: &[u8; 8],
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> anyhow::Result<()> {
    stab_core::atomic::write_with(path, |w| {
        w.write_all(magic)?;
        let mut hashing = Hashing {
            inner: w,
            crc: crc32fast::Hasher::new(),
            len: 0,
        };
        fill(&mut hashing)?;
        let (crc, len) = (hashing.crc.finalize(), hashing.len);
        w.write_all(&len.to_le_bytes())?;
        w.write_all(&crc.to_le_bytes())
    })
}

/// Read and verify a file written by [`write`] with the same `magic`.
pub fn read(path: &Path, magic: &[u8; 8]) -> Cached<Vec<u8>> {
    let mut bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Cached::Missing,
        Err(e) => return Cached::Damaged(format!("cannot read it: {e}")),
    };
    if bytes.len() < magic.len() + TRAILER || &bytes[..8] != magic {
        return Cached::Damaged(
            "not a cache file of this stab version (an older format is rebuilt once)".into(),
        );
    }
    let body_end = bytes.len() - TRAILER;
    let len = u64::from_le_bytes(bytes[body_end..body_end + 8].try_into().expect("8 bytes"));
    let crc = u32::from_le_bytes(bytes[body_end + 8..].try_into().expect("4 bytes"));
    if len != (body_end - 8) as u64 {
        return Cached::Damaged(format!(
            "truncated: the trailer says {len} payload bytes, the file holds {}",
            body_end - 8
        ));
    }
    if crc32fast::hash(&bytes[8..body_end]) != crc {
        return Cached::Damaged("its checksum does not match: the bytes were altered".into());
    }
    bytes.truncate(body_end);
    bytes.drain(..8);
    Cached::Valid(bytes)
}

impl<T> Cached<T> {
    /// Read `path` and turn its verified payload into a value with `parse`
    /// (`None`: the payload does not describe one, `what` names the expectation).
    pub fn read(
        path: &Path,
        magic: &[u8; 8],
        what: &str,
        parse: impl FnOnce(&[u8]) -> Option<T>,
    ) -> Self {
        match read(path, magic) {
            Cached::Missing => Cached::Missing,
            Cached::Damaged(why) => Cached::Damaged(why),
            Cached::Valid(bytes) => match parse(&bytes) {
                Some(v) => Cached::Valid(v),
                None => Cached::Damaged(format!("its contents do not describe {what}")),
            },
        }
    }
}

struct Hashing<'a> {
    inner: &'a mut dyn Write,
    crc: crc32fast::Hasher,
    len: u64,
}

impl Write for Hashing<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A bounds-checked reader over a payload: every take is checked against what is left,
/// and every count is bounded before it becomes an allocation.
pub struct Payload<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Payload<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }

    pub fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    /// A count read from the file, at most `max` and small enough that `count × width`
    /// bytes are still in the payload.
    pub fn count(&mut self, max: u64, width: usize) -> Option<usize> {
        let n = self.u64()?;
        let bytes = usize::try_from(n).ok()?.checked_mul(width)?;
        (n <= max && bytes <= self.bytes.len() - self.at).then_some(n as usize)
    }

    pub fn f32s(&mut self, n: usize) -> Option<Vec<f32>> {
        let raw = self.take(n.checked_mul(4)?)?;
        Some(
            raw.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect(),
        )
    }

    pub fn u32s(&mut self, n: usize) -> Option<Vec<u32>> {
        let raw = self.take(n.checked_mul(4)?)?;
        Some(
            raw.chunks_exact(4)
                .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect(),
        )
    }

    pub fn is_done(&self) -> bool {
        self.at == self.bytes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flipped_torn_and_foreign_files_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.bin");
        assert!(matches!(read(&p, b"STABTEST"), Cached::Missing));
        write(&p, b"STABTEST", |w| w.write_all(&[1, 2, 3, 4, 5])).unwrap();
        match read(&p, b"STABTEST") {
            Cached::Valid(v) => assert_eq!(v, [1, 2, 3, 4, 5]),
            other => panic!("{other:?}"),
        }
        let good = std::fs::read(&p).unwrap();
        let mut flipped = good.clone();
        flipped[10] ^= 0x40;
        std::fs::write(&p, &flipped).unwrap();
        assert!(matches!(read(&p, b"STABTEST"), Cached::Damaged(m) if m.contains("checksum")));
        std::fs::write(&p, &good[..good.len() - 2]).unwrap();
        assert!(matches!(read(&p, b"STABTEST"), Cached::Damaged(_)));
        std::fs::write(&p, &good).unwrap();
        assert!(matches!(read(&p, b"STABOTHR"), Cached::Damaged(m) if m.contains("version")));
    }

    #[test]
    fn payload_counts_are_bounded_by_what_is_left() {
        let mut bytes = (1u64 << 60).to_le_bytes().to_vec();
        bytes.extend([0; 8]);
        let mut p = Payload::new(&bytes);
        assert_eq!(p.count(u64::MAX, 4), None);
        let bytes = 2u64
            .to_le_bytes()
            .iter()
            .chain(&[0u8; 8])
            .copied()
            .collect::<Vec<_>>();
        let mut p = Payload::new(&bytes);
        assert_eq!(p.count(10, 4), Some(2));
        assert_eq!(p.f32s(2), Some(vec![0.0, 0.0]));
        assert!(p.is_done());
    }
}
