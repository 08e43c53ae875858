//! Tracking in the metadata store: experiments, runs created through the API, params, tags,
//! metric history (with a latest-value table for search), and artifact paths → objects.
//!
//! Writes that read before they write run under one in-process writer lock, so concurrent
//! clients on SQLite queue instead of failing with "database is locked".

use crate::error::{Result, StoreError};
use crate::metadata::{insert_event, Metadata};
use kairo_core::run::{Run, RunStatus};
use kairo_core::tracking::{Experiment, MetricPoint, TrackedRun, TrackedRunInfo};
use kairo_core::EventKind;
use kairo_core::Hash;
use sqlx::any::AnyRow;
use sqlx::Row;
use std::collections::HashMap;

/// MLflow's limits on single values.
pub const MAX_PARAM_KEY: usize = 250;
pub const MAX_PARAM_VALUE: usize = 6000;
pub const MAX_TAG_VALUE: usize = 8000;

/// Which table a database-evaluated search condition reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CondTable {
    Metrics,
    Params,
    Tags,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CondValue {
    Number(f64),
    Text(String),
}

/// `key op value` over a run's latest metrics, params or tags.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub table: CondTable,
    pub key: String,
    pub op: String,
    pub value: CondValue,
}

/// Which lifecycle stages a listing includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    ActiveOnly,
    DeletedOnly,
    All,
}

impl View {
    fn admits(self, stage: &str) -> bool {
        match self {
            View::ActiveOnly => stage == "active",
            View::DeletedOnly => stage == "deleted",
            View::All => true,
        }
    }
}

/// What one log call carries.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub metrics: Vec<MetricPoint>,
    pub params: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
}

/// One entry of an artifact directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactEntry {
    /// Path relative to the listed directory.
    pub path: String,
    pub is_dir: bool,
    pub size: Option<u64>,
}

fn not_found(what: impl Into<String>) -> StoreError {
    StoreError::NotFound(what.into())
}

impl Metadata {
    pub async fn create_experiment(
        &self,
        name: &str,
        artifact_location: Option<&str>,
        tags: &[(String, String)],
        actor: &str,
    ) -> Result<i64> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let exists: i64 = sqlx::query("SELECT COUNT(*) FROM experiments WHERE name = $1")
            .bind(name)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        if exists > 0 {
            return Err(StoreError::AlreadyExists(format!("Experiment '{name}' already exists.")));
        }
        let now = kairo_core::time::now_millis();
        let id: i64 = sqlx::query(
            "INSERT INTO experiments (name, artifact_location, lifecycle_stage, creation_time, last_update_time) VALUES ($1, '', 'active', $2, $2) RETURNING id",
        )
        .bind(name)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        let location = artifact_location.map(str::to_string).unwrap_or_else(|| format!("mlflow-artifacts:/{id}"));
        sqlx::query("UPDATE experiments SET artifact_location = $1 WHERE id = $2")
            .bind(&location)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        for (k, v) in tags {
            sqlx::query("INSERT INTO experiment_tags (experiment_id, key, value) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(k)
                .bind(v)
                .execute(&mut *tx)
                .await?;
        }
        insert_event(
            &mut tx,
            actor,
            EventKind::ExperimentCreated,
            &format!("experiment:{id}"),
            &serde_json::json!({"name": name}),
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn experiment(&self, id: i64) -> Result<Experiment> {
        let row = sqlx::query(&format!("{EXPERIMENT_SELECT} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| not_found(format!("No Experiment with id={id} exists")))?;
        self.with_tags(experiment_from_row(&row)?).await
    }

    /// By name, preferring an active experiment.
    pub async fn experiment_by_name(&self, name: &str) -> Result<Experiment> {
        let row = sqlx::query(&format!("{EXPERIMENT_SELECT} WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| not_found(format!("Could not find experiment with name '{name}'")))?;
        self.with_tags(experiment_from_row(&row)?).await
    }

    pub async fn experiments(&self, view: View) -> Result<Vec<Experiment>> {
        let rows = sqlx::query(&format!("{EXPERIMENT_SELECT} ORDER BY id")).fetch_all(&self.pool).await?;
        let tag_rows =
            sqlx::query("SELECT experiment_id, key, value FROM experiment_tags").fetch_all(&self.pool).await?;
        let mut tags: HashMap<i64, Vec<(String, String)>> = HashMap::new();
        for r in &tag_rows {
            tags.entry(r.try_get(0)?).or_default().push((r.try_get(1)?, r.try_get(2)?));
        }
        let mut out = Vec::new();
        for r in &rows {
            let mut e = experiment_from_row(r)?;
            if view.admits(&e.lifecycle_stage) {
                e.tags = tags.remove(&e.id).unwrap_or_default();
                out.push(e);
            }
        }
        Ok(out)
    }

    async fn with_tags(&self, mut e: Experiment) -> Result<Experiment> {
        let rows = sqlx::query("SELECT key, value FROM experiment_tags WHERE experiment_id = $1 ORDER BY key")
            .bind(e.id)
            .fetch_all(&self.pool)
            .await?;
        e.tags = rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect::<Result<_>>()?;
        Ok(e)
    }

    pub async fn rename_experiment(&self, id: i64, new_name: &str, actor: &str) -> Result<()> {
        let _w = self.writer().await;
        self.experiment(id).await?;
        let taken: i64 = sqlx::query("SELECT COUNT(*) FROM experiments WHERE name = $1 AND id != $2")
            .bind(new_name)
            .bind(id)
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        if taken > 0 {
            return Err(StoreError::AlreadyExists(format!("Experiment '{new_name}' already exists.")));
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE experiments SET name = $1, last_update_time = $2 WHERE id = $3")
            .bind(new_name)
            .bind(kairo_core::time::now_millis())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        insert_event(
            &mut tx,
            actor,
            EventKind::ExperimentRenamed,
            &format!("experiment:{id}"),
            &serde_json::json!({"name": new_name}),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Delete (`deleted`) or restore (`active`) an experiment; its runs follow, as in MLflow.
    pub async fn set_experiment_lifecycle(&self, id: i64, stage: &str, actor: &str) -> Result<()> {
        let _w = self.writer().await;
        self.experiment(id).await?;
        if id == kairo_core::tracking::DEFAULT_EXPERIMENT && stage == "deleted" {
            return Err(StoreError::Invalid("Cannot delete the default experiment '0'.".into()));
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE experiments SET lifecycle_stage = $1, last_update_time = $2 WHERE id = $3")
            .bind(stage)
            .bind(kairo_core::time::now_millis())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE runs SET lifecycle_stage = $1 WHERE experiment_id = $2")
            .bind(stage)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        self.forget_active_runs();
        let kind = if stage == "deleted" { EventKind::ExperimentDeleted } else { EventKind::ExperimentRestored };
        insert_event(&mut tx, actor, kind, &format!("experiment:{id}"), &serde_json::json!({})).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_experiment_tag(&self, id: i64, key: &str, value: Option<&str>) -> Result<()> {
        let _w = self.writer().await;
        self.experiment(id).await?;
        match value {
            Some(v) => {
                sqlx::query("INSERT INTO experiment_tags (experiment_id, key, value) VALUES ($1, $2, $3) ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value")
                    .bind(id)
                    .bind(key)
                    .bind(v)
                    .execute(&self.pool)
                    .await?;
            }
            None => {
                sqlx::query("DELETE FROM experiment_tags WHERE experiment_id = $1 AND key = $2")
                    .bind(id)
                    .bind(key)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// Create a run through the API: a `running` run in `experiment_id`.
    pub async fn create_tracked_run(
        &self,
        run: &Run,
        experiment_id: i64,
        start_ms: i64,
        tags: &[(String, String)],
    ) -> Result<()> {
        let exp = self.experiment(experiment_id).await?;
        if exp.lifecycle_stage != "active" {
            return Err(StoreError::Invalid(format!("The experiment {experiment_id} must be in the 'active' state.")));
        }
        let _w = self.writer().await;
        self.start_run(run).await?;
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE runs SET experiment_id = $1, start_ms = $2 WHERE id = $3")
            .bind(experiment_id)
            .bind(start_ms)
            .bind(&run.id)
            .execute(&mut *tx)
            .await?;
        for (k, v) in tags {
            upsert_tag(&mut tx, &run.id, k, v).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The run's identity and state.
    pub async fn tracked_run_info(&self, id: &str) -> Result<TrackedRunInfo> {
        let row = sqlx::query(&format!("{INFO_SELECT} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| not_found(format!("Run with id={id} not found")))?;
        info_from_row(&row)
    }

    /// The run with its latest metrics, params and tags.
    pub async fn tracked_run(&self, id: &str) -> Result<TrackedRun> {
        let info = self.tracked_run_info(id).await?;
        let metrics = sqlx::query(
            "SELECT key, value, is_nan, timestamp, step FROM run_latest_metrics WHERE run_id = $1 ORDER BY key",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| latest_from_row(r, 0))
        .collect::<Result<Vec<_>>>()?;
        let params = pairs(
            sqlx::query("SELECT key, value FROM run_params WHERE run_id = $1 ORDER BY key")
                .bind(id)
                .fetch_all(&self.pool)
                .await?,
        )?;
        let tags = pairs(
            sqlx::query("SELECT key, value FROM run_tags WHERE run_id = $1 ORDER BY key")
                .bind(id)
                .fetch_all(&self.pool)
                .await?,
        )?;
        Ok(TrackedRun { info, metrics, params, tags })
    }

    /// The runs of the given experiments (identity and state only), for search.
    pub async fn run_infos(&self, experiment_ids: &[i64], view: View) -> Result<Vec<TrackedRunInfo>> {
        let mut out = Vec::new();
        for &exp in experiment_ids {
            let rows =
                sqlx::query(&format!("{INFO_SELECT} WHERE experiment_id = $1")).bind(exp).fetch_all(&self.pool).await?;
            for r in &rows {
                let info = info_from_row(r)?;
                if view.admits(&info.lifecycle_stage) {
                    out.push(info);
                }
            }
        }
        Ok(out)
    }

    /// Runs of the experiments (identity and state) whose latest metric / param / tag `key`
    /// compares to `value` with `op` (`=`, `!=`, `>`, `>=`, `<`, `<=`): a search condition
    /// evaluated by the database, so only matching runs are loaded.
    pub async fn runs_where(
        &self,
        experiment_ids: &[i64],
        cond: &Condition,
        view: View,
    ) -> Result<Vec<TrackedRunInfo>> {
        let op = match cond.op.as_str() {
            op @ ("=" | "!=" | ">" | ">=" | "<" | "<=") => op,
            other => return Err(StoreError::Invalid(format!("operator {other} cannot be evaluated by the database"))),
        };
        let columns = "r.id, r.experiment_id, r.run_name, r.user_id, r.status, r.start_ms, r.end_ms, r.lifecycle_stage";
        let mut out = Vec::new();
        for &exp in experiment_ids {
            let rows = match &cond.value {
                CondValue::Number(v) => {
                    sqlx::query(&format!(
                        "SELECT {columns} FROM run_latest_metrics m JOIN runs r ON r.id = m.run_id WHERE r.experiment_id = $1 AND m.key = $2 AND m.is_nan = 0 AND m.value {op} $3"
                    ))
                    .bind(exp)
                    .bind(&cond.key)
                    .bind(*v)
                    .fetch_all(&self.pool)
                    .await?
                }
                CondValue::Text(v) => {
                    let table = if cond.table == CondTable::Params { "run_params" } else { "run_tags" };
                    sqlx::query(&format!(
                        "SELECT {columns} FROM {table} t JOIN runs r ON r.id = t.run_id WHERE r.experiment_id = $1 AND t.key = $2 AND t.value {op} $3"
                    ))
                    .bind(exp)
                    .bind(&cond.key)
                    .bind(v)
                    .fetch_all(&self.pool)
                    .await?
                }
            };
            for r in &rows {
                let info = info_from_row(r)?;
                if view.admits(&info.lifecycle_stage) {
                    out.push(info);
                }
            }
        }
        Ok(out)
    }

    /// The latest metrics, params and tags of these runs (loaded in chunks).
    pub async fn run_data(&self, infos: Vec<TrackedRunInfo>) -> Result<Vec<TrackedRun>> {
        let mut runs: Vec<TrackedRun> = infos
            .into_iter()
            .map(|info| TrackedRun { info, metrics: Vec::new(), params: Vec::new(), tags: Vec::new() })
            .collect();
        let index: HashMap<String, usize> = runs.iter().enumerate().map(|(i, r)| (r.info.id.clone(), i)).collect();
        let ids: Vec<String> = index.keys().cloned().collect();
        for chunk in ids.chunks(500) {
            let list = (1..=chunk.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
            let metrics_sql = format!(
                "SELECT run_id, key, value, is_nan, timestamp, step FROM run_latest_metrics WHERE run_id IN ({list})"
            );
            for r in &bind_all(sqlx::query(&metrics_sql), chunk).fetch_all(&self.pool).await? {
                let id: String = r.try_get(0)?;
                if let Some(&i) = index.get(&id) {
                    runs[i].metrics.push(latest_from_row(r, 1)?);
                }
            }
            for (table, is_param) in [("run_params", true), ("run_tags", false)] {
                let sql = format!("SELECT run_id, key, value FROM {table} WHERE run_id IN ({list})");
                for r in &bind_all(sqlx::query(&sql), chunk).fetch_all(&self.pool).await? {
                    let id: String = r.try_get(0)?;
                    if let Some(&i) = index.get(&id) {
                        let kv = (r.try_get(1)?, r.try_get(2)?);
                        if is_param {
                            runs[i].params.push(kv);
                        } else {
                            runs[i].tags.push(kv);
                        }
                    }
                }
            }
        }
        Ok(runs)
    }

    /// End or rename a run (MLflow `runs/update`). Finishing records `ended_at` and the event.
    pub async fn update_tracked_run(
        &self,
        id: &str,
        status: Option<RunStatus>,
        end_ms: Option<i64>,
        name: Option<&str>,
    ) -> Result<TrackedRunInfo> {
        let _w = self.writer().await;
        let info = self.tracked_run_info(id).await?;
        let mut tx = self.pool.begin().await?;
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            sqlx::query("UPDATE runs SET run_name = $1 WHERE id = $2").bind(name).bind(id).execute(&mut *tx).await?;
            upsert_tag(&mut tx, id, "mlflow.runName", name).await?;
        }
        // A pipeline run's status belongs to `kairo run`, which finishes it with its outputs; an
        // MLflow client inside the stage ending "its" run must not pre-empt that.
        let record: String =
            sqlx::query("SELECT record FROM runs WHERE id = $1").bind(id).fetch_one(&mut *tx).await?.try_get(0)?;
        let api_run = serde_json::from_str::<Run>(&record).map(|r| r.executor == "mlflow-client").unwrap_or(true);
        if let Some(status) = status.filter(|_| api_run) {
            let end = if status == RunStatus::Running {
                None
            } else {
                Some(end_ms.unwrap_or_else(kairo_core::time::now_millis))
            };
            let ended_at = end.and_then(chrono::DateTime::from_timestamp_millis).map(kairo_core::time::format);
            sqlx::query("UPDATE runs SET status = $1, end_ms = $2, ended_at = $3 WHERE id = $4")
                .bind(status.as_str())
                .bind(end)
                .bind(ended_at)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            if status != info.status {
                let payload = serde_json::json!({"status": status.as_str()});
                insert_event(&mut tx, &info.user_id, EventKind::RunStatusChanged, &format!("run:{id}"), &payload)
                    .await?;
            }
        }
        tx.commit().await?;
        self.tracked_run_info(id).await
    }

    pub async fn set_run_lifecycle(&self, id: &str, stage: &str, actor: &str) -> Result<()> {
        let _w = self.writer().await;
        self.tracked_run_info(id).await?;
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE runs SET lifecycle_stage = $1 WHERE id = $2")
            .bind(stage)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        self.forget_active_runs();
        let kind = if stage == "deleted" { EventKind::RunDeleted } else { EventKind::RunRestored };
        insert_event(&mut tx, actor, kind, &format!("run:{id}"), &serde_json::json!({})).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Log metrics, params and tags in one transaction. Params are write-once (the same value
    /// again is fine); metrics append (a trigger keeps `run_latest_metrics` current); tags
    /// overwrite. The run must be active.
    pub async fn log_batch(&self, run_id: &str, batch: &Batch) -> Result<()> {
        self.check_run_active(run_id).await?;
        let _w = self.writer().await;
        if batch.params.is_empty() && batch.tags.is_empty() && batch.metrics.len() == 1 {
            // The common `log_metric` call: one statement, committed on its own.
            insert_metric(&self.pool, run_id, &batch.metrics[0]).await?;
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for (k, v) in &batch.params {
            let existing: Option<String> = sqlx::query("SELECT value FROM run_params WHERE run_id = $1 AND key = $2")
                .bind(run_id)
                .bind(k)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
            match existing {
                Some(old) if &old == v => {}
                Some(old) => {
                    return Err(StoreError::Invalid(format!(
                        "Changing param values is not allowed. Param with key='{k}' was already logged with value='{old}' for run ID='{run_id}'. Attempted logging new value '{v}'."
                    )))
                }
                None => {
                    sqlx::query("INSERT INTO run_params (run_id, key, value) VALUES ($1, $2, $3)").bind(run_id).bind(k).bind(v).execute(&mut *tx).await?;
                }
            }
        }
        for m in &batch.metrics {
            insert_metric(&mut *tx, run_id, m).await?;
        }
        for (k, v) in &batch.tags {
            upsert_tag(&mut tx, run_id, k, v).await?;
            if k == "mlflow.runName" {
                sqlx::query("UPDATE runs SET run_name = $1 WHERE id = $2")
                    .bind(v)
                    .bind(run_id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Append metric values of (possibly different, already checked) runs in one transaction:
    /// the group commit of concurrent `log_metric` calls.
    pub async fn append_metrics(&self, items: &[(String, MetricPoint)]) -> Result<()> {
        let _w = self.writer().await;
        if let [(run_id, m)] = items {
            return insert_metric(&self.pool, run_id, m).await;
        }
        let mut tx = self.pool.begin().await?;
        for (run_id, m) in items {
            insert_metric(&mut *tx, run_id, m).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn delete_run_tag(&self, run_id: &str, key: &str) -> Result<()> {
        let _w = self.writer().await;
        self.tracked_run_info(run_id).await?;
        let n = sqlx::query("DELETE FROM run_tags WHERE run_id = $1 AND key = $2")
            .bind(run_id)
            .bind(key)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(not_found(format!("No tag with name: {key} in run with id {run_id}")));
        }
        Ok(())
    }

    /// Every value logged for one metric, in logging order.
    pub async fn metric_history(&self, run_id: &str, key: &str) -> Result<Vec<MetricPoint>> {
        self.tracked_run_info(run_id).await?;
        let rows = sqlx::query(
            "SELECT key, value, is_nan, timestamp, step, model_id, dataset_name, dataset_digest FROM run_metrics WHERE run_id = $1 AND key = $2 ORDER BY id",
        )
        .bind(run_id)
        .bind(key)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let mut m = latest_from_row(r, 0)?;
                m.model_id = r.try_get(5)?;
                m.dataset_name = r.try_get(6)?;
                m.dataset_digest = r.try_get(7)?;
                Ok(m)
            })
            .collect()
    }

    /// Record that `path` (under the artifact root) holds `hash`, pinning the object.
    pub async fn put_artifact(&self, path: &str, hash: Hash, size: u64) -> Result<()> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let now = kairo_core::time::now_string();
        sqlx::query("INSERT INTO artifacts (path, hash, size, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (path) DO UPDATE SET hash = excluded.hash, size = excluded.size, created_at = excluded.created_at")
            .bind(path)
            .bind(hash.to_hex())
            .bind(size as i64)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO object_refs (hash, owner_kind, owner_id, created_at) VALUES ($1, 'artifact', $2, $3) ON CONFLICT DO NOTHING")
            .bind(hash.to_hex())
            .bind(path)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn artifact(&self, path: &str) -> Result<Option<(Hash, u64)>> {
        let row = sqlx::query("SELECT hash, size FROM artifacts WHERE path = $1")
            .bind(path)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            let h: String = r.try_get(0)?;
            let size: i64 = r.try_get(1)?;
            Ok((h.parse().map_err(|e| StoreError::Database(sqlx::Error::Decode(Box::new(e))))?, size as u64))
        })
        .transpose()
    }

    /// The direct children of directory `dir` ("" for the root), files and subdirectories.
    pub async fn list_artifacts(&self, dir: &str) -> Result<Vec<ArtifactEntry>> {
        let prefix = if dir.is_empty() { String::new() } else { format!("{}/", dir.trim_end_matches('/')) };
        // SUBSTR, not a range or LIKE: no wildcards to escape, and no collation (PostgreSQL's
        // linguistic ones ignore '/') can reorder paths.
        let rows = sqlx::query("SELECT path, size FROM artifacts WHERE SUBSTR(path, 1, $1) = $2 ORDER BY path")
            .bind(prefix.chars().count() as i32)
            .bind(&prefix)
            .fetch_all(&self.pool)
            .await?;
        let mut out: Vec<ArtifactEntry> = Vec::new();
        for r in &rows {
            let path: String = r.try_get(0)?;
            let size: i64 = r.try_get(1)?;
            let Some(rest) = path.strip_prefix(&prefix) else { continue };
            match rest.split_once('/') {
                None => out.push(ArtifactEntry { path: rest.to_string(), is_dir: false, size: Some(size as u64) }),
                Some((sub, _)) => {
                    if !out.iter().any(|e| e.is_dir && e.path == sub) {
                        out.push(ArtifactEntry { path: sub.to_string(), is_dir: true, size: None });
                    }
                }
            }
        }
        Ok(out)
    }

    pub async fn delete_artifacts(&self, path: &str) -> Result<u64> {
        let _w = self.writer().await;
        let prefix = format!("{}/", path.trim_end_matches('/'));
        let n = sqlx::query("DELETE FROM artifacts WHERE path = $1 OR SUBSTR(path, 1, $2) = $3")
            .bind(path)
            .bind(prefix.chars().count() as i32)
            .bind(&prefix)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n)
    }
}

pub(crate) fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    values: &'q [String],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for v in values {
        q = q.bind(v.as_str());
    }
    q
}

/// How long a run seen active is trusted without asking the database again.
const ACTIVE_RUN_TTL: std::time::Duration = std::time::Duration::from_secs(2);

impl Metadata {
    /// Fail unless the run exists and is active; remembered briefly per run.
    pub async fn check_run_active(&self, run_id: &str) -> Result<()> {
        let fresh = self
            .active_runs
            .lock()
            .ok()
            .and_then(|m| m.get(run_id).map(|t| t.elapsed() < ACTIVE_RUN_TTL))
            .unwrap_or(false);
        if fresh {
            return Ok(());
        }
        let info = self.tracked_run_info(run_id).await?;
        if info.lifecycle_stage != "active" {
            return Err(StoreError::Invalid(format!(
                "The run {run_id} must be in the 'active' state. Current state is {}.",
                info.lifecycle_stage
            )));
        }
        if let Ok(mut m) = self.active_runs.lock() {
            if m.len() > 10_000 {
                m.clear();
            }
            m.insert(run_id.to_string(), std::time::Instant::now());
        }
        Ok(())
    }

    /// Forget what was remembered about runs (after deleting or restoring some).
    pub(crate) fn forget_active_runs(&self) {
        if let Ok(mut m) = self.active_runs.lock() {
            m.clear();
        }
    }
}

/// The one statement that appends a metric value (`$N` works for sqlx and rusqlite alike).
pub(crate) const INSERT_METRIC: &str =
    "INSERT INTO run_metrics (run_id, key, value, is_nan, timestamp, step, model_id, dataset_name, dataset_digest) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

async fn insert_metric<'c, E>(executor: E, run_id: &str, m: &MetricPoint) -> Result<()>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let (value, is_nan) = if m.value.is_nan() { (0.0, 1i64) } else { (m.value, 0i64) };
    sqlx::query(INSERT_METRIC)
        .bind(run_id)
        .bind(&m.key)
        .bind(value)
        .bind(is_nan)
        .bind(m.timestamp)
        .bind(m.step)
        .bind(m.model_id.as_deref())
        .bind(m.dataset_name.as_deref())
        .bind(m.dataset_digest.as_deref())
        .execute(executor)
        .await?;
    Ok(())
}

async fn upsert_tag(tx: &mut sqlx::Transaction<'_, sqlx::Any>, run_id: &str, key: &str, value: &str) -> Result<()> {
    sqlx::query("INSERT INTO run_tags (run_id, key, value) VALUES ($1, $2, $3) ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value")
        .bind(run_id)
        .bind(key)
        .bind(value)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

const EXPERIMENT_SELECT: &str =
    "SELECT id, name, artifact_location, lifecycle_stage, creation_time, last_update_time FROM experiments";
const INFO_SELECT: &str =
    "SELECT id, experiment_id, run_name, user_id, status, start_ms, end_ms, lifecycle_stage FROM runs";

fn experiment_from_row(r: &AnyRow) -> Result<Experiment> {
    Ok(Experiment {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        artifact_location: r.try_get(2)?,
        lifecycle_stage: r.try_get(3)?,
        creation_time: r.try_get(4)?,
        last_update_time: r.try_get(5)?,
        tags: Vec::new(),
    })
}

fn info_from_row(r: &AnyRow) -> Result<TrackedRunInfo> {
    let status: String = r.try_get(4)?;
    Ok(TrackedRunInfo {
        id: r.try_get(0)?,
        experiment_id: r.try_get(1)?,
        name: r.try_get(2)?,
        user_id: r.try_get(3)?,
        status: RunStatus::parse(&status).unwrap_or(RunStatus::Failed),
        start_time: r.try_get(5)?,
        end_time: r.try_get(6)?,
        lifecycle_stage: r.try_get(7)?,
    })
}

/// A metric from columns (key, value, is_nan, timestamp, step) starting at `at`.
fn latest_from_row(r: &AnyRow, at: usize) -> Result<MetricPoint> {
    let is_nan: i64 = r.try_get(at + 2)?;
    let value: f64 = r.try_get(at + 1)?;
    Ok(MetricPoint {
        key: r.try_get(at)?,
        value: if is_nan == 1 { f64::NAN } else { value },
        timestamp: r.try_get(at + 3)?,
        step: r.try_get(at + 4)?,
        model_id: None,
        dataset_name: None,
        dataset_digest: None,
    })
}

/// (key, value) rows.
pub(crate) fn pairs(rows: Vec<AnyRow>) -> Result<Vec<(String, String)>> {
    rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
}

impl Metadata {
    /// The tags of these runs, by run id (for the web UI's tag columns).
    pub async fn tags_of(&self, ids: &[String]) -> Result<HashMap<String, Vec<(String, String)>>> {
        let mut out: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for chunk in ids.chunks(500) {
            let list = (1..=chunk.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
            let sql = format!("SELECT run_id, key, value FROM run_tags WHERE run_id IN ({list})");
            for r in &bind_all(sqlx::query(&sql), chunk).fetch_all(&self.pool).await? {
                out.entry(r.try_get(0)?).or_default().push((r.try_get(1)?, r.try_get(2)?));
            }
        }
        Ok(out)
    }
}
