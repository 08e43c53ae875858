//! A run: one execution of a pipeline stage, with everything needed to explain and re-execute it.
//! Immutable once finished; re-executing creates a new run whose `reproduces` names the original.

use crate::Hash;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where a run is in its life. Only `Succeeded` runs with `cacheable` outputs feed the run cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "running" => Some(RunStatus::Running),
            "succeeded" => Some(RunStatus::Succeeded),
            "failed" => Some(RunStatus::Failed),
            "interrupted" => Some(RunStatus::Interrupted),
            _ => None,
        }
    }
}

/// What started a run.
pub const TRIGGERS: &[&str] = &["manual", "ci", "schedule", "api", "alert"];

/// The code a run came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitState {
    pub commit: Option<String>,
    pub branch: Option<String>,
    /// Hash of the uncommitted changes (`git diff HEAD` plus untracked files); none when clean.
    pub dirty: Option<String>,
}

/// A file or directory version: a file's content hash or a directory's manifest hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathVersion {
    pub path: String,
    pub hash: Hash,
    /// `file`, `dir`, or [`MODEL_KIND`].
    #[serde(rename = "type")]
    pub kind: String,
    pub size: u64,
    /// True when the path is a tracked dataset (`<path>.kairo`) and `hash` its version.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dataset: bool,
}

/// `kind` of a run's dependency on a registered model version.
pub const MODEL_KIND: &str = "model";

impl PathVersion {
    /// A registered model version as a run records it among its dependencies:
    /// `models/NAME:VERSION`, the hash of its ONNX bytes (a pipeline stage's `models`, and
    /// `kairo predict`'s model).
    pub fn model(name: &str, version: i64, hash: Hash) -> PathVersion {
        PathVersion { path: format!("models/{name}:{version}"), hash, kind: MODEL_KIND.into(), size: 0, dataset: false }
    }
}

/// The environment a stage ran in: `hash` is part of the cache key; `facts` are recorded only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvFingerprint {
    /// `host`, `python:<lockfile>` or `image:<ref>`.
    pub spec: String,
    pub hash: Hash,
    /// The values that make up `hash` (OS, architecture, interpreter versions, package lists...).
    pub key: BTreeMap<String, String>,
    /// Recorded for audit, not part of the key (kernel, host, CPU count...).
    pub facts: BTreeMap<String, String>,
}

/// One execution of a stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// Time-ordered: 12 hex digits of milliseconds since the epoch, then 20 random hex digits.
    pub id: String,
    pub stage: String,
    pub status: RunStatus,
    pub trigger: String,
    pub actor: String,
    pub host: String,
    pub pid: u32,
    /// `local` (later: `ray`).
    pub executor: String,
    pub git: GitState,
    pub cmd: String,
    /// The working directory relative to the project root ("" for the root).
    #[serde(default)]
    pub wdir: String,
    pub deps: Vec<PathVersion>,
    /// Params file → dotted key → value (only the keys the stage names).
    pub params: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
    pub env: EnvFingerprint,
    /// Declared outputs (paths) with `persist`, in the stage's order.
    pub out_paths: Vec<String>,
    #[serde(default)]
    pub persist: Vec<String>,
    pub metrics_files: Vec<String>,
    pub outs: Vec<PathVersion>,
    /// Flattened numeric metrics (`dotted.key` → value) read from the metrics files.
    pub metrics: BTreeMap<String, f64>,
    pub cache_key: Hash,
    /// False when a dependency changed while the stage ran: such outputs are never reused.
    pub cacheable: bool,
    pub exit_code: Option<i32>,
    pub started_at: String,
    pub ended_at: Option<String>,
    /// Combined stdout/stderr, stored as an object.
    pub log: Option<Hash>,
    /// The run this one re-executes (`kairo reproduce`).
    pub reproduces: Option<String>,
    /// Why the run failed or was not cacheable, in words.
    pub message: Option<String>,
    /// CPU milliseconds (user + system) of the command and the children it waited for; none
    /// for runs Kairo did not execute (tracking clients, cache restores) or recorded before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_ms: Option<u64>,
}

impl Run {
    /// The record of a run created through the tracking API (an MLflow client): no stage, no
    /// command, no declared inputs; never part of the run cache.
    pub fn tracked(id: String, name: String, actor: String, host: String, started_at: String) -> Run {
        Run {
            id,
            stage: name,
            status: RunStatus::Running,
            trigger: "api".into(),
            actor,
            host,
            pid: 0,
            executor: "mlflow-client".into(),
            git: GitState::default(),
            cmd: String::new(),
            wdir: String::new(),
            deps: Vec::new(),
            params: BTreeMap::new(),
            env: EnvFingerprint {
                spec: "unknown".into(),
                hash: Hash::of(b""),
                key: BTreeMap::new(),
                facts: BTreeMap::new(),
            },
            out_paths: Vec::new(),
            persist: Vec::new(),
            metrics_files: Vec::new(),
            outs: Vec::new(),
            metrics: BTreeMap::new(),
            cache_key: Hash::of(b""),
            cacheable: false,
            exit_code: None,
            started_at,
            ended_at: None,
            log: None,
            reproduces: None,
            message: None,
            cpu_ms: None,
        }
    }

    /// Wall time in seconds, once finished.
    pub fn duration_secs(&self) -> Option<f64> {
        let start = chrono::DateTime::parse_from_rfc3339(&self.started_at).ok()?;
        let end = chrono::DateTime::parse_from_rfc3339(self.ended_at.as_deref()?).ok()?;
        Some((end - start).num_milliseconds() as f64 / 1000.0)
    }
}

/// A new run id: a UUID v7 as 32 lowercase hex digits (the shape of MLflow's `uuid4().hex`).
/// It starts with the creation time in epoch milliseconds, so ids sort by creation time, and
/// the other 74 bits are random, so clients sharing one database do not collide. (Random
/// rather than uuid's per-process counter: ids made in the same millisecond then differ from
/// the 14th digit on, so a short prefix still names one run.)
pub fn new_run_id() -> String {
    let now = uuid::Timestamp::now(uuid::NoContext);
    uuid::Uuid::new_v7(now).simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_32_hex_digits_unique_and_time_ordered() {
        let ids: Vec<String> = (0..1000).map(|_| new_run_id()).collect();
        for id in &ids {
            assert_eq!(id.len(), 32, "{id}");
            assert!(id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{id}");
            assert_eq!(&id[12..13], "7", "UUID version 7: {id}");
        }
        // Ordered by millisecond; within one, the random part keeps prefixes apart.
        assert!(ids.windows(2).all(|w| w[0][..12] <= w[1][..12]), "not in time order");
        let mut prefixes: Vec<&str> = ids.iter().map(|id| &id[..20]).collect();
        prefixes.sort();
        prefixes.dedup();
        assert_eq!(prefixes.len(), ids.len(), "20-digit prefixes collide");
        let ms = u64::from_str_radix(&ids[0][..12], 16).unwrap();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
        assert!(now.abs_diff(ms) < 60_000, "{ms} vs {now}");
    }
}
