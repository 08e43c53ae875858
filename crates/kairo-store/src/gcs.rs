//! Google Cloud Storage remotes: reads, lists and deletes go through `object_store`'s GCS
//! client; uploads go through the JSON API (one `uploadType=media` request for an object that
//! fits in memory, a resumable session for a large one), which real GCS and the fake-gcs-server
//! emulator both serve. `object_store` uploads through the XML API's `PUT /bucket/object`,
//! which the emulator on PyPI does not have, so the path users take would otherwise be
//! untestable here.

use bytes::{Bytes, BytesMut};
use object_store::gcp::{GoogleCloudStorage, GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMode, PutMultipartOptions,
    PutOptions, PutPayload, PutResult, Result, UploadPart,
};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const STORE: &str = "GCS";
/// A resumable session's chunks are multiples of this (GCS's rule), except the last.
const CHUNK: usize = 256 << 10;
/// A resumable session's chunk is sent once this much is queued (as Google's Python client
/// does): every chunk is a round trip, and the emulator copies the whole upload so far for
/// each one (8 MiB chunks made a 1 GiB upload 6.7× slower than this).
const SESSION_CHUNK: usize = 100 << 20;
/// Transient failures (a dropped connection, 429, 5xx) are retried this many times.
const RETRIES: u32 = 3;

/// Where the bucket's API lives: the service account file's `gcs_base_url` (an emulator or a
/// sovereign cloud), as `object_store` reads it, else Google's public endpoint.
pub(crate) fn base_url(builder: &GoogleCloudStorageBuilder) -> String {
    let key = match (
        builder.get_config_value(&GoogleConfigKey::ServiceAccount),
        builder.get_config_value(&GoogleConfigKey::ServiceAccountKey),
    ) {
        (Some(path), _) => std::fs::read_to_string(path).ok(),
        (None, key) => key,
    };
    key.and_then(|k| serde_json::from_str::<serde_json::Value>(&k).ok())
        .and_then(|v| v.get("gcs_base_url")?.as_str().map(str::to_string))
        .unwrap_or_else(|| "https://storage.googleapis.com".to_string())
        .trim_end_matches('/')
        .to_string()
}

fn generic(message: impl Into<String>) -> object_store::Error {
    object_store::Error::Generic { store: STORE, source: message.into().into() }
}

/// A GCS bucket whose uploads use the JSON API.
#[derive(Debug)]
pub(crate) struct Gcs {
    inner: GoogleCloudStorage,
    /// `{base}/upload/storage/v1/b/{bucket}/o`
    uploads: String,
    bucket: String,
    http: reqwest::Client,
}

impl std::fmt::Display for Gcs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GCS(bucket {}, JSON API uploads)", self.bucket)
    }
}

impl Gcs {
    pub(crate) fn new(inner: GoogleCloudStorage, base: &str, bucket: &str) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| generic(format!("cannot build the HTTP client: {e}")))?;
        let uploads = format!("{base}/upload/storage/v1/b/{}/o", url_segment(bucket));
        Ok(Gcs { inner, uploads, bucket: bucket.to_string(), http })
    }

    async fn token(&self) -> Result<Option<String>> {
        let credential = self.inner.credentials().get_credential().await?;
        Ok((!credential.bearer.is_empty()).then(|| credential.bearer.clone()))
    }
}

fn url_segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>().replace('+', "%20")
}

/// Send a request (rebuilt for each attempt), retrying a dropped connection, 429 and 5xx with
/// backoff from 100 ms. Returns the last response whatever its status.
async fn send(
    what: &str,
    token: &Option<String>,
    make: impl Fn() -> reqwest::RequestBuilder,
) -> Result<reqwest::Response> {
    let mut attempt = 0;
    loop {
        let mut request = make();
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status();
                if attempt >= RETRIES || !(status.as_u16() == 429 || status.is_server_error()) {
                    return Ok(response);
                }
            }
            Err(e) if attempt < RETRIES && (e.is_connect() || e.is_timeout() || e.is_request()) => {}
            Err(e) => return Err(generic(format!("{what}: error sending request: {e}"))),
        }
        attempt += 1;
        tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
    }
}

/// An error for a response that is not what `what` expected, with the status and GCS's message.
async fn refused(what: &str, location: &str, response: reqwest::Response) -> object_store::Error {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.pointer("/error/message")?.as_str().map(str::to_string))
        .unwrap_or_else(|| body.chars().take(300).collect());
    if status == reqwest::StatusCode::NOT_FOUND {
        return object_store::Error::NotFound {
            path: location.to_string(),
            source: format!("{what}: {status}: {message}").into(),
        };
    }
    generic(format!("{what} {location}: {status}: {message}"))
}

#[async_trait::async_trait]
impl ObjectStore for Gcs {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        if !matches!(opts.mode, PutMode::Overwrite) {
            return self.inner.put_opts(location, payload, opts).await;
        }
        let token = self.token().await?;
        let body = Bytes::from(payload);
        let name = location.as_ref();
        let response = send("upload", &token, || {
            self.http
                .post(&self.uploads)
                .query(&[("uploadType", "media"), ("name", name)])
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(body.clone())
        })
        .await?;
        if !response.status().is_success() {
            return Err(refused("upload", name, response).await);
        }
        Ok(PutResult { e_tag: None, version: None })
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        _opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let token = self.token().await?;
        let name = location.as_ref();
        let response = send("start a resumable upload of", &token, || {
            self.http
                .post(&self.uploads)
                .query(&[("uploadType", "resumable"), ("name", name)])
                .header("X-Upload-Content-Type", "application/octet-stream")
                .header(reqwest::header::CONTENT_LENGTH, "0")
        })
        .await?;
        if !response.status().is_success() {
            return Err(refused("start a resumable upload of", name, response).await);
        }
        let session = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| generic(format!("GCS started an upload of {name} without a session URL")))?
            .to_string();
        Ok(Box::new(Resumable(Arc::new(Session {
            http: self.http.clone(),
            url: session,
            name: name.to_string(),
            token,
            pending: Mutex::new(Vec::new()),
            sent: tokio::sync::Mutex::new(0),
        }))))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn delete(&self, location: &Path) -> Result<()> {
        self.inner.delete(location).await
    }

    fn list(&self, prefix: Option<&Path>) -> futures::stream::BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy(&self, from: &Path, to: &Path) -> Result<()> {
        self.inner.copy(from, to).await
    }

    async fn copy_if_not_exists(&self, from: &Path, to: &Path) -> Result<()> {
        self.inner.copy_if_not_exists(from, to).await
    }
}

/// A resumable upload session. Parts are queued in the order `put_part` is called and sent
/// one chunk at a time (a session takes its bytes in order) once 100 MiB are queued, in
/// multiples of 256 KiB; the rest goes with `complete`.
#[derive(Debug)]
struct Resumable(Arc<Session>);

#[derive(Debug)]
struct Session {
    http: reqwest::Client,
    url: String,
    name: String,
    token: Option<String>,
    pending: Mutex<Vec<Bytes>>,
    /// Bytes the session has taken; held while a chunk is in flight.
    sent: tokio::sync::Mutex<u64>,
}

impl Session {
    /// Send what is queued: the whole multiples of 256 KiB, or everything when `last`.
    async fn flush(&self, last: bool) -> Result<()> {
        let mut sent = self.sent.lock().await;
        let chunk = {
            let mut pending = self.pending.lock().map_err(|_| generic("upload state poisoned"))?;
            let queued: usize = pending.iter().map(Bytes::len).sum();
            if !last && queued < SESSION_CHUNK {
                return Ok(());
            }
            let n = if last { queued } else { queued / CHUNK * CHUNK };
            let mut chunk = BytesMut::with_capacity(n);
            let mut rest = Vec::new();
            for mut b in pending.drain(..) {
                let take = (n - chunk.len()).min(b.len());
                chunk.extend_from_slice(&b.split_to(take));
                if !b.is_empty() {
                    rest.push(b);
                }
            }
            *pending = rest;
            chunk.freeze()
        };
        let start = *sent;
        let end = start + chunk.len() as u64;
        let range = match (last, chunk.is_empty()) {
            (true, true) => format!("bytes */{end}"),
            (true, false) => format!("bytes {start}-{}/{end}", end - 1),
            (false, _) => format!("bytes {start}-{}/*", end - 1),
        };
        let response = send("upload", &self.token, || {
            self.http.put(&self.url).header(reqwest::header::CONTENT_RANGE, &range).body(chunk.clone())
        })
        .await?;
        let status = response.status().as_u16();
        let expected = if last { matches!(status, 200 | 201) } else { status == 308 };
        if !expected {
            return Err(refused("upload", &self.name, response).await);
        }
        *sent = end;
        Ok(())
    }
}

#[async_trait::async_trait]
impl MultipartUpload for Resumable {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        if let Ok(mut pending) = self.0.pending.lock() {
            pending.extend(data);
        }
        let session = self.0.clone();
        Box::pin(async move { session.flush(false).await })
    }

    async fn complete(&mut self) -> Result<PutResult> {
        self.0.flush(true).await?;
        Ok(PutResult { e_tag: None, version: None })
    }

    async fn abort(&mut self) -> Result<()> {
        // Cancelling a session answers 499; either way nothing was published.
        let _ = send("cancel the upload of", &self.0.token, || {
            self.0.http.delete(&self.0.url).header(reqwest::header::CONTENT_LENGTH, "0")
        })
        .await;
        Ok(())
    }
}
