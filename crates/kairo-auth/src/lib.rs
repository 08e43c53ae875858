//! Who is asking. An `Authorization` header — `Bearer <token>`, or `Basic` with a user's
//! password or a token as the password (what the MLflow client sends for
//! `MLFLOW_TRACKING_TOKEN` and `MLFLOW_TRACKING_USERNAME/PASSWORD`) — becomes a [`Principal`]:
//! the user and the grants that apply (a token's narrowed ones). The rules are
//! `kairo_core::auth`; the records `kairo_store::auth`. `kairo server` and `kairo serve` both
//! authenticate here and decide what a principal may do themselves.
//!
//! A verified credential is remembered for [`FRESH`] under the hash of the header, so neither
//! argon2 nor the database is on the hot path; a revoked token or a disabled user stops working
//! within that time. A password verified once is renewed after that without argon2 while its
//! stored hash is unchanged, so concurrent requests never queue behind a KDF.

pub mod admin;
pub mod oidc;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use kairo_core::auth::{self as rules, Grant};
use kairo_store::{Metadata, StoreError};

/// How long a verified credential, or the answer to "does this project have users", is trusted.
pub const FRESH: Duration = Duration::from_secs(5);

/// Failed authentications a source may make in [`FAILURE_WINDOW`] before it is refused until
/// the window ends (guessing passwords or tokens).
pub const MAX_FAILURES: u32 = 20;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Who a request acts as.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: Arc<str>,
    pub grants: Vec<Grant>,
    /// Authenticated with one of Kairo's API tokens (which may not make more tokens).
    pub via_token: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No credentials, or credentials that do not hold (answer 401).
    #[error("{0}")]
    Unauthenticated(String),
    /// Too many failures from this source (answer 429); retry after this many seconds.
    #[error("too many failed authentications from {source_ip}: try again in {retry_s} s")]
    Limited { source_ip: IpAddr, retry_s: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A credential's hash → when it was verified, whom it stands for, and (for a password) the
/// stored hash it was verified against.
type Verified = (Instant, Arc<Principal>, Option<String>);

/// Which authenticator a thread's cached entry belongs to (a process may hold several).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// (authenticator, credential hash) → when verified and whom it stands for.
type LocalCache = HashMap<(u64, [u8; 32]), (Instant, Arc<Principal>)>;

thread_local! {
    /// Each thread's own copy of recent verifications: a serving thread answers a known token
    /// without touching the shared lock (kairo serve runs one runtime per core).
    static LOCAL: std::cell::RefCell<LocalCache> = std::cell::RefCell::new(HashMap::new());
}

pub struct Authenticator {
    md: Metadata,
    started: Instant,
    /// Whether the project has users: bit 0 the answer, the rest milliseconds since `started`
    /// when it was read plus one (0: never). Lock-free: every request reads it.
    has_users: AtomicU64,
    verified: RwLock<HashMap<[u8; 32], Verified>>,
    /// Failures per source: when the window began and how many.
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    id: u64,
    oidc: Option<Arc<oidc::Oidc>>,
}

fn unauthenticated(m: impl Into<String>) -> AuthError {
    AuthError::Unauthenticated(m.into())
}

impl Authenticator {
    pub fn new(md: Metadata) -> Authenticator {
        Authenticator::with_oidc(md, None)
    }

    /// Also accepting an OpenID Connect provider's JWTs as bearer tokens (and then requiring
    /// credentials even before the project has users of its own).
    pub fn with_oidc(md: Metadata, oidc: Option<Arc<oidc::Oidc>>) -> Authenticator {
        Authenticator {
            oidc,
            md,
            started: Instant::now(),
            has_users: AtomicU64::new(0),
            verified: RwLock::default(),
            failures: Mutex::default(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Whether credentials are required: an OIDC provider is configured, or the project has
    /// users of its own.
    pub async fn required(&self) -> Result<bool, AuthError> {
        if self.oidc.is_some() {
            return Ok(true);
        }
        self.has_users().await
    }

    /// The OIDC provider, if one is configured.
    pub fn oidc(&self) -> Option<&Arc<oidc::Oidc>> {
        self.oidc.as_ref()
    }

    /// Whether the project has users (then credentials are required), read at most every
    /// [`FRESH`].
    pub async fn has_users(&self) -> Result<bool, AuthError> {
        let now = self.started.elapsed().as_millis() as u64 + 1;
        let seen = self.has_users.load(Ordering::Relaxed);
        if seen != 0 && now.saturating_sub(seen >> 1) < FRESH.as_millis() as u64 {
            return Ok(seen & 1 == 1);
        }
        let yes = self.md.has_users().await?;
        self.has_users.store((now << 1) | u64::from(yes), Ordering::Relaxed);
        Ok(yes)
    }

    /// The principal behind an `Authorization` header from `peer`. `tokens_only` refuses
    /// passwords (an inference endpoint is for services). A source that failed
    /// [`MAX_FAILURES`] times in [`FAILURE_WINDOW`] is refused without a look at what it sent
    /// (credentials already verified, in the cache, are not: they are not being guessed). A
    /// request without credentials is refused but not counted: it guesses nothing, and a
    /// browser's or a health checker's first request must not lock out a shared address.
    pub async fn authenticate(
        &self,
        peer: Option<IpAddr>,
        header: Option<&[u8]>,
        tokens_only: bool,
    ) -> Result<Arc<Principal>, AuthError> {
        let result = self.verify(peer, header, tokens_only).await;
        if let (Err(AuthError::Unauthenticated(_)), Some(ip), Some(_)) = (&result, peer, header) {
            let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            if failures.len() > 10_000 {
                failures.retain(|_, (since, _)| since.elapsed() < FAILURE_WINDOW);
            }
            let f = failures.entry(ip).or_insert((Instant::now(), 0));
            if f.0.elapsed() >= FAILURE_WINDOW {
                *f = (Instant::now(), 0);
            }
            f.1 += 1;
        }
        result
    }

    fn limited(&self, peer: Option<IpAddr>) -> Result<(), AuthError> {
        let Some(ip) = peer else { return Ok(()) };
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        match failures.get(&ip) {
            Some((since, n)) if *n >= MAX_FAILURES && since.elapsed() < FAILURE_WINDOW => {
                Err(AuthError::Limited { source_ip: ip, retry_s: (FAILURE_WINDOW - since.elapsed()).as_secs() + 1 })
            }
            _ => Ok(()),
        }
    }

    async fn verify(
        &self,
        peer: Option<IpAddr>,
        header: Option<&[u8]>,
        tokens_only: bool,
    ) -> Result<Arc<Principal>, AuthError> {
        let Some(text) = header.and_then(|h| std::str::from_utf8(h).ok()) else {
            return Err(unauthenticated(if tokens_only {
                "an API token is required: Authorization: Bearer <token> (create one with `kairo tokens create`)"
            } else {
                "credentials required: send an API token (Authorization: Bearer, or MLFLOW_TRACKING_TOKEN) or a user and password (Basic)"
            }));
        };
        let key: [u8; 32] = *blake3::hash(text.as_bytes()).as_bytes();
        let local = LOCAL
            .with(|l| l.borrow().get(&(self.id, key)).filter(|(at, _)| at.elapsed() < FRESH).map(|(_, p)| p.clone()));
        if let Some(p) = local {
            return Ok(p);
        }
        let mut known: Option<String> = None;
        let shared = self.verified.read().unwrap_or_else(|p| p.into_inner()).get(&key).cloned();
        if let Some((at, p, stored)) = shared {
            if at.elapsed() < FRESH {
                remember_here(self.id, key, at, &p);
                return Ok(p);
            }
            known = stored;
        }
        self.limited(peer)?;
        let (scheme, value) = text.split_once(' ').unwrap_or((text, ""));
        let (principal, stored) = match scheme.to_ascii_lowercase().as_str() {
            "bearer" => match &self.oidc {
                Some(o) if rules::parse_token(value.trim()).is_none() => (self.by_jwt(o, value.trim()).await?, None),
                _ => (self.by_token(value.trim()).await?, None),
            },
            "basic" => {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(value.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| unauthenticated("Basic credentials are not base64 of USER:PASSWORD"))?;
                let (user, secret) = decoded.split_once(':').unwrap_or((decoded.as_str(), ""));
                if rules::parse_token(secret).is_some() {
                    let p = self.by_token(secret).await?;
                    if &*p.user != user {
                        return Err(unauthenticated("the token belongs to another user"));
                    }
                    (p, None)
                } else if tokens_only {
                    return Err(unauthenticated("this endpoint takes API tokens, not passwords"));
                } else {
                    self.by_password(user, secret, known.as_deref()).await?
                }
            }
            _ => return Err(unauthenticated("unknown authorization scheme: use Bearer or Basic")),
        };
        let principal = Arc::new(principal);
        let mut verified = self.verified.write().unwrap_or_else(|p| p.into_inner());
        if verified.len() > 10_000 {
            verified.retain(|_, (at, _, _)| at.elapsed() < FRESH);
        }
        let now = Instant::now();
        verified.insert(key, (now, principal.clone(), stored));
        drop(verified);
        remember_here(self.id, key, now, &principal);
        Ok(principal)
    }

    async fn by_token(&self, text: &str) -> Result<Principal, AuthError> {
        let invalid = || {
            unauthenticated(
                "the token is not valid (unknown, revoked or expired): create one with `kairo tokens create`",
            )
        };
        let t = rules::parse_token(text).ok_or_else(invalid)?;
        let stored = self.md.token(t.id).await?.ok_or_else(invalid)?;
        let now = kairo_core::time::now_millis();
        if !rules::same_hash(&rules::token_hash(t.secret), &stored.hash)
            || stored.revoked_ms.is_some()
            || stored.expires_ms.is_some_and(|e| e <= now)
        {
            return Err(invalid());
        }
        let user = self.active_user(&stored.user).await?;
        let grants = if stored.grants.is_empty() { user.grants } else { rules::narrow(&user.grants, &stored.grants) };
        Ok(Principal { user: user.name.into(), grants, via_token: true })
    }

    /// A provider's JWT. A user the project knows and has disabled stays out.
    async fn by_jwt(&self, o: &oidc::Oidc, jwt: &str) -> Result<Principal, AuthError> {
        let p = o.bearer(jwt).await.map_err(unauthenticated)?;
        if let Some(u) = self.md.user(&p.user).await? {
            if u.disabled_ms.is_some() {
                return Err(unauthenticated(format!("user {} is disabled", p.user)));
            }
        }
        Ok(p)
    }

    /// Whether a session's user may still act: a user the project knows and has disabled may
    /// not (sessions of people the project does not know follow the provider).
    pub async fn still_active(&self, user: &str) -> Result<bool, AuthError> {
        Ok(self.md.user(user).await?.is_none_or(|u| u.disabled_ms.is_none()))
    }

    /// A user's password: verified with argon2 unless this very credential was verified against
    /// the same stored hash before (`known`).
    async fn by_password(
        &self,
        name: &str,
        password: &str,
        known: Option<&str>,
    ) -> Result<(Principal, Option<String>), AuthError> {
        let invalid = || unauthenticated("wrong user or password");
        let user = self.active_user(name).await?;
        let stored = user.password_hash.clone().ok_or_else(invalid)?;
        if known != Some(stored.as_str()) {
            let (given, against) = (password.to_string(), stored.clone());
            // argon2 takes tens of milliseconds: off the async threads.
            let ok =
                tokio::task::spawn_blocking(move || rules::verify_password(&given, &against)).await.unwrap_or(false);
            if !ok {
                return Err(invalid());
            }
        }
        Ok((Principal { user: user.name.into(), grants: user.grants, via_token: false }, Some(stored)))
    }

    async fn active_user(&self, name: &str) -> Result<kairo_store::auth::User, AuthError> {
        let user = self.md.user(name).await?.ok_or_else(|| unauthenticated(format!("user {name} no longer exists")))?;
        if user.disabled_ms.is_some() {
            return Err(unauthenticated(format!("user {name} is disabled")));
        }
        Ok(user)
    }
}

/// Keep a verification in this thread's cache, with the time it was verified (so it expires
/// with the shared entry).
fn remember_here(id: u64, key: [u8; 32], at: Instant, p: &Arc<Principal>) {
    LOCAL.with(|l| {
        let mut l = l.borrow_mut();
        if l.len() > 1_000 {
            l.retain(|_, (at, _)| at.elapsed() < FRESH);
        }
        l.insert((id, key), (at, p.clone()));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_guessing_source_is_refused_for_the_window_and_others_are_not() {
        let dir = std::env::temp_dir().join(format!("kairo-auth-{}", kairo_core::run::new_run_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let md = Metadata::open_sqlite(&dir.join("k.db")).await.unwrap();
        let a = Authenticator::new(md);
        let (guesser, other): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let bad = b"Bearer kairo_000000000000_0000000000000000000000000000000000000000000000000000000000000000";
        for _ in 0..MAX_FAILURES {
            assert!(matches!(
                a.authenticate(Some(guesser), Some(bad), false).await,
                Err(AuthError::Unauthenticated(_))
            ));
        }
        match a.authenticate(Some(guesser), Some(bad), false).await {
            Err(AuthError::Limited { retry_s, .. }) => assert!(retry_s > 0 && retry_s <= 61),
            other => panic!("{other:?}"),
        }
        assert!(matches!(a.authenticate(Some(other), Some(bad), false).await, Err(AuthError::Unauthenticated(_))));
        // Asking without credentials is refused each time and never counts as guessing.
        let quiet: IpAddr = "10.0.0.3".parse().unwrap();
        for _ in 0..MAX_FAILURES * 2 {
            assert!(matches!(a.authenticate(Some(quiet), None, false).await, Err(AuthError::Unauthenticated(_))));
        }
        assert!(matches!(a.authenticate(Some(quiet), Some(bad), false).await, Err(AuthError::Unauthenticated(_))));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
