//! Registry integrity through the real `kairo server` and CLI: deleting versions through
//! MLflow never lets a number (or the ONNX behind it) come back, deletes are refused while
//! an alias or a deployment references the version, and model-version sources are judged by
//! parsed scheme and normalised path. SQLite and PostgreSQL.

use crate::server::Server;
use crate::serving::fixture;
use crate::Repo;
use serde_json::{json, Value};

const MV: &str = "/api/2.0/mlflow/model-versions";
const RM: &str = "/api/2.0/mlflow/registered-models";

/// An MLflow call with the method the client uses (DELETE and PATCH carry JSON bodies).
fn call(server: &Server, method: &str, path: &str, body: Value) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let r =
        reqwest::blocking::Client::new().request(method, format!("{}{path}", server.url)).json(&body).send().unwrap();
    let status = r.status().as_u16();
    (status, r.json().unwrap_or(Value::Null))
}

fn register(repo: &Repo, name: &str) -> i64 {
    let f = fixture("logreg20.onnx");
    let out = repo.json(&["models", "register", name, "--file", f.to_str().unwrap()]);
    out["version"].as_i64().unwrap_or_else(|| panic!("{out}"))
}

/// The ONNX object behind a version, as `kairo models show` reports it (null: none).
fn onnx(repo: &Repo, name: &str, version: i64) -> Value {
    repo.json(&["models", "show", &format!("{name}:{version}")])["versions"][0]["object"].clone()
}

/// An MLflow 3 logged model in experiment 0, as `log_model` creates it.
fn logged_model(server: &Server) -> (String, String) {
    let (status, v) = server.post("/api/2.0/mlflow/logged-models", json!({"experiment_id": "0", "name": "model"}));
    assert_eq!(status, 200, "{v}");
    let info = &v["model"]["info"];
    (info["model_id"].as_str().unwrap().to_string(), info["artifact_uri"].as_str().unwrap().to_string())
}

fn mlflow_create(server: &Server, name: &str, source: &str) -> (u16, Value) {
    server.post(&format!("{MV}/create"), json!({"name": name, "source": source}))
}

fn delete_version(server: &Server, name: &str, version: i64) -> (u16, Value) {
    call(server, "DELETE", &format!("{MV}/delete"), json!({"name": name, "version": version.to_string()}))
}

fn versions(server: &Server, name: &str) -> Vec<String> {
    let (status, v) = server.get(&format!("{MV}/search?filter=name%3D%27{name}%27"));
    assert_eq!(status, 200, "{v}");
    let mut out: Vec<String> = v["model_versions"]
        .as_array()
        .map(|a| a.iter().map(|v| v["version"].as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    out.sort_by_key(|v| v.parse::<i64>().unwrap());
    out
}

fn refused(status: u16, v: &Value, needles: &[&str]) {
    assert_eq!((status, v["error_code"].as_str()), (400, Some("INVALID_PARAMETER_VALUE")), "{v}");
    let message = v["message"].as_str().unwrap();
    for n in needles {
        assert!(message.contains(n), "{n:?} not in {message}");
    }
}

fn postgres_repo() -> Option<Repo> {
    let base = crate::service("KAIRO_TEST_POSTGRES_URL")?;
    Some(Repo::bare().with_database(crate::faults::fresh_postgres_database(&base)).initialised())
}

fn deleted_numbers_never_come_back(repo: Repo) {
    assert_eq!(register(&repo, "clf"), 1);
    let server = Server::start(&repo);
    let (model_id, artifact_uri) = logged_model(&server);

    // Once: `kairo models register` failed with `UNIQUE constraint failed:
    // model_version_details.name, model_version_details.version`.
    assert_eq!(delete_version(&server, "clf", 1).0, 200);
    assert_eq!(register(&repo, "clf"), 2);
    assert!(onnx(&repo, "clf", 2).is_string());

    // Once: the next MLflow version took number 2 again and served its ONNX.
    assert_eq!(delete_version(&server, "clf", 2).0, 200);
    let (status, v) = mlflow_create(&server, "clf", &format!("models:/{model_id}"));
    assert_eq!((status, v["model_version"]["version"].as_str()), (200, Some("3")), "{v}");
    assert_eq!(onnx(&repo, "clf", 3), Value::Null, "an MLflow version carries no ONNX");
    repo.kairo(&["deploy", "clf", "--version", "3"]).assert().failure();
    let (status, v) = server.get(&format!("{MV}/get-download-uri?name=clf&version=3"));
    assert_eq!((status, v["artifact_uri"].as_str()), (200, Some(artifact_uri.as_str())), "{v}");
    assert_eq!(server.get(&format!("{MV}/get?name=clf&version=2")).0, 404);
    assert_eq!(versions(&server, "clf"), ["3"]);
    assert_eq!(register(&repo, "clf"), 4);

    // A model deleted and created again continues its numbering.
    assert_eq!(call(&server, "DELETE", &format!("{RM}/delete"), json!({"name": "clf"})).0, 200);
    assert_eq!(server.post(&format!("{RM}/create"), json!({"name": "clf"})).0, 200);
    let (status, v) = mlflow_create(&server, "clf", &format!("models:/{model_id}"));
    assert_eq!((status, v["model_version"]["version"].as_str()), (200, Some("5")), "{v}");
    assert_eq!(onnx(&repo, "clf", 5), Value::Null);
    assert_eq!(register(&repo, "clf"), 6);
    server.stop();
}

#[test]
fn deleted_version_numbers_and_their_onnx_never_come_back() {
    deleted_numbers_never_come_back(Repo::new());
}

#[test]
fn deleted_version_numbers_never_come_back_on_postgres() {
    let Some(repo) = postgres_repo() else { return };
    deleted_numbers_never_come_back(repo);
}

fn references_refuse_deletes(repo: Repo) {
    for v in 1..=3 {
        assert_eq!(register(&repo, "clf"), v);
    }
    repo.kairo(&["models", "alias", "clf", "champion", "1"]).assert().success();
    repo.kairo(&["deploy", "clf", "--version", "2"]).assert().success();
    repo.kairo(&["deploy", "clf", "--version", "3", "--strategy", "canary", "--weight", "10"]).assert().success();
    let server = Server::start(&repo);
    let objects: Vec<Value> = (1..=3).map(|v| onnx(&repo, "clf", v)).collect();

    let (status, v) = delete_version(&server, "clf", 1);
    refused(status, &v, &["Version 1 of model 'clf'", "@champion", "kairo models alias clf"]);
    let (status, v) = delete_version(&server, "clf", 2);
    refused(status, &v, &["deployed as the stable version", "kairo deploy clf --version N"]);
    let (status, v) = delete_version(&server, "clf", 3);
    refused(status, &v, &["deployed as the candidate version", "kairo rollback clf"]);
    let (status, v) = call(&server, "DELETE", &format!("{RM}/delete"), json!({"name": "clf"}));
    refused(status, &v, &["Model 'clf' cannot be deleted", "serving version 2, with version 3 as candidate"]);
    let (status, v) = server.post(&format!("{RM}/rename"), json!({"name": "clf", "new_name": "clf2"}));
    refused(status, &v, &["cannot be renamed", "deployed"]);

    // Nothing changed: versions, their ONNX, the alias and the deployment.
    assert_eq!(versions(&server, "clf"), ["1", "2", "3"]);
    assert_eq!((1..=3).map(|v| onnx(&repo, "clf", v)).collect::<Vec<_>>(), objects);
    let (status, v) = server.get(&format!("{RM}/alias?name=clf&alias=champion"));
    assert_eq!((status, v["model_version"]["version"].as_str()), (200, Some("1")), "{v}");
    let d = repo.json(&["deploy", "clf"]);
    assert_eq!((d["stable"].as_i64(), d["candidate"].as_i64()), (Some(2), Some(3)), "{d}");

    // Once the alias moves and the candidate is rolled back, the deletes go through.
    repo.kairo(&["models", "alias", "clf", "champion", "2"]).assert().success();
    assert_eq!(delete_version(&server, "clf", 1).0, 200);
    repo.kairo(&["rollback", "clf"]).assert().success();
    assert_eq!(delete_version(&server, "clf", 3).0, 200);
    assert_eq!(versions(&server, "clf"), ["2"]);
    // Rollback never returns to a deleted version; deploying one is refused.
    repo.kairo(&["deploy", "clf", "--version", "3"]).assert().failure();
    assert_eq!(register(&repo, "clf"), 4);

    // A model (not deployed) whose version holds an alias: refused, naming it, until the
    // alias is deleted (as the MLflow client does it).
    assert_eq!(register(&repo, "reg"), 1);
    repo.kairo(&["models", "alias", "reg", "staging", "1"]).assert().success();
    let (status, v) = call(&server, "DELETE", &format!("{RM}/delete"), json!({"name": "reg"}));
    refused(status, &v, &["Model 'reg' cannot be deleted", "@staging (version 1)", "--delete"]);
    assert_eq!(versions(&server, "reg"), ["1"]);
    assert!(onnx(&repo, "reg", 1).is_string());
    let (status, v) = call(&server, "DELETE", &format!("{RM}/alias"), json!({"name": "reg", "alias": "staging"}));
    assert_eq!(status, 200, "{v}");
    assert_eq!(call(&server, "DELETE", &format!("{RM}/delete"), json!({"name": "reg"})).0, 200);
    assert_eq!(server.get(&format!("{RM}/get?name=reg")).0, 404);
    assert_eq!(register(&repo, "reg"), 2, "the name continues its numbering");
    server.stop();
}

#[test]
fn deleting_a_referenced_version_or_model_is_refused_with_the_reason() {
    references_refuse_deletes(Repo::new());
}

#[test]
fn deleting_a_referenced_version_is_refused_on_postgres() {
    let Some(repo) = postgres_repo() else { return };
    references_refuse_deletes(repo);
}

#[test]
fn model_version_sources_are_judged_by_scheme_and_normalised_path() {
    let repo = Repo::new();
    repo.write(
        "kairo.yaml",
        "version: 1\nremotes:\n  origin:\n    url: s3://team-bucket/kairo\ndefault_remote: origin\n",
    );
    assert_eq!(register(&repo, "onnx"), 1);
    let server = Server::start(&repo);
    assert_eq!(server.post(&format!("{RM}/create"), json!({"name": "src"})).0, 200);

    for bad in [
        "http://169.254.169.254/latest/meta-data/",
        "https://example.com/model",
        "mlflow-artifacts:///etc/passwd",
        "mlflow-artifacts:/0/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "mlflow-artifacts:/0/%252e%252e/%252e%252e/etc/passwd",
        "runs:/0123/%2E%2E/%2E%2E/etc",
        "models:/m-1/../../etc",
        "file:///etc/passwd",
        "/etc/passwd",
        "s3://other-bucket/model",
        "s3://team-bucket/kairo-other/model",
        "s3://team-bucket/kairo/%2e%2e/secret",
    ] {
        let (status, v) = mlflow_create(&server, "src", bad);
        refused(status, &v, &[&format!("'{bad}'"), "Use a models:/, runs:/ or mlflow-artifacts:/ URI"]);
    }
    assert!(versions(&server, "src").is_empty(), "a refused source creates nothing");

    // What the MLflow client sends, and the project's own remote, still work; refusals did
    // not use up numbers.
    let (model_id, artifact_uri) = logged_model(&server);
    let (status, v) = server.post("/api/2.0/mlflow/runs/create", json!({"experiment_id": "0", "start_time": 1}));
    assert_eq!(status, 200, "{v}");
    let run_id = v["run"]["info"]["run_id"].as_str().unwrap().to_string();
    let run_artifacts = v["run"]["info"]["artifact_uri"].as_str().unwrap().to_string();
    for (source, download) in [
        (format!("models:/{model_id}"), artifact_uri.clone()),
        (artifact_uri.clone(), artifact_uri.clone()),
        (format!("runs:/{run_id}/model"), format!("{run_artifacts}/model")),
        (format!("{run_artifacts}/model"), format!("{run_artifacts}/model")),
        (
            "s3://team-bucket/kairo/models/model.onnx".to_string(),
            "s3://team-bucket/kairo/models/model.onnx".to_string(),
        ),
    ] {
        let (status, v) = mlflow_create(&server, "src", &source);
        assert_eq!(status, 200, "{source}: {v}");
        let version = v["model_version"]["version"].as_str().unwrap().to_string();
        let (status, v) = server.get(&format!("{MV}/get-download-uri?name=src&version={version}"));
        assert_eq!((status, v["artifact_uri"].as_str()), (200, Some(download.as_str())), "{source}: {v}");
    }
    assert_eq!(versions(&server, "src"), ["1", "2", "3", "4", "5"]);

    // A version registered from a file has no artifacts a client could download: no `file:`
    // URI is handed out.
    let (status, v) = server.get(&format!("{MV}/get-download-uri?name=onnx&version=1"));
    refused(status, &v, &["has no artifacts this server can hand out", "kairo serve"]);
    server.stop();
}

/// Calls through the unmodified MLflow client (`tests/python/mlflow_calls.py`), one result
/// per call: `{"ok": true, "result"}` or `{"ok": false, "error_code", "message"}`.
fn mlflow_calls(python: &str, server: &Server, calls: Value) -> Vec<Value> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/mlflow_calls.py");
    let out = std::process::Command::new(python)
        .arg(&script)
        .arg(calls.to_string())
        .env("MLFLOW_TRACKING_URI", &server.url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn denied(r: &Value, needles: &[&str]) {
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["error_code"], "PERMISSION_DENIED", "{r}");
    let m = r["message"].as_str().unwrap();
    for n in needles {
        assert!(m.contains(n), "`{n}` not in: {m}");
    }
}

/// The champion of a model with gates and an approval moves only through a passed promotion,
/// whichever door the request comes through: the MLflow client gets PERMISSION_DENIED naming
/// what is missing (gates not evaluated, a failed gate, the approval), other aliases keep
/// MLflow's behaviour, and the CLI's promote/approve path still moves it.
#[test]
fn the_mlflow_client_cannot_move_a_guarded_champion_past_the_gates() {
    let Some(python) = crate::server::python() else { return };
    let repo = Repo::new();
    repo.write(
        "kairo.yaml",
        "version: 1\nmodels:\n  clf:\n    gates: [\"size_mb <= 5\", \"auc >= 0.9\"]\n    approval: required\n    aliases: [production]\n",
    );
    let f = fixture("logreg20.onnx");
    for auc in ["0.95", "0.5"] {
        repo.kairo(&["models", "register", "clf", "--file", f.to_str().unwrap(), "--metric", &format!("auc={auc}")])
            .assert()
            .success();
    }
    let server = Server::start(&repo);
    let r = mlflow_calls(
        &python,
        &server,
        json!([
            ["set_registered_model_alias", "clf", "champion", "1"],
            ["set_registered_model_alias", "clf", "production", "1"],
            ["set_registered_model_alias", "clf", "staging", "1"],
            ["get_model_version_by_alias", "clf", "staging"],
        ]),
    );
    denied(
        &r[0],
        &["'champion'", "`size_mb <= 5`", "`auc >= 0.9`", "an approval", "not evaluated", "kairo models promote clf 1"],
    );
    denied(&r[1], &["'production'"]);
    assert_eq!(r[2]["ok"], true, "{}", r[2]);
    assert_eq!(r[3]["result"]["version"], 1);

    // Pending approval: the message says the approval is what is missing.
    repo.kairo(&["models", "promote", "clf", "1"]).assert().code(6);
    let r = mlflow_calls(&python, &server, json!([["set_registered_model_alias", "clf", "champion", "1"]]));
    denied(&r[0], &["missing its approval"]);
    // A failed gate is named with its measurement.
    repo.kairo(&["models", "promote", "clf", "2"]).assert().code(5);
    let r = mlflow_calls(&python, &server, json!([["set_registered_model_alias", "clf", "champion", "2"]]));
    denied(&r[0], &["failed gate `auc >= 0.9`", "0.5"]);

    // The approval moves it; setting it where it already points is harmless; moving it away or
    // removing it is refused; unguarded aliases are removed as in MLflow.
    repo.kairo(&["models", "promote", "clf", "1", "--approve"]).env("KAIRO_ACTOR", "approver@test").assert().success();
    let r = mlflow_calls(
        &python,
        &server,
        json!([
            ["get_model_version_by_alias", "clf", "champion"],
            ["set_registered_model_alias", "clf", "champion", "1"],
            ["set_registered_model_alias", "clf", "champion", "2"],
            ["delete_registered_model_alias", "clf", "champion"],
            ["delete_registered_model_alias", "clf", "staging"],
        ]),
    );
    assert_eq!(r[0]["result"]["version"], 1, "{}", r[0]);
    assert_eq!(r[1]["ok"], true, "{}", r[1]);
    denied(&r[2], &["failed gate `auc >= 0.9`"]);
    denied(&r[3], &["--delete --force"]);
    assert_eq!(r[4]["ok"], true, "{}", r[4]);
    assert_eq!(repo.json(&["models", "show", "clf:1"])["versions"][0]["aliases"], json!(["champion"]));

    // The policy is read when the request comes: without gates the alias is MLflow's again.
    repo.write("kairo.yaml", "version: 1\n");
    let r = mlflow_calls(&python, &server, json!([["set_registered_model_alias", "clf", "champion", "2"]]));
    assert_eq!(r[0]["ok"], true, "{}", r[0]);
    // A kairo.yaml that does not parse refuses rather than guessing.
    repo.write("kairo.yaml", "version: 1\nmodels: [\n");
    let (status, body) =
        call(&server, "POST", &format!("{RM}/alias"), json!({"name": "clf", "alias": "champion", "version": "1"}));
    assert!(status >= 400, "{status} {body}");
    assert!(body["message"].as_str().unwrap_or("").contains("kairo.yaml"), "{body}");
    repo.write("kairo.yaml", "version: 1\n");
    assert_eq!(repo.json(&["models", "show", "clf:2"])["versions"][0]["aliases"], json!(["champion"]));
}
