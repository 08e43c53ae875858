//! Hostile input against the real servers (real processes, real sockets): oversized
//! declarations, requests that must never reach the prediction log, memory per request,
//! idle and slowloris connections, the connection cap, cross-site requests and oversized
//! uploads. Each one answers 4xx (or closes the connection) and the server keeps serving.

use crate::serving::{fixture, Serve};
use crate::Repo;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn served(repo: &Repo) {
    let f = fixture("logreg20.onnx");
    repo.kairo(&["models", "register", "clf", "--file", f.to_str().unwrap()]).assert().success();
    repo.kairo(&["deploy", "clf", "--version", "1"]).assert().success();
}

fn valid(id: &str, rows: usize) -> Value {
    json!({"id": id, "inputs": [{"name": "input", "shape": [rows, 20], "datatype": "FP32", "data": vec![0.25f32; rows * 20]}]})
}

/// Status line and body of one raw request (the body sent exactly as given).
fn raw(url: &str, head: &str, body: &[u8]) -> (u16, String) {
    let addr = url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // A server that answers before reading (a 503 at the cap) may close first: read anyway.
    let _ = write!(s, "{head}Host: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())
        .and_then(|_| s.write_all(body));
    let mut response = Vec::new();
    let _ = s.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, text.split("\r\n\r\n").nth(1).unwrap_or("").to_string())
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[test]
fn oversized_declarations_get_4xx_and_never_reach_the_prediction_log() {
    let repo = Repo::new();
    served(&repo);
    let serve = Serve::start(&repo, &["clf", "--threads", "1"]);
    let infer = "/v2/models/clf/infer";
    let oip_json = |body: &str| serve.post_raw(infer, "application/json", body.as_bytes().to_vec(), &[]);

    assert_eq!(serve.post(infer, &valid("before", 3)).0, 200);
    // A billion rows declared, three values sent: once an allocation that aborted the process.
    let (status, body, _) =
        oip_json(r#"{"inputs":[{"name":"input","shape":[1000000000,20],"datatype":"FP32","data":[1,2,3]}]}"#);
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("--max-rows"));
    // 2^31 × 2^31: once a `capacity overflow` panic that closed the connection unanswered.
    let (status, _, _) =
        oip_json(r#"{"inputs":[{"name":"input","shape":[2147483648,2147483648],"datatype":"FP32","data":[1]}]}"#);
    assert_eq!(status, 413);
    // 2^31 rows of nothing: once answered 400 yet logged as 2^31 rows, losing other rows.
    let (status, _, _) =
        oip_json(r#"{"inputs":[{"name":"input","shape":[2147483648,0],"datatype":"FP32","data":[]}]}"#);
    assert_eq!(status, 413);
    // Rows of nothing within the limits: refused by the model, and not logged either.
    let (status, _, _) = oip_json(r#"{"inputs":[{"name":"input","shape":[5,0],"datatype":"FP32","data":[]}]}"#);
    assert_eq!(status, 400);
    // Binary BYTES declaring a billion elements (once a 96 GB reservation).
    let head = r#"{"inputs":[{"name":"input","shape":[1000000000,4],"datatype":"BYTES","parameters":{"binary_data_size":8}}]}"#;
    let mut body = head.as_bytes().to_vec();
    body.extend_from_slice(&[4, 0, 0, 0, b'a', b'b', b'c', b'd']);
    let lengths = [("inference-header-content-length", head.len().to_string())];
    let (status, _, _) = serve.post_raw(infer, "application/octet-stream", body, &lengths);
    assert_eq!(status, 413);
    // Binary sizes beyond the body, and an inference header longer than the body.
    let head = r#"{"inputs":[{"name":"input","shape":[1,20],"datatype":"FP32","parameters":{"binary_data_size":18446744073709551615}}]}"#;
    let lengths = [("inference-header-content-length", head.len().to_string())];
    let (status, _, _) = serve.post_raw(infer, "application/octet-stream", head.as_bytes().to_vec(), &lengths);
    assert_eq!(status, 400);
    let lengths = [("inference-header-content-length", "99999999999999999999".to_string())];
    assert_eq!(serve.post_raw(infer, "application/octet-stream", b"{}".to_vec(), &lengths).0, 400);
    // More data than the shape holds.
    let (status, _, _) = oip_json(&valid("x", 1).to_string().replace("[1,20]", "[1,2]"));
    assert_eq!(status, 400);
    // /invocations: more rows than allowed, and a ragged table that once indexed out of bounds.
    let rows: Vec<Vec<f32>> = vec![vec![0.5; 20]; 100_001];
    let (status, _) = serve.post("/invocations", &json!({"inputs": rows}));
    assert_eq!(status, 413);
    let (status, r) =
        serve.post("/invocations", &json!({"dataframe_split": {"columns": ["input", "b"], "data": [[1.0]]}}));
    assert_eq!(status, 400, "{r}");

    assert_eq!(serve.post(infer, &valid("after", 2)).0, 200);
    let (_, metrics) = serve.get("/metrics");
    assert_eq!(metric(&metrics, "kairo_prediction_log_dropped_total"), 0.0);
    assert_eq!(metric(&metrics, "kairo_prediction_log_failures_total"), 0.0);
    serve.stop();

    // Exactly the answered rows are in the log: 3 + 2, nothing from the refusals.
    let log = repo.json(&["models", "predictions", "clf", "--limit", "1000"]);
    let ids: Vec<&str> = log["rows"].as_array().unwrap().iter().map(|r| r["request_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 5, "{ids:?}");
    assert_eq!(ids.iter().filter(|i| **i == "before").count(), 3);
    assert_eq!(ids.iter().filter(|i| **i == "after").count(), 2);
}

/// A memory figure of a process from `/proc/PID/status`, in bytes: `VmRSS:` (resident now) or
/// `VmHWM:` (peak resident since the last reset).
fn memory(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

/// Peak memory a request adds, over the resident memory before it (the kernel's high-water
/// mark reset first), including the prediction log writing it.
fn peak_growth(serve: &Serve, send: impl FnOnce() -> u16) -> (u16, u64) {
    let pid = serve.pid();
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    let before = memory(pid, "VmRSS:");
    let status = send();
    // The log flushes every second; wait for it so its memory is counted too.
    std::thread::sleep(Duration::from_millis(2500));
    (status, memory(pid, "VmHWM:").saturating_sub(before))
}

#[test]
fn peak_memory_per_request_is_a_small_multiple_of_the_body() {
    let repo = Repo::new();
    served(&repo);
    let serve = Serve::start(&repo, &["clf", "--threads", "1", "--max-rows", "200000"]);
    // Warm up allocator arenas and the model with a small request of each kind.
    assert_eq!(serve.post("/v2/models/clf/infer", &valid("warm", 10)).0, 200);

    // A 16 MB CSV to /invocations (once: 1.6 GB peak).
    let mut csv = (0..20).map(|i| format!("f{i}")).collect::<Vec<_>>().join(",") + "\n";
    let row = (0..20).map(|i| format!("0.{:06}", 123_457 + i)).collect::<Vec<_>>().join(",") + "\n";
    while csv.len() < 16 << 20 {
        csv.push_str(&row);
    }
    let size = csv.len() as u64;
    let (status, growth) = peak_growth(&serve, || serve.post_raw("/invocations", "text/csv", csv.into_bytes(), &[]).0);
    assert_eq!(status, 200);
    eprintln!("CSV {size} bytes: peak grew by {growth} bytes ({:.1}x the body)", growth as f64 / size as f64);
    assert!(growth < 8 * size, "a {size}-byte CSV raised peak memory by {growth} bytes");

    // A 24 MB OIP JSON body (once: 635 MB peak).
    let rows = 24 * (1 << 20) / (20 * 9);
    let cells: Vec<String> = (0..rows * 20).map(|i| format!("0.{:06}", 100_000 + i % 900_000)).collect();
    let body = format!(
        r#"{{"inputs":[{{"name":"input","shape":[{rows},20],"datatype":"FP32","data":[{}]}}]}}"#,
        cells.join(",")
    );
    drop(cells);
    let size = body.len() as u64;
    let (status, growth) =
        peak_growth(&serve, || serve.post_raw("/v2/models/clf/infer", "application/json", body.into_bytes(), &[]).0);
    assert_eq!(status, 200);
    eprintln!("OIP JSON {size} bytes: peak grew by {growth} bytes ({:.1}x the body)", growth as f64 / size as f64);
    assert!(growth < 8 * size, "a {size}-byte OIP body raised peak memory by {growth} bytes");
    serve.stop();
}

/// Is the connection closed by the server within `within`?
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn idle_and_slow_connections_are_closed_and_the_cap_answers_503() {
    let repo = Repo::new();
    let (child, url) = crate::spawn_listening(
        &repo,
        &["server", "--port", "0", "--header-timeout-s", "1", "--idle-timeout-s", "2", "--max-connections", "40"],
    );
    let server = crate::server::Server::from_child(child, url.clone());
    let addr = url.trim_start_matches("http://").to_string();

    // Idle connections that never send a byte.
    let mut idle: Vec<TcpStream> = (0..30).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    // Slowloris: headers one byte at a time, never finished.
    let mut slow = TcpStream::connect(&addr).unwrap();
    let started = Instant::now();
    let mut slow_closed = false;
    for b in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter().cycle().take(40) {
        if slow.write_all(&[*b]).is_err() {
            slow_closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(slow_closed || closed_within(&mut slow, Duration::from_secs(3)), "slowloris connection kept open");
    assert!(started.elapsed() < Duration::from_secs(6));
    for s in &mut idle {
        assert!(closed_within(s, Duration::from_secs(3)), "an idle connection was kept open");
    }
    // A kept-alive connection that goes quiet after its request is closed too.
    let mut kept = TcpStream::connect(&addr).unwrap();
    write!(kept, "GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut first = [0u8; 64];
    assert!(kept.read(&mut first).unwrap() > 0);
    assert!(closed_within(&mut kept, Duration::from_secs(4)), "a quiet kept-alive connection was kept open");
    drop(idle);

    let (_, metrics) = server.get_text("/metrics");
    assert!(metric(&metrics, "kairo_http_connections_timed_out_total") >= 31.0, "{metrics}");
    assert!(metric(&metrics, "kairo_http_connections_open") <= 2.0, "{metrics}");

    server.stop();

    // The cap: 40 open connections, the 41st gets a 503 at once, and the server still serves
    // once they go. A server of its own whose header timeout cannot close the held connections
    // first, however loaded the machine (with 1 s, slow accepts under load freed slots again).
    let (child, url) = crate::spawn_listening(
        &repo,
        &["server", "--port", "0", "--header-timeout-s", "60", "--idle-timeout-s", "60", "--max-connections", "40"],
    );
    let server = crate::server::Server::from_child(child, url.clone());
    let addr = url.trim_start_matches("http://").to_string();
    let held: Vec<TcpStream> = (0..40).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    // Until the server has accepted all 40 a request may still be served; then it is refused.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut status, mut body) = (0, String::new());
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        (status, body) = raw(&url, "GET /health HTTP/1.1\r\n", b"");
        if status == 503 {
            break;
        }
    }
    assert_eq!(status, 503, "{body}");
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(raw(&url, "GET /health HTTP/1.1\r\n", b"").0, 200);
    let (_, metrics) = server.get_text("/metrics");
    assert!(metric(&metrics, "kairo_http_connections_refused_total") >= 1.0);
    server.stop();

    // kairo serve has the same layer.
    served(&repo);
    let serve = Serve::start(&repo, &["clf", "--threads", "1", "--header-timeout-s", "1"]);
    let mut idle = TcpStream::connect(serve.url.trim_start_matches("http://")).unwrap();
    assert!(closed_within(&mut idle, Duration::from_secs(3)), "kairo serve kept an idle connection open");
    let (_, metrics) = serve.get("/metrics");
    assert!(metric(&metrics, "kairo_http_connections_timed_out_total") >= 1.0, "{metrics}");
    serve.stop();
}

#[test]
fn cross_site_requests_and_oversized_uploads_are_refused_and_change_nothing() {
    let repo = Repo::new();
    let (child, url) = crate::spawn_listening(&repo, &["server", "--port", "0", "--max-artifact-mb", "1"]);
    let server = crate::server::Server::from_child(child, url.clone());
    let create = "/api/2.0/mlflow/experiments/create";
    let client = reqwest::blocking::Client::new();
    let post = |ct: &str, origin: Option<&str>, name: &str| {
        let mut r =
            client.post(format!("{url}{create}")).header("content-type", ct).body(json!({"name": name}).to_string());
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        let r = r.send().unwrap();
        (r.status().as_u16(), r.json::<Value>().unwrap_or(Value::Null))
    };
    // A form-like POST from another site: what a browser sends without asking first.
    let (status, v) = post("text/plain", Some("http://evil.example"), "a");
    assert_eq!((status, v["error_code"].as_str()), (403, Some("PERMISSION_DENIED")), "{v}");
    // The same without an Origin (a browser that hides it) is still refused: not JSON.
    let (status, v) = post("text/plain", None, "b");
    assert_eq!(status, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains("application/json"), "{v}");
    // JSON, but from another origin, or marked cross-site by the browser.
    assert_eq!(post("application/json", Some("http://evil.example"), "c").0, 403);
    let r = client
        .post(format!("{url}{create}"))
        .header("content-type", "application/json")
        .header("sec-fetch-site", "cross-site")
        .body(json!({"name": "d"}).to_string())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // Nothing was created; the server's own origin and plain clients work.
    let (_, list) = server.get("/api/2.0/mlflow/experiments/search?max_results=100");
    let names: Vec<&str> =
        list["experiments"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["Default"], "{list}");
    // The reported case: a `text/plain` POST from another origin moved an alias with 200.
    let f = fixture("logreg20.onnx");
    repo.kairo(&["models", "register", "clf", "--file", f.to_str().unwrap()]).assert().success();
    let alias = json!({"name": "clf", "alias": "staging", "version": "1"}).to_string();
    let r = client
        .post(format!("{url}/api/2.0/mlflow/registered-models/alias"))
        .header("content-type", "text/plain")
        .header("origin", "http://evil.example")
        .body(alias)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let (status, _) = server.get("/api/2.0/mlflow/registered-models/alias?name=clf&alias=staging");
    assert_eq!(status, 404, "the alias must not have moved");
    let own = url.clone();
    assert_eq!(post("application/json", Some(&own), "e").0, 200);
    assert_eq!(post("application/json", None, "f").0, 200);

    // Artifact uploads above the limit: 413 naming it, whether the length is declared or not.
    let put = |len: usize| {
        let target = format!("{url}/api/2.0/mlflow-artifacts/artifacts/0/big.bin");
        let r = client.put(target).body(vec![7u8; len]).send().unwrap();
        (r.status().as_u16(), r.text().unwrap_or_default())
    };
    // Refused from its declared length, before the body is read: the server may answer and
    // close while the client still writes, so this one goes over a raw socket.
    let (status, text) =
        raw(&url, "PUT /api/2.0/mlflow-artifacts/artifacts/0/big.bin HTTP/1.1\r\n", &vec![7u8; 2 << 20]);
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("--max-artifact-mb"), "{text}");
    // Chunked, so no length is declared: refused when the stream passes the limit.
    let addr = url.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "PUT /api/2.0/mlflow-artifacts/artifacts/0/chunked.bin HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
    let chunk = vec![7u8; 64 << 10];
    for _ in 0..48 {
        if write!(s, "{:x}\r\n", chunk.len())
            .and_then(|_| s.write_all(&chunk))
            .and_then(|_| s.write_all(b"\r\n"))
            .is_err()
        {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n");
    let mut response = Vec::new();
    let _ = s.read_to_end(&mut response);
    assert!(String::from_utf8_lossy(&response).starts_with("HTTP/1.1 413"), "{}", String::from_utf8_lossy(&response));
    assert_eq!(put(512 << 10).0, 200);
    let tmp: Vec<_> = std::fs::read_dir(repo.join(".kairo/tmp"))
        .map(|d| d.flatten().filter(|e| e.file_name().to_string_lossy().starts_with("upload-")).collect())
        .unwrap_or_default();
    assert!(tmp.is_empty(), "upload temp files left behind: {tmp:?}");
    server.stop();

    // kairo serve: feedback (it changes state) takes JSON only, and never from another site.
    repo.kairo(&["deploy", "clf", "--version", "1"]).assert().success();
    let serve = Serve::start(&repo, &["clf", "--threads", "1"]);
    let fb = br#"{"request_id":"r","label":1}"#.to_vec();
    assert_eq!(serve.post_raw("/v1/feedback", "text/plain", fb.clone(), &[]).0, 415);
    let evil = [("origin", "http://evil.example".to_string())];
    assert_eq!(serve.post_raw("/v1/feedback", "application/json", fb.clone(), &evil).0, 403);
    assert_eq!(serve.post_raw("/v1/feedback", "application/json", fb, &[]).0, 200);
    serve.stop();
}

#[test]
fn text_postgres_cannot_store_is_a_4xx_on_the_mlflow_api() {
    let Some(base) = crate::service("KAIRO_TEST_POSTGRES_URL") else { return };
    let repo = Repo::bare().with_database(crate::faults::fresh_postgres_database(&base)).initialised();
    let server = crate::server::Server::start(&repo);
    for path in [
        "/api/2.0/mlflow/runs/get?run_id=%00",
        "/api/2.0/mlflow/experiments/get-by-name?experiment_name=a%00b",
        "/api/2.0/mlflow/registered-models/get?name=%00",
    ] {
        let (status, v) = server.get(path);
        assert_eq!((status, v["error_code"].as_str()), (400, Some("INVALID_PARAMETER_VALUE")), "{path}: {v}");
    }
    let (status, v) = server.post("/api/2.0/mlflow/experiments/create", json!({"name": "a\u{0}b"}));
    assert_eq!(status, 400, "{v}");
    assert!(v["message"].as_str().unwrap().contains("NUL"), "{v}");
    assert_eq!(server.post("/api/2.0/mlflow/experiments/create", json!({"name": "ok"})).0, 200);
}
