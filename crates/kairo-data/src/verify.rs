//! `kairo data verify`: re-hash every object in the store and check every tracked version is
//! complete. `kairo data verify --remote`: the same of a remote, for the tracked versions.

use crate::error::Result;
use crate::gc::reachable;
use crate::project::Project;
use crate::tree;
use crate::{DataError, Progress};
use kairo_core::pointer::PointerKind;
use kairo_core::Hash;
use kairo_store::{Remote, StoreError};
use rayon::prelude::*;
use std::collections::{BTreeMap, HashSet};

/// Objects downloaded and re-hashed per batch by `verify --remote` (then dropped).
const VERIFY_BATCH: usize = 1024;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct VerifyReport {
    pub objects: u64,
    pub bytes: u64,
    /// Objects whose bytes no longer match their name.
    pub corrupt: Vec<Hash>,
    /// (tracked path, object) pairs the local store lacks.
    pub missing: Vec<(String, Hash)>,
    /// Entries in `.kairo/tmp`: staging directories of running commands, or left by an
    /// interrupted one (harmless; `gc` removes those older than an hour).
    pub staging_entries: u64,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.corrupt.is_empty() && self.missing.is_empty()
    }
}

pub fn verify(project: &Project) -> Result<VerifyReport> {
    let objects = project.objects()?;
    let all = objects.list()?;
    let results: Vec<(Hash, std::result::Result<u64, StoreError>)> =
        all.par_iter().map(|h| (*h, objects.verify(h))).collect();
    let mut report = VerifyReport { objects: all.len() as u64, ..Default::default() };
    for (h, r) in results {
        match r {
            Ok(n) => report.bytes += n,
            Err(StoreError::Corrupt { .. }) => report.corrupt.push(h),
            Err(e) => return Err(e.into()),
        }
    }
    for rel in project.tracked_paths()? {
        let pointer = project.require_pointer(&rel)?;
        match tree::load_pointer(&objects, &rel, &pointer) {
            Ok(node) => {
                let mut hashes = Vec::new();
                node.object_hashes(&mut hashes);
                report.missing.extend(hashes.into_iter().filter(|h| !objects.contains(h)).map(|h| (rel.clone(), h)));
            }
            Err(DataError::NeedPull { hash, .. }) => report.missing.push((rel.clone(), hash)),
            Err(DataError::Store(StoreError::Corrupt { .. })) => {}
            Err(e) => return Err(e),
        }
    }
    report.staging_entries = std::fs::read_dir(project.store_dir().join("tmp")).map(|d| d.count() as u64).unwrap_or(0);
    Ok(report)
}

/// What `kairo data verify --remote` found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RemoteVerifyReport {
    pub remote: String,
    /// Objects the tracked versions need.
    pub objects: u64,
    /// Bytes downloaded and re-hashed (none with `quick`).
    pub bytes: u64,
    /// Only presence was checked (listings and pack indexes, no download).
    pub quick: bool,
    /// Objects whose bytes on the remote no longer match their name.
    pub corrupt: Vec<Hash>,
    /// Objects the remote lacks.
    pub missing: Vec<MissingRemote>,
}

/// An object the remote lacks: which tracked path needs it, and whether this clone has it (then
/// a push sends it).
#[derive(Debug, Clone, serde::Serialize)]
pub struct MissingRemote {
    pub path: String,
    pub hash: Hash,
    pub here: bool,
}

impl RemoteVerifyReport {
    pub fn ok(&self) -> bool {
        self.corrupt.is_empty() && self.missing.is_empty()
    }
}

/// Check that `remote` holds every object the tracked versions need and, unless `quick`, that
/// each one's bytes still hash to its name: downloaded (`jobs` requests at a time, `progress`
/// hearing of each) and dropped, never kept. A manifest this clone lacks is read from the
/// remote (and kept) to know what it names.
pub async fn verify_remote(
    project: &Project,
    remote: &Remote,
    quick: bool,
    jobs: usize,
    progress: &dyn Progress,
) -> Result<RemoteVerifyReport> {
    let objects = project.objects()?;
    let mut report = RemoteVerifyReport { remote: remote.url().to_string(), quick, ..Default::default() };
    // Each object, with the first tracked path that needs it.
    let mut needed: BTreeMap<Hash, String> = BTreeMap::new();
    for rel in project.tracked_paths()? {
        let p = project.require_pointer(&rel)?;
        match reachable(&objects, Some(remote), vec![(p.hash, p.kind == PointerKind::Dir)]).await {
            Ok(set) => {
                for h in set {
                    needed.entry(h).or_insert_with(|| rel.clone());
                }
            }
            // A damaged manifest on the remote: what it names cannot be listed from there.
            Err(DataError::Store(StoreError::RemoteCorrupt { hash, .. })) => report.corrupt.push(hash),
            Err(e) => return Err(e),
        }
    }
    let hashes: Vec<Hash> = needed.keys().copied().collect();
    report.objects = hashes.len() as u64;
    let missing: HashSet<Hash> = remote.missing(&hashes, jobs).await?.into_iter().collect();
    report.missing = hashes
        .iter()
        .filter(|h| missing.contains(h))
        .map(|h| MissingRemote { path: needed[h].clone(), hash: *h, here: objects.contains(h) })
        .collect();
    if quick {
        return Ok(report);
    }
    let mut present: Vec<Hash> = hashes.into_iter().filter(|h| !missing.contains(h)).collect();
    remote.sort_for_fetch(&mut present).await?;
    for batch in present.chunks(VERIFY_BATCH) {
        match remote.fetch(&objects, batch, jobs, &|bytes, n| progress.advance(bytes, n)).await {
            Ok(staged) => {
                report.bytes += staged.iter().map(|s| s.size).sum::<u64>();
                objects.discard(staged);
            }
            // A damaged object stops its batch: go through the batch one by one to name them all.
            Err(StoreError::RemoteCorrupt { .. }) => {
                for hash in batch {
                    match remote.download(&objects, *hash).await {
                        Ok(staged) => {
                            report.bytes += staged.size;
                            objects.discard(vec![staged]);
                        }
                        Err(StoreError::RemoteCorrupt { hash, .. }) => report.corrupt.push(hash),
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(report)
}
