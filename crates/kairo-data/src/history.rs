//! `kairo data log` and `kairo data diff`: the versions of a tracked path, from git history of
//! its pointer and from the metadata store, and what changed between two of them.

use crate::error::{DataError, Result};
use crate::project::Project;
use crate::scan::{self, Mode};
use crate::tree::{self, Node};
use crate::{git, NoProgress};
use kairo_core::pointer::{Pointer, PointerKind};
use kairo_core::Hash;

#[derive(Debug, Clone, serde::Serialize)]
pub struct LogEntry {
    /// The version (None when the commit deleted the pointer).
    pub hash: Option<Hash>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<PointerKind>,
    pub size: Option<u64>,
    pub files: Option<u64>,
    pub time: String,
    pub author: String,
    /// The commit that recorded the pointer; None for a version added but not committed.
    pub commit: Option<String>,
    pub message: String,
}

/// Versions of `rel`, newest first.
pub async fn log(project: &Project, rel: &str) -> Result<Vec<LogEntry>> {
    let pointer_rel = format!("{rel}{}", kairo_core::pointer::POINTER_SUFFIX);
    let mut entries: Vec<LogEntry> = git::file_history(project.root(), &pointer_rel)?
        .into_iter()
        .map(|c| {
            let p = c.content.as_deref().and_then(|t| Pointer::parse(t).ok());
            LogEntry {
                hash: p.as_ref().map(|p| p.hash),
                kind: p.as_ref().map(|p| p.kind),
                size: p.as_ref().map(|p| p.size),
                files: p.as_ref().map(|p| p.files),
                time: c.time,
                author: c.author,
                commit: Some(c.commit),
                message: if p.is_some() { c.subject } else { format!("{} (pointer removed)", c.subject) },
            }
        })
        .collect();
    let metadata = project.metadata().await?;
    let recorded = metadata.dataset_versions(rel).await?;
    metadata.close().await;
    if entries.is_empty() && recorded.is_empty() && project.read_pointer(rel)?.is_none() {
        return Err(DataError::NotTracked(rel.into()));
    }
    for v in recorded {
        if entries.iter().any(|e| e.hash == Some(v.hash)) {
            continue;
        }
        let base = v.git_commit.as_deref().map(|c| format!(" on top of {}", &c[..c.len().min(12)])).unwrap_or_default();
        entries.push(LogEntry {
            hash: Some(v.hash),
            kind: Some(if v.kind == "dir" { PointerKind::Dir } else { PointerKind::File }),
            size: Some(v.size),
            files: Some(v.files),
            time: v.created_at,
            author: v.actor,
            commit: None,
            message: format!("added, not committed{base}"),
        });
    }
    entries.sort_by_key(|e| std::cmp::Reverse(sort_key(&e.time)));
    Ok(entries)
}

fn sort_key(time: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(time).map(|t| t.timestamp_millis()).unwrap_or(0)
}

/// One side of a diff, resolved.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Side {
    pub label: String,
    pub hash: Hash,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DiffReport {
    pub path: String,
    pub from: Side,
    pub to: Side,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub modified: Vec<String>,
}

/// Compare two versions of `rel`. No versions: recorded → work tree. One: it → recorded.
/// Each spec is `workspace`, a version hash or unique prefix, or a git revision.
pub async fn diff(project: &Project, rel: &str, a: Option<&str>, b: Option<&str>) -> Result<DiffReport> {
    let (a, b) = match (a, b) {
        (None, _) => ("recorded", "workspace"),
        (Some(a), None) => (a, "recorded"),
        (Some(a), Some(b)) => (a, b),
    };
    let (from_label, from) = resolve(project, rel, a).await?;
    let (to_label, to) = resolve(project, rel, b).await?;
    let d = tree::diff(&from, &to);
    let fix = |v: Vec<String>| v.into_iter().map(|p| if p.is_empty() { rel.to_string() } else { p }).collect();
    Ok(DiffReport {
        path: rel.to_string(),
        from: Side { label: from_label, hash: from.hash() },
        to: Side { label: to_label, hash: to.hash() },
        added: fix(d.added),
        removed: fix(d.removed),
        modified: fix(d.modified),
    })
}

/// A version of `rel` by spec: `workspace`, `recorded`, a version hash (or unique prefix) from
/// `kairo data log`, or a git revision; its label and tree.
pub async fn resolve(project: &Project, rel: &str, spec: &str) -> Result<(String, Node)> {
    let objects = project.objects()?;
    if spec == "workspace" {
        let recorded = project.read_pointer(rel)?.and_then(|p| tree::load_pointer(&objects, rel, &p).ok());
        let mut cache = project.stat_cache();
        let walked = scan::walk(&project.abs(rel))?;
        let node = scan::scan(&walked, recorded.as_ref(), &mut cache, Mode::Hash, &NoProgress)?.root;
        cache.save()?;
        return Ok(("workspace".into(), node));
    }
    if spec == "recorded" {
        let p = project.require_pointer(rel)?;
        return Ok((format!("recorded {}", p.hash.short()), tree::load_pointer(&objects, rel, &p)?));
    }
    let is_hex = spec.len() >= 6 && spec.len() <= 64 && spec.bytes().all(|b| b.is_ascii_hexdigit());
    if is_hex {
        let mut known: Vec<(Hash, PointerKind, u64)> = Vec::new();
        for e in log(project, rel).await? {
            if let (Some(h), Some(k)) = (e.hash, e.kind) {
                if h.to_hex().starts_with(&spec.to_ascii_lowercase()) && !known.iter().any(|(x, _, _)| *x == h) {
                    known.push((h, k, e.size.unwrap_or(0)));
                }
            }
        }
        match known.as_slice() {
            [(h, k, size)] => return Ok((h.short(), tree::load(&objects, rel, *k, *h, *size)?)),
            [] => {}
            _ => return Err(DataError::AmbiguousVersion { path: rel.into(), spec: spec.into() }),
        }
    }
    if let Some(commit) = git::resolve_commit(project.root(), spec) {
        let spec_path = format!("{commit}:{rel}{}", kairo_core::pointer::POINTER_SUFFIX);
        if let Some(Some(text)) = git::cat_files(project.root(), &[spec_path])?.into_iter().next() {
            let p = Pointer::parse(&text)
                .map_err(|source| DataError::Pointer { path: format!("{spec}:{rel}.kairo").into(), source })?;
            return Ok((format!("{spec} ({})", p.hash.short()), tree::load_pointer(&objects, rel, &p)?));
        }
    }
    Err(DataError::UnknownVersion { path: rel.into(), spec: spec.into() })
}
