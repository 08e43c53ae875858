//! The stat cache: (device, inode, size, mtime_ns, ctime_ns) → content hash, so a file whose metadata
//! has not changed is never read again. Stored as one flat binary file that loads in a
//! millisecond for tens of thousands of entries; it is only a cache, so a missing or damaged
//! file just means files get hashed again.
//!
//! Racy entries (as git calls them): file timestamps tick coarsely (a kernel clock tick), so a
//! file rewritten with the same size within the tick of its previous write keeps its stat. An
//! entry is therefore trusted only if the file's mtime and ctime were at least [`RACY_NS`] older than the
//! moment the entry was recorded; otherwise the file is read again (and then recorded late
//! enough to be trusted).

use crate::error::{Result, StoreError};
use crate::lock::StoreLock;
use kairo_core::Hash;
use std::collections::HashMap;
use std::fs::{self, Metadata};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"KSTAT03\n";
const RECORD: usize = 8 * 6 + 32;

/// How much older than its recording a file's mtime and ctime must be for the entry to be trusted:
/// comfortably more than one clock tick at any kernel `HZ`.
pub const RACY_NS: i64 = 20_000_000;

/// The identity of a file's current contents as far as the filesystem can tell without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileStat {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    /// The inode's change time: unlike mtime it cannot be set back, so a rewrite that restores
    /// size and mtime (`touch -d`) is still seen, as git sees it.
    pub ctime_ns: i64,
}

impl FileStat {
    pub fn of(meta: &Metadata) -> Self {
        FileStat {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: meta.mtime().saturating_mul(1_000_000_000).saturating_add(meta.mtime_nsec()),
            ctime_ns: meta.ctime().saturating_mul(1_000_000_000).saturating_add(meta.ctime_nsec()),
        }
    }
}

/// A cached hash and when it was recorded (ns since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Recorded {
    hash: Hash,
    at_ns: i64,
}

/// Entries are kept as one sorted vector (loading is a parse, not 20,000 hash-map inserts;
/// lookups are a binary search) plus the entries added since loading.
#[derive(Debug)]
pub struct StatCache {
    path: PathBuf,
    entries: Vec<(FileStat, Recorded)>,
    added: HashMap<FileStat, Recorded>,
    /// When this cache was loaded: files are statted after it, so entries recorded now are
    /// stamped with it (the conservative choice for the racy check).
    loaded_ns: i64,
}

impl StatCache {
    /// Load the cache at `path`; an absent or unreadable cache is empty. Load it before
    /// statting the files it will vouch for.
    pub fn load(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let loaded_ns = now_ns();
        let entries = fs::read(&path).map(|b| decode(&b)).unwrap_or_default();
        StatCache { path, entries, added: HashMap::new(), loaded_ns }
    }

    fn lookup(&self, stat: &FileStat) -> Option<Recorded> {
        if let Some(r) = self.added.get(stat) {
            return Some(*r);
        }
        self.entries.binary_search_by(|(s, _)| s.cmp(stat)).ok().map(|i| self.entries[i].1)
    }

    /// The hash of a file with this stat, unless unknown or racy.
    pub fn get(&self, stat: &FileStat) -> Option<Hash> {
        self.lookup(stat).filter(|r| r.at_ns > stat.mtime_ns.max(stat.ctime_ns).saturating_add(RACY_NS)).map(|r| r.hash)
    }

    pub fn insert(&mut self, stat: FileStat, hash: Hash) {
        // Unknown, different or racy: record it (again), stamped with this session's start.
        if self.get(&stat) != Some(hash) {
            self.added.insert(stat, Recorded { hash, at_ns: self.loaded_ns });
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len() + self.added.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Write new entries back, merged with whatever another process saved meanwhile.
    pub fn save(&mut self) -> Result<()> {
        if self.added.is_empty() {
            return Ok(());
        }
        let _lock = StoreLock::exclusive(&lock_path(&self.path))?;
        let mut merged: HashMap<FileStat, Recorded> =
            fs::read(&self.path).map(|b| decode(&b)).unwrap_or_default().into_iter().collect();
        merged.extend(self.added.drain());
        let mut merged: Vec<(FileStat, Recorded)> = merged.into_iter().collect();
        merged.sort_unstable_by_key(|(s, _)| *s);
        let mut bytes = Vec::with_capacity(MAGIC.len() + merged.len() * RECORD);
        bytes.extend_from_slice(MAGIC);
        for (s, r) in &merged {
            bytes.extend_from_slice(&s.dev.to_le_bytes());
            bytes.extend_from_slice(&s.ino.to_le_bytes());
            bytes.extend_from_slice(&s.size.to_le_bytes());
            bytes.extend_from_slice(&s.mtime_ns.to_le_bytes());
            bytes.extend_from_slice(&s.ctime_ns.to_le_bytes());
            bytes.extend_from_slice(&r.at_ns.to_le_bytes());
            bytes.extend_from_slice(r.hash.as_bytes());
        }
        let tmp = self.path.with_extension("tmp");
        let mut f = fs::File::create(&tmp).map_err(StoreError::io(&tmp))?;
        f.write_all(&bytes).map_err(StoreError::io(&tmp))?;
        drop(f);
        fs::rename(&tmp, &self.path).map_err(StoreError::io(&self.path))?;
        self.entries = merged;
        Ok(())
    }
}

/// Now, in nanoseconds since the epoch: the clock the racy checks compare file times with.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos().min(i64::MAX as u128) as i64)
        .unwrap_or(0)
}

fn lock_path(path: &Path) -> PathBuf {
    path.with_extension("lock")
}

/// The records of a cache file, sorted by stat (files written by `save` already are).
fn decode(bytes: &[u8]) -> Vec<(FileStat, Recorded)> {
    let Some(body) = bytes.strip_prefix(MAGIC.as_slice()) else {
        return Vec::new();
    };
    let u64_at = |r: &[u8], i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&r[i * 8..i * 8 + 8]);
        b
    };
    let mut entries = body
        .chunks_exact(RECORD)
        .map(|r| {
            let stat = FileStat {
                dev: u64::from_le_bytes(u64_at(r, 0)),
                ino: u64::from_le_bytes(u64_at(r, 1)),
                size: u64::from_le_bytes(u64_at(r, 2)),
                mtime_ns: i64::from_le_bytes(u64_at(r, 3)),
                ctime_ns: i64::from_le_bytes(u64_at(r, 4)),
            };
            let at_ns = i64::from_le_bytes(u64_at(r, 5));
            let mut h = [0u8; 32];
            h.copy_from_slice(&r[48..80]);
            (stat, Recorded { hash: Hash::from_bytes(h), at_ns })
        })
        .collect::<Vec<_>>();
    if !entries.windows(2).all(|w| w[0].0 < w[1].0) {
        entries.sort_unstable_by_key(|(s, _)| *s);
        entries.dedup_by_key(|(s, _)| *s);
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_merges_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stat-cache");
        let s1 = FileStat { dev: 1, ino: 2, size: 3, mtime_ns: 4, ctime_ns: 4 };
        let s2 = FileStat { dev: 1, ino: 5, size: 3, mtime_ns: 4, ctime_ns: 4 };
        let mut a = StatCache::load(&path);
        let mut b = StatCache::load(&path);
        a.insert(s1, Hash::of(b"1"));
        b.insert(s2, Hash::of(b"2"));
        a.save().unwrap();
        b.save().unwrap();
        let c = StatCache::load(&path);
        assert_eq!(c.get(&s1), Some(Hash::of(b"1")), "concurrent writers merge");
        assert_eq!(c.get(&s2), Some(Hash::of(b"2")));
        fs::write(&path, b"garbage").unwrap();
        assert!(StatCache::load(&path).is_empty());
    }

    #[test]
    fn racy_entries_are_not_trusted_until_recorded_later() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stat-cache");
        // A file modified just now: recording it now would not protect against a same-tick rewrite.
        let fresh = FileStat { dev: 1, ino: 9, size: 3, mtime_ns: now_ns(), ctime_ns: now_ns() };
        let mut c = StatCache::load(&path);
        c.insert(fresh, Hash::of(b"a"));
        assert_eq!(c.get(&fresh), None, "racy entry");
        c.save().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(30));
        let mut later = StatCache::load(&path);
        assert_eq!(later.get(&fresh), None, "still racy: recorded too close to its mtime");
        later.insert(fresh, Hash::of(b"a"));
        assert_eq!(later.get(&fresh), Some(Hash::of(b"a")), "re-recorded late enough");
        later.save().unwrap();
        assert_eq!(StatCache::load(&path).get(&fresh), Some(Hash::of(b"a")));
    }
}
