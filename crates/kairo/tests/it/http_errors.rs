//! Snapshots of HTTP error responses through real sockets: status, content type and body of
//! `kairo server`'s MLflow API and `kairo serve`'s OIP and `/invocations` endpoints when a
//! client gets something wrong. A changed code, status or message fails here until the
//! snapshot is updated and reviewed.

use crate::server::Server;
use crate::serving::{fixture, Serve};
use crate::Repo;

/// The HTTP exchanges of one snapshot, each as request line, status, content type and body
/// (pretty-printed when it is JSON).
struct Exchanges {
    base: String,
    client: reqwest::blocking::Client,
    text: String,
}

impl Exchanges {
    fn new(base: &str) -> Self {
        Exchanges { base: base.to_string(), client: reqwest::blocking::Client::new(), text: String::new() }
    }

    /// Send a request and record the answer; returns its status. `shown` stands for a body too
    /// large to print.
    fn send(&mut self, method: &str, path: &str, content_type: Option<&str>, body: &[u8], shown: Option<&str>) -> u16 {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.client.request(method.clone(), format!("{}{path}", self.base)).body(body.to_vec());
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let r = req.send().unwrap();
        let status = r.status();
        let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
        let answer = r.text().unwrap();
        let answer = match serde_json::from_str::<serde_json::Value>(&answer) {
            Ok(v) => serde_json::to_string_pretty(&v).unwrap(),
            Err(_) => answer,
        };
        self.text.push_str(&format!("> {method} {path}\n"));
        if let Some(ct) = content_type {
            self.text.push_str(&format!("> content-type: {ct}\n"));
        }
        match shown {
            Some(s) => self.text.push_str(&format!("> {s}\n")),
            None if !body.is_empty() => self.text.push_str(&format!("> {}\n", String::from_utf8_lossy(body))),
            None => {}
        }
        self.text.push_str(&format!("< {status}\n< content-type: {ct}\n{answer}\n\n"));
        status.as_u16()
    }

    fn json(&mut self, method: &str, path: &str, body: &str) -> u16 {
        self.send(method, path, Some("application/json"), body.as_bytes(), None)
    }
}

/// `kairo server`: an unknown experiment, invalid parameters, a guarded alias moved past its
/// gates, an oversized body, an unknown endpoint.
#[test]
fn mlflow_tracking_server_errors() {
    let repo = Repo::new();
    repo.write("kairo.yaml", "version: 1\nmodels:\n  clf:\n    gates: [\"auc >= 0.9\"]\n    approval: required\n");
    repo.write("m.onnx", std::fs::read(fixture("logreg20.onnx")).unwrap());
    repo.kairo(&["models", "register", "clf", "--file", "m.onnx", "--metric", "auc=0.5"]).assert().success();
    let server = Server::start(&repo);
    let mut x = Exchanges::new(&server.url);

    assert_eq!(x.send("GET", "/api/2.0/mlflow/experiments/get?experiment_id=4242", None, b"", None), 404);
    assert_eq!(x.send("GET", "/api/2.0/mlflow/experiments/get-by-name?experiment_name=nope", None, b"", None), 404);
    assert_eq!(x.send("GET", "/api/2.0/mlflow/runs/get?run_id=0123456789abcdef0123456789abcdef", None, b"", None), 404);
    assert_eq!(x.json("POST", "/api/2.0/mlflow/experiments/create", "{}"), 400);
    assert_eq!(x.json("POST", "/api/2.0/mlflow/runs/create", r#"{"experiment_id": "zero"}"#), 400);
    assert_eq!(x.json("POST", "/api/2.0/mlflow/runs/create", "{not json"), 400);
    assert_eq!(x.send("GET", "/api/2.0/mlflow/registered-models/get?name=nope", None, b"", None), 404);
    let alias = r#"{"name": "clf", "alias": "champion", "version": "1"}"#;
    assert_eq!(x.json("POST", "/api/2.0/mlflow/registered-models/alias", alias), 403);
    let big = format!("{{\"experiment_id\": \"0\", \"run_name\": \"{}\"}}", "x".repeat(4 << 20));
    assert_eq!(
        x.send(
            "POST",
            "/api/2.0/mlflow/runs/create",
            Some("application/json"),
            big.as_bytes(),
            Some(&format!("({} bytes of JSON)", big.len()))
        ),
        413
    );
    assert_eq!(x.send("GET", "/api/2.0/mlflow/no-such-endpoint", None, b"", None), 404);
    server.stop();

    let _s = crate::snapshot_settings().bind_to_scope();
    insta::assert_snapshot!("mlflow_server", x.text);
}

/// `kairo serve`: an unknown model on both protocols, malformed JSON, a wrong content type
/// (`/invocations`, `/v1/feedback`; OIP infer takes any, as tritonclient sends none), a body
/// over the limit, input of the wrong shape.
#[test]
fn inference_server_errors() {
    let repo = Repo::new();
    repo.write("m.onnx", std::fs::read(fixture("logreg20.onnx")).unwrap());
    repo.kairo(&["models", "register", "clf", "--file", "m.onnx"]).assert().success();
    repo.kairo(&["deploy", "clf", "--version", "1"]).assert().success();
    let serve = Serve::start(&repo, &["clf", "--threads", "1", "--max-body-mb", "1"]);
    let mut x = Exchanges::new(&serve.url);
    let good = format!(
        r#"{{"inputs": [{{"name": "input", "shape": [1, 20], "datatype": "FP32", "data": {:?}}}]}}"#,
        [0.5f32; 20]
    );

    assert_eq!(x.json("POST", "/v2/models/nope/infer", &good), 404);
    assert_eq!(x.json("POST", "/invocations?model=nope", r#"{"inputs": [[0.5]]}"#), 404);
    assert_eq!(x.send("GET", "/v2/models/nope", None, b"", None), 404);
    assert_eq!(x.send("GET", "/v2/models/clf/versions/7", None, b"", None), 404);
    assert_eq!(x.json("POST", "/v2/models/clf/infer", "{\"inputs\": ["), 400);
    assert_eq!(x.json("POST", "/invocations", "{\"inputs\": ["), 400);
    let feedback = br#"{"request_id": "r", "label": 1}"#;
    assert_eq!(x.send("POST", "/v1/feedback", Some("text/plain"), feedback, None), 415);
    assert_eq!(x.send("POST", "/invocations", Some("application/xml"), b"<inputs/>", None), 415);
    let wrong_shape = r#"{"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}"#;
    assert_eq!(x.json("POST", "/v2/models/clf/infer", wrong_shape), 400);
    let big = vec![b' '; (1 << 20) + 1];
    assert_eq!(x.send("POST", "/v2/models/clf/infer", Some("application/json"), &big, Some("(1 MiB + 1 byte)")), 413);
    assert_eq!(x.send("POST", "/invocations", Some("application/json"), &big, Some("(1 MiB + 1 byte)")), 413);
    assert_eq!(x.send("GET", "/v3/nothing", None, b"", None), 404);
    serve.stop();

    let _s = crate::snapshot_settings().bind_to_scope();
    insta::assert_snapshot!("serve", x.text);
}
