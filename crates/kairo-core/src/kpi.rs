//! The `kpi:` and `value:` sections of `kairo.yaml`: how the delivery KPIs are cut (failure
//! window, time zone, quality window) and the team's own baseline for the ROI. Nothing in
//! `value:` has a default: a figure the team did not enter is reported as not configured,
//! never guessed.

use serde::{Deserialize, Serialize};

use crate::config::parse_duration_ms;

/// `kpi:` — how the KPIs are computed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KpiSpec {
    /// A change counts as failed when an incident opens on its model within this long after
    /// it reached 100% (default `7d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_window: Option<String>,
    /// The UTC offset days and weeks are cut in (`+09:00`; default `Z`, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// The window realised quality is reported per (default `7d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality_window: Option<String>,
}

/// `kpi:` with its defaults applied and its values checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KpiSettings {
    pub failure_window_ms: i64,
    /// Seconds east of UTC.
    pub utc_offset_s: i32,
    pub quality_window_ms: i64,
}

pub const DEFAULT_FAILURE_WINDOW_MS: i64 = 7 * 86_400_000;
pub const DEFAULT_QUALITY_WINDOW_MS: i64 = 7 * 86_400_000;

impl KpiSpec {
    /// The settings, or an error naming the key (`kpi.timezone: ...`).
    pub fn settings(&self) -> Result<KpiSettings, String> {
        let duration = |key: &str, v: &Option<String>, default: i64| match v {
            None => Ok(default),
            Some(text) => parse_duration_ms(text).map_err(|e| format!("kpi.{key}: {e}")),
        };
        Ok(KpiSettings {
            failure_window_ms: duration("failure_window", &self.failure_window, DEFAULT_FAILURE_WINDOW_MS)?,
            utc_offset_s: match &self.timezone {
                None => 0,
                Some(t) => parse_utc_offset(t).map_err(|e| format!("kpi.timezone: {e}"))?,
            },
            quality_window_ms: duration("quality_window", &self.quality_window, DEFAULT_QUALITY_WINDOW_MS)?,
        })
    }
}

impl Default for KpiSettings {
    fn default() -> Self {
        KpiSettings {
            failure_window_ms: DEFAULT_FAILURE_WINDOW_MS,
            utc_offset_s: 0,
            quality_window_ms: DEFAULT_QUALITY_WINDOW_MS,
        }
    }
}

/// `Z`, `UTC`, `+09:00`, `-05:30`, `+0900` → seconds east of UTC. Named zones with daylight
/// saving (`Europe/Berlin`) are refused: a fixed offset cuts every day the same way.
pub fn parse_utc_offset(text: &str) -> Result<i32, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("z") || t.eq_ignore_ascii_case("utc") {
        return Ok(0);
    }
    let bad = || format!("`{text}`: expected a UTC offset such as +09:00, -05:00 or Z (named zones are not supported)");
    let (sign, rest) = match t.as_bytes().first() {
        Some(b'+') => (1, &t[1..]),
        Some(b'-') => (-1, &t[1..]),
        _ => return Err(bad()),
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.chars().all(|c| c.is_ascii_digit()) || rest.len() > 5 {
        return Err(bad());
    }
    let hours: i32 = digits[..2].parse().map_err(|_| bad())?;
    let minutes: i32 = digits[2..].parse().map_err(|_| bad())?;
    if hours > 14 || minutes >= 60 {
        return Err(bad());
    }
    Ok(sign * (hours * 3600 + minutes * 60))
}

/// `value:` — the team's baseline: what people cost and how long the manual way takes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValueSpec {
    /// A label for money figures (`EUR`, `JPY`); money is shown without one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// What an hour of an engineer costs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engineer_hourly_cost: Option<f64>,
    /// Minutes each action takes when done by hand today.
    #[serde(default)]
    pub manual_minutes: ManualMinutes,
    /// What a CPU-hour of training costs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_hour_cost: Option<f64>,
    /// Business value of one prediction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction_value: Option<f64>,
    /// Business value of each outcome of a binary classifier, where labels arrived (as
    /// NannyML's business value): `{tp: 50, fp: -5, fn: -50, tn: 0}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome_value: Option<OutcomeValue>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManualMinutes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retrain: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift_check: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<f64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeValue {
    pub tp: f64,
    pub fp: f64,
    #[serde(rename = "fn")]
    pub fn_: f64,
    pub tn: f64,
}

impl ValueSpec {
    /// Every number must be finite, and costs and minutes not negative; the error names the key.
    pub fn check(&self) -> Result<(), String> {
        let non_negative = [
            ("value.engineer_hourly_cost", self.engineer_hourly_cost),
            ("value.cpu_hour_cost", self.cpu_hour_cost),
            ("value.manual_minutes.retrain", self.manual_minutes.retrain),
            ("value.manual_minutes.deploy", self.manual_minutes.deploy),
            ("value.manual_minutes.drift_check", self.manual_minutes.drift_check),
            ("value.manual_minutes.rollback", self.manual_minutes.rollback),
        ];
        for (key, v) in non_negative {
            if let Some(x) = v {
                if !x.is_finite() || x < 0.0 {
                    return Err(format!("{key}: {x} is not a cost; use a number of 0 or more"));
                }
            }
        }
        let any = [
            ("value.prediction_value", self.prediction_value),
            ("value.outcome_value.tp", self.outcome_value.map(|o| o.tp)),
            ("value.outcome_value.fp", self.outcome_value.map(|o| o.fp)),
            ("value.outcome_value.fn", self.outcome_value.map(|o| o.fn_)),
            ("value.outcome_value.tn", self.outcome_value.map(|o| o.tn)),
        ];
        for (key, v) in any {
            if let Some(x) = v {
                if !x.is_finite() {
                    return Err(format!("{key}: {x} is not a number"));
                }
            }
        }
        if let Some(c) = &self.currency {
            if c.is_empty() || c.len() > 8 || !c.chars().all(|ch| ch.is_alphanumeric() || "$€¥£".contains(ch)) {
                return Err(format!("value.currency: `{c}` is not a currency label (use a code such as EUR or JPY)"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets() {
        assert_eq!(parse_utc_offset("Z"), Ok(0));
        assert_eq!(parse_utc_offset("+09:00"), Ok(32_400));
        assert_eq!(parse_utc_offset("-0530"), Ok(-19_800));
        for bad in ["Asia/Tokyo", "+9", "+15:00", "+09:60", "09:00", "+09:00:00", ""] {
            assert!(parse_utc_offset(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn settings_name_the_key() {
        let s = KpiSpec { failure_window: Some("soon".into()), ..Default::default() };
        assert!(s.settings().unwrap_err().starts_with("kpi.failure_window: "));
        let s = KpiSpec { timezone: Some("Europe/Berlin".into()), ..Default::default() };
        assert!(s.settings().unwrap_err().starts_with("kpi.timezone: "));
        assert_eq!(KpiSpec::default().settings().unwrap(), KpiSettings::default());
    }

    #[test]
    fn values_are_checked() {
        let v = ValueSpec { engineer_hourly_cost: Some(-1.0), ..Default::default() };
        assert!(v.check().unwrap_err().starts_with("value.engineer_hourly_cost"));
        let v = ValueSpec { currency: Some("<script>".into()), ..Default::default() };
        assert!(v.check().is_err());
        assert!(ValueSpec::default().check().is_ok());
    }
}
