//! `/compare?runs=ID&runs=ID` (or `runs=ID,ID`): up to 500 runs side by side. Only the rows
//! that differ by default (`all=1` shows every row), each metric as an inline SVG bar chart,
//! and "why are these different?": which params, data versions, commit, environment and
//! upstream runs differ — an upstream run shared by several runs is one the run cache reused.

use std::collections::{BTreeMap, BTreeSet};

use kairo_core::run::Run;
use maud::{html, Markup};

use super::{Lang, Words};
use crate::error::ApiError;
use crate::AppState;

pub const MAX_RUNS: usize = 500;
/// Runs side by side (columns) up to this many; more are listed one per row.
const SIDE_BY_SIDE: usize = 8;
const MAX_CHARTS: usize = 12;

/// What a row is about, in the order of the summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Aspect {
    Run,
    Code,
    Environment,
    Data,
    Upstream,
    Param,
    Metric,
}

pub struct Row {
    pub aspect: Aspect,
    pub key: String,
    pub values: Vec<String>,
    /// Numbers of a metric row, for its chart.
    pub numbers: Vec<Option<f64>>,
}

impl Row {
    pub fn differs(&self) -> bool {
        self.values.windows(2).any(|w| w[0] != w[1])
    }
}

pub struct Compared {
    pub runs: Vec<Run>,
    pub rows: Vec<Row>,
}

/// The run ids of the query (`runs` repeated or comma-separated), in order, without repeats.
pub fn ids(query: &str) -> Result<Vec<String>, ApiError> {
    let mut out: Vec<String> = Vec::new();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        if k != "runs" {
            continue;
        }
        for id in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if !id.bytes().all(|b| b.is_ascii_hexdigit()) || id.len() > 64 {
                return Err(ApiError::invalid(format!("runs: {id:.70} is not a run id")));
            }
            let id = id.to_ascii_lowercase();
            if !out.contains(&id) {
                out.push(id);
            }
            if out.len() > MAX_RUNS {
                return Err(ApiError::invalid(format!(
                    "runs: at most {MAX_RUNS} runs are compared at once; narrow the selection"
                )));
            }
        }
    }
    Ok(out)
}

pub async fn load(s: &AppState, ids: &[String]) -> Result<Compared, ApiError> {
    let mut found = s.md.runs_by_id(ids).await?;
    // Short ids typed by hand: resolve each (an unknown or ambiguous one is named).
    for id in ids {
        if !found.iter().any(|r| r.id == *id) {
            let run = s.md.run(id).await.map_err(|e| match e {
                kairo_store::runs::RunLookupError::Store(e) => ApiError::from(e),
                other => ApiError::not_found(other.to_string()),
            })?;
            if !found.iter().any(|r| r.id == run.id) {
                found.push(run);
            }
        }
    }
    // In the order asked for (a short id stands where it was given).
    let position = |r: &Run| ids.iter().position(|i| r.id.starts_with(i.as_str())).unwrap_or(usize::MAX);
    found.sort_by_key(position);
    let hashes: Vec<_> =
        found.iter().flat_map(|r| r.deps.iter().map(|d| d.hash)).collect::<BTreeSet<_>>().into_iter().collect();
    let producers = s.md.producers(&hashes).await?;
    Ok(Compared { rows: rows(&found, &producers), runs: found })
}

fn rows(runs: &[Run], producers: &[kairo_store::runs::Producer]) -> Vec<Row> {
    let text = |aspect, key: &str, f: &dyn Fn(&Run) -> String| Row {
        aspect,
        key: key.to_string(),
        values: runs.iter().map(f).collect(),
        numbers: Vec::new(),
    };
    let short = |h: &kairo_core::Hash| h.to_hex()[..12].to_string();
    let mut rows = vec![
        text(Aspect::Run, "stage", &|r| r.stage.clone()),
        text(Aspect::Run, "status", &|r| r.status.as_str().to_string()),
        text(Aspect::Run, "started", &|r| r.started_at.clone()),
        text(Aspect::Run, "seconds", &|r| r.duration_secs().map(|s| format!("{s:.2}")).unwrap_or_default()),
        text(Aspect::Run, "by", &|r| format!("{} · {}", r.actor, r.trigger)),
        text(Aspect::Code, "commit", &|r| {
            let c = r.git.commit.as_deref().map(|c| c.get(..12).unwrap_or(c)).unwrap_or("–");
            if r.git.dirty.is_some() {
                format!("{c} + uncommitted")
            } else {
                c.to_string()
            }
        }),
        text(Aspect::Code, "command", &|r| r.cmd.clone()),
        text(Aspect::Environment, "environment", &|r| format!("{} {}", r.env.spec, short(&r.env.hash))),
    ];
    let paths: BTreeSet<&str> = runs.iter().flat_map(|r| r.deps.iter().map(|d| d.path.as_str())).collect();
    for path in &paths {
        let dep = |r: &Run| r.deps.iter().find(|d| d.path == *path).map(|d| d.hash);
        rows.push(text(Aspect::Data, path, &|r| dep(r).map(|h| short(&h)).unwrap_or_else(|| "–".into())));
        let upstream = |r: &Run| {
            dep(r)
                .and_then(|h| producers.iter().find(|p| p.hash == h))
                .map(|p| format!("{} {}", p.stage, p.run_id.get(..12).unwrap_or(&p.run_id)))
                .unwrap_or_else(|| "–".into())
        };
        if runs.iter().any(|r| upstream(r) != "–") {
            rows.push(text(Aspect::Upstream, path, &upstream));
        }
    }
    let mut params: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (i, r) in runs.iter().enumerate() {
        for (file, kv) in &r.params {
            for (k, v) in kv {
                let key = if file == "mlflow" || file == "params.yaml" { k.clone() } else { format!("{file}:{k}") };
                let cell = params.entry(key).or_insert_with(|| vec!["–".into(); runs.len()]);
                cell[i] = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
            }
        }
    }
    for (key, values) in params {
        rows.push(Row { aspect: Aspect::Param, key, values, numbers: Vec::new() });
    }
    let metrics: BTreeSet<&str> = runs.iter().flat_map(|r| r.metrics.keys().map(String::as_str)).collect();
    for key in metrics {
        let numbers: Vec<Option<f64>> = runs.iter().map(|r| r.metrics.get(key).copied()).collect();
        let values = numbers.iter().map(|n| n.map(|v| format!("{v:.6}")).unwrap_or_else(|| "–".into())).collect();
        rows.push(Row { aspect: Aspect::Metric, key: key.to_string(), values, numbers });
    }
    rows
}

fn aspect_label(lang: Lang, a: Aspect) -> &'static str {
    let t = lang.text();
    match a {
        Aspect::Run => t.run,
        Aspect::Code => t.code,
        Aspect::Environment => t.environment,
        Aspect::Data => t.data_versions,
        Aspect::Upstream => t.upstream_runs,
        Aspect::Param => t.params,
        Aspect::Metric => t.metrics,
    }
}

/// One bar per run (in the order of the table), its value in the bar's tooltip.
fn bars(runs: &[Run], numbers: &[Option<f64>], label: &str) -> Markup {
    let (w, h) = (640.0, 120.0);
    let finite: Vec<f64> = numbers.iter().flatten().copied().filter(|v| v.is_finite()).collect();
    let lo = finite.iter().copied().fold(f64::INFINITY, f64::min).min(0.0);
    let hi = finite.iter().copied().fold(f64::NEG_INFINITY, f64::max).max(0.0);
    let span = if hi > lo { hi - lo } else { 1.0 };
    let step = w / numbers.len().max(1) as f64;
    let zero = h - (0.0 - lo) / span * h;
    html! {
        svg.bars viewBox={ "0 0 " (w) " " (h) } role="img" aria-label=(label) preserveAspectRatio="none" {
            @for (i, (n, r)) in numbers.iter().zip(runs).enumerate() {
                @if let Some(v) = n.filter(|v| v.is_finite()) {
                    @let y = h - (v - lo) / span * h;
                    rect x=(format!("{:.2}", i as f64 * step + step * 0.1)) y=(format!("{:.2}", y.min(zero)))
                        width=(format!("{:.2}", step * 0.8)) height=(format!("{:.2}", (zero - y).abs().max(0.5))) {
                        title { (r.id.get(..12).unwrap_or(&r.id)) ": " (v) }
                    }
                }
            }
        }
    }
}

pub fn body(lang: Lang, c: &Compared, all: bool, link: &dyn Fn(bool) -> String) -> Markup {
    let t = lang.text();
    let shown: Vec<&Row> = c.rows.iter().filter(|r| all || r.differs()).collect();
    let differing: Vec<&Row> = c.rows.iter().filter(|r| r.differs()).collect();
    let aspects: BTreeMap<Aspect, Vec<&str>> = differing.iter().fold(BTreeMap::new(), |mut m, r| {
        m.entry(r.aspect).or_insert_with(Vec::new).push(r.key.as_str());
        m
    });
    let charts: Vec<&Row> = shown.iter().copied().filter(|r| r.aspect == Aspect::Metric).take(MAX_CHARTS).collect();
    let side_by_side = c.runs.len() <= SIDE_BY_SIDE;
    html! {
        h1 { (t.compare) " (" (c.runs.len()) ")" }
        p {
            @if all {
                (t.showing_all) " · " a href=(link(false)) { (t.only_differences) }
            } @else {
                (t.showing_differences) " · " a href=(link(true)) { (t.show_all) }
            }
        }
        section aria-labelledby="why-h" {
            h2 id="why-h" { (t.why_different) }
            @if aspects.is_empty() {
                p { (t.no_differences) }
            } @else {
                ul.why {
                    @for (aspect, keys) in &aspects {
                        @if *aspect != Aspect::Metric && *aspect != Aspect::Run {
                            li { strong { (aspect_label(lang, *aspect)) } ": "
                                @for (i, k) in keys.iter().take(20).enumerate() { @if i > 0 { ", " } span.mono { (k) } }
                                @if keys.len() > 20 { " … (" (keys.len()) ")" }
                            }
                        }
                    }
                    @if let Some(keys) = aspects.get(&Aspect::Metric) {
                        li { strong { (t.metrics) } ": " (keys.len()) " " (t.differ) }
                    }
                }
                @if aspects.contains_key(&Aspect::Upstream) {
                    p.note { (t.upstream_note) }
                }
            }
        }
        @if !charts.is_empty() {
            section aria-labelledby="charts-h" {
                h2 id="charts-h" { (t.charts) }
                div.charts {
                    @for r in &charts {
                        figure { figcaption.mono { (r.key) } (bars(&c.runs, &r.numbers, &r.key)) }
                    }
                }
            }
        }
        section aria-labelledby="table-h" {
            h2 id="table-h" { (t.details) }
            div.scroll {
                @if side_by_side {
                    table {
                        thead { tr {
                            th scope="col" { (t.kind) } th scope="col" { (t.name) }
                            @for r in &c.runs { th scope="col" .mono { a href={ "/runs/" (r.id) "?lang=" (lang.code()) } { (r.id.get(..12).unwrap_or(&r.id)) } } }
                        } }
                        tbody {
                            @for row in &shown {
                                tr.differs[row.differs()] {
                                    td { (aspect_label(lang, row.aspect)) } th scope="row" .mono { (row.key) }
                                    @for v in &row.values { td.mono { (v) } }
                                }
                            }
                        }
                    }
                } @else {
                    table {
                        thead { tr {
                            th scope="col" { (t.run) }
                            @for row in &shown { th scope="col" .mono title=(aspect_label(lang, row.aspect)) { (row.key) } }
                        } }
                        tbody {
                            @for (i, r) in c.runs.iter().enumerate() {
                                tr {
                                    th scope="row" .mono { a href={ "/runs/" (r.id) "?lang=" (lang.code()) } { (r.id.get(..12).unwrap_or(&r.id)) } }
                                    @for row in &shown { td.mono { (row.values[i]) } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
