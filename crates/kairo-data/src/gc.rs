//! `kairo data gc`: remove objects that nothing references — no pointer in the work tree or in
//! any commit of the current branch, no record in the metadata store (runs, models).
//!
//! `kairo data gc --remote`: the same on a remote, which other clones share, so more is kept:
//! pointers in any commit of any branch or tag this clone knows, and whatever is younger than a
//! grace period (a push whose pointers are not committed yet). See [`kairo_store::Collected`].

use crate::error::{DataError, Result};
use crate::git;
use crate::project::Project;
use kairo_core::manifest::{EntryKind, Manifest, MANIFEST_PREFIX};
use kairo_core::pointer::{Pointer, PointerKind};
use kairo_core::EventKind;
use kairo_core::Hash;
use kairo_store::{Collected, LocalObjects, Metadata, Remote};
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
    let live = live_set(project, &objects, &metadata, git::History::Branch, None).await?;

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

/// Collect `remote` (see the module's text): objects no branch, tag or record references and
/// older than `grace` are removed, `jobs` requests at a time. A manifest this clone lacks is
/// read from the remote (and kept) to know what it names.
pub async fn gc_remote(
    project: &Project,
    remote: &Remote,
    grace: Duration,
    dry_run: bool,
    jobs: usize,
) -> Result<Collected> {
    let objects = project.objects()?;
    let metadata = project.metadata().await?;
    let live = live_set(project, &objects, &metadata, git::History::AllRefs, Some(remote)).await?;
    let collected = remote.collect(&live, grace, dry_run, jobs).await?;
    if !dry_run && collected.objects_removed > 0 {
        let payload = serde_json::json!({
            "objects_removed": collected.objects_removed,
            "bytes_removed": collected.bytes_removed,
            "objects_kept": collected.objects_kept,
            "packs_rewritten": collected.packs_rewritten,
        });
        let target = format!("store:remote:{}", remote.url());
        metadata.record_event(&Project::actor(), EventKind::ObjectsCollected, &target, &payload).await?;
    }
    metadata.close().await;
    Ok(collected)
}

/// Every object referenced: by a pointer in the work tree or in `history`, or by a record in
/// the metadata store, with everything below each manifest ([`reachable`]). A manifest that
/// cannot be read stops the collection, since collecting blind could delete what it names.
async fn live_set(
    project: &Project,
    objects: &LocalObjects,
    metadata: &Metadata,
    history: git::History,
    remote: Option<&Remote>,
) -> Result<HashSet<Hash>> {
    let mut roots: Vec<(Hash, bool)> = Vec::new();
    for rel in project.tracked_paths()? {
        let p = project.require_pointer(&rel)?;
        roots.push((p.hash, p.kind == PointerKind::Dir));
    }
    for text in git::pointer_versions_in_history(project.root(), history)? {
        if let Ok(p) = Pointer::parse(&text) {
            roots.push((p.hash, p.kind == PointerKind::Dir));
        }
    }
    for hash in metadata.referenced_objects().await? {
        // A pinned object may be a manifest: keep what it names too. Only its first bytes are
        // read to tell, so pinning a multi-gigabyte model costs nothing here.
        let is_manifest = objects.starts_with(&hash, MANIFEST_PREFIX.as_bytes()).unwrap_or(false);
        roots.push((hash, is_manifest));
    }
    reachable(objects, remote, roots).await.map_err(|e| DataError::Runtime(format!("gc stopped, nothing removed: {e}")))
}

/// Every object reachable from `roots` (a hash, and whether it is a directory's manifest):
/// the roots and, recursively, what each manifest names. A manifest missing locally is fetched
/// from `remote` (and kept) when one is given; missing everywhere, nothing below it can be
/// named. A manifest that cannot be read (damaged here or on the remote) is an error naming it.
pub(crate) async fn reachable(
    objects: &LocalObjects,
    remote: Option<&Remote>,
    roots: Vec<(Hash, bool)>,
) -> Result<HashSet<Hash>> {
    let mut pending = roots;
    let mut seen = HashSet::new();
    while let Some((hash, is_dir)) = pending.pop() {
        if !seen.insert(hash) || !is_dir {
            continue;
        }
        if !objects.contains(&hash) {
            let Some(remote) = remote else { continue };
            match remote.download_if_present(objects, hash).await? {
                Some(staged) => objects.commit(vec![staged])?,
                None => continue,
            }
        }
        let bytes = objects.read(&hash).map_err(|e| DataError::Runtime(format!("{e}; run `kairo data verify`")))?;
        let manifest = Manifest::parse(&bytes).map_err(|e| DataError::Runtime(format!("manifest {hash}: {e}")))?;
        pending.extend(manifest.entries().iter().map(|e| (e.hash, e.kind == EntryKind::Dir)));
    }
    Ok(seen)
}
