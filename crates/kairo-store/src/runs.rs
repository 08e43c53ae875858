//! Runs in the metadata store: start, finish (once), find by id prefix, list, the run cache
//! lookup, and the lineage edges (`run_io`).

use crate::error::{Result, StoreError};
use crate::metadata::{insert_event, Metadata};
use kairo_core::run::{Run, RunStatus};
use kairo_core::EventKind;
use kairo_core::Hash;
use sqlx::any::AnyRow;
use sqlx::Row;

/// Filters for [`Metadata::runs`]. Empty means all.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub stage: Option<String>,
    pub status: Option<RunStatus>,
    /// Newest first, at most this many (after the filters above).
    pub limit: Option<i64>,
}

/// Why a run id did not resolve.
#[derive(Debug, thiserror::Error)]
pub enum RunLookupError {
    #[error("no run matches `{0}` (see `kairo runs ls`)")]
    NotFound(String),
    #[error("`{prefix}` matches {count} runs; give more characters of the id")]
    Ambiguous { prefix: String, count: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Metadata {
    /// Record a run that is starting (status `running`) with its event.
    pub async fn start_run(&self, run: &Run) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO runs (id, stage, status, run_trigger, actor, host, pid, started_at, ended_at, cache_key, cacheable, reproduces, record, run_name, user_id, start_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $2, $5, $14)",
        )
        .bind(&run.id)
        .bind(&run.stage)
        .bind(run.status.as_str())
        .bind(&run.trigger)
        .bind(&run.actor)
        .bind(&run.host)
        .bind(run.pid as i64)
        .bind(&run.started_at)
        .bind(run.ended_at.as_deref())
        .bind(run.cache_key.to_hex())
        .bind(run.cacheable as i64)
        .bind(run.reproduces.as_deref())
        .bind(encode(run)?)
        .bind(kairo_core::time::millis_of(&run.started_at))
        .execute(&mut *tx)
        .await?;
        insert_io(&mut tx, run, "in").await?;
        let payload = serde_json::json!({"stage": run.stage, "trigger": run.trigger, "git_commit": run.git.commit, "reproduces": run.reproduces});
        insert_event(&mut tx, &run.actor, EventKind::RunStarted, &format!("run:{}", run.id), &payload).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Record how a running run ended, pin the objects it holds, and write the event. A run
    /// that already finished is never changed: this returns `Ok(false)` for it.
    pub async fn finish_run(&self, run: &Run, pins: &[Hash]) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE runs SET status = $2, ended_at = $3, cacheable = $4, record = $5, end_ms = $6, cpu_ms = $7 WHERE id = $1 AND status = 'running'",
        )
        .bind(&run.id)
        .bind(run.status.as_str())
        .bind(run.ended_at.as_deref())
        .bind(run.cacheable as i64)
        .bind(encode(run)?)
        .bind(run.ended_at.as_deref().map(kairo_core::time::millis_of))
        .bind(run.cpu_ms.map(|c| i64::try_from(c).unwrap_or(i64::MAX)))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        // The tracking view of a pipeline run: its params and metrics, searchable like any run's.
        let end = run.ended_at.as_deref().map(kairo_core::time::millis_of).unwrap_or(0);
        for (key, value) in &run.metrics {
            // The trigger on run_metrics keeps run_latest_metrics current.
            sqlx::query(
                "INSERT INTO run_metrics (run_id, key, value, is_nan, timestamp, step) VALUES ($1, $2, $3, 0, $4, 0)",
            )
            .bind(&run.id)
            .bind(key)
            .bind(*value)
            .bind(end)
            .execute(&mut *tx)
            .await?;
        }
        for values in run.params.values() {
            for (key, value) in values {
                let text = match value {
                    serde_json::Value::String(s) => s.clone(),
                    v => v.to_string(),
                };
                sqlx::query("INSERT INTO run_params (run_id, key, value) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                    .bind(&run.id)
                    .bind(key)
                    .bind(text)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        insert_io(&mut tx, run, "out").await?;
        let now = kairo_core::time::now_string();
        for hash in pins {
            sqlx::query(
                "INSERT INTO object_refs (hash, owner_kind, owner_id, created_at) VALUES ($1, 'run', $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(hash.to_hex())
            .bind(&run.id)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        }
        let payload = serde_json::json!({
            "stage": run.stage, "status": run.status.as_str(), "exit_code": run.exit_code,
            "cacheable": run.cacheable, "metrics": run.metrics, "message": run.message,
        });
        insert_event(&mut tx, &run.actor, EventKind::RunFinished, &format!("run:{}", run.id), &payload).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The run with this id, or the only one whose id starts with `prefix`.
    pub async fn run(&self, prefix: &str) -> std::result::Result<Run, RunLookupError> {
        if prefix.is_empty() || !prefix.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(RunLookupError::NotFound(prefix.to_string()));
        }
        let pattern = format!("{}%", prefix.to_ascii_lowercase());
        let rows =
            sqlx::query("SELECT record, status, ended_at, run_name FROM runs WHERE id LIKE $1 ORDER BY id LIMIT 2")
                .bind(&pattern)
                .fetch_all(&self.pool)
                .await
                .map_err(StoreError::from)?;
        match rows.len() {
            0 => Err(RunLookupError::NotFound(prefix.to_string())),
            1 => Ok(self.with_tracked_data(vec![decode(&rows[0])?]).await?.remove(0)),
            _ => {
                let count: i64 = sqlx::query("SELECT COUNT(*) FROM runs WHERE id LIKE $1")
                    .bind(&pattern)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(StoreError::from)?
                    .try_get(0)
                    .map_err(StoreError::from)?;
                Err(RunLookupError::Ambiguous { prefix: prefix.to_string(), count: count as usize })
            }
        }
    }

    /// Runs matching the filter, newest first.
    pub async fn runs(&self, filter: &RunFilter) -> Result<Vec<Run>> {
        let limit = filter.limit.unwrap_or(i64::MAX);
        let rows = sqlx::query(
            "SELECT record, status, ended_at, run_name FROM runs WHERE ($1 = '' OR stage = $1) AND ($2 = '' OR status = $2) ORDER BY id DESC LIMIT $3",
        )
        .bind(filter.stage.clone().unwrap_or_default())
        .bind(filter.status.map(|s| s.as_str()).unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let runs = rows.iter().map(decode).collect::<Result<Vec<_>>>()?;
        self.with_tracked_data(runs).await
    }

    /// Succeeded, cacheable runs with this cache key, newest first: the run cache.
    pub async fn cached_runs(&self, key: &Hash) -> Result<Vec<Run>> {
        let rows = sqlx::query(
            "SELECT record, status, ended_at, run_name FROM runs WHERE cache_key = $1 AND status = 'succeeded' AND cacheable = 1 ORDER BY id DESC LIMIT 8",
        )
        .bind(key.to_hex())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Succeeded runs that wrote this version (of any path), oldest first.
    pub async fn runs_producing(&self, hash: &Hash) -> Result<Vec<Run>> {
        let rows = sqlx::query(
            "SELECT r.record, r.status, r.ended_at, r.run_name FROM run_io i JOIN runs r ON r.id = i.run_id \
             WHERE i.hash = $1 AND i.direction = 'out' AND r.status = 'succeeded' ORDER BY r.id",
        )
        .bind(hash.to_hex())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Runs that read this version (of any path), oldest first: the other direction of lineage.
    pub async fn runs_reading(&self, hash: &Hash) -> Result<Vec<Run>> {
        let rows = sqlx::query(
            "SELECT r.record, r.status, r.ended_at, r.run_name FROM run_io i JOIN runs r ON r.id = i.run_id \
             WHERE i.hash = $1 AND i.direction = 'in' ORDER BY r.id LIMIT 500",
        )
        .bind(hash.to_hex())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Runs still marked `running` on `host`: the caller decides which of them are orphans.
    pub async fn running_runs(&self, host: &str) -> Result<Vec<Run>> {
        let rows = sqlx::query(
            "SELECT record, status, ended_at, run_name FROM runs WHERE status = 'running' AND host = $1 ORDER BY id",
        )
        .bind(host)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode).collect()
    }
}

async fn insert_io(tx: &mut sqlx::Transaction<'_, sqlx::Any>, run: &Run, direction: &str) -> Result<()> {
    let versions = if direction == "in" { &run.deps } else { &run.outs };
    for v in versions {
        sqlx::query(
            "INSERT INTO run_io (run_id, direction, path, hash) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(&run.id)
        .bind(direction)
        .bind(&v.path)
        .bind(v.hash.to_hex())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

fn encode(run: &Run) -> Result<String> {
    serde_json::to_string(run).map_err(|e| StoreError::Database(sqlx::Error::Encode(Box::new(e))))
}

/// A run from (record, status, ended_at, run_name). The columns win over the record: runs
/// created through the tracking API change status and name there, not in the record.
pub(crate) fn decode(row: &AnyRow) -> Result<Run> {
    let text: String = row.try_get(0)?;
    let mut run: Run =
        serde_json::from_str(&text).map_err(|e| StoreError::Database(sqlx::Error::Decode(Box::new(e))))?;
    let status: String = row.try_get(1)?;
    if let Some(s) = RunStatus::parse(&status) {
        run.status = s;
    }
    run.ended_at = row.try_get(2)?;
    if run.executor == TRACKED_EXECUTOR {
        run.stage = row.try_get(3)?;
    }
    Ok(run)
}

/// The executor of runs created through the tracking API (see `Run::tracked`).
const TRACKED_EXECUTOR: &str = "mlflow-client";

impl Metadata {
    /// Fill the metrics and params of API-created runs from the tracking tables, a few queries
    /// for the whole list (pipeline runs carry theirs in the record).
    async fn with_tracked_data(&self, mut runs: Vec<Run>) -> Result<Vec<Run>> {
        let ids: Vec<String> = runs.iter().filter(|r| r.executor == TRACKED_EXECUTOR).map(|r| r.id.clone()).collect();
        let index: std::collections::HashMap<String, usize> =
            runs.iter().enumerate().map(|(i, r)| (r.id.clone(), i)).collect();
        for chunk in ids.chunks(500) {
            let list = (1..=chunk.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
            let sql = format!("SELECT run_id, key, value, is_nan FROM run_latest_metrics WHERE run_id IN ({list})");
            for r in &crate::tracking::bind_all(sqlx::query(&sql), chunk).fetch_all(&self.pool).await? {
                let id: String = r.try_get(0)?;
                if let Some(&i) = index.get(&id) {
                    let nan: i64 = r.try_get(3)?;
                    runs[i].metrics.insert(r.try_get(1)?, if nan == 1 { f64::NAN } else { r.try_get(2)? });
                }
            }
            let sql = format!("SELECT run_id, key, value FROM run_params WHERE run_id IN ({list})");
            for r in &crate::tracking::bind_all(sqlx::query(&sql), chunk).fetch_all(&self.pool).await? {
                let id: String = r.try_get(0)?;
                if let Some(&i) = index.get(&id) {
                    let params = runs[i].params.entry("mlflow".to_string()).or_default();
                    params.insert(r.try_get(1)?, serde_json::Value::String(r.try_get(2)?));
                }
            }
        }
        Ok(runs)
    }
}

/// A page of runs for browsing (the web UI): conditions the database evaluates, newest first.
#[derive(Debug, Clone, Default)]
pub struct RunPage {
    /// Each must hold; a `Params` condition also matches a stage's param by the last part of
    /// its dotted name (`lr` finds `train.lr`), so the caller re-checks exactly.
    pub conditions: Vec<crate::tracking::Condition>,
    /// Run columns compared for equality: `stage`, `status`, `actor`, `trigger`, `run_id`.
    pub columns: Vec<(String, String)>,
    /// The order (default: newest first); runs without the key come last.
    pub sort: Sort,
    pub offset: i64,
    pub limit: i64,
}

/// What a page of runs is ordered by; ties go newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Sort {
    #[default]
    Newest,
    Oldest,
    /// A latest metric value (`true`: descending).
    Metric(String, bool),
    /// A param's value as text (`true`: descending).
    Param(String, bool),
}

/// The `runs` column an attribute name stands for, if the database can compare it.
pub fn run_column(attribute: &str) -> Option<&'static str> {
    Some(match attribute {
        "stage" => "r.stage",
        "status" => "r.status",
        "actor" => "r.actor",
        "trigger" => "r.run_trigger",
        "run_id" => "r.id",
        _ => return None,
    })
}

enum Bound {
    Text(String),
    Number(f64),
}

impl Metadata {
    /// Active runs (pipeline and tracking-API) that satisfy every condition, newest first:
    /// one query, each condition an `EXISTS` on the latest-metrics, params or tags table.
    pub async fn runs_page(&self, q: &RunPage) -> Result<Vec<Run>> {
        use crate::tracking::{CondTable, CondValue};
        let mut binds: Vec<Bound> = Vec::new();
        fn next(b: Bound, binds: &mut Vec<Bound>) -> String {
            binds.push(b);
            format!("${}", binds.len())
        }
        let (join, order) = match &q.sort {
            Sort::Newest => (String::new(), "r.start_ms DESC, r.id DESC".to_string()),
            Sort::Oldest => (String::new(), "r.start_ms ASC, r.id ASC".to_string()),
            Sort::Metric(key, desc) | Sort::Param(key, desc) => {
                let k = next(Bound::Text(key.clone()), &mut binds);
                let join = if matches!(q.sort, Sort::Metric(..)) {
                    format!(" LEFT JOIN run_latest_metrics s ON s.run_id = r.id AND s.key = {k} AND s.is_nan = 0")
                } else {
                    format!(" LEFT JOIN run_params s ON s.run_id = r.id AND s.key = {k}")
                };
                let dir = if *desc { "DESC" } else { "ASC" };
                (join, format!("s.value IS NULL, s.value {dir}, r.start_ms DESC, r.id DESC"))
            }
        };
        let mut sql = format!(
            "SELECT r.record, r.status, r.ended_at, r.run_name FROM runs r{join} WHERE r.lifecycle_stage = 'active'"
        );
        for c in &q.conditions {
            let op = match c.op.as_str() {
                op @ ("=" | "!=" | ">" | ">=" | "<" | "<=") => op,
                other => {
                    return Err(StoreError::Invalid(format!("operator {other} cannot be evaluated by the database")))
                }
            };
            match (&c.table, &c.value) {
                (CondTable::Metrics, CondValue::Number(v)) => {
                    let k = next(Bound::Text(c.key.clone()), &mut binds);
                    let v = next(Bound::Number(*v), &mut binds);
                    sql += &format!(
                        " AND EXISTS (SELECT 1 FROM run_latest_metrics m WHERE m.run_id = r.id AND m.key = {k} AND m.is_nan = 0 AND m.value {op} {v})"
                    );
                }
                (CondTable::Params, CondValue::Text(v)) => {
                    let k = next(Bound::Text(c.key.clone()), &mut binds);
                    let escaped: String = c
                        .key
                        .chars()
                        .flat_map(|ch| match ch {
                            '%' | '_' | '\\' => vec!['\\', ch],
                            ch => vec![ch],
                        })
                        .collect();
                    let pattern = next(Bound::Text(format!("%.{escaped}")), &mut binds);
                    let v = next(Bound::Text(v.clone()), &mut binds);
                    sql += &format!(
                        " AND EXISTS (SELECT 1 FROM run_params p WHERE p.run_id = r.id AND (p.key = {k} OR p.key LIKE {pattern} ESCAPE '\\') AND p.value {op} {v})"
                    );
                }
                (CondTable::Tags, CondValue::Text(v)) => {
                    let k = next(Bound::Text(c.key.clone()), &mut binds);
                    let v = next(Bound::Text(v.clone()), &mut binds);
                    sql += &format!(
                        " AND EXISTS (SELECT 1 FROM run_tags t WHERE t.run_id = r.id AND t.key = {k} AND t.value {op} {v})"
                    );
                }
                _ => return Err(StoreError::Invalid(format!("{} cannot be compared with that value", c.key))),
            }
        }
        for (attribute, value) in &q.columns {
            let Some(column) = run_column(attribute) else {
                return Err(StoreError::Invalid(format!("attribute {attribute} cannot be evaluated by the database")));
            };
            let v = next(Bound::Text(value.clone()), &mut binds);
            sql += &format!(" AND {column} = {v}");
        }
        sql += &format!(" ORDER BY {order} LIMIT ${} OFFSET ${}", binds.len() + 1, binds.len() + 2);
        let mut query = sqlx::query(&sql);
        for b in &binds {
            query = match b {
                Bound::Text(t) => query.bind(t.as_str()),
                Bound::Number(n) => query.bind(*n),
            };
        }
        let rows = query.bind(q.limit).bind(q.offset).fetch_all(&self.pool).await?;
        let runs = rows.iter().map(decode).collect::<Result<Vec<_>>>()?;
        self.with_tracked_data(runs).await
    }
}

/// The run that wrote a version: which stage, when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Producer {
    pub hash: Hash,
    pub run_id: String,
    pub stage: String,
}

impl Metadata {
    /// These runs (exact ids; unknown ones are left out), in no particular order.
    pub async fn runs_by_id(&self, ids: &[String]) -> Result<Vec<Run>> {
        let mut runs = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let list = (1..=chunk.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
            let sql = format!("SELECT record, status, ended_at, run_name FROM runs WHERE id IN ({list})");
            for row in &crate::tracking::bind_all(sqlx::query(&sql), chunk).fetch_all(&self.pool).await? {
                runs.push(decode(row)?);
            }
        }
        self.with_tracked_data(runs).await
    }

    /// For each version, the first succeeded run that wrote it (several queries for many).
    pub async fn producers(&self, hashes: &[Hash]) -> Result<Vec<Producer>> {
        let hex: Vec<String> = hashes.iter().map(Hash::to_hex).collect();
        let mut out: Vec<Producer> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for chunk in hex.chunks(500) {
            let list = (1..=chunk.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
            let sql = format!(
                "SELECT i.hash, r.id, r.stage FROM run_io i JOIN runs r ON r.id = i.run_id \
                 WHERE i.direction = 'out' AND r.status = 'succeeded' AND i.hash IN ({list}) ORDER BY r.id"
            );
            for row in &crate::tracking::bind_all(sqlx::query(&sql), chunk).fetch_all(&self.pool).await? {
                let text: String = row.try_get(0)?;
                let Ok(hash) = text.parse::<Hash>() else { continue };
                if seen.insert(hash) {
                    out.push(Producer { hash, run_id: row.try_get(1)?, stage: row.try_get(2)? });
                }
            }
        }
        Ok(out)
    }
}
