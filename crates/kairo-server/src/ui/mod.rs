//! The web UI, rendered on the server (maud: compile-checked templates that escape every
//! value), every asset embedded in the binary, readable without JavaScript. English and
//! Japanese (`?lang=`, else `Accept-Language`). Every page is sent with a strict
//! Content-Security-Policy (no inline script or style, nothing from elsewhere).
//!
//! Pages: the overview (`/`), runs (`/runs`, `/runs/{id}` with its files), compare
//! (`/compare`), data (`/data`), models and the approval inbox (`/models`, `/approvals`, the
//! decision form posted to `/ui/models/{name}/promotions/decide`), deployments, monitors,
//! incidents and lineage. Every view's state is in its URL; forms are plain HTML (GET for
//! views, a POST with the session's CSRF token for decisions).

mod compare;
mod data;
mod deployments;
mod incidents;
mod lineage;
mod models;
mod monitors;
mod run;
mod runs;
mod text;

use axum::extract::Path;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use maud::{html, Markup, DOCTYPE};
use serde::Deserialize;

use crate::error::ApiError;
use crate::AppState;
pub use text::{Lang, Words};

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
        || path == "/compare"
        || path == "/models"
        || path.starts_with("/models/")
        || path == "/approvals"
        || path == "/deployments"
        || path.starts_with("/deployments/")
        || path == "/monitors"
        || path.starts_with("/monitors/")
        || path == "/data"
        || path == "/lineage"
}

tokio::task_local! {
    /// The path and query of the page being rendered (the language switch keeps the query).
    static URI: axum::http::Uri;
}

/// The current page's URL with `lang` set to `code` (every other parameter kept).
fn with_lang(fallback: &str, code: &str) -> String {
    let Ok(uri) = URI.try_with(Clone::clone) else { return format!("{fallback}?lang={code}") };
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        if k != "lang" {
            q.append_pair(&k, &v);
        }
    }
    q.append_pair("lang", code);
    format!("{}?{}", uri.path(), q.finish())
}

async fn remember_uri(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let uri = request.uri().clone();
    URI.scope(uri, next.run(request)).await
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(overview))
        .route("/runs", get(runs_page))
        .route("/runs/{id}", get(run_page))
        .route("/runs/{id}/file", get(run_file))
        .route("/compare", get(compare_page))
        .route("/models", get(models_page))
        .route("/models/{name}", get(model_page))
        .route("/models/{name}/card", get(card_page))
        .route("/approvals", get(approvals_page))
        .route("/deployments", get(deployments_page))
        .route("/deployments/{name}", get(deployment_page))
        .route("/data", get(data_page))
        .route("/lineage", get(lineage_page))
        .route("/monitors", get(monitors_page))
        .route("/monitors/{name}", get(monitor_page))
        .route("/ui/models/{name}/promotions/decide", axum::routing::post(decide))
        .route("/incidents", get(incidents_page))
        .route("/incidents/{id}", get(incident_page))
        .route("/ui/kairo.css", get(css))
        .route("/ui/favicon.svg", get(favicon))
        .layer(axum::middleware::from_fn(remember_uri))
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
fn lang(chosen: Option<&str>, headers: &HeaderMap) -> Lang {
    if let Some(l) = chosen.and_then(Lang::parse) {
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
                        a href="/data" aria-current=[(path == "/data").then_some("page")] { (t.data) }
                        a href="/models" aria-current=[(path == "/models").then_some("page")] { (t.models_title) }
                        a href="/deployments" aria-current=[(path == "/deployments").then_some("page")] { (t.deployments) }
                        a href="/approvals" aria-current=[(path == "/approvals").then_some("page")] { (t.approvals) }
                        a href="/monitors" aria-current=[(path == "/monitors").then_some("page")] { (t.monitors) }
                        a href="/incidents" aria-current=[(path == "/incidents").then_some("page")] { (t.incidents) }
                        a href="/lineage" aria-current=[(path == "/lineage").then_some("page")] { (t.lineage) }
                    }
                    nav.lang aria-label=(t.language) {
                        a href=(with_lang(path, "en")) lang="en" aria-current=[(lang == Lang::En).then_some("true")] { "English" }
                        a href=(with_lang(path, "ja")) lang="ja" aria-current=[(lang == Lang::Ja).then_some("true")] { "日本語" }
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

/// A refused request from a browser (not logged in, not allowed), as a page.
pub fn refusal(e: ApiError) -> Response {
    error_page(Lang::En, e)
}

/// A page, or the page saying why there is none.
fn render(lang: Lang, title: &str, path: &str, body: Result<Markup, ApiError>) -> Response {
    match body {
        Ok(b) => page(lang, title, path, b),
        Err(e) => error_page(lang, e),
    }
}

fn error_page(lang: Lang, e: ApiError) -> Response {
    let status = e.code.status();
    let mut r = page(lang, lang.text().error, "/", html! { h1 { (lang.text().error) } p.error { (e.message) } });
    *r.status_mut() = status;
    r
}

/// Runs, filtered and paged on the server (`?filter=&page=&per=`).
async fn runs_page(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<runs::RunsQuery>) -> Response {
    let lang = lang(q.lang.as_deref(), &headers);
    let filter = q.filter.clone().unwrap_or_default();
    let cols = q.cols.clone().unwrap_or_default();
    let sort = q.sort.clone().unwrap_or_default();
    let view = runs::View {
        filter: &filter,
        cols: &cols,
        sort: &sort,
        page: q.page.unwrap_or(1).clamp(1, 100_000),
        per: q.per.unwrap_or(50).clamp(1, 500),
    };
    let listed = match runs::Column::parse_list(&cols).and_then(|c| Ok((c, runs::parse_sort(&sort)?))) {
        Ok((columns, order)) => match runs::list(&s, &filter, order, view.page, view.per).await {
            Ok(l) => runs::with_tags(&s, l, &columns).await.map(|l| (l, columns)),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    let status = match &listed {
        Err(e) => e.code.status(),
        Ok(_) => axum::http::StatusCode::OK,
    };
    let mut r = page(lang, lang.text().runs, "/runs", runs::body(lang, &view, listed));
    *r.status_mut() = status;
    r
}

/// Runs side by side (`?runs=ID&runs=ID`, `&all=1` for every row).
async fn compare_page(
    State(s): State<AppState>,
    headers: HeaderMap,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
    Query(q): Query<CompareQuery>,
) -> Response {
    let lang = lang(q.lang.as_deref(), &headers);
    let t = lang.text();
    let ids = match compare::ids(raw.as_deref().unwrap_or("")) {
        Ok(ids) => ids,
        Err(e) => return error_page(lang, e),
    };
    if ids.is_empty() {
        return page(lang, t.compare, "/runs", html! { h1 { (t.compare) } p { a href="/runs" { (t.pick_runs) } } });
    }
    let all = q.all.as_deref() == Some("1");
    let link = |all: bool| {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("runs", &ids.join(","));
        if all {
            q.append_pair("all", "1");
        }
        q.append_pair("lang", lang.code());
        format!("/compare?{}", q.finish())
    };
    render(lang, t.compare, "/runs", compare::load(&s, &ids).await.map(|c| compare::body(lang, &c, all, &link)))
}

#[derive(Deserialize)]
struct CompareQuery {
    lang: Option<String>,
    all: Option<String>,
}

/// The loop's incidents, newest first.
async fn incidents_page(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<PageQuery>) -> Response {
    let lang = lang(q.lang.as_deref(), &headers);
    let body = s.md.incidents(false, 200).await.map_err(ApiError::from).map(|list| {
        let docs: Vec<_> = list.into_iter().map(|i| crate::api_v1::incident_dto(i, None)).collect();
        incidents::list(lang, &docs)
    });
    render(lang, lang.text().incidents, "/incidents", body)
}

/// One incident's timeline and evidence.
async fn incident_page(
    State(s): State<AppState>,
    headers: HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    let lang = lang(q.lang.as_deref(), &headers);
    let Ok(id) = id.parse::<i64>() else {
        return error_page(lang, ApiError::not_found(format!("no incident {id}")));
    };
    let body = crate::api_v1::incident_with_timeline(&s.md, id).await.map_err(ApiError::from);
    render(lang, lang.text().incident, "/incidents", body.map(|i| incidents::one(lang, &i)))
}

#[derive(Deserialize)]
struct RunQuery {
    lang: Option<String>,
    /// The artifact directory shown (runs of MLflow clients).
    dir: Option<String>,
    /// The file previewed.
    preview: Option<String>,
}

/// One run, its files and a preview of one.
async fn run_page(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<RunQuery>,
) -> Response {
    let lang = lang(q.lang.as_deref(), &headers);
    let loaded = async {
        let l = run::load(&s, &id).await?;
        let dir = q.dir.clone().unwrap_or_default();
        let files = run::files(&s, &l.run, &dir).await?;
        let preview = match q.preview.as_deref().filter(|p| !p.is_empty()) {
            Some(p) => Some((p, run::preview(&s, &l.run, p).await?)),
            None => None,
        };
        let section = run::files_section(lang, &l.run, &files, &dir, preview.as_ref().map(|(p, v)| (*p, v)));
        Ok::<_, ApiError>(html! { (run::body(lang, &l)) (section) })
    };
    render(lang, lang.text().run, "/runs", loaded.await)
}

#[derive(Deserialize)]
struct FileQuery {
    path: String,
}

/// One of a run's files, as a download.
async fn run_file(State(s): State<AppState>, Path(id): Path<String>, Query(q): Query<FileQuery>) -> Response {
    let found = async {
        let l = run::load(&s, &id).await?;
        let hash = run::file(&s, &l.run, &q.path).await?;
        crate::mlflow::artifacts::browser_download(&s, hash, &q.path).await
    };
    match found.await {
        Ok(r) => r,
        Err(e) => error_page(Lang::En, e),
    }
}

/// The overview: the value report's headline figures (30 days), open incidents, deployments,
/// recent alerts.
async fn overview(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<PageQuery>) -> Response {
    let lang = lang(q.lang.as_deref(), &headers);
    render(lang, lang.text().overview, "/", overview_body(&s, lang).await)
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
    // Requests and errors per deployment today (UTC), every replica summed.
    let today = kairo_core::time::now_millis() / 86_400_000 * 86_400_000;
    let mut health: std::collections::HashMap<String, (i64, i64)> = std::collections::HashMap::new();
    for d in s.md.serving_days(today, None).await? {
        let e = health.entry(d.deployment.clone()).or_default();
        e.0 += d.requests;
        e.1 += d.client_errors + d.server_errors;
    }
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
                                td { a href={ "/incidents/" (i.id) "?lang=" (lang.code()) } { (i.id) } }
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
                    thead { tr { th scope="col" { (t.model) } th scope="col" { (t.versions) } th scope="col" { (t.serving) } th scope="col" { (t.requests_today) } th scope="col" { (t.errors_today) } th scope="col" { (t.aliases) } } }
                    tbody {
                        @for m in &models {
                            @let name = m["name"].as_str().unwrap_or("");
                            @let (n, errors) = health.get(name).copied().unwrap_or((0, 0));
                            tr {
                                td { a href={ "/models/" (models::urlencode(name)) "?lang=" (lang.code()) } { (name) } }
                                td { (m["versions"]) }
                                td { @if let Some(v) = m["serving"].as_i64() { a href={ "/deployments/" (models::urlencode(name)) "?lang=" (lang.code()) } { "v" (v) } } @else { "–" } }
                                td.num { (n) }
                                td.num { @if n > 0 { (format!("{:.1}%", errors as f64 / n as f64 * 100.0)) } @else { "–" } }
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
                        @let monitor = a.payload["monitor"].as_str().unwrap_or("");
                        li {
                            time datetime=(a.at) { (a.at) } " — "
                            a href={ "/monitors/" (models::urlencode(monitor)) "?lang=" (lang.code()) } { (monitor) } ": "
                            (a.payload["when"].as_str().unwrap_or(""))
                        }
                    }
                }
            }
        }
    })
}

/// The CSRF token of the browser session making this request, if it has one.
fn csrf(s: &AppState, headers: &HeaderMap) -> Option<String> {
    let id = kairo_auth::oidc::session_cookie(headers.get(header::COOKIE)?.as_bytes())?;
    Some(s.auth.sessions.get(id)?.csrf)
}

/// Registered models.
async fn models_page(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<PageQuery>) -> Response {
    let lang = lang(q.lang.as_deref(), &headers);
    let listed = async {
        let models = kairo_registry::describe::models(&s.md).await.map_err(ApiError::from)?;
        let mut pending = 0;
        for m in &models {
            let name = m["name"].as_str().unwrap_or("");
            pending += s.md.promotions(name).await?.iter().filter(|p| p.status.as_str() == "pending").count();
        }
        Ok::<_, ApiError>((models, pending))
    };
    let body = listed.await.map(|(models, pending)| models::list(lang, &models, pending));
    render(lang, lang.text().models_title, "/models", body)
}

/// One model: versions, trend, aliases and their history, promotions, importance.
async fn model_page(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    let lang = lang(q.lang.as_deref(), &headers);
    let body = kairo_registry::describe::model(&s.md, &name).await.map_err(ApiError::from);
    render(lang, lang.text().model, "/models", body.map(|doc| models::one(lang, &doc, csrf(&s, &headers).as_deref())))
}

#[derive(serde::Deserialize)]
struct CardQuery {
    lang: Option<String>,
    version: Option<i64>,
}

/// A version's model card (`kairo models card`): the latest version unless `?version=N`.
async fn card_page(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<CardQuery>,
) -> Response {
    let lang = lang(q.lang.as_deref(), &headers);
    let target = match q.version {
        Some(v) => format!("{name}:{v}"),
        None => name.clone(),
    };
    let body = kairo_card::build(&s.project, &s.md, &target).await.map_err(ApiError::from);
    render(lang, lang.text().model_card, "/models", body.map(|card| kairo_card::render::html_body(&card, lang)))
}

/// Every pending promotion with its evidence.
async fn approvals_page(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<PageQuery>) -> Response {
    let lang = lang(q.lang.as_deref(), &headers);
    let gathered = async {
        let incidents = s.md.incidents(true, 500).await?;
        let mut items = Vec::new();
        for m in s.md.registered_models().await? {
            if !s.md.promotions(&m.name).await?.iter().any(|p| p.status.as_str() == "pending") {
                continue;
            }
            let doc = kairo_registry::describe::model(&s.md, &m.name).await.map_err(ApiError::from)?;
            let versions = doc["versions"].as_array().cloned().unwrap_or_default();
            for p in doc["promotions"].as_array().into_iter().flatten().filter(|p| p["status"] == "pending") {
                let incident = incidents
                    .iter()
                    .find(|i| i.model == m.name && i.detail["challenger"]["version"] == p["version"])
                    .cloned()
                    .map(|i| crate::api_v1::incident_dto(i, None));
                items.push((m.name.clone(), p.clone(), versions.clone(), incident));
            }
        }
        Ok::<_, ApiError>(items)
    };
    let body = gathered.await.map(|items| models::inbox(lang, &items, csrf(&s, &headers).as_deref()));
    render(lang, lang.text().approvals, "/approvals", body)
}

/// Approve or reject a pending promotion from the inbox (a form: `decision`, `version`,
/// `alias`, `reason`, `csrf`; the CSRF token and the role were checked before this runs).
async fn decide(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    body: axum::body::Body,
) -> Response {
    let Ok(bytes) = axum::body::to_bytes(body, FORM_LIMIT).await else {
        return error_page(Lang::En, ApiError::too_large("the form is larger than 64 KiB"));
    };
    let field = |k: &str| url::form_urlencoded::parse(&bytes).find(|(key, _)| key == k).map(|(_, v)| v.into_owned());
    let lang = field("lang").as_deref().and_then(Lang::parse).unwrap_or_else(|| lang(None, &headers));
    let reason = field("reason").map(|r| r.trim().to_string()).filter(|r| !r.is_empty());
    let Some(reason) = reason else {
        return error_page(lang, ApiError::invalid("reason: a decision needs a reason (it goes into the audit trail)"));
    };
    let (approve, reject) = match field("decision").as_deref() {
        Some("approve") => (true, false),
        Some("reject") => (false, true),
        _ => return error_page(lang, ApiError::invalid("decision: approve or reject")),
    };
    let Some(version) = field("version").and_then(|v| v.parse::<i64>().ok()) else {
        return error_page(lang, ApiError::invalid("version: the version number of the pending promotion"));
    };
    let alias = field("alias").unwrap_or_else(|| "champion".into());
    let req = kairo_registry::PromoteRequest {
        name: name.clone(),
        version,
        alias,
        approve,
        reject,
        reason: Some(reason),
        actor: s.actor(),
    };
    match kairo_registry::promote(&s.project, &s.md, &req).await {
        Ok(_) => {
            let to = format!("/models/{}?lang={}", models::urlencode(&name), lang.code());
            axum::response::Redirect::to(&to).into_response()
        }
        Err(e) => error_page(lang, e.into()),
    }
}

/// The largest form the UI takes.
pub const FORM_LIMIT: usize = 64 * 1024;

/// Every deployment.
async fn deployments_page(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<PageQuery>) -> Response {
    let lang = lang(q.lang.as_deref(), &headers);
    let body = s.md.deployments().await.map_err(ApiError::from).map(|list| deployments::list(lang, &list));
    render(lang, lang.text().deployments, "/deployments", body)
}

/// One deployment: versions, traffic, changes, serving health.
async fn deployment_page(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    let lang = lang(q.lang.as_deref(), &headers);
    let loaded = async {
        let doc = kairo_registry::describe::deployment(&s.md, &name).await.map_err(ApiError::from)?;
        let since = kairo_core::time::now_millis() / 86_400_000 * 86_400_000 - (deployments::DAYS - 1) * 86_400_000;
        let days = s.md.serving_days(since, Some(&name)).await?;
        Ok::<_, ApiError>((doc, days))
    };
    let body = loaded.await.map(|(doc, days)| deployments::one(lang, &doc, &days));
    render(lang, lang.text().deployment, "/deployments", body)
}

/// The monitors of kairo.yaml.
async fn monitors_page(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<PageQuery>) -> Response {
    let lang = lang(q.lang.as_deref(), &headers);
    match s.project.current_config() {
        Ok(c) => {
            let list: Vec<_> = c.monitors.into_iter().collect();
            page(lang, lang.text().monitors, "/monitors", monitors::list(lang, &list))
        }
        Err(e) => error_page(lang, ApiError::invalid(e.to_string())),
    }
}

#[derive(Deserialize)]
struct MonitorQuery {
    lang: Option<String>,
    window: Option<usize>,
}

/// One monitor: its newest windows evaluated now (nothing raised), one window's features.
async fn monitor_page(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<MonitorQuery>,
) -> Response {
    let lang = lang(q.lang.as_deref(), &headers);
    let loaded = async {
        let config = s.project.current_config().map_err(|e| ApiError::invalid(e.to_string()))?;
        let spec = config
            .monitors
            .get(&name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("no monitor '{name}' in kairo.yaml")))?;
        let evaluation = match spec.deployment.as_deref() {
            Some(d) => {
                let windowing = kairo_watch::Windowing::of(&spec).map_err(|e| ApiError::invalid(e.to_string()))?;
                let now = kairo_core::time::now_millis();
                Some(
                    kairo_watch::evaluate(&s.md, &s.objects, d, &spec, windowing, monitors::WINDOWS, now)
                        .await
                        .map_err(|e| ApiError::invalid(e.to_string()))?,
                )
            }
            None => None,
        };
        let alerts: Vec<monitors::Alert> = s
            .md
            .events(None, 2000)
            .await?
            .into_iter()
            .filter(|e| e.kind == kairo_core::EventKind::MonitorAlert.as_str() && e.payload["monitor"] == name.as_str())
            .rev()
            .take(20)
            .map(|e| monitors::Alert { at: e.at.clone(), what: e.payload["when"].as_str().unwrap_or("").to_string() })
            .collect();
        Ok::<_, ApiError>((spec, evaluation, alerts))
    };
    let body = loaded.await.map(|(spec, e, alerts)| monitors::one(lang, &name, &spec, e.as_ref(), q.window, &alerts));
    render(lang, lang.text().monitor, "/monitors", body)
}

#[derive(Deserialize)]
struct DataQuery {
    lang: Option<String>,
    path: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// A version hash or prefix as the UI takes it (never `workspace` or a git revision: the
/// server's own checkout is not what a visitor asks about).
fn version_spec(v: Option<&str>) -> Result<Option<&str>, ApiError> {
    match v.filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) if (6..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(Some(v)),
        Some(v) => Err(ApiError::invalid(format!("{v:.70}: a version is 6 to 64 hex digits of its hash"))),
    }
}

/// Datasets; one dataset's versions and the difference between two.
async fn data_page(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<DataQuery>) -> Response {
    let lang = lang(q.lang.as_deref(), &headers);
    let t = lang.text();
    let Some(path) = q.path.as_deref().filter(|p| !p.is_empty()) else {
        return match s.md.latest_dataset_versions().await {
            Ok(list) => page(lang, t.data, "/data", data::list(lang, &list)),
            Err(e) => error_page(lang, e.into()),
        };
    };
    let (from, to) = match (version_spec(q.from.as_deref()), version_spec(q.to.as_deref())) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return error_page(lang, e),
    };
    let log = match kairo_data::history::log(&s.project, path).await {
        Ok(log) => log,
        Err(e) => return error_page(lang, ApiError::not_found(e.to_string())),
    };
    let diff = match (from, to) {
        (Some(a), Some(b)) => {
            Some(kairo_data::history::diff(&s.project, path, Some(a), Some(b)).await.map_err(|e| e.to_string()))
        }
        _ => None,
    };
    page(lang, t.data, "/data", data::versions(lang, path, &log, from, to, diff))
}

#[derive(Deserialize)]
struct LineageQuery {
    lang: Option<String>,
    target: Option<String>,
}

/// The two-way lineage graph around a dataset version, run or model version.
async fn lineage_page(State(s): State<AppState>, headers: HeaderMap, Query(q): Query<LineageQuery>) -> Response {
    let lang = lang(q.lang.as_deref(), &headers);
    let t = lang.text();
    let Some(target) = q.target.as_deref().map(str::trim).filter(|t| !t.is_empty()) else {
        return page(lang, t.lineage, "/lineage", html! { h1 { (t.lineage) } (lineage::form(lang, "")) });
    };
    match kairo_pipeline::lineage::graph(&s.project, &s.md, target).await {
        Ok(g) => page(lang, t.lineage, "/lineage", lineage::body(lang, target, &g)),
        Err(kairo_pipeline::PipelineError::Store(e)) => error_page(lang, e.into()),
        Err(e) => {
            let mut r = page(
                lang,
                t.lineage,
                "/lineage",
                html! { h1 { (t.lineage) } (lineage::form(lang, target)) p.error role="alert" { (e.to_string()) } },
            );
            *r.status_mut() = axum::http::StatusCode::NOT_FOUND;
            r
        }
    }
}
