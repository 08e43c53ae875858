//! Who may do what on a team server: roles, what each allows, where a grant applies, and the
//! credentials (API tokens, passwords) as Kairo stores them. The one home for these rules:
//! the tracking server's middleware, the CLI's `users`/`tokens` commands and the tests all ask
//! here.
//!
//! Credentials are never stored: a token is `kairo_<id>_<secret>` (id to find it, 32 random
//! bytes as the secret) and only the BLAKE3 hash of the secret is kept — a 256-bit random value
//! needs no slow KDF, and a hash per request keeps authentication off the hot path. Passwords,
//! which people choose, are stored as argon2id (RFC 9106's second recommended parameters).

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a role lets one do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    /// Read runs, metrics, artifacts, models, incidents, KPIs.
    Read,
    /// Create and update experiments and runs, log metrics, params, tags and artifacts.
    Track,
    /// Register models and versions, set their tags and (unguarded) aliases.
    Register,
    /// Approve or reject promotions.
    Approve,
    /// Deploy and roll back.
    Deploy,
    /// Users, tokens, grants, settings.
    Admin,
}

impl Permission {
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Track => "track",
            Permission::Register => "register",
            Permission::Approve => "approve",
            Permission::Deploy => "deploy",
            Permission::Admin => "admin",
        }
    }
}

/// A role, granted globally or on one model or experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Scientist,
    Approver,
    Deployer,
    Admin,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::Viewer, Role::Scientist, Role::Approver, Role::Deployer, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Scientist => "scientist",
            Role::Approver => "approver",
            Role::Deployer => "deployer",
            Role::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }

    /// Every role reads; each adds its own; admin does everything.
    pub fn allows(self, p: Permission) -> bool {
        match self {
            Role::Admin => true,
            _ if p == Permission::Read => true,
            Role::Viewer => false,
            Role::Scientist => matches!(p, Permission::Track | Permission::Register),
            Role::Approver => p == Permission::Approve,
            Role::Deployer => p == Permission::Deploy,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a grant applies.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Global,
    Model(String),
    Experiment(String),
}

impl Scope {
    /// `*` (or empty), `model:NAME`, `experiment:ID`.
    pub fn parse(text: &str) -> Result<Scope, String> {
        match text.split_once(':') {
            None if text.is_empty() || text == "*" => Ok(Scope::Global),
            Some(("model", name)) if !name.is_empty() => Ok(Scope::Model(name.to_string())),
            Some(("experiment", id)) if !id.is_empty() => Ok(Scope::Experiment(id.to_string())),
            _ => Err(format!("scope `{text}`: use *, model:NAME or experiment:ID")),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Global => f.write_str("*"),
            Scope::Model(m) => write!(f, "model:{m}"),
            Scope::Experiment(e) => write!(f, "experiment:{e}"),
        }
    }
}

/// A role on a scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Grant {
    pub role: Role,
    pub scope: Scope,
}

impl Grant {
    /// `ROLE` or `ROLE@SCOPE` (`scientist@model:churn`, `approver`, `viewer@experiment:3`).
    pub fn parse(text: &str) -> Result<Grant, String> {
        let (role, scope) = text.split_once('@').unwrap_or((text, "*"));
        let role = Role::parse(role).ok_or_else(|| {
            format!("role `{role}`: use one of viewer, scientist, approver, deployer, admin (as ROLE or ROLE@SCOPE)")
        })?;
        let scope = Scope::parse(scope)?;
        if role == Role::Admin && scope != Scope::Global {
            return Err(format!("admin@{scope}: admin is granted globally only"));
        }
        Ok(Grant { role, scope })
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.scope {
            Scope::Global => write!(f, "{}", self.role),
            s => write!(f, "{}@{s}", self.role),
        }
    }
}

/// What a request touches, as far as the server can tell before running it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target<'a> {
    /// Something not tied to one model or experiment (listings, the event log, KPIs).
    Any,
    Model(&'a str),
    Experiment(&'a str),
}

/// Whether `grants` allow `p` on `target`: a global grant allows it anywhere; a scoped grant
/// only on its own model or experiment.
pub fn allows(grants: &[Grant], p: Permission, target: &Target<'_>) -> bool {
    grants.iter().any(|g| {
        g.role.allows(p)
            && match (&g.scope, target) {
                (Scope::Global, _) => true,
                (Scope::Model(m), Target::Model(t)) => m == t,
                (Scope::Experiment(e), Target::Experiment(t)) => e == t,
                _ => false,
            }
    })
}

const PERMISSIONS: [Permission; 6] = [
    Permission::Read,
    Permission::Track,
    Permission::Register,
    Permission::Approve,
    Permission::Deploy,
    Permission::Admin,
];

/// Whether a user's grants cover `g`: one grant allows everything g's role allows, globally
/// or on g's scope (a scientist holds viewer; nobody but an approver or admin holds approver).
pub fn holds(user: &[Grant], g: &Grant) -> bool {
    user.iter().any(|u| {
        PERMISSIONS.iter().all(|p| !g.role.allows(*p) || u.role.allows(*p))
            && (u.scope == Scope::Global || u.scope == g.scope)
    })
}

/// A token's grants kept only where its user holds them: a token never widens its user, and a
/// role taken from the user later is gone from the token too.
pub fn narrow(user: &[Grant], token: &[Grant]) -> Vec<Grant> {
    token.iter().filter(|t| holds(user, t)).cloned().collect()
}

/// A token as presented: `kairo_<id>_<secret>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentedToken<'a> {
    pub id: &'a str,
    pub secret: &'a str,
}

/// Token ids are 12 lowercase hex digits; secrets 64.
pub fn parse_token(text: &str) -> Option<PresentedToken<'_>> {
    let rest = text.strip_prefix("kairo_")?;
    let (id, secret) = rest.split_once('_')?;
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (hex(id, 12) && hex(secret, 64)).then_some(PresentedToken { id, secret })
}

/// A new token: (its id, the text to show once, the hash to store).
pub fn new_token() -> Result<(String, String, String), String> {
    let mut bytes = [0u8; 38];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness from the OS: {e}"))?;
    let id = hex::encode(&bytes[..6]);
    let secret = hex::encode(&bytes[6..]);
    let hash = token_hash(&secret);
    Ok((id.clone(), format!("kairo_{id}_{secret}"), hash))
}

/// The stored form of a token secret.
pub fn token_hash(secret: &str) -> String {
    blake3::derive_key("kairo api token v1", secret.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Compare two hashes without an early exit.
pub fn same_hash(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn argon() -> argon2::Argon2<'static> {
    // RFC 9106 §4, second recommended option: 64 MiB, 3 passes, 4 lanes.
    let params = argon2::Params::new(64 * 1024, 3, 4, None).unwrap_or_default();
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

/// A password as stored (PHC string, argon2id with a random salt).
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("no randomness from the OS: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    argon().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
}

/// Whether `password` matches a stored PHC string (false for a malformed one).
pub fn verify_password(password: &str, stored: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    match PasswordHash::new(stored) {
        Ok(h) => argon().verify_password(password.as_bytes(), &h).is_ok(),
        Err(_) => false,
    }
}

/// A user name: 1–64 of letters, digits and `._@-`, starting with a letter or digit.
pub fn check_user_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "user name `{name}`: use 1 to 64 letters, digits, `.`, `_`, `@` or `-`, starting with a letter or digit"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_allow_what_they_say() {
        use Permission::*;
        let table = [
            (Role::Viewer, vec![Read]),
            (Role::Scientist, vec![Read, Track, Register]),
            (Role::Approver, vec![Read, Approve]),
            (Role::Deployer, vec![Read, Deploy]),
            (Role::Admin, vec![Read, Track, Register, Approve, Deploy, Admin]),
        ];
        for (role, allowed) in table {
            for p in [Read, Track, Register, Approve, Deploy, Admin] {
                assert_eq!(role.allows(p), allowed.contains(&p), "{role} {p:?}");
            }
        }
    }

    #[test]
    fn scopes_limit_grants() {
        let grants = vec![Grant::parse("scientist@model:churn").unwrap(), Grant::parse("viewer").unwrap()];
        assert!(allows(&grants, Permission::Register, &Target::Model("churn")));
        assert!(!allows(&grants, Permission::Register, &Target::Model("fraud")));
        assert!(!allows(&grants, Permission::Register, &Target::Any));
        assert!(allows(&grants, Permission::Read, &Target::Model("fraud")));
        assert!(!allows(&[], Permission::Read, &Target::Any));
        for bad in ["owner", "admin@model:x", "scientist@team:x", "scientist@model:", ""] {
            assert!(Grant::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Grant::parse("approver@experiment:3").unwrap().to_string(), "approver@experiment:3");
        let user = vec![Grant::parse("scientist").unwrap()];
        let token = vec![Grant::parse("scientist@model:churn").unwrap(), Grant::parse("deployer").unwrap()];
        assert_eq!(narrow(&user, &token), vec![token[0].clone()], "a token never widens its user");
        assert!(holds(&user, &Grant::parse("viewer").unwrap()), "a scientist holds viewer");
    }

    #[test]
    fn tokens_and_passwords() {
        let (id, text, hash) = new_token().unwrap();
        let t = parse_token(&text).unwrap();
        assert_eq!(t.id, id);
        assert!(same_hash(&token_hash(t.secret), &hash));
        assert!(!same_hash(&token_hash(&"0".repeat(64)), &hash));
        for bad in ["", "kairo_", "kairo_abc_def", &text.to_uppercase(), &format!("{text}0"), "Bearer x"] {
            assert!(parse_token(bad).is_none(), "{bad}");
        }
        let stored = hash_password("correct horse").unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &stored));
        assert!(!verify_password("wrong", &stored));
        assert!(!verify_password("x", "not a hash"));
        assert!(check_user_name("alice@corp").is_ok());
        assert!(check_user_name("-x").is_err() && check_user_name("a b").is_err() && check_user_name("").is_err());
    }
}
