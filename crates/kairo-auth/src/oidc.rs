//! OpenID Connect: a company identity provider vouches for people.
//!
//! - API clients send the provider's JWT access tokens as `Authorization: Bearer`; each is
//!   verified here against the provider's JWKS (RS256 or ES256, `iss`, `aud`, `exp`, `nbf`),
//!   its groups mapped to grants (`auth.oidc.roles` in kairo.yaml).
//! - Browsers log in with the authorization code flow and PKCE (S256): [`Oidc::start_login`]
//!   makes the provider URL and remembers state, nonce and verifier for ten minutes;
//!   [`Oidc::finish_login`] exchanges the code and verifies the ID token (signature, issuer,
//!   audience = client id, expiry, nonce), then [`Sessions`] keeps the browser's session with
//!   its CSRF token.
//!
//! Keys are fetched at discovery and again when a token names a key not seen yet (at most
//! every 30 s, so a flood of made-up key ids cannot make the server hammer the provider).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use kairo_core::auth::Grant;
use kairo_core::config::OidcSpec;
use serde_json::{Map, Value};

use crate::Principal;

/// A JWT longer than this is refused before it is decoded.
const MAX_JWT: usize = 16 * 1024;
/// Clock difference allowed between Kairo and the provider.
const LEEWAY_S: i64 = 60;
const KEY_REFRESH: Duration = Duration::from_secs(30);
const LOGIN_TTL: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// kairo.yaml's `auth.oidc` is wrong (the message names the key).
    #[error("kairo.yaml auth.oidc: {0}")]
    Config(String),
    /// The provider could not be reached or answered something unusable.
    #[error("OIDC provider {issuer}: {message}")]
    Provider { issuer: String, message: String },
}

enum Key {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// An uncompressed P-256 point (0x04 ‖ x ‖ y).
    P256(Vec<u8>),
}

struct Keys {
    by_kid: HashMap<String, Key>,
    fetched: Instant,
}

struct PendingLogin {
    nonce: String,
    verifier: String,
    redirect_uri: String,
    next: String,
    at: Instant,
}

pub struct Oidc {
    spec: OidcSpec,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    keys: RwLock<Keys>,
    refreshing: tokio::sync::Mutex<()>,
    http: reqwest::Client,
    roles: Vec<(String, Vec<Grant>)>,
    secret: Option<String>,
    pending: Mutex<HashMap<String, PendingLogin>>,
}

fn random_hex(bytes: usize) -> String {
    use ring::rand::SecureRandom;
    let mut buf = vec![0u8; bytes];
    ring::rand::SystemRandom::new().fill(&mut buf).expect("the system's random source");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

impl Oidc {
    /// Read the provider's discovery document and keys; check the role mapping.
    pub async fn discover(spec: &OidcSpec) -> Result<Oidc, OidcError> {
        let mut roles = Vec::new();
        for (group, list) in &spec.roles {
            let grants = list
                .iter()
                .map(|g| Grant::parse(g).map_err(|e| OidcError::Config(format!("roles.{group}: {e}"))))
                .collect::<Result<Vec<_>, _>>()?;
            roles.push((group.clone(), grants));
        }
        let issuer = spec.issuer.trim_end_matches('/').to_string();
        if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
            return Err(OidcError::Config(format!("issuer `{}` is not an http(s) URL", spec.issuer)));
        }
        let provider = |message: String| OidcError::Provider { issuer: issuer.clone(), message };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| provider(e.to_string()))?;
        let url = format!("{issuer}/.well-known/openid-configuration");
        let doc: Value = fetch_json(&http, &url).await.map_err(provider)?;
        if doc["issuer"].as_str().map(|i| i.trim_end_matches('/')) != Some(issuer.as_str()) {
            return Err(provider(format!(
                "the discovery document names issuer {} (kairo.yaml says {issuer})",
                doc["issuer"]
            )));
        }
        let endpoint = |k: &str| {
            doc[k].as_str().map(str::to_string).ok_or_else(|| provider(format!("the discovery document has no {k}")))
        };
        let jwks_uri = endpoint("jwks_uri")?;
        let by_kid = fetch_keys(&http, &jwks_uri).await.map_err(provider)?;
        let secret_env = spec.client_secret_env.clone().unwrap_or_else(|| "KAIRO_OIDC_CLIENT_SECRET".into());
        Ok(Oidc {
            spec: OidcSpec { issuer: issuer.clone(), ..spec.clone() },
            authorization_endpoint: endpoint("authorization_endpoint")?,
            token_endpoint: endpoint("token_endpoint")?,
            jwks_uri,
            keys: RwLock::new(Keys { by_kid, fetched: Instant::now() }),
            refreshing: tokio::sync::Mutex::new(()),
            http,
            roles,
            secret: std::env::var(secret_env).ok().filter(|s| !s.is_empty()),
            pending: Mutex::default(),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.spec.issuer
    }

    /// Whether browsers can log in (a client id is configured).
    pub fn browser_login(&self) -> bool {
        self.spec.client_id.is_some()
    }

    /// The principal of a bearer JWT, or why it is refused.
    pub async fn bearer(&self, jwt: &str) -> Result<Principal, String> {
        // Access tokens only, for this API: an ID token (it carries the login's nonce, and its
        // audience is the web client) is not a credential for the API.
        let audience = self
            .spec
            .audience
            .as_deref()
            .ok_or("this server takes no OIDC access tokens (set auth.oidc.audience in kairo.yaml)")?;
        let claims = self.verify(jwt, audience).await?;
        if claims.contains_key("nonce") {
            return Err("an ID token is not an access token: send the provider's access token for this API".into());
        }
        self.principal(&claims)
    }

    /// The user and grants of verified claims.
    pub fn principal(&self, claims: &Map<String, Value>) -> Result<Principal, String> {
        let user_claim = self.spec.user_claim.as_deref().unwrap_or("sub");
        let text = |c: &str| claims.get(c).and_then(Value::as_str).filter(|u| !u.is_empty());
        // A machine's token (client credentials: no subject, or the client as its subject) acts
        // as its client; a person's token without the claim is refused rather than become the
        // client (one person must not have two names, or four eyes would see two people).
        let machine = text("client_id").filter(|c| text("sub").is_none_or(|s| s == *c));
        let user = text(user_claim)
            .or(machine)
            .ok_or_else(|| format!("the token has no `{user_claim}` claim to name its user"))?;
        let groups_claim = self.spec.groups_claim.as_deref().unwrap_or("groups");
        let groups: Vec<&str> = match claims.get(groups_claim) {
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
            Some(Value::String(s)) => s.split_whitespace().collect(),
            _ => Vec::new(),
        };
        let mut grants: Vec<Grant> =
            self.roles.iter().filter(|(g, _)| groups.contains(&g.as_str())).flat_map(|(_, gs)| gs.clone()).collect();
        grants.sort();
        grants.dedup();
        Ok(Principal { user: user.into(), grants, via_token: false })
    }

    /// Verify a JWT's signature against the provider's keys and its registered claims.
    pub async fn verify(&self, jwt: &str, audience: &str) -> Result<Map<String, Value>, String> {
        if jwt.len() > MAX_JWT {
            return Err(format!("the token is longer than {MAX_JWT} bytes"));
        }
        let mut parts = jwt.split('.');
        let (Some(h), Some(p), Some(sig), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err("the bearer token is neither a Kairo API token nor a JWT".into());
        };
        let decode =
            |s: &str, what: &str| URL_SAFE_NO_PAD.decode(s).map_err(|_| format!("the JWT's {what} is not base64url"));
        let header: Value =
            serde_json::from_slice(&decode(h, "header")?).map_err(|_| "the JWT's header is not JSON".to_string())?;
        let sig = decode(sig, "signature")?;
        let alg = header["alg"].as_str().unwrap_or("");
        let kid = header["kid"].as_str().unwrap_or("").to_string();
        if alg != "RS256" && alg != "ES256" {
            return Err(format!("JWT algorithm `{alg}` is not accepted (RS256, ES256)"));
        }
        if !self.has_key(&kid) {
            self.refresh_keys().await;
        }
        let signed = &jwt.as_bytes()[..h.len() + 1 + p.len()];
        {
            let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
            let key = keys.by_kid.get(&kid).ok_or_else(|| format!("no key `{kid}` at the provider"))?;
            let ok = match (alg, key) {
                ("RS256", Key::Rsa { n, e }) => ring::signature::RsaPublicKeyComponents { n, e }
                    .verify(&ring::signature::RSA_PKCS1_2048_8192_SHA256, signed, &sig)
                    .is_ok(),
                ("ES256", Key::P256(point)) => {
                    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, point)
                        .verify(signed, &sig)
                        .is_ok()
                }
                _ => return Err(format!("key `{kid}` is not a {alg} key")),
            };
            if !ok {
                return Err("the JWT's signature does not verify".into());
            }
        }
        let claims: Map<String, Value> = serde_json::from_slice(&decode(p, "payload")?)
            .map_err(|_| "the JWT's payload is not a JSON object".to_string())?;
        if claims.get("iss").and_then(Value::as_str).map(|i| i.trim_end_matches('/')) != Some(self.spec.issuer.as_str())
        {
            return Err("the JWT was issued by another provider".into());
        }
        let aud_ok = match claims.get("aud") {
            Some(Value::String(a)) => a == audience,
            Some(Value::Array(a)) => a.iter().any(|x| x.as_str() == Some(audience)),
            _ => false,
        };
        if !aud_ok {
            return Err(format!("the JWT is not meant for this server (aud must be {audience})"));
        }
        let now = kairo_core::time::now_millis() / 1000;
        let exp = claims.get("exp").and_then(Value::as_i64).ok_or("the JWT has no exp")?;
        if exp.saturating_add(LEEWAY_S) < now {
            return Err("the JWT has expired: get a new one from the provider".into());
        }
        if claims.get("nbf").and_then(Value::as_i64).is_some_and(|nbf| nbf.saturating_sub(LEEWAY_S) > now) {
            return Err("the JWT is not valid yet".into());
        }
        Ok(claims)
    }

    fn has_key(&self, kid: &str) -> bool {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).by_kid.contains_key(kid)
    }

    /// Fetch the keys again (the provider rotated them), at most every [`KEY_REFRESH`].
    async fn refresh_keys(&self) {
        let _one = self.refreshing.lock().await;
        if self.keys.read().unwrap_or_else(|p| p.into_inner()).fetched.elapsed() < KEY_REFRESH {
            return;
        }
        match fetch_keys(&self.http, &self.jwks_uri).await {
            Ok(by_kid) => {
                *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Keys { by_kid, fetched: Instant::now() }
            }
            Err(e) => {
                tracing::warn!(issuer = %self.spec.issuer, "fetching the provider's keys: {e}");
                self.keys.write().unwrap_or_else(|p| p.into_inner()).fetched = Instant::now();
            }
        }
    }

    /// Begin a browser login: the provider URL to send the browser to, and the state, which
    /// the server also gives the browser in a cookie so that only the browser that began the
    /// login can finish it (no login CSRF). `redirect_uri` is this
    /// server's `/auth/callback` as the browser reaches it (unless kairo.yaml names one);
    /// `next` is where to go afterwards.
    pub fn start_login(&self, redirect_uri: &str, next: &str) -> Result<(String, String), String> {
        let client_id =
            self.spec.client_id.as_deref().ok_or("browser login needs auth.oidc.client_id in kairo.yaml")?;
        let redirect_uri = self.spec.redirect_url.clone().unwrap_or_else(|| redirect_uri.to_string());
        let (state, nonce, verifier) = (random_hex(16), random_hex(16), random_hex(32));
        let challenge = URL_SAFE_NO_PAD.encode(ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes()));
        let scopes = self.spec.scopes.as_deref().unwrap_or("openid email profile groups");
        let mut url = reqwest::Url::parse(&self.authorization_endpoint).map_err(|e| e.to_string())?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", &redirect_uri)
            .append_pair("scope", scopes)
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.retain(|_, l| l.at.elapsed() < LOGIN_TTL);
        // Full (someone is starting logins in a loop): the oldest make room, so nobody is
        // locked out of logging in.
        while pending.len() >= 10_000 {
            let Some(oldest) = pending.iter().min_by_key(|(_, l)| l.at).map(|(k, _)| k.clone()) else { break };
            pending.remove(&oldest);
        }
        pending.insert(
            state.clone(),
            PendingLogin { nonce, verifier, redirect_uri, next: next.to_string(), at: Instant::now() },
        );
        Ok((url.to_string(), state))
    }

    /// Finish a browser login: exchange the code (with the PKCE verifier) and verify the ID
    /// token. Returns the principal and where to send the browser.
    pub async fn finish_login(&self, state: &str, code: &str) -> Result<(Principal, String), String> {
        let login = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending.remove(state).filter(|l| l.at.elapsed() < LOGIN_TTL)
        }
        .ok_or("this login is unknown or too old: start again at /auth/login")?;
        let client_id = self.spec.client_id.as_deref().ok_or("no auth.oidc.client_id")?;
        let mut request = self.http.post(&self.token_endpoint).form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &login.redirect_uri),
            ("code_verifier", &login.verifier),
            ("client_id", client_id),
        ]);
        if let Some(secret) = &self.secret {
            request = request.basic_auth(client_id, Some(secret));
        }
        let response = request.send().await.map_err(|e| format!("the provider's token endpoint: {e}"))?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| format!("the provider's token endpoint: {e}"))?;
        if !status.is_success() {
            return Err(format!(
                "the provider refused the code: {} {}",
                body["error"].as_str().unwrap_or(""),
                body["error_description"].as_str().unwrap_or("")
            ));
        }
        let id_token = body["id_token"].as_str().ok_or("the provider sent no id_token")?;
        let claims = self.verify(id_token, client_id).await?;
        if claims.get("nonce").and_then(Value::as_str) != Some(login.nonce.as_str()) {
            return Err("the ID token's nonce is not this login's".into());
        }
        Ok((self.principal(&claims)?, login.next))
    }
}

async fn fetch_json(http: &reqwest::Client, url: &str) -> Result<Value, String> {
    let r = http.get(url).send().await.map_err(|e| format!("{url}: {e}"))?;
    if !r.status().is_success() {
        return Err(format!("{url}: HTTP {}", r.status()));
    }
    r.json().await.map_err(|e| format!("{url}: {e}"))
}

async fn fetch_keys(http: &reqwest::Client, url: &str) -> Result<HashMap<String, Key>, String> {
    let doc = fetch_json(http, url).await?;
    let mut keys = HashMap::new();
    for k in doc["keys"].as_array().into_iter().flatten() {
        let b = |name: &str| k[name].as_str().and_then(|v| URL_SAFE_NO_PAD.decode(v).ok());
        let kid = k["kid"].as_str().unwrap_or("").to_string();
        if k["use"].as_str().is_some_and(|u| u != "sig") {
            continue;
        }
        let key = match (k["kty"].as_str(), k["crv"].as_str()) {
            (Some("RSA"), _) => match (b("n"), b("e")) {
                (Some(n), Some(e)) => Key::Rsa { n, e },
                _ => continue,
            },
            (Some("EC"), Some("P-256")) => match (b("x"), b("y")) {
                (Some(x), Some(y)) if x.len() == 32 && y.len() == 32 => Key::P256([&[4u8][..], &x, &y].concat()),
                _ => continue,
            },
            _ => continue,
        };
        keys.insert(kid, key);
    }
    if keys.is_empty() {
        return Err(format!("{url}: no RSA or P-256 signing keys"));
    }
    Ok(keys)
}

/// Browser sessions after an OIDC login: an unguessable id in an HttpOnly cookie, and a CSRF
/// token the page must send back (`X-CSRF-Token`) with every request that changes state.
/// Kept in this process's memory for [`Sessions::TTL`]: a restart logs browsers out.
#[derive(Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

#[derive(Clone)]
pub struct Session {
    pub principal: Arc<Principal>,
    pub csrf: String,
    pub created: Instant,
}

impl Sessions {
    pub const TTL: Duration = Duration::from_secs(8 * 3600);
    pub const COOKIE: &'static str = "kairo_session";

    /// A new session; returns its id (the cookie's value).
    pub fn create(&self, principal: Principal) -> String {
        let id = random_hex(32);
        let s = Session { principal: Arc::new(principal), csrf: random_hex(32), created: Instant::now() };
        let mut all = self.by_id.lock().unwrap_or_else(|p| p.into_inner());
        if all.len() > 10_000 {
            all.retain(|_, s| s.created.elapsed() < Self::TTL);
        }
        all.insert(id.clone(), s);
        id
    }

    pub fn get(&self, id: &str) -> Option<Session> {
        let all = self.by_id.lock().unwrap_or_else(|p| p.into_inner());
        all.get(id).filter(|s| s.created.elapsed() < Self::TTL).cloned()
    }

    pub fn remove(&self, id: &str) {
        self.by_id.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }
}

/// A session id from a `Cookie` header.
pub fn session_cookie(header: &[u8]) -> Option<&str> {
    cookie(header, Sessions::COOKIE)
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'h>(header: &'h [u8], name: &str) -> Option<&'h str> {
    std::str::from_utf8(header)
        .ok()?
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}
