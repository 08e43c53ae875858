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
    /// `link`: reached through a symbolic link (`meta` is then the target's).
    File {
        path: PathBuf,
        meta: Metadata,
        link: bool,
    },
    Dir {
        path: PathBuf,
        meta: Metadata,
        link: bool,
        children: Vec<(String, Walked)>,
    },
}

/// Which symbolic links a walk may follow.
#[derive(Debug, Clone)]
pub enum Links {
    /// Any link (read-only comparisons: status, diff, checkout).
    Anywhere,
    /// What may be stored: links that stay inside `root` and never lead into `store`; with
    /// `outside`, links that leave the project too (`kairo data add --follow-symlinks`).
    /// Both paths canonical; `store_id` is the store directory's (device, inode), so the store
    /// is refused however it is reached (say, through a link to an ancestor of the project).
    Within { root: PathBuf, store: PathBuf, store_id: (u64, u64), outside: bool },
}

impl Links {
    /// The policy for storing data of `project`.
    pub fn storing(project: &crate::Project, outside: bool) -> Result<Links> {
        Links::within(project.root(), &project.store_dir(), outside)
    }

    /// Links may stay within `root` (or go anywhere with `outside`), never into `store`.
    pub fn within(root: &Path, store: &Path, outside: bool) -> Result<Links> {
        let canonical = |p: &Path| fs::canonicalize(p).map_err(DataError::io(p));
        let meta = fs::metadata(store).map_err(DataError::io(store))?;
        let store_id = (meta.dev(), meta.ino());
        Ok(Links::Within { root: canonical(root)?, store: canonical(store)?, store_id, outside })
    }

    /// Refuse the store's own directory, reached through any path.
    fn check_dir(&self, dir: &Path, id: (u64, u64)) -> Result<()> {
        match self {
            Links::Within { store_id, .. } if *store_id == id => Err(DataError::StoreReached(dir.to_path_buf())),
            _ => Ok(()),
        }
    }

    /// Check the link `link` (already known to be one) against the policy and return the path to
    /// stat for it: under `Within` its checked target, so that the walk records the file that
    /// passed the check rather than whatever the link names a moment later.
    fn resolve(&self, link: &Path) -> Result<PathBuf> {
        let Links::Within { root, store, outside, .. } = self else { return Ok(link.to_path_buf()) };
        let target = match fs::canonicalize(link) {
            Ok(t) => t,
            Err(e) if is_loop(&e) => return Err(DataError::SymlinkLoop(link.to_path_buf())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(broken(link)),
            // Fail closed: a link whose target cannot be resolved is not followed.
            Err(e) => return Err(DataError::Io { path: link.to_path_buf(), source: e }),
        };
        if target.starts_with(store) {
            return Err(DataError::LinkIntoStore { link: link.to_path_buf(), target });
        }
        if !outside && !target.starts_with(root) {
            return Err(DataError::LinkOutsideProject { link: link.to_path_buf(), target });
        }
        Ok(target)
    }
}

fn is_loop(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error())
}

fn broken(link: &Path) -> DataError {
    DataError::Io { path: link.to_path_buf(), source: std::io::Error::other("broken symbolic link") }
}

/// Walk `path` (following symlinks that `links` allows, refusing cycles). Entries are statted
/// relative to their directory (no full path resolution per file), in parallel chunks, and
/// sibling directories are walked in parallel.
pub fn walk(path: &Path) -> Result<Walked> {
    walk_with(path, &Links::Anywhere)
}

/// [`walk`] under a link policy.
pub fn walk_with(path: &Path, links: &Links) -> Result<Walked> {
    let link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    let meta = if link { follow(&links.resolve(path)?, path)? } else { follow(path, path)? };
    walk_meta(path.to_path_buf(), meta, link, &[], links)
}

/// `stat` of `target` (following symlinks), with errors that name `path`, the path walked.
fn follow(target: &Path, path: &Path) -> Result<Metadata> {
    match fs::metadata(target) {
        Ok(m) => Ok(m),
        Err(e) if is_loop(&e) => Err(DataError::SymlinkLoop(path.to_path_buf())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(if fs::symlink_metadata(path).is_ok() {
            broken(path)
        } else {
            DataError::PathMissing(path.to_path_buf())
        }),
        Err(e) => Err(DataError::Io { path: path.to_path_buf(), source: e }),
    }
}

fn walk_meta(path: PathBuf, meta: Metadata, link: bool, ancestors: &[(u64, u64)], links: &Links) -> Result<Walked> {
    if meta.is_file() {
        return Ok(Walked::File { path, meta, link });
    }
    if !meta.is_dir() {
        return Err(DataError::SpecialFile(path));
    }
    let id = (meta.dev(), meta.ino());
    if ancestors.contains(&id) {
        return Err(DataError::SymlinkLoop(path));
    }
    links.check_dir(&path, id)?;
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
    let stat = |(name, entry): (String, fs::DirEntry)| -> Result<(String, PathBuf, Metadata, bool)> {
        let child = entry.path();
        let is_link = entry.file_type().map(|t| t.is_symlink()).unwrap_or(true);
        let meta = if is_link {
            follow(&links.resolve(&child)?, &child)?
        } else {
            entry.metadata().map_err(DataError::io(&child))?
        };
        Ok((name, child, meta, is_link))
    };
    // Large directories are statted in parallel chunks; subdirectories are walked in parallel.
    let statted = entries.into_par_iter().with_min_len(512).map(stat).collect::<Result<Vec<_>>>()?;
    let (dirs, files): (Vec<_>, Vec<_>) = statted.into_iter().partition(|(_, _, meta, _)| meta.is_dir());
    let mut children = files
        .into_iter()
        .map(|(name, child, meta, link)| Ok((name, walk_meta(child, meta, link, &chain, links)?)))
        .collect::<Result<Vec<_>>>()?;
    children.extend(
        dirs.into_par_iter()
            .map(|(name, child, meta, link)| Ok((name, walk_meta(child, meta, link, &chain, links)?)))
            .collect::<Result<Vec<_>>>()?,
    );
    children.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(Walked::Dir { path, meta, link, children })
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
    /// The size of the bytes hashed (the walk's, unless the file changed and was read again).
    size: u64,
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

    // Hashes (and sizes as read) in walk order; `build` consumes them in the same order.
    let mut hashes: Vec<(Hash, u64)> = Vec::with_capacity(jobs.len());
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
            for r in results {
                match r {
                    Ok(h) => {
                        if h.read {
                            files_hashed += 1;
                            bytes_hashed += h.size;
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
                        hashes.push((h.hash, h.size));
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
        Walked::File { path, meta, .. } => out.push(FileJob { path, meta }),
        Walked::Dir { children, .. } => {
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
            return Ok(Hashed { hash, size: job.meta.len(), read: false, staged: None, cache: None });
        }
    }
    match mode {
        Mode::Hash => {
            let (hash, after) = hash_file_with_stat(job.path, job.meta.len()).map_err(unreadable(job.path))?;
            progress.advance(job.meta.len(), 0);
            // A file that changed while we read it gets no cache entry: its stat no longer matches.
            let cache = (after == stat).then_some(stat);
            Ok(Hashed { hash, size: job.meta.len(), read: true, staged: None, cache })
        }
        Mode::Store(objects) => {
            // What is stored must be one state of the file: its stat after the read must be the
            // one it was read with. A file that changed meanwhile is read again (its new state),
            // a few times, then refused; a file replaced by another one is refused at once.
            let mut expected = stat;
            for _ in 0..=CHANGED_RETRIES {
                let on_bytes = |n| progress.advance(n, 0);
                let (s, after) =
                    objects.stage_file(job.path, expected.size, &on_bytes).map_err(unreadable(job.path))?;
                if after == expected {
                    let (hash, size) = (s.hash, s.size);
                    return Ok(Hashed { hash, size, read: true, staged: Some(s), cache: Some(expected) });
                }
                objects.discard(vec![s]);
                if (after.dev, after.ino) != (stat.dev, stat.ino) {
                    // The path names another file now (renamed over, or a link re-pointed): the
                    // walk's checks (inside the project, not the store) vouched for the file it
                    // found, not for this one.
                    return Err(DataError::ReplacedWhileReading(job.path.to_path_buf()));
                }
                expected = after;
            }
            Err(DataError::ChangedWhileReading(job.path.to_path_buf(), CHANGED_RETRIES + 1))
        }
    }
}

/// Extra reads of a file that changed while it was read, before `add` gives up on it.
const CHANGED_RETRIES: usize = 2;

fn unreadable(path: &Path) -> impl FnOnce(kairo_store::StoreError) -> DataError + '_ {
    move |e| match e {
        kairo_store::StoreError::Io { source, .. } => DataError::Io { path: path.to_path_buf(), source },
        e => DataError::Store(e),
    }
}

fn build(
    walked: &Walked,
    previous: Option<&Node>,
    hashes: &mut impl Iterator<Item = (Hash, u64)>,
    manifests: &mut Vec<Vec<u8>>,
) -> Node {
    match walked {
        // `scan` returns early on any hashing error, so every file has its hash here.
        Walked::File { meta, .. } => {
            let (hash, size) = hashes.next().unwrap_or_else(|| (Hash::of(b""), 0));
            Node::File { hash, size, exec: meta.permissions().mode() & 0o100 != 0 }
        }
        Walked::Dir { children, .. } => {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Appends to `file` while it is being read (files above 4 MiB are copied in chunks, with
    /// progress between them), the first `times` times bytes are reported.
    struct Writer {
        file: PathBuf,
        times: usize,
        done: AtomicUsize,
    }

    impl Progress for Writer {
        fn advance(&self, bytes: u64, _files: u64) {
            // Every other chunk, so a copy still reaches the end of what is there.
            let n = self.done.fetch_add(1, Ordering::SeqCst);
            if bytes > 0 && n.is_multiple_of(2) && n / 2 < self.times {
                use std::io::Write;
                let mut f = fs::OpenOptions::new().append(true).open(&self.file).unwrap();
                f.write_all(b" and more").unwrap();
            }
        }
    }

    fn store(dir: &Path, times: usize) -> (Result<Scan>, LocalObjects, PathBuf) {
        let file = dir.join("data.bin");
        fs::write(&file, first()).unwrap();
        let objects = LocalObjects::open(dir.join("objects"), dir.join("tmp")).unwrap();
        let mut cache = StatCache::load(dir.join("stat-cache"));
        let walked = walk(&file).unwrap();
        let progress = Writer { file: file.clone(), times, done: AtomicUsize::new(0) };
        (scan(&walked, None, &mut cache, Mode::Store(&objects), &progress), objects, file)
    }

    fn first() -> Vec<u8> {
        vec![b'x'; 6 << 20]
    }

    #[test]
    fn a_file_that_changed_while_read_is_read_again_in_its_new_state() {
        let dir = tempfile::tempdir().unwrap();
        let (scanned, objects, file) = store(dir.path(), 1);
        let root = scanned.unwrap().root;
        let now = fs::read(&file).unwrap();
        assert_eq!(now.len(), (6 << 20) + 9);
        assert_eq!((root.hash(), root.size()), (Hash::of(&now), now.len() as u64));
        assert!(objects.contains(&Hash::of(&now)));
        assert!(!objects.contains(&Hash::of(&first())), "the first state was stored");
    }

    #[test]
    fn a_file_that_keeps_changing_is_refused_and_nothing_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let (scanned, objects, file) = store(dir.path(), 1000);
        match scanned {
            Err(DataError::ChangedWhileReading(path, n)) => assert_eq!((path, n), (file, CHANGED_RETRIES + 1)),
            other => panic!("expected ChangedWhileReading, got {:?}", other.map(|s| s.root.hash())),
        }
        assert!(!objects.contains(&Hash::of(&first())));
    }

    /// Appends to `file` each time a read reports its bytes, up to `times` times. A small file
    /// reports its bytes once, after the stat that follows its read, so each append lands
    /// between one read's stat and the next read.
    struct Appender {
        file: PathBuf,
        times: usize,
        done: AtomicUsize,
    }

    impl Progress for Appender {
        fn advance(&self, bytes: u64, _files: u64) {
            if bytes > 0 && self.done.fetch_add(1, Ordering::SeqCst) < self.times {
                use std::io::Write;
                let mut f = fs::OpenOptions::new().append(true).open(&self.file).unwrap();
                f.write_all(b"+").unwrap();
            }
        }
    }

    /// Store a small file that is rewritten between the walk's stat and the first read, and
    /// appended to after each read up to `appends` times.
    fn store_small(dir: &Path, appends: usize) -> (Result<Scan>, LocalObjects, PathBuf) {
        let file = dir.join("small.csv");
        fs::write(&file, "a,b\n1,2\n").unwrap();
        let objects = LocalObjects::open(dir.join("objects"), dir.join("tmp")).unwrap();
        let mut cache = StatCache::load(dir.join("stat-cache"));
        let walked = walk(&file).unwrap();
        fs::write(&file, "a,b\n1,2\n3,4\n").unwrap();
        let progress = Appender { file: file.clone(), times: appends, done: AtomicUsize::new(0) };
        (scan(&walked, None, &mut cache, Mode::Store(&objects), &progress), objects, file)
    }

    #[test]
    fn a_small_file_changed_after_its_stat_is_stored_as_read_again() {
        let dir = tempfile::tempdir().unwrap();
        // One append: the first read sees the rewrite (not the walk's stat), the second read
        // sees the append, the third read is stable.
        let (scanned, objects, file) = store_small(dir.path(), 1);
        let root = scanned.unwrap().root;
        let now = fs::read(&file).unwrap();
        assert_eq!(now, b"a,b\n1,2\n3,4\n+");
        assert_eq!((root.hash(), root.size()), (Hash::of(&now), now.len() as u64));
        assert!(objects.contains(&Hash::of(&now)));
        for old in [&b"a,b\n1,2\n"[..], b"a,b\n1,2\n3,4\n"] {
            assert!(!objects.contains(&Hash::of(old)), "an earlier state was stored");
        }
    }

    #[test]
    fn a_small_file_that_keeps_changing_is_refused_and_nothing_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        // Bounded, so a retry loop without a bound would end up storing it and fail the test.
        let (scanned, objects, file) = store_small(dir.path(), 100);
        match scanned {
            Err(e @ DataError::ChangedWhileReading(..)) => {
                let message = e.to_string();
                assert!(message.contains(&*file.to_string_lossy()), "{message}");
                assert!(message.contains("changed while it was read"), "{message}");
            }
            other => panic!("expected ChangedWhileReading, got {:?}", other.map(|s| s.root.hash())),
        }
        let states = fs::read(&file).unwrap();
        for n in 0..=states.len() {
            assert!(!objects.contains(&Hash::of(&states[..n])), "a state of the file was stored");
        }
    }

    /// A project with a store and a file `data/f`, and a secret file outside it.
    fn project_with_secret(dir: &Path) -> (PathBuf, Links, PathBuf) {
        let (root, secret) = (dir.join("project"), dir.join("secret.txt"));
        fs::create_dir_all(root.join(".kairo/objects")).unwrap();
        fs::create_dir_all(root.join("data")).unwrap();
        fs::write(root.join("data/f"), "in the project\n").unwrap();
        fs::write(&secret, "outside the project\n").unwrap();
        let links = Links::within(&root, &root.join(".kairo"), false).unwrap();
        (root, links, secret)
    }

    #[test]
    fn a_file_swapped_for_a_link_outside_after_the_walk_is_refused_and_nothing_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let (root, links, secret) = project_with_secret(dir.path());
        let data = root.join("data");
        let walked = walk_with(&data, &links).unwrap();
        // Between the walk (which vouched for data/f) and its read, data/f becomes a link out.
        fs::remove_file(data.join("f")).unwrap();
        std::os::unix::fs::symlink(&secret, data.join("f")).unwrap();
        let objects = LocalObjects::open(root.join(".kairo/objects"), root.join(".kairo/tmp")).unwrap();
        let mut cache = StatCache::load(root.join(".kairo/stat-cache"));
        match scan(&walked, None, &mut cache, Mode::Store(&objects), &crate::NoProgress) {
            Err(e @ DataError::ReplacedWhileReading(..)) => {
                assert!(e.to_string().contains(&*data.join("f").to_string_lossy()), "{e}");
            }
            other => panic!("expected ReplacedWhileReading, got {:?}", other.map(|s| s.root.hash())),
        }
        assert!(!objects.contains(&Hash::of(b"outside the project\n")), "the outside file was stored");
    }
}
