//! Serving replicas (issue 19): three `kairo serve` processes on one PostgreSQL database serve
//! the same endpoints; a client spreads traffic across them; a canary that breaches its limit
//! is judged once, on every replica's counts (one replica holds the guard's lease), rolled
//! back once and followed everywhere; sticky routing agrees across replicas; a replica killed
//! mid-traffic leaves the others answering.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::serving::{eventually_within, fixture};
use crate::Repo;

/// The replicas, killed however the test ends (a failed assertion must not leave them serving).
struct Replicas(Vec<(crate::Listening, String)>);

impl Drop for Replicas {
    fn drop(&mut self) {
        for (child, _) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn infer(client: &reqwest::blocking::Client, url: &str, key: &str) -> Option<Value> {
    let body = json!({"inputs": [{"name": "input", "shape": [1, 20], "datatype": "FP32", "data": vec![0.5f32; 20]}],
        "parameters": {"routing_key": key}});
    let r = client.post(format!("{url}/v2/models/clf/infer")).json(&body).send().ok()?;
    (r.status().as_u16() == 200).then(|| r.json().ok()).flatten()
}

/// The canary bucket (0–99) `kairo serve` puts a routing key in (`Endpoint::route`).
fn bucket(key: &str) -> u64 {
    let h = blake3::hash(key.as_bytes());
    u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap()) % 100
}

#[test]
fn three_replicas_share_one_guard_and_survive_one_dying() {
    let Some(base) = crate::service("KAIRO_TEST_POSTGRES_URL") else { return };
    let url = crate::faults::fresh_postgres_database(&base);
    let repo = Repo::bare().with_database(url).initialised();
    for f in ["logreg20.onnx", "forest20.onnx"] {
        repo.kairo(&["models", "register", "clf", "--file", fixture(f).to_str().unwrap()]).assert().success();
    }
    repo.kairo(&["deploy", "clf", "--version", "1"]).assert().success();
    let mut replicas = Replicas(
        (0..3).map(|_| crate::spawn_listening(&repo, &["serve", "clf", "--port", "0", "--poll-ms", "200"])).collect(),
    );
    let client = reqwest::blocking::Client::new();
    let urls: Vec<String> = replicas.0.iter().map(|(_, u)| u.clone()).collect();

    // Sticky routing under a canary agrees across replicas (no limit can be judged yet).
    repo.kairo(&[
        "deploy",
        "clf",
        "--version",
        "2",
        "--strategy",
        "canary",
        "--weight",
        "50",
        "--min-requests",
        "100000",
    ])
    .assert()
    .success();
    for u in &urls {
        eventually_within("every replica to serve the canary", Duration::from_secs(10), || {
            (0..20).any(|i| infer(&client, u, &format!("k{i}")).is_some_and(|r| r["model_version"] == "2"))
        });
    }
    for key in ["alice", "bob", "carol", "dave"] {
        let versions: std::collections::HashSet<String> = urls
            .iter()
            .map(|u| infer(&client, u, key).unwrap()["model_version"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(versions.len(), 1, "key {key} routed differently across replicas: {versions:?}");
    }

    // A canary that breaches its latency limit: each replica alone sees too few requests to
    // judge (min 30; 20 each), together they see 60 → one rollback, by one replica.
    repo.kairo(&["rollback", "clf"]).assert().success();
    repo.kairo(&[
        "deploy",
        "clf",
        "--version",
        "2",
        "--strategy",
        "canary",
        "--weight",
        "99",
        "--max-p99-ms",
        "0.000001",
        "--min-requests",
        "30",
        "--window-s",
        "3600",
    ])
    .assert()
    .success();
    // A key the old canary (weight 50) sends to version 1 and the new one (weight 99) to
    // version 2: only a replica that follows the new deployment answers it with version 2 (any
    // answer of the old one would count for the old deployment, not the one being judged).
    let probe = (0..).map(|i| format!("probe-{i}")).find(|k| (50..99).contains(&bucket(k))).unwrap();
    for u in &urls {
        eventually_within("every replica to serve the new canary", Duration::from_secs(10), || {
            infer(&client, u, &probe).is_some_and(|r| r["model_version"] == "2")
        });
    }
    let mut canary_answers = vec![0usize; 3];
    for i in 0..60 {
        let k = i % 3;
        if let Some(r) = infer(&client, &urls[k], &format!("user-{i}")) {
            if r["model_version"] == "2" {
                canary_answers[k] += 1;
            }
        }
    }
    assert!(canary_answers.iter().all(|n| *n < 30), "no replica alone reaches min_requests: {canary_answers:?}");
    let start = Instant::now();
    while !repo.json(&["deploy", "clf"])["candidate"].is_null() {
        assert!(start.elapsed() < Duration::from_secs(15), "no rollback: {}", repo.json(&["deploy", "clf"]));
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = repo.json(&["deploy", "clf"]);
    let rollbacks: Vec<&Value> = status["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "deployment.rolled_back" && e["actor"] == "kairo-serve")
        .collect();
    assert_eq!(rollbacks.len(), 1, "rolled back once: {status}");
    let reason = rollbacks[0]["reason"].as_str().unwrap();
    assert!(reason.contains("candidate p99") && reason.contains("requests"), "{reason}");
    for u in &urls {
        eventually_within("every replica back on the stable version", Duration::from_secs(5), || {
            (0..10).all(|i| infer(&client, u, &format!("after-{i}")).is_some_and(|r| r["model_version"] == "1"))
        });
    }

    // One replica dies mid-traffic; the others keep answering every request sent to them.
    let dead_url = urls[0].clone();
    let start = Instant::now();
    let mut answered = 0;
    for i in 0..60 {
        if i == 20 {
            let dead = &mut replicas.0[0].0;
            dead.kill().unwrap();
            dead.wait().unwrap();
        }
        let u = &urls[i % 3];
        match infer(&client, u, &format!("late-{i}")) {
            Some(_) => answered += 1,
            None => assert!(*u == dead_url && i >= 20, "a live replica failed request {i}"),
        }
    }
    assert!(answered >= 46, "{answered} of 60 answered");
    assert!(start.elapsed() < Duration::from_secs(30));
}

/// Every replica logs its own prediction-log segments; a monitor window counts the rows of all
/// three; feedback sent to any replica joins rows another replica answered, and feedback a
/// replica acknowledged survives that replica being killed right after.
#[test]
fn three_replicas_log_into_one_monitor_and_take_feedback_anywhere() {
    let Some(base) = crate::service("KAIRO_TEST_POSTGRES_URL") else { return };
    let url = crate::faults::fresh_postgres_database(&base);
    let repo = Repo::bare().with_database(url).initialised();
    let mut g = crate::monitoring::Lcg(11);
    repo.write("train.csv", crate::monitoring::training_csv(&mut g, 1000));
    let model = fixture("forest20.onnx");
    repo.kairo(&[
        "models",
        "register",
        "churn",
        "--file",
        model.to_str().unwrap(),
        "--profile-data",
        "train.csv",
        "--target",
        "label",
    ])
    .assert()
    .success();
    repo.kairo(&["deploy", "churn", "--version", "1"]).assert().success();
    let mut replicas = Replicas(
        (0..3)
            .map(|_| crate::spawn_listening(&repo, &["serve", "churn", "--port", "0", "--log-flush-s", "1"]))
            .collect(),
    );
    let urls: Vec<String> = replicas.0.iter().map(|(_, u)| u.clone()).collect();
    let client = reqwest::blocking::Client::new();
    // 100 rows answered by each replica, under request ids r0, r1, r2.
    let mut answers = Vec::new();
    for (k, u) in urls.iter().enumerate() {
        let data = crate::monitoring::features(&mut g, 100, 0, 0.0);
        let body = json!({"id": format!("r{k}"), "inputs": [{"name": "input", "shape": [100, 20], "datatype": "FP32", "data": data}]});
        let r: Value = client.post(format!("{u}/v2/models/churn/infer")).json(&body).send().unwrap().json().unwrap();
        answers.push(r);
    }
    let window = |repo: &Repo| {
        let out = repo
            .kairo(&["monitor", "check", "--deployment", "churn", "--rows", "300", "--windows", "1", "--json"])
            .output()
            .unwrap();
        serde_json::from_slice::<Value>(&out.stdout).unwrap_or(Value::Null)
    };
    eventually_within("one window of every replica's rows", Duration::from_secs(20), || {
        window(&repo)["windows"][0]["rows"] == 300
    });
    // Each replica wrote its own segments under its own id: one id per request, three in all.
    let logged = repo.json(&["models", "predictions", "churn", "--limit", "300"]);
    assert_eq!(logged["replicas"].as_array().map(Vec::len), Some(3), "{}", logged["replicas"]);
    let mut writers = std::collections::BTreeMap::<String, std::collections::BTreeSet<String>>::new();
    for row in logged["rows"].as_array().unwrap() {
        let (id, replica) = (row["request_id"].as_str().unwrap(), row["replica"].as_str().unwrap());
        writers.entry(id.to_string()).or_default().insert(replica.to_string());
    }
    assert_eq!(writers.len(), 3, "{writers:?}");
    assert!(writers.values().all(|r| r.len() == 1), "one replica answered each request: {writers:?}");
    let distinct: std::collections::BTreeSet<_> = writers.values().flatten().collect();
    assert_eq!(distinct.len(), 3, "{writers:?}");
    // Feedback for each request, sent to the next replica; the first one's replica is then killed.
    for k in 0..3 {
        let labels: Vec<i64> = answers[k]["outputs"].as_array().unwrap().iter().find(|o| o["name"] == "label").unwrap()
            ["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_i64().unwrap())
            .collect();
        let to = &urls[(k + 1) % 3];
        let r = client
            .post(format!("{to}/v1/feedback"))
            .json(&json!({"request_id": format!("r{k}"), "labels": labels}))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "feedback for r{k} at {to}");
        if k == 0 {
            let dead = &mut replicas.0[1].0;
            dead.kill().unwrap();
            dead.wait().unwrap();
        }
    }
    let v = window(&repo);
    assert_eq!(v["windows"][0]["labelled"], 300, "every acknowledged label joined: {v}");
    assert_eq!(
        v["windows"][0]["values"]["accuracy"], 1.0,
        "labels equal to the predictions: {}",
        v["windows"][0]["values"]
    );
}
