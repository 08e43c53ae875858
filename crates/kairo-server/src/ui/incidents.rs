//! `/incidents` and `/incidents/{id}`: what the closed loop did, step by step, with how long
//! each step took and what it learnt (the same words as `kairo incidents show`).

use kairo_core::time;
use kairo_loop::describe::{duration, facts_text, timeline_text};
use maud::{html, Markup};
use serde_json::Value;

use super::{Lang, Words};
use crate::api_v1::IncidentDto;

fn millis(v: &Option<String>) -> i64 {
    v.as_deref().map(time::millis_of).unwrap_or_else(time::now_millis)
}

pub fn list(lang: Lang, incidents: &[IncidentDto]) -> Markup {
    let t = lang.text();
    html! {
        h1 { (t.incidents) }
        @if incidents.is_empty() { p { (t.no_incidents) } } @else {
            table {
                thead { tr {
                    th scope="col" { "ID" } th scope="col" { (t.state) } th scope="col" { (t.automation) }
                    th scope="col" { (t.model) } th scope="col" { (t.opened) } th scope="col" { (t.took) }
                } }
                tbody { @for i in incidents {
                    tr {
                        td { a href={ "/incidents/" (i.id) "?lang=" (lang.code()) } { (i.id) } }
                        td { (i.state) } td { (i.automation) } td { (i.model) } td { (i.opened) }
                        td.num { (duration(millis(&i.closed) - time::millis_of(&i.opened))) }
                    }
                } }
            }
        }
    }
}

pub fn one(lang: Lang, i: &IncidentDto) -> Markup {
    let t = lang.text();
    let events = i.timeline.as_deref().unwrap_or_default();
    let end = millis(&i.closed);
    let times: Vec<i64> = events.iter().map(|e| time::millis_of(&e.at)).collect();
    let evaluated = i.detail.get("evaluation").filter(|v| v.is_object());
    html! {
        h1 { (t.incident) " " (i.id) ": " (i.state) }
        dl.facts {
            dt { (t.automation) } dd { (i.automation) }
            dt { (t.model) } dd { (i.model) }
            dt { (t.opened) } dd { (i.opened) }
            dt { (t.took) } dd { (duration(end - time::millis_of(&i.opened))) @if i.closed.is_none() { " (" (t.still_open) ")" } }
        }
        @let links = links(lang, i);
        @if !links.is_empty() {
            nav.links aria-label=(t.related) {
                @for (label, href) in &links { a href=(href) { (label) } " " }
            }
        }
        h2 { (t.timeline) }
        table {
            thead { tr { th scope="col" { (t.at) } th scope="col" { (t.took) } th scope="col" { (t.what) } th scope="col" { (t.by) } } }
            tbody { @for (k, e) in events.iter().enumerate() {
                tr {
                    td.mono { (e.at) }
                    td.num { @if k + 1 < events.len() || i.closed.is_none() { (duration(times.get(k + 1).copied().unwrap_or(end) - times[k])) } }
                    td { (timeline_text(&e.kind, &e.payload)) }
                    td { (e.actor) }
                }
            } }
        }
        @if let Some(ev) = evaluated {
            h2 { (t.evaluation) }
            (evaluation(lang, ev))
        }
        (trigger_alert(lang, i))
        @if let Some(f) = i.detail.get("failed").filter(|v: &&Value| v.is_object()) {
            p.error role="alert" { (t.failed_at) " " (f["step"].as_str().unwrap_or("")) ": " (f["reason"].as_str().unwrap_or("")) }
        }
    }
}

/// The loop's champion/challenger evaluation: the test's numbers with their interval, and the
/// per-slice table when the automation asked for slices.
pub fn evaluation(lang: Lang, ev: &Value) -> Markup {
    let t = lang.text();
    let r = &ev["result"];
    let num = |v: &Value| v.as_f64().map(|x| format!("{x:.4}")).unwrap_or_else(|| "–".into());
    let interval = |v: &Value| match (v[0].as_f64(), v[1].as_f64()) {
        (Some(a), Some(b)) => format!("[{a:+.4}, {b:+.4}]"),
        _ => "–".into(),
    };
    let confidence = ev["confidence"].as_f64().map(|c| format!("{:.0}%", c * 100.0)).unwrap_or_default();
    html! {
        @if let Some(s) = ev["skipped"].as_str() { p { (s) } } @else {
            table.evaluation {
                thead { tr {
                    th scope="col" { (t.metric) } th scope="col" { (t.champion) " v" (ev["champion"]["version"]) }
                    th scope="col" { (t.challenger) " v" (ev["challenger"]["version"]) } th scope="col" { (t.difference_col) }
                    th scope="col" { (confidence) " " (t.interval) } th scope="col" { (t.rows) } th scope="col" { (t.test) }
                } }
                tbody { tr {
                    td.mono { (ev["metric"].as_str().unwrap_or("")) }
                    @if r["interval"].is_array() {
                        td.num { (num(&r["champion"])) } td.num { (num(&r["challenger"])) } td.num { (num(&r["difference"])) }
                        td.num { (interval(&r["interval"])) }
                    } @else {
                        td colspan="4" .mono { (facts_text(r)) }
                    }
                    td.num { (ev["rows"]) }
                    td { (ev["test"].as_str().unwrap_or("")) @if let Some(v) = r["verdict"].as_str() { " → " strong { (v) } } }
                } }
            }
            @for group in ev["slices"].as_array().into_iter().flatten() {
                h4 { (t.slices) " · " span.mono { (group["column"].as_str().unwrap_or("")) } }
                table {
                    thead { tr { th scope="col" { (t.slice) } th scope="col" { (t.rows) } th scope="col" { (t.champion) } th scope="col" { (t.challenger) } th scope="col" { (t.difference_col) } th scope="col" { (t.interval) } th scope="col" { "" } } }
                    tbody { @for sl in group["slices"].as_array().into_iter().flatten() {
                        tr.differs[sl["regressed"] == true] {
                            td.mono { (sl["key"].as_str().unwrap_or("")) } td.num { (sl["rows"]) }
                            td.num { (num(&sl["champion"])) } td.num { (num(&sl["challenger"])) } td.num { (num(&sl["difference"])) }
                            td.num { (interval(&sl["interval"])) }
                            td { @if sl["regressed"] == true { span.fail { (t.regressed) } } @else if sl["too_few_rows"] == true { (t.too_few_rows) } }
                        }
                    } }
                }
            }
            @for s in ev["sources"].as_array().into_iter().flatten() {
                p.note { (s["kind"].as_str().unwrap_or("")) ": " (s["rows"]) " " (t.rows) @if let Some(p) = s["path"].as_str() { " (" (p) ")" } }
            }
        }
    }
}

/// The alert that opened an incident, with the values its rule judged (the drift report's
/// headline numbers).
pub fn trigger_alert(lang: Lang, i: &IncidentDto) -> Markup {
    let t = lang.text();
    html! {
        @for trig in i.detail["triggers"].as_array().into_iter().flatten() {
            @let alert = &trig["what"]["alert"];
            @if alert.is_object() {
                h4 { (t.drift_report) " · " span.mono { (alert["monitor"].as_str().unwrap_or("")) } }
                p.mono { (alert["when"].as_str().unwrap_or("")) }
                @if let Some(windows) = alert["evidence"].as_array().filter(|w| !w.is_empty()) {
                    table {
                        thead { tr { th scope="col" { (t.window) } th scope="col" .mono { (alert["metric"].as_str().unwrap_or("")) } } }
                        tbody { @for w in windows {
                            tr {
                                td.mono { a href={ "/monitors/" (super::models::urlencode(alert["monitor"].as_str().unwrap_or(""))) "?lang=" (lang.code()) } { (w["window_start"].as_str().unwrap_or("")) } }
                                td.num { (w["value"].as_f64().map(|x| format!("{x:.4}")).unwrap_or_else(|| w["value"].to_string())) }
                            }
                        } }
                    }
                }
            }
        }
    }
}

/// Everything an incident points at, as (label, link): the triggering alert's monitor or data
/// version, the exported data, the retraining runs, the challenger and champion versions and
/// their lineage, the promotion, the deployment, the verifying monitor.
pub fn links(lang: Lang, i: &IncidentDto) -> Vec<(String, String)> {
    let l = lang.code();
    let enc = super::models::urlencode;
    let d = &i.detail;
    let mut out: Vec<(String, String)> = Vec::new();
    let mut push = |label: String, href: String| {
        if !out.iter().any(|(_, h)| *h == href) {
            out.push((label, href));
        }
    };
    for t in d["triggers"].as_array().into_iter().flatten() {
        let what = &t["what"];
        if let Some(m) = what["alert"]["monitor"].as_str() {
            push(format!("monitor {m}"), format!("/monitors/{}?lang={l}", enc(m)));
        }
        if let (Some(p), Some(h)) = (what["path"].as_str(), what["hash"].as_str()) {
            push(
                format!("{p}@{}", h.get(..8).unwrap_or(h)),
                format!("/lineage?target={}&lang={l}", enc(&format!("{p}@{h}"))),
            );
        }
    }
    if let (Some(p), Some(h)) = (d["export"]["path"].as_str(), d["export"]["hash"].as_str()) {
        push(
            format!("{p}@{}", h.get(..8).unwrap_or(h)),
            format!("/lineage?target={}&lang={l}", enc(&format!("{p}@{h}"))),
        );
    }
    let runs = d["retrain"]["stages"].as_array().into_iter().flatten().filter_map(|s| s["run_id"].as_str());
    for r in runs.chain(d["retrain"]["run_id"].as_str()) {
        push(format!("run {}", r.get(..12).unwrap_or(r)), format!("/runs/{r}?lang={l}"));
    }
    let model = &i.model;
    for v in
        [d["challenger"]["version"].as_i64(), d["evaluation"]["champion"]["version"].as_i64()].into_iter().flatten()
    {
        push(format!("{model} v{v}"), format!("/lineage?target={}&lang={l}", enc(&format!("model:{model}:{v}"))));
    }
    if !d["promotion"].is_null() {
        push(format!("{model}: {}", lang.text().promotions), format!("/models/{}?lang={l}", enc(model)));
    }
    if !d["rollout"].is_null() || !d["rollback"].is_null() {
        push(format!("{} {model}", lang.text().deployment), format!("/deployments/{}?lang={l}", enc(model)));
    }
    if let Some(m) = d["verify"]["monitor"].as_str() {
        push(format!("monitor {m}"), format!("/monitors/{}?lang={l}", enc(m)));
    }
    out
}
