//! The automations of a project as `kairo automations ls --json` and `GET /api/v1/automations`
//! give them: model, triggers (with a schedule's next firing), open and last incident; and an
//! incident's timeline as words (`kairo incidents show` and the web UI).

use kairo_core::automation::{Cron, Trigger};
use kairo_core::time;
use kairo_data::Project;
use kairo_store::incidents::Incident;
use kairo_store::Metadata;
use serde_json::{json, Value};

use crate::Result;

pub async fn automations(project: &Project, md: &Metadata) -> Result<Vec<Value>> {
    let config = project.current_config()?;
    let incidents = md.incidents(false, 10_000).await?;
    let now = time::now_millis();
    let mut rows = Vec::new();
    for (name, spec) in &config.automations {
        let mine: Vec<&Incident> = incidents.iter().filter(|i| &i.automation == name).collect();
        let open = mine.iter().find(|i| !i.state.is_final());
        let last = mine.first();
        let triggers: Vec<String> = spec
            .on
            .iter()
            .map(|t| match t {
                Trigger::Alert { monitor } => format!("alert of {}", monitor.value),
                Trigger::Schedule(c) => {
                    let next = Cron::parse(&c.value).ok().and_then(|c| c.next_after(now));
                    format!(
                        "schedule \"{}\" (next {})",
                        c.value,
                        next.map(time::millis_to_string).unwrap_or_else(|| "never".into())
                    )
                }
                Trigger::Data(p) => format!("new version of {}", p.value),
            })
            .collect();
        rows.push(json!({
            "name": name, "model": spec.model.value, "on": triggers,
            "open_incident": open.map(|i| json!({"id": i.id, "state": i.state})),
            "last_incident": last.map(|i| json!({"id": i.id, "state": i.state, "opened": time::millis_to_string(i.opened_ms)})),
            "incidents": mine.len(),
        }));
    }
    Ok(rows)
}

/// One event of an incident's timeline as a line: how it opened or who joined, or a step and
/// what it learnt.
pub fn timeline_text(kind: &str, payload: &Value) -> String {
    match kind {
        "incident.opened" => format!("opened by {}", trigger_text(&payload["trigger"])),
        "incident.joined" => format!("joined by {}", trigger_text(payload)),
        "incident.advanced" => {
            let (from, to) = (payload["from"].as_str().unwrap_or(""), payload["to"].as_str().unwrap_or(""));
            let facts = facts_text(&payload["facts"]);
            if from == to {
                format!("{to}: {facts}")
            } else {
                format!("{from} -> {to}{}", if facts.is_empty() { String::new() } else { format!(": {facts}") })
            }
        }
        other => other.to_string(),
    }
}

fn trigger_text(t: &Value) -> String {
    let what = &t["what"];
    match what["kind"].as_str() {
        Some("alert") => format!(
            "alert of monitor {}: {}",
            what["alert"]["monitor"].as_str().unwrap_or(""),
            what["alert"]["when"].as_str().unwrap_or("")
        ),
        Some("schedule") => format!("schedule \"{}\"", what["cron"].as_str().unwrap_or("")),
        Some("data") => format!("new version of {}", what["path"].as_str().unwrap_or("")),
        Some("manual") => format!("hand ({})", what["by"].as_str().unwrap_or("")),
        _ => t["key"].as_str().unwrap_or("").to_string(),
    }
}

/// `key=value` pairs of a JSON object, one level deep, for a timeline line.
pub fn facts_text(v: &Value) -> String {
    let Some(m) = v.as_object() else { return String::new() };
    m.iter()
        .filter(|(k, v)| !v.is_null() && !k.ends_with("_ms") && k.as_str() != "waiting_on")
        .map(|(k, v)| match v {
            Value::Object(_) => format!("{k}: {{{}}}", facts_text(v)),
            Value::Array(a) if a.iter().any(Value::is_object) => {
                format!("{k}: [{}]", a.iter().map(facts_text).collect::<Vec<_>>().join("; "))
            }
            Value::String(s) if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) => {
                format!("{k}={}", &s[..12])
            }
            Value::String(s) => format!("{k}={s}"),
            Value::Number(n) if n.is_f64() => format!("{k}={:.4}", n.as_f64().unwrap_or(f64::NAN)),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `1.2 s`, `3 min 4 s`, `2 h 5 min`.
pub fn duration(ms: i64) -> String {
    match ms {
        ms if ms < 60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        ms if ms < 3_600_000 => format!("{} min {} s", ms / 60_000, ms % 60_000 / 1000),
        ms => format!("{} h {} min", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}
