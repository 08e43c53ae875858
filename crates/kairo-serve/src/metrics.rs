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

/// model, version, arm, HTTP status.
type RequestKey = (String, i64, &'static str, u16);

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<RequestKey, u64>>,
    latency: Mutex<BTreeMap<(String, &'static str), Histogram>>,
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
        *lock(&self.requests).entry((model.to_string(), version, arm, status)).or_default() += 1;
        let secs = elapsed.as_secs_f64();
        let mut latency = lock(&self.latency);
        let h = latency.entry((model.to_string(), arm)).or_default();
        h.count += 1;
        h.sum += secs;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.counts[i] += 1;
            }
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP kairo_inference_requests_total Inference requests by model, version, arm and HTTP status.\n",
        );
        out.push_str("# TYPE kairo_inference_requests_total counter\n");
        for ((model, version, arm, status), n) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "kairo_inference_requests_total{{model=\"{}\",version=\"{version}\",arm=\"{arm}\",status=\"{status}\"}} {n}",
                escape(model)
            );
        }
        out.push_str("# HELP kairo_inference_duration_seconds Time from request decoded to response encoded.\n");
        out.push_str("# TYPE kairo_inference_duration_seconds histogram\n");
        for ((model, arm), h) in lock(&self.latency).iter() {
            let labels = format!("model=\"{}\",arm=\"{arm}\"", escape(model));
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ =
                    writeln!(out, "kairo_inference_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {}", h.counts[i]);
            }
            let _ = writeln!(out, "kairo_inference_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "kairo_inference_duration_seconds_sum{{{labels}}} {}", h.sum);
            let _ = writeln!(out, "kairo_inference_duration_seconds_count{{{labels}}} {}", h.count);
        }
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
