//! `/runs`: pipeline runs and runs logged by MLflow clients together, newest first, filtered
//! with the MLflow search grammar users know (`metrics.acc > 0.9 and params.lr = '0.1' and
//! attributes.stage = 'train'`), paged on the server. Comparisons the database can answer are
//! evaluated there (`Metadata::runs_page`); the rest are checked here. The filter, the chosen
//! columns (`cols=metrics.acc,params.lr,data.data/train.csv`) and the page live in the URL;
//! ticked runs go to `/compare`.

use kairo_core::run::Run;
use kairo_store::runs::{RunPage, Sort};
use maud::{html, Markup};
use serde::Deserialize;

use super::{Lang, Words};
use crate::error::ApiError;
use crate::mlflow::search::{self, Comparison, Kind, Value};
use crate::AppState;

/// A filter the database cannot fully answer reads at most this many runs to fill a page.
pub const SCAN_LIMIT: i64 = 200_000;
pub const ATTRIBUTES: &[&str] = &["run_id", "stage", "status", "actor", "executor", "trigger", "git_commit", "started"];
/// At most this many chosen columns.
const MAX_COLUMNS: usize = 40;

#[derive(Deserialize)]
pub struct RunsQuery {
    pub filter: Option<String>,
    pub cols: Option<String>,
    /// `started` (oldest first), `-started` (the default), `metrics.KEY`, `-metrics.KEY`,
    /// `params.KEY`, `-params.KEY`.
    pub sort: Option<String>,
    pub page: Option<usize>,
    pub per: Option<usize>,
    pub lang: Option<String>,
}

/// A run's value for a filter key or a column.
pub fn lookup(r: &Run, kind: Kind, key: &str) -> Option<Value> {
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
    /// The runs' tags, read when a tag column is chosen.
    pub tags: Tags,
}

/// Tags by run id.
pub type Tags = std::collections::HashMap<String, Vec<(String, String)>>;

/// The filter split into what the database evaluates and what is checked here (every
/// comparison but a tag's, since a run record carries no tags: the database's answer stands).
fn plan(filter: &str) -> Result<(RunPage, Vec<Comparison>, bool), ApiError> {
    let parsed = search::parse_filter_with(filter, ATTRIBUTES, &[])?;
    let mut page = RunPage::default();
    let mut here = Vec::new();
    let mut exact = true;
    for c in parsed {
        if c.kind == Kind::Attribute && c.op == "=" && kairo_store::runs::run_column(&c.key).is_some() {
            if let Value::Text(v) = &c.value {
                page.columns.push((c.key.clone(), v.clone()));
                continue;
            }
        }
        match search::pushdown(&c) {
            Some(cond) => {
                page.conditions.push(cond);
                if c.kind != Kind::Tag {
                    here.push(c);
                }
            }
            None if c.kind == Kind::Tag => {
                return Err(ApiError::invalid(format!(
                    "tags.{} {}: the runs page compares tags with = and != only",
                    c.key, c.op
                )))
            }
            None => {
                exact = false;
                here.push(c);
            }
        }
    }
    Ok((page, here, exact))
}

/// The order a `sort` parameter names.
pub fn parse_sort(text: &str) -> Result<Sort, ApiError> {
    let (desc, key) = match text.strip_prefix('-') {
        Some(k) => (true, k),
        None => (false, text),
    };
    Ok(match key.split_once('.') {
        _ if key.is_empty() || key == "started" => {
            if desc || key.is_empty() {
                Sort::Newest
            } else {
                Sort::Oldest
            }
        }
        Some(("metrics", k)) if !k.is_empty() => Sort::Metric(k.to_string(), desc),
        Some(("params", k)) if !k.is_empty() => Sort::Param(k.to_string(), desc),
        _ => {
            return Err(ApiError::invalid(format!(
                "sort: {text:.100} is not started, metrics.KEY or params.KEY (with - for descending)"
            )))
        }
    })
}

/// The page of runs the query asks for.
pub async fn list(s: &AppState, filter: &str, sort: Sort, page: usize, per: usize) -> Result<Listed, ApiError> {
    let skip = (page - 1) * per;
    let (mut q, here, exact) = plan(filter)?;
    q.sort = sort;
    let keep = |r: &Run| search::matches_with(&here, |k, key| lookup(r, k, key));
    if exact {
        // The database answers the filter (a param's last-part match is re-checked here).
        q.offset = i64::try_from(skip).unwrap_or(i64::MAX);
        q.limit = i64::try_from(per + 1).unwrap_or(i64::MAX);
        let mut runs: Vec<Run> = s.md.runs_page(&q).await?.into_iter().filter(keep).collect();
        let more = runs.len() > per;
        runs.truncate(per);
        return Ok(Listed { runs, more, tags: Tags::new() });
    }
    // Read newest first in chunks, checking here, until the page and one more are found.
    let chunk = (per as i64 + 1).max(500);
    let (mut found, mut runs) = (0usize, Vec::new());
    q.limit = chunk;
    while q.offset < SCAN_LIMIT {
        let batch = s.md.runs_page(&q).await?;
        let n = batch.len() as i64;
        for r in batch.into_iter().filter(keep) {
            if found >= skip {
                runs.push(r);
            }
            found += 1;
            if runs.len() > per {
                break;
            }
        }
        if runs.len() > per || n < chunk {
            break;
        }
        q.offset += chunk;
    }
    let more = runs.len() > per;
    runs.truncate(per);
    Ok(Listed { runs, more, tags: Tags::new() })
}

/// The tags of the listed runs, when a tag column asks for them.
pub async fn with_tags(s: &AppState, mut l: Listed, columns: &[Column]) -> Result<Listed, ApiError> {
    if columns.iter().any(|c| matches!(c, Column::Tag(_))) {
        let ids: Vec<String> = l.runs.iter().map(|r| r.id.clone()).collect();
        l.tags = s.md.tags_of(&ids).await?;
    }
    Ok(l)
}

/// A chosen column: `metrics.KEY`, `params.KEY`, `tags.KEY` or `data.PATH` (the version of
/// an input).
pub enum Column {
    Metric(String),
    Param(String),
    Tag(String),
    Data(String),
}

impl Column {
    pub fn parse_list(text: &str) -> Result<Vec<Column>, ApiError> {
        let mut out = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()).take(MAX_COLUMNS) {
            let (prefix, key) = part.split_once('.').unwrap_or(("", part));
            out.push(match prefix {
                "metrics" | "metric" => Column::Metric(key.to_string()),
                "params" | "param" => Column::Param(key.to_string()),
                "data" => Column::Data(key.to_string()),
                "tags" | "tag" => Column::Tag(key.to_string()),
                _ => {
                    return Err(ApiError::invalid(format!(
                        "columns: {part} is not metrics.KEY, params.KEY, tags.KEY or data.PATH"
                    )))
                }
            });
        }
        Ok(out)
    }

    fn label(&self) -> String {
        match self {
            Column::Metric(k) => format!("metrics.{k}"),
            Column::Param(k) => format!("params.{k}"),
            Column::Tag(k) => format!("tags.{k}"),
            Column::Data(p) => format!("data.{p}"),
        }
    }

    fn cell(&self, r: &Run, tags: &Tags) -> String {
        match self {
            Column::Metric(k) => r.metrics.get(k).map(|v| format!("{v:.6}")).unwrap_or_else(|| "–".into()),
            Column::Param(k) => match lookup(r, Kind::Param, k) {
                Some(Value::Text(t)) => t,
                _ => "–".into(),
            },
            Column::Tag(k) => tags
                .get(&r.id)
                .and_then(|t| t.iter().find(|(key, _)| key == k))
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| "–".into()),
            Column::Data(p) => r
                .deps
                .iter()
                .find(|d| d.path == *p || d.path.starts_with(&format!("{p}/")))
                .map(|d| d.hash.to_hex()[..12].to_string())
                .unwrap_or_else(|| "–".into()),
        }
    }
}

fn link(v: &View, sort: &str, page: usize, lang: Lang) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    if !v.filter.is_empty() {
        q.append_pair("filter", v.filter);
    }
    if !v.cols.is_empty() {
        q.append_pair("cols", v.cols);
    }
    if !sort.is_empty() {
        q.append_pair("sort", sort);
    }
    let per = v.per;
    q.append_pair("page", &page.to_string());
    q.append_pair("per", &per.to_string());
    q.append_pair("lang", lang.code());
    format!("/runs?{}", q.finish())
}

pub struct View<'a> {
    pub filter: &'a str,
    pub cols: &'a str,
    pub sort: &'a str,
    pub page: usize,
    pub per: usize,
}

/// The sort a header link asks for: this key descending first, then ascending.
fn toggle(current: &str, key: &str) -> String {
    let current = if current.is_empty() { "-started" } else { current };
    if current == format!("-{key}") {
        key.to_string()
    } else {
        format!("-{key}")
    }
}

fn aria(current: &str, key: &str) -> &'static str {
    let current = if current.is_empty() { "-started" } else { current };
    if current == key {
        "ascending"
    } else if current.strip_prefix('-') == Some(key) {
        "descending"
    } else {
        "none"
    }
}

pub fn body(lang: Lang, v: &View, listed: Result<(Listed, Vec<Column>), ApiError>) -> Markup {
    let t = lang.text();
    html! {
        h1 { (t.runs) }
        form method="get" action="/runs" role="search" {
            label for="filter" { (t.filter) }
            input id="filter" name="filter" type="search" size="60" value=(v.filter) placeholder="metrics.acc > 0.9 and params.lr = '0.1'";
            label for="cols" { (t.columns) }
            input id="cols" name="cols" type="text" size="30" value=(v.cols) placeholder="metrics.acc,params.lr,tags.team,data.data";
            input type="hidden" name="lang" value=(lang.code());
            input type="hidden" name="per" value=(v.per);
            @if !v.sort.is_empty() { input type="hidden" name="sort" value=(v.sort); }
            button type="submit" { (t.search) }
        }
        @match listed {
            Err(e) => p.error role="alert" { (e.message) },
            Ok((l, columns)) => {
                @if l.runs.is_empty() {
                    p { (t.no_runs) }
                } @else {
                    form method="get" action="/compare" {
                        input type="hidden" name="lang" value=(lang.code());
                        table {
                            thead { tr {
                                th scope="col" { span.visually-hidden { (t.select) } }
                                th scope="col" { (t.run) } th scope="col" { (t.stage) } th scope="col" { (t.state) }
                                th scope="col" aria-sort=(aria(v.sort, "started")) { a href=(link(v, &toggle(v.sort, "started"), 1, lang)) { (t.started) } }
                                th scope="col" { (t.seconds) } th scope="col" { (t.by) }
                                @if columns.is_empty() {
                                    th scope="col" { (t.metrics) }
                                } @else {
                                    @for c in &columns {
                                        @let key = c.label();
                                        @if matches!(c, Column::Metric(_) | Column::Param(_)) {
                                            th scope="col" .mono aria-sort=(aria(v.sort, &key)) { a href=(link(v, &toggle(v.sort, &key), 1, lang)) { (key) } }
                                        } @else {
                                            th scope="col" .mono { (key) }
                                        }
                                    }
                                }
                            } }
                            tbody {
                                @for r in &l.runs {
                                    tr {
                                        td { input type="checkbox" name="runs" value=(r.id) aria-label={ (t.select) " " (r.id) }; }
                                        td.mono { a href={ "/runs/" (r.id) "?lang=" (lang.code()) } { (r.id.get(..12).unwrap_or(&r.id)) } }
                                        td { (r.stage) }
                                        td { (r.status.as_str()) }
                                        td { (r.started_at) }
                                        td.num { @if let Some(s) = r.duration_secs() { (format!("{s:.2}")) } @else { "–" } }
                                        td { (r.actor) }
                                        @if columns.is_empty() {
                                            td.mono { @for (k, v) in r.metrics.iter().take(6) { (k) "=" (v) " " } }
                                        } @else {
                                            @for c in &columns { td.mono { (c.cell(r, &l.tags)) } }
                                        }
                                    }
                                }
                            }
                        }
                        button type="submit" { (t.compare_selected) }
                    }
                }
                nav.pages aria-label=(t.pages) {
                    @if v.page > 1 { a rel="prev" href=(link(v, v.sort, v.page - 1, lang)) { "← " (t.previous) } }
                    span { (t.page) " " (v.page) }
                    @if l.more { a rel="next" href=(link(v, v.sort, v.page + 1, lang)) { (t.next) " →" } }
                }
            }
        }
    }
}
