//! MLflow 3 logged models (`/mlflow/logged-models/...`, `runs/outputs`) and the model registry
//! (`/mlflow/registered-models/...`, `/mlflow/model-versions/...`).

use super::registry_search::{self, Records};
use super::runs::{experiment_ids, metric_json, page_json, pairs_json, run_id};
use super::search::{self, Kind, Value as FilterValue};
use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::AppState;
use axum::http::Method;
use kairo_core::tracking::{LoggedModel, ModelVersion, RegisteredModel};
use kairo_store::registry::{NewLoggedModel, NewModelVersion};
use serde_json::{json, Value};

pub fn logged_model_json(m: &LoggedModel) -> Value {
    json!({
        "info": {
            "model_id": m.id, "experiment_id": m.experiment_id.to_string(), "name": m.name,
            "creation_timestamp_ms": m.creation_ms, "last_updated_timestamp_ms": m.last_updated_ms,
            "artifact_uri": m.artifact_uri, "status": m.status,
            "model_type": m.model_type.clone().unwrap_or_default(), "source_run_id": m.source_run_id.clone().unwrap_or_default(),
            "status_message": m.status_message.clone().unwrap_or_default(), "tags": pairs_json(&m.tags),
            "registrations": m.registrations.iter().map(|(n, v)| json!({"name": n, "version": v.to_string()})).collect::<Vec<_>>(),
        },
        "data": {"params": pairs_json(&m.params), "metrics": m.metrics.iter().map(metric_json).collect::<Vec<_>>()},
    })
}

fn version_json(v: &ModelVersion) -> Value {
    let mut out = json!({
        "name": v.name, "version": v.version.to_string(), "creation_timestamp": v.creation_ms,
        "last_updated_timestamp": v.last_updated_ms, "user_id": v.user_id, "current_stage": v.current_stage,
        "description": v.description, "source": v.source, "status": v.status, "status_message": "",
        "tags": pairs_json(&v.tags), "run_link": v.run_link, "aliases": v.aliases,
    });
    if let Some(r) = &v.run_id {
        out["run_id"] = json!(r);
    }
    if let Some(m) = &v.model_id {
        out["model_id"] = json!(m);
    }
    out
}

fn registered_json(m: &RegisteredModel) -> Value {
    json!({
        "name": m.name, "creation_timestamp": m.creation_ms, "last_updated_timestamp": m.last_updated_ms,
        "user_id": m.user_id, "description": m.description, "tags": pairs_json(&m.tags),
        "latest_versions": m.latest_versions.iter().map(version_json).collect::<Vec<_>>(),
        "aliases": m.aliases.iter().map(|(a, v)| json!({"alias": a, "version": v.to_string()})).collect::<Vec<_>>(),
    })
}

/// Logged model status as protobuf JSON may send it: the enum name or its number.
fn model_status(raw: &str) -> ApiResult<&'static str> {
    match raw {
        "LOGGED_MODEL_PENDING" | "1" => Ok("LOGGED_MODEL_PENDING"),
        "LOGGED_MODEL_READY" | "2" => Ok("LOGGED_MODEL_READY"),
        "LOGGED_MODEL_UPLOAD_FAILED" | "3" => Ok("LOGGED_MODEL_UPLOAD_FAILED"),
        other => Err(ApiError::invalid(format!("Invalid value '{other}' for parameter 'status'"))),
    }
}

fn version_number(p: &Params) -> ApiResult<i64> {
    let raw = p.string("version")?;
    raw.parse().map_err(|_| {
        ApiError::invalid(format!("Invalid value '{raw}' for parameter 'version': expected a version number"))
    })
}

// ---- logged models ----

pub async fn create_logged_model(s: AppState, p: Params) -> ApiResult<Value> {
    let experiment_id = p.string("experiment_id")?;
    let new = NewLoggedModel {
        experiment_id: experiment_id
            .parse()
            .map_err(|_| ApiError::invalid(format!("Invalid experiment id '{experiment_id}'")))?,
        name: p.opt_string("name")?.filter(|n| !n.is_empty()).unwrap_or_else(|| "model".into()),
        model_type: p.opt_string("model_type")?,
        source_run_id: p.opt_string("source_run_id")?.filter(|r| !r.is_empty()),
        params: p.pairs("params")?,
        tags: p.pairs("tags")?,
        creator_id: s.actor(),
    };
    let m = s.md.create_logged_model(&new).await?;
    Ok(json!({"model": logged_model_json(&m)}))
}

/// `/mlflow/logged-models/{id}`: GET reads, PATCH finalizes, DELETE deletes.
pub async fn logged_model(s: AppState, method: Method, id: String, p: Params) -> ApiResult<Value> {
    match method {
        Method::PATCH | Method::POST => {
            let status = model_status(&p.string("status")?)?;
            let m = s.md.finalize_logged_model(&id, status).await?;
            Ok(json!({"model": logged_model_json(&m)}))
        }
        Method::DELETE => {
            s.md.delete_logged_model(&id, &s.actor()).await?;
            Ok(json!({}))
        }
        _ => Ok(json!({"model": logged_model_json(&s.md.logged_model(&id).await?)})),
    }
}

pub async fn logged_model_tags(s: AppState, _method: Method, id: String, p: Params) -> ApiResult<Value> {
    let tags: Vec<(String, Option<String>)> = p.pairs("tags")?.into_iter().map(|(k, v)| (k, Some(v))).collect();
    s.md.logged_model_tags(&id, &tags).await?;
    Ok(json!({"model": logged_model_json(&s.md.logged_model(&id).await?)}))
}

pub async fn logged_model_params(s: AppState, _method: Method, id: String, p: Params) -> ApiResult<Value> {
    s.md.logged_model_params(&id, &p.pairs("params")?).await?;
    Ok(json!({}))
}

pub async fn delete_logged_model_tag(s: AppState, id: String, key: String) -> ApiResult<Value> {
    s.md.logged_model_tags(&id, &[(key, None)]).await?;
    Ok(json!({}))
}

const MODEL_ATTRIBUTES: &[&str] =
    &["name", "model_id", "model_type", "status", "source_run_id", "creation_timestamp", "last_updated_timestamp"];

pub async fn search_logged_models(s: AppState, p: Params) -> ApiResult<Value> {
    let ids = experiment_ids(&p)?;
    let filter = search::parse_filter_with(
        &p.opt_string("filter")?.unwrap_or_default(),
        MODEL_ATTRIBUTES,
        &["creation_timestamp", "last_updated_timestamp"],
    )?;
    let mut models = s.md.logged_models(&ids).await?;
    models.retain(|m| {
        search::matches_with(&filter, |kind, key| match kind {
            Kind::Attribute => Some(match key {
                "name" => FilterValue::Text(m.name.clone()),
                "model_id" => FilterValue::Text(m.id.clone()),
                "model_type" => FilterValue::Text(m.model_type.clone()?),
                "status" => FilterValue::Text(m.status.clone()),
                "source_run_id" => FilterValue::Text(m.source_run_id.clone()?),
                "creation_timestamp" => FilterValue::Number(m.creation_ms as f64),
                "last_updated_timestamp" => FilterValue::Number(m.last_updated_ms as f64),
                _ => return None,
            }),
            Kind::Param => m.params.iter().find(|(k, _)| k == key).map(|(_, v)| FilterValue::Text(v.clone())),
            Kind::Tag => m.tags.iter().find(|(k, _)| k == key).map(|(_, v)| FilterValue::Text(v.clone())),
            Kind::Metric => m.metrics.iter().rev().find(|x| x.key == key).map(|x| FilterValue::Number(x.value)),
        })
    });
    let (page, next) = super::runs::paginate(models, &p, 50, 50)?;
    Ok(page_json("models", &page, next, logged_model_json))
}

pub async fn log_inputs(s: AppState, p: Params) -> ApiResult<Value> {
    let mut inputs = Vec::new();
    for item in p.objects("datasets")? {
        let dataset = item.object("dataset")?;
        inputs.push(kairo_core::tracking::DatasetInput {
            name: dataset.string("name")?,
            digest: dataset.string("digest")?,
            source_type: dataset.opt_string("source_type")?.unwrap_or_default(),
            source: dataset.opt_string("source")?.unwrap_or_default(),
            schema: dataset.opt_string("schema")?,
            profile: dataset.opt_string("profile")?,
            tags: item.pairs("tags")?,
        });
    }
    s.md.log_run_inputs(&run_id(&p)?, &inputs).await?;
    Ok(json!({}))
}

pub async fn log_outputs(s: AppState, p: Params) -> ApiResult<Value> {
    let models = p
        .objects("models")?
        .iter()
        .map(|m| Ok((m.string("model_id")?, m.opt_i64("step")?.unwrap_or(0))))
        .collect::<ApiResult<Vec<_>>>()?;
    s.md.log_run_outputs(&run_id(&p)?, &models).await?;
    Ok(json!({}))
}

// ---- registry ----

pub async fn create_registered_model(s: AppState, p: Params) -> ApiResult<Value> {
    let name = p.string("name")?;
    if name.trim().is_empty() {
        return Err(ApiError::invalid("Registered model name cannot be empty."));
    }
    let m =
        s.md.create_registered_model(
            &name,
            &p.opt_string("description")?.unwrap_or_default(),
            &p.pairs("tags")?,
            &s.actor(),
        )
        .await?;
    Ok(json!({"registered_model": registered_json(&m)}))
}

pub async fn get_registered_model(s: AppState, p: Params) -> ApiResult<Value> {
    Ok(json!({"registered_model": registered_json(&s.md.registered_model(&p.string("name")?).await?)}))
}

pub async fn rename_registered_model(s: AppState, p: Params) -> ApiResult<Value> {
    let m = s.md.rename_registered_model(&p.string("name")?, &p.string("new_name")?, &s.actor()).await?;
    Ok(json!({"registered_model": registered_json(&m)}))
}

pub async fn update_registered_model(s: AppState, p: Params) -> ApiResult<Value> {
    let m = s.md.update_registered_model(&p.string("name")?, &p.opt_string("description")?.unwrap_or_default()).await?;
    Ok(json!({"registered_model": registered_json(&m)}))
}

pub async fn delete_registered_model(s: AppState, p: Params) -> ApiResult<Value> {
    s.md.delete_registered_model(&p.string("name")?, &s.actor()).await?;
    Ok(json!({}))
}

pub async fn search_registered_models(s: AppState, p: Params) -> ApiResult<Value> {
    let filter = registry_search::parse(&p.opt_string("filter")?.unwrap_or_default(), Records::Models)?;
    let order = registry_search::parse_order(&p.strings("order_by")?, Records::Models)?;
    let mut models = s.md.registered_models().await?;
    models.retain(|m| {
        filter.matches(has_prompt_tag(&m.tags), |kind, key| match kind {
            Kind::Attribute if key == "name" => Some(FilterValue::Text(m.name.clone())),
            Kind::Tag => m.tags.iter().find(|(k, _)| k == key).map(|(_, v)| FilterValue::Text(v.clone())),
            _ => None,
        })
    });
    registry_search::sort(&mut models, &order);
    let (page, next) = super::runs::paginate(models, &p, 100, 1000)?;
    Ok(page_json("registered_models", &page, next, registered_json))
}

/// Whether tags mark a registered model or version as an MLflow prompt.
fn has_prompt_tag(tags: &[(String, String)]) -> bool {
    tags.iter().any(|(k, v)| k == registry_search::IS_PROMPT && v == "true")
}

pub async fn set_registered_model_tag(s: AppState, p: Params) -> ApiResult<Value> {
    s.md.registered_model_tag(&p.string("name")?, &p.string("key")?, Some(&p.opt_string("value")?.unwrap_or_default()))
        .await?;
    Ok(json!({}))
}

pub async fn delete_registered_model_tag(s: AppState, p: Params) -> ApiResult<Value> {
    s.md.registered_model_tag(&p.string("name")?, &p.string("key")?, None).await?;
    Ok(json!({}))
}

/// `/mlflow/registered-models/alias`: POST sets, DELETE removes, GET resolves.
pub async fn alias(s: AppState, method: Method, p: Params) -> ApiResult<Value> {
    let name = p.string("name")?;
    let alias = p.string("alias")?;
    match method {
        Method::POST => {
            if alias.eq_ignore_ascii_case("latest")
                || alias.starts_with('v') && alias[1..].chars().all(|c| c.is_ascii_digit()) && alias.len() > 1
            {
                return Err(ApiError::invalid(format!(
                    "'{alias}' alias name is reserved and cannot be used as a custom model alias."
                )));
            }
            move_alias(&s, &name, &alias, Some(version_number(&p)?)).await?;
            Ok(json!({}))
        }
        Method::DELETE => {
            move_alias(&s, &name, &alias, None).await?;
            Ok(json!({}))
        }
        _ => Ok(json!({"model_version": version_json(&s.md.model_version_by_alias(&name, &alias).await?)})),
    }
}

/// An alias move through the MLflow API: refused (403 PERMISSION_DENIED) on an alias the
/// model's policy in kairo.yaml reserves for passed promotions.
async fn move_alias(s: &AppState, name: &str, alias: &str, version: Option<i64>) -> ApiResult<()> {
    use kairo_registry::aliases::{AliasMove, Authority};
    let policy = kairo_registry::aliases::policy(&s.project, name)?;
    let m = AliasMove {
        name,
        alias,
        version,
        authority: Authority::Plain,
        actor: &s.actor(),
        reason: "set through the MLflow API",
    };
    kairo_registry::aliases::move_alias(&s.md, &policy, &m).await?;
    Ok(())
}

pub async fn get_latest_versions(s: AppState, p: Params) -> ApiResult<Value> {
    let m = s.md.registered_model(&p.string("name")?).await?;
    let stages = p.strings("stages")?;
    let versions: Vec<Value> = m
        .latest_versions
        .iter()
        .filter(|v| stages.is_empty() || stages.iter().any(|st| st.eq_ignore_ascii_case(&v.current_stage)))
        .map(version_json)
        .collect();
    Ok(json!({"model_versions": versions}))
}

/// Sources a version may point at, judged by parsed scheme and normalised (percent-decoded)
/// path: artifacts this server manages (`models:/`, `runs:/`, `mlflow-artifacts:/` with a
/// relative path) and the project's own remotes. Everything else is refused: local paths and
/// `file:` (the server would hand out files of its own machine, the pattern of MLflow's
/// CVE-2023-6909 / CVE-2024-3573), `http(s):` (a download URI pointing at, say, a cloud metadata
/// service), `..` in any encoding, and absolute paths such as `mlflow-artifacts:///etc/passwd`.
fn check_source(source: &str, remotes: &[String]) -> ApiResult<()> {
    let refuse = |why: String| {
        ApiError::invalid(format!(
            "Invalid model version source: '{source}': {why}. Use a models:/, runs:/ or mlflow-artifacts:/ URI \
             under this server's artifacts, or a URI under one of the project's remotes."
        ))
    };
    for scheme in ["models:/", "runs:/", "mlflow-artifacts:/"] {
        if let Some(rest) = source.strip_prefix(scheme) {
            let path = super::artifacts::clean_path(rest).map_err(|e| refuse(e.message))?;
            return if path.is_empty() { Err(refuse("the path is empty".into())) } else { Ok(()) };
        }
    }
    if let Some(remote) = remotes.iter().find(|r| {
        let r = r.trim_end_matches('/');
        r.contains("://") && !r.starts_with("file:") && source.strip_prefix(r).is_some_and(|rest| rest.starts_with('/'))
    }) {
        let rest = &source[remote.trim_end_matches('/').len() + 1..];
        super::artifacts::clean_path(rest).map_err(|e| refuse(e.message))?;
        return Ok(());
    }
    let scheme = source.split_once(':').map(|(s, _)| s).filter(|s| !s.is_empty() && !s.contains('/'));
    Err(refuse(match scheme {
        Some(s) => format!("the scheme '{s}:' is not accepted here"),
        None => "local paths are not allowed".into(),
    }))
}

pub async fn create_model_version(s: AppState, p: Params) -> ApiResult<Value> {
    let remotes: Vec<String> = s.project.config().remotes.values().map(|r| r.url.clone()).collect();
    check_source(&p.string("source")?, &remotes)?;
    let mut new = NewModelVersion {
        name: p.string("name")?,
        source: p.string("source")?,
        run_id: p.opt_string("run_id")?.filter(|r| !r.is_empty()),
        model_id: p.opt_string("model_id")?.filter(|m| !m.is_empty()),
        run_link: p.opt_string("run_link")?.unwrap_or_default(),
        description: p.opt_string("description")?.unwrap_or_default(),
        tags: p.pairs("tags")?,
        user_id: s.actor(),
    };
    // A version of a logged model belongs to the run that logged it, as MLflow records it.
    let from_source = new
        .source
        .strip_prefix("models:/")
        .filter(|id| id.starts_with("m-"))
        .map(|id| id.trim_end_matches('/').to_string());
    if new.model_id.is_none() {
        new.model_id = from_source;
    }
    if let Some(id) = new.model_id.clone() {
        let logged = s.md.logged_model(&id).await?;
        if new.run_id.is_none() {
            new.run_id = logged.source_run_id;
        }
    }
    let v = s.md.create_model_version(&new).await?;
    Ok(json!({"model_version": version_json(&v)}))
}

pub async fn get_model_version(s: AppState, p: Params) -> ApiResult<Value> {
    Ok(json!({"model_version": version_json(&s.md.model_version(&p.string("name")?, version_number(&p)?).await?)}))
}

pub async fn update_model_version(s: AppState, p: Params) -> ApiResult<Value> {
    let v = s
        .md
        .update_model_version(&p.string("name")?, version_number(&p)?, p.opt_string("description")?.as_deref(), None)
        .await?;
    Ok(json!({"model_version": version_json(&v)}))
}

pub async fn transition_stage(s: AppState, p: Params) -> ApiResult<Value> {
    let stage = p.string("stage")?;
    let canonical = ["None", "Staging", "Production", "Archived"]
        .into_iter()
        .find(|st| st.eq_ignore_ascii_case(&stage))
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "Invalid Model Version stage: {stage}. Value must be one of None, Staging, Production, Archived."
            ))
        })?;
    let v = s.md.update_model_version(&p.string("name")?, version_number(&p)?, None, Some(canonical)).await?;
    Ok(json!({"model_version": version_json(&v)}))
}

pub async fn delete_model_version(s: AppState, p: Params) -> ApiResult<Value> {
    s.md.delete_model_version(&p.string("name")?, version_number(&p)?, &s.actor()).await?;
    Ok(json!({}))
}

pub async fn set_model_version_tag(s: AppState, p: Params) -> ApiResult<Value> {
    s.md.model_version_tag(
        &p.string("name")?,
        version_number(&p)?,
        &p.string("key")?,
        Some(&p.opt_string("value")?.unwrap_or_default()),
    )
    .await?;
    Ok(json!({}))
}

pub async fn delete_model_version_tag(s: AppState, p: Params) -> ApiResult<Value> {
    s.md.model_version_tag(&p.string("name")?, version_number(&p)?, &p.string("key")?, None).await?;
    Ok(json!({}))
}

pub async fn search_model_versions(s: AppState, p: Params) -> ApiResult<Value> {
    let filter = registry_search::parse(&p.opt_string("filter")?.unwrap_or_default(), Records::Versions)?;
    let order = registry_search::parse_order(&p.strings("order_by")?, Records::Versions)?;
    let mut versions = s.md.model_versions(None).await?;
    // As MLflow: a name one of whose versions is a prompt is a prompt, with all its versions.
    let prompts: std::collections::HashSet<String> =
        versions.iter().filter(|v| has_prompt_tag(&v.tags)).map(|v| v.name.clone()).collect();
    versions.retain(|v| {
        filter.matches(prompts.contains(&v.name), |kind, key| match kind {
            Kind::Attribute => Some(match key {
                "name" => FilterValue::Text(v.name.clone()),
                "run_id" => FilterValue::Text(v.run_id.clone()?),
                "source_path" => FilterValue::Text(v.source.clone()),
                "version_number" => FilterValue::Number(v.version as f64),
                _ => return None,
            }),
            Kind::Tag => v.tags.iter().find(|(k, _)| k == key).map(|(_, val)| FilterValue::Text(val.clone())),
            _ => None,
        })
    });
    registry_search::sort(&mut versions, &order);
    let (page, next) = super::runs::paginate(versions, &p, 10_000, 200_000)?;
    Ok(page_json("model_versions", &page, next, version_json))
}

/// Where a version's files are, as an artifact URI the client can download from.
pub async fn download_uri(s: AppState, p: Params) -> ApiResult<Value> {
    let v = s.md.model_version(&p.string("name")?, version_number(&p)?).await?;
    let uri = resolve_source(&s, &v).await?;
    Ok(json!({"artifact_uri": uri}))
}

/// GET `/model-versions/get-artifact?name=..&version=..&path=..` (the MLflow UI's model
/// version page): one file under the version's artifacts, when this server holds them.
pub async fn model_version_artifact(s: AppState, p: Params) -> Result<axum::response::Response, ApiError> {
    let sub = super::artifacts::path_param(&p)?;
    let v = s.md.model_version(&p.string("name")?, version_number(&p)?).await?;
    let uri = resolve_source(&s, &v).await?;
    let Some(root) = uri.strip_prefix("mlflow-artifacts:/") else {
        return Err(ApiError::not_found(format!(
            "Model '{}' version {} keeps its artifacts at '{uri}', outside this server's artifact store; \
             download them from there",
            v.name, v.version
        )));
    };
    super::artifacts::file_under(&s, &super::artifacts::clean_path(root)?, &sub).await
}

async fn resolve_source(s: &AppState, v: &ModelVersion) -> ApiResult<String> {
    if let Some(id) = v.model_id.as_ref().filter(|_| v.source.is_empty()) {
        return Ok(s.md.logged_model(id).await?.artifact_uri);
    }
    // Checked again on the way out: a source recorded before sources were checked, or a
    // `kairo models register --file` version (`file:...`), is never handed to a client.
    let remotes: Vec<String> = s.project.config().remotes.values().map(|r| r.url.clone()).collect();
    check_source(&v.source, &remotes).map_err(|_| {
        ApiError::invalid(format!(
            "Model version '{}' version {} has no artifacts this server can hand out: its source '{}' is not a \
             models:/, runs:/ or mlflow-artifacts:/ URI or a URI under one of the project's remotes \
             (a version registered from a file with `kairo models register --file` is served by `kairo serve`)",
            v.name, v.version, v.source
        ))
    })?;
    if let Some(id) = v.source.strip_prefix("models:/").filter(|id| id.starts_with("m-")) {
        return Ok(s.md.logged_model(id.trim_end_matches('/')).await?.artifact_uri);
    }
    if let Some(rest) = v.source.strip_prefix("runs:/") {
        let (run, path) = rest.split_once('/').unwrap_or((rest, ""));
        let info = s.md.tracked_run_info(run).await?;
        let base = super::runs::artifact_uri(&info);
        return Ok(if path.is_empty() { base } else { format!("{base}/{path}") });
    }
    Ok(v.source.clone())
}

#[cfg(test)]
mod tests {
    use super::check_source;

    #[test]
    fn sources_are_judged_by_scheme_and_normalised_path() {
        let remotes = vec!["s3://bucket/kairo".to_string(), "/srv/dir-remote".to_string()];
        for ok in [
            "models:/m-0123456789abcdef0123456789abcdef",
            "runs:/0a1b2c/model",
            "mlflow-artifacts:/0/models/m-0123/artifacts",
            "s3://bucket/kairo/models/x",
        ] {
            assert!(check_source(ok, &remotes).is_ok(), "{ok}");
        }
        for bad in [
            "http://169.254.169.254/latest/meta-data/",
            "https://example.com/model",
            "mlflow-artifacts:///etc/passwd",
            "mlflow-artifacts:/0/%2e%2e/%2e%2e/etc/passwd",
            "mlflow-artifacts:/0/%252e%252e/x",
            "runs:/abc/../../etc",
            "file:///etc/passwd",
            "/etc/passwd",
            "../secret",
            "s3://other-bucket/x",
            "s3://bucket/kairo-other/x",
            "s3://bucket/kairo/../../x",
            "/srv/dir-remote/x",
            "models:/",
        ] {
            let e = check_source(bad, &remotes).unwrap_err();
            assert!(e.message.contains("Invalid model version source"), "{bad}: {}", e.message);
        }
    }
}
