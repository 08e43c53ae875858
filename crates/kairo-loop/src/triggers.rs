//! Finding triggers: alert events of the monitors an automation listens to (rules with
//! `action: retrain`), cron firings, and new versions of tracked datasets. Each is offered to
//! the store once under a key (`event:ID`, `cron:MS`), which opens an incident, joins the
//! model's open one, or is held back by the guard.
//!
//! Before an automation has taken any trigger it looks back one day, and never past the
//! model's newest version: a freshly added automation acts on today's alert, not on last
//! month's or on the data its champion was trained on. A dataset version the loop itself
//! exported never triggers its own automation.

use kairo_core::automation::{AutomationSpec, Cron, Trigger};
use kairo_core::config::{parse_duration_ms, Config};
use kairo_core::{time, EventKind};
use kairo_store::incidents::{NewTrigger, TriggerOutcome};
use kairo_store::Metadata;
use serde_json::{json, Value};

use crate::Result;

/// How far back an automation with no trigger taken yet looks.
pub const LOOKBACK_MS: i64 = 86_400_000;

/// One trigger offered and what became of it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Taken {
    pub automation: String,
    pub key: String,
    /// `opened`, `joined` or `suppressed`.
    pub outcome: String,
    pub incident: Option<i64>,
    pub detail: String,
}

/// A trigger found but not yet offered.
#[derive(Debug, Clone)]
pub struct Found {
    pub key: String,
    pub payload: Value,
}

/// Offer every new trigger of every automation.
pub async fn collect(md: &Metadata, config: &Config, now_ms: i64) -> Result<Vec<Taken>> {
    let mut taken = Vec::new();
    for (name, spec) in &config.automations {
        for found in find(md, name, spec, now_ms).await? {
            if let Some(t) = offer(md, name, spec, found).await? {
                taken.push(t);
            }
        }
    }
    Ok(taken)
}

/// The triggers of one automation not taken yet, oldest first.
pub async fn find(md: &Metadata, name: &str, spec: &AutomationSpec, now_ms: i64) -> Result<Vec<Found>> {
    let mut found = Vec::new();
    let since_event = md.last_trigger_key(name, "event").await?;
    // Only what happened since the model's newest version was made can call for a new one.
    let newest = match md.model_versions(Some(&spec.model.value)).await {
        Ok(v) => v.iter().map(|v| v.creation_ms).max().unwrap_or(0),
        Err(_) => 0,
    };
    let floor_ms = (now_ms - LOOKBACK_MS).max(newest);
    let recent = |e: &kairo_store::metadata::Event| since_event.is_some() || time::millis_of(&e.at) >= floor_ms;
    let monitors: Vec<&str> = spec.alert_monitors().collect();
    let data_paths: Vec<&str> = spec
        .on
        .iter()
        .filter_map(|t| match t {
            Trigger::Data(p) => Some(p.value.trim_end_matches('/')),
            _ => None,
        })
        .collect();
    let mut kinds = Vec::new();
    if !monitors.is_empty() {
        kinds.push(EventKind::MonitorAlert);
    }
    if !data_paths.is_empty() {
        kinds.push(EventKind::DatasetVersionAdded);
    }
    let exported = if data_paths.is_empty() { Vec::new() } else { exported_hashes(md, name).await? };
    let mut after = since_event.unwrap_or(0);
    loop {
        let events = md.events_after(after, &kinds, 1000).await?;
        let Some(last) = events.last() else { break };
        after = last.id;
        for e in events.iter().filter(|e| recent(e)) {
            if e.kind == EventKind::MonitorAlert {
                let monitor = e.payload["monitor"].as_str().unwrap_or("");
                if monitors.contains(&monitor) && e.payload["action"] == "retrain" {
                    found.push(Found {
                        key: format!("event:{}", e.id),
                        payload: json!({"kind": "alert", "event": e.id, "at": e.at, "alert": e.payload}),
                    });
                }
            } else if let Some(path) = e.subject.strip_prefix("dataset:") {
                let watched = data_paths.iter().any(|p| path == *p || path.starts_with(&format!("{p}/")));
                let own = e.payload["hash"].as_str().is_some_and(|h| exported.iter().any(|x| x == h));
                if watched && !own {
                    found.push(Found {
                        key: format!("event:{}", e.id),
                        payload: json!({"kind": "data", "event": e.id, "at": e.at, "path": path, "hash": e.payload["hash"], "by": e.actor}),
                    });
                }
            }
        }
        if events.len() < 1000 {
            break;
        }
    }
    let last_cron = md.last_trigger_key(name, "cron").await?;
    for t in &spec.on {
        let Trigger::Schedule(text) = t else { continue };
        let Ok(cron) = Cron::parse(&text.value) else { continue };
        // The most recent firing at or before now that has not been taken (one, not a
        // backlog: a server that was down for a week retrains once, not 7 times).
        let start = last_cron.unwrap_or(now_ms - 60_000);
        let mut fire = None;
        let mut t = start;
        while let Some(next) = cron.next_after(t).filter(|n| *n <= now_ms) {
            fire = Some(next);
            t = next;
        }
        if let Some(at) = fire {
            found.push(Found {
                key: format!("cron:{at}"),
                payload: json!({"kind": "schedule", "cron": text.value, "at": time::millis_to_string(at)}),
            });
        }
    }
    Ok(found)
}

/// Hashes of the dataset versions this automation's incidents exported.
async fn exported_hashes(md: &Metadata, automation: &str) -> Result<Vec<String>> {
    Ok(md
        .incidents(false, 10_000)
        .await?
        .into_iter()
        .filter(|i| i.automation == automation)
        .filter_map(|i| i.detail["export"]["hash"].as_str().map(String::from))
        .collect())
}

/// Offer one trigger; `None` when it was taken before.
pub async fn offer(md: &Metadata, name: &str, spec: &AutomationSpec, found: Found) -> Result<Option<Taken>> {
    let cooldown_ms = spec.guard.cooldown.as_deref().and_then(|c| parse_duration_ms(c).ok());
    let t = NewTrigger {
        automation: name,
        model: &spec.model.value,
        key: &found.key,
        payload: found.payload,
        cooldown_ms,
        max_per_day: spec.guard.max_per_day,
    };
    let (outcome, incident, detail) = match md.take_trigger(&t, &crate::actor(name)).await? {
        TriggerOutcome::Seen => return Ok(None),
        TriggerOutcome::Opened(i) => ("opened", Some(i.id), format!("incident {} opened for {}", i.id, i.model)),
        TriggerOutcome::Joined(i) => {
            ("joined", Some(i.id), format!("joined the open incident {} of {}", i.id, i.model))
        }
        TriggerOutcome::Suppressed(reason) => ("suppressed", None, reason),
    };
    tracing::info!(automation = name, trigger = %found.key, outcome, "{detail}");
    Ok(Some(Taken { automation: name.to_string(), key: found.key, outcome: outcome.into(), incident, detail }))
}
