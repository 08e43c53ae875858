//! MLflow 3 logged models and the model registry (registered models, versions, tags, aliases)
//! in the metadata store. Every change that matters for audit writes its event.

use crate::error::{Result, StoreError};
use crate::metadata::{insert_event, Metadata};
use kairo_core::tracking::{DatasetInput, LoggedModel, MetricPoint, ModelVersion, RegisteredModel};
use kairo_core::EventKind;
use sqlx::any::AnyRow;
use sqlx::Row;

/// What creating a logged model needs.
#[derive(Debug, Clone)]
pub struct NewLoggedModel {
    pub experiment_id: i64,
    pub name: String,
    pub model_type: Option<String>,
    pub source_run_id: Option<String>,
    pub params: Vec<(String, String)>,
    pub tags: Vec<(String, String)>,
    pub creator_id: String,
}

/// What creating a model version needs.
#[derive(Debug, Clone)]
pub struct NewModelVersion {
    pub name: String,
    pub source: String,
    pub run_id: Option<String>,
    pub model_id: Option<String>,
    pub run_link: String,
    pub description: String,
    pub tags: Vec<(String, String)>,
    pub user_id: String,
}

const LOGGED_SELECT: &str = "SELECT id, experiment_id, name, model_type, source_run_id, status, status_message, creator_id, creation_ms, last_updated_ms, artifact_uri FROM logged_models";
const VERSION_SELECT: &str = "SELECT name, version, description, source, run_id, model_id, run_link, status, current_stage, user_id, creation_ms, last_updated_ms FROM model_versions";

impl Metadata {
    pub async fn create_logged_model(&self, new: &NewLoggedModel) -> Result<LoggedModel> {
        let exp = self.experiment(new.experiment_id).await?;
        let _w = self.writer().await;
        let id = format!("m-{}", &kairo_core::run::new_run_id());
        let artifact_uri = format!("{}/models/{id}/artifacts", exp.artifact_location.trim_end_matches('/'));
        let now = kairo_core::time::now_millis();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO logged_models (id, experiment_id, name, model_type, source_run_id, status, creator_id, creation_ms, last_updated_ms, artifact_uri) \
             VALUES ($1, $2, $3, $4, $5, 'LOGGED_MODEL_PENDING', $6, $7, $7, $8)",
        )
        .bind(&id)
        .bind(new.experiment_id)
        .bind(&new.name)
        .bind(new.model_type.as_deref())
        .bind(new.source_run_id.as_deref())
        .bind(&new.creator_id)
        .bind(now)
        .bind(&artifact_uri)
        .execute(&mut *tx)
        .await?;
        for (k, v) in &new.params {
            sqlx::query(
                "INSERT INTO logged_model_params (model_id, key, value) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(&id)
            .bind(k)
            .bind(v)
            .execute(&mut *tx)
            .await?;
        }
        for (k, v) in &new.tags {
            sqlx::query("INSERT INTO logged_model_tags (model_id, key, value) VALUES ($1, $2, $3) ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value")
                .bind(&id)
                .bind(k)
                .bind(v)
                .execute(&mut *tx)
                .await?;
        }
        let payload = serde_json::json!({"name": new.name, "source_run_id": new.source_run_id, "experiment_id": new.experiment_id});
        insert_event(&mut tx, &new.creator_id, EventKind::LoggedModelCreated, &format!("logged_model:{id}"), &payload)
            .await?;
        tx.commit().await?;
        self.logged_model(&id).await
    }

    pub async fn logged_model(&self, id: &str) -> Result<LoggedModel> {
        let row = sqlx::query(&format!("{LOGGED_SELECT} WHERE id = $1 AND lifecycle_stage = 'active'"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("Logged model with ID '{id}' not found.")))?;
        let mut m = logged_from_row(&row)?;
        m.params = crate::tracking::pairs(
            sqlx::query("SELECT key, value FROM logged_model_params WHERE model_id = $1 ORDER BY key")
                .bind(id)
                .fetch_all(&self.pool)
                .await?,
        )?;
        m.tags = crate::tracking::pairs(
            sqlx::query("SELECT key, value FROM logged_model_tags WHERE model_id = $1 ORDER BY key")
                .bind(id)
                .fetch_all(&self.pool)
                .await?,
        )?;
        let rows = sqlx::query(
            "SELECT key, value, is_nan, timestamp, step, run_id FROM run_metrics WHERE model_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        for r in &rows {
            let nan: i64 = r.try_get(2)?;
            m.metrics.push(MetricPoint {
                key: r.try_get(0)?,
                value: if nan == 1 { f64::NAN } else { r.try_get(1)? },
                timestamp: r.try_get(3)?,
                step: r.try_get(4)?,
                model_id: Some(id.to_string()),
                dataset_name: None,
                dataset_digest: None,
            });
        }
        let regs = sqlx::query("SELECT name, version FROM model_versions WHERE model_id = $1 ORDER BY name, version")
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
        m.registrations = regs.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect::<Result<_>>()?;
        Ok(m)
    }

    pub async fn logged_models(&self, experiment_ids: &[i64]) -> Result<Vec<LoggedModel>> {
        let mut out = Vec::new();
        for &exp in experiment_ids {
            let rows = sqlx::query(&format!(
                "{LOGGED_SELECT} WHERE experiment_id = $1 AND lifecycle_stage = 'active' ORDER BY creation_ms DESC, id"
            ))
            .bind(exp)
            .fetch_all(&self.pool)
            .await?;
            for r in &rows {
                let id: String = r.try_get(0)?;
                out.push(self.logged_model(&id).await?);
            }
        }
        Ok(out)
    }

    pub async fn finalize_logged_model(&self, id: &str, status: &str) -> Result<LoggedModel> {
        let _w = self.writer().await;
        let n = sqlx::query(
            "UPDATE logged_models SET status = $1, last_updated_ms = $2 WHERE id = $3 AND lifecycle_stage = 'active'",
        )
        .bind(status)
        .bind(kairo_core::time::now_millis())
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound(format!("Logged model with ID '{id}' not found.")));
        }
        drop(_w);
        self.logged_model(id).await
    }

    pub async fn delete_logged_model(&self, id: &str, actor: &str) -> Result<()> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "UPDATE logged_models SET lifecycle_stage = 'deleted' WHERE id = $1 AND lifecycle_stage = 'active'",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound(format!("Logged model with ID '{id}' not found.")));
        }
        insert_event(
            &mut tx,
            actor,
            EventKind::LoggedModelDeleted,
            &format!("logged_model:{id}"),
            &serde_json::json!({}),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Set tags (`Some`) or delete one (`None` value) on a logged model.
    pub async fn logged_model_tags(&self, id: &str, tags: &[(String, Option<String>)]) -> Result<()> {
        self.logged_model(id).await?;
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        for (k, v) in tags {
            match v {
                Some(v) => {
                    sqlx::query("INSERT INTO logged_model_tags (model_id, key, value) VALUES ($1, $2, $3) ON CONFLICT (model_id, key) DO UPDATE SET value = excluded.value")
                        .bind(id)
                        .bind(k)
                        .bind(v)
                        .execute(&mut *tx)
                        .await?;
                }
                None => {
                    sqlx::query("DELETE FROM logged_model_tags WHERE model_id = $1 AND key = $2")
                        .bind(id)
                        .bind(k)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn logged_model_params(&self, id: &str, params: &[(String, String)]) -> Result<()> {
        self.logged_model(id).await?;
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        for (k, v) in params {
            sqlx::query(
                "INSERT INTO logged_model_params (model_id, key, value) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(k)
            .bind(v)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// MLflow 3 `runs/outputs`: the run produced these models.
    pub async fn log_run_outputs(&self, run_id: &str, models: &[(String, i64)]) -> Result<()> {
        self.tracked_run_info(run_id).await?;
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        for (model, step) in models {
            sqlx::query("INSERT INTO run_outputs (run_id, model_id, step) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(run_id)
                .bind(model)
                .bind(*step)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Record datasets a run read (MLflow `runs/log-inputs`); logging the same one twice is a no-op.
    pub async fn log_run_inputs(&self, run_id: &str, inputs: &[DatasetInput]) -> Result<()> {
        self.tracked_run_info(run_id).await?;
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        for d in inputs {
            let tags = serde_json::to_string(&d.tags).unwrap_or_else(|_| "[]".into());
            sqlx::query(
                "INSERT INTO run_inputs (run_id, name, digest, source_type, source, schema, profile, tags) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (run_id, name, digest) DO NOTHING",
            )
            .bind(run_id)
            .bind(&d.name)
            .bind(&d.digest)
            .bind(&d.source_type)
            .bind(&d.source)
            .bind(d.schema.as_deref())
            .bind(d.profile.as_deref())
            .bind(tags)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn run_inputs(&self, run_id: &str) -> Result<Vec<DatasetInput>> {
        let rows = sqlx::query("SELECT name, digest, source_type, source, schema, profile, tags FROM run_inputs WHERE run_id = $1 ORDER BY name, digest")
            .bind(run_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let tags: String = r.try_get(6)?;
                Ok(DatasetInput {
                    name: r.try_get(0)?,
                    digest: r.try_get(1)?,
                    source_type: r.try_get(2)?,
                    source: r.try_get(3)?,
                    schema: r.try_get(4)?,
                    profile: r.try_get(5)?,
                    tags: serde_json::from_str(&tags).unwrap_or_default(),
                })
            })
            .collect()
    }

    pub async fn run_outputs(&self, run_id: &str) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT model_id, step FROM run_outputs WHERE run_id = $1 ORDER BY model_id")
            .bind(run_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    // ---- registry ----

    /// Make the next version of `name` number at least `after + 1` (a packaged model installed
    /// into a fresh store keeps the number it had where it was registered). Never lowers it.
    pub async fn continue_numbering_after(&self, name: &str, after: i64) -> Result<()> {
        let _w = self.writer().await;
        sqlx::query("UPDATE registered_models SET last_version = $2 WHERE name = $1 AND last_version < $2")
            .bind(name)
            .bind(after)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn create_registered_model(
        &self,
        name: &str,
        description: &str,
        tags: &[(String, String)],
        user: &str,
    ) -> Result<RegisteredModel> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let now = kairo_core::time::now_millis();
        // A name used before continues its numbering (see `retired_model_names`).
        let inserted = sqlx::query(
            "INSERT INTO registered_models (name, description, user_id, creation_ms, last_updated_ms, last_version) \
             VALUES ($1, $2, $3, $4, $4, COALESCE((SELECT last_version FROM retired_model_names WHERE name = $1), 0)) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(description)
        .bind(user)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Err(StoreError::AlreadyExists(format!("Registered Model (name={name}) already exists.")));
        }
        sqlx::query("DELETE FROM retired_model_names WHERE name = $1").bind(name).execute(&mut *tx).await?;
        for (k, v) in tags {
            sqlx::query("INSERT INTO registered_model_tags (name, key, value) VALUES ($1, $2, $3) ON CONFLICT (name, key) DO UPDATE SET value = excluded.value").bind(name).bind(k).bind(v).execute(&mut *tx).await?;
        }
        insert_event(&mut tx, user, EventKind::ModelRegistered, &format!("model:{name}"), &serde_json::json!({}))
            .await?;
        tx.commit().await?;
        drop(_w);
        self.registered_model(name).await
    }

    pub async fn registered_model(&self, name: &str) -> Result<RegisteredModel> {
        let row = sqlx::query(
            "SELECT name, description, user_id, creation_ms, last_updated_ms FROM registered_models WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("Registered Model with name={name} not found")))?;
        let mut m = RegisteredModel {
            name: row.try_get(0)?,
            description: row.try_get(1)?,
            user_id: row.try_get(2)?,
            creation_ms: row.try_get(3)?,
            last_updated_ms: row.try_get(4)?,
            tags: crate::tracking::pairs(
                sqlx::query("SELECT key, value FROM registered_model_tags WHERE name = $1 ORDER BY key")
                    .bind(name)
                    .fetch_all(&self.pool)
                    .await?,
            )?,
            aliases: Vec::new(),
            latest_versions: Vec::new(),
        };
        let rows = sqlx::query("SELECT alias, version FROM model_aliases WHERE name = $1 ORDER BY alias")
            .bind(name)
            .fetch_all(&self.pool)
            .await?;
        m.aliases = rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect::<Result<_>>()?;
        let versions = self.model_versions(Some(name)).await?;
        let mut latest: Vec<ModelVersion> = Vec::new();
        for v in versions {
            match latest.iter_mut().find(|l| l.current_stage == v.current_stage) {
                Some(l) if l.version < v.version => *l = v,
                Some(_) => {}
                None => latest.push(v),
            }
        }
        m.latest_versions = latest;
        Ok(m)
    }

    pub async fn registered_models(&self) -> Result<Vec<RegisteredModel>> {
        let rows = sqlx::query("SELECT name FROM registered_models ORDER BY name").fetch_all(&self.pool).await?;
        let mut out = Vec::new();
        for r in &rows {
            let name: String = r.try_get(0)?;
            out.push(self.registered_model(&name).await?);
        }
        Ok(out)
    }

    /// Rename a model with everything that is its own: versions, tags, aliases, servable
    /// details and their pins, promotions, sketches. Refused while it is deployed (deployments
    /// and serving processes follow the name) and onto a name an earlier model used (that
    /// model's prediction log and history name versions with the same numbers). The old name
    /// keeps its high-water mark, so a model created again under it continues the numbering.
    pub async fn rename_registered_model(&self, name: &str, new_name: &str, user: &str) -> Result<RegisteredModel> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let last_version = lock_model(&mut tx, name).await?;
        refuse_if_deployed(&mut tx, name, "renamed").await?;
        let taken = sqlx::query("SELECT 1 FROM registered_models WHERE name = $1")
            .bind(new_name)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if taken {
            return Err(StoreError::AlreadyExists(format!("Registered Model (name={new_name}) already exists.")));
        }
        let retired: Option<i64> = sqlx::query("SELECT last_version FROM retired_model_names WHERE name = $1")
            .bind(new_name)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
        if let Some(n) = retired.filter(|n| *n > 0) {
            return Err(StoreError::Invalid(format!(
                "Cannot rename model '{name}' to '{new_name}': an earlier model named '{new_name}' had versions up \
                 to {n}, and its history (prediction log, promotions, events) still names them; choose another name"
            )));
        }
        let versions: Vec<i64> = sqlx::query("SELECT version FROM model_versions WHERE name = $1")
            .bind(name)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<std::result::Result<_, _>>()?;
        for v in versions {
            sqlx::query("UPDATE object_refs SET owner_id = $1 WHERE owner_kind = 'model_version' AND owner_id = $2")
                .bind(format!("{new_name}/{v}"))
                .bind(format!("{name}/{v}"))
                .execute(&mut *tx)
                .await?;
        }
        for table in [
            "registered_models",
            "registered_model_tags",
            "model_versions",
            "model_version_tags",
            "model_aliases",
            "model_version_details",
            "deployment_revisions",
            "promotions",
            "monitor_sketches",
        ] {
            sqlx::query(&format!("UPDATE {table} SET name = $1 WHERE name = $2"))
                .bind(new_name)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM retired_model_names WHERE name = $1").bind(new_name).execute(&mut *tx).await?;
        retire_name(&mut tx, name, last_version).await?;
        insert_event(
            &mut tx,
            user,
            EventKind::ModelRenamed,
            &format!("model:{new_name}"),
            &serde_json::json!({"from": name}),
        )
        .await?;
        tx.commit().await?;
        drop(_w);
        self.registered_model(new_name).await
    }

    pub async fn update_registered_model(&self, name: &str, description: &str) -> Result<RegisteredModel> {
        self.registered_model(name).await?;
        let _w = self.writer().await;
        sqlx::query("UPDATE registered_models SET description = $1, last_updated_ms = $2 WHERE name = $3")
            .bind(description)
            .bind(kairo_core::time::now_millis())
            .bind(name)
            .execute(&self.pool)
            .await?;
        drop(_w);
        self.registered_model(name).await
    }

    /// Delete a model with its versions and everything only they held (tags, servable details,
    /// pins, rollback history, sketches), in one transaction. The same rule as for one version:
    /// refused while deployed or while an alias names any version (MLflow would drop the
    /// aliases; here `kairo serve NAME@ALIAS` and promotions follow them, so they are moved or
    /// deleted deliberately first). Promotions stay as history; the name keeps its high-water
    /// mark, so a model created again under it never reuses a number.
    pub async fn delete_registered_model(&self, name: &str, user: &str) -> Result<()> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let last_version = lock_model(&mut tx, name).await?;
        refuse_if_deployed(&mut tx, name, "deleted").await?;
        let aliases: Vec<(String, i64)> =
            sqlx::query("SELECT alias, version FROM model_aliases WHERE name = $1 ORDER BY alias")
                .bind(name)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<Result<_>>()?;
        if !aliases.is_empty() {
            let named: Vec<String> = aliases.iter().map(|(a, v)| format!("@{a} (version {v})")).collect();
            return Err(StoreError::Invalid(format!(
                "Model '{name}' cannot be deleted while an alias names one of its versions: {}; delete the alias first \
                 (`kairo models alias {name} ALIAS --delete`)",
                named.join(", ")
            )));
        }
        sqlx::query("DELETE FROM object_refs WHERE owner_kind = 'model_version' AND owner_id IN (SELECT name || '/' || version FROM model_versions WHERE name = $1)")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        for table in [
            "registered_model_tags",
            "model_version_tags",
            "model_version_details",
            "deployment_revisions",
            "monitor_sketches",
            "model_versions",
            "registered_models",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE name = $1")).bind(name).execute(&mut *tx).await?;
        }
        retire_name(&mut tx, name, last_version).await?;
        let payload = serde_json::json!({"last_version": last_version});
        insert_event(&mut tx, user, EventKind::ModelDeleted, &format!("model:{name}"), &payload).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn registered_model_tag(&self, name: &str, key: &str, value: Option<&str>) -> Result<()> {
        self.registered_model(name).await?;
        let _w = self.writer().await;
        match value {
            Some(v) => sqlx::query("INSERT INTO registered_model_tags (name, key, value) VALUES ($1, $2, $3) ON CONFLICT (name, key) DO UPDATE SET value = excluded.value")
                .bind(name)
                .bind(key)
                .bind(v)
                .execute(&self.pool)
                .await?,
            None => sqlx::query("DELETE FROM registered_model_tags WHERE name = $1 AND key = $2").bind(name).bind(key).execute(&self.pool).await?,
        };
        Ok(())
    }

    pub async fn create_model_version(&self, new: &NewModelVersion) -> Result<ModelVersion> {
        self.registered_model(&new.name).await?;
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let next = insert_version_row(&mut tx, new).await?;
        let payload =
            serde_json::json!({"version": next, "source": new.source, "run_id": new.run_id, "model_id": new.model_id});
        insert_event(&mut tx, &new.user_id, EventKind::ModelVersionCreated, &format!("model:{}", new.name), &payload)
            .await?;
        tx.commit().await?;
        drop(_w);
        self.model_version(&new.name, next).await
    }

    pub async fn model_version(&self, name: &str, version: i64) -> Result<ModelVersion> {
        let row = sqlx::query(&format!("{VERSION_SELECT} WHERE name = $1 AND version = $2"))
            .bind(name)
            .bind(version)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("Model Version (name={name}, version={version}) not found")))?;
        self.version_details(version_from_row(&row)?).await
    }

    async fn version_details(&self, mut v: ModelVersion) -> Result<ModelVersion> {
        v.tags = crate::tracking::pairs(
            sqlx::query("SELECT key, value FROM model_version_tags WHERE name = $1 AND version = $2 ORDER BY key")
                .bind(&v.name)
                .bind(v.version)
                .fetch_all(&self.pool)
                .await?,
        )?;
        let rows = sqlx::query("SELECT alias FROM model_aliases WHERE name = $1 AND version = $2 ORDER BY alias")
            .bind(&v.name)
            .bind(v.version)
            .fetch_all(&self.pool)
            .await?;
        v.aliases = rows.iter().map(|r| Ok(r.try_get(0)?)).collect::<Result<_>>()?;
        Ok(v)
    }

    /// Versions of one model (or of all), oldest first.
    pub async fn model_versions(&self, name: Option<&str>) -> Result<Vec<ModelVersion>> {
        let rows = match name {
            Some(n) => {
                sqlx::query(&format!("{VERSION_SELECT} WHERE name = $1 ORDER BY name, version"))
                    .bind(n)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => sqlx::query(&format!("{VERSION_SELECT} ORDER BY name, version")).fetch_all(&self.pool).await?,
        };
        let mut out = Vec::new();
        for r in &rows {
            out.push(self.version_details(version_from_row(r)?).await?);
        }
        Ok(out)
    }

    pub async fn update_model_version(
        &self,
        name: &str,
        version: i64,
        description: Option<&str>,
        stage: Option<&str>,
    ) -> Result<ModelVersion> {
        self.model_version(name, version).await?;
        let _w = self.writer().await;
        if let Some(d) = description {
            sqlx::query(
                "UPDATE model_versions SET description = $1, last_updated_ms = $2 WHERE name = $3 AND version = $4",
            )
            .bind(d)
            .bind(kairo_core::time::now_millis())
            .bind(name)
            .bind(version)
            .execute(&self.pool)
            .await?;
        }
        if let Some(s) = stage {
            sqlx::query(
                "UPDATE model_versions SET current_stage = $1, last_updated_ms = $2 WHERE name = $3 AND version = $4",
            )
            .bind(s)
            .bind(kairo_core::time::now_millis())
            .bind(name)
            .bind(version)
            .execute(&self.pool)
            .await?;
        }
        drop(_w);
        self.model_version(name, version).await
    }

    /// Delete a version with everything that is only its own (tags, servable details, the pin
    /// on its model bytes, its place in rollback history, sketches), in one transaction.
    /// Refused while a deployment serves it or an alias names it: those must be moved first,
    /// deliberately. Its number is never given out again (`insert_version_row`).
    pub async fn delete_model_version(&self, name: &str, version: i64, user: &str) -> Result<()> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        lock_model(&mut tx, name).await?;
        require_version(&mut tx, name, version).await?;
        let deployed = sqlx::query(
            "SELECT stable_version FROM deployments WHERE name = $1 AND (stable_version = $2 OR candidate_version = $2)",
        )
        .bind(name)
        .bind(version)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = deployed {
            let (arm, fix) = if row.try_get::<i64, _>(0)? == version {
                ("stable", format!("deploy another version first (`kairo deploy {name} --version N`)"))
            } else {
                ("candidate", format!("roll the candidate back first (`kairo rollback {name}`)"))
            };
            return Err(StoreError::Invalid(format!(
                "Version {version} of model '{name}' cannot be deleted: it is deployed as the {arm} version; {fix}"
            )));
        }
        let aliases: Vec<String> =
            sqlx::query("SELECT alias FROM model_aliases WHERE name = $1 AND version = $2 ORDER BY alias")
                .bind(name)
                .bind(version)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<std::result::Result<_, _>>()?;
        if !aliases.is_empty() {
            let named: Vec<String> = aliases.iter().map(|a| format!("@{a}")).collect();
            return Err(StoreError::Invalid(format!(
                "Version {version} of model '{name}' cannot be deleted: it holds the alias {}; move the alias to \
                 another version or delete it first (`kairo models alias {name} ALIAS VERSION` or `--delete`)",
                named.join(", ")
            )));
        }
        sqlx::query("DELETE FROM object_refs WHERE owner_kind = 'model_version' AND owner_id = $1")
            .bind(format!("{name}/{version}"))
            .execute(&mut *tx)
            .await?;
        for table in [
            "model_version_tags",
            "model_version_details",
            "deployment_revisions",
            "monitor_sketches",
            "model_versions",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE name = $1 AND version = $2"))
                .bind(name)
                .bind(version)
                .execute(&mut *tx)
                .await?;
        }
        insert_event(
            &mut tx,
            user,
            EventKind::ModelVersionDeleted,
            &format!("model:{name}"),
            &serde_json::json!({"version": version}),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn model_version_tag(&self, name: &str, version: i64, key: &str, value: Option<&str>) -> Result<()> {
        self.model_version(name, version).await?;
        let _w = self.writer().await;
        match value {
            Some(v) => sqlx::query("INSERT INTO model_version_tags (name, version, key, value) VALUES ($1, $2, $3, $4) ON CONFLICT (name, version, key) DO UPDATE SET value = excluded.value")
                .bind(name)
                .bind(version)
                .bind(key)
                .bind(v)
                .execute(&self.pool)
                .await?,
            None => sqlx::query("DELETE FROM model_version_tags WHERE name = $1 AND version = $2 AND key = $3").bind(name).bind(version).bind(key).execute(&self.pool).await?,
        };
        Ok(())
    }

    pub async fn model_version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion> {
        let version: i64 = sqlx::query("SELECT version FROM model_aliases WHERE name = $1 AND alias = $2")
            .bind(name)
            .bind(alias)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("Registered model alias {alias} not found.")))?
            .try_get(0)?;
        self.model_version(name, version).await
    }
}

/// Number and insert a new version row with its tags, and touch the registered model, inside
/// the caller's transaction. Returns the version number.
pub(crate) async fn insert_version_row(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    new: &NewModelVersion,
) -> Result<i64> {
    // The model's high-water mark, not the highest live version: a deleted version's number
    // is never given out again (a client holding it must never reach another model). One
    // UPDATE reads and raises it, so concurrent registrations (PostgreSQL has no writer lock)
    // queue on the model's row instead of both taking the same number.
    let next: i64 = sqlx::query(
        "UPDATE registered_models SET last_version = last_version + 1 WHERE name = $1 RETURNING last_version",
    )
    .bind(&new.name)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| StoreError::NotFound(format!("Registered Model with name={} not found", new.name)))?
    .try_get(0)?;
    let now = kairo_core::time::now_millis();
    sqlx::query(
        "INSERT INTO model_versions (name, version, description, source, run_id, model_id, run_link, status, current_stage, user_id, creation_ms, last_updated_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'READY', 'None', $8, $9, $9)",
    )
    .bind(&new.name)
    .bind(next)
    .bind(&new.description)
    .bind(&new.source)
    .bind(new.run_id.as_deref())
    .bind(new.model_id.as_deref())
    .bind(&new.run_link)
    .bind(&new.user_id)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    for (k, v) in &new.tags {
        sqlx::query("INSERT INTO model_version_tags (name, version, key, value) VALUES ($1, $2, $3, $4) ON CONFLICT (name, version, key) DO UPDATE SET value = excluded.value")
            .bind(&new.name)
            .bind(next)
            .bind(k)
            .bind(v)
            .execute(&mut **tx)
            .await?;
    }
    sqlx::query("UPDATE registered_models SET last_updated_ms = $1 WHERE name = $2")
        .bind(now)
        .bind(&new.name)
        .execute(&mut **tx)
        .await?;
    Ok(next)
}

/// Take the model's row lock as the transaction's first write and return its high-water mark.
/// Every change that checks what references a version (deletes, renames, alias moves,
/// deployment changes) starts here, so a check and the change it guards cannot interleave
/// with another writer: PostgreSQL queues on the row, SQLite takes its write lock up front
/// (a deferred transaction that reads first can fail with `SQLITE_BUSY` when it upgrades).
pub(crate) async fn lock_model(tx: &mut sqlx::Transaction<'_, sqlx::Any>, name: &str) -> Result<i64> {
    sqlx::query("UPDATE registered_models SET last_version = last_version WHERE name = $1 RETURNING last_version")
        .bind(name)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("Registered Model with name={name} not found")))?
        .try_get(0)
        .map_err(Into::into)
}

/// The version must exist (checked inside the transaction, after `lock_model`).
pub(crate) async fn require_version(tx: &mut sqlx::Transaction<'_, sqlx::Any>, name: &str, version: i64) -> Result<()> {
    sqlx::query("SELECT 1 FROM model_versions WHERE name = $1 AND version = $2")
        .bind(name)
        .bind(version)
        .fetch_optional(&mut **tx)
        .await?
        .map(|_| ())
        .ok_or_else(|| StoreError::NotFound(format!("Model Version (name={name}, version={version}) not found")))
}

/// Refuse to delete or rename a deployed model: the deployment and every `kairo serve`
/// following it find the model by name. (Kairo has no command that removes a deployment yet.)
async fn refuse_if_deployed(tx: &mut sqlx::Transaction<'_, sqlx::Any>, name: &str, what: &str) -> Result<()> {
    let row = sqlx::query("SELECT stable_version, candidate_version FROM deployments WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut **tx)
        .await?;
    let Some(row) = row else { return Ok(()) };
    let stable: i64 = row.try_get(0)?;
    let candidate: Option<i64> = row.try_get(1)?;
    let serving = match candidate {
        Some(c) => format!("version {stable}, with version {c} as candidate"),
        None => format!("version {stable}"),
    };
    Err(StoreError::Invalid(format!(
        "Model '{name}' cannot be {what}: it is deployed (serving {serving}) and its deployment and serving \
         processes follow it by name"
    )))
}

/// Remember a name's high-water mark once no model has it (deleted or renamed away).
async fn retire_name(tx: &mut sqlx::Transaction<'_, sqlx::Any>, name: &str, last_version: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO retired_model_names (name, last_version) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET last_version = excluded.last_version",
    )
    .bind(name)
    .bind(last_version)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn logged_from_row(r: &AnyRow) -> Result<LoggedModel> {
    Ok(LoggedModel {
        id: r.try_get(0)?,
        experiment_id: r.try_get(1)?,
        name: r.try_get(2)?,
        model_type: r.try_get(3)?,
        source_run_id: r.try_get(4)?,
        status: r.try_get(5)?,
        status_message: r.try_get(6)?,
        creator_id: r.try_get(7)?,
        creation_ms: r.try_get(8)?,
        last_updated_ms: r.try_get(9)?,
        artifact_uri: r.try_get(10)?,
        params: Vec::new(),
        tags: Vec::new(),
        metrics: Vec::new(),
        registrations: Vec::new(),
    })
}

fn version_from_row(r: &AnyRow) -> Result<ModelVersion> {
    Ok(ModelVersion {
        name: r.try_get(0)?,
        version: r.try_get(1)?,
        description: r.try_get(2)?,
        source: r.try_get(3)?,
        run_id: r.try_get(4)?,
        model_id: r.try_get(5)?,
        run_link: r.try_get(6)?,
        status: r.try_get(7)?,
        current_stage: r.try_get(8)?,
        user_id: r.try_get(9)?,
        creation_ms: r.try_get(10)?,
        last_updated_ms: r.try_get(11)?,
        tags: Vec::new(),
        aliases: Vec::new(),
    })
}
