//! The artifact proxy (`/api/2.0/mlflow-artifacts/artifacts/...`) and the tracking service's
//! artifact listing. Artifacts are objects in the content-addressed store, named by path in the
//! `artifacts` table; no client path ever becomes a filesystem path. Paths are still validated
//! strictly, so traversal attempts get a 400 rather than a confusing miss.

use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::AppState;
use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

/// Decode a percent-encoded artifact path and refuse anything that could climb out of the
/// artifact root or mean different things to different layers.
pub fn clean_path(raw: &str) -> ApiResult<String> {
    let refuse = |why: &str| ApiError::invalid(format!("Invalid artifact path '{raw}': {why}"));
    let decoded = percent_decode(raw).ok_or_else(|| refuse("not valid percent-encoded UTF-8"))?;
    if decoded.contains('%') && percent_decode(&decoded).is_some_and(|twice| twice != decoded) {
        return Err(refuse("encoded more than once"));
    }
    if decoded.contains('\0') {
        return Err(refuse("contains a NUL byte"));
    }
    if decoded.contains('\\') {
        return Err(refuse("contains a backslash"));
    }
    if decoded.starts_with('/') || decoded.starts_with('~') || decoded.get(1..2) == Some(":") {
        return Err(refuse("absolute paths are not allowed"));
    }
    let trimmed = decoded.trim_end_matches('/');
    if trimmed.split('/').any(|seg| seg == ".." || seg == ".") {
        return Err(refuse("'.' and '..' are not allowed"));
    }
    if trimmed.split('/').any(str::is_empty) && !trimmed.is_empty() {
        return Err(refuse("empty path segment"));
    }
    if trimmed.chars().any(|c| c.is_control()) {
        return Err(refuse("contains control characters"));
    }
    Ok(trimmed.to_string())
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The raw (still encoded) artifact path of a request, after `prefix`.
pub fn raw_suffix<'a>(uri_path: &'a str, prefix: &str) -> &'a str {
    // Nothing is trimmed: `artifacts//etc/passwd` must reach the check as the absolute `/etc/passwd`.
    uri_path.split_once(prefix).map(|(_, rest)| rest).unwrap_or("")
}

/// PUT: stream the body to a temp file, store it as an object, record the path. A body
/// above `max_artifact` bytes is refused with 413: at once if its length says so, else when
/// the stream passes the limit (the partial file is removed).
pub async fn upload(s: AppState, raw: &str, declared: Option<u64>, body: Body) -> ApiResult<Value> {
    let path = clean_path(raw)?;
    if path.is_empty() {
        return Err(ApiError::invalid("An artifact path is required"));
    }
    let max = s.max_artifact;
    let too_large = || {
        ApiError::too_large(format!(
            "The artifact '{path}' is larger than this server's limit of {max} bytes (`kairo server --max-artifact-mb`)"
        ))
    };
    if declared.is_some_and(|n| n > max) {
        return Err(too_large());
    }
    let tmp = s.tmp.join(format!("upload-{}", kairo_core::run::new_run_id()));
    let mut file = tokio::fs::File::create(&tmp).await.map_err(internal)?;
    let mut stream = body.into_data_stream();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(ApiError::invalid(format!("The upload of '{path}' was interrupted: {e}")));
            }
        };
        size += chunk.len() as u64;
        if size > max {
            drop(file);
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(too_large());
        }
        if let Err(e) = file.write_all(&chunk).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(internal(e));
        }
    }
    file.flush().await.map_err(internal)?;
    drop(file);
    let objects = s.objects.clone();
    let tmp_for_store = tmp.clone();
    let hash = tokio::task::spawn_blocking(move || -> Result<kairo_core::Hash, kairo_store::StoreError> {
        let (staged, _) = objects.stage_file(&tmp_for_store, size, &|_| {})?;
        let hash = staged.hash;
        objects.commit(vec![staged])?;
        Ok(hash)
    })
    .await
    .map_err(|e| ApiError { code: crate::error::Code::Internal, message: e.to_string() })?;
    let _ = tokio::fs::remove_file(&tmp).await;
    s.md.put_artifact(&path, hash?, size).await?;
    Ok(json!({}))
}

/// GET: the bytes, streamed. Large objects are read in chunks and hashed as they go; if the
/// bytes no longer match the hash, the response is cut short (with its Content-Length, the
/// client sees a failed download rather than wrong bytes).
pub async fn download(s: AppState, raw: &str) -> Result<Response, ApiError> {
    let path = clean_path(raw)?;
    let (hash, _) =
        s.md.artifact(&path).await?.ok_or_else(|| ApiError::not_found(format!("Artifact '{path}' does not exist")))?;
    object_response(&s, hash).await
}

/// The bytes of an object as an HTTP response (see [`download`]).
pub async fn object_response(s: &AppState, hash: kairo_core::Hash) -> Result<Response, ApiError> {
    let objects = s.objects.clone();
    let source = tokio::task::spawn_blocking(move || objects.source(&hash))
        .await
        .map_err(|e| ApiError { code: crate::error::Code::Internal, message: e.to_string() })??;
    let octets = (header::CONTENT_TYPE, "application/octet-stream");
    match source {
        kairo_store::ObjectSource::Bytes(bytes) => Ok((StatusCode::OK, [octets], bytes).into_response()),
        kairo_store::ObjectSource::File { path, size } => {
            let file = tokio::fs::File::open(&path).await.map_err(internal)?;
            // One chunk is always held back until the next is read, and the last one until the
            // whole object has been hashed: corrupted bytes end the response short of its length.
            let state = (file, blake3::Hasher::new(), None::<bytes::Bytes>, false);
            let stream = futures::stream::unfold(state, move |(mut file, mut hasher, pending, done)| async move {
                if done {
                    return None;
                }
                let mut buf = vec![0u8; 1 << 20];
                match tokio::io::AsyncReadExt::read(&mut file, &mut buf).await {
                    Ok(0) => {
                        if kairo_core::Hash::from(hasher.finalize()) != hash {
                            let e = std::io::Error::other(format!("object {hash} is corrupted"));
                            return Some((Err(e), (file, hasher, None, true)));
                        }
                        pending.map(|last| (Ok(last), (file, hasher, None, true)))
                    }
                    Ok(n) => {
                        buf.truncate(n);
                        hasher.update(&buf);
                        let next = bytes::Bytes::from(buf);
                        match pending {
                            Some(ready) => Some((Ok(ready), (file, hasher, Some(next), false))),
                            // Nothing to send yet: emit an empty chunk and keep this one back.
                            None => Some((Ok(bytes::Bytes::new()), (file, hasher, Some(next), false))),
                        }
                    }
                    Err(e) => Some((Err(e), (file, hasher, None, true))),
                }
            });
            Ok((StatusCode::OK, [octets, (header::CONTENT_LENGTH, &size.to_string())], Body::from_stream(stream))
                .into_response())
        }
    }
}

pub async fn delete(s: AppState, raw: &str) -> ApiResult<Value> {
    let path = clean_path(raw)?;
    if s.md.delete_artifacts(&path).await? == 0 {
        return Err(ApiError::not_found(format!("Artifact '{path}' does not exist")));
    }
    Ok(json!({}))
}

fn entries_json(entries: &[kairo_store::tracking::ArtifactEntry], prefix: &str) -> Vec<Value> {
    entries
        .iter()
        .map(|e| {
            let path = if prefix.is_empty() { e.path.clone() } else { format!("{prefix}/{}", e.path) };
            let mut v = json!({"path": path, "is_dir": e.is_dir});
            if let Some(size) = e.size {
                v["file_size"] = json!(size);
            }
            v
        })
        .collect()
}

/// GET `/mlflow-artifacts/artifacts?path=DIR`: entries relative to DIR (the client joins them).
pub async fn list(s: AppState, p: Params) -> ApiResult<Value> {
    let dir = clean_path(&p.opt_string("path")?.unwrap_or_default())?;
    let entries = s.md.list_artifacts(&dir).await?;
    Ok(json!({"files": entries_json(&entries, "")}))
}

/// Where a tracked run's artifacts are named: `EXPERIMENT/RUN/artifacts` (its artifact URI is
/// `mlflow-artifacts:/` and this).
pub fn run_root(run: &kairo_core::tracking::TrackedRunInfo) -> String {
    format!("{}/{}/artifacts", run.experiment_id, run.id)
}

/// GET `/mlflow/artifacts/list?run_id=&path=`: entries relative to the run's artifact root.
pub async fn list_for_run(s: AppState, p: Params) -> ApiResult<Value> {
    let run = s.md.tracked_run_info(&p.string_of(&["run_id", "run_uuid"])?).await?;
    let sub = clean_path(&p.opt_string("path")?.unwrap_or_default())?;
    let root = run_root(&run);
    let dir = if sub.is_empty() { root.clone() } else { format!("{root}/{sub}") };
    let entries = s.md.list_artifacts(&dir).await?;
    Ok(json!({"root_uri": super::runs::artifact_uri(&run), "files": entries_json(&entries, &sub)}))
}

/// The `path` parameter of the UI's file downloads, checked by [`clean_path`] (the one rule for
/// client artifact paths), the error naming the parameter.
pub fn path_param(p: &Params) -> ApiResult<String> {
    clean_path(&p.string("path")?)
        .map_err(|e| ApiError::invalid(format!("Invalid value for parameter 'path': {}", e.message)))
}

/// One file under `root` (a name this server made) at `sub` (already checked by [`path_param`]),
/// for a browser: always an attachment, never sniffed, sandboxed if opened anyway, so an
/// uploaded HTML or SVG file cannot run script on this server's origin.
pub async fn file_under(s: &AppState, root: &str, sub: &str) -> Result<Response, ApiError> {
    let full = if sub.is_empty() { root.to_string() } else { format!("{root}/{sub}") };
    let Some((hash, _)) = s.md.artifact(&full).await? else {
        if sub.is_empty() || !s.md.list_artifacts(&full).await?.is_empty() {
            return Err(ApiError::invalid(format!(
                "Invalid value for parameter 'path': '{sub}' is a directory, not a file; list it with /mlflow/artifacts/list"
            )));
        }
        return Err(ApiError::not_found(format!("No such artifact: '{sub}'")));
    };
    browser_download(s, hash, sub).await
}

/// An object as a browser download named after the last part of `path`: always an
/// attachment, never sniffed, sandboxed if opened anyway.
pub async fn browser_download(s: &AppState, hash: kairo_core::Hash, path: &str) -> Result<Response, ApiError> {
    let mut response = object_response(s, hash).await?;
    let name = path.rsplit('/').next().unwrap_or(path);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static(mime_type(name)));
    if let Ok(v) = header::HeaderValue::from_str(&attachment(name)) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, header::HeaderValue::from_static("nosniff"));
    headers.insert(header::CONTENT_SECURITY_POLICY, header::HeaderValue::from_static("default-src 'none'; sandbox"));
    Ok(response)
}

/// The type a browser may show a file as: MLflow's text extensions as plain text, common images
/// as themselves, everything else (HTML included) as bytes.
pub fn mime_type(name: &str) -> &'static str {
    const TEXT: &[&str] = &[
        "txt",
        "log",
        "err",
        "cfg",
        "conf",
        "cnf",
        "cf",
        "ini",
        "properties",
        "prop",
        "hocon",
        "toml",
        "yaml",
        "yml",
        "xml",
        "json",
        "js",
        "py",
        "py3",
        "csv",
        "tsv",
        "md",
        "rst",
        "ipynb",
        "MLmodel",
        "MLproject",
    ];
    let ext = match name.rsplit_once('.') {
        Some((_, ext)) => ext,
        None => name,
    };
    if TEXT.contains(&ext) {
        return "text/plain";
    }
    match ext.to_ascii_lowercase().as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "bmp" => "image/bmp",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "pdf" => "application/pdf",
        _ => "application/octet-stream",
    }
}

/// `Content-Disposition` for a download named `name` (RFC 6266): an ASCII `filename`, and the
/// UTF-8 name in `filename*` when it is not ASCII.
fn attachment(name: &str) -> String {
    let ascii: String = name.chars().map(|c| if c.is_ascii() && !c.is_ascii_control() { c } else { '_' }).collect();
    let quoted = ascii.replace('\\', "\\\\").replace('"', "\\\"");
    if name.is_ascii() {
        return format!("attachment; filename=\"{quoted}\"");
    }
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename=\"{quoted}\"; filename*=UTF-8''{encoded}")
}

/// GET `/get-artifact?run_uuid=..&path=..` (the MLflow UI's artifact viewer): one file of a run.
pub async fn get_artifact(s: AppState, p: Params) -> Result<Response, ApiError> {
    let sub = path_param(&p)?;
    let run = s.md.tracked_run_info(&p.string_of(&["run_id", "run_uuid"])?).await?;
    file_under(&s, &run_root(&run), &sub).await
}

fn internal(e: std::io::Error) -> ApiError {
    ApiError { code: crate::error::Code::Internal, message: format!("artifact staging: {e}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_and_encoding_tricks_are_refused() {
        assert_eq!(clean_path("1/abc/artifacts/model/MLmodel").unwrap(), "1/abc/artifacts/model/MLmodel");
        assert_eq!(clean_path("1/abc/artifacts/a%20b.txt").unwrap(), "1/abc/artifacts/a b.txt");
        assert_eq!(clean_path("").unwrap(), "");
        for bad in [
            "../etc/passwd",
            "1/../../x",
            "%2e%2e/%2e%2e/etc/passwd",
            "%252e%252e%252fetc",
            "..%2fsecret",
            "/etc/passwd",
            "%2Fetc%2Fpasswd",
            "a\\..\\b",
            "a%5c..%5cb",
            "a%00b",
            "C:/windows",
            "a//b",
            "./a",
            "%zz",
        ] {
            assert!(clean_path(bad).is_err(), "{bad} must be refused");
        }
    }
}
