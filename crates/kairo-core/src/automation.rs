//! `automations:` in `kairo.yaml`: what closes the loop for a model. A trigger (an alert whose
//! rule says `action: retrain`, a cron schedule, a new version of a tracked dataset) opens an
//! incident; the incident exports labelled production rows, retrains, registers, judges the
//! challenger against the champion, promotes, rolls out and verifies. This module is the
//! vocabulary: the spec, its validation against the rest of the file, cron schedules and the
//! incident states. The engine is `kairo-loop`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::config::{parse_duration_ms, Config};
use crate::yaml::{position, Spanned};

/// One automation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutomationSpec {
    /// The registered model it retrains; must have an entry under `models:`.
    pub model: Spanned<String>,
    /// Any of these opens an incident.
    pub on: Vec<Trigger>,
    pub retrain: RetrainSpec,
    #[serde(default)]
    pub register: RegisterSpec,
    #[serde(default)]
    pub evaluate: EvaluateSpec,
    #[serde(default)]
    pub promote: PromoteSpec,
    #[serde(default)]
    pub rollout: RolloutSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifySpec>,
    #[serde(default)]
    pub guard: GuardSpec,
    /// Where every state change of its incidents is POSTed (approval needed, resolved, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<crate::config::Webhook>,
}

/// What opens an incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Trigger {
    /// An alert of this deployment monitor whose rule carries `action: retrain`.
    Alert { monitor: Spanned<String> },
    /// A cron schedule in UTC: `MIN HOUR DAY-OF-MONTH MONTH DAY-OF-WEEK`.
    Schedule(Spanned<String>),
    /// A new version of this tracked dataset is recorded (`kairo data add`).
    Data(Spanned<String>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrainSpec {
    /// Labelled production rows written to a tracked file before the stages run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<ExportSpec>,
    /// Pipeline stages to bring up to date (they may depend on the exported file).
    pub stages: Vec<Spanned<String>>,
    /// The stage output to register: an `outs:` entry of one of the stages.
    pub artifact: Spanned<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportSpec {
    /// The file written (CSV) and recorded as a new dataset version.
    pub to: String,
    /// How far back production rows are taken (`30d`); all of them when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterSpec {
    /// Training data profiled as the new version's reference (drift is judged against it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_data: Option<String>,
    /// The label column of `profile_data`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// Where the challenger is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvalData {
    /// The model policy's holdout file.
    Holdout,
    /// Production rows labelled through `POST /v1/feedback` after the trigger.
    RecentLabels,
}

/// The paired test that decides "better".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Test {
    #[default]
    PairedBootstrap,
    /// Accuracy of two classifiers on the same rows.
    Mcnemar,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluateSpec {
    /// The alias of the model the challenger must beat.
    #[serde(default = "champion")]
    pub against: String,
    /// Default: the holdout when the model's policy has one, else labelled production rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Vec<EvalData>>,
    /// Labelled production rows needed before judging on them.
    #[serde(default)]
    pub min_labels: u64,
    /// How long to wait for `min_labels` before judging on the holdout alone (default 1d).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels_timeout: Option<String>,
    #[serde(default = "default_metric")]
    pub metric: String,
    #[serde(default)]
    pub test: Test,
    #[serde(default = "default_confidence")]
    pub confidence: f64,
    /// Columns whose slices may not get worse beyond their confidence interval.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub no_regression_on: Vec<String>,
    /// Seed of the bootstrap: the same rows and seed give the same interval.
    #[serde(default)]
    pub seed: u64,
}

impl EvaluateSpec {
    /// Where the challenger is judged: `data`, or by default the holdout when the model's
    /// policy has one, else labelled production rows.
    pub fn sources(&self, has_holdout: bool) -> Vec<EvalData> {
        match &self.data {
            Some(d) => d.clone(),
            None if has_holdout => vec![EvalData::Holdout],
            None => vec![EvalData::RecentLabels],
        }
    }
}

impl Default for EvaluateSpec {
    fn default() -> Self {
        EvaluateSpec {
            against: champion(),
            data: None,
            min_labels: 0,
            labels_timeout: None,
            metric: default_metric(),
            test: Test::default(),
            confidence: default_confidence(),
            no_regression_on: Vec::new(),
            seed: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteSpec {
    /// The alias a better challenger takes (the model's gates and approval still apply).
    #[serde(default = "champion")]
    pub to: String,
}

impl Default for PromoteSpec {
    fn default() -> Self {
        PromoteSpec { to: champion() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutSpec {
    /// `canary` (the model's rollout limits decide, then 100%) or `direct`.
    #[serde(default = "default_strategy")]
    pub strategy: crate::serving::Strategy,
    /// Percent of requests the canary takes.
    #[serde(default = "default_weight")]
    pub weight: u32,
}

impl Default for RolloutSpec {
    fn default() -> Self {
        RolloutSpec { strategy: default_strategy(), weight: default_weight() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifySpec {
    /// The deployment monitor that must be quiet.
    pub monitor: Spanned<String>,
    /// Windows after the rollout, all without an alert, that resolve the incident.
    #[serde(default = "default_quiet")]
    pub quiet_windows: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardSpec {
    /// No new incident sooner than this after the last one opened (`6h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown: Option<String>,
    /// At most this many incidents opened per rolling 24 hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_day: Option<u32>,
}

fn champion() -> String {
    "champion".into()
}
fn default_metric() -> String {
    "auc".into()
}
fn default_confidence() -> f64 {
    0.95
}
fn default_strategy() -> crate::serving::Strategy {
    crate::serving::Strategy::Canary
}
fn default_weight() -> u32 {
    10
}
fn default_quiet() -> u32 {
    1
}

/// An automation that does not fit the rest of `kairo.yaml`, with where it was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}automations.{automation}: {message}", location.map(|(l, c)| format!("{l}:{c}: ")).unwrap_or_default())]
pub struct SpecError {
    pub automation: String,
    pub message: String,
    pub location: Option<(usize, usize)>,
}

impl AutomationSpec {
    /// Check the automation against the rest of the file: the model has a policy entry,
    /// monitors exist and watch deployments (an alert trigger's monitor has a `retrain`
    /// rule), stages exist, the artifact is one of their outputs, durations and cron parse.
    pub fn validate(&self, name: &str, config: &Config) -> Result<(), SpecError> {
        let err = |message: String, at: Option<crate::yaml::Location>| SpecError {
            automation: name.to_string(),
            message,
            // Without a place of its own, an error points at the automation's `model:` line.
            location: at.or(Some(self.model.referenced)).and_then(position),
        };
        if !config.models.contains_key(&self.model.value) {
            return Err(err(
                format!(
                    "model `{}` has no entry under `models:` (add `models: {{{}: {{}}}}`)",
                    self.model.value, self.model.value
                ),
                Some(self.model.referenced),
            ));
        }
        if self.on.is_empty() {
            return Err(err("`on` needs at least one trigger (alert, schedule or data)".into(), None));
        }
        for t in &self.on {
            match t {
                Trigger::Alert { monitor } => {
                    let spec = deployment_monitor(config, monitor).map_err(|m| err(m, Some(monitor.referenced)))?;
                    if !spec.alerts.iter().any(|r| r.action.as_deref() == Some("retrain")) {
                        return Err(err(
                            format!("monitor `{}` has no alert rule with `action: retrain`", monitor.value),
                            Some(monitor.referenced),
                        ));
                    }
                }
                Trigger::Schedule(cron) => {
                    Cron::parse(&cron.value)
                        .map_err(|m| err(format!("schedule `{}`: {m}", cron.value), Some(cron.referenced)))?;
                }
                Trigger::Data(path) => {
                    if path.value.trim().is_empty() {
                        return Err(err("`data` names a tracked path".into(), Some(path.referenced)));
                    }
                }
            }
        }
        let stages = config.stages.as_ref().and_then(|s| s.as_object());
        if self.retrain.stages.is_empty() {
            return Err(err("retrain.stages names at least one pipeline stage".into(), None));
        }
        let mut outs = Vec::new();
        for s in &self.retrain.stages {
            let Some(stage) = stages.and_then(|m| m.get(&s.value)) else {
                let known = stages.map(|m| m.keys().cloned().collect::<Vec<_>>().join(", ")).unwrap_or_default();
                return Err(err(
                    format!(
                        "retrain.stages: no stage `{}` under `stages:` (stages: {})",
                        s.value,
                        if known.is_empty() { "none" } else { &known }
                    ),
                    Some(s.referenced),
                ));
            };
            for o in stage.get("outs").and_then(|o| o.as_array()).into_iter().flatten() {
                match o {
                    serde_json::Value::String(p) => outs.push(p.clone()),
                    serde_json::Value::Object(m) => outs.extend(m.keys().cloned()),
                    _ => {}
                }
            }
        }
        let artifact = &self.retrain.artifact;
        if !outs.iter().any(|o| o == &artifact.value) {
            return Err(err(
                format!(
                    "retrain.artifact `{}` is not an output of the stages {} (outs: {})",
                    artifact.value,
                    self.retrain.stages.iter().map(|s| s.value.as_str()).collect::<Vec<_>>().join(", "),
                    outs.join(", ")
                ),
                Some(artifact.referenced),
            ));
        }
        if let Some(e) = &self.retrain.export {
            if e.to.trim().is_empty() {
                return Err(err("retrain.export.to names the file to write".into(), None));
            }
            if let Some(s) = &e.since {
                parse_duration_ms(s).map_err(|m| err(format!("retrain.export.since: {m}"), None))?;
            }
        }
        let ev = &self.evaluate;
        if ev.data.as_ref().is_some_and(Vec::is_empty) {
            return Err(err("evaluate.data: name `holdout`, `recent_labels` or both".into(), None));
        }
        if ev.data.as_ref().is_some_and(|d| d.contains(&EvalData::Holdout))
            && config.models[&self.model.value].holdout.is_none()
        {
            return Err(err(
                format!(
                    "evaluate.data has `holdout`, but models.{} has no `holdout:` (path and target)",
                    self.model.value
                ),
                Some(self.model.referenced),
            ));
        }
        if !(0.5..1.0).contains(&ev.confidence) {
            return Err(err(format!("evaluate.confidence {}: must be at least 0.5 and below 1", ev.confidence), None));
        }
        if ev.test == Test::Mcnemar && ev.metric != "accuracy" {
            return Err(err(
                format!("evaluate.test mcnemar judges accuracy, not `{}` (set metric: accuracy)", ev.metric),
                None,
            ));
        }
        if let Some(t) = &ev.labels_timeout {
            parse_duration_ms(t).map_err(|m| err(format!("evaluate.labels_timeout: {m}"), None))?;
        }
        let r = &self.rollout;
        if r.strategy == crate::serving::Strategy::Shadow {
            return Err(err("rollout.strategy: `canary` or `direct` (a shadow never takes traffic)".into(), None));
        }
        if r.strategy == crate::serving::Strategy::Canary && !(1..=99).contains(&r.weight) {
            return Err(err(format!("rollout.weight {}: a canary takes 1 to 99 percent", r.weight), None));
        }
        if let Some(v) = &self.verify {
            deployment_monitor(config, &v.monitor).map_err(|m| err(m, Some(v.monitor.referenced)))?;
            if v.quiet_windows == 0 {
                return Err(err("verify.quiet_windows must be at least 1".into(), None));
            }
        }
        if let Some(c) = &self.guard.cooldown {
            parse_duration_ms(c).map_err(|m| err(format!("guard.cooldown: {m}"), None))?;
        }
        if self.guard.max_per_day == Some(0) {
            return Err(err("guard.max_per_day must be at least 1 (remove the automation to stop it)".into(), None));
        }
        Ok(())
    }

    /// Monitors whose alerts trigger this automation.
    pub fn alert_monitors(&self) -> impl Iterator<Item = &str> {
        self.on.iter().filter_map(|t| match t {
            Trigger::Alert { monitor } => Some(monitor.value.as_str()),
            _ => None,
        })
    }
}

fn deployment_monitor<'a>(
    config: &'a Config,
    monitor: &Spanned<String>,
) -> Result<&'a crate::config::MonitorSpec, String> {
    let spec = config.monitors.get(&monitor.value).ok_or_else(|| {
        let known: Vec<&str> = config.monitors.keys().map(String::as_str).collect();
        format!(
            "no monitor `{}` under `monitors:` (monitors: {})",
            monitor.value,
            if known.is_empty() { "none".into() } else { known.join(", ") }
        )
    })?;
    if spec.deployment.is_none() {
        return Err(format!("monitor `{}` compares files; the loop needs a deployment monitor", monitor.value));
    }
    Ok(spec)
}

/// Check every automation of a parsed file.
pub fn validate_all(automations: &BTreeMap<String, AutomationSpec>, config: &Config) -> Result<(), SpecError> {
    automations.iter().try_for_each(|(name, a)| a.validate(name, config))
}

/// Where an incident stands. Open states advance; the rest are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentState {
    Triggered,
    Retraining,
    Registering,
    AwaitingLabels,
    Evaluating,
    AwaitingApproval,
    RollingOut,
    Verifying,
    Resolved,
    /// The challenger is not better with the stated confidence (or a slice regressed).
    NotBetter,
    /// An approver refused it.
    Rejected,
    /// The canary breached its limits and the deployment went back.
    RolledBack,
    /// A step failed; the incident records which and why.
    Failed,
}

impl IncidentState {
    pub const ALL: &'static [IncidentState] = &[
        IncidentState::Triggered,
        IncidentState::Retraining,
        IncidentState::Registering,
        IncidentState::AwaitingLabels,
        IncidentState::Evaluating,
        IncidentState::AwaitingApproval,
        IncidentState::RollingOut,
        IncidentState::Verifying,
        IncidentState::Resolved,
        IncidentState::NotBetter,
        IncidentState::Rejected,
        IncidentState::RolledBack,
        IncidentState::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IncidentState::Triggered => "triggered",
            IncidentState::Retraining => "retraining",
            IncidentState::Registering => "registering",
            IncidentState::AwaitingLabels => "awaiting_labels",
            IncidentState::Evaluating => "evaluating",
            IncidentState::AwaitingApproval => "awaiting_approval",
            IncidentState::RollingOut => "rolling_out",
            IncidentState::Verifying => "verifying",
            IncidentState::Resolved => "resolved",
            IncidentState::NotBetter => "not_better",
            IncidentState::Rejected => "rejected",
            IncidentState::RolledBack => "rolled_back",
            IncidentState::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<IncidentState> {
        IncidentState::ALL.iter().copied().find(|s| s.as_str() == text)
    }

    /// Whether the incident is over.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            IncidentState::Resolved
                | IncidentState::NotBetter
                | IncidentState::Rejected
                | IncidentState::RolledBack
                | IncidentState::Failed
        )
    }
}

impl std::fmt::Display for IncidentState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A five-field cron schedule in UTC (`MIN HOUR DOM MONTH DOW`): `*`, lists, ranges and
/// steps (`*/15`, `1-5`, `0,30`); day of week 0–7 with 0 and 7 both Sunday. As in Vixie cron,
/// when both day fields are restricted a day matching either one fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    days_restricted: bool,
    weekdays_restricted: bool,
}

impl Cron {
    pub fn parse(text: &str) -> Result<Cron, String> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [min, hour, dom, month, dow] = fields.as_slice() else {
            return Err(format!("{} fields; a cron schedule has five: MINUTE HOUR DAY MONTH WEEKDAY", fields.len()));
        };
        let mut weekdays = field(dow, 0, 7, "weekday")?;
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1;
        }
        Ok(Cron {
            minutes: field(min, 0, 59, "minute")?,
            hours: field(hour, 0, 23, "hour")?,
            days: field(dom, 1, 31, "day of month")?,
            months: field(month, 1, 12, "month")?,
            weekdays: weekdays & 0x7f,
            days_restricted: *dom != "*",
            weekdays_restricted: *dow != "*",
        })
    }

    /// The first minute strictly after `after_ms` (Unix milliseconds) the schedule fires.
    /// `None` when it never does (e.g. `0 0 31 2 *`) within eight years.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        const MIN: i64 = 60_000;
        let mut t = (after_ms.div_euclid(MIN) + 1) * MIN;
        let limit = t + 8 * 366 * 24 * 60 * MIN;
        while t < limit {
            let (y, mo, d, h, mi, wd) = civil(t);
            if self.months & (1 << mo) == 0 {
                t = month_start(y, mo + 1);
                continue;
            }
            let day_ok = match (self.days_restricted, self.weekdays_restricted) {
                (true, true) => self.days & (1 << d) != 0 || self.weekdays & (1 << wd) != 0,
                _ => self.days & (1 << d) != 0 && self.weekdays & (1 << wd) != 0,
            };
            if !day_ok {
                t = (t.div_euclid(1440 * MIN) + 1) * 1440 * MIN;
                continue;
            }
            if self.hours & (1 << h) == 0 {
                t = (t.div_euclid(60 * MIN) + 1) * 60 * MIN;
                continue;
            }
            if self.minutes & (1 << mi) == 0 {
                t += MIN;
                continue;
            }
            return Some(t);
        }
        None
    }
}

fn field(text: &str, lo: u32, hi: u32, what: &str) -> Result<u64, String> {
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s.parse().map_err(|_| format!("{what} step `{s}` is not a number"))?;
                if step == 0 {
                    return Err(format!("{what} step must be at least 1"));
                }
                (r, step)
            }
            None => (part, 1),
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (num(a, what)?, num(b, what)?)
        } else {
            let a = num(range, what)?;
            (a, if step > 1 { hi } else { a })
        };
        if a < lo || b > hi || a > b {
            return Err(format!("{what} `{range}` is outside {lo}-{hi}"));
        }
        let mut v = a;
        while v <= b {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

fn num(s: &str, what: &str) -> Result<u32, String> {
    s.parse().map_err(|_| format!("{what} `{s}` is not a number"))
}

/// (year, month 1–12, day 1–31, hour, minute, weekday 0 = Sunday) of a Unix time in ms, UTC.
fn civil(ms: i64) -> (i32, u32, u32, u32, u32, u32) {
    use chrono::{Datelike, Timelike};
    let t = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms).unwrap_or_default();
    (t.year(), t.month(), t.day(), t.hour(), t.minute(), t.weekday().num_days_from_sunday())
}

/// Unix ms at 00:00 on the first of `month` (13 rolls into the next year).
fn month_start(year: i32, month: u32) -> i64 {
    let (y, m) = if month > 12 { (year + 1, 1) } else { (year, month) };
    chrono::NaiveDate::from_ymd_opt(y, m, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc().timestamp_millis())
        .unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> i64 {
        crate::time::millis_of(text)
    }

    #[test]
    fn cron_finds_the_next_firing() {
        // 2026-12-05 is a Saturday.
        let weekly = Cron::parse("0 3 * * 1").unwrap();
        assert_eq!(weekly.next_after(at("2026-12-05T10:00:00.000Z")), Some(at("2026-12-07T03:00:00.000Z")));
        let quarter = Cron::parse("*/15 * * * *").unwrap();
        assert_eq!(quarter.next_after(at("2026-12-05T10:00:00.000Z")), Some(at("2026-12-05T10:15:00.000Z")));
        assert_eq!(quarter.next_after(at("2026-12-05T10:14:59.999Z")), Some(at("2026-12-05T10:15:00.000Z")));
        let new_year = Cron::parse("0 0 1 1 *").unwrap();
        assert_eq!(new_year.next_after(at("2026-12-05T10:00:00.000Z")), Some(at("2027-01-01T00:00:00.000Z")));
        // Either day field matches when both are restricted; 7 is Sunday.
        let either = Cron::parse("30 12 1 * 7").unwrap();
        assert_eq!(either.next_after(at("2026-12-05T13:00:00.000Z")), Some(at("2026-12-06T12:30:00.000Z")));
        assert_eq!(Cron::parse("0 0 31 2 *").unwrap().next_after(0), None);
        let leap = Cron::parse("0 0 29 2 *").unwrap();
        assert_eq!(leap.next_after(at("2026-12-05T00:00:00.000Z")), Some(at("2028-02-29T00:00:00.000Z")));
    }

    #[test]
    fn cron_errors_name_the_field() {
        assert!(Cron::parse("0 3 * *").unwrap_err().contains("five"));
        assert!(Cron::parse("60 * * * *").unwrap_err().contains("minute `60`"));
        assert!(Cron::parse("* * * 13 *").unwrap_err().contains("month"));
        assert!(Cron::parse("*/0 * * * *").unwrap_err().contains("step"));
        assert!(Cron::parse("a * * * *").unwrap_err().contains("not a number"));
    }

    #[test]
    fn incident_states_round_trip() {
        for s in IncidentState::ALL {
            assert_eq!(IncidentState::parse(s.as_str()), Some(*s));
        }
        assert!(IncidentState::Resolved.is_final() && !IncidentState::Verifying.is_final());
    }
}

#[cfg(test)]
mod spec_tests {
    use crate::config::Config;

    const BASE: &str = "version: 1
stages:
  train:
    cmd: kairo train --data data/train.csv --target churned --out model.onnx
    deps: [data/train.csv]
    outs: [model.onnx]
models:
  churn:
    holdout: {path: data/holdout.csv, target: churned}
monitors:
  churn-watch:
    deployment: churn
    alerts:
      - when: drift_share > 0.3
        action: retrain
";

    fn parse(automation: &str) -> Result<Config, String> {
        Config::parse(&format!("{BASE}automations:\n  churn-retrain:\n{automation}")).map_err(|e| e.to_string())
    }

    #[test]
    fn the_issue_example_parses() {
        let c = parse(
            "    model: churn
    on:
      - alert: {monitor: churn-watch}
      - schedule: \"0 3 * * 1\"
      - data: data/raw
    retrain:
      export: {to: data/production.csv, since: 30d}
      stages: [train]
      artifact: model.onnx
    register: {profile_data: data/train.csv, target: churned}
    evaluate:
      against: champion
      data: [holdout, recent_labels]
      min_labels: 200
      metric: auc
      test: paired_bootstrap
      confidence: 0.95
      no_regression_on: [region]
    promote: {to: champion}
    rollout: {strategy: canary, weight: 10}
    verify: {monitor: churn-watch, quiet_windows: 2}
    guard: {cooldown: 6h, max_per_day: 3}
",
        )
        .unwrap();
        let a = &c.automations["churn-retrain"];
        assert_eq!(a.on.len(), 3);
        assert_eq!(a.alert_monitors().collect::<Vec<_>>(), ["churn-watch"]);
        assert_eq!(a.evaluate.min_labels, 200);
        assert_eq!(a.rollout.weight, 10);
    }

    #[test]
    fn unknown_references_are_named_with_line_and_column() {
        let base = "    model: churn\n    on: [{alert: {monitor: nope}}]\n    retrain: {stages: [train], artifact: model.onnx}\n";
        let e = parse(base).unwrap_err();
        assert!(e.starts_with("kairo.yaml:19:") && e.contains("no monitor `nope`") && e.contains("churn-watch"), "{e}");
        let e = parse(
            "    model: other\n    on: [{data: data/raw}]\n    retrain: {stages: [train], artifact: model.onnx}\n",
        )
        .unwrap_err();
        assert!(e.starts_with("kairo.yaml:18:12: automations.churn-retrain: model `other`"), "{e}");
        let e = parse("    model: churn\n    on: [{data: d}]\n    retrain: {stages: [fit], artifact: model.onnx}\n")
            .unwrap_err();
        assert!(
            e.contains("no stage `fit`") && e.contains("(stages: train)") && e.starts_with("kairo.yaml:20:"),
            "{e}"
        );
        let e = parse("    model: churn\n    on: [{data: d}]\n    retrain: {stages: [train], artifact: m.onnx}\n")
            .unwrap_err();
        assert!(e.contains("`m.onnx` is not an output") && e.contains("outs: model.onnx"), "{e}");
        let e = parse("    model: churn\n    on: [{schedule: \"0 25 * * *\"}]\n    retrain: {stages: [train], artifact: model.onnx}\n")
            .unwrap_err();
        assert!(e.contains("hour `25`"), "{e}");
        let e = parse("    model: churn\n    on: [{data: d}]\n    retrain: {stages: [train], artifact: model.onnx}\n    rollout: {weight: 100}\n")
            .unwrap_err();
        assert!(e.contains("1 to 99 percent"), "{e}");
        let e = parse("    model: churn\n    on: [{data: d}]\n    retrain: {stages: [train], artifact: model.onnx}\n    evaluate: {test: mcnemar}\n")
            .unwrap_err();
        assert!(e.contains("metric: accuracy"), "{e}");
        let e = parse("    model: churn\n    on: [{data: d}]\n    retrain: {stages: [train], artifact: model.onnx}\n    oops: 1\n")
            .unwrap_err();
        assert!(e.contains("oops"), "{e}");
    }
}
