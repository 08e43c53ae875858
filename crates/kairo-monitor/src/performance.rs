//! Model quality from predictions and ground truth, shared by `kairo train`, promotion gates
//! (on a holdout) and monitoring (once labels arrive): accuracy, balanced accuracy, precision,
//! recall, F1 (binary, macro, weighted), ROC AUC, log loss and the confusion matrix for
//! classifiers (binary: the positive class is the larger label); RMSE, MAE, R² and MAPE for
//! regressors. Checked against scikit-learn on `fixtures/metrics/golden.json`.

use std::collections::BTreeMap;

pub const CLASSIFICATION: [&str; 13] = [
    "accuracy",
    "balanced_accuracy",
    "precision",
    "recall",
    "f1",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
    "auc",
    "log_loss",
];
pub const REGRESSION: [&str; 4] = ["rmse", "mae", "r2", "mape"];

/// "1.0" and "1" name the same class.
pub fn normalise_label(t: &str) -> String {
    let t = t.trim();
    match t.parse::<f64>() {
        Ok(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{}", v as i64),
        _ => t.to_string(),
    }
}

/// The classes of truth and predictions, in label order (numerically when they are numbers).
pub fn classes(truth: &[String], predicted: &[String]) -> Vec<String> {
    let mut classes: Vec<String> = truth.iter().chain(predicted).cloned().collect();
    classes.sort_by(|a, b| match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.total_cmp(&y),
        _ => a.cmp(b),
    });
    classes.dedup();
    classes
}

/// Classification metrics of normalised labels. Two classes: `precision`, `recall` and `f1`
/// are the positive (larger) class's; more: their macro averages. Always: `accuracy`,
/// `balanced_accuracy` and the `_macro` and `_weighted` (by support) averages over the labels
/// of truth and predictions, a class never predicted having precision 0 (scikit-learn's
/// `zero_division=0`). `positive_scores`, the predicted probability of the positive class,
/// adds AUC and log loss (two classes only). Metrics that cannot be computed (AUC with one
/// class present) are left out.
pub fn classification(
    truth: &[String],
    predicted: &[String],
    positive_scores: Option<&[f64]>,
) -> BTreeMap<&'static str, f64> {
    let n = truth.len().min(predicted.len());
    if n == 0 {
        return BTreeMap::new();
    }
    let (truth, predicted) = (&truth[..n], &predicted[..n]);
    let (classes, matrix) = confusion(truth, predicted);
    let k = classes.len();
    let mut out = confusion_metrics(&matrix, (k <= 2).then_some(k - 1));
    let positive = classes.last().cloned().unwrap_or_default();
    if let Some(scores) = positive_scores.filter(|s| s.len() >= n && k <= 2) {
        let is_pos: Vec<bool> = truth.iter().map(|t| *t == positive).collect();
        if let Some(a) = auc(&scores[..n], &is_pos) {
            out.insert("auc", a);
        }
        out.insert("log_loss", log_loss(&scores[..n], &is_pos));
    }
    out
}

/// The label metrics of `classification` from a confusion matrix in label order (row = true
/// class, column = predicted class). Classes with neither a true nor a predicted row are left
/// out of the averages, so a matrix over more classes than the rows hold gives what the rows
/// alone give. `positive`: the class whose `precision`, `recall` and `f1` are reported (two
/// classes); `None`: their macro averages. No rows: no metrics.
pub fn confusion_metrics(matrix: &[Vec<u64>], positive: Option<usize>) -> BTreeMap<&'static str, f64> {
    let mut out = BTreeMap::new();
    let k = matrix.len();
    let support: Vec<f64> = (0..k).map(|i| matrix[i].iter().sum::<u64>() as f64).collect();
    let n: f64 = support.iter().sum();
    if n == 0.0 {
        return out;
    }
    let predicted_count: Vec<f64> = (0..k).map(|j| (0..k).map(|i| matrix[i][j]).sum::<u64>() as f64).collect();
    let seen: Vec<usize> = (0..k).filter(|i| support[*i] > 0.0 || predicted_count[*i] > 0.0).collect();
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let precision: Vec<f64> = (0..k).map(|i| ratio(matrix[i][i] as f64, predicted_count[i])).collect();
    let recall: Vec<f64> = (0..k).map(|i| ratio(matrix[i][i] as f64, support[i])).collect();
    let f1: Vec<f64> = (0..k).map(|i| ratio(2.0 * precision[i] * recall[i], precision[i] + recall[i])).collect();
    let macro_avg = |v: &[f64]| seen.iter().map(|i| v[*i]).sum::<f64>() / seen.len() as f64;
    let weighted = |v: &[f64]| v.iter().zip(&support).map(|(x, w)| x * w).sum::<f64>() / n;
    let correct: u64 = (0..k).map(|i| matrix[i][i]).sum();
    out.insert("accuracy", correct as f64 / n);
    let present: Vec<usize> = (0..k).filter(|i| support[*i] > 0.0).collect();
    out.insert("balanced_accuracy", present.iter().map(|i| recall[*i]).sum::<f64>() / present.len() as f64);
    out.insert("precision_macro", macro_avg(&precision));
    out.insert("recall_macro", macro_avg(&recall));
    out.insert("f1_macro", macro_avg(&f1));
    out.insert("precision_weighted", weighted(&precision));
    out.insert("recall_weighted", weighted(&recall));
    out.insert("f1_weighted", weighted(&f1));
    match positive.filter(|p| *p < k) {
        Some(p) => {
            out.insert("precision", precision[p]);
            out.insert("recall", recall[p]);
            out.insert("f1", f1[p]);
        }
        None => {
            out.insert("precision", macro_avg(&precision));
            out.insert("recall", macro_avg(&recall));
            out.insert("f1", macro_avg(&f1));
        }
    }
    out
}

/// The confusion matrix over the labels of truth and predictions (in label order): row =
/// true class, column = predicted class.
pub fn confusion(truth: &[String], predicted: &[String]) -> (Vec<String>, Vec<Vec<u64>>) {
    let classes = classes(truth, predicted);
    let index: std::collections::HashMap<&str, usize> =
        classes.iter().enumerate().map(|(i, c)| (c.as_str(), i)).collect();
    let mut matrix = vec![vec![0u64; classes.len()]; classes.len()];
    for (t, p) in truth.iter().zip(predicted) {
        matrix[index[t.as_str()]][index[p.as_str()]] += 1;
    }
    (classes, matrix)
}

/// Regression metrics.
pub fn regression(truth: &[f64], predicted: &[f64]) -> BTreeMap<&'static str, f64> {
    let mut out = BTreeMap::new();
    let n = truth.len().min(predicted.len());
    if n == 0 {
        return out;
    }
    let nf = n as f64;
    let err: Vec<f64> = truth.iter().zip(predicted).map(|(a, b)| a - b).collect();
    let sse: f64 = err.iter().map(|e| e * e).sum();
    out.insert("rmse", (sse / nf).sqrt());
    out.insert("mae", err.iter().map(|e| e.abs()).sum::<f64>() / nf);
    // scikit-learn's mean_absolute_percentage_error: |error| / max(|truth|, machine epsilon).
    out.insert("mape", truth[..n].iter().zip(&err).map(|(t, e)| e.abs() / t.abs().max(f64::EPSILON)).sum::<f64>() / nf);
    let mean = truth[..n].iter().sum::<f64>() / nf;
    let total: f64 = truth[..n].iter().map(|v| (v - mean).powi(2)).sum();
    if total > 0.0 {
        out.insert("r2", 1.0 - sse / total);
    }
    out
}

fn log_loss(score: &[f64], is_pos: &[bool]) -> f64 {
    let eps = 1e-15;
    score
        .iter()
        .zip(is_pos)
        .map(|(s, y)| {
            let s = s.clamp(eps, 1.0 - eps);
            if *y {
                -s.ln()
            } else {
                -(1.0 - s).ln()
            }
        })
        .sum::<f64>()
        / score.len() as f64
}

/// Area under the ROC curve by ranks (ties get average ranks), as scikit-learn computes it;
/// `None` unless both classes are present.
pub fn auc(score: &[f64], is_pos: &[bool]) -> Option<f64> {
    let pos = is_pos.iter().filter(|p| **p).count() as f64;
    let neg = is_pos.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return None;
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
    Some((pos_ranks - pos * (pos + 1.0) / 2.0) / (pos * neg))
}

/// Whether a larger value of `metric` is better.
pub fn higher_is_better(metric: &str) -> bool {
    !matches!(metric, "rmse" | "mae" | "log_loss" | "mse" | "loss" | "size_mb") && !metric.starts_with("latency")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn auc_matches_hand_computation() {
        // sklearn.metrics.roc_auc_score([0,0,1,1],[0.1,0.4,0.35,0.8]) == 0.75
        let v = auc(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]).unwrap();
        assert!((v - 0.75).abs() < 1e-12);
        assert!(auc(&[0.1, 0.2], &[true, true]).is_none());
    }

    #[test]
    fn binary_metrics_by_hand() {
        let m = classification(&s(&["0", "0", "1", "1"]), &s(&["0", "1", "1", "0"]), Some(&[0.1, 0.6, 0.9, 0.4]));
        assert_eq!(m["accuracy"], 0.5);
        assert_eq!((m["precision"], m["recall"], m["f1"]), (0.5, 0.5, 0.5));
        assert_eq!(m["auc"], 0.75);
        let want = -(0.9f64.ln() + 0.4f64.ln() + 0.9f64.ln() + 0.4f64.ln()) / 4.0;
        assert!((m["log_loss"] - want).abs() < 1e-12);
    }

    #[test]
    fn regression_by_hand() {
        let m = regression(&[1.0, 2.0, 3.0], &[1.0, 2.0, 5.0]);
        assert!((m["rmse"] - (4.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((m["mae"] - 2.0 / 3.0).abs() < 1e-12);
        assert!((m["r2"] - (1.0 - 4.0 / 2.0)).abs() < 1e-12);
    }
}
