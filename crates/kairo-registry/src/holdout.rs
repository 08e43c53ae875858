//! Evaluate a model on a holdout CSV: map columns to the model's inputs, run it in Kairo's
//! runtime, and score the predictions against the target column.

use std::collections::HashMap;
use std::path::Path;

use kairo_core::serving::{FeatureImportance, Importance};
use kairo_runtime::{DType, Data, Model, Tensor};

use crate::{RegistryError, Result};

/// A CSV read into memory: header and string cells.
#[derive(Debug, Clone)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn read(path: &Path) -> Result<Table> {
        let label = path.display().to_string();
        let mut reader =
            csv::Reader::from_path(path).map_err(|source| RegistryError::Csv { label: label.clone(), source })?;
        Self::from_reader(&mut reader, &label)
    }

    pub fn parse(bytes: &[u8], label: &str) -> Result<Table> {
        let mut reader = csv::Reader::from_reader(bytes);
        Self::from_reader(&mut reader, label)
    }

    fn from_reader<R: std::io::Read>(reader: &mut csv::Reader<R>, label: &str) -> Result<Table> {
        let columns: Vec<String> = reader
            .headers()
            .map_err(|source| RegistryError::Csv { label: label.to_string(), source })?
            .iter()
            .map(str::to_string)
            .collect();
        let mut rows = Vec::new();
        for (i, record) in reader.records().enumerate() {
            let record =
                record.map_err(|source| RegistryError::CsvRow { label: label.to_string(), row: i + 2, source })?;
            rows.push(record.iter().map(str::to_string).collect());
        }
        Ok(Table { columns, rows })
    }

    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }
}

fn float(cell: &str, column: &str, row: usize) -> Result<f32> {
    if cell.trim().is_empty() {
        return Ok(f32::NAN);
    }
    cell.trim().parse().map_err(|_| RegistryError::NotANumber {
        column: column.to_string(),
        row: row + 2,
        cell: cell.to_string(),
    })
}

/// The model's inputs for rows `start..end` of the table: one `[N, k]` float input takes
/// every column but the target, in file order; otherwise each input takes its own column.
pub fn inputs(model: &Model, table: &Table, target: &str, start: usize, end: usize) -> Result<HashMap<String, Tensor>> {
    let sig = model.signature();
    let n = end - start;
    let rows = &table.rows[start..end];
    let mut out = HashMap::new();
    let by_name = sig.inputs.iter().all(|s| table.column(&s.name).is_some());
    if !by_name && sig.inputs.len() == 1 && sig.inputs[0].dtype == DType::F32 {
        let spec = &sig.inputs[0];
        let features: Vec<usize> = (0..table.columns.len()).filter(|i| table.columns[*i] != target).collect();
        let want = spec.shape.get(1).copied().unwrap_or(-1);
        if want >= 0 && want as usize != features.len() {
            return Err(RegistryError::HoldoutWidth {
                input: spec.name.clone(),
                want,
                have: features.len(),
                target: target.to_string(),
            });
        }
        let mut data = Vec::with_capacity(n * features.len());
        for (r, row) in rows.iter().enumerate() {
            for &c in &features {
                data.push(float(&row[c], &table.columns[c], start + r)?);
            }
        }
        out.insert(
            spec.name.clone(),
            Tensor::new(vec![n, features.len()], Data::F32(data)).map_err(RegistryError::Tensor)?,
        );
        return Ok(out);
    }
    for spec in &sig.inputs {
        let c = table.column(&spec.name).ok_or_else(|| RegistryError::NoInputColumn(spec.name.clone()))?;
        let shape = if spec.shape.len() == 2 { vec![n, 1] } else { vec![n] };
        let data = match spec.dtype {
            DType::F32 => Data::F32(
                rows.iter()
                    .enumerate()
                    .map(|(r, row)| float(&row[c], &spec.name, start + r))
                    .collect::<Result<_, _>>()?,
            ),
            DType::F64 => Data::F64(
                rows.iter()
                    .enumerate()
                    .map(|(r, row)| float(&row[c], &spec.name, start + r).map(f64::from))
                    .collect::<Result<_, _>>()?,
            ),
            DType::I64 => Data::I64(
                rows.iter()
                    .enumerate()
                    .map(|(r, row)| {
                        row[c]
                            .trim()
                            .parse()
                            .map_err(|_| RegistryError::NotAnInteger { column: spec.name.clone(), row: start + r + 2 })
                    })
                    .collect::<Result<_, _>>()?,
            ),
            DType::Bytes => Data::Bytes(rows.iter().map(|row| row[c].clone()).collect()),
            other => return Err(RegistryError::InputType { input: spec.name.clone(), dtype: other }),
        };
        out.insert(spec.name.clone(), Tensor::new(shape, data).map_err(RegistryError::Tensor)?);
    }
    Ok(out)
}

/// Rows a slice of the holdout needs to be judged (gates, model cards).
pub const MIN_SLICE_ROWS: usize = 30;

/// `METRIC[COLUMN=VALUE]` (one slice) or `METRIC[COLUMN]` (its worst slice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slicing {
    pub metric: String,
    pub column: String,
    pub value: Option<String>,
}

impl Slicing {
    pub fn parse(text: &str) -> Option<Slicing> {
        let (metric, rest) = text.split_once('[')?;
        let inside = rest.strip_suffix(']')?;
        let (column, value) = match inside.split_once('=') {
            Some((c, v)) => (c.trim(), Some(v.trim().trim_matches('"').to_string())),
            None => (inside.trim(), None),
        };
        (!metric.is_empty() && !column.is_empty()).then(|| Slicing {
            metric: metric.to_string(),
            column: column.to_string(),
            value,
        })
    }
}

/// Rows of the table by the value of column `c`; a numeric column with more than 10 distinct
/// values is cut in quintiles (`(a, b]`).
pub fn groups(table: &Table, c: usize) -> Vec<(String, Vec<usize>)> {
    let values: Vec<Option<f64>> = table.rows.iter().map(|r| r[c].trim().parse::<f64>().ok()).collect();
    let mut distinct: Vec<f64> = values.iter().flatten().copied().filter(|v| v.is_finite()).collect();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup();
    let mut out: std::collections::BTreeMap<String, Vec<usize>> = std::collections::BTreeMap::new();
    if values.iter().all(Option::is_some) && distinct.len() > 10 {
        let mut sorted: Vec<f64> = values.iter().flatten().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let edges: Vec<f64> = (1..5).map(|k| sorted[k * (sorted.len() - 1) / 5]).collect();
        let text = kairo_monitor::profile::number_text;
        for (i, v) in values.iter().enumerate() {
            let v = v.unwrap_or(f64::NAN);
            let b = edges.partition_point(|e| *e < v);
            let low = if b == 0 { "-inf".to_string() } else { text(edges[b - 1]) };
            let high = edges.get(b).map_or("inf".to_string(), |e| text(*e));
            out.entry(format!("({low}, {high}]")).or_default().push(i);
        }
    } else {
        for (i, r) in table.rows.iter().enumerate() {
            out.entry(r[c].clone()).or_default().push(i);
        }
    }
    out.into_iter().collect()
}

/// What a model predicted for the holdout.
pub struct Predictions {
    /// Class labels as text (classifiers).
    pub labels: Option<Vec<String>>,
    /// Probability of each class, row-major `[N, classes]` (classifiers with a probability output).
    pub probabilities: Option<(usize, Vec<f32>)>,
    /// Predicted values (regressors).
    pub values: Option<Vec<f64>>,
}

impl Predictions {
    /// The predictions of rows `idx`, in that order (repeats allowed: bootstrap resamples).
    pub fn pick(&self, idx: &[usize]) -> Predictions {
        Predictions {
            labels: self.labels.as_ref().map(|l| idx.iter().map(|&i| l[i].clone()).collect()),
            probabilities: self
                .probabilities
                .as_ref()
                .map(|(w, v)| (*w, idx.iter().flat_map(|&i| v[i * w..(i + 1) * w].iter().copied()).collect())),
            values: self.values.as_ref().map(|v| idx.iter().map(|&i| v[i]).collect()),
        }
    }
}

/// The outputs holding a classifier's labels (`[N]` integers or strings) and its class
/// probabilities (`[N, classes]` floats); a model without labels is a regressor.
pub fn output_roles(sig: &kairo_runtime::Signature) -> (Option<usize>, Option<usize>) {
    let label_ix = sig.outputs.iter().position(|o| matches!(o.dtype, DType::I64 | DType::Bytes) && o.shape.len() == 1);
    let prob_ix = sig.outputs.iter().position(|o| o.dtype == DType::F32 && o.shape.len() == 2);
    (label_ix, prob_ix)
}

pub fn predict(model: &Model, table: &Table, target: &str) -> Result<Predictions> {
    let sig = model.signature();
    let (label_ix, prob_ix) = output_roles(sig);
    let mut labels = label_ix.map(|_| Vec::new());
    let mut probabilities: Option<(usize, Vec<f32>)> = None;
    let mut values = if label_ix.is_none() { Some(Vec::new()) } else { None };
    const BATCH: usize = 4096;
    let mut start = 0;
    while start < table.rows.len() {
        let end = (start + BATCH).min(table.rows.len());
        let outputs = model.infer(inputs(model, table, target, start, end)?).map_err(RegistryError::Inference)?;
        if let (Some(ix), Some(labels)) = (label_ix, labels.as_mut()) {
            match &outputs[ix].data {
                Data::I64(v) => labels.extend(v.iter().map(|x| x.to_string())),
                Data::Bytes(v) => labels.extend(v.iter().cloned()),
                _ => {}
            }
            if let (Some(p), Data::F32(v)) = (prob_ix, prob_ix.map(|p| &outputs[p].data).unwrap_or(&Data::F32(vec![])))
            {
                let width = outputs[p].shape.get(1).copied().unwrap_or(1);
                probabilities.get_or_insert_with(|| (width, Vec::new())).1.extend_from_slice(v);
            }
        }
        if let Some(values) = values.as_mut() {
            let first = outputs.first().ok_or(RegistryError::NoOutputs)?;
            values.extend((0..first.data.len()).filter_map(|i| first.data.f64_at(i)));
        }
        start = end;
    }
    Ok(Predictions { labels, probabilities, values })
}

/// Score predictions against the target column. Metrics: accuracy, precision, recall, f1,
/// auc, log_loss (binary classifiers; positive = the larger label), rmse, mae, r2 (regressors).
pub fn score(p: &Predictions, truth: &[String], metric: &str) -> Result<f64> {
    use kairo_monitor::performance;
    if truth.is_empty() {
        return Err(RegistryError::EmptyHoldout);
    }
    if let Some(values) = &p.values {
        let y: Vec<f64> = truth
            .iter()
            .enumerate()
            .map(|(i, t)| {
                t.trim().parse::<f64>().map_err(|_| RegistryError::TargetNotANumber { row: i + 2, value: t.clone() })
            })
            .collect::<Result<_, _>>()?;
        if !performance::REGRESSION.contains(&metric) {
            return Err(RegistryError::MetricForRegressor(metric.to_string()));
        }
        return performance::regression(&y, values)
            .get(metric)
            .copied()
            .ok_or_else(|| RegistryError::MetricConstantTarget(metric.to_string()));
    }
    let labels = p.labels.as_ref().ok_or(RegistryError::NoLabelOutput)?;
    if !performance::CLASSIFICATION.contains(&metric) {
        return Err(RegistryError::MetricForClassifier(metric.to_string()));
    }
    let truth: Vec<String> = truth.iter().map(|t| performance::normalise_label(t)).collect();
    let classes = performance::classes(&truth, labels);
    let scores: Option<Vec<f64>> = match (&p.probabilities, metric) {
        (_, "auc" | "log_loss") if classes.len() > 2 => {
            return Err(RegistryError::MetricBinaryOnly(metric.to_string()))
        }
        (Some((2, probs)), _) => Some((0..truth.len()).map(|i| f64::from(probs[i * 2 + 1])).collect()),
        (Some(_), "auc" | "log_loss") => return Err(RegistryError::MetricBinaryOnly(metric.to_string())),
        (None, "auc" | "log_loss") => return Err(RegistryError::NoProbabilityOutput),
        _ => None,
    };
    performance::classification(&truth, labels, scores.as_deref())
        .get(metric)
        .copied()
        .ok_or_else(|| RegistryError::MetricOneClass(metric.to_string()))
}

/// Rows of the holdout used for permutation importance.
const IMPORTANCE_ROWS: usize = 10_000;
/// Shuffles per column.
const IMPORTANCE_REPEATS: u64 = 5;

/// Permutation feature importance (as scikit-learn's `permutation_importance` with the
/// estimator's default score): the drop in accuracy (classifiers) or R² (regressors) when one
/// column's values are shuffled, mean and standard deviation over 5 seeded shuffles, for
/// each column the model reads, most important first. `holdout` is left for the caller, who
/// knows the file's name.
pub fn permutation_importance(model: &Model, table: &Table, target: &str) -> Result<Importance> {
    let t = table.column(target).ok_or_else(|| RegistryError::NoHoldoutTarget(target.to_string()))?;
    let mut table = table.clone();
    table.rows.truncate(IMPORTANCE_ROWS);
    if table.rows.len() < 2 {
        return Err(RegistryError::HoldoutTooSmall);
    }
    let truth: Vec<String> = table.rows.iter().map(|r| r[t].clone()).collect();
    let metric = if output_roles(model.signature()).0.is_some() { "accuracy" } else { "r2" };
    let baseline = score(&predict(model, &table, target)?, &truth, metric)?;
    let sig = model.signature();
    let by_name = sig.inputs.iter().all(|s| table.column(&s.name).is_some());
    let columns: Vec<usize> = (0..table.columns.len())
        .filter(|c| *c != t && (!by_name || sig.inputs.iter().any(|s| s.name == table.columns[*c])))
        .collect();
    let mut features = Vec::new();
    for &c in &columns {
        let mut drops = Vec::new();
        for repeat in 0..IMPORTANCE_REPEATS {
            let mut column: Vec<String> = table.rows.iter().map(|r| r[c].clone()).collect();
            kairo_core::splitmix::SplitMix64::new(kairo_core::splitmix::stream(repeat, c as u64 + 1))
                .shuffle(&mut column);
            let mut shuffled = table.clone();
            for (row, cell) in shuffled.rows.iter_mut().zip(column) {
                row[c] = cell;
            }
            drops.push(baseline - score(&predict(model, &shuffled, target)?, &truth, metric)?);
        }
        let n = drops.len() as f64;
        let mean = drops.iter().sum::<f64>() / n;
        let std = (drops.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / n).sqrt();
        features.push(FeatureImportance { name: table.columns[c].clone(), importance: mean, std });
    }
    // Most important first; a NaN drop (stored as null) sorts as 0, as it always has.
    let key = |f: &FeatureImportance| if f.importance.is_nan() { 0.0 } else { f.importance };
    features.sort_by(|a, b| key(b).total_cmp(&key(a)));
    Ok(Importance {
        metric: metric.to_string(),
        baseline,
        rows: table.rows.len() as u64,
        holdout: String::new(),
        features,
    })
}

/// Whether a larger value of `metric` is better.
pub use kairo_monitor::performance::higher_is_better;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn regressor(values: &[f64]) -> Predictions {
        Predictions { labels: None, probabilities: None, values: Some(values.to_vec()) }
    }

    fn truth(values: &[&str]) -> Vec<String> {
        values.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_metric_that_cannot_be_computed_says_why() {
        let p = regressor(&[1.0, 2.0]);
        let e = score(&p, &truth(&["1", "2"]), "auc").unwrap_err();
        assert!(matches!(e, RegistryError::MetricForRegressor(ref m) if m == "auc"), "{e:?}");
        assert_eq!(e.to_string(), "`auc` cannot be computed for a regressor (use rmse, mae or r2)");
        let e = score(&p, &truth(&["1", "two"]), "rmse").unwrap_err();
        assert!(matches!(e, RegistryError::TargetNotANumber { row: 3, ref value } if value == "two"), "{e:?}");
        assert!(matches!(score(&p, &[], "rmse"), Err(RegistryError::EmptyHoldout)));
        assert!((score(&p, &truth(&["1", "2"]), "rmse").unwrap()).abs() < 1e-12);

        let labels = Predictions { labels: Some(truth(&["a", "b", "c"])), probabilities: None, values: None };
        let e = score(&labels, &truth(&["a", "b", "c"]), "auc").unwrap_err();
        assert!(matches!(e, RegistryError::MetricBinaryOnly(_)), "{e:?}");
        let e = score(&labels, &truth(&["a", "b", "c"]), "rmse").unwrap_err();
        assert!(matches!(e, RegistryError::MetricForClassifier(_)), "{e:?}");
        let two = Predictions { labels: Some(truth(&["a", "b"])), probabilities: None, values: None };
        assert!(matches!(score(&two, &truth(&["a", "b"]), "log_loss"), Err(RegistryError::NoProbabilityOutput)));
    }

    #[test]
    fn a_ragged_holdout_names_its_row() {
        let e = Table::parse(b"a,y\n1,0\n2\n", "holdout.csv").unwrap_err();
        assert!(matches!(e, RegistryError::CsvRow { row: 3, ref label, .. } if label == "holdout.csv"), "{e:?}");
        assert!(e.to_string().starts_with("holdout.csv: row 3: "), "{e}");
    }
}
