//! Kairo's HTTP connection layer, shared by `kairo server` and `kairo serve`: what a network
//! may do to a server before any handler runs.
//!
//! - Listeners with an explicit backlog (`bind`).
//! - An accept loop (`serve`) with a cap on open connections (over it, a short 503 and close),
//!   a header-read timeout (slowloris; hyper also applies it to the wait for the next request
//!   on a kept-alive connection), and an idle timeout on the socket itself (no bytes either way
//!   for that long: closed), so idle and trickling connections give their memory back.
//! - One log line per request and the request id (`request_log`), applied by `serve` to
//!   every request of either server.
//! - Connection counters for `/metrics` (`ConnStats`).
//! - TLS in-process (`Tls`, rustls): the handshake runs in the connection's own task under
//!   the header timeout, so a client that never finishes it holds nothing for long.
//! - Bounded body reads (`read_body`) that tell "too large" (413) from "interrupted".
//! - The rules every state-changing endpoint applies to browser requests (`cross_site_refusal`,
//!   `json_content_type_refusal`): a page on another origin must not be able to make a
//!   logged-in or local browser change state.
//!
//! Knows nothing of MLflow, models or the store; each server turns these refusals into its own
//! error shape. Logs only through `tracing` events; where they go is the binary's choice.

pub mod request_log;

pub use request_log::{new_request_id, sane_request_id, Peer, REQUEST_ID};

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{header, HeaderMap, Method};
use axum::Router;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

/// What one server allows its connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// Open connections at most; beyond, new ones get a 503 and are closed.
    pub max_connections: usize,
    /// Time to send a request's headers, and to start the next request on a kept-alive
    /// connection.
    pub header_timeout: Duration,
    /// A connection with no bytes moving either way for this long is closed.
    pub idle_timeout: Duration,
    /// The listen backlog (connections the kernel queues before `accept`).
    pub backlog: u32,
    /// On shutdown, how long in-flight requests may take to finish.
    pub shutdown_grace: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max_connections: 1024,
            header_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(60),
            backlog: 1024,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// Connection counters of one server (all of its listeners).
#[derive(Default)]
pub struct ConnStats {
    open: AtomicUsize,
    accepted: AtomicU64,
    refused: AtomicU64,
    timed_out: AtomicU64,
}

impl ConnStats {
    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// The counters in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"));
        };
        metric("kairo_http_connections_open", "gauge", "Client connections open now.", self.open() as u64);
        let accepted = self.accepted.load(Ordering::Relaxed);
        metric("kairo_http_connections_accepted_total", "counter", "Client connections accepted.", accepted);
        let refused = self.refused.load(Ordering::Relaxed);
        metric(
            "kairo_http_connections_refused_total",
            "counter",
            "Connections answered 503 and closed because the server was at its connection cap.",
            refused,
        );
        let timed_out = self.timed_out.load(Ordering::Relaxed);
        metric(
            "kairo_http_connections_timed_out_total",
            "counter",
            "Connections closed for sending no complete request headers, or no bytes, in time.",
            timed_out,
        );
        out
    }
}

/// Decrements the open count when a connection ends, however it ends.
struct OpenGuard(Arc<ConnStats>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A listening socket on `addr` with `backlog`; with `reuse_port`, several sockets may share
/// the address (the kernel spreads connections among them).
pub fn bind(addr: SocketAddr, backlog: u32, reuse_port: bool) -> io::Result<std::net::TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    if reuse_port {
        socket.set_reuseport(true)?;
    }
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)?.into_std()
}

/// Serve `app` on `listener` until `shutdown` resolves; then stop accepting and give
/// in-flight requests `limits.shutdown_grace` to finish. Every request gets a request id and
/// a log line (`request_log`).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    stats: Arc<ConnStats>,
    tls: Option<Tls>,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let graceful = GracefulShutdown::new();
    let limits = ConnLimits { max_connections: usable_connections(limits.max_connections), ..limits };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or memory for a moment: wait instead of spinning;
                    // a connection reset before accept is nothing to wait for.
                    if !matches!(e.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = stream;
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        if stats.open.fetch_add(1, Ordering::Relaxed) >= limits.max_connections {
            stats.open.fetch_sub(1, Ordering::Relaxed);
            stats.refused.fetch_add(1, Ordering::Relaxed);
            if tls.is_none() {
                tokio::spawn(refuse(stream));
            }
            continue;
        }
        let guard = OpenGuard(stats.clone());
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(request_log::RequestLog::new(app.clone(), peer));
        let stats = stats.clone();
        let watcher = graceful.watcher();
        let builder = builder.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let result = match tls {
                None => {
                    let io = TokioIo::new(IdleTimeout::new(stream, limits.idle_timeout));
                    watcher.watch(builder.serve_connection(io, service)).await
                }
                Some(tls) => {
                    let handshake = tokio::time::timeout(limits.header_timeout, tls.0.accept(stream)).await;
                    let Ok(Ok(stream)) = handshake else {
                        // A failed or unfinished handshake: nothing was asked, nothing to answer.
                        if handshake.is_err() {
                            stats.timed_out.fetch_add(1, Ordering::Relaxed);
                        }
                        drop(guard);
                        return;
                    };
                    let io = TokioIo::new(IdleTimeout::new(stream, limits.idle_timeout));
                    watcher.watch(builder.serve_connection(io, service)).await
                }
            };
            if let Err(e) = result {
                let timed_out = e.is_timeout()
                    || std::error::Error::source(&e)
                        .and_then(|s| s.downcast_ref::<io::Error>())
                        .is_some_and(|io| io.kind() == io::ErrorKind::TimedOut);
                if timed_out {
                    stats.timed_out.fetch_add(1, Ordering::Relaxed);
                }
            }
            drop(guard);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.shutdown_grace) => {}
    }
    Ok(())
}

/// A server certificate chain and its key, ready to accept TLS connections (HTTP/1.1).
#[derive(Clone)]
pub struct Tls(tokio_rustls::TlsAcceptor);

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

impl Tls {
    /// From PEM files: the certificate chain (leaf first) and its private key (PKCS#8, PKCS#1
    /// or SEC1). Errors name the file and what is wrong with it.
    pub fn from_pem_files(cert: &std::path::Path, key: &std::path::Path) -> Result<Tls, String> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .and_then(|i| i.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
        if certs.is_empty() {
            return Err(format!("--tls-cert {}: no CERTIFICATE in it (a PEM file is expected)", cert.display()));
        }
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| format!("--tls-key {}: {e} (a PEM private key is expected)", key.display()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| format!("--tls-cert/--tls-key: {e} (does the key belong to the certificate?)"))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
    }
}

/// Descriptors kept free for the store, files and outgoing connections.
const RESERVED_FDS: u64 = 128;

/// The connection cap, lowered to what the process's open-file limit allows (a server at its
/// descriptor limit can no longer accept anything, not even to refuse it).
pub fn usable_connections(requested: usize) -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current.unwrap_or(u64::MAX);
    let usable = usize::try_from(soft.saturating_sub(RESERVED_FDS)).unwrap_or(usize::MAX).max(16);
    requested.min(usable)
}

/// Answer a connection over the cap with a short 503 and close it.
async fn refuse(mut stream: TcpStream) {
    const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
connection: close\r\ncontent-length: 70\r\n\r\n{\"error_code\":\"TEMPORARILY_UNAVAILABLE\",\"message\":\"too many connections\"}";
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(BUSY)).await;
    let _ = stream.shutdown().await;
}

/// A socket that fails with `TimedOut` once no bytes have moved either way for `timeout`
/// while the server waits on it.
struct IdleTimeout<S> {
    inner: S,
    timeout: Duration,
    /// When bytes last moved. Progress only records the time; the timer is re-armed lazily
    /// when it fires early, so a busy connection never touches the timer wheel per read.
    last: Instant,
    deadline: Pin<Box<Sleep>>,
}

impl<S> IdleTimeout<S> {
    fn new(inner: S, timeout: Duration) -> Self {
        IdleTimeout { inner, timeout, last: Instant::now(), deadline: Box::pin(tokio::time::sleep(timeout)) }
    }

    fn progress(&mut self) {
        self.last = Instant::now();
    }

    /// While waiting: has the connection been idle for the whole timeout? (Registers the waker
    /// for the deadline if not.)
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        while self.deadline.as_mut().poll(cx).is_ready() {
            let due = self.last + self.timeout;
            if due <= Instant::now() {
                return true;
            }
            self.deadline.as_mut().reset(due);
        }
        false
    }

    /// The outcome of a write: bytes written are progress; a client that stops reading our
    /// answer holds its buffers, so waiting on it is idle time too.
    fn wrote(&mut self, cx: &mut Context<'_>, written: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        match written {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.progress();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "connection idle for too long")
}

impl<S: AsyncRead + Unpin> AsyncRead for IdleTimeout<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.progress();
                }
                Poll::Ready(r)
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(timed_out())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, data);
        self.wrote(cx, written)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Why a body was not read.
#[derive(Debug)]
pub enum BodyError {
    /// Longer than the limit (answer 413 naming it).
    TooLarge { limit: usize },
    /// The client went away or sent a malformed body.
    Interrupted(String),
}

/// Read a whole body of at most `max` bytes; never holds more than `max` of it.
pub async fn read_body(body: axum::body::Body, max: usize) -> Result<Bytes, BodyError> {
    let mut stream = body.into_data_stream();
    let mut buf = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| BodyError::Interrupted(e.to_string()))?;
        if buf.len().saturating_add(chunk.len()) > max {
            return Err(BodyError::TooLarge { limit: max });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// The `Content-Length` a request declares, if it declares a valid one.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// Whether a request may change state (anything but GET, HEAD, OPTIONS).
pub fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Refuse a state-changing request that a browser sent on behalf of another site: its
/// `Sec-Fetch-Site` says cross-site, or its `Origin` is not the server's own (`Host`).
/// Requests without these headers (every non-browser client) pass.
pub fn cross_site_refusal(method: &Method, headers: &HeaderMap) -> Option<String> {
    if !changes_state(method) {
        return None;
    }
    if let Some(site) = headers.get("sec-fetch-site") {
        if site.as_bytes().eq_ignore_ascii_case(b"cross-site") || site.as_bytes().eq_ignore_ascii_case(b"same-site") {
            return Some(format!(
                "cross-site request refused: the browser marked this {method} as sent from another site \
                 (Sec-Fetch-Site: {}); state-changing requests must come from this server's own pages or a non-browser client",
                String::from_utf8_lossy(site.as_bytes())
            ));
        }
    }
    let origin = headers.get(header::ORIGIN)?;
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let same =
        origin.to_str().ok().and_then(origin_authority).is_some_and(|(scheme, authority)| {
            normalise(scheme, authority).eq_ignore_ascii_case(&normalise(scheme, host))
        });
    if same {
        return None;
    }
    Some(format!(
        "cross-site request refused: Origin '{}' is not this server ('{host}'); state-changing requests must come \
         from this server's own pages or a non-browser client",
        String::from_utf8_lossy(origin.as_bytes())
    ))
}

/// `scheme://authority` of an Origin header (`None` for `null` or anything else).
fn origin_authority(origin: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = origin.split_once("://")?;
    (!rest.is_empty() && !rest.contains('/')).then_some((scheme, rest))
}

/// An authority without the scheme's default port.
fn normalise(scheme: &str, authority: &str) -> String {
    let default = match scheme {
        "http" => ":80",
        "https" => ":443",
        _ => "",
    };
    match authority.strip_suffix(default) {
        Some(bare) if !default.is_empty() => bare.to_string(),
        _ => authority.to_string(),
    }
}

/// Refuse a request with a body that is not declared as JSON, on an endpoint that takes
/// JSON: browsers send `text/plain` and form types across sites without asking first.
pub fn json_content_type_refusal(headers: &HeaderMap) -> Option<String> {
    let has_body = declared_length(headers).is_some_and(|n| n > 0) || headers.contains_key(header::TRANSFER_ENCODING);
    if !has_body {
        return None;
    }
    let given = headers.get(header::CONTENT_TYPE).map(|v| String::from_utf8_lossy(v.as_bytes()).to_ascii_lowercase());
    let media = given.as_deref().map(|v| v.split(';').next().unwrap_or("").trim().to_string());
    match media.as_deref() {
        Some("application/json") => None,
        Some(m) if m.starts_with("application/") && m.ends_with("+json") => None,
        _ => Some(format!(
            "this endpoint takes a JSON body: send Content-Type: application/json (got {})",
            given.map_or_else(|| "none".to_string(), |g| format!("'{g}'"))
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn cross_site_requests_are_refused_and_others_pass() {
        let post = Method::POST;
        assert!(cross_site_refusal(&post, &headers(&[("host", "127.0.0.1:5000")])).is_none());
        assert!(cross_site_refusal(&post, &headers(&[("host", "h:5000"), ("origin", "http://h:5000")])).is_none());
        assert!(cross_site_refusal(&post, &headers(&[("host", "h"), ("origin", "http://h:80")])).is_none());
        assert!(cross_site_refusal(&post, &headers(&[("host", "h:5000"), ("sec-fetch-site", "same-origin")])).is_none());
        let m = cross_site_refusal(&post, &headers(&[("host", "h:5000"), ("origin", "http://evil.example")])).unwrap();
        assert!(m.contains("evil.example") && m.contains("h:5000"), "{m}");
        assert!(cross_site_refusal(&post, &headers(&[("host", "h:5000"), ("origin", "null")])).is_some());
        assert!(cross_site_refusal(&post, &headers(&[("host", "h:5000"), ("origin", "http://h:5001")])).is_some());
        assert!(cross_site_refusal(&post, &headers(&[("host", "h:5000"), ("sec-fetch-site", "cross-site")])).is_some());
        assert!(cross_site_refusal(&Method::GET, &headers(&[("origin", "http://evil.example")])).is_none());
    }

    #[test]
    fn json_bodies_must_say_so() {
        assert!(json_content_type_refusal(&headers(&[("content-length", "0")])).is_none());
        assert!(json_content_type_refusal(&headers(&[])).is_none());
        let json = [("content-length", "2"), ("content-type", "application/json; charset=utf-8")];
        assert!(json_content_type_refusal(&headers(&json)).is_none());
        let m =
            json_content_type_refusal(&headers(&[("content-length", "2"), ("content-type", "text/plain")])).unwrap();
        assert!(m.contains("application/json") && m.contains("text/plain"), "{m}");
        assert!(json_content_type_refusal(&headers(&[("content-length", "2")])).unwrap().contains("none"));
        assert!(json_content_type_refusal(&headers(&[("transfer-encoding", "chunked")])).is_some());
    }

    #[tokio::test]
    async fn bodies_are_read_up_to_the_limit() {
        let ok = read_body(axum::body::Body::from(vec![1u8; 10]), 10).await.unwrap();
        assert_eq!(ok.len(), 10);
        let err = read_body(axum::body::Body::from(vec![1u8; 11]), 10).await.unwrap_err();
        assert!(matches!(err, BodyError::TooLarge { limit: 10 }));
    }
}
