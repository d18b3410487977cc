//! TensorBoard event files: each run's curves as scalar summaries in
//! `DIR/<group>/<run_id>/events.out.tfevents.*`, which TensorBoard (and
//! `wandb sync --sync-tensorboard`) reads while the grid runs.
//!
//! The format is TensorFlow's `Event` protocol buffer (`wall_time` = 1, `step` = 2,
//! `file_version` = 3, `summary` = 5; `Summary.value` = 1 with `tag` = 1 and
//! `simple_value` = 2) in TFRecord frames: the length as a little-endian u64, its masked
//! CRC-32C, the bytes, their masked CRC-32C, where mask(c) = ((c >> 15) | (c << 17)) +
//! 0xa282ead8. The messages are declared with prost; the framing is the few lines below.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use prost::Message;

use crate::event::{Attempt, TrackEvent};
use crate::sink::{Delivery, Sink};

/// `tensorflow.Event`, the fields TensorBoard's scalars need.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    #[prost(int64, tag = "2")]
    pub step: i64,
    #[prost(oneof = "What", tags = "3, 5")]
    pub what: Option<What>,
}

/// What an [`Event`] holds.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum What {
    /// The first record of a file: `brain.Event:2`.
    #[prost(string, tag = "3")]
    FileVersion(String),
    #[prost(message, tag = "5")]
    Summary(Summary),
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<Value>,
}

/// `tensorflow.Summary.Value` with a scalar (`simple_value` is a oneof member upstream,
/// so it is written even when 0).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Value {
    #[prost(string, tag = "1")]
    pub tag: String,
    #[prost(float, optional, tag = "2")]
    pub simple_value: Option<f32>,
}

/// The CRC-32C of `bytes`, masked as TFRecord frames store it.
pub fn masked_crc(bytes: &[u8]) -> u32 {
    let c = crc32c::crc32c(bytes);
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Append one TFRecord frame holding `data`.
pub fn write_frame(w: &mut impl Write, data: &[u8]) -> std::io::Result<()> {
    let len = (data.len() as u64).to_le_bytes();
    w.write_all(&len)?;
    w.write_all(&masked_crc(&len).to_le_bytes())?;
    w.write_all(data)?;
    w.write_all(&masked_crc(data).to_le_bytes())
}

/// Read an event file back, checking every frame's checksums (tests, `stab` tools).
pub fn read_events(path: &Path) -> std::io::Result<Vec<Event>> {
    let bytes = std::fs::read(path)?;
    let bad = |what: &str| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {what}", path.display()),
        )
    };
    let mut events = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let head = bytes
            .get(at..at + 12)
            .ok_or_else(|| bad("torn frame header"))?;
        let len_bytes: [u8; 8] = head[..8].try_into().expect("8 bytes");
        if masked_crc(&len_bytes).to_le_bytes() != head[8..12] {
            return Err(bad("length checksum mismatch"));
        }
        let len = u64::from_le_bytes(len_bytes) as usize;
        let data = bytes
            .get(at + 12..at + 12 + len)
            .ok_or_else(|| bad("torn frame"))?;
        let crc = bytes
            .get(at + 12 + len..at + 16 + len)
            .ok_or_else(|| bad("torn frame checksum"))?;
        if masked_crc(data).to_le_bytes() != crc {
            return Err(bad("data checksum mismatch"));
        }
        events.push(Event::decode(data).map_err(|e| bad(&e.to_string()))?);
        at += 16 + len;
    }
    Ok(events)
}

/// One run's event file.
pub struct EventWriter {
    file: BufWriter<File>,
    path: PathBuf,
}

impl EventWriter {
    /// Start a new event file in `dir` (created), replacing the event files an earlier,
    /// killed attempt of the same run left there (its curves would overlap this one's).
    pub fn create(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if is_event_file(&entry) {
                std::fs::remove_file(entry.path())?;
            }
        }
        let secs = crate::event::now_ms() / 1000;
        let path = dir.join(format!(
            "events.out.tfevents.{secs}.stab.{}",
            std::process::id()
        ));
        let mut w = Self {
            file: BufWriter::new(File::create(&path)?),
            path,
        };
        w.write(&Event {
            wall_time: secs as f64,
            step: 0,
            what: Some(What::FileVersion("brain.Event:2".into())),
        })?;
        Ok(w)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Scalars at `step`, flushed so a watching TensorBoard sees them.
    pub fn scalars(
        &mut self,
        step: u64,
        at_ms: i64,
        values: &[(String, f64)],
    ) -> std::io::Result<()> {
        let value = values
            .iter()
            .map(|(tag, v)| Value {
                tag: tag.clone(),
                simple_value: Some(*v as f32),
            })
            .collect();
        self.write(&Event {
            wall_time: at_ms as f64 / 1000.0,
            step: step as i64,
            what: Some(What::Summary(Summary { value })),
        })?;
        self.file.flush()
    }

    fn write(&mut self, event: &Event) -> std::io::Result<()> {
        write_frame(&mut self.file, &event.encode_to_vec())
    }
}

/// Writes every run's event file under one directory.
pub struct TensorBoardSink {
    dir: PathBuf,
    runs: HashMap<String, EventWriter>,
    /// Runs whose file could not be written (each warned about once, listed at the end).
    failed: BTreeSet<String>,
    finished: usize,
    /// Replayed runs whose directory already held an event file.
    already_there: usize,
}

impl TensorBoardSink {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            runs: HashMap::new(),
            failed: BTreeSet::new(),
            finished: 0,
            already_there: 0,
        }
    }

    /// `DIR/<group>/<run_id>`: TensorBoard names the run by this path, so seeds of one
    /// configuration sit together and a regex on the group selects them.
    fn run_dir(&self, group: &str, run_id: &str) -> PathBuf {
        self.dir.join(path_safe(group)).join(run_id)
    }

    fn apply(&mut self, event: &TrackEvent) -> std::io::Result<()> {
        match event {
            TrackEvent::Started(start) => {
                let dir = self.run_dir(&start.group, &start.run_id);
                if start.attempt == Attempt::Replay && holds_events(&dir) {
                    self.already_there += 1;
                } else {
                    let w = EventWriter::create(&dir)?;
                    self.runs.insert(start.run_id.clone(), w);
                }
            }
            TrackEvent::Logged {
                run_id,
                step,
                values,
                at_ms,
            } => {
                if let Some(w) = self.runs.get_mut(run_id) {
                    w.scalars(*step, *at_ms, values)?;
                }
            }
            TrackEvent::Finished(end) => {
                if let Some(mut w) = self.runs.remove(&end.run_id) {
                    w.scalars(end.step, end.at_ms, &end.metrics)?;
                    self.finished += 1;
                }
            }
            TrackEvent::Failed { run_id, .. } => {
                self.runs.remove(run_id);
            }
            // The report's plots are in the report itself.
            TrackEvent::Report { .. } => {}
        }
        Ok(())
    }
}

impl Sink for TensorBoardSink {
    fn send(&mut self, event: &TrackEvent) {
        if self.failed.contains(event.run_id()) {
            return;
        }
        if let Err(e) = self.apply(event) {
            tracing::warn!(
                "tensorboard: cannot write {}'s events under {}: {e}",
                event.run_id(),
                self.dir.display()
            );
            self.runs.remove(event.run_id());
            self.failed.insert(event.run_id().to_string());
        }
    }

    fn close(self: Box<Self>, _wait: std::time::Duration) -> Delivery {
        Delivery {
            target: format!("tensorboard {}", self.dir.display()),
            delivered: self.finished,
            already_there: self.already_there,
            undelivered: self.failed,
            note: None,
        }
    }
}

/// Whether `dir` holds an event file.
fn holds_events(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| entries.flatten().any(|e| is_event_file(&e)))
}

/// An event file by TensorBoard's naming (`…tfevents…`).
fn is_event_file(entry: &std::fs::DirEntry) -> bool {
    entry.file_name().to_string_lossy().contains(".tfevents.")
}

/// A group label as one directory name: letters, digits and `.=_-` kept, anything else
/// (spaces, slashes, quotes) becomes `-`.
pub fn path_safe(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._=-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CRC-32C check value, and the mask as TensorFlow's `crc32c::Mask` writes it
    /// (TensorBoard itself reads the files in CI: scripts/tracking_e2e.sh).
    #[test]
    #[allow(clippy::manual_rotate)]
    fn frames_carry_tensorflows_masked_crc32c() {
        // crc32c("123456789") = 0xE3069283 (RFC 3720, the CRC-32C check value).
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        let c: u32 = 0xE306_9283;
        assert_eq!(
            masked_crc(b"123456789"),
            ((c >> 15) | (c << 17)).wrapping_add(0xa282_ead8)
        );
        let mut buf = Vec::new();
        write_frame(&mut buf, b"abc").unwrap();
        assert_eq!(buf.len(), 8 + 4 + 3 + 4);
        assert_eq!(&buf[..8], &3u64.to_le_bytes());
        assert_eq!(&buf[12..15], b"abc");
    }

    #[test]
    fn a_zero_scalar_is_written() {
        let v = Value {
            tag: "x".into(),
            simple_value: Some(0.0),
        };
        // tag (field 1, len 1, "x"), simple_value (field 2, fixed32 0.0)
        assert_eq!(v.encode_to_vec(), [0x0a, 1, b'x', 0x15, 0, 0, 0, 0]);
    }

    #[test]
    fn group_labels_become_one_directory_name() {
        assert_eq!(path_safe("rte mixout p=0.1 a/b"), "rte-mixout-p=0.1-a-b");
    }
}
