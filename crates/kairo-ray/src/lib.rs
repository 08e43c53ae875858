//! A client of Ray's Jobs REST API, protocol version 4 (Ray 2.x's dashboard on port 8265):
//! what Kairo needs to run a pipeline stage on a cluster the team already has — check the
//! cluster, upload a working-directory package, submit with a submission id of Kairo's
//! choosing (so a resubmission after a crash finds the same job), follow its status and logs,
//! stop it, list jobs to reconcile, and read the cluster's resources to refuse a job that could
//! never be scheduled (Ray would leave it pending for 15 minutes).
//!
//! Ray answers errors as text tracebacks, not JSON: their last line is the message. Every
//! error here names the cluster and the cause (unreachable, refused token, a job that does not
//! exist, a package too large, an incompatible Ray).

pub mod package;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The Jobs API protocol this client speaks.
pub const PROTOCOL: &str = "4";

#[derive(Debug, thiserror::Error)]
pub enum RayError {
    #[error("{address} is not a usable Ray address: {why}")]
    Address { address: String, why: String },
    #[error("the Ray cluster at {address} is unreachable: {cause} (is the head running, and is its dashboard on that port?)")]
    Unreachable { address: String, cause: String },
    #[error("the Ray cluster at {address} {}", if *status == 401 { "runs with token authentication and no token was sent (401)" } else { "refused the token it was sent (403)" })]
    Unauthorized { address: String, status: u16 },
    #[error("the Ray cluster at {address} speaks Jobs API version {found}, Kairo speaks {PROTOCOL} (Ray {ray})")]
    Protocol { address: String, found: String, ray: String },
    #[error("Ray has no job {0}")]
    NoSuchJob(String),
    #[error("the package is {size} bytes; Ray takes at most {} (leave data out of the stage's code: it travels through the object store)", package::MAX_PACKAGE)]
    TooLarge { size: usize },
    #[error("the Ray cluster at {address} answered {status} to {what}: {message}")]
    Refused { address: String, status: u16, what: String, message: String },
    #[error("the Ray cluster at {address} answered {what} with something unexpected: {why}")]
    Malformed { address: String, what: String, why: String },
}

pub type Result<T> = std::result::Result<T, RayError>;

/// A job's state as Ray reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Pending,
    Running,
    Stopped,
    Succeeded,
    Failed,
}

impl Status {
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Stopped | Status::Succeeded | Status::Failed)
    }
}

/// A job's record (`GET /api/jobs/{id}`; the list has the same objects).
#[derive(Debug, Clone, Deserialize)]
pub struct Job {
    pub submission_id: Option<String>,
    pub status: Status,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub error_type: Option<String>,
    #[serde(default)]
    pub start_time: Option<i64>,
    #[serde(default)]
    pub end_time: Option<i64>,
    #[serde(default)]
    pub driver_exit_code: Option<i32>,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub entrypoint: String,
}

/// What to run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Submit {
    pub entrypoint: String,
    pub submission_id: String,
    /// `working_dir`, `pip`, `env_vars`, ... (Ray's `runtime_env`).
    pub runtime_env: Value,
    pub metadata: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint_num_cpus: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint_num_gpus: Option<f64>,
    /// Bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint_memory: Option<u64>,
}

/// A submission's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submitted {
    New,
    /// A job with this submission id already existed: Kairo attaches to it.
    Existing,
}

/// The cluster's total resources (`GET /api/cluster_status`'s or the nodes' totals).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    pub cpus: f64,
    pub gpus: f64,
    pub memory: f64,
}

pub struct Client {
    base: url::Url,
    address: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Client {
    /// A client of the head's dashboard at `address` (`http://head:8265`), with a bearer token
    /// when the cluster runs with `RAY_AUTH_MODE=token`.
    pub fn new(address: &str, token: Option<String>) -> Result<Client> {
        let bad = |why: &str| RayError::Address { address: address.to_string(), why: why.to_string() };
        let base = url::Url::parse(address).map_err(|e| bad(&e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(bad("expected http://HOST:PORT (the dashboard, 8265 by default)"));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| bad(&e.to_string()))?;
        Ok(Client { base, address: address.trim_end_matches('/').to_string(), token, http })
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    fn url(&self, path: &str) -> url::Url {
        let mut u = self.base.clone();
        u.set_path(path);
        u
    }

    async fn send(&self, what: &str, r: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let r = match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        };
        let response =
            r.send().await.map_err(|e| RayError::Unreachable { address: self.address.clone(), cause: chain(&e) })?;
        let status = response.status().as_u16();
        if status == 401 || status == 403 {
            return Err(RayError::Unauthorized { address: self.address.clone(), status });
        }
        if response.status().is_success() || status == 404 {
            return Ok(response);
        }
        let body = response.text().await.unwrap_or_default();
        Err(RayError::Refused {
            address: self.address.clone(),
            status,
            what: what.to_string(),
            message: last_line(&body),
        })
    }

    async fn json<T: serde::de::DeserializeOwned>(&self, what: &str, response: reqwest::Response) -> Result<T> {
        let bytes = response
            .bytes()
            .await
            .map_err(|e| RayError::Unreachable { address: self.address.clone(), cause: chain(&e) })?;
        serde_json::from_slice(&bytes).map_err(|e| RayError::Malformed {
            address: self.address.clone(),
            what: what.to_string(),
            why: e.to_string(),
        })
    }

    /// The cluster's Ray version, after checking it speaks protocol 4.
    pub async fn version(&self) -> Result<String> {
        let r = self.send("GET /api/version", self.http.get(self.url("/api/version"))).await?;
        if r.status().as_u16() == 404 {
            return Err(RayError::Malformed {
                address: self.address.clone(),
                what: "GET /api/version".into(),
                why: "404: this is not a Ray dashboard".into(),
            });
        }
        let v: Value = self.json("GET /api/version", r).await?;
        let found = v["version"].as_str().unwrap_or("").to_string();
        let ray = v["ray_version"].as_str().unwrap_or("?").to_string();
        if found != PROTOCOL {
            return Err(RayError::Protocol { address: self.address.clone(), found, ray });
        }
        Ok(ray)
    }

    /// Upload a working-directory package unless the cluster has it; its `gcs://` URI.
    /// Asking for it first also pins it for ten minutes, so it is not collected before the job
    /// starts.
    pub async fn upload_package(&self, zip: Vec<u8>) -> Result<String> {
        if zip.len() > package::MAX_PACKAGE {
            return Err(RayError::TooLarge { size: zip.len() });
        }
        let name = package::name(&zip);
        let path = format!("/api/packages/gcs/{name}");
        let r = self.send("GET package", self.http.get(self.url(&path))).await?;
        if r.status().as_u16() == 404 {
            let r = self.send("PUT package", self.http.put(self.url(&path)).body(zip)).await?;
            if r.status().as_u16() == 404 {
                return Err(RayError::Malformed {
                    address: self.address.clone(),
                    what: "PUT package".into(),
                    why: "404: the dashboard has no package API".into(),
                });
            }
        }
        Ok(format!("gcs://{name}"))
    }

    /// Submit a job; a job that already has this submission id is attached to, not duplicated.
    pub async fn submit(&self, s: &Submit) -> Result<Submitted> {
        let r = self.http.post(self.url("/api/jobs/")).json(s);
        match self.send("POST /api/jobs/", r).await {
            Ok(_) => Ok(Submitted::New),
            Err(RayError::Refused { message, .. }) if message.contains("already exists") => Ok(Submitted::Existing),
            Err(e) => Err(e),
        }
    }

    /// A job's record, or `None` when Ray does not know it (never did, deleted, or a restarted
    /// head: Ray keeps jobs only in memory).
    pub async fn job(&self, id: &str) -> Result<Option<Job>> {
        let r = self.send("GET job", self.http.get(self.url(&format!("/api/jobs/{id}")))).await?;
        if r.status().as_u16() == 404 {
            return Ok(None);
        }
        self.json("GET job", r).await.map(Some)
    }

    /// Every job the cluster remembers.
    pub async fn jobs(&self) -> Result<Vec<Job>> {
        let r = self.send("GET /api/jobs/", self.http.get(self.url("/api/jobs/"))).await?;
        self.json("GET /api/jobs/", r).await
    }

    /// The job's combined output so far (Ray puts two lines of its own in front).
    pub async fn logs(&self, id: &str) -> Result<String> {
        let r = self.send("GET logs", self.http.get(self.url(&format!("/api/jobs/{id}/logs")))).await?;
        if r.status().as_u16() == 404 {
            return Err(RayError::NoSuchJob(id.to_string()));
        }
        let v: Value = self.json("GET logs", r).await?;
        Ok(v["logs"].as_str().unwrap_or("").to_string())
    }

    /// Ask Ray to stop the job; whether it was still running.
    pub async fn stop(&self, id: &str) -> Result<bool> {
        let r = self.send("POST stop", self.http.post(self.url(&format!("/api/jobs/{id}/stop")))).await?;
        if r.status().as_u16() == 404 {
            return Err(RayError::NoSuchJob(id.to_string()));
        }
        let v: Value = self.json("POST stop", r).await?;
        Ok(v["stopped"].as_bool().unwrap_or(false))
    }

    /// Forget a finished job (Ray refuses while it runs), so its submission id can be used again.
    pub async fn delete(&self, id: &str) -> Result<bool> {
        let r = self.send("DELETE job", self.http.delete(self.url(&format!("/api/jobs/{id}")))).await?;
        if r.status().as_u16() == 404 {
            return Ok(false);
        }
        let v: Value = self.json("DELETE job", r).await?;
        Ok(v["deleted"].as_bool().unwrap_or(false))
    }

    /// The cluster's total CPUs, GPUs and memory (summed over its alive nodes).
    pub async fn resources(&self) -> Result<Resources> {
        let r = self.send("GET /api/v0/nodes", self.http.get(self.url("/api/v0/nodes"))).await?;
        let v: Value = self.json("GET /api/v0/nodes", r).await?;
        let nodes = v["data"]["result"]["result"].as_array().cloned().unwrap_or_default();
        let mut total = Resources::default();
        for n in nodes.iter().filter(|n| n["state"].as_str().is_none_or(|s| s == "ALIVE")) {
            let res = &n["resources_total"];
            total.cpus += res["CPU"].as_f64().unwrap_or(0.0);
            total.gpus += res["GPU"].as_f64().unwrap_or(0.0);
            total.memory += res["memory"].as_f64().unwrap_or(0.0);
        }
        Ok(total)
    }
}

/// Ray's error message in a traceback: its last `SomeError: message` line, else its last line
/// with words in it.
fn last_line(body: &str) -> String {
    let lines = || body.lines().rev().map(str::trim);
    let exception = lines()
        .find(|l| l.split_once(": ").is_some_and(|(kind, _)| kind.ends_with("Error") || kind.ends_with("Exception")));
    let line =
        exception.or_else(|| lines().find(|l| l.chars().filter(|c| c.is_alphanumeric()).count() > 1)).unwrap_or("");
    line.chars().take(500).collect()
}

/// An error and its causes, one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceback_gives_its_last_line() {
        let tb = "Traceback (most recent call last):\n  File \"x\"\nValueError: Job with submission_id a already exists. Please use a different submission_id.\n\n";
        assert!(last_line(tb).starts_with("ValueError: Job with submission_id a already exists"));
        let wrapped = "Traceback:\nValueError: Job with submission_id a already exists\n.\n";
        assert!(last_line(wrapped).contains("already exists"));
        assert_eq!(
            last_line("500 Internal Server Error\n\nServer got itself in trouble"),
            "Server got itself in trouble"
        );
    }

    #[test]
    fn addresses_are_checked() {
        assert!(Client::new("http://127.0.0.1:8265", None).is_ok());
        for bad in ["127.0.0.1:8265", "ray://head:10001", "http://", "nonsense"] {
            assert!(matches!(Client::new(bad, None), Err(RayError::Address { .. })), "{bad}");
        }
    }

    #[test]
    fn statuses_parse() {
        let j: Job =
            serde_json::from_str(r#"{"submission_id":"a","status":"FAILED","driver_exit_code":3,"entrypoint":"x"}"#)
                .unwrap();
        assert_eq!((j.status, j.driver_exit_code), (Status::Failed, Some(3)));
        assert!(j.status.is_terminal() && !Status::Pending.is_terminal());
    }
}
