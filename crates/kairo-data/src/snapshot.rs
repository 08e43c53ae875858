//! Status snapshots: how `kairo data status` says "unchanged" without reading a directory,
//! loading the stat cache or building the tree, the way git's index and untracked cache keep
//! `git status` cheap.
//!
//! After a scan that found a tracked path at its recorded version, the stat data of everything
//! it walked is written to `.kairo/status/`: each directory's (its mtime changes whenever an
//! entry is added, removed or renamed) and each file's (device, inode, size, mode, mtime and
//! ctime; ctime cannot be set back by a user, so `touch -d` does not fool it). The next status
//! stats exactly those entries, relative to their directory's descriptor and in parallel; when
//! every one matches, the path is unchanged. Anything else (a mismatch, an entry that cannot be
//! statted, a snapshot that is missing, stale, malformed or for another version) falls back to
//! the full scan, which is always right.
//!
//! No snapshot is written when the walk followed a symbolic link (a link's target can change
//! without touching any stat seen here) or when an entry changed within [`RACY_NS`] of the
//! scan's start (a later write in the same clock tick could leave its stat unchanged).

use crate::project::Project;
use crate::scan::Walked;
use kairo_core::pointer::Pointer;
use kairo_core::pointer::PointerKind;
use kairo_core::Hash;
use kairo_store::stat_cache::RACY_NS;
use rayon::prelude::*;
use rustix::fs::{AtFlags, Mode, OFlags};
use std::ffi::CStr;
use std::fs::{self, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const MAGIC: &[u8] = b"KAIRO-STATUS-1\n";

/// A snapshot larger than this is not read (it would be a tree of some 15 million files).
const MAX_SNAPSHOT_BYTES: u64 = 1 << 30;

/// The stat data compared for one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
    mode: u32,
}

const STAT_LEN: usize = 44;

impl Stat {
    fn of(m: &Metadata) -> Stat {
        Stat {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: ns(m.ctime(), m.ctime_nsec()),
            mode: m.mode(),
        }
    }

    fn of_raw(s: &rustix::fs::Stat) -> Stat {
        Stat {
            dev: s.st_dev,
            ino: s.st_ino,
            size: s.st_size as u64,
            mtime_ns: ns(s.st_mtime, s.st_mtime_nsec as i64),
            ctime_ns: ns(s.st_ctime, s.st_ctime_nsec as i64),
            mode: s.st_mode,
        }
    }

    /// Changed so close to `taken_ns` that a later change could leave the same stat.
    fn racy(&self, taken_ns: i64) -> bool {
        self.mtime_ns.max(self.ctime_ns) > taken_ns.saturating_sub(RACY_NS)
    }

    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.dev.to_le_bytes());
        out.extend_from_slice(&self.ino.to_le_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.mtime_ns.to_le_bytes());
        out.extend_from_slice(&self.ctime_ns.to_le_bytes());
        out.extend_from_slice(&self.mode.to_le_bytes());
    }
}

fn ns(secs: i64, nsec: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nsec)
}

/// Where the snapshot of the tracked path `rel` lives.
fn file_of(project: &Project, rel: &str) -> PathBuf {
    project.store_dir().join("status").join(&Hash::of(rel.as_bytes()).to_hex()[..32])
}

/// Whether the tracked path `rel` is, by its snapshot, still at the version `pointer` records.
/// False means "not known": scan it.
pub fn unchanged(project: &Project, rel: &str, pointer: &Pointer) -> bool {
    let path = file_of(project, rel);
    // About 70 bytes an entry: far past any real tree, and never read whole.
    if fs::metadata(&path).map_or(true, |m| m.len() > MAX_SNAPSHOT_BYTES) {
        return false;
    }
    let Ok(bytes) = fs::read(&path) else { return false };
    check(&project.abs(rel), pointer, &bytes).unwrap_or(false)
}

/// Record the stat data of `walked`, just scanned as `rel` at `pointer`'s version by a scan that
/// started at `taken_ns`. Best effort: a snapshot that cannot be written only costs speed.
pub fn save(project: &Project, rel: &str, pointer: &Pointer, walked: &Walked, taken_ns: i64) {
    let path = file_of(project, rel);
    let Some(bytes) = encode(pointer, walked, taken_ns) else {
        let _ = fs::remove_file(&path);
        return;
    };
    let Some(dir) = path.parent() else { return };
    if fs::create_dir_all(dir).is_err() {
        return;
    }
    let tmp = dir.join(format!(".tmp-{}-{}", std::process::id(), Hash::of(&bytes).short()));
    if fs::write(&tmp, &bytes).is_ok() && fs::rename(&tmp, &path).is_err() {
        let _ = fs::remove_file(&tmp);
    }
}

fn encode(pointer: &Pointer, walked: &Walked, taken_ns: i64) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(1 << 16);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(pointer.hash.as_bytes());
    match walked {
        Walked::File { meta, link: false, .. } if pointer.kind == PointerKind::File => {
            out.push(0);
            let stat = Stat::of(meta);
            if stat.racy(taken_ns) {
                return None;
            }
            stat.put(&mut out);
        }
        Walked::Dir { .. } if pointer.kind == PointerKind::Dir => {
            out.push(1);
            let mut dirs = Vec::new();
            collect_dirs(walked, String::new(), &mut dirs)?;
            out.extend_from_slice(&u32::try_from(dirs.len()).ok()?.to_le_bytes());
            for (rel, meta, files) in dirs {
                let stat = Stat::of(meta);
                if stat.racy(taken_ns) {
                    return None;
                }
                stat.put(&mut out);
                put_name(&mut out, rel.as_bytes())?;
                out.extend_from_slice(&u32::try_from(files.len()).ok()?.to_le_bytes());
                for (name, meta) in files {
                    let stat = Stat::of(meta);
                    if stat.racy(taken_ns) {
                        return None;
                    }
                    stat.put(&mut out);
                    put_name(&mut out, name.as_bytes())?;
                }
            }
        }
        _ => return None,
    }
    Some(out)
}

type DirEntries<'a> = (String, &'a Metadata, Vec<(&'a str, &'a Metadata)>);

/// Every directory under `walked` (path relative to the tracked root, "" for the root) with its
/// files; None when a link was followed anywhere.
fn collect_dirs<'a>(walked: &'a Walked, rel: String, out: &mut Vec<DirEntries<'a>>) -> Option<()> {
    let Walked::Dir { meta, link: false, children, .. } = walked else { return None };
    let mut files = Vec::new();
    let mut subdirs = Vec::new();
    for (name, child) in children {
        match child {
            Walked::File { meta, link: false, .. } => files.push((name.as_str(), meta)),
            Walked::Dir { .. } => subdirs.push((name, child)),
            Walked::File { .. } => return None,
        }
    }
    out.push((rel.clone(), meta, files));
    for (name, child) in subdirs {
        let sub = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
        collect_dirs(child, sub, out)?;
    }
    Some(())
}

fn put_name(out: &mut Vec<u8>, name: &[u8]) -> Option<()> {
    out.extend_from_slice(&u16::try_from(name.len()).ok()?.to_le_bytes());
    out.extend_from_slice(name);
    out.push(0);
    Some(())
}

/// A reader over the snapshot's bytes that answers None past the end.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(head)
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn stat(&mut self) -> Option<Stat> {
        Some(Stat {
            dev: self.u64()?,
            ino: self.u64()?,
            size: self.u64()?,
            mtime_ns: self.u64()? as i64,
            ctime_ns: self.u64()? as i64,
            mode: self.u32()?,
        })
    }

    /// A name with its NUL, as a C string.
    fn name(&mut self) -> Option<&'a CStr> {
        let len = u16::from_le_bytes(self.take(2)?.try_into().ok()?) as usize;
        CStr::from_bytes_with_nul(self.take(len + 1)?).ok()
    }
}

/// One directory of the snapshot: its path under the root, its stat, its files' records.
struct DirRecord<'a> {
    rel: &'a CStr,
    stat: Stat,
    files: usize,
    records: &'a [u8],
}

/// Some(true) when every recorded entry still has its recorded stat; None for a snapshot that
/// does not parse (any bytes: it is read from disk).
fn check(root: &Path, pointer: &Pointer, bytes: &[u8]) -> Option<bool> {
    let mut r = Reader { bytes };
    if r.take(MAGIC.len())? != MAGIC || r.take(32)? != pointer.hash.as_bytes() {
        return Some(false);
    }
    match (r.take(1)?[0], pointer.kind) {
        (0, PointerKind::File) => {
            let recorded = r.stat()?;
            Some(rustix::fs::lstat(root).is_ok_and(|s| Stat::of_raw(&s) == recorded))
        }
        (1, PointerKind::Dir) => {
            let count = r.u32()? as usize;
            // Each directory's record takes at least STAT_LEN + 7 bytes: bound the allocation.
            let mut dirs = Vec::with_capacity(count.min(r.bytes.len() / (STAT_LEN + 7)));
            for _ in 0..count {
                let stat = r.stat()?;
                let rel = r.name()?;
                let files = r.u32()? as usize;
                let start = r.bytes;
                for _ in 0..files {
                    r.take(STAT_LEN)?;
                    r.name()?;
                }
                let records = &start[..start.len() - r.bytes.len()];
                dirs.push(DirRecord { rel, stat, files, records });
            }
            if !r.bytes.is_empty() {
                return None;
            }
            Some(dirs.par_iter().all(|d| dir_unchanged(root, d).unwrap_or(false)))
        }
        _ => Some(false),
    }
}

/// A name that stays inside its directory.
fn plain(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/')
}

fn dir_unchanged(root: &Path, d: &DirRecord<'_>) -> Option<bool> {
    let rel = d.rel.to_str().ok()?;
    if !rel.is_empty() && !rel.split('/').all(|c| plain(c.as_bytes())) {
        return None;
    }
    let path = if rel.is_empty() { root.to_path_buf() } else { root.join(rel) };
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::open(&path, flags, Mode::empty()).ok()?;
    if Stat::of_raw(&rustix::fs::fstat(&fd).ok()?) != d.stat {
        return Some(false);
    }
    let mut r = Reader { bytes: d.records };
    for _ in 0..d.files {
        let recorded = r.stat()?;
        let name = r.name()?;
        if !plain(name.to_bytes()) {
            return None;
        }
        let now = rustix::fs::statat(&fd, name, AtFlags::SYMLINK_NOFOLLOW).ok()?;
        if Stat::of_raw(&now) != recorded {
            return Some(false);
        }
    }
    Some(true)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_snapshot_of_any_bytes_is_not_trusted() {
        let pointer = Pointer::new("d".into(), PointerKind::Dir, Hash::of(b"x"), 0, 0);
        let root = Path::new("/nonexistent-kairo-root");
        let mut header = MAGIC.to_vec();
        header.extend_from_slice(pointer.hash.as_bytes());
        header.push(1);
        for bytes in [
            Vec::new(),
            b"garbage".to_vec(),
            header.clone(),
            [header.clone(), u32::MAX.to_le_bytes().to_vec()].concat(),
            [header.clone(), 1u32.to_le_bytes().to_vec(), vec![0; 10]].concat(),
        ] {
            assert_ne!(check(root, &pointer, &bytes), Some(true), "{bytes:?}");
        }
    }

    #[test]
    fn names_that_leave_their_directory_are_refused() {
        for bad in [&b""[..], b".", b"..", b"a/b", b"../x"] {
            assert!(!plain(bad), "{bad:?}");
        }
        assert!(plain(b"f.bin") && plain(b"..x"));
    }
}
