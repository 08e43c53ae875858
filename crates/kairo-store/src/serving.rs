//! Registry and serving state: servable version artifacts, promotions, deployments and their
//! revisions, prediction-log segments and feedback. Every state change writes its event in
//! the same transaction.

use crate::error::{Result, StoreError};
use crate::metadata::{insert_event, Metadata};
use crate::registry::{lock_model, require_version, NewModelVersion};
use crate::version_details as details;
use kairo_core::serving::{Deployment, Promotion, PromotionStatus, RolloutLimits, Strategy, VersionArtifact};
use kairo_core::tracking::ModelVersion;
use kairo_core::EventKind;
use kairo_core::{time, Hash};
use sqlx::any::AnyRow;
use sqlx::Row;

/// One prediction-log segment object.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub deployment: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub rows: i64,
    pub object: Hash,
    /// The `kairo serve` process that wrote it ('' for segments older than replicas).
    pub replica: String,
    /// When its raw rows were given up (retention): the object is unpinned and only its
    /// cached sketches remain.
    pub pruned_ms: Option<i64>,
}

/// A deployment change: the new stable version and candidate, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentChange {
    pub name: String,
    pub stable_version: i64,
    pub candidate_version: Option<i64>,
    pub strategy: Strategy,
    pub weight: u32,
    pub limits: RolloutLimits,
    /// Event kind: `deployment.created`, `deployment.rolled_back`, ...
    pub kind: EventKind,
    pub reason: String,
}

const PROMOTION_SELECT: &str = "SELECT id, name, version, alias, status, gates, requested_by, decided_by, reason, created_ms, decided_ms FROM promotions";
const DEPLOYMENT_SELECT: &str = "SELECT name, stable_version, candidate_version, strategy, weight, limits, started_ms, generation, updated_ms FROM deployments";

fn json_text(v: &serde_json::Value) -> String {
    v.to_string()
}

fn parse_json(s: &str, what: &str) -> Result<serde_json::Value> {
    serde_json::from_str(s).map_err(|e| StoreError::Invalid(format!("stored {what} is not JSON: {e}")))
}

impl Metadata {
    /// Register a servable version: the registry row, its artifact facts and the object pin,
    /// in one transaction.
    pub async fn register_version(&self, new: &NewModelVersion, artifact: &VersionArtifact) -> Result<ModelVersion> {
        self.registered_model(&new.name).await?;
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let version = crate::registry::insert_version_row(&mut tx, new).await?;
        sqlx::query(
            "INSERT INTO model_version_details (name, version, object, size, signature, metrics, profile, importance) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&new.name)
        .bind(version)
        .bind(artifact.object.to_hex())
        .bind(artifact.size as i64)
        .bind(details::signature_text(&artifact.signature)?)
        .bind(details::metrics_text(&artifact.metrics)?)
        .bind(artifact.profile.as_ref().map(details::profile_text).transpose()?.flatten())
        .bind(artifact.importance.as_ref().map(details::importance_text).transpose()?)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO object_refs (hash, owner_kind, owner_id, created_at) VALUES ($1, 'model_version', $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(artifact.object.to_hex())
        .bind(format!("{}/{version}", new.name))
        .bind(time::now_string())
        .execute(&mut *tx)
        .await?;
        let payload = serde_json::json!({
            "version": version, "source": new.source, "run_id": new.run_id,
            "object": artifact.object.to_hex(), "size": artifact.size,
        });
        insert_event(
            &mut tx,
            &new.user_id,
            EventKind::ModelVersionRegistered,
            &format!("model:{}", new.name),
            &payload,
        )
        .await?;
        tx.commit().await?;
        drop(_w);
        self.model_version(&new.name, version).await
    }

    /// The servable facts of a version; `None` for versions registered through MLflow without
    /// an ONNX artifact.
    pub async fn version_artifact(&self, name: &str, version: i64) -> Result<Option<VersionArtifact>> {
        let row = sqlx::query(
            "SELECT object, size, signature, metrics, profile, importance FROM model_version_details WHERE name = $1 AND version = $2",
        )
        .bind(name)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let object: String = r.try_get(0)?;
        let size: i64 = r.try_get(1)?;
        let profile: Option<String> = r.try_get(4)?;
        let importance: Option<String> = r.try_get(5)?;
        let row = details::Row { name, version };
        Ok(Some(VersionArtifact {
            object: object.parse().map_err(|_| StoreError::Invalid(format!("bad object hash for {name}/{version}")))?,
            size: size as u64,
            signature: details::read_signature(&row, &r.try_get::<String, _>(2)?)?,
            metrics: details::read_metrics(&row, &r.try_get::<String, _>(3)?)?,
            profile: profile.map(|p| details::read_profile(&row, &p)).transpose()?,
            importance: importance.map(|p| details::read_importance(&row, &p)).transpose()?,
        }))
    }

    /// The version an alias points at, if any.
    pub async fn alias_version(&self, name: &str, alias: &str) -> Result<Option<i64>> {
        Ok(sqlx::query("SELECT version FROM model_aliases WHERE name = $1 AND alias = $2")
            .bind(name)
            .bind(alias)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?)
    }

    /// Point an alias at a version (`None` removes it), with who and why in its event. The one
    /// way an alias moves: promotions move theirs through the same function, inside their own
    /// transaction. Returns the version the alias pointed at before. Removing an alias that does
    /// not exist changes nothing and records nothing. Policy (which aliases need a passed
    /// promotion) is checked above this, in the registry.
    pub async fn move_alias(
        &self,
        name: &str,
        alias: &str,
        version: Option<i64>,
        actor: &str,
        reason: &str,
    ) -> Result<Option<i64>> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let before = move_alias(&mut tx, name, alias, version, actor, reason).await?;
        tx.commit().await?;
        Ok(before)
    }

    /// Record a promotion decided at once (promoted or failed) or left pending. A promoted
    /// one moves the alias in the same transaction, with the reason in the alias event.
    pub async fn record_promotion(&self, p: &Promotion) -> Result<()> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO promotions (id, name, version, alias, status, gates, requested_by, decided_by, reason, created_ms, decided_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&p.id)
        .bind(&p.name)
        .bind(p.version)
        .bind(&p.alias)
        .bind(p.status.as_str())
        .bind(json_text(&p.gates))
        .bind(&p.requested_by)
        .bind(p.decided_by.as_deref())
        .bind(p.reason.as_deref())
        .bind(p.created_ms)
        .bind(p.decided_ms)
        .execute(&mut *tx)
        .await?;
        let actor = p.decided_by.as_deref().unwrap_or(&p.requested_by);
        let payload = serde_json::json!({
            "promotion": p.id, "version": p.version, "alias": p.alias, "status": p.status.as_str(),
            "gates": p.gates, "reason": p.reason,
        });
        let kind = match p.status {
            PromotionStatus::Pending => EventKind::PromotionRequested,
            PromotionStatus::Failed => EventKind::PromotionFailed,
            PromotionStatus::Promoted => EventKind::Promoted,
            PromotionStatus::Rejected => EventKind::PromotionRejected,
        };
        insert_event(&mut tx, actor, kind, &format!("model:{}", p.name), &payload).await?;
        if p.status == PromotionStatus::Promoted {
            move_alias(&mut tx, &p.name, &p.alias, Some(p.version), actor, p.reason.as_deref().unwrap_or("promotion"))
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Decide a pending promotion: approve (moving the alias) or reject.
    pub async fn decide_promotion(
        &self,
        id: &str,
        approve: bool,
        gates: &serde_json::Value,
        actor: &str,
        reason: Option<&str>,
    ) -> Result<Promotion> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(&format!("{PROMOTION_SELECT} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("promotion {id} not found")))?;
        let p = promotion_from_row(&row)?;
        if p.status != PromotionStatus::Pending {
            return Err(StoreError::Invalid(format!("promotion {id} is already {}", p.status.as_str())));
        }
        let status = if approve { PromotionStatus::Promoted } else { PromotionStatus::Rejected };
        let now = time::now_millis();
        sqlx::query("UPDATE promotions SET status = $1, gates = $2, decided_by = $3, reason = $4, decided_ms = $5 WHERE id = $6")
            .bind(status.as_str())
            .bind(json_text(gates))
            .bind(actor)
            .bind(reason)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let kind = if approve { EventKind::PromotionApproved } else { EventKind::PromotionRejected };
        let payload = serde_json::json!({
            "promotion": id, "version": p.version, "alias": p.alias, "requested_by": p.requested_by,
            "gates": gates, "reason": reason,
        });
        insert_event(&mut tx, actor, kind, &format!("model:{}", p.name), &payload).await?;
        if approve {
            let why = reason.map(str::to_string).unwrap_or_else(|| format!("approved promotion {id}"));
            move_alias(&mut tx, &p.name, &p.alias, Some(p.version), actor, &why).await?;
        }
        tx.commit().await?;
        drop(_w);
        self.promotion(id).await
    }

    pub async fn promotion(&self, id: &str) -> Result<Promotion> {
        let row = sqlx::query(&format!("{PROMOTION_SELECT} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("promotion {id} not found")))?;
        promotion_from_row(&row)
    }

    /// Promotions of a model, oldest first.
    pub async fn promotions(&self, name: &str) -> Result<Vec<Promotion>> {
        let rows = sqlx::query(&format!("{PROMOTION_SELECT} WHERE name = $1 ORDER BY created_ms, id"))
            .bind(name)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(promotion_from_row).collect()
    }

    pub async fn deployment(&self, name: &str) -> Result<Option<Deployment>> {
        let row =
            sqlx::query(&format!("{DEPLOYMENT_SELECT} WHERE name = $1")).bind(name).fetch_optional(&self.pool).await?;
        row.as_ref().map(deployment_from_row).transpose()
    }

    pub async fn deployments(&self) -> Result<Vec<Deployment>> {
        let rows = sqlx::query(&format!("{DEPLOYMENT_SELECT} ORDER BY name")).fetch_all(&self.pool).await?;
        rows.iter().map(deployment_from_row).collect()
    }

    /// Apply a deployment change if the deployment is still at `expected_generation` (`None`:
    /// it must not exist yet, or any generation for CLI changes). A change of the stable version
    /// appends a revision. Returns the new state, or `None` when another writer got there first.
    pub async fn change_deployment(
        &self,
        change: &DeploymentChange,
        expected_generation: Option<i64>,
        actor: &str,
    ) -> Result<Option<Deployment>> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        // The versions must still exist when the change commits: a version delete checks the
        // deployment under the same lock.
        lock_model(&mut tx, &change.name).await?;
        require_version(&mut tx, &change.name, change.stable_version).await?;
        if let Some(c) = change.candidate_version {
            require_version(&mut tx, &change.name, c).await?;
        }
        let current = sqlx::query(&format!("{DEPLOYMENT_SELECT} WHERE name = $1"))
            .bind(&change.name)
            .fetch_optional(&mut *tx)
            .await?
            .as_ref()
            .map(deployment_from_row)
            .transpose()?;
        if let (Some(expected), Some(cur)) = (expected_generation, &current) {
            if cur.generation != expected {
                return Ok(None);
            }
        }
        let now = time::now_millis();
        let generation = current.as_ref().map(|c| c.generation + 1).unwrap_or(1);
        let limits = serde_json::to_string(&change.limits).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let started = if change.candidate_version.is_some()
            && current.as_ref().and_then(|c| c.candidate_version) == change.candidate_version
        {
            current.as_ref().map(|c| c.started_ms).unwrap_or(now)
        } else {
            now
        };
        sqlx::query(
            "INSERT INTO deployments (name, stable_version, candidate_version, strategy, weight, limits, started_ms, generation, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (name) DO UPDATE SET stable_version = excluded.stable_version, candidate_version = excluded.candidate_version, \
             strategy = excluded.strategy, weight = excluded.weight, limits = excluded.limits, started_ms = excluded.started_ms, \
             generation = excluded.generation, updated_ms = excluded.updated_ms",
        )
        .bind(&change.name)
        .bind(change.stable_version)
        .bind(change.candidate_version)
        .bind(change.strategy.as_str())
        .bind(i64::from(change.weight))
        .bind(&limits)
        .bind(started)
        .bind(generation)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if current.as_ref().map(|c| c.stable_version) != Some(change.stable_version) {
            let seq: i64 = sqlx::query("SELECT COALESCE(MAX(seq), 0) + 1 FROM deployment_revisions WHERE name = $1")
                .bind(&change.name)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
            sqlx::query("INSERT INTO deployment_revisions (name, seq, version, started_ms) VALUES ($1, $2, $3, $4)")
                .bind(&change.name)
                .bind(seq)
                .bind(change.stable_version)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        let payload = serde_json::json!({
            "before": current.as_ref().map(|c| serde_json::json!({
                "stable": c.stable_version, "candidate": c.candidate_version,
                "strategy": c.strategy.as_str(), "weight": c.weight,
            })),
            "after": {
                "stable": change.stable_version, "candidate": change.candidate_version,
                "strategy": change.strategy.as_str(), "weight": change.weight,
            },
            "reason": change.reason,
            "generation": generation,
        });
        insert_event(&mut tx, actor, change.kind, &format!("deployment:{}", change.name), &payload).await?;
        tx.commit().await?;
        drop(_w);
        self.deployment(&change.name).await
    }

    /// Versions that served 100%, oldest first.
    pub async fn deployment_revisions(&self, name: &str) -> Result<Vec<i64>> {
        let rows = sqlx::query("SELECT version FROM deployment_revisions WHERE name = $1 ORDER BY seq")
            .bind(name)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Record a failed deployment attempt (e.g. the new version did not load).
    pub async fn record_deployment_failure(&self, name: &str, version: i64, error: &str, actor: &str) -> Result<()> {
        let payload = serde_json::json!({"version": version, "error": error});
        self.record_event(actor, EventKind::DeploymentFailed, &format!("deployment:{name}"), &payload).await?;
        Ok(())
    }

    /// Index a prediction-log segment (already in the object store) and pin its object.
    pub async fn add_segment(&self, s: &Segment) -> Result<()> {
        self.add_segments(std::slice::from_ref(s)).await
    }

    /// Index several segments in one transaction (a scored batch's, all at once).
    pub async fn add_segments(&self, segments: &[Segment]) -> Result<()> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        for s in segments {
            sqlx::query(
                "INSERT INTO prediction_segments (deployment, start_ms, end_ms, rows, object, replica) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .bind(&s.deployment)
            .bind(s.start_ms)
            .bind(s.end_ms)
            .bind(s.rows)
            .bind(s.object.to_hex())
            .bind(&s.replica)
            .execute(&mut *tx)
            .await?;
            pin_log_object(&mut tx, &s.object, &s.deployment).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Give up a segment's raw rows: mark it pruned and unpin its object (`kairo data gc`
    /// then deletes the bytes). Its cached sketches stay. False if it was pruned already.
    pub async fn prune_segment(&self, deployment: &str, object: &Hash) -> Result<bool> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE prediction_segments SET pruned_ms = $3 WHERE deployment = $1 AND object = $2 AND pruned_ms IS NULL",
        )
        .bind(deployment)
        .bind(object.to_hex())
        .bind(time::now_millis())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        unpin_log_object(&mut tx, object, deployment).await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Put `new` in place of segment `old` of the same deployment (erasure rewrote it): the
    /// index row points at the new object with its row count, the new object is pinned, the
    /// old one unpinned (gone at the next `kairo data gc`) and its cached sketches dropped.
    pub async fn replace_segment(&self, old: &Hash, new: &Segment) -> Result<()> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE prediction_segments SET object = $3, rows = $4 WHERE deployment = $1 AND object = $2")
            .bind(&new.deployment)
            .bind(old.to_hex())
            .bind(new.object.to_hex())
            .bind(new.rows)
            .execute(&mut *tx)
            .await?;
        pin_log_object(&mut tx, &new.object, &new.deployment).await?;
        unpin_log_object(&mut tx, old, &new.deployment).await?;
        sqlx::query("DELETE FROM monitor_sketches WHERE object = $1").bind(old.to_hex()).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Segments of a deployment overlapping `[from_ms, to_ms]`, oldest first.
    pub async fn segments(&self, deployment: &str, from_ms: i64, to_ms: i64) -> Result<Vec<Segment>> {
        let rows = sqlx::query(
            "SELECT deployment, start_ms, end_ms, rows, object, replica, pruned_ms FROM prediction_segments \
             WHERE deployment = $1 AND end_ms >= $2 AND start_ms <= $3 ORDER BY start_ms",
        )
        .bind(deployment)
        .bind(from_ms)
        .bind(to_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let object: String = r.try_get(4)?;
                Ok(Segment {
                    deployment: r.try_get(0)?,
                    start_ms: r.try_get(1)?,
                    end_ms: r.try_get(2)?,
                    rows: r.try_get(3)?,
                    object: object.parse().map_err(|_| StoreError::Invalid("bad segment hash".into()))?,
                    replica: r.try_get(5)?,
                    pruned_ms: r.try_get(6)?,
                })
            })
            .collect()
    }

    /// Store ground-truth labels: `(request id, row, label JSON)`; a later label replaces an earlier one.
    pub async fn add_feedback(&self, items: &[(String, i64, serde_json::Value)]) -> Result<()> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let now = time::now_millis();
        for (id, row, label) in items {
            sqlx::query(
                "INSERT INTO feedback (request_id, row_index, label, received_ms) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (request_id, row_index) DO UPDATE SET label = excluded.label, received_ms = excluded.received_ms",
            )
            .bind(id)
            .bind(*row)
            .bind(json_text(label))
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Forget the labels of these `(request id, row)` pairs (their rows were erased).
    pub async fn delete_feedback(&self, items: &[(String, i64)]) -> Result<()> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        for (id, row) in items {
            sqlx::query("DELETE FROM feedback WHERE request_id = $1 AND row_index = $2")
                .bind(id)
                .bind(*row)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Labels received for a request, by row.
    pub async fn feedback(&self, request_id: &str) -> Result<Vec<(i64, serde_json::Value)>> {
        let rows = sqlx::query("SELECT row_index, label FROM feedback WHERE request_id = $1 ORDER BY row_index")
            .bind(request_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, parse_json(&r.try_get::<String, _>(1)?, "label")?))).collect()
    }
}

/// Pin a prediction-log segment's object for its deployment (`kairo data gc` keeps it).
async fn pin_log_object(tx: &mut sqlx::Transaction<'_, sqlx::Any>, object: &Hash, deployment: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO object_refs (hash, owner_kind, owner_id, created_at) VALUES ($1, 'prediction_log', $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(object.to_hex())
    .bind(deployment)
    .bind(time::now_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Unpin it (the next `kairo data gc` deletes its bytes unless something else holds them).
async fn unpin_log_object(tx: &mut sqlx::Transaction<'_, sqlx::Any>, object: &Hash, deployment: &str) -> Result<()> {
    sqlx::query("DELETE FROM object_refs WHERE hash = $1 AND owner_kind = 'prediction_log' AND owner_id = $2")
        .bind(object.to_hex())
        .bind(deployment)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Metadata {
    /// The cached sketch of a prediction-log segment against `name` version `version`'s profile.
    pub async fn segment_sketch(&self, object: &Hash, name: &str, version: i64) -> Result<Option<String>> {
        let row = sqlx::query("SELECT sketch FROM monitor_sketches WHERE object = $1 AND name = $2 AND version = $3")
            .bind(object.to_hex())
            .bind(name)
            .bind(version)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Overwrite a cached sketch (retention keeps only a scrubbed one).
    pub async fn replace_segment_sketch(
        &self,
        object: &Hash,
        name: &str,
        version: i64,
        rows: i64,
        sketch: &str,
    ) -> Result<()> {
        self.store_sketch(object, name, version, rows, sketch, true).await
    }

    /// Cache a segment's sketch; one already cached stays.
    pub async fn put_segment_sketch(
        &self,
        object: &Hash,
        name: &str,
        version: i64,
        rows: i64,
        sketch: &str,
    ) -> Result<()> {
        self.store_sketch(object, name, version, rows, sketch, false).await
    }

    async fn store_sketch(
        &self,
        object: &Hash,
        name: &str,
        version: i64,
        rows: i64,
        sketch: &str,
        replace: bool,
    ) -> Result<()> {
        let on_conflict = if replace {
            "ON CONFLICT (object, name, version) DO UPDATE SET rows = excluded.rows, sketch = excluded.sketch"
        } else {
            "ON CONFLICT DO NOTHING"
        };
        let _w = self.writer().await;
        sqlx::query(&format!(
            "INSERT INTO monitor_sketches (object, name, version, rows, sketch) VALUES ($1, $2, $3, $4, $5) {on_conflict}"
        ))
        .bind(object.to_hex())
        .bind(name)
        .bind(version)
        .bind(rows)
        .bind(sketch)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// How many labels arrived at or after `since_ms` (a window's rows can only have labels
    /// received after the window began).
    pub async fn feedback_count_since(&self, since_ms: i64) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) FROM feedback WHERE received_ms >= $1")
            .bind(since_ms)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Labels of the given requests: `(request id, row) → label`.
    pub async fn feedback_for(
        &self,
        request_ids: &[String],
    ) -> Result<std::collections::HashMap<(String, i64), serde_json::Value>> {
        let mut out = std::collections::HashMap::new();
        for chunk in request_ids.chunks(500) {
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql =
                format!("SELECT request_id, row_index, label FROM feedback WHERE request_id IN ({})", marks.join(", "));
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(id);
            }
            for r in q.fetch_all(&self.pool).await? {
                out.insert((r.try_get(0)?, r.try_get(1)?), parse_json(&r.try_get::<String, _>(2)?, "label")?);
            }
        }
        Ok(out)
    }
}

/// Move (or, with `None`, remove) an alias inside a transaction, with the before/after and the
/// reason in its event.
async fn move_alias(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    name: &str,
    alias: &str,
    version: Option<i64>,
    actor: &str,
    reason: &str,
) -> Result<Option<i64>> {
    // Under the model's lock and inside the transaction: a version deleted meanwhile (say,
    // while a promotion waited for approval) is never given an alias.
    lock_model(tx, name).await?;
    if let Some(v) = version {
        require_version(tx, name, v).await?;
    }
    let before: Option<i64> = sqlx::query("SELECT version FROM model_aliases WHERE name = $1 AND alias = $2")
        .bind(name)
        .bind(alias)
        .fetch_optional(&mut **tx)
        .await?
        .map(|r| r.try_get(0))
        .transpose()?;
    match version {
        Some(v) => {
            sqlx::query("INSERT INTO model_aliases (name, alias, version) VALUES ($1, $2, $3) ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version")
                .bind(name)
                .bind(alias)
                .bind(v)
                .execute(&mut **tx)
                .await?;
        }
        None if before.is_none() => return Ok(None),
        None => {
            sqlx::query("DELETE FROM model_aliases WHERE name = $1 AND alias = $2")
                .bind(name)
                .bind(alias)
                .execute(&mut **tx)
                .await?;
        }
    }
    let payload = serde_json::json!({"alias": alias, "before": before, "after": version, "reason": reason});
    insert_event(tx, actor, EventKind::AliasMoved, &format!("model:{name}"), &payload).await?;
    Ok(before)
}

fn promotion_from_row(r: &AnyRow) -> Result<Promotion> {
    let status: String = r.try_get(4)?;
    Ok(Promotion {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        version: r.try_get(2)?,
        alias: r.try_get(3)?,
        status: PromotionStatus::parse(&status)
            .ok_or_else(|| StoreError::Invalid(format!("unknown promotion status {status}")))?,
        gates: parse_json(&r.try_get::<String, _>(5)?, "gates")?,
        requested_by: r.try_get(6)?,
        decided_by: r.try_get(7)?,
        reason: r.try_get(8)?,
        created_ms: r.try_get(9)?,
        decided_ms: r.try_get(10)?,
    })
}

fn deployment_from_row(r: &AnyRow) -> Result<Deployment> {
    let strategy: String = r.try_get(3)?;
    let weight: i64 = r.try_get(4)?;
    let limits: String = r.try_get(5)?;
    Ok(Deployment {
        name: r.try_get(0)?,
        stable_version: r.try_get(1)?,
        candidate_version: r.try_get(2)?,
        strategy: Strategy::parse(&strategy)
            .ok_or_else(|| StoreError::Invalid(format!("unknown deployment strategy {strategy}")))?,
        weight: weight.clamp(0, 100) as u32,
        limits: serde_json::from_str(&limits).map_err(|e| StoreError::Invalid(format!("stored limits: {e}")))?,
        started_ms: r.try_get(6)?,
        generation: r.try_get(7)?,
        updated_ms: r.try_get(8)?,
    })
}
