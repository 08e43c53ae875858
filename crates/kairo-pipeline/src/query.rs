//! Questions about recorded runs: metric filters for `runs ls --where`, and `runs diff`.

use kairo_core::run::Run;
use std::collections::{BTreeMap, BTreeSet};

/// `KEY OP NUMBER`, e.g. `acc>=0.9` or `metrics.loss < 0.3`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricFilter {
    pub key: String,
    pub op: String,
    pub value: f64,
}

impl MetricFilter {
    pub fn parse(expr: &str) -> Result<Self, String> {
        let ops = [">=", "<=", "!=", "==", ">", "<", "="];
        let (at, op) = ops
            .iter()
            .filter_map(|op| expr.find(op).map(|i| (i, *op)))
            .min_by_key(|(i, op)| (*i, usize::MAX - op.len()))
            .ok_or_else(|| format!("`{expr}`: expected METRIC OP NUMBER, e.g. `acc>=0.9` (ops: >= <= > < == !=)"))?;
        let key = expr[..at].trim();
        let key = key.strip_prefix("metrics.").unwrap_or(key).to_string();
        let raw = expr[at + op.len()..].trim();
        let value = raw.parse::<f64>().map_err(|_| format!("`{expr}`: `{raw}` is not a number"))?;
        if key.is_empty() {
            return Err(format!("`{expr}`: the metric name is missing"));
        }
        Ok(MetricFilter { key, op: if op == "=" { "==".into() } else { op.into() }, value })
    }

    /// A run without the metric never matches.
    pub fn matches(&self, run: &Run) -> bool {
        self.matches_value(run.metrics.get(&self.key).copied())
    }

    /// The same test on a metric's value, if the run has it.
    pub fn matches_value(&self, v: Option<f64>) -> bool {
        let Some(v) = v else { return false };
        match self.op.as_str() {
            ">=" => v >= self.value,
            "<=" => v <= self.value,
            ">" => v > self.value,
            "<" => v < self.value,
            "!=" => v != self.value,
            _ => v == self.value,
        }
    }
}

/// One value that differs between two runs.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Change {
    pub key: String,
    pub a: Option<String>,
    pub b: Option<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MetricChange {
    pub key: String,
    pub a: Option<f64>,
    pub b: Option<f64>,
    pub delta: Option<f64>,
}

/// What differs between runs A and B (only differences are listed).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunDiff {
    pub a: String,
    pub b: String,
    pub params: Vec<Change>,
    pub metrics: Vec<MetricChange>,
    pub data: Vec<Change>,
    pub outputs: Vec<Change>,
    pub environment: Vec<Change>,
    pub code: Vec<Change>,
}

impl RunDiff {
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
            && self.metrics.is_empty()
            && self.data.is_empty()
            && self.outputs.is_empty()
            && self.environment.is_empty()
            && self.code.is_empty()
    }
}

pub fn diff(a: &Run, b: &Run) -> RunDiff {
    let flat_params = |r: &Run| -> BTreeMap<String, String> {
        r.params
            .iter()
            .flat_map(|(file, kv)| kv.iter().map(move |(k, v)| (format!("{file}:{k}"), v.to_string())))
            .collect()
    };
    let versions = |vs: &[kairo_core::run::PathVersion]| -> BTreeMap<String, String> {
        vs.iter().map(|v| (v.path.clone(), v.hash.to_hex())).collect()
    };
    let env = |r: &Run| -> BTreeMap<String, String> {
        let mut m: BTreeMap<String, String> = r.env.key.clone();
        m.insert("spec".into(), r.env.spec.clone());
        for (k, v) in &r.env.facts {
            if !k.ends_with(".packages") {
                m.insert(k.clone(), v.clone());
            }
        }
        m
    };
    let code = |r: &Run| -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert("cmd".into(), r.cmd.clone());
        if let Some(c) = &r.git.commit {
            m.insert("commit".into(), c.clone());
        }
        if let Some(d) = &r.git.dirty {
            m.insert("uncommitted changes".into(), d.clone());
        }
        m
    };
    let mut metrics = Vec::new();
    let keys: BTreeSet<&String> = a.metrics.keys().chain(b.metrics.keys()).collect();
    for k in keys {
        let (va, vb) = (a.metrics.get(k).copied(), b.metrics.get(k).copied());
        if va != vb {
            // Rounded so 0.7 - 0.6 reads as 0.1, not 0.09999999999999998.
            let delta = va.zip(vb).map(|(x, y)| ((y - x) * 1e12).round() / 1e12);
            metrics.push(MetricChange { key: k.clone(), a: va, b: vb, delta });
        }
    }
    let mut environment = changes(&env(a), &env(b));
    environment.extend(package_changes(a, b));
    RunDiff {
        a: a.id.clone(),
        b: b.id.clone(),
        params: changes(&flat_params(a), &flat_params(b)),
        metrics,
        data: changes(&versions(&a.deps), &versions(&b.deps)),
        outputs: changes(&versions(&a.outs), &versions(&b.outs)),
        environment,
        code: changes(&code(a), &code(b)),
    }
}

/// Package-level differences of each Python interpreter both runs recorded.
fn package_changes(a: &Run, b: &Run) -> Vec<Change> {
    let packages = |r: &Run, k: &str| -> BTreeMap<String, String> {
        r.env
            .facts
            .get(k)
            .map(|list| {
                list.lines()
                    .filter_map(|l| l.split_once("=="))
                    .map(|(n, v)| (n.to_lowercase(), v.to_string()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let keys: BTreeSet<&String> =
        a.env.facts.keys().chain(b.env.facts.keys()).filter(|k| k.ends_with(".packages")).collect();
    let mut out = Vec::new();
    for k in keys {
        for c in changes(&packages(a, k), &packages(b, k)) {
            out.push(Change { key: format!("{}: {}", k.trim_end_matches(".packages"), c.key), ..c });
        }
    }
    out
}

fn changes(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<Change> {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| Change { key: k.clone(), a: a.get(k).cloned(), b: b.get(k).cloned() })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_reject() {
        assert_eq!(
            MetricFilter::parse("acc>=0.9").unwrap(),
            MetricFilter { key: "acc".into(), op: ">=".into(), value: 0.9 }
        );
        assert_eq!(MetricFilter::parse("metrics.loss < 3").unwrap().op, "<");
        assert_eq!(MetricFilter::parse("f1 = 1").unwrap().op, "==");
        assert!(MetricFilter::parse("acc ~ 3").is_err());
        assert!(MetricFilter::parse("acc > high").unwrap_err().contains("high"));
    }
}
