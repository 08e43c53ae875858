//! Everything the report needs, read from the store once. The computations in `delivery` and
//! `value` never touch the store; a test builds a `Ledger` by writing a synthetic history
//! through the store's API and loading it here, or by hand.

use std::collections::{BTreeMap, HashMap};

use kairo_core::kpi::KpiSettings;
use kairo_core::{time, EventKind};
use kairo_store::kpi::{MonitorCheckDay, RunBrief, RunCost};
use kairo_watch::history::QualityWindow;
use serde_json::Value;

use crate::{delivery, Query, Result, Sources};

/// How far before the period events are read: a change that reaches 100% in the period may
/// have been promoted and started days before (its training run and registration are read
/// whenever they were).
pub const LOOKBACK_MS: i64 = 30 * 86_400_000;

/// The event kinds the delivery KPIs read.
pub const KINDS: &[EventKind] = &[
    EventKind::DeploymentCreated,
    EventKind::DeploymentStarted,
    EventKind::DeploymentCompleted,
    EventKind::DeploymentRolledBack,
    EventKind::AliasMoved,
    EventKind::PromotionRequested,
    EventKind::Promoted,
    EventKind::PromotionApproved,
    EventKind::IncidentOpened,
    EventKind::IncidentAdvanced,
];

/// An event as the KPIs use it.
#[derive(Debug, Clone, PartialEq)]
pub struct Ev {
    pub id: i64,
    pub at_ms: i64,
    pub actor: String,
    pub kind: EventKind,
    pub subject: String,
    pub payload: Value,
}

/// A registered version: when, and the run it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    pub at_ms: i64,
    pub run_id: Option<String>,
}

/// What started a change, when it is recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    pub kind: String,
    pub at_ms: i64,
}

/// Serving health of one version on one UTC day, summed over serving processes.
#[derive(Debug, Clone, PartialEq)]
pub struct ServingHealth {
    pub model: String,
    pub version: i64,
    pub day_ms: i64,
    pub requests: i64,
    pub client_errors: i64,
    pub server_errors: i64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

#[derive(Debug, Clone, Default)]
pub struct Ledger {
    /// Events of `KINDS` from `LOOKBACK_MS` before the period on, oldest first.
    pub events: Vec<Ev>,
    pub registrations: HashMap<(String, i64), Registration>,
    /// The runs registrations name.
    pub runs: HashMap<String, RunBrief>,
    /// The recorded cause of each version's training run (newest input dataset version or
    /// commit), for versions that reached 100% in the period.
    pub run_causes: HashMap<(String, i64), Cause>,
    /// The production changes the events describe (`delivery::changes`), worked out once.
    pub changes: Vec<delivery::Change>,
    pub run_costs: Vec<RunCost>,
    pub monitor_checks: Vec<MonitorCheckDay>,
    pub serving: Vec<ServingHealth>,
    /// Per model: quality windows (oldest first).
    pub quality: BTreeMap<String, Vec<QualityWindow>>,
    /// Prediction-log rows per model in the period.
    pub predictions: BTreeMap<String, i64>,
}

fn ev(e: kairo_store::metadata::Event) -> Option<Ev> {
    Some(Ev {
        id: e.id,
        at_ms: time::millis_of(&e.at),
        kind: EventKind::parse(&e.kind)?,
        actor: e.actor,
        subject: e.subject,
        payload: e.payload,
    })
}

/// Read the ledger for a period.
pub async fn load(src: &Sources<'_>, settings: &KpiSettings, q: &Query) -> Result<Ledger> {
    let md = src.md;
    let mut l = Ledger {
        events: md.events_of_kinds(KINDS, Some(q.since_ms - LOOKBACK_MS)).await?.into_iter().filter_map(ev).collect(),
        ..Ledger::default()
    };
    let registered = [EventKind::ModelVersionRegistered, EventKind::ModelVersionCreated];
    for e in md.events_of_kinds(&registered, None).await?.into_iter().filter_map(ev) {
        let (Some(model), Some(version)) = (e.subject.strip_prefix("model:"), e.payload["version"].as_i64()) else {
            continue;
        };
        let run_id = e.payload["run_id"].as_str().filter(|r| !r.is_empty()).map(str::to_string);
        l.registrations.entry((model.to_string(), version)).or_insert(Registration { at_ms: e.at_ms, run_id });
    }
    let mut ids: Vec<String> = l.registrations.values().filter_map(|r| r.run_id.clone()).collect();
    ids.sort();
    ids.dedup();
    l.runs = md.run_briefs(&ids).await?.into_iter().map(|r| (r.id.clone(), r)).collect();

    // The cause of each change that reached 100%: the newest input of its training run (a
    // dataset version, or the commit), read in batches.
    let mut wanted: Vec<((String, i64), i64, String)> = Vec::new();
    l.changes = delivery::changes(&l, q.model.as_deref(), settings.failure_window_ms).0;
    for c in &l.changes {
        let Some(reached) = c.reached_ms.filter(|t| *t >= q.since_ms && *t < q.until_ms) else { continue };
        if let Some(run_id) = l.registrations.get(&(c.model.clone(), c.version)).and_then(|r| r.run_id.clone()) {
            wanted.push(((c.model.clone(), c.version), reached, run_id));
        }
    }
    let mut ids: Vec<String> = wanted.iter().map(|w| w.2.clone()).collect();
    ids.sort();
    ids.dedup();
    let records: HashMap<String, kairo_core::run::Run> =
        md.run_records(&ids).await?.into_iter().map(|r| (r.id.clone(), r)).collect();
    let mut hashes: Vec<String> =
        records.values().flat_map(|r| r.deps.iter().filter(|d| d.dataset).map(|d| d.hash.to_hex())).collect();
    hashes.sort();
    hashes.dedup();
    let recorded = md.dataset_versions_recorded_ms(&hashes).await?;
    let commits: Vec<String> = records.values().filter_map(|r| r.git.commit.clone()).collect();
    let commit_times = match src.git_root {
        Some(root) if !commits.is_empty() => kairo_data::git::commit_times_ms(root, &commits),
        _ => HashMap::new(),
    };
    for (key, reached, run_id) in wanted {
        let Some(run) = records.get(&run_id) else { continue };
        let mut cause: Option<Cause> = None;
        let mut consider = |kind: &str, at: Option<i64>| {
            if let Some(at) = at.filter(|a| *a > 0 && *a <= reached) {
                if cause.as_ref().is_none_or(|c| at > c.at_ms) {
                    cause = Some(Cause { kind: kind.into(), at_ms: at });
                }
            }
        };
        for d in run.deps.iter().filter(|d| d.dataset) {
            consider("dataset", recorded.get(&(d.path.clone(), d.hash.to_hex())).copied());
        }
        if let Some(commit) = &run.git.commit {
            consider("commit", commit_times.get(commit).copied());
        }
        if let Some(cause) = cause {
            l.run_causes.insert(key, cause);
        }
    }

    l.run_costs = md.run_costs(Some(q.since_ms)).await?;
    l.monitor_checks = md.monitor_check_days(Some(q.since_ms)).await?;
    l.serving = serving_health(md, q).await?;
    for (model, rows) in md.prediction_rows(q.since_ms, q.until_ms).await? {
        if q.model.as_deref().is_none_or(|m| m == model) {
            l.predictions.insert(model, rows);
        }
    }
    if let Some(objects) = src.objects {
        // Windows start at the team's midnight; weekly ones on Mondays (the epoch was a Thursday).
        let week = 7 * 86_400_000;
        let monday = if settings.quality_window_ms % week == 0 { 3 * 86_400_000 } else { 0 };
        let offset_ms = i64::from(settings.utc_offset_s) * 1000 + monday;
        for model in l.predictions.keys() {
            let windows = kairo_watch::history::quality_over_time(
                md,
                objects,
                model,
                q.since_ms,
                q.until_ms,
                settings.quality_window_ms,
                offset_ms,
            )
            .await?;
            l.quality.insert(model.clone(), windows);
        }
    }
    Ok(l)
}

/// Serving days of the period, summed over the processes that served them.
async fn serving_health(md: &kairo_store::Metadata, q: &Query) -> Result<Vec<ServingHealth>> {
    #[derive(Default)]
    struct Sum {
        requests: i64,
        client_errors: i64,
        server_errors: i64,
        latency: kairo_core::latency::Histogram,
    }
    let day = 86_400_000;
    let rows = md.serving_days(q.since_ms.div_euclid(day) * day, q.model.as_deref()).await?;
    let mut merged: BTreeMap<(String, i64, i64), Sum> = BTreeMap::new();
    for r in rows.into_iter().filter(|r| r.day_ms < q.until_ms) {
        let m = merged.entry((r.deployment, r.version, r.day_ms)).or_default();
        m.requests += r.requests;
        m.client_errors += r.client_errors;
        m.server_errors += r.server_errors;
        m.latency.merge(&r.latency);
    }
    Ok(merged
        .into_iter()
        .map(|((model, version, day_ms), s)| ServingHealth {
            model,
            version,
            day_ms,
            requests: s.requests,
            client_errors: s.client_errors,
            server_errors: s.server_errors,
            p50_ms: s.latency.quantile_ms(0.5),
            p95_ms: s.latency.quantile_ms(0.95),
            p99_ms: s.latency.quantile_ms(0.99),
        })
        .collect())
}
