//! `/runs/{id}`: one run — what ran, where, from which code and environment, its params,
//! metrics (with a chart of each metric's history when it has one), inputs and outputs, and
//! the head of its captured output.

use kairo_core::run::Run;
use maud::{html, Markup};

use super::Lang;
use crate::error::ApiError;
use crate::AppState;

/// At most this much of a run's captured output is shown.
const LOG_HEAD: usize = 64 * 1024;

pub struct Loaded {
    pub run: Run,
    /// Metric → (step, value) points, oldest first, for metrics with more than one point.
    pub histories: Vec<(String, Vec<(i64, f64)>)>,
    pub log: Option<(String, bool)>,
}

pub async fn load(s: &AppState, id: &str) -> Result<Loaded, ApiError> {
    let run = s.md.run(id).await.map_err(|e| match e {
        kairo_store::runs::RunLookupError::Store(e) => ApiError::from(e),
        other => ApiError::not_found(other.to_string()),
    })?;
    let mut histories = Vec::new();
    for key in run.metrics.keys().take(12) {
        let points = s.md.metric_history(&run.id, key).await?;
        if points.len() > 1 {
            histories.push((key.clone(), points.iter().map(|p| (p.step, p.value)).collect()));
        }
    }
    let log = match run.log {
        Some(hash) => {
            let objects = s.objects.clone();
            let bytes = tokio::task::spawn_blocking(move || objects.read(&hash)).await.ok().and_then(Result::ok);
            bytes.map(|b| {
                let cut = b.len() > LOG_HEAD;
                (String::from_utf8_lossy(&b[..b.len().min(LOG_HEAD)]).into_owned(), cut)
            })
        }
        None => None,
    };
    Ok(Loaded { run, histories, log })
}

/// A metric's history as an inline SVG line (no script; the CSP allows inline SVG markup).
fn chart(points: &[(i64, f64)], label: &str) -> Markup {
    let finite: Vec<(f64, f64)> = points.iter().filter(|(_, v)| v.is_finite()).map(|(s, v)| (*s as f64, *v)).collect();
    let (w, h, pad) = (320.0, 80.0, 4.0);
    let (x0, x1) = finite.iter().fold((f64::MAX, f64::MIN), |(a, b), (x, _)| (a.min(*x), b.max(*x)));
    let (y0, y1) = finite.iter().fold((f64::MAX, f64::MIN), |(a, b), (_, y)| (a.min(*y), b.max(*y)));
    let sx = |x: f64| pad + if x1 > x0 { (x - x0) / (x1 - x0) * (w - 2.0 * pad) } else { (w - 2.0 * pad) / 2.0 };
    let sy = |y: f64| h - pad - if y1 > y0 { (y - y0) / (y1 - y0) * (h - 2.0 * pad) } else { (h - 2.0 * pad) / 2.0 };
    let path: Vec<String> = finite.iter().map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y))).collect();
    html! {
        svg.chart viewBox={ "0 0 " (w) " " (h) } role="img" aria-label=(label) {
            polyline points=(path.join(" ")) fill="none" stroke="currentColor" stroke-width="1.5" {}
        }
    }
}

pub fn body(lang: Lang, l: &Loaded) -> Markup {
    let t = lang.text();
    let r = &l.run;
    let short = |h: &kairo_core::Hash| h.to_hex()[..12].to_string();
    html! {
        h1 { (t.run) " " span.mono { (r.id) } }
        dl.facts {
            dt { (t.stage) } dd { (r.stage) }
            dt { (t.state) } dd { (r.status.as_str()) @if let Some(c) = r.exit_code { " (exit " (c) ")" } }
            @if let Some(m) = &r.message { dt { (t.message) } dd { (m.lines().next().unwrap_or("")) } }
            dt { (t.by) } dd { (r.actor) " · " (r.trigger) " · " (r.host) " · " (r.executor) }
            dt { (t.started) } dd { (r.started_at) @if let Some(s) = r.duration_secs() { " (" (format!("{s:.2}")) " s)" } }
            dt { (t.code) } dd.mono {
                (r.git.commit.as_deref().unwrap_or("–")) " " (r.git.branch.as_deref().unwrap_or(""))
                @if r.git.dirty.is_some() { " " (t.uncommitted) }
            }
            dt { (t.command) } dd.mono { (r.cmd) }
            dt { (t.environment) } dd.mono { (r.env.spec) " " (short(&r.env.hash)) }
            dt { (t.cache_key) } dd.mono { (short(&r.cache_key)) @if !r.cacheable { " (" (t.not_cacheable) ")" } }
            @if let Some(rep) = &r.reproduces { dt { (t.reproduces) } dd.mono { a href={ "/runs/" (rep) } { (rep) } } }
        }
        h2 { (t.params) }
        @if r.params.is_empty() { p { "–" } } @else {
            table { thead { tr { th scope="col" { (t.name) } th scope="col" { (t.value) } th scope="col" { (t.file) } } }
                tbody { @for (file, kv) in &r.params { @for (k, v) in kv {
                    tr { td.mono { (k) } td.mono { (v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())) } td { (file) } }
                } } }
            }
        }
        h2 { (t.metrics) }
        @if r.metrics.is_empty() { p { "–" } } @else {
            table { thead { tr { th scope="col" { (t.name) } th scope="col" { (t.value) } th scope="col" { (t.history) } } }
                tbody { @for (k, v) in &r.metrics {
                    tr {
                        td.mono { (k) } td.num { (v) }
                        td { @if let Some((_, pts)) = l.histories.iter().find(|(hk, _)| hk == k) { (chart(pts, k)) } }
                    }
                } }
            }
        }
        h2 { (t.inputs_outputs) }
        table { thead { tr { th scope="col" { (t.path) } th scope="col" { (t.kind) } th scope="col" { (t.version) } th scope="col" { "" } } }
            tbody {
                @for d in &r.deps { tr { td.mono { (d.path) } td { (d.kind) } td.mono { (short(&d.hash)) } td { (t.input) @if d.dataset { " · " (t.dataset) } } } }
                @for o in &r.outs { tr { td.mono { (o.path) } td { (o.kind) } td.mono { (short(&o.hash)) } td { (t.output) } } }
            }
        }
        @if let Some((text, cut)) = l.log.as_ref().filter(|(text, _)| !text.is_empty()) {
            h2 { (t.log) }
            pre.log { (text) }
            @if *cut { p { (t.log_cut) } }
        }
    }
}
