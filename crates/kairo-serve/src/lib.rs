//! `kairo serve`: the inference server.
//!
//! Owns the HTTP surface of inference — the Open Inference Protocol v2 REST API (JSON and the
//! binary tensor extension), MLflow's `/invocations`, `/ping`, `/health`, Prometheus
//! `/metrics`, `POST /v1/feedback` — over endpoints that follow the registry (`endpoint`):
//! hot swap, canary and shadow with automatic rollback. Every answered request goes to the
//! prediction log (`predlog`) without waiting for it.
//!
//! Knows nothing of how versions are registered or gated (that is `kairo-registry`) and runs
//! models only through `kairo-runtime`.

pub mod endpoint;
pub mod error;
pub mod invocations;
pub mod limits;
pub mod metrics;
pub mod oip;
pub mod predlog;
pub mod privacy;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use endpoint::{Arm, Endpoint, Endpoints, Loaded};
use error::{OipCode, RequestError};
use kairo_data::Project;
use kairo_registry::ModelRef;
use kairo_runtime::{RuntimeError, Tensor};
use serde_json::{json, Value};

/// How `kairo serve` runs.
pub struct ServeConfig {
    pub models: Vec<ModelRef>,
    pub addr: SocketAddr,
    /// How often the registry is polled for alias moves and deployment changes.
    pub poll: Duration,
    /// What one request may ask for: body, rows, elements, response size.
    pub limits: limits::Limits,
    /// Prediction-log queue length (records); a full queue drops records.
    pub log_queue: usize,
    /// Prediction-log queue size in bytes of tensor data; beyond it records are dropped.
    pub log_queue_bytes: usize,
    /// A segment is written when it holds this many rows, or after `log_max_age`.
    pub log_max_rows: usize,
    pub log_max_age: Duration,
    /// Serving threads, each with its own runtime and listening socket; 0 serves on the
    /// caller's runtime.
    pub threads: usize,
    /// Connection cap, header and idle timeouts, backlog.
    pub connections: kairo_http::ConnLimits,
    /// Require an API token for inference, feedback and metrics (`--auth`).
    pub auth: bool,
    /// With `auth`, serve `/metrics` without a token (`--open-metrics`).
    pub open_metrics: bool,
    /// Serve HTTPS (`--tls-cert/--tls-key`).
    pub tls: Option<kairo_http::Tls>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("name at least one model to serve (NAME, NAME@ALIAS or NAME:VERSION)")]
    NoModels,
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    /// A model named on the command line cannot be served; nothing is.
    #[error(transparent)]
    Endpoint(#[from] endpoint::EndpointError),
    #[error("a serving thread failed: {0}")]
    Thread(String),
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Data(#[from] kairo_data::DataError),
    #[error(transparent)]
    Store(#[from] kairo_store::StoreError),
    #[error("--auth: the project has no users and no OIDC provider (auth.oidc), so no token could pass; add one (`kairo users add NAME --service --role viewer`, `kairo tokens create NAME`)")]
    AuthWithoutUsers,
    #[error(transparent)]
    Oidc(#[from] kairo_auth::oidc::OidcError),
}

struct Inner {
    endpoints: Arc<Endpoints>,
    limits: limits::Limits,
    connections: Arc<kairo_http::ConnStats>,
    metrics: Arc<metrics::Metrics>,
    log: predlog::PredictionLog,
    /// `--auth`: who may infer; `None` serves everyone.
    auth: Option<kairo_auth::Authenticator>,
    open_metrics: bool,
}

#[derive(Clone)]
struct AppState(Arc<Inner>);

/// Rows being redacted after their response (a privacy policy's work, off the response's path):
/// shutdown waits for them before the log's last flush, so none is lost.
static REDACTING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Let pending redactions finish (on this runtime, and on the other serving threads, which drain
/// theirs at the same time); bounded, so a stuck task cannot hold shutdown.
async fn drain_redactions() {
    let deadline = Instant::now() + Duration::from_secs(5);
    while REDACTING.load(std::sync::atomic::Ordering::SeqCst) > 0 && Instant::now() < deadline {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Serve until `shutdown` resolves; in-flight requests finish and the prediction log is flushed.
pub async fn serve(
    project: &Project,
    config: ServeConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce(SocketAddr, &[(String, i64)]),
) -> Result<(), ServeError> {
    if config.models.is_empty() {
        return Err(ServeError::NoModels);
    }
    let md = project.metadata().await?;
    // With a provider in kairo.yaml, its access tokens (JWTs) pass too.
    let oidc = match (config.auth, project.config().auth.as_ref().and_then(|a| a.oidc.as_ref())) {
        (true, Some(spec)) => Some(Arc::new(kairo_auth::oidc::Oidc::discover(spec).await?)),
        _ => None,
    };
    if config.auth && oidc.is_none() && !md.has_users().await? {
        return Err(ServeError::AuthWithoutUsers);
    }
    let auth = config.auth.then(|| kairo_auth::Authenticator::with_oidc(md.clone(), oidc));
    let objects = project.objects()?;
    let endpoints = Arc::new(
        Endpoints::start(project.clone(), md.clone(), &config.models, kairo_core::actor::ROLLOUT_GUARD.to_string())
            .await?,
    );
    let metrics = Arc::new(metrics::Metrics::default());
    let settings = predlog::Settings {
        queue: config.log_queue,
        queue_bytes: config.log_queue_bytes,
        max_rows: config.log_max_rows,
        max_age: config.log_max_age,
        replica: endpoints.replica().to_string(),
    };
    let (log, writer) = predlog::PredictionLog::start(md.clone(), objects, metrics.clone(), settings);
    // Serving health per version and day, written as this replica's running totals.
    let instance = endpoints.replica().to_string();
    let (stop_days, days_stopped) = tokio::sync::watch::channel(false);
    let days = tokio::spawn(write_serving_days(
        md.clone(),
        metrics.clone(),
        instance.clone(),
        config.log_max_age,
        days_stopped,
    ));
    let days_metrics = metrics.clone();
    endpoints.spawn_poller(config.poll);
    // One listening socket per serving thread (SO_REUSEPORT: the kernel spreads connections),
    // each thread a single-threaded runtime: a request is read, run and answered on one
    // thread with no cross-thread wake-up, which on a 2-core VM cost more than inference.
    let conn = config.connections;
    let first = kairo_http::bind(config.addr, conn.backlog, true)
        .map_err(|source| ServeError::Bind { addr: config.addr, source })?;
    let bound = first.local_addr()?;
    let mut served: Vec<(String, i64)> =
        endpoints.map.values().map(|ep| (ep.name.clone(), ep.routing().stable.version)).collect();
    served.sort();
    let connections = Arc::new(kairo_http::ConnStats::default());
    let state = AppState(Arc::new(Inner {
        endpoints,
        limits: config.limits,
        connections: connections.clone(),
        metrics,
        log,
        auth,
        open_metrics: config.open_metrics,
    }));
    let app = router(state.clone(), config.limits.max_body);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    if config.threads == 0 {
        // On the caller's runtime.
        let listener = tokio::net::TcpListener::from_std(first)?;
        on_ready(bound, &served);
        let result = kairo_http::serve(listener, app, conn, connections, config.tls.clone(), shutdown).await;
        drain_redactions().await;
        drop(state);
        writer.finish().await;
        // Stopped, not aborted: a write in flight finishes (aborting it would lose the rows
        // it had taken), then the last flush.
        let _ = stop_days.send(true);
        let _ = days.await;
        flush_serving_days(&md, &days_metrics, &instance).await;
        md.close().await;
        return result.map_err(ServeError::Io);
    }
    let mut threads = Vec::new();
    let mut first = Some(first);
    for i in 0..config.threads {
        let listener = match first.take() {
            Some(l) => l,
            None => kairo_http::bind(bound, conn.backlog, true)
                .map_err(|source| ServeError::Bind { addr: bound, source })?,
        };
        let app = app.clone();
        let connections = connections.clone();
        let tls = config.tls.clone();
        let mut stop = stop_rx.clone();
        let thread = std::thread::Builder::new().name(format!("kairo-serve-{i}")).spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                let shutdown = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                let served = kairo_http::serve(listener, app, conn, connections, tls, shutdown).await;
                drain_redactions().await;
                served
            })
        })?;
        threads.push(thread);
    }
    on_ready(bound, &served);
    shutdown.await;
    let _ = stop_tx.send(true);
    let joined = tokio::task::spawn_blocking(move || {
        threads
            .into_iter()
            .map(|t| t.join().unwrap_or_else(|_| Err(std::io::Error::other("a serving thread panicked"))))
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| ServeError::Thread(e.to_string()))?;
    drop(app);
    drop(state);
    writer.finish().await;
    // Stopped, not aborted: a write in flight finishes (aborting it would lose the rows
    // it had taken), then the last flush.
    let _ = stop_days.send(true);
    let _ = days.await;
    flush_serving_days(&md, &days_metrics, &instance).await;
    md.close().await;
    joined.into_iter().collect::<Result<Vec<()>, _>>().map(|_| ()).map_err(ServeError::Io)
}

/// Every `every`, write the serving days that changed, until told to stop.
async fn write_serving_days(
    md: kairo_store::Metadata,
    metrics: Arc<metrics::Metrics>,
    instance: String,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => flush_serving_days(&md, &metrics, &instance).await,
            _ = stop.changed() => return,
        }
    }
}

/// Write the serving days that changed; on failure keep them for the next attempt.
async fn flush_serving_days(md: &kairo_store::Metadata, metrics: &metrics::Metrics, instance: &str) {
    let rows = metrics.take_days(instance);
    if let Err(e) = md.put_serving_days(&rows).await {
        tracing::warn!(error = %e, rows = rows.len(), "serving health not written; retried at the next flush");
        metrics.untake(&rows);
    }
}

fn router(state: AppState, max_body: usize) -> Router {
    Router::new()
        .route("/v2/health/live", get(|| async { Json(json!({"live": true})) }))
        .route("/v2/health/ready", get(ready))
        .route("/v2", get(server_metadata))
        .route("/v2/models/{name}", get(model_metadata))
        .route("/v2/models/{name}/ready", get(model_ready))
        .route("/v2/models/{name}/infer", post(infer))
        .route("/v2/models/{name}/versions/{version}", get(model_metadata_version))
        .route("/v2/models/{name}/versions/{version}/ready", get(model_ready_version))
        .route("/v2/models/{name}/versions/{version}/infer", post(infer_version))
        .route("/invocations", post(invocations))
        .route("/ping", get(|| async { "\n" }))
        .route("/health", get(|| async { "\n" }))
        .route("/metrics", get(prometheus))
        .route("/v1/feedback", post(feedback))
        .fallback(|uri: axum::http::Uri| async move {
            RequestError::NoEndpoint(format!("no endpoint {}", uri.path())).oip()
        })
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// Cross-site browser requests never reach a handler that changes state (inference writes the
/// prediction log; feedback writes labels). Checked in each POST handler rather than as a
/// middleware layer, which cost ~10% of throughput on the inference path.
fn cross_site(headers: &HeaderMap) -> Option<RequestError> {
    kairo_http::cross_site_refusal(&axum::http::Method::POST, headers).map(RequestError::CrossSite)
}

impl AppState {
    fn endpoint(&self, name: &str) -> Result<&Arc<Endpoint>, RequestError> {
        self.0.endpoints.map.get(name).ok_or_else(|| {
            RequestError::NotFound(format!("model '{name}' is not served here (served: {})", self.served()))
        })
    }

    /// The served model names, sorted, for messages.
    fn served(&self) -> String {
        let mut names: Vec<&str> = self.0.endpoints.map.keys().map(String::as_str).collect();
        names.sort();
        names.join(", ")
    }

    fn version(&self, name: &str, version: &str) -> Result<Arc<Loaded>, RequestError> {
        let ep = self.endpoint(name)?;
        let v: i64 =
            version.parse().map_err(|_| RequestError::Parameter(format!("version '{version}' is not a number")))?;
        ep.loaded_version(v)
            .ok_or_else(|| RequestError::NotFound(format!("model '{name}' version {v} is not loaded here")))
    }
}

async fn ready(State(s): State<AppState>) -> Response {
    Json(json!({"ready": !s.0.endpoints.map.is_empty()})).into_response()
}

async fn server_metadata() -> Response {
    Json(json!({"name": "kairo", "version": env!("CARGO_PKG_VERSION"), "extensions": ["binary_tensor_data"]}))
        .into_response()
}

async fn model_metadata(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    match s.endpoint(&name) {
        Ok(ep) => {
            let r = ep.routing();
            let mut meta = r.stable.metadata.clone();
            let mut versions = vec![r.stable.version.to_string()];
            if let Some(c) = &r.candidate {
                versions.push(c.loaded.version.to_string());
            }
            meta["versions"] = json!(versions);
            Json(meta).into_response()
        }
        Err(e) => e.oip(),
    }
}

async fn model_metadata_version(State(s): State<AppState>, Path((name, version)): Path<(String, String)>) -> Response {
    match s.version(&name, &version) {
        Ok(l) => Json(l.metadata.clone()).into_response(),
        Err(e) => e.oip(),
    }
}

async fn model_ready(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    match s.endpoint(&name) {
        Ok(_) => Json(json!({"name": name, "ready": true})).into_response(),
        Err(e) => e.oip(),
    }
}

async fn model_ready_version(State(s): State<AppState>, Path((name, version)): Path<(String, String)>) -> Response {
    match s.version(&name, &version) {
        Ok(_) => Json(json!({"name": name, "ready": true})).into_response(),
        Err(e) => e.oip(),
    }
}

async fn infer(
    State(s): State<AppState>,
    Path(name): Path<String>,
    peer: Option<axum::Extension<kairo_http::Peer>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    infer_common(s, name, None, ip(peer), headers, body).await
}

fn ip(peer: Option<axum::Extension<kairo_http::Peer>>) -> Option<std::net::IpAddr> {
    peer.map(|p| p.0 .0.ip())
}

async fn infer_version(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    peer: Option<axum::Extension<kairo_http::Peer>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    infer_common(s, name, Some(version), ip(peer), headers, body).await
}

/// With `--auth`, the request's token must allow `need` on `model` (any model: `None`).
/// Without it, nothing is checked. Tokens only: an inference endpoint is for services.
async fn authorize(
    s: &AppState,
    peer: Option<std::net::IpAddr>,
    headers: &HeaderMap,
    model: Option<&str>,
    need: kairo_core::auth::Permission,
) -> Result<(), RequestError> {
    let Some(auth) = &s.0.auth else { return Ok(()) };
    let header = headers.get("authorization").map(|h| h.as_bytes());
    let p = auth.authenticate(peer, header, true).await.map_err(|e| match e {
        kairo_auth::AuthError::Unauthenticated(m) => RequestError::Unauthenticated(m),
        e @ kairo_auth::AuthError::Limited { .. } => RequestError::Unauthenticated(e.to_string()),
        kairo_auth::AuthError::Store(e) => RequestError::Internal(e.to_string()),
    })?;
    let target = model.map_or(kairo_core::auth::Target::Any, kairo_core::auth::Target::Model);
    if kairo_core::auth::allows(&p.grants, need, &target) {
        return Ok(());
    }
    Err(RequestError::Forbidden(format!(
        "{} may not {}{}: ask an admin for a role that allows it",
        p.user,
        need.as_str(),
        model.map(|m| format!(" on model {m}")).unwrap_or_default()
    )))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The id `kairo_http`'s request log gave this request (the client's sane `x-request-id`, or a
/// new one), so a prediction-log row joins the request's log line.
fn request_id(headers: &HeaderMap) -> String {
    header(headers, "x-request-id").map_or_else(kairo_http::new_request_id, str::to_string)
}

/// Run a model; small requests inline, large batches on the blocking pool.
async fn run_model(loaded: &Arc<Loaded>, inputs: HashMap<String, Tensor>) -> Result<Vec<Tensor>, RuntimeError> {
    let elements: usize = inputs.values().map(|t| t.data.len()).sum();
    if elements <= 16_384 {
        // A fault inside the runtime answers 500 for this request; it never takes the
        // connection (or the serving thread) with it.
        return std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| loaded.model.infer(inputs)))
            .unwrap_or_else(|_| Err(RuntimeError::Run("the model runtime failed on this request".into())));
    }
    let l = loaded.clone();
    tokio::task::spawn_blocking(move || l.model.infer(inputs)).await.map_err(|e| RuntimeError::Run(e.to_string()))?
}

/// Tensors with their input or output names.
type Named = Vec<(String, Tensor)>;

/// What one answered request leaves behind: metrics, guard statistics, the log record.
struct Outcome<'a> {
    state: &'a AppState,
    ep: &'a Endpoint,
    loaded: &'a Loaded,
    arm: Arm,
    request_id: String,
    started: Instant,
}

impl Outcome<'_> {
    /// Record a refused OIP request (with the status OIP's table gives it) and pass the error on.
    fn refused(self, e: RequestError) -> RequestError {
        self.finish(OipCode::of(&e).status(), None);
        e
    }

    /// Record a refused `/invocations` request (with the status MLflow's table gives it).
    fn refused_mlflow(self, e: RequestError) -> RequestError {
        self.finish(error::MlflowCode::of(&e).status(), None);
        e
    }

    /// Record the request; `answered` (inputs and outputs) goes to the prediction log, which
    /// holds answered rows only: a refused request leaves metrics, never log rows.
    fn finish(self, status: StatusCode, answered: Option<(Named, Named)>) {
        let elapsed = self.started.elapsed();
        let code = status.as_u16();
        self.state.0.metrics.observe(&self.ep.name, self.loaded.version, self.arm.as_str(), code, elapsed);
        if matches!(self.arm, Arm::Canary | Arm::Shadow) {
            self.ep.observe_candidate(self.loaded.version, code < 500, elapsed);
        }
        if let Some((inputs, outputs)) = answered {
            let mut record = predlog::Record {
                request_id: self.request_id,
                time_ms: kairo_core::time::now_millis(),
                model: self.ep.name.clone(),
                version: self.loaded.version,
                arm: self.arm.as_str(),
                latency_us: elapsed.as_micros() as i64,
                status: code,
                inputs,
                outputs,
                redacted: None,
                row_ids: None,
            };
            // Under a privacy policy the row is redacted before it is queued: the raw inputs
            // are never queued. The work runs in a task of its own, after this response.
            let Some(redactor) = self.loaded.redactor.clone() else {
                self.state.0.log.log(record);
                return;
            };
            let state = self.state.clone();
            let redact = move || {
                record.redacted = Some(redactor.rows(&record.inputs, predlog::Record::rows_of(&record.inputs)));
                record.inputs = Vec::new();
                state.0.log.log(record);
            };
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    REDACTING.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    drop(runtime.spawn(async move {
                        redact();
                        REDACTING.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    }));
                }
                Err(_) => redact(),
            }
        }
    }
}

/// Mirror a request to the shadow candidate; its answer is recorded and discarded.
fn mirror(
    state: &AppState,
    ep: &Arc<Endpoint>,
    shadow: Arc<Loaded>,
    inputs: HashMap<String, Tensor>,
    request_id: String,
) {
    let state = state.clone();
    let ep = ep.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        let logged: Vec<(String, Tensor)> = inputs.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let result = run_model(&shadow, inputs).await;
        let outcome = Outcome { state: &state, ep: &ep, loaded: &shadow, arm: Arm::Shadow, request_id, started };
        match result {
            Ok(outs) => {
                let named = shadow.model.signature().outputs.iter().map(|o| o.name.clone()).zip(outs).collect();
                outcome.finish(StatusCode::OK, Some((logged, named)));
            }
            // Nobody reads a shadow's answer; its status (OIP's, which MLflow's table agrees
            // with) is for metrics and the rollout guard.
            Err(e) => outcome.finish(OipCode::of(&RequestError::from(&e)).status(), None),
        }
    });
}

async fn infer_common(
    s: AppState,
    name: String,
    version: Option<String>,
    peer: Option<std::net::IpAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match infer_oip(s, name, version, peer, headers, body).await {
        Ok(response) => response,
        Err(e) => e.oip(),
    }
}

/// OIP inference; every refusal is a [`RequestError`], answered in OIP's shape by the caller.
async fn infer_oip(
    s: AppState,
    name: String,
    version: Option<String>,
    peer: Option<std::net::IpAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, RequestError> {
    let started = Instant::now();
    if let Some(refused) = cross_site(&headers) {
        return Err(refused);
    }
    authorize(&s, peer, &headers, Some(&name), kairo_core::auth::Permission::Read).await?;
    let body = body?;
    let ep = s.endpoint(&name)?.clone();
    let json_len = match header(&headers, "inference-header-content-length").map(str::parse::<usize>) {
        None => None,
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => return Err(RequestError::Invalid("Inference-Header-Content-Length is not a number".into())),
    };
    let request = oip::decode(&body, json_len, &s.0.limits)?;
    let routing = ep.routing();
    let key = request.routing_key.as_deref().or_else(|| header(&headers, "kairo-routing-key"));
    let (loaded, arm, shadow) = match &version {
        Some(v) => (s.version(&name, v)?, Arm::Pinned, None),
        None => ep.route(&routing, key),
    };
    // OIP's own `id` names the request when it is fit for a log line and a header; the
    // response's `id` echoes it whatever it is.
    let request_id = match &request.id {
        Some(id) if kairo_http::sane_request_id(id.as_bytes()) => id.clone(),
        _ => request_id(&headers),
    };
    if let Some(outs) = &request.outputs {
        if let Some((bad, _)) =
            outs.iter().find(|(n, _)| !loaded.model.signature().outputs.iter().any(|o| o.name == *n))
        {
            return Err(RequestError::Parameter(format!("unknown output '{bad}'")));
        }
    }
    let logged: Vec<(String, Tensor)> = request.inputs.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    if let Some(shadow) = shadow {
        mirror(&s, &ep, shadow, request.inputs.clone(), request_id.clone());
    }
    let outcome = Outcome { state: &s, ep: &ep, loaded: &loaded, arm, request_id: request_id.clone(), started };
    let explain_inputs = match (request.contributions, &loaded.explainer) {
        (false, _) => None,
        (true, Some(_)) => Some(request.inputs.clone()),
        (true, None) => {
            return Err(RequestError::Parameter(format!(
                "model '{name}' version {} has no contribution data (models written by `kairo train` have it; a tree ensemble gets it when registered with --profile-data)",
                loaded.version
            )))
        }
    };
    let outputs = match run_model(&loaded, request.inputs).await {
        Ok(o) => o,
        Err(e) => return Err(outcome.refused(RequestError::from(&e))),
    };
    let sig = loaded.model.signature();
    let named: Vec<(String, Tensor)> = sig.outputs.iter().map(|o| o.name.clone()).zip(outputs).collect();
    let mut selected: Vec<(String, Tensor, bool)> = match &request.outputs {
        None => named.iter().map(|(n, t)| (n.clone(), t.clone(), request.binary_default)).collect(),
        Some(wanted) => wanted
            .iter()
            .filter_map(|(w, bin)| named.iter().find(|(n, _)| n == w).map(|(n, t)| (n.clone(), t.clone(), *bin)))
            .collect(),
    };
    let mut method = None;
    if let (Some(inputs), Some(explainer)) = (explain_inputs, &loaded.explainer) {
        method = Some(explainer.method());
        match explainer.contributions(&inputs) {
            Ok(t) => {
                let names = explainer.columns();
                let n = names.len();
                selected.push(("contributions".into(), t, request.binary_default));
                if let Ok(names) = Tensor::new(vec![n], kairo_runtime::Data::Bytes(names)) {
                    selected.push(("contribution_names".into(), names, false));
                }
            }
            Err(e) => return Err(outcome.refused(RequestError::Invalid(format!("contributions: {e}")))),
        }
    }
    let mut parameters = json!({"arm": arm.as_str()});
    if let Some(m) = method {
        parameters["contribution_method"] = json!(m);
    }
    let (bytes, json_len) = match oip::encode(
        &name,
        loaded.version,
        request.id.as_deref().unwrap_or(&request_id),
        &selected,
        parameters,
        &s.0.limits,
    ) {
        Ok(encoded) => encoded,
        Err(e) => return Err(outcome.refused(e.into())),
    };
    drop(selected);
    outcome.finish(StatusCode::OK, Some((logged, named)));
    let mut response = bytes.into_response();
    let h = response.headers_mut();
    match json_len {
        Some(n) => {
            h.insert("content-type", HeaderValue::from_static("application/octet-stream"));
            if let Ok(v) = HeaderValue::from_str(&n.to_string()) {
                h.insert("inference-header-content-length", v);
            }
        }
        None => {
            h.insert("content-type", HeaderValue::from_static("application/json"));
        }
    }
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert("x-request-id", v);
    }
    Ok(response)
}

#[derive(serde::Deserialize)]
struct InvocationQuery {
    model: Option<String>,
}

async fn invocations(
    State(s): State<AppState>,
    Query(q): Query<InvocationQuery>,
    peer: Option<axum::Extension<kairo_http::Peer>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match invoke_mlflow(s, q, ip(peer), headers, body).await {
        Ok(response) => response,
        Err(e) => e.mlflow(),
    }
}

/// MLflow-protocol scoring; every refusal is a [`RequestError`], answered in MLflow's shape by
/// the caller.
async fn invoke_mlflow(
    s: AppState,
    q: InvocationQuery,
    peer: Option<std::net::IpAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, RequestError> {
    let started = Instant::now();
    if let Some(refused) = cross_site(&headers) {
        return Err(refused);
    }
    let body = body?;
    let ep = match (&q.model, s.0.endpoints.map.len()) {
        (Some(m), _) => s.endpoint(m)?.clone(),
        (None, 1) => match s.0.endpoints.map.values().next() {
            Some(ep) => ep.clone(),
            None => return Err(RequestError::NotFound("no model is served".into())),
        },
        (None, _) => {
            return Err(RequestError::Parameter(format!(
                "several models are served ({}): choose one with ?model=NAME",
                s.served()
            )))
        }
    };
    authorize(&s, peer, &headers, Some(&ep.name), kairo_core::auth::Permission::Read).await?;
    let routing = ep.routing();
    let (loaded, arm, shadow) = ep.route(&routing, header(&headers, "kairo-routing-key"));
    let request_id = request_id(&headers);
    // From here a refusal is the chosen version's: counted in its metrics and serving health.
    let outcome = Outcome { state: &s, ep: &ep, loaded: &loaded, arm, request_id: request_id.clone(), started };
    let content_type = header(&headers, "content-type").unwrap_or("application/json").to_ascii_lowercase();
    let decoded = if content_type.starts_with("text/csv") {
        invocations::decode_csv(&body, loaded.model.signature(), &s.0.limits).map_err(RequestError::from)
    } else if content_type.starts_with("application/json") || content_type.is_empty() {
        invocations::decode_json(&body, loaded.model.signature(), &s.0.limits).map_err(RequestError::from)
    } else {
        Err(RequestError::UnsupportedMediaType(format!(
            "content type '{content_type}' is not supported: use application/json or text/csv"
        )))
    };
    let inputs = match decoded {
        Ok(inputs) => inputs,
        Err(e) => return Err(outcome.refused_mlflow(e)),
    };
    let logged: Vec<(String, Tensor)> = inputs.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    if let Some(shadow) = shadow {
        mirror(&s, &ep, shadow, inputs.clone(), request_id.clone());
    }
    let outputs = match run_model(&loaded, inputs).await {
        Ok(outputs) => outputs,
        Err(e) => return Err(outcome.refused_mlflow(RequestError::from(&e))),
    };
    let body = match invocations::encode(loaded.model.signature(), &outputs, &s.0.limits) {
        Ok(b) => b,
        Err(e) => return Err(outcome.refused_mlflow(e.into())),
    };
    let named = loaded.model.signature().outputs.iter().map(|o| o.name.clone()).zip(outputs).collect();
    outcome.finish(StatusCode::OK, Some((logged, named)));
    let mut response = ([("content-type", "application/json")], body).into_response();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", v);
    }
    Ok(response)
}

async fn prometheus(
    State(s): State<AppState>,
    peer: Option<axum::Extension<kairo_http::Peer>>,
    headers: HeaderMap,
) -> Response {
    if !s.0.open_metrics {
        if let Err(e) = authorize(&s, ip(peer), &headers, None, kairo_core::auth::Permission::Read).await {
            return e.oip();
        }
    }
    let mut text = s.0.metrics.render();
    text.push_str(&s.0.connections.render());
    text.push_str("# HELP kairo_model_serving Versions loaded per model and arm (1 = serving).\n# TYPE kairo_model_serving gauge\n");
    let mut eps: Vec<&Arc<Endpoint>> = s.0.endpoints.map.values().collect();
    eps.sort_by(|a, b| a.name.cmp(&b.name));
    for ep in eps {
        let r = ep.routing();
        text.push_str(&format!(
            "kairo_model_serving{{model=\"{}\",version=\"{}\",arm=\"stable\"}} 1\n",
            ep.name, r.stable.version
        ));
        if let Some(c) = &r.candidate {
            let arm = if c.strategy == kairo_core::serving::Strategy::Shadow { "shadow" } else { "canary" };
            text.push_str(&format!(
                "kairo_model_serving{{model=\"{}\",version=\"{}\",arm=\"{arm}\"}} 1\n",
                ep.name, c.loaded.version
            ));
        }
    }
    ([("content-type", "text/plain; version=0.0.4")], text).into_response()
}

/// `POST /v1/feedback`: `{"request_id", "label"}` for a one-row request, `{"request_id",
/// "labels": [...]}` for every row, or a list of either.
/// Takes only bodies declared as JSON (a cross-site form cannot post labels).
async fn feedback(
    State(s): State<AppState>,
    peer: Option<axum::Extension<kairo_http::Peer>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match record_feedback(s, ip(peer), headers, body).await {
        Ok(response) => response,
        Err(e) => e.oip(),
    }
}

async fn record_feedback(
    s: AppState,
    peer: Option<std::net::IpAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, RequestError> {
    if let Some(refused) = cross_site(&headers) {
        return Err(refused);
    }
    // Labels feed retraining: a token that may track runs, on any model.
    authorize(&s, peer, &headers, None, kairo_core::auth::Permission::Track).await?;
    if let Some(message) = kairo_http::json_content_type_refusal(&headers) {
        return Err(RequestError::UnsupportedMediaType(message));
    }
    let body = body?;
    let value: Value =
        serde_json::from_slice(&body).map_err(|e| RequestError::Invalid(format!("malformed JSON: {e}")))?;
    let items: Vec<&Value> = match &value {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    let mut rows = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Some(id) = item.get("request_id").and_then(Value::as_str).filter(|s| !s.is_empty()) else {
            return Err(RequestError::Invalid(format!("item {i}: `request_id` (a string) is required")));
        };
        match (item.get("label"), item.get("labels")) {
            (Some(label), None) => {
                let row = item.get("row").and_then(Value::as_i64).unwrap_or(0);
                rows.push((id.to_string(), row, label.clone()));
            }
            (None, Some(Value::Array(labels))) => {
                rows.extend(labels.iter().enumerate().map(|(r, l)| (id.to_string(), r as i64, l.clone())));
            }
            _ => {
                return Err(RequestError::Invalid(format!(
                    "item {i}: give exactly one of `label` or `labels` (an array, one per row)"
                )))
            }
        }
    }
    s.0.endpoints.md().add_feedback(&rows).await.map_err(|e| RequestError::Internal(e.to_string()))?;
    Ok(Json(json!({"accepted": rows.len()})).into_response())
}
