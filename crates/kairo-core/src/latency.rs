//! A latency histogram with log-spaced buckets: cheap to record, mergeable across processes
//! and days, small as text. `kairo serve` keeps one per version and day and stores it
//! (`serving_days.latency`); the KPIs merge them and read percentiles.
//!
//! Bucket `i` holds values in `[1 µs · g^(i-1), 1 µs · g^i)` with `g = 2^(1/8)`; bucket 0 holds
//! values below 1 µs. A quantile is interpolated geometrically inside its bucket, so it lies in
//! the same bucket as the true value: at most a factor `g` (9%) off, and far less when the
//! values spread evenly (values beyond the last bucket, about 18 minutes, are clamped to it).

use std::collections::BTreeMap;
use std::fmt;

/// Buckets per doubling.
const PER_DOUBLING: f64 = 8.0;
/// Enough buckets for 1 µs · 2^30 ≈ 18 minutes.
pub const BUCKETS: u16 = 30 * 8 + 1;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    counts: BTreeMap<u16, u64>,
    total: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramError(String);

impl fmt::Display for HistogramError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "latency histogram: {}", self.0)
    }
}

impl std::error::Error for HistogramError {}

fn bucket_of(micros: u64) -> u16 {
    if micros == 0 {
        return 0;
    }
    let i = ((micros as f64).log2() * PER_DOUBLING).floor() as i64 + 1;
    i.clamp(1, i64::from(BUCKETS - 1)) as u16
}

/// The lower edge of bucket `i` in microseconds (bucket 0 starts at 0).
fn lower(i: u16) -> f64 {
    if i == 0 {
        0.0
    } else {
        2f64.powf(f64::from(i - 1) / PER_DOUBLING)
    }
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram::default()
    }

    pub fn record(&mut self, micros: u64) {
        *self.counts.entry(bucket_of(micros)).or_default() += 1;
        self.total += 1;
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (b, n) in &other.counts {
            let c = self.counts.entry(*b).or_default();
            *c = c.saturating_add(*n);
        }
        self.total = self.total.saturating_add(other.total);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The `q`-quantile (0 ≤ q ≤ 1) in milliseconds; `None` when empty.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        if self.total == 0 || !q.is_finite() {
            return None;
        }
        let q = q.clamp(0.0, 1.0);
        // The rank (1-based) of the value wanted, as in the nearest-rank method.
        let rank = ((q * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (b, n) in &self.counts {
            if seen + n >= rank {
                let (lo, hi) = (lower(*b), lower(*b + 1));
                if *b == 0 {
                    return Some(0.0);
                }
                // Geometric interpolation by the rank's place in the bucket.
                let f = (rank - seen) as f64 / *n as f64;
                let micros = lo * (hi / lo).powf(f - 0.5 / *n as f64);
                return Some(micros / 1000.0);
            }
            seen += n;
        }
        None
    }

    /// `v1 B:N B:N ...` (non-empty buckets, ascending).
    pub fn encode(&self) -> String {
        let mut s = String::from("v1");
        for (b, n) in &self.counts {
            s.push_str(&format!(" {b}:{n}"));
        }
        s
    }

    /// The inverse of [`encode`](Self::encode). Text from a database is not trusted: a wrong
    /// version, a malformed pair, a bucket out of range, a repeated or unordered bucket or a
    /// count that overflows is an error naming it.
    pub fn decode(text: &str) -> Result<Histogram, HistogramError> {
        let mut parts = text.split_ascii_whitespace();
        match parts.next() {
            Some("v1") => {}
            Some(other) => {
                return Err(HistogramError(format!("unknown format `{}`", other.chars().take(16).collect::<String>())))
            }
            None => return Err(HistogramError("empty text".into())),
        }
        let mut h = Histogram::default();
        let mut last: Option<u16> = None;
        for pair in parts {
            let bad = || HistogramError(format!("`{}` is not BUCKET:COUNT", pair.chars().take(32).collect::<String>()));
            let (b, n) = pair.split_once(':').ok_or_else(bad)?;
            let b: u16 = b.parse().map_err(|_| bad())?;
            let n: u64 = n.parse().map_err(|_| bad())?;
            if b >= BUCKETS {
                return Err(HistogramError(format!("bucket {b} is out of range (0..{BUCKETS})")));
            }
            if last.is_some_and(|l| b <= l) {
                return Err(HistogramError(format!("bucket {b} is repeated or out of order")));
            }
            last = Some(b);
            h.total = h.total.checked_add(n).ok_or_else(|| HistogramError("the counts overflow".into()))?;
            if n > 0 {
                h.counts.insert(b, n);
            }
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn within(got: f64, want: f64, rel: f64) -> bool {
        (got - want).abs() <= rel * want
    }

    #[test]
    fn quantiles_of_known_distributions() {
        let mut h = Histogram::new();
        for us in 1..=10_000u64 {
            h.record(us * 10); // 10 µs .. 100 ms, uniform
        }
        for (q, want_ms) in [(0.5, 50.0), (0.9, 90.0), (0.99, 99.0), (0.01, 1.0)] {
            let got = h.quantile_ms(q).unwrap();
            assert!(within(got, want_ms, 0.045), "q{q}: {got} vs {want_ms}");
        }
        let mut one = Histogram::new();
        one.record(2_500);
        assert!(within(one.quantile_ms(0.5).unwrap(), 2.5, 0.045));
        assert_eq!(Histogram::new().quantile_ms(0.5), None);
    }

    #[test]
    fn merge_adds() {
        let (mut a, mut b) = (Histogram::new(), Histogram::new());
        for _ in 0..100 {
            a.record(1_000);
        }
        for _ in 0..50 {
            b.record(3_000);
        }
        a.merge(&b);
        assert_eq!(a.count(), 150);
        // Equal values sit anywhere in their bucket's estimate: within a factor g (9%).
        assert!(within(a.quantile_ms(0.5).unwrap(), 1.0, 0.09));
        assert!(within(a.quantile_ms(0.99).unwrap(), 3.0, 0.09));
    }

    #[test]
    fn text_round_trips_and_hostile_text_is_refused() {
        let mut h = Histogram::new();
        for us in [0, 1, 7, 1_000, 1_000, u64::MAX] {
            h.record(us);
        }
        assert_eq!(Histogram::decode(&h.encode()).unwrap(), h);
        assert_eq!(Histogram::decode("v1").unwrap(), Histogram::new());
        for bad in [
            "",
            "v2 1:1",
            "v1 1",
            "v1 x:1",
            "v1 1:-1",
            "v1 9999:1",
            "v1 3:1 2:1",
            "v1 3:1 3:1",
            "v1 1:18446744073709551615 2:1",
        ] {
            assert!(Histogram::decode(bad).is_err(), "{bad}");
        }
        let huge = format!("v1 {}", "1:1 ".repeat(3));
        assert!(Histogram::decode(&huge).is_err());
    }
}
