//! SSH remotes, `ssh://[user@]host[:port]/path`: objects are files under `path` on a server
//! reached over SFTP through the system's OpenSSH client, so `~/.ssh/config`, the agent and
//! known hosts work as they do for `ssh` itself. `KAIRO_SSH_COMMAND` replaces the `ssh` command
//! (like `GIT_SSH_COMMAND`, split on whitespace: `ssh -F /path/to/config`).
//!
//! Kairo always adds `BatchMode=yes` (no prompt can hang a push) and
//! `StrictHostKeyChecking=yes`: an unknown or changed host key is an error that says how to
//! check and trust it, never accepted silently, whatever the user's config says.
//!
//! A write goes to a temporary name next to the object and is renamed into place, so a reader
//! (or an interrupted push) never sees half an object.

use bytes::{Bytes, BytesMut};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result, UploadPart,
};
use openssh_sftp_client::error::SftpErrorKind;
use openssh_sftp_client::file::File;
use openssh_sftp_client::{Error as SftpError, Sftp, SftpOptions};
use std::collections::HashSet;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::AsyncSeek;

const STORE: &str = "SSH";
/// Reads in flight per download: SFTP answers each in turn, so pipelining hides the latency.
const READS_IN_FLIGHT: usize = 32;
/// One read request's size: OpenSSH's sftp-server answers at most 255 KiB per read.
const READ_SIZE: u64 = 255 << 10;
/// In the name of an upload's temporary file (`.NAME.kairo-tmp-PID-N`, hidden from listings).
const TEMP_MARK: &str = ".kairo-tmp-";
/// The pipe from ssh's output (Linux's default is 64 KiB).
const PIPE_SIZE: usize = 1 << 20;

fn generic(message: impl Into<String>) -> object_store::Error {
    object_store::Error::Generic { store: STORE, source: message.into().into() }
}

/// Where an `ssh://` URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    /// The directory on the server, absolute.
    pub root: String,
}

impl Target {
    /// `[user@]host[:port]` and the path after it (an `ssh://` URL without its scheme).
    pub fn parse(rest: &str) -> std::result::Result<Target, String> {
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((user, _)) if user.contains(':') => {
                return Err("an ssh:// URL holds no password: use a key, in the agent or named by IdentityFile \
                            in ~/.ssh/config; kairo.yaml is committed"
                    .to_string())
            }
            Some((user, host)) => (Some(user.to_string()), host),
            None => (None, authority),
        };
        let (host, port) = if let Some(inner) = hostport.strip_prefix('[') {
            // [::1]:2222
            let (host, after) = inner.split_once(']').ok_or("an IPv6 host is written [addr]:port")?;
            (host, after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err("no host name (expected ssh://[user@]host[:port]/path)".to_string());
        }
        let port = match port {
            Some(p) => Some(p.parse::<u16>().map_err(|_| format!("`{p}` is not a port number"))?),
            None => None,
        };
        let root = path.trim_end_matches('/');
        Ok(Target {
            user: user.filter(|u| !u.is_empty()),
            host: host.to_string(),
            port,
            root: if root.is_empty() { "/".to_string() } else { root.to_string() },
        })
    }

    /// `host` or `[host]:port`, as known_hosts and ssh-keygen -R name it.
    fn known_hosts_name(&self) -> String {
        match self.port {
            Some(p) if p != 22 => format!("[{}]:{p}", self.host),
            _ => self.host.clone(),
        }
    }

    /// The `ssh` command line that starts the SFTP subsystem.
    fn command(&self) -> tokio::process::Command {
        let configured = std::env::var("KAIRO_SSH_COMMAND").unwrap_or_default();
        let mut words = configured.split_whitespace();
        let program = words.next().unwrap_or("ssh");
        let mut cmd = tokio::process::Command::new(program);
        // First: ssh keeps the first value it is given for an option, so neither the command's
        // own options nor a config file can turn these off.
        cmd.args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]);
        cmd.args(words);
        cmd.args(["-o", "ConnectTimeout=10"]);
        if let Some(port) = self.port {
            cmd.arg("-p").arg(port.to_string());
        }
        if let Some(user) = &self.user {
            cmd.arg("-l").arg(user);
        }
        cmd.arg("-s").arg(&self.host).arg("sftp");
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// What `ssh`'s complaint means and what to do about it.
    fn explain(&self, stderr: &str) -> String {
        let lines: Vec<&str> = stderr
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('@') && !l.starts_with("Warning: Permanently added"))
            .collect();
        let said = lines.iter().rev().take(3).rev().cloned().collect::<Vec<_>>().join(" / ");
        let name = self.known_hosts_name();
        let port = self.port.map(|p| format!("-p {p} ")).unwrap_or_default();
        let login = match &self.user {
            Some(u) => format!("{u}@{}", self.host),
            None => self.host.clone(),
        };
        if stderr.contains("IDENTIFICATION HAS CHANGED") || stderr.contains("has changed and you have requested") {
            format!(
                "the host key of {name} does not match the one in known_hosts: someone may be intercepting \
                 the connection, or the server's key was replaced. Ask the server's administrator for its \
                 key fingerprint; only if it really changed, remove the old key with `ssh-keygen -R '{name}'` \
                 and trust the new one with `ssh-keyscan {port}{} >> ~/.ssh/known_hosts` after comparing \
                 fingerprints (ssh said: {said})",
                self.host
            )
        } else if stderr.contains("host key is known") || stderr.contains("Host key verification failed") {
            format!(
                "{name} is not a known host (no key for it in known_hosts), and Kairo never trusts a host key \
                 silently. Check its fingerprint with the server's administrator, then trust it: connect once \
                 with `ssh {port}{login}`, or run `ssh-keyscan {port}{} >> ~/.ssh/known_hosts` (ssh said: {said})",
                self.host
            )
        } else if said.is_empty() {
            "ssh ended before the SFTP session started, and said nothing".to_string()
        } else if said.starts_with("ssh:") {
            said
        } else {
            format!("ssh: {said}")
        }
    }
}

struct Conn {
    sftp: Sftp,
    /// Directories known to exist (made or seen), so a push makes each once.
    dirs: Mutex<HashSet<String>>,
    _child: tokio::process::Child,
}

/// An SFTP directory as an object store (shared with the futures of lists and uploads).
#[derive(Debug, Clone)]
pub(crate) struct SshStore(Arc<Inner>);

struct Inner {
    target: Target,
    conn: tokio::sync::OnceCell<Conn>,
    temp_names: AtomicU64,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshStore").field("target", &self.target).finish()
    }
}

impl std::fmt::Display for SshStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SSH({}:{})", self.0.target.host, self.0.target.root)
    }
}

fn not_found(path: &str, e: impl std::fmt::Display) -> object_store::Error {
    object_store::Error::NotFound { path: path.to_string(), source: e.to_string().into() }
}

/// What a listing or a read says of a file: its size and modification time.
fn object_meta(location: Path, meta: &openssh_sftp_client::metadata::MetaData) -> ObjectMeta {
    ObjectMeta {
        location,
        last_modified: meta
            .modified()
            .map(|t| chrono::DateTime::<chrono::Utc>::from(t.as_system_time()))
            .unwrap_or_default(),
        size: meta.len().unwrap_or(0),
        e_tag: None,
        version: None,
    }
}

fn is_missing(e: &SftpError) -> bool {
    matches!(e, SftpError::SftpError(SftpErrorKind::NoSuchFile, _))
}

impl SshStore {
    /// The temporary files of uploads that never finished (a killed push), anywhere under the
    /// root, last written before `cutoff`: removed unless `dry_run`. Returns how many, and
    /// their bytes. Listings hide these files, so only this finds them.
    pub(crate) async fn remove_stale_temps(&self, cutoff: std::time::SystemTime, dry_run: bool) -> Result<(u64, u64)> {
        let me = &self.0;
        let conn = me.conn().await?;
        let mut pending = vec![me.path(&Path::default())];
        let (mut files, mut bytes) = (0u64, 0u64);
        while let Some(dir) = pending.pop() {
            let Some(entries) = me.entries(conn, &dir).await? else { continue };
            let mut fs = conn.sftp.fs();
            for entry in entries {
                let name = entry.filename().to_string_lossy().to_string();
                let path = format!("{}/{name}", dir.trim_end_matches('/'));
                let meta = entry.metadata();
                match meta.file_type() {
                    Some(t) if t.is_dir() && !name.starts_with('.') => pending.push(path),
                    Some(t) if t.is_file() && name.starts_with('.') && name.contains(TEMP_MARK) => {
                        if meta.modified().is_none_or(|m| m.as_system_time() >= cutoff) {
                            continue;
                        }
                        files += 1;
                        bytes += meta.len().unwrap_or(0);
                        if !dry_run {
                            match fs.remove_file(&path).await {
                                Ok(()) => {}
                                Err(e) if is_missing(&e) => {}
                                Err(e) => return Err(me.failed("cannot delete", &path, e)),
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok((files, bytes))
    }

    pub(crate) fn new(target: Target) -> Self {
        SshStore(Arc::new(Inner { target, conn: tokio::sync::OnceCell::new(), temp_names: AtomicU64::new(0) }))
    }
}

impl Inner {
    /// The session, started on first use: a failure to start names its cause from what `ssh`
    /// printed (unknown or changed host key, refused key, unreachable host).
    async fn conn(&self) -> Result<&Conn> {
        self.conn
            .get_or_try_init(|| async {
                let mut cmd = self.target.command();
                let mut child = cmd.spawn().map_err(|e| {
                    let program = cmd.as_std().get_program().to_string_lossy().to_string();
                    generic(if std::env::var_os("KAIRO_SSH_COMMAND").is_some() {
                        format!("cannot run `{program}`, the command KAIRO_SSH_COMMAND names: {e}")
                    } else {
                        format!("cannot run `{program}` ({e}): install the OpenSSH client, or set KAIRO_SSH_COMMAND")
                    })
                })?;
                let (stdin, stdout) = (child.stdin.take(), child.stdout.take());
                // What ssh says (kept up to 16 KiB) explains a session that fails to start.
                let stderr = child.stderr.take();
                let said = Arc::new(Mutex::new(String::new()));
                let reader = {
                    let said = said.clone();
                    tokio::spawn(async move {
                        use tokio::io::AsyncReadExt;
                        let Some(mut stderr) = stderr else { return };
                        let mut buf = vec![0u8; 4096];
                        while let Ok(n @ 1..) = stderr.read(&mut buf).await {
                            if let Ok(mut s) = said.lock() {
                                if s.len() < 16 << 10 {
                                    s.push_str(&String::from_utf8_lossy(&buf[..n]));
                                }
                            }
                        }
                    })
                };
                let (Some(stdin), Some(stdout)) = (stdin, stdout) else {
                    return Err(generic("ssh started without pipes"));
                };
                // A larger pipe lets ssh hand over more of a download per wake-up (the kernel
                // may refuse: then the default stays).
                let _ = rustix::pipe::fcntl_setpipe_size(&stdout, PIPE_SIZE);
                let options = SftpOptions::new().flush_interval(std::time::Duration::ZERO).responses_buffer_size(
                    std::num::NonZeroUsize::new(64 << 10).unwrap_or(std::num::NonZeroUsize::MIN),
                );
                match Sftp::new(stdin, stdout, options).await {
                    Ok(sftp) => Ok(Conn { sftp, dirs: Mutex::new(HashSet::new()), _child: child }),
                    Err(e) => {
                        let _ = tokio::time::timeout(std::time::Duration::from_secs(15), child.wait()).await;
                        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), reader).await;
                        let stderr = said.lock().map(|s| s.clone()).unwrap_or_default();
                        let explained = self.target.explain(&stderr);
                        Err(generic(if stderr.trim().is_empty() { format!("{explained} ({e})") } else { explained }))
                    }
                }
            })
            .await
    }

    fn path(&self, location: &Path) -> String {
        let root = self.target.root.trim_end_matches('/');
        if location.as_ref().is_empty() {
            return if root.is_empty() { "/".into() } else { root.into() };
        }
        format!("{root}/{}", location.as_ref())
    }

    fn failed(&self, what: &str, path: &str, e: SftpError) -> object_store::Error {
        match &e {
            SftpError::SftpError(SftpErrorKind::NoSuchFile, _) => not_found(path, e),
            SftpError::SftpError(SftpErrorKind::PermDenied, _) => generic(format!(
                "{what} {path} on {}: the server's file permissions do not allow it for this login",
                self.target.host
            )),
            _ => generic(format!("{what} {path} on {}: {e}", self.target.host)),
        }
    }

    /// Make `dir` and its parents (as `mkdir -p`), remembering what exists.
    async fn make_dirs(&self, conn: &Conn, dir: &str) -> Result<()> {
        if conn.dirs.lock().map(|d| d.contains(dir)).unwrap_or(false) {
            return Ok(());
        }
        let mut fs = conn.sftp.fs();
        let mut at = String::new();
        for part in dir.split('/').filter(|p| !p.is_empty()) {
            at.push('/');
            at.push_str(part);
            if conn.dirs.lock().map(|d| d.contains(&at)).unwrap_or(false) {
                continue;
            }
            if let Err(e) = fs.create_dir(&at).await {
                // It may exist already (SFTP says only "Failure"); anything else shows on stat.
                match fs.metadata(&at).await {
                    Ok(m) if m.file_type().is_some_and(|t| t.is_dir()) => {}
                    _ => return Err(self.failed("cannot make the directory", &at, e)),
                }
            }
            if let Ok(mut d) = conn.dirs.lock() {
                d.insert(at.clone());
            }
        }
        Ok(())
    }

    /// A new temporary name beside `path`, hidden from listings.
    fn temp_for(&self, path: &str) -> String {
        let n = self.temp_names.fetch_add(1, Ordering::Relaxed);
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        format!("{dir}/.{name}{TEMP_MARK}{}-{n}", std::process::id())
    }

    /// Create the temporary file for `path` (making its directory when missing).
    async fn create_temp(&self, conn: &Conn, path: &str) -> Result<(String, File)> {
        let temp = self.temp_for(path);
        let file = match conn.sftp.create(&temp).await {
            Ok(f) => f,
            Err(e) if is_missing(&e) => {
                let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("/");
                self.make_dirs(conn, dir).await?;
                conn.sftp.create(&temp).await.map_err(|e| self.failed("cannot write", &temp, e))?
            }
            Err(e) => return Err(self.failed("cannot write", &temp, e)),
        };
        Ok((temp, file))
    }

    /// Move a finished temporary file to its name (replacing what was there).
    async fn publish(&self, conn: &Conn, temp: &str, path: &str) -> Result<()> {
        let mut fs = conn.sftp.fs();
        if let Err(e) = fs.rename(temp, path).await {
            let _ = fs.remove_file(temp).await;
            return Err(self.failed("cannot rename into place", path, e));
        }
        Ok(())
    }

    /// A directory's entries (`.` and `..` included); None when there is no such directory.
    async fn entries(&self, conn: &Conn, path: &str) -> Result<Option<Vec<openssh_sftp_client::fs::DirEntry>>> {
        let handle = match conn.sftp.fs().open_dir(path).await {
            Ok(h) => h,
            Err(e) if is_missing(&e) => return Ok(None),
            Err(e) => return Err(self.failed("cannot list", path, e)),
        };
        let entries = handle.read_dir().try_collect().await.map_err(|e| self.failed("cannot list", path, e))?;
        Ok(Some(entries))
    }

    async fn walk(&self, conn: &Conn, dir: Path, recursive: bool, out: &mut ListResult) -> Result<()> {
        let mut pending = vec![dir];
        while let Some(dir) = pending.pop() {
            let Some(entries) = self.entries(conn, &self.path(&dir)).await? else { continue };
            for entry in entries {
                let name = entry.filename().to_string_lossy().to_string();
                if name.starts_with('.') {
                    continue; // ".", "..", and temporary files
                }
                let location = dir.child(name.as_str());
                let meta = entry.metadata();
                match meta.file_type() {
                    Some(t) if t.is_dir() => {
                        if recursive {
                            pending.push(location);
                        } else {
                            out.common_prefixes.push(location);
                        }
                    }
                    Some(t) if t.is_file() => out.objects.push(object_meta(location, &meta)),
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl ObjectStore for SshStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        if !matches!(opts.mode, PutMode::Overwrite) {
            return Err(object_store::Error::NotImplemented);
        }
        let me = &self.0;
        let conn = me.conn().await?;
        let path = me.path(location);
        let (temp, mut file) = me.create_temp(conn, &path).await?;
        let mut chunks: Vec<Bytes> = payload.into_iter().filter(|b| !b.is_empty()).collect();
        if let Err(e) = file.write_all_zero_copy(&mut chunks).await {
            let _ = conn.sftp.fs().remove_file(&temp).await;
            return Err(me.failed("cannot write", &path, e));
        }
        file.close().await.map_err(|e| me.failed("cannot write", &path, e))?;
        me.publish(conn, &temp, &path).await?;
        Ok(PutResult { e_tag: None, version: None })
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        _opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let me = &self.0;
        let conn = me.conn().await?;
        let path = me.path(location);
        let (temp, file) = me.create_temp(conn, &path).await?;
        Ok(Box::new(Upload { store: self.0.clone(), path, temp, file, next: 0 }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let me = &self.0;
        let conn = me.conn().await?;
        let path = me.path(location);
        let mut file = conn.sftp.open(&path).await.map_err(|e| me.failed("cannot read", &path, e))?;
        let meta = file.metadata().await.map_err(|e| me.failed("cannot read", &path, e))?;
        if meta.file_type().is_some_and(|t| t.is_dir()) {
            return Err(not_found(&path, "is a directory"));
        }
        let object = object_meta(location.clone(), &meta);
        let size = object.size;
        let range = match &options.range {
            Some(r) => r.as_range(size).map_err(|e| generic(format!("{path}: {e}")))?,
            None => 0..size,
        };
        let step = READ_SIZE;
        let offsets: Vec<u64> =
            if options.head { Vec::new() } else { (range.start..range.end).step_by(step as usize).collect() };
        let end = range.end;
        let host = me.target.host.clone();
        let stream = futures::stream::iter(offsets)
            .map(move |offset| {
                let mut f = file.clone();
                let want = step.min(end - offset);
                let (path, host) = (path.clone(), host.clone());
                async move {
                    read_at(&mut f, offset, want)
                        .await
                        .map_err(|e| generic(format!("cannot read {path} on {host}: {e}")))
                }
            })
            .buffered(READS_IN_FLIGHT)
            .boxed();
        Ok(GetResult { payload: GetResultPayload::Stream(stream), meta: object, range, attributes: Default::default() })
    }

    async fn delete(&self, location: &Path) -> Result<()> {
        let me = &self.0;
        let conn = me.conn().await?;
        let path = me.path(location);
        match conn.sftp.fs().remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if is_missing(&e) => Ok(()),
            Err(e) => Err(me.failed("cannot delete", &path, e)),
        }
    }

    fn list(&self, prefix: Option<&Path>) -> futures::stream::BoxStream<'static, Result<ObjectMeta>> {
        let me = self.0.clone();
        let prefix = prefix.cloned().unwrap_or_default();
        futures::stream::once(async move {
            let conn = me.conn().await?;
            let mut out = ListResult { common_prefixes: Vec::new(), objects: Vec::new() };
            me.walk(conn, prefix, true, &mut out).await?;
            Ok::<_, object_store::Error>(futures::stream::iter(out.objects.into_iter().map(Ok)))
        })
        .try_flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let me = &self.0;
        let conn = me.conn().await?;
        let mut out = ListResult { common_prefixes: Vec::new(), objects: Vec::new() };
        me.walk(conn, prefix.cloned().unwrap_or_default(), false, &mut out).await?;
        Ok(out)
    }

    async fn copy(&self, from: &Path, to: &Path) -> Result<()> {
        let bytes = self.get(from).await?.bytes().await?;
        self.put(to, PutPayload::from(bytes)).await.map(|_| ())
    }

    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> Result<()> {
        match self.head(to).await {
            Ok(_) => Err(object_store::Error::AlreadyExists { path: to.to_string(), source: "exists".into() }),
            Err(object_store::Error::NotFound { .. }) => self.copy(from, to).await,
            Err(e) => Err(e),
        }
    }
}

/// `want` bytes at `offset` (fewer only at the end of the file).
async fn read_at(file: &mut File, offset: u64, want: u64) -> std::result::Result<Bytes, SftpError> {
    Pin::new(&mut *file).start_seek(std::io::SeekFrom::Start(offset))?;
    let mut out = match file.read(want as u32, BytesMut::with_capacity(want as usize)).await? {
        // The usual case: the whole range in one answer, handed on without a copy.
        Some(got) if got.len() as u64 == want => return Ok(got.freeze()),
        Some(got) if !got.is_empty() => got,
        _ => return Ok(Bytes::new()),
    };
    while (out.len() as u64) < want {
        Pin::new(&mut *file).start_seek(std::io::SeekFrom::Start(offset + out.len() as u64))?;
        let left = (want - out.len() as u64) as u32;
        match file.read(left, BytesMut::with_capacity(left as usize)).await? {
            Some(got) if !got.is_empty() => out.extend_from_slice(&got),
            _ => break,
        }
    }
    Ok(out.freeze())
}

/// A file written part by part at its offsets (parts may be in flight together), renamed
/// into place on `complete`.
#[derive(Debug)]
struct Upload {
    store: Arc<Inner>,
    path: String,
    temp: String,
    file: File,
    next: u64,
}

#[async_trait::async_trait]
impl MultipartUpload for Upload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let mut file = self.file.clone();
        let offset = self.next;
        self.next += data.content_length() as u64;
        let (store, path) = (self.store.clone(), self.path.clone());
        Box::pin(async move {
            Pin::new(&mut file)
                .start_seek(std::io::SeekFrom::Start(offset))
                .map_err(|e| generic(format!("cannot write {path}: {e}")))?;
            let mut chunks: Vec<Bytes> = data.into_iter().filter(|b| !b.is_empty()).collect();
            file.write_all_zero_copy(&mut chunks).await.map_err(|e| store.failed("cannot write", &path, e))
        })
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let conn = self.store.conn().await?;
        let file = self.file.clone();
        file.close().await.map_err(|e| self.store.failed("cannot write", &self.path, e))?;
        self.store.publish(conn, &self.temp, &self.path).await?;
        Ok(PutResult { e_tag: None, version: None })
    }

    async fn abort(&mut self) -> Result<()> {
        let conn = self.store.conn().await?;
        match conn.sftp.fs().remove_file(&self.temp).await {
            Ok(()) => Ok(()),
            Err(e) if is_missing(&e) => Ok(()),
            Err(e) => Err(self.store.failed("cannot remove", &self.temp, e)),
        }
    }
}
