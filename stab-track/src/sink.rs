//! Where tracked events go, and what a sink says when it closes.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::event::TrackEvent;

/// A destination of [`TrackEvent`]s. `send` must return at once whatever the
/// destination's state: a grid never waits on its trackers.
pub trait Sink: Send {
    fn send(&mut self, event: &TrackEvent);

    /// Deliver what is still pending, waiting at most `wait`, and say what did not arrive.
    fn close(self: Box<Self>, wait: Duration) -> Delivery;
}

/// What a sink could not deliver when it closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The destination, for people (`mlflow http://…`).
    pub target: String,
    /// Runs whose every event arrived.
    pub delivered: usize,
    /// Runs a replay found already there (and left alone).
    pub already_there: usize,
    /// Runs some of whose events did not arrive (their records are in the store;
    /// `stab track` sends them again).
    pub undelivered: BTreeSet<String>,
    /// A problem worth one line (the server refused the experiment, say).
    pub note: Option<String>,
}

impl Delivery {
    pub fn complete(&self) -> bool {
        self.undelivered.is_empty() && self.note.is_none()
    }
}

impl std::fmt::Display for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} runs delivered", self.target, self.delivered)?;
        if self.already_there > 0 {
            write!(f, ", {} already there", self.already_there)?;
        }
        if !self.undelivered.is_empty() {
            let first: Vec<&str> = self
                .undelivered
                .iter()
                .take(3)
                .map(String::as_str)
                .collect();
            let more = self.undelivered.len().saturating_sub(first.len());
            write!(
                f,
                ", {} not (complete): {}{}",
                self.undelivered.len(),
                first.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            )?;
        }
        if let Some(note) = &self.note {
            write!(f, "; {note}")?;
        }
        Ok(())
    }
}
