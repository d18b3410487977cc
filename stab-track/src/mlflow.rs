//! The MLflow sink: one experiment per recipe, one MLflow run per stab run (tagged
//! `stab.run_id`, grouped by `stab.group`), curves logged in batches, the record as an
//! artifact.
//!
//! Delivery never holds a grid up. `send` only queues; a thread of the sink's own calls
//! the server in event order, batching consecutive curve points of a run. A call that
//! cannot reach the server is retried, with a back-off up to 5 s, until it succeeds or the
//! sink is closed and its wait is over; what is still queued then is reported as
//! undelivered (the records are in the store, and `stab track` sends them later). A call
//! the server refuses is not retried: its run is reported. Closing waits at most its wait
//! plus one second: a call still hanging then is left behind with the thread.
//!
//! A run appears once per stab run: when a run starts, the server's active runs with its
//! `stab.run_id` (an interrupted attempt, or an earlier one of a `--fresh` grid) are
//! deleted first. A replay leaves a run the server already holds as `FINISHED` alone.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::event::{Attempt, RunEnd, RunStart, TrackEvent};
use crate::mlflow_api::{ApiError, ApiResult, MlflowApi, Point, RemoteRun};
use crate::sink::{Delivery, Sink};

enum Message {
    Event(TrackEvent),
    Close(Instant),
}

/// Sends events to one MLflow tracking server.
pub struct MlflowSink {
    url: String,
    queue: Sender<Message>,
    report: Receiver<Delivery>,
    /// Runs this sink was given events of.
    sent: BTreeSet<String>,
    settled: Arc<Mutex<Settled>>,
}

/// Runs the courier is done with, as it goes (what `close` reports if the courier is still
/// inside a call when the wait ends).
#[derive(Default)]
struct Settled {
    /// Runs whose every event arrived.
    delivered: BTreeSet<String>,
    /// Replayed runs the server already held as finished.
    present: BTreeSet<String>,
}

/// How much longer than its wait `close` waits for the courier's own report.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

impl MlflowSink {
    /// Start delivering to the server at `url`; each call gives up after `timeout`.
    pub fn start(url: &str, timeout: Duration) -> Self {
        let (queue, inbox) = mpsc::channel();
        let (done, report) = mpsc::channel();
        let settled = Arc::new(Mutex::new(Settled::default()));
        let courier = Courier::new(MlflowApi::new(url, timeout), Arc::clone(&settled));
        std::thread::Builder::new()
            .name("stab-mlflow".into())
            .spawn(move || {
                let _ = done.send(courier.run(inbox));
            })
            .expect("cannot start the MLflow delivery thread");
        Self {
            url: url.to_string(),
            queue,
            report,
            sent: BTreeSet::new(),
            settled,
        }
    }
}

impl Sink for MlflowSink {
    fn send(&mut self, event: &TrackEvent) {
        if !self.sent.contains(event.run_id()) {
            self.sent.insert(event.run_id().to_string());
        }
        // The courier lives until close; a send can only fail after a panic there.
        let _ = self.queue.send(Message::Event(event.clone()));
    }

    fn close(self: Box<Self>, wait: Duration) -> Delivery {
        let _ = self.queue.send(Message::Close(Instant::now() + wait));
        if let Ok(delivery) = self.report.recv_timeout(wait + CLOSE_GRACE) {
            return delivery;
        }
        let settled = self.settled.lock().unwrap_or_else(|p| p.into_inner());
        Delivery {
            target: format!("mlflow {}", self.url),
            delivered: settled.delivered.len(),
            already_there: settled.present.len(),
            undelivered: self
                .sent
                .iter()
                .filter(|r| !settled.delivered.contains(*r) && !settled.present.contains(*r))
                .cloned()
                .collect(),
            note: Some("the server was still inside a call when the wait ended".into()),
        }
    }
}

/// Why the front event could not be delivered: the server did not answer (it stays queued).
struct Unreachable(String);

/// The delivery thread's state.
struct Courier {
    api: MlflowApi,
    /// Experiment id per recipe.
    experiments: HashMap<String, String>,
    /// The server's run of each stab run started here.
    runs: HashMap<String, RemoteRun>,
    pending: VecDeque<TrackEvent>,
    /// Runs some of whose events the server refused.
    refused: BTreeSet<String>,
    settled: Arc<Mutex<Settled>>,
    first_refusal: Option<String>,
    warned_unreachable: bool,
    deadline: Option<Instant>,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// How long curve points may wait for more of their run's points (one call for several
/// evaluations); what a live view lags by at most.
const LINGER: Duration = Duration::from_secs(1);
const MOST_BACKOFF: Duration = Duration::from_secs(5);

impl Courier {
    fn new(api: MlflowApi, settled: Arc<Mutex<Settled>>) -> Self {
        Self {
            api,
            settled,
            experiments: HashMap::new(),
            runs: HashMap::new(),
            pending: VecDeque::new(),
            refused: BTreeSet::new(),
            first_refusal: None,
            warned_unreachable: false,
            deadline: None,
        }
    }

    fn settled(&self) -> std::sync::MutexGuard<'_, Settled> {
        self.settled.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take(&mut self, message: Message) {
        match message {
            Message::Event(e) => self.pending.push_back(e),
            Message::Close(at) => self.deadline = Some(at),
        }
    }

    fn run(mut self, inbox: Receiver<Message>) -> Delivery {
        let mut backoff = FIRST_BACKOFF;
        loop {
            if self.pending.is_empty() {
                if self.deadline.is_some() {
                    break;
                }
                match inbox.recv() {
                    Ok(m) => self.take(m),
                    Err(_) => break,
                }
            }
            while let Ok(m) = inbox.try_recv() {
                self.take(m);
            }
            if let Some(wait) = self.linger() {
                match inbox.recv_timeout(wait) {
                    Ok(m) => self.take(m),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => self.deadline = Some(Instant::now()),
                }
                continue;
            }
            match self.deliver_front() {
                Ok(()) => backoff = FIRST_BACKOFF,
                Err(Unreachable(why)) => {
                    if !self.warned_unreachable {
                        tracing::warn!(
                            "mlflow: {} is unreachable ({why}); the grid goes on, events are kept and retried",
                            self.api.url()
                        );
                        self.warned_unreachable = true;
                    }
                    let mut pause = backoff;
                    if let Some(deadline) = self.deadline {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            break;
                        }
                        pause = pause.min(left);
                    }
                    match inbox.recv_timeout(pause) {
                        Ok(m) => self.take(m),
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) if self.deadline.is_none() => break,
                        Err(RecvTimeoutError::Disconnected) => std::thread::sleep(pause),
                    }
                    backoff = (backoff * 2).min(MOST_BACKOFF);
                }
            }
        }
        self.delivery()
    }

    fn delivery(self) -> Delivery {
        let mut undelivered: BTreeSet<String> = self
            .pending
            .iter()
            .map(|e| e.run_id().to_string())
            .collect();
        undelivered.extend(self.refused.iter().cloned());
        let (delivered, already_there) = {
            let settled = self.settled();
            (settled.delivered.len(), settled.present.len())
        };
        Delivery {
            target: format!("mlflow {}", self.api.url()),
            delivered,
            already_there,
            undelivered,
            note: self
                .first_refusal
                .map(|why| format!("the server refused some calls; the first: {why}")),
        }
    }

    /// Deliver the first queued event (with the curve points queued right behind it).
    /// `Err`: the server is unreachable; the event stays queued.
    fn deliver_front(&mut self) -> Result<(), Unreachable> {
        let Some(event) = self.pending.front() else {
            return Ok(());
        };
        let run_id = event.run_id().to_string();
        let ended = event.ends_run();
        if let TrackEvent::Started(s) = event
            && s.attempt == Attempt::Live
        {
            // A run found finished by a replay runs again (`--fresh`): this attempt replaces it.
            self.settled().present.remove(&run_id);
        }
        let skip = self.settled().present.contains(&run_id)
            // The run's start was refused (or it started before this sink did).
            || (!self.runs.contains_key(&run_id)
                && !matches!(event, TrackEvent::Started(_) | TrackEvent::Report { .. }));
        let result = if skip {
            Ok(())
        } else {
            self.deliver(event.clone(), &run_id)
        };
        match result {
            Err(ApiError::Unreachable(why)) => return Err(Unreachable(why)),
            Err(refused @ ApiError::Refused { .. }) => {
                tracing::warn!("mlflow: {run_id}: {refused}");
                self.first_refusal.get_or_insert(refused.to_string());
                self.refused.insert(run_id.clone());
            }
            Ok(()) => {}
        }
        self.pending.pop_front();
        if ended && self.runs.remove(&run_id).is_some() && !self.refused.contains(&run_id) {
            self.settled().delivered.insert(run_id);
        }
        Ok(())
    }

    /// One event's calls (`Logged`: with the run's other queued points).
    fn deliver(&mut self, event: TrackEvent, run_id: &str) -> ApiResult<()> {
        match event {
            TrackEvent::Started(start) => self.start(&start),
            TrackEvent::Logged { .. } => {
                let (points, positions) = self.curve_points(run_id);
                let run = &self.runs[run_id].id;
                self.api.log_batch(run, &points, &[], &[])?;
                // The front is the first of them; the others come out from the back.
                for &i in positions[1..].iter().rev() {
                    self.pending.remove(i);
                }
                Ok(())
            }
            TrackEvent::Finished(end) => self.finish(&end),
            TrackEvent::Failed { error, at_ms, .. } => {
                let run = self.runs[run_id].id.clone();
                let tags = [("stab.error".to_string(), error)];
                self.api.log_batch(&run, &[], &[], &tags)?;
                self.api.end_run(&run, "FAILED", at_ms)
            }
            TrackEvent::Report {
                recipe,
                files,
                at_ms,
            } => self.report(&recipe, &files, at_ms),
        }
    }

    /// The points of the queued `Logged` events of one run, from the front up to the
    /// run's next other event (other runs' events in between stay queued), at most one
    /// batch; and the queue positions they came from.
    fn curve_points(&self, run_id: &str) -> (Vec<Point>, Vec<usize>) {
        let mut points = Vec::new();
        let mut taken = Vec::new();
        for (i, e) in self.pending.iter().enumerate() {
            if e.run_id() != run_id {
                continue;
            }
            let TrackEvent::Logged {
                step,
                values,
                at_ms,
                ..
            } = e
            else {
                break;
            };
            if points.len() + values.len() > crate::mlflow_api::BATCH_METRICS && !taken.is_empty() {
                break;
            }
            points.extend(Point::all(values, *step, *at_ms));
            taken.push(i);
        }
        (points, taken)
    }

    /// Whether to hold the curve points at the front a little longer, so that one call
    /// carries several evaluations: they are younger than [`LINGER`], the sink is not
    /// closing, and their run has not ended yet.
    fn linger(&self) -> Option<Duration> {
        let Some(TrackEvent::Logged { run_id, at_ms, .. }) = self.pending.front() else {
            return None;
        };
        if self.deadline.is_some() {
            return None;
        }
        let ended = self
            .pending
            .iter()
            .any(|e| e.run_id() == run_id && e.ends_run());
        let age =
            Duration::from_millis(crate::event::now_ms().saturating_sub(*at_ms).max(0) as u64);
        (!ended && age < LINGER).then(|| LINGER - age)
    }

    fn experiment(&mut self, recipe: &str) -> ApiResult<String> {
        if let Some(id) = self.experiments.get(recipe) {
            return Ok(id.clone());
        }
        let id = self.api.experiment(recipe)?;
        self.experiments.insert(recipe.to_string(), id.clone());
        Ok(id)
    }

    /// Create the run (once per stab run on the server), then log its settings.
    fn start(&mut self, start: &RunStart) -> ApiResult<()> {
        if !self.runs.contains_key(&start.run_id) {
            let experiment = self.experiment(&start.recipe)?;
            let earlier = self
                .api
                .runs_tagged(&experiment, "stab.run_id", &start.run_id)?;
            if start.attempt == Attempt::Replay && earlier.iter().any(|r| r.status == "FINISHED") {
                self.settled().present.insert(start.run_id.clone());
                return Ok(());
            }
            for run in &earlier {
                self.api.delete_run(&run.id)?;
            }
            let run = self
                .api
                .create_run(&experiment, &start.run_id, start.at_ms, &start.tags)?;
            self.runs.insert(start.run_id.clone(), run);
        }
        let run = &self.runs[&start.run_id].id;
        self.api.log_batch(run, &[], &start.params, &[])
    }

    /// The report as the artifacts of one run named `report` (tag `stab.report`), which
    /// replaces the experiment's earlier report run.
    fn report(&mut self, recipe: &str, files: &[(String, Vec<u8>)], at_ms: i64) -> ApiResult<()> {
        let experiment = self.experiment(recipe)?;
        for run in self.api.runs_tagged(&experiment, "stab.report", "true")? {
            self.api.delete_run(&run.id)?;
        }
        let tags = [
            ("stab.report".to_string(), "true".to_string()),
            ("stab.recipe".to_string(), recipe.to_string()),
        ];
        let run = self.api.create_run(&experiment, "report", at_ms, &tags)?;
        for (name, bytes) in files {
            self.api.upload(&run.artifact_uri, name, bytes)?;
        }
        self.api.end_run(&run.id, "FINISHED", at_ms)
    }

    /// The final metrics, the settings learned while running, the record, the status.
    fn finish(&mut self, end: &RunEnd) -> ApiResult<()> {
        let run = self.runs[&end.run_id].clone();
        let points: Vec<Point> = Point::all(&end.metrics, end.step, end.at_ms).collect();
        self.api
            .log_batch(&run.id, &points, &end.params, &end.tags)?;
        self.api
            .upload(&run.artifact_uri, "record.json", end.record.as_bytes())?;
        self.api.end_run(&run.id, "FINISHED", end.at_ms)
    }
}
