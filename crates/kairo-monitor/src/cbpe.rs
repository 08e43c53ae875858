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
//!   the expected confusion counts, one curve point per row from the highest score down,
//!   give an expected ROC curve, integrated by the trapezoid rule.
//! - Sampling errors (the estimates' noise for a window of `n` rows) from the reference's
//!   spread: accuracy `std(correct) / √n`; AUC `std(normalised positive ranks) / √(n·share)`;
//!   nannyml's confidence band is the estimate ± 3 sampling errors.
//!
//! Whether to calibrate is decided on the same 10 random stratified splits nannyml draws
//! (numpy's legacy MT19937, seed 42, through scikit-learn's `StratifiedShuffleSplit`), so the
//! two decide alike; tied scores are ordered stably where numpy's sort is unstable, which moves
//! the calibration errors in the third decimal at most, never the decision on the fixtures.
//!
//! Estimates are marked as such wherever they are shown; realised values replace them once a
//! window's labels arrive.

pub use kairo_core::profile::Estimator;

use crate::frame::{Frame, Values};
use crate::performance;
use crate::MonitorError;

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

/// Expected calibration error over 10 equal-count bins of the rows sorted by score (nannyml's
/// `_calculate_expected_calibration_error`): `Σ (rows in bin / N)·|mean score − mean label|`.
fn calibration_error(p: &[f64], y: &[f64]) -> f64 {
    let n = p.len();
    if n == 0 {
        return 0.0;
    }
    let bins = if n <= 20 { (n / 2).max(1) } else { 10 };
    let width = (n / bins).max(1);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|a, b| p[*a].total_cmp(&p[*b]));
    let mut edges: Vec<usize> = (0..=n).step_by(width).collect();
    if let Some(last) = edges.last_mut() {
        *last = n;
    }
    edges
        .windows(2)
        .filter(|w| w[1] > w[0])
        .map(|w| {
            let rows = &order[w[0]..w[1]];
            let k = rows.len() as f64;
            let score = rows.iter().map(|&i| p[i]).sum::<f64>() / k;
            let label = rows.iter().map(|&i| y[i]).sum::<f64>() / k;
            k / n as f64 * (score - label).abs()
        })
        .sum()
}

/// Numpy's legacy `RandomState(seed)`: MT19937 seeded by `init_genrand`, its bounded integers
/// by masked rejection, its permutations by Fisher–Yates from the end — what scikit-learn's
/// `StratifiedShuffleSplit(random_state=42)` draws nannyml's calibration splits with, so Kairo
/// draws the same ones.
struct LegacyRandom {
    mt: [u32; 624],
    at: usize,
}

impl LegacyRandom {
    fn new(seed: u32) -> LegacyRandom {
        let mut mt = [0u32; 624];
        mt[0] = seed;
        for i in 1..624 {
            mt[i] = 1_812_433_253u32.wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30)).wrapping_add(i as u32);
        }
        LegacyRandom { mt, at: 624 }
    }

    fn next_u32(&mut self) -> u32 {
        if self.at >= 624 {
            for i in 0..624 {
                let y = (self.mt[i] & 0x8000_0000) | (self.mt[(i + 1) % 624] & 0x7fff_ffff);
                let mut v = self.mt[(i + 397) % 624] ^ (y >> 1);
                if y & 1 == 1 {
                    v ^= 0x9908_b0df;
                }
                self.mt[i] = v;
            }
            self.at = 0;
        }
        let mut y = self.mt[self.at];
        self.at += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// Uniform in `[0, max]`.
    fn interval(&mut self, max: u32) -> u32 {
        if max == 0 {
            return 0;
        }
        let mut mask = max;
        for shift in [1, 2, 4, 8, 16] {
            mask |= mask >> shift;
        }
        loop {
            let v = self.next_u32() & mask;
            if v <= max {
                return v;
            }
        }
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.interval(i as u32) as usize;
            items.swap(i, j);
        }
    }

    fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        self.shuffle(&mut p);
        p
    }
}

/// scikit-learn's `_approximate_mode`: `draws` spread over classes in proportion to `counts`,
/// the remainder given by largest fractional part, ties broken at random.
fn approximate_mode(counts: &[usize], draws: usize, rng: &mut LegacyRandom) -> Vec<usize> {
    let total: usize = counts.iter().sum();
    let continuous: Vec<f64> = counts.iter().map(|&c| c as f64 / total as f64 * draws as f64).collect();
    let mut out: Vec<usize> = continuous.iter().map(|c| c.floor() as usize).collect();
    let mut need = draws.saturating_sub(out.iter().sum());
    let remainder: Vec<f64> = continuous.iter().zip(&out).map(|(c, f)| c - *f as f64).collect();
    let mut values = remainder.clone();
    values.sort_by(|a, b| b.total_cmp(a));
    values.dedup();
    for value in values {
        if need == 0 {
            break;
        }
        let tied: Vec<usize> = (0..remainder.len()).filter(|&i| remainder[i] == value).collect();
        let take = tied.len().min(need);
        for k in rng.permutation(tied.len()).into_iter().take(take) {
            out[tied[k]] += 1;
        }
        need -= take;
    }
    out
}

/// scikit-learn's `StratifiedShuffleSplit(n_splits=10, test_size=0.1, random_state=42)` over
/// binary labels: (train, test) row indices of each split.
fn calibration_splits(is_pos: &[bool]) -> Vec<(Vec<usize>, Vec<usize>)> {
    let n = is_pos.len();
    let n_test = (0.1 * n as f64).ceil() as usize;
    let n_train = n - n_test;
    let by_class: [Vec<usize>; 2] = [(0..n).filter(|&i| !is_pos[i]).collect(), (0..n).filter(|&i| is_pos[i]).collect()];
    let counts = [by_class[0].len(), by_class[1].len()];
    let mut rng = LegacyRandom::new(42);
    (0..10)
        .map(|_| {
            let train_counts = approximate_mode(&counts, n_train, &mut rng);
            let left: Vec<usize> = counts.iter().zip(&train_counts).map(|(c, t)| c - t).collect();
            let test_counts = approximate_mode(&left, n_test, &mut rng);
            let (mut train, mut test) = (Vec::new(), Vec::new());
            for c in 0..2 {
                let perm = rng.permutation(counts[c]);
                let rows: Vec<usize> = perm.iter().map(|&k| by_class[c][k]).collect();
                train.extend_from_slice(&rows[..train_counts[c]]);
                test.extend_from_slice(&rows[train_counts[c]..train_counts[c] + test_counts[c]]);
            }
            // Shuffled as scikit-learn does: the order is irrelevant here, the draws are not.
            rng.shuffle(&mut train);
            rng.shuffle(&mut test);
            (train, test)
        })
        .collect()
}

/// Whether isotonic calibration lowers the expected calibration error on held-out rows, as
/// nannyml decides (`needs_calibration`): not for a single class or a reference AUC above
/// 0.999; else on the same 10 stratified random splits nannyml draws (seed 42), the held-out
/// rows' error before and after calibrating on the rest, over all splits' held-out rows.
pub fn needs_calibration(p: &[f64], y: &[f64]) -> bool {
    calibration_errors(p, y).is_some_and(|(before, after)| before > after)
}

/// The expected calibration errors before and after calibration that [`needs_calibration`]
/// compares; `None` when it does not get that far.
pub fn calibration_errors(p: &[f64], y: &[f64]) -> Option<(f64, f64)> {
    let is_pos: Vec<bool> = y.iter().map(|v| *v > 0.5).collect();
    match performance::auc(p, &is_pos) {
        None => return None,
        Some(auc) if auc > 0.999 => return None,
        Some(_) => {}
    }
    let (mut held_p, mut held_q, mut held_y) = (Vec::new(), Vec::new(), Vec::new());
    for (train, test) in calibration_splits(&is_pos) {
        let tp: Vec<f64> = train.iter().map(|&i| p[i]).collect();
        let ty: Vec<f64> = train.iter().map(|&i| y[i]).collect();
        let (k, v) = isotonic(&tp, &ty);
        for i in test {
            held_p.push(p[i]);
            held_q.push(calibrate(&k, &v, p[i]));
            held_y.push(y[i]);
        }
    }
    Some((calibration_error(&held_p, &held_y), calibration_error(&held_q, &held_y)))
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

/// AUC's sampling-error components from labelled reference rows (nannyml's
/// `auroc_sampling_error_components`): with the minority class as positive, the spread of how
/// many negatives rank below each positive (normalised by the negatives; the row ranked lowest
/// is left out), and the positive share.
fn auc_components(p: &[f64], positive: &[bool]) -> (f64, f64) {
    let n = positive.len();
    let share = positive.iter().filter(|v| **v).count() as f64 / n.max(1) as f64;
    let flip = share > 0.5;
    let mut rows: Vec<(f64, bool)> =
        p.iter().zip(positive).map(|(&p, &y)| if flip { (1.0 - p, !y) } else { (p, y) }).collect();
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    let positives = rows.iter().filter(|r| r.1).count() as f64;
    let negatives = n as f64 - positives;
    let below: Vec<f64> = rows
        .iter()
        .enumerate()
        .filter(|(rank, r)| r.1 && *rank > 0)
        .enumerate()
        .map(|(k, (rank, _))| (rank - k) as f64 / negatives)
        .collect();
    (std(below.iter().copied()), positives / n.max(1) as f64)
}

/// Fit the estimator on labelled reference rows: the positive-class probability and whether
/// each row is positive and predicted positive. `None` without both classes.
pub fn fit(reference: &str, positive: &str, p: &[f64], is_pos: &[bool], predicted: &[bool]) -> Option<Estimator> {
    let y: Vec<f64> = is_pos.iter().map(|&v| if v { 1.0 } else { 0.0 }).collect();
    fit_calibrating(reference, positive, p, is_pos, predicted, needs_calibration(p, &y))
}

/// [`fit`] with the calibration decision given.
pub fn fit_calibrating(
    reference: &str,
    positive: &str,
    p: &[f64],
    is_pos: &[bool],
    predicted: &[bool],
    calibrate: bool,
) -> Option<Estimator> {
    let auc = performance::auc(p, is_pos)?;
    let y: Vec<f64> = is_pos.iter().map(|&v| if v { 1.0 } else { 0.0 }).collect();
    let (knots, calibrated) = if calibrate { isotonic(p, &y) } else { (Vec::new(), Vec::new()) };
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
    // Equal values are interchangeable here: an unstable sort gives the same sums.
    q.sort_unstable_by(f64::total_cmp);
    let auc = estimated_auc(&q);
    Some(Estimate {
        rows: p.len() as u64,
        accuracy,
        accuracy_error: e.accuracy_std / n.sqrt(),
        auc,
        auc_error: e.auc_std / (n * e.positive_share).sqrt(),
    })
}

/// The expected ROC curve's area (nannyml's `estimate_roc_auc`) from calibrated probabilities
/// sorted ascending: one curve point per row, highest first; each row counts as `q` of a true
/// positive and `1 − q` of a false one; the cumulative counts rounded to 5 decimals (part of
/// nannyml's result), normalised, integrated by the trapezoid rule.
fn estimated_auc(sorted: &[f64]) -> Option<f64> {
    let round = |x: f64| (x * 1e5).round_ties_even() / 1e5;
    let mut tps = Vec::with_capacity(sorted.len() + 1);
    let mut fps = Vec::with_capacity(sorted.len() + 1);
    tps.push(0.0);
    fps.push(0.0);
    let mut tp = 0.0;
    for (i, q) in sorted.iter().rev().enumerate() {
        tp += q;
        tps.push(round(tp));
        fps.push(round(1.0 + i as f64 - tp));
    }
    let (total_tp, total_fp) = (*tps.last()?, *fps.last()?);
    if total_tp <= 0.0 || total_fp <= 0.0 {
        return None;
    }
    let mut area = 0.0;
    for k in 0..tps.len() - 1 {
        let (f0, f1) = (fps[k] / total_fp, fps[k + 1] / total_fp);
        let (t0, t1) = (tps[k] / total_tp, tps[k + 1] / total_tp);
        area += (f1 - f0) * (t1 + t0) / 2.0;
    }
    Some(area)
}

/// The bounds an estimate is judged against: the reference's realised metric over chunks of
/// the same size, mean ± 3 standard deviations, within [0, 1] (nannyml's thresholds).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Thresholds {
    pub lower: f64,
    pub upper: f64,
}

/// `[start, end)` of each chunk of `size` rows over `n`: full chunks, then the rest as a last,
/// shorter one (nannyml's `SizeBasedChunker(incomplete="keep")`).
pub fn chunks(n: usize, size: usize) -> Vec<(usize, usize)> {
    let size = size.max(1);
    (0..n).step_by(size).map(|start| (start, (start + size).min(n))).collect()
}

fn thresholds(values: &[f64]) -> Option<Thresholds> {
    let values: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if values.is_empty() {
        return None;
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let sd = std(values.iter().copied());
    Some(Thresholds { lower: (mean - 3.0 * sd).max(0.0), upper: (mean + 3.0 * sd).min(1.0) })
}

/// Thresholds for accuracy and AUC from labelled reference rows cut in chunks of `size`.
pub fn reference_thresholds(
    p: &[f64],
    is_pos: &[bool],
    predicted: &[bool],
    size: usize,
) -> (Option<Thresholds>, Option<Thresholds>) {
    let (mut acc, mut auc) = (Vec::new(), Vec::new());
    for (a, b) in chunks(p.len(), size) {
        let right = (a..b).filter(|&i| is_pos[i] == predicted[i]).count();
        acc.push(right as f64 / (b - a) as f64);
        auc.push(performance::auc(&p[a..b], &is_pos[a..b]).unwrap_or(f64::NAN));
    }
    (thresholds(&acc), thresholds(&auc))
}

/// One chunk of a file's estimate.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Chunk {
    /// Rows `[start, end)` of the current data.
    pub start: usize,
    pub end: usize,
    pub estimate: Estimate,
    /// The confidence band, estimate ± 3 sampling errors within [0, 1].
    pub accuracy_band: (f64, f64),
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auc_band: Option<(f64, f64)>,
    /// Outside the reference's thresholds.
    pub accuracy_alert: bool,
    pub auc_alert: bool,
    /// Realised values, when the current data has labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realised_accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realised_auc: Option<f64>,
}

/// Estimate chunks of current rows (raw probabilities, predictions and, when known, labels)
/// with an estimator and the reference's thresholds.
pub fn estimate_chunks(
    e: &Estimator,
    p: &[f64],
    predicted: &[bool],
    labels: Option<&[bool]>,
    size: usize,
    thresholds: (Option<Thresholds>, Option<Thresholds>),
) -> Vec<Chunk> {
    let band = |x: f64, se: f64| ((x - 3.0 * se).max(0.0), (x + 3.0 * se).min(1.0));
    let outside = |x: f64, t: Option<Thresholds>| t.is_some_and(|t| x < t.lower || x > t.upper);
    use rayon::prelude::*;
    chunks(p.len(), size)
        .into_par_iter()
        .filter_map(|(a, b)| {
            let est = estimate(e, &p[a..b], &predicted[a..b])?;
            let realised_accuracy =
                labels.map(|l| (a..b).filter(|&i| l[i] == predicted[i]).count() as f64 / (b - a) as f64);
            let realised_auc = labels.and_then(|l| performance::auc(&p[a..b], &l[a..b]));
            Some(Chunk {
                start: a,
                end: b,
                accuracy_band: band(est.accuracy, est.accuracy_error),
                auc_band: est.auc.map(|x| band(x, est.auc_error)),
                accuracy_alert: outside(est.accuracy, thresholds.0),
                auc_alert: est.auc.is_some_and(|x| outside(x, thresholds.1)),
                estimate: est,
                realised_accuracy,
                realised_auc,
            })
        })
        .collect()
}

/// Where a file's scores, labels and predictions are.
pub struct Columns<'a> {
    /// The positive class's probability.
    pub score: &'a str,
    /// The label (needed in the reference; used in the current data when present).
    pub label: &'a str,
    /// The predicted label; without it a row is predicted positive at `score >= threshold`.
    pub prediction: Option<&'a str>,
    pub threshold: f64,
}

/// A CBPE run over two files.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FileEstimate {
    /// The fitted estimator (its calibration knots are not printed).
    #[serde(skip)]
    pub estimator: Estimator,
    pub positive: String,
    pub reference_rows: u64,
    /// The realised metrics on the reference.
    pub reference_accuracy: f64,
    pub reference_auc: f64,
    pub calibrated: bool,
    pub accuracy_thresholds: Option<Thresholds>,
    pub auc_thresholds: Option<Thresholds>,
    pub chunk_size: usize,
    pub rows: usize,
    pub chunks: Vec<Chunk>,
}

/// A column's values as text labels (numbers written as `1`, not `1.0`).
fn label_texts(frame: &Frame, name: &str) -> Option<Vec<Option<String>>> {
    let c = frame.column(name)?;
    Some(match &c.values {
        Values::Numeric(v) => v.iter().map(|x| x.is_finite().then(|| crate::profile::number_text(*x))).collect(),
        Values::Categorical { codes, dictionary } => {
            codes.iter().map(|k| dictionary.get(*k as usize).map(|s| performance::normalise_label(s))).collect()
        }
    })
}

/// Which class each row of a label column holds: `Some(true)` for `positive`, `Some(false)`
/// for `negative`, `None` for anything else (missing included). Numbers are compared as
/// numbers and categories once per dictionary entry, never as a string per row.
fn classes_of(frame: &Frame, name: &str, negative: &str, positive: &str) -> Option<Vec<Option<bool>>> {
    let c = frame.column(name)?;
    let class = |t: &str| {
        let t = performance::normalise_label(t);
        if t == positive {
            Some(true)
        } else if t == negative {
            Some(false)
        } else {
            None
        }
    };
    Some(match &c.values {
        Values::Numeric(v) => {
            let (pos, neg) = (positive.parse::<f64>().ok(), negative.parse::<f64>().ok());
            v.iter()
                .map(|x| match (pos, neg) {
                    (Some(p), _) if *x == p => Some(true),
                    (_, Some(n)) if *x == n => Some(false),
                    _ if x.is_finite() => class(&crate::profile::number_text(*x)),
                    _ => None,
                })
                .collect()
        }
        Values::Categorical { codes, dictionary } => {
            let by_code: Vec<Option<bool>> = dictionary.iter().map(|d| class(d)).collect();
            codes.iter().map(|k| by_code.get(*k as usize).copied().flatten()).collect()
        }
    })
}

/// Fit on `reference` (labelled) and estimate `current` in chunks of `chunk_size` rows.
pub fn estimate_files(
    reference: (&Frame, &str),
    current: (&Frame, &str),
    c: &Columns<'_>,
    chunk_size: usize,
) -> Result<FileEstimate, MonitorError> {
    let bad = |m: String| MonitorError::Estimate(m);
    let column_names = |f: &Frame| f.columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ");
    let scores = |(f, label): (&Frame, &str)| -> Result<Vec<f64>, MonitorError> {
        let col = f.column(c.score).ok_or_else(|| {
            bad(format!(
                "{label}: no score column `{}` (its columns: {}); name it with --score",
                c.score,
                column_names(f)
            ))
        })?;
        let Values::Numeric(v) = &col.values else {
            return Err(bad(format!(
                "{label}: column `{}` is not numeric: --score names the positive class's probability",
                c.score
            )));
        };
        if let Some((row, x)) = v.iter().enumerate().find(|(_, x)| !(0.0..=1.0).contains(*x)) {
            return Err(bad(format!(
                "{label}: row {}: score {x} is not a probability in [0, 1] (a missing score cannot be estimated on either)",
                row + 2
            )));
        }
        Ok(v.clone())
    };
    let p_ref = scores(reference)?;
    let p_cur = scores(current)?;
    let truth = label_texts(reference.0, c.label).ok_or_else(|| {
        bad(format!(
            "{}: no label column `{}` (its columns: {}); name it with --label",
            reference.1,
            c.label,
            column_names(reference.0)
        ))
    })?;
    if let Some(row) = truth.iter().position(Option::is_none) {
        return Err(bad(format!(
            "{}: row {}: the label is missing; the reference must be labelled",
            reference.1,
            row + 2
        )));
    }
    let truth: Vec<String> = truth.into_iter().flatten().collect();
    let classes = performance::classes(&truth, &[]);
    let [negative, positive] = classes.as_slice() else {
        return Err(bad(format!(
            "{}: label `{}` has {} classes ({}); CBPE estimates binary classifiers",
            reference.1,
            c.label,
            classes.len(),
            classes.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
        )));
    };
    let predicted = |(f, label): (&Frame, &str), p: &[f64]| -> Result<Vec<bool>, MonitorError> {
        match c.prediction {
            None => Ok(p.iter().map(|x| *x >= c.threshold).collect()),
            Some(name) => {
                let classes = classes_of(f, name, negative, positive).ok_or_else(|| {
                    bad(format!("{label}: no prediction column `{name}` (its columns: {})", column_names(f)))
                })?;
                classes
                    .iter()
                    .enumerate()
                    .map(|(row, c)| {
                        c.ok_or_else(|| {
                            let value = label_texts(f, name).and_then(|t| t[row].clone()).unwrap_or_default();
                            bad(format!(
                                "{label}: row {}: prediction {value:?} is neither class of the reference ({negative}, {positive})",
                                row + 2
                            ))
                        })
                    })
                    .collect()
            }
        }
    };
    let yhat_ref = predicted(reference, &p_ref)?;
    let yhat_cur = predicted(current, &p_cur)?;
    let is_pos: Vec<bool> = truth.iter().map(|t| t == positive).collect();
    let estimator = fit(reference.1, positive, &p_ref, &is_pos, &yhat_ref)
        .ok_or_else(|| bad(format!("{}: the reference needs rows of both classes", reference.1)))?;
    let thresholds = reference_thresholds(&p_ref, &is_pos, &yhat_ref, chunk_size);
    let labels: Option<Vec<bool>> = classes_of(current.0, c.label, negative, positive)
        .filter(|l| l.iter().all(Option::is_some))
        .map(|l| l.into_iter().map(|c| c == Some(true)).collect());
    let chunks = estimate_chunks(&estimator, &p_cur, &yhat_cur, labels.as_deref(), chunk_size, thresholds);
    Ok(FileEstimate {
        calibrated: !estimator.knots.is_empty(),
        positive: estimator.positive.clone(),
        reference_rows: estimator.rows,
        reference_accuracy: estimator.accuracy,
        reference_auc: estimator.auc,
        estimator,
        accuracy_thresholds: thresholds.0,
        auc_thresholds: thresholds.1,
        chunk_size,
        rows: p_cur.len(),
        chunks,
    })
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
