//! OpenID Connect against a real provider (oidc-provider, started by `.ci/start-oidc.sh`):
//! JWT bearer tokens verified against its JWKS (RS256 and ES256) with groups mapped to roles,
//! the browser login (authorization code + PKCE) driven over HTTP with a cookie jar, the
//! session's CSRF token, and the refusals.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

use base64::Engine;
use serde_json::{json, Value};

use crate::{service, Repo};

pub(crate) struct Provider {
    pub(crate) issuer: String,
}

impl Provider {
    /// A client_credentials access token for the Kairo API (`resource=urn:kairo`).
    fn machine_token(&self, client: &str, secret: &str) -> String {
        let r = reqwest::blocking::Client::new()
            .post(format!("{}/token", self.issuer))
            .basic_auth(client, Some(secret))
            .form(&[("grant_type", "client_credentials"), ("resource", "urn:kairo"), ("scope", "kairo:api")])
            .send()
            .unwrap();
        let body: Value = r.json().unwrap();
        body["access_token"].as_str().unwrap_or_else(|| panic!("{body}")).to_string()
    }

    /// A new web client whose redirect URI is this server's callback.
    pub(crate) fn register(&self, redirect: &str) -> (String, String) {
        let body = json!({
            "redirect_uris": [redirect], "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"], "token_endpoint_auth_method": "client_secret_basic",
        });
        let r: Value = reqwest::blocking::Client::new()
            .post(format!("{}/reg", self.issuer))
            .json(&body)
            .send()
            .unwrap()
            .json()
            .unwrap();
        (r["client_id"].as_str().unwrap().to_string(), r["client_secret"].as_str().unwrap().to_string())
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The server, stopped however the test ends.
pub(crate) struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn start_server(repo: &Repo, port: u16, secret: &str) -> Server {
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("kairo"))
        .args(["server", "--port", &port.to_string()])
        .current_dir(repo.path())
        .env("KAIRO_ACTOR", "tester@test")
        .env("KAIRO_OIDC_CLIENT_SECRET", secret)
        .env_remove("KAIRO_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    reader.read_line(&mut line).unwrap();
    assert!(line.contains("listening"), "{line:?}");
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    Server(child)
}

/// Log a browser in as `user` through the provider's login and consent forms; returns the
/// browser (its cookie jar holds the Kairo session) and the page it ends on.
fn browser_login(url: &str, user: &str) -> (reqwest::blocking::Client, reqwest::blocking::Response) {
    let browser = reqwest::blocking::Client::builder().cookie_store(true).build().unwrap();
    let form = browser.get(format!("{url}/auth/login?next=/auth/session")).send().unwrap();
    let interaction = form.url().clone();
    assert!(interaction.path().starts_with("/interaction/"), "{interaction}");
    let mut page = browser
        .post(interaction.as_str())
        .form(&[("prompt", "login"), ("login", user), ("password", "whatever")])
        .send()
        .unwrap();
    if page.url().path().starts_with("/interaction/") {
        let consent = page.url().clone();
        page = browser.post(consent.as_str()).form(&[("prompt", "consent")]).send().unwrap();
    }
    // Back on Kairo: a page that moves on by itself (a redirect would still be part of the
    // provider's cross-site navigation, which does not carry the Strict session cookie).
    assert_eq!(page.url().path(), "/auth/callback", "{}", page.url());
    let session_cookie = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("kairo_session="))
        .expect("a session cookie");
    assert!(session_cookie.contains("HttpOnly") && session_cookie.contains("SameSite=Strict"), "{session_cookie}");
    let body = page.text().unwrap();
    let next = body.split("url=").nth(1).and_then(|rest| rest.split('"').next()).expect("a refresh to the next page");
    let page = browser.get(format!("{url}{next}")).send().unwrap();
    (browser, page)
}

#[test]
fn oidc_tokens_and_browser_logins_against_a_real_provider() {
    let Some(issuer) = service("KAIRO_TEST_OIDC_ISSUER") else { return };
    let provider = Provider { issuer };
    let ci = (
        std::env::var("KAIRO_TEST_OIDC_CI_CLIENT_ID").unwrap(),
        std::env::var("KAIRO_TEST_OIDC_CI_CLIENT_SECRET").unwrap(),
    );
    let ci_es = (
        std::env::var("KAIRO_TEST_OIDC_CI_ES_CLIENT_ID").unwrap(),
        std::env::var("KAIRO_TEST_OIDC_CI_ES_CLIENT_SECRET").unwrap(),
    );
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let (client_id, secret) = provider.register(&format!("{url}/auth/callback"));

    let repo = Repo::new();
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/models/logreg20.onnx");
    repo.kairo(&["models", "register", "clf", "--file", model.to_str().unwrap()]).assert().success();
    repo.kairo(&["models", "register", "fraud", "--file", model.to_str().unwrap()]).assert().success();
    repo.write(
        "kairo.yaml",
        format!(
            "version: 1\nmodels:\n  clf:\n    approval: required\nauth:\n  oidc:\n    issuer: {}\n    client_id: {client_id}\n    audience: urn:kairo\n    roles:\n      ml-scientists: [scientist]\n      ml-approvers: [approver]\n      ml-admins: [admin]\n      ml-deployers: [\"deployer@model:clf\"]\n",
            provider.issuer
        ),
    );
    let _server = start_server(&repo, port, &secret);
    let http = reqwest::blocking::Client::new();
    let call = |method: &str, path: &str, token: Option<&str>, body: Value| {
        let mut r = http.request(method.parse().unwrap(), format!("{url}{path}")).json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let r = r.send().unwrap();
        let status = r.status().as_u16();
        (status, r.json::<Value>().unwrap_or(Value::Null))
    };

    // With a provider configured, credentials are required even with no users of our own.
    assert_eq!(call("GET", "/api/v1/models", None, Value::Null).0, 401);

    // A machine's RS256 access token: its groups make it a deployer of clf, and of clf only.
    let rs = provider.machine_token(&ci.0, &ci.1);
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(rs.split('.').next().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "RS256");
    let (status, me) = call("GET", "/api/v1/whoami", Some(&rs), Value::Null);
    assert_eq!((status, me["user"].as_str()), (200, Some(ci.0.as_str())), "{me}");
    assert_eq!(me["grants"], json!(["deployer@model:clf"]));
    let (status, body) = call("POST", "/api/v1/deployments/clf", Some(&rs), json!({"version": 1}));
    assert_eq!(status, 200, "{body}");
    let (status, body) = call("POST", "/api/v1/deployments/fraud", Some(&rs), json!({"version": 1}));
    assert_eq!(status, 403, "{body}");
    // ES256 works the same.
    let es = provider.machine_token(&ci_es.0, &ci_es.1);
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(es.split('.').next().unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "ES256");
    assert_eq!(call("GET", "/api/v1/whoami", Some(&es), Value::Null).0, 200);
    // The CLI as a client, with the provider's token.
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("kairo"))
        .args(["deploy", "clf", "--json"])
        .current_dir(std::env::temp_dir())
        .env("KAIRO_SERVER", &url)
        .env("KAIRO_TOKEN", &rs)
        .env("XDG_CONFIG_HOME", repo.join("no-config"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(serde_json::from_slice::<Value>(&out.stdout).unwrap()["stable"], 1);

    // The unmodified MLflow client with a provider's token (a machine whose group makes it a
    // scientist) as MLFLOW_TRACKING_TOKEN.
    if let Some(python) = crate::server::python() {
        let body = json!({"grant_types": ["client_credentials"], "response_types": [], "redirect_uris": [],
            "token_endpoint_auth_method": "client_secret_basic", "kairo_groups": ["ml-scientists"]});
        let reg: Value = http.post(format!("{}/reg", provider.issuer)).json(&body).send().unwrap().json().unwrap();
        let jwt = provider.machine_token(reg["client_id"].as_str().unwrap(), reg["client_secret"].as_str().unwrap());
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/mlflow_calls.py");
        let calls = json!([["create_experiment", "sso-exp"], ["search_experiments"]]);
        let out = std::process::Command::new(&python)
            .arg(&script)
            .arg(calls.to_string())
            .env("MLFLOW_TRACKING_URI", &url)
            .env("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
            .env("MLFLOW_TRACKING_TOKEN", &jwt)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            let r: Value = serde_json::from_str(line).unwrap();
            assert_eq!(r["ok"], true, "{r}");
        }
    }

    // `kairo serve --auth` takes the provider's tokens for inference too.
    let (mut serve, serve_url) = crate::spawn_listening(&repo, &["serve", "clf", "--auth", "--port", "0"]);
    let row: Vec<f64> = (0..20).map(|i| f64::from(i) / 20.0).collect();
    let oip = json!({"inputs": [{"name": "input", "shape": [1, 20], "datatype": "FP32", "data": row}]});
    let infer = |token: Option<&str>| {
        let mut r = http.post(format!("{serve_url}/v2/models/clf/infer")).json(&oip);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().unwrap().status().as_u16()
    };
    assert_eq!(infer(Some(&rs)), 200, "a deployer of clf reads clf");
    assert_eq!(infer(Some(&es)), 200);
    assert_eq!(infer(None), 401);
    let _ = serve.kill();
    let _ = serve.wait();

    // Refused: a changed signature, `alg: none`, an expired-looking or foreign token, junk.
    let mut parts: Vec<String> = rs.split('.').map(str::to_string).collect();
    let sig = parts[2].clone();
    parts[2] = format!("{}{}", &sig[..sig.len() - 2], if sig.ends_with("AA") { "BA" } else { "AA" });
    let (status, body) = call("GET", "/api/v1/whoami", Some(&parts.join(".")), Value::Null);
    assert_eq!(status, 401, "{body}");
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let payload: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    let none = format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), b64(&payload));
    let (status, body) = call("GET", "/api/v1/whoami", Some(&none), Value::Null);
    assert_eq!(status, 401);
    assert!(body["message"].as_str().unwrap().contains("not accepted"), "{body}");
    let mut forged = payload.clone();
    forged["groups"] = json!(["ml-admins"]);
    let (status, _) =
        call("GET", "/api/v1/whoami", Some(&format!("{}.{}.{}", parts[0], b64(&forged), sig)), Value::Null);
    assert_eq!(status, 401, "more groups, same signature");
    for junk in ["a.b", "x.y.z", &"A".repeat(20_000)] {
        assert_eq!(call("GET", "/api/v1/whoami", Some(junk), Value::Null).0, 401, "{}", &junk[..junk.len().min(10)]);
    }

    // A browser: authorization code + PKCE through the provider's forms, then a session.
    repo.kairo(&["models", "promote", "clf", "1"]).assert().code(6);
    let (bob, page) = browser_login(&url, "bob");
    assert_eq!(page.status().as_u16(), 200, "{}", page.url());
    assert_eq!(page.url().as_str(), format!("{url}/auth/session"), "back on Kairo");
    let session: Value = page.json().unwrap();
    assert_eq!((session["user"].as_str(), &session["grants"]), (Some("bob"), &json!(["approver"])), "{session}");
    let csrf = session["csrf_token"].as_str().unwrap().to_string();
    let approve = json!({"version": 1, "reason": "reviewed"});
    let post = |browser: &reqwest::blocking::Client, path: &str, csrf: Option<&str>, origin: Option<&str>| {
        let mut r = browser.post(format!("{url}{path}")).json(&approve);
        if let Some(c) = csrf {
            r = r.header("x-csrf-token", c);
        }
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        let r = r.send().unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    let (status, body) = post(&bob, "/api/v1/models/clf/promotions/approve", None, None);
    assert_eq!(status, 403, "no CSRF token: {body}");
    assert!(body.contains("CSRF"), "{body}");
    let (status, _) = post(&bob, "/api/v1/models/clf/promotions/approve", Some("0".repeat(64).as_str()), None);
    assert_eq!(status, 403, "a wrong CSRF token");
    let (status, _) = post(&bob, "/api/v1/models/clf/promotions/approve", Some(&csrf), Some("http://evil.example"));
    assert_eq!(status, 403, "another site's page, even with the token");
    let (status, body) = post(&bob, "/api/v1/models/clf/promotions/approve", Some(&csrf), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["status"], "promoted");
    let events: Value = repo.json(&["models", "show", "clf"]);
    assert_eq!(events["promotions"][0]["decided_by"], "bob", "the session's user is the actor");

    // Logging out ends the session.
    let r = bob.post(format!("{url}/auth/logout")).header("x-csrf-token", &csrf).send().unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(bob.get(format!("{url}/auth/session")).send().unwrap().status().as_u16(), 401);

    // Someone the provider knows but whose groups map to no role: authenticated, allowed nothing.
    let (erin, page) = browser_login(&url, "erin");
    let session: Value = page.json().unwrap();
    assert_eq!((session["user"].as_str(), &session["grants"]), (Some("erin"), &json!([])), "{session}");
    let r = erin.get(format!("{url}/api/v1/models")).send().unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // A user the project knows and disables is out of a session at once.
    // (Her roles still come from the provider's groups, not from the local record.)
    repo.kairo(&["users", "add", "erin", "--role", "viewer"]).assert().success();
    assert_eq!(erin.get(format!("{url}/api/v1/models")).send().unwrap().status().as_u16(), 403);
    repo.kairo(&["users", "disable", "erin"]).assert().success();
    let r = erin.get(format!("{url}/api/v1/models")).send().unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.text().unwrap().contains("user erin is disabled"));
    // A callback that is not the end of a login this server began.
    let r = http.get(format!("{url}/auth/callback?code=abc&state=forged")).send().unwrap();
    assert_eq!(r.status().as_u16(), 401);
}
