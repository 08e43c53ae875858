//! Group fairness of a binary classifier's decisions against a sensitive attribute, as
//! fairlearn defines its metrics (the positive label is 1; checked against fairlearn on
//! `fixtures/fairness/golden.json`):
//! - selection rate of a group: the share of its rows predicted positive;
//! - demographic parity difference: the largest selection rate minus the smallest;
//! - disparate impact ratio (fairlearn's demographic parity ratio): the smallest over the
//!   largest;
//! - equal opportunity difference: the largest true-positive rate minus the smallest;
//! - equalized odds difference: the larger of that and the false-positive rates' difference.
//!
//! A group whose rows hold no positive (or no negative) label has no true-positive (or
//! false-positive) rate: it is reported without one and left out of those differences.

use std::collections::BTreeMap;

use serde::Serialize;

/// One group's counts and rates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    pub group: String,
    pub rows: u64,
    pub selection_rate: f64,
    pub true_positive_rate: Option<f64>,
    pub false_positive_rate: Option<f64>,
}

/// The metrics over the groups of one sensitive attribute.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fairness {
    pub groups: Vec<Group>,
    pub demographic_parity_difference: f64,
    pub disparate_impact_ratio: f64,
    pub equal_opportunity_difference: Option<f64>,
    pub equalized_odds_difference: Option<f64>,
}

impl Fairness {
    /// A metric by the name gates and alert rules use.
    pub fn value(&self, metric: &str) -> Option<f64> {
        match metric {
            "demographic_parity_difference" => Some(self.demographic_parity_difference),
            "disparate_impact_ratio" | "demographic_parity_ratio" => Some(self.disparate_impact_ratio),
            "equal_opportunity_difference" => self.equal_opportunity_difference,
            "equalized_odds_difference" => self.equalized_odds_difference,
            _ => None,
        }
    }
}

/// The metric names [`Fairness::value`] knows.
pub const METRICS: &[&str] = &[
    "demographic_parity_difference",
    "disparate_impact_ratio",
    "equal_opportunity_difference",
    "equalized_odds_difference",
];

/// `METRIC(COLUMN)` with METRIC one of [`METRICS`]: how gates and alert rules name a fairness
/// value (`demographic_parity_difference(gender)`).
pub fn parse_metric(text: &str) -> Option<(&str, &str)> {
    let (name, rest) = text.split_once('(')?;
    let column = rest.strip_suffix(')')?;
    (METRICS.contains(&name) && !column.is_empty()).then_some((name, column))
}

fn spread(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// Fairness of `predicted` against `actual` across `groups` (one per row). Refused: rows of
/// different lengths, no rows, or a single group (nothing to compare).
pub fn fairness(actual: &[bool], predicted: &[bool], groups: &[&str]) -> Result<Fairness, String> {
    if actual.len() != predicted.len() || actual.len() != groups.len() {
        return Err(format!(
            "labels, predictions and groups differ in length ({}, {}, {})",
            actual.len(),
            predicted.len(),
            groups.len()
        ));
    }
    // group → (rows, predicted positive, tp, positives, fp, negatives)
    let mut counts: BTreeMap<&str, [u64; 6]> = BTreeMap::new();
    for ((a, p), g) in actual.iter().zip(predicted).zip(groups) {
        let c = counts.entry(g).or_default();
        c[0] += 1;
        c[1] += u64::from(*p);
        if *a {
            c[3] += 1;
            c[2] += u64::from(*p);
        } else {
            c[5] += 1;
            c[4] += u64::from(*p);
        }
    }
    if counts.len() < 2 {
        return Err(format!("{} group(s): fairness compares at least two", counts.len()));
    }
    let rate = |n: u64, d: u64| (d > 0).then(|| n as f64 / d as f64);
    let groups: Vec<Group> = counts
        .iter()
        .map(|(g, c)| Group {
            group: g.to_string(),
            rows: c[0],
            selection_rate: c[1] as f64 / c[0] as f64,
            true_positive_rate: rate(c[2], c[3]),
            false_positive_rate: rate(c[4], c[5]),
        })
        .collect();
    let (lo, hi) = spread(groups.iter().map(|g| g.selection_rate)).unwrap_or((0.0, 0.0));
    let tpr = spread(groups.iter().filter_map(|g| g.true_positive_rate)).map(|(l, h)| h - l);
    let fpr = spread(groups.iter().filter_map(|g| g.false_positive_rate)).map(|(l, h)| h - l);
    Ok(Fairness {
        demographic_parity_difference: hi - lo,
        disparate_impact_ratio: if hi > 0.0 { lo / hi } else { 1.0 },
        equal_opportunity_difference: tpr,
        equalized_odds_difference: match (tpr, fpr) {
            (Some(t), Some(f)) => Some(t.max(f)),
            (t, f) => t.or(f),
        },
        groups,
    })
}
