//! Evaluate a model on a holdout CSV: map columns to the model's inputs, run it in Kairo's
//! runtime, and score the predictions against the target column.

use std::collections::HashMap;
use std::path::Path;

use kairo_runtime::{DType, Data, Model, Tensor};

/// A CSV read into memory: header and string cells.
#[derive(Debug, Clone)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn read(path: &Path) -> Result<Table, String> {
        let mut reader = csv::Reader::from_path(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::from_reader(&mut reader, &path.display().to_string())
    }

    pub fn parse(bytes: &[u8], label: &str) -> Result<Table, String> {
        let mut reader = csv::Reader::from_reader(bytes);
        Self::from_reader(&mut reader, label)
    }

    fn from_reader<R: std::io::Read>(reader: &mut csv::Reader<R>, label: &str) -> Result<Table, String> {
        let columns: Vec<String> =
            reader.headers().map_err(|e| format!("{label}: {e}"))?.iter().map(str::to_string).collect();
        let mut rows = Vec::new();
        for (i, record) in reader.records().enumerate() {
            let record = record.map_err(|e| format!("{label}: row {}: {e}", i + 2))?;
            rows.push(record.iter().map(str::to_string).collect());
        }
        Ok(Table { columns, rows })
    }

    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }
}

fn float(cell: &str, column: &str, row: usize) -> Result<f32, String> {
    if cell.trim().is_empty() {
        return Ok(f32::NAN);
    }
    cell.trim().parse().map_err(|_| format!("column '{column}', row {}: `{cell}` is not a number", row + 2))
}

/// The model's inputs for rows `start..end` of the table: one `[N, k]` float input takes
/// every column but the target, in file order; otherwise each input takes its own column.
pub fn inputs(
    model: &Model,
    table: &Table,
    target: &str,
    start: usize,
    end: usize,
) -> Result<HashMap<String, Tensor>, String> {
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
            return Err(format!(
                "input '{}' takes {want} features but the holdout has {} columns besides '{target}'",
                spec.name,
                features.len()
            ));
        }
        let mut data = Vec::with_capacity(n * features.len());
        for (r, row) in rows.iter().enumerate() {
            for &c in &features {
                data.push(float(&row[c], &table.columns[c], start + r)?);
            }
        }
        out.insert(spec.name.clone(), Tensor::new(vec![n, features.len()], Data::F32(data))?);
        return Ok(out);
    }
    for spec in &sig.inputs {
        let c =
            table.column(&spec.name).ok_or_else(|| format!("the holdout has no column for input '{}'", spec.name))?;
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
                            .map_err(|_| format!("column '{}', row {}: not an integer", spec.name, start + r + 2))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            DType::Bytes => Data::Bytes(rows.iter().map(|row| row[c].clone()).collect()),
            other => {
                return Err(format!("input '{}' has type {other}, which holdout evaluation does not fill", spec.name))
            }
        };
        out.insert(spec.name.clone(), Tensor::new(shape, data)?);
    }
    Ok(out)
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

pub fn predict(model: &Model, table: &Table, target: &str) -> Result<Predictions, String> {
    let sig = model.signature();
    let label_ix = sig.outputs.iter().position(|o| matches!(o.dtype, DType::I64 | DType::Bytes) && o.shape.len() == 1);
    let prob_ix = sig.outputs.iter().position(|o| o.dtype == DType::F32 && o.shape.len() == 2);
    let mut labels = label_ix.map(|_| Vec::new());
    let mut probabilities: Option<(usize, Vec<f32>)> = None;
    let mut values = if label_ix.is_none() { Some(Vec::new()) } else { None };
    const BATCH: usize = 4096;
    let mut start = 0;
    while start < table.rows.len() {
        let end = (start + BATCH).min(table.rows.len());
        let outputs = model.infer(inputs(model, table, target, start, end)?).map_err(|e| e.to_string())?;
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
            let first = outputs.first().ok_or("the model has no outputs")?;
            values.extend((0..first.data.len()).filter_map(|i| first.data.f64_at(i)));
        }
        start = end;
    }
    Ok(Predictions { labels, probabilities, values })
}

/// Score predictions against the target column. Metrics: accuracy, precision, recall, f1,
/// auc, log_loss (binary classifiers; positive = the larger label), rmse, mae, r2 (regressors).
pub fn score(p: &Predictions, truth: &[String], metric: &str) -> Result<f64, String> {
    if truth.is_empty() {
        return Err("the holdout has no rows".into());
    }
    if let Some(values) = &p.values {
        let y: Vec<f64> = truth
            .iter()
            .enumerate()
            .map(|(i, t)| t.trim().parse::<f64>().map_err(|_| format!("target row {}: `{t}` is not a number", i + 2)))
            .collect::<Result<_, _>>()?;
        let n = y.len() as f64;
        let err: Vec<f64> = y.iter().zip(values).map(|(a, b)| a - b).collect();
        return match metric {
            "rmse" => Ok((err.iter().map(|e| e * e).sum::<f64>() / n).sqrt()),
            "mae" => Ok(err.iter().map(|e| e.abs()).sum::<f64>() / n),
            "r2" => {
                let mean = y.iter().sum::<f64>() / n;
                let total: f64 = y.iter().map(|v| (v - mean).powi(2)).sum();
                Ok(1.0 - err.iter().map(|e| e * e).sum::<f64>() / total)
            }
            other => Err(format!("`{other}` cannot be computed for a regressor (use rmse, mae or r2)")),
        };
    }
    let labels = p.labels.as_ref().ok_or("the model has no label output")?;
    let truth: Vec<String> = truth.iter().map(|t| normalise_label(t)).collect();
    let mut classes: Vec<String> = truth.iter().chain(labels.iter()).cloned().collect();
    classes.sort_by(|a, b| match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.total_cmp(&y),
        _ => a.cmp(b),
    });
    classes.dedup();
    let positive = classes.last().cloned().unwrap_or_default();
    let n = truth.len() as f64;
    let tp = truth.iter().zip(labels).filter(|(t, l)| **t == positive && **l == positive).count() as f64;
    let fp = truth.iter().zip(labels).filter(|(t, l)| **t != positive && **l == positive).count() as f64;
    let fneg = truth.iter().zip(labels).filter(|(t, l)| **t == positive && **l != positive).count() as f64;
    let precision = if tp + fp > 0.0 { tp / (tp + fp) } else { 0.0 };
    let recall = if tp + fneg > 0.0 { tp / (tp + fneg) } else { 0.0 };
    match metric {
        "accuracy" => Ok(truth.iter().zip(labels).filter(|(t, l)| t == l).count() as f64 / n),
        "precision" => Ok(precision),
        "recall" => Ok(recall),
        "f1" => Ok(if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 }),
        "auc" | "log_loss" => {
            let (width, probs) = p.probabilities.as_ref().ok_or("the model has no probability output")?;
            if *width != 2 || classes.len() > 2 {
                return Err(format!("`{metric}` is computed for binary classifiers only"));
            }
            let score: Vec<f64> = (0..truth.len()).map(|i| f64::from(probs[i * 2 + 1])).collect();
            let is_pos: Vec<bool> = truth.iter().map(|t| *t == positive).collect();
            if metric == "auc" {
                auc(&score, &is_pos)
            } else {
                let eps = 1e-15;
                Ok(score
                    .iter()
                    .zip(&is_pos)
                    .map(|(s, y)| {
                        let s = s.clamp(eps, 1.0 - eps);
                        if *y {
                            -s.ln()
                        } else {
                            -(1.0 - s).ln()
                        }
                    })
                    .sum::<f64>()
                    / n)
            }
        }
        other => Err(format!(
            "`{other}` cannot be computed for a classifier (use accuracy, precision, recall, f1, auc or log_loss)"
        )),
    }
}

/// "1.0" and "1" name the same class.
fn normalise_label(t: &str) -> String {
    let t = t.trim();
    match t.parse::<f64>() {
        Ok(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{}", v as i64),
        _ => t.to_string(),
    }
}

/// Area under the ROC curve by ranks (ties get average ranks), as scikit-learn computes it.
fn auc(score: &[f64], is_pos: &[bool]) -> Result<f64, String> {
    let pos = is_pos.iter().filter(|p| **p).count() as f64;
    let neg = is_pos.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return Err("auc needs both classes in the holdout".into());
    }
    let mut order: Vec<usize> = (0..score.len()).collect();
    order.sort_by(|a, b| score[*a].total_cmp(&score[*b]));
    let mut ranks = vec![0.0; score.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && score[order[j + 1]] == score[order[i]] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            ranks[order[k]] = rank;
        }
        i = j + 1;
    }
    let pos_ranks: f64 = ranks.iter().zip(is_pos).filter(|(_, p)| **p).map(|(r, _)| r).sum();
    Ok((pos_ranks - pos * (pos + 1.0) / 2.0) / (pos * neg))
}

/// Whether a larger value of `metric` is better.
pub fn higher_is_better(metric: &str) -> bool {
    !matches!(metric, "rmse" | "mae" | "log_loss" | "mse" | "loss" | "size_mb") && !metric.starts_with("latency")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_matches_hand_computation() {
        // sklearn.metrics.roc_auc_score([0,0,1,1],[0.1,0.4,0.35,0.8]) == 0.75
        let v = auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]).unwrap();
        assert!((v - 0.75).abs() < 1e-12);
    }
}
