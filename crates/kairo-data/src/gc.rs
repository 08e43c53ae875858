//! `kairo data gc`: remove objects that nothing references — no pointer in the work tree or in
//! any commit of the current branch, no record in the metadata store (runs, models).

use crate::error::{DataError, Result};
use crate::git;
use crate::project::Project;
use kairo_core::manifest::{EntryKind, Manifest, MANIFEST_PREFIX};
use kairo_core::pointer::{Pointer, PointerKind};
use kairo_core::EventKind;
use kairo_core::Hash;
use kairo_store::{LocalObjects, StoreError};
use std::collections::HashSet;
use std::time::Duration;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    pub objects_kept: u64,
    pub objects_removed: u64,
    pub bytes_removed: u64,
    pub temp_files_removed: u64,
}

/// Temp files older than this belong to a process that died.
const STALE_TEMP: Duration = Duration::from_secs(3600);

pub async fn gc(project: &Project, dry_run: bool) -> Result<GcReport> {
    let objects = project.objects()?;
    let metadata = project.metadata().await?;
    let _lock = project.lock_exclusive()?;

    let mut roots: Vec<(Hash, PointerKind)> = Vec::new();
    for rel in project.tracked_paths()? {
        let p = project.require_pointer(&rel)?;
        roots.push((p.hash, p.kind));
    }
    for text in git::pointer_versions_in_history(project.root())? {
        if let Ok(p) = Pointer::parse(&text) {
            roots.push((p.hash, p.kind));
        }
    }
    let pinned = metadata.referenced_objects().await?;

    let mut live = HashSet::new();
    for (hash, kind) in roots {
        mark(&objects, hash, kind == PointerKind::Dir, &mut live)?;
    }
    for hash in pinned {
        // A pinned object may be a manifest: keep what it names too. Only its first bytes are
        // read to tell, so pinning a multi-gigabyte model costs nothing here.
        let is_manifest = objects.starts_with(&hash, MANIFEST_PREFIX.as_bytes()).unwrap_or(false);
        mark(&objects, hash, is_manifest, &mut live)?;
    }

    let mut report = GcReport { dry_run, ..Default::default() };
    let mut dead = HashSet::new();
    for hash in objects.list()? {
        if live.contains(&hash) {
            report.objects_kept += 1;
        } else {
            report.bytes_removed += objects.size(&hash)?;
            dead.insert(hash);
        }
    }
    report.objects_removed = dead.len() as u64;
    if !dry_run {
        objects.remove(&dead)?;
        report.temp_files_removed = objects.clean_tmp(STALE_TEMP)? as u64;
        if report.objects_removed > 0 {
            let payload = serde_json::json!({
                "objects_removed": report.objects_removed,
                "bytes_removed": report.bytes_removed,
                "objects_kept": report.objects_kept,
            });
            metadata.record_event(&Project::actor(), EventKind::ObjectsCollected, "store:local", &payload).await?;
        }
    }
    metadata.close().await;
    Ok(report)
}

/// Mark an object live, and for a manifest everything below it. A manifest missing from the
/// local store marks nothing below it (those objects cannot be named without it); a corrupted
/// one stops `gc`, since collecting blind could delete what it names.
fn mark(objects: &LocalObjects, hash: Hash, is_dir: bool, live: &mut HashSet<Hash>) -> Result<()> {
    if !live.insert(hash) || !is_dir {
        return Ok(());
    }
    let bytes = match objects.read(&hash) {
        Ok(b) => b,
        Err(StoreError::Missing(_)) => return Ok(()),
        Err(e) => return Err(DataError::Runtime(format!("gc stopped, nothing removed: {e}; run `kairo data verify`"))),
    };
    let manifest = Manifest::parse(&bytes)
        .map_err(|e| DataError::Runtime(format!("gc stopped, nothing removed: manifest {hash}: {e}")))?;
    for e in manifest.entries() {
        mark(objects, e.hash, e.kind == EntryKind::Dir, live)?;
    }
    Ok(())
}
