//! The CLI as a client of a team server: `server:` in kairo.yaml or `KAIRO_SERVER` sends the
//! registry, promotion, deployment, automation, incident and KPI commands to the server's
//! `/api/v1` with a token (`KAIRO_TOKEN`, else the one `kairo login` stored), so database
//! credentials stay on the server. `kairo login` and `kairo logout` live here too.
//!
//! Credentials are kept in `$XDG_CONFIG_HOME/kairo/credentials.json` (else
//! `~/.config/kairo/…`), one token per server URL, written with mode 0600.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::PathBuf;

use clap::Args;
use kairo_core::exit;
use kairo_data::Project;
use serde_json::{json, Value};

use crate::{CmdResult, Failure};

/// A team server and the token to present.
pub struct Remote {
    pub base: String,
    token: Option<String>,
    http: reqwest::Client,
}

/// The server the CLI should talk to, if any: `KAIRO_SERVER`, else `server:` in the project's
/// kairo.yaml. Without either the commands work on the project directly.
pub fn server_url() -> Option<String> {
    if let Ok(s) = std::env::var("KAIRO_SERVER") {
        if !s.trim().is_empty() {
            return Some(s.trim().trim_end_matches('/').to_string());
        }
    }
    let cwd = std::env::current_dir().ok()?;
    let project = Project::discover(&cwd).ok()?;
    project.config().server.as_ref().map(|s| s.trim().trim_end_matches('/').to_string())
}

/// The remote to use, if the CLI is in server mode.
pub fn connect() -> Result<Option<Remote>, Failure> {
    let Some(base) = server_url() else { return Ok(None) };
    let token = match std::env::var("KAIRO_TOKEN") {
        Ok(t) if !t.trim().is_empty() => Some(t.trim().to_string()),
        _ => load_credentials()?.remove(&base),
    };
    Ok(Some(Remote::new(base, token)?))
}

fn credentials_path() -> Result<PathBuf, Failure> {
    let dir = match std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => {
            let home = std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .ok_or_else(|| Failure::from("neither XDG_CONFIG_HOME nor HOME is set: nowhere to keep credentials"))?;
            PathBuf::from(home).join(".config")
        }
    };
    Ok(dir.join("kairo").join("credentials.json"))
}

fn load_credentials() -> Result<BTreeMap<String, String>, Failure> {
    let path = credentials_path()?;
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(format!("{}: {e}", path.display()).into()),
    };
    let doc: Value = serde_json::from_str(&text)
        .map_err(|e| Failure::from(format!("{}: {e} (remove it and run `kairo login` again)", path.display())))?;
    Ok(doc["servers"]
        .as_object()
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v["token"].as_str()?.to_string()))).collect())
        .unwrap_or_default())
}

/// Write the credentials file whole, mode 0600 from its creation (never readable by others,
/// not even for a moment), replacing the old one atomically.
fn save_credentials(all: &BTreeMap<String, String>) -> Result<PathBuf, Failure> {
    use std::os::unix::fs::DirBuilderExt;
    let path = credentials_path()?;
    let dir = path.parent().expect("credentials path has a parent");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let servers: serde_json::Map<String, Value> = all.iter().map(|(k, v)| (k.clone(), json!({"token": v}))).collect();
    let text = serde_json::to_string_pretty(&json!({"servers": servers})).expect("JSON");
    crate::report::write_private(&path, text.as_bytes())?;
    Ok(path)
}

impl Remote {
    fn new(base: String, token: Option<String>) -> Result<Remote, Failure> {
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Failure::usage(format!(
                "server `{base}`: give a URL such as https://kairo.internal (KAIRO_SERVER or `server:` in kairo.yaml)"
            )));
        }
        if token.is_some() {
            plain_http_check(&base)?;
        }
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(600))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Remote { base, token, http })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}/api/v1{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, Failure> {
        self.send(self.request(reqwest::Method::GET, path).query(query)).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        self.send(self.request(reqwest::Method::POST, path).json(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Result<Value, Failure> {
        self.send(self.request(reqwest::Method::PUT, path).json(body)).await
    }

    pub async fn delete(&self, path: &str, query: &[(&str, String)]) -> Result<Value, Failure> {
        self.send(self.request(reqwest::Method::DELETE, path).query(query)).await
    }

    pub async fn post_bytes(&self, path: &str, query: &[(&str, String)], bytes: Vec<u8>) -> Result<Value, Failure> {
        let r = self
            .request(reqwest::Method::POST, path)
            .query(query)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(bytes);
        self.send(r).await
    }

    /// One request; an error answer becomes a failure that names the server and, for 401, how
    /// to log in.
    async fn send(&self, r: reqwest::RequestBuilder) -> Result<Value, Failure> {
        let response = r.send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| self.unreachable(&e))?;
        if status.is_success() {
            return serde_json::from_str(&text)
                .map_err(|e| Failure::from(format!("server {}: the answer is not JSON ({e})", self.base)));
        }
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| format!("HTTP {status}: {}", text.chars().take(200).collect::<String>()));
        let hint = match status.as_u16() {
            401 if self.token.is_none() => format!(" (log in with `kairo login {}`, or set KAIRO_TOKEN)", self.base),
            401 => format!(" (the token was refused: log in again with `kairo login {}`)", self.base),
            _ => String::new(),
        };
        Err(Failure { code: exit::ERROR, message: format!("server {}: {message}{hint}", self.base) })
    }
}

impl Remote {
    /// A request that got no answer: the cause (reqwest's own message hides it) and the fix.
    fn unreachable(&self, e: &reqwest::Error) -> Failure {
        let mut causes = Vec::new();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            causes.push(s.to_string());
            source = s.source();
        }
        let cause = causes.last().cloned().unwrap_or_else(|| e.to_string());
        let hint = if causes.iter().any(|c| c.contains("CaUsedAsEndEntity")) {
            "the server presents a CA certificate as its own; make its certificate with basicConstraints CA:FALSE (see the README's TLS section)"
        } else if e.is_connect() && causes.iter().any(|c| c.contains("certificate") || c.contains("Certificate")) {
            "the server's certificate is not trusted here (a private CA: point SSL_CERT_FILE at it)"
        } else if e.is_connect() {
            "is it running, and are KAIRO_SERVER or `server:` in kairo.yaml right?"
        } else if e.is_timeout() {
            "it did not answer in time"
        } else {
            "the connection failed"
        };
        Failure::from(format!("server {}: cannot reach it ({cause}): {hint}", self.base))
    }
}

/// Credentials never cross a network in clear text: plain `http://` only to this machine
/// (loopback), unless `KAIRO_ALLOW_HTTP=1` says the network is trusted.
fn plain_http_check(base: &str) -> Result<(), Failure> {
    let Some(rest) = base.strip_prefix("http://") else { return Ok(()) };
    let host = reqwest::Url::parse(base).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default();
    let loopback = host == "localhost"
        || host.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if loopback || std::env::var("KAIRO_ALLOW_HTTP").is_ok_and(|v| v == "1") {
        return Ok(());
    }
    Err(Failure::usage(format!(
        "refusing to send credentials in clear text to http://{rest}: use https:// (`kairo server --tls-cert/--tls-key`), or set KAIRO_ALLOW_HTTP=1 on a network you trust"
    )))
}

/// Percent-encode one path segment (model names, aliases).
pub fn segment(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[derive(Args)]
pub struct LoginArgs {
    /// The server (default: KAIRO_SERVER, else `server:` in kairo.yaml).
    pub server: Option<String>,
    /// Log in as this user with a password, which makes and stores an API token (default: $USER).
    #[arg(long, conflicts_with = "token_stdin")]
    pub username: Option<String>,
    /// Read the password from stdin (for scripts) instead of asking.
    #[arg(long)]
    pub password_stdin: bool,
    /// Store a token made elsewhere (`kairo tokens create`, or an OIDC access token), read from stdin.
    #[arg(long)]
    pub token_stdin: bool,
    /// How long the token made from a password lives.
    #[arg(long, default_value = "90d")]
    pub expires: String,
}

fn read_stdin_line(what: &str) -> Result<String, Failure> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| format!("reading the {what} from stdin: {e}"))?;
    let line = line.trim_end_matches(['\n', '\r']).to_string();
    if line.is_empty() {
        return Err(Failure::usage(format!("no {what} on stdin")));
    }
    Ok(line)
}

pub async fn login(a: LoginArgs) -> CmdResult {
    let base =
        match a.server.or_else(server_url) {
            Some(s) => s.trim().trim_end_matches('/').to_string(),
            None => return Err(Failure::usage(
                "which server? `kairo login https://kairo.internal`, or set KAIRO_SERVER or `server:` in kairo.yaml",
            )),
        };
    let token = if a.token_stdin {
        read_stdin_line("token")?
    } else {
        let user =
            a.username.or_else(|| std::env::var("USER").ok()).ok_or_else(|| Failure::usage("give --username"))?;
        let password = if a.password_stdin {
            read_stdin_line("password")?
        } else {
            rpassword::prompt_password(format!("password for {user} at {base}: "))
                .map_err(|e| Failure::usage(format!("cannot ask for the password ({e}); use --password-stdin")))?
        };
        plain_http_check(&base)?;
        let remote = Remote::new(base.clone(), None)?;
        let host = Project::hostname();
        let r = remote
            .http
            .post(format!("{base}/api/v1/tokens"))
            .basic_auth(&user, Some(&password))
            .json(&json!({"note": format!("kairo login on {host}"), "expires": a.expires}));
        let made = remote.send(r).await?;
        made["token"]
            .as_str()
            .ok_or_else(|| Failure::from(format!("server {base}: no token in its answer")))?
            .to_string()
    };
    let remote = Remote::new(base.clone(), Some(token.clone()))?;
    let me = remote.get("/whoami", &[]).await?;
    let mut all = load_credentials()?;
    all.insert(base.clone(), token);
    let path = save_credentials(&all)?;
    let grants: Vec<&str> = me["grants"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    println!(
        "Logged in to {base} as {} ({}); token stored in {}",
        me["user"].as_str().unwrap_or("?"),
        if grants.is_empty() { "no roles".to_string() } else { grants.join(", ") },
        path.display()
    );
    Ok(exit::OK)
}

#[derive(Args)]
pub struct LogoutArgs {
    /// The server (default: KAIRO_SERVER, else `server:` in kairo.yaml).
    pub server: Option<String>,
}

pub fn logout(a: LogoutArgs) -> CmdResult {
    let Some(base) = a.server.or_else(server_url).map(|s| s.trim().trim_end_matches('/').to_string()) else {
        return Err(Failure::usage("which server? `kairo logout https://kairo.internal`"));
    };
    let mut all = load_credentials()?;
    if all.remove(&base).is_none() {
        println!("not logged in to {base}");
        return Ok(exit::OK);
    }
    save_credentials(&all)?;
    println!("Logged out of {base} (the token is forgotten here; an admin revokes it with `kairo tokens revoke`)");
    Ok(exit::OK)
}

pub async fn whoami() -> CmdResult {
    let Some(remote) = connect()? else {
        println!("{} (no server: commands work on the project's own database)", Project::actor());
        return Ok(exit::OK);
    };
    let me = remote.get("/whoami", &[]).await?;
    let grants: Vec<&str> = me["grants"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    println!("{} at {} ({})", me["user"].as_str().unwrap_or("?"), remote.base, grants.join(", "));
    Ok(exit::OK)
}
