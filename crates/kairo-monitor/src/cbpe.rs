//! Confidence-based performance estimation (CBPE) for binary classifiers, as NannyML computes
//! it (checked against nannyml on `fixtures/cbpe/golden.json`): before labels arrive, a
//! window's accuracy and ROC AUC are estimated from the model's positive-class probabilities,
//! calibrated on labelled reference rows.
//! - Calibration: isotonic regression of the labels on the probabilities (scikit-learn's
//!   `IsotonicRegression(out_of_bounds="clip")`: ties averaged, pool-adjacent-violators,
//!   linear between knots). Skipped when it would not lower the expected calibration error
//!   (see [`needs_calibration`]).
//! - Estimated accuracy: the mean over rows of the calibrated probability that the prediction
//!   is right (`p` when the row is predicted positive, `1 - p` otherwise).
//! - Estimated ROC AUC: each calibrated probability is a row's expected share of a positive;
//!   the expected confusion counts at every distinct threshold give an expected ROC curve,
//!   integrated by the trapezoid rule.
//! - Sampling errors (the estimates' noise for a window of `n` rows) from the reference's
//!   spread: accuracy `std(correct) / √n`; AUC `std(normalised positive ranks) / √(n·share)`.
//!
//! Estimates are marked as such wherever they are shown; realised values replace them once a
//! window's labels arrive.

use std::cmp::Ordering;

pub use kairo_core::profile::Estimator;

use crate::performance;

/// Isotonic (non-decreasing) regression of `y` on `x`, as knots: the distinct `x` (sorted) and
/// the fitted value at each. Linear between knots and clipped outside, like scikit-learn's.
pub fn isotonic(x: &[f64], y: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let mut order: Vec<usize> = (0..x.len()).filter(|&i| x[i].is_finite() && y[i].is_finite()).collect();
    order.sort_by(|a, b| x[*a].total_cmp(&x[*b]));
    // Ties in x become one point: the mean of their y, weighted by how many.
    let mut knots: Vec<f64> = Vec::new();
    let mut sums: Vec<(f64, f64)> = Vec::new();
    for &i in &order {
        if knots.last() == Some(&x[i]) {
            let last = sums.last_mut().expect("pushed with the knot");
            last.0 += y[i];
            last.1 += 1.0;
        } else {
            knots.push(x[i]);
            sums.push((y[i], 1.0));
        }
    }
    // Pool adjacent violators: blocks of (sum, weight, how many knots).
    let mut blocks: Vec<(f64, f64, usize)> = Vec::with_capacity(sums.len());
    for (s, w) in sums {
        blocks.push((s, w, 1));
        while blocks.len() > 1 {
            let (s2, w2, n2) = blocks[blocks.len() - 1];
            let (s1, w1, n1) = blocks[blocks.len() - 2];
            if s1 / w1 <= s2 / w2 {
                break;
            }
            blocks.pop();
            *blocks.last_mut().expect("two blocks") = (s1 + s2, w1 + w2, n1 + n2);
        }
    }
    let fitted = blocks.iter().flat_map(|&(s, w, n)| std::iter::repeat_n(s / w, n)).collect();
    (knots, fitted)
}

/// The calibrated value of `p`: linear between knots, clipped outside (`np.interp`).
pub fn calibrate(knots: &[f64], values: &[f64], p: f64) -> f64 {
    if knots.is_empty() {
        return p;
    }
    if p <= knots[0] {
        return values[0];
    }
    let last = knots.len() - 1;
    if p >= knots[last] {
        return values[last];
    }
    let j = knots.partition_point(|k| *k <= p);
    let (x0, x1, y0, y1) = (knots[j - 1], knots[j], values[j - 1], values[j]);
    if x1 == x0 {
        return y1;
    }
    y0 + (p - x0) * (y1 - y0) / (x1 - x0)
}

/// Expected calibration error over `bins` equal-width bins of the probabilities.
fn calibration_error(p: &[f64], y: &[f64], bins: usize) -> f64 {
    let mut sum_p = vec![0.0; bins];
    let mut sum_y = vec![0.0; bins];
    let mut count = vec![0.0; bins];
    for (&p, &y) in p.iter().zip(y) {
        let b = ((p * bins as f64) as usize).min(bins - 1);
        sum_p[b] += p;
        sum_y[b] += y;
        count[b] += 1.0;
    }
    let n = p.len() as f64;
    (0..bins).filter(|&b| count[b] > 0.0).map(|b| (sum_p[b] - sum_y[b]).abs() / n).sum()
}

/// Whether isotonic calibration lowers the expected calibration error (10 bins) on held-out
/// tenths of the reference: 10 folds, every tenth row in turn held out, calibrated on the rest.
pub fn needs_calibration(p: &[f64], y: &[f64]) -> bool {
    let n = p.len();
    if n < 20 || performance::auc(p, &y.iter().map(|v| *v > 0.5).collect::<Vec<_>>()) == Some(1.0) {
        return false;
    }
    let (mut before, mut after) = (0.0, 0.0);
    for fold in 0..10 {
        let (mut tp, mut ty, mut hp, mut hy) = (vec![], vec![], vec![], vec![]);
        for i in 0..n {
            if i % 10 == fold {
                hp.push(p[i]);
                hy.push(y[i]);
            } else {
                tp.push(p[i]);
                ty.push(y[i]);
            }
        }
        let (k, v) = isotonic(&tp, &ty);
        let calibrated: Vec<f64> = hp.iter().map(|p| calibrate(&k, &v, *p)).collect();
        before += calibration_error(&hp, &hy, 10);
        after += calibration_error(&calibrated, &hy, 10);
    }
    after < before
}

/// Standard deviation (population) of values.
fn std(values: impl Iterator<Item = f64> + Clone) -> f64 {
    let (n, sum) = values.clone().fold((0.0, 0.0), |(n, s), v| (n + 1.0, s + v));
    if n == 0.0 {
        return 0.0;
    }
    let mean = sum / n;
    (values.map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt()
}

/// AUC's sampling-error components from labelled reference rows: the spread of the positives'
/// ranks among the negatives, and the share of positives (the minority class taken as positive).
fn auc_components(p: &[f64], positive: &[bool]) -> (f64, f64) {
    let share = positive.iter().filter(|v| **v).count() as f64 / positive.len().max(1) as f64;
    let flip = share > 0.5;
    let mut rows: Vec<(f64, bool)> =
        p.iter().zip(positive).map(|(&p, &y)| if flip { (1.0 - p, !y) } else { (p, y) }).collect();
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    let negatives = rows.iter().filter(|r| !r.1).count() as f64;
    let ranks: Vec<f64> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.1)
        .enumerate()
        .map(|(k, (rank, _))| (rank - k) as f64 / negatives.max(1.0))
        .collect();
    (std(ranks.iter().copied()), if flip { 1.0 - share } else { share })
}

/// Fit the estimator on labelled reference rows: the positive-class probability and whether
/// each row is positive (and predicted positive: `p >= 0.5` unless the model says otherwise).
/// `None` without both classes.
pub fn fit(reference: &str, positive: &str, p: &[f64], is_pos: &[bool], predicted: &[bool]) -> Option<Estimator> {
    let auc = performance::auc(p, is_pos)?;
    let y: Vec<f64> = is_pos.iter().map(|&v| if v { 1.0 } else { 0.0 }).collect();
    let (knots, calibrated) = if needs_calibration(p, &y) { isotonic(p, &y) } else { (Vec::new(), Vec::new()) };
    let correct = || is_pos.iter().zip(predicted).map(|(a, b)| if a == b { 1.0 } else { 0.0 });
    let (auc_std, positive_share) = auc_components(p, is_pos);
    Some(Estimator {
        reference: reference.to_string(),
        rows: p.len() as u64,
        positive: positive.to_string(),
        knots,
        calibrated,
        accuracy_std: std(correct()),
        auc_std,
        positive_share,
        accuracy: correct().sum::<f64>() / p.len() as f64,
        auc,
    })
}

/// A window's estimates with their sampling errors.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Estimate {
    pub rows: u64,
    pub accuracy: f64,
    pub accuracy_error: f64,
    /// `None` when every calibrated probability is the same (no curve to estimate).
    pub auc: Option<f64>,
    pub auc_error: f64,
}

/// Estimate accuracy and AUC of rows from their (raw) positive-class probabilities and
/// predictions. `None` for no rows.
pub fn estimate(e: &Estimator, p: &[f64], predicted: &[bool]) -> Option<Estimate> {
    if p.is_empty() {
        return None;
    }
    let mut q: Vec<f64> = p.iter().map(|&p| calibrate(&e.knots, &e.calibrated, p)).collect();
    let n = q.len() as f64;
    let accuracy = q.iter().zip(predicted).map(|(&q, &pos)| if pos { q } else { 1.0 - q }).sum::<f64>() / n;
    q.sort_by(f64::total_cmp);
    let auc = estimated_auc(&q);
    Some(Estimate {
        rows: p.len() as u64,
        accuracy,
        accuracy_error: e.accuracy_std / n.sqrt(),
        auc,
        auc_error: e.auc_std / (n * e.positive_share).sqrt(),
    })
}

/// The expected ROC curve's area from sorted calibrated probabilities: at the threshold of each
/// distinct value `t`, rows at or above it are predicted positive and each row counts as `q`
/// positive and `1 - q` negative.
fn estimated_auc(sorted: &[f64]) -> Option<f64> {
    let total_pos: f64 = sorted.iter().sum();
    let total_neg = sorted.len() as f64 - total_pos;
    if total_pos <= 0.0 || total_neg <= 0.0 {
        return None;
    }
    // Walk thresholds from the highest down: (fpr, tpr) points from (0, 0) to (1, 1).
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut points = vec![(0.0, 0.0)];
    let mut i = sorted.len();
    while i > 0 {
        let t = sorted[i - 1];
        while i > 0 && sorted[i - 1].total_cmp(&t) == Ordering::Equal {
            tp += sorted[i - 1];
            fp += 1.0 - sorted[i - 1];
            i -= 1;
        }
        points.push((fp / total_neg, tp / total_pos));
    }
    let area = points.windows(2).map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0).sum();
    Some(area)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isotonic_pools_violators_and_interpolates() {
        let (k, v) = isotonic(&[0.1, 0.2, 0.3, 0.4, 0.4], &[0.0, 1.0, 0.0, 1.0, 1.0]);
        assert_eq!(k, vec![0.1, 0.2, 0.3, 0.4]);
        assert_eq!(v, vec![0.0, 0.5, 0.5, 1.0]);
        assert_eq!(calibrate(&k, &v, 0.0), 0.0);
        assert!((calibrate(&k, &v, 0.35) - 0.75).abs() < 1e-12);
        assert_eq!(calibrate(&k, &v, 0.9), 1.0);
    }

    #[test]
    fn a_perfectly_separating_reference_estimates_perfect_scores() {
        let p = [0.0, 0.0, 1.0, 1.0];
        assert_eq!(estimated_auc(&p), Some(1.0));
        assert_eq!(estimated_auc(&[0.5, 0.5]), Some(0.5));
        assert_eq!(estimated_auc(&[0.0, 0.0]), None);
    }
}
