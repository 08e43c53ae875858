//! Users, API tokens and grants (migration `0011_auth`). Each change commits with its event;
//! secrets never reach this module, only their stored forms (see `kairo_core::auth`).

use crate::error::{Result, StoreError};
use crate::metadata::{insert_event, Metadata};
use kairo_core::auth::{Grant, Role, Scope};
use kairo_core::{time, EventKind};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub name: String,
    /// `user` or `service`.
    pub kind: String,
    pub password_hash: Option<String>,
    pub created_ms: i64,
    pub created_by: String,
    pub disabled_ms: Option<i64>,
    pub grants: Vec<Grant>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub id: String,
    pub user: String,
    pub hash: String,
    pub note: String,
    /// The grants the token is narrowed to; empty: all of its user's.
    pub grants: Vec<Grant>,
    pub created_ms: i64,
    pub expires_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
}

fn grants_text(g: &[Grant]) -> String {
    g.iter().map(Grant::to_string).collect::<Vec<_>>().join(",")
}

fn parse_grants(text: &str, whose: &str) -> Result<Vec<Grant>> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(|g| Grant::parse(g).map_err(|e| StoreError::Invalid(format!("{whose}: stored grant {e}"))))
        .collect()
}

fn token_from_row(r: &AnyRow) -> Result<Token> {
    let id: String = r.try_get(0)?;
    let grants: String = r.try_get(4)?;
    Ok(Token {
        grants: parse_grants(&grants, &format!("token {id}"))?,
        id,
        user: r.try_get(1)?,
        hash: r.try_get(2)?,
        note: r.try_get(3)?,
        created_ms: r.try_get(5)?,
        expires_ms: r.try_get(6)?,
        revoked_ms: r.try_get(7)?,
    })
}

const TOKEN_SELECT: &str =
    "SELECT id, user_name, hash, note, grants, created_ms, expires_ms, revoked_ms FROM api_tokens";

impl Metadata {
    /// Add a user (or service account) with its grants.
    pub async fn add_user(
        &self,
        name: &str,
        kind: &str,
        password_hash: Option<&str>,
        grants: &[Grant],
        actor: &str,
    ) -> Result<User> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let exists = sqlx::query("SELECT 1 FROM users WHERE name = $1").bind(name).fetch_optional(&mut *tx).await?;
        if exists.is_some() {
            return Err(StoreError::AlreadyExists(format!("user {name} exists (see `kairo users ls`)")));
        }
        let now = time::now_millis();
        sqlx::query(
            "INSERT INTO users (name, kind, password_hash, created_ms, created_by) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(name)
        .bind(kind)
        .bind(password_hash)
        .bind(now)
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        for g in grants {
            insert_grant(&mut tx, name, g, now, actor).await?;
        }
        let payload = json!({"kind": kind, "password": password_hash.is_some(), "grants": grants_text(grants)});
        insert_event(&mut tx, actor, EventKind::UserAdded, &format!("user:{name}"), &payload).await?;
        tx.commit().await?;
        drop(_w);
        self.user(name).await?.ok_or_else(|| StoreError::NotFound(format!("user {name}")))
    }

    pub async fn user(&self, name: &str) -> Result<Option<User>> {
        let row = sqlx::query(
            "SELECT name, kind, password_hash, created_ms, created_by, disabled_ms FROM users WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(User {
            name: r.try_get(0)?,
            kind: r.try_get(1)?,
            password_hash: r.try_get(2)?,
            created_ms: r.try_get(3)?,
            created_by: r.try_get(4)?,
            disabled_ms: r.try_get(5)?,
            grants: self.grants_of(name).await?,
        }))
    }

    pub async fn users(&self) -> Result<Vec<User>> {
        let names: Vec<String> = sqlx::query("SELECT name FROM users ORDER BY name")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<std::result::Result<_, _>>()?;
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            if let Some(u) = self.user(&n).await? {
                out.push(u);
            }
        }
        Ok(out)
    }

    /// Whether any user exists (a server with users requires authentication).
    pub async fn has_users(&self) -> Result<bool> {
        Ok(sqlx::query("SELECT 1 FROM users LIMIT 1").fetch_optional(&self.pool).await?.is_some())
    }

    async fn grants_of(&self, name: &str) -> Result<Vec<Grant>> {
        let rows = sqlx::query("SELECT role, scope FROM grants WHERE user_name = $1 ORDER BY role, scope")
            .bind(name)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let role: String = r.try_get(0)?;
                let scope: String = r.try_get(1)?;
                let role = Role::parse(&role)
                    .ok_or_else(|| StoreError::Invalid(format!("user {name}: unknown stored role `{role}`")))?;
                let scope = Scope::parse(&scope).map_err(|e| StoreError::Invalid(format!("user {name}: {e}")))?;
                Ok(Grant { role, scope })
            })
            .collect()
    }

    /// Disable (or enable again) a user: its tokens and password stop working at once.
    pub async fn set_user_disabled(&self, name: &str, disabled: bool, actor: &str) -> Result<()> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query("UPDATE users SET disabled_ms = $1 WHERE name = $2")
            .bind(disabled.then(time::now_millis))
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound(format!("no user {name} (see `kairo users ls`)")));
        }
        let kind = if disabled { EventKind::UserDisabled } else { EventKind::UserEnabled };
        insert_event(&mut tx, actor, kind, &format!("user:{name}"), &json!({})).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_password(&self, name: &str, password_hash: &str, actor: &str) -> Result<()> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query("UPDATE users SET password_hash = $1 WHERE name = $2")
            .bind(password_hash)
            .bind(name)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound(format!("no user {name} (see `kairo users ls`)")));
        }
        insert_event(&mut tx, actor, EventKind::PasswordSet, &format!("user:{name}"), &json!({})).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Grant (or revoke) a role.
    pub async fn set_grant(&self, name: &str, grant: &Grant, granted: bool, actor: &str) -> Result<()> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        if sqlx::query("SELECT 1 FROM users WHERE name = $1").bind(name).fetch_optional(&mut *tx).await?.is_none() {
            return Err(StoreError::NotFound(format!("no user {name} (see `kairo users ls`)")));
        }
        let kind = if granted {
            insert_grant(&mut tx, name, grant, time::now_millis(), actor).await?;
            EventKind::RoleGranted
        } else {
            sqlx::query("DELETE FROM grants WHERE user_name = $1 AND role = $2 AND scope = $3")
                .bind(name)
                .bind(grant.role.as_str())
                .bind(grant.scope.to_string())
                .execute(&mut *tx)
                .await?;
            EventKind::RoleRevoked
        };
        insert_event(&mut tx, actor, kind, &format!("user:{name}"), &json!({"grant": grant.to_string()})).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Store a new token for a user.
    pub async fn add_token(&self, t: &Token, actor: &str) -> Result<()> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        if sqlx::query("SELECT 1 FROM users WHERE name = $1").bind(&t.user).fetch_optional(&mut *tx).await?.is_none() {
            return Err(StoreError::NotFound(format!("no user {} (add it with `kairo users add`)", t.user)));
        }
        sqlx::query(
            "INSERT INTO api_tokens (id, user_name, hash, note, grants, created_ms, expires_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&t.id)
        .bind(&t.user)
        .bind(&t.hash)
        .bind(&t.note)
        .bind(grants_text(&t.grants))
        .bind(t.created_ms)
        .bind(t.expires_ms)
        .execute(&mut *tx)
        .await?;
        let payload =
            json!({"token": t.id, "expires_ms": t.expires_ms, "grants": grants_text(&t.grants), "note": t.note});
        insert_event(&mut tx, actor, EventKind::TokenCreated, &format!("user:{}", t.user), &payload).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn token(&self, id: &str) -> Result<Option<Token>> {
        let row = sqlx::query(&format!("{TOKEN_SELECT} WHERE id = $1")).bind(id).fetch_optional(&self.pool).await?;
        row.as_ref().map(token_from_row).transpose()
    }

    pub async fn tokens(&self, user: Option<&str>) -> Result<Vec<Token>> {
        let rows = sqlx::query(&format!("{TOKEN_SELECT} WHERE ($1 = '' OR user_name = $1) ORDER BY created_ms, id"))
            .bind(user.unwrap_or(""))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(token_from_row).collect()
    }

    pub async fn revoke_token(&self, id: &str, actor: &str) -> Result<()> {
        let _w = self.writer().await;
        let mut tx = self.pool.begin().await?;
        let t = sqlx::query(&format!("{TOKEN_SELECT} WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .as_ref()
            .map(token_from_row)
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("no token {id} (see `kairo tokens ls`)")))?;
        if t.revoked_ms.is_none() {
            sqlx::query("UPDATE api_tokens SET revoked_ms = $1 WHERE id = $2")
                .bind(time::now_millis())
                .bind(id)
                .execute(&mut *tx)
                .await?;
            insert_event(&mut tx, actor, EventKind::TokenRevoked, &format!("user:{}", t.user), &json!({"token": id}))
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

async fn insert_grant(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    name: &str,
    g: &Grant,
    now: i64,
    actor: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO grants (user_name, role, scope, created_ms, created_by) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(name)
    .bind(g.role.as_str())
    .bind(g.scope.to_string())
    .bind(now)
    .bind(actor)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
