//! What the KPIs read (migration `0010_kpi`): the ledger's events of given kinds since a time,
//! the cost of runs grouped in SQL, monitor checks per day, and a bulk import of events with
//! their own times (history from elsewhere, a test's synthetic ledger, the benchmark).

use crate::error::{Result, StoreError};
use crate::metadata::{event_from_row, Event, Metadata};
use kairo_core::{time, EventKind};
use sqlx::Row;

/// An event to append with the time it happened.
#[derive(Debug, Clone)]
pub struct ImportedEvent {
    pub at_ms: i64,
    pub actor: String,
    pub kind: EventKind,
    pub subject: String,
    pub payload: serde_json::Value,
}

/// The runs of one stage, trigger and actor, summed.
#[derive(Debug, Clone, PartialEq)]
pub struct RunCost {
    pub stage: String,
    /// `manual`, `ci`, `schedule`, `alert`; `api` for runs of tracking clients.
    pub trigger: String,
    pub actor: String,
    pub runs: i64,
    pub failed: i64,
    /// Sum of end_ms - start_ms over finished runs.
    pub wall_ms: i64,
    /// Sum of recorded CPU time; runs without a record count 0 and are counted in `unmeasured`.
    pub cpu_ms: i64,
    pub unmeasured: i64,
}

/// Monitor checks on one UTC day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorCheckDay {
    pub monitor: String,
    pub day_ms: i64,
    pub scheduled: i64,
    pub manual: i64,
}

const DAY_MS: i64 = 86_400_000;

impl Metadata {
    /// Events of the given kinds at or after `since_ms` (all with `None`), oldest first.
    pub async fn events_of_kinds(&self, kinds: &[EventKind], since_ms: Option<i64>) -> Result<Vec<Event>> {
        if kinds.is_empty() {
            return Ok(Vec::new());
        }
        let marks: Vec<String> = (0..kinds.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT id, at, actor, kind, subject, payload FROM events WHERE at >= $1 AND kind IN ({})",
            marks.join(", ")
        );
        // Times are stored as RFC 3339 UTC with milliseconds, so they compare as text.
        let since = since_ms.map(time::millis_to_string).unwrap_or_default();
        let mut q = sqlx::query(&sql).bind(since);
        for k in kinds {
            q = q.bind(k.as_str());
        }
        // Sorted here rather than by the database, which then reads (kind, at) from its index
        // instead of scanning the table in id order.
        let mut events: Vec<Event> =
            q.fetch_all(&self.pool).await?.iter().map(event_from_row).collect::<Result<_>>()?;
        events.sort_by_key(|e| e.id);
        Ok(events)
    }

    /// Append events with their own times, in one transaction. Kairo's own changes record
    /// their events as they commit; this is for history brought from elsewhere and for
    /// synthetic ledgers (tests, benchmarks). Returns the number written.
    pub async fn import_events(&self, events: &[ImportedEvent]) -> Result<usize> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        crate::metadata::lock_chain(&mut tx).await?;
        let mut prev = crate::metadata::chain_head(&mut tx).await?;
        for chunk in events.chunks(100) {
            let mut sql =
                String::from("INSERT INTO events (at, actor, kind, subject, payload, prev_hash, hash) VALUES ");
            for i in 0..chunk.len() {
                let b = i * 7;
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!(
                    "(${}, ${}, ${}, ${}, ${}, ${}, ${})",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5,
                    b + 6,
                    b + 7
                ));
            }
            let mut q = sqlx::query(&sql);
            for e in chunk {
                let at = time::millis_to_string(e.at_ms);
                if at.is_empty() {
                    return Err(StoreError::Invalid(format!("event time {} ms is out of range", e.at_ms)));
                }
                let payload = e.payload.to_string();
                let hash = kairo_core::event::chain_hash(
                    prev.as_deref(),
                    &at,
                    &e.actor,
                    e.kind.as_str(),
                    &e.subject,
                    &payload,
                );
                q = q
                    .bind(at)
                    .bind(e.actor.clone())
                    .bind(e.kind.as_str())
                    .bind(e.subject.clone())
                    .bind(payload)
                    .bind(prev.replace(hash.clone()))
                    .bind(hash);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(events.len())
    }

    /// Runs started at or after `since_ms`, summed per stage, trigger and actor.
    pub async fn run_costs(&self, since_ms: Option<i64>) -> Result<Vec<RunCost>> {
        let rows = sqlx::query(
            "SELECT stage, run_trigger, actor, COUNT(*), \
             CAST(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS BIGINT), \
             CAST(SUM(CASE WHEN end_ms > start_ms THEN end_ms - start_ms ELSE 0 END) AS BIGINT), \
             CAST(SUM(COALESCE(cpu_ms, 0)) AS BIGINT), CAST(SUM(CASE WHEN cpu_ms IS NULL THEN 1 ELSE 0 END) AS BIGINT) \
             FROM runs WHERE start_ms >= $1 GROUP BY stage, run_trigger, actor \
             ORDER BY stage, run_trigger, actor",
        )
        .bind(since_ms.unwrap_or(i64::MIN))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RunCost {
                    stage: r.try_get(0)?,
                    trigger: r.try_get(1)?,
                    actor: r.try_get(2)?,
                    runs: r.try_get(3)?,
                    failed: r.try_get(4)?,
                    wall_ms: r.try_get(5)?,
                    cpu_ms: r.try_get(6)?,
                    unmeasured: r.try_get(7)?,
                })
            })
            .collect()
    }

    /// Count one check of a monitor on the UTC day of `at_ms`: by the schedule of `kairo
    /// server`, or by hand.
    pub async fn record_monitor_check(&self, monitor: &str, at_ms: i64, scheduled: bool) -> Result<()> {
        let _w = self.writer().await;
        sqlx::query(
            "INSERT INTO monitor_check_days (monitor, day_ms, scheduled, manual) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (monitor, day_ms) DO UPDATE SET scheduled = monitor_check_days.scheduled + excluded.scheduled, \
             manual = monitor_check_days.manual + excluded.manual",
        )
        .bind(monitor)
        .bind(at_ms.div_euclid(DAY_MS) * DAY_MS)
        .bind(i64::from(scheduled))
        .bind(i64::from(!scheduled))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Monitor checks per day from the day holding `since_ms` on.
    pub async fn monitor_check_days(&self, since_ms: Option<i64>) -> Result<Vec<MonitorCheckDay>> {
        let since = since_ms.map(|s| s.div_euclid(DAY_MS) * DAY_MS).unwrap_or(i64::MIN);
        let rows = sqlx::query(
            "SELECT monitor, day_ms, scheduled, manual FROM monitor_check_days WHERE day_ms >= $1 ORDER BY monitor, day_ms",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(MonitorCheckDay {
                    monitor: r.try_get(0)?,
                    day_ms: r.try_get(1)?,
                    scheduled: r.try_get(2)?,
                    manual: r.try_get(3)?,
                })
            })
            .collect()
    }
}

/// Where and when a run ran, without its record.
#[derive(Debug, Clone, PartialEq)]
pub struct RunBrief {
    pub id: String,
    pub stage: String,
    pub actor: String,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
}

impl Metadata {
    /// The runs named, by id (unknown ids are left out).
    pub async fn run_briefs(&self, ids: &[String]) -> Result<Vec<RunBrief>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!("SELECT id, stage, actor, start_ms, end_ms FROM runs WHERE id IN ({})", marks.join(", "));
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id.clone());
            }
            for r in q.fetch_all(&self.pool).await? {
                out.push(RunBrief {
                    id: r.try_get(0)?,
                    stage: r.try_get(1)?,
                    actor: r.try_get(2)?,
                    start_ms: r.try_get(3)?,
                    end_ms: r.try_get(4)?,
                });
            }
        }
        Ok(out)
    }

    /// When a version of a tracked path was recorded (`None` if it never was).
    pub async fn dataset_version_recorded_ms(&self, path: &str, hash: &str) -> Result<Option<i64>> {
        let row = sqlx::query(
            "SELECT v.created_at FROM dataset_versions v JOIN datasets d ON d.id = v.dataset_id WHERE d.path = $1 AND v.hash = $2",
        )
        .bind(path)
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get::<String, _>(0)).transpose()?.map(|t| time::millis_of(&t)))
    }

    /// Prediction-log rows per deployment in segments that began in `[from_ms, to_ms)`.
    pub async fn prediction_rows(&self, from_ms: i64, to_ms: i64) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT deployment, CAST(SUM(rows) AS BIGINT) FROM prediction_segments WHERE start_ms >= $1 AND start_ms < $2 \
             GROUP BY deployment ORDER BY deployment",
        )
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }
}

impl Metadata {
    /// The records of the runs named (unknown ids are left out), without the tracking data
    /// (params, metrics) `run` adds.
    pub async fn run_records(&self, ids: &[String]) -> Result<Vec<kairo_core::run::Run>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!("SELECT record, status, ended_at, run_name FROM runs WHERE id IN ({})", marks.join(", "));
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id.clone());
            }
            for r in q.fetch_all(&self.pool).await? {
                out.push(crate::runs::decode(&r)?);
            }
        }
        Ok(out)
    }

    /// When each of these dataset versions (by content hash) was first recorded, under any path.
    pub async fn dataset_versions_recorded_ms(
        &self,
        hashes: &[String],
    ) -> Result<std::collections::HashMap<(String, String), i64>> {
        let mut out = std::collections::HashMap::new();
        for chunk in hashes.chunks(500) {
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT d.path, v.hash, v.created_at FROM dataset_versions v JOIN datasets d ON d.id = v.dataset_id \
                 WHERE v.hash IN ({})",
                marks.join(", ")
            );
            let mut q = sqlx::query(&sql);
            for h in chunk {
                q = q.bind(h.clone());
            }
            for r in q.fetch_all(&self.pool).await? {
                let at: String = r.try_get(2)?;
                out.insert((r.try_get(0)?, r.try_get(1)?), time::millis_of(&at));
            }
        }
        Ok(out)
    }
}

/// One serving process's totals for a version on a UTC day (`day_ms` at 00:00).
#[derive(Debug, Clone, PartialEq)]
pub struct ServingDay {
    pub deployment: String,
    pub version: i64,
    pub day_ms: i64,
    /// The serving process (random per start).
    pub instance: String,
    pub requests: i64,
    pub client_errors: i64,
    pub server_errors: i64,
    pub latency: kairo_core::latency::Histogram,
    pub updated_ms: i64,
}

impl Metadata {
    /// Write serving processes' running totals, each row overwriting its own (deployment,
    /// version, day, instance), in one transaction.
    pub async fn put_serving_days(&self, rows: &[ServingDay]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        for r in rows {
            sqlx::query(
                "INSERT INTO serving_days (deployment, version, day_ms, instance, requests, client_errors, server_errors, latency, updated_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (deployment, version, day_ms, instance) DO UPDATE SET requests = excluded.requests, \
                 client_errors = excluded.client_errors, server_errors = excluded.server_errors, latency = excluded.latency, \
                 updated_ms = excluded.updated_ms",
            )
            .bind(&r.deployment)
            .bind(r.version)
            .bind(r.day_ms)
            .bind(&r.instance)
            .bind(r.requests)
            .bind(r.client_errors)
            .bind(r.server_errors)
            .bind(r.latency.encode())
            .bind(r.updated_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Rows of days from `since_day_ms` on (every instance: the caller sums), optionally of one
    /// deployment, by deployment, version and day.
    pub async fn serving_days(&self, since_day_ms: i64, deployment: Option<&str>) -> Result<Vec<ServingDay>> {
        let rows = sqlx::query(
            "SELECT deployment, version, day_ms, instance, requests, client_errors, server_errors, latency, updated_ms \
             FROM serving_days WHERE day_ms >= $1 AND ($2 = '' OR deployment = $2) ORDER BY deployment, version, day_ms, instance",
        )
        .bind(since_day_ms)
        .bind(deployment.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let deployment: String = r.try_get(0)?;
                let version: i64 = r.try_get(1)?;
                let day_ms: i64 = r.try_get(2)?;
                let text: String = r.try_get(7)?;
                let latency = kairo_core::latency::Histogram::decode(&text).map_err(|e| {
                    StoreError::Invalid(format!(
                        "serving day of {deployment} version {version} on {}: {e}",
                        time::millis_to_string(day_ms)
                    ))
                })?;
                Ok(ServingDay {
                    deployment,
                    version,
                    day_ms,
                    instance: r.try_get(3)?,
                    requests: r.try_get(4)?,
                    client_errors: r.try_get(5)?,
                    server_errors: r.try_get(6)?,
                    latency,
                    updated_ms: r.try_get(8)?,
                })
            })
            .collect()
    }
}
