//! Pack files: many small objects in one file, so that storing 20,000 small files costs a
//! handful of file creations instead of 20,000 (creating files is what dominates small-file
//! workloads). Like git's packs, but simpler: a pack is immutable, written once per batch.
//!
//! `objects/pack/pack-<id>.pack` holds the objects' bytes back to back after an 8-byte magic;
//! `pack-<id>.idx` lists (hash, offset, length) sorted by hash, followed by the BLAKE3 of
//! everything before it. A pack becomes visible when its index is renamed into place, after
//! both files are complete (and flushed, when durable). `<id>` is the hash of the index.

use crate::error::{Result, StoreError};
use kairo_core::Hash;
use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

pub(crate) const PACK_MAGIC: &[u8; 8] = b"KPACK01\n";
const IDX_MAGIC: &[u8; 8] = b"KIDX001\n";
const IDX_ENTRY: usize = 32 + 8 + 8;

/// Where a packed object lives.
#[derive(Debug, Clone)]
struct Location {
    pack: Arc<Pack>,
    offset: u64,
    len: u64,
}

#[derive(Debug)]
struct Pack {
    id: String,
    file: File,
    entries: Vec<(Hash, u64, u64)>,
}

/// All packs of a store, indexed in memory on first use.
#[derive(Debug)]
pub struct PackSet {
    dir: PathBuf,
    index: RwLock<Option<HashMap<Hash, Location>>>,
}

impl PackSet {
    pub fn new(dir: PathBuf) -> Self {
        PackSet { dir, index: RwLock::new(None) }
    }

    fn with_index<T>(&self, f: impl FnOnce(&HashMap<Hash, Location>) -> T) -> Result<T> {
        {
            let guard = self.index.read().map_err(|_| poisoned(&self.dir))?;
            if let Some(index) = guard.as_ref() {
                return Ok(f(index));
            }
        }
        self.reload()?;
        let guard = self.index.read().map_err(|_| poisoned(&self.dir))?;
        guard.as_ref().map(f).ok_or_else(|| poisoned(&self.dir))
    }

    /// Re-read every index from disk (another process may have added packs).
    pub fn reload(&self) -> Result<()> {
        let mut index = HashMap::new();
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                *self.index.write().map_err(|_| poisoned(&self.dir))? = Some(index);
                return Ok(());
            }
            Err(e) => return Err(StoreError::Io { path: self.dir.clone(), source: e }),
        };
        for entry in entries {
            let entry = entry.map_err(StoreError::io(&self.dir))?;
            let name = entry.file_name().to_string_lossy().to_string();
            let Some(id) = name.strip_prefix("pack-").and_then(|n| n.strip_suffix(".idx")) else { continue };
            let pack = Arc::new(self.load(id)?);
            for (hash, offset, len) in &pack.entries {
                index.insert(*hash, Location { pack: pack.clone(), offset: *offset, len: *len });
            }
        }
        *self.index.write().map_err(|_| poisoned(&self.dir))? = Some(index);
        Ok(())
    }

    fn load(&self, id: &str) -> Result<Pack> {
        let idx_path = self.dir.join(format!("pack-{id}.idx"));
        let bytes = fs::read(&idx_path).map_err(StoreError::io(&idx_path))?;
        let entries = parse_index(&bytes).ok_or_else(|| StoreError::Io {
            path: idx_path.clone(),
            source: std::io::Error::other("pack index is corrupted (checksum or layout mismatch)"),
        })?;
        let pack_path = self.dir.join(format!("pack-{id}.pack"));
        let file = File::open(&pack_path).map_err(StoreError::io(&pack_path))?;
        Ok(Pack { id: id.to_string(), file, entries })
    }

    pub fn contains(&self, hash: &Hash) -> bool {
        self.with_index(|i| i.contains_key(hash)).unwrap_or(false)
    }

    fn locate(&self, hash: &Hash) -> Result<Option<Location>> {
        if let Some(loc) = self.with_index(|i| i.get(hash).cloned())? {
            return Ok(Some(loc));
        }
        self.reload()?;
        self.with_index(|i| i.get(hash).cloned())
    }

    /// The object's length, if packed.
    pub fn size(&self, hash: &Hash) -> Result<Option<u64>> {
        Ok(self.locate(hash)?.map(|l| l.len))
    }

    /// The object's bytes, checked against its hash; None when it is not packed.
    pub fn read(&self, hash: &Hash) -> Result<Option<Vec<u8>>> {
        let Some(loc) = self.locate(hash)? else { return Ok(None) };
        let mut buf = vec![0u8; loc.len as usize];
        let path = self.pack_path(&loc.pack.id);
        loc.pack.file.read_exact_at(&mut buf, loc.offset).map_err(StoreError::io(&path))?;
        let actual = Hash::of(&buf);
        if actual != *hash {
            return Err(StoreError::Corrupt { hash: *hash, actual, path });
        }
        Ok(Some(buf))
    }

    fn pack_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("pack-{id}.pack"))
    }

    /// Every packed object.
    pub fn list(&self) -> Result<Vec<Hash>> {
        self.with_index(|i| i.keys().copied().collect())
    }

    /// Write objects as one new pack via a temp file in `staging`, flushed when `durable`.
    pub fn write(&self, objects: &[(Hash, Vec<u8>)], staging: &Path, durable: bool) -> Result<()> {
        if objects.is_empty() {
            return Ok(());
        }
        fs::create_dir_all(&self.dir).map_err(StoreError::io(&self.dir))?;
        let tmp_pack =
            tempfile::Builder::new().prefix("pack-").tempfile_in(staging).map_err(StoreError::io(staging))?;
        let (mut file, tmp_pack_path) =
            tmp_pack.keep().map_err(|e| StoreError::Io { path: staging.into(), source: e.error })?;
        let result = (|| {
            // Straight from the objects' buffers: no copy of the whole pack in memory.
            let parts: Vec<&[u8]> =
                std::iter::once(&PACK_MAGIC[..]).chain(objects.iter().map(|(_, b)| &b[..])).collect();
            write_all_vectored(&mut file, &parts).map_err(StoreError::io(&tmp_pack_path))?;
            if durable {
                file.sync_data().map_err(StoreError::io(&tmp_pack_path))?;
            }
            let Layout { id, entries, idx } = layout(objects.iter().map(|(h, b)| (*h, b.len() as u64)));
            let tmp_idx_path = staging.join(format!("pack-{id}.idx.tmp"));
            let mut idx_file = File::create(&tmp_idx_path).map_err(StoreError::io(&tmp_idx_path))?;
            idx_file.write_all(&idx).map_err(StoreError::io(&tmp_idx_path))?;
            if durable {
                idx_file.sync_data().map_err(StoreError::io(&tmp_idx_path))?;
            }
            let pack_path = self.pack_path(&id);
            fs::rename(&tmp_pack_path, &pack_path).map_err(StoreError::io(&pack_path))?;
            let idx_path = self.dir.join(format!("pack-{id}.idx"));
            fs::rename(&tmp_idx_path, &idx_path).map_err(StoreError::io(&idx_path))?;
            if durable {
                File::open(&self.dir).and_then(|d| d.sync_all()).map_err(StoreError::io(&self.dir))?;
            }
            let pack = Arc::new(Pack {
                id: id.clone(),
                file: File::open(&pack_path).map_err(StoreError::io(&pack_path))?,
                entries,
            });
            let mut guard = self.index.write().map_err(|_| poisoned(&self.dir))?;
            if let Some(index) = guard.as_mut() {
                for (hash, offset, len) in &pack.entries {
                    index.insert(*hash, Location { pack: pack.clone(), offset: *offset, len: *len });
                }
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp_pack_path);
        }
        result
    }

    /// Rewrite every pack holding a `dead` object so only live objects remain (and, when there
    /// are more than `max_packs` packs, merge them all); returns the number of objects and
    /// bytes dropped. The caller holds the store's exclusive lock.
    pub fn drop_objects(
        &self,
        dead: &HashSet<Hash>,
        max_packs: usize,
        staging: &Path,
        durable: bool,
    ) -> Result<(u64, u64)> {
        let mut packs = Vec::new();
        if let Ok(entries) = fs::read_dir(&self.dir) {
            for entry in entries {
                let name = entry.map_err(StoreError::io(&self.dir))?.file_name().to_string_lossy().to_string();
                if let Some(id) = name.strip_prefix("pack-").and_then(|n| n.strip_suffix(".idx")) {
                    packs.push(self.load(id)?);
                }
            }
        }
        let merge_all = packs.len() > max_packs;
        let (mut keep, mut keep_bytes, mut affected, mut dropped, mut bytes) = (Vec::new(), 0usize, Vec::new(), 0, 0);
        let mut kept = HashSet::new();
        for pack in &packs {
            if !merge_all && !pack.entries.iter().any(|(h, _, _)| dead.contains(h)) {
                continue;
            }
            for (hash, offset, len) in &pack.entries {
                if dead.contains(hash) {
                    dropped += 1;
                    bytes += len;
                } else if kept.insert(*hash) {
                    let mut data = vec![0u8; *len as usize];
                    let path = self.pack_path(&pack.id);
                    pack.file.read_exact_at(&mut data, *offset).map_err(StoreError::io(&path))?;
                    let actual = Hash::of(&data);
                    if actual != *hash {
                        return Err(StoreError::Corrupt { hash: *hash, actual, path });
                    }
                    keep_bytes += data.len();
                    keep.push((*hash, data));
                    if keep_bytes >= REPACK_CHUNK {
                        self.write(&keep, staging, durable)?;
                        keep.clear();
                        keep_bytes = 0;
                    }
                }
            }
            affected.push(pack.id.clone());
        }
        self.write(&keep, staging, durable)?;
        for id in &affected {
            let idx = self.dir.join(format!("pack-{id}.idx"));
            fs::remove_file(&idx).map_err(StoreError::io(&idx))?;
            let pack = self.pack_path(id);
            fs::remove_file(&pack).map_err(StoreError::io(&pack))?;
        }
        self.reload()?;
        Ok((dropped, bytes))
    }
}

/// Repacking writes new packs of about this size.
const REPACK_CHUNK: usize = 256 << 20;

/// Write every part, in order, with as few `writev` calls as the kernel allows.
fn write_all_vectored(file: &mut File, parts: &[&[u8]]) -> std::io::Result<()> {
    use std::io::IoSlice;
    /// The most buffers one `writev` takes (Linux's IOV_MAX).
    const MAX_IOV: usize = 1024;
    for group in parts.chunks(MAX_IOV) {
        let mut slices: Vec<IoSlice<'_>> = group.iter().map(|p| IoSlice::new(p)).collect();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            match file.write_vectored(rest) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => IoSlice::advance_slices(&mut rest, n),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Where each object of a pack goes and the pack's index, for objects written back to back in
/// the given order after [`PACK_MAGIC`]; the one layout rule for local and remote packs.
pub(crate) struct Layout {
    /// The pack's name: the first 40 hex digits of its index's hash.
    pub id: String,
    /// (hash, offset, length), sorted by hash, one per distinct object.
    pub entries: Vec<(Hash, u64, u64)>,
    /// The index file's bytes.
    pub idx: Vec<u8>,
}

pub(crate) fn layout(objects: impl Iterator<Item = (Hash, u64)>) -> Layout {
    let mut entries = Vec::new();
    let mut offset = PACK_MAGIC.len() as u64;
    for (hash, len) in objects {
        entries.push((hash, offset, len));
        offset += len;
    }
    entries.sort_by_key(|e| e.0);
    entries.dedup_by_key(|e| e.0);
    let idx = render_index(&entries);
    Layout { id: pack_id(&idx), entries, idx }
}

/// A pack's name from its index's bytes.
pub(crate) fn pack_id(idx: &[u8]) -> String {
    Hash::of(idx).to_hex()[..40].to_string()
}

fn render_index(entries: &[(Hash, u64, u64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + entries.len() * IDX_ENTRY + 32);
    out.extend_from_slice(IDX_MAGIC);
    out.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    for (hash, offset, len) in entries {
        out.extend_from_slice(hash.as_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
    }
    let sum = Hash::of(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

pub(crate) fn parse_index(bytes: &[u8]) -> Option<Vec<(Hash, u64, u64)>> {
    let body = bytes.get(..bytes.len().checked_sub(32)?)?;
    if Hash::of(body).as_bytes() != &bytes[body.len()..] || !body.starts_with(IDX_MAGIC) {
        return None;
    }
    let count = u64::from_le_bytes(body.get(8..16)?.try_into().ok()?) as usize;
    let rest = body.get(16..)?;
    if rest.len() != count.checked_mul(IDX_ENTRY)? {
        return None;
    }
    rest.chunks_exact(IDX_ENTRY)
        .map(|e| {
            let hash = Hash::from_bytes(e[..32].try_into().ok()?);
            let offset = u64::from_le_bytes(e[32..40].try_into().ok()?);
            let len = u64::from_le_bytes(e[40..48].try_into().ok()?);
            Some((hash, offset, len))
        })
        .collect()
}

fn poisoned(dir: &Path) -> StoreError {
    StoreError::Io { path: dir.to_path_buf(), source: std::io::Error::other("pack index lock poisoned") }
}
