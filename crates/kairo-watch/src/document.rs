//! A check of a deployment monitor as one JSON document: what `kairo monitor check --json`
//! prints and `POST /api/v1/monitors/{name}/check` answers, and what the CLI prints its table
//! from in either mode.

use kairo_core::config::MonitorSpec;
use kairo_core::time;
use kairo_monitor::drift::DriftReport;
use kairo_store::{LocalObjects, Metadata};
use serde_json::{json, Value};

use crate::{alert_payload, evaluate, raise, Result, Windowing};

/// A drift report as JSON.
pub fn drift_json(r: &DriftReport) -> Value {
    json!({
        "dataset_drift": r.dataset_drift, "drifted": r.drifted, "judged": r.judged,
        "share": r.share, "drift_share": r.drift_share, "schema": r.schema,
        "columns": r.columns.iter().map(|c| json!({
            "name": c.name, "kind": c.kind, "method": c.method, "score": c.score,
            "threshold": c.threshold, "drift": c.drift,
            "reference_rows": c.reference_rows, "current_rows": c.current_rows,
            "reference_null_share": c.reference_null_share, "current_null_share": c.current_null_share,
            "findings": c.findings,
        })).collect::<Vec<_>>(),
    })
}

/// Whether a check's document is a finding (`kairo monitor check` exits 3): an alert fired, or,
/// for a monitor without rules, the newest window with data drifted.
pub fn is_finding(doc: &Value) -> bool {
    let windows = doc["windows"].as_array().map(Vec::as_slice).unwrap_or_default();
    let newest = windows.iter().rev().find(|w| w["rows"].as_u64().unwrap_or(0) > 0);
    finding(
        doc["fired"].as_u64().unwrap_or(0),
        doc["rules"].as_u64().unwrap_or(0),
        newest.is_some_and(|w| w["drift"]["dataset_drift"] == true),
    )
}

/// The rule behind [`is_finding`], for any monitor (a file monitor has one window).
pub fn finding(fired: u64, rules: u64, newest_drifted: bool) -> bool {
    fired > 0 || (rules == 0 && newest_drifted)
}

/// What to check: a monitor of kairo.yaml (its alerts are raised as `actor`), or a deployment
/// ad hoc (nothing is raised).
pub struct CheckOf<'a> {
    pub name: &'a str,
    pub deployment: &'a str,
    pub spec: &'a MonitorSpec,
    pub windowing: Windowing,
    pub windows: usize,
    pub raise_as: Option<&'a str>,
}

/// Evaluate the newest windows, raise what fired, and describe it all.
pub async fn check(md: &Metadata, objects: &LocalObjects, c: CheckOf<'_>) -> Result<Value> {
    let e = evaluate(md, objects, c.deployment, c.spec, c.windowing, c.windows, time::now_millis()).await?;
    let payloads: Vec<Value> =
        e.alerts.iter().map(|al| alert_payload(c.name, c.deployment, Some(e.version), al)).collect();
    let raised = match c.raise_as {
        Some(actor) => raise(md, c.name, c.spec, payloads.clone(), actor).await?,
        None => Vec::new(),
    };
    Ok(json!({
        "monitor": c.name, "deployment": c.deployment, "version": e.version,
        "reference_rows": e.profile.rows,
        "windows": e.windows.iter().map(|w| json!({
            "start": time::millis_to_string(w.window.start_ms), "end": time::millis_to_string(w.window.end_ms),
            "start_ms": w.window.start_ms, "end_ms": w.window.end_ms,
            "rows": w.sketch.rows, "labelled": w.labelled,
            "values": w.window.values, "drift": drift_json(&w.report),
            "estimated": w.found.estimate, "slices": w.found.slices,
        })).collect::<Vec<_>>(),
        "alerts": raised.iter().map(|r| json!({"alert": r.payload, "new": r.new, "webhook": r.webhook})).collect::<Vec<_>>(),
        "fired": e.alerts.len(),
        "fired_alerts": payloads,
        "rules": c.spec.alerts.len(),
    }))
}
