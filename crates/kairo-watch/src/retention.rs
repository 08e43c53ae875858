//! The prediction log's raw rows given up: by age (a model's `privacy.retention`) or on request
//! (erasure of the rows whose field holds a value). Either way the objects are unpinned, so the
//! next `kairo data gc` deletes their bytes (loose or packed); the audit trail records who did
//! it, the field and the counts — never the erased value.

use kairo_core::event::EventKind;
use kairo_core::privacy::{self, Policy};
use kairo_core::profile::Profile;
use kairo_store::serving::Segment;
use kairo_store::{LocalObjects, Metadata};
use serde_json::{json, Value};

use crate::segment::{self, LogRow};
use crate::{Result, WatchError};

/// What pruning or an erasure did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub segments: usize,
    pub rows: u64,
}

fn failed(s: &Segment, e: impl std::fmt::Display) -> WatchError {
    WatchError::Segment { object: s.object.to_string(), error: e.to_string() }
}

async fn profile_of(md: &Metadata, name: &str, version: i64) -> Result<Option<Profile>> {
    Ok(md.version_artifact(name, version).await?.and_then(|a| a.profile).and_then(|p| p.current().cloned()))
}

/// Give up the raw rows of `deployment`'s segments that ended before `cutoff_ms`: first each
/// segment is sketched for every version whose rows it holds and the sketch scrubbed of what
/// could name a row (extremes, unseen values, moments of few values) — so windows keep counting
/// it — then its object is unpinned. `dry` only counts.
pub async fn prune(
    md: &Metadata,
    objects: &LocalObjects,
    deployment: &str,
    cutoff_ms: i64,
    actor: &str,
    dry: bool,
) -> Result<Outcome> {
    let mut out = Outcome::default();
    for s in md.segments(deployment, 0, cutoff_ms).await? {
        if s.pruned_ms.is_some() || s.end_ms >= cutoff_ms {
            continue;
        }
        out.segments += 1;
        out.rows += s.rows.max(0) as u64;
        if dry {
            continue;
        }
        let bytes = objects.read(&s.object).map_err(|e| failed(&s, e))?;
        let rows = segment::read(&bytes).map_err(|e| failed(&s, e))?;
        let mut versions: Vec<i64> = rows.iter().map(|r| r.version).collect();
        versions.sort_unstable();
        versions.dedup();
        for v in versions {
            if let Some(profile) = profile_of(md, deployment, v).await? {
                // Straight from the rows: the full sketch is never written, only the scrubbed one.
                let kept = crate::sketch_rows(&profile, &rows, v).scrubbed();
                let text = serde_json::to_string(&kept).map_err(|e| failed(&s, e))?;
                md.replace_segment_sketch(&s.object, deployment, v, kept.rows as i64, &text).await?;
            }
        }
        md.prune_segment(deployment, &s.object).await?;
    }
    if out.segments > 0 && !dry {
        let payload = json!({"segments": out.segments, "rows": out.rows, "before_ms": cutoff_ms});
        md.record_event(actor, EventKind::PredictionsPruned, &format!("deployment:{deployment}"), &payload).await?;
        md.scrub().await?;
    }
    Ok(out)
}

/// Apply every model's `privacy.retention` in `project` to its prediction log ([`prune`] with
/// the cutoff now minus the retention): the models that gave up rows, with what they gave up.
/// A retention that does not parse is a usage error naming the model.
pub async fn apply_retention(
    project: &kairo_data::Project,
    md: &Metadata,
    objects: &LocalObjects,
    actor: &str,
    dry: bool,
) -> Result<Vec<(String, Outcome)>> {
    let now = kairo_core::time::now_millis();
    let mut out = Vec::new();
    for (model, policy) in &project.config().models {
        let Some(spec) = &policy.privacy else { continue };
        let Some(ms) = spec.retention_ms().map_err(|e| WatchError::Spec(format!("models.{model}.{e}")))? else {
            continue;
        };
        let o = prune(md, objects, model, now - ms, actor, dry).await?;
        if o.segments > 0 {
            out.push((model.clone(), o));
        }
    }
    Ok(out)
}

/// What an erasure asks for: `FIELD = VALUE`, the value as requests sent it (a quoted value is
/// a string; anything else is read as JSON — a number — else taken as text).
#[derive(Debug, Clone, PartialEq)]
pub struct Erasure {
    pub field: String,
    pub value: Value,
}

impl Erasure {
    pub fn parse(condition: &str) -> Result<Erasure> {
        let (field, value) = condition
            .split_once('=')
            .map(|(f, v)| (f.trim(), v.trim()))
            .filter(|(f, v)| !f.is_empty() && !v.is_empty())
            .ok_or_else(|| WatchError::Spec(format!("--where {condition}: expected FIELD = VALUE")))?;
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()));
        Ok(Erasure { field: field.to_string(), value })
    }
}

/// How to find a field's value in a logged row of one version.
struct Place {
    tensor: String,
    index: Option<usize>,
}

fn place(profile: Option<&Profile>, field: &str) -> Option<Place> {
    let p = profile?;
    let source = p
        .columns
        .iter()
        .find(|c| c.name == field)
        .and_then(|c| c.source.as_ref())
        .or_else(|| p.withheld.iter().find(|w| w.name == field).map(|w| &w.source))?;
    (source.side == "inputs").then(|| Place { tensor: source.tensor.clone(), index: source.index })
}

fn value_at<'a>(row: &'a LogRow, place: &Place) -> Option<&'a Value> {
    let v = row.inputs.get(&place.tensor)?;
    match place.index {
        Some(i) => v.get(i),
        None => Some(v),
    }
}

/// Erase every logged row of `deployment` whose `field` holds `value` (as the request sent it;
/// a hashed field is matched by the hash of `value` under the key). Affected segments are
/// rewritten without those rows, their labels forgotten, and one `predictions.erased` event
/// names the field, the counts and the reason.
pub async fn erase(
    project: &kairo_data::Project,
    md: &Metadata,
    deployment: &str,
    what: &Erasure,
    actor: &str,
    reason: &str,
) -> Result<Outcome> {
    let objects = project.objects()?;
    let (spec, key) = kairo_data::Project::privacy(project.config(), deployment);
    let (key, field, value) = (key.as_ref(), what.field.as_str(), &what.value);
    let policy = spec.fields.get(field).cloned().unwrap_or(Policy::Keep);
    let wanted = match &policy {
        Policy::Keep => privacy::text_of(value),
        Policy::Hash => match privacy::apply(&Policy::Hash, value, key) {
            Some(h) => privacy::text_of(&h),
            None => {
                return Err(WatchError::Spec(format!(
                    "`{field}` is hashed in the log: set {} to find its rows",
                    spec.key_env()
                )))
            }
        },
        Policy::Drop => return Ok(Outcome::default()),
        Policy::Mask | Policy::Bucket(_) => {
            return Err(WatchError::Spec(format!(
            "`{field}` is logged {}ed: its rows cannot be told apart by its value (erase by another field, e.g. an id)",
            policy.name()
        )))
        }
    };
    let mut out = Outcome::default();
    let mut places: std::collections::HashMap<i64, Option<Place>> = Default::default();
    let mut forgotten = Vec::new();
    for s in md.segments(deployment, 0, i64::MAX).await? {
        if s.pruned_ms.is_some() {
            continue;
        }
        let bytes = objects.read(&s.object).map_err(|e| failed(&s, e))?;
        let rows = segment::read(&bytes).map_err(|e| failed(&s, e))?;
        let mut kept = Vec::with_capacity(rows.len());
        let mut erased = 0u64;
        for r in rows {
            if let std::collections::hash_map::Entry::Vacant(slot) = places.entry(r.version) {
                let profile = profile_of(md, deployment, r.version).await?;
                let found = place(profile.as_ref(), field).or_else(|| {
                    r.inputs.get(field).is_some().then(|| Place { tensor: field.to_string(), index: None })
                });
                slot.insert(found);
            }
            let hit = places[&r.version]
                .as_ref()
                .and_then(|p| value_at(&r, p))
                .is_some_and(|v| privacy::text_of(v) == wanted);
            if hit {
                erased += 1;
                forgotten.push((r.request_id.clone(), i64::from(r.row)));
            } else {
                kept.push(r);
            }
        }
        if erased == 0 {
            continue;
        }
        let rewritten = segment::write(&kept).map_err(|e| failed(&s, e))?;
        let object = objects.put_bytes(&rewritten).map_err(|e| failed(&s, e))?;
        let new = Segment { object, rows: kept.len() as i64, ..s.clone() };
        md.replace_segment(&s.object, &new).await?;
        out.segments += 1;
        out.rows += erased;
    }
    if places.values().all(Option::is_none) && !places.is_empty() {
        return Err(WatchError::Spec(format!(
            "no logged input is called `{field}` (name a profiled column or an input tensor)"
        )));
    }
    md.delete_feedback(&forgotten).await?;
    let payload =
        json!({"field": field, "policy": policy.name(), "segments": out.segments, "rows": out.rows, "reason": reason});
    md.record_event(actor, EventKind::PredictionsErased, &format!("deployment:{deployment}"), &payload).await?;
    md.scrub().await?;
    Ok(out)
}
