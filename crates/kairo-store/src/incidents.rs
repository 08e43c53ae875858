//! Incidents of the closed loop and the triggers that open them (migration `0009_incidents`).
//!
//! An incident changes only through [`Metadata::advance_incident`], a compare-and-set on its
//! generation that commits the new state, the merged facts and an `incident.advanced` event in
//! one transaction. Two processes advancing the same incident cannot both win; the loser sees
//! [`StoreError::Conflict`]-like `Invalid` and re-reads. A trigger is taken at most once per
//! automation (keyed by the event, cron firing or dataset version it came from).

use crate::error::{Result, StoreError};
use crate::metadata::{insert_event, Metadata};
use kairo_core::automation::IncidentState;
use kairo_core::{time, EventKind};
use serde_json::{json, Map, Value};
use sqlx::any::AnyRow;
use sqlx::Row;

/// One incident as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub id: i64,
    pub automation: String,
    pub model: String,
    pub state: IncidentState,
    /// Everything learnt so far: triggers, export, run, version, evaluation, rollout, ...
    pub detail: Value,
    /// Raised by every change; the compare-and-set token.
    pub generation: i64,
    pub opened_ms: i64,
    pub updated_ms: i64,
    pub closed_ms: Option<i64>,
}

/// A trigger offered to an automation.
#[derive(Debug, Clone)]
pub struct NewTrigger<'a> {
    pub automation: &'a str,
    pub model: &'a str,
    /// Unique per automation: `event:42`, `cron:1764900000000`, `manual:...`.
    pub key: &'a str,
    /// What happened (kind, evidence), kept in the incident's `triggers`.
    pub payload: Value,
    /// The automation's guard: no new incident within this long of the last one opened...
    pub cooldown_ms: Option<i64>,
    /// ...and at most this many opened in the last 24 hours.
    pub max_per_day: Option<u32>,
}

/// What became of a trigger.
#[derive(Debug, Clone, PartialEq)]
pub enum TriggerOutcome {
    Opened(Incident),
    /// The model had an open incident; the trigger is added to its story.
    Joined(Incident),
    /// Held back by the guard; the reason is recorded.
    Suppressed(String),
    /// This trigger was taken before.
    Seen,
}

const SELECT: &str =
    "SELECT id, automation, model, state, detail, generation, opened_ms, updated_ms, closed_ms FROM incidents";

fn incident_from_row(r: &AnyRow) -> Result<Incident> {
    let state: String = r.try_get(3)?;
    let detail: String = r.try_get(4)?;
    let id: i64 = r.try_get(0)?;
    Ok(Incident {
        id,
        automation: r.try_get(1)?,
        model: r.try_get(2)?,
        state: IncidentState::parse(&state).ok_or_else(|| {
            StoreError::Invalid(format!("incident {id}: unknown state `{state}` (written by a newer kairo?)"))
        })?,
        detail: serde_json::from_str(&detail)
            .map_err(|e| StoreError::Invalid(format!("incident {id}: stored detail is not JSON: {e}")))?,
        generation: r.try_get(5)?,
        opened_ms: r.try_get(6)?,
        updated_ms: r.try_get(7)?,
        closed_ms: r.try_get(8)?,
    })
}

/// Merge `patch`'s keys into `detail` (an object); `null` removes a key.
fn merge(detail: &mut Value, patch: &Value) {
    if !detail.is_object() {
        *detail = Value::Object(Map::new());
    }
    if let (Some(d), Some(p)) = (detail.as_object_mut(), patch.as_object()) {
        for (k, v) in p {
            if v.is_null() {
                d.remove(k);
            } else {
                d.insert(k.clone(), v.clone());
            }
        }
    }
}

impl Metadata {
    /// Offer a trigger to an automation: open an incident for the model, join its open one,
    /// or hold it back under the guard; all with the trigger's record and an event, in one
    /// transaction. A key already taken is `Seen` and changes nothing.
    pub async fn take_trigger(&self, t: &NewTrigger<'_>, actor: &str) -> Result<TriggerOutcome> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let now = time::now_millis();
        let seen = sqlx::query("SELECT 1 FROM automation_triggers WHERE automation = $1 AND trigger_key = $2")
            .bind(t.automation)
            .bind(t.key)
            .fetch_optional(&mut *tx)
            .await?;
        if seen.is_some() {
            return Ok(TriggerOutcome::Seen);
        }
        let open = sqlx::query(&format!("{SELECT} WHERE open_model = $1"))
            .bind(t.model)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| incident_from_row(&r))
            .transpose()?;
        let record = |incident: Option<i64>, outcome: String| {
            sqlx::query(
                "INSERT INTO automation_triggers (automation, trigger_key, incident_id, outcome, at_ms) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(t.automation.to_string())
            .bind(t.key.to_string())
            .bind(incident)
            .bind(outcome)
            .bind(now)
        };
        let trigger = json!({"key": t.key, "automation": t.automation, "at_ms": now, "at": time::millis_to_string(now), "what": t.payload});
        if let Some(mut inc) = open {
            let mut triggers = inc.detail["triggers"].as_array().cloned().unwrap_or_default();
            triggers.push(trigger.clone());
            merge(&mut inc.detail, &json!({ "triggers": triggers }));
            inc.generation += 1;
            inc.updated_ms = now;
            sqlx::query("UPDATE incidents SET detail = $1, generation = $2, updated_ms = $3 WHERE id = $4")
                .bind(inc.detail.to_string())
                .bind(inc.generation)
                .bind(now)
                .bind(inc.id)
                .execute(&mut *tx)
                .await?;
            record(Some(inc.id), "joined".into()).execute(&mut *tx).await?;
            let subject = format!("incident:{}", inc.id);
            insert_event(&mut tx, actor, EventKind::IncidentJoined, &subject, &trigger).await?;
            tx.commit().await?;
            return Ok(TriggerOutcome::Joined(inc));
        }
        let held = guard_refusal(&mut tx, t.automation, t.cooldown_ms, t.max_per_day, now).await?;
        if let Some(reason) = held {
            record(None, format!("suppressed: {reason}")).execute(&mut *tx).await?;
            let payload = json!({"automation": t.automation, "model": t.model, "reason": reason, "trigger": trigger});
            insert_event(
                &mut tx,
                actor,
                EventKind::TriggerSuppressed,
                &format!("automation:{}", t.automation),
                &payload,
            )
            .await?;
            tx.commit().await?;
            return Ok(TriggerOutcome::Suppressed(reason));
        }
        let detail = json!({ "triggers": [trigger] });
        let row = sqlx::query(
            "INSERT INTO incidents (automation, model, state, open_model, detail, generation, opened_ms, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, 1, $6, $6) RETURNING id",
        )
        .bind(t.automation)
        .bind(t.model)
        .bind(IncidentState::Triggered.as_str())
        .bind(t.model)
        .bind(detail.to_string())
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = row.try_get(0)?;
        record(Some(id), "opened".into()).execute(&mut *tx).await?;
        let payload = json!({"automation": t.automation, "model": t.model, "state": IncidentState::Triggered, "trigger": trigger});
        insert_event(&mut tx, actor, EventKind::IncidentOpened, &format!("incident:{id}"), &payload).await?;
        tx.commit().await?;
        Ok(TriggerOutcome::Opened(Incident {
            id,
            automation: t.automation.to_string(),
            model: t.model.to_string(),
            state: IncidentState::Triggered,
            detail,
            generation: 1,
            opened_ms: now,
            updated_ms: now,
            closed_ms: None,
        }))
    }

    /// Why the automation's guard would hold a new incident back now, if it would (the same
    /// check `take_trigger` makes; `kairo automations run --dry-run` reports it).
    pub async fn trigger_guard(
        &self,
        automation: &str,
        cooldown_ms: Option<i64>,
        max_per_day: Option<u32>,
    ) -> Result<Option<String>> {
        let mut tx = self.pool.begin().await?;
        let held = guard_refusal(&mut tx, automation, cooldown_ms, max_per_day, time::now_millis()).await?;
        tx.rollback().await?;
        Ok(held)
    }

    /// Move an incident from the state and generation the caller read to `to`, merging
    /// `patch` into its facts, with an `incident.advanced` event (payload: from, to, patch).
    /// Refused when someone else advanced it first.
    pub async fn advance_incident(
        &self,
        id: i64,
        generation: i64,
        to: IncidentState,
        patch: &Value,
        actor: &str,
    ) -> Result<Incident> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let mut inc = sqlx::query(&format!("{SELECT} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| incident_from_row(&r))
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("no incident {id}")))?;
        if inc.generation != generation {
            return Err(StoreError::Invalid(format!(
                "incident {id} changed meanwhile (generation {} is now {}): read it again",
                generation, inc.generation
            )));
        }
        if inc.state.is_final() {
            return Err(StoreError::Invalid(format!("incident {id} is closed ({})", inc.state)));
        }
        let now = time::now_millis();
        let from = inc.state;
        merge(&mut inc.detail, patch);
        inc.state = to;
        inc.generation += 1;
        inc.updated_ms = now;
        if to.is_final() {
            inc.closed_ms = Some(now);
        }
        sqlx::query(
            "UPDATE incidents SET state = $1, detail = $2, generation = $3, updated_ms = $4, closed_ms = $5, \
             open_model = $6 WHERE id = $7 AND generation = $8",
        )
        .bind(to.as_str())
        .bind(inc.detail.to_string())
        .bind(inc.generation)
        .bind(now)
        .bind(inc.closed_ms)
        .bind((!to.is_final()).then(|| inc.model.clone()))
        .bind(id)
        .bind(generation)
        .execute(&mut *tx)
        .await?;
        let payload = json!({"from": from, "to": to, "at_ms": now, "facts": patch});
        insert_event(&mut tx, actor, EventKind::IncidentAdvanced, &format!("incident:{id}"), &payload).await?;
        tx.commit().await?;
        Ok(inc)
    }

    pub async fn incident(&self, id: i64) -> Result<Incident> {
        sqlx::query(&format!("{SELECT} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| incident_from_row(&r))
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("no incident {id} (list them with `kairo incidents ls`)")))
    }

    /// Incidents newest first; only open ones with `open_only`.
    pub async fn incidents(&self, open_only: bool, limit: i64) -> Result<Vec<Incident>> {
        let filter = if open_only { " WHERE open_model IS NOT NULL" } else { "" };
        let rows = sqlx::query(&format!("{SELECT}{filter} ORDER BY id DESC LIMIT $1"))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(incident_from_row).collect()
    }

    /// Events after `after_id` of the given kinds, oldest first (the loop's trigger scan).
    pub async fn events_after(
        &self,
        after_id: i64,
        kinds: &[EventKind],
        limit: i64,
    ) -> Result<Vec<crate::metadata::Event>> {
        if kinds.is_empty() {
            return Ok(Vec::new());
        }
        let marks: Vec<String> = (0..kinds.len()).map(|i| format!("${}", i + 3)).collect();
        let sql = format!(
            "SELECT id, at, actor, kind, subject, payload FROM events WHERE id > $1 AND kind IN ({}) ORDER BY id LIMIT $2",
            marks.join(", ")
        );
        let mut q = sqlx::query(&sql).bind(after_id).bind(limit);
        for k in kinds {
            q = q.bind(k.as_str());
        }
        q.fetch_all(&self.pool).await?.iter().map(crate::metadata::event_from_row).collect()
    }

    /// The highest trigger key number taken by an automation for keys `PREFIX:N` (the cron
    /// cursor: the last firing handled).
    pub async fn last_trigger_key(&self, automation: &str, prefix: &str) -> Result<Option<i64>> {
        let rows = sqlx::query("SELECT trigger_key FROM automation_triggers WHERE automation = $1")
            .bind(automation)
            .fetch_all(&self.pool)
            .await?;
        let mut best = None;
        for r in rows {
            let key: String = r.try_get(0)?;
            if let Some(n) =
                key.strip_prefix(prefix).and_then(|k| k.strip_prefix(':')).and_then(|n| n.parse::<i64>().ok())
            {
                best = best.max(Some(n));
            }
        }
        Ok(best)
    }
}

/// Why the guard holds a new incident of `automation` back at `now`, if it does.
async fn guard_refusal(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    automation: &str,
    cooldown_ms: Option<i64>,
    max_per_day: Option<u32>,
    now: i64,
) -> Result<Option<String>> {
    if let Some(cooldown) = cooldown_ms {
        let last = sqlx::query("SELECT MAX(opened_ms) FROM incidents WHERE automation = $1")
            .bind(automation)
            .fetch_one(&mut **tx)
            .await?
            .try_get::<Option<i64>, _>(0)?;
        if let Some(last) = last.filter(|l| now - l < cooldown) {
            return Ok(Some(format!(
                "cooldown: the last incident opened {} ago, the guard waits {}",
                human_ms(now - last),
                human_ms(cooldown)
            )));
        }
    }
    if let Some(max) = max_per_day {
        let n = sqlx::query("SELECT COUNT(*) FROM incidents WHERE automation = $1 AND opened_ms > $2")
            .bind(automation)
            .bind(now - 86_400_000)
            .fetch_one(&mut **tx)
            .await?
            .try_get::<i64, _>(0)?;
        if n >= i64::from(max) {
            return Ok(Some(format!("max_per_day: {n} incidents opened in the last 24 hours (limit {max})")));
        }
    }
    Ok(None)
}

fn human_ms(ms: i64) -> String {
    match ms {
        ms if ms < 120_000 => format!("{} s", ms / 1000),
        ms if ms < 7_200_000 => format!("{} min", ms / 60_000),
        ms => format!("{:.1} h", ms as f64 / 3_600_000.0),
    }
}
