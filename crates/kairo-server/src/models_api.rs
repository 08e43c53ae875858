//! The write half of `/api/v1`, which the CLI uses as a client of the server (`server:` in
//! kairo.yaml or `KAIRO_SERVER`): register a version with its bytes, request, approve and
//! reject promotions, move aliases, deploy and roll back, trigger automations, create one's
//! own API token; and the reads they need (who am I, models, a model, a deployment). Answers
//! are the documents of `kairo_registry::describe`, the same the CLI prints with `--json`.
//!
//! What each endpoint needs is in `auth::V1_RULES` (and in the OpenAPI document as
//! `x-kairo-permission`); the rules of the registry are in `kairo-registry`, applied with the
//! authenticated user as the actor.

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use kairo_core::auth::{self as rules, Grant, Permission, Target};
use kairo_core::serving::Strategy;
use kairo_registry::rollout::{self, DeployRequest, LimitOverrides};
use kairo_registry::{describe, PromoteRequest, RegisterRequest, Source};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use crate::api_v1::{ErrorBody, V1Error, V1Json, V1Path, V1Query};
use crate::error::{ApiError, Code};
use crate::AppState;

type Doc = Result<Json<Value>, V1Error>;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/whoami", get(whoami))
        .route("/tokens", post(create_token))
        .route("/models", get(models))
        .route("/models/{name}", get(model))
        .route("/models/{name}/versions", post(register))
        .route("/models/{name}/promotions", post(promote))
        .route("/models/{name}/promotions/approve", post(approve))
        .route("/models/{name}/promotions/reject", post(reject))
        .route("/models/{name}/aliases/{alias}", put(set_alias).delete(delete_alias))
        .route("/deployments/{name}", get(deployment).post(deploy))
        .route("/deployments/{name}/rollback", post(rollback))
        .route("/monitors", get(monitors))
        .route("/monitors/{name}/check", post(check_monitor))
        .route("/automations", get(automations))
        .route("/automations/{name}/run", post(run_automation))
}

/// The caller and what they may do.
#[utoipa::path(get, path = "/api/v1/whoami", responses((status = 200, body = Object, description = "`{user, grants, auth_required}`")))]
async fn whoami(State(s): State<AppState>) -> Doc {
    let caller = crate::auth::current();
    let grants: Vec<String> = match &caller {
        Some(c) => c.grants.iter().map(Grant::to_string).collect(),
        None => vec!["admin".into()],
    };
    Ok(Json(json!({
        "user": caller.as_ref().map(|c| c.user.to_string()).unwrap_or_else(|| s.actor.clone()),
        "grants": grants,
        "auth_required": caller.is_some(),
    })))
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"note": "laptop", "expires": "30d"}))]
pub struct TokenBody {
    /// What the token is for (shown by `kairo tokens ls`).
    pub note: Option<String>,
    /// `90d`, `12h`; never expires without it.
    pub expires: Option<String>,
    /// Narrower roles than the caller's, `ROLE[@SCOPE]` (default: the caller's).
    pub scopes: Option<Vec<String>>,
}

/// Create an API token for the caller (what `kairo login` stores). Shown once.
#[utoipa::path(post, path = "/api/v1/tokens", request_body = TokenBody,
    responses((status = 200, body = Object, description = "`{id, token, user, expires}`"), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn create_token(State(s): State<AppState>, V1Json(body): V1Json<TokenBody>) -> Doc {
    let Some(caller) = crate::auth::current() else {
        return Err(ApiError::invalid(
            "this server has no users, so it takes no tokens: add one with `kairo users add NAME --role ROLE` on the server",
        )
        .into());
    };
    if caller.via_token {
        // A stolen or short-lived token must not mint a lasting one.
        return Err(forbidden(format!(
            "a token cannot make tokens: {} logs in with a password (`kairo login`), or an admin runs `kairo tokens create`",
            caller.user
        )));
    }
    let valid_ms = match body.expires.as_deref() {
        Some(e) => {
            Some(kairo_core::config::parse_duration_ms(e).map_err(|e| ApiError::invalid(format!("expires: {e}")))?)
        }
        None => None,
    };
    let mut grants = Vec::new();
    for text in body.scopes.iter().flatten() {
        let g = Grant::parse(text).map_err(|e| ApiError::invalid(format!("scopes: {e}")))?;
        if !rules::holds(&caller.grants, &g) {
            return Err(forbidden(format!(
                "scopes: {} does not hold {g}, and a token never widens its user",
                caller.user
            )));
        }
        grants.push(g);
    }
    if grants.is_empty() {
        // A token made with a narrowed token keeps the narrowing; one made with the user's own
        // credentials follows the user's roles.
        let user = s.md.user(&caller.user).await?;
        if user.is_none_or(|u| u.grants[..] != caller.grants[..]) {
            grants = caller.grants.to_vec();
        }
    }
    let note = body.note.clone().unwrap_or_else(|| "created through /api/v1/tokens".into());
    let (token, text) = kairo_auth::admin::create_token(&s.md, &caller.user, valid_ms, grants, note, &caller.user)
        .await
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    Ok(Json(json!({
        "id": token.id, "token": text, "user": token.user,
        "expires": token.expires_ms.map(kairo_core::time::millis_to_string),
    })))
}

/// Registered models: versions, latest, aliases, the version serving 100%.
#[utoipa::path(get, path = "/api/v1/models", responses((status = 200, body = Object, description = "`{models: [...]}` as `kairo models ls --json`")))]
async fn models(State(s): State<AppState>) -> Doc {
    Ok(Json(json!({"models": describe::models(&s.md).await.map_err(ApiError::from)?})))
}

/// A model, or one version of it: signature, metrics, lineage, aliases and their history,
/// promotions, deployment (as `kairo models show --json`).
#[utoipa::path(get, path = "/api/v1/models/{name}",
    params(("name" = String, Path, description = "NAME, NAME:VERSION or NAME@ALIAS")),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn model(State(s): State<AppState>, V1Path(name): V1Path<String>) -> Doc {
    Ok(Json(describe::model(&s.md, &name).await.map_err(ApiError::from)?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RegisterQuery {
    pub description: Option<String>,
    /// Metrics to record with the version: `auc=0.91,f1=0.8`.
    pub metrics: Option<String>,
    /// With `artifact` and an empty body: the run that produced the model.
    pub run: Option<String>,
    /// The model's path among the run's outputs or logged artifacts.
    pub artifact: Option<String>,
    /// What the client calls the uploaded file (recorded as the version's source `upload:FILENAME`).
    pub filename: Option<String>,
}

/// Register a new version: the ONNX bytes as the body (`application/octet-stream`), or an
/// empty body with `run` and `artifact`. It must load in the serving runtime.
#[utoipa::path(post, path = "/api/v1/models/{name}/versions",
    params(("name" = String, Path, description = "model name"), RegisterQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "an ONNX model"),
    responses((status = 200, body = Object, description = "as `kairo models register --json`"), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn register(
    State(s): State<AppState>,
    V1Path(name): V1Path<String>,
    V1Query(q): V1Query<RegisterQuery>,
    headers: HeaderMap,
    body: Body,
) -> Doc {
    let mut metrics = Vec::new();
    for m in q.metrics.iter().flat_map(|m| m.split(',')).filter(|m| !m.trim().is_empty()) {
        metrics.push(kairo_registry::parse_metric(m).map_err(|e| ApiError::invalid(format!("metrics: {e}")))?);
    }
    if q.run.is_some() {
        // A run's records (metrics, training data, outputs) are everyone's to read only for a
        // caller who may read every run.
        if let Some(c) = crate::auth::current() {
            if !rules::allows(&c.grants, Permission::Read, &Target::Any) {
                return Err(forbidden(format!(
                    "{} may not register from a run: that reads the run's records, which needs a role granted globally; upload the file instead",
                    c.user
                )));
            }
        }
    }
    let declared = kairo_http::declared_length(&headers);
    let source = match (q.run, q.artifact) {
        (Some(run), Some(path)) if declared.unwrap_or(0) == 0 => Source::RunArtifact { run, path },
        (None, None) => {
            Source::Upload { bytes: read_model(&s, declared, body).await?, label: q.filename.unwrap_or(name.clone()) }
        }
        _ => {
            return Err(ApiError::invalid(
                "give the model's bytes as the body, or run and artifact together with an empty body",
            )
            .into())
        }
    };
    let target = s.project.config().models.get(&name).and_then(|p| p.holdout.as_ref()).map(|h| h.target.clone());
    let req = RegisterRequest {
        name,
        source,
        description: q.description.unwrap_or_default(),
        metrics,
        profile_data: None,
        target,
        kinds: Default::default(),
        actor: s.actor(),
        strict: false,
    };
    let registered = kairo_registry::register(&s.project, &s.md, &req).await.map_err(ApiError::from)?;
    Ok(Json(describe::registered(&registered)))
}

/// The body, refused beyond `--max-artifact-mb` (registration holds the model in memory to
/// load it, so it is read whole).
async fn read_model(s: &AppState, declared: Option<u64>, body: Body) -> Result<Vec<u8>, V1Error> {
    let max = s.max_artifact;
    let too_large = || {
        V1Error::from(ApiError::too_large(format!(
            "the model is larger than this server's limit of {max} bytes (`kairo server --max-artifact-mb`)"
        )))
    };
    if declared.is_some_and(|n| n > max) {
        return Err(too_large());
    }
    let bytes = kairo_http::read_body(body, usize::try_from(max).unwrap_or(usize::MAX)).await.map_err(|e| match e {
        kairo_http::BodyError::TooLarge { .. } => too_large(),
        kairo_http::BodyError::Interrupted(m) => ApiError::invalid(format!("the upload was interrupted: {m}")).into(),
    })?;
    if bytes.is_empty() {
        return Err(ApiError::invalid("the body is empty: send the ONNX bytes, or run and artifact").into());
    }
    Ok(bytes.to_vec())
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"version": 2, "alias": "champion", "reason": "better auc"}))]
pub struct PromoteBody {
    pub version: i64,
    /// The alias to move (default `champion`).
    pub alias: Option<String>,
    pub reason: Option<String>,
}

async fn decide(s: &AppState, name: String, b: PromoteBody, approve: bool, reject: bool) -> Doc {
    let req = PromoteRequest {
        name,
        version: b.version,
        alias: b.alias.unwrap_or_else(|| "champion".into()),
        approve,
        reject,
        reason: b.reason,
        actor: s.actor(),
    };
    let outcome = kairo_registry::promote(&s.project, &s.md, &req).await.map_err(ApiError::from)?;
    Ok(Json(describe::promotion(&outcome)))
}

/// Evaluate the model's gates and move the alias if they pass, or leave the promotion pending
/// approval (`status`: promoted, failed, pending).
#[utoipa::path(post, path = "/api/v1/models/{name}/promotions", params(("name" = String, Path, description = "model name")),
    request_body = PromoteBody,
    responses((status = 200, body = Object, description = "as `kairo models promote --json`"), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn promote(State(s): State<AppState>, V1Path(name): V1Path<String>, V1Json(b): V1Json<PromoteBody>) -> Doc {
    decide(&s, name, b, false, false).await
}

/// Approve a pending promotion (or a new one that requires approval). Four eyes: the requester
/// cannot approve their own unless the model says `four_eyes: false`.
#[utoipa::path(post, path = "/api/v1/models/{name}/promotions/approve", params(("name" = String, Path, description = "model name")),
    request_body = PromoteBody,
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn approve(State(s): State<AppState>, V1Path(name): V1Path<String>, V1Json(b): V1Json<PromoteBody>) -> Doc {
    decide(&s, name, b, true, false).await
}

/// Reject a pending promotion.
#[utoipa::path(post, path = "/api/v1/models/{name}/promotions/reject", params(("name" = String, Path, description = "model name")),
    request_body = PromoteBody,
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn reject(State(s): State<AppState>, V1Path(name): V1Path<String>, V1Json(b): V1Json<PromoteBody>) -> Doc {
    decide(&s, name, b, false, true).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"version": 1, "reason": "pin for the audit"}))]
pub struct AliasBody {
    pub version: i64,
    /// Move an alias the model's gates guard without evaluating them (admins only).
    pub force: Option<bool>,
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReasonQuery {
    pub reason: Option<String>,
}

fn forbidden(message: String) -> V1Error {
    ApiError { code: Code::PermissionDenied, message }.into()
}

async fn move_alias(s: &AppState, name: &str, alias: &str, version: Option<i64>, force: bool, reason: String) -> Doc {
    if force {
        if let Some(c) = crate::auth::current() {
            if !rules::allows(&c.grants, Permission::Admin, &Target::Any) {
                return Err(forbidden(format!(
                    "{} may not force an alias past the gates: only an admin may (or promote it: POST /api/v1/models/{name}/promotions)",
                    c.user
                )));
            }
        }
    }
    let policy = kairo_registry::aliases::policy(&s.project, name).map_err(ApiError::from)?;
    let authority =
        if force { kairo_registry::aliases::Authority::Forced } else { kairo_registry::aliases::Authority::Plain };
    let actor = s.actor();
    let m = kairo_registry::aliases::AliasMove { name, alias, version, authority, actor: &actor, reason: &reason };
    let before = kairo_registry::aliases::move_alias(&s.md, &policy, &m).await.map_err(ApiError::from)?;
    if version.is_none() && before.is_none() {
        return Err(ApiError::not_found(format!("model '{name}' has no alias '{alias}'")).into());
    }
    Ok(Json(json!({"name": name, "alias": alias, "version": version, "before": before})))
}

/// Point an alias at a version. Aliases the model's gates guard move only through promotion.
#[utoipa::path(put, path = "/api/v1/models/{name}/aliases/{alias}",
    params(("name" = String, Path, description = "model name"), ("alias" = String, Path, description = "alias")),
    request_body = AliasBody,
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn set_alias(
    State(s): State<AppState>,
    V1Path((name, alias)): V1Path<(String, String)>,
    V1Json(b): V1Json<AliasBody>,
) -> Doc {
    let force = b.force.unwrap_or(false);
    let reason = b.reason.unwrap_or_else(|| if force { "forced alias move".into() } else { "alias set".into() });
    move_alias(&s, &name, &alias, Some(b.version), force, reason).await
}

/// Remove an alias.
#[utoipa::path(delete, path = "/api/v1/models/{name}/aliases/{alias}",
    params(("name" = String, Path, description = "model name"), ("alias" = String, Path, description = "alias"), ReasonQuery),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn delete_alias(
    State(s): State<AppState>,
    V1Path((name, alias)): V1Path<(String, String)>,
    V1Query(q): V1Query<ReasonQuery>,
) -> Doc {
    move_alias(&s, &name, &alias, None, false, q.reason.unwrap_or_else(|| "alias set".into())).await
}

/// A model's deployment, the versions that served 100%, its recent events.
#[utoipa::path(get, path = "/api/v1/deployments/{name}", params(("name" = String, Path, description = "model name")),
    responses((status = 200, body = Object, description = "as `kairo deploy NAME --json`"), (status = 404, body = ErrorBody)))]
async fn deployment(State(s): State<AppState>, V1Path(name): V1Path<String>) -> Doc {
    Ok(Json(describe::deployment(&s.md, &name).await.map_err(ApiError::from)?))
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StrategyName {
    Direct,
    Canary,
    Shadow,
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"version": 2, "strategy": "direct", "reason": "better auc"}))]
pub struct DeployBody {
    pub version: i64,
    /// `direct` (default), `canary` or `shadow`.
    pub strategy: Option<StrategyName>,
    /// Percent of traffic for a canary (1-99, default 10).
    pub weight: Option<u32>,
    pub max_error_rate: Option<f64>,
    pub max_p99_ms: Option<f64>,
    pub min_requests: Option<u64>,
    pub window_s: Option<u64>,
    /// Deploy although the candidate's inputs differ from the stable version's.
    pub force: Option<bool>,
    pub reason: Option<String>,
}

/// Roll out a version: at once, as a canary beside the stable version, or as a shadow.
#[utoipa::path(post, path = "/api/v1/deployments/{name}", params(("name" = String, Path, description = "model name")),
    request_body = DeployBody,
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn deploy(State(s): State<AppState>, V1Path(name): V1Path<String>, V1Json(b): V1Json<DeployBody>) -> Doc {
    let overrides = LimitOverrides {
        max_error_rate: b.max_error_rate,
        max_p99_ms: b.max_p99_ms,
        min_requests: b.min_requests,
        window_s: b.window_s,
    };
    let policy = s.project.config().models.get(&name).and_then(|p| p.rollout.as_ref());
    let limits = rollout::limits(policy, &overrides).map_err(|e| ApiError::invalid(e.to_string()))?;
    let strategy = match b.strategy.unwrap_or(StrategyName::Direct) {
        StrategyName::Direct => Strategy::Direct,
        StrategyName::Canary => Strategy::Canary,
        StrategyName::Shadow => Strategy::Shadow,
    };
    let req = DeployRequest {
        name,
        version: b.version,
        strategy,
        weight: b.weight.unwrap_or(10),
        limits,
        force: b.force.unwrap_or(false),
        reason: b.reason,
    };
    let d = rollout::deploy(&s.project, &s.md, &req, &s.actor()).await.map_err(ApiError::from)?;
    Ok(Json(describe::deployed(&d)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"reason": "p99 regression"}))]
pub struct RollbackBody {
    pub reason: Option<String>,
}

/// Roll back: drop the candidate, or return to the version that served 100% before.
#[utoipa::path(post, path = "/api/v1/deployments/{name}/rollback", params(("name" = String, Path, description = "model name")),
    request_body = RollbackBody,
    responses((status = 200, body = Object, description = "the deployment and `what` happened"), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn rollback(State(s): State<AppState>, V1Path(name): V1Path<String>, V1Json(b): V1Json<RollbackBody>) -> Doc {
    let (d, what) = rollout::rollback(&s.md, &name, b.reason, &s.actor()).await.map_err(ApiError::from)?;
    let mut doc = describe::deployed(&d);
    doc["what"] = json!(what);
    Ok(Json(doc))
}

/// The monitors of the server's kairo.yaml: what each watches, its windows and alert rules.
#[utoipa::path(get, path = "/api/v1/monitors", responses((status = 200, body = Object, description = "`{monitors: [{name, deployment, window, alerts, webhook: bool, ...}]}`")))]
async fn monitors(State(s): State<AppState>) -> Doc {
    let config = s.project.current_config().map_err(|e| ApiError::invalid(e.to_string()))?;
    let list: Vec<Value> = config
        .monitors
        .iter()
        .map(|(name, spec)| {
            let mut v = json!(spec);
            v["name"] = json!(name);
            // A webhook's URL is often its secret (Slack, Teams): say only that there is one.
            v["webhook"] = json!(spec.webhook.is_some());
            v
        })
        .collect();
    Ok(Json(json!({"monitors": list})))
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"windows": 3}))]
pub struct CheckBody {
    /// How many of the newest windows to show (default 1; at least each rule's `for`).
    #[schema(minimum = 1, maximum = 1000)]
    pub windows: Option<usize>,
}

/// Check a deployment monitor now: its newest windows against the serving version's reference
/// profile, its rules; what fires is raised (events, webhook) as the caller. The same document
/// as `kairo monitor check --monitor NAME --json`, plus `fired_alerts` and `rules`.
#[utoipa::path(post, path = "/api/v1/monitors/{name}/check", params(("name" = String, Path, description = "monitor name")),
    request_body = CheckBody,
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn check_monitor(State(s): State<AppState>, V1Path(name): V1Path<String>, V1Json(b): V1Json<CheckBody>) -> Doc {
    let config = s.project.current_config().map_err(|e| ApiError::invalid(e.to_string()))?;
    let spec =
        config.monitors.get(&name).ok_or_else(|| ApiError::not_found(format!("no monitor '{name}' in kairo.yaml")))?;
    let Some(deployment) = spec.deployment.as_deref() else {
        return Err(ApiError::invalid(format!(
            "monitor '{name}' compares files: run `kairo monitor check --monitor {name}` where they are"
        ))
        .into());
    };
    let windows = b.windows.unwrap_or(1);
    if !(1..=1000).contains(&windows) {
        return Err(ApiError::invalid(format!("windows {windows} is out of range (1..=1000)")).into());
    }
    let windowing = kairo_watch::Windowing::of(spec).map_err(watch_error)?;
    let actor = s.actor();
    let check =
        kairo_watch::document::CheckOf { name: &name, deployment, spec, windowing, windows, raise_as: Some(&actor) };
    Ok(Json(kairo_watch::document::check(&s.md, &s.objects, check).await.map_err(watch_error)?))
}

fn watch_error(e: kairo_watch::WatchError) -> V1Error {
    match e {
        kairo_watch::WatchError::Store(e) => e.into(),
        kairo_watch::WatchError::NoModel(_) => ApiError::not_found(e.to_string()).into(),
        other => ApiError::invalid(other.to_string()).into(),
    }
}

/// The automations of the server's kairo.yaml with their open and last incidents.
#[utoipa::path(get, path = "/api/v1/automations", responses((status = 200, body = Object, description = "`{automations: [...]}` as `kairo automations ls --json`")))]
async fn automations(State(s): State<AppState>) -> Doc {
    let rows = kairo_loop::describe::automations(&s.project, &s.md).await.map_err(loop_error)?;
    Ok(Json(json!({"automations": rows})))
}

#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"dry_run": true}))]
pub struct RunAutomationBody {
    /// Say what would happen and why; change nothing.
    pub dry_run: Option<bool>,
}

/// Trigger an automation now, as a person would: it opens an incident (or joins the open one,
/// or the guard holds it back); the server's loop advances it (`kairo server --loop-every-s`).
/// With `dry_run`, the plan instead.
#[utoipa::path(post, path = "/api/v1/automations/{name}/run", params(("name" = String, Path, description = "automation name")),
    request_body = RunAutomationBody,
    responses((status = 200, body = Object), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn run_automation(
    State(s): State<AppState>,
    V1Path(name): V1Path<String>,
    V1Json(b): V1Json<RunAutomationBody>,
) -> Doc {
    let config = s.project.current_config().map_err(|e| ApiError::invalid(e.to_string()))?;
    let spec = kairo_loop::automation(&config, &name).map_err(loop_error)?;
    if b.dry_run.unwrap_or(false) {
        let steps = kairo_loop::plan::plan(&s.project, &s.md, &name, spec).await.map_err(loop_error)?;
        return Ok(Json(kairo_loop::plan::to_json(&name, &steps)));
    }
    let taken = kairo_loop::trigger_now(&s.md, &name, spec, &s.actor()).await.map_err(loop_error)?;
    Ok(Json(json!({"triggers": taken})))
}

fn loop_error(e: kairo_loop::LoopError) -> V1Error {
    match e {
        kairo_loop::LoopError::UnknownAutomation(..) => ApiError::not_found(e.to_string()).into(),
        kairo_loop::LoopError::Store(e) => e.into(),
        other => ApiError { code: Code::Internal, message: other.to_string() }.into(),
    }
}
