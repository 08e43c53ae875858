//! `/deployments` and `/deployments/{name}`: stable and candidate versions, the traffic
//! split and canary state, the versions that served 100%, every change with its reason (a
//! rollback says why), and requests / errors / latency per version and day as `kairo serve`
//! recorded them (`serving_days`, every replica summed).

use std::collections::BTreeMap;

use kairo_core::latency::Histogram;
use kairo_store::kpi::ServingDay;
use maud::{html, Markup};
use serde_json::Value;

use super::models::urlencode;
use super::{Lang, Words};

/// Days of serving health shown.
pub const DAYS: i64 = 14;

fn text(v: &Value) -> String {
    match v {
        Value::Null => "–".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn list(lang: Lang, deployments: &[kairo_core::serving::Deployment]) -> Markup {
    let t = lang.text();
    html! {
        h1 { (t.deployments) }
        @if deployments.is_empty() { p { (t.no_deployments) } } @else {
            table {
                thead { tr { th scope="col" { (t.model) } th scope="col" { (t.stable) } th scope="col" { (t.candidate) } th scope="col" { (t.strategy) } th scope="col" { (t.traffic) } } }
                tbody { @for d in deployments {
                    tr {
                        td { a href={ "/deployments/" (urlencode(&d.name)) "?lang=" (lang.code()) } { (d.name) } }
                        td { "v" (d.stable_version) }
                        td { @if let Some(c) = d.candidate_version { "v" (c) } @else { "–" } }
                        td { (d.strategy.as_str()) }
                        td { @if d.candidate_version.is_some() { (d.weight) "%" " → v" (d.candidate_version.unwrap_or(0)) } @else { "100% v" (d.stable_version) } }
                    }
                } }
            }
        }
    }
}

/// Per (version, day): requests, client and server errors, the merged latency histogram.
pub fn health(days: &[ServingDay]) -> BTreeMap<(i64, i64), (i64, i64, i64, Histogram)> {
    let mut out: BTreeMap<(i64, i64), (i64, i64, i64, Histogram)> = BTreeMap::new();
    for d in days {
        let e = out.entry((d.version, d.day_ms)).or_insert_with(|| (0, 0, 0, Histogram::new()));
        e.0 += d.requests;
        e.1 += d.client_errors;
        e.2 += d.server_errors;
        e.3.merge(&d.latency);
    }
    out
}

pub fn one(lang: Lang, doc: &Value, days: &[ServingDay]) -> Markup {
    let t = lang.text();
    let name = doc["name"].as_str().unwrap_or("");
    let rows = health(days);
    let ms = |h: &Histogram, q: f64| h.quantile_ms(q).map(|v| format!("{v:.2}")).unwrap_or_else(|| "–".into());
    let events = doc["events"].as_array().cloned().unwrap_or_default();
    html! {
        h1 { (t.deployment) " " (name) }
        @if doc["stable"].is_null() {
            p { (t.not_deployed) }
        } @else {
            dl.facts {
                dt { (t.stable) } dd { a href={ "/models/" (urlencode(name)) "?lang=" (lang.code()) } { "v" (text(&doc["stable"])) } }
                dt { (t.candidate) } dd { @if doc["candidate"].is_null() { "–" } @else { "v" (text(&doc["candidate"])) } }
                dt { (t.strategy) } dd { (text(&doc["strategy"])) }
                dt { (t.traffic) } dd {
                    @if let (Some(c), Some(w)) = (doc["candidate"].as_i64(), doc["weight"].as_u64()) {
                        (100 - w.min(100)) "% v" (text(&doc["stable"])) " · " (w) "% v" (c) " "
                        svg.meter viewBox="0 0 100 8" role="img" aria-label=(format!("{w}% to v{c}")) {
                            rect x="0" y="0" height="8" width="100" fill="#d0d7de" {}
                            rect x="0" y="0" height="8" width=(w.min(100)) {}
                        }
                    } @else { "100% v" (text(&doc["stable"])) }
                }
                dt { (t.generation) } dd { (text(&doc["generation"])) }
                dt { (t.served_100) } dd { @for v in doc["revisions"].as_array().into_iter().flatten() { "v" (v) " " } }
            }
        }
        section aria-labelledby="health-h" {
            h2 id="health-h" { (t.serving_health) " (" (DAYS) " " (t.days) ")" }
            @if rows.is_empty() { p { (t.no_traffic) } } @else {
                table {
                    thead { tr { th scope="col" { (t.day) } th scope="col" { (t.version) } th scope="col" { (t.requests) } th scope="col" { "4xx" } th scope="col" { "5xx" } th scope="col" { "p50 ms" } th scope="col" { "p99 ms" } } }
                    tbody { @for ((version, day), (n, c4, c5, h)) in rows.iter().rev() {
                        tr { td.mono { (kairo_core::time::millis_to_string(*day).get(..10).unwrap_or("")) } td { "v" (version) }
                             td.num { (n) } td.num { (c4) } td.num { (c5) } td.num { (ms(h, 0.5)) } td.num { (ms(h, 0.99)) } }
                    } }
                }
            }
        }
        section aria-labelledby="changes-h" {
            h2 id="changes-h" { (t.changes) }
            @if events.is_empty() { p { "–" } } @else {
                table {
                    thead { tr { th scope="col" { (t.at) } th scope="col" { (t.what) } th scope="col" { (t.by) } th scope="col" { (t.reason) } } }
                    tbody { @for e in &events {
                        tr.rollback[e["kind"].as_str().is_some_and(|k| k.contains("rolled_back") || k.contains("rollback"))] {
                            td.mono { (text(&e["at"])) } td { (text(&e["kind"])) } td { (text(&e["actor"])) }
                            td { (text(&e["reason"])) @if !e["error"].is_null() { " " span.error { (text(&e["error"])) } } }
                        }
                    } }
                }
            }
        }
    }
}
