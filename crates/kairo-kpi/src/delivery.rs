//! The delivery KPIs, computed from a [`Ledger`] in memory. Each function's comment is the
//! definition `docs/kpi.md` documents.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use kairo_core::actor::is_automated;
use kairo_core::kpi::KpiSettings;
use kairo_core::{time, EventKind};
use serde_json::Value;

use crate::ledger::{Cause, Ev, Ledger};
use crate::report::*;
use crate::Query;

pub const DAY_MS: i64 = 86_400_000;
const WEEK_MS: i64 = 7 * DAY_MS;

/// One attempt to change what a model serves in production.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub model: String,
    pub version: i64,
    /// The version it replaced, where known.
    pub replaced: Option<i64>,
    /// When the version began taking traffic (a canary's start, or a direct deploy).
    pub started_ms: i64,
    pub started_by: String,
    /// When it took 100% of traffic.
    pub reached_ms: Option<i64>,
    /// A canary rolled back before it reached 100%: when and why.
    pub aborted: Option<(i64, String)>,
    /// Rolled back after it reached 100%: when and why.
    pub rolled_back: Option<(i64, String)>,
}

fn version(v: &Value) -> Option<i64> {
    v.as_i64()
}

/// Production changes from the ledger, oldest first, and the models that have deployments.
/// A model with deployments changes through them: `deployment.created` with a new stable
/// version reaches 100% at once; `deployment.started` begins a canary (or shadow) that
/// `deployment.completed` takes to 100%; `deployment.rolled_back` aborts a candidate, or takes
/// a version that had reached 100% back out. A model served without deployments (`kairo
/// serve` following `@champion`) changes when `champion` moves to another version; moving it
/// back to the version before, within the failure window, is a rollback of that change.
pub fn changes(l: &Ledger, model: Option<&str>, window_ms: i64) -> (Vec<Change>, HashSet<String>) {
    let wanted = |m: &str| model.is_none_or(|x| x == m);
    let deployed: HashSet<String> = l
        .events
        .iter()
        .filter_map(|e| e.subject.strip_prefix("deployment:"))
        .filter(|m| wanted(m))
        .map(str::to_string)
        .collect();
    let mut t = Tracker::default();
    for e in &l.events {
        if let Some(m) = e.subject.strip_prefix("deployment:").filter(|m| wanted(m)) {
            t.deployment_event(m, e);
        } else if let Some(m) = e.subject.strip_prefix("model:").filter(|m| wanted(m) && !deployed.contains(*m)) {
            if e.kind == EventKind::AliasMoved && e.payload["alias"] == "champion" {
                champion_moved(&mut t.out, m, e);
            }
        }
    }
    let mut out = t.out;
    champion_rollbacks(&mut out, &deployed, window_ms);
    (out, deployed)
}

/// Changes so far, with the latest change of each (model, version) at hand.
#[derive(Default)]
struct Tracker {
    out: Vec<Change>,
    latest: HashMap<(String, i64), usize>,
}

impl Tracker {
    fn push(&mut self, c: Change) {
        self.latest.insert((c.model.clone(), c.version), self.out.len());
        self.out.push(c);
    }

    /// The latest change of (model, version), if `pick` accepts it.
    fn latest_mut(&mut self, model: &str, v: i64, pick: impl Fn(&Change) -> bool) -> Option<&mut Change> {
        let i = *self.latest.get(&(model.to_string(), v))?;
        Some(&mut self.out[i]).filter(|c| pick(c))
    }

    fn deployment_event(&mut self, model: &str, e: &Ev) {
        let (before, after) = (&e.payload["before"], &e.payload["after"]);
        let (b_stable, b_cand) = (version(&before["stable"]), version(&before["candidate"]));
        let (a_stable, a_cand) = (version(&after["stable"]), version(&after["candidate"]));
        let reason = e.payload["reason"].as_str().unwrap_or("").to_string();
        let new = |v: i64, reached: Option<i64>| Change {
            model: model.into(),
            version: v,
            replaced: b_stable,
            started_ms: e.at_ms,
            started_by: e.actor.clone(),
            reached_ms: reached,
            aborted: None,
            rolled_back: None,
        };
        let open = |c: &Change| c.reached_ms.is_none() && c.aborted.is_none();
        match e.kind {
            EventKind::DeploymentCreated => {
                if let Some(v) = a_stable.filter(|v| Some(*v) != b_stable) {
                    self.push(new(v, Some(e.at_ms)));
                }
            }
            EventKind::DeploymentStarted => {
                if let Some(v) = a_cand.filter(|v| Some(*v) != b_cand) {
                    self.push(new(v, None));
                }
            }
            EventKind::DeploymentCompleted => {
                if let Some(v) = a_stable.filter(|v| Some(*v) != b_stable) {
                    match self.latest_mut(model, v, open) {
                        Some(c) => c.reached_ms = Some(e.at_ms),
                        // Started before the ledger we read: its start is unknown, take this.
                        None => self.push(new(v, Some(e.at_ms))),
                    }
                }
            }
            EventKind::DeploymentRolledBack => {
                if let Some(v) = b_cand.filter(|v| a_cand != Some(*v)) {
                    if let Some(c) = self.latest_mut(model, v, open) {
                        c.aborted = Some((e.at_ms, reason));
                    }
                } else if let Some(v) = b_stable.filter(|v| a_stable != Some(*v)) {
                    if let Some(c) = self.latest_mut(model, v, |c| c.reached_ms.is_some()) {
                        c.rolled_back.get_or_insert((e.at_ms, reason));
                    }
                }
            }
            _ => {}
        }
    }
}

fn champion_moved(out: &mut Vec<Change>, model: &str, e: &Ev) {
    let (Some(after), before) = (version(&e.payload["after"]), version(&e.payload["before"])) else { return };
    if Some(after) == before {
        return;
    }
    out.push(Change {
        model: model.into(),
        version: after,
        replaced: before,
        started_ms: e.at_ms,
        started_by: e.actor.clone(),
        reached_ms: Some(e.at_ms),
        aborted: None,
        rolled_back: None,
    });
}

/// A champion move back to the version the previous move replaced, within `window_ms`, rolls
/// that previous move back (models served without deployments; deployments record their
/// rollbacks as events).
fn champion_rollbacks(changes: &mut [Change], deployed: &HashSet<String>, window_ms: i64) {
    let mut last: HashMap<String, usize> = HashMap::new();
    for i in 0..changes.len() {
        if deployed.contains(&changes[i].model) {
            continue;
        }
        if let Some(&j) = last.get(&changes[i].model) {
            let (undo, prev) = (&changes[i], &changes[j]);
            if let (Some(at), Some(prev_at)) = (undo.reached_ms, prev.reached_ms) {
                if prev.replaced == Some(undo.version) && at - prev_at <= window_ms {
                    let why = format!("@champion moved back to version {}", undo.version);
                    changes[j].rolled_back.get_or_insert((at, why));
                }
            }
        }
        last.insert(changes[i].model.clone(), i);
    }
}

/// An incident as the events tell it.
#[derive(Debug, Clone, Default)]
pub struct IncidentStory {
    pub id: i64,
    pub model: String,
    pub opened_ms: i64,
    pub trigger: Value,
    pub state: String,
    pub closed_ms: Option<i64>,
    /// Challenger versions it registered or chose.
    pub versions: Vec<i64>,
}

const FINAL: [&str; 5] = ["resolved", "not_better", "rejected", "rolled_back", "failed"];

/// Incidents from `incident.opened` and `incident.advanced` events.
pub fn incidents(l: &Ledger) -> BTreeMap<i64, IncidentStory> {
    let mut out: BTreeMap<i64, IncidentStory> = BTreeMap::new();
    for e in &l.events {
        let Some(id) = e.subject.strip_prefix("incident:").and_then(|i| i.parse::<i64>().ok()) else { continue };
        match e.kind {
            EventKind::IncidentOpened => {
                out.insert(
                    id,
                    IncidentStory {
                        id,
                        model: e.payload["model"].as_str().unwrap_or("").to_string(),
                        opened_ms: e.at_ms,
                        trigger: e.payload["trigger"]["what"].clone(),
                        state: "triggered".into(),
                        ..IncidentStory::default()
                    },
                );
            }
            EventKind::IncidentAdvanced => {
                let Some(inc) = out.get_mut(&id) else { continue };
                if let Some(to) = e.payload["to"].as_str() {
                    inc.state = to.to_string();
                    if FINAL.contains(&to) {
                        inc.closed_ms = Some(e.payload["at_ms"].as_i64().unwrap_or(e.at_ms));
                    }
                }
                if let Some(v) = e.payload["facts"]["challenger"]["version"].as_i64() {
                    inc.versions.push(v);
                }
            }
            _ => {}
        }
    }
    out
}

/// What caused an incident: its first trigger's kind and time (the alert event, cron
/// firing, dataset version or manual request).
fn incident_cause(inc: &IncidentStory) -> Cause {
    let at = inc.trigger["at"].as_str().map(time::millis_of).filter(|t| *t > 0).unwrap_or(inc.opened_ms);
    Cause { kind: inc.trigger["kind"].as_str().unwrap_or("manual").to_string(), at_ms: at }
}

/// Alert → first breaching window: how long the drift went unnoticed.
fn detect_ms(inc: &IncidentStory) -> Option<i64> {
    if inc.trigger["kind"] != "alert" {
        return None;
    }
    let at = time::millis_of(inc.trigger["at"].as_str()?);
    let start = inc.trigger["alert"]["evidence"][0]["start_ms"].as_i64()?;
    (at > 0 && at >= start).then_some(at - start)
}

pub fn median(v: &mut [f64]) -> Option<f64> {
    percentile(v, 0.5)
}

/// Linear interpolation between closest ranks (NumPy's default).
pub fn percentile(v: &mut [f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let pos = q * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(v[lo] + (v[hi] - v[lo]) * (pos - lo as f64))
}

/// The Monday 00:00 (in the report's offset) of the week holding `ms`, as UTC milliseconds.
pub fn week_start(ms: i64, offset_s: i32) -> i64 {
    let off = i64::from(offset_s) * 1000;
    let day = (ms + off).div_euclid(DAY_MS);
    // 1970-01-01 was a Thursday: Monday is 3 days before.
    let monday = day - (day + 3).rem_euclid(7);
    monday * DAY_MS - off
}

/// `YYYY-MM-DD` of `ms` in the report's offset.
pub fn local_date(ms: i64, offset_s: i32) -> String {
    let shifted = ms + i64::from(offset_s) * 1000;
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(shifted)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

pub fn offset_label(offset_s: i32) -> String {
    if offset_s == 0 {
        return "Z".into();
    }
    let sign = if offset_s < 0 { '-' } else { '+' };
    let a = offset_s.unsigned_abs();
    format!("{sign}{:02}:{:02}", a / 3600, (a % 3600) / 60)
}

fn secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// The whole report but `value`.
pub fn report(l: &Ledger, s: &KpiSettings, q: &Query) -> Report {
    let in_period = |t: i64| t >= q.since_ms && t < q.until_ms;
    let changes = &l.changes;
    let incidents = incidents(l);
    // Incident openings per model, in time order, for "followed by an incident".
    let mut openings: HashMap<&str, Vec<(i64, i64)>> = HashMap::new();
    for i in incidents.values() {
        openings.entry(i.model.as_str()).or_default().push((i.opened_ms, i.id));
    }
    for v in openings.values_mut() {
        v.sort();
    }
    let wanted = |m: &str| q.model.as_deref().is_none_or(|x| x == m);
    let weeks = (q.until_ms - q.since_ms).max(1) as f64 / WEEK_MS as f64;

    let mut r = Report {
        period: Period {
            since: time::millis_to_string(q.since_ms),
            until: time::millis_to_string(q.until_ms),
            since_ms: q.since_ms,
            until_ms: q.until_ms,
            timezone: offset_label(s.utc_offset_s),
            model: q.model.clone(),
            weeks,
        },
        ..Report::default()
    };

    // Deployment frequency: versions reaching 100% per week.
    let reached: Vec<&Change> = changes.iter().filter(|c| c.reached_ms.is_some_and(in_period)).collect();
    let mut per_week: BTreeMap<i64, u64> = BTreeMap::new();
    let mut w = week_start(q.since_ms, s.utc_offset_s);
    while w < q.until_ms {
        per_week.insert(w, 0);
        w += WEEK_MS;
    }
    let mut per_model: BTreeMap<String, u64> = BTreeMap::new();
    for c in &reached {
        *per_week.entry(week_start(c.reached_ms.unwrap_or(0), s.utc_offset_s)).or_default() += 1;
        *per_model.entry(c.model.clone()).or_default() += 1;
    }
    r.deployment_frequency = DeploymentFrequency {
        total: reached.len() as u64,
        per_week: reached.len() as f64 / weeks,
        by_model: per_model
            .into_iter()
            .map(|(model, count)| ModelCount { model, count, per_week: count as f64 / weeks })
            .collect(),
        weeks: per_week
            .into_iter()
            .map(|(w, count)| WeekCount { week: local_date(w, s.utc_offset_s), count })
            .collect(),
    };

    // Lead time: cause → 100%, split by stage.
    r.lead_time = lead_time(l, &reached, &incidents, s);

    // Change failure rate.
    let window = s.failure_window_ms;
    let mut units = 0u64;
    let mut failures = Vec::new();
    for c in changes {
        let counted = c.reached_ms.is_some_and(in_period) || c.aborted.as_ref().is_some_and(|(t, _)| in_period(*t));
        if !counted {
            continue;
        }
        units += 1;
        let fail = |why: &str, at: i64, detail: String| FailedChange {
            model: c.model.clone(),
            version: c.version,
            at: time::millis_to_string(at),
            why: why.into(),
            detail,
        };
        if let Some((at, why)) = &c.aborted {
            failures.push(fail("canary_rolled_back", *at, why.clone()));
        } else if let Some((at, why)) = &c.rolled_back {
            failures.push(fail("rolled_back", *at, why.clone()));
        } else if let Some(reached) = c.reached_ms {
            let after = openings.get(c.model.as_str()).and_then(|v| {
                let first = v.partition_point(|(at, _)| *at <= reached);
                v.get(first).filter(|(at, _)| *at <= reached + window && *at < q.until_ms)
            });
            if let Some((at, id)) = after {
                failures.push(fail("incident", *at, format!("incident {id} opened")));
            }
        }
    }
    r.change_failure = ChangeFailure {
        changes: units,
        failed: failures.len() as u64,
        rate: (units > 0).then(|| failures.len() as f64 / units as f64),
        window_days: window as f64 / DAY_MS as f64,
        failures,
    };

    // Time to restore (and to detect).
    let mut restore = Restore::default();
    let (mut ttr, mut ttd) = (Vec::new(), Vec::new());
    for inc in incidents.values().filter(|i| in_period(i.opened_ms) && wanted(&i.model)) {
        restore.incidents += 1;
        let detect = detect_ms(inc).map(secs);
        let mut item = IncidentTime {
            id: inc.id,
            model: inc.model.clone(),
            opened: time::millis_to_string(inc.opened_ms),
            state: inc.state.clone(),
            detect_s: detect,
            ..IncidentTime::default()
        };
        if let Some(d) = detect {
            ttd.push(d);
        }
        match inc.closed_ms {
            Some(closed) if inc.state == "resolved" && closed < q.until_ms => {
                restore.resolved += 1;
                let t = secs(closed - inc.opened_ms);
                ttr.push(t);
                item.restore_s = Some(t);
            }
            Some(closed) if closed < q.until_ms => restore.closed_unresolved += 1,
            _ => {
                restore.open += 1;
                item.state = if inc.closed_ms.is_some() { "open".into() } else { inc.state.clone() };
                item.open_for_s = Some(secs(q.until_ms - inc.opened_ms));
            }
        }
        restore.incidents_detail.push(item);
    }
    restore.detected = ttd.len() as u64;
    restore.mean_s = (!ttr.is_empty()).then(|| ttr.iter().sum::<f64>() / ttr.len() as f64);
    restore.median_s = median(&mut ttr);
    restore.detect_median_s = median(&mut ttd);
    r.restore = restore;

    // Automation rate.
    r.automation = automation(l, changes, q, &in_period);

    // Quality over time.
    for (model, windows) in &l.quality {
        for w in windows {
            let metrics: BTreeMap<String, f64> =
                w.scored.metrics.iter().filter(|(_, v)| v.is_finite()).map(|(k, v)| (k.to_string(), *v)).collect();
            let metric = ["accuracy", "rmse"].into_iter().find(|m| metrics.contains_key(*m));
            r.quality.push(QualityRow {
                model: model.clone(),
                version: w.version,
                window_start: local_date(w.start_ms, s.utc_offset_s),
                window_end: local_date(w.end_ms - 1, s.utc_offset_s),
                rows: w.rows,
                labelled: w.labelled,
                coverage: if w.rows > 0 { w.labelled as f64 / w.rows as f64 } else { 0.0 },
                metric: metric.map(str::to_string),
                value: metric.and_then(|m| metrics.get(m).copied()),
                metrics,
            });
        }
    }

    // Serving health.
    for h in l.serving.iter().filter(|h| wanted(&h.model)) {
        r.serving.push(ServingRow {
            model: h.model.clone(),
            version: h.version,
            day: local_date(h.day_ms, 0),
            requests: h.requests,
            client_errors: h.client_errors,
            server_errors: h.server_errors,
            error_rate: if h.requests > 0 { h.server_errors as f64 / h.requests as f64 } else { 0.0 },
            p50_ms: h.p50_ms,
            p95_ms: h.p95_ms,
            p99_ms: h.p99_ms,
        });
    }

    r.compute = compute(l, q);
    r
}

/// The points a change passes: cause, run start, run end, promotion requested (or the
/// version registered), promoted, began taking traffic, 100%. A missing point takes the one
/// before it, so its time falls into the next stage that is known.
fn lead_time(l: &Ledger, reached: &[&Change], incidents: &BTreeMap<i64, IncidentStory>, s: &KpiSettings) -> LeadTime {
    let _ = s;
    let promotions = promotion_events(l);
    // The incident that chose each version (its challenger), latest first wins.
    let mut chosen: HashMap<(&str, i64), &IncidentStory> = HashMap::new();
    for i in incidents.values() {
        for v in &i.versions {
            chosen.insert((i.model.as_str(), *v), i);
        }
    }
    let mut out = LeadTime { changes: reached.len() as u64, ..LeadTime::default() };
    let mut totals = Vec::new();
    let mut per_stage: Vec<Vec<f64>> = vec![Vec::new(); STAGES.len()];
    for c in reached {
        let full = c.reached_ms.unwrap_or(c.started_ms);
        let key = (c.model.clone(), c.version);
        let reg = l.registrations.get(&key);
        let run = reg.and_then(|r| r.run_id.as_ref()).and_then(|id| l.runs.get(id));
        let cause = chosen
            .get(&(c.model.as_str(), c.version))
            .filter(|i| i.opened_ms <= full)
            .map(|i| incident_cause(i))
            .or_else(|| l.run_causes.get(&key).cloned());
        let (requested, promoted) = promotion_times(promotions.get(&(c.model.as_str(), c.version)), full);
        let mut p: Vec<Option<i64>> = vec![
            cause.as_ref().map(|c| c.at_ms),
            run.and_then(|r| r.start_ms),
            run.and_then(|r| r.end_ms),
            requested.or(reg.map(|r| r.at_ms)),
            promoted,
            Some(c.started_ms),
            Some(full),
        ];
        for i in 1..p.len() {
            p[i] = match (p[i - 1], p[i]) {
                (Some(prev), Some(cur)) => Some(cur.max(prev)),
                (Some(prev), None) => Some(prev),
                (None, cur) => cur,
            };
        }
        let stages: Vec<Option<f64>> = (0..STAGES.len()).map(|i| Some(secs(p[i + 1]? - p[i]?))).collect();
        for (i, v) in stages.iter().enumerate() {
            if let Some(v) = v {
                per_stage[i].push(*v);
            }
        }
        let total = cause.as_ref().map(|cz| secs(full - cz.at_ms.min(full)));
        if let Some(t) = total {
            totals.push(t);
            out.with_cause += 1;
        }
        out.changes_detail.push(ChangeLead {
            model: c.model.clone(),
            version: c.version,
            reached: time::millis_to_string(full),
            cause: cause.as_ref().map(|c| c.kind.clone()),
            cause_at: cause.as_ref().map(|c| time::millis_to_string(c.at_ms)),
            total_s: total,
            stages_s: stages,
        });
    }
    let all: f64 = per_stage.iter().flatten().sum();
    out.stages = STAGES
        .iter()
        .zip(per_stage.iter_mut())
        .map(|(name, v)| {
            let total_s: f64 = v.iter().sum();
            StageTime {
                stage: name.to_string(),
                median_s: median(v),
                total_s,
                share: if all > 0.0 { total_s / all } else { 0.0 },
            }
        })
        .collect();
    out.bottleneck = out
        .stages
        .iter()
        .filter(|st| st.total_s > 0.0)
        .max_by(|a, b| a.total_s.total_cmp(&b.total_s))
        .map(|st| st.stage.clone());
    out.p90_s = percentile(&mut totals.clone(), 0.9);
    out.median_s = median(&mut totals);
    out
}

/// Promotion events (requested, promoted, approved) per (model, version), oldest first.
fn promotion_events(l: &Ledger) -> HashMap<(&str, i64), Vec<&Ev>> {
    let mut out: HashMap<(&str, i64), Vec<&Ev>> = HashMap::new();
    for e in &l.events {
        if !matches!(e.kind, EventKind::PromotionRequested | EventKind::Promoted | EventKind::PromotionApproved) {
            continue;
        }
        if let (Some(m), Some(v)) = (e.subject.strip_prefix("model:"), e.payload["version"].as_i64()) {
            out.entry((m, v)).or_default().push(e);
        }
    }
    out
}

/// When the promotion that let a version through was requested and when it was promoted
/// (the last one at or before `until`).
fn promotion_times(events: Option<&Vec<&Ev>>, until: i64) -> (Option<i64>, Option<i64>) {
    let Some(events) = events else { return (None, None) };
    let promoted = events
        .iter()
        .filter(|e| e.at_ms <= until && matches!(e.kind, EventKind::Promoted | EventKind::PromotionApproved))
        .map(|e| e.at_ms)
        .next_back();
    let Some(promoted) = promoted else { return (None, None) };
    let requested = events
        .iter()
        .filter(|e| e.kind == EventKind::PromotionRequested && e.at_ms <= promoted)
        .map(|e| e.at_ms)
        .next_back()
        .unwrap_or(promoted);
    (Some(requested), Some(promoted))
}

/// Stages whose runs produced registered versions, with the model they produced (the first
/// by name when one stage produced several).
pub fn training_stages(l: &Ledger, model: Option<&str>) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut regs: Vec<(&(String, i64), &crate::ledger::Registration)> = l.registrations.iter().collect();
    regs.sort_by(|a, b| a.0.cmp(b.0));
    for ((m, _), reg) in regs {
        if model.is_some_and(|x| x != m) {
            continue;
        }
        if let Some(run) = reg.run_id.as_ref().and_then(|id| l.runs.get(id)) {
            out.entry(run.stage.clone()).or_insert_with(|| m.clone());
        }
    }
    out
}

fn automation(l: &Ledger, changes: &[Change], q: &Query, in_period: &dyn Fn(i64) -> bool) -> Automation {
    let wanted = |m: &str| q.model.as_deref().is_none_or(|x| x == m);
    let tally = |it: &mut dyn Iterator<Item = bool>| {
        let (mut a, mut m) = (0, 0);
        for auto in it {
            if auto {
                a += 1
            } else {
                m += 1
            }
        }
        Share::of(a, m)
    };
    let stages = training_stages(l, q.model.as_deref());
    let retrains = {
        let (mut a, mut m) = (0u64, 0u64);
        for rc in l.run_costs.iter().filter(|rc| stages.contains_key(&rc.stage)) {
            if is_automated(&rc.actor) {
                a += rc.runs as u64;
            } else {
                m += rc.runs as u64;
            }
        }
        Share::of(a, m)
    };
    let model_of = |e: &Ev| e.subject.strip_prefix("model:").map(str::to_string);
    let promotions = tally(&mut l.events.iter().filter(|e| in_period(e.at_ms)).filter_map(|e| {
        let m = model_of(e)?;
        if !wanted(&m) {
            return None;
        }
        match e.kind {
            EventKind::Promoted => Some(is_automated(&e.actor)),
            EventKind::PromotionApproved => Some(is_automated(e.payload["requested_by"].as_str().unwrap_or(""))),
            _ => None,
        }
    }));
    let deploys = tally(&mut changes.iter().filter(|c| in_period(c.started_ms)).map(|c| is_automated(&c.started_by)));
    let rollbacks = tally(&mut l.events.iter().filter_map(|e| {
        let m = e.subject.strip_prefix("deployment:")?;
        (e.kind == EventKind::DeploymentRolledBack && in_period(e.at_ms) && wanted(m)).then(|| is_automated(&e.actor))
    }));
    let (mut sched, mut manual) = (0u64, 0u64);
    for d in &l.monitor_checks {
        sched += d.scheduled.max(0) as u64;
        manual += d.manual.max(0) as u64;
    }
    Automation { retrains, promotions, deploys, rollbacks, drift_checks: Share::of(sched, manual) }
}

fn compute(l: &Ledger, q: &Query) -> Compute {
    let stages = training_stages(l, None);
    let mut c = Compute::default();
    let mut by_model: BTreeMap<String, ComputeRow> = BTreeMap::new();
    let mut by_trigger: BTreeMap<String, ComputeRow> = BTreeMap::new();
    for rc in &l.run_costs {
        let model = stages.get(&rc.stage).cloned().unwrap_or_else(|| "(other)".into());
        if q.model.as_deref().is_some_and(|m| m != model) {
            continue;
        }
        c.runs += rc.runs;
        c.failed += rc.failed;
        c.wall_s += secs(rc.wall_ms);
        c.cpu_s += secs(rc.cpu_ms);
        c.unmeasured += rc.unmeasured;
        let trigger = if is_automated(&rc.actor) { format!("{} (automation)", rc.trigger) } else { rc.trigger.clone() };
        for (map, key) in [(&mut by_model, model), (&mut by_trigger, trigger)] {
            let row = map.entry(key.clone()).or_insert_with(|| ComputeRow { key, ..ComputeRow::default() });
            row.runs += rc.runs;
            row.wall_s += secs(rc.wall_ms);
            row.cpu_s += secs(rc.cpu_ms);
        }
    }
    c.by_model = by_model.into_values().collect();
    c.by_trigger = by_trigger.into_values().collect();
    c
}

/// Distinct models the ledger knows (for listings).
pub fn models(l: &Ledger) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = l.registrations.keys().map(|(m, _)| m.clone()).collect();
    out.extend(l.events.iter().filter_map(|e| e.subject.strip_prefix("deployment:").map(str::to_string)));
    out
}
