//! `kairo server`: one axum server over a project's metadata and object stores. It speaks the
//! MLflow tracking protocol (`/api/2.0/mlflow/...`) and proxies artifacts
//! (`/api/2.0/mlflow-artifacts/...`), so the unmodified `mlflow` client can log to Kairo, and
//! serves Kairo's own API with its OpenAPI document under `/api/v1`.
//!
//! Architecture invariant: HTTP and JSON live here and only here. Handlers map wire formats to
//! `kairo-core` records by hand and call `kairo-store`; no SQL, no filesystem paths from clients.

pub mod api_v1;
pub mod error;
pub mod metric_writer;
pub mod mlflow;
pub mod params;

use axum::http::StatusCode;
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
        actor: String,
        host: String,
    ) -> Self {
        let metrics = metric_writer::MetricWriter::spawn(md.clone());
        AppState(Arc::new(Inner { project, md, objects, tmp, actor, host, metrics }))
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
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(|| async { "OK" }))
        .route("/version", get(|| async { MLFLOW_COMPAT_VERSION }))
        .nest("/api/v1", api_v1::routes())
        .nest("/api/2.0", mlflow::tracking_routes())
        .nest("/ajax-api/2.0", mlflow::tracking_routes())
        .fallback(|uri: axum::http::Uri| async move {
            let body = serde_json::json!({"error_code": "ENDPOINT_NOT_FOUND", "message": format!("No endpoint {}", uri.path())});
            (StatusCode::NOT_FOUND, axum::Json(body)).into_response()
        })
        .with_state(state)
}

/// Serve `project` on `addr` until `shutdown` resolves; in-flight requests finish first.
/// `on_ready` receives the bound address (useful with port 0).
pub async fn serve(
    project: &Project,
    addr: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<(), ServerError> {
    let md = project.metadata().await?;
    let objects = project.objects()?;
    let tmp = project.store_dir().join("tmp");
    std::fs::create_dir_all(&tmp)?;
    let state = AppState::new(project.clone(), md.clone(), objects, tmp, Project::actor(), Project::hostname());
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| ServerError::Bind { addr, source })?;
    let bound = listener.local_addr()?;
    let announce = project.root().join(kairo_data::project::SERVER_FILE);
    let info = serde_json::json!({"url": format!("http://{bound}"), "pid": std::process::id()});
    std::fs::write(&announce, info.to_string())?;
    on_ready(bound);
    let result = axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await;
    let _ = std::fs::remove_file(&announce);
    md.close().await;
    result.map_err(ServerError::Io)
}
