//! Monitors over a deployment's prediction log: windows of the log sketched against the
//! serving version's reference profile (each segment sketched once, then cached), drift per
//! window, realised quality once labels arrive (joined by request id and row), alert rules,
//! alert events and webhooks.
//!
//! Windows close at segment boundaries: a time window holds the segments that began in it;
//! a row window the newest segments that together hold at least N rows of the version. A
//! segment holds at most `--log-max-rows` rows or `--log-max-age` of traffic.

use kairo_core::EventKind;
use std::collections::BTreeMap;
use std::time::Duration;

use kairo_core::config::{parse_duration_ms, MonitorSpec};
use kairo_core::time;
use kairo_data::Project;
use kairo_monitor::alerts::{self, Alert, Rule, Window};
use kairo_monitor::drift::DriftReport;
use kairo_monitor::performance;
use kairo_monitor::profile::{Kind, Profile, Role, Source};
use kairo_monitor::sketch::{self, Sketch, Sketcher};
use kairo_registry::ModelRef;
use kairo_store::serving::Segment;
use kairo_store::{LocalObjects, Metadata};
use serde_json::{json, Value};

/// How windows are cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Windowing {
    /// Fixed windows of this many milliseconds, aligned to the epoch.
    Time(i64),
    /// Windows of at least this many rows, newest first.
    Rows(u64),
}

impl Windowing {
    pub fn of(spec: &MonitorSpec) -> Result<Windowing, String> {
        Ok(match (spec.rows, &spec.window) {
            (Some(n), _) => Windowing::Rows(n),
            (None, Some(w)) => Windowing::Time(parse_duration_ms(w)?),
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
pub async fn serving_version(md: &Metadata, name: &str) -> Result<i64, String> {
    if let Some(d) = md.deployment(name).await.map_err(|e| e.to_string())? {
        return Ok(d.stable_version);
    }
    for r in [ModelRef::Alias(name.into(), "champion".into()), ModelRef::Name(name.into())] {
        if let Ok(v) = r.resolve(md).await {
            return Ok(v);
        }
    }
    Err(format!("no model or deployment named '{name}'"))
}

/// The reference profile stored with a version.
pub async fn reference_profile(md: &Metadata, name: &str, version: i64) -> Result<Profile, String> {
    let artifact = md
        .version_artifact(name, version)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("model '{name}' version {version} has no ONNX artifact"))?;
    let p = artifact.profile.ok_or_else(|| {
        format!(
            "model '{name}' version {version} has no reference profile: register it with --profile-data TRAIN.csv \
             (or from a pipeline run that read a CSV)"
        )
    })?;
    serde_json::from_value(p).map_err(|_| {
        format!("model '{name}' version {version} has a reference profile from an older Kairo: register it again")
    })
}

/// A value of a logged row where `source` says it is.
fn pick<'a>(row: &'a Value, source: &Source) -> Option<&'a Value> {
    let v = row.get(&source.side)?.get(&source.tensor)?;
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
fn sketch_rows(profile: &Profile, rows: &[Value], version: i64) -> Sketch {
    let mut k = Sketcher::new(profile);
    for row in rows.iter().filter(|r| r["version"].as_i64() == Some(version)) {
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
    fn rows(&self, s: &Segment) -> Result<Vec<Value>, String> {
        let bytes = self.objects.read(&s.object).map_err(|e| format!("prediction-log segment {}: {e}", s.object))?;
        crate::predlog::read_segment(&bytes)
    }

    /// A segment's sketch: from the cache, else computed from its rows and cached.
    async fn sketch(&self, s: &Segment) -> Result<Sketch, String> {
        let cached = self.md.segment_sketch(&s.object, self.name, self.version).await.map_err(|e| e.to_string())?;
        if let Some(text) = cached {
            if let Ok(sk) = serde_json::from_str::<Sketch>(&text) {
                if sk.columns.len() == self.profile.columns.len() {
                    return Ok(sk);
                }
            }
        }
        let rows = self.rows(s)?;
        let sk = sketch_rows(self.profile, &rows, self.version);
        let text = serde_json::to_string(&sk).map_err(|e| e.to_string())?;
        self.md
            .put_segment_sketch(&s.object, self.name, self.version, sk.rows as i64, &text)
            .await
            .map_err(|e| e.to_string())?;
        Ok(sk)
    }

    /// Realised quality over the labelled rows of `version` in these segments.
    async fn quality(&self, segments: &[Segment]) -> Result<(BTreeMap<&'static str, f64>, u64), String> {
        let mut rows = Vec::new();
        for s in segments {
            rows.extend(self.rows(s)?.into_iter().filter(|r| r["version"].as_i64() == Some(self.version)));
        }
        let mut ids: Vec<String> = rows.iter().filter_map(|r| r["request_id"].as_str().map(str::to_string)).collect();
        ids.sort();
        ids.dedup();
        let labels = self.md.feedback_for(&ids).await.map_err(|e| e.to_string())?;
        if labels.is_empty() {
            return Ok((BTreeMap::new(), 0));
        }
        let prediction = self.profile.column("prediction");
        let score = self.profile.column("prediction.score");
        let Some(prediction) = prediction.filter(|c| c.source.is_some()) else {
            return Ok((BTreeMap::new(), 0));
        };
        let source = prediction.source.as_ref().expect("filtered");
        let text = |v: &Value| match v {
            Value::String(s) => performance::normalise_label(s),
            other => performance::normalise_label(&other.to_string()),
        };
        let (mut truth, mut predicted, mut scores, mut y, mut yhat) = (vec![], vec![], vec![], vec![], vec![]);
        for r in &rows {
            let key = (r["request_id"].as_str().unwrap_or("").to_string(), r["row"].as_i64().unwrap_or(0));
            let Some(label) = labels.get(&key) else { continue };
            let Some(p) = pick(r, source) else { continue };
            match prediction.kind {
                Kind::Categorical => {
                    truth.push(text(label));
                    predicted.push(text(p));
                    if let Some(s) = score.and_then(|c| c.source.as_ref()).and_then(|s| pick(r, s)) {
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
        Ok(match prediction.kind {
            Kind::Categorical => {
                let scores = (scores.len() == truth.len()).then_some(scores.as_slice());
                (performance::classification(&truth, &predicted, scores), truth.len() as u64)
            }
            Kind::Numeric => (performance::regression(&y, &yhat), y.len() as u64),
        })
    }
}

/// The rules of a monitor.
pub fn rules(spec: &MonitorSpec) -> Result<Vec<Rule>, String> {
    spec.alerts.iter().map(|a| Rule::new(a.name.as_deref(), &a.when, a.for_windows, a.action.as_deref())).collect()
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
) -> Result<Evaluation, String> {
    let rules = rules(spec)?;
    let count = rules.iter().map(|r| r.for_windows).max().unwrap_or(1).max(count).max(1);
    let version = serving_version(md, deployment).await?;
    let profile = reference_profile(md, deployment, version).await?;
    let reader = Reader { md, objects, name: deployment, version, profile: &profile };
    let drift_share = spec.drift_share.unwrap_or(0.5);
    // Each window's segments, oldest window first.
    let mut groups: Vec<(i64, i64, Vec<Segment>, Sketch)> = Vec::new();
    match windowing {
        Windowing::Time(width) => {
            let newest = now_ms.div_euclid(width);
            let from = (newest - count as i64 + 1) * width;
            let segments = md.segments(deployment, from, now_ms).await.map_err(|e| e.to_string())?;
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
            let segments = md.segments(deployment, 0, now_ms).await.map_err(|e| e.to_string())?;
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
    let any_labels = md.feedback_count_since(labels_since).await.map_err(|e| e.to_string())? > 0;
    let outputs: Vec<&str> =
        profile.columns.iter().filter(|c| c.role == Role::Prediction).map(|c| c.name.as_str()).collect();
    let mut windows = Vec::new();
    for (start, end, segments, sketch) in groups {
        let report = sketch::drift(&profile, &sketch, drift_share);
        let (quality, labelled) =
            if any_labels && sketch.rows > 0 { reader.quality(&segments).await? } else { (BTreeMap::new(), 0) };
        let values = alerts::values(&report, sketch.rows, &outputs, &quality, labelled);
        windows.push(WindowResult {
            window: Window { start_ms: start, end_ms: end, values },
            report,
            sketch,
            labelled,
        });
    }
    let ws: Vec<Window> = windows.iter().filter(|w| w.sketch.rows > 0).map(|w| w.window.clone()).collect();
    let alerts = alerts::evaluate(&rules, &ws);
    Ok(Evaluation { deployment: deployment.to_string(), version, profile, windows, alerts })
}

/// The event payload of an alert.
pub fn alert_payload(monitor: &str, target: &str, version: Option<i64>, a: &Alert) -> Value {
    json!({
        "monitor": monitor, "target": target, "version": version,
        "rule": a.rule, "when": a.when, "metric": a.metric, "action": a.action,
        "evidence": a.evidence.iter().map(|(s, e, v)| json!({
            "window_start": time::millis_to_string(*s), "window_end": time::millis_to_string(*e),
            "start_ms": s, "end_ms": e, "value": v,
        })).collect::<Vec<_>>(),
    })
}

/// What happened to an alert.
pub struct Raised {
    pub payload: Value,
    /// False when the same rule already fired for the same newest window.
    pub new: bool,
    /// `delivered`, `failed: ...`, or empty without a webhook or for a repeat.
    pub webhook: String,
}

/// Record new alerts as `monitor.alert` events (a rule fires once per newest window) and
/// POST each to the webhook, retried with exponential backoff.
pub async fn raise(
    md: &Metadata,
    monitor: &str,
    spec: &MonitorSpec,
    payloads: Vec<Value>,
    actor: &str,
) -> Result<Vec<Raised>, String> {
    let subject = format!("monitor:{monitor}");
    let earlier = md.events(Some(&subject), 1000).await.map_err(|e| e.to_string())?;
    let newest_window = |p: &Value| p["evidence"].as_array().and_then(|e| e.last()).map(|w| w["start_ms"].clone());
    let mut out = Vec::new();
    for payload in payloads {
        let repeat = earlier.iter().any(|e| {
            e.kind == EventKind::MonitorAlert
                && e.payload["rule"] == payload["rule"]
                && newest_window(&e.payload) == newest_window(&payload)
        });
        if repeat {
            out.push(Raised { payload, new: false, webhook: String::new() });
            continue;
        }
        let id =
            md.record_event(actor, EventKind::MonitorAlert, &subject, &payload).await.map_err(|e| e.to_string())?;
        let mut webhook = String::new();
        if let Some(hook) = &spec.webhook {
            let body = json!({"event": EventKind::MonitorAlert.as_str(), "event_id": id, "alert": payload});
            webhook = match post_with_retry(&hook.url, &body, hook.retries).await {
                Ok(attempts) => format!("delivered (attempt {attempts})"),
                Err(e) => {
                    let failed = json!({"event_id": id, "url": hook.url, "error": e});
                    md.record_event(actor, EventKind::WebhookFailed, &subject, &failed)
                        .await
                        .map_err(|e| e.to_string())?;
                    format!("failed: {e}")
                }
            };
        }
        out.push(Raised { payload, new: true, webhook });
    }
    Ok(out)
}

/// POST JSON; a connection error, 5xx or 429 is retried after 0.5 s, 1 s, 2 s, ...
/// Returns the attempt that succeeded.
pub async fn post_with_retry(url: &str, body: &Value, retries: u32) -> Result<u32, String> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().map_err(|e| e.to_string())?;
    let mut wait = Duration::from_millis(500);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let outcome: Result<(), String> = match client.post(url).json(body).send().await {
            Ok(r) if r.status().is_success() => return Ok(attempt),
            Ok(r) if r.status().is_server_error() || r.status().as_u16() == 429 => Err(format!("HTTP {}", r.status())),
            Ok(r) => return Err(format!("HTTP {} from {url} (not retried)", r.status())),
            Err(e) => Err(error_chain(&e)),
        };
        if let (Err(e), true) = (&outcome, attempt > retries) {
            return Err(format!("{e} after {attempt} attempts to {url}"));
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(60));
    }
}

/// An error with its causes ("error sending request: ... : Connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

/// Evaluate one deployment monitor now and raise its alerts (`kairo server`'s scheduler).
pub async fn evaluate_and_raise(
    project: &Project,
    md: &Metadata,
    monitor: &str,
    spec: &MonitorSpec,
) -> Result<(Evaluation, Vec<Raised>), String> {
    let deployment = spec.deployment.as_deref().ok_or("only deployment monitors run on a schedule")?;
    let objects = project.objects().map_err(|e| e.to_string())?;
    let windowing = Windowing::of(spec)?;
    let e = evaluate(md, &objects, deployment, spec, windowing, 1, time::now_millis()).await?;
    let payloads = e.alerts.iter().map(|a| alert_payload(monitor, deployment, Some(e.version), a)).collect();
    let raised = raise(md, monitor, spec, payloads, "kairo-monitor").await?;
    Ok((e, raised))
}
