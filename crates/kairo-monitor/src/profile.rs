//! Computing reference profiles: what a model version's training data looked like, stored
//! with the version. Per column: its kind (inferred, overridable), its quantile bin edges (the
//! outer bins open at ±∞) with the reference's count per bin, or its categories with their
//! counts; the null count and summary statistics. Production windows are counted against these
//! same bins (`sketch`), so drift over any window is a comparison of two count vectors. The
//! types are `kairo_core::profile` (the registry stores them); the computation is here.

use std::collections::HashMap;

pub use kairo_core::profile::{ColumnProfile, Kind, Profile, Role, Source, Withheld};

use crate::frame::{Column, Frame, Values, MISSING};

/// How to profile.
#[derive(Debug, Clone)]
pub struct ProfileOptions {
    /// Quantile bins per numeric column (10: deciles).
    pub bins: usize,
    /// Categories kept per column; rarer ones are counted together as `other`.
    pub max_categories: usize,
    /// Kinds that override inference, by column.
    pub kinds: HashMap<String, Kind>,
    /// The target column, if the data has one.
    pub target: Option<String>,
}

impl Default for ProfileOptions {
    fn default() -> Self {
        ProfileOptions { bins: 10, max_categories: 1000, kinds: HashMap::new(), target: None }
    }
}

pub(crate) fn share(part: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        part as f64 / total as f64
    }
}

/// `1`, not `1.0`: a number read as a category has one spelling.
pub fn number_text(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

/// Quantile `p` of sorted values as an observed value (NumPy's `method="lower"`): edges are
/// values the data has, so a few-valued column gets one bin per value rather than empty bins
/// between them.
fn quantile(sorted: &[f64], p: f64) -> f64 {
    sorted[(p * (sorted.len() - 1) as f64).floor() as usize]
}

/// A numeric column's profile from its values (NaN = missing).
pub fn numeric(name: &str, role: Role, values: &[f64], bins: usize) -> ColumnProfile {
    let nulls = values.iter().filter(|x| x.is_nan()).count() as u64;
    let mut finite: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    let infinite = values.len() as u64 - nulls - finite.len() as u64;
    crate::stats::sort_floats(&mut finite);
    let mut p = ColumnProfile::empty(name, role, Kind::Numeric);
    (p.count, p.nulls, p.infinite) = (finite.len() as u64, nulls, infinite);
    if finite.is_empty() {
        p.bins = vec![0];
        return p;
    }
    let n = finite.len() as f64;
    let mean = finite.iter().sum::<f64>() / n;
    let var = finite.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    p.mean = Some(mean);
    p.std = Some(var.sqrt());
    p.min = finite.first().copied();
    p.max = finite.last().copied();
    let bins = bins.max(2);
    let mut edges: Vec<f64> = (1..bins).map(|i| quantile(&finite, i as f64 / bins as f64)).collect();
    edges.dedup();
    p.edges = edges;
    let mut counts = vec![0u64; p.edges.len() + 1];
    // Sorted values: each bin is a run, found by binary search on the edges.
    let mut start = 0;
    for (i, e) in p.edges.iter().enumerate() {
        let end = start + finite[start..].partition_point(|x| x <= e);
        counts[i] = (end - start) as u64;
        start = end;
    }
    counts[p.edges.len()] = (finite.len() - start) as u64;
    p.bins = counts;
    p
}

/// A categorical column's profile from its values (`None` = missing).
pub fn categorical<'a>(
    name: &str,
    role: Role,
    values: impl Iterator<Item = Option<&'a str>>,
    max_categories: usize,
) -> ColumnProfile {
    let mut counts: HashMap<&str, u64> = HashMap::new();
    let mut nulls = 0;
    for v in values {
        match v {
            Some(s) => *counts.entry(s).or_default() += 1,
            None => nulls += 1,
        }
    }
    let mut top: Vec<(&str, u64)> = counts.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let count = top.iter().map(|t| t.1).sum();
    let other = top.iter().skip(max_categories).map(|t| t.1).sum();
    top.truncate(max_categories);
    ColumnProfile {
        count,
        nulls,
        categories: top.iter().map(|t| t.0.to_string()).collect(),
        category_counts: top.iter().map(|t| t.1).collect(),
        other,
        ..ColumnProfile::empty(name, role, Kind::Categorical)
    }
}

fn column_profile(c: &Column, role: Role, kind: Option<Kind>, o: &ProfileOptions) -> ColumnProfile {
    match (&c.values, kind) {
        (Values::Numeric(v), None | Some(Kind::Numeric)) => numeric(&c.name, role, v, o.bins),
        (Values::Numeric(v), Some(Kind::Categorical)) => {
            let texts: Vec<Option<String>> = v.iter().map(|x| (!x.is_nan()).then(|| number_text(*x))).collect();
            categorical(&c.name, role, texts.iter().map(|t| t.as_deref()), o.max_categories)
        }
        (Values::Categorical { codes, dictionary }, Some(Kind::Numeric)) => {
            let v: Vec<f64> = codes
                .iter()
                .map(|c| if *c == MISSING { f64::NAN } else { dictionary[*c as usize].parse().unwrap_or(f64::NAN) })
                .collect();
            numeric(&c.name, role, &v, o.bins)
        }
        (Values::Categorical { codes, dictionary }, _) => categorical(
            &c.name,
            role,
            codes.iter().map(|c| (*c != MISSING).then(|| dictionary[*c as usize].as_str())),
            o.max_categories,
        ),
    }
}

/// Profile every column of a table (columns in parallel).
pub fn profile(frame: &Frame, options: &ProfileOptions) -> Profile {
    use rayon::prelude::*;
    let columns = frame
        .columns
        .par_iter()
        .map(|c| {
            let role = if options.target.as_deref() == Some(c.name.as_str()) { Role::Target } else { Role::Feature };
            column_profile(c, role, options.kinds.get(&c.name).copied(), options)
        })
        .collect();
    Profile { rows: frame.rows as u64, columns, withheld: Vec::new(), estimator: None, tree_covers: Vec::new() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deciles_with_open_outer_bins() {
        let v: Vec<f64> = (1..=100).map(f64::from).chain([f64::NAN, f64::INFINITY]).collect();
        let p = numeric("x", Role::Feature, &v, 10);
        assert_eq!((p.count, p.nulls, p.infinite), (100, 1, 1));
        assert_eq!(p.edges.len(), 9);
        assert_eq!(p.edges[0], 10.0);
        assert_eq!(p.bins.iter().sum::<u64>(), 100);
        assert_eq!(p.bins, vec![10; 10]);
        assert_eq!(p.bin(-1e300), 0);
        assert_eq!(p.bin(1e300), 9);
        assert_eq!(p.bin(p.edges[3]), 3, "an edge belongs to the bin below it");
    }

    #[test]
    fn few_values_keep_distinct_edges() {
        let v = [0.0, 0.0, 0.0, 1.0, 1.0];
        let p = numeric("flag", Role::Feature, &v, 10);
        assert_eq!(p.edges, vec![0.0, 1.0]);
        assert_eq!(p.bins, vec![3, 2, 0]);
    }

    #[test]
    fn categories_by_frequency_with_other() {
        let v = ["a", "b", "a", "c", "a", "b"];
        let p = categorical("c", Role::Feature, v.iter().map(|s| Some(*s)).chain([None]), 2);
        assert_eq!(p.categories, vec!["a", "b"]);
        assert_eq!(p.category_counts, vec![3, 2]);
        assert_eq!((p.other, p.nulls, p.count), (1, 1, 6));
    }
}
