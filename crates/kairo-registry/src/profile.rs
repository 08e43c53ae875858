//! The reference profile of a version's training data, stored with the version for
//! monitoring: per column its kind, decile bin edges (open-ended), category frequencies, null
//! share and summary statistics.

use crate::holdout::Table;
use serde_json::{json, Value};

/// Distinct values up to which a numeric-looking column is still profiled as categorical.
const MAX_CATEGORIES: usize = 100;

pub fn profile(table: &Table) -> Value {
    let n = table.rows.len();
    let mut columns = Vec::new();
    for (c, name) in table.columns.iter().enumerate() {
        let cells: Vec<&str> = table.rows.iter().map(|r| r[c].trim()).collect();
        let present: Vec<&str> = cells.iter().copied().filter(|s| !s.is_empty() && *s != "NA" && *s != "nan").collect();
        let null_share = if n == 0 { 0.0 } else { (n - present.len()) as f64 / n as f64 };
        let numbers: Option<Vec<f64>> =
            present.iter().map(|s| s.parse::<f64>().ok().filter(|v| v.is_finite())).collect();
        match numbers {
            Some(mut v) if !v.is_empty() => {
                v.sort_by(f64::total_cmp);
                let count = v.len() as f64;
                let mean = v.iter().sum::<f64>() / count;
                let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (count - 1.0).max(1.0);
                let q = |p: f64| {
                    let pos = p * (v.len() - 1) as f64;
                    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
                    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
                };
                let mut edges: Vec<f64> = (1..10).map(|i| q(f64::from(i) / 10.0)).collect();
                edges.dedup();
                columns.push(json!({
                    "name": name, "kind": "numeric", "count": v.len(), "null_share": null_share,
                    "mean": mean, "std": var.sqrt(), "min": v[0], "max": v[v.len() - 1],
                    "bin_edges": edges,
                }));
            }
            _ => {
                let mut counts: std::collections::BTreeMap<&str, u64> = Default::default();
                for s in &present {
                    *counts.entry(s).or_default() += 1;
                }
                let mut top: Vec<(&str, u64)> = counts.into_iter().collect();
                top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
                let distinct = top.len();
                top.truncate(MAX_CATEGORIES);
                let total = present.len().max(1) as f64;
                let freq: serde_json::Map<String, Value> =
                    top.into_iter().map(|(k, v)| (k.to_string(), json!(v as f64 / total))).collect();
                columns.push(json!({
                    "name": name, "kind": "categorical", "count": present.len(), "null_share": null_share,
                    "distinct": distinct, "frequencies": freq,
                }));
            }
        }
    }
    json!({"rows": n, "columns": columns})
}
