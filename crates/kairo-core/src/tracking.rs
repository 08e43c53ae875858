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

/// An MLflow 3 logged model: artifacts plus params and tags, linked to the run that made it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedModel {
    /// `m-` followed by 32 hex digits.
    pub id: String,
    pub experiment_id: i64,
    pub name: String,
    pub model_type: Option<String>,
    pub source_run_id: Option<String>,
    /// `LOGGED_MODEL_PENDING`, `LOGGED_MODEL_READY` or `LOGGED_MODEL_UPLOAD_FAILED`.
    pub status: String,
    pub status_message: Option<String>,
    pub creator_id: String,
    pub creation_ms: i64,
    pub last_updated_ms: i64,
    pub artifact_uri: String,
    pub params: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
    /// Metrics logged with this model's id.
    pub metrics: Vec<MetricPoint>,
    /// Registry versions made from it: (name, version).
    pub registrations: Vec<(String, i64)>,
}

/// A named model in the registry.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisteredModel {
    pub name: String,
    pub description: String,
    pub user_id: String,
    pub creation_ms: i64,
    pub last_updated_ms: i64,
    pub tags: Vec<(String, String)>,
    /// (alias, version).
    pub aliases: Vec<(String, i64)>,
    /// The newest version per stage (MLflow's `latest_versions`).
    pub latest_versions: Vec<ModelVersion>,
}

/// One numbered version of a registered model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelVersion {
    pub name: String,
    pub version: i64,
    pub description: String,
    /// Where its files are: `models:/<model_id>`, `runs:/<run>/<path>` or an artifact URI.
    pub source: String,
    pub run_id: Option<String>,
    pub model_id: Option<String>,
    pub run_link: String,
    /// `READY` (versions reference existing artifacts; there is nothing to copy).
    pub status: String,
    pub current_stage: String,
    pub user_id: String,
    pub creation_ms: i64,
    pub last_updated_ms: i64,
    pub tags: Vec<(String, String)>,
    pub aliases: Vec<String>,
}

/// A dataset a run read, as a tracking client describes it (MLflow `log_input`).
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetInput {
    pub name: String,
    pub digest: String,
    pub source_type: String,
    pub source: String,
    pub schema: Option<String>,
    pub profile: Option<String>,
    /// e.g. `mlflow.data.context` = `training`.
    pub tags: Vec<(String, String)>,
}
