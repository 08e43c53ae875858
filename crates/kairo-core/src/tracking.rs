//! Tracking records as the MLflow-compatible API sees them: experiments, and runs with their
//! params, tags and metrics. Pipeline runs and API-created runs are the same runs.

use crate::run::RunStatus;

/// The experiment every run belongs to unless told otherwise (MLflow's `Default`, id 0).
pub const DEFAULT_EXPERIMENT: i64 = 0;

#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    pub id: i64,
    pub name: String,
    pub artifact_location: String,
    /// `active` or `deleted`.
    pub lifecycle_stage: String,
    pub creation_time: i64,
    pub last_update_time: i64,
    pub tags: Vec<(String, String)>,
}

/// One logged metric value.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricPoint {
    pub key: String,
    pub value: f64,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    pub step: i64,
    pub model_id: Option<String>,
    pub dataset_name: Option<String>,
    pub dataset_digest: Option<String>,
}

/// A run's identity and state, as MLflow's `RunInfo` carries it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackedRunInfo {
    pub id: String,
    pub experiment_id: i64,
    pub name: String,
    pub user_id: String,
    pub status: RunStatus,
    pub start_time: i64,
    pub end_time: Option<i64>,
    /// `active` or `deleted`.
    pub lifecycle_stage: String,
}

/// A run with its latest metrics, params and tags.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackedRun {
    pub info: TrackedRunInfo,
    pub metrics: Vec<MetricPoint>,
    pub params: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
}

impl TrackedRun {
    pub fn metric(&self, key: &str) -> Option<f64> {
        self.metrics.iter().find(|m| m.key == key).map(|m| m.value)
    }

    pub fn param(&self, key: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// MLflow's run status names ↔ Kairo's. SCHEDULED has no Kairo equivalent and reads as running.
pub fn status_to_mlflow(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Running => "RUNNING",
        RunStatus::Succeeded => "FINISHED",
        RunStatus::Failed => "FAILED",
        RunStatus::Interrupted => "KILLED",
    }
}

pub fn status_from_mlflow(s: &str) -> Option<RunStatus> {
    match s {
        "RUNNING" | "SCHEDULED" => Some(RunStatus::Running),
        "FINISHED" => Some(RunStatus::Succeeded),
        "FAILED" => Some(RunStatus::Failed),
        "KILLED" => Some(RunStatus::Interrupted),
        _ => None,
    }
}
