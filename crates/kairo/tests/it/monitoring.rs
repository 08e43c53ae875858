//! Monitors over a live deployment: `kairo serve` logs predictions, `kairo monitor check`
//! sketches the log in row windows against the version's reference profile, joins late
//! labels, fires alert rules once per window, records them as events and POSTs them to a
//! webhook that first fails (so the retry is exercised); `kairo server` runs the same monitor
//! on a schedule.

use crate::serving::{eventually, fixture, Serve};
use crate::Repo;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};

/// Deterministic, roughly normal numbers.
pub(crate) struct Lcg(pub u64);

impl Lcg {
    pub(crate) fn normal(&mut self) -> f32 {
        let mut s = 0.0;
        for _ in 0..12 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            s += (self.0 >> 11) as f64 / (1u64 << 53) as f64;
        }
        (s - 6.0) as f32
    }
}

/// `rows` × 20 features; the first `shifted` columns moved by `shift`.
pub(crate) fn features(g: &mut Lcg, rows: usize, shifted: usize, shift: f32) -> Vec<f32> {
    (0..rows * 20).map(|i| g.normal() + if i % 20 < shifted { shift } else { 0.0 }).collect()
}

/// Training data for the 20-feature fixtures: `f0..f19` and `label` (f0 > 0).
pub(crate) fn training_csv(g: &mut Lcg, rows: usize) -> String {
    let mut csv = (0..20).map(|i| format!("f{i}")).collect::<Vec<_>>().join(",") + ",label\n";
    let x = features(g, rows, 0, 0.0);
    for r in 0..rows {
        let row: Vec<String> = x[r * 20..(r + 1) * 20].iter().map(|v| format!("{v:.5}")).collect();
        csv.push_str(&format!("{},{}\n", row.join(","), u8::from(x[r * 20] > 0.0)));
    }
    csv
}

/// A webhook receiver: answers 503 to the first request, 200 after; keeps the bodies.
pub fn webhook() -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = bodies.clone();
    std::thread::spawn(move || {
        let mut calls = 0;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            calls += 1;
            let status = if calls == 1 { "503 Service Unavailable" } else { "200 OK" };
            if calls > 1 {
                seen.lock().unwrap().push(serde_json::from_slice(&body).unwrap());
            }
            let _ = write!(stream, "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (url, bodies)
}

pub(crate) fn check(repo: &Repo, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["monitor", "check", "--json"];
    all.extend_from_slice(args);
    let out = repo.kairo(&all).output().unwrap();
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), v)
}

#[test]
fn a_deployment_monitor_finds_drift_and_bad_quality_and_alerts_once() {
    let repo = Repo::new();
    let mut g = Lcg(7);
    repo.write("train.csv", training_csv(&mut g, 2000));
    let model = fixture("forest20.onnx");
    // A version without a profile cannot be monitored; it says how to fix that.
    repo.kairo(&["models", "register", "bare", "--file", model.to_str().unwrap()]).assert().success();
    let out = repo.kairo(&["monitor", "check", "--deployment", "bare"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--profile-data"));

    let r = repo.json(&[
        "models",
        "register",
        "churn",
        "--file",
        model.to_str().unwrap(),
        "--profile-data",
        "train.csv",
        "--target",
        "label",
    ]);
    assert_eq!(r["profile"], true);
    let (url, hooks) = webhook();
    repo.write(
        "kairo.yaml",
        format!(
            "version: 1\nmonitors:\n  churn-watch:\n    deployment: churn\n    rows: 200\n    alerts:\n      - name: drifting\n        when: drift_share > 0.3\n        for: 2\n        action: retrain\n      - when: accuracy < 0.6\n    webhook: {{url: '{url}', retries: 2}}\n"
        ),
    );
    let serve = Serve::start(&repo, &["churn"]);
    let send = |id: &str, data: Vec<f32>| {
        let rows = data.len() / 20;
        let (status, r) = serve.post(
            "/v2/models/churn/infer",
            &json!({"id": id, "inputs": [{"name": "input", "shape": [rows, 20], "datatype": "FP32", "data": data}]}),
        );
        assert_eq!(status, 200, "{r}");
        r
    };
    let logged = |repo: &Repo| {
        let (_, v) = check(repo, &["--deployment", "churn", "--rows", "1", "--windows", "1000"]);
        v["windows"].as_array().unwrap().iter().map(|w| w["rows"].as_u64().unwrap()).sum::<u64>()
    };
    // One window like the training data, then two windows with half the features shifted,
    // each in its own log segment.
    send("calm", features(&mut g, 250, 0, 0.0));
    eventually("the first segment", || logged(&repo) >= 250);
    let shifted = send("shift-1", features(&mut g, 250, 10, 3.0));
    eventually("the second segment", || logged(&repo) >= 500);
    send("shift-2", features(&mut g, 250, 10, 3.0));
    eventually("the third segment", || logged(&repo) >= 750);

    // Without rules: the newest window drifts (exit 3), prediction drift is measured too.
    let (code, v) = check(&repo, &["--deployment", "churn", "--rows", "200", "--windows", "3"]);
    assert_eq!(code, 3, "{v}");
    let windows = v["windows"].as_array().unwrap();
    assert_eq!(windows.len(), 3);
    assert_eq!(windows[0]["values"]["dataset_drift"], 0.0, "{}", windows[0]);
    assert_eq!(windows[2]["values"]["dataset_drift"], 1.0);
    assert!(windows[2]["values"]["drift_share"].as_f64().unwrap() >= 0.5);
    assert!(windows[2]["values"].get("prediction_drift").is_some());
    let f0 = windows[2]["drift"]["columns"].as_array().unwrap().iter().find(|c| c["name"] == "f0").unwrap();
    assert_eq!((f0["method"].as_str(), f0["drift"].as_bool()), (Some("chi2"), Some(true)));
    assert!(windows[2]["values"].get("accuracy").is_none(), "no labels yet");

    // Late labels for the first shifted request: the opposite of every prediction.
    let labels: Vec<i64> = shifted["outputs"].as_array().unwrap().iter().find(|o| o["name"] == "label").unwrap()
        ["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| 1 - l.as_i64().unwrap())
        .collect();
    let (status, _) = serve.post("/v1/feedback", &json!({"request_id": "shift-1", "labels": labels}));
    assert_eq!(status, 200);

    let (code, v) = check(&repo, &["--monitor", "churn-watch"]);
    assert_eq!(code, 3, "{v}");
    let windows = v["windows"].as_array().unwrap();
    assert_eq!(windows.len(), 2, "as many windows as the longest `for`");
    assert_eq!(windows[0]["labelled"], 250);
    assert_eq!(windows[0]["values"]["accuracy"], 0.0);
    let alerts = v["alerts"].as_array().unwrap();
    let drifting = alerts.iter().find(|a| a["alert"]["rule"] == "drifting").expect("drift alert");
    assert_eq!(drifting["new"], true);
    assert_eq!(drifting["alert"]["action"], "retrain");
    assert_eq!(drifting["alert"]["evidence"].as_array().unwrap().len(), 2);
    assert!(drifting["webhook"].as_str().unwrap().starts_with("delivered"), "{drifting}");
    // The accuracy rule looks at the newest window, which has no labels: it does not fire.
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let received = hooks.lock().unwrap().clone();
    assert_eq!(received.len(), 1, "the first attempt got a 503; the retry delivered it");
    assert_eq!(received[0]["event"], "monitor.alert");
    assert_eq!(received[0]["alert"]["rule"], "drifting");

    // The same windows again: the alert is not raised twice.
    let (code, v) = check(&repo, &["--monitor", "churn-watch"]);
    assert_eq!(code, 3);
    assert_eq!(v["alerts"][0]["new"], false);
    assert_eq!(hooks.lock().unwrap().len(), 1);
    // Through the team server: the same check, printed the same.
    let (mut server, url) = crate::spawn_listening(&repo, &["server", "--port", "0", "--loop-every-s", "0"]);
    let local = repo.kairo(&["monitor", "check", "--monitor", "churn-watch"]).output().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let remote = std::process::Command::new(assert_cmd::cargo::cargo_bin("kairo"))
        .args(["monitor", "check", "--monitor", "churn-watch"])
        .current_dir(elsewhere.path())
        .env("KAIRO_SERVER", &url)
        .env_remove("KAIRO_TOKEN")
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(remote.status.code(), Some(3), "{}", String::from_utf8_lossy(&remote.stderr));
    assert_eq!(String::from_utf8_lossy(&remote.stdout), String::from_utf8_lossy(&local.stdout));
    assert!(String::from_utf8_lossy(&local.stdout).contains("ALERT drifting: drift_share > 0.3 (2 windows"));
    assert_eq!(hooks.lock().unwrap().len(), 1, "a repeat is not sent again");

    // Labels for the newest window too: now quality is bad there as well.
    let (status, _) = serve.post("/v1/feedback", &json!({"request_id": "shift-2", "labels": vec![7; 250]}));
    assert_eq!(status, 200);
    let (_, v) = check(&repo, &["--monitor", "churn-watch"]);
    let rules: Vec<&str> =
        v["alerts"].as_array().unwrap().iter().map(|a| a["alert"]["rule"].as_str().unwrap()).collect();
    assert!(rules.contains(&"accuracy < 0.6"), "{v}");
    drop(serve);

    // A monitor over two files; its webhook is down: the alert is still recorded, the failure said.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut moved = (0..20).map(|i| format!("f{i}")).collect::<Vec<_>>().join(",") + ",label\n";
    for row in features(&mut g, 300, 20, 3.0).chunks(20) {
        moved.push_str(&(row.iter().map(|v| format!("{v:.4}")).collect::<Vec<_>>().join(",") + ",1\n"));
    }
    repo.write("moved.csv", moved);
    let config = String::from_utf8(repo.read("kairo.yaml")).unwrap();
    repo.write(
        "kairo.yaml",
        format!("{config}  files:\n    reference: train.csv\n    current: moved.csv\n    alerts:\n      - when: drift_share > 0.5\n    webhook: {{url: 'http://{closed}/', retries: 0}}\n"),
    );
    let (code, v) = check(&repo, &["--monitor", "files"]);
    assert_eq!(code, 3, "{v}");
    assert_eq!(v["alerts"][0]["new"], true);
    assert!(v["alerts"][0]["webhook"].as_str().unwrap().starts_with("failed: "), "{v}");

    // The HTML report of the newest window, against the profile's own bins; and of the file monitor.
    repo.kairo(&["monitor", "report", "--monitor", "churn-watch", "--out", "window.html"]).assert().code(3);
    let html = String::from_utf8(repo.read("window.html")).unwrap();
    assert!(html.contains("deployment 'churn' v1") && html.contains("id=\"c-f0\"") && html.contains("<svg"));
    assert!(html.contains("≤ ") && html.contains("prediction.score"), "quantile bins and prediction drift are shown");
    let out = repo
        .kairo(&["monitor", "report", "--deployment", "churn", "--rows", "200", "--out", "d.html", "--json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((out.status.code(), v["window"]["rows"].as_u64()), (Some(3), Some(250)), "{v}");
    repo.kairo(&["monitor", "report", "--monitor", "files", "--out", "files.html"]).assert().code(3);
    assert!(String::from_utf8(repo.read("files.html")).unwrap().contains("moved.csv"));

    // Bad input.
    let out = repo.kairo(&["monitor", "check", "--monitor", "nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("churn-watch"));
    repo.kairo(&["monitor", "check", "--deployment", "ghost"]).assert().code(1);
    repo.kairo(&["monitor", "check", "--deployment", "churn", "--window", "5 parsecs"]).assert().code(2);
    repo.kairo(&["monitor", "check"]).assert().code(2);
}

#[test]
fn kairo_server_runs_scheduled_monitors() {
    let repo = Repo::new();
    let mut g = Lcg(11);
    let mut csv = (0..20).map(|i| format!("f{i}")).collect::<Vec<_>>().join(",") + ",label\n";
    for r in features(&mut g, 500, 0, 0.0).chunks(20) {
        let row: Vec<String> = r.iter().map(|v| format!("{v:.5}")).collect();
        csv.push_str(&format!("{},0\n", row.join(",")));
    }
    repo.write("train.csv", csv);
    let model = fixture("forest20.onnx");
    repo.kairo(&["models", "register", "churn", "--file", model.to_str().unwrap(), "--profile-data", "train.csv"])
        .assert()
        .success();
    let serve = Serve::start(&repo, &["churn"]);
    let data = features(&mut g, 300, 20, 2.0);
    let (status, _) = serve.post(
        "/v2/models/churn/infer",
        &json!({"inputs": [{"name": "input", "shape": [300, 20], "datatype": "FP32", "data": data}]}),
    );
    assert_eq!(status, 200);
    serve.stop(); // flushes the prediction log
    let (url, hooks) = webhook();
    repo.write(
        "kairo.yaml",
        format!(
            "version: 1\nmonitors:\n  nightly:\n    deployment: churn\n    rows: 100\n    schedule: 1s\n    alerts:\n      - when: dataset_drift == 1\n        action: retrain\n    webhook: {{url: '{url}'}}\n"
        ),
    );
    let (mut server, _) = crate::spawn_listening(&repo, &["server", "--port", "0"]);
    eventually("the scheduled monitor's webhook", || !hooks.lock().unwrap().is_empty());
    let _ = server.kill();
    let _ = server.wait();
    let body = hooks.lock().unwrap()[0].clone();
    assert_eq!(body["alert"]["monitor"], "nightly");
    assert_eq!(body["alert"]["action"], "retrain");
    assert_eq!(body["alert"]["evidence"][0]["value"], 1.0);
}
