//! Model cards (`kairo models card NAME@ALIAS`, the UI's card page): one document per
//! registered version, assembled from what Kairo already knows of it —
//! - what people must say: intended use, out-of-scope uses, limitations, ethical
//!   considerations and owners, from the model's `card:` section in kairo.yaml;
//! - the version and its training lineage (run, commit, environment, data versions, params),
//!   signature, recorded metrics, reference profile and performance estimator, permutation
//!   importance ([`kairo_registry::describe::model`]);
//! - on the model's holdout: its metrics with 95% bootstrap intervals, the same per group of
//!   each `card.slices` column (small groups reported, not judged), and a fairness table per
//!   `card.sensitive` column ([`kairo_registry::holdout_fairness`]);
//! - its promotions with their gate evidence and approvals, the alias history;
//! - the monitors of its deployment, evaluated now, and its incidents.
//!
//! [`render`] writes the card as Markdown or HTML in English or Japanese; `--format json` is
//! the [`Card`] itself.

pub mod render;
mod text;

use std::collections::BTreeMap;

use kairo_core::config::CardSpec;
use kairo_core::splitmix::SplitMix64;
use kairo_data::Project;
use kairo_monitor::cbpe::Estimate;
use kairo_monitor::fairness::Fairness;
use kairo_monitor::performance;
use kairo_registry::holdout::{self, Predictions, Table};
use kairo_registry::{ModelRef, RegistryError};
use kairo_runtime::Model;
use kairo_store::Metadata;
use serde::Serialize;
use serde_json::Value;

pub use text::Lang;

#[derive(Debug, thiserror::Error)]
pub enum CardError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Store(#[from] kairo_store::StoreError),
    #[error(transparent)]
    Data(#[from] kairo_data::DataError),
}

pub type Result<T, E = CardError> = std::result::Result<T, E>;

/// Bootstrap resamples for an interval; seeded, so a card is the same every time.
const RESAMPLES: usize = 200;
const SEED: u64 = 0x6b61_6972_6f63_6172;
/// Rows a slice needs to be judged (the gates' rule).
pub use holdout::MIN_SLICE_ROWS;

/// A model card.
#[derive(Debug, Clone, Serialize)]
pub struct Card {
    pub name: String,
    pub version: i64,
    /// What was asked for (`churn@champion`).
    pub reference: String,
    pub spec: CardSpec,
    /// The version as `kairo models show` describes it: created, aliases, signature,
    /// metrics, profile, importance, lineage.
    pub about: Value,
    pub evaluation: Option<Evaluation>,
    /// Promotions of this version: alias, status, gate evidence, who asked and decided, why.
    pub promotions: Vec<Value>,
    /// Alias moves to this version.
    pub alias_history: Vec<Value>,
    pub deployment: Value,
    pub monitoring: Vec<MonitorStatus>,
    pub incidents: Vec<IncidentRow>,
    /// What could not be filled in, and why.
    pub notes: Vec<String>,
}

/// The model on its holdout.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub holdout: String,
    pub rows: usize,
    pub metrics: Vec<MetricRow>,
    pub slices: Vec<SliceRow>,
    pub fairness: Vec<FairnessTable>,
}

/// A metric with its 95% bootstrap interval.
#[derive(Debug, Clone, Serialize)]
pub struct MetricRow {
    pub metric: String,
    pub value: f64,
    pub low: Option<f64>,
    pub high: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SliceRow {
    pub column: String,
    pub group: String,
    pub rows: usize,
    pub judged: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<MetricRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FairnessTable {
    pub column: String,
    pub fairness: Fairness,
}

/// A monitor of the model's deployment, evaluated when the card was made.
#[derive(Debug, Clone, Serialize)]
pub struct MonitorStatus {
    pub monitor: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serving_version: Option<i64>,
    pub rows: u64,
    pub labelled: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift_share: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset_drift: Option<bool>,
    pub quality: BTreeMap<String, f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimated: Option<Estimate>,
    pub alerts: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IncidentRow {
    pub id: i64,
    pub automation: String,
    pub state: String,
    pub opened: String,
}

/// Assemble the card of `target` (`NAME`, `NAME@ALIAS`, `NAME:VERSION`; a bare name is its
/// latest version).
pub async fn build(project: &Project, md: &Metadata, target: &str) -> Result<Card> {
    let r = ModelRef::parse(target)?;
    let name = r.name().to_string();
    let version = r.resolve(md).await?;
    let doc = kairo_registry::describe::model(md, &format!("{name}:{version}")).await?;
    let about = doc["versions"][0].clone();
    let config = project.current_config().unwrap_or_else(|_| project.config().clone());
    let policy = config.models.get(&name).cloned().unwrap_or_default();
    let spec = policy.card.clone().unwrap_or_default();
    let mut notes = Vec::new();
    if policy.card.is_none() {
        notes.push(format!(
            "no `card:` section for models.{name} in kairo.yaml: intended use, limitations and owners are not stated"
        ));
    }
    let evaluation = match &policy.holdout {
        Some(h) => {
            match evaluate(project, md, &name, version, &h.path, &h.target, &spec, &policy.attribute_columns()).await {
                Ok((e, mut more)) => {
                    notes.append(&mut more);
                    Some(e)
                }
                Err(e) => {
                    notes.push(format!("no holdout evaluation: {}: {e}", h.path));
                    None
                }
            }
        }
        None => {
            notes.push(format!(
                "no `holdout:` for models.{name} in kairo.yaml: no metrics with intervals, slices or fairness"
            ));
            None
        }
    };
    let of_version = |v: &Value, key: &str| v[key].as_i64() == Some(version);
    let promotions: Vec<Value> =
        doc["promotions"].as_array().into_iter().flatten().filter(|p| of_version(p, "version")).cloned().collect();
    let alias_history: Vec<Value> =
        doc["alias_history"].as_array().into_iter().flatten().filter(|a| of_version(a, "to")).cloned().collect();
    let monitoring = monitors(project, md, &name, &config).await;
    let incidents = md
        .incidents(false, 500)
        .await?
        .into_iter()
        .filter(|i| i.model == name)
        .take(20)
        .map(|i| IncidentRow {
            id: i.id,
            automation: i.automation,
            state: i.state.as_str().to_string(),
            opened: kairo_core::time::millis_to_string(i.opened_ms),
        })
        .collect();
    Ok(Card {
        name,
        version,
        reference: target.to_string(),
        spec,
        about,
        evaluation,
        promotions,
        alias_history,
        deployment: doc["deployment"].clone(),
        monitoring,
        incidents,
        notes,
    })
}

async fn load(project: &Project, md: &Metadata, name: &str, version: i64) -> Result<Model> {
    let artifact = kairo_registry::artifact_of(md, name, version).await?;
    let bytes = kairo_registry::version_bytes(project, &artifact)?;
    Ok(kairo_registry::load_model(&bytes, &format!("model '{name}' version {version}"))?)
}

/// The holdout evaluation: metrics with intervals, slices, fairness (and what was skipped).
#[allow(clippy::too_many_arguments)]
async fn evaluate(
    project: &Project,
    md: &Metadata,
    name: &str,
    version: i64,
    path: &str,
    target: &str,
    spec: &CardSpec,
    attributes: &[String],
) -> Result<(Evaluation, Vec<String>)> {
    let model = load(project, md, name, version).await?;
    let table = Table::read(&project.abs(path))?;
    let t = table.column(target).ok_or_else(|| RegistryError::NoHoldoutTarget(target.to_string()))?;
    let mut notes = Vec::new();
    let reported: Vec<&str> = spec.slices.iter().chain(&spec.sensitive).map(String::as_str).collect();
    for c in &reported {
        if table.column(c).is_none() {
            notes.push(format!("card column `{c}` is not a column of {path} (it has: {})", table.columns.join(", ")));
        }
    }
    let features =
        kairo_registry::without_columns(&model, &table, &attributes.iter().map(String::as_str).collect::<Vec<_>>());
    let predicted = holdout::predict(&model, &features, target)?;
    let truth: Vec<String> = table.rows.iter().map(|r| r[t].clone()).collect();
    let all: Vec<usize> = (0..truth.len()).collect();
    let names: &[&str] = if predicted.values.is_some() {
        &["rmse", "mae", "r2"]
    } else {
        &["accuracy", "precision", "recall", "f1", "auc", "log_loss"]
    };
    let metrics: Vec<MetricRow> =
        names.iter().filter_map(|m| metric_with_interval(&predicted, &truth, &all, m, RESAMPLES)).collect();
    let primary = if predicted.values.is_some() { "rmse" } else { "accuracy" };
    let mut slices = Vec::new();
    for column in &spec.slices {
        let Some(c) = table.column(column) else { continue };
        for (group, rows) in holdout::groups(&table, c) {
            let judged = rows.len() >= MIN_SLICE_ROWS;
            let metric =
                if judged { metric_with_interval(&predicted, &truth, &rows, primary, RESAMPLES) } else { None };
            slices.push(SliceRow { column: column.clone(), group, rows: rows.len(), judged, metric });
        }
    }
    let mut fairness = Vec::new();
    for column in &spec.sensitive {
        if table.column(column).is_none() {
            continue;
        }
        match kairo_registry::holdout_fairness(&model, &table, target, column, "fairness") {
            Ok(f) => fairness.push(FairnessTable { column: column.clone(), fairness: f }),
            Err(e) => notes.push(format!("no fairness table for `{column}`: {e}")),
        }
    }
    Ok((Evaluation { holdout: path.to_string(), rows: truth.len(), metrics, slices, fairness }, notes))
}

/// `metric` on rows `idx`, with the 2.5th and 97.5th percentiles over seeded resamples of them
/// (resamples where the metric is undefined are left out). `None` when the metric does not
/// apply to the model.
fn metric_with_interval(
    p: &Predictions,
    truth: &[String],
    idx: &[usize],
    metric: &str,
    resamples: usize,
) -> Option<MetricRow> {
    let score = |rows: &[usize]| {
        let t: Vec<String> = rows.iter().map(|&i| truth[i].clone()).collect();
        holdout::score(&p.pick(rows), &t, metric).ok().filter(|v| v.is_finite())
    };
    let value = score(idx)?;
    let mut rng = SplitMix64::new(SEED ^ metric.len() as u64);
    let mut draws: Vec<f64> = (0..resamples)
        .filter_map(|_| {
            let rows: Vec<usize> = (0..idx.len()).map(|_| idx[rng.below(idx.len())]).collect();
            score(&rows)
        })
        .collect();
    draws.sort_by(f64::total_cmp);
    let at = |q: f64| draws.get(((draws.len().max(1) - 1) as f64 * q).round() as usize).copied();
    let (low, high) = if draws.len() >= resamples / 2 { (at(0.025), at(0.975)) } else { (None, None) };
    Some(MetricRow { metric: metric.to_string(), value, low, high })
}

/// The monitors of the model's deployment in kairo.yaml, each evaluated over its newest window.
async fn monitors(
    project: &Project,
    md: &Metadata,
    name: &str,
    config: &kairo_core::config::Config,
) -> Vec<MonitorStatus> {
    let mut out = Vec::new();
    for (monitor, spec) in config.monitors.iter().filter(|(_, s)| s.deployment.as_deref() == Some(name)) {
        let mut status = MonitorStatus {
            monitor: monitor.clone(),
            serving_version: None,
            rows: 0,
            labelled: 0,
            drift_share: None,
            dataset_drift: None,
            quality: BTreeMap::new(),
            estimated: None,
            alerts: Vec::new(),
            error: None,
        };
        match evaluate_monitor(project, md, name, spec).await {
            Ok(e) => {
                status.serving_version = Some(e.version);
                if let Some(w) = e.windows.last() {
                    status.rows = w.sketch.rows;
                    status.labelled = w.labelled;
                    if w.sketch.rows > 0 {
                        status.drift_share = Some(w.report.share);
                        status.dataset_drift = Some(w.report.dataset_drift);
                    }
                    for m in performance::CLASSIFICATION.iter().chain(performance::REGRESSION.iter()) {
                        if let Some(v) = w.window.values.get(*m) {
                            status.quality.insert(m.to_string(), *v);
                        }
                    }
                    status.estimated = w.found.estimate;
                }
                status.alerts = e.alerts.iter().map(|a| a.rule.clone()).collect();
            }
            Err(e) => status.error = Some(e.to_string()),
        }
        out.push(status);
    }
    out
}

async fn evaluate_monitor(
    project: &Project,
    md: &Metadata,
    name: &str,
    spec: &kairo_core::config::MonitorSpec,
) -> Result<kairo_watch::Evaluation, kairo_watch::WatchError> {
    let objects = project.objects()?;
    let windowing = kairo_watch::Windowing::of(spec)?;
    kairo_watch::evaluate(md, &objects, name, spec, windowing, 1, kairo_core::time::now_millis()).await
}
