//! The value report: what Kairo's ledger says about delivery, quality, serving and money.
//!
//! Every figure is a documented query over what Kairo already records (`docs/kpi.md`):
//! deployment events, promotions, incidents and alerts from the event log; runs and their CPU
//! time; serving health per version and day; monitor checks per day; the prediction log joined
//! with feedback. [`ledger`] reads them from the store once, [`delivery`] and [`value`] compute
//! from that in memory (pure functions, unit-tested on hand-built ledgers), [`html`] renders the
//! meeting page. The report's types are the `/api/v1/kpi` document as well as `kairo kpi
//! --json`: one shape, described here for OpenAPI.

pub mod delivery;
pub mod html;
pub mod ledger;
pub mod prometheus;
pub mod report;
pub mod value;

use kairo_core::config::Config;
use kairo_core::kpi::KpiSettings;
use kairo_store::{LocalObjects, Metadata};

pub use report::Report;

#[derive(Debug, thiserror::Error)]
pub enum KpiError {
    #[error(transparent)]
    Store(#[from] kairo_store::StoreError),
    #[error(transparent)]
    Watch(#[from] kairo_watch::WatchError),
    #[error(transparent)]
    Data(#[from] kairo_data::DataError),
    /// A `--since`, `--lang` or other argument the caller passed.
    #[error("{0}")]
    Usage(String),
}

pub type Result<T, E = KpiError> = std::result::Result<T, E>;

/// What to report on.
#[derive(Debug, Clone)]
pub struct Query {
    /// Start of the period (inclusive), milliseconds since the epoch.
    pub since_ms: i64,
    /// End of the period (exclusive): now, normally.
    pub until_ms: i64,
    /// Only this model (deployment name) when set.
    pub model: Option<String>,
}

/// `90d`, `12w`, `48h` → milliseconds: how far back `--since` reaches.
pub fn parse_since(text: &str) -> Result<i64> {
    let t = text.trim();
    let (n, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: i64 = n.parse().map_err(|_| bad_since(text))?;
    let unit_ms = match unit {
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        "h" => 3_600_000,
        _ => return Err(bad_since(text)),
    };
    // At most a century back.
    if n <= 0 || n > 36_500 * 86_400_000 / unit_ms {
        return Err(bad_since(text));
    }
    Ok(n * unit_ms)
}

fn bad_since(text: &str) -> KpiError {
    KpiError::Usage(format!("since `{text}`: expected a period such as 90d, 12w or 48h (at most a century)"))
}

/// Where the report's inputs live.
pub struct Sources<'a> {
    pub md: &'a Metadata,
    /// The object store, for the prediction log (quality over time); `None` skips quality.
    pub objects: Option<&'a LocalObjects>,
    /// The git work tree, for commit times (the cause of a change); `None` skips them.
    pub git_root: Option<&'a std::path::Path>,
}

/// Compute the whole report.
pub async fn compute(src: &Sources<'_>, config: &Config, q: &Query) -> Result<Report> {
    let settings: KpiSettings = config.kpi_settings();
    let mut ledger = ledger::load(src, &settings, q).await?;
    if let Some(model) = &q.model {
        // Only the checks of monitors that watch this model's deployment.
        let watches = |monitor: &str| config.monitors.get(monitor).and_then(|m| m.deployment.as_deref()) == Some(model);
        ledger.monitor_checks.retain(|d| watches(&d.monitor));
    }
    let mut report = delivery::report(&ledger, &settings, q);
    report.value = value::compute(config.value.as_ref(), &report, &ledger);
    Ok(report)
}

/// The report of a project: its store, its prediction log and its git history.
pub async fn project_report(project: &kairo_data::Project, q: &Query) -> Result<Report> {
    let md = project.metadata().await?;
    let objects = project.objects().ok();
    let src = Sources { md: &md, objects: objects.as_ref(), git_root: Some(project.root()) };
    compute(&src, project.config(), q).await
}

/// The period `--since` and `--until` name: `since` back from `until` (now when absent).
pub fn query(since: &str, until: Option<&str>, model: Option<String>) -> Result<Query> {
    let until_ms = match until {
        None => kairo_core::time::now_millis(),
        Some(t) => {
            let ms = kairo_core::time::millis_of(t);
            if ms == 0 {
                return Err(KpiError::Usage(format!(
                    "until `{t}`: expected an RFC 3339 time such as 2026-12-01T00:00:00Z"
                )));
            }
            ms
        }
    };
    Ok(Query { since_ms: until_ms - parse_since(since)?, until_ms, model })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods() {
        assert_eq!(parse_since("90d").unwrap(), 90 * 86_400_000);
        assert_eq!(parse_since("2w").unwrap(), 14 * 86_400_000);
        assert_eq!(parse_since("48h").unwrap(), 48 * 3_600_000);
        for bad in ["", "d", "0d", "-1d", "1y", "36501d", "99999999999999999999d", "1.5d", "90 d"] {
            assert!(parse_since(bad).is_err(), "{bad}");
        }
    }
}
