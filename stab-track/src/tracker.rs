//! A grid's trackers: the sinks a run's events fan out to, fed by the grid runner's
//! event stream (shared by `--jobs` workers).

use std::sync::Mutex;
use std::time::Duration;

use stab_grid::GridEvent;

use crate::event::TrackEvent;
use crate::sink::{Delivery, Sink};

/// Every sink of one grid.
#[derive(Default)]
pub struct Tracker {
    sinks: Mutex<Vec<Box<dyn Sink>>>,
    /// No sink listens (fixed at construction: the grid's updates then cost no lock).
    empty: bool,
}

impl Tracker {
    pub fn new(sinks: Vec<Box<dyn Sink>>) -> Self {
        Self {
            empty: sinks.is_empty(),
            sinks: Mutex::new(sinks),
        }
    }

    /// Whether no sink listens.
    pub fn is_empty(&self) -> bool {
        self.empty
    }

    /// Observe one grid event (cheap for events trackers do not keep).
    pub fn observe(&self, event: &GridEvent<'_>) {
        if self.is_empty() {
            return;
        }
        if let Some(event) = TrackEvent::from_grid(event) {
            self.send(&event);
        }
    }

    /// Send one event to every sink.
    pub fn send(&self, event: &TrackEvent) {
        let mut sinks = self.sinks.lock().unwrap_or_else(|p| p.into_inner());
        for sink in sinks.iter_mut() {
            sink.send(event);
        }
    }

    /// Close every sink, each waiting at most `wait` for its deliveries.
    pub fn close(self, wait: Duration) -> Vec<Delivery> {
        let sinks = self.sinks.into_inner().unwrap_or_else(|p| p.into_inner());
        sinks.into_iter().map(|s| s.close(wait)).collect()
    }
}
