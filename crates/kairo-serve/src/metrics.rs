//! Prometheus metrics of the inference server, rendered in the text exposition format:
//! requests by model, version, arm and status; a latency histogram by model and arm; model
//! swaps; prediction-log rows written and dropped.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 14] =
    [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// What one served model's requests left behind.
#[derive(Default)]
struct PerModel {
    /// version, arm, HTTP status → requests.
    requests: BTreeMap<(i64, &'static str, u16), u64>,
    /// arm → latency.
    latency: BTreeMap<&'static str, Histogram>,
    /// (version, UTC day) → the day's totals, kept until written after the day ended.
    days: BTreeMap<(i64, i64), Day>,
}

/// A version's requests on one UTC day (answered to clients: stable and canary arms).
#[derive(Default, Clone)]
struct Day {
    requests: i64,
    client_errors: i64,
    server_errors: i64,
    latency: kairo_core::latency::Histogram,
    /// Changed since it was last taken for the store.
    dirty: bool,
}

const DAY_MS: i64 = 86_400_000;

#[derive(Default)]
pub struct Metrics {
    /// One lock per request, taken once; looked up by `&str` (no allocation once a model has
    /// been seen).
    models: Mutex<BTreeMap<String, PerModel>>,
    pub log_rows: AtomicU64,
    pub log_dropped: AtomicU64,
    pub log_segments: AtomicU64,
    pub log_failures: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Metrics {
    pub fn observe(&self, model: &str, version: i64, arm: &'static str, status: u16, elapsed: Duration) {
        self.observe_at(kairo_core::time::now_millis(), model, version, arm, status, elapsed);
    }

    fn observe_at(&self, now_ms: i64, model: &str, version: i64, arm: &'static str, status: u16, elapsed: Duration) {
        let mut models = lock(&self.models);
        if !models.contains_key(model) {
            models.insert(model.to_string(), PerModel::default());
        }
        let Some(m) = models.get_mut(model) else { return };
        *m.requests.entry((version, arm, status)).or_default() += 1;
        let secs = elapsed.as_secs_f64();
        let h = m.latency.entry(arm).or_default();
        h.count += 1;
        h.sum += secs;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.counts[i] += 1;
            }
        }
        // A shadow's answers never reach a client: not part of the version's serving health.
        if arm != "shadow" {
            let d = m.days.entry((version, now_ms.div_euclid(DAY_MS) * DAY_MS)).or_default();
            d.requests += 1;
            d.client_errors += i64::from((400..500).contains(&status));
            d.server_errors += i64::from(status >= 500);
            d.latency.record(elapsed.as_micros().min(u128::from(u64::MAX)) as u64);
            d.dirty = true;
        }
    }

    /// The running totals of every (model, version, day) that changed since the last call, for
    /// the store; days that ended and were already taken are forgotten. Give them back with
    /// [`Metrics::untake`] when the write fails.
    pub fn take_days(&self, instance: &str) -> Vec<kairo_store::kpi::ServingDay> {
        self.take_days_at(kairo_core::time::now_millis(), instance)
    }

    fn take_days_at(&self, now_ms: i64, instance: &str) -> Vec<kairo_store::kpi::ServingDay> {
        let today = now_ms.div_euclid(DAY_MS) * DAY_MS;
        let mut out = Vec::new();
        for (model, m) in lock(&self.models).iter_mut() {
            // Yesterday is kept a whole day more: a request that read the clock just before
            // midnight may count after the first flush of the new day, and must add to
            // yesterday's totals, not start them again from 1 (and overwrite the stored row).
            m.days.retain(|(_, day), d| d.dirty || *day >= today - DAY_MS);
            for ((version, day), d) in m.days.iter_mut().filter(|(_, d)| d.dirty) {
                d.dirty = false;
                out.push(kairo_store::kpi::ServingDay {
                    deployment: model.clone(),
                    version: *version,
                    day_ms: *day,
                    instance: instance.to_string(),
                    requests: d.requests,
                    client_errors: d.client_errors,
                    server_errors: d.server_errors,
                    latency: d.latency.clone(),
                    updated_ms: now_ms,
                });
            }
        }
        out
    }

    /// Mark days taken by [`Metrics::take_days`] as still to be written.
    pub fn untake(&self, rows: &[kairo_store::kpi::ServingDay]) {
        let mut models = lock(&self.models);
        for r in rows {
            if let Some(d) = models.get_mut(&r.deployment).and_then(|m| m.days.get_mut(&(r.version, r.day_ms))) {
                d.dirty = true;
            }
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP kairo_inference_requests_total Inference requests by model, version, arm and HTTP status.\n",
        );
        out.push_str("# TYPE kairo_inference_requests_total counter\n");
        let models = lock(&self.models);
        for (model, m) in models.iter() {
            for ((version, arm, status), n) in &m.requests {
                let _ = writeln!(
                    out,
                    "kairo_inference_requests_total{{model=\"{}\",version=\"{version}\",arm=\"{arm}\",status=\"{status}\"}} {n}",
                    escape(model)
                );
            }
        }
        out.push_str("# HELP kairo_inference_duration_seconds Time from request decoded to response encoded.\n");
        out.push_str("# TYPE kairo_inference_duration_seconds histogram\n");
        for (model, arm, h) in
            models.iter().flat_map(|(model, m)| m.latency.iter().map(move |(arm, h)| (model, arm, h)))
        {
            let labels = format!("model=\"{}\",arm=\"{arm}\"", escape(model));
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ =
                    writeln!(out, "kairo_inference_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {}", h.counts[i]);
            }
            let _ = writeln!(out, "kairo_inference_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "kairo_inference_duration_seconds_sum{{{labels}}} {}", h.sum);
            let _ = writeln!(out, "kairo_inference_duration_seconds_count{{{labels}}} {}", h.count);
        }
        drop(models);
        for (name, help, v) in [
            ("kairo_prediction_log_rows_total", "Prediction rows written to the log.", &self.log_rows),
            (
                "kairo_prediction_log_dropped_total",
                "Answered prediction rows not in the log: the queue was full, or writing them failed.",
                &self.log_dropped,
            ),
            ("kairo_prediction_log_segments_total", "Prediction-log segments written.", &self.log_segments),
            (
                "kairo_prediction_log_failures_total",
                "Prediction-log writes that failed (their rows are counted as dropped), writer restarts included.",
                &self.log_failures,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", v.load(Ordering::Relaxed));
        }
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request that read the clock just before midnight and counts after the new day's first
    /// flush adds to yesterday's totals: the stored row grows, it is not restarted from 1.
    #[test]
    fn a_late_count_after_midnight_adds_to_yesterday() {
        let m = Metrics::default();
        let midnight = 20_000 * DAY_MS;
        let ms = Duration::from_millis(1);
        m.observe_at(midnight - 1, "clf", 1, "stable", 200, ms);
        let first = m.take_days_at(midnight + 1, "i");
        assert_eq!(first.iter().map(|d| (d.day_ms, d.requests)).collect::<Vec<_>>(), [(midnight - DAY_MS, 1)]);
        assert!(m.take_days_at(midnight + 2, "i").is_empty(), "nothing changed");
        m.observe_at(midnight - 1, "clf", 1, "stable", 500, ms);
        let late = m.take_days_at(midnight + 3, "i");
        assert_eq!(
            late.iter().map(|d| (d.day_ms, d.requests, d.server_errors)).collect::<Vec<_>>(),
            [(midnight - DAY_MS, 2, 1)]
        );
        // Two days on, yesterday's totals are forgotten (they were written).
        assert!(m.take_days_at(midnight + 2 * DAY_MS, "i").is_empty());
        assert!(lock(&m.models)["clf"].days.is_empty());
    }
}
