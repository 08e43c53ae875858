//! The ROI: hours and money saved by automation, compute spent, the model's realised value,
//! and the net, from the team's own `value:` baseline. Every line shows its inputs and its
//! formula; a figure whose input is not configured is not computed, and `missing` says what
//! to add. Nothing here has a default.

use kairo_core::kpi::ValueSpec;

use crate::ledger::Ledger;
use crate::report::{Report, Roi, RoiLine};

fn num(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x:.2}")
    }
}

/// Counts of the actions automation did in the period that people would otherwise do.
pub struct Automated {
    pub retrains: u64,
    pub deploys: u64,
    /// Monitor-days with at least one scheduled check: a person checking by hand would not
    /// check a monitor more than once a day, so more frequent checks save no more.
    pub drift_check_days: u64,
    pub rollbacks: u64,
}

pub fn automated(r: &Report, l: &Ledger) -> Automated {
    Automated {
        retrains: r.automation.retrains.automated,
        deploys: r.automation.deploys.automated,
        drift_check_days: l.monitor_checks.iter().filter(|d| d.scheduled > 0).count() as u64,
        rollbacks: r.automation.rollbacks.automated,
    }
}

/// True positives, false positives, false negatives, true negatives over the labelled rows of
/// binary classifiers (the positive class is the larger label, as the quality metrics take it).
pub fn outcomes(l: &Ledger, model: Option<&str>) -> [u64; 4] {
    let mut c = [0u64; 4];
    for (m, windows) in &l.quality {
        if model.is_some_and(|x| x != m) {
            continue;
        }
        for w in windows {
            let Some((classes, matrix)) = &w.scored.confusion else { continue };
            if classes.len() != 2 {
                continue;
            }
            c[0] += matrix[1][1];
            c[1] += matrix[0][1];
            c[2] += matrix[1][0];
            c[3] += matrix[0][0];
        }
    }
    c
}

pub fn compute(spec: Option<&ValueSpec>, r: &Report, l: &Ledger) -> Roi {
    let Some(v) = spec else {
        return Roi {
            configured: false,
            missing: vec![
                "a `value:` section in kairo.yaml: engineer_hourly_cost, manual_minutes (retrain, deploy, drift_check, rollback), cpu_hour_cost, and optionally prediction_value or outcome_value".into(),
            ],
            net_formula: String::new(),
            ..Roi::default()
        };
    };
    let mut out = Roi { configured: true, currency: v.currency.clone(), ..Roi::default() };
    let a = automated(r, l);
    let hourly = v.engineer_hourly_cost;
    let mut money_saved: Option<f64> = None;
    let items = [
        ("retrain", a.retrains, v.manual_minutes.retrain, "automated retrains"),
        ("deploy", a.deploys, v.manual_minutes.deploy, "automated deployments"),
        ("drift_check", a.drift_check_days, v.manual_minutes.drift_check, "monitor-days checked on schedule"),
        ("rollback", a.rollbacks, v.manual_minutes.rollback, "automatic rollbacks"),
    ];
    for (item, n, minutes, what) in items {
        let Some(min) = minutes else {
            out.missing.push(format!(
                "value.manual_minutes.{item} (minutes one takes by hand today; {n} {what} in the period)"
            ));
            continue;
        };
        let hours = n as f64 * min / 60.0;
        out.hours_saved += hours;
        let amount = hourly.map(|h| hours * h);
        let formula = match hourly {
            Some(h) => format!("{n} × {} min ÷ 60 = {} h; × {} = {}", num(min), num(hours), num(h), num(hours * h)),
            None => format!("{n} × {} min ÷ 60 = {} h", num(min), num(hours)),
        };
        if let Some(x) = amount {
            *money_saved.get_or_insert(0.0) += x;
        }
        out.lines.push(RoiLine {
            item: item.into(),
            inputs: format!("{n} {what}; {} min each by hand", num(min)),
            formula,
            hours: Some(hours),
            amount,
        });
    }
    if hourly.is_none() {
        out.missing.push("value.engineer_hourly_cost (what an hour of an engineer costs)".into());
    }
    out.money_saved = money_saved;

    let cpu_hours = r.compute.cpu_s / 3600.0;
    match v.cpu_hour_cost {
        Some(cost) => {
            let amount = cpu_hours * cost;
            out.compute_cost = Some(amount);
            out.lines.push(RoiLine {
                item: "compute".into(),
                inputs: format!("{} CPU-hours in {} runs; {} per CPU-hour", num(cpu_hours), r.compute.runs, num(cost)),
                formula: format!("{} × {} = {}", num(cpu_hours), num(cost), num(amount)),
                hours: None,
                // A cost, shown negative (never as -0).
                amount: Some(if amount == 0.0 { 0.0 } else { -amount }),
            });
        }
        None => out
            .missing
            .push(format!("value.cpu_hour_cost (what a CPU-hour costs; {} CPU-hours in the period)", num(cpu_hours))),
    }

    let mut realised: Option<f64> = None;
    if let Some(pv) = v.prediction_value {
        let n: i64 =
            l.predictions.iter().filter(|(m, _)| r.period.model.as_ref().is_none_or(|x| x == *m)).map(|(_, n)| n).sum();
        let amount = n as f64 * pv;
        *realised.get_or_insert(0.0) += amount;
        out.lines.push(RoiLine {
            item: "predictions".into(),
            inputs: format!("{n} predictions served; {} each", num(pv)),
            formula: format!("{n} × {} = {}", num(pv), num(amount)),
            hours: None,
            amount: Some(amount),
        });
    }
    if let Some(ov) = v.outcome_value {
        let [tp, fp, fn_, tn] = outcomes(l, r.period.model.as_deref());
        let amount = tp as f64 * ov.tp + fp as f64 * ov.fp + fn_ as f64 * ov.fn_ + tn as f64 * ov.tn;
        *realised.get_or_insert(0.0) += amount;
        out.lines.push(RoiLine {
            item: "outcomes".into(),
            inputs: format!(
                "labelled predictions: TP {tp}, FP {fp}, FN {fn_}, TN {tn}; values TP {}, FP {}, FN {}, TN {}",
                num(ov.tp),
                num(ov.fp),
                num(ov.fn_),
                num(ov.tn)
            ),
            formula: format!(
                "{tp}×{} + {fp}×{} + {fn_}×{} + {tn}×{} = {}",
                num(ov.tp),
                num(ov.fp),
                num(ov.fn_),
                num(ov.tn),
                num(amount)
            ),
            hours: None,
            amount: Some(amount),
        });
    }
    if v.prediction_value.is_none() && v.outcome_value.is_none() {
        out.missing
            .push("value.prediction_value or value.outcome_value (the business value of predictions; optional)".into());
    }
    out.realised_value = realised;

    let mut terms = Vec::new();
    let mut net = None;
    if let Some(m) = out.money_saved {
        terms.push(format!("saved {}", num(m)));
        *net.get_or_insert(0.0) += m;
    }
    if let Some(x) = out.realised_value {
        terms.push(format!("+ realised {}", num(x)));
        *net.get_or_insert(0.0) += x;
    }
    if let Some(c) = out.compute_cost {
        terms.push(format!("− compute {}", num(c)));
        *net.get_or_insert(0.0) -= c;
    }
    out.net = net;
    out.net_formula = match net {
        Some(n) => format!("{} = {}", terms.join(" "), num(n)),
        None => String::new(),
    };
    out
}
