//! `/runs`: pipeline runs and runs logged by MLflow clients together, newest first, filtered
//! with the MLflow search grammar users know (`metrics.acc > 0.9 and params.lr = '0.1' and
//! attributes.stage = 'train'`), paged on the server; the filter and page live in the URL.

use kairo_core::run::Run;
use maud::{html, Markup};
use serde::Deserialize;

use super::Lang;
use crate::error::ApiError;
use crate::mlflow::search::{self, Kind, Value};
use crate::AppState;

/// A filter looks at this many of the newest runs (without one, only the page is read).
pub const FILTER_WINDOW: i64 = 10_000;
const ATTRIBUTES: &[&str] = &["run_id", "stage", "status", "actor", "executor", "trigger", "git_commit", "started"];

#[derive(Deserialize)]
pub struct RunsQuery {
    pub filter: Option<String>,
    pub page: Option<usize>,
    pub per: Option<usize>,
    pub lang: Option<String>,
}

fn lookup(r: &Run, kind: Kind, key: &str) -> Option<Value> {
    match kind {
        Kind::Metric => r.metrics.get(key).map(|v| Value::Number(*v)),
        // A stage's params are recorded by their path (`train.lr`): `params.train.lr`, or
        // `params.lr` for the last part; `params.`params.yaml:train.lr`` names the file too.
        Kind::Param => {
            let (file, name) = key.split_once(':').map_or((None, key), |(f, k)| (Some(f), k));
            let files = || r.params.iter().filter(move |(f, _)| file.is_none_or(|want| want == f.as_str()));
            let exact = files().find_map(|(_, kv)| kv.get(name));
            let last = || files().flat_map(|(_, kv)| kv.iter()).find(|(k, _)| k.rsplit('.').next() == Some(name));
            exact
                .or_else(|| last().map(|(_, v)| v))
                .map(|v| Value::Text(v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
        }
        Kind::Tag => None,
        Kind::Attribute => Some(Value::Text(match key {
            "run_id" => r.id.clone(),
            "stage" => r.stage.clone(),
            "status" => r.status.as_str().to_string(),
            "actor" => r.actor.clone(),
            "executor" => r.executor.clone(),
            "trigger" => r.trigger.clone(),
            "git_commit" => r.git.commit.clone()?,
            "started" => r.started_at.clone(),
            _ => return None,
        })),
    }
}

pub struct Listed {
    pub runs: Vec<Run>,
    /// Whether a next page exists.
    pub more: bool,
}

/// The page of runs the query asks for.
pub async fn list(s: &AppState, filter: &str, page: usize, per: usize) -> Result<Listed, ApiError> {
    let skip = (page - 1) * per;
    if filter.trim().is_empty() {
        let want = i64::try_from(skip + per + 1).unwrap_or(i64::MAX);
        let all = s.md.runs(&kairo_store::runs::RunFilter { stage: None, status: None, limit: Some(want) }).await?;
        let more = all.len() > skip + per;
        return Ok(Listed { runs: all.into_iter().skip(skip).take(per).collect(), more });
    }
    let parsed = search::parse_filter_with(filter, ATTRIBUTES, &[])?;
    let all =
        s.md.runs(&kairo_store::runs::RunFilter { stage: None, status: None, limit: Some(FILTER_WINDOW) }).await?;
    let mut hits = all.into_iter().filter(|r| search::matches_with(&parsed, |k, key| lookup(r, k, key)));
    let runs: Vec<Run> = hits.by_ref().skip(skip).take(per).collect();
    let more = hits.next().is_some();
    Ok(Listed { runs, more })
}

fn link(filter: &str, page: usize, per: usize, lang: Lang) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    if !filter.is_empty() {
        q.append_pair("filter", filter);
    }
    q.append_pair("page", &page.to_string());
    q.append_pair("per", &per.to_string());
    q.append_pair("lang", lang.code());
    format!("/runs?{}", q.finish())
}

pub fn body(lang: Lang, filter: &str, page: usize, per: usize, listed: Result<Listed, ApiError>) -> Markup {
    let t = lang.text();
    html! {
        h1 { (t.runs) }
        form method="get" action="/runs" role="search" {
            label for="filter" { (t.filter) }
            input id="filter" name="filter" type="search" size="60" value=(filter) placeholder="metrics.acc > 0.9 and params.lr = '0.1'";
            input type="hidden" name="lang" value=(lang.code());
            input type="hidden" name="per" value=(per);
            button type="submit" { (t.search) }
        }
        @match listed {
            Err(e) => p.error role="alert" { (e.message) },
            Ok(l) => {
                @if l.runs.is_empty() {
                    p { (t.no_runs) }
                } @else {
                    table {
                        thead { tr {
                            th scope="col" { (t.run) } th scope="col" { (t.stage) } th scope="col" { (t.state) }
                            th scope="col" { (t.started) } th scope="col" { (t.seconds) } th scope="col" { (t.by) }
                            th scope="col" { (t.metrics) }
                        } }
                        tbody {
                            @for r in &l.runs {
                                tr {
                                    td.mono { a href={ "/runs/" (r.id) "?lang=" (lang.code()) } { (r.id.get(..12).unwrap_or(&r.id)) } }
                                    td { (r.stage) }
                                    td { (r.status.as_str()) }
                                    td { (r.started_at) }
                                    td.num { @if let Some(s) = r.duration_secs() { (format!("{s:.2}")) } @else { "–" } }
                                    td { (r.actor) }
                                    td.mono {
                                        @for (k, v) in r.metrics.iter().take(6) { (k) "=" (v) " " }
                                    }
                                }
                            }
                        }
                    }
                }
                nav.pages aria-label=(t.pages) {
                    @if page > 1 { a rel="prev" href=(link(filter, page - 1, per, lang)) { "← " (t.newer) } }
                    span { (t.page) " " (page) }
                    @if l.more { a rel="next" href=(link(filter, page + 1, per, lang)) { (t.older) " →" } }
                }
            }
        }
    }
}
