//! Authentication and authorisation of `kairo server`. A project with users (`kairo users
//! add`) requires credentials on every request but `/health` and `/version` (and `/metrics`
//! with `--open-metrics`): an API token as `Authorization: Bearer` (`MLFLOW_TRACKING_TOKEN`),
//! or Basic with a user's password or a token as the password
//! (`MLFLOW_TRACKING_USERNAME/PASSWORD`). Each request is then checked against the caller's
//! grants (`kairo_core::auth`): what it needs comes from its method and path, and, for a caller
//! whose grants are scoped, from the model or experiment it names. The authenticated user is
//! the actor of every event the request writes.
//!
//! Verified credentials are remembered for [`FRESH`] (keyed by a hash of what was presented),
//! so neither argon2 nor the database is on the hot path; a revoked token or disabled user
//! stops working within that time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use kairo_core::auth::{self as rules, Grant, Permission, Target};

use crate::error::{ApiError, Code};
use crate::AppState;

/// How long a verified credential, or the answer to "does this project have users", is trusted.
pub const FRESH: Duration = Duration::from_secs(5);

tokio::task_local! {
    /// The authenticated user of the request being handled.
    static USER: Arc<str>;
}

/// The authenticated user of the current request, if the server requires authentication.
pub fn current_user() -> Option<String> {
    USER.try_with(|u| u.to_string()).ok()
}

/// Who a request acts as, after authentication.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: Arc<str>,
    pub grants: Vec<Grant>,
}

pub struct Auth {
    /// `/metrics` without credentials (`--open-metrics`), for a scraper on the network.
    pub open_metrics: bool,
    started: Instant,
    /// Whether the project has users: bit 0 the answer, the rest milliseconds since `started`
    /// when it was read plus one (0: never). Lock-free: every request reads it.
    required: AtomicU64,
    verified: RwLock<HashMap<[u8; 32], Verified>>,
}

/// A credential's hash → when it was verified, whom it stands for, and (for a password) the
/// stored hash it was verified against: while that is unchanged, a stale entry is renewed
/// without running argon2 again, so concurrent requests never queue behind it.
type Verified = (Instant, Arc<Principal>, Option<String>);

impl Auth {
    pub fn new(open_metrics: bool) -> Auth {
        Auth { open_metrics, started: Instant::now(), required: AtomicU64::new(0), verified: RwLock::default() }
    }

    async fn required(&self, s: &AppState) -> Result<bool, ApiError> {
        let now = self.started.elapsed().as_millis() as u64 + 1;
        let seen = self.required.load(Ordering::Relaxed);
        if seen != 0 && now.saturating_sub(seen >> 1) < FRESH.as_millis() as u64 {
            return Ok(seen & 1 == 1);
        }
        let yes = s.md.has_users().await?;
        self.required.store((now << 1) | u64::from(yes), Ordering::Relaxed);
        Ok(yes)
    }

    /// The principal behind an `Authorization` header.
    async fn authenticate(&self, s: &AppState, header: Option<&HeaderValue>) -> Result<Arc<Principal>, ApiError> {
        let unauthenticated = |m: &str| ApiError { code: Code::Unauthenticated, message: m.to_string() };
        let Some(text) = header.and_then(|h| h.to_str().ok()) else {
            return Err(unauthenticated(
                "credentials required: send an API token (Authorization: Bearer, or MLFLOW_TRACKING_TOKEN) or a user and password (Basic)",
            ));
        };
        let key: [u8; 32] = *blake3::hash(text.as_bytes()).as_bytes();
        let mut known: Option<String> = None;
        if let Some((at, p, stored)) = self.verified.read().unwrap_or_else(|p| p.into_inner()).get(&key) {
            if at.elapsed() < FRESH {
                return Ok(p.clone());
            }
            known = stored.clone();
        }
        let (scheme, value) = text.split_once(' ').unwrap_or((text, ""));
        let (principal, stored) = match scheme.to_ascii_lowercase().as_str() {
            "bearer" => (self.by_token(s, value.trim()).await?, None),
            "basic" => {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(value.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| unauthenticated("Basic credentials are not base64 of USER:PASSWORD"))?;
                let (user, secret) = decoded.split_once(':').unwrap_or((decoded.as_str(), ""));
                if rules::parse_token(secret).is_some() {
                    let p = self.by_token(s, secret).await?;
                    if &*p.user != user {
                        return Err(unauthenticated("the token belongs to another user"));
                    }
                    (p, None)
                } else {
                    self.by_password(s, user, secret, known.as_deref()).await?
                }
            }
            _ => return Err(unauthenticated("unknown authorization scheme: use Bearer or Basic")),
        };
        let principal = Arc::new(principal);
        let mut verified = self.verified.write().unwrap_or_else(|p| p.into_inner());
        if verified.len() > 10_000 {
            verified.retain(|_, (at, _, _)| at.elapsed() < FRESH);
        }
        verified.insert(key, (Instant::now(), principal.clone(), stored));
        Ok(principal)
    }

    async fn by_token(&self, s: &AppState, text: &str) -> Result<Principal, ApiError> {
        let invalid = || ApiError {
            code: Code::Unauthenticated,
            message: "the token is not valid (unknown, revoked or expired): create one with `kairo tokens create`"
                .into(),
        };
        let t = rules::parse_token(text).ok_or_else(invalid)?;
        let stored = s.md.token(t.id).await?.ok_or_else(invalid)?;
        let now = kairo_core::time::now_millis();
        if !rules::same_hash(&rules::token_hash(t.secret), &stored.hash)
            || stored.revoked_ms.is_some()
            || stored.expires_ms.is_some_and(|e| e <= now)
        {
            return Err(invalid());
        }
        let user = self.active_user(s, &stored.user).await?;
        let grants = if stored.grants.is_empty() { user.grants } else { rules::narrow(&user.grants, &stored.grants) };
        Ok(Principal { user: user.name.into(), grants })
    }

    /// A user's password: verified with argon2 unless this very credential was verified against
    /// the same stored hash before (`known`).
    async fn by_password(
        &self,
        s: &AppState,
        name: &str,
        password: &str,
        known: Option<&str>,
    ) -> Result<(Principal, Option<String>), ApiError> {
        let invalid = || ApiError { code: Code::Unauthenticated, message: "wrong user or password".into() };
        let user = self.active_user(s, name).await?;
        let stored = user.password_hash.clone().ok_or_else(invalid)?;
        if known != Some(stored.as_str()) {
            let (given, against) = (password.to_string(), stored.clone());
            // argon2 takes tens of milliseconds: off the async threads.
            let ok =
                tokio::task::spawn_blocking(move || rules::verify_password(&given, &against)).await.unwrap_or(false);
            if !ok {
                return Err(invalid());
            }
        }
        Ok((Principal { user: user.name.into(), grants: user.grants }, Some(stored)))
    }

    async fn active_user(&self, s: &AppState, name: &str) -> Result<kairo_store::auth::User, ApiError> {
        let user = s.md.user(name).await?.ok_or_else(|| ApiError {
            code: Code::Unauthenticated,
            message: format!("user {name} no longer exists"),
        })?;
        if user.disabled_ms.is_some() {
            return Err(ApiError { code: Code::Unauthenticated, message: format!("user {name} is disabled") });
        }
        Ok(user)
    }
}

/// What a request needs, from its method and path.
pub fn permission(method: &Method, path: &str) -> Permission {
    let p = path.trim_end_matches('/');
    let mlflow = p.contains("/mlflow/") || p.contains("/mlflow-artifacts/");
    if method == Method::GET || method == Method::HEAD {
        return Permission::Read;
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
    let mut response = if path.starts_with("/api/v1") {
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
pub async fn guard(s: &AppState, request: Request, next: Next) -> Response {
    let required = match s.auth.required(s).await {
        Ok(r) => r,
        Err(e) => return shape(request.uri().path(), e),
    };
    let p = request.uri().path();
    let open = p == "/health" || p == "/version" || (p == "/metrics" && s.auth.open_metrics);
    if !required || open {
        return next.run(request).await;
    }
    let path = p.to_string();
    let principal = match s.auth.authenticate(s, request.headers().get("authorization")).await {
        Ok(p) => p,
        Err(e) => return shape(&path, e),
    };
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
    USER.scope(principal.user.clone(), next.run(request)).await
}

/// The model or experiment a request names, read only when the caller's grants are scoped
/// (a global grant needs no target, so the hot path never reads a body).
async fn target(s: &AppState, p: &Principal, need: Permission, request: Request) -> Result<(Request, Named), ApiError> {
    if rules::allows(&p.grants, need, &Target::Any) || need == Permission::Admin {
        return Ok((request, Named::Any));
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
