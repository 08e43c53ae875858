//! Alert rules over monitoring windows. Each window becomes a set of named values; a rule
//! `METRIC OP NUMBER` fires when it holds in each of its last `for` windows.
//!
//! Values of a window: `rows`; `drift_share`, `drifted_features`, `dataset_drift` (0/1);
//! `null_share` (the largest of any feature) and `null_share.COLUMN`; `drift.COLUMN` (0/1)
//! and `score.COLUMN`; `prediction_drift` (0/1: any model output drifted); once labels have
//! arrived, `labelled` and the quality metrics (`accuracy`, `precision`, `recall`, `f1`,
//! `auc`, `log_loss`, `rmse`, `mae`, `r2`). A rule whose value a window lacks does not fire.

use std::collections::BTreeMap;

use kairo_core::condition::Condition;
use serde::Serialize;

use crate::MonitorError;

use crate::drift::DriftReport;

/// One window's measured values.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Window {
    pub start_ms: i64,
    pub end_ms: i64,
    pub values: BTreeMap<String, f64>,
}

/// The values of a window from its drift report and quality metrics. `outputs` names the
/// report's columns that are model outputs (the rest are features).
pub fn values(
    report: &DriftReport,
    rows: u64,
    outputs: &[&str],
    quality: &BTreeMap<&'static str, f64>,
    labelled: u64,
) -> BTreeMap<String, f64> {
    let mut v = BTreeMap::new();
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    v.insert("rows".into(), rows as f64);
    v.insert("drift_share".into(), report.share);
    v.insert("drifted_features".into(), report.drifted as f64);
    v.insert("dataset_drift".into(), flag(report.dataset_drift));
    let mut max_null: Option<f64> = None;
    let mut prediction_drift: Option<bool> = None;
    for c in &report.columns {
        let is_output = outputs.contains(&c.name.as_str());
        if c.current_rows > 0 {
            v.insert(format!("null_share.{}", c.name), c.current_null_share);
            if !is_output {
                max_null = Some(max_null.map_or(c.current_null_share, |m: f64| m.max(c.current_null_share)));
            }
        }
        if let Some(d) = c.drift {
            v.insert(format!("drift.{}", c.name), flag(d));
            if is_output {
                prediction_drift = Some(prediction_drift.unwrap_or(false) || d);
            }
        }
        if let Some(s) = c.score {
            v.insert(format!("score.{}", c.name), s);
        }
    }
    if let Some(m) = max_null {
        v.insert("null_share".into(), m);
    }
    if let Some(d) = prediction_drift {
        v.insert("prediction_drift".into(), flag(d));
    }
    if labelled > 0 {
        v.insert("labelled".into(), labelled as f64);
        for (k, x) in quality {
            v.insert(k.to_string(), *x);
        }
    }
    v
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub condition: Condition,
    pub for_windows: usize,
    pub action: Option<String>,
}

impl Rule {
    pub fn new(name: Option<&str>, when: &str, for_windows: u32, action: Option<&str>) -> Result<Rule, MonitorError> {
        let condition = Condition::parse(when).map_err(MonitorError::Condition)?;
        Ok(Rule {
            name: name.map(str::to_string).unwrap_or_else(|| condition.to_string()),
            condition,
            for_windows: for_windows.max(1) as usize,
            action: action.map(str::to_string),
        })
    }
}

/// A rule that fired, with its evidence: the value in each window that made it fire.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub rule: String,
    pub when: String,
    pub action: Option<String>,
    pub metric: String,
    /// `(window start, window end, value)`, oldest first.
    pub evidence: Vec<(i64, i64, f64)>,
}

/// The rules that fire on the latest windows (`windows` oldest first).
pub fn evaluate(rules: &[Rule], windows: &[Window]) -> Vec<Alert> {
    let mut fired = Vec::new();
    for rule in rules {
        if windows.len() < rule.for_windows {
            continue;
        }
        let last = &windows[windows.len() - rule.for_windows..];
        let evidence: Option<Vec<(i64, i64, f64)>> = last
            .iter()
            .map(|w| {
                w.values
                    .get(&rule.condition.metric)
                    .filter(|x| rule.condition.holds(**x))
                    .map(|x| (w.start_ms, w.end_ms, *x))
            })
            .collect();
        if let Some(evidence) = evidence {
            fired.push(Alert {
                rule: rule.name.clone(),
                when: rule.condition.to_string(),
                action: rule.action.clone(),
                metric: rule.condition.metric.clone(),
                evidence,
            });
        }
    }
    fired
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(i: i64, share: f64) -> Window {
        Window { start_ms: i * 10, end_ms: i * 10 + 10, values: [("drift_share".to_string(), share)].into() }
    }

    #[test]
    fn consecutive_windows() {
        let rule = Rule::new(None, "drift_share > 0.3", 2, Some("retrain")).unwrap();
        assert!(evaluate(std::slice::from_ref(&rule), &[w(0, 0.5), w(1, 0.1), w(2, 0.5)]).is_empty());
        let a = evaluate(std::slice::from_ref(&rule), &[w(0, 0.1), w(1, 0.4), w(2, 0.5)]);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].evidence, vec![(10, 20, 0.4), (20, 30, 0.5)]);
        assert_eq!(a[0].action.as_deref(), Some("retrain"));
        assert!(evaluate(&[rule], &[w(0, 0.9)]).is_empty(), "needs two windows");
    }

    #[test]
    fn missing_values_do_not_fire() {
        let rule = Rule::new(Some("bad auc"), "auc < 0.8", 1, None).unwrap();
        assert!(evaluate(&[rule], &[w(0, 0.9)]).is_empty());
    }
}
