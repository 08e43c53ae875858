//! Watching a deployment. The read half of a prediction's journey, in order: a prediction-log
//! segment ([`segment::read`]) → typed rows ([`segment::LogRow`]) → a sketch against the
//! serving version's reference profile (each segment sketched once, then cached) → drift per
//! window, and realised quality once labels arrive (joined by request id and row) → alert
//! rules → alert events and webhooks ([`raise`]) → on a schedule ([`schedule`]). The CLI
//! (`kairo monitor check`), `kairo server`'s scheduler and the file monitor all come here.
//!
//! Windows close at segment boundaries: a time window holds the segments that began in it;
//! a row window the newest segments that together hold at least N rows of the version. A
//! segment holds at most `--log-max-rows` rows or `--log-max-age` of traffic.

pub mod document;
pub mod history;
pub mod labelled;
pub mod raise;
pub mod retention;
pub mod rows;
pub mod schedule;
pub mod segment;

use std::collections::BTreeMap;

use kairo_core::config::{parse_duration_ms, MonitorSpec};
use kairo_core::serving::ReferenceProfile;
use kairo_core::time;
use kairo_monitor::alerts::{self, Alert, Rule, Window};
use kairo_monitor::drift::DriftReport;
use kairo_monitor::performance;
use kairo_monitor::profile::{Kind, Profile, Role, Source};
use kairo_monitor::sketch::{self, Sketch, Sketcher};
use kairo_registry::ModelRef;
use kairo_store::serving::Segment;
use kairo_store::{LocalObjects, Metadata};
use serde_json::Value;

pub use raise::{alert_payload, raise, Raised};
use segment::LogRow;

/// Why a monitor could not be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(transparent)]
    Store(#[from] kairo_store::StoreError),
    #[error(transparent)]
    Data(#[from] kairo_data::DataError),
    /// The monitor's own definition is wrong (a window, a duration): a usage error.
    #[error("{0}")]
    Spec(String),
    /// An alert rule of the monitor does not parse: a usage error.
    #[error(transparent)]
    Rule(kairo_monitor::MonitorError),
    #[error("no model or deployment named '{0}'")]
    NoModel(String),
    #[error("model '{name}' version {version} has no ONNX artifact")]
    NoArtifact { name: String, version: i64 },
    #[error(
        "model '{name}' version {version} has no reference profile: register it with --profile-data TRAIN.csv \
         (or from a pipeline run that read a CSV)"
    )]
    NoProfile { name: String, version: i64 },
    #[error("model '{name}' version {version} has a reference profile from an older Kairo: register it again")]
    OldProfile { name: String, version: i64 },
    #[error("prediction-log segment {object}: {error}")]
    Segment { object: String, error: String },
    /// Exported rows could not be written.
    #[error("cannot write the rows: {0}")]
    Write(String),
    /// The webhook answered with a status that is not retried (4xx other than 429).
    #[error("HTTP {status} from {url} (not retried)")]
    WebhookRefused { url: String, status: reqwest::StatusCode },
    /// Every attempt failed; `last` is the last attempt's error.
    #[error("{last} after {attempts} attempts to {url}")]
    WebhookGaveUp { url: String, attempts: u32, last: String },
    #[error("cannot build the webhook client: {0}")]
    WebhookClient(reqwest::Error),
}

impl WatchError {
    /// Whether the monitor's definition (not the data) is at fault.
    pub fn is_spec(&self) -> bool {
        matches!(self, WatchError::Spec(_) | WatchError::Rule(_))
    }
}

pub type Result<T, E = WatchError> = std::result::Result<T, E>;

/// How windows are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Windowing {
    /// Fixed windows of this many milliseconds, aligned to the epoch.
    Time(i64),
    /// Windows of at least this many rows, newest first.
    Rows(u64),
}

impl Windowing {
    pub fn of(spec: &MonitorSpec) -> Result<Windowing> {
        Ok(match (spec.rows, &spec.window) {
            (Some(0), _) => return Err(WatchError::Spec("rows: a window needs at least 1 row".into())),
            (Some(n), _) => Windowing::Rows(n),
            (None, Some(w)) => {
                Windowing::Time(parse_duration_ms(w).map_err(|e| WatchError::Spec(format!("window: {e}")))?)
            }
            (None, None) => Windowing::Time(3_600_000),
        })
    }
}

/// One evaluated window.
pub struct WindowResult {
    pub window: Window,
    pub report: DriftReport,
    pub sketch: Sketch,
    pub labelled: u64,
    /// What the window's rows gave: estimates, slices, fairness.
    pub found: rows::Found,
}

/// What a monitor found.
pub struct Evaluation {
    pub deployment: String,
    pub version: i64,
    pub profile: Profile,
    /// Oldest first; the last is the newest.
    pub windows: Vec<WindowResult>,
    pub alerts: Vec<Alert>,
}

/// The version a deployment name serves: its deployment's stable version, else its
/// `champion`, else its latest version (the same rule `kairo serve` follows).
pub async fn serving_version(md: &Metadata, name: &str) -> Result<i64> {
    if let Some(d) = md.deployment(name).await? {
        return Ok(d.stable_version);
    }
    for r in [ModelRef::Alias(name.into(), "champion".into()), ModelRef::Name(name.into())] {
        if let Ok(v) = r.resolve(md).await {
            return Ok(v);
        }
    }
    Err(WatchError::NoModel(name.to_string()))
}

/// The reference profile stored with a version.
pub async fn reference_profile(md: &Metadata, name: &str, version: i64) -> Result<Profile> {
    let name = name.to_string();
    let Some(artifact) = md.version_artifact(&name, version).await? else {
        return Err(WatchError::NoArtifact { name, version });
    };
    match artifact.profile {
        Some(ReferenceProfile::Current(p)) => Ok(p),
        Some(ReferenceProfile::Outdated) => Err(WatchError::OldProfile { name, version }),
        None => Err(WatchError::NoProfile { name, version }),
    }
}

/// A value of a logged row where `source` says it is.
fn pick<'a>(row: &'a LogRow, source: &Source) -> Option<&'a Value> {
    let v = row.side(&source.side)?.get(&source.tensor)?;
    match (source.index, v) {
        (Some(i), Value::Array(a)) => a.get(i),
        (None, Value::Array(a)) if a.len() == 1 => a.first(),
        (Some(0), v) => Some(v),
        (None, v) => Some(v),
        _ => None,
    }
}

fn as_value(v: Option<&Value>) -> sketch::Value<'_> {
    match v {
        None | Some(Value::Null) => sketch::Value::Missing,
        Some(Value::Number(n)) => n.as_f64().map_or(sketch::Value::Missing, sketch::Value::Number),
        Some(Value::String(s)) => sketch::Value::Text(s),
        Some(Value::Bool(b)) => sketch::Value::Text(if *b { "true" } else { "false" }),
        Some(_) => sketch::Value::Text("<nested>"),
    }
}

/// Sketch the rows of `version` in one segment's rows.
fn sketch_rows<'a>(profile: &Profile, rows: impl IntoIterator<Item = &'a LogRow>, version: i64) -> Sketch {
    let mut k = Sketcher::new(profile);
    for row in rows.into_iter().filter(|r| r.version == version) {
        k.row();
        for (i, c) in profile.columns.iter().enumerate() {
            if let Some(source) = &c.source {
                k.add(i, as_value(pick(row, source)));
            }
        }
    }
    k.sketch
}

struct Reader<'a> {
    md: &'a Metadata,
    objects: &'a LocalObjects,
    name: &'a str,
    version: i64,
    profile: &'a Profile,
}

impl Reader<'_> {
    fn rows(&self, s: &Segment) -> Result<Vec<LogRow>> {
        let failed = |error: String| WatchError::Segment { object: s.object.to_string(), error };
        let bytes = self.objects.read(&s.object).map_err(|e| failed(e.to_string()))?;
        segment::read(&bytes).map_err(|e| failed(e.to_string()))
    }

    /// A segment's sketch: from the cache, else computed from its rows and cached.
    async fn sketch(&self, s: &Segment) -> Result<Sketch> {
        let cached = self.md.segment_sketch(&s.object, self.name, self.version).await?;
        if let Some(text) = cached {
            if let Ok(sk) = serde_json::from_str::<Sketch>(&text) {
                if sk.columns.len() == self.profile.columns.len() {
                    return Ok(sk);
                }
            }
        }
        if s.pruned_ms.is_some() {
            // Its rows are gone (retention) and no sketch was kept for this version: it adds nothing.
            return Ok(Sketch::new(self.profile));
        }
        let rows = self.rows(s)?;
        let sk = sketch_rows(self.profile, &rows, self.version);
        let text = serde_json::to_string(&sk).map_err(|e| WatchError::Segment {
            object: s.object.to_string(),
            error: format!("its sketch cannot be cached: {e}"),
        })?;
        self.md.put_segment_sketch(&s.object, self.name, self.version, sk.rows as i64, &text).await?;
        Ok(sk)
    }

    /// The rows of `version` in these segments (those retention has not pruned).
    fn window_rows(&self, segments: &[Segment]) -> Result<Vec<LogRow>> {
        let mut rows = Vec::new();
        for s in segments.iter().filter(|s| s.pruned_ms.is_none()) {
            rows.extend(self.rows(s)?.into_iter().filter(|r| r.version == self.version));
        }
        Ok(rows)
    }

    /// The labels of rows, by (request id, row).
    async fn labels(&self, rows: &[LogRow]) -> Result<std::collections::HashMap<(String, i64), Value>> {
        let mut ids: Vec<String> = rows.iter().map(|r| r.request_id.clone()).collect();
        ids.sort();
        ids.dedup();
        Ok(self.md.feedback_for(&ids).await?)
    }
}

/// Realised quality over the labelled rows.
fn quality(
    profile: &Profile,
    rows: &[LogRow],
    labels: &std::collections::HashMap<(String, i64), Value>,
) -> (BTreeMap<&'static str, f64>, u64) {
    if labels.is_empty() {
        return (BTreeMap::new(), 0);
    }
    let pairs: Vec<(&LogRow, &Value)> =
        rows.iter().filter_map(|r| labels.get(&(r.request_id.clone(), i64::from(r.row))).map(|l| (r, l))).collect();
    let scored = score(profile, &pairs);
    (scored.metrics, scored.rows)
}

/// A logged label or prediction as the class text quality is scored on.
fn label_text(v: &Value) -> String {
    match v {
        Value::String(s) => performance::normalise_label(s),
        other => performance::normalise_label(&other.to_string()),
    }
}

/// Quality of labelled rows, scored against the version's profile.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scored {
    pub metrics: BTreeMap<&'static str, f64>,
    /// Rows whose prediction and label could both be read.
    pub rows: u64,
    /// For a classifier: the classes (sorted; for two, the second is the positive one) and
    /// the confusion matrix, rows = truth, columns = predicted.
    pub confusion: Option<(Vec<String>, Vec<Vec<u64>>)>,
}

/// Score logged rows against their labels: classification metrics for a categorical
/// prediction, regression metrics for a numeric one (the profile's `prediction` column says
/// which, and where the prediction is in a row).
pub fn score(profile: &Profile, rows: &[(&LogRow, &Value)]) -> Scored {
    let prediction = profile.column("prediction");
    let score_col = profile.column("prediction.score");
    let Some(prediction) = prediction.filter(|c| c.source.is_some()) else {
        return Scored::default();
    };
    let source = prediction.source.as_ref().expect("filtered");
    let text = label_text;
    let (mut truth, mut predicted, mut scores, mut y, mut yhat) = (vec![], vec![], vec![], vec![], vec![]);
    for (r, label) in rows {
        let Some(p) = pick(r, source) else { continue };
        match prediction.kind {
            Kind::Categorical => {
                truth.push(text(label));
                predicted.push(text(p));
                if let Some(s) = score_col.and_then(|c| c.source.as_ref()).and_then(|s| pick(r, s)) {
                    scores.push(s.as_f64().unwrap_or(f64::NAN));
                }
            }
            Kind::Numeric => {
                let truth = label.as_f64().or_else(|| label.as_str().and_then(|s| s.trim().parse().ok()));
                if let (Some(t), Some(p)) = (truth, p.as_f64()) {
                    y.push(t);
                    yhat.push(p);
                }
            }
        }
    }
    match prediction.kind {
        Kind::Categorical => {
            let scores = (scores.len() == truth.len()).then_some(scores.as_slice());
            let metrics = performance::classification(&truth, &predicted, scores);
            let confusion = (!truth.is_empty()).then(|| performance::confusion(&truth, &predicted));
            Scored { metrics, rows: truth.len() as u64, confusion }
        }
        Kind::Numeric => Scored { metrics: performance::regression(&y, &yhat), rows: y.len() as u64, confusion: None },
    }
}

/// The rules of a monitor.
pub fn rules(spec: &MonitorSpec) -> Result<Vec<Rule>> {
    spec.alerts
        .iter()
        .map(|a| Rule::new(a.name.as_deref(), &a.when, a.for_windows, a.action.as_deref()))
        .collect::<Result<_, _>>()
        .map_err(WatchError::Rule)
}

/// Evaluate a deployment monitor: the newest `count` windows (at least as many as its
/// longest `for`) and its rules.
pub async fn evaluate(
    md: &Metadata,
    objects: &LocalObjects,
    deployment: &str,
    spec: &MonitorSpec,
    windowing: Windowing,
    count: usize,
    now_ms: i64,
) -> Result<Evaluation> {
    let rules = rules(spec)?;
    let count = rules.iter().map(|r| r.for_windows).max().unwrap_or(1).max(count).max(1);
    let version = serving_version(md, deployment).await?;
    let profile = reference_profile(md, deployment, version).await?;
    let wanted = rows::Wanted::of(spec, &profile, &rules)?;
    let reader = Reader { md, objects, name: deployment, version, profile: &profile };
    let drift_share = spec.drift_share.unwrap_or(0.5);
    // Each window's segments, oldest window first.
    let mut groups: Vec<(i64, i64, Vec<Segment>, Sketch)> = Vec::new();
    match windowing {
        Windowing::Time(width) => {
            let newest = now_ms.div_euclid(width);
            let from = (newest - count as i64 + 1) * width;
            let segments = md.segments(deployment, from, now_ms).await?;
            for k in (newest - count as i64 + 1)..=newest {
                let (start, end) = (k * width, (k + 1) * width);
                let mut sketch = Sketch::new(&profile);
                let mut members = Vec::new();
                for s in segments.iter().filter(|s| s.start_ms >= start && s.start_ms < end) {
                    sketch.merge(&reader.sketch(s).await?);
                    members.push(s.clone());
                }
                groups.push((start, end, members, sketch));
            }
        }
        Windowing::Rows(n) => {
            let segments = md.segments(deployment, 0, now_ms).await?;
            let mut current: Option<(i64, i64, Vec<Segment>, Sketch)> = None;
            for s in segments.iter().rev() {
                let sk = reader.sketch(s).await?;
                if sk.rows == 0 {
                    continue;
                }
                let g = current.get_or_insert_with(|| (s.start_ms, s.end_ms, Vec::new(), Sketch::new(&profile)));
                g.0 = s.start_ms;
                g.2.insert(0, s.clone());
                g.3.merge(&sk);
                if g.3.rows >= n {
                    groups.insert(0, current.take().expect("set above"));
                    if groups.len() == count {
                        break;
                    }
                }
            }
            // The oldest rows, fewer than a window's worth, are not a window.
        }
    }
    let labels_since = groups.first().map(|g| g.0).unwrap_or(now_ms);
    let any_labels = md.feedback_count_since(labels_since).await? > 0;
    let outputs: Vec<&str> =
        profile.columns.iter().filter(|c| c.role == Role::Prediction).map(|c| c.name.as_str()).collect();
    let mut windows = Vec::new();
    for (start, end, segments, sketch) in groups {
        let report = sketch::drift(&profile, &sketch, drift_share);
        let (mut quality_values, mut labelled, mut found) = (BTreeMap::new(), 0, rows::Found::default());
        if (any_labels || wanted.any()) && sketch.rows > 0 {
            let rows = reader.window_rows(&segments)?;
            let labels = if any_labels { reader.labels(&rows).await? } else { Default::default() };
            (quality_values, labelled) = quality(&profile, &rows, &labels);
            if wanted.any() {
                found = rows::find(&wanted, &profile, version, &rows, &labels, drift_share);
            }
        }
        let mut values = alerts::values(&report, sketch.rows, &outputs, &quality_values, labelled);
        found.values(sketch.rows, labelled, &mut values);
        windows.push(WindowResult {
            window: Window { start_ms: start, end_ms: end, values },
            report,
            sketch,
            labelled,
            found,
        });
    }
    let ws: Vec<Window> = windows.iter().filter(|w| w.sketch.rows > 0).map(|w| w.window.clone()).collect();
    let alerts = alerts::evaluate(&rules, &ws);
    Ok(Evaluation { deployment: deployment.to_string(), version, profile, windows, alerts })
}

/// Evaluate one deployment monitor now and raise its alerts (`kairo server`'s scheduler).
pub async fn evaluate_and_raise(
    project: &kairo_data::Project,
    md: &Metadata,
    monitor: &str,
    spec: &MonitorSpec,
) -> Result<(Evaluation, Vec<Raised>)> {
    let deployment = spec
        .deployment
        .as_deref()
        .ok_or_else(|| WatchError::Spec(format!("monitor {monitor}: only deployment monitors run on a schedule")))?;
    let objects = project.objects()?;
    let windowing = Windowing::of(spec)?;
    let e = evaluate(md, &objects, deployment, spec, windowing, 1, time::now_millis()).await?;
    let payloads = e.alerts.iter().map(|a| alert_payload(monitor, deployment, Some(e.version), a)).collect();
    let raised = raise(md, monitor, spec, payloads, raise::SCHEDULER).await?;
    Ok((e, raised))
}
