//! What a tracker receives: owned events a sink can keep, send to another thread or
//! retry, made from the grid runner's [`GridEvent`]s while a grid runs
//! ([`TrackEvent::from_grid`]) or from a store's records afterwards
//! ([`TrackEvent::from_record`]). Tracking observes: nothing here feeds back into a run.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use stab_core::{RunRecord, RunSpec};
use stab_grid::{GridEvent, RunProgress};

/// Whether a run is running now or told again from its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Running now: it replaces whatever a tracker holds of the same run (an interrupted
    /// attempt, or an earlier one of a `--fresh` grid).
    Live,
    /// A finished run's record sent again: a tracker that already holds it leaves it alone.
    Replay,
}

/// A run begins: what identifies it and the settings it runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct RunStart {
    pub run_id: String,
    pub attempt: Attempt,
    /// The recipe's name (one MLflow experiment per recipe).
    pub recipe: String,
    /// The configuration this run is one seed of (`rte mixout p=0.1`): runs that differ
    /// only in seed share it.
    pub group: String,
    /// `stab.*` labels for grouping and filtering (task, method, seed, group, mode, …).
    pub tags: Vec<(String, String)>,
    /// The resolved settings, flattened to dotted keys (`train.lr`, `method.p`).
    pub params: Vec<(String, String)>,
    pub at_ms: i64,
}

/// A run ended with a record in the store.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEnd {
    pub run_id: String,
    /// The last update (the step the final metrics are logged at).
    pub step: u64,
    /// `test/<metric>`, `dev/best`.
    pub metrics: Vec<(String, f64)>,
    /// What the run learned only while running: its seed components and device.
    pub params: Vec<(String, String)>,
    /// `stab.diverged`, `stab.best_step`.
    pub tags: Vec<(String, String)>,
    /// The record as the store holds it (one JSON object).
    pub record: String,
    pub at_ms: i64,
}

/// One thing a tracker is told.
#[derive(Debug, Clone, PartialEq)]
pub enum TrackEvent {
    Started(RunStart),
    /// Values at update `step`: `train/loss`, `train/<term>`, `dev/primary`, `lr` at a
    /// dev evaluation, `prepare/loss` during an encoder preparation.
    Logged {
        run_id: String,
        step: u64,
        values: Vec<(String, f64)>,
        at_ms: i64,
    },
    Finished(RunEnd),
    /// The run failed; nothing was recorded for it.
    Failed {
        run_id: String,
        error: String,
        at_ms: i64,
    },
    /// A grid's report files (`report.html`, `report.md`, `report.json`), for the recipe's
    /// experiment; sent by `stab track`.
    Report {
        recipe: String,
        files: Vec<(String, Vec<u8>)>,
        at_ms: i64,
    },
}

/// What [`TrackEvent::run_id`] says of a report.
pub const REPORT_ID: &str = "report";

impl TrackEvent {
    /// The run the event belongs to.
    pub fn run_id(&self) -> &str {
        match self {
            Self::Started(s) => &s.run_id,
            Self::Finished(e) => &e.run_id,
            Self::Logged { run_id, .. } | Self::Failed { run_id, .. } => run_id,
            Self::Report { .. } => REPORT_ID,
        }
    }

    /// The tracker's view of a grid event (`None` for what trackers do not keep: grid
    /// bookkeeping, single updates between evaluations).
    pub fn from_grid(event: &GridEvent<'_>) -> Option<Self> {
        // Every update reports progress: the clock is read only for what is kept.
        Some(match event {
            GridEvent::RunStarted { spec, .. } => Self::Started(RunStart::of_spec(spec, now_ms())),
            GridEvent::Progress { spec, progress } => {
                let (step, values) = progress_values(progress)?;
                Self::Logged {
                    run_id: spec.run_id.clone(),
                    step,
                    values,
                    at_ms: now_ms(),
                }
            }
            GridEvent::RunFinished { record, .. } => {
                Self::Finished(RunEnd::of_record(record, now_ms()))
            }
            GridEvent::RunFailed { spec, error } => Self::Failed {
                run_id: spec.run_id.clone(),
                error: format!("{error:#}"),
                at_ms: now_ms(),
            },
            _ => return None,
        })
    }

    /// Whether this is the last event of its run (finished or failed).
    pub fn ends_run(&self) -> bool {
        matches!(self, Self::Finished(_) | Self::Failed { .. })
    }

    /// A finished run told again from its record: the start (settings the record keeps),
    /// each evaluation's curve values, the end. The learning rate is not in a record.
    pub fn from_record(record: &RunRecord) -> Vec<Self> {
        let at_ms = now_ms();
        let mut events = vec![Self::Started(RunStart::of_record(record, at_ms))];
        for (step, values) in record_curves(record) {
            events.push(Self::Logged {
                run_id: record.run_id.clone(),
                step,
                values,
                at_ms,
            });
        }
        events.push(Self::Finished(RunEnd::of_record(record, at_ms)));
        events
    }
}

/// The values a progress report carries for trackers.
fn progress_values(progress: &RunProgress) -> Option<(u64, Vec<(String, f64)>)> {
    match progress {
        RunProgress::Eval {
            step,
            dev,
            train_loss,
            terms,
            lr,
        } => {
            let mut values = vec![("train/loss".to_string(), *train_loss)];
            values.extend(terms.iter().map(|(t, v)| (format!("train/{t}"), *v)));
            values.push(("dev/primary".to_string(), *dev));
            values.push(("lr".to_string(), *lr));
            Some((*step, values))
        }
        RunProgress::Prepare { step, loss, .. } => {
            Some((*step, vec![("prepare/loss".to_string(), *loss)]))
        }
        RunProgress::Start { .. } | RunProgress::Step { .. } | RunProgress::Dataset => None,
    }
}

/// A record's evaluation curves (`details.train_loss`, `details.loss_terms`,
/// `details.dev_curve`), merged by step.
fn record_curves(record: &RunRecord) -> BTreeMap<u64, Vec<(String, f64)>> {
    let mut by_step: BTreeMap<u64, Vec<(String, f64)>> = BTreeMap::new();
    let mut add = |key: String, curve: &serde_json::Value| {
        for point in curve.as_array().into_iter().flatten() {
            if let (Some(step), Some(v)) = (point[0].as_u64(), point[1].as_f64()) {
                by_step.entry(step).or_default().push((key.clone(), v));
            }
        }
    };
    let d = &record.details;
    add("train/loss".into(), &d["train_loss"]);
    if let Some(terms) = d["loss_terms"].as_object() {
        for (name, curve) in terms {
            add(format!("train/{name}"), curve);
        }
    }
    add("dev/primary".into(), &d["dev_curve"]);
    by_step
}

/// The configuration a run is one seed of: task, method with its parameters, sweep cell.
pub fn group_of(
    task: &str,
    method: &str,
    params: &stab_core::MethodParams,
    sweep: &BTreeMap<String, serde_json::Value>,
) -> String {
    let mut group = format!("{task} {method}");
    for (k, v) in params.iter().chain(sweep) {
        group.push_str(&format!(" {k}={}", json_text(v)));
    }
    group
}

impl RunStart {
    fn of_spec(spec: &RunSpec, at_ms: i64) -> Self {
        let group = group_of(&spec.task, &spec.method, &spec.method_params, &spec.sweep);
        let mut tags = common_tags(
            &spec.run_id,
            &spec.recipe,
            &spec.task,
            &spec.method,
            spec.seed,
            &group,
        );
        if let Some(mode) = spec.mode() {
            tags.push(("stab.mode".into(), json_text(&serde_json::json!(mode))));
        }
        if let Some(mark) = &spec.sequential {
            tags.push((
                "stab.sequential".into(),
                json_text(&serde_json::json!(mark)),
            ));
        }
        if let Some(mark) = &spec.tune {
            tags.push(("stab.tune".into(), json_text(&serde_json::json!(mark))));
        }
        let mut params = Vec::new();
        match serde_json::to_value(&spec.job) {
            Ok(job) => flatten("", &job, &mut params),
            Err(e) => tracing::warn!("tracking: {}'s settings do not serialise: {e}", spec.run_id),
        }
        params.extend(method_and_sweep(&spec.method_params, &spec.sweep));
        Self {
            run_id: spec.run_id.clone(),
            attempt: Attempt::Live,
            recipe: spec.recipe.clone(),
            group,
            tags,
            params,
            at_ms,
        }
    }

    /// From a record (a replay): the settings a record keeps, not the whole job.
    fn of_record(r: &RunRecord, at_ms: i64) -> Self {
        let group = group_of(&r.task, &r.method, &r.method_params, &r.sweep);
        let mut tags = common_tags(&r.run_id, &r.recipe, &r.task, &r.method, r.seed, &group);
        if let Some(mode) = r.mode {
            tags.push(("stab.mode".into(), json_text(&serde_json::json!(mode))));
        }
        let mut params = vec![("kind".to_string(), json_text(&serde_json::json!(r.kind)))];
        params.extend(method_and_sweep(&r.method_params, &r.sweep));
        Self {
            run_id: r.run_id.clone(),
            attempt: Attempt::Replay,
            recipe: r.recipe.clone(),
            group,
            tags,
            params,
            at_ms,
        }
    }
}

fn common_tags(
    run_id: &str,
    recipe: &str,
    task: &str,
    method: &str,
    seed: u64,
    group: &str,
) -> Vec<(String, String)> {
    [
        ("stab.run_id", run_id.to_string()),
        ("stab.recipe", recipe.to_string()),
        ("stab.task", task.to_string()),
        ("stab.method", method.to_string()),
        ("stab.seed", seed.to_string()),
        ("stab.group", group.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn method_and_sweep(
    params: &stab_core::MethodParams,
    sweep: &BTreeMap<String, serde_json::Value>,
) -> Vec<(String, String)> {
    let method = params
        .iter()
        .map(|(k, v)| (format!("method.{k}"), json_text(v)));
    let sweep = sweep
        .iter()
        .map(|(k, v)| (format!("sweep.{k}"), json_text(v)));
    method.chain(sweep).collect()
}

impl RunEnd {
    fn of_record(r: &RunRecord, at_ms: i64) -> Self {
        let mut metrics: Vec<(String, f64)> = r
            .metrics
            .iter()
            .map(|(k, v)| (format!("test/{k}"), *v))
            .collect();
        if let Some(best) = r.dev_best {
            metrics.push(("dev/best".into(), best));
        }
        let mut params = Vec::new();
        if let Some(seeds) = &r.seeds {
            flatten("seeds", &serde_json::json!(seeds), &mut params);
        }
        if let Some(device) = r.details["device"].as_str() {
            params.push(("device".into(), device.to_string()));
        }
        let mut tags = vec![("stab.diverged".to_string(), r.diverged.to_string())];
        if let Some(step) = r.best_step {
            tags.push(("stab.best_step".into(), step.to_string()));
        }
        Self {
            run_id: r.run_id.clone(),
            step: r.steps,
            metrics,
            params,
            tags,
            record: serde_json::to_string(r).unwrap_or_default(),
            at_ms,
        }
    }
}

/// Flatten a JSON object into `prefix.key` → text pairs (arrays and scalars as JSON text,
/// strings bare; nulls left out).
fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        serde_json::Value::Null => {}
        other => out.push((prefix.to_string(), json_text(other))),
    }
}

/// A value as text: strings bare, anything else as JSON.
pub(crate) fn json_text(v: &serde_json::Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

/// Milliseconds since the Unix epoch (what MLflow and TensorBoard stamp events with).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flatten_names_nested_keys_with_dots_and_drops_nulls() {
        let mut out = Vec::new();
        let v = serde_json::json!({"train": {"lr": 2e-5, "mode": "head", "clip": null,
            "seeds": [0, 1]}, "model": {"path": "m"}});
        flatten("", &v, &mut out);
        assert_eq!(
            out,
            [
                ("model.path".to_string(), "m".to_string()),
                ("train.lr".into(), "0.00002".into()),
                ("train.mode".into(), "head".into()),
                ("train.seeds".into(), "[0,1]".into()),
            ]
        );
    }

    #[test]
    fn a_group_leaves_out_only_the_seed() {
        let params = [("p".to_string(), serde_json::json!(0.1))].into();
        let sweep = [("train.lr".to_string(), serde_json::json!("3e-5"))].into();
        assert_eq!(
            group_of("rte", "mixout", &params, &sweep),
            "rte mixout p=0.1 train.lr=3e-5"
        );
    }
}
