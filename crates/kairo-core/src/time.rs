//! Timestamps as Kairo stores them: UTC, RFC 3339 with milliseconds, so they sort as text.

use chrono::{DateTime, SecondsFormat, Utc};

pub fn now() -> DateTime<Utc> {
    Utc::now()
}

/// Render a time the way the metadata store and the JSON outputs carry it.
pub fn format(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub fn now_string() -> String {
    format(now())
}

/// Milliseconds since the epoch, as the tracking API counts time.
pub fn now_millis() -> i64 {
    now().timestamp_millis()
}

/// Milliseconds since the epoch of a time rendered by [`format`] (0 when unparsable).
pub fn millis_of(t: &str) -> i64 {
    DateTime::parse_from_rfc3339(t).map(|d| d.timestamp_millis()).unwrap_or(0)
}

/// Milliseconds since the epoch as RFC 3339 UTC (the inverse of [`millis_of`]).
pub fn millis_to_string(ms: i64) -> String {
    chrono::DateTime::<Utc>::from_timestamp_millis(ms).map(format).unwrap_or_default()
}
