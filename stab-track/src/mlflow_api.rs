//! The calls stab makes to an MLflow tracking server: its REST API (`/api/2.0/mlflow/…`)
//! and the artifact proxy of `mlflow server` (`/api/2.0/mlflow-artifacts/…`), over ureq.

use std::time::Duration;

use serde_json::{Value, json};

use crate::event::json_text as text;

/// Why a call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// The server cannot be reached, timed out, or failed on its side (5xx, 429): the
    /// same call may succeed later.
    Unreachable(String),
    /// The server refused the call (4xx): sending it again will not help.
    Refused {
        status: u16,
        code: String,
        message: String,
    },
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreachable(why) => write!(f, "unreachable: {why}"),
            Self::Refused {
                status,
                code,
                message,
            } => write!(f, "refused ({status} {code}): {message}"),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Most metrics, params and tags MLflow takes in one `log-batch` call.
pub const BATCH_METRICS: usize = 1000;
pub const BATCH_PARAMS: usize = 100;
/// Longest parameter value MLflow stores.
pub const PARAM_VALUE_MAX: usize = 6000;
/// Longest tag value stab sends (MLflow's limit is far higher; an error message is cut).
pub const TAG_VALUE_MAX: usize = 5000;

/// A run on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRun {
    pub id: String,
    pub status: String,
    pub artifact_uri: String,
}

/// A metric point.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub key: String,
    pub value: f64,
    pub step: u64,
    pub at_ms: i64,
}

impl Point {
    /// The points of named values logged together at one step.
    pub fn all(values: &[(String, f64)], step: u64, at_ms: i64) -> impl Iterator<Item = Point> {
        values.iter().map(move |(key, value)| Point {
            key: key.clone(),
            value: *value,
            step,
            at_ms,
        })
    }
}

/// A client of one tracking server.
pub struct MlflowApi {
    base: String,
    agent: ureq::Agent,
}

impl MlflowApi {
    /// A client of the server at `url` (`http://host:port`, no trailing API path). Each
    /// call gives up after `timeout` (connecting after at most 2 s).
    pub fn new(url: &str, timeout: Duration) -> Self {
        Self {
            base: url.trim_end_matches('/').to_string(),
            agent: ureq::AgentBuilder::new()
                .timeout_connect(timeout.min(Duration::from_secs(2)))
                .timeout(timeout)
                .build(),
        }
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    fn post(&self, path: &str, body: &Value) -> ApiResult<Value> {
        let url = format!("{}/api/2.0/mlflow/{path}", self.base);
        let sent = self
            .agent
            .post(&url)
            .set("Content-Type", "application/json")
            .send_string(&body.to_string());
        answer(sent)
    }

    fn get(&self, path: &str, query: &[(&str, &str)]) -> ApiResult<Value> {
        let url = format!("{}/api/2.0/mlflow/{path}", self.base);
        let mut request = self.agent.get(&url);
        for (k, v) in query {
            request = request.query(k, v);
        }
        answer(request.call())
    }

    /// The id of the experiment named `name`, created if missing and restored if deleted.
    pub fn experiment(&self, name: &str) -> ApiResult<String> {
        match self.get("experiments/get-by-name", &[("experiment_name", name)]) {
            Ok(v) => {
                let e = &v["experiment"];
                let id = text(&e["experiment_id"]);
                if e["lifecycle_stage"] == "deleted" {
                    self.post("experiments/restore", &json!({ "experiment_id": id }))?;
                }
                Ok(id)
            }
            Err(ApiError::Refused { code, .. }) if code == "RESOURCE_DOES_NOT_EXIST" => {
                // MLflow 3's UI opens an experiment of this kind on its training runs.
                let kind = json!([{ "key": "mlflow.experimentKind", "value": "custom_model_development" }]);
                match self.post("experiments/create", &json!({ "name": name, "tags": kind })) {
                    Ok(v) => Ok(text(&v["experiment_id"])),
                    // Another process created it meanwhile.
                    Err(ApiError::Refused { code, .. }) if code == "RESOURCE_ALREADY_EXISTS" => {
                        let v =
                            self.get("experiments/get-by-name", &[("experiment_name", name)])?;
                        Ok(text(&v["experiment"]["experiment_id"]))
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The active runs of `experiment` whose tag `key` is `value`.
    pub fn runs_tagged(
        &self,
        experiment: &str,
        key: &str,
        value: &str,
    ) -> ApiResult<Vec<RemoteRun>> {
        let filter = format!("tags.\"{key}\" = '{}'", value.replace('\'', "\\'"));
        let v = self.post(
            "runs/search",
            &json!({ "experiment_ids": [experiment], "filter": filter, "max_results": 1000 }),
        )?;
        Ok(v["runs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| remote(&r["info"]))
            .collect())
    }

    /// Create a run (status RUNNING).
    pub fn create_run(
        &self,
        experiment: &str,
        name: &str,
        start_ms: i64,
        tags: &[(String, String)],
    ) -> ApiResult<RemoteRun> {
        let v = self.post(
            "runs/create",
            &json!({
                "experiment_id": experiment,
                "run_name": name,
                "start_time": start_ms,
                "tags": pairs(tags, TAG_VALUE_MAX),
            }),
        )?;
        Ok(remote(&v["run"]["info"]))
    }

    /// Log metrics, params and tags in as few calls as MLflow accepts (at most 1,000
    /// items a call, of which at most 100 params and 100 tags). Logging the same point or
    /// the same param value again is harmless (the server keeps one).
    pub fn log_batch(
        &self,
        run: &str,
        metrics: &[Point],
        params: &[(String, String)],
        tags: &[(String, String)],
    ) -> ApiResult<()> {
        let (mut metrics, mut params, mut tags) = (metrics, params, tags);
        while !(metrics.is_empty() && params.is_empty() && tags.is_empty()) {
            let np = params.len().min(BATCH_PARAMS);
            let nt = tags.len().min(BATCH_PARAMS);
            let nm = metrics.len().min(BATCH_METRICS - np - nt);
            let points: Vec<Value> = metrics[..nm]
                .iter()
                .map(|p| {
                    json!({ "key": p.key, "value": number(p.value), "timestamp": p.at_ms, "step": p.step })
                })
                .collect();
            self.post(
                "runs/log-batch",
                &json!({
                    "run_id": run,
                    "metrics": points,
                    "params": pairs(&params[..np], PARAM_VALUE_MAX),
                    "tags": pairs(&tags[..nt], TAG_VALUE_MAX),
                }),
            )?;
            (metrics, params, tags) = (&metrics[nm..], &params[np..], &tags[nt..]);
        }
        Ok(())
    }

    /// End a run: `FINISHED`, `FAILED` or `KILLED`.
    pub fn end_run(&self, run: &str, status: &str, end_ms: i64) -> ApiResult<()> {
        self.post(
            "runs/update",
            &json!({ "run_id": run, "status": status, "end_time": end_ms }),
        )
        .map(drop)
    }

    /// Mark a run deleted (an earlier attempt of a run that runs again).
    pub fn delete_run(&self, run: &str) -> ApiResult<()> {
        self.post("runs/delete", &json!({ "run_id": run }))
            .map(drop)
    }

    /// Upload `bytes` as artifact `name` of a run whose artifacts the server proxies
    /// (`mlflow-artifacts:/…`); `Ok(false)` when it stores them elsewhere.
    pub fn upload(&self, artifact_uri: &str, name: &str, bytes: &[u8]) -> ApiResult<bool> {
        let Some(rest) = artifact_uri.strip_prefix("mlflow-artifacts:") else {
            return Ok(false);
        };
        let rest = rest.trim_start_matches('/');
        let url = format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/{rest}/{name}",
            self.base
        );
        answer(self.agent.put(&url).send_bytes(bytes)).map(|_| true)
    }
}

/// A response as JSON, or why there is none.
fn answer(sent: Result<ureq::Response, ureq::Error>) -> ApiResult<Value> {
    match sent {
        Ok(response) => {
            let body = response
                .into_string()
                .map_err(|e| ApiError::Unreachable(format!("reading the answer: {e}")))?;
            Ok(serde_json::from_str(&body).unwrap_or(Value::Null))
        }
        Err(ureq::Error::Status(status, response)) => {
            let body = response.into_string().unwrap_or_default();
            let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            let message = v["message"]
                .as_str()
                .map_or_else(|| body.chars().take(300).collect(), str::to_string);
            if status >= 500 || status == 429 {
                Err(ApiError::Unreachable(format!("HTTP {status}: {message}")))
            } else {
                Err(ApiError::Refused {
                    status,
                    code: text(&v["error_code"]),
                    message,
                })
            }
        }
        Err(ureq::Error::Transport(t)) => Err(ApiError::Unreachable(t.to_string())),
    }
}

fn remote(info: &Value) -> RemoteRun {
    RemoteRun {
        id: text(&info["run_id"]),
        status: text(&info["status"]),
        artifact_uri: text(&info["artifact_uri"]),
    }
}

/// Key–value pairs as MLflow's JSON, values cut to `max` characters.
fn pairs(pairs: &[(String, String)], max: usize) -> Vec<Value> {
    pairs
        .iter()
        .map(|(k, v)| json!({ "key": k, "value": cut(v, max) }))
        .collect()
}

fn cut(v: &str, max: usize) -> String {
    if v.chars().count() <= max {
        return v.to_string();
    }
    let mut s: String = v.chars().take(max - 1).collect();
    s.push('…');
    s
}

/// A metric value in protobuf's JSON mapping (non-finite values as `"NaN"`, `"Infinity"`).
fn number(v: f64) -> Value {
    if v.is_nan() {
        json!("NaN")
    } else if v.is_infinite() {
        json!(if v > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        json!(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_cut_to_the_limit() {
        let v = "x".repeat(10);
        assert_eq!(cut(&v, 4), "xxx…");
        assert_eq!(cut(&v, 10), v);
    }

    #[test]
    fn non_finite_metrics_use_protobufs_json_names() {
        assert_eq!(number(f64::NAN), json!("NaN"));
        assert_eq!(number(f64::NEG_INFINITY), json!("-Infinity"));
        assert_eq!(number(0.5), json!(0.5));
    }

    #[test]
    fn a_closed_port_is_unreachable_not_refused() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let api = MlflowApi::new(&format!("http://127.0.0.1:{port}"), Duration::from_secs(1));
        assert!(matches!(api.experiment("x"), Err(ApiError::Unreachable(_))));
    }
}
