//! `kairo data push|pull`: move only the objects the other side lacks, many at a time.

use crate::error::{DataError, Result};
use crate::project::Project;
use crate::tree;
use crate::Progress;
use kairo_core::manifest::{EntryKind, Manifest};
use kairo_core::pointer::PointerKind;
use kairo_core::EventKind;
use kairo_core::Hash;
use kairo_store::{LocalObjects, Remote};
use std::collections::{BTreeSet, HashSet};

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TransferReport {
    pub remote: String,
    /// Objects the tracked paths need.
    pub objects: u64,
    /// Objects sent (push) or fetched (pull).
    pub transferred: u64,
    pub bytes: u64,
    /// Packs sent, each carrying many small objects in one request (push only).
    pub packs: u64,
    /// Large objects fetched (pull only), each hashed on its way in: a checkout right after
    /// need not read them back (small ones are read whole, and checked, from their pack).
    #[serde(skip)]
    pub fetched: HashSet<Hash>,
}

/// Objects per durability batch while pulling.
const PULL_BATCH: usize = 1024;

/// Upload every object of the given tracked paths (all when empty) that the remote lacks,
/// `jobs` at a time; `progress` hears of the bytes to send, then of each object sent.
pub async fn push(
    project: &Project,
    remote: &Remote,
    rels: &[String],
    jobs: usize,
    progress: &dyn Progress,
) -> Result<TransferReport> {
    let rels = if rels.is_empty() { project.tracked_paths()? } else { rels.to_vec() };
    let objects = project.objects()?;
    let mut needed = BTreeSet::new();
    for rel in &rels {
        let pointer = project.require_pointer(rel)?;
        let node = tree::load_pointer(&objects, rel, &pointer)?;
        let mut hashes = Vec::new();
        node.object_hashes(&mut hashes);
        for h in hashes {
            if !objects.contains(&h) {
                return Err(DataError::NeedPull { path: rel.clone(), hash: h });
            }
            needed.insert(h);
        }
    }
    let needed: Vec<Hash> = needed.into_iter().collect();
    let missing = remote.missing(&needed, jobs).await?;
    let mut sized = Vec::with_capacity(missing.len());
    for h in missing {
        sized.push((h, objects.size(&h)?));
    }
    progress.set_total(sized.iter().map(|s| s.1).sum());
    let sent = remote.send(&objects, &sized, jobs, &|bytes, n| progress.advance(bytes, n)).await?;
    let report = TransferReport {
        remote: remote.url().to_string(),
        objects: needed.len() as u64,
        transferred: sent.objects,
        bytes: sent.bytes,
        packs: sent.packs,
        fetched: HashSet::new(),
    };
    record(project, EventKind::DataPushed, &report, &rels).await?;
    Ok(report)
}

/// Transfers change what a store holds, so they are events too (only when something moved).
async fn record(project: &Project, kind: EventKind, report: &TransferReport, rels: &[String]) -> Result<()> {
    if report.transferred == 0 {
        return Ok(());
    }
    let metadata = project.metadata().await?;
    let payload = serde_json::json!({
        "paths": rels, "objects": report.transferred, "bytes": report.bytes,
    });
    metadata.record_event(&Project::actor(), kind, &format!("remote:{}", report.remote), &payload).await?;
    metadata.close().await;
    Ok(())
}

/// Download what the given tracked paths need and the local store lacks, verifying every
/// object's hash. Directories are fetched level by level: a manifest names the next level, so
/// the total is not known ahead; `progress` hears of each object fetched.
pub async fn pull(
    project: &Project,
    remote: &Remote,
    rels: &[String],
    jobs: usize,
    progress: &dyn Progress,
) -> Result<TransferReport> {
    let rels = if rels.is_empty() { project.tracked_paths()? } else { rels.to_vec() };
    let objects = &project.objects()?;
    let _lock = project.lock_shared()?;
    let mut report = TransferReport { remote: remote.url().to_string(), ..Default::default() };
    let mut seen = BTreeSet::new();
    let mut level: Vec<(Hash, bool)> = Vec::new();
    for rel in &rels {
        let p = project.require_pointer(rel)?;
        level.push((p.hash, p.kind == PointerKind::Dir));
    }
    while !level.is_empty() {
        level.retain(|(h, _)| seen.insert(*h));
        report.objects += level.len() as u64;
        let mut absent: Vec<Hash> = level.iter().map(|(h, _)| *h).filter(|h| !objects.contains(h)).collect();
        remote.sort_for_fetch(&mut absent).await?;
        for chunk in absent.chunks(PULL_BATCH) {
            let staged = remote.fetch(objects, chunk, jobs, &|bytes, n| progress.advance(bytes, n)).await?;
            report.transferred += staged.len() as u64;
            report.bytes += staged.iter().map(|s| s.size).sum::<u64>();
            report.fetched.extend(staged.iter().filter(|s| s.size > kairo_store::objects::PACK_MAX).map(|s| s.hash));
            objects.commit(staged)?;
        }
        let mut next = Vec::new();
        for (h, is_dir) in &level {
            if *is_dir {
                next.extend(children(objects, h)?);
            }
        }
        level = next;
    }
    record(project, EventKind::DataPulled, &report, &rels).await?;
    Ok(report)
}

fn children(objects: &LocalObjects, manifest: &Hash) -> Result<Vec<(Hash, bool)>> {
    let bytes = objects.read(manifest)?;
    let m = Manifest::parse(&bytes).map_err(|e| DataError::Runtime(format!("manifest {manifest}: {e}")))?;
    Ok(m.entries().iter().map(|e| (e.hash, e.kind == EntryKind::Dir)).collect())
}
