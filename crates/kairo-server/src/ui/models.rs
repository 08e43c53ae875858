//! `/models`, `/models/{name}` and the approval inbox `/approvals`: versions with a metric
//! trend across versions, aliases and their history (who, when, why), gate evidence,
//! importance, the deployment; each pending promotion with its evidence and, for a user whose
//! role allows it, approve / reject with a required reason (a form posted to
//! `/ui/models/{name}/promotions/{approve|reject}`, carrying the session's CSRF token).

use kairo_core::auth::{Permission, Target};
use maud::{html, Markup};
use serde_json::Value;

use super::{Lang, Words};
use crate::api_v1::IncidentDto;

/// Whether the caller may do `need` on `model` (everyone may on a server without users).
pub fn may(need: Permission, model: &str) -> bool {
    crate::auth::current().is_none_or(|c| kairo_core::auth::allows(&c.grants, need, &Target::Model(model)))
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "–".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn list(lang: Lang, models: &[Value], pending: usize) -> Markup {
    let t = lang.text();
    html! {
        h1 { (t.models_title) }
        p { a href={ "/approvals?lang=" (lang.code()) } { (t.approvals) " (" (pending) ")" } }
        @if models.is_empty() { p { (t.no_models) } } @else {
            table {
                thead { tr { th scope="col" { (t.model) } th scope="col" { (t.versions) } th scope="col" { (t.latest) } th scope="col" { (t.serving) } th scope="col" { (t.aliases) } } }
                tbody { @for m in models {
                    @let name = m["name"].as_str().unwrap_or("");
                    tr {
                        td { a href={ "/models/" (urlencode(name)) "?lang=" (lang.code()) } { (name) } }
                        td.num { (m["versions"]) }
                        td { (text(&m["latest"])) }
                        td { @if let Some(v) = m["serving"].as_i64() { a href={ "/deployments/" (urlencode(name)) "?lang=" (lang.code()) } { "v" (v) } } @else { "–" } }
                        td { @for a in m["aliases"].as_array().into_iter().flatten() { span.alias { (a.as_str().unwrap_or("")) } " " } }
                    }
                } }
            }
        }
    }
}

pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A line per metric over the versions that have it (x: version number), one chart each.
fn trend(versions: &[Value], metric: &str) -> Markup {
    let points: Vec<(f64, f64)> = versions
        .iter()
        .filter_map(|v| Some((v["version"].as_f64()?, v["metrics"][metric].as_f64().filter(|x| x.is_finite())?)))
        .collect();
    let (w, h, pad) = (320.0, 90.0, 6.0);
    let (x0, x1) = points.iter().fold((f64::MAX, f64::MIN), |(a, b), (x, _)| (a.min(*x), b.max(*x)));
    let (y0, y1) = points.iter().fold((f64::MAX, f64::MIN), |(a, b), (_, y)| (a.min(*y), b.max(*y)));
    let sx = |x: f64| pad + if x1 > x0 { (x - x0) / (x1 - x0) * (w - 2.0 * pad) } else { (w - 2.0 * pad) / 2.0 };
    let sy = |y: f64| h - pad - if y1 > y0 { (y - y0) / (y1 - y0) * (h - 2.0 * pad) } else { (h - 2.0 * pad) / 2.0 };
    let line: Vec<String> = points.iter().map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y))).collect();
    html! {
        figure {
            figcaption.mono { (metric) }
            svg.chart viewBox={ "0 0 " (w) " " (h) } role="img" aria-label={ (metric) " by version" } {
                polyline points=(line.join(" ")) fill="none" stroke="currentColor" stroke-width="1.5" {}
                @for (x, y) in &points {
                    circle cx=(format!("{:.1}", sx(*x))) cy=(format!("{:.1}", sy(*y))) r="3" fill="currentColor" {
                        title { "v" (x) ": " (y) }
                    }
                }
            }
        }
    }
}

fn gates(lang: Lang, gates: &Value) -> Markup {
    let t = lang.text();
    html! {
        @if let Some(rows) = gates.as_array().filter(|g| !g.is_empty()) {
            table.gates {
                thead { tr { th scope="col" { (t.gate) } th scope="col" { (t.result) } th scope="col" { (t.evidence) } } }
                tbody { @for g in rows {
                    tr {
                        td.mono { (g["gate"].as_str().unwrap_or("")) }
                        td { @if g["passed"].as_bool() == Some(true) { span.pass { (t.passed) } } @else { span.fail { (t.failed) } } }
                        td { (g["detail"].as_str().unwrap_or("")) }
                    }
                } }
            }
        } @else { p { (t.no_gates) } }
    }
}

fn importance(lang: Lang, imp: &Value) -> Markup {
    let t = lang.text();
    let features = imp["features"].as_array().cloned().unwrap_or_default();
    let top = features.iter().filter_map(|f| f["importance"].as_f64()).fold(0.0f64, |a, b| a.max(b.abs()));
    html! {
        p { (t.importance_note) " " span.mono { (text(&imp["metric"])) } " (" (t.rows) " " (text(&imp["rows"])) ")" }
        table {
            thead { tr { th scope="col" { (t.feature) } th scope="col" { (t.importance) } th scope="col" { "" } } }
            tbody { @for f in features.iter().take(20) {
                @let v = f["importance"].as_f64().unwrap_or(0.0);
                tr {
                    td.mono { (f["name"].as_str().unwrap_or("")) }
                    td.num { (format!("{v:.4}")) " ± " (format!("{:.4}", f["std"].as_f64().unwrap_or(0.0))) }
                    td { svg.meter viewBox="0 0 100 8" role="img" aria-label=(format!("{v:.4}")) {
                        rect x="0" y="0" height="8" width=(format!("{:.1}", if top > 0.0 { v.abs() / top * 100.0 } else { 0.0 })) {}
                    } }
                }
            } }
        }
    }
}

pub fn one(lang: Lang, doc: &Value, csrf: Option<&str>) -> Markup {
    let t = lang.text();
    let name = doc["name"].as_str().unwrap_or("");
    let versions = doc["versions"].as_array().cloned().unwrap_or_default();
    let mut metric_names: Vec<String> =
        versions.iter().flat_map(|v| v["metrics"].as_object().into_iter().flat_map(|m| m.keys().cloned())).collect();
    metric_names.sort();
    metric_names.dedup();
    let promotions = doc["promotions"].as_array().cloned().unwrap_or_default();
    let pending: Vec<&Value> = promotions.iter().filter(|p| p["status"] == "pending").collect();
    let newest_importance = versions.iter().rev().find(|v| v["importance"].is_object());
    html! {
        h1 { (t.model) " " (name) }
        @if let Some(d) = doc["deployment"].as_object() {
            p { (t.deployment) ": " a href={ "/deployments/" (urlencode(name)) "?lang=" (lang.code()) } {
                "v" (text(&d["stable"])) @if !d["candidate"].is_null() { " → v" (text(&d["candidate"])) " (" (text(&d["strategy"])) " " (text(&d["weight"])) ")" }
            } }
        }
        @if !pending.is_empty() {
            section aria-labelledby="pending-h" {
                h2 id="pending-h" { (t.approvals) " (" (pending.len()) ")" }
                @for p in &pending { (promotion_card(lang, name, p, &versions, None, csrf)) }
            }
        }
        section aria-labelledby="trend-h" {
            h2 id="trend-h" { (t.trend) }
            @if metric_names.is_empty() || versions.len() < 2 { p { (t.no_trend) } } @else {
                div.charts { @for m in metric_names.iter().take(12) { (trend(&versions, m)) } }
            }
        }
        section aria-labelledby="versions-h" {
            h2 id="versions-h" { (t.versions) }
            table {
                thead { tr {
                    th scope="col" { (t.version) } th scope="col" { (t.aliases) } th scope="col" { (t.created) } th scope="col" { (t.by) }
                    th scope="col" { (t.run) } th scope="col" { (t.data_versions) }
                    @for m in metric_names.iter().take(6) { th scope="col" .mono { (m) } }
                } }
                tbody { @for v in versions.iter().rev() {
                    tr {
                        td { "v" (text(&v["version"])) " " a href={ "/models/" (urlencode(name)) "/card?version=" (text(&v["version"])) "&lang=" (lang.code()) } { (t.model_card) } }
                        td { @for a in v["aliases"].as_array().into_iter().flatten() { span.alias { (a.as_str().unwrap_or("")) } " " } }
                        td { (text(&v["created"])) }
                        td { (text(&v["created_by"])) }
                        td.mono { @if let Some(r) = v["run_id"].as_str() { a href={ "/runs/" (r) "?lang=" (lang.code()) } { (r.get(..12).unwrap_or(r)) } } @else { (text(&v["source"])) } }
                        td.mono { @for d in v["lineage"]["data"].as_array().into_iter().flatten() {
                            @let p = d["path"].as_str().unwrap_or("");
                            @let h = d["version"].as_str().unwrap_or("");
                            a href={ "/lineage?target=" (urlencode(&format!("{p}@{h}"))) "&lang=" (lang.code()) } { (p) "@" (h.get(..8).unwrap_or(h)) } " "
                        } }
                        @for m in metric_names.iter().take(6) { td.num { @if let Some(x) = v["metrics"][m].as_f64() { (format!("{x:.4}")) } @else { "–" } } }
                    }
                } }
            }
        }
        section aria-labelledby="history-h" {
            h2 id="history-h" { (t.alias_history) }
            @let history = doc["alias_history"].as_array().cloned().unwrap_or_default();
            @if history.is_empty() { p { "–" } } @else {
                table {
                    thead { tr { th scope="col" { (t.at) } th scope="col" { (t.by) } th scope="col" { (t.alias) } th scope="col" { (t.change) } th scope="col" { (t.reason) } } }
                    tbody { @for e in &history {
                        tr { td.mono { (text(&e["at"])) } td { (text(&e["actor"])) } td { span.alias { (text(&e["alias"])) } }
                             td { "v" (text(&e["from"])) " → v" (text(&e["to"])) } td { (text(&e["reason"])) } }
                    } }
                }
            }
        }
        section aria-labelledby="promotions-h" {
            h2 id="promotions-h" { (t.promotions) }
            @if promotions.is_empty() { p { "–" } } @else {
                table {
                    thead { tr { th scope="col" { (t.version) } th scope="col" { (t.alias) } th scope="col" { (t.state) } th scope="col" { (t.requested_by) } th scope="col" { (t.decided_by) } th scope="col" { (t.reason) } th scope="col" { (t.created) } } }
                    tbody { @for p in promotions.iter().rev() {
                        tr { td { "v" (text(&p["version"])) } td { span.alias { (text(&p["alias"])) } } td { (text(&p["status"])) }
                             td { (text(&p["requested_by"])) } td { (text(&p["decided_by"])) } td { (text(&p["reason"])) } td.mono { (text(&p["created"])) } }
                    } }
                }
            }
        }
        @if let Some(v) = newest_importance {
            section aria-labelledby="imp-h" {
                h2 id="imp-h" { (t.importance) " (v" (text(&v["version"])) ")" }
                (importance(lang, &v["importance"]))
            }
        }
    }
}

/// One pending promotion: the version's facts, its gate evidence, the loop's evaluation when
/// an incident chose it, and the decision form (or why this user cannot decide).
pub fn promotion_card(
    lang: Lang,
    name: &str,
    p: &Value,
    versions: &[Value],
    incident: Option<&IncidentDto>,
    csrf: Option<&str>,
) -> Markup {
    let t = lang.text();
    let version = p["version"].as_i64().unwrap_or(0);
    let v = versions.iter().find(|v| v["version"].as_i64() == Some(version));
    let id = text(&p["id"]);
    html! {
        article.promotion aria-labelledby={ "p-" (id) } {
            h3 id={ "p-" (id) } { (name) " v" (version) " → " span.alias { (text(&p["alias"])) } }
            dl.facts {
                dt { (t.requested_by) } dd { (text(&p["requested_by"])) " · " (text(&p["created"])) }
                @if let Some(v) = v {
                    dt { (t.run) } dd.mono { @if let Some(r) = v["run_id"].as_str() { a href={ "/runs/" (r) "?lang=" (lang.code()) } { (r.get(..12).unwrap_or(r)) } } @else { (text(&v["source"])) } }
                    dt { (t.metrics) } dd.mono { @for (k, x) in v["metrics"].as_object().into_iter().flatten().take(8) { (k) "=" (x.as_f64().map(|x| format!("{x:.4}")).unwrap_or_default()) " " } }
                }
                @if let Some(i) = incident {
                    dt { (t.incident) } dd { a href={ "/incidents/" (i.id) "?lang=" (lang.code()) } { "#" (i.id) " " (i.state) } }
                }
            }
            h4 { (t.gate_evidence) }
            (gates(lang, &p["gates"]))
            @if let Some(ev) = incident.and_then(|i| i.detail.get("evaluation")).filter(|e| e.is_object()) {
                h4 { (t.evaluation) }
                (super::incidents::evaluation(lang, ev))
            }
            @if let Some(i) = incident { (super::incidents::trigger_alert(lang, i)) }
            @if may(Permission::Approve, name) {
                form.decide method="post" action={ "/ui/models/" (urlencode(name)) "/promotions/decide" } {
                    input type="hidden" name="csrf" value=(csrf.unwrap_or(""));
                    input type="hidden" name="version" value=(version);
                    input type="hidden" name="alias" value=(text(&p["alias"]));
                    input type="hidden" name="lang" value=(lang.code());
                    label for={ "reason-" (id) } { (t.reason_required) }
                    textarea id={ "reason-" (id) } name="reason" required rows="2" cols="60" {}
                    div {
                        button type="submit" name="decision" value="approve" { (t.approve) }
                        " "
                        button type="submit" name="decision" value="reject" { (t.reject) }
                    }
                }
            } @else {
                p.note { (t.may_not_approve) }
            }
        }
    }
}

/// The inbox: every model's pending promotions.
pub fn inbox(lang: Lang, items: &[(String, Value, Vec<Value>, Option<IncidentDto>)], csrf: Option<&str>) -> Markup {
    let t = lang.text();
    html! {
        h1 { (t.approvals) }
        @if items.is_empty() { p { (t.no_pending) } }
        @for (name, p, versions, incident) in items {
            (promotion_card(lang, name, p, versions, incident.as_ref(), csrf))
        }
    }
}
