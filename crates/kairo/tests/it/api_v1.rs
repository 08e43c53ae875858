//! Kairo's own API (`/api/v1`) against its OpenAPI document, through a real `kairo server`:
//! every parameter is declared where clients must send it, and every documented path answers
//! as documented. (`.ci/schemathesis.sh` fuzzes the same document.)

use crate::server::Server;
use crate::Repo;
use serde_json::{json, Value};

/// A project with a dataset (two versions), a pipeline run that read it, and a tracked run with
/// metrics (one NaN) and an artifact; returns the server, the pipeline run and the tracked run.
pub fn seeded() -> (Repo, Server, String, String) {
    let repo = Repo::new();
    repo.write("data/a.csv", "x\n1\n");
    repo.kairo(&["data", "add", "data"]).assert().success();
    repo.write("data/a.csv", "x\n1\n2\n");
    repo.kairo(&["data", "add", "data"]).assert().success();
    let config = std::fs::read_to_string(repo.join("kairo.yaml")).unwrap();
    repo.write(
        "kairo.yaml",
        format!("{config}stages:\n  count:\n    cmd: sh count.sh\n    deps: [data]\n    outs: [count.txt]\n    metrics: [m.json]\n"),
    );
    repo.write("count.sh", "wc -l < data/a.csv > count.txt\necho '{\"rows\": 3}' > m.json\n");
    let pipeline_run = repo.json(&["run"])[0]["run_id"].as_str().unwrap().to_string();
    // An automation whose artifact is no model: its incident ends failed at registration.
    let config = std::fs::read_to_string(repo.join("kairo.yaml")).unwrap();
    repo.write(
        "kairo.yaml",
        format!("{config}models:\n  m: {{}}\nautomations:\n  tidy:\n    model: m\n    on: [{{schedule: \"0 0 1 1 *\"}}]\n    retrain: {{stages: [count], artifact: count.txt}}\n"),
    );
    repo.kairo(&["automations", "run", "tidy"]).assert().success();
    let server = Server::start(&repo);
    let (status, v) = server.post("/api/2.0/mlflow/runs/create", json!({"experiment_id": "0", "start_time": 1}));
    assert_eq!(status, 200, "{v}");
    let tracked = v["run"]["info"]["run_id"].as_str().unwrap().to_string();
    for (key, value) in [("loss", json!(0.5)), ("odd", json!("NaN"))] {
        let body = json!({"run_id": tracked, "key": key, "value": value, "timestamp": 1, "step": 0});
        let (status, v) = server.post("/api/2.0/mlflow/runs/log-metric", body);
        assert_eq!(status, 200, "{v}");
    }
    let artifact = format!("/api/2.0/mlflow-artifacts/artifacts/0/{tracked}/artifacts/report/summary.txt");
    assert_eq!(server.raw("PUT", &artifact, b"all good\n"), 200);
    (repo, server, pipeline_run, tracked)
}

/// Every parameter of every operation, as `(path, name, in)`.
fn parameters(doc: &Value) -> Vec<(String, String, String)> {
    let mut all = Vec::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for op in ops.as_object().unwrap().values() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                all.push((path.clone(), p["name"].as_str().unwrap().into(), p["in"].as_str().unwrap().into()));
            }
        }
    }
    all
}

#[test]
fn query_parameters_are_declared_in_the_query_and_path_parameters_match_the_template() {
    let (_repo, server, _, _) = seeded();
    let (status, doc) = server.get("/api/v1/openapi.json");
    assert_eq!(status, 200);
    let params = parameters(&doc);
    for (path, name) in [
        ("/api/v1/runs", "stage"),
        ("/api/v1/runs", "status"),
        ("/api/v1/runs", "limit"),
        ("/api/v1/events", "subject"),
        ("/api/v1/events", "limit"),
        ("/api/v1/lineage", "target"),
        ("/api/v1/datasets/versions", "path"),
        ("/api/v1/runs/{id}/artifacts", "path"),
    ] {
        let found: Vec<&str> = params.iter().filter(|p| p.0 == path && p.1 == name).map(|p| p.2.as_str()).collect();
        assert_eq!(found, ["query"], "{path} `{name}`");
    }
    // In general: a parameter is `in: path` exactly when the template names it.
    for (path, name, place) in &params {
        let in_template = path.contains(&format!("{{{name}}}"));
        assert_eq!(place == "path", in_template, "{path} `{name}` is declared in {place}");
    }
    let limit = &doc["paths"]["/api/v1/runs"]["get"]["parameters"][2]["schema"];
    assert_eq!((limit["minimum"].as_i64(), limit["maximum"].as_i64()), (Some(1), Some(10_000)), "{limit}");
}

#[test]
fn every_documented_path_answers_with_a_documented_status_and_shape() {
    let (repo, server, pipeline_run, tracked) = seeded();
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models/logreg20.onnx");
    repo.kairo(&["models", "register", "clf", "--file", model.to_str().unwrap()]).assert().success();
    let (_, doc) = server.get("/api/v1/openapi.json");
    // One real request per documented path that reads (a new one without a request here fails
    // the test); the writes are exercised by the role × endpoint matrix (team_cli.rs).
    let requests = [
        ("/api/v1/runs", "/api/v1/runs?stage=count&status=succeeded&limit=5".to_string()),
        ("/api/v1/runs/{id}", format!("/api/v1/runs/{}", &pipeline_run[..12])),
        ("/api/v1/runs/{id}/metrics/{key}", format!("/api/v1/runs/{tracked}/metrics/odd")),
        ("/api/v1/runs/{id}/artifacts", format!("/api/v1/runs/{tracked}/artifacts?path=report")),
        ("/api/v1/runs/{id}/artifacts/{path}", format!("/api/v1/runs/{tracked}/artifacts/report/summary.txt")),
        ("/api/v1/datasets", "/api/v1/datasets".to_string()),
        ("/api/v1/datasets/versions", "/api/v1/datasets/versions?path=data".to_string()),
        ("/api/v1/events", "/api/v1/events?subject=dataset:data&limit=1".to_string()),
        ("/api/v1/lineage", "/api/v1/lineage?target=count.txt".to_string()),
        ("/api/v1/incidents", "/api/v1/incidents?open=false&limit=5".to_string()),
        ("/api/v1/incidents/{id}", "/api/v1/incidents/1".to_string()),
        ("/api/v1/kpi", "/api/v1/kpi?since=30d&model=count".to_string()),
        ("/api/v1/whoami", "/api/v1/whoami".to_string()),
        ("/api/v1/models", "/api/v1/models".to_string()),
        ("/api/v1/models/{name}", "/api/v1/models/clf:1".to_string()),
        ("/api/v1/deployments/{name}", "/api/v1/deployments/clf".to_string()),
        ("/api/v1/automations", "/api/v1/automations".to_string()),
        ("/api/v1/monitors", "/api/v1/monitors".to_string()),
    ];
    let mut documented: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, item)| item.get("get").is_some())
        .map(|(p, _)| p.as_str())
        .collect();
    documented.sort_unstable();
    let mut tested: Vec<&str> = requests.iter().map(|r| r.0).collect();
    tested.sort_unstable();
    assert_eq!(documented, tested, "every documented path has a request here");

    let mut bodies = std::collections::BTreeMap::new();
    for (template, url) in &requests {
        let r = reqwest::blocking::get(format!("{}{url}", server.url)).unwrap();
        assert_eq!(r.status().as_u16(), 200, "{url}");
        let content = &doc["paths"][*template]["get"]["responses"]["200"]["content"];
        let (content_type, media) = content.as_object().unwrap().iter().next().unwrap();
        assert_eq!(r.headers()["content-type"], content_type.as_str(), "{url}");
        let bytes = r.bytes().unwrap();
        if content_type != "application/json" {
            assert_eq!(bytes.as_ref(), b"all good\n");
            continue;
        }
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        // The documented schema's required fields are all there.
        if let Some(name) = media["schema"]["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/schemas/")) {
            for field in doc["components"]["schemas"][name]["required"].as_array().into_iter().flatten() {
                assert!(body.get(field.as_str().unwrap()).is_some(), "{url}: no `{field}` in {body}");
            }
        }
        bodies.insert(*template, body);
    }
    // The query parameters took effect.
    let runs = bodies["/api/v1/runs"]["runs"].as_array().unwrap();
    assert_eq!((runs.len(), runs[0]["id"].as_str()), (1, Some(pipeline_run.as_str())));
    assert_eq!(bodies["/api/v1/runs/{id}"]["metrics"]["rows"], 3.0);
    assert_eq!(bodies["/api/v1/runs/{id}/metrics/{key}"]["points"][0]["value"], Value::Null, "NaN is null");
    assert_eq!(bodies["/api/v1/runs/{id}/artifacts"]["files"][0]["path"], "report/summary.txt");
    assert_eq!(bodies["/api/v1/datasets/versions"]["versions"].as_array().unwrap().len(), 2);
    assert_eq!(bodies["/api/v1/events"]["events"].as_array().unwrap().len(), 1);
    assert_eq!(bodies["/api/v1/lineage"]["produced_by"]["id"], pipeline_run.as_str());
    assert_eq!(bodies["/api/v1/incidents"]["incidents"][0]["state"], "failed");
    assert_eq!(bodies["/api/v1/incidents/{id}"]["detail"]["failed"]["step"], "register");
    assert_eq!(bodies["/api/v1/incidents/{id}"]["timeline"][0]["kind"], "incident.opened");
    assert_eq!(bodies["/api/v1/kpi"]["period"]["model"], "count");
    assert!(bodies["/api/v1/kpi"]["deployment_frequency"]["weeks"].as_array().unwrap().len() >= 4);
    assert_eq!(bodies["/api/v1/models"]["models"][0]["name"], "clf");
    assert_eq!(bodies["/api/v1/models/{name}"]["versions"][0]["signature"]["inputs"][0]["datatype"], "FP32");
    assert_eq!(bodies["/api/v1/deployments/{name}"]["stable"], Value::Null);
    assert_eq!(bodies["/api/v1/whoami"]["auth_required"], false);
    assert!(bodies["/api/v1/monitors"]["monitors"].is_array());

    // A tracked run's NaN metric is `null`, as the document says (`number | null`).
    let (_, listed) = server.get("/api/v1/runs");
    let run = listed["runs"].as_array().unwrap().iter().find(|r| r["id"] == tracked.as_str()).unwrap();
    assert_eq!(run["metrics"]["odd"], Value::Null, "{run}");
    let metric = &doc["components"]["schemas"]["RunDto"]["properties"]["metrics"]["additionalProperties"]["type"];
    assert_eq!(metric, &json!(["number", "null"]));

    // Mistakes are 4xx in the documented shape, never path-extractor plain text.
    for url in [
        "/api/v1/runs?status=weird",
        "/api/v1/runs?limit=0",
        "/api/v1/events?limit=10001",
        "/api/v1/lineage",
        "/api/v1/datasets/versions",
        // No stored name holds a NUL byte, and PostgreSQL would refuse one with a 500.
        "/api/v1/events?subject=run:%00",
        "/api/v1/datasets/versions?path=da%00ta",
        "/api/v1/runs/%00/metrics/loss",
    ] {
        let (status, e) = server.get(url);
        assert_eq!((status, e["code"].as_str()), (400, Some("invalid_parameter")), "{url}: {e}");
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{url}: {e}");
    }
    let (status, e) = server.get("/api/v1/runs/%FF%FE");
    assert_eq!((status, e["code"].as_str()), (400, Some("invalid_parameter")), "an id that is not UTF-8: {e}");
}
