//! The servers' logs through the real binary and real sockets: one request line per request on
//! stderr (text and `--log-format json`), `RUST_LOG` filtering, request ids echoed and logged,
//! joined to the prediction log, and hostile ids replaced.

use crate::serving::fixture;
use crate::Repo;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `kairo server`/`kairo serve` whose stderr goes to a file, read once it has stopped.
struct Logged {
    child: Child,
    url: String,
    stderr: PathBuf,
}

impl Logged {
    fn start(repo: &Repo, args: &[&str], rust_log: Option<&str>) -> Logged {
        let stderr = repo.path().join(format!("{}-stderr.log", args[0]));
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("kairo"));
        cmd.args(args)
            .args(["--port", "0"])
            .current_dir(repo.path())
            .env("KAIRO_ACTOR", "server@test")
            .env_remove("RUST_LOG")
            .envs(repo.database_url.iter().map(|u| ("KAIRO_DATABASE_URL", u)))
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap());
        if let Some(filter) = rust_log {
            cmd.env("RUST_LOG", filter);
        }
        let mut child = cmd.spawn().unwrap();
        let mut line = String::new();
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        reader.read_line(&mut line).unwrap();
        std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
        assert!(line.contains("listening on http://"), "stdout keeps the listening line: {line:?}");
        let url = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap().trim_end_matches(':').to_string();
        Logged { child, url, stderr }
    }

    /// SIGTERM, wait, and return everything the process wrote to stderr.
    fn stop(mut self) -> String {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(self.child.wait().unwrap().success());
        std::fs::read_to_string(&self.stderr).unwrap()
    }

    /// Status, `x-request-id` of the answer, and body of a request sent exactly as given.
    fn raw(&self, method: &str, path: &str, extra_headers: &[u8], body: &[u8]) -> (u16, Option<String>, String) {
        let addr = self.url.trim_start_matches("http://");
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n").into_bytes();
        if !body.is_empty() {
            request.extend_from_slice(
                format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()).as_bytes(),
            );
        }
        request.extend_from_slice(extra_headers);
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(body);
        s.write_all(&request).unwrap();
        let mut response = Vec::new();
        let _ = s.read_to_end(&mut response);
        let text = String::from_utf8_lossy(&response).to_string();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let id = head
            .lines()
            .find_map(|l| l.strip_prefix("x-request-id: ").or_else(|| l.strip_prefix("X-Request-Id: ")))
            .map(str::to_string);
        (status, id, body.to_string())
    }
}

impl Drop for Logged {
    /// A failed assertion must not leave a server running (it would hold the test's files).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The text request lines (target `kairo_http::request_log`) of a stderr.
fn text_request_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains(" kairo_http::request_log: ")).collect()
}

/// A field `name=value` of a text log line.
fn field<'a>(line: &'a str, name: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name).and_then(|rest| rest.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {name} in {line}"))
}

fn is_generated_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

#[test]
fn kairo_server_logs_one_text_line_per_request_without_the_query() {
    let repo = Repo::new();
    let server = Logged::start(&repo, &["server"], None);
    let (status, id, body) = server.raw(
        "GET",
        "/api/2.0/mlflow/experiments/get?experiment_id=0&token=hunter2",
        b"x-request-id: client-chosen-1\r\n",
        b"",
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(id.as_deref(), Some("client-chosen-1"), "the client's id is echoed");
    let (status, id, _) = server.raw("GET", "/no/such/endpoint", b"", b"");
    assert_eq!(status, 404);
    let generated = id.expect("a generated id is echoed");
    assert!(is_generated_id(&generated), "{generated}");
    let stderr = server.stop();

    assert!(!stderr.contains("hunter2"), "the query string is never logged:\n{stderr}");
    let lines = text_request_lines(&stderr);
    assert_eq!(lines.len(), 2, "one line per request:\n{stderr}");
    let first = lines[0];
    assert!(first.contains(" INFO "), "{first}");
    assert_eq!(field(first, "method"), "GET");
    assert_eq!(field(first, "path"), "/api/2.0/mlflow/experiments/get");
    assert_eq!(field(first, "status"), "200");
    assert!(field(first, "latency_ms").parse::<f64>().unwrap() >= 0.0, "{first}");
    assert_eq!(field(first, "request_id"), "client-chosen-1");
    assert_eq!(field(lines[1], "status"), "404");
    assert_eq!(field(lines[1], "request_id"), generated);
    assert!(stderr.contains("shutting down"), "the shutdown is logged too:\n{stderr}");
}

#[test]
fn kairo_serve_logs_json_lines_that_join_the_prediction_log() {
    let repo = Repo::new();
    let f = fixture("logreg20.onnx");
    repo.kairo(&["models", "register", "clf", "--file", f.to_str().unwrap()]).assert().success();
    repo.kairo(&["deploy", "clf", "--version", "1"]).assert().success();
    let serve = Logged::start(&repo, &["serve", "clf", "--threads", "1", "--log-format", "json"], None);
    let input = json!([{"name": "input", "shape": [1, 20], "datatype": "FP32", "data": vec![0.25f32; 20]}]);
    let infer = "/v2/models/clf/infer";

    // No id: one is made, echoed, logged and written to the prediction log.
    let (status, made, body) = serve.raw("POST", infer, b"", json!({"inputs": input}).to_string().as_bytes());
    assert_eq!(status, 200, "{body}");
    let made = made.expect("a generated id is echoed");
    assert!(is_generated_id(&made), "{made}");
    // The client's header id, on /invocations.
    let table = json!({"inputs": [vec![0.25f32; 20]]}).to_string();
    let (status, id, body) = serve.raw("POST", "/invocations", b"x-request-id: join-me\r\n", table.as_bytes());
    assert_eq!((status, id.as_deref()), (200, Some("join-me")), "{body}");
    // OIP's own id names the request (the protocol echoes it), over the header's.
    let oip = json!({"id": "oip-body-7", "inputs": input}).to_string();
    let (status, id, body) = serve.raw("POST", infer, b"x-request-id: header-8\r\n", oip.as_bytes());
    assert_eq!((status, id.as_deref()), (200, Some("oip-body-7")), "{body}");
    // Hostile ids are replaced by made ones: too long, with spaces and tabs, not ASCII.
    let long = format!("x-request-id: {}\r\n", "a".repeat(10_000));
    let hostile: [&[u8]; 3] =
        [long.as_bytes(), b"x-request-id: two words\tand a tab\r\n", "x-request-id: caf\u{e9}\r\n".as_bytes()];
    let mut replaced = Vec::new();
    for header in hostile {
        let (status, id, body) = serve.raw("POST", "/invocations", header, table.as_bytes());
        assert_eq!(status, 200, "{body}");
        let id = id.expect("an id is echoed");
        assert!(is_generated_id(&id), "a hostile id is replaced, not echoed: {id:?}");
        replaced.push(id);
    }
    // A refusal is logged with its status too.
    let (status, _, _) = serve.raw("POST", infer, b"", b"{not json");
    assert_eq!(status, 400);
    let stderr = serve.stop();

    let events: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}")))
        .collect();
    let lines: Vec<&Value> = events.iter().filter(|e| e["target"] == "kairo_http::request_log").collect();
    assert_eq!(lines.len(), 7, "one line per request:\n{stderr}");
    for l in &lines {
        assert_eq!(l["level"], "INFO", "{l}");
        assert_eq!(l["method"], "POST", "{l}");
        assert!(l["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{l}");
        assert!(l["timestamp"].is_string(), "{l}");
    }
    let ids: Vec<&str> = lines.iter().map(|l| l["request_id"].as_str().unwrap()).collect();
    let mut expected = vec![made.as_str(), "join-me", "oip-body-7"];
    expected.extend(replaced.iter().map(String::as_str));
    assert_eq!(&ids[..6], expected.as_slice());
    assert_eq!((&lines[0]["path"], &lines[0]["status"]), (&json!(infer), &json!(200)));
    assert_eq!((&lines[1]["path"], &lines[1]["status"]), (&json!("/invocations"), &json!(200)));
    assert_eq!(lines[6]["status"], 400);
    assert!(!stderr.contains("aaaaaaaaaa") && !stderr.contains("two words"), "hostile ids are not logged");

    // The prediction log carries the same ids (the writer flushed on shutdown).
    let log = repo.json(&["models", "predictions", "clf", "--limit", "100"]);
    let mut logged: Vec<&str> =
        log["rows"].as_array().unwrap().iter().map(|r| r["request_id"].as_str().unwrap()).collect();
    logged.sort();
    let mut want = expected.clone();
    want.sort();
    assert_eq!(logged, want);
}

#[test]
fn rust_log_filters_the_request_lines() {
    let repo = Repo::new();
    let server = Logged::start(&repo, &["server"], Some("warn"));
    let (status, id, _) = server.raw("GET", "/health", b"", b"");
    assert_eq!(status, 200);
    assert!(id.is_some_and(|id| is_generated_id(&id)), "ids are still given when lines are filtered out");
    let stderr = server.stop();
    assert!(text_request_lines(&stderr).is_empty() && !stderr.contains("shutting down"), "{stderr}");

    // Only the request lines, by their target.
    let server = Logged::start(&repo, &["server"], Some("info,kairo_http::request_log=off"));
    assert_eq!(server.raw("GET", "/health", b"", b"").0, 200);
    let stderr = server.stop();
    assert!(text_request_lines(&stderr).is_empty() && stderr.contains("shutting down"), "{stderr}");

    // A filter that does not parse is refused at start, naming RUST_LOG.
    let out = repo.kairo(&["server", "--port", "0"]).env("RUST_LOG", "kairo=loud").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("RUST_LOG") && err.contains("kairo=loud"), "{err}");
}
