//! Pushing an image over the OCI distribution API (spec v1.1), no container engine: the blobs
//! the registry lacks (`HEAD`, then a monolithic upload: `POST` a session, `PUT` the bytes with
//! their digest), then the manifest under the tag.
//!
//! Authentication follows the registry's challenge (`WWW-Authenticate` on `GET /v2/`): `Bearer
//! realm=...,service=...` — a token from the realm for `repository:REPO:pull,push`, asked with
//! the credentials if there are any (Docker's token protocol) — or `Basic`. Every answer's body
//! is read with a bound; a refusal names the registry, the step and the registry's own error.

use std::time::Duration;

use base64::Engine;

use crate::oci::{Image, MANIFEST};
use crate::PackageError;

/// Largest body read from a registry or its token realm (errors, tokens).
const MAX_ANSWER: usize = 1 << 20;

/// `REGISTRY/REPOSITORY:TAG` (or `@sha256:...` is refused: a push names a tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub registry: String,
    pub repository: String,
    pub tag: String,
}

impl Reference {
    pub fn parse(text: &str) -> Result<Reference, PackageError> {
        let bad = |why: &str| PackageError::Invalid(format!("--push {text}: {why} (expected REGISTRY/REPOSITORY:TAG)"));
        let (registry, rest) = text.split_once('/').ok_or_else(|| bad("no registry"))?;
        if !(registry.contains('.') || registry.contains(':') || registry == "localhost") {
            return Err(bad("the first part must be a registry host (with a dot or a port, or localhost)"));
        }
        if rest.contains('@') {
            return Err(bad("a push names a tag, not a digest"));
        }
        let (repository, tag) = match rest.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r, t),
            _ => return Err(bad("no tag")),
        };
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
                && c.starts_with(|ch: char| ch.is_ascii_alphanumeric())
        };
        if !repository.split('/').all(component_ok) {
            return Err(bad(
                "the repository must be lower-case letters, digits, `.`, `_`, `-`, in `/`-separated parts",
            ));
        }
        let tag_ok = tag.len() <= 128
            && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && tag.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !tag_ok {
            return Err(bad("the tag must be letters, digits, `.`, `_`, `-` (at most 128)"));
        }
        Ok(Reference { registry: registry.into(), repository: repository.into(), tag: tag.into() })
    }

    /// `http` for a loopback registry (as Docker treats localhost), `https` otherwise.
    fn base(&self) -> String {
        let host = self.registry.rsplit_once(':').map(|(h, _)| h).unwrap_or(&self.registry);
        let scheme = if ["localhost", "127.0.0.1", "[::1]"].contains(&host) { "http" } else { "https" };
        format!("{scheme}://{}", self.registry)
    }
}

/// Who to push as (`KAIRO_REGISTRY_USERNAME` / `KAIRO_REGISTRY_PASSWORD`).
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl Credentials {
    pub fn from_env() -> Option<Credentials> {
        let username = std::env::var("KAIRO_REGISTRY_USERNAME").ok().filter(|u| !u.is_empty())?;
        let password = std::env::var("KAIRO_REGISTRY_PASSWORD").unwrap_or_default();
        Some(Credentials { username, password })
    }

    fn basic(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
    }
}

/// What a push did.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The manifest's digest as the registry acknowledged it.
    pub digest: String,
    pub uploaded: usize,
    /// Blobs the registry already had.
    pub present: usize,
}

struct Session {
    http: reqwest::Client,
    base: String,
    reference: Reference,
    /// The `Authorization` header value, once the challenge is answered.
    auth: Option<String>,
}

fn fail(r: &Reference, step: &str, why: impl std::fmt::Display) -> PackageError {
    PackageError::Invalid(format!("pushing to {}: {step}: {why}", r.registry))
}

/// Read at most [`MAX_ANSWER`] bytes of a body.
async fn bounded(mut response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        if body.len() + chunk.len() > MAX_ANSWER {
            break;
        }
        body.extend_from_slice(&chunk);
    }
    body
}

/// The registry's own words from an error body (`{"errors": [{"code", "message"}]}`), else the
/// body's first line.
fn registry_error(status: u16, body: &[u8]) -> String {
    let parsed = serde_json::from_slice::<serde_json::Value>(body).ok();
    let words: Vec<String> = parsed
        .as_ref()
        .and_then(|v| v["errors"].as_array())
        .map(|es| {
            es.iter()
                .map(|e| {
                    format!("{} {}", e["code"].as_str().unwrap_or(""), e["message"].as_str().unwrap_or(""))
                        .trim()
                        .to_string()
                })
                .collect()
        })
        .unwrap_or_default();
    let text = if words.is_empty() {
        String::from_utf8_lossy(body).lines().next().unwrap_or("").chars().take(300).collect()
    } else {
        words.join("; ")
    };
    format!("{status} {text}").trim().to_string()
}

/// `key="value"` pairs of a challenge's parameters.
fn challenge_params(text: &str) -> std::collections::HashMap<String, String> {
    let mut out = std::collections::HashMap::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once('=') {
        let key = key.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.split_once('"') {
                Some((v, n)) => (v.to_string(), n),
                None => (quoted.to_string(), ""),
            }
        } else {
            match after.split_once(',') {
                Some((v, n)) => (v.trim().to_string(), n),
                None => (after.trim().to_string(), ""),
            }
        };
        out.insert(key, value);
        rest = next;
    }
    out
}

impl Session {
    fn url(&self, path: &str) -> String {
        format!("{}/v2/{}/{path}", self.base, self.reference.repository)
    }

    fn with_auth(&self, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.auth {
            Some(a) => r.header(reqwest::header::AUTHORIZATION, a),
            None => r,
        }
    }

    /// Answer the registry's challenge, if it makes one.
    async fn login(&mut self, creds: Option<&Credentials>) -> Result<(), PackageError> {
        let r = &self.reference;
        let ping = self
            .http
            .get(format!("{}/v2/", self.base))
            .send()
            .await
            .map_err(|e| fail(r, "GET /v2/", format!("unreachable: {e}")))?;
        if ping.status().as_u16() != 401 {
            return Ok(());
        }
        let challenge = ping
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge.as_str(), ""));
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => {
                let creds = creds.ok_or_else(|| {
                    fail(r, "login", "the registry wants a user and password: set KAIRO_REGISTRY_USERNAME and KAIRO_REGISTRY_PASSWORD")
                })?;
                self.auth = Some(creds.basic());
                Ok(())
            }
            "bearer" => {
                let p = challenge_params(params);
                let realm = p.get("realm").ok_or_else(|| fail(r, "login", "a Bearer challenge without a realm"))?;
                let scope = format!("repository:{}:pull,push", r.repository);
                let mut ask = self.http.get(realm).query(&[("scope", scope.as_str())]);
                if let Some(service) = p.get("service") {
                    ask = ask.query(&[("service", service.as_str())]);
                }
                if let Some(c) = creds {
                    ask = ask.header(reqwest::header::AUTHORIZATION, c.basic());
                }
                let answer = ask.send().await.map_err(|e| fail(r, "token", format!("{realm} unreachable: {e}")))?;
                let status = answer.status().as_u16();
                let body = bounded(answer).await;
                if status != 200 {
                    let hint = if creds.is_none() {
                        " (no credentials were sent: set KAIRO_REGISTRY_USERNAME and KAIRO_REGISTRY_PASSWORD)"
                    } else {
                        ""
                    };
                    return Err(fail(r, "token", format!("{realm} answered {}{hint}", registry_error(status, &body))));
                }
                let v: serde_json::Value = serde_json::from_slice(&body)
                    .map_err(|e| fail(r, "token", format!("{realm} answered no JSON: {e}")))?;
                let token = v["token"]
                    .as_str()
                    .or_else(|| v["access_token"].as_str())
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| fail(r, "token", format!("{realm} answered no token")))?;
                self.auth = Some(format!("Bearer {token}"));
                Ok(())
            }
            _ => Err(fail(r, "login", format!("an authentication scheme Kairo does not speak: `{challenge}`"))),
        }
    }

    async fn has_blob(&self, digest: &str) -> Result<bool, PackageError> {
        let r = &self.reference;
        let answer = self
            .with_auth(self.http.head(self.url(&format!("blobs/{digest}"))))
            .send()
            .await
            .map_err(|e| fail(r, "HEAD blob", e))?;
        match answer.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            s => Err(fail(r, &format!("HEAD blob {digest}"), registry_error(s, &[]))),
        }
    }

    async fn upload(&self, digest: &str, bytes: &[u8]) -> Result<(), PackageError> {
        let r = &self.reference;
        let step = format!("uploading {digest}");
        let started = self
            .with_auth(self.http.post(self.url("blobs/uploads/")))
            .header(reqwest::header::CONTENT_LENGTH, 0)
            .send()
            .await
            .map_err(|e| fail(r, &step, e))?;
        let status = started.status().as_u16();
        let location =
            started.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_string);
        if status != 202 {
            return Err(fail(r, &step, registry_error(status, &bounded(started).await)));
        }
        let location = location.ok_or_else(|| fail(r, &step, "the registry gave no upload location"))?;
        let mut url = if location.starts_with('/') { format!("{}{location}", self.base) } else { location };
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&format!("digest={}", digest.replace(':', "%3A")));
        let done = self
            .with_auth(self.http.put(url))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .map_err(|e| fail(r, &step, e))?;
        match done.status().as_u16() {
            201 | 204 => Ok(()),
            s => Err(fail(r, &step, registry_error(s, &bounded(done).await))),
        }
    }
}

/// A registry session, logged in (its challenge answered) for one repository.
pub struct Pusher(Session);

/// Log in to `reference`'s registry for pushing — before the image is built, so a refusal
/// costs nothing.
pub async fn connect(reference: &Reference, creds: Option<&Credentials>) -> Result<Pusher, PackageError> {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(600))
        .build()
        .map_err(|e| fail(reference, "client", e))?;
    let mut s = Session { http, base: reference.base(), reference: reference.clone(), auth: None };
    s.login(creds).await?;
    Ok(Pusher(s))
}

impl Pusher {
    /// Push `image` under the reference's tag: the blobs the registry lacks, then the manifest.
    pub async fn push(&self, image: &Image) -> Result<Pushed, PackageError> {
        let s = &self.0;
        let reference = &s.reference;
        let (mut uploaded, mut present) = (0, 0);
        let mut blobs: Vec<_> = image.layers.iter().collect();
        blobs.push(&image.config);
        for b in blobs {
            if s.has_blob(&b.digest).await? {
                present += 1;
            } else {
                s.upload(&b.digest, &b.bytes).await?;
                uploaded += 1;
            }
        }
        let step = format!("PUT manifest {}", reference.tag);
        let answer = s
            .with_auth(s.http.put(s.url(&format!("manifests/{}", reference.tag))))
            .header(reqwest::header::CONTENT_TYPE, MANIFEST)
            .body(image.manifest.bytes.clone())
            .send()
            .await
            .map_err(|e| fail(reference, &step, e))?;
        let status = answer.status().as_u16();
        let acknowledged =
            answer.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()).map(str::to_string);
        if status != 201 {
            return Err(fail(reference, &step, registry_error(status, &bounded(answer).await)));
        }
        let digest = acknowledged.unwrap_or_else(|| image.manifest.digest.clone());
        if digest != image.manifest.digest {
            return Err(fail(
                reference,
                &step,
                format!("the registry stored the manifest as {digest}, not {}", image.manifest.digest),
            ));
        }
        Ok(Pushed { digest, uploaded, present })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_checked() {
        let r = Reference::parse("127.0.0.1:5000/ml/churn:3").unwrap();
        assert_eq!((r.registry.as_str(), r.repository.as_str(), r.tag.as_str()), ("127.0.0.1:5000", "ml/churn", "3"));
        assert_eq!(r.base(), "http://127.0.0.1:5000");
        assert_eq!(Reference::parse("registry.example/churn:v1").unwrap().base(), "https://registry.example");
        for bad in [
            "churn:3",
            "ml/churn:3",
            "registry.example/churn",
            "registry.example/Churn:1",
            "registry.example/c@sha256:ab",
            "registry.example/c:bad tag",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn challenges_parse() {
        let p = challenge_params(
            r#"realm="https://auth.example/token",service="registry.example",scope="repository:a:pull""#,
        );
        assert_eq!(p["realm"], "https://auth.example/token");
        assert_eq!(p["service"], "registry.example");
        assert_eq!(p["scope"], "repository:a:pull");
    }

    #[test]
    fn registry_errors_are_their_words() {
        let body = br#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#;
        assert_eq!(registry_error(403, body), "403 DENIED requested access to the resource is denied");
    }
}
