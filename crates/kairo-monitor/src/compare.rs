//! Is the challenger better than the champion? Both models scored on the same rows, compared
//! with a paired test, so the row-to-row variation both share cancels out:
//!
//! - **Paired bootstrap** of a metric's difference: resample the rows with replacement (the
//!   same resample for both models), compute the metric for each, and take the percentile
//!   interval of the differences (as `scipy.stats.bootstrap(..., paired=True,
//!   method="percentile")`). Seeded: the same rows and seed give the same interval.
//! - **McNemar's test** of accuracy: only the rows where exactly one model is right count;
//!   exact binomial below 25 of them, chi-square with continuity correction above (as
//!   `statsmodels.stats.contingency_tables.mcnemar`).
//! - **Slices**: the paired bootstrap within each value of a column; a slice "regressed" when
//!   its whole interval is below zero.
//!
//! Differences are oriented so that positive is better (for loss metrics, champion minus
//! challenger). Classes, and for two of them the positive one, are fixed from all rows, so a
//! resample or slice without the positive class still scores that class (0, as scikit-learn's
//! `zero_division=0`) for both models alike.
//!
//! Each model's predictions are prepared once (rows sorted by score, class indices, a loss per
//! row) and a resample is how many times each row was drawn, so it costs one pass over the
//! rows: no copies, no sorting.

use std::collections::HashMap;

use kairo_core::splitmix::SplitMix64;
use serde::Serialize;
use statrs::distribution::{Binomial, DiscreteCDF};

use crate::performance;

/// Resamples of the bootstrap unless told otherwise.
pub const DEFAULT_RESAMPLES: usize = 2000;
/// Slices with fewer rows are reported, not judged.
pub const MIN_SLICE_ROWS: usize = 30;

/// What a model said for each row.
#[derive(Debug, Clone, PartialEq)]
pub enum Scores {
    /// Probability of the positive class (the larger label): for auc and log_loss.
    Probabilities(Vec<f64>),
    /// Predicted class labels: for accuracy, precision, recall, f1 and McNemar.
    Labels(Vec<String>),
    /// Predicted values: for rmse, mae, r2, mape.
    Values(Vec<f64>),
}

impl Scores {
    fn len(&self) -> usize {
        match self {
            Scores::Probabilities(v) | Scores::Values(v) => v.len(),
            Scores::Labels(v) => v.len(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Better with the stated confidence.
    Better,
    /// Worse with the stated confidence.
    Worse,
    /// Neither can be said.
    Inconclusive,
}

/// A paired comparison.
pub struct Paired<'a> {
    pub metric: &'a str,
    pub truth: &'a [String],
    pub challenger: &'a Scores,
    pub champion: &'a Scores,
    pub confidence: f64,
    pub resamples: usize,
    pub seed: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bootstrap {
    pub metric: String,
    pub higher_is_better: bool,
    pub challenger: f64,
    pub champion: f64,
    /// Oriented: positive means the challenger is better.
    pub difference: f64,
    pub interval: (f64, f64),
    pub confidence: f64,
    /// Share of resamples in which the challenger was not better.
    pub share_not_better: f64,
    pub rows: usize,
    pub resamples: usize,
    /// Resamples where the metric was undefined (e.g. one class only for auc).
    pub skipped: usize,
    pub seed: u64,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mcnemar {
    /// Rows the challenger got right and the champion wrong.
    pub b: u64,
    /// Rows the champion got right and the challenger wrong.
    pub c: u64,
    pub statistic: f64,
    pub p_value: f64,
    /// `exact` (binomial, b + c < 25) or `chi2` (with continuity correction).
    pub method: &'static str,
    pub rows: usize,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Slice {
    pub key: String,
    pub rows: usize,
    pub challenger: Option<f64>,
    pub champion: Option<f64>,
    pub difference: Option<f64>,
    pub interval: Option<(f64, f64)>,
    /// Worse beyond its confidence interval.
    pub regressed: bool,
    /// Fewer rows than the minimum (`MIN_SLICE_ROWS` unless told): reported, not judged.
    pub too_few_rows: bool,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CompareError {
    #[error("the models scored {challenger} and {champion} rows, the truth has {truth}")]
    Lengths { truth: usize, challenger: usize, champion: usize },
    #[error("no rows to compare on")]
    Empty,
    #[error("`{0}` cannot be compared from these predictions (auc and log_loss need probabilities, accuracy/precision/recall/f1 labels, rmse/mae/r2/mape values)")]
    Metric(String),
    #[error("`{metric}` is undefined on the rows ({why})")]
    Undefined { metric: String, why: String },
    #[error(
        "`{metric}` was undefined in {skipped} of {resamples} resamples (more than 10%): too few rows of one class"
    )]
    TooManySkipped { metric: String, skipped: usize, resamples: usize },
    #[error("confidence {0} must be between 0.5 and 1 (e.g. 0.95)")]
    Confidence(f64),
    #[error("resamples must be at least 1 ({DEFAULT_RESAMPLES} is the default)")]
    Resamples,
    #[error("{keys} slice keys for {truth} rows: give one key per row")]
    SliceKeys { keys: usize, truth: usize },
}

/// What both models are judged against, derived once from all rows, so that both models and
/// every slice and resample use the same classes.
enum Truth {
    /// Probabilities: which rows are of the positive (larger) class.
    Binary(Vec<bool>),
    /// Labels: each row's class among the labels of the truth and both models' predictions,
    /// in label order; `positive` when there are two classes (the larger one), whose
    /// precision, recall and f1 are reported in every resample even where it is absent.
    Classes { truth: Vec<usize>, index: HashMap<String, usize>, count: usize, positive: Option<usize> },
    /// Values: the true numbers.
    Values(Vec<f64>),
}

/// One model's predictions on a set of rows, arranged once so that the metric on a resample,
/// given as how many times each row was drawn, costs one pass over the rows and no sorting.
enum Prepared {
    /// Rows in ascending score order, where each run of equal scores starts, positives.
    Auc { order: Vec<usize>, tie_start: Vec<bool>, is_pos: Vec<bool> },
    /// The mean of a loss per row (log_loss, mae, mape), or its root (rmse, of squared errors).
    Mean { loss: Vec<f64>, root: bool },
    /// R²: the truth and the squared error per row.
    R2 { truth: Vec<f64>, squared_error: Vec<f64> },
    /// The true and predicted class of each row, for a confusion matrix.
    Confusion { truth: Vec<usize>, predicted: Vec<usize>, count: usize, positive: Option<usize> },
}

impl Truth {
    fn new(p: &Paired<'_>) -> Result<Truth, CompareError> {
        let name = p.metric;
        let fits = |s: &Scores| match s {
            Scores::Probabilities(_) => matches!(name, "auc" | "log_loss"),
            Scores::Labels(_) => performance::CLASSIFICATION.contains(&name) && !matches!(name, "auc" | "log_loss"),
            Scores::Values(_) => performance::REGRESSION.contains(&name),
        };
        if !fits(p.challenger) || !fits(p.champion) {
            return Err(CompareError::Metric(name.to_string()));
        }
        let truth: Vec<String> = p.truth.iter().map(|t| performance::normalise_label(t)).collect();
        match (p.challenger, p.champion) {
            (Scores::Probabilities(_), _) => {
                let classes = performance::classes(&truth, &[]);
                if classes.len() > 2 {
                    return Err(CompareError::Undefined {
                        metric: name.into(),
                        why: format!(
                            "the truth has {} classes ({}); {name} from probabilities of one class needs two",
                            classes.len(),
                            classes.join(", ")
                        ),
                    });
                }
                let positive = classes.last().cloned().unwrap_or_default();
                Ok(Truth::Binary(truth.iter().map(|t| *t == positive).collect()))
            }
            (Scores::Labels(a), Scores::Labels(b)) => {
                let predicted: Vec<String> = a.iter().chain(b).map(|l| performance::normalise_label(l)).collect();
                let classes = performance::classes(&truth, &predicted);
                let index: HashMap<String, usize> = classes.iter().cloned().enumerate().map(|(i, c)| (c, i)).collect();
                let truth = truth.iter().map(|t| index[t.as_str()]).collect();
                let count = classes.len();
                Ok(Truth::Classes { truth, index, count, positive: (count <= 2).then_some(count - 1) })
            }
            _ => truth
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    t.parse::<f64>().map_err(|_| CompareError::Undefined {
                        metric: name.into(),
                        why: format!("target row {i}: `{t}` is not a number"),
                    })
                })
                .collect::<Result<_, _>>()
                .map(Truth::Values),
        }
    }

    /// `scores` on `rows` (which the metric's name and the scores' kind already agree on).
    fn prepare(&self, metric: &str, scores: &Scores, rows: &[usize]) -> Prepared {
        match (self, scores) {
            (Truth::Binary(pos), Scores::Probabilities(s)) if metric == "auc" => {
                let mut order: Vec<usize> = (0..rows.len()).collect();
                order.sort_by(|a, b| s[rows[*a]].total_cmp(&s[rows[*b]]));
                let tie_start =
                    order.iter().enumerate().map(|(k, i)| k == 0 || s[rows[order[k - 1]]] != s[rows[*i]]).collect();
                Prepared::Auc { order, tie_start, is_pos: rows.iter().map(|i| pos[*i]).collect() }
            }
            (Truth::Binary(pos), Scores::Probabilities(s)) => {
                let loss = rows.iter().map(|i| log_loss_of(s[*i], pos[*i])).collect();
                Prepared::Mean { loss, root: false }
            }
            (Truth::Classes { truth, index, count, positive }, Scores::Labels(l)) => Prepared::Confusion {
                truth: rows.iter().map(|i| truth[*i]).collect(),
                predicted: rows.iter().map(|i| index[performance::normalise_label(&l[*i]).as_str()]).collect(),
                count: *count,
                positive: *positive,
            },
            (Truth::Values(t), Scores::Values(v)) => {
                let error = rows.iter().map(|i| t[*i] - v[*i]);
                match metric {
                    "rmse" => Prepared::Mean { loss: error.map(|e| e * e).collect(), root: true },
                    "mae" => Prepared::Mean { loss: error.map(f64::abs).collect(), root: false },
                    // scikit-learn's mean_absolute_percentage_error, as `performance::regression`.
                    "mape" => Prepared::Mean {
                        loss: rows.iter().zip(error).map(|(i, e)| e.abs() / t[*i].abs().max(f64::EPSILON)).collect(),
                        root: false,
                    },
                    _ => Prepared::R2 {
                        truth: rows.iter().map(|i| t[*i]).collect(),
                        squared_error: error.map(|e| e * e).collect(),
                    },
                }
            }
            // `Truth::new` refused every other pairing.
            _ => Prepared::Mean { loss: Vec::new(), root: false },
        }
    }
}

impl Prepared {
    /// The metric on the rows drawn `drawn[i]` times each, or `None` where it is undefined
    /// (auc with one class, r2 with a constant truth).
    fn value(&self, metric: &str, drawn: &[u32]) -> Option<f64> {
        match self {
            Prepared::Auc { order, tie_start, is_pos } => {
                // Mann-Whitney: each positive counts the negatives below it and half those tied
                // with it; in integers (twice the count), so the one division is the only rounding.
                let (mut twice_u, mut below, mut positives) = (0u64, 0u64, 0u64);
                let mut k = 0;
                while k < order.len() {
                    let (mut pos, mut neg) = (0u64, 0u64);
                    loop {
                        let i = order[k];
                        if is_pos[i] {
                            pos += u64::from(drawn[i]);
                        } else {
                            neg += u64::from(drawn[i]);
                        }
                        k += 1;
                        if k == order.len() || tie_start[k] {
                            break;
                        }
                    }
                    twice_u += pos * (2 * below + neg);
                    below += neg;
                    positives += pos;
                }
                (positives > 0 && below > 0).then(|| twice_u as f64 / (2 * positives * below) as f64)
            }
            Prepared::Mean { loss, root } => {
                let n: u64 = drawn.iter().map(|d| u64::from(*d)).sum();
                let sum: f64 = loss.iter().zip(drawn).map(|(l, d)| l * f64::from(*d)).sum();
                let mean = sum / n as f64;
                (n > 0).then(|| if *root { mean.sqrt() } else { mean })
            }
            Prepared::R2 { truth, squared_error } => {
                let n: u64 = drawn.iter().map(|d| u64::from(*d)).sum();
                let mean = truth.iter().zip(drawn).map(|(t, d)| t * f64::from(*d)).sum::<f64>() / n as f64;
                let total: f64 = truth.iter().zip(drawn).map(|(t, d)| (t - mean).powi(2) * f64::from(*d)).sum();
                let sse: f64 = squared_error.iter().zip(drawn).map(|(e, d)| e * f64::from(*d)).sum();
                (total > 0.0).then(|| 1.0 - sse / total)
            }
            Prepared::Confusion { truth, predicted, count, positive } => {
                let mut matrix = vec![vec![0u64; *count]; *count];
                for ((t, p), d) in truth.iter().zip(predicted).zip(drawn) {
                    matrix[*t][*p] += u64::from(*d);
                }
                performance::confusion_metrics(&matrix, *positive).get(metric).copied()
            }
        }
    }
}

fn log_loss_of(score: f64, positive: bool) -> f64 {
    // scikit-learn's clipping, as `performance::classification`.
    let s = score.clamp(1e-15, 1.0 - 1e-15);
    if positive {
        -s.ln()
    } else {
        -(1.0 - s).ln()
    }
}

fn check(p: &Paired<'_>) -> Result<(), CompareError> {
    let (t, a, b) = (p.truth.len(), p.challenger.len(), p.champion.len());
    if a != t || b != t {
        return Err(CompareError::Lengths { truth: t, challenger: a, champion: b });
    }
    if t == 0 {
        return Err(CompareError::Empty);
    }
    if !(0.5..1.0).contains(&p.confidence) {
        return Err(CompareError::Confidence(p.confidence));
    }
    if p.resamples == 0 {
        return Err(CompareError::Resamples);
    }
    Ok(())
}

/// The `q` quantile of sorted values with linear interpolation (NumPy's default).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// The paired bootstrap over all rows.
pub fn paired_bootstrap(p: &Paired<'_>) -> Result<Bootstrap, CompareError> {
    check(p)?;
    let truth = Truth::new(p)?;
    let all: Vec<usize> = (0..p.truth.len()).collect();
    bootstrap_on(p, &truth, &all)
}

fn bootstrap_on(p: &Paired<'_>, truth: &Truth, rows: &[usize]) -> Result<Bootstrap, CompareError> {
    let higher = performance::higher_is_better(p.metric);
    let orient = |a: f64, b: f64| if higher { a - b } else { b - a };
    let undefined = |whose: &str| CompareError::Undefined {
        metric: p.metric.into(),
        why: match p.metric {
            "auc" => format!("{whose}: the rows hold one class only"),
            "r2" => format!("{whose}: the true values are all equal"),
            _ => whose.to_string(),
        },
    };
    let (challenger, champion) =
        (truth.prepare(p.metric, p.challenger, rows), truth.prepare(p.metric, p.champion, rows));
    let mut drawn = vec![1u32; rows.len()];
    let a = challenger.value(p.metric, &drawn).ok_or_else(|| undefined("for the challenger"))?;
    let b = champion.value(p.metric, &drawn).ok_or_else(|| undefined("for the champion"))?;
    let mut rng = SplitMix64::new(p.seed);
    let mut diffs = Vec::with_capacity(p.resamples);
    let mut skipped = 0;
    for _ in 0..p.resamples {
        drawn.fill(0);
        for _ in 0..rows.len() {
            drawn[rng.below(rows.len())] += 1;
        }
        match (challenger.value(p.metric, &drawn), champion.value(p.metric, &drawn)) {
            (Some(x), Some(y)) => diffs.push(orient(x, y)),
            _ => skipped += 1,
        }
    }
    if skipped * 10 > p.resamples || diffs.is_empty() {
        return Err(CompareError::TooManySkipped { metric: p.metric.into(), skipped, resamples: p.resamples });
    }
    crate::stats::sort_floats(&mut diffs);
    let tail = (1.0 - p.confidence) / 2.0;
    let interval = (quantile(&diffs, tail), quantile(&diffs, 1.0 - tail));
    let verdict = if interval.0 > 0.0 {
        Verdict::Better
    } else if interval.1 < 0.0 {
        Verdict::Worse
    } else {
        Verdict::Inconclusive
    };
    Ok(Bootstrap {
        metric: p.metric.to_string(),
        higher_is_better: higher,
        challenger: a,
        champion: b,
        difference: orient(a, b),
        interval,
        confidence: p.confidence,
        share_not_better: diffs.iter().filter(|d| **d <= 0.0).count() as f64 / diffs.len() as f64,
        rows: rows.len(),
        resamples: p.resamples,
        skipped,
        seed: p.seed,
        verdict,
    })
}

/// McNemar's test on the rows where exactly one of two classifiers is right.
pub fn mcnemar(
    truth: &[String],
    challenger: &Scores,
    champion: &Scores,
    confidence: f64,
) -> Result<Mcnemar, CompareError> {
    let (Scores::Labels(a), Scores::Labels(b)) = (challenger, champion) else {
        return Err(CompareError::Metric("accuracy (McNemar needs predicted labels)".into()));
    };
    if a.len() != truth.len() || b.len() != truth.len() {
        return Err(CompareError::Lengths { truth: truth.len(), challenger: a.len(), champion: b.len() });
    }
    if truth.is_empty() {
        return Err(CompareError::Empty);
    }
    if !(0.5..1.0).contains(&confidence) {
        return Err(CompareError::Confidence(confidence));
    }
    let (mut nb, mut nc) = (0u64, 0u64);
    for i in 0..truth.len() {
        let t = performance::normalise_label(&truth[i]);
        let (ra, rb) = (performance::normalise_label(&a[i]) == t, performance::normalise_label(&b[i]) == t);
        match (ra, rb) {
            (true, false) => nb += 1,
            (false, true) => nc += 1,
            _ => {}
        }
    }
    let exact = nb + nc < 25;
    let (statistic, p_value) = mcnemar_test(nb, nc, exact);
    let method = if exact { "exact" } else { "chi2" };
    let significant = p_value < 1.0 - confidence;
    let verdict = match (significant, nb.cmp(&nc)) {
        (true, std::cmp::Ordering::Greater) => Verdict::Better,
        (true, std::cmp::Ordering::Less) => Verdict::Worse,
        _ => Verdict::Inconclusive,
    };
    Ok(Mcnemar { b: nb, c: nc, statistic, p_value, method, rows: truth.len(), verdict })
}

/// McNemar's statistic and two-sided p-value from the discordant counts: `exact`, the
/// binomial test (statistic min(b, c)); otherwise chi-square with continuity correction,
/// (|b − c| − 1)² / (b + c). No discordant rows: statistic 0, p 1.
pub fn mcnemar_test(b: u64, c: u64, exact: bool) -> (f64, f64) {
    let n = b + c;
    if n == 0 {
        return (0.0, 1.0);
    }
    if exact {
        let k = b.min(c);
        let cdf = Binomial::new(0.5, n).map(|d| d.cdf(k)).unwrap_or(1.0);
        (k as f64, (2.0 * cdf).min(1.0))
    } else {
        let stat = ((b as f64 - c as f64).abs() - 1.0).powi(2) / n as f64;
        (stat, statrs::function::erf::erfc((stat / 2.0).sqrt()))
    }
}

/// The paired bootstrap within each slice (`keys[i]` is row i's slice), in key order; slices
/// of fewer than `MIN_SLICE_ROWS` rows are reported, not judged.
pub fn slices(p: &Paired<'_>, keys: &[String]) -> Result<Vec<Slice>, CompareError> {
    slices_with_min_rows(p, keys, MIN_SLICE_ROWS)
}

/// `slices`, judging only slices of at least `min_rows` rows.
pub fn slices_with_min_rows(p: &Paired<'_>, keys: &[String], min_rows: usize) -> Result<Vec<Slice>, CompareError> {
    check(p)?;
    if keys.len() != p.truth.len() {
        return Err(CompareError::SliceKeys { keys: keys.len(), truth: p.truth.len() });
    }
    // Classes and the positive class come from all rows, so every slice is judged alike.
    let truth = Truth::new(p)?;
    let mut groups: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
    for (i, k) in keys.iter().enumerate() {
        groups.entry(k.as_str()).or_default().push(i);
    }
    let mut out = Vec::new();
    for (key, rows) in groups {
        let base = Slice {
            key: key.to_string(),
            rows: rows.len(),
            challenger: None,
            champion: None,
            difference: None,
            interval: None,
            regressed: false,
            too_few_rows: rows.len() < min_rows,
        };
        if base.too_few_rows {
            out.push(base);
            continue;
        }
        match bootstrap_on(p, &truth, &rows) {
            Ok(b) => out.push(Slice {
                challenger: Some(b.challenger),
                champion: Some(b.champion),
                difference: Some(b.difference),
                interval: Some(b.interval),
                regressed: b.interval.1 < 0.0,
                ..base
            }),
            // A slice with one class only has no auc: reported without a judgement.
            Err(CompareError::Undefined { .. } | CompareError::TooManySkipped { .. }) => out.push(base),
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(v: &[u8]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    /// Truth, a good scorer and a noisy one, seeded.
    fn data(n: usize) -> (Vec<String>, Vec<f64>, Vec<f64>) {
        let mut rng = SplitMix64::new(11);
        let mut u = || rng.unit();
        let mut truth = Vec::new();
        let (mut good, mut noisy) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let y = u() < 0.4;
            truth.push(u8::from(y).to_string());
            good.push(if y { 0.55 + 0.45 * u() } else { 0.45 * u() } * 0.8 + 0.2 * u());
            noisy.push(if y { 0.3 + 0.7 * u() } else { 0.7 * u() });
        }
        (truth, good, noisy)
    }

    #[test]
    fn a_better_model_is_better_a_copy_is_inconclusive_a_worse_one_worse() {
        let (truth, good, noisy) = data(500);
        let (g, n) = (Scores::Probabilities(good), Scores::Probabilities(noisy));
        let run = |a: &Scores, b: &Scores| {
            paired_bootstrap(&Paired {
                metric: "auc",
                truth: &truth,
                challenger: a,
                champion: b,
                confidence: 0.95,
                resamples: 1000,
                seed: 3,
            })
            .unwrap()
        };
        let better = run(&g, &n);
        assert_eq!(better.verdict, Verdict::Better, "{better:?}");
        assert!(better.interval.0 > 0.0 && better.difference > 0.0);
        let same = run(&g, &g);
        assert_eq!(same.verdict, Verdict::Inconclusive);
        assert_eq!(same.interval, (0.0, 0.0));
        assert_eq!(run(&n, &g).verdict, Verdict::Worse);
        // Deterministic for a seed.
        assert_eq!(run(&g, &n), better);
    }

    #[test]
    fn loss_metrics_are_oriented_so_positive_is_better() {
        let (truth, good, noisy) = data(400);
        let r = paired_bootstrap(&Paired {
            metric: "log_loss",
            truth: &truth,
            challenger: &Scores::Probabilities(good),
            champion: &Scores::Probabilities(noisy),
            confidence: 0.9,
            resamples: 500,
            seed: 1,
        })
        .unwrap();
        assert!(!r.higher_is_better && r.challenger < r.champion && r.difference > 0.0, "{r:?}");
        assert_eq!(r.verdict, Verdict::Better);
    }

    #[test]
    fn mcnemar_uses_the_exact_test_below_25_discordant_rows_and_chi_square_above() {
        // statsmodels mcnemar([[10, 9], [2, 10]], exact=True): statistic 2, p 0.065429687...
        let truth = labels(&[1; 31]);
        let mut a = Vec::new();
        let mut b = Vec::new();
        for (ra, rb, n) in [(1, 1, 10), (1, 0, 9), (0, 1, 2), (0, 0, 10)] {
            for _ in 0..n {
                a.push(ra);
                b.push(rb);
            }
        }
        let r = mcnemar(&truth, &Scores::Labels(labels(&a)), &Scores::Labels(labels(&b)), 0.95).unwrap();
        assert_eq!((r.b, r.c, r.method), (9, 2, "exact"));
        assert_eq!(r.statistic, 2.0);
        assert!((r.p_value - 0.0654296875).abs() < 1e-12, "{r:?}");
        assert_eq!(r.verdict, Verdict::Inconclusive);
        // statsmodels mcnemar([[0, 30], [10, 0]], exact=False, correction=True):
        // statistic 9.025, p 0.002663119259138558
        let truth = labels(&[1; 40]);
        let a: Vec<u8> = (0..40).map(|i| u8::from(i < 30)).collect();
        let b: Vec<u8> = (0..40).map(|i| u8::from(i >= 30)).collect();
        let r = mcnemar(&truth, &Scores::Labels(labels(&a)), &Scores::Labels(labels(&b)), 0.95).unwrap();
        assert_eq!((r.b, r.c, r.method), (30, 10, "chi2"));
        assert!((r.statistic - 9.025).abs() < 1e-12);
        assert!((r.p_value - 0.002663119259138558).abs() < 1e-12, "{r:?}");
        assert_eq!(r.verdict, Verdict::Better);
    }

    #[test]
    fn a_slice_that_gets_worse_is_flagged_while_the_whole_gets_better() {
        let (truth, good, noisy) = data(900);
        // Region "b": the challenger scores backwards there.
        let keys: Vec<String> = (0..900).map(|i| ["a", "b", "c"][i % 3].to_string()).collect();
        let challenger: Vec<f64> =
            good.iter().enumerate().map(|(i, s)| if i % 3 == 1 { 1.0 - s } else { *s }).collect();
        let (a, b) = (Scores::Probabilities(challenger), Scores::Probabilities(noisy));
        let p = Paired {
            metric: "auc",
            truth: &truth,
            challenger: &a,
            champion: &b,
            confidence: 0.95,
            resamples: 500,
            seed: 2,
        };
        let per = slices(&p, &keys).unwrap();
        let flagged: Vec<&str> = per.iter().filter(|s| s.regressed).map(|s| s.key.as_str()).collect();
        assert_eq!(flagged, ["b"], "{per:?}");
        let few: Vec<String> = (0..900).map(|i| if i < 10 { "tiny".into() } else { "big".into() }).collect();
        let per = slices(&p, &few).unwrap();
        assert!(per.iter().any(|s| s.key == "tiny" && s.too_few_rows && !s.regressed));
    }

    #[test]
    fn bad_inputs_are_named() {
        let truth = labels(&[0, 1]);
        let p = Scores::Probabilities(vec![0.1]);
        let e = paired_bootstrap(&Paired {
            metric: "auc",
            truth: &truth,
            challenger: &p,
            champion: &p,
            confidence: 0.95,
            resamples: 10,
            seed: 0,
        });
        assert!(matches!(e, Err(CompareError::Lengths { .. })));
        let l = Scores::Labels(labels(&[0, 1]));
        let e = paired_bootstrap(&Paired {
            metric: "auc",
            truth: &truth,
            challenger: &l,
            champion: &l,
            confidence: 0.95,
            resamples: 10,
            seed: 0,
        });
        assert!(matches!(e, Err(CompareError::Metric(_))));
        let one = labels(&[1, 1, 1]);
        let s = Scores::Probabilities(vec![0.2, 0.5, 0.9]);
        let e = paired_bootstrap(&Paired {
            metric: "auc",
            truth: &one,
            challenger: &s,
            champion: &s,
            confidence: 0.95,
            resamples: 10,
            seed: 0,
        });
        assert!(matches!(e, Err(CompareError::Undefined { .. })), "{e:?}");
        // Probabilities of one class cannot score three.
        let three = labels(&[0, 1, 2]);
        let e = paired_bootstrap(&Paired {
            metric: "auc",
            truth: &three,
            challenger: &s,
            champion: &s,
            confidence: 0.95,
            resamples: 10,
            seed: 0,
        });
        assert!(matches!(&e, Err(CompareError::Undefined { why, .. }) if why.contains("3 classes")), "{e:?}");
        let e = paired_bootstrap(&Paired {
            metric: "auc",
            truth: &one,
            challenger: &s,
            champion: &s,
            confidence: 0.95,
            resamples: 0,
            seed: 0,
        });
        assert_eq!(e.unwrap_err().to_string(), "resamples must be at least 1 (2000 is the default)");
    }

    /// A resample's metric from row counts equals the metric on the rows listed as often as
    /// they were drawn, for every kind of metric (ties in the scores included).
    #[test]
    fn a_resample_by_row_counts_equals_the_metric_on_the_drawn_rows() {
        let mut rng = SplitMix64::new(5);
        let n = 300;
        let truth2: Vec<String> = (0..n).map(|_| rng.below(2).to_string()).collect();
        // One decimal: many tied scores.
        let scores: Vec<f64> = (0..n).map(|_| rng.below(11) as f64 / 10.0).collect();
        let truth3: Vec<String> = (0..n).map(|_| rng.below(3).to_string()).collect();
        let pred3: Vec<String> = (0..n).map(|_| rng.below(3).to_string()).collect();
        let values: Vec<f64> = (0..n).map(|_| rng.below(1000) as f64 / 10.0 - 20.0).collect();
        let truth_values: Vec<String> = values.iter().map(|v| (v + rng.below(50) as f64 / 7.0).to_string()).collect();
        let cases: Vec<(&str, &[String], Scores)> = vec![
            ("auc", &truth2, Scores::Probabilities(scores.clone())),
            ("log_loss", &truth2, Scores::Probabilities(scores)),
            ("f1_macro", &truth3, Scores::Labels(pred3.clone())),
            ("balanced_accuracy", &truth3, Scores::Labels(pred3.clone())),
            ("precision_weighted", &truth3, Scores::Labels(pred3)),
            ("rmse", &truth_values, Scores::Values(values.clone())),
            ("mape", &truth_values, Scores::Values(values.clone())),
            ("r2", &truth_values, Scores::Values(values)),
        ];
        for (metric, truth, scores) in &cases {
            let p =
                Paired { metric, truth, challenger: scores, champion: scores, confidence: 0.95, resamples: 1, seed: 0 };
            let rows: Vec<usize> = (0..n).collect();
            let prepared = Truth::new(&p).unwrap().prepare(metric, scores, &rows);
            for _ in 0..20 {
                let mut drawn = vec![0u32; n];
                let mut listed = Vec::new();
                for _ in 0..n {
                    let i = rng.below(n);
                    drawn[i] += 1;
                    listed.push(i);
                }
                let t: Vec<String> = listed.iter().map(|i| truth[*i].clone()).collect();
                let want = match scores {
                    Scores::Probabilities(s) => {
                        let s: Vec<f64> = listed.iter().map(|i| s[*i]).collect();
                        performance::classification(&t, &t, Some(&s))[metric]
                    }
                    Scores::Labels(l) => {
                        let l: Vec<String> = listed.iter().map(|i| l[*i].clone()).collect();
                        performance::classification(&t, &l, None)[metric]
                    }
                    Scores::Values(v) => {
                        let t: Vec<f64> = t.iter().map(|x| x.parse().unwrap()).collect();
                        let v: Vec<f64> = listed.iter().map(|i| v[*i]).collect();
                        performance::regression(&t, &v)[metric]
                    }
                };
                let got = prepared.value(metric, &drawn).unwrap();
                assert!((got - want).abs() < 1e-12, "{metric}: by counts {got}, on the rows {want}");
            }
        }
    }

    #[test]
    fn a_slice_without_the_positive_class_is_judged_on_the_positive_class() {
        // Slice "quiet": no positives, the challenger raises two false alarms, the champion none.
        // Both have f1 0 for the positive class there (scikit-learn's zero_division=0); judging
        // the champion on the negative class instead (f1 1) would call the slice a regression.
        let n = 120;
        let truth: Vec<String> = (0..n).map(|i| u8::from(i < 60 && i % 2 == 0).to_string()).collect();
        let keys: Vec<String> = (0..n).map(|i| if i < 60 { "busy" } else { "quiet" }.to_string()).collect();
        let champion = truth.clone();
        let mut challenger = truth.clone();
        challenger[70] = "1".into();
        challenger[90] = "1".into();
        let (a, b) = (Scores::Labels(challenger), Scores::Labels(champion));
        let p = Paired {
            metric: "f1",
            truth: &truth,
            challenger: &a,
            champion: &b,
            confidence: 0.95,
            resamples: 300,
            seed: 4,
        };
        let per = slices(&p, &keys).unwrap();
        let quiet = per.iter().find(|s| s.key == "quiet").unwrap();
        assert_eq!((quiet.challenger, quiet.champion, quiet.regressed), (Some(0.0), Some(0.0), false), "{quiet:?}");
        // The minimum is a parameter: at 61 rows neither slice is judged.
        let per = slices_with_min_rows(&p, &keys, 61).unwrap();
        assert!(per.iter().all(|s| s.too_few_rows && s.interval.is_none()), "{per:?}");
        let e = slices(&p, &keys[..5]).unwrap_err();
        assert_eq!(e.to_string(), "5 slice keys for 120 rows: give one key per row");
    }
}
