//! The team server: users, tokens and roles through the real binary, a real socket and the
//! unmodified MLflow client (Bearer token and Basic password), with MLflow's 401/403 shapes,
//! scopes, token narrowing, revocation, expiry, disabled users, and the refusal to serve the
//! network unprotected.

use std::io::Write;
use std::process::Stdio;

use serde_json::{json, Value};

use crate::{spawn_listening, Repo};

pub fn add_user(repo: &Repo, name: &str, roles: &[&str], password: Option<&str>) {
    let mut args = vec!["users", "add", name];
    for r in roles {
        args.extend(["--role", r]);
    }
    if password.is_some() {
        args.push("--password-stdin");
    }
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("kairo"));
    cmd.args(&args)
        .current_dir(repo.path())
        .env("KAIRO_ACTOR", "root@test")
        .env_remove("KAIRO_DATABASE_URL")
        .envs(repo.database_url.iter().map(|u| ("KAIRO_DATABASE_URL", u)))
        .stdin(Stdio::piped())
        .stdout(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    if let Some(p) = password {
        child.stdin.take().unwrap().write_all(format!("{p}\n").as_bytes()).unwrap();
    } else {
        drop(child.stdin.take());
    }
    assert!(child.wait().unwrap().success(), "users add {name}");
}

pub fn token(repo: &Repo, user: &str, extra: &[&str]) -> String {
    let mut args = vec!["tokens", "create", user];
    args.extend_from_slice(extra);
    let out = repo.kairo(&args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn call(url: &str, method: &str, path: &str, auth: Option<&str>, body: Value) -> (u16, Value, Option<String>) {
    let client = reqwest::blocking::Client::new();
    let mut req = match method {
        "GET" => client.get(format!("{url}{path}")),
        _ => client.post(format!("{url}{path}")).json(&body),
    };
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let r = req.send().unwrap();
    let status = r.status().as_u16();
    let www = r.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_string());
    (status, r.json().unwrap_or(Value::Null), www)
}

fn mlflow(python: &str, url: &str, env: &[(&str, &str)], calls: Value) -> Vec<Value> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/mlflow_calls.py");
    let out = std::process::Command::new(python)
        .arg(&script)
        .arg(calls.to_string())
        .env("MLFLOW_TRACKING_URI", url)
        .env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn roles_tokens_and_passwords_on_the_tracking_server() {
    let Some(python) = crate::server::python() else { return };
    let repo = Repo::new();
    add_user(&repo, "alice", &["scientist"], Some("correct horse battery"));
    add_user(&repo, "bob", &["viewer"], None);
    add_user(&repo, "carol", &["scientist@model:churn"], None);
    let alice = token(&repo, "alice", &["--note", "laptop"]);
    let bob = token(&repo, "bob", &[]);
    let carol = token(&repo, "carol", &[]);
    let alice_read_only = token(&repo, "alice", &["--scope", "viewer"]);
    let (mut server, url) = spawn_listening(&repo, &["server", "--port", "0"]);

    // Open: health and version. Everything else wants credentials, in each API's own shape.
    assert_eq!(call(&url, "GET", "/health", None, Value::Null).0, 200);
    let (status, body, www) = call(&url, "GET", "/api/v1/runs", None, Value::Null);
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthenticated")), "{body}");
    assert!(www.unwrap().contains("Basic"));
    let (status, body, _) = call(&url, "POST", "/api/2.0/mlflow/experiments/create", None, json!({"name": "x"}));
    assert_eq!((status, body["error_code"].as_str()), (401, Some("UNAUTHENTICATED")), "{body}");
    // The same token with its last digit changed (to something it is not).
    let last = if alice.ends_with('0') { '1' } else { '0' };
    let bad = format!("Bearer {}{last}", &alice[..alice.len() - 1]);
    assert_eq!(call(&url, "GET", "/api/v1/runs", Some(&bad), Value::Null).0, 401, "a wrong secret");
    assert_eq!(call(&url, "GET", "/metrics", None, Value::Null).0, 401, "metrics are not open by default");

    // The real MLflow client: a token, then a password.
    let r = mlflow(
        &python,
        &url,
        &[("MLFLOW_TRACKING_TOKEN", &alice)],
        json!([["create_experiment", "alice-exp"], ["create_registered_model", "churn"]]),
    );
    assert!(r.iter().all(|x| x["ok"] == true), "{r:?}");
    let r = mlflow(
        &python,
        &url,
        &[("MLFLOW_TRACKING_USERNAME", "alice"), ("MLFLOW_TRACKING_PASSWORD", "correct horse battery")],
        json!([["create_experiment", "alice-exp-2"], ["search_experiments"]]),
    );
    assert!(r.iter().all(|x| x["ok"] == true), "{r:?}");
    let r = mlflow(
        &python,
        &url,
        &[("MLFLOW_TRACKING_USERNAME", "alice"), ("MLFLOW_TRACKING_PASSWORD", "wrong horse battery")],
        json!([["search_experiments"]]),
    );
    assert_eq!(r[0]["error_code"], "UNAUTHENTICATED", "{r:?}");
    // The events name the authenticated user, not the server's.
    let (_, events, _) =
        call(&url, "GET", "/api/v1/events?subject=model:churn", Some(&format!("Bearer {alice}")), Value::Null);
    assert_eq!(events["events"][0]["actor"], "alice", "{events}");

    // A viewer reads but may not write; the client sees PERMISSION_DENIED naming the fix.
    let r = mlflow(
        &python,
        &url,
        &[("MLFLOW_TRACKING_TOKEN", &bob)],
        json!([["search_experiments"], ["create_experiment", "bob-exp"]]),
    );
    assert_eq!(r[0]["ok"], true, "{r:?}");
    assert_eq!(r[1]["error_code"], "PERMISSION_DENIED", "{r:?}");
    assert!(r[1]["message"].as_str().unwrap().contains("bob may not track"), "{r:?}");

    // A grant on one model: churn yes, fraud no.
    let r = mlflow(
        &python,
        &url,
        &[("MLFLOW_TRACKING_TOKEN", &carol)],
        json!([["update_registered_model", "churn", "carol's notes"], ["create_registered_model", "fraud"]]),
    );
    assert_eq!(r[0]["ok"], true, "{r:?}");
    assert_eq!(r[1]["error_code"], "PERMISSION_DENIED", "{r:?}");
    assert!(r[1]["message"].as_str().unwrap().contains("on model fraud"), "{r:?}");

    // A token narrowed to viewer cannot write even though alice can.
    let r =
        mlflow(&python, &url, &[("MLFLOW_TRACKING_TOKEN", &alice_read_only)], json!([["create_experiment", "nope"]]));
    assert_eq!(r[0]["error_code"], "PERMISSION_DENIED", "{r:?}");

    // Path checks still hold for an authorised user.
    let (status, _, _) = call(
        &url,
        "GET",
        "/api/2.0/mlflow-artifacts/artifacts/..%2F..%2Fetc%2Fpasswd",
        Some(&format!("Bearer {alice}")),
        Value::Null,
    );
    assert!((400..500).contains(&status), "{status}");

    // Revoked, disabled: refused once the 5 s cache lets go. Each credential is asked about
    // until it is refused, and then no more: a refused credential counts as a guess, and 20
    // guesses a minute from one address would be answered 429 (the next test's subject).
    let id = alice.split('_').nth(1).unwrap().to_string();
    repo.kairo(&["tokens", "revoke", &id]).assert().success();
    repo.kairo(&["users", "disable", "bob"]).assert().success();
    for who in [&alice, &bob] {
        let start = std::time::Instant::now();
        loop {
            let status = call(&url, "GET", "/api/v1/runs", Some(&format!("Bearer {who}")), Value::Null).0;
            if status == 401 {
                break;
            }
            assert_eq!(status, 200, "until the cache lets go");
            assert!(start.elapsed() < std::time::Duration::from_secs(15), "still accepted after 15 s");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
    let _ = server.kill();
    let _ = server.wait();

    let listed = repo.json(&["tokens", "ls", "--user", "alice"]);
    assert_eq!(listed[0]["state"], "revoked");
    assert!(listed.to_string().find(&alice[20..]).is_none(), "secrets are never listed");
}

#[test]
fn tokens_expire_and_never_widen_their_user() {
    let repo = Repo::new();
    add_user(&repo, "ci", &["viewer"], None);
    let out = repo.kairo(&["tokens", "create", "ci", "--scope", "deployer"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--scope deployer: ci does not hold it"));
    let out = repo.kairo(&["tokens", "create", "nobody"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("no user nobody"));
    let out = repo.kairo(&["users", "add", "x", "--role", "owner"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("role `owner`: use one of viewer"));
    let mut add = std::process::Command::new(assert_cmd::cargo::cargo_bin("kairo"))
        .args(["users", "add", "pat", "--password-stdin"])
        .current_dir(repo.path())
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    add.stdin.take().unwrap().write_all(b"too short\n").unwrap();
    let out = add.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 12 characters"));
    let out = repo.kairo(&["users", "add", "bot", "--service", "--password-stdin"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("a service account authenticates with tokens only"));
    let short = token(&repo, "ci", &["--expires", "1s"]);
    let (mut server, url) = spawn_listening(&repo, &["server", "--port", "0"]);
    std::thread::sleep(std::time::Duration::from_millis(1200));
    let (status, body, _) = call(&url, "GET", "/api/v1/runs", Some(&format!("Bearer {short}")), Value::Null);
    assert_eq!(status, 401, "{body}");
    assert!(body["message"].as_str().unwrap().contains("expired"), "{body}");
    let _ = server.kill();
    let _ = server.wait();
}

#[test]
fn the_network_is_not_served_unprotected() {
    let repo = Repo::new();
    let out = repo.kairo(&["server", "--host", "0.0.0.0", "--port", "0"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to listen on 0.0.0.0") && err.contains("--insecure-no-auth"), "{err}");
    let (mut server, url) =
        spawn_listening(&repo, &["server", "--host", "0.0.0.0", "--port", "0", "--insecure-no-auth"]);
    let port = url.rsplit(':').next().unwrap();
    assert_eq!(call(&format!("http://127.0.0.1:{port}"), "GET", "/api/v1/runs", None, Value::Null).0, 200);
    let _ = server.kill();
    let _ = server.wait();
    // With users it starts on the network, and asks for credentials.
    add_user(&repo, "admin", &["admin"], None);
    let (mut server, url) = spawn_listening(&repo, &["server", "--host", "0.0.0.0", "--port", "0"]);
    let port = url.rsplit(':').next().unwrap();
    assert_eq!(call(&format!("http://127.0.0.1:{port}"), "GET", "/api/v1/runs", None, Value::Null).0, 401);
    let _ = server.kill();
    let _ = server.wait();
}

fn sql(repo: &Repo, statement: &str) {
    let db = repo.join(".kairo/kairo.db");
    let out = std::process::Command::new("python3")
        .args(["-c", "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute(sys.argv[2]); c.commit()"])
        .arg(&db)
        .arg(statement)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// The event log is a hash chain: an edited event, a deleted one, or a stripped hash is found.
#[test]
fn an_edited_or_deleted_event_is_found() {
    for (tamper, finding) in [
        ("UPDATE events SET actor = 'mallory' WHERE id = 2", "event 2 was changed after it was written"),
        ("DELETE FROM events WHERE id = 2", "event 3 does not follow event 1"),
        (
            "UPDATE events SET hash = NULL, prev_hash = NULL WHERE id = 3",
            "event 3 has no hash although the chain had begun",
        ),
    ] {
        let repo = Repo::new();
        add_user(&repo, "a", &["viewer"], None);
        add_user(&repo, "b", &["viewer"], None);
        token(&repo, "a", &[]);
        repo.kairo(&["users", "grant", "b", "approver"]).assert().success();
        let out = repo.kairo(&["events", "verify"]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
        assert!(String::from_utf8_lossy(&out.stdout).contains("chain intact"));
        sql(&repo, tamper);
        let out = repo.kairo(&["events", "verify"]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(4), "{tamper}: {text}");
        assert!(text.contains(finding), "{tamper}: {text}");
    }
}

/// `kairo serve --auth`: inference needs a token whose roles may read that model; health stays
/// open, metrics unless `--open-metrics`; each protocol answers in its own shape.
#[test]
fn serving_with_auth_takes_tokens_for_the_model() {
    use crate::serving::Serve;
    let repo = Repo::new();
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models/logreg20.onnx");
    repo.kairo(&["models", "register", "clf", "--file", model.to_str().unwrap()]).assert().success();
    repo.kairo(&["deploy", "clf", "--version", "1"]).assert().success();
    let out = repo.kairo(&["serve", "clf", "--auth", "--port", "0"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--auth: the project has no users"));

    add_user(&repo, "svc", &["viewer@model:clf"], Some("a long service password"));
    add_user(&repo, "other", &["viewer@model:fraud"], None);
    let svc = token(&repo, "svc", &[]);
    let other = token(&repo, "other", &[]);
    let serve = Serve::start(&repo, &["clf", "--auth"]);
    let row: Vec<f64> = (0..20).map(|i| f64::from(i) / 20.0).collect();
    let oip = json!({"inputs": [{"name": "input", "shape": [1, 20], "datatype": "FP32", "data": row}]});
    let inv = json!({"inputs": [row]});
    let post = |path: &str, body: &Value, auth: Option<String>| {
        let mut req = reqwest::blocking::Client::new().post(format!("{}{path}", serve.url)).json(body);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let r = req.send().unwrap();
        (r.status().as_u16(), r.json::<Value>().unwrap_or(Value::Null))
    };
    let (status, body) = post("/v2/models/clf/infer", &oip, None);
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthenticated")), "{body}");
    assert!(body["error"].as_str().unwrap().contains("kairo tokens create"), "{body}");
    let (status, body) = post("/invocations", &inv, None);
    assert_eq!((status, body["error_code"].as_str()), (401, Some("UNAUTHENTICATED")), "{body}");
    assert_eq!(post("/v2/models/clf/infer", &oip, Some(format!("Bearer {svc}"))).0, 200);
    assert_eq!(post("/invocations", &inv, Some(format!("Bearer {svc}"))).0, 200);
    let (status, body) = post("/v2/models/clf/infer", &oip, Some(format!("Bearer {other}")));
    assert_eq!((status, body["code"].as_str()), (403, Some("permission_denied")), "{body}");
    assert!(body["error"].as_str().unwrap().contains("other may not read on model clf"), "{body}");
    // A password is not a token here.
    let basic = format!("Basic {}", base64_of("svc:a long service password"));
    let (status, body) = post("/v2/models/clf/infer", &oip, Some(basic));
    assert_eq!(status, 401, "{body}");
    assert!(body["error"].as_str().unwrap().contains("takes API tokens"), "{body}");
    // Feedback feeds retraining: a viewer may not send it.
    let (status, _) = post("/v1/feedback", &json!({"request_id": "x", "label": 1}), Some(format!("Bearer {svc}")));
    assert_eq!(status, 403);
    assert_eq!(serve.get("/v2/health/ready").0, 200, "health stays open");
    assert_eq!(serve.get("/metrics").0, 401);
    serve.stop();
    let serve = Serve::start(&repo, &["clf", "--auth", "--open-metrics"]);
    assert_eq!(serve.get("/metrics").0, 200);
    serve.stop();
}

fn base64_of(text: &str) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = text.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, c)| n | (u32::from(*c) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Guessing is limited per source: after 20 failures in a minute the source gets 429 whatever
/// it sends, in MLflow's shape.
#[test]
fn a_source_that_keeps_failing_is_held_back() {
    let repo = Repo::new();
    add_user(&repo, "a", &["viewer"], Some("correct horse battery"));
    let good = token(&repo, "a", &[]);
    let (mut server, url) = spawn_listening(&repo, &["server", "--port", "0"]);
    let wrong = format!("Bearer kairo_{}_{}", "0".repeat(12), "0".repeat(64));
    for i in 0..20 {
        assert_eq!(
            call(&url, "GET", "/api/2.0/mlflow/experiments/search", Some(&wrong), Value::Null).0,
            401,
            "try {i}"
        );
    }
    let (status, body, _) = call(&url, "POST", "/api/2.0/mlflow/experiments/search", Some(&wrong), json!({}));
    assert_eq!((status, body["error_code"].as_str()), (429, Some("REQUEST_LIMIT_EXCEEDED")), "{body}");
    assert!(body["message"].as_str().unwrap().contains("too many failed authentications from 127.0.0.1"), "{body}");
    // Even a right token from that source waits out the window (it was never verified here).
    assert_eq!(call(&url, "GET", "/api/v1/runs", Some(&format!("Bearer {good}")), Value::Null).0, 429);
    let _ = server.kill();
    let _ = server.wait();
}
