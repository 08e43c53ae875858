//! `/monitors` and `/monitors/{name}`: each monitor of kairo.yaml; for a deployment monitor,
//! the drift share of its newest windows as a chart (evaluated now, read-only: nothing is
//! raised), the per-feature table of one window (`?window=K`, default the newest with rows)
//! with each feature's distribution against the reference, and the monitor's recent alerts.

use kairo_core::config::MonitorSpec;
use kairo_core::profile::{ColumnProfile, Kind};
use kairo_monitor::sketch::ColumnSketch;
use kairo_watch::Evaluation;
use maud::{html, Markup};

use super::models::urlencode;
use super::{Lang, Words};

/// Windows evaluated for the chart.
pub const WINDOWS: usize = 12;

pub fn list(lang: Lang, monitors: &[(String, MonitorSpec)]) -> Markup {
    let t = lang.text();
    html! {
        h1 { (t.monitors) }
        @if monitors.is_empty() { p { (t.no_monitors) } } @else {
            table {
                thead { tr { th scope="col" { (t.name) } th scope="col" { (t.watches) } th scope="col" { (t.window) } th scope="col" { (t.schedule) } th scope="col" { (t.rules) } } }
                tbody { @for (name, m) in monitors {
                    tr {
                        td { a href={ "/monitors/" (urlencode(name)) "?lang=" (lang.code()) } { (name) } }
                        td { @if let Some(d) = &m.deployment { (t.deployment) " " (d) } @else { (m.reference.as_deref().unwrap_or("")) " ↔ " (m.current.as_deref().unwrap_or("")) } }
                        td { @if let Some(w) = &m.window { (w) } @else if let Some(r) = m.rows { (r) " " (t.rows) } @else { "–" } }
                        td { (m.schedule.as_deref().unwrap_or("–")) }
                        td.num { (m.alerts.len()) }
                    }
                } }
            }
        }
    }
}

/// Shares of a column's values per reference bin or category: (reference, window).
fn shares(p: &ColumnProfile, s: &ColumnSketch) -> Vec<(String, f64, f64)> {
    let (labels, reference): (Vec<String>, Vec<u64>) = if p.kind == Kind::Numeric {
        let n = p.bins.len();
        let label = |i: usize| match i {
            0 => format!("≤ {}", p.edges.first().map(|e| format!("{e:.3}")).unwrap_or_default()),
            i if i + 1 == n => format!("> {}", p.edges.last().map(|e| format!("{e:.3}")).unwrap_or_default()),
            i => format!("{:.3} – {:.3}", p.edges[i - 1], p.edges[i]),
        };
        ((0..n).map(label).collect(), p.bins.clone())
    } else {
        let mut l = p.categories.clone();
        let mut r = p.category_counts.clone();
        l.push("other".into());
        r.push(p.other);
        (l, r)
    };
    let mut current = s.counts.clone();
    if p.kind != Kind::Numeric {
        current.push(s.other + s.unseen.values().sum::<u64>() + s.unseen_more);
    }
    let rt: u64 = reference.iter().sum();
    let ct: u64 = current.iter().sum();
    let share = |x: u64, total: u64| if total > 0 { x as f64 / total as f64 } else { 0.0 };
    labels
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            (l, share(reference.get(i).copied().unwrap_or(0), rt), share(current.get(i).copied().unwrap_or(0), ct))
        })
        .collect()
}

/// Paired bars per bin: the reference (grey) and the window (accent).
fn distribution(rows: &[(String, f64, f64)], label: &str) -> Markup {
    let (w, h) = (240.0, 60.0);
    let top = rows.iter().map(|(_, a, b)| a.max(*b)).fold(0.0f64, f64::max).max(1e-9);
    let step = w / rows.len().max(1) as f64;
    html! {
        svg.dist viewBox={ "0 0 " (w) " " (h) } role="img" aria-label=(label) {
            @for (i, (l, r, c)) in rows.iter().enumerate() {
                @let x = i as f64 * step;
                rect.ref x=(format!("{:.1}", x + step * 0.1)) y=(format!("{:.1}", h - r / top * h)) width=(format!("{:.1}", step * 0.4)) height=(format!("{:.1}", r / top * h)) {
                    title { (l) ": " (format!("{:.1}%", r * 100.0)) " (reference)" }
                }
                rect x=(format!("{:.1}", x + step * 0.5)) y=(format!("{:.1}", h - c / top * h)) width=(format!("{:.1}", step * 0.4)) height=(format!("{:.1}", c / top * h)) {
                    title { (l) ": " (format!("{:.1}%", c * 100.0)) " (window)" }
                }
            }
        }
    }
}

pub struct Alert {
    pub at: String,
    pub what: String,
}

pub fn one(
    lang: Lang,
    name: &str,
    spec: &MonitorSpec,
    e: Option<&Evaluation>,
    window: Option<usize>,
    alerts: &[Alert],
) -> Markup {
    let t = lang.text();
    let chosen = e.and_then(|e| {
        window.filter(|k| *k < e.windows.len()).or_else(|| e.windows.iter().rposition(|w| w.sketch.rows > 0))
    });
    html! {
        h1 { (t.monitor) " " (name) }
        dl.facts {
            @if let Some(d) = &spec.deployment {
                dt { (t.deployment) } dd { a href={ "/deployments/" (urlencode(d)) "?lang=" (lang.code()) } { (d) } @if let Some(e) = e { " v" (e.version) } }
            }
            dt { (t.drift_threshold) } dd { (format!("{:.0}%", spec.drift_share.unwrap_or(0.5) * 100.0)) }
            dt { (t.rules) } dd { @for a in &spec.alerts { span.mono { (a.when) } @if a.for_windows > 1 { " ×" (a.for_windows) } "; " } }
        }
        @match e {
            None => p { (t.file_monitor) " " span.mono { "kairo monitor check --monitor " (name) } },
            Some(e) => {
                section aria-labelledby="share-h" {
                    h2 id="share-h" { (t.drift_share_chart) }
                    (share_chart(e, spec.drift_share.unwrap_or(0.5), lang, name))
                    table {
                        thead { tr { th scope="col" { (t.window) } th scope="col" { (t.rows) } th scope="col" { (t.drifted) } th scope="col" { (t.result) } } }
                        tbody { @for (k, w) in e.windows.iter().enumerate().rev() {
                            tr.differs[Some(k) == chosen] {
                                td.mono { a href={ "/monitors/" (urlencode(name)) "?window=" (k) "&lang=" (lang.code()) } { (kairo_core::time::millis_to_string(w.window.start_ms)) } }
                                td.num { (w.sketch.rows) }
                                td.num { (w.report.drifted) " / " (w.report.judged) }
                                td { @if w.sketch.rows == 0 { "–" } @else if w.report.dataset_drift { span.fail { (t.drift) } } @else { span.pass { (t.no_drift) } } }
                            }
                        } }
                    }
                }
                @if let Some(k) = chosen {
                    @let w = &e.windows[k];
                    section aria-labelledby="features-h" {
                        h2 id="features-h" { (t.features) " · " (kairo_core::time::millis_to_string(w.window.start_ms)) }
                        table {
                            thead { tr { th scope="col" { (t.feature) } th scope="col" { (t.method) } th scope="col" { (t.score) } th scope="col" { (t.threshold) } th scope="col" { (t.result) } th scope="col" { (t.nulls) } th scope="col" { (t.distribution) } } }
                            tbody { @for c in &w.report.columns {
                                @let dist = e.profile.columns.iter().position(|p| p.name == c.name).and_then(|i| Some((&e.profile.columns[i], w.sketch.columns.get(i)?)));
                                tr {
                                    td.mono { (c.name) }
                                    td { (c.method.unwrap_or("–")) }
                                    td.num { @if let Some(s) = c.score { (format!("{s:.4}")) } @else { "–" } }
                                    td.num { @if let Some(s) = c.threshold { (format!("{s:.4}")) } @else { "–" } }
                                    td { @match c.drift { Some(true) => span.fail { (t.drift) }, Some(false) => span.pass { (t.no_drift) }, None => span { (c.findings.join("; ")) } } }
                                    td.num { (format!("{:.1}% → {:.1}%", c.reference_null_share * 100.0, c.current_null_share * 100.0)) }
                                    td { @if let Some((p, s)) = dist { (distribution(&shares(p, s), &c.name)) } }
                                }
                            } }
                        }
                        p.note { (t.distribution_note) }
                    }
                }
            }
        }
        section aria-labelledby="alerts-h" {
            h2 id="alerts-h" { (t.recent_alerts) }
            @if alerts.is_empty() { p { (t.no_alerts) } } @else {
                ul { @for a in alerts { li { time datetime=(a.at) { (a.at) } " — " (a.what) } } }
            }
        }
    }
}

fn share_chart(e: &Evaluation, threshold: f64, lang: Lang, name: &str) -> Markup {
    let (w, h) = (640.0, 100.0);
    let n = e.windows.len().max(1);
    let step = w / n as f64;
    html! {
        svg.bars viewBox={ "0 0 " (w) " " (h) } role="img" aria-label=(lang.text().drift_share_chart) preserveAspectRatio="none" {
            line x1="0" x2=(w) y1=(format!("{:.1}", h - threshold * h)) y2=(format!("{:.1}", h - threshold * h)) stroke="#9a3412" stroke-dasharray="4 3" {}
            @for (k, win) in e.windows.iter().enumerate() {
                @if win.sketch.rows > 0 {
                    a href={ "/monitors/" (urlencode(name)) "?window=" (k) "&lang=" (lang.code()) } {
                        rect.drifted[win.report.dataset_drift] x=(format!("{:.1}", k as f64 * step + step * 0.15)) y=(format!("{:.1}", h - win.report.share * h))
                            width=(format!("{:.1}", step * 0.7)) height=(format!("{:.1}", (win.report.share * h).max(1.0))) {
                            title { (kairo_core::time::millis_to_string(win.window.start_ms)) ": " (format!("{:.0}%", win.report.share * 100.0)) }
                        }
                    }
                }
            }
        }
    }
}
