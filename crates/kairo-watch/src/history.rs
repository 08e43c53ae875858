//! Realised quality over time: a deployment's answered rows in fixed windows, per version,
//! joined with their feedback labels and scored against each version's own profile. The KPI
//! report's "model quality over time"; version boundaries are where a window's rows change
//! version.

use std::collections::BTreeMap;

use kairo_store::{LocalObjects, Metadata};
use serde_json::Value;

use crate::labelled;
use crate::{reference_profile, score, Result, Scored};

/// One version's rows in one window.
#[derive(Debug, Clone, PartialEq)]
pub struct QualityWindow {
    pub version: i64,
    pub start_ms: i64,
    pub end_ms: i64,
    /// Answered rows of this version in the window.
    pub rows: u64,
    /// Of those, rows with a label.
    pub labelled: u64,
    /// Scored rows (labelled and readable); none when the version has no profile to read its
    /// prediction by.
    pub scored: Scored,
}

/// Windows of `window_ms` (aligned to the epoch shifted by `offset_ms`, so days start at the
/// team's midnight) over `[from_ms, to_ms)`, oldest first, one entry per version seen in each.
pub async fn quality_over_time(
    md: &Metadata,
    objects: &LocalObjects,
    deployment: &str,
    from_ms: i64,
    to_ms: i64,
    window_ms: i64,
    offset_ms: i64,
) -> Result<Vec<QualityWindow>> {
    let window_ms = window_ms.max(1);
    let rows = labelled::rows(md, objects, deployment, from_ms, to_ms, false).await?;
    let mut cells: BTreeMap<(i64, i64), Vec<&labelled::Labelled>> = BTreeMap::new();
    for r in &rows {
        let start = (r.row.time_ms + offset_ms).div_euclid(window_ms) * window_ms - offset_ms;
        cells.entry((start, r.row.version)).or_default().push(r);
    }
    let mut profiles = BTreeMap::new();
    let mut out = Vec::with_capacity(cells.len());
    for ((start, version), rs) in cells {
        if let std::collections::btree_map::Entry::Vacant(e) = profiles.entry(version) {
            e.insert(reference_profile(md, deployment, version).await.ok());
        }
        let pairs: Vec<(&crate::segment::LogRow, &Value)> =
            rs.iter().filter_map(|r| r.label.as_ref().map(|l| (&r.row, l))).collect();
        let scored = match &profiles[&version] {
            Some(p) if !pairs.is_empty() => score(p, &pairs),
            _ => Scored::default(),
        };
        out.push(QualityWindow {
            version,
            start_ms: start,
            end_ms: start + window_ms,
            rows: rs.len() as u64,
            labelled: pairs.len() as u64,
            scored,
        });
    }
    Ok(out)
}
