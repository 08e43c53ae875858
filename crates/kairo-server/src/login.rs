//! Browser login through the OIDC provider (`auth.oidc` in kairo.yaml): `/auth/login` sends
//! the browser to the provider (authorization code + PKCE), `/auth/callback` takes it back,
//! checks the ID token and sets the session cookie (HttpOnly, SameSite=Strict, Secure over TLS)
//! from a page of this site that moves on by itself;
//! `/auth/session` tells the page who it is and its CSRF token; `POST /auth/logout` ends it.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kairo_auth::oidc::Sessions;
use serde::Deserialize;
use serde_json::json;

use crate::error::{ApiError, Code};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/login", get(login))
        .route("/auth/callback", get(callback))
        .route("/auth/session", get(session))
        .route("/auth/logout", post(logout))
}

fn no_login() -> Response {
    ApiError {
        code: Code::EndpointNotFound,
        message: "browser login is not configured: set auth.oidc (issuer, client_id) in kairo.yaml".into(),
    }
    .into_response()
}

/// Only a path on this server: never another site (an open redirect), never `//host`.
fn safe_next(next: Option<&str>) -> String {
    match next {
        // No control characters or spaces either: browsers drop tabs and newlines from a
        // Location, which would turn `/\t/evil.example` into `//evil.example`.
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && n.len() <= 2048
                && n.bytes().all(|b| b > b' ' && b != 0x7f) =>
        {
            n.to_string()
        }
        _ => "/".into(),
    }
}

#[derive(Deserialize)]
struct LoginQuery {
    next: Option<String>,
}

async fn login(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<LoginQuery>) -> Response {
    let Some(oidc) = s.auth.who.oidc().filter(|o| o.browser_login()) else { return no_login() };
    let Some(host) = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b)))
    else {
        return ApiError::invalid("no usable Host header").into_response();
    };
    let scheme = if s.auth.tls { "https" } else { "http" };
    match oidc.start_login(&format!("{scheme}://{host}/auth/callback"), &safe_next(q.next.as_deref())) {
        Ok((url, state)) => {
            let mut r = Redirect::to(&url).into_response();
            let cookie = format!(
                "{LOGIN_COOKIE}={state}; HttpOnly; SameSite=Lax; Path=/auth/callback; Max-Age=600{}",
                if s.auth.tls { "; Secure" } else { "" }
            );
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Err(message) => ApiError::invalid(message).into_response(),
    }
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// The state of the login this browser began (`/auth/login`), so that a callback link made by
/// someone else cannot log this browser in as them.
const LOGIN_COOKIE: &str = "kairo_login";

async fn callback(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<CallbackQuery>) -> Response {
    let Some(oidc) = s.auth.who.oidc().filter(|o| o.browser_login()) else { return no_login() };
    if let Some(e) = q.error {
        let message = format!("the provider did not log you in: {e} {}", q.error_description.unwrap_or_default());
        return ApiError { code: Code::Unauthenticated, message }.into_response();
    }
    let (Some(code), Some(state)) = (q.code, q.state) else {
        return ApiError::invalid("the callback needs code and state (start at /auth/login)").into_response();
    };
    let began_here = headers
        .get(header::COOKIE)
        .and_then(|c| kairo_auth::oidc::cookie(c.as_bytes(), LOGIN_COOKIE))
        .is_some_and(|v| kairo_core::auth::same_hash(v, &state));
    if !began_here {
        let message = "this browser did not begin this login: start again at /auth/login".to_string();
        return ApiError { code: Code::Unauthenticated, message }.into_response();
    }
    match oidc.finish_login(&state, &code).await {
        Ok((principal, next)) => {
            tracing::info!(user = %principal.user, "browser login through {}", oidc.issuer());
            let id = s.auth.sessions.create(principal);
            let cookie = format!(
                "{}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{}",
                Sessions::COOKIE,
                Sessions::TTL.as_secs(),
                if s.auth.tls { "; Secure" } else { "" }
            );
            // A page of this site moves on, not a redirect: the browser is still on the
            // provider's cross-site navigation here, which would not send a Strict cookie.
            let mut r = onward(&next);
            let done = format!("{LOGIN_COOKIE}=; HttpOnly; SameSite=Lax; Path=/auth/callback; Max-Age=0");
            for c in [cookie, done] {
                if let Ok(v) = HeaderValue::from_str(&c) {
                    r.headers_mut().append(header::SET_COOKIE, v);
                }
            }
            r
        }
        Err(message) => ApiError { code: Code::Unauthenticated, message }.into_response(),
    }
}

/// A page that sends the browser on to `next` (a path on this server) by itself.
fn onward(next: &str) -> Response {
    let page = maud::html! {
        (maud::DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="refresh" content={ "0;url=" (next) };
                link rel="icon" href="/ui/favicon.svg" type="image/svg+xml";
                title { "Logged in · Kairo" }
            }
            body { p { "Logged in. " a href=(next) { "Continue" } } }
        }
    };
    let mut r = axum::response::Html(page.into_string()).into_response();
    r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(crate::ui::CSP));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn session_of(s: &AppState, headers: &HeaderMap) -> Option<(String, kairo_auth::oidc::Session)> {
    let id = kairo_auth::oidc::session_cookie(headers.get(header::COOKIE)?.as_bytes())?.to_string();
    let session = s.auth.sessions.get(&id)?;
    Some((id, session))
}

/// Who the caller is; for a browser session, also its CSRF token.
async fn session(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let grants: Vec<String> =
        crate::auth::current().map(|c| c.grants.iter().map(ToString::to_string).collect()).unwrap_or_default();
    let user = crate::auth::current_user().unwrap_or_else(|| s.actor.clone());
    let csrf = session_of(&s, &headers).map(|(_, session)| session.csrf);
    Json(json!({"user": user, "grants": grants, "csrf_token": csrf})).into_response()
}

async fn logout(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if let Some((id, _)) = session_of(&s, &headers) {
        s.auth.sessions.remove(&id);
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    let clear = format!("{}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0", Sessions::COOKIE);
    if let Ok(v) = HeaderValue::from_str(&clear) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn after_login_only_paths_on_this_server() {
        assert_eq!(safe_next(Some("/api/v1/whoami")), "/api/v1/whoami");
        for evil in
            ["//evil.example/x", "https://evil.example", "/\\evil.example", "/\t/evil.example", "/\n/x", "evil", ""]
        {
            assert_eq!(safe_next(Some(evil)), "/", "{evil}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
