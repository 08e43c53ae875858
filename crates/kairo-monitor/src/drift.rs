//! Column-by-column drift between a reference and a current table, and the dataset verdict.
//!
//! Method choice (per column, after dropping missing and infinite values):
//! - **kairo** (default): what decides is the *smaller* sample, because a test on large samples
//!   flags shifts too small to matter. With at most 1,000 values on either side: numeric
//!   columns with more than 5 distinct values get the two-sample KS test; other columns the
//!   chi-square test of homogeneity (two categories: the two-proportion Z-test); drift when
//!   p < 0.05 (optionally Bonferroni or Benjamini–Hochberg corrected). Larger: numeric columns
//!   get the Wasserstein distance divided by the reference's standard deviation, others the
//!   Jensen–Shannon distance; drift when the distance is at least 0.1.
//! - **evidently**: Evidently's defaults (`DataDriftPreset`): the *reference* size decides
//!   (≤ 1,000 rows: tests, else distances), its chi-square is the goodness-of-fit test of the
//!   current counts against the scaled reference counts, and KS drifts at p ≤ 0.05.

use std::collections::BTreeSet;

use crate::frame::{Column, Frame, ParquetColumns, Values, MISSING};
use crate::stats;
use crate::MonitorError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    Kairo,
    Evidently,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Correction {
    None,
    Bonferroni,
    BenjaminiHochberg,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub preset: Preset,
    /// Share of drifted columns at which the dataset counts as drifted.
    pub drift_share: f64,
    pub correction: Correction,
}

impl Default for Options {
    fn default() -> Self {
        Options { preset: Preset::Kairo, drift_share: 0.5, correction: Correction::None }
    }
}

/// What was measured for one column.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDrift {
    pub name: String,
    /// `numeric` or `categorical` (as the reference has it).
    pub kind: &'static str,
    /// `ks`, `chi2`, `chisquare_gof`, `z`, `wasserstein_norm`, `jensenshannon`, or none.
    pub method: Option<&'static str>,
    /// The test's p-value or the distance.
    pub score: Option<f64>,
    pub threshold: Option<f64>,
    /// `None` when the column could not be judged (see `findings`).
    pub drift: Option<bool>,
    pub reference_rows: usize,
    pub current_rows: usize,
    pub reference_null_share: f64,
    pub current_null_share: f64,
    /// Schema drift, insufficient data, infinite values, unseen categories.
    pub findings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DriftReport {
    pub columns: Vec<ColumnDrift>,
    /// Columns only one side has.
    pub schema: Vec<String>,
    pub judged: usize,
    pub drifted: usize,
    pub share: f64,
    pub drift_share: f64,
    pub dataset_drift: bool,
}

/// The finite values of a column sorted by `f64::total_cmp` (negative NaNs, −∞, finite, +∞,
/// NaNs), with the counts of missing and infinite values.
fn finite_sorted(v: &[f64]) -> (&[f64], usize, usize) {
    let start = v.iter().take_while(|x| !x.is_finite()).count();
    let end = v.len() - v[start..].iter().rev().take_while(|x| !x.is_finite()).count();
    let missing = v[..start].iter().chain(&v[end..]).filter(|x| x.is_nan()).count();
    let infinite = (v.len() - (end - start)) - missing;
    (&v[start..end], missing, infinite)
}

fn share(part: usize, total: usize) -> f64 {
    if total == 0 {
        0.0
    } else {
        part as f64 / total as f64
    }
}

/// Category counts of both sides over the union of their categories, in category order.
struct Counts {
    keys: Vec<String>,
    reference: Vec<f64>,
    current: Vec<f64>,
}

impl Counts {
    fn totals(&self) -> (usize, usize) {
        (self.reference.iter().sum::<f64>() as usize, self.current.iter().sum::<f64>() as usize)
    }

    fn unseen(&self) -> Vec<&str> {
        self.keys
            .iter()
            .zip(self.reference.iter().zip(&self.current))
            .filter(|(_, (r, c))| **r == 0.0 && **c > 0.0)
            .map(|(k, _)| k.as_str())
            .collect()
    }
}

/// Counts of two dictionary-coded columns, merged by category name.
fn code_counts(r: (&[u32], &[String]), c: (&[u32], &[String])) -> Counts {
    let per_code = |codes: &[u32], n: usize| {
        let mut v = vec![0.0f64; n];
        for code in codes.iter().filter(|c| **c != MISSING) {
            v[*code as usize] += 1.0;
        }
        v
    };
    let (rc, cc) = (per_code(r.0, r.1.len()), per_code(c.0, c.1.len()));
    let mut merged: std::collections::BTreeMap<&str, (f64, f64)> = Default::default();
    for (name, n) in r.1.iter().zip(&rc) {
        merged.entry(name).or_default().0 += n;
    }
    for (name, n) in c.1.iter().zip(&cc) {
        merged.entry(name).or_default().1 += n;
    }
    merged.retain(|_, (a, b)| *a + *b > 0.0);
    Counts {
        keys: merged.keys().map(|k| k.to_string()).collect(),
        reference: merged.values().map(|v| v.0).collect(),
        current: merged.values().map(|v| v.1).collect(),
    }
}

/// Counts of two few-valued numeric samples, by value (in value order).
fn value_counts(r: &[f64], c: &[f64]) -> Counts {
    // Maps f64 order onto u64 order.
    let key = |x: f64| {
        let b = x.to_bits();
        if b >> 63 == 1 {
            !b
        } else {
            b | (1 << 63)
        }
    };
    let mut merged: std::collections::BTreeMap<u64, (f64, f64, f64)> = Default::default();
    for x in r {
        merged.entry(key(*x)).or_insert((*x, 0.0, 0.0)).1 += 1.0;
    }
    for x in c {
        merged.entry(key(*x)).or_insert((*x, 0.0, 0.0)).2 += 1.0;
    }
    Counts {
        keys: merged.values().map(|v| v.0.to_string()).collect(),
        reference: merged.values().map(|v| v.1).collect(),
        current: merged.values().map(|v| v.2).collect(),
    }
}

/// Chi-square goodness of fit of the current counts against the reference's, scaled.
fn chisquare_gof(reference: &[f64], current: &[f64]) -> Option<f64> {
    let (nr, nc): (f64, f64) = (reference.iter().sum(), current.iter().sum());
    let mut stat = 0.0;
    for (r, c) in reference.iter().zip(current) {
        let expected = r * nc / nr;
        if expected == 0.0 {
            if *c > 0.0 {
                return Some(0.0);
            }
            continue;
        }
        stat += (c - expected).powi(2) / expected;
    }
    use statrs::distribution::{ChiSquared, ContinuousCDF};
    let dof = reference.len().saturating_sub(1).max(1) as f64;
    Some(ChiSquared::new(dof).ok()?.sf(stat))
}

/// A categorical (or few-valued numeric) comparison: test for small samples, distance for large.
fn categorical(counts: &Counts, small: bool, preset: Preset) -> (&'static str, Option<f64>, f64, bool) {
    let (r, c) = (&counts.reference, &counts.current);
    let (nr, nc) = counts.totals();
    if small {
        if counts.keys.len() <= 2 {
            let x1 = r.first().copied().unwrap_or(0.0) as u64;
            let x2 = c.first().copied().unwrap_or(0.0) as u64;
            let p = stats::two_proportion_z(x1, nr as u64, x2, nc as u64).map(|t| t.pvalue);
            return ("z", p, 0.05, true);
        }
        return match preset {
            Preset::Evidently => ("chisquare_gof", chisquare_gof(r, c), 0.05, true),
            Preset::Kairo => {
                ("chi2", stats::chi2_contingency(&[r.clone(), c.clone()]).map(|(t, _)| t.pvalue), 0.05, true)
            }
        };
    }
    ("jensenshannon", stats::jensen_shannon(r, c), 0.1, false)
}

fn std_dev(v: &[f64]) -> f64 {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt()
}

fn distinct(a: &[f64], b: &[f64], limit: usize) -> usize {
    let mut set = BTreeSet::new();
    for x in a.iter().chain(b) {
        set.insert(x.to_bits());
        if set.len() > limit {
            break;
        }
    }
    set.len()
}

fn judge_column(name: &str, reference: &Column, current: &Column, preset: Preset) -> ColumnDrift {
    let mut d = ColumnDrift {
        name: name.to_string(),
        kind: if matches!(reference.values, Values::Numeric(_)) { "numeric" } else { "categorical" },
        method: None,
        score: None,
        threshold: None,
        drift: None,
        reference_rows: reference.len(),
        current_rows: current.len(),
        reference_null_share: 0.0,
        current_null_share: 0.0,
        findings: Vec::new(),
    };
    // A side with no values at all has no type to compare.
    let present = |c: &Column| match &c.values {
        Values::Numeric(v) => v.iter().filter(|x| !x.is_nan()).count(),
        Values::Categorical { codes, .. } => codes.iter().filter(|c| **c != MISSING).count(),
    };
    let (rp, cp) = (present(reference), present(current));
    if rp == 0 || cp == 0 {
        d.reference_null_share = share(reference.len() - rp, reference.len());
        d.current_null_share = share(current.len() - cp, current.len());
        d.findings.push(format!("insufficient data: {rp} reference and {cp} current values"));
        return d;
    }
    match (&reference.values, &current.values) {
        (Values::Numeric(rv), Values::Numeric(cv)) => {
            // `check` sorted the columns in place: the finite values are the middle.
            let (r, rmiss, rinf) = finite_sorted(rv);
            let (c, cmiss, cinf) = finite_sorted(cv);
            d.reference_null_share = share(rmiss, rv.len());
            d.current_null_share = share(cmiss, cv.len());
            if rinf + cinf > 0 {
                d.findings.push(format!("{} infinite values ignored (reference {rinf}, current {cinf})", rinf + cinf));
            }
            if r.len() < 2 || c.len() < 2 {
                d.findings.push(format!("insufficient data: {} reference and {} current values", r.len(), c.len()));
                return d;
            }
            let small = match preset {
                Preset::Evidently => r.len() <= 1000,
                Preset::Kairo => r.len().min(c.len()) <= 1000,
            };
            if distinct(r, c, 5) <= 5 {
                let (method, score, threshold, is_p) = categorical(&value_counts(r, c), small, preset);
                set(&mut d, method, score, threshold, is_p, preset);
                return d;
            }
            if small {
                let t = if r.len().max(c.len()) <= 10_000 { stats::ks_exact(r, c) } else { stats::ks_asymptotic(r, c) };
                set(&mut d, "ks", t.map(|t| t.pvalue), 0.05, true, preset);
            } else {
                let w = stats::wasserstein_sorted(r, c).map(|w| w / std_dev(r).max(0.001));
                set(&mut d, "wasserstein_norm", w, 0.1, false, preset);
            }
        }
        (Values::Categorical { codes: rc, dictionary: rd }, Values::Categorical { codes: cc, dictionary: cd }) => {
            let counts = code_counts((rc, rd), (cc, cd));
            let (nr, nc) = counts.totals();
            d.reference_null_share = share(rc.len() - nr, rc.len());
            d.current_null_share = share(cc.len() - nc, cc.len());
            let unseen = counts.unseen();
            if !unseen.is_empty() {
                let sample: Vec<&str> = unseen.iter().take(5).copied().collect();
                d.findings.push(format!("{} unseen categories (e.g. {})", unseen.len(), sample.join(", ")));
            }
            if nr < 2 || nc < 2 {
                d.findings.push(format!("insufficient data: {nr} reference and {nc} current values"));
                return d;
            }
            let small = match preset {
                Preset::Evidently => nr <= 1000,
                Preset::Kairo => nr.min(nc) <= 1000,
            };
            let (method, score, threshold, is_p) = categorical(&counts, small, preset);
            set(&mut d, method, score, threshold, is_p, preset);
        }
        (rv, _) => {
            let (from, to) = if matches!(rv, Values::Numeric(_)) { ("numeric", "text") } else { ("text", "numeric") };
            d.findings.push(format!("schema drift: the type changed from {from} to {to}"));
            d.drift = Some(true);
        }
    }
    d
}

/// Record a method's outcome; p-values drift below the threshold (KS at it, in Evidently),
/// distances at or above it.
fn set(d: &mut ColumnDrift, method: &'static str, score: Option<f64>, threshold: f64, is_p: bool, preset: Preset) {
    d.method = Some(method);
    d.score = score;
    d.threshold = Some(threshold);
    d.drift = score.map(|s| {
        if is_p {
            if method == "ks" && preset == Preset::Evidently {
                s <= threshold
            } else {
                s < threshold
            }
        } else {
            s >= threshold
        }
    });
    if score.is_none() {
        d.findings.push(format!("{method} could not be computed (constant or empty data)"));
    }
}

fn is_test(method: Option<&str>) -> bool {
    matches!(method, Some("ks" | "chi2" | "chisquare_gof" | "z"))
}

/// Compare every column of `current` with `reference`. Numeric columns are sorted in place
/// first (the order of rows does not matter to any method, and sorting without a copy keeps
/// memory at the data's own size).
pub fn check(reference: &mut Frame, current: &mut Frame, options: &Options) -> DriftReport {
    use rayon::prelude::*;
    reference.columns.par_iter_mut().chain(current.columns.par_iter_mut()).for_each(|c| {
        if let Values::Numeric(v) = &mut c.values {
            stats::sort_floats(v);
        }
    });
    let (reference, current) = (&*reference, &*current);
    let mut schema = Vec::new();
    for r in &reference.columns {
        if current.column(&r.name).is_none() {
            schema.push(format!("column '{}' is missing from the current data", r.name));
        }
    }
    // Columns are independent: judged in parallel, reported in the reference's order.
    let columns: Vec<ColumnDrift> = reference
        .columns
        .par_iter()
        .filter_map(|r| current.column(&r.name).map(|c| judge_column(&r.name, r, c, options.preset)))
        .collect();
    for c in &current.columns {
        if reference.column(&c.name).is_none() {
            schema.push(format!("column '{}' is new in the current data", c.name));
        }
    }
    report(columns, schema, options)
}

/// A table to check: in memory (CSV), or a Parquet file read a column at a time.
pub enum Table {
    Frame(Frame),
    Parquet(ParquetColumns),
}

impl Table {
    /// A Parquet file (`.parquet`, `.pq`) is opened for reading by column; a CSV is read whole.
    pub fn open(path: &std::path::Path) -> Result<Table, MonitorError> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("parquet" | "pq") => Ok(Table::Parquet(ParquetColumns::open(path)?)),
            _ => Ok(Table::Frame(Frame::read_csv(path)?)),
        }
    }

    pub fn rows(&self) -> usize {
        match self {
            Table::Frame(f) => f.rows,
            Table::Parquet(p) => p.rows,
        }
    }

    fn names(&self) -> Vec<String> {
        match self {
            Table::Frame(f) => f.columns.iter().map(|c| c.name.clone()).collect(),
            Table::Parquet(p) => p.names.clone(),
        }
    }

    /// A copy of the column `name` (read from the file for Parquet).
    fn column(&self, name: &str) -> Result<Option<Column>, MonitorError> {
        match self {
            Table::Frame(f) => Ok(f.column(name).cloned()),
            Table::Parquet(p) => match p.names.iter().position(|n| n == name) {
                Some(i) => p.column(i).map(Some),
                None => Ok(None),
            },
        }
    }
}

/// [`check`] on two tables. Two frames are checked in memory; otherwise column by column, a
/// pair of columns per rayon thread, each read, sorted, judged and dropped — memory is a few
/// columns per core, not two files.
pub fn check_tables(reference: Table, current: Table, options: &Options) -> Result<DriftReport, MonitorError> {
    use rayon::prelude::*;
    let (reference, current) = match (reference, current) {
        (Table::Frame(mut r), Table::Frame(mut c)) => return Ok(check(&mut r, &mut c, options)),
        pair => pair,
    };
    let (names, current_names) = (reference.names(), current.names());
    let mut schema = Vec::new();
    for n in &names {
        if !current_names.contains(n) {
            schema.push(format!("column '{n}' is missing from the current data"));
        }
    }
    let judged: Vec<Result<Option<ColumnDrift>, MonitorError>> = names
        .par_iter()
        .filter(|n| current_names.contains(n))
        .map(|n| {
            let (Some(mut r), Some(mut c)) = (reference.column(n)?, current.column(n)?) else { return Ok(None) };
            for col in [&mut r, &mut c] {
                if let Values::Numeric(v) = &mut col.values {
                    stats::sort_floats(v);
                }
            }
            Ok(Some(judge_column(n, &r, &c, options.preset)))
        })
        .collect();
    let mut columns = Vec::new();
    for j in judged {
        columns.extend(j?);
    }
    for n in &current_names {
        if !names.contains(n) {
            schema.push(format!("column '{n}' is new in the current data"));
        }
    }
    Ok(report(columns, schema, options))
}

/// The correction, the counts and the dataset verdict over judged columns.
fn report(mut columns: Vec<ColumnDrift>, schema: Vec<String>, options: &Options) -> DriftReport {
    // Multiple-testing correction of the test-based verdicts.
    let tests: Vec<usize> =
        (0..columns.len()).filter(|i| is_test(columns[*i].method) && columns[*i].score.is_some()).collect();
    let m = tests.len() as f64;
    match options.correction {
        Correction::None => {}
        Correction::Bonferroni => {
            for &i in &tests {
                let (p, t) = (columns[i].score.unwrap_or(1.0), columns[i].threshold.unwrap_or(0.05));
                columns[i].drift = Some(p < t / m);
            }
        }
        Correction::BenjaminiHochberg => {
            let mut order = tests.clone();
            order.sort_by(|a, b| columns[*a].score.unwrap_or(1.0).total_cmp(&columns[*b].score.unwrap_or(1.0)));
            let mut cutoff = 0;
            for (rank, &i) in order.iter().enumerate() {
                let alpha = columns[i].threshold.unwrap_or(0.05);
                if columns[i].score.unwrap_or(1.0) <= alpha * (rank + 1) as f64 / m {
                    cutoff = rank + 1;
                }
            }
            for (rank, &i) in order.iter().enumerate() {
                columns[i].drift = Some(rank < cutoff);
            }
        }
    }
    let judged = columns.iter().filter(|c| c.drift.is_some()).count();
    let drifted = columns.iter().filter(|c| c.drift == Some(true)).count();
    let share = share(drifted, judged);
    DriftReport {
        columns,
        schema,
        judged,
        drifted,
        share,
        drift_share: options.drift_share,
        dataset_drift: judged > 0 && share >= options.drift_share,
    }
}
