//! The registry, promotion gates and `kairo serve` through the real binary and real sockets:
//! registration with validation, gates and approvals, OIP (JSON and binary) and MLflow
//! payloads against onnxruntime's outputs, bad input, hot swap, canary and shadow with
//! automatic rollback, corrupted models, the prediction log and feedback.

use crate::Repo;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models").join(name)
}

/// Register the fixture `model` as `name` with `data` (target `label`) profiled as its
/// reference; the registration's JSON.
pub fn register_profiled(repo: &Repo, name: &str, model: &str, data: &str) -> Value {
    let path = fixture(model);
    let file = path.to_str().unwrap();
    repo.json(&["models", "register", name, "--file", file, "--profile-data", data, "--target", "label"])
}

fn case(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(fixture(&format!("{name}.cases.json"))).unwrap()).unwrap()
}

/// A `kairo serve` on a free port, stopped with SIGTERM when dropped.
pub struct Serve {
    child: crate::Listening,
    pub url: String,
}

impl Serve {
    pub fn start(repo: &Repo, args: &[&str]) -> Serve {
        let mut all = vec!["serve"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--port", "0", "--poll-ms", "100", "--log-flush-s", "1"]);
        let (child, url) = crate::spawn_listening(repo, &all);
        Serve { child, url }
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = reqwest::blocking::Client::new().post(format!("{}{path}", self.url)).json(body).send().unwrap();
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    pub fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        headers: &[(&str, String)],
    ) -> (u16, Vec<u8>, reqwest::header::HeaderMap) {
        let mut req = reqwest::blocking::Client::new().post(format!("{}{path}", self.url)).body(body);
        if !content_type.is_empty() {
            req = req.header("content-type", content_type);
        }
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let r = req.send().unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        (status, r.bytes().unwrap().to_vec(), headers)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        let r = reqwest::blocking::get(format!("{}{path}", self.url)).unwrap();
        (r.status().as_u16(), r.text().unwrap())
    }

    pub fn stop(mut self) {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll until `f` holds or 10 s pass.
pub fn eventually(what: &str, f: impl FnMut() -> bool) {
    eventually_within(what, Duration::from_secs(10), f);
}

/// Poll until `f` holds or `limit` passes.
pub fn eventually_within(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

fn infer_body(rows: usize, value: f32) -> Value {
    json!({"inputs": [{"name": "input", "shape": [rows, 20], "datatype": "FP32", "data": vec![value; rows * 20]}]})
}

fn version_of(response: &Value) -> i64 {
    response["model_version"].as_str().unwrap().parse().unwrap()
}

/// The 16 held-out rows of logreg20/forest20 as a holdout CSV, labelled with the forest's answers.
fn write_holdout(repo: &Repo) {
    let logreg = case("logreg20");
    let forest = case("forest20");
    let x = logreg["inputs"]["input"]["data"].as_array().unwrap();
    let y = forest["outputs"]["label"]["data"].as_array().unwrap();
    let mut csv = (0..20).map(|i| format!("f{i}")).collect::<Vec<_>>().join(",") + ",label\n";
    for r in 0..16 {
        let row: Vec<String> = (0..20).map(|c| x[r * 20 + c].to_string()).collect();
        csv.push_str(&format!("{},{}\n", row.join(","), y[r]));
    }
    repo.write("holdout.csv", csv);
}

#[test]
fn registration_validates_and_records_the_version() {
    let repo = Repo::new();
    let logreg = fixture("logreg20.onnx");
    let v = repo.json(&["models", "register", "clf", "--file", logreg.to_str().unwrap(), "--metric", "auc=0.93"]);
    assert_eq!(v["version"], 1);
    assert_eq!(v["signature"]["inputs"], json!([{"name": "input", "datatype": "FP32", "shape": [-1, 20]}]));
    assert_eq!(v["metrics"]["auc"], 0.93);

    // Unsupported operators are named; nothing is registered.
    let svm = fixture("svm_unsupported.onnx");
    let out = repo.kairo(&["models", "register", "svm", "--file", svm.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ai.onnx.ml:SVMClassifier"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Not ONNX at all, a missing file, bad flags.
    repo.write("junk.onnx", "not a model");
    let out = repo.kairo(&["models", "register", "clf", "--file", "junk.onnx"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an ONNX model"));
    repo.kairo(&["models", "register", "clf", "--file", "nope.onnx"]).assert().code(1);
    repo.kairo(&["models", "register", "clf", "--file", "x", "--metric", "auc"]).assert().code(1);
    repo.kairo(&["models", "register", "clf"]).assert().code(2);

    // ONNX-ML pipelines Kairo lowers register too.
    let pipe = fixture("pipeline_mixed.onnx");
    let v = repo.json(&["models", "register", "mixed", "--file", pipe.to_str().unwrap()]);
    assert_eq!(v["lowered_ops"], json!(["OneHotEncoder", "Scaler"]));

    let ls = repo.json(&["models", "ls"]);
    let names: Vec<&str> = ls.as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["clf", "mixed"]);
    let show = repo.json(&["models", "show", "clf:1"]);
    assert_eq!(show["versions"][0]["size"], std::fs::metadata(&logreg).unwrap().len());
    repo.kairo(&["models", "show", "clf:9"]).assert().code(1);
    repo.kairo(&["models", "show", "clf@nope"]).assert().code(1);
}

#[test]
fn registration_from_a_pipeline_run_keeps_lineage_and_a_profile() {
    let repo = Repo::new();
    write_holdout(&repo);
    std::fs::copy(repo.join("holdout.csv"), repo.join("train.csv")).unwrap();
    let src = fixture("forest20.onnx");
    repo.write(
        "train.sh",
        format!("cp '{}' model.onnx\nprintf '{{\"auc\": 0.91, \"accuracy\": 0.88}}' > metrics.json\n", src.display()),
    );
    repo.write(
        "kairo.yaml",
        "version: 1\nstages:\n  train:\n    cmd: sh train.sh\n    deps: [train.sh, train.csv]\n    outs: [model.onnx]\n    metrics: [metrics.json]\n",
    );
    repo.kairo(&["run"]).assert().success();
    let runs = repo.json(&["runs", "ls"]);
    let run_id = runs[0]["id"].as_str().unwrap().to_string();
    let v = repo.json(&["models", "register", "churn", "--run", &run_id, "--artifact", "model.onnx"]);
    assert_eq!(v["run_id"], run_id);
    assert_eq!(v["metrics"]["auc"], 0.91);
    assert_eq!(v["profile"], true);
    let show = repo.json(&["models", "show", "churn:1"]);
    let version = &show["versions"][0];
    let deps: Vec<&str> =
        version["lineage"]["data"].as_array().unwrap().iter().map(|d| d["path"].as_str().unwrap()).collect();
    assert!(deps.contains(&"train.csv"), "{deps:?}");
    let profile = &version["profile"];
    assert_eq!(profile["rows"], 16);
    assert_eq!(profile["columns"][0]["kind"], "numeric");
    assert_eq!(profile["columns"][0]["source"], json!({"side": "inputs", "tensor": "input", "index": 0}));
    assert_eq!(profile["columns"][20]["name"], "label");
    assert_eq!(profile["columns"][20]["role"], "target");
    assert_eq!(profile["columns"][21]["name"], "prediction");
    assert_eq!(profile["columns"][21]["role"], "prediction");
    assert_eq!(profile["columns"][22]["name"], "prediction.score");
    assert!(v["notes"][0].as_str().unwrap().contains("'label'"), "{v}");
    // Kinds can be overridden; an unknown column or kind is refused and registers nothing.
    let v = repo.json(&[
        "models",
        "register",
        "churn",
        "--run",
        &run_id,
        "--artifact",
        "model.onnx",
        "--profile-data",
        "train.csv",
        "--target",
        "label",
        "--kind",
        "f3=categorical",
    ]);
    assert_eq!(v["version"], 2);
    let show = repo.json(&["models", "show", "churn:2"]);
    assert_eq!(show["versions"][0]["profile"]["columns"][3]["kind"], "categorical");
    let out = repo
        .kairo(&[
            "models",
            "register",
            "churn",
            "--file",
            "model.onnx",
            "--profile-data",
            "train.csv",
            "--kind",
            "zz=numeric",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("--kind zz"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1));
    repo.kairo(&["models", "register", "churn", "--file", "model.onnx", "--kind", "f3=text"]).assert().code(1);
    assert_eq!(repo.json(&["models", "ls"])[0]["latest"], 2);

    repo.kairo(&["models", "alias", "churn", "challenger", "1"]).assert().success();
    let lineage = repo.json_with(&["lineage", "churn@challenger", "--format", "json"]);
    assert_eq!(lineage["model"], "churn");
    assert_eq!(lineage["version"], 1);
    assert!(lineage["lineage"].to_string().contains(&run_id));
    // A run output that does not exist, a run that does not exist.
    repo.kairo(&["models", "register", "churn", "--run", &run_id, "--artifact", "nope.onnx"]).assert().code(1);
    repo.kairo(&["models", "register", "churn", "--run", "deadbeef", "--artifact", "model.onnx"]).assert().code(1);
}

#[test]
fn promotion_gates_approvals_and_alias_history() {
    let repo = Repo::new();
    write_holdout(&repo);
    repo.write(
        "kairo.yaml",
        "version: 1\nmodels:\n  clf:\n    gates: [\"auc >= 0.9\", \"size_mb <= 5\", \"latency_p99_ms < 1000\"]\n    beat_champion: {metric: accuracy, by: 0.01}\n    holdout: {path: holdout.csv, target: label}\n    approval: required\n",
    );
    let logreg = fixture("logreg20.onnx");
    let forest = fixture("forest20.onnx");
    repo.kairo(&["models", "register", "clf", "--file", logreg.to_str().unwrap(), "--metric", "auc=0.95"])
        .assert()
        .success();
    repo.kairo(&["models", "register", "clf", "--file", forest.to_str().unwrap(), "--metric", "auc=0.96"])
        .assert()
        .success();
    repo.kairo(&["models", "register", "clf", "--file", logreg.to_str().unwrap(), "--metric", "auc=0.80"])
        .assert()
        .success();

    // Gates pass, approval is required: pending (exit 6), then rejected, then approved.
    let out = repo.kairo(&["models", "promote", "clf", "1", "--to", "champion", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(6), "{}", String::from_utf8_lossy(&out.stderr));
    let p: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(p["status"], "pending");
    assert!(p["gates"].as_array().unwrap().iter().all(|g| g["passed"] == true), "{p}");
    let out =
        repo.kairo(&["models", "promote", "clf", "1", "--reject", "--reason", "not on a Friday"]).output().unwrap();
    assert_eq!(out.status.code(), Some(5));
    repo.kairo(&["models", "promote", "clf", "1"]).assert().code(6);
    // Four eyes: the requester cannot approve; another approver can.
    let out = repo.kairo(&["models", "promote", "clf", "1", "--approve"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("four eyes: tester@test cannot approve"), "{out:?}");
    repo.kairo(&["models", "promote", "clf", "1", "--approve", "--reason", "reviewed"])
        .env("KAIRO_ACTOR", "approver@test")
        .assert()
        .success();

    // v3: recorded auc below the gate, and no better than the champion on the holdout.
    let out = repo.kairo(&["models", "promote", "clf", "3", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(5));
    let p: Value = serde_json::from_slice(&out.stdout).unwrap();
    let failed: Vec<&str> = p["gates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| g["passed"] == false)
        .map(|g| g["gate"].as_str().unwrap())
        .collect();
    assert_eq!(failed.len(), 2, "{p}");
    assert!(failed[0].starts_with("auc >= 0.9") && failed[1].starts_with("beats champion"), "{failed:?}");
    // The human table says the same, and a failed gate is visible.
    let out = repo.kairo(&["models", "promote", "clf", "3"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("FAIL") && text.contains("not promoted"), "{text}");

    // v2 beats the champion on the holdout (accuracy 1.0 vs 0.75): requested, then approved by
    // another approver.
    repo.kairo(&["models", "promote", "clf", "2"]).assert().code(6);
    let out = repo
        .kairo(&["models", "promote", "clf", "2", "--approve", "--json"])
        .env("KAIRO_ACTOR", "approver@test")
        .output()
        .unwrap();
    let p: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(p["status"], "promoted");
    let beat =
        p["gates"].as_array().unwrap().iter().find(|g| g["gate"].as_str().unwrap().starts_with("beats")).unwrap();
    assert!(beat["detail"].as_str().unwrap().contains("1.000000 vs champion v1 0.750000"), "{beat}");

    // The guarded alias cannot be moved around the gates without --force; moves are history.
    repo.kairo(&["models", "alias", "clf", "champion", "3"]).assert().code(1);
    repo.kairo(&["models", "alias", "clf", "champion", "3", "--force", "--reason", "hotfix"]).assert().success();
    let show = repo.json(&["models", "show", "clf"]);
    let history: Vec<(Value, Value, String)> = show["alias_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["from"].clone(), h["to"].clone(), h["reason"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(history.len(), 3, "{history:?}");
    assert_eq!((history[0].0.clone(), history[0].1.clone()), (Value::Null, json!(1)));
    assert_eq!(history[0].2, "reviewed");
    assert_eq!((history[2].0.clone(), history[2].1.clone(), history[2].2.as_str()), (json!(2), json!(3), "hotfix"));
    assert!(
        show["alias_history"][0]["actor"].as_str().unwrap().contains("approver@test"),
        "the approval moved the alias"
    );
    let statuses: Vec<&str> =
        show["promotions"].as_array().unwrap().iter().map(|p| p["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["rejected", "promoted", "failed", "failed", "promoted"]);

    // A promotion of a version that does not exist, a bad gate.
    repo.kairo(&["models", "promote", "clf", "9"]).assert().code(1);
    repo.write("kairo.yaml", "version: 1\nmodels:\n  clf:\n    gates: [\"auc >> 1\"]\n");
    let out = repo.kairo(&["models", "promote", "clf", "2"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("models.clf.gates"));
}

/// Register logreg20 (v1) and forest20 (v2) as `clf` and deploy v1.
fn two_versions(repo: &Repo) {
    for f in ["logreg20.onnx", "forest20.onnx"] {
        repo.kairo(&["models", "register", "clf", "--file", fixture(f).to_str().unwrap()]).assert().success();
    }
    repo.kairo(&["deploy", "clf", "--version", "1"]).assert().success();
}

fn assert_close(got: &Value, want: &Value, what: &str) {
    let (g, w) = (got.as_array().unwrap(), want.as_array().unwrap());
    assert_eq!(g.len(), w.len(), "{what}");
    for (i, (a, b)) in g.iter().zip(w).enumerate() {
        let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
        assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{what}[{i}]: kairo {a}, onnxruntime {b}");
    }
}

#[test]
fn inference_protocols_match_onnxruntime_and_refuse_bad_input() {
    let repo = Repo::new();
    two_versions(&repo);
    let pipe = fixture("pipeline_mixed.onnx");
    repo.kairo(&["models", "register", "mixed", "--file", pipe.to_str().unwrap()]).assert().success();
    let serve = Serve::start(&repo, &["clf", "mixed", "--max-body-mb", "1"]);

    let (status, live) = serve.get("/v2/health/live");
    assert_eq!((status, live.contains("true")), (200, true));
    let (_, meta) = serve.get("/v2");
    assert!(meta.contains("binary_tensor_data"));
    let (status, meta) = serve.get("/v2/models/clf");
    assert_eq!(status, 200);
    let meta: Value = serde_json::from_str(&meta).unwrap();
    assert_eq!(meta["inputs"][0], json!({"name": "input", "datatype": "FP32", "shape": [-1, 20]}));
    assert_eq!(serve.get("/v2/models/clf/versions/1/ready").0, 200);
    assert_eq!(serve.get("/v2/models/clf/versions/2/ready").0, 404);
    assert_eq!(serve.get("/v2/models/nope").0, 404);

    // OIP JSON: the 16 held-out rows, against onnxruntime's outputs.
    let c = case("logreg20");
    let body = json!({"id": "req-1", "inputs": [{"name": "input", "shape": [16, 20], "datatype": "FP32", "data": c["inputs"]["input"]["data"]}]});
    let (status, r) = serve.post("/v2/models/clf/infer", &body);
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["id"], "req-1");
    assert_eq!(r["model_version"], "1");
    assert_eq!(r["outputs"][0]["data"], c["outputs"]["label"]["data"]);
    assert_close(&r["outputs"][1]["data"], &c["outputs"]["probabilities"]["data"], "probabilities");

    // Strings and several inputs (OneHotEncoder and Scaler lowered), an unseen category included.
    let m = case("pipeline_mixed");
    let inputs: Vec<Value> = ["a", "b", "c", "color"]
        .iter()
        .map(|n| json!({"name": n, "shape": m["inputs"][n]["shape"], "datatype": m["inputs"][n]["dtype"], "data": m["inputs"][n]["data"]}))
        .collect();
    let (status, r) = serve.post("/v2/models/mixed/infer", &json!({"inputs": inputs}));
    assert_eq!(status, 200, "{r}");
    assert_close(&r["outputs"][1]["data"], &m["outputs"]["probabilities"]["data"], "mixed probabilities");

    // The binary tensor extension, as tritonclient sends it by default (no Content-Type).
    let head = br#"{"inputs":[{"name":"input","shape":[1,20],"datatype":"FP32","parameters":{"binary_data_size":80}}],"parameters":{"binary_data_output":true}}"#;
    let mut body = head.to_vec();
    let row: Vec<f32> =
        c["inputs"]["input"]["data"].as_array().unwrap()[..20].iter().map(|v| v.as_f64().unwrap() as f32).collect();
    body.extend(row.iter().flat_map(|x| x.to_le_bytes()));
    let (status, bytes, headers) = serve.post_raw(
        "/v2/models/clf/infer",
        "",
        body,
        &[("inference-header-content-length", head.len().to_string())],
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    let json_len: usize = headers["inference-header-content-length"].to_str().unwrap().parse().unwrap();
    let header: Value = serde_json::from_slice(&bytes[..json_len]).unwrap();
    assert_eq!(header["outputs"][0]["parameters"]["binary_data_size"], 8);
    let label = i64::from_le_bytes(bytes[json_len..json_len + 8].try_into().unwrap());
    assert_eq!(label, c["outputs"]["label"]["data"][0].as_i64().unwrap());
    let p1 = f32::from_le_bytes(bytes[json_len + 8 + 4..json_len + 16].try_into().unwrap());
    assert!((f64::from(p1) - c["outputs"]["probabilities"]["data"][1].as_f64().unwrap()).abs() < 1e-5);

    // MLflow /invocations payloads all give the same answer.
    let x: Vec<Value> = c["inputs"]["input"]["data"].as_array().unwrap()[..40].to_vec();
    let rows = vec![Value::Array(x[..20].to_vec()), Value::Array(x[20..].to_vec())];
    let cols: Vec<String> = (0..20).map(|i| format!("f{i}")).collect();
    let want = json!([c["outputs"]["label"]["data"][0], c["outputs"]["label"]["data"][1]]);
    // Records keep their column order on the wire (written by hand: serde_json sorts keys).
    let records: Vec<String> = rows
        .iter()
        .map(|r| {
            let cells: Vec<String> =
                cols.iter().zip(r.as_array().unwrap()).map(|(k, v)| format!("\"{k}\": {v}")).collect();
            format!("{{{}}}", cells.join(", "))
        })
        .collect();
    let body = format!("{{\"dataframe_records\": [{}]}}", records.join(", "));
    let (status, bytes, _) = serve.post_raw("/invocations?model=clf", "application/json", body.into_bytes(), &[]);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    let r: Value = serde_json::from_slice(&bytes).unwrap();
    let labels: Vec<Value> = r["predictions"].as_array().unwrap().iter().map(|p| p["label"].clone()).collect();
    assert_eq!(Value::Array(labels), want, "dataframe_records");
    for body in [
        json!({"dataframe_split": {"columns": cols, "data": rows}}),
        json!({"instances": rows}),
        json!({"inputs": rows}),
        json!({"inputs": {"input": rows}}),
    ] {
        let (status, r) = serve.post("/invocations?model=clf", &body);
        assert_eq!(status, 200, "{body}: {r}");
        let labels: Vec<Value> = r["predictions"].as_array().unwrap().iter().map(|p| p["label"].clone()).collect();
        assert_eq!(Value::Array(labels), want, "{body}");
    }
    let csv = format!("{}\n{}\n", cols.join(","), x[..20].iter().map(|v| v.to_string()).collect::<Vec<_>>().join(","));
    let (status, bytes, _) = serve.post_raw("/invocations?model=clf", "text/csv", csv.into_bytes(), &[]);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    let r: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(r["predictions"][0]["label"], want[0]);
    assert_eq!(serve.get("/ping").0, 200);

    // Client mistakes: 400 naming the input, 404, 413.
    let bad = |body: Value, needle: &str| {
        let (status, r) = serve.post("/v2/models/clf/infer", &body);
        assert_eq!(status, 400, "{body}: {r}");
        let msg = r["error"].as_str().unwrap();
        assert!(msg.contains(needle), "{msg} does not contain {needle}");
    };
    bad(
        json!({"inputs": [{"name": "input", "shape": [1, 19], "datatype": "FP32", "data": vec![1.0; 19]}]}),
        "input 'input': expected shape [-1, 20]",
    );
    bad(
        json!({"inputs": [{"name": "input", "shape": [1, 20], "datatype": "FP64", "data": vec![1.0; 20]}]}),
        "input 'input': expected datatype FP32, got FP64",
    );
    bad(
        json!({"inputs": [{"name": "x", "shape": [1, 20], "datatype": "FP32", "data": vec![1.0; 20]}]}),
        "missing input 'input'",
    );
    let mut two = infer_body(1, 0.5);
    two["inputs"].as_array_mut().unwrap().push(json!({"name": "extra", "shape": [1], "datatype": "FP32", "data": [1]}));
    bad(two, "unknown input 'extra'");
    bad(
        json!({"inputs": [{"name": "input", "shape": [1, 20], "datatype": "FP32", "data": vec!["a"; 20]}]}),
        "input 'input': element 0",
    );
    bad(
        json!({"inputs": [{"name": "input", "shape": [2, 20], "datatype": "FP32", "data": vec![1.0; 20]}]}),
        "input 'input': shape needs 40",
    );
    bad(json!({"inputs": "nope"}), "malformed");
    // NaN cannot be written in JSON; binary data can carry it.
    let head =
        br#"{"inputs":[{"name":"input","shape":[1,20],"datatype":"FP32","parameters":{"binary_data_size":80}}]}"#;
    let mut body = head.to_vec();
    body.extend((0..20).flat_map(|i| if i == 3 { f32::NAN } else { 0.5f32 }.to_le_bytes()));
    let (status, bytes, _) = serve.post_raw(
        "/v2/models/clf/infer",
        "",
        body,
        &[("inference-header-content-length", head.len().to_string())],
    );
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&bytes).contains("element 3 is NaN"));
    let (status, _, _) = serve.post_raw("/v2/models/clf/infer", "application/json", b"{".to_vec(), &[]);
    assert_eq!(status, 400);
    let (status, _) = serve.post("/v2/models/nope/infer", &infer_body(1, 0.5));
    assert_eq!(status, 404);
    let (status, bytes, _) =
        serve.post_raw("/v2/models/clf/infer", "application/json", vec![b' '; 2 * 1024 * 1024], &[]);
    assert_eq!(status, 413);
    assert!(String::from_utf8_lossy(&bytes).contains("\"error\""));
    let (status, r) =
        serve.post("/invocations?model=clf", &json!({"dataframe_split": {"columns": ["a"], "data": [["x"]]}}));
    assert_eq!(status, 400, "{r}");
    let (status, _) = serve.post("/invocations", &json!({"inputs": [[1]]}));
    assert_eq!(status, 400, "two models are served: the request must name one");

    // Everything answered is counted, by model, version, arm and status.
    let (_, metrics) = serve.get("/metrics");
    assert!(
        metrics.contains("kairo_inference_requests_total{model=\"clf\",version=\"1\",arm=\"stable\",status=\"200\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("status=\"400\""));
    assert!(metrics.contains("kairo_prediction_log_dropped_total 0"));
    serve.stop();
}

#[test]
fn hot_swap_canary_shadow_rollback_and_the_prediction_log() {
    let repo = Repo::new();
    two_versions(&repo);
    let serve = Serve::start(&repo, &["clf"]);
    let (_, r) = serve.post("/v2/models/clf/infer", &infer_body(1, 0.5));
    assert_eq!(version_of(&r), 1);

    // Hot swap under load: every request is answered, by exactly one version.
    let url = serve.url.clone();
    let hammer = std::thread::spawn(move || {
        // Until 30 answers in a row came from the new version (at most 30 s).
        let client = reqwest::blocking::Client::new();
        let mut seen = Vec::new();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30)
            && !(seen.len() >= 30 && seen[seen.len() - 30..].iter().all(|v| *v == 2))
        {
            let r = client.post(format!("{url}/v2/models/clf/infer")).json(&infer_body(1, 0.5)).send().unwrap();
            assert_eq!(r.status().as_u16(), 200);
            let v: Value = r.json().unwrap();
            seen.push(version_of(&v));
            std::thread::sleep(Duration::from_millis(5));
        }
        seen
    });
    std::thread::sleep(Duration::from_millis(100));
    repo.kairo(&["deploy", "clf", "--version", "2"]).assert().success();
    let seen = hammer.join().unwrap();
    assert!(seen.iter().all(|v| *v == 1 || *v == 2));
    assert_eq!(seen[0], 1);
    assert_eq!(*seen.last().unwrap(), 2, "the new version took over");
    let switch = seen.iter().position(|v| *v == 2).unwrap();
    assert!(seen[switch..].iter().all(|v| *v == 2), "no request went back to the old version");

    // Canary of v1 beside stable v2 with an unmeetable latency limit: rolled back automatically.
    repo.kairo(&[
        "deploy",
        "clf",
        "--version",
        "1",
        "--strategy",
        "canary",
        "--weight",
        "50",
        "--max-p99-ms",
        "0.000001",
        "--min-requests",
        "4",
    ])
    .assert()
    .success();
    eventually("the canary to be served", || serve.get("/v2/models/clf").1.contains("\"1\""));
    let mut arms = std::collections::HashSet::new();
    for i in 0..30 {
        let body = json!({"inputs": infer_body(1, 0.5)["inputs"], "parameters": {"routing_key": format!("user-{i}")}});
        let (status, r) = serve.post("/v2/models/clf/infer", &body);
        if status == 200 {
            arms.insert(r["parameters"]["arm"].as_str().unwrap().to_string());
        }
    }
    assert!(arms.contains("canary") && arms.contains("stable"), "{arms:?}");
    eventually("the automatic rollback", || repo.json(&["deploy", "clf"])["candidate"].is_null());
    let status = repo.json(&["deploy", "clf"]);
    assert_eq!(status["stable"], 2);
    let rollback = status["events"].as_array().unwrap().iter().find(|e| e["kind"] == "deployment.rolled_back").unwrap();
    assert!(
        rollback["reason"].as_str().unwrap().contains("automatic rollback of version 1: candidate p99"),
        "{rollback}"
    );
    assert_eq!(rollback["actor"], "kairo-serve", "the rollout guard acts as itself, not as whoever started the server");

    // Sticky canary: the same routing key always lands on the same arm.
    repo.kairo(&[
        "deploy",
        "clf",
        "--version",
        "1",
        "--strategy",
        "canary",
        "--weight",
        "50",
        "--min-requests",
        "1000",
    ])
    .assert()
    .success();
    eventually("the canary to be served", || serve.get("/v2/models/clf").1.contains("\"1\""));
    for key in ["alice", "bob", "carol"] {
        let arms: std::collections::HashSet<String> = (0..5)
            .map(|_| {
                let body = json!({"inputs": infer_body(1, 0.5)["inputs"], "parameters": {"routing_key": key}});
                serve.post("/v2/models/clf/infer", &body).1["model_version"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(arms.len(), 1, "key {key} was routed to {arms:?}");
    }
    // Manual rollback drops the candidate; a second one returns to the previous 100% version.
    repo.kairo(&["rollback", "clf"]).assert().success();
    assert!(repo.json(&["deploy", "clf"])["candidate"].is_null());

    // Shadow: users get the stable answer; the candidate's answers are counted, not returned.
    repo.kairo(&["deploy", "clf", "--version", "1", "--strategy", "shadow", "--min-requests", "1000"])
        .assert()
        .success();
    eventually("the shadow to be loaded", || serve.get("/metrics").1.contains("arm=\"shadow\"} 1"));
    for _ in 0..5 {
        let (_, r) = serve.post("/v2/models/clf/infer", &infer_body(1, 0.5));
        assert_eq!(version_of(&r), 2);
    }
    eventually("shadow requests counted", || {
        serve.get("/metrics").1.contains("version=\"1\",arm=\"shadow\",status=\"200\"} 5")
    });
    repo.kairo(&["rollback", "clf"]).assert().success();
    repo.kairo(&["rollback", "clf", "--reason", "forest misbehaves"]).assert().success();
    eventually("the rollback to v1", || {
        let (_, r) = serve.post("/v2/models/clf/infer", &infer_body(1, 0.5));
        version_of(&r) == 1
    });
    let d = repo.json(&["deploy", "clf"]);
    assert_eq!(d["revisions"], json!([1, 2, 1]));

    // Feedback joins the prediction log by request id.
    let (_, r) = serve.post("/v2/models/clf/infer", &json!({"id": "fb-1", "inputs": infer_body(2, 0.25)["inputs"]}));
    assert_eq!(r["id"], "fb-1");
    let (status, _) = serve.post("/v1/feedback", &json!({"request_id": "fb-1", "labels": [1, 0]}));
    assert_eq!(status, 200);
    let (status, _) = serve.post("/v1/feedback", &json!({"label": 1}));
    assert_eq!(status, 400);
    serve.stop();

    let log = repo.json(&["models", "predictions", "clf", "--limit", "1000"]);
    let rows = log["rows"].as_array().unwrap();
    let fb: Vec<&Value> = rows.iter().filter(|r| r["request_id"] == "fb-1").collect();
    assert_eq!(fb.len(), 2);
    assert_eq!((fb[0]["label"].clone(), fb[1]["label"].clone()), (json!(1), json!(0)));
    assert_eq!(fb[0]["inputs"]["input"].as_array().unwrap().len(), 20);
    assert!(fb[0]["outputs"]["probabilities"].is_array());
    let arms: std::collections::HashSet<&str> = rows.iter().map(|r| r["arm"].as_str().unwrap()).collect();
    assert!(arms.contains("stable") && arms.contains("canary") && arms.contains("shadow"), "{arms:?}");
    assert!(log["total_rows"].as_i64().unwrap() >= 100);

    // Every deployment change is an event with its reason.
    let show = repo.json(&["models", "show", "clf"]);
    assert_eq!(show["deployment"]["stable"], 1);
}

#[test]
fn a_model_that_fails_to_load_never_replaces_the_serving_one() {
    let repo = Repo::new();
    let logreg = fixture("logreg20.onnx");
    let gbc = fixture("gbc3.onnx");
    repo.kairo(&["models", "register", "m", "--file", logreg.to_str().unwrap()]).assert().success();
    repo.kairo(&["models", "register", "m", "--file", gbc.to_str().unwrap()]).assert().success();
    repo.kairo(&["models", "alias", "m", "live", "1"]).assert().success();
    let serve = Serve::start(&repo, &["m@live"]);
    // The bytes of version 2 rot in the store; the alias moves to it anyway.
    repo.corrupt_in_store(&std::fs::read(&gbc).unwrap()[100..164]);
    repo.kairo(&["deploy", "m", "--version", "2"]).assert().code(1);
    repo.kairo(&["models", "alias", "m", "live", "2"]).assert().success();
    std::thread::sleep(Duration::from_millis(600));
    for _ in 0..5 {
        let (status, r) = serve.post("/v2/models/m/infer", &infer_body(1, 0.5));
        assert_eq!(status, 200);
        assert_eq!(version_of(&r), 1);
    }
    // The failed load is on record.
    let status = repo.json(&["deploy", "m"]);
    let failed = status["events"].as_array().unwrap().iter().find(|e| e["kind"] == "deployment.failed").unwrap();
    assert!(failed["error"].as_str().unwrap().contains("corrupt"), "{failed}");
    serve.stop();
}

#[test]
fn tritonclient_requests_and_mlflow_payloads_match_onnxruntime() {
    let Some(python) = crate::server::python() else { return };
    let repo = Repo::new();
    for (name, file) in
        [("clf", "logreg20"), ("forest", "forest20"), ("gbr", "gbr"), ("mlp", "mlp"), ("mixed", "pipeline_mixed")]
    {
        let f = fixture(&format!("{file}.onnx"));
        repo.kairo(&["models", "register", name, "--file", f.to_str().unwrap()]).assert().success();
    }
    let serve = Serve::start(&repo, &["clf", "forest", "gbr", "mlp", "mixed"]);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/serving_clients.py");
    let out = Command::new(python)
        .arg(script)
        .arg(serve.url.trim_start_matches("http://"))
        .arg(fixture(""))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "serving_clients.py failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(out.stdout.trim_ascii()).unwrap();
    assert!(report["checked_outputs"].as_u64().unwrap() >= 16, "{report}");
    serve.stop();
}

/// Every refusal carries its protocol's code for its status, from one table per protocol:
/// MLflow's `{"error_code", "message"}` on `/invocations`, OIP's `{"error", "code"}` elsewhere.
/// A missing model is 404 not-found on both (never BAD_REQUEST); 413 and 415 have their own codes.
#[test]
fn refusals_carry_their_protocols_code_for_their_status() {
    let repo = Repo::new();
    let f = fixture("logreg20.onnx");
    repo.kairo(&["models", "register", "clf", "--file", f.to_str().unwrap()]).assert().success();
    let serve = Serve::start(&repo, &["clf", "--max-body-mb", "1", "--max-rows", "10"]);
    let parse = |bytes: &[u8]| -> Value { serde_json::from_slice(bytes).unwrap_or(Value::Null) };
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
        k.sort();
        k
    };
    let big = vec![b' '; 2 * 1024 * 1024];
    let rows = |n: usize| json!({"inputs": vec![vec![0.5; 20]; n]}).to_string().into_bytes();
    let evil = [("origin", "http://evil.example".to_string())];

    // /invocations: MLflow's shape, MLflow's code names.
    let mlflow = |path: &str, content_type: &str, body: Vec<u8>, headers: &[(&str, String)]| {
        let (status, bytes, _) = serve.post_raw(path, content_type, body, headers);
        let v = parse(&bytes);
        assert_eq!(keys(&v), ["error_code", "message"], "{path}: {v}");
        (status, v["error_code"].as_str().unwrap_or("").to_string(), v["message"].as_str().unwrap_or("").to_string())
    };
    let (status, code, message) = mlflow("/invocations?model=nope", "application/json", rows(1), &[]);
    assert_eq!((status, code.as_str()), (404, "RESOURCE_DOES_NOT_EXIST"), "{message}");
    assert!(message.contains("'nope'") && message.contains("served: clf"), "{message}");
    let (status, code, message) = mlflow("/invocations", "application/json", b"{".to_vec(), &[]);
    assert_eq!((status, code.as_str()), (400, "BAD_REQUEST"), "{message}");
    assert!(message.contains("malformed JSON"), "{message}");
    let (status, code, message) = mlflow("/invocations", "application/json", rows(1)[..20].to_vec(), &[]);
    assert_eq!((status, code.as_str()), (400, "BAD_REQUEST"), "truncated body: {message}");
    // Well-formed, but not what the model takes: the runtime's check, still the client's mistake.
    let (status, code, message) = mlflow("/invocations", "application/json", br#"{"inputs": [[1, 2]]}"#.to_vec(), &[]);
    assert_eq!((status, code.as_str()), (400, "BAD_REQUEST"), "{message}");
    assert!(message.contains("input 'input'"), "{message}");
    let (status, code, message) = mlflow("/invocations", "text/plain", rows(1), &[]);
    assert_eq!((status, code.as_str()), (415, "MALFORMED_REQUEST"), "{message}");
    assert!(message.contains("application/json or text/csv"), "{message}");
    let (status, code, message) = mlflow("/invocations", "application/json", big.clone(), &[]);
    assert_eq!((status, code.as_str()), (413, "RESOURCE_LIMIT_EXCEEDED"), "{message}");
    assert!(message.contains("--max-body-mb"), "{message}");
    let (status, code, message) = mlflow("/invocations", "application/json", rows(11), &[]);
    assert_eq!((status, code.as_str()), (413, "RESOURCE_LIMIT_EXCEEDED"), "{message}");
    assert!(message.contains("--max-rows"), "{message}");
    let (status, code, _) = mlflow("/invocations", "application/json", rows(1), &evil);
    assert_eq!((status, code.as_str()), (403, "PERMISSION_DENIED"));
    let (status, bytes, _) = serve.post_raw("/invocations", "application/json", rows(2), &[]);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));

    // OIP: `{"error"}` as the protocol requires, with the code beside it.
    let oip = |status: u16, bytes: &[u8], what: &str| {
        let v = parse(bytes);
        assert_eq!(keys(&v), ["code", "error"], "{what}: {v}");
        (status, v["code"].as_str().unwrap_or("").to_string(), v["error"].as_str().unwrap_or("").to_string())
    };
    let post = |path: &str, content_type: &str, body: Vec<u8>, headers: &[(&str, String)]| {
        let (status, bytes, _) = serve.post_raw(path, content_type, body, headers);
        oip(status, &bytes, path)
    };
    let get = |path: &str| {
        let r = reqwest::blocking::get(format!("{}{path}", serve.url)).unwrap();
        let status = r.status().as_u16();
        oip(status, &r.bytes().unwrap(), path)
    };
    let infer = infer_body(1, 0.5).to_string().into_bytes();
    let (status, code, message) = post("/v2/models/nope/infer", "application/json", infer.clone(), &[]);
    assert_eq!((status, code.as_str()), (404, "not_found"), "{message}");
    assert!(message.contains("'nope'") && message.contains("served: clf"), "{message}");
    let (status, code, message) = post("/v2/models/clf/versions/9/infer", "application/json", infer.clone(), &[]);
    assert_eq!((status, code.as_str()), (404, "not_found"), "{message}");
    assert!(message.contains("version 9"), "{message}");
    for path in
        ["/v2/models/nope", "/v2/models/nope/ready", "/v2/models/clf/versions/9", "/v2/models/clf/versions/9/ready"]
    {
        assert_eq!(get(path).0, 404, "{path}");
        assert_eq!(get(path).1, "not_found", "{path}");
    }
    let (status, code, _) = get("/v2/models/clf/versions/x");
    assert_eq!((status, code.as_str()), (400, "invalid_parameter"));
    let (status, code, _) = get("/v2/no/such/path");
    assert_eq!((status, code.as_str()), (404, "endpoint_not_found"));
    let (status, code, message) = post("/v2/models/clf/infer", "application/json", b"{".to_vec(), &[]);
    assert_eq!((status, code.as_str()), (400, "invalid_parameter"), "{message}");
    assert!(message.contains("malformed"), "{message}");
    let (status, code, message) = post("/v2/models/clf/infer", "application/json", big, &[]);
    assert_eq!((status, code.as_str()), (413, "too_large"), "{message}");
    let many = json!({"inputs": [{"name": "input", "shape": [11, 20], "datatype": "FP32", "data": vec![0.5; 220]}]});
    let (status, code, message) = post("/v2/models/clf/infer", "application/json", many.to_string().into_bytes(), &[]);
    assert_eq!((status, code.as_str()), (413, "too_large"), "{message}");
    let (status, code, _) = post("/v2/models/clf/infer", "application/json", infer, &evil);
    assert_eq!((status, code.as_str()), (403, "permission_denied"));
    let label = br#"{"request_id": "r", "label": 1}"#.to_vec();
    let (status, code, message) = post("/v1/feedback", "text/plain", label.clone(), &[]);
    assert_eq!((status, code.as_str()), (415, "unsupported_media_type"), "{message}");
    let (status, code, _) = post("/v1/feedback", "application/json", b"[".to_vec(), &[]);
    assert_eq!((status, code.as_str()), (400, "invalid_parameter"));
    let (status, bytes, _) = serve.post_raw("/v1/feedback", "application/json", label, &[]);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&bytes));
    serve.stop();
}
