//! The headline KPIs as Prometheus gauges, for the tracking server's `/metrics`.

use std::fmt::Write;

use crate::report::{Report, Share};

/// Gauges of a report (`window` labels the period, e.g. `30d`). Values that are undefined
/// (no changes, no incidents) are left out rather than reported as 0.
pub fn render(r: &Report, window: &str) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, samples: &[(String, Option<f64>)]| {
        let present: Vec<_> = samples.iter().filter_map(|(l, v)| v.map(|v| (l, v))).collect();
        if present.is_empty() {
            return;
        }
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, v) in present {
            let _ = writeln!(out, "{name}{{window=\"{window}\"{labels}}} {v}");
        }
    };
    let none = String::new;
    gauge(
        "kairo_kpi_deployments_per_week",
        "Versions reaching 100% of traffic per week.",
        &[(none(), Some(r.deployment_frequency.per_week))],
    );
    gauge(
        "kairo_kpi_lead_time_seconds",
        "Lead time for change, from its cause to 100% of traffic.",
        &[(",quantile=\"0.5\"".into(), r.lead_time.median_s), (",quantile=\"0.9\"".into(), r.lead_time.p90_s)],
    );
    gauge(
        "kairo_kpi_change_failure_rate",
        "Changes rolled back or followed by an incident.",
        &[(none(), r.change_failure.rate)],
    );
    gauge(
        "kairo_kpi_time_to_restore_seconds",
        "Incident opened to resolved.",
        &[(",quantile=\"0.5\"".into(), r.restore.median_s)],
    );
    gauge(
        "kairo_kpi_time_to_detect_seconds",
        "First breaching window to the alert.",
        &[(",quantile=\"0.5\"".into(), r.restore.detect_median_s)],
    );
    gauge("kairo_kpi_incidents_open", "Incidents still open.", &[(none(), Some(r.restore.open as f64))]);
    let share = |a: &str, s: &Share| (format!(",action=\"{a}\""), s.rate);
    let a = &r.automation;
    gauge(
        "kairo_kpi_automation_rate",
        "Share of actions done by automation rather than by hand.",
        &[
            share("retrain", &a.retrains),
            share("promotion", &a.promotions),
            share("deploy", &a.deploys),
            share("rollback", &a.rollbacks),
            share("drift_check", &a.drift_checks),
        ],
    );
    gauge("kairo_kpi_compute_cpu_seconds", "CPU seconds of runs.", &[(none(), Some(r.compute.cpu_s))]);
    if r.value.configured {
        gauge(
            "kairo_kpi_hours_saved",
            "Hours saved by automation (value: in kairo.yaml).",
            &[(none(), Some(r.value.hours_saved))],
        );
        gauge("kairo_kpi_net_value", "Money saved + realised value − compute cost.", &[(none(), r.value.net)]);
    }
    out
}
