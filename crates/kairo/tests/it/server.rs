//! `kairo server` through real sockets: the MLflow client, client mistakes, path traversal,
//! durability across `kill -9`, concurrent writers, and stages logging to their own run.

use crate::Repo;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

/// A `kairo server` on a free port, stopped (SIGTERM) when dropped.
pub struct Server {
    child: crate::Listening,
    pub url: String,
}

impl Server {
    pub fn start(repo: &Repo) -> Server {
        let (child, url) = crate::spawn_listening(repo, &["server", "--port", "0"]);
        Server { child, url }
    }

    /// A server started with other arguments (`crate::spawn_listening`).
    pub fn from_child(child: crate::Listening, url: String) -> Server {
        Server { child, url }
    }

    pub fn get_text(&self, path_and_query: &str) -> (u16, String) {
        let r = reqwest::blocking::get(format!("{}{path_and_query}", self.url)).unwrap();
        (r.status().as_u16(), r.text().unwrap_or_default())
    }

    pub fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = reqwest::blocking::Client::new().post(format!("{}{path}", self.url)).json(&body).send().unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    pub fn get(&self, path_and_query: &str) -> (u16, Value) {
        let r = reqwest::blocking::get(format!("{}{path_and_query}", self.url)).unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    /// A request with the path sent exactly as given (no client-side normalisation).
    pub fn raw(&self, method: &str, path: &str, body: &[u8]) -> u16 {
        let addr = self.url.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .unwrap();
        s.write_all(body).unwrap();
        let mut response = String::new();
        let _ = s.read_to_string(&mut response);
        response.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn stop(mut self) -> std::process::ExitStatus {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

/// The Python of a venv with the pinned mlflow client.
pub fn python() -> Option<String> {
    crate::service("KAIRO_TEST_PYTHON")
}

fn create_run(server: &Server) -> String {
    let (status, v) = server.post("/api/2.0/mlflow/runs/create", json!({"experiment_id": "0", "start_time": 1}));
    assert_eq!(status, 200, "{v}");
    v["run"]["info"]["run_id"].as_str().unwrap().to_string()
}

#[test]
fn the_mlflow_client_logs_registers_and_loads_models_through_kairo_server() {
    let Some(python) = python() else { return };
    mlflow_client_end_to_end(&python, Repo::new());
}

#[test]
fn the_mlflow_client_works_the_same_on_postgres() {
    let Some(python) = python() else { return };
    let Some(base) = crate::service("KAIRO_TEST_POSTGRES_URL") else { return };
    let url = crate::faults::fresh_postgres_database(&base);
    mlflow_client_end_to_end(&python, Repo::bare().with_database(url).initialised());
}

fn mlflow_client_end_to_end(python: &str, repo: Repo) {
    let server = Server::start(&repo);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/mlflow_tracking.py");
    let out = Command::new(python)
        .arg(&script)
        .current_dir(repo.path())
        .env("MLFLOW_TRACKING_URI", &server.url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mlflow client script failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();

    // The same runs, seen by `kairo runs`.
    let runs = repo.json(&["runs", "ls"]);
    let find = |id: &Value| {
        runs.as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == *id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} not in {runs}"))
    };
    let parent = find(&summary["parent"]);
    assert_eq!(parent["stage"], "parent");
    assert_eq!(parent["status"], "succeeded");
    assert_eq!(parent["metrics"]["acc"], 0.91);
    assert_eq!(parent["params"]["mlflow"]["solver"], "saga");
    assert_eq!(find(&summary["model_run"])["metrics"]["train_acc"], 1.0);
    let filtered = repo.json(&["runs", "ls", "--where", "acc>=0.95"]);
    assert_eq!(filtered[0]["id"], summary["child"]);
    drop(server);
}

#[test]
fn client_mistakes_get_4xx_with_mlflow_error_codes_never_5xx() {
    let repo = Repo::new();
    let server = Server::start(&repo);
    let code = |v: &Value| v["error_code"].as_str().unwrap_or("").to_string();
    let run = create_run(&server);

    let r = reqwest::blocking::Client::new()
        .post(format!("{}/api/2.0/mlflow/runs/log-metric", server.url))
        .body("{not json")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(code(&r.json().unwrap()), "INVALID_PARAMETER_VALUE");

    for (path, body) in [
        ("/api/2.0/mlflow/runs/log-metric", json!({"run_id": run, "key": "m", "value": "high", "timestamp": 1})),
        ("/api/2.0/mlflow/runs/log-metric", json!({"run_id": run, "key": "m", "value": 1, "timestamp": "soon"})),
        ("/api/2.0/mlflow/runs/log-metric", json!({"run_id": run, "value": 1})),
        ("/api/2.0/mlflow/runs/log-metric", json!({"run_id": run, "key": "../escape", "value": 1})),
        ("/api/2.0/mlflow/runs/log-parameter", json!({"run_id": run, "key": "p", "value": "x".repeat(6001)})),
        ("/api/2.0/mlflow/runs/set-tag", json!({"run_id": run, "key": {"nested": 1}, "value": "v"})),
        ("/api/2.0/mlflow/experiments/create", json!({"name": ""})),
        ("/api/2.0/mlflow/runs/search", json!({"experiment_ids": ["0"], "filter": "metrics.acc > 'high'"})),
        ("/api/2.0/mlflow/runs/search", json!({"experiment_ids": ["0"], "max_results": 100000})),
        ("/api/2.0/mlflow/runs/search", json!({"experiment_ids": ["0"], "page_token": "%%%"})),
        ("/api/2.0/mlflow/runs/update", json!({"run_id": run, "status": "DONE"})),
        ("/api/2.0/mlflow/model-versions/create", json!({"name": "x", "source": "/etc/passwd"})),
    ] {
        let (status, v) = server.post(path, body.clone());
        assert_eq!((status, code(&v)), (400, "INVALID_PARAMETER_VALUE".to_string()), "{path} {body}: {v}");
    }
    let metrics: Vec<Value> = (0..1001).map(|i| json!({"key": "m", "value": i, "timestamp": 1, "step": i})).collect();
    let (status, v) = server.post("/api/2.0/mlflow/runs/log-batch", json!({"run_id": run, "metrics": metrics}));
    assert_eq!((status, code(&v)), (400, "INVALID_PARAMETER_VALUE".into()), "{v}");
    let huge = "x".repeat(5 * 1024 * 1024);
    // An oversized body is 413 (not 400), with a message that names the limit.
    let (status, v) = server.post("/api/2.0/mlflow/runs/set-tag", json!({"run_id": run, "key": "k", "value": huge}));
    assert_eq!(status, 413, "{v}");
    assert!(v["message"].as_str().unwrap_or("").contains("larger than the limit"), "{v}");

    // Changing a param is refused; the same value again is fine.
    assert_eq!(
        server.post("/api/2.0/mlflow/runs/log-parameter", json!({"run_id": run, "key": "p", "value": "1"})).0,
        200
    );
    assert_eq!(
        server.post("/api/2.0/mlflow/runs/log-parameter", json!({"run_id": run, "key": "p", "value": "1"})).0,
        200
    );
    let (status, v) =
        server.post("/api/2.0/mlflow/runs/log-parameter", json!({"run_id": run, "key": "p", "value": "2"}));
    assert_eq!((status, code(&v)), (400, "INVALID_PARAMETER_VALUE".into()));

    // Not found, already exists, unknown endpoint.
    let (status, v) = server.get("/api/2.0/mlflow/runs/get?run_id=ffffffffffffffffffffffffffffffff");
    assert_eq!((status, code(&v)), (404, "RESOURCE_DOES_NOT_EXIST".into()));
    assert_eq!(server.post("/api/2.0/mlflow/experiments/create", json!({"name": "e"})).0, 200);
    let (status, v) = server.post("/api/2.0/mlflow/experiments/create", json!({"name": "e"}));
    assert_eq!((status, code(&v)), (400, "RESOURCE_ALREADY_EXISTS".into()));
    let (status, v) = server.get("/api/2.0/mlflow/traces/abc");
    assert_eq!((status, code(&v)), (404, "ENDPOINT_NOT_FOUND".into()));

    // NaN and infinities round-trip the way protobuf JSON writes them; run_uuid works too.
    let (status, _) = server
        .post("/api/2.0/mlflow/runs/log-metric", json!({"run_uuid": run, "key": "n", "value": "NaN", "timestamp": 5}));
    assert_eq!(status, 200);
    server.post(
        "/api/2.0/mlflow/runs/log-metric",
        json!({"run_id": run, "key": "i", "value": "-Infinity", "timestamp": 5}),
    );
    let (_, v) = server.get(&format!("/api/2.0/mlflow/runs/get?run_id={run}"));
    let metrics = v["run"]["data"]["metrics"].as_array().unwrap();
    assert!(metrics.iter().any(|m| m["key"] == "n" && m["value"] == "NaN"), "{v}");
    assert!(metrics.iter().any(|m| m["key"] == "i" && m["value"] == "-Infinity"), "{v}");
    assert_eq!(v["run"]["info"]["run_uuid"], run.as_str());
}

#[test]
fn artifact_paths_cannot_escape_the_artifact_root() {
    let repo = Repo::new();
    repo.write("secret.txt", "do not serve me\n");
    let server = Server::start(&repo);
    let run = create_run(&server);
    let base = format!("/api/2.0/mlflow-artifacts/artifacts/0/{run}/artifacts");
    assert_eq!(server.raw("PUT", &format!("{base}/ok.txt"), b"fine\n"), 200);
    let r = reqwest::blocking::get(format!("{}{base}/ok.txt", server.url)).unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.bytes().unwrap().as_ref(), b"fine\n");

    let attacks = [
        format!("{base}/../../../../secret.txt"),
        format!("{base}/..%2f..%2f..%2fsecret.txt"),
        format!("{base}/%2e%2e/%2e%2e/secret.txt"),
        format!("{base}/%252e%252e%252f%252e%252e%252fsecret.txt"),
        format!("{base}/..%5c..%5csecret.txt"),
        format!("{base}/a\\..\\..\\secret.txt"),
        format!("{base}/ok.txt%00.png"),
        "/api/2.0/mlflow-artifacts/artifacts/%2Fetc%2Fpasswd".to_string(),
        "/api/2.0/mlflow-artifacts/artifacts//etc/passwd".to_string(),
        // CVE-2023-1177 / CVE-2023-2780 shapes: traversal in the list `path` parameter.
        "/api/2.0/mlflow-artifacts/artifacts?path=../../../../etc".to_string(),
        "/ajax-api/2.0/mlflow-artifacts/artifacts?path=..%2f..%2fetc".to_string(),
        "/api/2.0/mlflow-artifacts/artifacts?path=%252e%252e%252f".to_string(),
        format!("/api/2.0/mlflow/artifacts/list?run_id={run}&path=../../.."),
        format!("/api/2.0/mlflow/artifacts/list?run_id={run}&path=%2Fetc"),
    ];
    for path in &attacks {
        for method in ["GET", "PUT"] {
            let status = server.raw(method, path, b"overwrite");
            assert!(status == 400 || (method == "PUT" && status == 405), "{method} {path} -> {status}");
        }
    }
    assert_eq!(std::fs::read(repo.join("secret.txt")).unwrap(), b"do not serve me\n");
    let (_, listing) = server.get(&format!("/api/2.0/mlflow/artifacts/list?run_id={run}"));
    assert_eq!(listing["files"], json!([{"path": "ok.txt", "is_dir": false, "file_size": 5}]));
}

#[test]
fn acknowledged_writes_survive_kill_9_of_the_server() {
    let repo = Repo::new();
    let server = Server::start(&repo);
    let run = create_run(&server);
    for i in 0..50 {
        let (status, _) = server.post(
            "/api/2.0/mlflow/runs/log-metric",
            json!({"run_id": run, "key": "loss", "value": i, "timestamp": i, "step": i}),
        );
        assert_eq!(status, 200);
    }
    assert_eq!(
        server.post("/api/2.0/mlflow/runs/log-parameter", json!({"run_id": run, "key": "lr", "value": "0.1"})).0,
        200
    );
    server.kill9();
    let server = Server::start(&repo);
    let (_, history) = server.get(&format!("/api/2.0/mlflow/metrics/get-history?run_id={run}&metric_key=loss"));
    assert_eq!(history["metrics"].as_array().unwrap().len(), 50);
    let (_, v) = server.get(&format!("/api/2.0/mlflow/runs/get?run_id={run}"));
    assert_eq!(v["run"]["data"]["params"], json!([{"key": "lr", "value": "0.1"}]));
    // A run an MLflow client is still using is not an orphan of some kairo process.
    repo.kairo(&["runs", "ls"]).assert().success();
    let (_, v) = server.get(&format!("/api/2.0/mlflow/runs/get?run_id={run}"));
    assert_eq!(v["run"]["info"]["status"], "RUNNING");
    // Graceful stop: exit 0 and the announcement file is gone.
    assert!(repo.join(".kairo/server.json").exists());
    assert!(server.stop().success());
    assert!(!repo.join(".kairo/server.json").exists());
}

#[test]
fn eight_concurrent_clients_on_sqlite_lose_no_write() {
    let repo = Repo::new();
    let server = Server::start(&repo);
    let runs: Vec<String> = (0..4).map(|_| create_run(&server)).collect();
    let url = server.url.clone();
    let handles: Vec<_> = (0..8)
        .map(|client| {
            let (url, run) = (url.clone(), runs[client % 4].clone());
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::new();
                let mut failures = Vec::new();
                for i in 0..150 {
                    let body = if i % 10 == 0 {
                        json!({"run_id": run, "metrics": [{"key": format!("c{client}"), "value": i, "timestamp": i, "step": i}], "tags": [{"key": format!("t{client}"), "value": i.to_string()}]})
                    } else {
                        json!({"run_id": run, "key": format!("c{client}"), "value": i, "timestamp": i, "step": i})
                    };
                    let path = if i % 10 == 0 { "log-batch" } else { "log-metric" };
                    let r = http.post(format!("{url}/api/2.0/mlflow/runs/{path}")).json(&body).send().unwrap();
                    if r.status().as_u16() != 200 {
                        failures.push(r.text().unwrap_or_default());
                    }
                }
                failures
            })
        })
        .collect();
    let failures: Vec<String> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    assert!(failures.is_empty(), "{} failed writes, e.g. {:?}", failures.len(), failures.first());
    for client in 0..8 {
        let (_, h) = server
            .get(&format!("/api/2.0/mlflow/metrics/get-history?run_id={}&metric_key=c{client}", runs[client % 4]));
        assert_eq!(h["metrics"].as_array().unwrap().len(), 150, "client {client}");
    }
}

#[test]
fn a_stage_logs_to_its_own_run_through_a_running_server() {
    let Some(python) = python() else { return };
    let repo = Repo::new();
    let config = std::fs::read_to_string(repo.join("kairo.yaml")).unwrap();
    repo.write(
        "kairo.yaml",
        format!("{config}stages:\n  fit:\n    cmd: {python} fit.py\n    deps: [fit.py]\n    outs: [out.txt]\n"),
    );
    repo.write(
        "fit.py",
        "import mlflow, os\nwith mlflow.start_run() as r:\n    assert r.info.run_id == os.environ['KAIRO_RUN_ID']\n    mlflow.log_metric('val_loss', 0.25, step=3)\n    mlflow.log_param('depth', 4)\nopen('out.txt', 'w').write('ok')\n",
    );
    let server = Server::start(&repo);
    let v = repo.json(&["run"]);
    assert_eq!(v[0]["status"], "succeeded", "{v}");
    let id = v[0]["run_id"].as_str().unwrap();
    let (_, run) = server.get(&format!("/api/2.0/mlflow/runs/get?run_id={id}"));
    assert_eq!(run["run"]["info"]["status"], "FINISHED", "kairo, not the stage's client, finished the run: {run}");
    let metrics = run["run"]["data"]["metrics"].as_array().unwrap();
    assert!(metrics.iter().any(|m| m["key"] == "val_loss" && m["value"] == 0.25 && m["step"] == 3), "{run}");
    let shown = repo.json(&["runs", "show", id]);
    assert_eq!(shown["status"], "succeeded");
    assert_eq!(shown["outs"][0]["path"], "out.txt");
}

#[test]
fn kairo_api_v1_serves_runs_datasets_lineage_events_and_its_openapi_document() {
    let repo = Repo::new();
    repo.write("data/a.csv", "x\n1\n");
    repo.kairo(&["data", "add", "data"]).assert().success();
    let config = std::fs::read_to_string(repo.join("kairo.yaml")).unwrap();
    repo.write(
        "kairo.yaml",
        format!("{config}stages:\n  count:\n    cmd: sh count.sh\n    deps: [data]\n    outs: [count.txt]\n    metrics: [m.json]\n"),
    );
    repo.write("count.sh", "wc -l < data/a.csv > count.txt\necho '{\"rows\": 2}' > m.json\n");
    let ran = repo.json(&["run"]);
    let run_id = ran[0]["run_id"].as_str().unwrap().to_string();
    let server = Server::start(&repo);

    let (status, doc) = server.get("/api/v1/openapi.json");
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    for path in [
        "/api/v1/runs",
        "/api/v1/runs/{id}",
        "/api/v1/runs/{id}/metrics/{key}",
        "/api/v1/datasets",
        "/api/v1/lineage",
        "/api/v1/events",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing from the OpenAPI document");
    }
    assert!(doc["components"]["schemas"].get("RunDto").is_some());

    let (status, runs) = server.get("/api/v1/runs?stage=count");
    assert_eq!(status, 200);
    assert_eq!(runs["runs"][0]["id"], run_id.as_str());
    assert_eq!(runs["runs"][0]["metrics"]["rows"], 2.0);
    assert_eq!(runs["runs"][0]["inputs"][0]["dataset"], true);
    let (status, run) = server.get(&format!("/api/v1/runs/{}", &run_id[..20]));
    assert_eq!((status, run["outputs"][0]["path"].as_str()), (200, Some("count.txt")));
    let (_, history) = server.get(&format!("/api/v1/runs/{run_id}/metrics/rows"));
    assert_eq!(history["points"][0]["value"], 2.0);

    let (_, datasets) = server.get("/api/v1/datasets");
    assert_eq!(datasets["datasets"][0]["path"], "data");
    let (_, versions) = server.get("/api/v1/datasets/versions?path=data");
    assert_eq!(versions["versions"].as_array().unwrap().len(), 1);
    let (_, lineage) = server.get("/api/v1/lineage?target=count.txt");
    assert_eq!(lineage["produced_by"]["id"], run_id.as_str());
    let (_, events) = server.get(&format!("/api/v1/events?subject=run:{run_id}"));
    let kinds: Vec<&str> = events["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["run.started", "object.pinned", "run.finished"]
            .iter()
            .filter(|k| kinds.contains(k))
            .copied()
            .collect::<Vec<_>>()
    );
    assert!(kinds.contains(&"run.started") && kinds.contains(&"run.finished"), "{kinds:?}");

    // Artifacts of a run through Kairo's API: listing and verified download.
    let base = format!("/api/2.0/mlflow-artifacts/artifacts/0/{run_id}/artifacts");
    assert_eq!(server.raw("PUT", &format!("{base}/report/summary.txt"), b"all good\n"), 200);
    let (status, listing) = server.get(&format!("/api/v1/runs/{run_id}/artifacts"));
    assert_eq!(
        (status, listing["files"][0]["path"].as_str(), listing["files"][0]["is_dir"].as_bool()),
        (200, Some("report"), Some(true))
    );
    let (_, listing) = server.get(&format!("/api/v1/runs/{run_id}/artifacts?path=report"));
    assert_eq!(listing["files"][0]["path"], "report/summary.txt");
    let bytes = reqwest::blocking::get(format!("{}/api/v1/runs/{run_id}/artifacts/report/summary.txt", server.url))
        .unwrap()
        .bytes()
        .unwrap();
    assert_eq!(bytes.as_ref(), b"all good\n");
    assert_eq!(server.raw("GET", &format!("/api/v1/runs/{run_id}/artifacts/..%2f..%2fsecret"), b""), 400);
    assert!(doc["paths"].get("/api/v1/runs/{id}/artifacts").is_some());

    // Kairo's error shape and codes.
    let (status, e) = server.get("/api/v1/runs/ffffffffffff");
    assert_eq!((status, e["code"].as_str()), (404, Some("not_found")));
    let (status, e) = server.get("/api/v1/runs?status=weird");
    assert_eq!((status, e["code"].as_str()), (400, Some("invalid_parameter")));
    let (status, e) = server.get("/api/v1/runs?limit=abc");
    assert_eq!((status, e["code"].as_str()), (400, Some("invalid_parameter")));
    let (status, e) = server.get("/api/v1/datasets/versions");
    assert_eq!((status, e["code"].as_str()), (400, Some("invalid_parameter")));
    let (status, e) = server.get("/api/v1/nothing");
    assert_eq!((status, e["code"].as_str()), (404, Some("endpoint_not_found")));
    let (status, e) = server.get("/api/v1/lineage?target=nowhere");
    assert_eq!((status, e["code"].as_str()), (404, Some("not_found")));
}

#[test]
fn large_artifacts_stream_back_verified_and_corruption_is_never_served() {
    let repo = Repo::new();
    let server = Server::start(&repo);
    let run = create_run(&server);
    let big: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let url = format!("{}/api/2.0/mlflow-artifacts/artifacts/0/{run}/artifacts/model.bin", server.url);
    let r = reqwest::blocking::Client::new().put(&url).body(big.clone()).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let got = reqwest::blocking::get(&url).unwrap();
    assert_eq!(got.headers()["content-length"], big.len().to_string().as_str());
    assert!(got.bytes().unwrap().as_ref() == big.as_slice(), "the download equals the upload");

    // Damage the stored object: the download must fail rather than hand out wrong bytes.
    repo.corrupt_in_store(&big[1_000_000..1_000_064]);
    let outcome = reqwest::blocking::get(&url).and_then(|r| r.bytes());
    if let Ok(bytes) = outcome {
        assert!(bytes.len() < big.len(), "a corrupted object was served in full");
    }
}

#[test]
fn the_mlflow_web_uis_own_endpoints_serve_files_and_sampled_histories() {
    let repo = Repo::new();
    let server = Server::start(&repo);
    let code = |v: &Value| v["error_code"].as_str().unwrap_or("").to_string();
    let message = |v: &Value| v["message"].as_str().unwrap_or("").to_string();
    let run = create_run(&server);
    let base = format!("/api/2.0/mlflow-artifacts/artifacts/0/{run}/artifacts");
    assert_eq!(server.raw("PUT", &format!("{base}/hello.txt"), b"hello\n"), 200);
    assert_eq!(server.raw("PUT", &format!("{base}/model/data.json"), b"{\"a\": 1}"), 200);
    assert_eq!(server.raw("PUT", &format!("{base}/page.html"), b"<script>alert(1)</script>"), 200);
    let metrics: Vec<Value> = (0..30)
        .map(|i| json!({"key": "loss", "value": 1.0 / (i + 1) as f64, "timestamp": 1000 + i, "step": i * 2}))
        .collect();
    assert_eq!(server.post("/api/2.0/mlflow/runs/log-batch", json!({"run_id": run, "metrics": metrics})).0, 200);
    assert_eq!(server.post("/api/2.0/mlflow/registered-models/create", json!({"name": "ui-model"})).0, 200);
    let (status, v) = server.post(
        "/api/2.0/mlflow/model-versions/create",
        json!({"name": "ui-model", "source": format!("runs:/{run}/model"), "run_id": run}),
    );
    assert_eq!(status, 200, "{v}");

    // A run's file, as the UI's artifact viewer asks for it (a browser GET, marked cross-site by
    // the browser when opened from elsewhere: reading is never refused).
    let http = reqwest::blocking::Client::new();
    let r = http
        .get(format!("{}/get-artifact?path=hello.txt&run_uuid={run}", server.url))
        .header("Sec-Fetch-Site", "cross-site")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "text/plain");
    assert_eq!(r.headers()["content-disposition"], "attachment; filename=\"hello.txt\"");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.bytes().unwrap().as_ref(), b"hello\n");
    // Uploaded HTML is bytes to download, never a page on this origin.
    let r = http.get(format!("{}/get-artifact?path=page.html&run_id={run}", server.url)).send().unwrap();
    assert_eq!(r.headers()["content-type"], "application/octet-stream");
    assert!(r.headers()["content-security-policy"].to_str().unwrap().contains("sandbox"));
    // A model version's file, under the version's source.
    let r = http.get(format!("{}/model-versions/get-artifact?path=data.json&name=ui-model&version=1", server.url));
    let r = r.send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.bytes().unwrap().as_ref(), b"{\"a\": 1}");
    assert_eq!(server.raw("POST", &format!("/get-artifact?path=hello.txt&run_uuid={run}"), b""), 405);

    // Bad paths are refused by the proxy's own check, naming the parameter; missing things are 404.
    for (query, status, error) in [
        (format!("get-artifact?path=../x&run_uuid={run}"), 400, "INVALID_PARAMETER_VALUE"),
        (format!("get-artifact?path=model/../../x&run_uuid={run}"), 400, "INVALID_PARAMETER_VALUE"),
        (format!("get-artifact?path=%2Fetc%2Fpasswd&run_uuid={run}"), 400, "INVALID_PARAMETER_VALUE"),
        (format!("get-artifact?path=%252e%252e%252fx&run_uuid={run}"), 400, "INVALID_PARAMETER_VALUE"),
        (format!("get-artifact?path=model&run_uuid={run}"), 400, "INVALID_PARAMETER_VALUE"),
        (format!("get-artifact?run_uuid={run}"), 400, "INVALID_PARAMETER_VALUE"),
        (format!("get-artifact?path=nope.txt&run_uuid={run}"), 404, "RESOURCE_DOES_NOT_EXIST"),
        (
            "get-artifact?path=hello.txt&run_uuid=ffffffffffffffffffffffffffffffff".into(),
            404,
            "RESOURCE_DOES_NOT_EXIST",
        ),
        (
            "model-versions/get-artifact?path=../hello.txt&name=ui-model&version=1".into(),
            400,
            "INVALID_PARAMETER_VALUE",
        ),
        ("model-versions/get-artifact?path=/etc/passwd&name=ui-model&version=1".into(), 400, "INVALID_PARAMETER_VALUE"),
        ("model-versions/get-artifact?path=data.json&name=ui-model&version=x".into(), 400, "INVALID_PARAMETER_VALUE"),
        ("model-versions/get-artifact?path=data.json&name=ui-model&version=9".into(), 404, "RESOURCE_DOES_NOT_EXIST"),
        ("model-versions/get-artifact?path=data.json&name=nope&version=1".into(), 404, "RESOURCE_DOES_NOT_EXIST"),
    ] {
        let (got, v) = server.get(&format!("/{query}"));
        assert_eq!((got, code(&v)), (status, error.to_string()), "{query}: {v}");
        if query.contains("path=") && status == 400 && !query.contains("version=x") {
            assert!(message(&v).contains("'path'"), "{query}: {v}");
        }
    }

    // The charts' sampled histories: at most max_results points per run, first and last kept,
    // as MLflow's server samples them; under both prefixes.
    let steps = |v: &Value| -> Vec<i64> {
        v["metrics"].as_array().unwrap().iter().map(|m| m["step"].as_i64().unwrap()).collect()
    };
    let bulk = "/mlflow/metrics/get-history-bulk-interval";
    let (status, v) = server.get(&format!("/ajax-api/2.0{bulk}?run_ids={run}&metric_key=loss&max_results=5"));
    assert_eq!(status, 200, "{v}");
    assert_eq!(steps(&v), [0, 12, 24, 36, 58]);
    assert_eq!(v["metrics"][0], json!({"key": "loss", "value": 1.0, "timestamp": 1000, "step": 0, "run_id": run}));
    let (_, v) =
        server.get(&format!("/api/2.0{bulk}?run_ids={run}&metric_key=loss&start_step=10&end_step=20&max_results=3"));
    assert_eq!(steps(&v), [10, 14, 20]);
    let (_, v) = server
        .get(&format!("/ajax-api/2.0{bulk}?run_ids={run}&run_ids=ffffffffffffffffffffffffffffffff&metric_key=loss"));
    assert_eq!(steps(&v).len(), 30, "all points by default; an unknown run adds none, as on MLflow: {v}");
    let too_many: String = (0..101).map(|i| format!("run_ids={i:032x}&")).collect();
    for (query, parameter) in [
        (format!("{too_many}metric_key=loss"), "run_ids"),
        ("metric_key=loss".to_string(), "run_ids"),
        (format!("run_ids={run}"), "metric_key"),
        (format!("run_ids={run}&metric_key=loss&max_results=0"), "max_results"),
        (format!("run_ids={run}&metric_key=loss&max_results=2501"), "max_results"),
        (format!("run_ids={run}&metric_key=loss&max_results=5.0"), "max_results"),
        (format!("run_ids={run}&metric_key=loss&start_step=3"), "end_step"),
        (format!("run_ids={run}&metric_key=loss&start_step=3&end_step=1"), "end_step"),
    ] {
        let (status, v) = server.get(&format!("/ajax-api/2.0{bulk}?{query}"));
        assert_eq!(
            (status, code(&v)),
            (400, "INVALID_PARAMETER_VALUE".into()),
            "{}: {v}",
            &query[query.len().saturating_sub(60)..]
        );
        assert!(message(&v).contains(&format!("'{parameter}'")), "{v}");
    }
}
