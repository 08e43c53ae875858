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
