//! Mergeable window sketches: production values counted against a reference profile's bins
//! and categories, with null, infinite and wrong-type counts and running moments. Sketches of
//! any set of prediction-log segments merge by addition, so drift over any range is a merge
//! plus an O(bins) score, and many serving replicas can feed one monitor.
//!
//! Scoring a window (`drift`), per column, on the counts alone:
//! - at most 1,000 current values: the chi-square test of homogeneity on the reference's and
//!   the window's bin (or category) counts, drift when p < 0.05; two categories: the
//!   two-proportion Z-test;
//! - more: numeric columns get the PSI over the reference's quantile bins, drift when
//!   PSI ≥ 0.1; categorical columns the Jensen–Shannon distance, drift when ≥ 0.1.
//!
//! PSI's empty bins follow Evidently's rule: a zero share becomes `m / 10⁶` when the smallest
//! non-zero share `m` is at most 10⁻⁴, else 10⁻⁴.

use std::collections::BTreeMap;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::drift::{ColumnDrift, DriftReport};
use crate::profile::{share, ColumnProfile, Kind, Profile, Role};
use crate::stats;

/// Unseen categories remembered by name per column; more are only counted.
const MAX_UNSEEN: usize = 100;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ColumnSketch {
    pub name: String,
    /// Values present (numeric: finite and a number).
    pub count: u64,
    pub nulls: u64,
    #[serde(default)]
    pub infinite: u64,
    /// Values of the wrong type (text in a numeric column).
    #[serde(default)]
    pub wrong_type: u64,
    #[serde(default)]
    pub sum: f64,
    #[serde(default)]
    pub sum_sq: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Counts per reference bin (numeric) or per reference category (categorical).
    pub counts: Vec<u64>,
    /// Values of reference categories beyond the kept ones.
    #[serde(default)]
    pub other: u64,
    /// Values the reference never had, by value (up to 100 names).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unseen: BTreeMap<String, u64>,
    /// Unseen values beyond the named ones.
    #[serde(default)]
    pub unseen_more: u64,
}

impl ColumnSketch {
    pub fn rows(&self) -> u64 {
        self.count + self.nulls + self.infinite + self.wrong_type
    }

    pub fn null_share(&self) -> f64 {
        share(self.nulls, self.rows())
    }

    fn merge(&mut self, o: &ColumnSketch) {
        self.count += o.count;
        self.nulls += o.nulls;
        self.infinite += o.infinite;
        self.wrong_type += o.wrong_type;
        self.sum += o.sum;
        self.sum_sq += o.sum_sq;
        self.min = match (self.min, o.min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max = match (self.max, o.max) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        for (a, b) in self.counts.iter_mut().zip(&o.counts) {
            *a += b;
        }
        self.other += o.other;
        self.unseen_more += o.unseen_more;
        for (k, n) in &o.unseen {
            if let Some(v) = self.unseen.get_mut(k) {
                *v += n;
            } else if self.unseen.len() < MAX_UNSEEN {
                self.unseen.insert(k.clone(), *n);
            } else {
                self.unseen_more += n;
            }
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sketch {
    pub rows: u64,
    /// One per profile column, in the profile's order.
    pub columns: Vec<ColumnSketch>,
}

/// Fewer values than this keep no moments once their rows are given up (a mean of one value
/// is the value).
pub const MIN_SCRUBBED_MOMENTS: u64 = 20;

impl Sketch {
    /// What may be kept of a sketch once the rows it summarises are gone (retention): bin and
    /// category counts and null counts; no extremes, no names of unseen values (their count
    /// stays), and moments only over at least [`MIN_SCRUBBED_MOMENTS`] values.
    pub fn scrubbed(&self) -> Sketch {
        let mut s = self.clone();
        for c in &mut s.columns {
            c.min = None;
            c.max = None;
            c.unseen_more += c.unseen.values().sum::<u64>();
            c.unseen.clear();
            if c.count < MIN_SCRUBBED_MOMENTS {
                c.sum = 0.0;
                c.sum_sq = 0.0;
            }
        }
        s
    }

    /// An empty sketch shaped by `profile`.
    pub fn new(profile: &Profile) -> Sketch {
        Sketch {
            rows: 0,
            columns: profile
                .columns
                .iter()
                .map(|c| ColumnSketch {
                    name: c.name.clone(),
                    counts: vec![0; if c.kind == Kind::Numeric { c.bins.len() } else { c.categories.len() }],
                    ..ColumnSketch::default()
                })
                .collect(),
        }
    }

    /// Add another sketch of the same profile.
    pub fn merge(&mut self, other: &Sketch) {
        self.rows += other.rows;
        for (a, b) in self.columns.iter_mut().zip(&other.columns) {
            a.merge(b);
        }
    }
}

/// Counts values into a sketch; keeps the category lookups of its profile.
pub struct Sketcher<'p> {
    profile: &'p Profile,
    lookup: Vec<HashMap<&'p str, usize>>,
    pub sketch: Sketch,
}

/// One value as it arrives from a prediction log or a file.
pub enum Value<'a> {
    Missing,
    Number(f64),
    Text(&'a str),
}

impl<'p> Sketcher<'p> {
    pub fn new(profile: &'p Profile) -> Sketcher<'p> {
        let lookup = profile
            .columns
            .iter()
            .map(|c| c.categories.iter().enumerate().map(|(i, k)| (k.as_str(), i)).collect())
            .collect();
        Sketcher { profile, lookup, sketch: Sketch::new(profile) }
    }

    /// Count one row (callers call `add` for each column of it).
    pub fn row(&mut self) {
        self.sketch.rows += 1;
    }

    /// Count a value of column `i` (the profile's order).
    pub fn add(&mut self, i: usize, v: Value<'_>) {
        let p = &self.profile.columns[i];
        let s = &mut self.sketch.columns[i];
        match (p.kind, v) {
            (_, Value::Missing) => s.nulls += 1,
            (Kind::Numeric, Value::Number(x)) => add_number(p, s, x),
            (Kind::Numeric, Value::Text(t)) => match t.trim().parse::<f64>() {
                Ok(x) => add_number(p, s, x),
                Err(_) if crate::frame::is_missing(t.trim()) => s.nulls += 1,
                Err(_) => s.wrong_type += 1,
            },
            (Kind::Categorical, Value::Number(x)) if x.is_nan() => s.nulls += 1,
            (Kind::Categorical, Value::Number(x)) => {
                let text = crate::profile::number_text(x);
                add_category(&self.lookup[i], p, s, &text);
            }
            (Kind::Categorical, Value::Text(t)) => add_category(&self.lookup[i], p, s, t),
        }
    }
}

fn add_number(p: &ColumnProfile, s: &mut ColumnSketch, x: f64) {
    if x.is_nan() {
        s.nulls += 1;
        return;
    }
    if x.is_infinite() {
        s.infinite += 1;
        return;
    }
    s.count += 1;
    s.sum += x;
    s.sum_sq += x * x;
    s.min = Some(s.min.map_or(x, |m| m.min(x)));
    s.max = Some(s.max.map_or(x, |m| m.max(x)));
    s.counts[p.bin(x)] += 1;
}

fn add_category(lookup: &HashMap<&str, usize>, p: &ColumnProfile, s: &mut ColumnSketch, t: &str) {
    s.count += 1;
    match lookup.get(t) {
        Some(&k) => s.counts[k] += 1,
        // Beyond the kept categories the reference cannot tell rare from unseen.
        None if p.other > 0 => s.other += 1,
        None => {
            if let Some(n) = s.unseen.get_mut(t) {
                *n += 1;
            } else if s.unseen.len() < MAX_UNSEEN {
                s.unseen.insert(t.to_string(), 1);
            } else {
                s.unseen_more += 1;
            }
        }
    }
}

/// Evidently's replacement for the share of an empty bin (see the module docs).
fn fill_zeros(shares: &mut [f64]) {
    let m = shares.iter().copied().filter(|s| *s > 0.0).fold(f64::INFINITY, f64::min);
    let fill = if m <= 1e-4 { m / 1e6 } else { 1e-4 };
    for s in shares.iter_mut().filter(|s| **s == 0.0) {
        *s = fill;
    }
}

/// The PSI of two count vectors over the same bins.
pub fn psi_counts(reference: &[f64], current: &[f64]) -> Option<f64> {
    let (sr, sc): (f64, f64) = (reference.iter().sum(), current.iter().sum());
    if sr <= 0.0 || sc <= 0.0 || reference.len() != current.len() {
        return None;
    }
    let mut r: Vec<f64> = reference.iter().map(|x| x / sr).collect();
    let mut c: Vec<f64> = current.iter().map(|x| x / sc).collect();
    fill_zeros(&mut r);
    fill_zeros(&mut c);
    Some(r.iter().zip(&c).map(|(r, c)| (r - c) * (r / c).ln()).sum())
}

/// Most current values at which a window is judged by a test rather than a distance.
pub const SMALL_WINDOW: u64 = 1000;

fn judge(p: &ColumnProfile, s: &ColumnSketch) -> ColumnDrift {
    let mut d = ColumnDrift {
        name: p.name.clone(),
        kind: p.kind.as_str(),
        method: None,
        score: None,
        threshold: None,
        drift: None,
        reference_rows: p.rows() as usize,
        current_rows: s.rows() as usize,
        reference_null_share: p.null_share(),
        current_null_share: s.null_share(),
        findings: Vec::new(),
    };
    if s.wrong_type > 0 {
        d.findings.push(format!("schema drift: {} values are not numbers", s.wrong_type));
    }
    if s.infinite > 0 {
        d.findings.push(format!("{} infinite values ignored", s.infinite));
    }
    let (rnull, cnull) = (d.reference_null_share, d.current_null_share);
    if s.rows() > 0 && (cnull - rnull).abs() >= 0.05 {
        d.findings.push(format!("null share changed from {:.1}% to {:.1}%", rnull * 100.0, cnull * 100.0));
    }
    // Reference and current counts over the same cells; unseen categories get cells of their own.
    let mut reference: Vec<f64> = match p.kind {
        Kind::Numeric => p.bins.iter().map(|x| *x as f64).collect(),
        Kind::Categorical => p.category_counts.iter().map(|x| *x as f64).collect(),
    };
    let mut current: Vec<f64> = s.counts.iter().map(|x| *x as f64).collect();
    if p.kind == Kind::Categorical {
        if p.other > 0 || s.other > 0 {
            reference.push(p.other as f64);
            current.push(s.other as f64);
        }
        let unseen = s.unseen.values().sum::<u64>() + s.unseen_more;
        if unseen > 0 {
            let names: Vec<&str> = s.unseen.keys().take(5).map(String::as_str).collect();
            d.findings.push(format!("{unseen} values of unseen categories (e.g. {})", names.join(", ")));
            for n in s.unseen.values() {
                reference.push(0.0);
                current.push(*n as f64);
            }
            if s.unseen_more > 0 {
                reference.push(0.0);
                current.push(s.unseen_more as f64);
            }
        }
    }
    if p.count < 2 || s.count < 2 {
        d.findings.push(format!("insufficient data: {} reference and {} current values", p.count, s.count));
        return d;
    }
    // Cells empty on both sides carry no information.
    let keep: Vec<usize> = (0..reference.len()).filter(|i| reference[*i] + current[*i] > 0.0).collect();
    let reference: Vec<f64> = keep.iter().map(|i| reference[*i]).collect();
    let current: Vec<f64> = keep.iter().map(|i| current[*i]).collect();
    let (method, score, threshold, is_p) = if s.count <= SMALL_WINDOW {
        if reference.len() <= 2 {
            let p = stats::two_proportion_z(
                reference[0] as u64,
                reference.iter().sum::<f64>() as u64,
                current[0] as u64,
                current.iter().sum::<f64>() as u64,
            );
            ("z", p.map(|t| t.pvalue), 0.05, true)
        } else {
            let p = stats::chi2_contingency(&[reference, current]).map(|(t, _)| t.pvalue);
            ("chi2", p, 0.05, true)
        }
    } else if p.kind == Kind::Numeric {
        ("psi", psi_counts(&reference, &current), 0.1, false)
    } else {
        ("jensenshannon", stats::jensen_shannon(&reference, &current), 0.1, false)
    };
    d.method = Some(method);
    d.score = score;
    d.threshold = Some(threshold);
    d.drift = score.map(|v| if is_p { v < threshold } else { v >= threshold });
    if score.is_none() {
        d.findings.push(format!("{method} could not be computed (constant data)"));
    }
    d
}

/// Drift of a window against its reference profile: features and predictions, each judged
/// on counts (see the module docs); the dataset verdict counts features only.
pub fn drift(profile: &Profile, sketch: &Sketch, drift_share: f64) -> DriftReport {
    let columns: Vec<ColumnDrift> = profile
        .columns
        .iter()
        .zip(&sketch.columns)
        .filter(|(p, _)| p.role != Role::Target)
        .map(|(p, s)| judge(p, s))
        .collect();
    let features = || {
        profile
            .columns
            .iter()
            .filter(|p| p.role != Role::Target)
            .zip(&columns)
            .filter(|(p, _)| p.role == Role::Feature)
            .map(|(_, c)| c)
    };
    let judged = features().filter(|c| c.drift.is_some()).count();
    let drifted = features().filter(|c| c.drift == Some(true)).count();
    let share = if judged == 0 { 0.0 } else { drifted as f64 / judged as f64 };
    DriftReport {
        columns,
        schema: Vec::new(),
        judged,
        drifted,
        share,
        drift_share,
        dataset_drift: judged > 0 && share >= drift_share,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{categorical, numeric};

    fn profile() -> Profile {
        let x: Vec<f64> = (0..10_000).map(|i| f64::from(i % 1000)).collect();
        let cats = ["a", "b", "c"];
        Profile {
            rows: 10_000,
            columns: vec![
                numeric("x", Role::Feature, &x, 10),
                categorical("c", Role::Feature, (0..10_000).map(|i| Some(cats[i % 3])), 1000),
            ],
            withheld: Vec::new(),
            estimator: None,
            tree_covers: Vec::new(),
        }
    }

    fn window(p: &Profile, rows: std::ops::Range<i32>, shift: f64) -> Sketch {
        let mut k = Sketcher::new(p);
        for i in rows {
            k.row();
            k.add(0, Value::Number(f64::from(i % 1000) + shift));
            k.add(1, Value::Text(["a", "b", "c"][i as usize % 3]));
        }
        k.sketch
    }

    #[test]
    fn merged_windows_equal_one_window() {
        let p = profile();
        let mut a = window(&p, 0..3000, 0.0);
        a.merge(&window(&p, 3000..5000, 0.0));
        let whole = window(&p, 0..5000, 0.0);
        assert_eq!(a.columns[0].counts, whole.columns[0].counts);
        assert_eq!(a.columns[1].counts, whole.columns[1].counts);
        assert_eq!(a.rows, 5000);
        assert!((a.columns[0].sum - whole.columns[0].sum).abs() < 1e-6);
    }

    #[test]
    fn same_data_is_not_drift_and_a_shift_is() {
        let p = profile();
        let same = drift(&p, &window(&p, 0..5000, 0.0), 0.5);
        assert_eq!(same.columns[0].method, Some("psi"));
        assert!(same.columns[0].score.unwrap() < 0.01);
        assert!(!same.dataset_drift);
        let shifted = drift(&p, &window(&p, 0..5000, 300.0), 0.5);
        assert_eq!(shifted.columns[0].drift, Some(true), "{:?}", shifted.columns[0]);
        let small = drift(&p, &window(&p, 0..500, 300.0), 0.5);
        assert_eq!(small.columns[0].method, Some("chi2"));
        assert_eq!(small.columns[0].drift, Some(true));
    }

    #[test]
    fn psi_by_hand() {
        // (0.5-0.25)ln(2) + (0.5-0.75)ln(2/3)
        let v = psi_counts(&[50.0, 50.0], &[25.0, 75.0]).unwrap();
        let want = 0.25 * 2f64.ln() - 0.25 * (2.0f64 / 3.0).ln();
        assert!((v - want).abs() < 1e-12);
        // An empty current bin takes 1e-4.
        let v = psi_counts(&[50.0, 50.0], &[0.0, 100.0]).unwrap();
        let want = (0.5 - 1e-4) * (0.5f64 / 1e-4).ln() + (0.5 - 1.0) * 0.5f64.ln();
        assert!((v - want).abs() < 1e-12);
    }

    #[test]
    fn unseen_categories_and_nulls_are_findings() {
        let p = profile();
        let mut k = Sketcher::new(&p);
        for i in 0..200 {
            k.row();
            k.add(0, if i % 2 == 0 { Value::Missing } else { Value::Text("oops") });
            k.add(1, Value::Text(if i % 4 == 0 { "zzz" } else { "a" }));
        }
        let r = drift(&p, &k.sketch, 0.5);
        assert!(r.columns[0].findings.iter().any(|f| f.contains("null share")), "{:?}", r.columns[0]);
        assert!(r.columns[0].findings.iter().any(|f| f.contains("not numbers")));
        assert!(r.columns[1].findings.iter().any(|f| f.contains("unseen")), "{:?}", r.columns[1]);
        assert_eq!(r.columns[1].drift, Some(true));
    }
}
