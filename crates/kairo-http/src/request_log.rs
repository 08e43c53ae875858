//! One log line per request, and the request id that joins it to everything else the request
//! left behind (the response's `x-request-id`, `kairo serve`'s prediction-log rows).
//!
//! [`RequestLog`] wraps the service `serve` runs, so both servers log the same way: an INFO
//! event on the target [`TARGET`] with `method`, `path` (never the query string, which can hold
//! secrets), `status`, `latency_ms` (until the response head is ready) and `request_id`.
//!
//! The request id is the client's `x-request-id` when it is sane ([`sane_request_id`]), else a
//! new one ([`new_request_id`]). Either way the request reaches the handler carrying it in its
//! `x-request-id` header, so a handler reads the id from there. A handler may answer with an
//! `x-request-id` of its own (OIP's body `id`); then that is the id logged and echoed.
//!
//! Cheap by design (it wraps the inference path): no boxing, and when the event is filtered
//! out (`RUST_LOG=warn`) nothing is copied from the request.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use axum::http::{HeaderName, HeaderValue, Method, Request, Response};

/// The tracing target of the request lines (`RUST_LOG=kairo_http::request_log=off` silences
/// them alone).
pub const TARGET: &str = "kairo_http::request_log";

/// The header that carries a request's id, in and out.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest client-chosen request id kept; longer ones are replaced.
pub const MAX_REQUEST_ID: usize = 128;

/// Longest path logged; a longer one is cut (and marked with `...`).
const MAX_LOGGED_PATH: usize = 2048;

/// Whether a client-chosen request id may be kept: 1 to [`MAX_REQUEST_ID`] visible ASCII
/// characters (no spaces, no control characters, nothing a log line or a header could trip on).
pub fn sane_request_id(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= MAX_REQUEST_ID && id.iter().all(u8::is_ascii_graphic)
}

/// A new request id: 32 hex digits, the time in milliseconds then 80 bits that are unique
/// within this process (a counter through a bijection) and random across processes (a key
/// drawn from the OS at the first call).
pub fn new_request_id() -> String {
    static KEY: OnceLock<(u64, u16)> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let (key, tag) = *KEY.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        // RandomState's keys come from the OS's random source.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let key = h.finish();
        h.write_u64(key);
        (key, h.finish() as u16)
    });
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let n = mix(COUNTER.fetch_add(1, Ordering::Relaxed) ^ key);
    format!("{:012x}{:04x}{n:016x}", now.as_millis() as u64 & 0xffff_ffff_ffff, tag)
}

/// SplitMix64's finaliser: a bijection on u64 that scatters consecutive inputs.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The request-log service around `S` (see the module docs).
#[derive(Clone)]
pub struct RequestLog<S> {
    inner: S,
    peer: std::net::SocketAddr,
}

/// The client's address, in every request's extensions (for limits per source).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub std::net::SocketAddr);

impl<S> RequestLog<S> {
    pub fn new(inner: S, peer: std::net::SocketAddr) -> Self {
        RequestLog { inner, peer }
    }
}

impl<S, B, RB> tower::Service<Request<B>> for RequestLog<S>
where
    S: tower::Service<Request<B>, Response = Response<RB>>,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = Logged<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let started = Instant::now();
        let id = match request.headers().get(REQUEST_ID) {
            Some(given) if sane_request_id(given.as_bytes()) => given.clone(),
            _ => {
                // Hex digits only: always a valid header value.
                let id = HeaderValue::from_str(&new_request_id()).unwrap_or(HeaderValue::from_static("-"));
                request.headers_mut().insert(REQUEST_ID, id.clone());
                id
            }
        };
        request.extensions_mut().insert(Peer(self.peer));
        let line = tracing::enabled!(target: TARGET, tracing::Level::INFO)
            .then(|| (request.method().clone(), logged_path(request.uri().path())));
        Logged { inner: self.inner.call(request), id: Some(id), started, line }
    }
}

fn logged_path(path: &str) -> String {
    if path.len() <= MAX_LOGGED_PATH {
        return path.to_string();
    }
    let mut end = MAX_LOGGED_PATH;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &path[..end])
}

pin_project_lite::pin_project! {
    /// The response future of [`RequestLog`]: echoes the id and logs the line when the
    /// response head is ready.
    pub struct Logged<F> {
        #[pin]
        inner: F,
        id: Option<HeaderValue>,
        started: Instant,
        line: Option<(Method, String)>,
    }
}

impl<F, RB, E> Future for Logged<F>
where
    F: Future<Output = Result<Response<RB>, E>>,
{
    type Output = Result<Response<RB>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        let status = response.status().as_u16();
        let headers = response.headers_mut();
        if let Some(id) = this.id.take() {
            if !headers.contains_key(REQUEST_ID) {
                headers.insert(REQUEST_ID, id);
            }
        }
        if let Some((method, path)) = this.line.take() {
            let latency_ms = this.started.elapsed().as_micros() as f64 / 1000.0;
            let request_id = headers.get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info!(
                target: TARGET,
                method = %method,
                path = %path,
                status,
                latency_ms,
                request_id = %request_id,
                "request"
            );
        }
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_kept_only_when_sane() {
        assert!(sane_request_id(b"abc-123_X.y:z"));
        assert!(sane_request_id(&[b'a'; MAX_REQUEST_ID]));
        assert!(!sane_request_id(&[b'a'; MAX_REQUEST_ID + 1]));
        assert!(!sane_request_id(b""));
        assert!(!sane_request_id(b"with space"));
        assert!(!sane_request_id(b"tab\there"));
        assert!(!sane_request_id(b"new\nline"));
        assert!(!sane_request_id("caf\u{e9}".as_bytes()));
    }

    #[test]
    fn new_request_ids_are_distinct_hex_and_sane() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| new_request_id()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(10) {
            assert_eq!(id.len(), 32, "{id}");
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
            assert!(sane_request_id(id.as_bytes()));
        }
    }

    #[test]
    fn long_paths_are_cut_on_a_character_boundary() {
        assert_eq!(logged_path("/v2/models/x/infer"), "/v2/models/x/infer");
        let long = format!("/{}", "\u{e9}".repeat(MAX_LOGGED_PATH));
        let cut = logged_path(&long);
        assert!(cut.ends_with("...") && cut.len() <= MAX_LOGGED_PATH + 3, "{}", cut.len());
    }
}
