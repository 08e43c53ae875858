//! Making identities: adding a user and creating a token, with every check in one place, so the
//! CLI today and the server's admin endpoints later apply the same rules.

use kairo_core::auth::{self as rules, Grant};
use kairo_core::time;
use kairo_store::auth::{Token, User};
use kairo_store::{Metadata, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The request itself is wrong (a name, a password, a scope): the caller's to fix.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NoUser(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Add a user, or a service account (tokens only, no password).
pub async fn add_user(
    md: &Metadata,
    name: &str,
    service: bool,
    password: Option<&str>,
    grants: &[Grant],
    actor: &str,
) -> Result<User, AdminError> {
    rules::check_user_name(name).map_err(AdminError::Invalid)?;
    if service && password.is_some() {
        return Err(AdminError::Invalid(
            "a service account authenticates with tokens only: give it no password".into(),
        ));
    }
    let hash = password.map(password_hash).transpose()?;
    let kind = if service { "service" } else { "user" };
    Ok(md.add_user(name, kind, hash.as_deref(), grants, actor).await?)
}

/// The stored form of a new password, once it is long enough.
pub fn password_hash(password: &str) -> Result<String, AdminError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AdminError::Invalid(format!("a password needs at least {MIN_PASSWORD_CHARS} characters")));
    }
    rules::hash_password(password).map_err(AdminError::Invalid)
}

/// Create a token for `user`, valid for `valid_ms` (forever when `None`), narrowed to
/// `grants` (all of the user's when empty; never more than the user holds). Returns the stored
/// token and the text to show once.
pub async fn create_token(
    md: &Metadata,
    user: &str,
    valid_ms: Option<i64>,
    grants: Vec<Grant>,
    note: String,
    actor: &str,
) -> Result<(Token, String), AdminError> {
    let u = md.user(user).await?.ok_or_else(|| {
        AdminError::NoUser(format!("no user {user} (add it with `kairo users add {user} --role ROLE`)"))
    })?;
    if let Some(g) = grants.iter().find(|g| !rules::holds(&u.grants, g)) {
        return Err(AdminError::Invalid(format!(
            "--scope {g}: {user} does not hold it, and a token never widens its user"
        )));
    }
    let (id, text, hash) = rules::new_token().map_err(AdminError::Invalid)?;
    let now = time::now_millis();
    let token = Token {
        id,
        user: user.to_string(),
        hash,
        note,
        grants,
        created_ms: now,
        expires_ms: valid_ms.map(|v| now.saturating_add(v)),
        revoked_ms: None,
    };
    md.add_token(&token, actor).await?;
    Ok((token, text))
}
