//! Two-sample statistics for drift: Kolmogorov–Smirnov (statistic and exact p-value),
//! chi-square test of homogeneity, Wasserstein distance, Jensen–Shannon distance, the
//! two-proportion Z-test, and the population stability index.

use statrs::distribution::{ChiSquared, ContinuousCDF};

/// A test's statistic and p-value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TestResult {
    pub statistic: f64,
    pub pvalue: f64,
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s = v.to_vec();
    sort_floats(&mut s);
    s
}

/// Sort floats in `f64::total_cmp` order, in place. Large inputs use an LSD radix sort on
/// the order-preserving bit pattern (six 11-bit passes, so the counters stay in L1), with one
/// scratch buffer: faster than comparison sorting at a million values, and no copy of the data.
pub fn sort_floats(v: &mut [f64]) {
    const RADIX_FROM: usize = 4096;
    if v.len() < RADIX_FROM {
        v.sort_unstable_by(f64::total_cmp);
        return;
    }
    let keys: &mut [u64] = bytemuck::cast_slice_mut(v);
    for k in keys.iter_mut() {
        *k = if *k >> 63 == 1 { !*k } else { *k | (1 << 63) };
    }
    let mut scratch = vec![0u64; keys.len()];
    let mut in_scratch = false;
    const BITS: u32 = 11;
    const MASK: u64 = (1 << BITS) - 1;
    for pass in 0..6 {
        let shift = pass * BITS;
        let (src, dst): (&[u64], &mut [u64]) =
            if in_scratch { (&scratch[..], &mut *keys) } else { (&*keys, &mut scratch[..]) };
        let mut counts = [0usize; 1 << BITS];
        for k in src {
            counts[((k >> shift) & MASK) as usize] += 1;
        }
        if counts.contains(&src.len()) {
            continue; // every key has the same digit here
        }
        let mut offset = 0;
        for c in counts.iter_mut() {
            let n = *c;
            *c = offset;
            offset += n;
        }
        for k in src {
            let d = ((k >> shift) & MASK) as usize;
            dst[counts[d]] = *k;
            counts[d] += 1;
        }
        in_scratch = !in_scratch;
    }
    if in_scratch {
        keys.copy_from_slice(&scratch);
    }
    for k in keys.iter_mut() {
        *k = if *k >> 63 == 1 { *k & !(1 << 63) } else { !*k };
    }
}

/// Count of elements `<= x` in a sorted slice.
fn count_le(sorted: &[f64], x: f64) -> usize {
    sorted.partition_point(|v| *v <= x)
}

/// The two-sample KS statistic as an integer: `max |i·n − j·m|` over the pooled values, where
/// `i`, `j` count the values of `a` (size m) and `b` (size n) at or below each value. The
/// statistic is that divided by `m·n`. Integers keep the exact p-value's boundary exact.
fn ks_scaled(a: &[f64], b: &[f64]) -> (u64, Vec<f64>, Vec<f64>) {
    let (sa, sb) = (sorted(a), sorted(b));
    let (m, n) = (sa.len() as i128, sb.len() as i128);
    let mut best: i128 = 0;
    for x in sa.iter().chain(sb.iter()) {
        let i = count_le(&sa, *x) as i128;
        let j = count_le(&sb, *x) as i128;
        best = best.max((i * n - j * m).abs());
    }
    (best as u64, sa, sb)
}

/// Two-sided two-sample KS test with the exact p-value (as SciPy's `ks_2samp(method="exact")`):
/// the probability that a uniformly random interleaving of the two samples reaches a
/// statistic at least as large. The probability of leaving the band is summed directly (no
/// `1 − inside`), so small p-values keep their relative precision. O(m·n).
pub fn ks_exact(a: &[f64], b: &[f64]) -> Option<TestResult> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let (d, _, _) = ks_scaled(a, b);
    let (m, n) = (a.len(), b.len());
    let statistic = d as f64 / (m as f64 * n as f64);
    if d == 0 {
        return Some(TestResult { statistic, pvalue: 1.0 });
    }
    // u[j] = probability of being at (i, j) having stayed strictly inside |i·n − j·m| < d.
    let inside =
        |i: usize, j: usize| ((i as i128 * n as i128) - (j as i128 * m as i128)).unsigned_abs() < u128::from(d);
    let mut u = vec![0.0f64; n + 1];
    let mut next = vec![0.0f64; n + 1];
    u[0] = 1.0;
    let mut out = 0.0f64;
    for i in 0..=m {
        next.iter_mut().for_each(|x| *x = 0.0);
        for j in 0..=n {
            let p = u[j];
            if p == 0.0 {
                continue;
            }
            let left = (m - i + n - j) as f64;
            if left == 0.0 {
                continue;
            }
            // Step in a (i + 1) with probability (m − i)/left, in b (j + 1) with (n − j)/left.
            if i < m {
                let q = p * (m - i) as f64 / left;
                if inside(i + 1, j) {
                    next[j] += q;
                } else {
                    out += q;
                }
            }
            if j < n {
                let q = p * (n - j) as f64 / left;
                if inside(i, j + 1) {
                    u[j + 1] += q;
                } else {
                    out += q;
                }
            }
        }
        std::mem::swap(&mut u, &mut next);
    }
    Some(TestResult { statistic, pvalue: out.min(1.0) })
}

/// Two-sided two-sample KS test with the asymptotic p-value, as SciPy's
/// `ks_2samp(method="asymp")`: the one-sample distribution at `round(m·n/(m+n))`.
pub fn ks_asymptotic(a: &[f64], b: &[f64]) -> Option<TestResult> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let (d, _, _) = ks_scaled(a, b);
    let (m, n) = (a.len() as f64, b.len() as f64);
    let statistic = d as f64 / (m * n);
    let en = (m * n / (m + n)).round_ties_even() as u64;
    Some(TestResult { statistic, pvalue: crate::kolmogorov::kolmogorov_sf(en.max(1), statistic) })
}

/// Chi-square test of homogeneity on a contingency table (rows = samples, columns =
/// categories), without continuity correction, as SciPy's `chi2_contingency(correction=False)`.
/// Returns the statistic, p-value and degrees of freedom; `None` when a row or column is empty.
pub fn chi2_contingency(table: &[Vec<f64>]) -> Option<(TestResult, usize)> {
    let rows = table.len();
    let cols = table.first()?.len();
    if rows < 2 || cols < 2 || table.iter().any(|r| r.len() != cols) {
        return None;
    }
    let row_sums: Vec<f64> = table.iter().map(|r| r.iter().sum()).collect();
    let col_sums: Vec<f64> = (0..cols).map(|c| table.iter().map(|r| r[c]).sum()).collect();
    let total: f64 = row_sums.iter().sum();
    if row_sums.iter().chain(col_sums.iter()).any(|s| *s <= 0.0) {
        return None;
    }
    let mut statistic = 0.0;
    for (r, row) in table.iter().enumerate() {
        for (c, observed) in row.iter().enumerate() {
            let expected = row_sums[r] * col_sums[c] / total;
            statistic += (observed - expected).powi(2) / expected;
        }
    }
    let dof = (rows - 1) * (cols - 1);
    let pvalue = ChiSquared::new(dof as f64).ok()?.sf(statistic);
    Some((TestResult { statistic, pvalue }, dof))
}

/// First Wasserstein distance between two samples with equal weights (SciPy's
/// `wasserstein_distance`): the area between their empirical CDFs.
pub fn wasserstein(a: &[f64], b: &[f64]) -> Option<f64> {
    wasserstein_sorted(&sorted(a), &sorted(b))
}

/// [`wasserstein`] of samples already sorted (by [`sort_floats`]).
pub fn wasserstein_sorted(sa: &[f64], sb: &[f64]) -> Option<f64> {
    if sa.is_empty() || sb.is_empty() {
        return None;
    }
    let (m, n) = (sa.len() as f64, sb.len() as f64);
    // Walk both sorted samples together; between consecutive distinct values the CDFs are
    // the fractions of each sample at or below the lower one.
    let (mut i, mut j) = (0usize, 0usize);
    let mut prev: Option<f64> = None;
    let mut total = 0.0;
    while i < sa.len() || j < sb.len() {
        let x = match (sa.get(i), sb.get(j)) {
            (Some(p), Some(q)) => p.min(*q),
            (Some(p), None) => *p,
            (None, Some(q)) => *q,
            (None, None) => break,
        };
        if let Some(p) = prev {
            total += (i as f64 / m - j as f64 / n).abs() * (x - p);
        }
        while i < sa.len() && sa[i] == x {
            i += 1;
        }
        while j < sb.len() && sb[j] == x {
            j += 1;
        }
        prev = Some(x);
    }
    Some(total)
}

/// Jensen–Shannon distance (natural log) between two frequency vectors, each normalised to
/// sum to one (SciPy's `jensenshannon`).
pub fn jensen_shannon(p: &[f64], q: &[f64]) -> Option<f64> {
    if p.len() != q.len() || p.is_empty() {
        return None;
    }
    let (sp, sq): (f64, f64) = (p.iter().sum(), q.iter().sum());
    if sp <= 0.0 || sq <= 0.0 {
        return None;
    }
    let rel_entr = |x: f64, y: f64| if x > 0.0 && y > 0.0 { x * (x / y).ln() } else { 0.0 };
    let mut js = 0.0;
    for (x, y) in p.iter().zip(q) {
        let (x, y) = (x / sp, y / sq);
        let mid = (x + y) / 2.0;
        js += rel_entr(x, mid) + rel_entr(y, mid);
    }
    Some((js / 2.0).max(0.0).sqrt())
}

/// Two-proportion Z-test (pooled), two-sided: are `x1/n1` and `x2/n2` the same rate?
pub fn two_proportion_z(x1: u64, n1: u64, x2: u64, n2: u64) -> Option<TestResult> {
    if n1 == 0 || n2 == 0 || x1 > n1 || x2 > n2 {
        return None;
    }
    let (p1, p2) = (x1 as f64 / n1 as f64, x2 as f64 / n2 as f64);
    let pooled = (x1 + x2) as f64 / (n1 + n2) as f64;
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 as f64 + 1.0 / n2 as f64)).sqrt();
    if se == 0.0 {
        return Some(TestResult { statistic: 0.0, pvalue: 1.0 });
    }
    let z = (p1 - p2) / se;
    let pvalue = statrs::function::erf::erfc(z.abs() / std::f64::consts::SQRT_2);
    Some(TestResult { statistic: z, pvalue })
}

/// Population stability index between the bin shares of a reference and a current sample.
/// Empty bins take `epsilon` (Evidently uses 0.0001) so the logarithm stays finite.
pub fn psi(reference: &[f64], current: &[f64], epsilon: f64) -> Option<f64> {
    if reference.len() != current.len() || reference.is_empty() {
        return None;
    }
    let (sr, sc): (f64, f64) = (reference.iter().sum(), current.iter().sum());
    if sr <= 0.0 || sc <= 0.0 {
        return None;
    }
    Some(
        reference
            .iter()
            .zip(current)
            .map(|(r, c)| {
                let r = if *r == 0.0 { epsilon } else { r / sr };
                let c = if *c == 0.0 { epsilon } else { c / sc };
                (c - r) * (c / r).ln()
            })
            .sum(),
    )
}
