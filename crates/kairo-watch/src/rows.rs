//! What a window's rows say beyond its sketch: estimated performance before labels arrive
//! (CBPE, [`kairo_monitor::cbpe`]), drift and quality per slice of the monitor's `segments`,
//! and fairness across a column named by an alert rule (`demographic_parity_difference(gender)`).
//! Each needs the rows themselves, so a window's segments are read only when one is asked for.

use std::collections::BTreeMap;

use kairo_core::config::MonitorSpec;
use kairo_monitor::cbpe::{self, Estimate};
use kairo_monitor::fairness;
use kairo_monitor::profile::{number_text, ColumnProfile, Kind, Profile};
use kairo_monitor::sketch;
use serde::Serialize;
use serde_json::Value;

use crate::segment::LogRow;
use crate::{as_value, label_text, pick, score, sketch_rows, Result, WatchError};

/// Rows a slice needs to be judged unless the monitor says otherwise.
pub const MIN_SEGMENT_ROWS: u64 = 100;

/// What the rows of a window are read for.
pub struct Wanted<'a> {
    pub estimate: bool,
    /// Slice columns, each with its profile column.
    pub segments: Vec<&'a ColumnProfile>,
    pub min_rows: u64,
    /// `(metric, column)` of each fairness value a rule names.
    pub fairness: Vec<(String, &'a ColumnProfile)>,
}

impl<'a> Wanted<'a> {
    /// What the monitor's estimator, segments and rules ask of the rows; a segment or fairness
    /// column that is not a logged input of the version is the monitor's error.
    pub fn of(spec: &MonitorSpec, profile: &'a Profile, rules: &[kairo_monitor::alerts::Rule]) -> Result<Wanted<'a>> {
        let column = |name: &str, what: &str| {
            profile
                .column(name)
                .filter(|c| c.source.is_some() && c.role == kairo_monitor::profile::Role::Feature)
                .ok_or_else(|| {
                    let names: Vec<&str> = profile
                        .columns
                        .iter()
                        .filter(|c| c.role == kairo_monitor::profile::Role::Feature && c.source.is_some())
                        .map(|c| c.name.as_str())
                        .collect();
                    WatchError::Spec(format!(
                        "{what}: `{name}` is not a logged input of the version (its inputs: {})",
                        names.join(", ")
                    ))
                })
        };
        let segments = spec.segments.iter().map(|s| column(s, "segments")).collect::<Result<Vec<_>>>()?;
        let mut fairness = Vec::new();
        for r in rules {
            if let Some((metric, col)) = fairness::parse_metric(&r.condition.metric) {
                fairness.push((r.condition.metric.clone(), column(col, metric)?));
            }
        }
        let estimate = profile.estimator.is_some()
            && profile.column("prediction.score").is_some_and(|c| c.source.is_some())
            && profile.column("prediction").is_some_and(|c| c.source.is_some());
        Ok(Wanted { estimate, segments, min_rows: spec.min_segment_rows.unwrap_or(MIN_SEGMENT_ROWS).max(1), fairness })
    }

    pub fn any(&self) -> bool {
        self.estimate || !self.segments.is_empty() || !self.fairness.is_empty()
    }
}

/// One slice of a window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Slice {
    pub column: String,
    pub value: String,
    pub rows: u64,
    /// Whether it had enough rows to be judged; an unjudged slice has no drift or quality.
    pub judged: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift_share: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dataset_drift: Option<bool>,
    pub labelled: u64,
    pub quality: BTreeMap<&'static str, f64>,
    /// 95% interval of the slice's quality: accuracy (Wilson) or MAE (normal approximation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Interval {
    pub metric: &'static str,
    pub low: f64,
    pub high: f64,
}

/// What the rows of a window gave.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Found {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub estimate: Option<Estimate>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub slices: Vec<Slice>,
    /// Fairness values by the rule's metric text.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub fairness: BTreeMap<String, f64>,
}

impl Found {
    /// The alert values: `estimated_accuracy` and `estimated_auc` (until every row of the
    /// window is labelled: then the realised values replace them), `rows[C=V]`,
    /// `drift_share[C=V]`, `dataset_drift[C=V]` and quality `METRIC[C=V]` of judged slices,
    /// and the fairness values.
    pub fn values(&self, window_rows: u64, labelled: u64, into: &mut BTreeMap<String, f64>) {
        if let Some(e) = &self.estimate {
            if labelled < window_rows {
                into.insert("estimated_accuracy".into(), e.accuracy);
                if let Some(auc) = e.auc {
                    into.insert("estimated_auc".into(), auc);
                }
            }
        }
        for s in &self.slices {
            let key = |m: &str| format!("{m}[{}={}]", s.column, s.value);
            into.insert(key("rows"), s.rows as f64);
            if let (Some(share), Some(drift)) = (s.drift_share, s.dataset_drift) {
                into.insert(key("drift_share"), share);
                into.insert(key("dataset_drift"), if drift { 1.0 } else { 0.0 });
            }
            for (m, v) in &s.quality {
                into.insert(key(m), *v);
            }
        }
        for (k, v) in &self.fairness {
            into.insert(k.clone(), *v);
        }
    }
}

/// The text a slice column gives a row: its category, or for a number the profile's bin
/// (`(10, 20]`), so slices of a numeric column are the reference's deciles.
fn slice_of(c: &ColumnProfile, row: &LogRow) -> String {
    let source = c.source.as_ref().expect("Wanted keeps logged columns");
    match (c.kind, as_value(pick(row, source))) {
        (_, sketch::Value::Missing) => "(missing)".into(),
        (Kind::Numeric, sketch::Value::Number(x)) if !c.edges.is_empty() => {
            let b = c.bin(x);
            let low = if b == 0 { "-inf".to_string() } else { number_text(c.edges[b - 1]) };
            let high = c.edges.get(b).map_or("inf".to_string(), |e| number_text(*e));
            format!("({low}, {high}]")
        }
        (_, sketch::Value::Number(x)) => number_text(x),
        (_, sketch::Value::Text(t)) => t.to_string(),
    }
}

/// Wilson's 95% interval of a proportion.
fn wilson(successes: f64, n: f64) -> (f64, f64) {
    let z = 1.959_963_984_540_054_f64;
    let p = successes / n;
    let centre = (p + z * z / (2.0 * n)) / (1.0 + z * z / n);
    let half = z / (1.0 + z * z / n) * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt();
    (centre - half, centre + half)
}

/// Read what `wanted` asks of a window's rows (of the version), with their labels by
/// (request id, row).
pub fn find(
    wanted: &Wanted<'_>,
    profile: &Profile,
    version: i64,
    rows: &[LogRow],
    labels: &std::collections::HashMap<(String, i64), Value>,
    drift_share: f64,
) -> Found {
    let rows: Vec<&LogRow> = rows.iter().filter(|r| r.version == version).collect();
    let mut found = Found::default();
    let prediction = profile.column("prediction").and_then(|c| c.source.as_ref());
    let positive = profile
        .estimator
        .as_ref()
        .map(|e| e.positive.clone())
        .or_else(|| profile.column("prediction").and_then(|c| c.categories.iter().max().cloned()));
    let predicted_positive = |r: &LogRow| -> Option<bool> {
        let p = pick(r, prediction?)?;
        Some(Some(label_text(p)) == positive)
    };
    if let (true, Some(e)) = (wanted.estimate, &profile.estimator) {
        let score = profile.column("prediction.score").and_then(|c| c.source.as_ref());
        let (mut p, mut predicted) = (Vec::new(), Vec::new());
        for r in &rows {
            let s = score.and_then(|s| pick(r, s)).and_then(Value::as_f64);
            if let (Some(s), Some(d)) = (s, predicted_positive(r)) {
                p.push(s);
                predicted.push(d);
            }
        }
        found.estimate = cbpe::estimate(e, &p, &predicted);
    }
    let label_of = |r: &LogRow| labels.get(&(r.request_id.clone(), i64::from(r.row)));
    for c in &wanted.segments {
        // Slices borrow the window's rows: nothing is copied per slice.
        let mut groups: BTreeMap<String, Vec<&LogRow>> = BTreeMap::new();
        for r in &rows {
            groups.entry(slice_of(c, r)).or_default().push(r);
        }
        for (value, members) in groups {
            let n = members.len() as u64;
            let mut slice = Slice {
                column: c.name.clone(),
                value,
                rows: n,
                judged: n >= wanted.min_rows,
                drift_share: None,
                dataset_drift: None,
                labelled: 0,
                quality: BTreeMap::new(),
                interval: None,
            };
            if slice.judged {
                let report =
                    sketch::drift(profile, &sketch_rows(profile, members.iter().copied(), version), drift_share);
                slice.drift_share = Some(report.share);
                slice.dataset_drift = Some(report.dataset_drift);
                let pairs: Vec<(&LogRow, &Value)> =
                    members.iter().filter_map(|r| label_of(r).map(|l| (*r, l))).collect();
                if !pairs.is_empty() {
                    let scored = score(profile, &pairs);
                    slice.labelled = scored.rows;
                    let m = scored.rows as f64;
                    if let Some(acc) = scored.metrics.get("accuracy") {
                        let (low, high) = wilson(acc * m, m);
                        slice.interval = Some(Interval { metric: "accuracy", low, high });
                    } else if let (Some(mae), Some(rmse)) = (scored.metrics.get("mae"), scored.metrics.get("rmse")) {
                        // sd(|e|)² = mean(e²) − mean(|e|)².
                        let sd = (rmse * rmse - mae * mae).max(0.0).sqrt();
                        let half = 1.959_963_984_540_054 * sd / m.sqrt();
                        slice.interval = Some(Interval { metric: "mae", low: mae - half, high: mae + half });
                    }
                    slice.quality = scored.metrics;
                }
            }
            found.slices.push(slice);
        }
    }
    for (key, c) in &wanted.fairness {
        let (metric, _) = fairness::parse_metric(key).expect("kept by Wanted::of");
        let needs_labels = metric.starts_with("equal");
        let (mut actual, mut predicted, mut groups) = (Vec::new(), Vec::new(), Vec::new());
        for r in &rows {
            let Some(d) = predicted_positive(r) else { continue };
            let a = match (needs_labels, label_of(r)) {
                (false, _) => d,
                (true, Some(l)) => Some(label_text(l)) == positive,
                (true, None) => continue,
            };
            actual.push(a);
            predicted.push(d);
            groups.push(slice_of(c, r));
        }
        let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
        if let Ok(f) = fairness::fairness(&actual, &predicted, &groups) {
            if let Some(v) = f.value(metric) {
                found.fairness.insert(key.clone(), v);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_matches_a_hand_computation() {
        // 8 of 10: the textbook interval (0.490, 0.943).
        let (lo, hi) = wilson(8.0, 10.0);
        assert!((lo - 0.4902).abs() < 1e-4 && (hi - 0.9433).abs() < 1e-4, "{lo} {hi}");
    }
}
