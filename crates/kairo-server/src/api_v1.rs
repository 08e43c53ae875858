//! Kairo's own REST API under `/api/v1`: runs (pipeline and tracked alike), metric history,
//! run artifacts, datasets and their versions, lineage and the event log, described by an OpenAPI document at
//! `/api/v1/openapi.json` (utoipa). Errors are `{"code", "message"}` with the stable codes of
//! `error::Code`. DTOs live here and are mapped from domain records by hand.

use crate::error::{ApiError, Code};
use crate::AppState;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use kairo_core::run::{PathVersion, Run, RunStatus};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, OpenApi, ToSchema};

/// An error in Kairo's own shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable: `invalid_parameter`, `already_exists`, `not_found`, `endpoint_not_found`, `internal`.
    pub code: String,
    pub message: String,
}

pub struct V1Error(ApiError);

impl From<ApiError> for V1Error {
    fn from(e: ApiError) -> Self {
        V1Error(e)
    }
}

impl From<kairo_store::StoreError> for V1Error {
    fn from(e: kairo_store::StoreError) -> Self {
        V1Error(e.into())
    }
}

impl From<QueryRejection> for V1Error {
    fn from(e: QueryRejection) -> Self {
        V1Error(ApiError::invalid(e.body_text()))
    }
}

impl From<PathRejection> for V1Error {
    fn from(e: PathRejection) -> Self {
        V1Error(ApiError::invalid(e.body_text()))
    }
}

impl IntoResponse for V1Error {
    fn into_response(self) -> Response {
        let body = ErrorBody { code: self.0.code.v1_name().into(), message: self.0.message };
        (self.0.code.status(), Json(body)).into_response()
    }
}

type V1Result<T> = Result<Json<T>, V1Error>;

/// A NUL byte can only arrive percent-encoded; no id, path or name Kairo stores holds one, and
/// PostgreSQL refuses it in text (a 500 rather than a 400 if it reached the database).
fn refuse_nul(raw: &str, part: &str) -> Result<(), V1Error> {
    if raw.contains("%00") {
        return Err(ApiError::invalid(format!("the {part} contains a NUL byte (%00)")).into());
    }
    Ok(())
}

/// `Query` that answers mistakes in Kairo's error shape and refuses NUL bytes.
pub struct V1Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for V1Query<T> {
    type Rejection = V1Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, V1Error> {
        refuse_nul(parts.uri.query().unwrap_or(""), "query")?;
        let Query(q) = Query::<T>::from_request_parts(parts, state).await?;
        Ok(V1Query(q))
    }
}

/// `Path` that answers mistakes (e.g. `%FF`, not UTF-8) in Kairo's error shape and refuses NUL
/// bytes.
pub struct V1Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for V1Path<T> {
    type Rejection = V1Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, V1Error> {
        refuse_nul(parts.uri.path(), "path")?;
        let Path(p) = Path::<T>::from_request_parts(parts, state).await?;
        Ok(V1Path(p))
    }
}

/// A JSON body, answered in Kairo's error shape when it is missing, malformed, of the wrong
/// shape (400) or larger than a JSON request may be (413).
pub struct V1Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequest<S> for V1Json<T> {
    type Rejection = V1Error;

    async fn from_request(req: axum::extract::Request, _: &S) -> Result<Self, V1Error> {
        let max = crate::params::MAX_BODY;
        let bytes = kairo_http::read_body(req.into_body(), max).await.map_err(|e| match e {
            kairo_http::BodyError::TooLarge { .. } => {
                ApiError::too_large(format!("the body is larger than a JSON request may be ({max} bytes)"))
            }
            kairo_http::BodyError::Interrupted(m) => ApiError::invalid(format!("the body was interrupted: {m}")),
        })?;
        let value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::invalid(format!("the body is not the JSON object this endpoint takes: {e}")))?;
        Ok(V1Json(value))
    }
}

/// A file or directory version a run read or wrote.
#[derive(Debug, Serialize, ToSchema)]
pub struct PathVersionDto {
    pub path: String,
    /// BLAKE3 of the file, or of the directory's manifest.
    pub hash: String,
    /// `file` or `dir`.
    pub kind: String,
    pub size: u64,
    /// True for a tracked dataset version.
    pub dataset: bool,
}

/// One run: a pipeline stage execution or a run created by a tracking client.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunDto {
    pub id: String,
    /// Stage name, or the run name for tracked runs.
    pub stage: String,
    /// `running`, `succeeded`, `failed` or `interrupted`.
    pub status: String,
    pub trigger: String,
    pub actor: String,
    pub host: String,
    /// `local` for `kairo run`, `mlflow-client` for runs created through the tracking API.
    pub executor: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub git_commit: Option<String>,
    pub git_branch: Option<String>,
    pub uncommitted_changes: bool,
    pub cmd: String,
    /// Environment spec (`host`, `python:<lockfile>`, `image:<ref>`) and its fingerprint.
    pub env: String,
    pub env_hash: String,
    /// `file:key` → value.
    pub params: BTreeMap<String, String>,
    /// Latest value of each metric; `null` for NaN or ±∞ (JSON has no such numbers).
    pub metrics: BTreeMap<String, Option<f64>>,
    pub inputs: Vec<PathVersionDto>,
    pub outputs: Vec<PathVersionDto>,
    pub exit_code: Option<i32>,
    pub reproduces: Option<String>,
    pub message: Option<String>,
    /// The process id it ran as.
    pub pid: u32,
    /// The values the environment's fingerprint is made of (OS, interpreter, packages...).
    pub env_key: BTreeMap<String, String>,
    /// BLAKE3 of the stage definition, inputs, params and environment.
    pub cache_key: String,
    pub cacheable: bool,
    /// The object holding the run's captured output, if any.
    pub log: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunList {
    pub runs: Vec<RunDto>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MetricPointDto {
    pub step: i64,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    /// `null` for NaN or ±∞ (JSON has no such numbers).
    pub value: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MetricHistory {
    pub run_id: String,
    pub key: String,
    pub points: Vec<MetricPointDto>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DatasetVersionDto {
    pub path: String,
    pub hash: String,
    pub kind: String,
    pub size: u64,
    pub files: u64,
    pub created_at: String,
    pub actor: String,
    pub git_commit: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DatasetList {
    /// The newest version of every tracked dataset.
    pub datasets: Vec<DatasetVersionDto>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DatasetVersions {
    pub path: String,
    /// Oldest first.
    pub versions: Vec<DatasetVersionDto>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventDto {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub kind: String,
    pub subject: String,
    /// What the event records, usually an object (any JSON value: older rows may hold text).
    pub payload: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventList {
    pub events: Vec<EventDto>,
}

/// One entry of an artifact directory.
#[derive(Debug, Serialize, ToSchema)]
pub struct ArtifactEntryDto {
    /// Relative to the run's artifact root.
    pub path: String,
    pub is_dir: bool,
    pub size: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ArtifactList {
    pub run_id: String,
    pub path: String,
    pub files: Vec<ArtifactEntryDto>,
}

// Every query struct says `parameter_in = Query`: without it utoipa declares its fields as path
// parameters, which generated clients and fuzzers then cannot send.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ArtifactQuery {
    /// A directory under the run's artifact root (default: the root).
    pub path: Option<String>,
}

/// A run status as a query value.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunStatusName {
    Running,
    Succeeded,
    Failed,
    Interrupted,
}

impl From<RunStatusName> for RunStatus {
    fn from(s: RunStatusName) -> Self {
        match s {
            RunStatusName::Running => RunStatus::Running,
            RunStatusName::Succeeded => RunStatus::Succeeded,
            RunStatusName::Failed => RunStatus::Failed,
            RunStatusName::Interrupted => RunStatus::Interrupted,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// Only runs of this stage (or run name).
    pub stage: Option<String>,
    /// Only runs in this status.
    #[param(inline)]
    pub status: Option<RunStatusName>,
    /// At most this many, newest first (default 100).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DatasetQuery {
    /// The tracked path, e.g. `data/train`.
    pub path: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only events about this subject, e.g. `run:<id>`, `dataset:<path>`, `model:<name>`.
    pub subject: Option<String>,
    /// At most this many, the newest (default 100).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IncidentsQuery {
    /// Only open incidents (default false).
    pub open: Option<bool>,
    /// At most this many, newest first (default 50).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<i64>,
}

/// An incident of the closed loop: one trigger's way to a resolved (or refused) change.
#[derive(Debug, Serialize, ToSchema)]
pub struct IncidentDto {
    pub id: i64,
    pub automation: String,
    pub model: String,
    /// triggered, retraining, registering, awaiting_labels, evaluating, awaiting_approval,
    /// rolling_out, verifying; final: resolved, not_better, rejected, rolled_back, failed.
    pub state: String,
    pub opened: String,
    pub updated: String,
    pub closed: Option<String>,
    /// What it learnt: triggers, export, retrain, challenger, evaluation, promotion, rollout, verify, failed.
    pub detail: serde_json::Value,
    /// Every transition, oldest first (only in `GET /api/v1/incidents/{id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Vec<EventDto>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IncidentList {
    pub incidents: Vec<IncidentDto>,
}

/// An incident as the API and `kairo incidents ls --json` give it.
pub fn incident_dto(i: kairo_store::incidents::Incident, timeline: Option<Vec<EventDto>>) -> IncidentDto {
    IncidentDto {
        id: i.id,
        automation: i.automation,
        model: i.model,
        state: i.state.as_str().to_string(),
        opened: kairo_core::time::millis_to_string(i.opened_ms),
        updated: kairo_core::time::millis_to_string(i.updated_ms),
        closed: i.closed_ms.map(kairo_core::time::millis_to_string),
        detail: i.detail,
        timeline,
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LineageQuery {
    /// A run id, a pipeline output path, a tracked dataset path, or `PATH@HASH`.
    pub target: String,
}

fn version_dto(v: &PathVersion) -> PathVersionDto {
    PathVersionDto {
        path: v.path.clone(),
        hash: v.hash.to_hex(),
        kind: v.kind.clone(),
        size: v.size,
        dataset: v.dataset,
    }
}

/// A run as `/api/v1` gives it (and `kairo runs` prints it, in either mode).
pub fn run_dto(r: &Run) -> RunDto {
    let params = r
        .params
        .iter()
        .flat_map(|(file, kv)| {
            kv.iter().map(move |(k, v)| {
                (format!("{file}:{k}"), v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string()))
            })
        })
        .collect();
    RunDto {
        id: r.id.clone(),
        stage: r.stage.clone(),
        status: r.status.as_str().into(),
        trigger: r.trigger.clone(),
        actor: r.actor.clone(),
        host: r.host.clone(),
        executor: r.executor.clone(),
        started_at: r.started_at.clone(),
        ended_at: r.ended_at.clone(),
        git_commit: r.git.commit.clone(),
        git_branch: r.git.branch.clone(),
        uncommitted_changes: r.git.dirty.is_some(),
        cmd: r.cmd.clone(),
        env: r.env.spec.clone(),
        env_hash: r.env.hash.to_hex(),
        params,
        metrics: r.metrics.iter().map(|(k, v)| (k.clone(), finite(*v))).collect(),
        inputs: r.deps.iter().map(version_dto).collect(),
        outputs: r.outs.iter().map(version_dto).collect(),
        exit_code: r.exit_code,
        reproduces: r.reproduces.clone(),
        message: r.message.clone(),
        pid: r.pid,
        env_key: r.env.key.clone(),
        cache_key: r.cache_key.to_hex(),
        cacheable: r.cacheable,
        log: r.log.map(|h| h.to_hex()),
    }
}

fn dataset_dto(v: &kairo_store::metadata::DatasetVersion) -> DatasetVersionDto {
    DatasetVersionDto {
        path: v.path.clone(),
        hash: v.hash.to_hex(),
        kind: v.kind.clone(),
        size: v.size,
        files: v.files,
        created_at: v.created_at.clone(),
        actor: v.actor.clone(),
        git_commit: v.git_commit.clone(),
    }
}

/// JSON has no NaN or infinity (serde_json would write `null` anyway); say so in the type.
fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

fn limit(l: Option<i64>, default: i64) -> Result<i64, V1Error> {
    match l {
        None => Ok(default),
        Some(n) if (1..=10_000).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::invalid(format!("limit {n} is out of range (1..=10000)")).into()),
    }
}

/// List runs, newest first.
#[utoipa::path(get, path = "/api/v1/runs", params(RunsQuery), responses((status = 200, body = RunList), (status = 400, body = ErrorBody)))]
async fn list_runs(State(s): State<AppState>, V1Query(q): V1Query<RunsQuery>) -> V1Result<RunList> {
    let status = q.status.map(RunStatus::from);
    let filter = kairo_store::runs::RunFilter { stage: q.stage, status, limit: Some(limit(q.limit, 100)?) };
    let runs = s.md.runs(&filter).await?;
    Ok(Json(RunList { runs: runs.iter().map(run_dto).collect() }))
}

/// One run by id (or unique id prefix).
#[utoipa::path(get, path = "/api/v1/runs/{id}", params(("id" = String, Path, description = "run id or unique prefix")),
    responses((status = 200, body = RunDto), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_run(State(s): State<AppState>, V1Path(id): V1Path<String>) -> V1Result<RunDto> {
    let run = s.md.run(&id).await.map_err(|e| match e {
        kairo_store::runs::RunLookupError::Store(e) => ApiError::from(e),
        other => ApiError::not_found(other.to_string()),
    })?;
    Ok(Json(run_dto(&run)))
}

/// Every value logged for one metric of a run, in logging order.
#[utoipa::path(get, path = "/api/v1/runs/{id}/metrics/{key}",
    params(("id" = String, Path, description = "run id"), ("key" = String, Path, description = "metric name")),
    responses((status = 200, body = MetricHistory), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn metric_history(
    State(s): State<AppState>,
    V1Path((id, key)): V1Path<(String, String)>,
) -> V1Result<MetricHistory> {
    let points = s.md.metric_history(&id, &key).await?;
    let points = points
        .iter()
        .map(|m| MetricPointDto { step: m.step, timestamp: m.timestamp, value: finite(m.value) })
        .collect();
    Ok(Json(MetricHistory { run_id: id, key, points }))
}

/// One directory level of a run's artifacts.
#[utoipa::path(get, path = "/api/v1/runs/{id}/artifacts", params(("id" = String, Path, description = "run id"), ArtifactQuery),
    responses((status = 200, body = ArtifactList), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn run_artifacts(
    State(s): State<AppState>,
    V1Path(id): V1Path<String>,
    V1Query(q): V1Query<ArtifactQuery>,
) -> V1Result<ArtifactList> {
    let info = s.md.tracked_run_info(&id).await?;
    let sub = crate::mlflow::artifacts::clean_path(q.path.as_deref().unwrap_or(""))?;
    let root = format!("{}/{}/artifacts", info.experiment_id, info.id);
    let dir = if sub.is_empty() { root } else { format!("{root}/{sub}") };
    let files =
        s.md.list_artifacts(&dir)
            .await?
            .into_iter()
            .map(|e| ArtifactEntryDto {
                path: if sub.is_empty() { e.path } else { format!("{sub}/{}", e.path) },
                is_dir: e.is_dir,
                size: e.size,
            })
            .collect();
    Ok(Json(ArtifactList { run_id: info.id, path: sub, files }))
}

/// The bytes of one artifact of a run (streamed, checked against their hash).
#[utoipa::path(get, path = "/api/v1/runs/{id}/artifacts/{path}",
    params(("id" = String, Path, description = "run id"), ("path" = String, Path, description = "file under the run's artifact root")),
    responses((status = 200, description = "The file", content_type = "application/octet-stream"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn run_artifact(
    State(s): State<AppState>,
    V1Path((id, path)): V1Path<(String, String)>,
) -> Result<Response, V1Error> {
    let info = s.md.tracked_run_info(&id).await?;
    let clean = crate::mlflow::artifacts::clean_path(&path)?;
    let full = format!("{}/{clean}", crate::mlflow::artifacts::run_root(&info));
    let (hash, _) =
        s.md.artifact(&full)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("run {id} has no artifact `{clean}`")))?;
    Ok(crate::mlflow::artifacts::object_response(&s, hash).await?)
}

/// The newest version of every tracked dataset.
#[utoipa::path(get, path = "/api/v1/datasets", responses((status = 200, body = DatasetList)))]
async fn datasets(State(s): State<AppState>) -> V1Result<DatasetList> {
    let all = s.md.latest_dataset_versions().await?;
    Ok(Json(DatasetList { datasets: all.iter().map(dataset_dto).collect() }))
}

/// All versions of one tracked dataset.
#[utoipa::path(get, path = "/api/v1/datasets/versions", params(DatasetQuery),
    responses((status = 200, body = DatasetVersions), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn dataset_versions(State(s): State<AppState>, V1Query(q): V1Query<DatasetQuery>) -> V1Result<DatasetVersions> {
    let versions = s.md.dataset_versions(&q.path).await?;
    if versions.is_empty() {
        return Err(
            ApiError::not_found(format!("no dataset `{}` has been recorded (see `kairo data add`)", q.path)).into()
        );
    }
    Ok(Json(DatasetVersions { path: q.path, versions: versions.iter().map(dataset_dto).collect() }))
}

/// The event log (who did what, when), newest last.
#[utoipa::path(get, path = "/api/v1/events", params(EventsQuery), responses((status = 200, body = EventList), (status = 400, body = ErrorBody)))]
async fn events(State(s): State<AppState>, V1Query(q): V1Query<EventsQuery>) -> V1Result<EventList> {
    let events = s.md.events(q.subject.as_deref(), limit(q.limit, 100)?).await?;
    let events = events
        .into_iter()
        .map(|e| EventDto { id: e.id, at: e.at, actor: e.actor, kind: e.kind, subject: e.subject, payload: e.payload })
        .collect();
    Ok(Json(EventList { events }))
}

/// Where a run, output or dataset version came from: the upstream graph.
#[utoipa::path(get, path = "/api/v1/lineage", params(LineageQuery),
    responses((status = 200, description = "The upstream graph: nested run and data nodes", body = Object), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn lineage(State(s): State<AppState>, V1Query(q): V1Query<LineageQuery>) -> Result<Response, V1Error> {
    let node = kairo_pipeline::lineage::lineage(&s.project, &s.md, &q.target).await.map_err(|e| match e {
        kairo_pipeline::PipelineError::Store(e) => ApiError::from(e),
        other => ApiError::not_found(other.to_string()),
    })?;
    Ok(Json(node).into_response())
}

/// Incidents of the closed loop, newest first.
#[utoipa::path(get, path = "/api/v1/incidents", params(IncidentsQuery), responses((status = 200, body = IncidentList), (status = 400, body = ErrorBody)))]
async fn incidents(State(s): State<AppState>, V1Query(q): V1Query<IncidentsQuery>) -> V1Result<IncidentList> {
    let list = s.md.incidents(q.open.unwrap_or(false), limit(q.limit, 50)?).await?;
    Ok(Json(IncidentList { incidents: list.into_iter().map(|i| incident_dto(i, None)).collect() }))
}

/// One incident with its timeline (every transition and the facts it recorded).
#[utoipa::path(get, path = "/api/v1/incidents/{id}", params(("id" = i64, Path, description = "incident id")),
    responses((status = 200, body = IncidentDto), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn incident(State(s): State<AppState>, V1Path(id): V1Path<i64>) -> V1Result<IncidentDto> {
    Ok(Json(incident_with_timeline(&s.md, id).await?))
}

/// One incident with its timeline, as `GET /api/v1/incidents/{id}` and `kairo incidents show
/// --json` give it.
pub async fn incident_with_timeline(
    md: &kairo_store::Metadata,
    id: i64,
) -> Result<IncidentDto, kairo_store::StoreError> {
    let inc = md.incident(id).await?;
    let timeline = md
        .events(Some(&format!("incident:{id}")), 10_000)
        .await?
        .into_iter()
        .map(|e| EventDto { id: e.id, at: e.at, actor: e.actor, kind: e.kind, subject: e.subject, payload: e.payload })
        .collect();
    Ok(incident_dto(inc, Some(timeline)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KpiQuery {
    /// How far back from `until`: `90d` (default), `12w`, `48h`.
    pub since: Option<String>,
    /// End of the period, RFC 3339 (default now).
    pub until: Option<String>,
    /// Only this model.
    pub model: Option<String>,
}

/// The value report: delivery KPIs, automation rate, quality over time, serving health,
/// compute and ROI (the same document as `kairo kpi --json`).
#[utoipa::path(get, path = "/api/v1/kpi", params(KpiQuery),
    responses((status = 200, body = kairo_kpi::Report), (status = 400, body = ErrorBody)))]
async fn kpi(State(s): State<AppState>, V1Query(q): V1Query<KpiQuery>) -> V1Result<kairo_kpi::Report> {
    let query = kairo_kpi::query(q.since.as_deref().unwrap_or("90d"), q.until.as_deref(), q.model)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let objects = s.project.objects().ok();
    let src = kairo_kpi::Sources { md: &s.md, objects: objects.as_ref(), git_root: Some(s.project.root()) };
    let report = kairo_kpi::compute(&src, s.project.config(), &query).await.map_err(kpi_error)?;
    Ok(Json(report))
}

fn kpi_error(e: kairo_kpi::KpiError) -> ApiError {
    match e {
        kairo_kpi::KpiError::Store(e) => e.into(),
        kairo_kpi::KpiError::Usage(m) => ApiError::invalid(m),
        other => ApiError { code: Code::Internal, message: other.to_string() },
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Kairo API",
        version = "1",
        description = "Runs, metrics, datasets, lineage, events, incidents and KPIs of a Kairo project; registering, promoting, approving, deploying and rolling back models; automations. Each operation's x-kairo-permission names what the caller's roles must allow. The MLflow-compatible API is served under /api/2.0/mlflow."
    ),
    paths(
        list_runs,
        get_run,
        metric_history,
        run_artifacts,
        run_artifact,
        datasets,
        dataset_versions,
        events,
        lineage,
        incidents,
        incident,
        kpi,
        crate::models_api::whoami,
        crate::models_api::create_token,
        crate::models_api::models,
        crate::models_api::model,
        crate::models_api::register,
        crate::models_api::promote,
        crate::models_api::approve,
        crate::models_api::reject,
        crate::models_api::set_alias,
        crate::models_api::delete_alias,
        crate::models_api::deployment,
        crate::models_api::deploy,
        crate::models_api::rollback,
        crate::models_api::automations,
        crate::models_api::run_automation,
        crate::models_api::monitors,
        crate::models_api::check_monitor
    ),
    components(schemas(
        ErrorBody,
        RunDto,
        RunList,
        PathVersionDto,
        MetricPointDto,
        MetricHistory,
        ArtifactEntryDto,
        ArtifactList,
        DatasetVersionDto,
        DatasetList,
        DatasetVersions,
        EventDto,
        EventList,
        IncidentDto,
        IncidentList,
        kairo_kpi::Report,
        crate::models_api::TokenBody,
        crate::models_api::PromoteBody,
        crate::models_api::AliasBody,
        crate::models_api::DeployBody,
        crate::models_api::StrategyName,
        crate::models_api::RollbackBody,
        crate::models_api::RunAutomationBody,
        crate::models_api::CheckBody
    ))
)]
pub struct ApiDoc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(|| async { Json(crate::auth::annotate(ApiDoc::openapi())) }))
        .route("/runs", get(list_runs))
        .route("/runs/{id}", get(get_run))
        .route("/runs/{id}/metrics/{key}", get(metric_history))
        .route("/runs/{id}/artifacts", get(run_artifacts))
        .route("/runs/{id}/artifacts/{*path}", get(run_artifact))
        .route("/datasets", get(datasets))
        .route("/datasets/versions", get(dataset_versions))
        .route("/events", get(events))
        .route("/lineage", get(lineage))
        .route("/incidents", get(incidents))
        .route("/incidents/{id}", get(incident))
        .route("/kpi", get(kpi))
        .merge(crate::models_api::routes())
        .fallback(|uri: axum::http::Uri| async move {
            V1Error(ApiError { code: Code::EndpointNotFound, message: format!("No endpoint {}", uri.path()) })
                .into_response()
        })
}
