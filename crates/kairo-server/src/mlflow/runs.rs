//! MLflow tracking endpoints: experiments, runs, params, metrics, tags, search, metric history.
//! Domain records are mapped to MLflow's JSON by hand here (the wire is a boundary).

use super::search;
use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::AppState;
use kairo_core::run::{new_run_id, Run};
use kairo_core::tracking::{status_from_mlflow, status_to_mlflow, Experiment, MetricPoint, TrackedRun, TrackedRunInfo};
use kairo_store::tracking::{Batch, View, MAX_PARAM_KEY, MAX_PARAM_VALUE, MAX_TAG_VALUE};
use serde_json::{json, Value};

pub fn artifact_uri(info: &TrackedRunInfo) -> String {
    format!("mlflow-artifacts:/{}", super::artifacts::run_root(info))
}

fn number(v: f64) -> Value {
    if v.is_nan() {
        json!("NaN")
    } else if v == f64::INFINITY {
        json!("Infinity")
    } else if v == f64::NEG_INFINITY {
        json!("-Infinity")
    } else {
        json!(v)
    }
}

pub fn pairs_json(pairs: &[(String, String)]) -> Value {
    Value::Array(pairs.iter().map(|(k, v)| json!({"key": k, "value": v})).collect())
}

pub fn metric_json(m: &MetricPoint) -> Value {
    let mut v = json!({"key": m.key, "value": number(m.value), "timestamp": m.timestamp, "step": m.step});
    if let Some(id) = &m.model_id {
        v["model_id"] = json!(id);
    }
    if let Some(d) = &m.dataset_name {
        v["dataset_name"] = json!(d);
    }
    if let Some(d) = &m.dataset_digest {
        v["dataset_digest"] = json!(d);
    }
    v
}

pub fn info_json(i: &TrackedRunInfo) -> Value {
    let mut v = json!({
        "run_id": i.id, "run_uuid": i.id, "run_name": i.name, "experiment_id": i.experiment_id.to_string(),
        "user_id": i.user_id, "status": status_to_mlflow(i.status), "start_time": i.start_time,
        "artifact_uri": artifact_uri(i), "lifecycle_stage": i.lifecycle_stage,
    });
    if let Some(end) = i.end_time {
        v["end_time"] = json!(end);
    }
    v
}

pub fn run_json(r: &TrackedRun) -> Value {
    json!({
        "info": info_json(&r.info),
        "data": {
            "metrics": r.metrics.iter().map(metric_json).collect::<Vec<_>>(),
            "params": pairs_json(&r.params),
            "tags": pairs_json(&r.tags),
        },
        "inputs": {},
    })
}

pub fn experiment_json(e: &Experiment) -> Value {
    json!({
        "experiment_id": e.id.to_string(), "name": e.name, "artifact_location": e.artifact_location,
        "lifecycle_stage": e.lifecycle_stage, "last_update_time": e.last_update_time,
        "creation_time": e.creation_time, "tags": pairs_json(&e.tags),
    })
}

fn experiment_id(p: &Params) -> ApiResult<i64> {
    let raw = p.string("experiment_id")?;
    raw.parse().map_err(|_| {
        ApiError::invalid(format!("Invalid value '{raw}' for parameter 'experiment_id': expected an integer id"))
    })
}

fn view(p: &Params, key: &str) -> ApiResult<View> {
    match p.opt_string(key)?.as_deref() {
        None | Some("ACTIVE_ONLY") | Some("1") => Ok(View::ActiveOnly),
        Some("DELETED_ONLY") | Some("2") => Ok(View::DeletedOnly),
        Some("ALL") | Some("3") => Ok(View::All),
        Some(other) => Err(ApiError::invalid(format!(
            "Invalid value '{other}' for parameter '{key}': expected ACTIVE_ONLY, DELETED_ONLY or ALL"
        ))),
    }
}

/// MLflow's rule for metric, param and tag names.
fn check_key(what: &str, key: &str) -> ApiResult<()> {
    let ok_chars = key.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ' ' | '/'));
    if key.is_empty()
        || !ok_chars
        || key.starts_with('/')
        || key.split('/').any(|s| s == "..")
        || key.len() > MAX_PARAM_KEY
    {
        return Err(ApiError::invalid(format!(
            "Invalid {what} name: '{key}'. Names may only contain alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ), and slashes (/), be at most {MAX_PARAM_KEY} characters, and may not be '..'-relative or absolute."
        )));
    }
    Ok(())
}

fn check_value(what: &str, key: &str, value: &str, max: usize) -> ApiResult<()> {
    if value.len() > max {
        return Err(ApiError::invalid(format!(
            "{what} '{key}' had length {}, which exceeded length limit of {max}",
            value.len()
        )));
    }
    Ok(())
}

fn metric_from(p: &Params) -> ApiResult<MetricPoint> {
    let key = p.string("key")?;
    check_key("metric", &key)?;
    Ok(MetricPoint {
        key,
        value: p.f64("value")?,
        timestamp: p.opt_i64("timestamp")?.unwrap_or_else(kairo_core::time::now_millis),
        step: p.opt_i64("step")?.unwrap_or(0),
        model_id: p.opt_string("model_id")?,
        dataset_name: p.opt_string("dataset_name")?,
        dataset_digest: p.opt_string("dataset_digest")?,
    })
}

pub fn run_id(p: &Params) -> ApiResult<String> {
    p.string_of(&["run_id", "run_uuid"])
}

// ---- experiments ----

pub async fn create_experiment(s: AppState, p: Params) -> ApiResult<Value> {
    let name = p.string("name")?;
    if name.trim().is_empty() {
        return Err(ApiError::invalid("Invalid experiment name: ''. The experiment name must be a non-empty string."));
    }
    let tags = p.pairs("tags")?;
    let location = p.opt_string("artifact_location")?.filter(|l| !l.is_empty());
    let id = s.md.create_experiment(&name, location.as_deref(), &tags, &s.actor()).await?;
    Ok(json!({"experiment_id": id.to_string()}))
}

pub async fn get_experiment(s: AppState, p: Params) -> ApiResult<Value> {
    let e = s.md.experiment(experiment_id(&p)?).await?;
    Ok(json!({"experiment": experiment_json(&e)}))
}

pub async fn get_experiment_by_name(s: AppState, p: Params) -> ApiResult<Value> {
    let e = s.md.experiment_by_name(&p.string("experiment_name")?).await?;
    Ok(json!({"experiment": experiment_json(&e)}))
}

pub async fn search_experiments(s: AppState, p: Params) -> ApiResult<Value> {
    let mut exps = s.md.experiments(view(&p, "view_type")?).await?;
    if let Some(filter) = p.opt_string("filter")?.filter(|f| !f.trim().is_empty()) {
        let conds = parse_experiment_filter(&filter)?;
        exps.retain(|e| {
            conds.iter().all(|(field, op, value)| {
                let actual = match field.as_str() {
                    "name" => Some(e.name.clone()),
                    tag => e
                        .tags
                        .iter()
                        .find(|(k, _)| Some(k.as_str()) == tag.strip_prefix("tags."))
                        .map(|(_, v)| v.clone()),
                };
                match (actual, op.as_str()) {
                    (Some(a), "=") => &a == value,
                    (Some(a), "!=") => &a != value,
                    (Some(a), "LIKE") => search::like(&a, value, false),
                    (Some(a), "ILIKE") => search::like(&a, value, true),
                    _ => false,
                }
            })
        });
    }
    let order = p.strings("order_by")?;
    let mut desc_by_time = true;
    for o in &order {
        let lower = o.to_ascii_lowercase();
        if lower.starts_with("name") {
            exps.sort_by(|a, b| a.name.cmp(&b.name));
            if lower.ends_with("desc") {
                exps.reverse();
            }
            desc_by_time = false;
        } else if lower.contains("creation_time")
            || lower.contains("last_update_time")
            || lower.starts_with("experiment_id")
        {
            exps.sort_by_key(|e| e.creation_time);
            if lower.ends_with("desc") {
                exps.reverse();
            }
            desc_by_time = false;
        } else {
            return Err(ApiError::invalid(format!("Invalid order_by clause '{o}'")));
        }
    }
    if desc_by_time {
        exps.sort_by(|a, b| b.creation_time.cmp(&a.creation_time).then(b.id.cmp(&a.id)));
    }
    let (page, next) = paginate(exps, &p, 1000, 50_000)?;
    Ok(page_json("experiments", &page, next, experiment_json))
}

/// `name LIKE 'x%' AND tags.k = 'v'` — the experiment filter subset MLflow documents.
fn parse_experiment_filter(filter: &str) -> ApiResult<Vec<(String, String, String)>> {
    let conds = search::parse_filter_with(filter, &["name"], &[])?;
    conds
        .into_iter()
        .map(|c| {
            let field = match c.kind {
                search::Kind::Attribute if c.key == "name" => "name".to_string(),
                search::Kind::Tag => format!("tags.{}", c.key),
                _ => {
                    return Err(ApiError::invalid(format!(
                        "Invalid filter '{filter}': only name and tags.<key> can be filtered"
                    )))
                }
            };
            match c.value {
                search::Value::Text(v) => Ok((field, c.op, v)),
                _ => Err(ApiError::invalid(format!("Invalid filter '{filter}': values must be quoted strings"))),
            }
        })
        .collect()
}

pub async fn update_experiment(s: AppState, p: Params) -> ApiResult<Value> {
    let id = experiment_id(&p)?;
    if let Some(name) = p.opt_string("new_name")?.filter(|n| !n.is_empty()) {
        s.md.rename_experiment(id, &name, &s.actor()).await?;
    }
    Ok(json!({}))
}

pub async fn delete_experiment(s: AppState, p: Params) -> ApiResult<Value> {
    s.md.set_experiment_lifecycle(experiment_id(&p)?, "deleted", &s.actor()).await?;
    Ok(json!({}))
}

pub async fn restore_experiment(s: AppState, p: Params) -> ApiResult<Value> {
    s.md.set_experiment_lifecycle(experiment_id(&p)?, "active", &s.actor()).await?;
    Ok(json!({}))
}

pub async fn set_experiment_tag(s: AppState, p: Params) -> ApiResult<Value> {
    let key = p.string("key")?;
    check_key("tag", &key)?;
    let value = p.opt_string("value")?.unwrap_or_default();
    check_value("Tag", &key, &value, MAX_TAG_VALUE)?;
    s.md.set_experiment_tag(experiment_id(&p)?, &key, Some(&value)).await?;
    Ok(json!({}))
}

pub async fn delete_experiment_tag(s: AppState, p: Params) -> ApiResult<Value> {
    s.md.set_experiment_tag(experiment_id(&p)?, &p.string("key")?, None).await?;
    Ok(json!({}))
}

// ---- runs ----

pub async fn create_run(s: AppState, p: Params) -> ApiResult<Value> {
    let experiment = match p.opt_string("experiment_id")?.filter(|e| !e.is_empty()) {
        Some(raw) => raw
            .parse()
            .map_err(|_| ApiError::invalid(format!("Invalid value '{raw}' for parameter 'experiment_id'")))?,
        None => kairo_core::tracking::DEFAULT_EXPERIMENT,
    };
    let mut tags = p.pairs("tags")?;
    for (k, v) in &tags {
        check_key("tag", k)?;
        check_value("Tag", k, v, MAX_TAG_VALUE)?;
    }
    let tag = |k: &str| tags.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let id = new_run_id();
    let name = p
        .opt_string("run_name")?
        .filter(|n| !n.is_empty())
        .or_else(|| tag("mlflow.runName"))
        .unwrap_or_else(|| format!("run-{}", &id[24..]));
    // With authentication, the run is the authenticated user's, whatever the client says.
    let user = match crate::auth::current_user() {
        Some(u) => u,
        None => p
            .opt_string("user_id")?
            .filter(|u| !u.is_empty())
            .or_else(|| tag("mlflow.user"))
            .unwrap_or_else(|| s.actor()),
    };
    if tag("mlflow.runName").is_none() {
        tags.push(("mlflow.runName".into(), name.clone()));
    }
    let start = p.opt_i64("start_time")?.unwrap_or_else(kairo_core::time::now_millis);
    let started_at = chrono::DateTime::from_timestamp_millis(start)
        .map(kairo_core::time::format)
        .unwrap_or_else(kairo_core::time::now_string);
    let run = Run::tracked(id.clone(), name, user, s.host.clone(), started_at);
    s.md.create_tracked_run(&run, experiment, start, &tags).await?;
    let created = s.md.tracked_run(&id).await?;
    Ok(json!({"run": run_json(&created)}))
}

pub async fn get_run(s: AppState, p: Params) -> ApiResult<Value> {
    let run = s.md.tracked_run(&run_id(&p)?).await?;
    let mut out = run_json(&run);
    let inputs = s.md.run_inputs(&run.info.id).await?;
    if !inputs.is_empty() {
        let datasets: Vec<Value> = inputs
            .iter()
            .map(|d| {
                let mut dataset =
                    json!({"name": d.name, "digest": d.digest, "source_type": d.source_type, "source": d.source});
                if let Some(schema) = &d.schema {
                    dataset["schema"] = json!(schema);
                }
                if let Some(profile) = &d.profile {
                    dataset["profile"] = json!(profile);
                }
                json!({"tags": pairs_json(&d.tags), "dataset": dataset})
            })
            .collect();
        out["inputs"] = json!({"dataset_inputs": datasets});
    }
    let outputs = s.md.run_outputs(&run.info.id).await?;
    if !outputs.is_empty() {
        out["outputs"] = json!({"model_outputs": outputs.iter().map(|(m, step)| json!({"model_id": m, "step": step})).collect::<Vec<_>>()});
    }
    Ok(json!({"run": out}))
}

pub async fn update_run(s: AppState, p: Params) -> ApiResult<Value> {
    let id = run_id(&p)?;
    let status = match p.opt_string("status")? {
        None => None,
        Some(raw) => Some(status_from_mlflow(&raw).ok_or_else(|| {
            ApiError::invalid(format!(
                "Invalid value '{raw}' for parameter 'status': expected RUNNING, SCHEDULED, FINISHED, FAILED or KILLED"
            ))
        })?),
    };
    let name = p.opt_string("run_name")?;
    let info = s.md.update_tracked_run(&id, status, p.opt_i64("end_time")?, name.as_deref()).await?;
    Ok(json!({"run_info": info_json(&info)}))
}

pub async fn delete_run(s: AppState, p: Params) -> ApiResult<Value> {
    s.md.set_run_lifecycle(&run_id(&p)?, "deleted", &s.actor()).await?;
    Ok(json!({}))
}

pub async fn restore_run(s: AppState, p: Params) -> ApiResult<Value> {
    s.md.set_run_lifecycle(&run_id(&p)?, "active", &s.actor()).await?;
    Ok(json!({}))
}

pub async fn log_metric(s: AppState, p: Params) -> ApiResult<Value> {
    let metric = metric_from(&p)?;
    let run = run_id(&p)?;
    s.md.check_run_active(&run).await?;
    s.metrics.log(run, metric).await?;
    Ok(json!({}))
}

pub async fn log_param(s: AppState, p: Params) -> ApiResult<Value> {
    let key = p.string("key")?;
    check_key("param", &key)?;
    let value = p.opt_string("value")?.unwrap_or_default();
    check_value("Param", &key, &value, MAX_PARAM_VALUE)?;
    s.md.log_batch(&run_id(&p)?, &Batch { params: vec![(key, value)], ..Batch::default() }).await?;
    Ok(json!({}))
}

pub async fn set_tag(s: AppState, p: Params) -> ApiResult<Value> {
    let key = p.string("key")?;
    check_key("tag", &key)?;
    let value = p.opt_string("value")?.unwrap_or_default();
    check_value("Tag", &key, &value, MAX_TAG_VALUE)?;
    s.md.log_batch(&run_id(&p)?, &Batch { tags: vec![(key, value)], ..Batch::default() }).await?;
    Ok(json!({}))
}

pub async fn delete_tag(s: AppState, p: Params) -> ApiResult<Value> {
    s.md.delete_run_tag(&run_id(&p)?, &p.string("key")?).await?;
    Ok(json!({}))
}

pub async fn log_batch(s: AppState, p: Params) -> ApiResult<Value> {
    let metrics = p.objects("metrics")?;
    let params = p.pairs("params")?;
    let tags = p.pairs("tags")?;
    if metrics.len() > 1000
        || params.len() > 100
        || tags.len() > 100
        || metrics.len() + params.len() + tags.len() > 1000
    {
        return Err(ApiError::invalid(format!(
            "A batch logging request can contain at most 1000 metrics, 100 params and 100 tags, and at most 1000 entities in total; got {} metrics, {} params, {} tags",
            metrics.len(),
            params.len(),
            tags.len()
        )));
    }
    for (k, v) in &params {
        check_key("param", k)?;
        check_value("Param", k, v, MAX_PARAM_VALUE)?;
    }
    for (k, v) in &tags {
        check_key("tag", k)?;
        check_value("Tag", k, v, MAX_TAG_VALUE)?;
    }
    // A param logged twice in one batch with different values is a conflict, as in MLflow.
    for (i, (k, v)) in params.iter().enumerate() {
        if params[..i].iter().any(|(k2, v2)| k2 == k && v2 != v) {
            return Err(ApiError::invalid(format!(
                "Duplicate parameter keys have been submitted: '{k}' with different values"
            )));
        }
    }
    let batch = Batch { metrics: metrics.iter().map(metric_from).collect::<ApiResult<_>>()?, params, tags };
    s.md.log_batch(&run_id(&p)?, &batch).await?;
    Ok(json!({}))
}

pub async fn metric_history(s: AppState, p: Params) -> ApiResult<Value> {
    let points = s.md.metric_history(&run_id(&p)?, &p.string("metric_key")?).await?;
    let (page, next) = paginate(points, &p, usize::MAX, usize::MAX)?;
    Ok(page_json("metrics", &page, next, metric_json))
}

/// Most runs one `get-history-bulk-interval` call may name (MLflow's limit).
pub const BULK_INTERVAL_MAX_RUNS: usize = 100;
/// Most points it returns per run, and its default (MLflow's `MAX_RESULTS_PER_RUN`).
pub const BULK_INTERVAL_MAX_POINTS: i64 = 2500;

/// GET `/mlflow/metrics/get-history-bulk-interval?run_ids=..&metric_key=..[&start_step=&end_step=]
/// [&max_results=]` (the UI's charts): each run's history of one metric, optionally within a step
/// range, sampled to at most `max_results` points per run as MLflow's server samples it
/// ([`sample_history`]). As MLflow, a run id that names no run contributes no points.
pub async fn metric_history_bulk_interval(s: AppState, p: Params) -> ApiResult<Value> {
    let run_ids = p.strings("run_ids")?;
    if run_ids.is_empty() {
        return Err(ApiError::invalid(
            "Missing value for required parameter 'run_ids'. Give one or more run ids (repeat run_ids=...).",
        ));
    }
    if run_ids.len() > BULK_INTERVAL_MAX_RUNS {
        return Err(ApiError::invalid(format!(
            "Invalid value for parameter 'run_ids': GetMetricHistoryBulkInterval request must specify at most \
             {BULK_INTERVAL_MAX_RUNS} run_ids. Received {} run_ids.",
            run_ids.len()
        )));
    }
    let key = p.string("metric_key")?;
    let max = p.opt_i64("max_results")?.unwrap_or(BULK_INTERVAL_MAX_POINTS);
    if !(1..=BULK_INTERVAL_MAX_POINTS).contains(&max) {
        return Err(ApiError::invalid(format!(
            "Invalid value {max} for parameter 'max_results': max_results must be between 1 and {BULK_INTERVAL_MAX_POINTS}."
        )));
    }
    let range = match (p.opt_i64("start_step")?, p.opt_i64("end_step")?) {
        (Some(start), Some(end)) if start > end => {
            return Err(ApiError::invalid(format!(
                "Invalid value for parameter 'end_step': end_step must be greater than start_step. \
                 Found start_step={start} and end_step={end}."
            )))
        }
        (Some(start), Some(end)) => Some(start..=end),
        (None, None) => None,
        (start, _) => {
            let missing = if start.is_some() { "end_step" } else { "start_step" };
            return Err(ApiError::invalid(format!(
                "Missing value for parameter '{missing}': if either start_step or end_step is specified, both must be."
            )));
        }
    };
    let mut out = Vec::new();
    for run_id in &run_ids {
        let history = match s.md.metric_history(run_id, &key).await {
            Ok(history) => history,
            Err(kairo_store::StoreError::NotFound(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut points: Vec<MetricPoint> =
            history.into_iter().filter(|m| range.as_ref().is_none_or(|r| r.contains(&m.step))).collect();
        points.sort_by(|a, b| history_order(a).partial_cmp(&history_order(b)).unwrap_or(std::cmp::Ordering::Equal));
        for m in sample_history(&points, max as usize) {
            out.push(json!({"key": m.key, "value": number(m.value), "timestamp": m.timestamp, "step": m.step, "run_id": run_id}));
        }
    }
    Ok(json!({"metrics": out}))
}

/// The order MLflow's store samples a history in: step, timestamp, value (NaN stored as 0), NaN.
fn history_order(m: &MetricPoint) -> (i64, i64, f64, bool) {
    let nan = m.value.is_nan();
    (m.step, m.timestamp, if nan { 0.0 } else { m.value }, nan)
}

/// MLflow's sample of an ordered history: split it into `max` buckets as SQL's `NTILE(max)`
/// does (the first `len % max` buckets one point larger), keep each bucket's first point, and
/// keep the last point too, in place of the final sample when there are already `max`.
pub fn sample_history(points: &[MetricPoint], max: usize) -> Vec<&MetricPoint> {
    let n = points.len();
    if n <= max {
        return points.iter().collect();
    }
    let (size, larger) = (n / max, n % max);
    let mut at = 0;
    let mut out = Vec::with_capacity(max);
    for bucket in 0..max {
        out.push(&points[at]);
        at += size + usize::from(bucket < larger);
    }
    let last = &points[n - 1];
    if out.last().is_some_and(|l| history_order(l) != history_order(last)) {
        out.pop();
        out.push(last);
    }
    out
}

pub async fn search_runs(s: AppState, p: Params) -> ApiResult<Value> {
    let experiment_ids = experiment_ids(&p)?;
    let filter = search::parse_filter(&p.opt_string("filter")?.unwrap_or_default())?;
    let order = search::parse_order(&p.strings("order_by")?)?;
    // Comparisons the database can answer find the candidate runs; the rest is checked here.
    let view = view(&p, "run_view_type")?;
    let mut rest = Vec::new();
    let mut candidates: Option<Vec<TrackedRunInfo>> = None;
    for c in filter {
        match search::pushdown(&c) {
            Some(cond) => {
                let found = s.md.runs_where(&experiment_ids, &cond, view).await?;
                candidates = Some(match candidates {
                    None => found,
                    Some(prev) => {
                        let ids: std::collections::HashSet<&str> = found.iter().map(|i| i.id.as_str()).collect();
                        prev.into_iter().filter(|i| ids.contains(i.id.as_str())).collect()
                    }
                });
            }
            None => rest.push(c),
        }
    }
    let infos = match candidates {
        Some(infos) => infos,
        None => s.md.run_infos(&experiment_ids, view).await?,
    };
    let needs_data =
        rest.iter().any(|c| c.kind != search::Kind::Attribute) || order.iter().any(search::Order::needs_data);
    let (page, next) = if needs_data {
        let mut runs = s.md.run_data(infos).await?;
        runs.retain(|r| search::matches(r, &rest));
        search::sort(&mut runs, &order);
        paginate(runs, &p, 1000, 50_000)?
    } else {
        // Filter, sort and cut the page on attributes alone; load data only for that page.
        let mut runs: Vec<TrackedRun> = infos
            .into_iter()
            .map(|info| TrackedRun { info, metrics: Vec::new(), params: Vec::new(), tags: Vec::new() })
            .collect();
        runs.retain(|r| search::matches(r, &rest));
        search::sort(&mut runs, &order);
        let (page, next) = paginate(runs, &p, 1000, 50_000)?;
        (s.md.run_data(page.into_iter().map(|r| r.info).collect()).await?, next)
    };
    Ok(page_json("runs", &page, next, run_json))
}

/// `{key: [items...], "next_page_token": ...}` (the token only when there is a next page).
pub fn page_json<T>(key: &str, items: &[T], next: Option<String>, to_json: impl Fn(&T) -> Value) -> Value {
    let mut out = json!({ key: items.iter().map(to_json).collect::<Vec<_>>() });
    if let Some(t) = next {
        out["next_page_token"] = json!(t);
    }
    out
}

/// `experiment_ids` as numbers.
pub fn experiment_ids(p: &Params) -> ApiResult<Vec<i64>> {
    p.strings("experiment_ids")?
        .iter()
        .map(|e| e.parse::<i64>().map_err(|_| ApiError::invalid(format!("Invalid experiment id '{e}'"))))
        .collect()
}

/// Apply `max_results` (default `default`, at most `max`) and `page_token` to a sorted list.
pub fn paginate<T>(items: Vec<T>, p: &Params, default: usize, max: usize) -> ApiResult<(Vec<T>, Option<String>)> {
    let limit = match p.opt_i64("max_results")? {
        None => default,
        Some(n) if n >= 1 && (n as u64) <= max as u64 => n as usize,
        Some(n) => {
            return Err(ApiError::invalid(format!(
                "Invalid value {n} for parameter 'max_results' supplied. It must be between 1 and {max}."
            )))
        }
    };
    let offset = search::parse_page_token(p.opt_string("page_token")?.as_deref())?;
    let total = items.len();
    let page: Vec<T> = items.into_iter().skip(offset).take(limit).collect();
    let next = (offset.saturating_add(limit) < total).then(|| search::page_token(offset + limit));
    Ok((page, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(steps: &[i64]) -> Vec<MetricPoint> {
        steps
            .iter()
            .map(|&step| MetricPoint {
                key: "loss".into(),
                value: 1.0 / (step + 1) as f64,
                timestamp: 1000 + step,
                step,
                model_id: None,
                dataset_name: None,
                dataset_digest: None,
            })
            .collect()
    }

    fn sampled_steps(points: &[MetricPoint], max: usize) -> Vec<i64> {
        sample_history(points, max).iter().map(|m| m.step).collect()
    }

    #[test]
    fn histories_are_sampled_as_mlflow_server_samples_them() {
        // Answers of `mlflow server` 3.17.2 (SQLite) for 30 points at steps 0, 2, …, 58.
        let loss = history(&(0..30).map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(sampled_steps(&loss, 5), [0, 12, 24, 36, 58]);
        assert_eq!(sampled_steps(&loss, 1), [58]);
        assert_eq!(sampled_steps(&loss, 2500).len(), 30);
        let window: Vec<MetricPoint> = loss.iter().filter(|m| (10..=20).contains(&m.step)).cloned().collect();
        assert_eq!(sampled_steps(&window, 3), [10, 14, 20]);
        // NTILE's uneven buckets: 7 points in 3 buckets hold 3, 2, 2.
        assert_eq!(sampled_steps(&history(&[0, 1, 2, 3, 4, 5, 6]), 3), [0, 3, 6]);
        assert_eq!(sampled_steps(&history(&[0, 1, 2, 3, 4, 5, 6]), 4), [0, 2, 4, 6]);
        assert!(sample_history(&[], 5).is_empty());
        // Points logged at one step are sampled by row, not collapsed to the step.
        let mut same = history(&[0, 0, 0, 0, 0]);
        for (i, m) in same.iter_mut().enumerate() {
            m.value = i as f64;
            m.timestamp = 1000 + i as i64;
        }
        let values: Vec<f64> = sample_history(&same, 2).iter().map(|m| m.value).collect();
        assert_eq!(values, [0.0, 4.0]);
    }
}
