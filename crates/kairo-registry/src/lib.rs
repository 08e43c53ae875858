//! Kairo's model registry: registering ONNX versions (validated by loading them in the serving
//! runtime), resolving `NAME@ALIAS` / `NAME:VERSION`, and promotions: gates from `kairo.yaml`
//! evaluated on recorded metrics and a holdout, approvals, alias moves with their reasons.
//!
//! Knows nothing of HTTP or of how versions are served; the store records every decision as
//! an event in the same transaction as the change.

pub mod aliases;
pub mod describe;
pub mod gate;
pub mod holdout;
pub mod profile;
pub mod rollout;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use gate::{Condition, GateResult};
use kairo_core::config::{Approval, ModelPolicy};
use kairo_core::serving::{Importance, Promotion, PromotionStatus, ReferenceProfile, VersionArtifact};
use kairo_core::tracking::ModelVersion;
use kairo_core::Hash;
use kairo_data::project::Project;
use kairo_runtime::{DType, Model, RuntimeError};
use kairo_store::registry::NewModelVersion;
use kairo_store::{Metadata, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Data(#[from] kairo_data::DataError),
    /// The model does not load in the serving runtime (unsupported operators are named).
    #[error("{0}")]
    Model(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// The policy in `kairo.yaml` forbids this change (a guarded alias moved without a passed
    /// promotion); the message names what is missing.
    #[error("{0}")]
    PermissionDenied(String),
    /// A rollout request the deployment state machine refuses.
    #[error(transparent)]
    Rollout(#[from] rollout::Refusal),
    /// A file named on the command line (`--file`, `--profile-data`) could not be read.
    #[error("{}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },

    // Reading a holdout or the training data.
    /// The training data could not be read as a table (for the reference profile).
    #[error(transparent)]
    Frame(#[from] kairo_monitor::MonitorError),
    #[error("{label}: {source}")]
    Csv { label: String, source: csv::Error },
    /// A CSV record could not be read (`row` counts the header as row 1).
    #[error("{label}: row {row}: {source}")]
    CsvRow { label: String, row: usize, source: csv::Error },
    /// `--profile-data` could not be profiled; the cause says why.
    #[error("--profile-data: {0}")]
    ProfileData(Box<RegistryError>),
    #[error("{label}: no target column '{target}' (columns: {})", .columns.join(", "))]
    NoDataTarget { label: String, target: String, columns: Vec<String> },
    #[error("{label}: input '{input}' takes {want} features but the data has {have} columns besides the target")]
    DataWidth { label: String, input: String, want: i64, have: usize },
    #[error("{label}: the model's inputs ({}) are not columns of the data", .inputs.join(", "))]
    InputsNotColumns { label: String, inputs: Vec<String> },
    #[error("--kind {column}: no such column (columns: {})", .columns.join(", "))]
    KindColumn { column: String, columns: Vec<String> },

    // Evaluating a model on its holdout (gates, permutation importance).
    #[error("no `holdout:` is configured for this model in kairo.yaml")]
    NoHoldout,
    #[error("the holdout has no target column '{0}'")]
    NoHoldoutTarget(String),
    #[error("the holdout has no rows")]
    EmptyHoldout,
    #[error("the holdout needs at least 2 rows")]
    HoldoutTooSmall,
    #[error("the holdout has no column for input '{0}'")]
    NoInputColumn(String),
    #[error("input '{input}' takes {want} features but the holdout has {have} columns besides '{target}'")]
    HoldoutWidth { input: String, want: i64, have: usize, target: String },
    #[error("input '{input}' has type {dtype}, which holdout evaluation does not fill")]
    InputType { input: String, dtype: DType },
    /// `row` counts the header as row 1.
    #[error("column '{column}', row {row}: `{cell}` is not a number")]
    NotANumber { column: String, row: usize, cell: String },
    #[error("column '{column}', row {row}: not an integer")]
    NotAnInteger { column: String, row: usize },
    #[error("target row {row}: `{value}` is not a number")]
    TargetNotANumber { row: usize, value: String },
    /// The holdout's values do not make a tensor of the input's shape.
    #[error(transparent)]
    Tensor(#[from] kairo_runtime::ShapeError),
    /// The model failed on the holdout.
    #[error(transparent)]
    Inference(RuntimeError),
    #[error("the model has no outputs")]
    NoOutputs,
    #[error("the model has no label output")]
    NoLabelOutput,
    #[error("the model has no probability output")]
    NoProbabilityOutput,
    #[error("`{0}` cannot be computed for a regressor (use rmse, mae or r2)")]
    MetricForRegressor(String),
    #[error("`{0}` cannot be computed for a classifier (use accuracy, precision, recall, f1, auc or log_loss)")]
    MetricForClassifier(String),
    #[error("`{0}` is computed for binary classifiers only")]
    MetricBinaryOnly(String),
    #[error("`{0}` is undefined for a constant target")]
    MetricConstantTarget(String),
    #[error("`{0}` needs both classes in the holdout")]
    MetricOneClass(String),
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// Where the ONNX bytes of a new version come from.
#[derive(Debug, Clone)]
pub enum Source {
    File(PathBuf),
    /// Bytes sent to the server (`POST /api/v1/models/{name}/versions`); `label` is what the
    /// client called them (recorded as `upload:LABEL`).
    Upload {
        bytes: Vec<u8>,
        label: String,
    },
    RunArtifact {
        run: String,
        path: String,
    },
}

/// A metric to record with a version, as given by hand (`auc=0.91`): the name and the value,
/// or what is wrong with it (`kairo models register --metric`, `POST /api/v1/models/{name}/versions?metrics=`).
pub fn parse_metric(text: &str) -> std::result::Result<(String, f64), String> {
    let (k, v) = text.split_once('=').ok_or_else(|| format!("{text}: expected NAME=VALUE"))?;
    let v: f64 = v.trim().parse().map_err(|_| format!("{text}: `{v}` is not a number"))?;
    Ok((k.trim().to_string(), v))
}

#[derive(Debug, Clone)]
pub struct RegisterRequest {
    pub name: String,
    pub source: Source,
    pub description: String,
    /// Metrics to record besides (and over) the run's.
    pub metrics: Vec<(String, f64)>,
    /// Training data to profile; by default the run's CSV dependency, if it has one.
    pub profile_data: Option<PathBuf>,
    /// The label column of the profiled data (default: the policy's holdout target).
    pub target: Option<String>,
    /// Column kinds that override inference in the profile.
    pub kinds: std::collections::HashMap<String, kairo_monitor::profile::Kind>,
    pub actor: String,
    /// Refuse the registration while a column of the training data looks personal and the
    /// model's privacy policy says nothing of it.
    pub strict: bool,
}

/// The result of a registration.
pub struct Registered {
    pub version: ModelVersion,
    pub artifact: VersionArtifact,
    pub lowered_ops: Vec<String>,
    /// `tract`, or `onnxruntime` for models only the optional backend runs.
    pub runtime: &'static str,
    /// How the reference profile was built, or why there is none.
    pub notes: Vec<String>,
    /// Columns of the training data that look personal and have no policy yet.
    pub personal: Vec<kairo_core::privacy::Finding>,
}

/// A model reference: `NAME`, `NAME@ALIAS` or `NAME:VERSION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelRef {
    Name(String),
    Alias(String, String),
    Version(String, i64),
}

impl ModelRef {
    pub fn parse(text: &str) -> Result<ModelRef> {
        let bad = || RegistryError::Invalid(format!("`{text}`: expected NAME, NAME@ALIAS or NAME:VERSION"));
        if let Some((name, alias)) = text.split_once('@') {
            if name.is_empty() || alias.is_empty() {
                return Err(bad());
            }
            return Ok(ModelRef::Alias(name.into(), alias.into()));
        }
        if let Some((name, version)) = text.rsplit_once(':') {
            let v: i64 = version.parse().map_err(|_| bad())?;
            if name.is_empty() || v < 1 {
                return Err(bad());
            }
            return Ok(ModelRef::Version(name.into(), v));
        }
        if text.is_empty() {
            return Err(bad());
        }
        Ok(ModelRef::Name(text.into()))
    }

    pub fn name(&self) -> &str {
        match self {
            ModelRef::Name(n) | ModelRef::Alias(n, _) | ModelRef::Version(n, _) => n,
        }
    }

    /// The version this reference names now (a bare name means its latest version).
    pub async fn resolve(&self, md: &Metadata) -> Result<i64> {
        match self {
            ModelRef::Version(name, v) => Ok(md.model_version(name, *v).await?.version),
            ModelRef::Alias(name, alias) => md
                .alias_version(name, alias)
                .await?
                .ok_or_else(|| RegistryError::NotFound(format!("model '{name}' has no alias '{alias}'"))),
            ModelRef::Name(name) => md
                .model_versions(Some(name))
                .await?
                .last()
                .map(|v| v.version)
                .ok_or_else(|| RegistryError::NotFound(format!("model '{name}' has no versions"))),
        }
    }
}

/// Load ONNX bytes in the runtime, turning failures into messages that name the problem.
pub fn load_model(bytes: &[u8], what: &str) -> Result<Model> {
    load_model_with(bytes, what, true)
}

/// [`load_model`] for scoring only, taking the bytes (freed once decoded): no tree explainer
/// is built (`kairo predict`).
pub fn load_model_to_score(bytes: Vec<u8>, what: &str) -> Result<Model> {
    Model::load_owned(bytes, false).map_err(|e| load_error(e, what))
}

fn load_model_with(bytes: &[u8], what: &str, explain: bool) -> Result<Model> {
    Model::load_with(bytes, explain).map_err(|e| load_error(e, what))
}

fn load_error(e: RuntimeError, what: &str) -> RegistryError {
    match e {
        RuntimeError::Unsupported { ops } => RegistryError::Model(format!(
            "{what} cannot be served: unsupported operators {} (Kairo's runtime is tract with ONNX-ML lowering; \
             see ARCHITECTURE.md for the supported set)",
            ops.join(", ")
        )),
        other => RegistryError::Model(format!("{what} cannot be served: {other}")),
    }
}

/// Read a version's ONNX bytes from the store; a corrupted object is refused.
pub fn version_bytes(project: &Project, artifact: &VersionArtifact) -> Result<Vec<u8>> {
    Ok(project.objects()?.read(&artifact.object)?)
}

/// The servable artifact of a version, or an error that says how to get one.
pub async fn artifact_of(md: &Metadata, name: &str, version: i64) -> Result<VersionArtifact> {
    md.model_version(name, version).await?;
    md.version_artifact(name, version).await?.ok_or_else(|| {
        RegistryError::Invalid(format!(
            "model '{name}' version {version} has no ONNX artifact (it was registered through the MLflow API); \
             register one with `kairo models register {name} --file model.onnx`"
        ))
    })
}

pub async fn register(project: &Project, md: &Metadata, req: &RegisterRequest) -> Result<Registered> {
    let objects = project.objects()?;
    let (bytes, source, run_id, run_metrics, run_csv) = match &req.source {
        Source::File(path) => {
            let bytes = std::fs::read(path).map_err(|source| RegistryError::Io { path: path.clone(), source })?;
            (bytes, format!("file:{}", path.display()), None, Vec::new(), None)
        }
        Source::Upload { bytes, label } => (bytes.clone(), format!("upload:{label}"), None, Vec::new(), None),
        Source::RunArtifact { run, path } => {
            let found = run_artifact(project, md, run, path).await?;
            (found.bytes, format!("runs:/{}/{path}", found.run_id), Some(found.run_id), found.metrics, found.csv_dep)
        }
    };
    let model = load_model(&bytes, &format!("model '{}'", req.name))?;
    let metrics: BTreeMap<String, f64> = run_metrics.into_iter().chain(req.metrics.iter().cloned()).collect();
    let mut notes = Vec::new();
    let data = match (&req.profile_data, run_csv) {
        (Some(path), _) => Some((
            std::fs::read(path).map_err(|source| RegistryError::Io { path: path.clone(), source })?,
            path.display().to_string(),
            true,
        )),
        (None, Some((path, hash))) => Some((objects.read(&hash)?, path, false)),
        _ => None,
    };
    let (policy, key) = Project::privacy(project.config(), &req.name);
    if key.is_none() && policy.needs_key() && data.is_some() {
        return Err(RegistryError::Invalid(format!(
            "models.{}.privacy hashes fields, and the reference profile must hash them as serving will: set {} to the same key `kairo serve` uses",
            req.name,
            policy.key_env()
        )));
    }
    let mut personal = Vec::new();
    if let Some((data, label, _)) = &data {
        personal = personal_columns(data, label)?;
        personal.retain(|f| !policy.fields.contains_key(&f.column));
        if req.strict && !personal.is_empty() {
            let lines: Vec<String> =
                personal.iter().map(|f| format!("        {}: {}   # {}", f.column, f.suggested, f.reason)).collect();
            return Err(RegistryError::Invalid(format!(
                "--strict: columns of {label} look personal and have no policy; add to kairo.yaml (or `keep` to log them as they are):\nmodels:\n  {}:\n    privacy:\n      fields:\n{}",
                req.name,
                lines.join("\n")
            )));
        }
        for f in &personal {
            notes.push(format!(
                "column `{}` looks personal ({}): set models.{}.privacy.fields.{}: {} in kairo.yaml (or keep), or register with --strict to require it",
                f.column, f.reason, req.name, f.column, f.suggested
            ));
        }
    }
    let privacy = policy.is_active().then_some((&policy, key.as_ref()));
    let profile = match data {
        Some((data, label, explicit)) => {
            match profile::build(&model, &data, &label, req.target.as_deref(), &req.kinds, privacy) {
                Ok(built) => {
                    notes.extend(built.notes);
                    Some(ReferenceProfile::Current(built.profile))
                }
                Err(e) if explicit => return Err(RegistryError::ProfileData(Box::new(e))),
                Err(e) => {
                    notes.push(format!("no reference profile: {e}"));
                    None
                }
            }
        }
        None => None,
    };
    let object = objects.put_bytes(&bytes)?;
    // Permutation importance on the model's holdout, when kairo.yaml names one; and the
    // performance estimator calibrated on it (held-out rows, not the ones the model learned).
    let mut profile = profile;
    let policy = project.config().models.get(&req.name).cloned().unwrap_or_default();
    let attributes = policy.attribute_columns();
    let attributes: Vec<&str> = attributes.iter().map(String::as_str).collect();
    let importance = match policy.holdout.clone() {
        Some(h) => match holdout::Table::read(&project.abs(&h.path)).and_then(|t| {
            let t = without_columns(&model, &t, &attributes);
            if let Some(ReferenceProfile::Current(p)) = profile.as_mut() {
                if let Ok(predicted) = holdout::predict(&model, &t, &h.target) {
                    let reference = format!("holdout {}", h.path);
                    p.estimator =
                        profile::estimator(&predicted, &t, &h.target, &reference).map(Box::new).or(p.estimator.take());
                }
            }
            holdout::permutation_importance(&model, &t, &h.target)
        }) {
            Ok(importance) => Some(Importance { holdout: h.path.clone(), ..importance }),
            Err(e) => {
                notes.push(format!("no permutation importance: {}: {e}", h.path));
                None
            }
        },
        None => None,
    };
    let artifact = VersionArtifact {
        object,
        size: bytes.len() as u64,
        signature: model.signature().clone(),
        metrics,
        profile,
        importance,
    };
    if md.registered_model(&req.name).await.is_err() {
        md.create_registered_model(&req.name, "", &[], &req.actor).await?;
    }
    let run_link = run_id.clone().unwrap_or_default();
    let new = NewModelVersion {
        name: req.name.clone(),
        source,
        run_id,
        model_id: None,
        run_link,
        description: req.description.clone(),
        tags: Vec::new(),
        user_id: req.actor.clone(),
    };
    let version = md.register_version(&new, &artifact).await?;
    Ok(Registered {
        version,
        artifact,
        lowered_ops: model.lowered_ops().to_vec(),
        runtime: model.backend_name(),
        notes,
        personal,
    })
}

/// Columns of a training CSV that look personal (by name, or by their first 1,000 values).
fn personal_columns(data: &[u8], label: &str) -> Result<Vec<kairo_core::privacy::Finding>> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(data);
    let bad = |e: csv::Error| RegistryError::Invalid(format!("{label}: {e}"));
    let names: Vec<String> = reader.headers().map_err(bad)?.iter().map(str::to_string).collect();
    let mut columns: Vec<(String, Vec<String>)> = names.into_iter().map(|n| (n, Vec::new())).collect();
    for record in reader.records().take(1000) {
        let record = record.map_err(bad)?;
        for (i, field) in record.iter().enumerate() {
            if let Some((_, values)) = columns.get_mut(i) {
                values.push(field.to_string());
            }
        }
    }
    Ok(kairo_core::privacy::personal_columns(&columns))
}

struct RunArtifact {
    run_id: String,
    bytes: Vec<u8>,
    metrics: Vec<(String, f64)>,
    /// The first CSV the run read: (path, object), for the reference profile.
    csv_dep: Option<(String, Hash)>,
}

/// Find `path` among a pipeline run's outputs or a tracked run's logged artifacts.
async fn run_artifact(project: &Project, md: &Metadata, run: &str, path: &str) -> Result<RunArtifact> {
    let objects = project.objects()?;
    if let Ok(r) = md.run(run).await {
        let out = r.outs.iter().find(|o| o.path == path).ok_or_else(|| {
            let outs: Vec<&str> = r.outs.iter().map(|o| o.path.as_str()).collect();
            RegistryError::NotFound(format!("run {} has no output '{path}' (its outputs: {})", r.id, outs.join(", ")))
        })?;
        if out.kind != "file" {
            return Err(RegistryError::Invalid(format!("'{path}' of run {} is a directory, not an ONNX file", r.id)));
        }
        let mut metrics: Vec<(String, f64)> = r.metrics.iter().map(|(k, v)| (k.clone(), *v)).collect();
        if let Ok(tracked) = md.tracked_run(&r.id).await {
            metrics.extend(tracked.metrics.iter().map(|m| (m.key.clone(), m.value)));
        }
        let csv_dep =
            r.deps.iter().find(|d| d.kind == "file" && d.path.ends_with(".csv")).map(|d| (d.path.clone(), d.hash));
        return Ok(RunArtifact { run_id: r.id.clone(), bytes: objects.read(&out.hash)?, metrics, csv_dep });
    }
    let tracked = md.tracked_run(run).await.map_err(|_| RegistryError::NotFound(format!("no run '{run}'")))?;
    let key = format!("{}/{}/artifacts/{}", tracked.info.experiment_id, tracked.info.id, path.trim_start_matches('/'));
    let (hash, _) = md
        .artifact(&key)
        .await?
        .ok_or_else(|| RegistryError::NotFound(format!("run {run} has no artifact '{path}'")))?;
    let metrics = tracked.metrics.iter().map(|m| (m.key.clone(), m.value)).collect();
    Ok(RunArtifact { run_id: tracked.info.id.clone(), bytes: objects.read(&hash)?, metrics, csv_dep: None })
}

/// What `promote` was asked to do.
#[derive(Debug, Clone)]
pub struct PromoteRequest {
    pub name: String,
    pub version: i64,
    pub alias: String,
    pub approve: bool,
    pub reject: bool,
    pub reason: Option<String>,
    pub actor: String,
}

/// The decision and the table it rests on.
pub struct PromoteOutcome {
    pub promotion: Promotion,
    pub gates: Vec<GateResult>,
}

/// Evaluate the gates and decide: promote, fail, leave pending, approve or reject a pending one.
pub async fn promote(project: &Project, md: &Metadata, req: &PromoteRequest) -> Result<PromoteOutcome> {
    let policy = project.config().models.get(&req.name).cloned().unwrap_or_default();
    let pending = md
        .promotions(&req.name)
        .await?
        .into_iter()
        .rev()
        .find(|p| p.version == req.version && p.alias == req.alias && p.status == PromotionStatus::Pending);
    if req.reject {
        let p = pending.ok_or_else(|| {
            RegistryError::NotFound(format!(
                "no pending promotion of '{}' version {} to '{}' to reject",
                req.name, req.version, req.alias
            ))
        })?;
        let decided = md.decide_promotion(&p.id, false, &p.gates, &req.actor, req.reason.as_deref()).await?;
        let gates = serde_json::from_value(decided.gates.clone()).unwrap_or_default();
        return Ok(PromoteOutcome { promotion: decided, gates });
    }
    let four_eyes = policy.four_eyes.unwrap_or(policy.approval == Approval::Required);
    if req.approve && four_eyes {
        let requester = pending.as_ref().map(|p| p.requested_by.as_str()).unwrap_or(req.actor.as_str());
        if requester == req.actor {
            return Err(RegistryError::PermissionDenied(format!(
                "four eyes: {} cannot approve a promotion of '{}' version {} that {}; another approver must run `kairo models promote {} {} --approve` (or set models.{}.four_eyes: false)",
                req.actor,
                req.name,
                req.version,
                if pending.is_some() { "they requested" } else { "they are requesting" },
                req.name,
                req.version,
                req.name
            )));
        }
    }
    let gates = evaluate_gates(project, md, &policy, &req.name, req.version).await?;
    let passed = gates.iter().all(|g| g.passed);
    let gates_json = serde_json::to_value(&gates).map_err(|e| RegistryError::Invalid(e.to_string()))?;
    if let Some(p) = pending {
        if req.approve && passed {
            let decided = md.decide_promotion(&p.id, true, &gates_json, &req.actor, req.reason.as_deref()).await?;
            return Ok(PromoteOutcome { promotion: decided, gates });
        }
        if !passed {
            let decided =
                md.decide_promotion(&p.id, false, &gates_json, &req.actor, Some("gates no longer pass")).await?;
            return Ok(PromoteOutcome { promotion: decided, gates });
        }
        return Ok(PromoteOutcome { promotion: p, gates });
    }
    let status = if !passed {
        PromotionStatus::Failed
    } else if policy.approval == Approval::Required && !req.approve {
        PromotionStatus::Pending
    } else {
        PromotionStatus::Promoted
    };
    let now = kairo_core::time::now_millis();
    let decided = status != PromotionStatus::Pending;
    let promotion = Promotion {
        id: format!("p-{}", kairo_core::run::new_run_id()),
        name: req.name.clone(),
        version: req.version,
        alias: req.alias.clone(),
        status,
        gates: gates_json,
        requested_by: req.actor.clone(),
        decided_by: decided.then(|| req.actor.clone()),
        reason: req.reason.clone().or_else(|| match status {
            PromotionStatus::Promoted if policy.approval == Approval::Required => Some("approved at request".into()),
            PromotionStatus::Promoted => Some("gates passed".into()),
            PromotionStatus::Failed => Some("gate failed".into()),
            _ => None,
        }),
        created_ms: now,
        decided_ms: decided.then_some(now),
    };
    md.record_promotion(&promotion).await?;
    Ok(PromoteOutcome { promotion, gates })
}

/// Judge every gate of the policy for one version. Metrics come from the version's recorded
/// metrics, else from the holdout; `size_mb` and `latency_p50_ms`/`latency_p99_ms` are measured.
pub async fn evaluate_gates(
    project: &Project,
    md: &Metadata,
    policy: &ModelPolicy,
    name: &str,
    version: i64,
) -> Result<Vec<GateResult>> {
    let artifact = artifact_of(md, name, version).await?;
    let bytes = version_bytes(project, &artifact)?;
    let model = load_model(&bytes, &format!("model '{name}' version {version}"))?;
    // Read once, when a gate first needs it; a failure to read is each such gate's detail.
    let table_cache: std::sync::OnceLock<Result<holdout::Table>> = std::sync::OnceLock::new();
    let read_holdout = || -> Result<&holdout::Table, &RegistryError> {
        table_cache
            .get_or_init(|| {
                let h = policy.holdout.as_ref().ok_or(RegistryError::NoHoldout)?;
                holdout::Table::read(&project.abs(&h.path))
            })
            .as_ref()
    };
    let attributes = policy.attribute_columns();
    let attributes: Vec<&str> = attributes.iter().map(String::as_str).collect();
    let unmeasured = |cond: &Condition, e: &dyn std::fmt::Display| GateResult {
        gate: cond.to_string(),
        passed: false,
        detail: format!("cannot evaluate: {e}"),
    };
    let mut results = Vec::new();
    let mut latency: Option<(f64, f64)> = None;
    for text in &policy.gates {
        let cond = match Condition::parse(text) {
            Ok(c) => c,
            Err(e) => {
                return Err(RegistryError::Invalid(format!("kairo.yaml: models.{name}.gates: {e}")));
            }
        };
        let measured: Result<(f64, String)> = match cond.metric.as_str() {
            "size_mb" => Ok((artifact.size as f64 / 1e6, "artifact size".into())),
            "latency_p50_ms" | "latency_p99_ms" => {
                let (p50, p99) = match latency {
                    Some(l) => l,
                    None => {
                        let l = measure_latency(&model, read_holdout().ok(), policy)?;
                        latency = Some(l);
                        l
                    }
                };
                Ok((if cond.metric == "latency_p50_ms" { p50 } else { p99 }, "single-row, in process".into()))
            }
            // A NaN metric was never a measurement: evaluate it on the holdout instead.
            m => match artifact.metrics.get(m).copied().filter(|v| !v.is_nan()) {
                Some(v) => Ok((v, "recorded".into())),
                None => match read_holdout() {
                    Ok(t) => {
                        let target = &policy.holdout.as_ref().map(|h| h.target.clone()).unwrap_or_default();
                        match holdout::Slicing::parse(m) {
                            Some(slicing) => evaluate_slice(&model, t, target, &slicing, &attributes)
                                .map(|(v, d)| (v, format!("holdout, {d}"))),
                            None => evaluate_metric(&model, t, target, m, &attributes).map(|v| (v, "holdout".into())),
                        }
                    }
                    Err(e) => {
                        results.push(unmeasured(&cond, e));
                        continue;
                    }
                },
            },
        };
        results.push(match measured {
            Ok((v, from)) => {
                GateResult { gate: cond.to_string(), passed: cond.holds(v), detail: format!("{v:.6} ({from})") }
            }
            Err(e) => unmeasured(&cond, &e),
        });
    }
    if let Some(beat) = &policy.beat_champion {
        let gate = format!("beats champion on {} by >= {}", beat.metric, beat.by);
        let result = match md.alias_version(name, "champion").await? {
            None => GateResult { gate, passed: true, detail: "no champion yet".into() },
            Some(champion) if champion == version => {
                GateResult { gate, passed: true, detail: format!("version {version} is the champion") }
            }
            Some(champion) => match read_holdout() {
                Err(e) => GateResult { gate, passed: false, detail: format!("cannot evaluate: {e}") },
                Ok(table) => {
                    let target = policy.holdout.as_ref().map(|h| h.target.clone()).unwrap_or_default();
                    let champion_art = artifact_of(md, name, champion).await?;
                    let champion_model = load_model(
                        &version_bytes(project, &champion_art)?,
                        &format!("model '{name}' version {champion}"),
                    )?;
                    let ours = evaluate_metric(&model, table, &target, &beat.metric, &attributes);
                    let theirs = evaluate_metric(&champion_model, table, &target, &beat.metric, &attributes);
                    match (ours, theirs) {
                        (Ok(a), Ok(b)) => {
                            let gain = if holdout::higher_is_better(&beat.metric) { a - b } else { b - a };
                            GateResult {
                                gate,
                                passed: gain >= beat.by,
                                detail: format!(
                                    "{}: {a:.6} vs champion v{champion} {b:.6} (gain {gain:+.6}) on holdout",
                                    beat.metric
                                ),
                            }
                        }
                        (Err(e), _) | (_, Err(e)) => {
                            GateResult { gate, passed: false, detail: format!("cannot evaluate: {e}") }
                        }
                    }
                }
            },
        };
        results.push(result);
    }
    if policy.approval == Approval::Required {
        results.push(GateResult {
            gate: "approval required".into(),
            passed: true,
            detail: "recorded separately".into(),
        });
    }
    Ok(results)
}

/// A fairness metric of the model's decisions on the holdout across the groups of `column`.
fn evaluate_fairness(model: &Model, table: &holdout::Table, target: &str, metric: &str, column: &str) -> Result<f64> {
    let f = holdout_fairness(model, table, target, column, metric)?;
    f.value(metric).ok_or_else(|| {
        RegistryError::Invalid(format!("{metric}({column}): undefined on this holdout (a group without both labels)"))
    })
}

/// The holdout without `columns` the model does not take by name: a sensitive or slicing
/// attribute is reported on, not fed to the model. A model with one `[N, F]` input whose
/// holdout has exactly F columns besides the target takes them all: there, the attributes are
/// features.
pub fn without_columns(model: &Model, table: &holdout::Table, columns: &[&str]) -> holdout::Table {
    if let [input] = model.signature().inputs.as_slice() {
        let width = input.shape.get(1).copied().unwrap_or(-1);
        if input.shape.len() == 2 && width >= 0 && table.columns.len() == width as usize + 1 {
            return table.clone();
        }
    }
    let drop: Vec<usize> = columns
        .iter()
        .filter(|c| !model.signature().inputs.iter().any(|i| i.name == **c))
        .filter_map(|c| table.column(c))
        .collect();
    holdout::Table {
        columns: table.columns.iter().enumerate().filter(|(i, _)| !drop.contains(i)).map(|(_, c)| c.clone()).collect(),
        rows: table
            .rows
            .iter()
            .map(|r| r.iter().enumerate().filter(|(i, _)| !drop.contains(i)).map(|(_, v)| v.clone()).collect())
            .collect(),
    }
}

/// The fairness of the model's decisions on the holdout across the groups of `column` (a
/// column of the holdout; left out of the model's inputs unless the model takes it by name).
/// Binary classifiers only: the positive class is the larger label. `metric` names the gate or
/// table in errors.
pub fn holdout_fairness(
    model: &Model,
    table: &holdout::Table,
    target: &str,
    column: &str,
    metric: &str,
) -> Result<kairo_monitor::fairness::Fairness> {
    let t = table.column(target).ok_or_else(|| RegistryError::NoHoldoutTarget(target.to_string()))?;
    let g = table.column(column).ok_or_else(|| {
        RegistryError::Invalid(format!(
            "{metric}({column}): the holdout has no column `{column}` (it has: {})",
            table.columns.join(", ")
        ))
    })?;
    let groups: Vec<String> = table.rows.iter().map(|r| r[g].clone()).collect();
    let features = without_columns(model, table, &[column]);
    let predictions = holdout::predict(model, &features, target)?;
    let predicted = predictions.labels.ok_or_else(|| {
        RegistryError::Invalid(format!("{metric}: the model predicts no class labels (fairness is for classifiers)"))
    })?;
    let truth: Vec<String> = table.rows.iter().map(|r| r[t].clone()).collect();
    let mut labels: Vec<&str> = truth.iter().chain(&predicted).map(String::as_str).collect();
    labels.sort_by(|a, b| match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.total_cmp(&y),
        _ => a.cmp(b),
    });
    labels.dedup();
    if labels.len() != 2 {
        return Err(RegistryError::Invalid(format!(
            "{metric}: fairness is for binary decisions, the holdout and predictions hold {} labels",
            labels.len()
        )));
    }
    let positive = labels[1].to_string();
    let same =
        |a: &str| a == positive || a.parse::<f64>().ok().zip(positive.parse::<f64>().ok()).is_some_and(|(x, y)| x == y);
    let actual: Vec<bool> = truth.iter().map(|l| same(l)).collect();
    let decided: Vec<bool> = predicted.iter().map(|l| same(l)).collect();
    let group_refs: Vec<&str> = groups.iter().map(String::as_str).collect();
    kairo_monitor::fairness::fairness(&actual, &decided, &group_refs)
        .map_err(|e| RegistryError::Invalid(format!("{metric}({column}): {e}")))
}

/// A metric on one slice of the holdout (`accuracy[region=eu]`), or on its worst slice
/// (`accuracy[region]`: the lowest of a higher-is-better metric, the highest of another, over
/// the slices with enough rows). A slice with fewer than [`holdout::MIN_SLICE_ROWS`] rows is not
/// judged: asked for by name it cannot be evaluated; among all slices it is left out (and said).
fn evaluate_slice(
    model: &Model,
    table: &holdout::Table,
    target: &str,
    s: &holdout::Slicing,
    attributes: &[&str],
) -> Result<(f64, String)> {
    let t = table.column(target).ok_or_else(|| RegistryError::NoHoldoutTarget(target.to_string()))?;
    let c = table.column(&s.column).ok_or_else(|| {
        RegistryError::Invalid(format!(
            "{}[{}]: the holdout has no column `{}` (it has: {})",
            s.metric,
            s.column,
            s.column,
            table.columns.join(", ")
        ))
    })?;
    let groups = holdout::groups(table, c);
    let features = without_columns(model, table, attributes);
    let predicted = holdout::predict(model, &features, target)?;
    let truth: Vec<String> = table.rows.iter().map(|r| r[t].clone()).collect();
    let score = |rows: &[usize]| {
        let labels: Vec<String> = rows.iter().map(|&i| truth[i].clone()).collect();
        holdout::score(&predicted.pick(rows), &labels, &s.metric)
    };
    let judged = |rows: &[usize]| rows.len() >= holdout::MIN_SLICE_ROWS;
    match &s.value {
        Some(value) => {
            let Some((_, rows)) = groups.iter().find(|(g, _)| g == value) else {
                let known: Vec<&str> = groups.iter().map(|(g, _)| g.as_str()).take(20).collect();
                return Err(RegistryError::Invalid(format!(
                    "{}[{}={value}]: no holdout row has {} = {value} (its values: {})",
                    s.metric,
                    s.column,
                    s.column,
                    known.join(", ")
                )));
            };
            if !judged(rows) {
                return Err(RegistryError::Invalid(format!(
                    "{}[{}={value}]: {} rows, too few to judge ({} needed)",
                    s.metric,
                    s.column,
                    rows.len(),
                    holdout::MIN_SLICE_ROWS
                )));
            }
            Ok((score(rows)?, format!("{} rows", rows.len())))
        }
        None => {
            let higher = holdout::higher_is_better(&s.metric);
            let mut worst: Option<(f64, &str, usize)> = None;
            let mut unjudged = 0;
            for (g, rows) in &groups {
                if !judged(rows) {
                    unjudged += 1;
                    continue;
                }
                let v = score(rows)?;
                if worst.is_none_or(|(w, _, _)| if higher { v < w } else { v > w }) {
                    worst = Some((v, g.as_str(), rows.len()));
                }
            }
            let (v, g, n) = worst.ok_or_else(|| {
                RegistryError::Invalid(format!(
                    "{}[{}]: no slice has {} rows to judge",
                    s.metric,
                    s.column,
                    holdout::MIN_SLICE_ROWS
                ))
            })?;
            let skipped =
                if unjudged > 0 { format!("; {unjudged} with too few rows not judged") } else { String::new() };
            Ok((v, format!("worst of {} slices: {}={g}, {n} rows{skipped}", groups.len() - unjudged, s.column)))
        }
    }
}

fn evaluate_metric(
    model: &Model,
    table: &holdout::Table,
    target: &str,
    metric: &str,
    attributes: &[&str],
) -> Result<f64> {
    if let Some((name, column)) = kairo_monitor::fairness::parse_metric(metric) {
        return evaluate_fairness(model, table, target, name, column);
    }
    let table = &without_columns(model, table, attributes);
    let t = table.column(target).ok_or_else(|| RegistryError::NoHoldoutTarget(target.to_string()))?;
    let truth: Vec<String> = table.rows.iter().map(|r| r[t].clone()).collect();
    let predictions = holdout::predict(model, table, target)?;
    holdout::score(&predictions, &truth, metric)
}

/// p50 and p99 of single-row inference in this process, over 200 calls after 20 warm-ups.
fn measure_latency(model: &Model, table: Option<&holdout::Table>, policy: &ModelPolicy) -> Result<(f64, f64)> {
    let target = policy.holdout.as_ref().map(|h| h.target.as_str()).unwrap_or("");
    let row = match table {
        Some(t) if !t.rows.is_empty() => holdout::inputs(model, t, target, 0, 1)?,
        _ => zero_row(model),
    };
    let mut times = Vec::with_capacity(200);
    for i in 0..220 {
        let start = Instant::now();
        model.infer(row.clone()).map_err(|e| RegistryError::Model(e.to_string()))?;
        if i >= 20 {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], times[(times.len() * 99) / 100]))
}

/// One row of zeros (empty strings) in the model's input shapes.
fn zero_row(model: &Model) -> std::collections::HashMap<String, kairo_runtime::Tensor> {
    use kairo_runtime::{Data, Tensor};
    model
        .signature()
        .inputs
        .iter()
        .filter_map(|s| {
            let shape: Vec<usize> =
                s.shape.iter().enumerate().map(|(i, d)| if *d < 0 || i == 0 { 1 } else { *d as usize }).collect();
            let n: usize = shape.iter().product();
            let data = match s.dtype {
                DType::F32 => Data::F32(vec![0.0; n]),
                DType::F64 => Data::F64(vec![0.0; n]),
                DType::I64 => Data::I64(vec![0; n]),
                DType::I32 => Data::I32(vec![0; n]),
                DType::Bytes => Data::Bytes(vec![String::new(); n]),
                DType::Bool => Data::Bool(vec![false; n]),
                _ => return None,
            };
            Tensor::new(shape, data).ok().map(|t| (s.name.clone(), t))
        })
        .collect()
}

/// The model versions a pipeline stage was judged against, handed to its command in the
/// environment, so that `kairo predict` in a `predict:` stage scores with exactly the version
/// the run records even if the alias moves meanwhile.
pub mod pins {
    use std::collections::BTreeMap;

    pub const ENV: &str = "KAIRO_MODEL_PINS";

    /// `{reference: version}` as JSON. With `by_name` (a reproduction, which pins the recorded
    /// `NAME:VERSION` while the command names an alias), also `{NAME: version}` for a name only
    /// one of the references uses.
    pub fn encode<'a>(models: impl IntoIterator<Item = (&'a str, &'a str, i64)>, by_name: bool) -> String {
        let models: Vec<_> = models.into_iter().collect();
        let mut pins: BTreeMap<String, i64> = models.iter().map(|(r, _, v)| (r.to_string(), *v)).collect();
        for (_, name, version) in models.iter().filter(|_| by_name) {
            if models.iter().filter(|(_, n, _)| n == name).count() == 1 {
                pins.entry(format!("name:{name}")).or_insert(*version);
            }
        }
        serde_json::to_string(&pins).unwrap_or_default()
    }

    /// The version pinned for `reference` (of model `name`) by the stage running this process.
    pub fn pinned(reference: &str, name: &str) -> Option<i64> {
        let text = std::env::var(ENV).ok()?;
        let pins: BTreeMap<String, i64> = serde_json::from_str(&text).ok()?;
        pins.get(reference).or_else(|| pins.get(&format!("name:{name}"))).copied()
    }
}

#[cfg(test)]
mod pin_tests {
    #[test]
    fn names_are_pinned_only_for_a_reproduction() {
        let models = [("churn@champion", "churn", 3), ("fraud:2", "fraud", 2)];
        let plain: serde_json::Value = serde_json::from_str(&super::pins::encode(models, false)).unwrap();
        assert_eq!(plain, serde_json::json!({"churn@champion": 3, "fraud:2": 2}));
        let two = [("churn@champion", "churn", 3), ("churn@challenger", "churn", 4)];
        let repro: serde_json::Value = serde_json::from_str(&super::pins::encode(two, true)).unwrap();
        assert_eq!(
            repro,
            serde_json::json!({"churn@champion": 3, "churn@challenger": 4}),
            "an ambiguous name is not pinned"
        );
        let one: serde_json::Value =
            serde_json::from_str(&super::pins::encode([("churn:3", "churn", 3)], true)).unwrap();
        assert_eq!(one, serde_json::json!({"churn:3": 3, "name:churn": 3}));
    }
}
