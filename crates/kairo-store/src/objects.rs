//! The local content-addressed object store, named by the BLAKE3 hash of each object's bytes:
//! objects over [`PACK_MAX`] are immutable files `.kairo/objects/ab/cdef…`; smaller ones are
//! written in batches into pack files (see `pack.rs`).
//!
//! Writes go to a temp file in a per-process directory under `.kairo/tmp` (a fresh directory
//! keeps file creation fast: ext4 directories that have churned through many entries never
//! shrink and get slow), are hashed from the bytes actually written, made
//! durable, and only then renamed into place: an object path that exists is complete and
//! correct. Durability is batched: one `syncfs` covers a whole batch of staged objects instead
//! of one `fsync` each, which is what makes adding 20,000 small files take well under a second.

use crate::error::{Result, StoreError};
use crate::pack::PackSet;
use crate::stat_cache::FileStat;
use kairo_core::Hash;
use std::borrow::Cow;
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, SystemTime};

/// Files up to this size are read into memory and hashed there; larger ones are copied by the
/// kernel and hashed through a memory map on all cores.
const SMALL_FILE: u64 = 4 << 20;

/// Objects up to this size go into pack files (see `pack.rs`) instead of files of their own.
pub const PACK_MAX: u64 = 256 << 10;

/// `remove` (gc) merges all packs into few once there are more than this many.
const MAX_PACKS: usize = 16;

/// Batches with fewer small objects than this store them as loose files instead of a pack.
const MIN_PACK: usize = 32;

/// Large files are copied by the kernel in chunks of this size.
const COPY_CHUNK: usize = 64 << 20;
/// While writing a large object (added or downloaded), flush to disk every this many bytes so
/// the disk works while we read, hash or receive, instead of all at the end.
const FLUSH_EVERY: u64 = 128 << 20;

/// The local object store.
/// See [`LocalObjects::source`].
#[derive(Debug)]
pub enum ObjectSource {
    File { path: PathBuf, size: u64 },
    Bytes(Vec<u8>),
}

#[derive(Debug, Clone)]
pub struct LocalObjects {
    root: PathBuf,
    tmp: PathBuf,
    session: Arc<Session>,
    packs: Arc<PackSet>,
    loose: Arc<LooseListing>,
    durable: bool,
}

/// The loose objects of each shard directory, listed once when first asked about: deciding
/// whether a new small object must be written then costs a hash lookup instead of a failed
/// `stat` per object. A listing can go stale (another process adds or gc removes objects), so
/// it only ever answers "is it worth writing?": a "yes, stored" is confirmed on disk, and a
/// stale "no" costs a duplicate write of content-addressed bytes, nothing more. Objects this
/// process stores loose are added as they land.
#[derive(Debug)]
struct LooseListing {
    shards: Vec<RwLock<Option<HashSet<Hash>>>>,
}

impl LooseListing {
    fn new() -> Self {
        LooseListing { shards: (0..256).map(|_| RwLock::new(None)).collect() }
    }

    fn listed(&self, root: &Path, hash: &Hash) -> bool {
        let first = hash.as_bytes()[0];
        let shard = &self.shards[first as usize];
        if let Some(set) = shard.read().unwrap_or_else(|p| p.into_inner()).as_ref() {
            return set.contains(hash);
        }
        let mut guard = shard.write().unwrap_or_else(|p| p.into_inner());
        guard
            .get_or_insert_with(|| {
                let dir = root.join(format!("{first:02x}"));
                let Ok(entries) = fs::read_dir(&dir) else { return HashSet::new() };
                entries
                    .filter_map(|e| {
                        let name = e.ok()?.file_name();
                        format!("{first:02x}{}", name.to_str()?).parse::<Hash>().ok()
                    })
                    .collect()
            })
            .contains(hash)
    }

    /// An object this process just stored loose.
    fn landed(&self, hash: &Hash) {
        let shard = &self.shards[hash.as_bytes()[0] as usize];
        if let Some(set) = shard.write().unwrap_or_else(|p| p.into_inner()).as_mut() {
            set.insert(*hash);
        }
    }
}

/// This process's staging directory, made on first use and removed (if empty) when the last
/// handle to the store goes away.
#[derive(Debug)]
struct Session {
    dir: PathBuf,
    made: OnceLock<()>,
}

impl Session {
    fn dir(&self) -> &Path {
        self.made.get_or_init(|| {
            // A failure surfaces as the error of the file creation that follows.
            let _ = fs::create_dir_all(&self.dir);
        });
        &self.dir
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.made.get().is_some() {
            let _ = fs::remove_dir(&self.dir);
        }
    }
}

/// An object hashed and staged (in a temp file, or in memory for a pack), waiting for
/// [`LocalObjects::commit`].
#[derive(Debug)]
pub struct Staged {
    pub hash: Hash,
    pub size: u64,
    pending: Pending,
}

#[derive(Debug)]
enum Pending {
    /// The store already held the object; nothing was written.
    Existing,
    Loose(PathBuf),
    Packed(Vec<u8>),
}

impl Staged {
    /// True when the object was already in the store.
    pub fn existed(&self) -> bool {
        matches!(self.pending, Pending::Existing)
    }
}

/// Incremental writer for objects that arrive as a stream (downloads): kept in memory while
/// small enough for a pack, spilled to a temp file beyond that.
pub struct ObjectWriter {
    store: LocalObjects,
    buffer: Vec<u8>,
    file: Option<(File, PathBuf)>,
    hasher: blake3::Hasher,
    size: u64,
    /// Pushes the temp file to disk while the stream goes on (durable stores only).
    flusher: Option<Flusher>,
    since_flush: u64,
}

impl ObjectWriter {
    pub fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
        if self.file.is_none() && self.size > PACK_MAX {
            let (mut file, path) = self.store.temp_file()?;
            file.write_all(&self.buffer).map_err(StoreError::io(&path))?;
            if self.store.durable {
                self.flusher = Some(Flusher::start(&file).map_err(StoreError::io(&path))?);
            }
            self.buffer = Vec::new();
            self.file = Some((file, path));
        }
        match &mut self.file {
            Some((file, path)) => {
                file.write_all(chunk).map_err(StoreError::io(path.as_path()))?;
                self.since_flush += chunk.len() as u64;
                if self.since_flush >= FLUSH_EVERY {
                    if let Some(flusher) = &self.flusher {
                        flusher.poke();
                    }
                    self.since_flush = 0;
                }
                Ok(())
            }
            None => {
                self.buffer.extend_from_slice(chunk);
                Ok(())
            }
        }
    }

    /// Finish the stream; fails (and deletes any temp file) if the bytes do not hash to `expected`.
    pub fn finish(self, expected: Hash) -> Result<Staged> {
        let flushed = self.flusher.map(Flusher::finish);
        let actual = Hash::from(self.hasher.finalize());
        if actual != expected {
            if let Some((_, path)) = self.file {
                let _ = fs::remove_file(path);
            }
            return Err(StoreError::RemoteCorrupt { hash: expected, actual });
        }
        let pending = match self.file {
            Some((_, path)) => {
                if let Some(Err(e)) = flushed {
                    let _ = fs::remove_file(&path);
                    return Err(StoreError::Io { path, source: e });
                }
                Pending::Loose(path)
            }
            None => Pending::Packed(self.buffer),
        };
        Ok(Staged { hash: actual, size: self.size, pending })
    }
}

impl LocalObjects {
    /// Open (creating if needed) a store rooted at `root`, staging through `tmp` (same filesystem).
    pub fn open(root: impl Into<PathBuf>, tmp: impl Into<PathBuf>) -> Result<Self> {
        let (root, tmp) = (root.into(), tmp.into());
        fs::create_dir_all(&root).map_err(StoreError::io(&root))?;
        fs::create_dir_all(&tmp).map_err(StoreError::io(&tmp))?;
        let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let session =
            Arc::new(Session { dir: tmp.join(format!("{}-{nanos:x}", std::process::id())), made: OnceLock::new() });
        let packs = Arc::new(PackSet::new(root.join("pack")));
        Ok(LocalObjects { root, tmp, session, packs, loose: Arc::new(LooseListing::new()), durable: true })
    }

    /// Whether objects reach the disk (fsync) before they become visible. On by default; off
    /// trades safety against power loss (not against a killed process) for speed.
    pub fn with_durability(mut self, durable: bool) -> Self {
        self.durable = durable;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the object lives when it is stored loose (objects larger than [`PACK_MAX`]).
    pub fn path(&self, hash: &Hash) -> PathBuf {
        self.root.join(hash.shard_path())
    }

    pub fn contains(&self, hash: &Hash) -> bool {
        self.packs.contains(hash) || self.path(hash).is_file()
    }

    /// [`Self::contains`] for deciding whether to write an object: asks the shard's listing
    /// first, so a new object costs no `stat` (see [`LooseListing`]).
    fn stored(&self, hash: &Hash) -> bool {
        self.packs.contains(hash) || (self.loose.listed(&self.root, hash) && self.path(hash).is_file())
    }

    fn temp_file(&self) -> Result<(File, PathBuf)> {
        let dir = self.session.dir();
        // Created read-only: objects are never modified, and this saves a chmod per object.
        let named = tempfile::Builder::new()
            .prefix("obj-")
            .permissions(fs::Permissions::from_mode(0o444))
            .tempfile_in(dir)
            .map_err(StoreError::io(dir))?;
        named.keep().map_err(|e| StoreError::Io { path: dir.to_path_buf(), source: e.error })
    }

    /// Copy `src` (whose size the caller saw as `size_hint`) into the store's staging area,
    /// hashing exactly the bytes written. Nothing is kept when the store already has the object.
    /// Also returns the file's stat taken after reading, so the caller can tell whether it
    /// changed meanwhile. `on_bytes` hears of the bytes copied as the copy goes.
    pub fn stage_file(&self, src: &Path, size_hint: u64, on_bytes: &dyn Fn(u64)) -> Result<(Staged, FileStat)> {
        let mut file = File::open(src).map_err(StoreError::io(src))?;
        if size_hint <= SMALL_FILE {
            let bytes = read_small(&mut file, src, size_hint)?;
            let after = fstat(&file, src)?;
            on_bytes(bytes.len() as u64);
            return Ok((self.stage(Cow::Owned(bytes))?, after));
        }
        let (tmp, tmp_path) = self.temp_file()?;
        // At most one byte more than expected: a file growing as it is read stops the copy
        // (and the caller sees the changed stat) instead of keeping it going forever.
        let limit = size_hint.saturating_add(1);
        let staged = match copy_large(&file, src, tmp, &tmp_path, self.durable, limit, on_bytes) {
            Ok((hash, size)) if self.contains(&hash) => {
                let _ = fs::remove_file(&tmp_path);
                Staged { hash, size, pending: Pending::Existing }
            }
            Ok((hash, size)) => Staged { hash, size, pending: Pending::Loose(tmp_path) },
            Err(e) => {
                let _ = fs::remove_file(&tmp_path);
                return Err(e);
            }
        };
        Ok((staged, fstat(&file, src)?))
    }

    pub fn stage_bytes(&self, bytes: &[u8]) -> Result<Staged> {
        self.stage(Cow::Borrowed(bytes))
    }

    /// Stage `bytes`; bytes already owned go into the pack as they are, without a copy.
    fn stage(&self, bytes: Cow<'_, [u8]>) -> Result<Staged> {
        let hash = Hash::of(&bytes);
        let size = bytes.len() as u64;
        if self.stored(&hash) {
            return Ok(Staged { hash, size, pending: Pending::Existing });
        }
        if size <= PACK_MAX {
            return Ok(Staged { hash, size, pending: Pending::Packed(bytes.into_owned()) });
        }
        let (mut tmp, tmp_path) = self.temp_file()?;
        if let Err(e) = tmp.write_all(&bytes) {
            let _ = fs::remove_file(&tmp_path);
            return Err(StoreError::Io { path: tmp_path, source: e });
        }
        Ok(Staged { hash, size, pending: Pending::Loose(tmp_path) })
    }

    pub fn writer(&self) -> Result<ObjectWriter> {
        Ok(ObjectWriter {
            store: self.clone(),
            buffer: Vec::new(),
            file: None,
            hasher: blake3::Hasher::new(),
            size: 0,
            flusher: None,
            since_flush: 0,
        })
    }

    /// Make a batch of staged objects durable, then visible: small ones as one new pack, large
    /// ones renamed into place after one `syncfs` (the bytes), followed by another (the names).
    pub fn commit(&self, staged: Vec<Staged>) -> Result<()> {
        let mut packed = Vec::new();
        let mut pending = Vec::new();
        for s in staged {
            match s.pending {
                Pending::Existing => {}
                Pending::Loose(tmp) => pending.push((tmp, s.hash)),
                Pending::Packed(bytes) => packed.push((s.hash, bytes)),
            }
        }
        if packed.len() >= MIN_PACK {
            self.packs.write(&packed, self.session.dir(), self.durable)?;
        } else {
            // A handful of objects is not worth a pack (and many tiny packs would slow lookups).
            for (hash, bytes) in packed {
                let (mut file, path) = self.temp_file()?;
                file.write_all(&bytes).map_err(StoreError::io(&path))?;
                pending.push((path, hash));
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        self.sync()?;
        let mut shards = HashSet::new();
        for (tmp, hash) in &pending {
            let dest = self.path(hash);
            let shard = &hash.shard_path()[..2];
            if shards.insert(shard.to_string()) {
                let dir = self.root.join(shard);
                fs::create_dir_all(&dir).map_err(StoreError::io(&dir))?;
            }
            fs::rename(tmp, &dest).map_err(StoreError::io(&dest))?;
            self.loose.landed(hash);
        }
        self.sync()
    }

    /// Drop staged objects that will not be committed.
    pub fn discard(&self, staged: Vec<Staged>) {
        for s in staged {
            if let Pending::Loose(tmp) = s.pending {
                let _ = fs::remove_file(tmp);
            }
        }
    }

    fn sync(&self) -> Result<()> {
        if !self.durable {
            return Ok(());
        }
        let dir = File::open(&self.root).map_err(StoreError::io(&self.root))?;
        rustix::fs::syncfs(&dir).map_err(|e| StoreError::Io { path: self.root.clone(), source: e.into() })
    }

    /// Store bytes as an object and return its hash.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Hash> {
        let staged = self.stage_bytes(bytes)?;
        let hash = staged.hash;
        self.commit(vec![staged])?;
        Ok(hash)
    }

    /// Where to stream an object from: its loose file (the reader must check the hash as it
    /// goes), or, for a packed object (always small), its verified bytes.
    pub fn source(&self, hash: &Hash) -> Result<ObjectSource> {
        let path = self.path(hash);
        match fs::metadata(&path) {
            Ok(m) if m.is_file() => Ok(ObjectSource::File { path, size: m.len() }),
            Ok(_) => Err(StoreError::Missing(*hash)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.read(hash).map(ObjectSource::Bytes),
            Err(e) => Err(StoreError::Io { path, source: e }),
        }
    }

    /// Read a whole (small) object, failing loudly if its bytes no longer match its hash.
    pub fn read(&self, hash: &Hash) -> Result<Vec<u8>> {
        let path = self.path(hash);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return self.packs.read(hash)?.ok_or(StoreError::Missing(*hash));
            }
            Err(e) => return Err(StoreError::Io { path, source: e }),
        };
        let actual = Hash::of(&bytes);
        if actual != *hash {
            return Err(StoreError::Corrupt { hash: *hash, actual, path });
        }
        Ok(bytes)
    }

    /// Copy an object to `dest` (reflink where the filesystem can, else a kernel copy) and, with
    /// `verify`, check the copy's hash; a corrupt object leaves no `dest` behind. Only skip the
    /// check for an object whose bytes this process has just hashed on their way into the store
    /// (a pull's downloads): reading them back would check the page cache against itself.
    pub fn copy_to(&self, hash: &Hash, dest: &Path, verify: bool) -> Result<u64> {
        let src = self.path(hash);
        if !src.is_file() {
            let bytes = self.packs.read(hash)?.ok_or(StoreError::Missing(*hash))?;
            let mut out = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o644)
                .open(dest)
                .map_err(StoreError::io(dest))?;
            out.write_all(&bytes).map_err(StoreError::io(dest))?;
            return Ok(bytes.len() as u64);
        }
        let size = reflink_copy::reflink_or_copy(&src, dest).map_err(StoreError::io(dest))?;
        if verify {
            let actual = hash_file(dest)?;
            if actual != *hash {
                let _ = fs::remove_file(dest);
                return Err(StoreError::Corrupt { hash: *hash, actual, path: src });
            }
        }
        let size = match size {
            Some(n) => n,
            None => fs::metadata(dest).map_err(StoreError::io(dest))?.len(),
        };
        let mut perms = fs::metadata(dest).map_err(StoreError::io(dest))?.permissions();
        perms.set_mode(0o644);
        fs::set_permissions(dest, perms).map_err(StoreError::io(dest))?;
        Ok(size)
    }

    /// Whether the object's bytes begin with `prefix`, reading only that much (no hash check:
    /// this only classifies objects; every full read is checked).
    pub fn starts_with(&self, hash: &Hash, prefix: &[u8]) -> Result<bool> {
        let path = self.path(hash);
        match File::open(&path) {
            Ok(mut file) => {
                let mut head = vec![0u8; prefix.len()];
                Ok(file.read_exact(&mut head).is_ok() && head == prefix)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(self.read(hash)?.starts_with(prefix)),
            Err(e) => Err(StoreError::Io { path, source: e }),
        }
    }

    /// Re-hash an object; `Err(Corrupt)` when it no longer matches its name.
    pub fn verify(&self, hash: &Hash) -> Result<u64> {
        let path = self.path(hash);
        if !path.exists() {
            return Ok(self.read(hash)?.len() as u64);
        }
        let size = fs::metadata(&path).map_err(|e| missing_or_io(hash, &path, e))?.len();
        let actual = hash_file(&path)?;
        if actual != *hash {
            return Err(StoreError::Corrupt { hash: *hash, actual, path });
        }
        Ok(size)
    }

    /// Every object in the store, loose or packed (names that are not hashes are ignored).
    pub fn list(&self) -> Result<Vec<Hash>> {
        let mut out = self.packs.list()?;
        for shard in fs::read_dir(&self.root).map_err(StoreError::io(&self.root))? {
            let shard = shard.map_err(StoreError::io(&self.root))?;
            let prefix = shard.file_name().to_string_lossy().to_string();
            if prefix.len() != 2 || !shard.path().is_dir() {
                continue;
            }
            let dir = shard.path();
            for entry in fs::read_dir(&dir).map_err(StoreError::io(&dir))? {
                let entry = entry.map_err(StoreError::io(&dir))?;
                let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
                if let Ok(hash) = name.parse::<Hash>() {
                    out.push(hash);
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    pub fn size(&self, hash: &Hash) -> Result<u64> {
        let path = self.path(hash);
        match fs::metadata(&path) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.packs.size(hash)?.ok_or(StoreError::Missing(*hash))
            }
            Err(e) => Err(StoreError::Io { path, source: e }),
        }
    }

    /// Delete objects (loose files, and by rewriting the packs that hold them; packs are also
    /// merged when there are many); returns the number of objects and bytes freed. The caller
    /// holds the store's exclusive lock.
    pub fn remove(&self, dead: &HashSet<Hash>) -> Result<(u64, u64)> {
        let (mut count, mut bytes) = (0, 0);
        for hash in dead {
            let path = self.path(hash);
            if let Ok(meta) = fs::metadata(&path) {
                fs::remove_file(&path).map_err(StoreError::io(&path))?;
                count += 1;
                bytes += meta.len();
            }
        }
        let (packed, packed_bytes) = self.packs.drop_objects(dead, MAX_PACKS, self.session.dir(), self.durable)?;
        Ok((count + packed, bytes + packed_bytes))
    }

    /// Remove staging directories and files older than `age` (left by a process that died);
    /// returns how many entries went.
    pub fn clean_tmp(&self, age: Duration) -> Result<usize> {
        let mut removed = 0;
        let now = SystemTime::now();
        for entry in fs::read_dir(&self.tmp).map_err(StoreError::io(&self.tmp))? {
            let entry = entry.map_err(StoreError::io(&self.tmp))?;
            let Ok(meta) = entry.metadata() else { continue };
            let old = meta.modified().map(|t| now.duration_since(t).unwrap_or_default() >= age).unwrap_or(false);
            if !old || entry.path() == self.session.dir {
                continue;
            }
            let gone = if meta.is_dir() { fs::remove_dir_all(entry.path()) } else { fs::remove_file(entry.path()) };
            if gone.is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Copy `src` into `tmp` inside the kernel (`copy_file_range`: no trip through user space,
/// the same path `cp` takes), then hash the copy on all cores through a memory map, so the hash
/// is of the very bytes stored. When `durable`, a flusher thread pushes the copy to disk while
/// it is being made and hashed, instead of all at the end.
fn copy_large(
    src: &File,
    src_path: &Path,
    tmp: File,
    tmp_path: &Path,
    durable: bool,
    limit: u64,
    on_bytes: &dyn Fn(u64),
) -> Result<(Hash, u64)> {
    let flusher = if durable { Some(Flusher::start(&tmp).map_err(StoreError::io(tmp_path))?) } else { None };
    let copied = kernel_copy(src, &tmp, flusher.as_ref(), limit, on_bytes).map_err(StoreError::io(src_path));
    let hashed = copied.and_then(|n| {
        let mut hasher = blake3::Hasher::new();
        hasher.update_mmap_rayon(tmp_path).map_err(StoreError::io(tmp_path))?;
        Ok((Hash::from(hasher.finalize()), n))
    });
    if let Some(flusher) = flusher {
        flusher.finish().map_err(StoreError::io(tmp_path))?;
    }
    hashed
}

/// A thread that flushes a file being written each time it is poked, so the disk works while
/// the writer goes on instead of all at the end; `finish` flushes the rest and reports the
/// first failure.
struct Flusher {
    poke: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<std::io::Result<()>>,
}

impl Flusher {
    fn start(file: &File) -> std::io::Result<Flusher> {
        let file = file.try_clone()?;
        let (poke, poked) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || -> std::io::Result<()> {
            while poked.recv().is_ok() {
                while poked.try_recv().is_ok() {}
                file.sync_data()?;
            }
            file.sync_data()
        });
        Ok(Flusher { poke, thread })
    }

    fn poke(&self) {
        let _ = self.poke.send(());
    }

    fn finish(self) -> std::io::Result<()> {
        drop(self.poke);
        self.thread.join().unwrap_or_else(|_| Err(std::io::Error::other("flusher thread panicked")))
    }
}

/// `copy_file_range` in chunks (asking `flush` to sync after each), falling back to an ordinary
/// copy where the kernel or filesystem cannot.
fn kernel_copy(
    src: &File,
    dst: &File,
    flush: Option<&Flusher>,
    limit: u64,
    on_bytes: &dyn Fn(u64),
) -> std::io::Result<u64> {
    let mut copied = 0u64;
    let mut since_flush = 0u64;
    loop {
        let want = usize::try_from(limit - copied).unwrap_or(usize::MAX).min(COPY_CHUNK);
        if want == 0 {
            return Ok(copied);
        }
        match rustix::fs::copy_file_range(src, None, dst, None, want) {
            Ok(0) => return Ok(copied),
            Ok(n) => {
                copied += n as u64;
                since_flush += n as u64;
                on_bytes(n as u64);
                if since_flush >= FLUSH_EVERY {
                    if let Some(flusher) = flush {
                        flusher.poke();
                    }
                    since_flush = 0;
                }
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(_) if copied == 0 => {
                let (s, mut d) = (src, dst);
                let n = std::io::copy(&mut std::io::Read::take(s, limit), &mut d)?;
                on_bytes(n);
                return Ok(n);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Read a small file whole. The size seen by the caller only sizes the buffer (no `fstat` +
/// `lseek` as `File::read_to_end` does); a file that grew is still read to its end.
fn read_small(file: &mut File, path: &Path, size_hint: u64) -> Result<Vec<u8>> {
    // Ask for one byte more than expected: a short read of a regular file means end of file,
    // so the usual case is a single `read`. Anything else falls back to reading to the end.
    let mut bytes = vec![0u8; size_hint as usize + 1];
    let n = loop {
        match file.read(&mut bytes) {
            Ok(n) => break n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(StoreError::Io { path: path.to_path_buf(), source: e }),
        }
    };
    bytes.truncate(n);
    if n as u64 > size_hint || (n as u64) < size_hint && n > 0 {
        file.take(u64::MAX).read_to_end(&mut bytes).map_err(StoreError::io(path))?;
    }
    Ok(bytes)
}

fn fstat(file: &File, path: &Path) -> Result<FileStat> {
    Ok(FileStat::of(&file.metadata().map_err(StoreError::io(path))?))
}

/// Hash a file the caller saw with size `size_hint`, returning its stat taken after reading.
pub fn hash_file_with_stat(path: &Path, size_hint: u64) -> Result<(Hash, FileStat)> {
    if size_hint > SMALL_FILE {
        let hash = hash_file(path)?;
        return Ok((hash, FileStat::of(&fs::metadata(path).map_err(StoreError::io(path))?)));
    }
    let mut file = File::open(path).map_err(StoreError::io(path))?;
    let bytes = read_small(&mut file, path, size_hint)?;
    Ok((Hash::of(&bytes), fstat(&file, path)?))
}

/// Hash a file's bytes: in memory when small, through a memory map on all cores when large.
pub fn hash_file(path: &Path) -> Result<Hash> {
    let len = fs::metadata(path).map_err(StoreError::io(path))?.len();
    if len <= SMALL_FILE {
        let bytes = fs::read(path).map_err(StoreError::io(path))?;
        return Ok(Hash::of(&bytes));
    }
    let mut hasher = blake3::Hasher::new();
    hasher.update_mmap_rayon(path).map_err(StoreError::io(path))?;
    Ok(hasher.finalize().into())
}

/// Hash a file read in chunks, never mapped: the memory it takes is one chunk whatever the
/// file's size (a memory map's pages count in the process's resident set as they are read).
pub fn hash_file_streaming(path: &Path) -> Result<Hash> {
    /// Big enough for BLAKE3 to hash each chunk on all cores, small beside a batch of rows.
    const CHUNK: usize = 1 << 20;
    let mut file = File::open(path).map_err(StoreError::io(path))?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(StoreError::Io { path: path.to_path_buf(), source: e }),
        };
        hasher.update_rayon(&buf[..n]);
    }
    Ok(hasher.finalize().into())
}

fn missing_or_io(hash: &Hash, path: &Path, e: std::io::Error) -> StoreError {
    if e.kind() == std::io::ErrorKind::NotFound {
        StoreError::Missing(*hash)
    } else {
        StoreError::Io { path: path.to_path_buf(), source: e }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, LocalObjects) {
        let dir = tempfile::tempdir().unwrap();
        let objects = LocalObjects::open(dir.path().join("objects"), dir.path().join("tmp")).unwrap();
        (dir, objects)
    }

    #[test]
    fn put_read_and_dedupe() {
        let (_d, s) = store();
        let h = s.put_bytes(b"hello").unwrap();
        assert_eq!(h, Hash::of(b"hello"));
        assert_eq!(s.read(&h).unwrap(), b"hello");
        assert!(s.stage_bytes(b"hello").unwrap().existed());
        assert_eq!(s.list().unwrap(), vec![h]);
    }

    #[test]
    fn the_loose_listing_never_vouches_for_an_object_that_is_gone() {
        let (_d, s) = store();
        let h = s.put_bytes(b"listed").unwrap();
        assert!(s.stage_bytes(b"listed").unwrap().existed());
        // Another process (gc) removes it after this one listed the shard: it is stored again.
        fs::remove_file(s.path(&h)).unwrap();
        let again = s.stage_bytes(b"listed").unwrap();
        assert!(!again.existed());
        s.commit(vec![again]).unwrap();
        assert_eq!(s.read(&h).unwrap(), b"listed");
        // Another process adds an object after the listing: stored twice at worst, never lost.
        let other = LocalObjects::open(s.root().to_path_buf(), s.tmp.clone()).unwrap();
        let h2 = other.put_bytes(b"from elsewhere").unwrap();
        let staged = s.stage_bytes(b"from elsewhere").unwrap();
        s.commit(vec![staged]).unwrap();
        assert_eq!(s.read(&h2).unwrap(), b"from elsewhere");
    }

    #[test]
    fn large_files_are_copied_and_hashed() {
        let (d, s) = store();
        let src = d.path().join("big");
        let data: Vec<u8> = (0..(SMALL_FILE as usize + 12345)).map(|i| (i % 251) as u8).collect();
        fs::write(&src, &data).unwrap();
        let seen = std::sync::atomic::AtomicU64::new(0);
        let (staged, _) = s
            .stage_file(&src, data.len() as u64, &|n| {
                seen.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            })
            .unwrap();
        assert_eq!(seen.into_inner(), data.len() as u64, "progress hears of every byte");
        assert_eq!(staged.hash, Hash::of(&data));
        let h = staged.hash;
        s.commit(vec![staged]).unwrap();
        assert_eq!(s.verify(&h).unwrap(), data.len() as u64);
        let out = d.path().join("out");
        s.copy_to(&h, &out, true).unwrap();
        assert_eq!(fs::read(&out).unwrap(), data);
    }

    /// Overwrite `needle` wherever it occurs in the store's files (loose or packed).
    fn tamper(root: &Path, needle: &[u8]) {
        for entry in fs::read_dir(root).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                tamper(&path, needle);
            } else {
                let mut bytes = fs::read(&path).unwrap();
                if let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) {
                    bytes[at] ^= 0xff;
                    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
                    fs::write(&path, bytes).unwrap();
                }
            }
        }
    }

    #[test]
    fn corruption_is_detected_on_every_read() {
        let (d, s) = store();
        let small = b"precious small object".to_vec();
        let large: Vec<u8> = (0..(PACK_MAX as usize + 10)).map(|i| (i % 253) as u8).collect();
        // Small objects are packed when a batch has enough of them.
        let mut batch: Vec<_> =
            (0..MIN_PACK).map(|i| s.stage_bytes(format!("filler {i}").as_bytes()).unwrap()).collect();
        batch.push(s.stage_bytes(&small).unwrap());
        s.commit(batch).unwrap();
        let hs = Hash::of(&small);
        let hl = s.put_bytes(&large).unwrap();
        assert!(s.path(&hl).is_file(), "large objects are loose files");
        assert!(!s.path(&hs).exists(), "small objects are packed");
        tamper(s.root(), &small);
        tamper(s.root(), &large[1000..1100]);
        for h in [hs, hl] {
            let fresh = LocalObjects::open(s.root(), d.path().join("tmp")).unwrap();
            for store in [&s, &fresh] {
                assert!(matches!(store.read(&h), Err(StoreError::Corrupt { .. })));
                assert!(matches!(store.verify(&h), Err(StoreError::Corrupt { .. })));
                let out = d.path().join("out");
                assert!(matches!(store.copy_to(&h, &out, true), Err(StoreError::Corrupt { .. })));
                assert!(!out.exists(), "a corrupt copy must not be left behind");
            }
        }
    }

    #[test]
    fn packs_are_shared_between_handles_and_collected() {
        let (d, s) = store();
        let objs: Vec<Vec<u8>> = (0..50).map(|i| format!("object {i}").into_bytes()).collect();
        let staged: Vec<_> = objs.iter().map(|o| s.stage_bytes(o).unwrap()).collect();
        s.commit(staged).unwrap();
        let other = LocalObjects::open(s.root(), d.path().join("tmp")).unwrap();
        assert_eq!(other.list().unwrap().len(), 50);
        assert_eq!(other.read(&Hash::of(b"object 7")).unwrap(), b"object 7");
        // Objects packed by another handle after this one loaded its index are still found.
        let late: Vec<_> = (0..MIN_PACK).map(|i| s.stage_bytes(format!("late {i}").as_bytes()).unwrap()).collect();
        s.commit(late).unwrap();
        assert_eq!(other.read(&Hash::of(b"late 3")).unwrap(), b"late 3");
        // A lone small object is stored loose.
        let lone = s.put_bytes(b"lone").unwrap();
        assert!(s.path(&lone).is_file());

        let dead: HashSet<Hash> = (0..25).map(|i| Hash::of(format!("object {i}").as_bytes())).collect();
        let (n, bytes) = other.remove(&dead).unwrap();
        assert_eq!(n, 25);
        assert_eq!(bytes, (0..25).map(|i| format!("object {i}").len() as u64).sum::<u64>());
        let fresh = LocalObjects::open(s.root(), d.path().join("tmp")).unwrap();
        assert_eq!(fresh.list().unwrap().len(), 25 + MIN_PACK + 1);
        assert!(!fresh.contains(&Hash::of(b"object 3")));
        assert_eq!(fresh.read(&Hash::of(b"object 30")).unwrap(), b"object 30");
    }

    #[test]
    fn gc_merges_many_packs() {
        let (_d, s) = store();
        for p in 0..(MAX_PACKS + 3) {
            let batch: Vec<_> =
                (0..MIN_PACK).map(|i| s.stage_bytes(format!("p{p} o{i}").as_bytes()).unwrap()).collect();
            s.commit(batch).unwrap();
        }
        let packs = || {
            fs::read_dir(s.root().join("pack"))
                .unwrap()
                .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".idx"))
                .count()
        };
        assert_eq!(packs(), MAX_PACKS + 3);
        let (n, _) = s.remove(&HashSet::new()).unwrap();
        assert_eq!(n, 0);
        assert_eq!(packs(), 1);
        assert_eq!(s.list().unwrap().len(), (MAX_PACKS + 3) * MIN_PACK);
        assert_eq!(s.read(&Hash::of(b"p7 o3")).unwrap(), b"p7 o3");
    }

    #[test]
    fn stream_writer_checks_expected_hash() {
        let (_d, s) = store();
        let mut w = s.writer().unwrap();
        w.write(b"abc").unwrap();
        assert!(matches!(w.finish(Hash::of(b"xyz")), Err(StoreError::RemoteCorrupt { .. })));
        let mut w = s.writer().unwrap();
        w.write(b"abc").unwrap();
        let staged = w.finish(Hash::of(b"abc")).unwrap();
        s.commit(vec![staged]).unwrap();
        assert!(s.contains(&Hash::of(b"abc")));
    }
}
