//! `/incidents` and `/incidents/{id}`: what the closed loop did, step by step, with how long
//! each step took and what it learnt (the same words as `kairo incidents show`).

use kairo_core::time;
use kairo_loop::describe::{duration, facts_text, timeline_text};
use maud::{html, Markup};
use serde_json::Value;

use super::Lang;
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
        @if let Some(f) = i.detail.get("failed").filter(|v: &&Value| v.is_object()) {
            p.error role="alert" { (t.failed_at) " " (f["step"].as_str().unwrap_or("")) ": " (f["reason"].as_str().unwrap_or("")) }
        }
    }
}

/// The loop's champion/challenger evaluation.
pub fn evaluation(lang: Lang, ev: &Value) -> Markup {
    let t = lang.text();
    html! {
        @if let Some(s) = ev["skipped"].as_str() { p { (s) } } @else {
            dl.facts {
                dt { (t.champion) } dd { (ev["champion"]["version"]) }
                dt { (t.challenger) } dd { (ev["challenger"]["version"]) }
                dt { (t.rows) } dd { (ev["rows"]) }
                dt { (t.result) } dd.mono { (facts_text(&ev["result"])) }
            }
        }
    }
}
