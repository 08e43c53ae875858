//! Packs on a remote: small objects travel many to one remote object, so pushing 20,000 small
//! files costs a few requests instead of 20,000 (on a cloud store a request costs tens of
//! milliseconds; on an emulator, its CPU).
//!
//! Beside the loose objects (`prefix/ab/cdef…`) a remote holds `prefix/packs/pack-<id>.pack`
//! and `pack-<id>.idx`, in the local store's pack format ([`crate::pack`]). A push uploads a
//! pack, then its index: the index makes the pack visible, so a push killed in between leaves an
//! invisible pack that the next push replaces, and resumes at pack granularity. Packed objects
//! come back through range requests (neighbours coalesced) and are checked against their hashes
//! like any download. An index is immutable and named by its hash, so it is fetched once and
//! kept in the project's cache.
//!
//! A job elsewhere (Ray) reads objects by URL, one object per URL: [`Remote::ensure_loose`]
//! uploads a loose copy of an object first.

use super::{Remote, Result, StoreError};
use crate::objects::{LocalObjects, Staged, PACK_MAX};
use crate::pack::{layout, pack_id, parse_index, Layout, PACK_MAGIC};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use kairo_core::Hash;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload};
use std::collections::HashMap;
use std::sync::Arc;

/// A pack is closed at this many bytes or objects.
pub(super) const PACK_BYTES: u64 = 16 << 20;
const PACK_OBJECTS: usize = 4096;
/// Whether a pack holding `count` objects of `bytes` closes before taking one of `len` bytes.
pub(super) fn closes(bytes: u64, count: usize, len: u64) -> bool {
    count > 0 && (bytes + len > PACK_BYTES || count == PACK_OBJECTS)
}

/// Fewer small objects than this travel loose: a pack would save next to nothing.
const PACK_MIN: usize = 16;
/// The largest index Kairo reads (4,096 entries take 192 KiB): a bigger one is not ours.
const INDEX_MAX: u64 = 16 << 20;
/// Indexes fetched at a time.
const INDEX_READS: usize = 16;

/// Where a packed object lives.
#[derive(Debug, Clone)]
struct Slot {
    pack: Arc<str>,
    offset: u64,
    len: u64,
}

/// What the remote's pack indexes say: read on first use, added to by this process's pushes.
#[derive(Debug, Default)]
pub(super) struct Packs {
    loaded: tokio::sync::OnceCell<()>,
    slots: std::sync::RwLock<HashMap<Hash, Slot>>,
}

impl Packs {
    fn insert(&self, id: &str, entries: &[(Hash, u64, u64)]) {
        let pack: Arc<str> = Arc::from(id);
        let mut slots = self.slots.write().unwrap_or_else(|p| p.into_inner());
        for (hash, offset, len) in entries {
            slots.insert(*hash, Slot { pack: pack.clone(), offset: *offset, len: *len });
        }
    }

    fn get(&self, hash: &Hash) -> Option<Slot> {
        self.slots.read().unwrap_or_else(|p| p.into_inner()).get(hash).cloned()
    }

    pub(super) fn contains(&self, hash: &Hash) -> bool {
        self.slots.read().unwrap_or_else(|p| p.into_inner()).contains_key(hash)
    }
}

/// How a push moves the objects it sends: a pack of small ones, or one object.
#[derive(Debug)]
enum Batch {
    Pack(Vec<(Hash, u64)>),
    Loose(Hash, u64),
}

/// Small objects (up to [`PACK_MAX`]) in packs of up to [`PACK_BYTES`] / [`PACK_OBJECTS`] when
/// there are at least [`PACK_MIN`] of them; everything else one by one.
fn plan(objects: &[(Hash, u64)]) -> Vec<Batch> {
    let (small, large): (Vec<(Hash, u64)>, Vec<_>) = objects.iter().copied().partition(|(_, size)| *size <= PACK_MAX);
    let mut batches: Vec<Batch> = Vec::new();
    if small.len() < PACK_MIN {
        batches.extend(small.iter().map(|(h, s)| Batch::Loose(*h, *s)));
    } else {
        let mut pack: Vec<(Hash, u64)> = Vec::new();
        let mut bytes = 0;
        for (hash, size) in small {
            if closes(bytes, pack.len(), size) {
                batches.push(Batch::Pack(std::mem::take(&mut pack)));
                bytes = 0;
            }
            pack.push((hash, size));
            bytes += size;
        }
        if !pack.is_empty() {
            batches.push(Batch::Pack(pack));
        }
    }
    batches.extend(large.iter().map(|(h, s)| Batch::Loose(*h, *s)));
    batches
}

/// What [`Remote::send`] did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sent {
    pub objects: u64,
    pub bytes: u64,
    /// Packs among the requests (each carrying many small objects).
    pub packs: u64,
}

impl Remote {
    pub(super) fn packs_dir(&self) -> ObjectPath {
        self.prefix.child("packs")
    }

    pub(super) fn pack_file(&self, id: &str, ext: &str) -> ObjectPath {
        self.packs_dir().child(format!("pack-{id}.{ext}"))
    }

    /// Load every pack index of the remote, once per process: listed, then read from the cache
    /// or fetched (and cached).
    pub(super) async fn load_packs(&self) -> Result<&Packs> {
        self.packs
            .loaded
            .get_or_try_init(|| async {
                let ids = self.list_packs().await?.into_iter().filter_map(|(id, files)| Some((id, files.idx?.size)));
                futures::stream::iter(ids)
                    .map(|(id, size)| async move {
                        let entries = self.read_index(&id, size).await?;
                        self.packs.insert(&id, &entries);
                        Ok::<_, StoreError>(())
                    })
                    .buffer_unordered(INDEX_READS)
                    .try_collect::<Vec<()>>()
                    .await?;
                Ok::<(), StoreError>(())
            })
            .await?;
        Ok(&self.packs)
    }

    /// One pack index, checked against its name (its hash): from the cache when there, else
    /// fetched and cached.
    pub(super) async fn read_index(&self, id: &str, size: u64) -> Result<Vec<(Hash, u64, u64)>> {
        let location = self.pack_file(id, "idx");
        let corrupt = |why: &str| {
            self.error(format!(
                "pack index {location} {why}: delete it (and its .pack); the next push sends its objects again"
            ))
        };
        // An index is read whole and names ranges later read whole: sizes are checked first.
        let ours = |entries: &[(Hash, u64, u64)]| {
            entries.iter().all(|(_, offset, len)| *len <= PACK_MAX && offset.checked_add(*len).is_some())
        };
        let cached = self.index_cache.as_ref().map(|dir| dir.join(format!("pack-{id}.idx")));
        if let Some(bytes) = cached.as_ref().and_then(|p| std::fs::read(p).ok()) {
            if pack_id(&bytes) == id {
                if let Some(entries) = parse_index(&bytes).filter(|e| ours(e)) {
                    return Ok(entries);
                }
            }
        }
        if size > INDEX_MAX {
            return Err(corrupt(&format!("is {size} bytes, more than any Kairo writes ({INDEX_MAX})")));
        }
        let bytes =
            self.store.get(&location).await.map_err(|e| self.error(e))?.bytes().await.map_err(|e| self.error(e))?;
        if pack_id(&bytes) != id {
            return Err(corrupt("does not match its name (its hash)"));
        }
        let entries = parse_index(&bytes).ok_or_else(|| corrupt("is not a pack index"))?;
        if !ours(&entries) {
            return Err(corrupt(&format!("lists an object larger than Kairo packs ({PACK_MAX} bytes)")));
        }
        self.cache_index(id, &bytes);
        Ok(entries)
    }

    /// Keep an index in the cache (written whole, then renamed). The cache only saves a
    /// request: failing to write it is not an error.
    fn cache_index(&self, id: &str, bytes: &[u8]) {
        let Some(dir) = &self.index_cache else { return };
        let _ = std::fs::create_dir_all(dir);
        let tmp = dir.join(format!(".pack-{id}.idx.{}", std::process::id()));
        if std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, dir.join(format!("pack-{id}.idx")))).is_err()
        {
            let _ = std::fs::remove_file(&tmp);
        }
    }

    /// Where `hash` is packed on the remote, if it is.
    async fn packed(&self, hash: &Hash) -> Result<Option<Slot>> {
        Ok(self.load_packs().await?.get(hash))
    }

    /// Send `objects` (hash and size, all in `local`), which the remote lacks: small ones
    /// packed, the rest one by one, `jobs` requests at a time; `sent(bytes, objects)` hears of
    /// each request that landed.
    pub async fn send(
        &self,
        local: &LocalObjects,
        objects: &[(Hash, u64)],
        jobs: usize,
        sent: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<Sent> {
        let batches = plan(objects);
        let packs = batches.iter().filter(|b| matches!(b, Batch::Pack(_))).count() as u64;
        let done: Vec<(u64, u64)> = futures::stream::iter(batches.into_iter().map(|batch| async move {
            let (bytes, count) = match batch {
                Batch::Pack(members) => (self.send_pack(local, &members).await?, members.len() as u64),
                Batch::Loose(hash, size) => (self.upload_sized(local, hash, size).await?, 1),
            };
            sent(bytes, count);
            Ok::<_, StoreError>((bytes, count))
        }))
        .buffer_unordered(jobs.max(1))
        .try_collect()
        .await?;
        Ok(Sent { objects: done.iter().map(|d| d.1).sum(), bytes: done.iter().map(|d| d.0).sum(), packs })
    }

    /// Upload one pack of `members` from `local` (each checked against its hash as it is
    /// read); returns the objects' bytes.
    async fn send_pack(&self, local: &LocalObjects, members: &[(Hash, u64)]) -> Result<u64> {
        let objects =
            members.iter().map(|(hash, _)| Ok((*hash, Bytes::from(local.read(hash)?)))).collect::<Result<_>>()?;
        Ok(self.put_pack(objects).await?.1)
    }

    /// Upload `objects` as one pack, then its index (which makes it visible); returns the
    /// pack's id and the objects' bytes.
    pub(super) async fn put_pack(&self, objects: Vec<(Hash, Bytes)>) -> Result<(String, u64)> {
        let lens: Vec<(Hash, u64)> = objects.iter().map(|(hash, bytes)| (*hash, bytes.len() as u64)).collect();
        let total: u64 = lens.iter().map(|l| l.1).sum();
        let Layout { id, entries, idx } = layout(lens.into_iter());
        let parts = std::iter::once(Bytes::from_static(PACK_MAGIC)).chain(objects.into_iter().map(|(_, b)| b));
        let put = |location: ObjectPath, payload: PutPayload| async move {
            self.store.put(&location, payload).await.map(|_| ()).map_err(|e| self.error(e))
        };
        put(self.pack_file(&id, "pack"), parts.collect()).await?;
        put(self.pack_file(&id, "idx"), PutPayload::from(idx.clone())).await?;
        self.cache_index(&id, &idx);
        self.packs.insert(&id, &entries);
        Ok((id, total))
    }

    /// Order `hashes` as the remote holds them (pack by pack, by offset; loose ones last), so a
    /// batch of them taken in order reads each pack's stretch once, not the whole pack for a
    /// few objects scattered across it.
    pub async fn sort_for_fetch(&self, hashes: &mut [Hash]) -> Result<()> {
        let packs = self.load_packs().await?;
        hashes.sort_by_cached_key(|h| match packs.get(h) {
            Some(slot) => (false, Some(slot.pack), slot.offset),
            None => (true, None, 0),
        });
        Ok(())
    }

    /// Fetch `hashes` into staged local objects, each checked against its hash: packed ones
    /// through range requests per pack, the rest one by one, `jobs` requests at a time;
    /// `fetched(bytes, objects)` hears of each request done.
    pub async fn fetch(
        &self,
        local: &LocalObjects,
        hashes: &[Hash],
        jobs: usize,
        fetched: &(dyn Fn(u64, u64) + Sync),
    ) -> Result<Vec<Staged>> {
        let packs = self.load_packs().await?;
        let mut by_pack: HashMap<Arc<str>, Vec<(Hash, Slot)>> = HashMap::new();
        let mut loose = Vec::new();
        for h in hashes {
            match packs.get(h) {
                Some(slot) => by_pack.entry(slot.pack.clone()).or_default().push((*h, slot)),
                None => loose.push(*h),
            }
        }
        let packed = by_pack.into_values().map(|members| async move {
            let staged = self.fetch_packed(local, members).await?;
            fetched(staged.iter().map(|s| s.size).sum(), staged.len() as u64);
            Ok::<_, StoreError>(staged)
        });
        let packed: Vec<Vec<Staged>> =
            futures::stream::iter(packed).buffer_unordered(jobs.max(1)).try_collect().await?;
        let single = loose.into_iter().map(|h| async move {
            let staged = self.download_loose(local, h).await?;
            fetched(staged.size, 1);
            Ok::<_, StoreError>(vec![staged])
        });
        let single: Vec<Vec<Staged>> =
            futures::stream::iter(single).buffer_unordered(jobs.max(1)).try_collect().await?;
        Ok(packed.into_iter().chain(single).flatten().collect())
    }

    /// Objects of one pack, read in offset order with neighbouring ranges coalesced.
    async fn fetch_packed(&self, local: &LocalObjects, mut members: Vec<(Hash, Slot)>) -> Result<Vec<Staged>> {
        members.sort_by_key(|(_, s)| s.offset);
        let Some((_, first)) = members.first() else { return Ok(Vec::new()) };
        let location = self.pack_file(&first.pack, "pack");
        let ranges: Vec<std::ops::Range<u64>> = members.iter().map(|(_, s)| s.offset..s.offset + s.len).collect();
        let parts = self.store.get_ranges(&location, &ranges).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => self.error(format!(
                "pack {location} is not on the remote, though its index is: delete its .idx; \
                 the next push sends its objects again"
            )),
            e => self.error(e),
        })?;
        let mut staged = Vec::with_capacity(members.len());
        for ((hash, _), bytes) in members.iter().zip(parts) {
            let s = match local.stage_bytes(&bytes) {
                Ok(s) if s.hash == *hash => s,
                Ok(s) => {
                    let actual = s.hash;
                    local.discard(staged);
                    local.discard(vec![s]);
                    return Err(StoreError::RemoteCorrupt { hash: *hash, actual });
                }
                Err(e) => {
                    local.discard(staged);
                    return Err(e);
                }
            };
            staged.push(s);
        }
        Ok(staged)
    }

    /// Fetch one packed object, if `hash` is packed.
    pub(super) async fn download_packed(&self, local: &LocalObjects, hash: Hash) -> Result<Option<Staged>> {
        let Some(slot) = self.packed(&hash).await? else { return Ok(None) };
        Ok(self.fetch_packed(local, vec![(hash, slot)]).await?.pop())
    }

    /// Make sure `hash` is on the remote as a loose object, which a job elsewhere can be given
    /// a URL to ([`Remote::object_url`]); a packed object gets a loose copy.
    pub async fn ensure_loose(&self, local: &LocalObjects, hash: Hash) -> Result<()> {
        if !self.has_loose(&hash).await? {
            let size = local.size(&hash)?;
            self.upload_sized(local, hash, size).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects(n: usize, size: u64) -> Vec<(Hash, u64)> {
        (0..n).map(|i| (Hash::of(&i.to_le_bytes()), size)).collect()
    }

    fn shape(batches: &[Batch]) -> (usize, usize) {
        let packs = batches.iter().filter(|b| matches!(b, Batch::Pack(_))).count();
        (packs, batches.len() - packs)
    }

    #[test]
    fn small_objects_are_packed_by_bytes_and_count_large_ones_go_alone() {
        assert_eq!(shape(&plan(&objects(PACK_MIN - 1, 10))), (0, PACK_MIN - 1), "too few to pack");
        assert_eq!(shape(&plan(&objects(PACK_MIN, 10))), (1, 0));
        assert_eq!(shape(&plan(&objects(PACK_OBJECTS + 1, 10))), (2, 0), "closed by count");
        let per_pack = (PACK_BYTES / PACK_MAX) as usize;
        assert_eq!(shape(&plan(&objects(per_pack * 2 + 1, PACK_MAX))), (3, 0), "closed by bytes");
        let mut mixed = objects(100, 4096);
        mixed.extend(objects(3, PACK_MAX + 1));
        assert_eq!(shape(&plan(&mixed)), (1, 3));
        let everything: usize = plan(&mixed)
            .iter()
            .map(|b| match b {
                Batch::Pack(m) => m.len(),
                Batch::Loose(..) => 1,
            })
            .sum();
        assert_eq!(everything, 103, "every object is sent once");
    }
}
