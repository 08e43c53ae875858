//! Garbage collection on a remote: remove the objects nothing references any more, loose or
//! packed, while a push or a pull may be running elsewhere.
//!
//! - **Grace.** An unreferenced object younger than the grace period stays: it may belong to a
//!   push whose pointers are not committed yet. A pack is as old as its index; a young pack is
//!   kept whole.
//! - **Packs.** An old pack whose objects are all referenced stays as it is. One holding some
//!   unreferenced objects is rewritten: its referenced objects are read back (ranges, each
//!   checked against its hash) into new packs, uploaded pack then index, and only then are the
//!   old index and pack deleted. A pack with nothing referenced is deleted. Killed at any point,
//!   the remote still holds every referenced object, perhaps twice: an object found in two packs
//!   counts as unreferenced in the second, so the next collection removes the copy.
//! - **Merging.** Each push adds packs, and a reader fetches every index once: past 16 packs,
//!   the old ones less than half full are merged into full ones too.
//! - **Leftovers.** A pack without an index (a push killed between the two) is deleted once
//!   older than the grace period, and so is an index whose pack is gone.
//!
//! - **Unfinished uploads.** The hidden temporary files a killed push leaves on an SSH or a
//!   directory remote go once older than the grace period too.
//!
//! Only what Kairo writes is touched: `ab/cdef…` objects, `packs/pack-<id>.{pack,idx}` and
//! those temporary files; staging, probes and anything else under the prefix stay.

use super::{Access, Remote, Result, StoreError};
use crate::remote::packs::{closes, PACK_BYTES};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use kairo_core::Hash;
use object_store::path::Path as ObjectPath;
use object_store::ObjectMeta;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// A pack to rewrite: its id and the entries (hash, offset, length) to keep.
type Rewrite<'a> = (&'a str, Vec<(Hash, u64, u64)>);

/// More packs than this, and a collection merges the under-filled ones.
const MERGE_AT: usize = 16;

/// What [`Remote::collect`] found and did (or, dry, would do).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Collected {
    pub dry_run: bool,
    pub objects_kept: u64,
    pub objects_removed: u64,
    pub bytes_removed: u64,
    /// Unreferenced objects kept because they are younger than the grace period.
    pub objects_young: u64,
    /// Packs rewritten: with only their referenced objects, or merged (past 16 packs, those
    /// less than half full).
    pub packs_rewritten: u64,
    /// Packs deleted whole: nothing in them referenced, or left without index or pack.
    pub packs_removed: u64,
    /// New packs the rewritten ones went into.
    pub packs_written: u64,
    /// Temporary files of uploads that never finished (SSH and directory remotes), older than
    /// the grace period; their bytes count in `bytes_removed`.
    pub temp_files_removed: u64,
}

/// A pack's files as listed.
#[derive(Debug, Default)]
pub(super) struct PackFiles {
    pub(super) idx: Option<ObjectMeta>,
    pub(super) pack: Option<ObjectMeta>,
}

impl Remote {
    /// The remote's pack files, by pack id.
    pub(super) async fn list_packs(&self) -> Result<BTreeMap<String, PackFiles>> {
        let mut packs: BTreeMap<String, PackFiles> = BTreeMap::new();
        let mut stream = self.store.list(Some(&self.packs_dir()));
        while let Some(item) = stream.next().await {
            let meta = match item {
                Ok(meta) => meta,
                Err(object_store::Error::NotFound { .. }) => break,
                Err(e) => return Err(self.error(e)),
            };
            let name = meta.location.filename().unwrap_or_default().to_string();
            let Some(stem) = name.strip_prefix("pack-") else { continue };
            if let Some(id) = stem.strip_suffix(".idx") {
                packs.entry(id.to_string()).or_default().idx = Some(meta);
            } else if let Some(id) = stem.strip_suffix(".pack") {
                packs.entry(id.to_string()).or_default().pack = Some(meta);
            }
        }
        Ok(packs)
    }

    /// Loose objects of one shard (`ab/`): hash and listing. Names that are not object names
    /// are left out.
    async fn list_loose_shard(&self, shard: String) -> Result<Vec<(Hash, ObjectMeta)>> {
        let mut out = Vec::new();
        let mut stream = self.store.list(Some(&self.prefix.child(shard.as_str())));
        while let Some(item) = stream.next().await {
            match item {
                Ok(meta) => {
                    let name = meta.location.filename().unwrap_or_default();
                    if let Ok(hash) = format!("{shard}{name}").parse::<Hash>() {
                        if meta.location == self.object_path(&hash) {
                            out.push((hash, meta));
                        }
                    }
                }
                Err(object_store::Error::NotFound { .. }) => break,
                Err(e) => return Err(self.error(e)),
            }
        }
        Ok(out)
    }

    /// Remove from the remote every object not in `live` and older than `grace` (see the
    /// module's text), `jobs` requests at a time; with `dry_run`, only count. This `Remote`'s
    /// view of the packs is stale afterwards: open the remote again to use it.
    pub async fn collect(
        &self,
        live: &HashSet<Hash>,
        grace: Duration,
        dry_run: bool,
        jobs: usize,
    ) -> Result<Collected> {
        let jobs = jobs.max(1);
        let cutoff = chrono::TimeDelta::from_std(grace)
            .ok()
            .and_then(|g| chrono::Utc::now().checked_sub_signed(g))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        let young = |meta: &ObjectMeta| meta.last_modified > cutoff;
        let mut report = Collected { dry_run, ..Default::default() };

        // Packs, young ones first: they are kept whole, so an object they share with an old
        // pack is the old pack's extra copy.
        let listing = self.list_packs().await?;
        let mut order: Vec<(&String, &PackFiles)> = listing.iter().collect();
        order.sort_by_key(|(id, files)| (!files.idx.as_ref().is_some_and(young), id.as_str()));
        let mut seen: HashSet<Hash> = HashSet::new();
        let mut doomed: Vec<&str> = Vec::new();
        let mut rewrite: Vec<Rewrite> = Vec::new();
        // Old packs left as they are (with their size), and young ones.
        let mut intact: Vec<(Rewrite, u64)> = Vec::new();
        let mut staying = 0usize;
        for (id, files) in order {
            let idx = match (&files.idx, &files.pack) {
                (Some(idx), Some(_)) => idx,
                (Some(leftover), None) | (None, Some(leftover)) => {
                    if !young(leftover) {
                        report.packs_removed += 1;
                        doomed.push(id);
                    }
                    continue;
                }
                (None, None) => continue,
            };
            let entries = self.read_index(id, idx.size).await?;
            let pack_bytes = files.pack.as_ref().map_or(0, |p| p.size);
            if young(idx) {
                staying += 1;
                for (hash, _, _) in &entries {
                    if seen.insert(*hash) {
                        if live.contains(hash) {
                            report.objects_kept += 1;
                        } else {
                            report.objects_young += 1;
                        }
                    }
                }
                continue;
            }
            let (keep, drop): (Vec<_>, Vec<_>) =
                entries.into_iter().partition(|(hash, _, _)| live.contains(hash) && seen.insert(*hash));
            report.objects_kept += keep.len() as u64;
            if drop.is_empty() {
                intact.push(((id, keep), pack_bytes));
                continue;
            }
            report.objects_removed += drop.len() as u64;
            report.bytes_removed += drop.iter().map(|(_, _, len)| len).sum::<u64>();
            doomed.push(id);
            if keep.is_empty() {
                report.packs_removed += 1;
            } else {
                report.packs_rewritten += 1;
                rewrite.push((id, keep));
            }
        }

        // Many packs cost a reader one index request each: past MERGE_AT, old packs less than
        // half full are merged along with the rewritten ones.
        // A lone under-filled pack with nothing to join would only be written again as itself.
        if staying + intact.len() + self.repack_count(&rewrite) as usize > MERGE_AT {
            let thin: Vec<Rewrite> =
                intact.into_iter().filter(|(_, bytes)| *bytes < PACK_BYTES / 2).map(|(pack, _)| pack).collect();
            if thin.len() + usize::from(!rewrite.is_empty()) >= 2 {
                report.packs_rewritten += thin.len() as u64;
                doomed.extend(thin.iter().map(|(id, _)| *id));
                rewrite.extend(thin);
            }
        }

        // Loose objects: every shard listed, `jobs` at a time.
        let shards = (0..=255u8).map(|b| self.list_loose_shard(format!("{b:02x}")));
        let loose: Vec<Vec<(Hash, ObjectMeta)>> =
            futures::stream::iter(shards).buffer_unordered(jobs).try_collect().await?;
        let mut dead_loose: Vec<ObjectPath> = Vec::new();
        for (hash, meta) in loose.into_iter().flatten() {
            if live.contains(&hash) {
                // A loose copy of a packed object stays: a job elsewhere may be reading it.
                if seen.insert(hash) {
                    report.objects_kept += 1;
                }
            } else if young(&meta) {
                report.objects_young += 1;
            } else {
                report.objects_removed += 1;
                report.bytes_removed += meta.size;
                dead_loose.push(meta.location);
            }
        }
        let temps_before = std::time::SystemTime::now().checked_sub(grace).unwrap_or(std::time::UNIX_EPOCH);
        let (temps, temp_bytes) = self.stale_temps(temps_before, dry_run).await?;
        report.temp_files_removed = temps;
        report.bytes_removed += temp_bytes;
        if dry_run {
            report.packs_written = self.repack_count(&rewrite);
            return Ok(report);
        }

        // Referenced objects of rewritten packs go into new packs before anything is deleted.
        // A pack is named by its content, so a new one can bear the name of one that was to go
        // (a pack rewritten with exactly another's objects): that one stays, as the new one.
        let written = self.repack(&rewrite, jobs).await?;
        report.packs_written = written.len() as u64;
        doomed.retain(|id| !written.contains(*id));
        // Indexes first: a pack without one is invisible, never an index without its pack.
        self.delete_all(doomed.iter().map(|id| self.pack_file(id, "idx")).collect(), jobs).await?;
        self.delete_all(doomed.iter().map(|id| self.pack_file(id, "pack")).collect(), jobs).await?;
        self.delete_all(dead_loose, jobs).await?;
        if let Some(dir) = &self.index_cache {
            for id in &doomed {
                let _ = std::fs::remove_file(dir.join(format!("pack-{id}.idx")));
            }
        }
        Ok(report)
    }

    /// The temporary files of uploads that never finished, last written before `cutoff`
    /// (removed unless `dry_run`): how many, and their bytes. Listings hide them, so each kind
    /// of remote is asked in its own way. Cloud stores keep an unfinished multipart upload out
    /// of sight and expire it themselves (Azure and GCS after a week; S3 by a lifecycle rule).
    async fn stale_temps(&self, cutoff: std::time::SystemTime, dry_run: bool) -> Result<(u64, u64)> {
        match &self.access {
            Access::Ssh(ssh) => ssh.remove_stale_temps(cutoff, dry_run).await.map_err(|e| self.error(e)),
            Access::Dir(dir) => remove_staged_uploads(dir, cutoff, dry_run),
            Access::Signed(_) => Ok((0, 0)),
        }
    }

    /// How many packs [`Remote::repack`] would write for `rewrite`.
    fn repack_count(&self, rewrite: &[Rewrite]) -> u64 {
        let mut packs = 0;
        let (mut bytes, mut count) = (0u64, 0usize);
        for len in rewrite.iter().flat_map(|(_, keep)| keep.iter().map(|(_, _, len)| *len)) {
            if closes(bytes, count, len) {
                packs += 1;
                (bytes, count) = (0, 0);
            }
            bytes += len;
            count += 1;
        }
        packs + u64::from(count > 0)
    }

    /// Read the kept objects of each pack in `rewrite` (ranges, checked against their hashes,
    /// `jobs` packs at a time) and write them into new packs; returns their ids.
    async fn repack(&self, rewrite: &[Rewrite<'_>], jobs: usize) -> Result<HashSet<String>> {
        let reads = rewrite.iter().map(|(id, keep)| async move {
            let location = self.pack_file(id, "pack");
            let ranges: Vec<std::ops::Range<u64>> = keep.iter().map(|(_, off, len)| *off..*off + *len).collect();
            let parts = self.store.get_ranges(&location, &ranges).await.map_err(|e| self.error(e))?;
            let mut out = Vec::with_capacity(keep.len());
            for ((hash, _, _), bytes) in keep.iter().zip(parts) {
                let actual = Hash::of(&bytes);
                if actual != *hash {
                    return Err(StoreError::RemoteCorrupt { hash: *hash, actual });
                }
                out.push((*hash, bytes));
            }
            Ok::<_, StoreError>(out)
        });
        let mut reads = futures::stream::iter(reads).buffered(jobs);
        let mut written = HashSet::new();
        let mut pack: Vec<(Hash, Bytes)> = Vec::new();
        let mut bytes = 0u64;
        while let Some(objects) = reads.next().await {
            for (hash, data) in objects? {
                let len = data.len() as u64;
                if closes(bytes, pack.len(), len) {
                    written.insert(self.put_pack(std::mem::take(&mut pack)).await?.0);
                    bytes = 0;
                }
                bytes += len;
                pack.push((hash, data));
            }
        }
        if !pack.is_empty() {
            written.insert(self.put_pack(pack).await?.0);
        }
        Ok(written)
    }

    /// Delete `locations`, `jobs` at a time; one already gone is fine.
    async fn delete_all(&self, locations: Vec<ObjectPath>, jobs: usize) -> Result<()> {
        futures::stream::iter(locations.into_iter().map(|location| async move {
            match self.store.delete(&location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(self.error(e)),
            }
        }))
        .buffer_unordered(jobs)
        .try_collect::<Vec<()>>()
        .await?;
        Ok(())
    }
}

/// A directory remote's unfinished uploads: `object_store` stages each as `NAME#N` beside its
/// destination (and its listings skip them). Those last written before `cutoff` are removed
/// unless `dry_run`; returns how many, and their bytes.
fn remove_staged_uploads(dir: &std::path::Path, cutoff: std::time::SystemTime, dry_run: bool) -> Result<(u64, u64)> {
    let (mut files, mut bytes) = (0u64, 0u64);
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(StoreError::Io { path: dir, source: e }),
        };
        for entry in entries {
            let entry = entry.map_err(StoreError::io(&dir))?;
            let Ok(meta) = entry.metadata() else { continue };
            let name = entry.file_name().to_string_lossy().to_string();
            if meta.is_dir() {
                pending.push(entry.path());
                continue;
            }
            let staged =
                name.split_once('#').is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if !staged || !meta.modified().is_ok_and(|m| m < cutoff) {
                continue;
            }
            files += 1;
            bytes += meta.len();
            if !dry_run {
                match std::fs::remove_file(entry.path()) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(StoreError::Io { path: entry.path(), source: e }),
                }
            }
        }
    }
    Ok((files, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::LocalObjects;
    use crate::pack::layout;

    /// A pack rewritten with exactly the objects of another pack that is to go (its copies
    /// counted twice) comes out under that pack's name when the other was laid out as a
    /// collection lays out (by hash): the collection must keep it.
    #[tokio::test]
    async fn a_rewritten_pack_named_like_a_doomed_one_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let local = LocalObjects::open(dir.path().join("objects"), dir.path().join("tmp")).unwrap();
        let mut shared: Vec<(Hash, u64)> = (0..16)
            .map(|i| {
                let h = local.put_bytes(format!("shared {i}").as_bytes()).unwrap();
                (h, local.size(&h).unwrap())
            })
            .collect();
        shared.sort();
        let twin = layout(shared.iter().copied()).id;
        // One more object whose pack sorts before the twin, so it is read first and keeps the
        // shared objects, and the twin is all copies.
        let (dead, first) = (0..)
            .map(|i| {
                let h = local.put_bytes(format!("dead {i}").as_bytes()).unwrap();
                let mut members = shared.clone();
                members.push((h, local.size(&h).unwrap()));
                (h, members)
            })
            .find(|(_, members)| layout(members.iter().copied()).id < twin)
            .unwrap();
        let remote = Remote::open("remote", dir.path()).unwrap();
        remote.send(&local, &shared, 4, &|_, _| {}).await.unwrap();
        remote.send(&local, &first, 4, &|_, _| {}).await.unwrap();
        let live: HashSet<Hash> = shared.iter().map(|s| s.0).collect();

        let c = remote.collect(&live, Duration::ZERO, false, 4).await.unwrap();
        assert_eq!((c.objects_removed, c.objects_kept, c.packs_written), (17, 16, 1), "{c:?}");
        let again = Remote::open("remote", dir.path()).unwrap();
        let hashes: Vec<Hash> = shared.iter().map(|s| s.0).collect();
        assert!(again.missing(&hashes, 4).await.unwrap().is_empty(), "the shared objects are still there");
        assert_eq!(again.missing(&[dead], 4).await.unwrap(), vec![dead]);
        assert_eq!(again.fetch(&local, &hashes, 4, &|_, _| {}).await.unwrap().len(), 16);
    }
}
