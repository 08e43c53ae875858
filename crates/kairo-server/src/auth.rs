//! Authentication and authorisation of `kairo server`. A project with users (`kairo users
//! add`) requires credentials on every request but `/health` and `/version` (and `/metrics`
//! with `--open-metrics`): an API token as `Authorization: Bearer` (`MLFLOW_TRACKING_TOKEN`),
//! or Basic with a user's password or a token as the password
//! (`MLFLOW_TRACKING_USERNAME/PASSWORD`). Each request is then checked against the caller's
//! grants (`kairo_core::auth`): what it needs comes from its method and path, and, for a caller
//! whose grants are scoped, from the model or experiment it names. The authenticated user is
//! the actor of every event the request writes.
//!
//! Credentials are verified by `kairo_auth` (cached off the hot path; revocation bites within
//! `kairo_auth::FRESH`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use kairo_auth::{AuthError, Authenticator, Principal};
use kairo_core::auth::{self as rules, Permission, Target};

use crate::error::{ApiError, Code};
use crate::AppState;

/// Who a request is from, once authenticated.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: Arc<str>,
    /// The grants this request carries (a token's, narrowed to its user's).
    pub grants: Arc<[rules::Grant]>,
    /// Authenticated with an API token (which may not make more tokens).
    pub via_token: bool,
}

impl Caller {
    fn of(p: &Principal) -> Caller {
        Caller { user: p.user.clone(), grants: p.grants.as_slice().into(), via_token: p.via_token }
    }
}

tokio::task_local! {
    /// The authenticated caller of the request being handled.
    static CALLER: Caller;
}

/// The authenticated user of the current request, if the server requires authentication.
pub fn current_user() -> Option<String> {
    CALLER.try_with(|c| c.user.to_string()).ok()
}

/// The authenticated caller of the current request, if the server requires authentication.
pub fn current() -> Option<Caller> {
    CALLER.try_with(Caller::clone).ok()
}

/// What each state-changing endpoint of `/api/v1` needs: method, path pattern (`{name}` is the
/// model, or the automation whose model is the target), permission. Reads need `read`; a
/// change not listed here needs `admin`. The OpenAPI document carries these as
/// `x-kairo-permission`, and the role × endpoint test is generated from it.
pub const V1_RULES: &[(&str, &str, Permission)] = &[
    ("POST", "/api/v1/tokens", Permission::Read),
    ("POST", "/api/v1/models/{name}/versions", Permission::Register),
    ("POST", "/api/v1/models/{name}/promotions", Permission::Register),
    ("POST", "/api/v1/models/{name}/promotions/approve", Permission::Approve),
    ("POST", "/api/v1/models/{name}/promotions/reject", Permission::Approve),
    ("PUT", "/api/v1/models/{name}/aliases/{alias}", Permission::Register),
    ("DELETE", "/api/v1/models/{name}/aliases/{alias}", Permission::Register),
    ("POST", "/api/v1/deployments/{name}", Permission::Deploy),
    ("POST", "/api/v1/deployments/{name}/rollback", Permission::Deploy),
    ("POST", "/api/v1/automations/{name}/run", Permission::Deploy),
    ("POST", "/api/v1/monitors/{name}/check", Permission::Track),
];

/// What the web UI's forms need (the same decisions as their `/api/v1` twins).
pub const UI_RULES: &[(&str, &str, Permission)] =
    &[("POST", "/ui/models/{name}/promotions/decide", Permission::Approve)];

/// The rule of a `/api/v1` or UI change and the (still percent-encoded) `{name}` segment of its path.
fn v1_rule<'p>(method: &Method, path: &'p str) -> Option<(&'static str, Permission, Option<&'p str>)> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    V1_RULES.iter().chain(UI_RULES).find_map(|(m, pattern, need)| {
        if *m != method.as_str() {
            return None;
        }
        let want: Vec<&str> = pattern.split('/').collect();
        if want.len() != segments.len() {
            return None;
        }
        let mut name = None;
        for (w, got) in want.iter().zip(&segments) {
            if w.starts_with('{') {
                if got.is_empty() {
                    return None;
                }
                if *w == "{name}" {
                    name = Some(*got);
                }
            } else if w != got {
                return None;
            }
        }
        Some((*pattern, *need, name))
    })
}

/// The OpenAPI document with each operation's permission as `x-kairo-permission`.
pub fn annotate(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    for (path, item) in doc.paths.paths.iter_mut() {
        let ops = [
            (Method::GET, &mut item.get),
            (Method::POST, &mut item.post),
            (Method::PUT, &mut item.put),
            (Method::DELETE, &mut item.delete),
        ];
        for (method, op) in ops {
            if let Some(op) = op {
                let need = permission(&method, path).as_str();
                let ext = op.extensions.get_or_insert_with(Default::default);
                ext.insert("x-kairo-permission".into(), serde_json::Value::from(need));
            }
        }
    }
    doc
}

pub struct Auth {
    /// `/metrics` without credentials (`--open-metrics`), for a scraper on the network.
    pub open_metrics: bool,
    pub(crate) who: Authenticator,
    /// Browser sessions after an OIDC login.
    pub(crate) sessions: kairo_auth::oidc::Sessions,
    /// Served over TLS (session cookies are then `Secure`).
    pub(crate) tls: bool,
}

impl Auth {
    pub fn new(
        md: kairo_store::Metadata,
        open_metrics: bool,
        oidc: Option<Arc<kairo_auth::oidc::Oidc>>,
        tls: bool,
    ) -> Auth {
        Auth { open_metrics, who: Authenticator::with_oidc(md, oidc), sessions: Default::default(), tls }
    }
}

fn api_error(e: AuthError) -> ApiError {
    match e {
        AuthError::Unauthenticated(message) => ApiError { code: Code::Unauthenticated, message },
        e @ AuthError::Limited { .. } => ApiError { code: Code::RequestLimitExceeded, message: e.to_string() },
        AuthError::Store(e) => e.into(),
    }
}

/// What a request needs, from its method and path.
pub fn permission(method: &Method, path: &str) -> Permission {
    let p = path.trim_end_matches('/');
    let mlflow = p.contains("/mlflow/") || p.contains("/mlflow-artifacts/");
    if method == Method::GET || method == Method::HEAD || p.starts_with("/auth/") {
        return Permission::Read;
    }
    if let Some((_, need, _)) = v1_rule(method, p) {
        return need;
    }
    if mlflow {
        // MLflow's searches and bulk reads are POSTs.
        let reads = ["/search", "/get-history-bulk-interval", "/get-by-name", "/download-uri"];
        if reads.iter().any(|r| p.ends_with(r)) {
            return Permission::Read;
        }
        if p.contains("/registered-models") || p.contains("/model-versions") {
            return Permission::Register;
        }
        return Permission::Track;
    }
    // Anything else that changes state is for admins until it has its own rule.
    Permission::Admin
}

fn shape(path: &str, e: ApiError) -> Response {
    let mut response = if crate::ui::is_page(path) || path.starts_with("/ui/") {
        // A person in a browser: a page that says what happened.
        crate::ui::refusal(e.clone())
    } else if path.starts_with("/api/v1") {
        crate::api_v1::V1Error::from(e.clone()).into_response()
    } else {
        e.clone().into_response()
    };
    if e.code == Code::Unauthenticated {
        response.headers_mut().insert("www-authenticate", HeaderValue::from_static("Basic realm=\"kairo\", Bearer"));
    }
    response
}

/// Authenticate, authorise, and run the request as its user (called by the server's one
/// middleware after its browser checks).
pub async fn guard(s: &AppState, mut request: Request, next: Next) -> Response {
    let required = match s.auth.who.required().await {
        Ok(r) => r,
        Err(e) => return shape(request.uri().path(), api_error(e)),
    };
    let p = request.uri().path();
    let open = p == "/health"
        || p == "/version"
        || (p == "/metrics" && s.auth.open_metrics)
        || p == "/auth/login"
        || p == "/auth/callback"
        || p == "/ui/kairo.css"
        || p == "/ui/favicon.svg";
    if !required || open {
        return next.run(request).await;
    }
    let path = p.to_string();
    let header = request.headers().get("authorization").map(|h| h.as_bytes());
    let peer = request.extensions().get::<kairo_http::Peer>().map(|p| p.0.ip());
    let session = match header {
        Some(_) => None,
        None => request
            .headers()
            .get("cookie")
            .and_then(|c| kairo_auth::oidc::session_cookie(c.as_bytes()))
            .and_then(|id| s.auth.sessions.get(id)),
    };
    let principal = match session {
        Some(session) => {
            // A browser's session: whatever changes state must carry the session's CSRF token.
            if kairo_http::changes_state(request.method()) {
                let header = request.headers().get("x-csrf-token").and_then(|v| v.to_str().ok()).map(str::to_string);
                // The UI's forms carry it as a field (a form cannot set a header).
                let (given, rebuilt) = match header {
                    Some(h) => (h, request),
                    None if path.starts_with("/ui/") => match form_field(request, "csrf").await {
                        Ok(x) => x,
                        Err(e) => return shape(&path, e),
                    },
                    None => (String::new(), request),
                };
                request = rebuilt;
                if !rules::same_hash(&given, &session.csrf) {
                    let e = ApiError {
                        code: Code::PermissionDenied,
                        message: "a browser session must send its CSRF token (X-CSRF-Token, from GET /auth/session) with every change".into(),
                    };
                    return shape(&path, e);
                }
            }
            // A user disabled since the login is out at once, not when the session ends.
            match s.auth.who.still_active(&session.principal.user).await {
                Ok(true) => session.principal,
                Ok(false) => {
                    let message = format!("user {} is disabled", session.principal.user);
                    return shape(&path, ApiError { code: Code::Unauthenticated, message });
                }
                Err(e) => return shape(&path, api_error(e)),
            }
        }
        None => match s.auth.who.authenticate(peer, header, false).await {
            Ok(p) => p,
            Err(AuthError::Unauthenticated(_))
                if header.is_none() && request.method() == Method::GET && crate::ui::is_page(&path) =>
            {
                // A browser on a page: to the provider's login and back, when there is one.
                if s.auth.who.oidc().is_some_and(|o| o.browser_login()) {
                    let next: String = url::form_urlencoded::byte_serialize(path.as_bytes()).collect();
                    return axum::response::Redirect::to(&format!("/auth/login?next={next}")).into_response();
                }
                let message = "log in: this server takes API tokens or passwords (no browser login is configured: auth.oidc in kairo.yaml)";
                return shape(&path, ApiError { code: Code::Unauthenticated, message: message.into() });
            }
            Err(e) => return shape(&path, api_error(e)),
        },
    };
    // Who am I, and a token of one's own (never wider than the caller, the handler checks):
    // any authenticated caller may ask, whatever its roles.
    if path == "/api/v1/whoami" || path == "/api/v1/tokens" || path.starts_with("/auth/") {
        return CALLER.scope(Caller::of(&principal), next.run(request)).await;
    }
    let need = permission(request.method(), &path);
    let (request, named) = match target(s, &principal, need, request).await {
        Ok(x) => x,
        Err(e) => return shape(&path, e),
    };
    let target = named.as_target();
    if !rules::allows(&principal.grants, need, &target) {
        let on = match &target {
            Target::Any => String::new(),
            Target::Model(m) => format!(" on model {m}"),
            Target::Experiment(e) => format!(" on experiment {e}"),
        };
        let e = ApiError {
            code: Code::PermissionDenied,
            message: format!(
                "{} may not {}{on}: ask an admin for a role that allows it (`kairo users grant {} ROLE[@SCOPE]`)",
                principal.user,
                need.as_str(),
                principal.user
            ),
        };
        return shape(&path, e);
    }
    CALLER.scope(Caller::of(&principal), next.run(request)).await
}

/// A field of a form body, and the request put back together.
async fn form_field(request: Request, name: &str) -> Result<(String, Request), ApiError> {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, crate::ui::FORM_LIMIT)
        .await
        .map_err(|_| ApiError::too_large("the form is larger than 64 KiB"))?;
    let value = url::form_urlencoded::parse(&bytes).find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    Ok((value.unwrap_or_default(), Request::from_parts(parts, axum::body::Body::from(bytes))))
}

/// The model or experiment a request names, read only when the caller's grants are scoped
/// (a global grant needs no target, so the hot path never reads a body).
async fn target(s: &AppState, p: &Principal, need: Permission, request: Request) -> Result<(Request, Named), ApiError> {
    if rules::allows(&p.grants, need, &Target::Any) || need == Permission::Admin {
        return Ok((request, Named::Any));
    }
    if request.uri().path().starts_with("/api/v1/") || request.uri().path().starts_with("/ui/") {
        // Kairo's own API names its model in the path; its bodies (model bytes) are never read here.
        let named = v1_model(s, request.method(), request.uri().path()).map(Named::Model);
        return Ok((request, named.unwrap_or(Named::Any)));
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, crate::params::MAX_BODY)
        .await
        .map_err(|_| ApiError::too_large("the body is larger than a JSON request may be"))?;
    let mut fields: HashMap<String, String> = HashMap::new();
    if let Ok(serde_json::Value::Object(m)) = serde_json::from_slice::<serde_json::Value>(&bytes) {
        for (k, v) in m {
            if let Some(t) = v.as_str().map(str::to_string).or_else(|| v.as_i64().map(|n| n.to_string())) {
                fields.insert(k, t);
            }
        }
    }
    for (k, v) in url::form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()) {
        fields.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    let path = parts.uri.path().to_string();
    let named = if path.contains("/registered-models") || path.contains("/model-versions") {
        fields.remove("name").map(Named::Model)
    } else if let Some(e) = fields.remove("experiment_id") {
        Some(Named::Experiment(e))
    } else if let Some(run) = fields.get("run_id").or_else(|| fields.get("run_uuid")) {
        let info = s.md.tracked_run_info(run).await.ok();
        info.map(|i| Named::Experiment(i.experiment_id.to_string()))
    } else {
        None
    };
    Ok((Request::from_parts(parts, axum::body::Body::from(bytes)), named.unwrap_or(Named::Any)))
}

/// The model a `/api/v1` request names in its path: `{name}` of a change (for an automation,
/// its model), or the model of `GET /api/v1/models/{ref}` and `/api/v1/deployments/{name}`.
fn v1_model(s: &AppState, method: &Method, path: &str) -> Option<String> {
    let decode = |raw: &str| percent_encoding::percent_decode_str(raw).decode_utf8().ok().map(|c| c.into_owned());
    if let Some((pattern, _, name)) = v1_rule(method, path) {
        let name = decode(name?)?;
        // The configuration the handler will read (kairo.yaml as it is now).
        if pattern.starts_with("/api/v1/automations/") {
            return s.project.current_config().ok()?.automations.get(&name).map(|a| a.model.value.clone());
        }
        if pattern.starts_with("/api/v1/monitors/") {
            return s.project.current_config().ok()?.monitors.get(&name).and_then(|m| m.deployment.clone());
        }
        return Some(name);
    }
    if let Some(rest) = path.strip_prefix("/api/v1/deployments/") {
        return decode(rest.split('/').next()?).filter(|n| !n.is_empty());
    }
    // `NAME`, `NAME:VERSION`, `NAME@ALIAS`, read as the handler reads it.
    let reference = decode(path.strip_prefix("/api/v1/models/")?.split('/').next()?)?;
    kairo_registry::ModelRef::parse(&reference).ok().map(|r| r.name().to_string())
}

/// The model or experiment a request named.
enum Named {
    Any,
    Model(String),
    Experiment(String),
}

impl Named {
    fn as_target(&self) -> Target<'_> {
        match self {
            Named::Any => Target::Any,
            Named::Model(m) => Target::Model(m),
            Named::Experiment(e) => Target::Experiment(e),
        }
    }
}
