//! The MLflow-compatible REST API, served under `/api/2.0` and `/ajax-api/2.0` (the UI's
//! prefix), plus the web UI's file downloads at the root (`ui_routes`). Unknown endpoints answer
//! 404 `ENDPOINT_NOT_FOUND`, as MLflow does, so the client's fallbacks work.

pub mod artifacts;
pub mod models;
pub mod registry_search;
pub mod runs;
pub mod search;

use crate::error::{ApiError, ApiResult};
use crate::params::{Params, MAX_BODY};
use crate::AppState;
use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, MethodRouter};
use axum::{Json, Router};
use serde_json::Value;
use std::future::Future;

/// Wrap an `async fn(AppState, Params) -> ApiResult<Value>` as a route accepting GET (query
/// string) and POST/PATCH/DELETE (JSON body).
fn rpc<F, Fut>(handler: F) -> MethodRouter<AppState>
where
    F: Fn(AppState, Params) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ApiResult<Value>> + Send + 'static,
{
    any(move |State(state): State<AppState>, method: Method, RawQuery(query): RawQuery, body: Body| {
        let handler = handler.clone();
        async move {
            match read_params(&method, query, body).await {
                Ok(params) => reply(handler(state, params).await),
                Err(e) => e.into_response(),
            }
        }
    })
}

/// Read the parameters of a request: the query string for GET, a JSON body otherwise.
async fn read_params(method: &Method, query: Option<String>, body: Body) -> ApiResult<Params> {
    if method == Method::GET || method == Method::HEAD {
        return Ok(Params::from_query(query.as_deref()));
    }
    let bytes = kairo_http::read_body(body, MAX_BODY).await.map_err(|e| match e {
        kairo_http::BodyError::TooLarge { limit } => {
            ApiError::too_large(format!("The request body is larger than the limit of {limit} bytes"))
        }
        kairo_http::BodyError::Interrupted(e) => ApiError::invalid(format!("The request body could not be read: {e}")),
    })?;
    Params::from_body(&bytes, query.as_deref())
}

fn reply(result: ApiResult<Value>) -> Response {
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// A route whose handler also needs the method and a path parameter (`{model_id}`).
fn rpc_id<F, Fut>(handler: F) -> MethodRouter<AppState>
where
    F: Fn(AppState, Method, String, Params) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ApiResult<Value>> + Send + 'static,
{
    any(
        move |State(state): State<AppState>,
              method: Method,
              Path(id): Path<String>,
              RawQuery(query): RawQuery,
              body: Body| {
            let handler = handler.clone();
            async move {
                match read_params(&method, query, body).await {
                    Ok(params) => reply(handler(state, method, id, params).await),
                    Err(e) => e.into_response(),
                }
            }
        },
    )
}

/// A route whose handler dispatches on the method (e.g. alias: POST sets, DELETE removes).
fn rpc_method<F, Fut>(handler: F) -> MethodRouter<AppState>
where
    F: Fn(AppState, Method, Params) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ApiResult<Value>> + Send + 'static,
{
    any(move |State(state): State<AppState>, method: Method, RawQuery(query): RawQuery, body: Body| {
        let handler = handler.clone();
        async move {
            match read_params(&method, query, body).await {
                Ok(params) => reply(handler(state, method, params).await),
                Err(e) => e.into_response(),
            }
        }
    })
}

/// The tracking service routes (relative to `/api/2.0` or `/ajax-api/2.0`).
pub fn tracking_routes() -> Router<AppState> {
    Router::new()
        .route("/mlflow/experiments/create", rpc(runs::create_experiment))
        .route("/mlflow/experiments/get", rpc(runs::get_experiment))
        .route("/mlflow/experiments/get-by-name", rpc(runs::get_experiment_by_name))
        .route("/mlflow/experiments/search", rpc(runs::search_experiments))
        .route("/mlflow/experiments/update", rpc(runs::update_experiment))
        .route("/mlflow/experiments/delete", rpc(runs::delete_experiment))
        .route("/mlflow/experiments/restore", rpc(runs::restore_experiment))
        .route("/mlflow/experiments/set-experiment-tag", rpc(runs::set_experiment_tag))
        .route("/mlflow/experiments/delete-experiment-tag", rpc(runs::delete_experiment_tag))
        .route("/mlflow/runs/create", rpc(runs::create_run))
        .route("/mlflow/runs/get", rpc(runs::get_run))
        .route("/mlflow/runs/update", rpc(runs::update_run))
        .route("/mlflow/runs/delete", rpc(runs::delete_run))
        .route("/mlflow/runs/restore", rpc(runs::restore_run))
        .route("/mlflow/runs/log-metric", rpc(runs::log_metric))
        .route("/mlflow/runs/log-parameter", rpc(runs::log_param))
        .route("/mlflow/runs/set-tag", rpc(runs::set_tag))
        .route("/mlflow/runs/delete-tag", rpc(runs::delete_tag))
        .route("/mlflow/runs/log-batch", rpc(runs::log_batch))
        .route("/mlflow/runs/search", rpc(runs::search_runs))
        .route("/mlflow/metrics/get-history", rpc(runs::metric_history))
        .route("/mlflow/metrics/get-history-bulk-interval", rpc(runs::metric_history_bulk_interval))
        .route("/mlflow/artifacts/list", rpc(artifacts::list_for_run))
        .route("/mlflow/runs/outputs", rpc(models::log_outputs))
        .route("/mlflow/runs/log-inputs", rpc(models::log_inputs))
        .route("/mlflow/logged-models", rpc(models::create_logged_model))
        .route("/mlflow/logged-models/search", rpc(models::search_logged_models))
        .route("/mlflow/logged-models/{model_id}", rpc_id(models::logged_model))
        .route("/mlflow/logged-models/{model_id}/tags", rpc_id(models::logged_model_tags))
        .route("/mlflow/logged-models/{model_id}/params", rpc_id(models::logged_model_params))
        .route(
            "/mlflow/logged-models/{model_id}/tags/{tag_key}",
            any(|State(state): State<AppState>, Path((id, key)): Path<(String, String)>| async move {
                reply(models::delete_logged_model_tag(state, id, key).await)
            }),
        )
        .route("/mlflow/registered-models/create", rpc(models::create_registered_model))
        .route("/mlflow/registered-models/get", rpc(models::get_registered_model))
        .route("/mlflow/registered-models/rename", rpc(models::rename_registered_model))
        .route("/mlflow/registered-models/update", rpc(models::update_registered_model))
        .route("/mlflow/registered-models/delete", rpc(models::delete_registered_model))
        .route("/mlflow/registered-models/search", rpc(models::search_registered_models))
        .route("/mlflow/registered-models/set-tag", rpc(models::set_registered_model_tag))
        .route("/mlflow/registered-models/delete-tag", rpc(models::delete_registered_model_tag))
        .route("/mlflow/registered-models/alias", rpc_method(models::alias))
        .route("/mlflow/registered-models/get-latest-versions", rpc(models::get_latest_versions))
        .route("/mlflow/model-versions/create", rpc(models::create_model_version))
        .route("/mlflow/model-versions/get", rpc(models::get_model_version))
        .route("/mlflow/model-versions/update", rpc(models::update_model_version))
        .route("/mlflow/model-versions/delete", rpc(models::delete_model_version))
        .route("/mlflow/model-versions/search", rpc(models::search_model_versions))
        .route("/mlflow/model-versions/set-tag", rpc(models::set_model_version_tag))
        .route("/mlflow/model-versions/delete-tag", rpc(models::delete_model_version_tag))
        .route("/mlflow/model-versions/get-download-uri", rpc(models::download_uri))
        .route("/mlflow/model-versions/transition-stage", rpc(models::transition_stage))
        .route("/mlflow-artifacts/artifacts", rpc(artifacts::list))
        .route("/mlflow-artifacts/artifacts/{*path}", any(artifact))
}

/// The MLflow web UI's own file downloads, outside the REST prefixes: `/get-artifact` (a run's
/// file) and `/model-versions/get-artifact` (a model version's). GET only.
pub fn ui_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/get-artifact",
            get(|State(state): State<AppState>, RawQuery(query): RawQuery| async move {
                artifacts::get_artifact(state, Params::from_query(query.as_deref())).await.into_response()
            }),
        )
        .route(
            "/model-versions/get-artifact",
            get(|State(state): State<AppState>, RawQuery(query): RawQuery| async move {
                models::model_version_artifact(state, Params::from_query(query.as_deref())).await.into_response()
            }),
        )
}

/// GET (download), PUT (upload) and DELETE of one artifact; the path is taken from the raw URI
/// so its encoding can be checked.
async fn artifact(State(state): State<AppState>, request: Request) -> Response {
    let raw = artifacts::raw_suffix(request.uri().path(), "/mlflow-artifacts/artifacts/").to_string();
    let method = request.method().clone();
    let declared = kairo_http::declared_length(request.headers());
    let body = request.into_body();
    let result = match method {
        Method::GET => return artifacts::download(state, &raw).await.unwrap_or_else(IntoResponse::into_response),
        Method::PUT => artifacts::upload(state, &raw, declared, body).await,
        Method::DELETE => artifacts::delete(state, &raw).await,
        _ => Err(ApiError::invalid(format!("{method} is not supported on artifacts"))),
    };
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}
