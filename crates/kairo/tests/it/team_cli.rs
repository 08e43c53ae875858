//! The CLI as a client of the team server (`KAIRO_SERVER`, `kairo login`), and the role ×
//! endpoint matrix of `/api/v1`'s write endpoints, generated from the OpenAPI document.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;

use crate::auth::{add_user, token};
use crate::{service, spawn_listening, Repo};

fn model_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models/logreg20.onnx")
}

/// A workstation: no project, no database, its own config dir; every command goes to `server`.
struct Client {
    dir: tempfile::TempDir,
    server: String,
}

impl Client {
    fn new(server: &str) -> Client {
        Client { dir: tempfile::tempdir().unwrap(), server: server.to_string() }
    }

    fn cmd(&self, args: &[&str], token: Option<&str>) -> std::process::Command {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("kairo"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env("KAIRO_SERVER", &self.server)
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .env_remove("KAIRO_DATABASE_URL")
            .env_remove("KAIRO_ACTOR")
            .env_remove("KAIRO_TOKEN");
        if let Some(t) = token {
            cmd.env("KAIRO_TOKEN", t);
        }
        cmd
    }

    fn run(&self, args: &[&str], token: Option<&str>) -> (i32, String, String) {
        let out = self.cmd(args, token).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn login(&self, user: &str, password: &str) -> (i32, String, String) {
        let mut child = self
            .cmd(&["login", "--username", user, "--password-stdin"], None)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// register → promote (pending) → the requester cannot approve → another user approves →
/// a deployer deploys, all from workstations that never see the database (PostgreSQL).
#[test]
fn the_cli_goes_through_the_server_on_postgresql() {
    let Some(base) = service("KAIRO_TEST_POSTGRES_URL") else { return };
    let repo = Repo::bare().with_database(crate::faults::fresh_postgres_database(&base)).initialised();
    repo.write("kairo.yaml", "version: 1\nmodels:\n  clf:\n    approval: required\n");
    add_user(&repo, "alice", &["scientist", "approver"], Some("alice's long password"));
    add_user(&repo, "bob", &["approver"], Some("bob's long password too"));
    add_user(&repo, "dave", &["deployer"], None);
    let dave = token(&repo, "dave", &[]);
    let (mut server, url) = spawn_listening(&repo, &["server", "--port", "0"]);

    let alice = Client::new(&url);
    // Not logged in: the server says so, and how to log in.
    let (code, _, err) = alice.run(&["models", "ls"], None);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("kairo login"), "{err}");
    let (code, _, err) = alice.login("alice", "not alice's password");
    assert_eq!(code, 1, "{err}");
    let (code, out, err) = alice.login("alice", "alice's long password");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("as alice"), "{out}");
    let creds = alice.dir.path().join("config/kairo/credentials.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&creds).unwrap().permissions().mode() & 0o777, 0o600);
    let (_, out, _) = alice.run(&["whoami"], None);
    assert!(out.starts_with("alice at "), "{out}");

    // Register with the model's bytes.
    let model = model_file();
    let (code, out, err) = alice
        .run(&["models", "register", "clf", "--file", model.to_str().unwrap(), "--metric", "auc=0.91", "--json"], None);
    assert_eq!(code, 0, "{err}");
    let reg: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((reg["version"].as_i64(), reg["source"].as_str()), (Some(1), Some("upload:logreg20.onnx")), "{reg}");
    assert_eq!(reg["metrics"]["auc"], 0.91);
    // Bad input is the server's 4xx, named.
    let junk = alice.dir.path().join("junk.onnx");
    std::fs::write(&junk, b"not a model").unwrap();
    let (code, _, err) = alice.run(&["models", "register", "clf", "--file", junk.to_str().unwrap()], None);
    assert_eq!(code, 1);
    assert!(err.contains("server http://") && err.contains("clf"), "{err}");

    // Promotion: pending approval (exit 6); four eyes stop alice approving her own.
    let (code, out, _) = alice.run(&["models", "promote", "clf", "1"], None);
    assert_eq!(code, 6, "{out}");
    assert!(out.contains("pending approval"), "{out}");
    let (code, _, err) = alice.run(&["models", "promote", "clf", "1", "--approve"], None);
    assert_eq!(code, 1);
    assert!(err.contains("four eyes"), "{err}");
    // Alice is no deployer.
    let (code, _, err) = alice.run(&["deploy", "clf", "--version", "1"], None);
    assert_eq!(code, 1);
    assert!(err.contains("alice may not deploy on model clf"), "{err}");

    let bob = Client::new(&url);
    assert_eq!(bob.login("bob", "bob's long password too").0, 0);
    let (code, out, err) = bob.run(&["models", "promote", "clf", "1", "--approve", "--reason", "looks good"], None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("promoted: 'champion' now points at version 1"), "{out}");

    // A deployer with a token from the environment (as in CI).
    let ci = Client::new(&url);
    let (code, out, err) = ci.run(&["deploy", "clf", "--version", "1"], Some(&dave));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("clf: version 1 now serves 100%"), "{out}");
    let (_, out, _) = ci.run(&["deploy", "clf", "--json"], Some(&dave));
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["stable"], 1, "{status}");
    // Nothing to roll back to: the server's refusal, as an error.
    let (code, _, err) = ci.run(&["rollback", "clf"], Some(&dave));
    assert_eq!(code, 1);
    assert!(err.starts_with("error: server http://"), "{err}");

    // Who did what is the server's record, read back through the server.
    let (_, out, _) = bob.run(&["models", "show", "clf", "--json"], None);
    let doc: Value = serde_json::from_str(&out).unwrap();
    let p = &doc["promotions"][0];
    assert_eq!((p["requested_by"].as_str(), p["decided_by"].as_str()), (Some("alice"), Some("bob")), "{doc}");
    assert_eq!(doc["versions"][0]["created_by"], "alice");
    let (_, out, _) = bob.run(&["models", "show", "clf"], None);
    assert!(out.contains("Model clf") && out.contains("inputs: input FP32 [-1,20]"), "{out}");
    let (code, out, _) = bob.run(&["kpi", "--json"], None);
    assert_eq!(code, 0);
    let kpi: Value = serde_json::from_str(&out).unwrap();
    assert!(kpi["deployment_frequency"]["total"].as_u64().is_some(), "{kpi}");
    let (code, out, _) = bob.run(&["incidents", "ls"], None);
    assert_eq!((code, out.trim()), (0, "no incidents"));

    // Runs through the server print as they do on the project.
    repo.write("params.yaml", "train:\n  lr: 0.5\n  name: fast\n");
    repo.write("count.sh", "echo 3 > n.txt\nprintf '{\"acc\": 0.75}' > m.json\n");
    repo.write(
        "kairo.yaml",
        "version: 1\nmodels:\n  clf:\n    approval: required\nstages:\n  count:\n    cmd: sh count.sh\n    deps: [count.sh]\n    params: [train.lr, train.name]\n    outs: [n.txt]\n    metrics: [m.json]\n",
    );
    let out = repo.kairo(&["run"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let local = repo.kairo(&["runs", "ls"]).output().unwrap();
    let (code, remote, err) = bob.run(&["runs", "ls"], None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(remote, String::from_utf8_lossy(&local.stdout), "the same table in both modes");
    let id = remote.lines().nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    let local = repo.kairo(&["runs", "show", &id]).output().unwrap();
    let (code, remote, _) = bob.run(&["runs", "show", &id[..12]], None);
    assert_eq!(code, 0);
    assert_eq!(remote, String::from_utf8_lossy(&local.stdout), "the same run in both modes");
    let (code, out, _) = bob.run(&["runs", "ls", "--stage", "nope", "--json"], None);
    assert_eq!((code, out.trim()), (0, "[]"));
    let (code, _, err) = bob.run(&["runs", "diff", &id, &id], None);
    assert_eq!(code, 2, "{err}");

    // The workstations never had a project or a database.
    for c in [&alice, &bob, &ci] {
        assert!(!c.dir.path().join(".kairo").exists());
    }
    // Logging out forgets the token.
    assert_eq!(alice.run(&["logout"], None).0, 0);
    let (code, _, err) = alice.run(&["models", "ls"], None);
    assert_eq!(code, 1);
    assert!(err.contains("kairo login"), "{err}");
    let _ = server.kill();
    let _ = server.wait();
}

/// What each role may do, written out here independently of the server's table.
fn role_allows(role: &str, permission: &str) -> bool {
    match role {
        "admin" => true,
        _ if permission == "read" => true,
        "scientist" => matches!(permission, "track" | "register"),
        "approver" => permission == "approve",
        "deployer" => permission == "deploy",
        _ => false,
    }
}

/// Every write endpoint of the OpenAPI document × every role: no credentials → 401, a role
/// that does not allow it → 403, one that does → neither (and never 5xx). Path parameters and
/// bodies come from the document (its examples); model bytes for the octet-stream upload.
#[test]
fn role_by_endpoint_matrix_from_the_openapi_document() {
    let repo = Repo::new();
    let model = model_file();
    for _ in 0..2 {
        repo.kairo(&["models", "register", "clf", "--file", model.to_str().unwrap()]).assert().success();
    }
    let roles = ["viewer", "scientist", "approver", "deployer", "admin"];
    // Each role's user with a password (Basic): a token may not make tokens, a password may.
    let mut tokens = Vec::new();
    for r in roles {
        add_user(&repo, &format!("{r}-user"), &[r], Some("a password long enough"));
        tokens.push(format!("{r}-user"));
    }
    let admin_token = token(&repo, "admin-user", &[]);
    let (mut server, url) = spawn_listening(&repo, &["server", "--port", "0"]);
    let http = reqwest::blocking::Client::new();
    let admin = &tokens[4];
    let basic = |r: reqwest::blocking::RequestBuilder, user: &str| r.basic_auth(user, Some("a password long enough"));
    let doc: Value = basic(http.get(format!("{url}/api/v1/openapi.json")), admin).send().unwrap().json().unwrap();
    let schemas = &doc["components"]["schemas"];
    let mut writes = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let need =
                op["x-kairo-permission"].as_str().unwrap_or_else(|| panic!("{method} {path}: no x-kairo-permission"));
            if method == "get" {
                assert_eq!(need, "read", "{path}");
                continue;
            }
            writes += 1;
            let concrete = path.replace("{name}", "clf").replace("{alias}", "staging");
            let content = &op["requestBody"]["content"];
            let send = |auth: Option<&str>| {
                let mut req = http.request(method.to_uppercase().parse().unwrap(), format!("{url}{concrete}"));
                if content.get("application/octet-stream").is_some() {
                    req = req.header("content-type", "application/octet-stream").body(std::fs::read(&model).unwrap());
                } else if let Some(schema) = content["application/json"]["schema"]["$ref"].as_str() {
                    let example = &schemas[schema.rsplit('/').next().unwrap()]["example"];
                    assert!(!example.is_null(), "{method} {path}: its body schema has no example");
                    req = req.json(example);
                }
                if let Some(user) = auth {
                    req = basic(req, user);
                }
                let r = req.send().unwrap();
                let status = r.status().as_u16();
                (status, r.text().unwrap())
            };
            let (status, body) = send(None);
            assert_eq!(status, 401, "{method} {path} without credentials: {body}");
            for (role, t) in roles.iter().zip(&tokens) {
                let (status, body) = send(Some(t));
                assert!(status < 500, "{method} {path} as {role}: {status} {body}");
                if role_allows(role, need) {
                    assert!(status != 401 && status != 403, "{method} {path} ({need}) as {role}: {status} {body}");
                } else {
                    assert_eq!(status, 403, "{method} {path} ({need}) as {role}: {body}");
                    assert!(body.contains("may not"), "{body}");
                }
            }
        }
    }
    assert!(writes >= 10, "only {writes} write endpoints in the document");
    // The admin's requests did real work: version 2 was promoted and deployed.
    let (status, body) = {
        let r = basic(http.get(format!("{url}/api/v1/deployments/clf")), &tokens[0]).send().unwrap();
        (r.status().as_u16(), r.json::<Value>().unwrap())
    };
    assert_eq!((status, body["stable"].as_i64()), (200, Some(2)), "{body}");

    // A token, even an admin's, cannot make tokens (a stolen one would make lasting ones).
    let r = http
        .post(format!("{url}/api/v1/tokens"))
        .bearer_auth(&admin_token)
        .json(&serde_json::json!({}))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(r.text().unwrap().contains("a token cannot make tokens"));
    // A scoped read names its model as the handler reads it: `a:b` is model `a:b`, not `a`.
    add_user(&repo, "scoped", &["viewer@model:clf"], Some("a password long enough"));
    for (path, want) in [
        ("/api/v1/models/clf:1", 200),
        ("/api/v1/deployments/clf", 200),
        ("/api/v1/deployments/clf:x", 403),
        ("/api/v1/models/clf:x:1", 403),
    ] {
        let r = basic(http.get(format!("{url}{path}")), "scoped").send().unwrap();
        assert_eq!(r.status().as_u16(), want, "{path}");
    }

    // MLflow's path-traversal cases stay refused for an authenticated admin.
    for evil in ["..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "a/../../etc/passwd"] {
        let r = http
            .get(format!("{url}/api/2.0/mlflow-artifacts/artifacts/{evil}"))
            .bearer_auth(&admin_token)
            .send()
            .unwrap();
        let status = r.status().as_u16();
        let text = r.text().unwrap();
        assert!((400..500).contains(&status), "{evil}: {status}");
        assert!(!text.contains("root:"), "{evil}: {text}");
    }
    let _ = server.kill();
    let _ = server.wait();
}

/// A CA and a server certificate for 127.0.0.1 signed by it, made with the openssl CLI.
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl").args(args).current_dir(dir).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    openssl(
        &[
            &["req", "-x509"],
            &ec[..],
            &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=kairo test CA"],
        ]
        .concat(),
    );
    openssl(&[&["req"], &ec[..], &["-keyout", "key.pem", "-out", "leaf.csr", "-subj", "/CN=127.0.0.1"]].concat());
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
    ]);
    (dir.join("ca.pem"), dir.join("cert.pem"), dir.join("key.pem"))
}

/// `kairo server --tls-cert/--tls-key`: HTTPS for clients that trust the CA (reqwest, the CLI
/// through KAIRO_SERVER), plain HTTP and stalled handshakes refused without stopping the
/// server, and unusable key material named at startup.
#[test]
fn the_server_speaks_tls() {
    let repo = Repo::new();
    let (ca, cert, key) = certificates(repo.path());
    let model = model_file();
    repo.kairo(&["models", "register", "clf", "--file", model.to_str().unwrap()]).assert().success();

    // Unusable key material: a usage error that names the flag and the file.
    let out = repo.kairo(&["server", "--port", "0", "--tls-cert", "key.pem", "--tls-key", "key.pem"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--tls-cert") && err.contains("key.pem"), "{err}");
    let out = repo.kairo(&["server", "--port", "0", "--tls-cert", "cert.pem", "--tls-key", "ca.key"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does the key belong to the certificate?"));
    let out = repo.kairo(&["server", "--port", "0", "--tls-cert", "cert.pem"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "--tls-cert without --tls-key");

    let (mut server, url) = spawn_listening(
        &repo,
        &[
            "server",
            "--port",
            "0",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--header-timeout-s",
            "1",
        ],
    );
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let trusted = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap())
        .build()
        .unwrap();
    let r = trusted.get(format!("{url}/api/v1/models")).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.json::<Value>().unwrap()["models"][0]["name"], "clf");
    // A client that does not trust the CA refuses the server; one that speaks plain HTTP gets
    // no answer; one that never finishes the handshake is closed after the header timeout.
    assert!(reqwest::blocking::get(format!("{url}/health")).is_err());
    let plain = url.replace("https://", "http://");
    assert!(reqwest::blocking::Client::new().get(format!("{plain}/health")).send().is_err());
    let addr = url.trim_start_matches("https://");
    let mut stalled = std::net::TcpStream::connect(addr).unwrap();
    stalled.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 16];
    let n = std::io::Read::read(&mut stalled, &mut buf).unwrap_or(0);
    assert_eq!(n, 0, "closed without a byte");
    assert!(started.elapsed() < std::time::Duration::from_secs(8), "{:?}", started.elapsed());
    assert_eq!(trusted.get(format!("{url}/health")).send().unwrap().status().as_u16(), 200, "still serving");

    // Inference over HTTPS too (`kairo serve --tls-cert/--tls-key`).
    let (mut serve, serve_url) = spawn_listening(
        &repo,
        &["serve", "clf", "--port", "0", "--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()],
    );
    assert!(serve_url.starts_with("https://"), "{serve_url}");
    let row: Vec<f64> = (0..20).map(|i| f64::from(i) / 20.0).collect();
    let oip = serde_json::json!({"inputs": [{"name": "input", "shape": [1, 20], "datatype": "FP32", "data": row}]});
    let r = trusted.post(format!("{serve_url}/v2/models/clf/infer")).json(&oip).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(reqwest::blocking::Client::new()
        .get(format!("{}/v2/health/ready", serve_url.replace("https", "http")))
        .send()
        .is_err());
    let _ = serve.kill();
    let _ = serve.wait();

    // Credentials never go over plain HTTP to another machine.
    let out = Client::new("http://192.0.2.1:5000").cmd(&["models", "ls"], Some("kairo_x_y")).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to send credentials in clear text"));

    // The CLI as a client over HTTPS, trusting the CA through SSL_CERT_FILE.
    let client = Client::new(&url);
    let out = client.cmd(&["models", "ls"], None).env("SSL_CERT_FILE", &ca).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("clf"));
    let out = client.cmd(&["models", "ls"], None).env_remove("SSL_CERT_FILE").output().unwrap();
    assert!(!out.status.success(), "the system's roots do not vouch for the test CA");
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("server {url}")));
    let _ = server.kill();
    let _ = server.wait();
}
