//! The stat cache: (device, inode, size, mtime_ns) → content hash, so a file whose metadata
//! has not changed is never read again. Stored as one flat binary file that loads in a
//! millisecond for tens of thousands of entries; it is only a cache, so a missing or damaged
//! file just means files get hashed again.

use crate::error::{Result, StoreError};
use crate::lock::StoreLock;
use kairo_core::Hash;
use std::collections::HashMap;
use std::fs::{self, Metadata};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"KSTAT01\n";
const RECORD: usize = 8 * 4 + 32;

/// The identity of a file's current contents as far as the filesystem can tell without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileStat {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
}

impl FileStat {
    pub fn of(meta: &Metadata) -> Self {
        FileStat {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: meta.mtime().saturating_mul(1_000_000_000).saturating_add(meta.mtime_nsec()),
        }
    }
}

/// Entries are kept as one sorted vector (loading is a parse, not 20,000 hash-map inserts;
/// lookups are a binary search) plus the entries added since loading.
#[derive(Debug)]
pub struct StatCache {
    path: PathBuf,
    entries: Vec<(FileStat, Hash)>,
    added: HashMap<FileStat, Hash>,
}

impl StatCache {
    /// Load the cache at `path`; an absent or unreadable cache is empty.
    pub fn load(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let entries = fs::read(&path).map(|b| decode(&b)).unwrap_or_default();
        StatCache { path, entries, added: HashMap::new() }
    }

    pub fn get(&self, stat: &FileStat) -> Option<Hash> {
        if let Some(h) = self.added.get(stat) {
            return Some(*h);
        }
        self.entries.binary_search_by(|(s, _)| s.cmp(stat)).ok().map(|i| self.entries[i].1)
    }

    pub fn insert(&mut self, stat: FileStat, hash: Hash) {
        if self.get(&stat) != Some(hash) {
            self.added.insert(stat, hash);
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
        let mut merged: HashMap<FileStat, Hash> =
            fs::read(&self.path).map(|b| decode(&b)).unwrap_or_default().into_iter().collect();
        merged.extend(self.added.drain());
        let mut merged: Vec<(FileStat, Hash)> = merged.into_iter().collect();
        merged.sort_unstable_by_key(|(s, _)| *s);
        let mut bytes = Vec::with_capacity(MAGIC.len() + merged.len() * RECORD);
        bytes.extend_from_slice(MAGIC);
        for (s, h) in &merged {
            bytes.extend_from_slice(&s.dev.to_le_bytes());
            bytes.extend_from_slice(&s.ino.to_le_bytes());
            bytes.extend_from_slice(&s.size.to_le_bytes());
            bytes.extend_from_slice(&s.mtime_ns.to_le_bytes());
            bytes.extend_from_slice(h.as_bytes());
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

fn lock_path(path: &Path) -> PathBuf {
    path.with_extension("lock")
}

/// The records of a cache file, sorted by stat (files written by `save` already are).
fn decode(bytes: &[u8]) -> Vec<(FileStat, Hash)> {
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
            };
            let mut h = [0u8; 32];
            h.copy_from_slice(&r[32..64]);
            (stat, Hash::from_bytes(h))
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
        let s1 = FileStat { dev: 1, ino: 2, size: 3, mtime_ns: 4 };
        let s2 = FileStat { dev: 1, ino: 5, size: 3, mtime_ns: 4 };
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
}
