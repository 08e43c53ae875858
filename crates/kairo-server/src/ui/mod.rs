//! The web UI, rendered on the server (maud: compile-checked templates that escape every
//! value), every asset embedded in the binary, readable without JavaScript. English and
//! Japanese (`?lang=`, else `Accept-Language`). Every page is sent with a strict
//! Content-Security-Policy (no inline script or style, nothing from elsewhere).
//!
//! Pages so far: the overview (`/`). The rest of issue 18 (runs, compare, run, data, models
//! with the approval inbox, deployments, monitors, incidents, lineage) builds on this layout.

mod incidents;
mod run;
mod runs;
mod text;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;

use crate::error::ApiError;
use crate::AppState;
pub use text::Lang;

const CSS: &str = include_str!("kairo.css");
const FAVICON: &str = include_str!("favicon.svg");

/// No script, style or image from anywhere but this server; no framing; forms post here only.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'self'; \
                       connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Whether `path` is one of the UI's pages (a browser there is sent to log in, not given JSON).
pub fn is_page(path: &str) -> bool {
    path == "/"
        || path == "/runs"
        || path.starts_with("/runs/")
        || path == "/incidents"
        || path.starts_with("/incidents/")
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(overview))
        .route("/runs", get(runs_page))
        .route("/runs/{id}", get(run_page))
        .route("/incidents", get(incidents_page))
        .route("/incidents/{id}", get(incident_page))
        .route("/ui/kairo.css", get(css))
        .route("/ui/favicon.svg", get(favicon))
}

async fn favicon() -> Response {
    let mut r = FAVICON.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("image/svg+xml"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=86400"));
    r
}

async fn css() -> Response {
    let mut r = CSS.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/css; charset=utf-8"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("max-age=3600"));
    r
}

#[derive(Deserialize)]
struct PageQuery {
    lang: Option<String>,
}

/// The page's language: `?lang=en|ja`, else the first of `Accept-Language` Kairo speaks.
fn lang(q: &PageQuery, headers: &HeaderMap) -> Lang {
    if let Some(l) = q.lang.as_deref().and_then(Lang::parse) {
        return l;
    }
    let accept = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or("");
    accept
        .split(',')
        .filter_map(|part| part.split(';').next())
        .find_map(|tag| Lang::parse(tag.trim().split('-').next().unwrap_or("")))
        .unwrap_or(Lang::En)
}

/// A whole page: the layout around `body`, with the security headers.
fn page(lang: Lang, title: &str, path: &str, body: Markup) -> Response {
    let t = lang.text();
    let markup = html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Kairo" }
                link rel="stylesheet" href="/ui/kairo.css";
                link rel="icon" href="/ui/favicon.svg" type="image/svg+xml";
            }
            body {
                a.skip href="#main" { (t.skip) }
                header {
                    nav aria-label=(t.nav) {
                        a.brand href="/" { "Kairo" }
                        a href="/" aria-current=[(path == "/").then_some("page")] { (t.overview) }
                        a href="/runs" aria-current=[(path == "/runs").then_some("page")] { (t.runs) }
                        a href="/incidents" aria-current=[(path == "/incidents").then_some("page")] { (t.incidents) }
                    }
                    nav.lang aria-label=(t.language) {
                        a href={ (path) "?lang=en" } lang="en" aria-current=[(lang == Lang::En).then_some("true")] { "English" }
                        a href={ (path) "?lang=ja" } lang="ja" aria-current=[(lang == Lang::Ja).then_some("true")] { "日本語" }
                    }
                }
                main id="main" { (body) }
            }
        }
    };
    let mut r = axum::response::Html(markup.into_string()).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Language, Cookie"));
    r
}

fn error_page(lang: Lang, e: ApiError) -> Response {
    let status = e.code.status();
    let mut r = page(lang, lang.text().error, "/", html! { h1 { (lang.text().error) } p.error { (e.message) } });
    *r.status_mut() = status;
    r
}

/// Runs, filtered and paged on the server (`?filter=&page=&per=`).
async fn runs_page(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<runs::RunsQuery>) -> Response {
    let lang = lang(&PageQuery { lang: q.lang.clone() }, &headers);
    let filter = q.filter.clone().unwrap_or_default();
    let page_no = q.page.unwrap_or(1).clamp(1, 100_000);
    let per = q.per.unwrap_or(50).clamp(1, 500);
    let listed = runs::list(&s, &filter, page_no, per).await;
    let status = match &listed {
        Err(e) => e.code.status(),
        Ok(_) => axum::http::StatusCode::OK,
    };
    let mut r = page(lang, lang.text().runs, "/runs", runs::body(lang, &filter, page_no, per, listed));
    *r.status_mut() = status;
    r
}

/// The loop's incidents, newest first.
async fn incidents_page(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<PageQuery>) -> Response {
    let lang = lang(&q, &headers);
    match s.md.incidents(false, 200).await {
        Ok(list) => {
            let docs: Vec<_> = list.into_iter().map(|i| crate::api_v1::incident_dto(i, None)).collect();
            page(lang, lang.text().incidents, "/incidents", incidents::list(lang, &docs))
        }
        Err(e) => error_page(lang, e.into()),
    }
}

/// One incident's timeline and evidence.
async fn incident_page(
    State(s): State<AppState>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    let lang = lang(&q, &headers);
    let Ok(id) = id.parse::<i64>() else {
        return error_page(lang, ApiError::not_found(format!("no incident {id}")));
    };
    match crate::api_v1::incident_with_timeline(&s.md, id).await {
        Ok(i) => page(lang, lang.text().incident, "/incidents", incidents::one(lang, &i)),
        Err(e) => error_page(lang, e.into()),
    }
}

/// One run.
async fn run_page(
    State(s): State<AppState>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    let lang = lang(&q, &headers);
    match run::load(&s, &id).await {
        Ok(l) => page(lang, lang.text().run, "/runs", run::body(lang, &l)),
        Err(e) => error_page(lang, e),
    }
}

/// The overview: the value report's headline figures (30 days), open incidents, deployments,
/// recent alerts.
async fn overview(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<PageQuery>) -> Response {
    let lang = lang(&q, &headers);
    match overview_body(&s, lang).await {
        Ok(body) => page(lang, lang.text().overview, "/", body),
        Err(e) => error_page(lang, e),
    }
}

async fn overview_body(s: &AppState, lang: Lang) -> Result<Markup, ApiError> {
    let t = lang.text();
    let query = kairo_kpi::query("30d", None, None).map_err(|e| ApiError::invalid(e.to_string()))?;
    let objects = s.project.objects().ok();
    let src = kairo_kpi::Sources { md: &s.md, objects: objects.as_ref(), git_root: Some(s.project.root()) };
    let kpi = kairo_kpi::compute(&src, s.project.config(), &query)
        .await
        .map_err(|e| ApiError { code: crate::error::Code::Internal, message: e.to_string() })?;
    let incidents = s.md.incidents(true, 20).await?;
    let models = kairo_registry::describe::models(&s.md).await.map_err(ApiError::from)?;
    let alerts: Vec<_> =
        s.md.events(None, 500)
            .await?
            .into_iter()
            .filter(|e| e.kind == kairo_core::EventKind::MonitorAlert.as_str())
            .rev()
            .take(10)
            .collect();
    use kairo_kpi::html::{duration, percent};
    let figures = [
        (t.deploy_frequency, format!("{:.2} / {}", kpi.deployment_frequency.per_week, t.week)),
        (t.lead_time, duration(kpi.lead_time.median_s)),
        (t.change_failure, percent(kpi.change_failure.rate)),
        (t.restore, duration(kpi.restore.median_s)),
        (t.automated_deploys, percent(kpi.automation.deploys.rate)),
    ];
    Ok(html! {
        h1 { (t.overview) }
        section aria-labelledby="kpi-h" {
            h2 id="kpi-h" { (t.last_30_days) }
            dl.figures {
                @for (label, value) in &figures {
                    div { dt { (label) } dd { (value) } }
                }
            }
        }
        section aria-labelledby="inc-h" {
            h2 id="inc-h" { (t.open_incidents) " (" (incidents.len()) ")" }
            @if incidents.is_empty() {
                p { (t.no_open_incidents) }
            } @else {
                table {
                    thead { tr { th scope="col" { "ID" } th scope="col" { (t.state) } th scope="col" { (t.automation) } th scope="col" { (t.model) } th scope="col" { (t.opened) } } }
                    tbody {
                        @for i in &incidents {
                            tr {
                                td { (i.id) }
                                td { (i.state.as_str()) }
                                td { (i.automation) }
                                td { (i.model) }
                                td { (kairo_core::time::millis_to_string(i.opened_ms)) }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="dep-h" {
            h2 id="dep-h" { (t.models) }
            @if models.is_empty() {
                p { (t.no_models) }
            } @else {
                table {
                    thead { tr { th scope="col" { (t.model) } th scope="col" { (t.versions) } th scope="col" { (t.serving) } th scope="col" { (t.aliases) } } }
                    tbody {
                        @for m in &models {
                            tr {
                                td { (m["name"].as_str().unwrap_or("")) }
                                td { (m["versions"]) }
                                td { @if let Some(v) = m["serving"].as_i64() { "v" (v) } @else { "–" } }
                                td {
                                    @for a in m["aliases"].as_array().into_iter().flatten() {
                                        span.alias { (a.as_str().unwrap_or("")) } " "
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="alert-h" {
            h2 id="alert-h" { (t.recent_alerts) }
            @if alerts.is_empty() {
                p { (t.no_alerts) }
            } @else {
                ul {
                    @for a in &alerts {
                        li {
                            time datetime=(a.at) { (a.at) } " — "
                            (a.payload["monitor"].as_str().unwrap_or("")) ": "
                            (a.payload["when"].as_str().unwrap_or(""))
                        }
                    }
                }
            }
        }
    })
}
