//! The closed loop through the real binary: automations in kairo.yaml, `kairo automations
//! run|tick`, incidents in the store, and `kairo serve` for the prediction log, feedback and
//! the rollout guard. Crashes are injected with `KAIRO_LOOP_CRASH_AFTER` (the process aborts
//! after a step's side effect, before its state is recorded) and the loop resumes.

use crate::{service, spawn_listening, Repo};
use serde_json::Value;

/// Customers `tenure, spend, support_calls, usage_hours → churned`; `flip` inverts the rule so
/// a model trained on it is worse than useless on the other.
fn customers(n: usize, seed: u64, march: bool, flip: bool) -> String {
    let mut rng = kairo_core::splitmix::SplitMix64::new(seed);
    let mut u = move || rng.unit();
    let mut text = String::from("tenure,spend,support_calls,usage_hours,churned\n");
    for _ in 0..n {
        let tenure = (u() * 60.0).floor();
        let spend = (2000.0 + u() * 8000.0).round() / 100.0;
        let calls = (u() * u() * 8.0).floor();
        let usage = if march { (u() * 400.0).round() / 10.0 } else { (200.0 + u() * 300.0).round() / 10.0 };
        let churn = if march { usage < 14.0 + u() * 6.0 } else { calls * 0.6 - tenure * 0.04 + u() * 1.2 > 1.2 };
        text.push_str(&format!("{tenure},{spend},{calls},{usage},{}\n", u8::from(churn != flip)));
    }
    text
}

const STAGE: &str = "stages:
  train:
    cmd: kairo train --data data/train.csv --target churned --drop request_id,row,time,version --seed 7 --out model.onnx
    deps: [data/train.csv]
    outs: [model.onnx]
";

/// A project whose champion (version 1, trained on January) is deployed, with `policy` for
/// the model and `automation` as `automations.retrain`.
fn world(repo: &Repo, policy: &str, monitors: &str, automation: &str) {
    repo.write("data/train.csv", customers(1500, 1, false, false));
    repo.write("data/holdout.csv", customers(600, 9, true, false));
    let config = String::from_utf8(repo.read("kairo.yaml")).unwrap();
    repo.write(
        "kairo.yaml",
        format!(
            "{config}{STAGE}models:\n  churn:\n    holdout: {{path: data/holdout.csv, target: churned}}\n{policy}\
             monitors:\n  watch:\n    deployment: churn\n    rows: 100\n    alerts:\n      - when: drift_share > 0.2\n        action: retrain\n{monitors}\
             automations:\n  retrain:\n    model: churn\n{automation}"
        ),
    );
    repo.kairo(&["data", "add", "data/train.csv"]).assert().success();
    repo.kairo(&["run"]).env("PATH", path_with_kairo()).assert().success();
    repo.kairo(&[
        "models",
        "register",
        "churn",
        "--file",
        "model.onnx",
        "--profile-data",
        "data/train.csv",
        "--target",
        "churned",
    ])
    .assert()
    .success();
    // Requested by the tester; where approval is required (pending, exit 6) someone else
    // approves.
    let requested = repo.kairo(&["models", "promote", "churn", "1"]).output().unwrap();
    if requested.status.code() == Some(6) {
        repo.kairo(&["models", "promote", "churn", "1", "--approve"])
            .env("KAIRO_ACTOR", "approver@test")
            .assert()
            .success();
    } else {
        assert!(requested.status.success(), "{}", String::from_utf8_lossy(&requested.stderr));
    }
    repo.kairo(&["deploy", "churn", "--version", "1"]).assert().success();
}

/// New training data, recorded as the dataset version the stage reads.
fn retrain_on(repo: &Repo, csv: String) {
    repo.write("data/train.csv", csv);
    repo.kairo(&["data", "add", "data/train.csv"]).assert().success();
}

/// PATH with the kairo under test first, for stages that run `kairo train`.
fn path_with_kairo() -> std::ffi::OsString {
    let bin = assert_cmd::cargo::cargo_bin("kairo");
    let mut paths = vec![bin.parent().unwrap().to_path_buf()];
    paths.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
    std::env::join_paths(paths).unwrap()
}

/// `kairo automations ARGS --json` with kairo on PATH; the process's exit status and report.
fn automations(repo: &Repo, args: &[&str], crash_after: Option<&str>) -> (std::process::ExitStatus, Value) {
    let mut all = vec!["automations"];
    all.extend_from_slice(args);
    all.push("--json");
    let mut cmd = repo.kairo(&all);
    cmd.env("PATH", path_with_kairo());
    if let Some(step) = crash_after {
        cmd.env("KAIRO_LOOP_CRASH_AFTER", step);
    }
    let out = cmd.output().unwrap();
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| serde_json::json!({"stderr": String::from_utf8_lossy(&out.stderr)}));
    (out.status, report)
}

fn champion(repo: &Repo) -> i64 {
    repo.json(&["models", "show", "churn@champion"])["versions"][0]["version"].as_i64().unwrap()
}

fn incident(repo: &Repo, id: i64) -> Value {
    repo.json(&["incidents", "show", &id.to_string()])
}

fn incidents(repo: &Repo) -> Vec<Value> {
    repo.json(&["incidents", "ls"]).as_array().unwrap().clone()
}

/// Versions, promotions to champion, and successful runs of the train stage.
fn counts(repo: &Repo) -> (usize, usize, usize) {
    let versions = repo.json(&["models", "show", "churn"])["versions"].as_array().map_or(0, Vec::len);
    let events = repo.json_with(&["runs", "ls", "--stage", "train", "--json"]);
    let runs = events.as_array().unwrap().iter().filter(|r| r["status"] == "succeeded").count();
    let promoted = repo.json(&["models", "show", "churn"])["promotions"]
        .as_array()
        .map_or(0, |p| p.iter().filter(|p| p["status"] == "promoted").count());
    (versions, promoted, runs)
}

const HOLDOUT_DIRECT: &str = "    on: [{schedule: \"0 3 1 1 *\"}]
    retrain: {stages: [train], artifact: model.onnx}
    register: {profile_data: data/train.csv, target: churned}
    evaluate: {data: [holdout], metric: auc}
    rollout: {strategy: direct}
";

#[test]
fn a_manual_trigger_retrains_judges_promotes_and_deploys_a_better_model() {
    let repo = Repo::new();
    world(&repo, "", "", HOLDOUT_DIRECT);
    retrain_on(&repo, customers(1500, 2, true, false));
    let (status, report) = automations(&repo, &["run", "retrain"], None);
    assert!(status.success(), "{report}");
    let inc = incident(&repo, 1);
    assert_eq!(inc["state"], "resolved", "{inc:#}");
    let ev = &inc["detail"]["evaluation"];
    assert_eq!(ev["champion"]["version"], 1);
    assert_eq!(ev["challenger"]["version"], 2);
    assert_eq!(ev["rows"], 600);
    assert!(ev["result"]["interval"][0].as_f64().unwrap() > 0.0, "{ev:#}");
    assert_eq!(champion(&repo), 2);
    let states: Vec<&str> =
        inc["timeline"].as_array().unwrap().iter().filter_map(|e| e["payload"]["to"].as_str()).collect();
    assert_eq!(
        states,
        [
            "retraining",
            "registering",
            "evaluating",
            "evaluating",
            "rolling_out",
            "rolling_out",
            "verifying",
            "resolved"
        ]
    );
    // The new training data was recorded as a dataset version, and the run that read it made
    // the model: lineage from the challenger back to the data.
    let run = inc["detail"]["retrain"]["run_id"].as_str().unwrap();
    let shown = repo.json(&["runs", "show", run]);
    assert_eq!(shown["deps"][0]["path"], "data/train.csv", "{shown:#}");
    // A second trigger while nothing changed: the cache answers, the same bytes are found as
    // version 2 and judged against itself, so nothing is promoted.
    let (status, _) = automations(&repo, &["run", "retrain"], None);
    assert!(status.success());
    let second = incident(&repo, 2);
    assert_eq!(second["state"], "not_better", "{second:#}");
    assert!(second["detail"]["evaluation"]["skipped"].as_str().is_some(), "{second:#}");
    assert_eq!(counts(&repo).0, 2, "no third version");
}

#[test]
fn a_crash_after_any_step_resumes_to_the_same_end_with_one_run_one_version_one_promotion() {
    for step in ["retrain", "register", "promote", "rollout"] {
        let repo = Repo::new();
        world(&repo, "", "", HOLDOUT_DIRECT);
        retrain_on(&repo, customers(1500, 2, true, false));
        let (status, _) = automations(&repo, &["run", "retrain"], Some(step));
        assert!(!status.success(), "{step}: the crash switch did not fire");
        let open = incidents(&repo);
        assert_eq!(open.len(), 1);
        assert_ne!(open[0]["state"], "resolved", "{step}: crashed before recording");
        let (status, report) = automations(&repo, &["tick"], None);
        assert!(status.success(), "{step}: {report}");
        let inc = incident(&repo, 1);
        assert_eq!(inc["state"], "resolved", "{step}: {inc:#}");
        let (versions, promotions, runs) = counts(&repo);
        assert_eq!(
            (versions, promotions, runs),
            (2, 2, 2),
            "{step}: v1 + v2, promotions of 1 and 2, runs of v1 and v2"
        );
        assert_eq!(champion(&repo), 2, "{step}");
    }
}

#[test]
fn a_failing_retrain_fails_the_incident_and_leaves_the_champion() {
    let repo = Repo::new();
    world(&repo, "", "", HOLDOUT_DIRECT);
    retrain_on(&repo, "tenure,spend\n1,2\n".into());
    let (_, r) = automations(&repo, &["run", "retrain"], None);
    let inc = incident(&repo, 1);
    assert_eq!(inc["state"], "failed", "{r:#}");
    assert_eq!(inc["detail"]["failed"]["step"], "retrain");
    assert!(inc["detail"]["failed"]["reason"].as_str().unwrap().contains("train"), "{inc:#}");
    assert_eq!(champion(&repo), 1);
    let out = repo.kairo(&["incidents", "show", "1"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("failed at retrain"), "{text}");
}

#[test]
fn a_worse_challenger_is_not_promoted_and_the_evidence_says_why() {
    let repo = Repo::new();
    world(&repo, "", "", HOLDOUT_DIRECT);
    retrain_on(&repo, customers(1500, 2, true, true));
    automations(&repo, &["run", "retrain"], None);
    let inc = incident(&repo, 1);
    assert_eq!(inc["state"], "not_better", "{inc:#}");
    assert!(inc["detail"]["evaluation"]["result"]["interval"][1].as_f64().unwrap() < 0.0);
    assert_eq!(champion(&repo), 1);
    assert_eq!(counts(&repo).1, 1, "only version 1's promotion");
}

#[test]
fn with_approval_required_the_incident_waits_and_goes_on_when_approved() {
    let repo = Repo::new();
    world(&repo, "    approval: required\n", "", HOLDOUT_DIRECT);
    retrain_on(&repo, customers(1500, 2, true, false));
    automations(&repo, &["run", "retrain"], None);
    assert_eq!(incident(&repo, 1)["state"], "awaiting_approval");
    let (_, report) = automations(&repo, &["tick"], None);
    assert_eq!(report["waiting"][0]["state"], "awaiting_approval", "{report}");
    repo.kairo(&["models", "promote", "churn", "2", "--approve"])
        .env("KAIRO_ACTOR", "approver@test")
        .assert()
        .success();
    automations(&repo, &["tick"], None);
    assert_eq!(incident(&repo, 1)["state"], "resolved");
    assert_eq!(champion(&repo), 2);
}

#[test]
fn schedules_fire_once_per_firing_and_guards_hold_back_storms() {
    let repo = Repo::new();
    let automation = "    on: [{schedule: \"0 3 * * 1\"}]
    retrain: {stages: [train], artifact: model.onnx}
    evaluate: {data: [holdout], metric: auc}
    rollout: {strategy: direct}
    guard: {max_per_day: 1}
";
    world(&repo, "", "", automation);
    let (_, r) = automations(&repo, &["tick", "--at", "2026-12-07T02:59:00Z"], None);
    assert_eq!(r["triggers"].as_array().unwrap().len(), 0, "{r}");
    let (_, r) = automations(&repo, &["tick", "--at", "2026-12-07T03:00:20Z"], None);
    assert_eq!(r["triggers"][0]["key"], format!("cron:{}", 1_796_612_400_000_i64), "{r}");
    assert_eq!(r["triggers"][0]["outcome"], "opened");
    let (_, r) = automations(&repo, &["tick", "--at", "2026-12-07T03:00:40Z"], None);
    assert_eq!(r["triggers"].as_array().unwrap().len(), 0, "the same firing is taken once: {r}");
    // A manual trigger on the same day: max_per_day 1 holds it back, and says so.
    let (_, r) = automations(&repo, &["run", "retrain"], None);
    assert_eq!(r["triggers"][0]["outcome"], "suppressed", "{r}");
    assert!(r["triggers"][0]["detail"].as_str().unwrap().contains("max_per_day"), "{r}");
}

#[test]
fn a_new_data_version_triggers_once() {
    let repo = Repo::new();
    world(&repo, "", "", &HOLDOUT_DIRECT.replace("{schedule: \"0 3 1 1 *\"}", "{data: data/train.csv}"));
    let (_, r) = automations(&repo, &["tick"], None);
    assert_eq!(r["triggers"].as_array().unwrap().len(), 0, "the data version 1 was trained on is no trigger: {r}");
    retrain_on(&repo, customers(1500, 2, true, false));
    let (_, r) = automations(&repo, &["tick"], None);
    assert_eq!(r["triggers"][0]["outcome"], "opened", "{r}");
    assert_eq!(incident(&repo, 1)["state"], "resolved");
    let (_, r) = automations(&repo, &["tick"], None);
    assert_eq!(r["triggers"].as_array().unwrap().len(), 0, "{r}");
}

#[test]
fn unknown_references_in_automations_are_refused_with_line_and_column() {
    let repo = Repo::new();
    let config = String::from_utf8(repo.read("kairo.yaml")).unwrap();
    repo.write(
        "kairo.yaml",
        format!("{config}{STAGE}models:\n  churn: {{}}\nautomations:\n  retrain:\n    model: churn\n    on: [{{alert: {{monitor: nope}}}}]\n    retrain: {{stages: [train], artifact: model.onnx}}\n"),
    );
    let out = repo.kairo(&["automations", "ls"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("kairo.yaml:") && err.contains("automations.retrain: no monitor `nope`"), "{err}");
    let out = repo.kairo(&["automations", "run", "nothing"]).output().unwrap();
    assert!(!out.status.success());
}

/// The served path: alerts from the prediction log, two at once joining one incident,
/// labelled production rows exported, labels awaited, and a canary the guard rolls back.
#[test]
fn two_alerts_make_one_incident_and_a_breaching_canary_is_rolled_back() {
    let repo = Repo::new();
    let policy = "    rollout: {min_requests: 5, window_s: 600, max_error_rate: 0.05, max_p99_ms: 0.000001}\n";
    let second = "  watch2:\n    deployment: churn\n    rows: 100\n    alerts:\n      - when: drift_share > 0.1\n        action: retrain\n";
    let automation = "    on: [{alert: {monitor: watch}}, {alert: {monitor: watch2}}, {data: data/train.csv}]
    retrain:
      export: {to: data/train.csv, since: 30d}
      stages: [train]
      artifact: model.onnx
    register: {profile_data: data/train.csv, target: churned}
    evaluate: {data: [recent_labels], min_labels: 150, metric: auc}
    rollout: {strategy: canary, weight: 50}
";
    world(&repo, policy, second, automation);
    let (server, url) =
        spawn_listening(&repo, &["serve", "churn", "--port", "0", "--poll-ms", "100", "--log-flush-s", "1"]);
    let _server = server;
    let addr = url.trim_start_matches("http://").trim_end_matches('/').to_string();
    let march = customers(1200, 5, true, false);
    let rows: Vec<&str> = march.lines().skip(1).collect();
    send(&addr, &rows[..300], "a", 20);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    for m in ["watch", "watch2"] {
        let out = repo.kairo(&["monitor", "check", "--monitor", m]).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(3),
            "{m}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (_, r) = automations(&repo, &["tick"], None);
    let outcomes: Vec<&str> = r["triggers"].as_array().unwrap().iter().filter_map(|t| t["outcome"].as_str()).collect();
    assert_eq!(outcomes, ["opened", "joined"], "{r}");
    assert_eq!(incidents(&repo).len(), 1);
    let inc = incident(&repo, 1);
    assert_eq!(inc["state"], "awaiting_labels", "{inc:#}");
    assert_eq!(inc["detail"]["export"]["rows"], 300);
    assert_eq!(inc["detail"]["triggers"].as_array().unwrap().len(), 2);
    let exported = String::from_utf8(repo.read("data/train.csv")).unwrap();
    assert!(
        exported.starts_with("request_id,row,time,version,tenure,spend,support_calls,usage_hours,churned\n"),
        "{}",
        &exported[..200]
    );
    send(&addr, &rows[300..600], "b", 20);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let (_, r) = automations(&repo, &["tick"], None);
    assert_eq!(r["triggers"].as_array().unwrap().len(), 0, "the loop's own export is no trigger: {r}");
    let inc = incident(&repo, 1);
    assert_eq!(inc["state"], "rolling_out", "{r} {inc:#}");
    let sources = &inc["detail"]["evaluation"]["sources"][0];
    assert_eq!(sources["kind"], "recent_labels");
    assert!(
        sources["from"].as_str().unwrap() >= inc["detail"]["export"]["to"].as_str().unwrap(),
        "judged rows come after the trained ones"
    );
    // Canary traffic: the latency limit cannot be met, so the guard rolls it back.
    send(&addr, &rows[600..700], "c", 1);
    std::thread::sleep(std::time::Duration::from_millis(800));
    automations(&repo, &["tick"], None);
    let inc = incident(&repo, 1);
    assert_eq!(inc["state"], "rolled_back", "{inc:#}");
    assert_eq!(champion(&repo), 1, "the alias went back");
}

/// POST rows (CSV lines of the customer table) to the OIP endpoint in requests of `batch`,
/// then their labels to /v1/feedback.
fn send(addr: &str, rows: &[&str], prefix: &str, batch: usize) {
    let client = reqwest::blocking::Client::new();
    let mut feedback = Vec::new();
    for (i, chunk) in rows.chunks(batch).enumerate() {
        let cells: Vec<Vec<&str>> = chunk.iter().map(|r| r.split(',').collect()).collect();
        let inputs: Vec<Value> = ["tenure", "spend", "support_calls", "usage_hours"]
            .iter()
            .enumerate()
            .map(|(c, name)| {
                let data: Vec<f64> = cells.iter().map(|r| r[c].parse().unwrap()).collect();
                serde_json::json!({"name": name, "shape": [chunk.len(), 1], "datatype": "FP32", "data": data})
            })
            .collect();
        let id = format!("{prefix}-{i}");
        let r = client
            .post(format!("http://{addr}/v2/models/churn/infer"))
            .json(&serde_json::json!({"id": id, "inputs": inputs}))
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().unwrap());
        let labels: Vec<i64> = cells.iter().map(|r| r[4].parse().unwrap()).collect();
        feedback.push(serde_json::json!({"request_id": id, "labels": labels}));
    }
    let r = client.post(format!("http://{addr}/v1/feedback")).json(&feedback).send().unwrap();
    assert!(r.status().is_success());
}

#[test]
fn the_loop_runs_on_postgresql_too() {
    let Some(url) = service("KAIRO_TEST_POSTGRES_URL") else { return };
    let db = crate::faults::fresh_postgres_database(&url);
    let repo = Repo::new().with_database(db);
    world(&repo, "", "", HOLDOUT_DIRECT);
    retrain_on(&repo, customers(1500, 2, true, false));
    let (status, _) = automations(&repo, &["run", "retrain"], Some("register"));
    assert!(!status.success());
    automations(&repo, &["tick"], None);
    assert_eq!(incident(&repo, 1)["state"], "resolved");
    assert_eq!(counts(&repo), (2, 2, 2));
}

#[test]
fn kairo_server_runs_the_loop_by_itself_serves_incidents_and_calls_the_webhook() {
    use std::io::{BufRead, BufReader};
    let repo = Repo::new();
    let (hook, bodies) = crate::monitoring::webhook();
    let automation = HOLDOUT_DIRECT.replace("{schedule: \"0 3 1 1 *\"}", "{data: data/train.csv}")
        + &format!("    webhook: {{url: '{hook}', retries: 2}}\n");
    world(&repo, "", "", &automation);
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("kairo"))
        .args(["server", "--port", "0", "--loop-every-s", "1"])
        .current_dir(repo.path())
        .env("PATH", path_with_kairo())
        .env("KAIRO_ACTOR", "server@test")
        .env_remove("KAIRO_DATABASE_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    out.read_line(&mut line).unwrap();
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let _server = crate::Listening(child);
    let url = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap().to_string();
    retrain_on(&repo, customers(1500, 2, true, false));
    let client = reqwest::blocking::Client::new();
    let get = |path: &str| {
        let r = client.get(format!("{url}{path}")).send().unwrap();
        (r.status().as_u16(), r.json::<Value>().unwrap())
    };
    let mut state = Value::Null;
    for _ in 0..60 {
        let (_, list) = get("/api/v1/incidents");
        state = list["incidents"][0]["state"].clone();
        if state == "resolved" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert_eq!(state, "resolved", "no command was run: the server's loop took the new data version");
    let (status, one) = get("/api/v1/incidents/1");
    assert_eq!(status, 200);
    assert_eq!(one["detail"]["challenger"]["version"], 2);
    let kinds: Vec<&str> = one["timeline"].as_array().unwrap().iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds.first(), Some(&"incident.opened"), "{one:#}");
    assert_eq!(get("/api/v1/incidents/99").0, 404);
    let (status, bad) = get("/api/v1/incidents/abc");
    assert_eq!(status, 400, "{bad}");
    let (_, doc) = get("/api/v1/openapi.json");
    assert!(doc["paths"]["/api/v1/incidents/{id}"].is_object());
    // Every transition reached the webhook (its first answer was a 503, retried).
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let tos: Vec<String> = bodies.lock().unwrap().iter().filter_map(|b| b["to"].as_str().map(String::from)).collect();
    assert!(tos.contains(&"retraining".to_string()) && tos.last().map(String::as_str) == Some("resolved"), "{tos:?}");
}

#[test]
fn dry_run_says_what_would_happen_and_changes_nothing() {
    let repo = Repo::new();
    world(&repo, "    gates: [\"size_mb <= 50\"]\n", "", HOLDOUT_DIRECT);
    retrain_on(&repo, customers(1500, 2, true, false));
    let out =
        repo.kairo(&["automations", "run", "retrain", "--dry-run"]).env("PATH", path_with_kairo()).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "retrain (dry run: nothing is changed)",
        "trigger   would open an incident for churn",
        "retrain   train: would run",
        "evaluate  auc vs @champion (version 1) on the holdout",
        "promote   to @champion: gates size_mb <= 50; approval automatic",
        "rollout   direct",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    assert!(incidents(&repo).is_empty());
    assert_eq!(counts(&repo).0, 1);
    let ls = repo.json(&["automations", "ls"]);
    assert_eq!(ls[0]["name"], "retrain");
    assert_eq!(ls[0]["on"][0], format!("schedule \"0 3 1 1 *\" (next {}-01-01T03:00:00.000Z)", 2027));
}

#[test]
fn predictions_export_writes_labelled_rows_as_csv() {
    let repo = Repo::new();
    world(&repo, "", "", HOLDOUT_DIRECT);
    let out = repo.kairo(&["models", "predictions", "export", "churn", "--out", "none.csv"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "no rows of churn to export; none.csv not written");
    assert!(!repo.join("none.csv").exists());
    let (server, url) = spawn_listening(&repo, &["serve", "churn", "--port", "0", "--log-flush-s", "1"]);
    let _server = server;
    let addr = url.trim_start_matches("http://").trim_end_matches('/').to_string();
    let march = customers(40, 5, true, false);
    let rows: Vec<&str> = march.lines().skip(1).collect();
    send(&addr, &rows, "x", 10);
    // Ten more rows without labels.
    let client = reqwest::blocking::Client::new();
    let inputs: Vec<Value> = ["tenure", "spend", "support_calls", "usage_hours"]
        .iter()
        .map(|n| serde_json::json!({"name": n, "shape": [10, 1], "datatype": "FP32", "data": vec![1.0; 10]}))
        .collect();
    client.post(format!("{url}/v2/models/churn/infer")).json(&serde_json::json!({"inputs": inputs})).send().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1600));
    let out = repo
        .kairo(&[
            "models",
            "predictions",
            "export",
            "churn",
            "--labelled",
            "--since",
            "1h",
            "--label-column",
            "churned",
            "--out",
            "prod.csv",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "wrote 40 rows of churn (40 labelled) to prod.csv");
    let csv = String::from_utf8(repo.read("prod.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("request_id,row,time,version,tenure,spend,support_calls,usage_hours,churned"));
    let first: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!((first[0], first[1], first[3]), ("x-0", "0", "1"));
    let numbers = |cells: &[&str]| cells.iter().map(|c| c.parse::<f64>().unwrap()).collect::<Vec<_>>();
    assert_eq!(numbers(&first[4..]), numbers(&rows[0].split(',').collect::<Vec<_>>()));
    let out = repo.kairo(&["models", "predictions", "export", "churn", "--out", "all.csv"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "wrote 50 rows of churn (40 labelled) to all.csv");
    let out = repo
        .kairo(&["models", "predictions", "export", "churn", "--since", "soon", "--out", "x.csv"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--since"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = repo.kairo(&["models", "predictions", "export", "nope", "--out", "x.csv"]).output().unwrap();
    assert!(!out.status.success());
    // The old form still lists the log.
    repo.kairo(&["models", "predictions", "churn", "--limit", "2"]).assert().success();
}

#[test]
fn without_enough_labels_in_time_it_judges_on_the_holdout_alone_and_says_so() {
    let repo = Repo::new();
    let automation = "    on: [{schedule: \"0 3 1 1 *\"}]
    retrain: {stages: [train], artifact: model.onnx}
    evaluate: {data: [holdout, recent_labels], min_labels: 100, labels_timeout: 2s, metric: accuracy, test: mcnemar}
    rollout: {strategy: direct}
";
    world(&repo, "", "", automation);
    retrain_on(&repo, customers(1500, 2, true, false));
    automations(&repo, &["run", "retrain"], None);
    let inc = incident(&repo, 1);
    assert_eq!(inc["state"], "awaiting_labels", "{inc:#}");
    assert_eq!(inc["detail"]["labels"]["have"], 0);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    automations(&repo, &["tick"], None);
    let inc = incident(&repo, 1);
    assert_eq!(inc["state"], "resolved", "{inc:#}");
    let ev = &inc["detail"]["evaluation"];
    assert!(ev["fallback"].as_str().unwrap().contains("judged on the holdout alone"), "{ev:#}");
    assert_eq!(ev["test"], "mcnemar");
    assert!(ev["result"]["b"].as_u64().unwrap() > ev["result"]["c"].as_u64().unwrap(), "{ev:#}");
    assert_eq!(ev["result"]["verdict"], "better");
}
