//! Remote object stores, all through the `object_store` crate and laid out like the local
//! store: large objects loose (`prefix/ab/cdef…`), small ones in packs (`prefix/packs/`, see
//! [`packs`]):
//! - an S3-compatible bucket, `s3://bucket/prefix` (endpoint and credentials from the usual
//!   `AWS_*` environment variables and files);
//! - a Google Cloud Storage bucket, `gs://bucket/prefix` (credentials from
//!   `GOOGLE_SERVICE_ACCOUNT` / `GOOGLE_APPLICATION_CREDENTIALS`, else the instance's metadata
//!   server; an emulator or another endpoint through the service account file's
//!   `gcs_base_url`);
//! - an Azure Blob container, `az://container/prefix`, also spelled `azure://…` and, as DVC and
//!   fsspec users write it, `abfs[s]://container@account.dfs.core.windows.net/prefix`
//!   (account and credentials from `AZURE_STORAGE_*`, else the managed identity; Azurite with
//!   `AZURE_STORAGE_USE_EMULATOR=true`, its address in `AZURITE_BLOB_STORAGE_URL`);
//! - an SSH server, `ssh://[user@]host[:port]/path`, over SFTP through the system's OpenSSH
//!   client (`~/.ssh/config`, the agent and known hosts; see [`crate::sftp`]);
//! - a directory, `file:///dir` or a plain path.
//!
//! Credentials never come from `kairo.yaml`: a URL carrying one (a password, a SAS token) is
//! refused with where it belongs instead.

use crate::error::{Result, StoreError};
use crate::objects::{LocalObjects, Staged};
use futures::{StreamExt, TryStreamExt};
use kairo_core::Hash;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload, WriteMultipart};
use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

mod gc;
mod packs;
pub use gc::Collected;
pub use packs::Sent;

/// Objects up to this size go up in one PUT; larger ones as a multipart upload.
const SINGLE_PUT: u64 = 16 << 20;
const PART: usize = 8 << 20;

/// A configured remote.
#[derive(Debug, Clone)]
pub struct Remote {
    url: String,
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    /// How a job elsewhere reaches an object without Kairo's credentials: signed URLs on S3,
    /// file paths for a directory.
    access: Access,
    /// The remote's pack indexes, once read ([`packs`]).
    packs: Arc<packs::Packs>,
    /// Where pack indexes are kept once fetched (they never change), if anywhere.
    index_cache: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone)]
enum Access {
    Signed(Arc<dyn object_store::signer::Signer>),
    Dir(std::path::PathBuf),
    /// No URL a job elsewhere could use without Kairo's credentials: an SSH server (kept for
    /// what only SFTP can do, such as finding a killed upload's hidden temporary files).
    Ssh(crate::sftp::SshStore),
}

/// A cloud remote's connection attempt gives up after this (the default waits for the OS).
const CONNECT: object_store::ClientConfigKey = object_store::ClientConfigKey::ConnectTimeout;
const CONNECT_TIMEOUT: &str = "10s";

/// Transient failures (5xx, throttling, a dropped connection) are retried three times with
/// backoff from 100 ms, within 2 minutes; object_store's default (ten times, 3 minutes) kept an
/// unreachable host's error from the user for most of a minute.
fn retries() -> object_store::RetryConfig {
    object_store::RetryConfig {
        max_retries: 3,
        retry_timeout: std::time::Duration::from_secs(120),
        ..Default::default()
    }
}

/// One step of [`Remote::probe`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProbeStep {
    /// `write`, `read`, `list`, `upload`, `download` or `delete`.
    pub what: &'static str,
    pub bytes: u64,
    pub seconds: f64,
    /// Why it failed (naming the remote and the cause), or None.
    pub error: Option<String>,
}

/// What went wrong talking to a remote, as far as an error's text tells (object_store reports
/// most HTTP failures as text with the status in it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    Auth,
    Network,
    Quota,
}

fn cause(text: &str) -> Option<Cause> {
    let t = text.to_ascii_lowercase();
    let has = |needles: &[&str]| needles.iter().any(|n| t.contains(n));
    if has(&[
        "401 unauthorized",
        "403 forbidden",
        "authenticationfailed",
        "accessdenied",
        "signaturedoesnotmatch",
        "invalidaccesskeyid",
        "permission denied",
        "unauthenticated",
        "error getting token",
        // A key file or key that cannot be used (object_store's GCS and Azure credentials).
        "service account file",
        "rsa key",
        "pem file",
        "unsupported key encoding",
        "invalid access key",
    ]) {
        Some(Cause::Auth)
    } else if has(&["429 too many", "slowdown", "quotaexceeded", "insufficientstorage", "507 insufficient"]) {
        Some(Cause::Quota)
    } else if has(&[
        "connection refused",
        "error sending request",
        "dns error",
        "timed out",
        "connect error",
        "failed to lookup address",
        "could not resolve hostname",
        "no route to host",
        "network is unreachable",
    ]) {
        Some(Cause::Network)
    } else {
        None
    }
}

/// An error talking to the remote at `url`, saying what kind of failure it is.
fn remote_error(url: &str, e: impl std::fmt::Display) -> StoreError {
    let text = e.to_string();
    // object_store's "Generic S3 error: " says nothing the remote's URL does not.
    let text = match text.strip_prefix("Generic ").and_then(|t| t.split_once(" error: ")) {
        Some((store, rest)) if !store.contains(' ') => rest.to_string(),
        _ => text,
    };
    let message = match cause(&text) {
        Some(Cause::Auth) => format!(
            "the remote refused the credentials ({}): {text}",
            parse_url(url).map(|p| credentials_hint(p.kind)).unwrap_or("check the credentials")
        ),
        Some(Cause::Network) => format!("cannot reach the remote (network): {text}"),
        Some(Cause::Quota) => format!("the remote is throttling or out of quota (retried): {text}"),
        None => text,
    };
    StoreError::Remote { url: url.to_string(), message }
}

/// Where a kind of remote takes its credentials from.
fn credentials_hint(kind: Kind) -> &'static str {
    match kind {
        Kind::S3 => "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or ~/.aws/credentials",
        Kind::Gcs => "GOOGLE_APPLICATION_CREDENTIALS or GOOGLE_SERVICE_ACCOUNT, or the machine's service account",
        Kind::Azure => {
            "AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_KEY, or a managed identity"
        }
        Kind::Ssh => "an SSH key: in the agent (SSH_AUTH_SOCK) or named by IdentityFile in ~/.ssh/config",
        Kind::Dir => "the directory's permissions",
    }
}

/// The object-store kinds a remote URL can name, by scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    S3,
    Gcs,
    Azure,
    Ssh,
    Dir,
}

impl Kind {
    /// How listings name it: `s3`, `gcs`, `azure`, `directory`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::S3 => "s3",
            Kind::Gcs => "gcs",
            Kind::Azure => "azure",
            Kind::Ssh => "ssh",
            Kind::Dir => "directory",
        }
    }
}

/// What a remote URL names: its kind, the bucket or container (an SSH server's host), the
/// account (Azure's `abfs://container@account…`), and the prefix inside it (an SSH server's
/// directory, absolute); for SSH also the login and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub kind: Kind,
    pub bucket: String,
    pub account: Option<String>,
    pub prefix: String,
    pub ssh: Option<crate::sftp::Target>,
}

/// Parse a remote URL; a directory path or `file://` URL is `Kind::Dir` with the path as
/// `prefix`. Refused: unknown schemes, a missing bucket, and credentials in the URL.
pub fn parse_url(url: &str) -> std::result::Result<Parsed, String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Ok(Parsed {
            kind: Kind::Dir,
            bucket: String::new(),
            account: None,
            prefix: url.to_string(),
            ssh: None,
        });
    };
    let kind = match scheme {
        "s3" => Kind::S3,
        "gs" | "gcs" => Kind::Gcs,
        "az" | "azure" | "abfs" | "abfss" => Kind::Azure,
        "ssh" | "sftp" => {
            if rest.contains('?') || rest.contains('#') {
                return Err("an ssh:// URL holds no query".to_string());
            }
            let target = crate::sftp::Target::parse(rest)?;
            return Ok(Parsed {
                kind: Kind::Ssh,
                bucket: target.host.clone(),
                account: target.user.clone(),
                prefix: target.root.clone(),
                ssh: Some(target),
            });
        }
        "file" => {
            return Ok(Parsed { kind: Kind::Dir, bucket: String::new(), account: None, prefix: rest.into(), ssh: None })
        }
        _ => {
            return Err(format!(
                "unsupported scheme `{scheme}://` (use s3://bucket/prefix, gs://bucket/prefix, \
                 az://container/prefix, ssh://[user@]host[:port]/path, file:///dir or a directory path)"
            ))
        }
    };
    let where_credentials_go = credentials_hint(kind);
    if rest.contains('?') || rest.contains('#') {
        return Err(format!(
            "a remote URL holds no query: credentials such as a SAS token belong in the environment \
             ({where_credentials_go}), never in kairo.yaml, which is committed"
        ));
    }
    let (authority, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let (bucket, account) = match authority.split_once('@') {
        // abfs://container@account.dfs.core.windows.net
        Some((container, host)) if kind == Kind::Azure && !container.contains(':') => {
            (container.to_string(), host.split('.').next().map(str::to_string).filter(|a| !a.is_empty()))
        }
        Some(_) => {
            return Err(format!(
                "a remote URL holds no user or password: credentials belong in the environment \
                 ({where_credentials_go}), never in kairo.yaml, which is committed"
            ))
        }
        None => (authority.to_string(), None),
    };
    if bucket.is_empty() {
        let what = if kind == Kind::Azure { "container" } else { "bucket" };
        return Err(format!("no {what} name (expected {scheme}://{what}/prefix)"));
    }
    Ok(Parsed { kind, bucket, account, prefix: prefix.trim_matches('/').to_string(), ssh: None })
}

impl Remote {
    /// Open a remote from its URL; relative directory paths are taken from `base`.
    pub fn open(url: &str, base: &Path) -> Result<Self> {
        let err = |message: String| remote_error(url, message);
        let parsed = parse_url(url).map_err(err)?;
        let signed = |store: Arc<dyn ObjectStore>, signer: Arc<dyn object_store::signer::Signer>| {
            let prefix = ObjectPath::parse(&parsed.prefix).map_err(|e| err(e.to_string()))?;
            Ok(Remote::with(url, store, prefix, Access::Signed(signer)))
        };
        match parsed.kind {
            Kind::S3 => {
                // The server checks each upload's SHA-256 (x-amz-checksum-sha256) before keeping it.
                let store = AmazonS3Builder::from_env()
                    .with_bucket_name(&parsed.bucket)
                    .with_checksum_algorithm(object_store::aws::Checksum::SHA256)
                    .with_retry(retries())
                    .with_config(object_store::aws::AmazonS3ConfigKey::Client(CONNECT), CONNECT_TIMEOUT)
                    .build()
                    .map_err(|e| err(e.to_string()))?;
                let store = Arc::new(store);
                return signed(store.clone(), store);
            }
            Kind::Gcs => {
                let builder = GoogleCloudStorageBuilder::from_env()
                    .with_bucket_name(&parsed.bucket)
                    .with_retry(retries())
                    .with_config(object_store::gcp::GoogleConfigKey::Client(CONNECT), CONNECT_TIMEOUT);
                let base = crate::gcs::base_url(&builder);
                let client = builder.build().map_err(|e| err(e.to_string()))?;
                let store =
                    crate::gcs::Gcs::new(client.clone(), &base, &parsed.bucket).map_err(|e| err(e.to_string()))?;
                return signed(Arc::new(store), Arc::new(client));
            }
            Kind::Azure => {
                let mut builder = MicrosoftAzureBuilder::from_env()
                    .with_container_name(&parsed.bucket)
                    .with_retry(retries())
                    .with_config(object_store::azure::AzureConfigKey::Client(CONNECT), CONNECT_TIMEOUT);
                if let Some(account) = &parsed.account {
                    builder = builder.with_account(account);
                }
                let store = Arc::new(builder.build().map_err(|e| err(e.to_string()))?);
                return signed(store.clone(), store);
            }
            Kind::Ssh => {
                let target = parsed.ssh.clone().ok_or_else(|| err("not an ssh:// URL".into()))?;
                let store = crate::sftp::SshStore::new(target);
                return Ok(Remote::with(url, Arc::new(store.clone()), ObjectPath::default(), Access::Ssh(store)));
            }
            Kind::Dir => {}
        }
        let dir = match url.strip_prefix("file://") {
            Some(p) => std::path::PathBuf::from(p),
            None => base.join(url),
        };
        std::fs::create_dir_all(&dir).map_err(StoreError::io(&dir))?;
        let store = LocalFileSystem::new_with_prefix(&dir).map_err(|e| err(e.to_string()))?;
        let dir = dir.canonicalize().map_err(StoreError::io(&dir))?;
        Ok(Remote::with(url, Arc::new(store), ObjectPath::default(), Access::Dir(dir)))
    }

    fn with(url: &str, store: Arc<dyn ObjectStore>, prefix: ObjectPath, access: Access) -> Self {
        Remote { url: url.to_string(), store, prefix, access, packs: Default::default(), index_cache: None }
    }

    /// Keep the pack indexes fetched from this remote in `dir` (they never change).
    pub fn with_index_cache(mut self, dir: std::path::PathBuf) -> Self {
        self.index_cache = Some(dir);
        self
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn object_path(&self, hash: &Hash) -> ObjectPath {
        let hex = hash.to_hex();
        self.prefix.child(&hex[..2]).child(&hex[2..])
    }

    fn error(&self, e: impl std::fmt::Display) -> StoreError {
        remote_error(&self.url, e)
    }

    /// The subset of `hashes` the remote lacks, loose or packed. One LIST per shard involved,
    /// `jobs` at a time, instead of one HEAD per object, and the pack indexes.
    pub async fn missing(&self, hashes: &[Hash], jobs: usize) -> Result<Vec<Hash>> {
        let mut by_shard: BTreeMap<String, Vec<Hash>> = BTreeMap::new();
        for h in hashes {
            by_shard.entry(h.to_hex()[..2].to_string()).or_default().push(*h);
        }
        let lists = futures::stream::iter(by_shard.into_iter().map(|(shard, wanted)| async move {
            let present = self.list_shard(&shard).await?;
            Ok::<_, StoreError>(wanted.into_iter().filter(|h| !present.contains(&h.to_hex()[2..])).collect::<Vec<_>>())
        }))
        .buffer_unordered(jobs.max(1))
        .try_collect::<Vec<_>>()
        .await?;
        let packs = self.load_packs().await?;
        Ok(lists.into_iter().flatten().filter(|h| !packs.contains(h)).collect())
    }

    /// True when `hash` is on the remote as a loose object (one HEAD).
    async fn has_loose(&self, hash: &Hash) -> Result<bool> {
        match self.store.head(&self.object_path(hash)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.error(e)),
        }
    }

    async fn list_shard(&self, shard: &str) -> Result<HashSet<String>> {
        let prefix = self.prefix.child(shard);
        let mut names = HashSet::new();
        let mut stream = self.store.list(Some(&prefix));
        while let Some(item) = stream.next().await {
            match item {
                Ok(meta) => {
                    if let Some(name) = meta.location.filename() {
                        names.insert(name.to_string());
                    }
                }
                Err(object_store::Error::NotFound { .. }) => break,
                Err(e) => return Err(self.error(e)),
            }
        }
        Ok(names)
    }

    /// Copy one local object of `size` bytes to the remote as a loose object, checking its
    /// bytes on the way.
    async fn upload_sized(&self, local: &LocalObjects, hash: Hash, size: u64) -> Result<u64> {
        if size <= SINGLE_PUT {
            let bytes = local.read(&hash)?;
            self.store.put(&self.object_path(&hash), PutPayload::from(bytes)).await.map_err(|e| self.error(e))?;
            return Ok(size);
        }
        self.put_file(&local.path(&hash), hash).await?;
        Ok(size)
    }

    /// Make any file a loose object of the remote (by its hash, read in chunks; a job elsewhere
    /// can be given its URL), sent only when the remote lacks it: returns its hash and size.
    pub async fn upload_file(&self, path: &Path) -> Result<(Hash, u64)> {
        let size = std::fs::metadata(path).map_err(StoreError::io(path))?.len();
        let hash = crate::objects::hash_file_streaming(path)?;
        if self.has_loose(&hash).await? {
            return Ok((hash, size));
        }
        self.put_file(path, hash).await?;
        Ok((hash, size))
    }

    /// Bytes as a loose object of the remote, sent only when the remote lacks them.
    pub async fn upload_bytes(&self, bytes: Vec<u8>) -> Result<Hash> {
        let hash = Hash::of(&bytes);
        if !self.has_loose(&hash).await? {
            self.store.put(&self.object_path(&hash), PutPayload::from(bytes)).await.map_err(|e| self.error(e))?;
        }
        Ok(hash)
    }

    /// Send the file at `path`, which must hash to `hash`: in one PUT when small, else as a
    /// multipart upload (aborted if the bytes read do not hash to it).
    async fn put_file(&self, path: &Path, hash: Hash) -> Result<()> {
        let location = self.object_path(&hash);
        let size = std::fs::metadata(path).map_err(StoreError::io(path))?.len();
        if size <= SINGLE_PUT {
            let bytes = std::fs::read(path).map_err(StoreError::io(path))?;
            let actual = Hash::of(&bytes);
            if actual != hash {
                return Err(StoreError::Corrupt { hash, actual, path: path.to_path_buf() });
            }
            self.store.put(&location, PutPayload::from(bytes)).await.map_err(|e| self.error(e))?;
            return Ok(());
        }
        let path = path.to_path_buf();
        let mut file = std::fs::File::open(&path).map_err(StoreError::io(&path))?;
        let upload = self.store.put_multipart(&location).await.map_err(|e| self.error(e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; PART];
        loop {
            let n = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(StoreError::Io { path, source: e });
                }
            };
            hasher.update(&buf[..n]);
            writer.wait_for_capacity(4).await.map_err(|e| self.error(e))?;
            writer.write(&buf[..n]);
        }
        let actual = Hash::from(hasher.finalize());
        if actual != hash {
            let _ = writer.abort().await;
            return Err(StoreError::Corrupt { hash, actual, path });
        }
        writer.finish().await.map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Fetch one object (loose or packed) into a staged local object, verifying its hash.
    pub async fn download(&self, local: &LocalObjects, hash: Hash) -> Result<Staged> {
        self.download_if_present(local, hash).await?.ok_or_else(|| self.absent(hash))
    }

    fn absent(&self, hash: Hash) -> StoreError {
        self.error(format!("object {hash} is not on the remote"))
    }

    /// [`Remote::download`], or None when the remote does not have `hash`.
    pub async fn download_if_present(&self, local: &LocalObjects, hash: Hash) -> Result<Option<Staged>> {
        match self.download_packed(local, hash).await? {
            Some(staged) => Ok(Some(staged)),
            None => self.download_loose_if_present(local, hash).await,
        }
    }

    async fn download_loose(&self, local: &LocalObjects, hash: Hash) -> Result<Staged> {
        self.download_loose_if_present(local, hash).await?.ok_or_else(|| self.absent(hash))
    }

    async fn download_loose_if_present(&self, local: &LocalObjects, hash: Hash) -> Result<Option<Staged>> {
        let result = match self.store.get(&self.object_path(&hash)).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.error(e)),
        };
        let mut stream = result.into_stream();
        let mut writer = local.writer()?;
        while let Some(chunk) = stream.next().await {
            writer.write(&chunk.map_err(|e| self.error(e))?)?;
        }
        writer.finish(hash).map(Some)
    }

    /// Where a job elsewhere reads `location` (GET) or writes it (PUT) for `valid`: a signed
    /// URL on S3, a `file://` path for a directory remote (a cluster sharing that filesystem).
    async fn access_url(&self, method: &str, location: &ObjectPath, valid: std::time::Duration) -> Result<String> {
        match &self.access {
            Access::Signed(signer) => {
                let method = if method == "PUT" { http::Method::PUT } else { http::Method::GET };
                let url = signer.signed_url(method, location, valid).await.map_err(|e| {
                    self.error(format!("cannot sign a URL for a job elsewhere to reach {location}: {e}"))
                })?;
                Ok(url.to_string())
            }
            Access::Dir(dir) => {
                let mut path = dir.clone();
                for part in location.parts() {
                    path.push(part.as_ref());
                }
                Ok(format!("file://{}", path.display()))
            }
            Access::Ssh(_) => Err(self.error(format!(
                "a job elsewhere (Ray) cannot reach {location} on an ssh:// remote without Kairo's login: \
                 give the project an s3://, gs:// or az:// remote, or a directory the cluster shares"
            ))),
        }
    }

    /// A URL a job can GET the object `hash` from for `valid`, without credentials.
    pub async fn object_url(&self, hash: Hash, valid: std::time::Duration) -> Result<String> {
        self.access_url("GET", &self.object_path(&hash), valid).await
    }

    fn staging_path(&self, name: &str) -> ObjectPath {
        self.prefix.child("staging").child(name)
    }

    /// A URL a job can PUT a staged result to (`staging/NAME`), for `valid`.
    pub async fn staging_url(&self, name: &str, valid: std::time::Duration) -> Result<String> {
        self.access_url("PUT", &self.staging_path(name), valid).await
    }

    /// The bytes a job staged under `name`.
    pub async fn staged(&self, name: &str) -> Result<Vec<u8>> {
        let got = self.store.get(&self.staging_path(name)).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => self.error(format!("nothing was staged as {name}")),
            e => self.error(e),
        })?;
        Ok(got.bytes().await.map_err(|e| self.error(e))?.to_vec())
    }

    /// The bytes a job staged under `name`, streamed into `out` (memory stays flat whatever
    /// their size): returns how many.
    pub async fn staged_into(&self, name: &str, out: &mut dyn std::io::Write) -> Result<u64> {
        let got = self.store.get(&self.staging_path(name)).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => self.error(format!("nothing was staged as {name}")),
            e => self.error(e),
        })?;
        let mut stream = got.into_stream();
        let mut n = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.error(e))?;
            out.write_all(&chunk).map_err(|e| self.error(format!("{name}: {e}")))?;
            n += chunk.len() as u64;
        }
        Ok(n)
    }

    /// Remove a staged result (after it was taken into the store).
    pub async fn unstage(&self, name: &str) -> Result<()> {
        match self.store.delete(&self.staging_path(name)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Write, read back, list and delete a probe object under `probe/` (a small one for the
    /// latency, then `size` bytes for the throughput): each step's outcome and duration, so
    /// `kairo remote test` can say what works. Stops at the first step that fails (after
    /// trying to delete what it wrote).
    pub async fn probe(&self, size: usize) -> Vec<ProbeStep> {
        let name = format!(
            "{:x}-{}",
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos(),
            std::process::id()
        );
        let small = self.prefix.child("probe").child(format!("{name}-small"));
        let large = self.prefix.child("probe").child(format!("{name}-large"));
        let payload: Vec<u8> = (0..size).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let mut steps = Vec::new();
        let timed = |what: &'static str, bytes: u64, started: std::time::Instant, r: Result<()>| ProbeStep {
            what,
            bytes,
            seconds: started.elapsed().as_secs_f64(),
            error: r.err().map(|e| e.to_string()),
        };
        let t = std::time::Instant::now();
        let r = self
            .store
            .put(&small, PutPayload::from(b"kairo probe".to_vec()))
            .await
            .map(|_| ())
            .map_err(|e| self.error(e));
        steps.push(timed("write", 11, t, r));
        if steps.last().is_some_and(|s| s.error.is_none()) {
            let t = std::time::Instant::now();
            let r = self.read_back(&small, b"kairo probe", "probe").await;
            steps.push(timed("read", 11, t, r));
        }
        if steps.last().is_some_and(|s| s.error.is_none()) {
            let t = std::time::Instant::now();
            let r = async {
                let listed: Vec<_> = self
                    .store
                    .list(Some(&self.prefix.child("probe")))
                    .try_collect()
                    .await
                    .map_err(|e| self.error(e))?;
                if !listed.iter().any(|m| m.location == small) {
                    return Err(self.error("the probe written is missing from the listing"));
                }
                Ok(())
            }
            .await;
            steps.push(timed("list", 0, t, r));
        }
        if steps.last().is_some_and(|s| s.error.is_none()) && size > 0 {
            let t = std::time::Instant::now();
            let r = async {
                let upload = self.store.put_multipart(&large).await.map_err(|e| self.error(e))?;
                let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
                writer.write(&payload);
                writer.finish().await.map_err(|e| self.error(e))?;
                Ok(())
            }
            .await;
            steps.push(timed("upload", size as u64, t, r));
            if steps.last().is_some_and(|s| s.error.is_none()) {
                let t = std::time::Instant::now();
                let r = self.read_back(&large, &payload, "large probe").await;
                steps.push(timed("download", size as u64, t, r));
            }
        }
        let t = std::time::Instant::now();
        let mut r = Ok(());
        for location in [&small, &large] {
            match self.store.delete(location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => r = Err(self.error(e)),
            }
        }
        steps.push(timed("delete", 0, t, r));
        steps
    }

    /// A probe read back, which must be what was written.
    async fn read_back(&self, location: &ObjectPath, expected: &[u8], what: &str) -> Result<()> {
        let got =
            self.store.get(location).await.map_err(|e| self.error(e))?.bytes().await.map_err(|e| self.error(e))?;
        if got.as_ref() != expected {
            return Err(self.error(format!("the {what} read back differs from what was written")));
        }
        Ok(())
    }

    /// Remove an object from the remote (tests use this to simulate loss).
    pub async fn delete(&self, hash: Hash) -> Result<()> {
        self.store.delete(&self.object_path(&hash)).await.map_err(|e| self.error(e))
    }

    /// Overwrite a remote object's bytes (tests use this to simulate corruption).
    pub async fn put_raw(&self, hash: Hash, bytes: Vec<u8>) -> Result<()> {
        self.store.put(&self.object_path(&hash), PutPayload::from(bytes)).await.map(|_| ()).map_err(|e| self.error(e))
    }
}
