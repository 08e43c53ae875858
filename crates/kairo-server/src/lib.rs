//! `kairo server`: one axum server over a project's metadata and object stores. It speaks the
//! MLflow tracking protocol (`/api/2.0/mlflow/...`) and proxies artifacts
//! (`/api/2.0/mlflow-artifacts/...`), so the unmodified `mlflow` client can log to Kairo, and
//! serves Kairo's own API with its OpenAPI document under `/api/v1`.
//!
//! Architecture invariant: HTTP and JSON live here and only here. Handlers map wire formats to
//! `kairo-core` records by hand and call `kairo-store`; no SQL, no filesystem paths from clients.

pub mod api_v1;
pub mod auth;
pub mod error;
pub mod login;
pub mod metric_writer;
pub mod mlflow;
pub mod models_api;
pub mod params;
pub mod ui;

use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use kairo_data::Project;
use kairo_store::{LocalObjects, Metadata};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// The MLflow API version this server implements (what `GET /version` reports; the client only
/// uses it to pick features).
pub const MLFLOW_COMPAT_VERSION: &str = "3.17.2";

/// What every handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub project: Project,
    pub md: Metadata,
    pub objects: LocalObjects,
    /// Where uploads are staged before they become objects.
    pub tmp: PathBuf,
    /// Who the server acts as in events (the client's user is recorded on runs).
    pub actor: String,
    pub host: String,
    /// Group-commits `log-metric` calls.
    pub metrics: metric_writer::MetricWriter,
    /// Largest artifact upload, in bytes.
    pub max_artifact: u64,
    /// Connection counters (for `/metrics`).
    pub connections: Arc<kairo_http::ConnStats>,
    /// Who may do what (a project with users requires credentials).
    pub auth: auth::Auth,
    /// The KPI gauges of `/metrics`, recomputed at most once a minute.
    pub kpi_gauges: tokio::sync::Mutex<Option<(std::time::Instant, String)>>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(
        project: Project,
        md: Metadata,
        objects: LocalObjects,
        tmp: PathBuf,
        options: &ServerOptions,
        oidc: Option<Arc<kairo_auth::oidc::Oidc>>,
    ) -> Self {
        let metrics = metric_writer::MetricWriter::spawn(md.clone());
        let auth = auth::Auth::new(md.clone(), options.open_metrics, oidc, options.tls.is_some());
        AppState(Arc::new(Inner {
            project,
            md,
            objects,
            tmp,
            actor: Project::actor(),
            host: Project::hostname(),
            metrics,
            max_artifact: options.max_artifact,
            connections: Arc::new(kairo_http::ConnStats::default()),
            kpi_gauges: tokio::sync::Mutex::new(None),
            auth,
        }))
    }

    /// Who the current request acts as: its authenticated user, else the server's actor.
    pub fn actor(&self) -> String {
        auth::current_user().unwrap_or_else(|| self.actor.clone())
    }
}

/// How `kairo server` listens and what it accepts.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub addr: SocketAddr,
    pub connections: kairo_http::ConnLimits,
    /// Largest artifact upload, in bytes.
    pub max_artifact: u64,
    /// Listen beyond loopback although the project has no users (nothing would be protected).
    pub insecure_no_auth: bool,
    /// `/metrics` without credentials.
    pub open_metrics: bool,
    /// Serve HTTPS (`--tls-cert/--tls-key`).
    pub tls: Option<kairo_http::Tls>,
}

impl ServerOptions {
    /// Defaults on `addr`: 1 GiB artifacts, [`kairo_http::ConnLimits::default`].
    pub fn new(addr: SocketAddr) -> Self {
        ServerOptions {
            addr,
            connections: kairo_http::ConnLimits::default(),
            max_artifact: 1 << 30,
            insecure_no_auth: false,
            open_metrics: false,
            tls: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("server: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] kairo_store::StoreError),
    #[error(transparent)]
    Data(#[from] kairo_data::DataError),
    #[error(transparent)]
    Oidc(#[from] kairo_auth::oidc::OidcError),
    #[error(
        "refusing to listen on {0}: the project has no users, so anyone who can reach it could change runs and models. Add an admin and a token (`kairo users add NAME --role admin`, `kairo tokens create NAME`), or pass --insecure-no-auth to serve the network unprotected"
    )]
    Insecure(SocketAddr),
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(|| async { "OK" }))
        .route("/version", get(|| async { MLFLOW_COMPAT_VERSION }))
        .route("/metrics", get(metrics))
        .nest("/api/v1", api_v1::routes())
        .merge(login::routes())
        .merge(ui::routes())
        .nest("/api/2.0", mlflow::tracking_routes())
        .nest("/ajax-api/2.0", mlflow::tracking_routes())
        .merge(mlflow::ui_routes())
        .fallback(|uri: axum::http::Uri| async move {
            error::ApiError { code: error::Code::EndpointNotFound, message: format!("No endpoint {}", uri.path()) }
                .into_response()
        })
        .layer(axum::middleware::from_fn_with_state(state.clone(), browser_guard))
        .with_state(state)
}

/// `GET /metrics`: the server's connections and the project's KPIs over the last 30 days
/// (without quality over time, which reads the prediction log), in Prometheus' text format.
async fn metrics(axum::extract::State(s): axum::extract::State<AppState>) -> axum::response::Response {
    let mut body = s.connections.render();
    body.push_str(&kpi_gauges(&s).await);
    ([("content-type", "text/plain; version=0.0.4")], body).into_response()
}

/// The KPI gauges, cached for a minute: a scrape every few seconds costs one query a minute.
async fn kpi_gauges(s: &AppState) -> String {
    const FRESH: std::time::Duration = std::time::Duration::from_secs(60);
    let mut cache = s.kpi_gauges.lock().await;
    if let Some((at, text)) = cache.as_ref() {
        if at.elapsed() < FRESH {
            return text.clone();
        }
    }
    let now = kairo_core::time::now_millis();
    let q = kairo_kpi::Query { since_ms: now - 30 * 86_400_000, until_ms: now, model: None };
    let src = kairo_kpi::Sources { md: &s.md, objects: None, git_root: Some(s.project.root()) };
    let text = match kairo_kpi::compute(&src, s.project.config(), &q).await {
        Ok(r) => kairo_kpi::prometheus::render(&r, "30d"),
        Err(e) => {
            tracing::warn!(error = %e, "the KPI gauges could not be computed");
            String::new()
        }
    };
    *cache = Some((std::time::Instant::now(), text.clone()));
    text
}

/// Cross-site browser requests never change state, and JSON endpoints take only bodies that
/// say they are JSON (a cross-site `text/plain` POST is refused before any handler runs), with
/// the 400 `INVALID_PARAMETER_VALUE` MLflow's own server gives a wrong content type.
async fn browser_guard(
    axum::extract::State(s): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use error::{ApiError, Code};
    if let Some(message) = kairo_http::cross_site_refusal(request.method(), request.headers()) {
        return ApiError { code: Code::PermissionDenied, message }.into_response();
    }
    let path = request.uri().path();
    // Bytes, not JSON: artifact uploads and model versions.
    let artifact_bytes = path.contains("/mlflow-artifacts/artifacts/")
        || (path.starts_with("/api/v1/models/") && path.trim_end_matches('/').ends_with("/versions"));
    let json_api = path.starts_with("/api/") || path.starts_with("/ajax-api/");
    if json_api && !artifact_bytes && kairo_http::changes_state(request.method()) {
        if let Some(message) = kairo_http::json_content_type_refusal(request.headers()) {
            return ApiError { code: Code::InvalidParameterValue, message }.into_response();
        }
    }
    // Then who is asking (one middleware layer for both: each layer costs every request).
    auth::guard(&s, request, next).await
}

/// Serve `project` until `shutdown` resolves; in-flight requests finish first.
/// `on_ready` receives the bound address (useful with port 0).
pub async fn serve(
    project: &Project,
    options: ServerOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<(), ServerError> {
    let oidc = match project.config().auth.as_ref().and_then(|a| a.oidc.as_ref()) {
        Some(spec) => Some(Arc::new(kairo_auth::oidc::Oidc::discover(spec).await?)),
        None => None,
    };
    let md = project.metadata().await?;
    if !options.addr.ip().is_loopback() && !options.insecure_no_auth && oidc.is_none() && !md.has_users().await? {
        md.close().await;
        return Err(ServerError::Insecure(options.addr));
    }
    let objects = project.objects()?;
    let tmp = project.store_dir().join("tmp");
    std::fs::create_dir_all(&tmp)?;
    let state = AppState::new(project.clone(), md.clone(), objects, tmp, &options, oidc);
    let addr = options.addr;
    let listener = kairo_http::bind(addr, options.connections.backlog, false)
        .map_err(|source| ServerError::Bind { addr, source })?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let bound = listener.local_addr()?;
    let announce = project.root().join(kairo_data::project::SERVER_FILE);
    let scheme = if options.tls.is_some() { "https" } else { "http" };
    let info = serde_json::json!({"url": format!("{scheme}://{bound}"), "pid": std::process::id()});
    std::fs::write(&announce, info.to_string())?;
    on_ready(bound);
    let stats = state.connections.clone();
    let result = kairo_http::serve(listener, router(state), options.connections, stats, options.tls, shutdown).await;
    let _ = std::fs::remove_file(&announce);
    md.close().await;
    result.map_err(ServerError::Io)
}
