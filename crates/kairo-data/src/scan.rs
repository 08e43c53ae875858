//! Scanning a tracked path in the work tree: a parallel walk, then hashing every file the stat
//! cache does not vouch for (on all cores), then building the Merkle tree bottom-up, reusing the
//! previous version's manifest for every directory whose entries did not change.

use crate::error::{DataError, Result};
use crate::tree::Node;
use crate::Progress;
use kairo_core::manifest::Manifest;
use kairo_core::Hash;
use kairo_store::objects::hash_file_with_stat;
use kairo_store::{FileStat, LocalObjects, Staged, StatCache};
use rayon::prelude::*;
use std::collections::{BTreeMap, HashSet};
use std::fs::{self, Metadata};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Files per batch: each batch's new objects are made durable with one sync and then published.
const BATCH_FILES: usize = 4096;
const BATCH_BYTES: u64 = 1 << 30;

/// Suffix of the temp files `checkout` writes beside their targets; never part of a dataset.
pub const CHECKOUT_TMP_MARK: &str = ".kairo-tmp-";

/// The work tree as found on disk.
#[derive(Debug)]
pub enum Walked {
    File { path: PathBuf, meta: Metadata },
    Dir { children: Vec<(String, Walked)> },
}

/// Walk `path` (following symlinks, refusing loops). Entries are statted relative to their
/// directory (no full path resolution per file), in parallel chunks, and sibling directories
/// are walked in parallel.
pub fn walk(path: &Path) -> Result<Walked> {
    let meta = follow(path)?;
    walk_meta(path.to_path_buf(), meta, &[])
}

/// `stat` that follows symlinks, with errors that name the path.
fn follow(path: &Path) -> Result<Metadata> {
    match fs::metadata(path) {
        Ok(m) => Ok(m),
        Err(e) if e.raw_os_error() == Some(40) => Err(DataError::SymlinkLoop(path.to_path_buf())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(if fs::symlink_metadata(path).is_ok() {
            DataError::Io { path: path.to_path_buf(), source: std::io::Error::other("broken symbolic link") }
        } else {
            DataError::PathMissing(path.to_path_buf())
        }),
        Err(e) => Err(DataError::Io { path: path.to_path_buf(), source: e }),
    }
}

fn walk_meta(path: PathBuf, meta: Metadata, ancestors: &[(u64, u64)]) -> Result<Walked> {
    if meta.is_file() {
        return Ok(Walked::File { path, meta });
    }
    if !meta.is_dir() {
        return Err(DataError::SpecialFile(path));
    }
    let id = (meta.dev(), meta.ino());
    if ancestors.contains(&id) {
        return Err(DataError::SymlinkLoop(path));
    }
    let mut chain = ancestors.to_vec();
    chain.push(id);
    let mut entries = Vec::new();
    for entry in fs::read_dir(&path).map_err(DataError::io(&path))? {
        let entry = entry.map_err(DataError::io(&path))?;
        let name = entry.file_name().into_string().map_err(|_| DataError::NotUtf8(entry.path()))?;
        if !name.contains(CHECKOUT_TMP_MARK) {
            entries.push((name, entry));
        }
    }
    let stat = |(name, entry): (String, fs::DirEntry)| -> Result<(String, PathBuf, Metadata)> {
        let child = entry.path();
        let is_link = entry.file_type().map(|t| t.is_symlink()).unwrap_or(true);
        let meta = if is_link { follow(&child)? } else { entry.metadata().map_err(DataError::io(&child))? };
        Ok((name, child, meta))
    };
    // Large directories are statted in parallel chunks; subdirectories are walked in parallel.
    let statted = entries.into_par_iter().with_min_len(512).map(stat).collect::<Result<Vec<_>>>()?;
    let (dirs, files): (Vec<_>, Vec<_>) = statted.into_iter().partition(|(_, _, meta)| meta.is_dir());
    let mut children = files
        .into_iter()
        .map(|(name, child, meta)| Ok((name, walk_meta(child, meta, &chain)?)))
        .collect::<Result<Vec<_>>>()?;
    children.extend(
        dirs.into_par_iter()
            .map(|(name, child, meta)| Ok((name, walk_meta(child, meta, &chain)?)))
            .collect::<Result<Vec<_>>>()?,
    );
    children.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(Walked::Dir { children })
}

/// What to do with file contents while scanning.
#[derive(Clone, Copy)]
pub enum Mode<'a> {
    /// Only compute hashes (status, diff).
    Hash,
    /// Also store every file and manifest in the object store (add).
    Store(&'a LocalObjects),
}

/// The outcome of a scan.
pub struct Scan {
    pub root: Node,
    /// Files whose bytes were read (the stat cache did not know them).
    pub files_hashed: u64,
    pub bytes_hashed: u64,
    /// Objects newly written to the store, and their bytes.
    pub objects_stored: u64,
    pub bytes_stored: u64,
}

struct FileJob<'a> {
    path: &'a Path,
    meta: &'a Metadata,
}

struct Hashed {
    hash: Hash,
    read: bool,
    staged: Option<Staged>,
    cache: Option<FileStat>,
}

/// Scan a walked tree: hash what needs hashing, store what needs storing, build the tree.
pub fn scan(
    walked: &Walked,
    previous: Option<&Node>,
    cache: &mut StatCache,
    mode: Mode<'_>,
    progress: &dyn Progress,
) -> Result<Scan> {
    let mut jobs = Vec::new();
    collect_jobs(walked, &mut jobs);
    progress.set_total(jobs.iter().map(|j| j.meta.len()).sum());

    // Hashes in walk order; `build` consumes them in the same order.
    let mut hashes: Vec<Hash> = Vec::with_capacity(jobs.len());
    let (mut files_hashed, mut bytes_hashed, mut objects_stored, mut bytes_stored) = (0, 0, 0, 0);
    let committed = std::thread::scope(|scope| -> Result<()> {
        let mut in_flight: Option<CommitHandle<'_>> = None;
        for batch in batches(&jobs) {
            let cache_ref = &*cache;
            let results = batch
                .par_iter()
                .map(|job| {
                    let r = hash_one(job, cache_ref, mode, progress);
                    progress.advance(0, 1);
                    r
                })
                .collect::<Vec<Result<Hashed>>>();
            let mut staged = Vec::new();
            let mut duplicates = Vec::new();
            let mut staged_hashes = HashSet::new();
            let mut first_error = None;
            for (job, r) in batch.iter().zip(results) {
                match r {
                    Ok(h) => {
                        if h.read {
                            files_hashed += 1;
                            bytes_hashed += job.meta.len();
                        }
                        if let Some(s) = h.staged {
                            // Identical files hashed in parallel are stored once.
                            if !staged_hashes.insert(s.hash) {
                                duplicates.push(s);
                            } else {
                                if !s.existed() {
                                    objects_stored += 1;
                                    bytes_stored += s.size;
                                }
                                staged.push(s);
                            }
                        }
                        if let Some(stat) = h.cache {
                            cache.insert(stat, h.hash);
                        }
                        hashes.push(h.hash);
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            if let Mode::Store(objects) = mode {
                objects.discard(duplicates);
                if let Some(e) = first_error {
                    objects.discard(staged);
                    finish_commit(in_flight.take())?;
                    return Err(e);
                }
                // Commit this batch in the background while the next one is hashed (the commit is
                // mostly waiting on the disk). At most one is in flight, so batches land in order.
                finish_commit(in_flight.take())?;
                in_flight = Some(scope.spawn(move || objects.commit(staged)));
            } else if let Some(e) = first_error {
                return Err(e);
            }
        }
        finish_commit(in_flight.take())
    });
    committed?;

    let mut manifests = Vec::new();
    let root = build(walked, previous, &mut hashes.into_iter(), &mut manifests);
    if let Mode::Store(objects) = mode {
        let mut staged = Vec::with_capacity(manifests.len());
        for bytes in &manifests {
            let s = objects.stage_bytes(bytes)?;
            if !s.existed() {
                objects_stored += 1;
                bytes_stored += s.size;
            }
            staged.push(s);
        }
        objects.commit(staged)?;
    }
    Ok(Scan { root, files_hashed, bytes_hashed, objects_stored, bytes_stored })
}

type CommitHandle<'scope> = std::thread::ScopedJoinHandle<'scope, Result<(), kairo_store::StoreError>>;

/// Wait for a background batch commit, if any, and surface its error.
fn finish_commit(handle: Option<CommitHandle<'_>>) -> Result<()> {
    match handle.map(|h| h.join()) {
        Some(Ok(result)) => result.map_err(DataError::from),
        Some(Err(_)) => Err(DataError::Runtime("object commit thread panicked".into())),
        None => Ok(()),
    }
}

fn batches<'a, 'b>(jobs: &'b [FileJob<'a>]) -> Vec<&'b [FileJob<'a>]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0u64);
    for (i, job) in jobs.iter().enumerate() {
        bytes += job.meta.len();
        if i + 1 - start >= BATCH_FILES || bytes >= BATCH_BYTES {
            out.push(&jobs[start..=i]);
            start = i + 1;
            bytes = 0;
        }
    }
    if start < jobs.len() {
        out.push(&jobs[start..]);
    }
    out
}

fn collect_jobs<'a>(walked: &'a Walked, out: &mut Vec<FileJob<'a>>) {
    match walked {
        Walked::File { path, meta } => out.push(FileJob { path, meta }),
        Walked::Dir { children } => {
            for (_, child) in children {
                collect_jobs(child, out);
            }
        }
    }
}

fn hash_one(job: &FileJob<'_>, cache: &StatCache, mode: Mode<'_>, progress: &dyn Progress) -> Result<Hashed> {
    let stat = FileStat::of(job.meta);
    if let Some(hash) = cache.get(&stat) {
        let known = match mode {
            Mode::Hash => true,
            Mode::Store(objects) => objects.contains(&hash),
        };
        if known {
            progress.advance(job.meta.len(), 0);
            return Ok(Hashed { hash, read: false, staged: None, cache: None });
        }
    }
    let (hash, staged, after) = match mode {
        Mode::Hash => {
            let (hash, after) = hash_file_with_stat(job.path, job.meta.len()).map_err(unreadable(job.path))?;
            progress.advance(job.meta.len(), 0);
            (hash, None, after)
        }
        Mode::Store(objects) => {
            let on_bytes = |n| progress.advance(n, 0);
            let (s, after) = objects.stage_file(job.path, job.meta.len(), &on_bytes).map_err(unreadable(job.path))?;
            (s.hash, Some(s), after)
        }
    };
    // A file that changed while we read it gets no cache entry: its stat no longer matches.
    let cache = (after == stat).then_some(stat);
    Ok(Hashed { hash, read: true, staged, cache })
}

fn unreadable(path: &Path) -> impl FnOnce(kairo_store::StoreError) -> DataError + '_ {
    move |e| match e {
        kairo_store::StoreError::Io { source, .. } => DataError::Io { path: path.to_path_buf(), source },
        e => DataError::Store(e),
    }
}

fn build(
    walked: &Walked,
    previous: Option<&Node>,
    hashes: &mut impl Iterator<Item = Hash>,
    manifests: &mut Vec<Vec<u8>>,
) -> Node {
    match walked {
        // `scan` returns early on any hashing error, so every file has its hash here.
        Walked::File { meta, .. } => Node::File {
            hash: hashes.next().unwrap_or_else(|| Hash::of(b"")),
            size: meta.len(),
            exec: meta.permissions().mode() & 0o100 != 0,
        },
        Walked::Dir { children } => {
            let prev_children = match previous {
                Some(Node::Dir { children, .. }) => Some(children),
                _ => None,
            };
            let mut nodes = BTreeMap::new();
            for (name, child) in children {
                let prev = prev_children.and_then(|c| c.get(name));
                nodes.insert(name.clone(), build(child, prev, hashes, manifests));
            }
            let manifest = Manifest::new(nodes.iter().map(|(name, n)| n.entry(name)).collect());
            let hash = match previous {
                Some(Node::Dir { hash, manifest: prev, .. }) if prev.entries() == manifest.entries() => *hash,
                _ => {
                    let bytes = manifest.to_bytes();
                    let hash = Hash::of(&bytes);
                    manifests.push(bytes);
                    hash
                }
            };
            Node::Dir { hash, manifest, children: nodes }
        }
    }
}
