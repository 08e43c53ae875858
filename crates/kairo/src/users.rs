//! `kairo users` and `kairo tokens`: the team server's identities, managed on the server's
//! machine (they write the project's database directly; `kairo_core::auth` holds the rules).

use std::io::Read;

use kairo_auth::admin::{self, AdminError};
use kairo_core::auth::Grant;
use kairo_core::{exit, time};
use kairo_data::Project;
use kairo_store::auth::Token;

use crate::report::print_json;
use crate::{CmdResult, Failure};

#[derive(clap::Subcommand)]
pub enum UsersCommand {
    /// Add a user (or a service account) with roles.
    Add {
        /// The user's (or service account's) name.
        name: String,
        /// A role, globally or on one model or experiment: viewer, scientist, approver,
        /// deployer, admin, or ROLE@model:NAME / ROLE@experiment:ID. Repeatable.
        #[arg(long = "role", value_name = "ROLE[@SCOPE]")]
        roles: Vec<String>,
        /// A service account (for CI and automations): tokens only, no password.
        #[arg(long)]
        service: bool,
        /// Read a password from standard input (first line) for Basic authentication.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users with their roles.
    Ls {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Disable a user: its password and tokens stop working (within seconds on a running server).
    Disable {
        /// The user to disable.
        name: String,
    },
    /// Enable a disabled user again.
    Enable {
        /// The user to enable.
        name: String,
    },
    /// Grant a role (ROLE or ROLE@model:NAME / ROLE@experiment:ID).
    Grant {
        /// The user (or service account).
        name: String,
        /// The role: viewer, scientist, approver, deployer or admin, globally, or on one model or
        /// experiment as ROLE@model:NAME / ROLE@experiment:ID (admin only globally).
        role: String,
    },
    /// Take a role back.
    Revoke {
        /// The user (or service account).
        name: String,
        /// The role as it was granted: ROLE, or ROLE@model:NAME / ROLE@experiment:ID.
        role: String,
    },
    /// Set a user's password from standard input (first line).
    Passwd {
        /// The user whose password to set.
        name: String,
    },
}

#[derive(clap::Subcommand)]
pub enum TokensCommand {
    /// Create an API token for a user; it is printed once and stored only as a hash.
    Create {
        /// The user (or service account) the token acts as.
        user: String,
        /// Valid for this long (90d, 12h); no expiry when absent.
        #[arg(long)]
        expires: Option<String>,
        /// Narrow the token to some of its user's roles (ROLE[@SCOPE]); repeatable.
        #[arg(long = "scope", value_name = "ROLE[@SCOPE]")]
        scopes: Vec<String>,
        /// A note saying what the token is for.
        #[arg(long, default_value = "")]
        note: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List tokens (never their secrets).
    Ls {
        /// Only this user's.
        #[arg(long)]
        user: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id.
    Revoke {
        /// The token's id (from `kairo tokens ls`).
        id: String,
    },
}

fn grants(texts: &[String]) -> Result<Vec<Grant>, Failure> {
    texts.iter().map(|t| Grant::parse(t).map_err(Failure::usage)).collect()
}

/// The first line of stdin (checked by `kairo_auth::admin`).
fn read_password() -> Result<String, Failure> {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text)?;
    Ok(text.lines().next().unwrap_or("").to_string())
}

fn failure(e: AdminError) -> Failure {
    match e {
        AdminError::Invalid(m) => Failure::usage(m),
        other => Failure::from(other),
    }
}

pub async fn users(command: UsersCommand) -> CmdResult {
    let project = Project::discover(&std::env::current_dir()?)?;
    let md = project.metadata().await?;
    let actor = Project::actor();
    match command {
        UsersCommand::Add { name, roles, service, password_stdin } => {
            let grants = grants(&roles)?;
            let password = if password_stdin { Some(read_password()?) } else { None };
            let u =
                admin::add_user(&md, &name, service, password.as_deref(), &grants, &actor).await.map_err(failure)?;
            let roles: Vec<String> = u.grants.iter().map(Grant::to_string).collect();
            println!(
                "added {} {name} ({})",
                u.kind,
                if roles.is_empty() { "no roles".into() } else { roles.join(", ") }
            );
            if password.is_none() {
                println!("next: kairo tokens create {name}");
            }
        }
        UsersCommand::Ls { json } => {
            let users = md.users().await?;
            if json {
                let list: Vec<_> = users
                    .iter()
                    .map(|u| {
                        serde_json::json!({
                            "name": u.name, "kind": u.kind, "password": u.password_hash.is_some(),
                            "disabled": u.disabled_ms.map(time::millis_to_string),
                            "created": time::millis_to_string(u.created_ms), "created_by": u.created_by,
                            "roles": u.grants.iter().map(Grant::to_string).collect::<Vec<_>>(),
                        })
                    })
                    .collect();
                print_json(&list);
            } else if users.is_empty() {
                println!("no users: the server needs no credentials on loopback (add one with `kairo users add NAME --role admin`)");
            } else {
                println!("{:<24} {:<8} {:<9} ROLES", "NAME", "KIND", "STATE");
                for u in &users {
                    let roles: Vec<String> = u.grants.iter().map(Grant::to_string).collect();
                    let state = if u.disabled_ms.is_some() { "disabled" } else { "active" };
                    println!("{:<24} {:<8} {:<9} {}", u.name, u.kind, state, roles.join(", "));
                }
            }
        }
        UsersCommand::Disable { name } => {
            md.set_user_disabled(&name, true, &actor).await?;
            println!("disabled {name}");
        }
        UsersCommand::Enable { name } => {
            md.set_user_disabled(&name, false, &actor).await?;
            println!("enabled {name}");
        }
        UsersCommand::Grant { name, role } => {
            let g = Grant::parse(&role).map_err(Failure::usage)?;
            md.set_grant(&name, &g, true, &actor).await?;
            println!("granted {g} to {name}");
        }
        UsersCommand::Revoke { name, role } => {
            let g = Grant::parse(&role).map_err(Failure::usage)?;
            md.set_grant(&name, &g, false, &actor).await?;
            println!("revoked {g} from {name}");
        }
        UsersCommand::Passwd { name } => {
            let hash = admin::password_hash(&read_password()?).map_err(failure)?;
            md.set_password(&name, &hash, &actor).await?;
            println!("password set for {name}");
        }
    }
    Ok(exit::OK)
}

pub async fn tokens(command: TokensCommand) -> CmdResult {
    let project = Project::discover(&std::env::current_dir()?)?;
    let md = project.metadata().await?;
    let actor = Project::actor();
    match command {
        TokensCommand::Create { user, expires, scopes, note, json } => {
            let valid_ms = expires
                .map(|e| {
                    kairo_core::config::parse_duration_ms(&e).map_err(|m| Failure::usage(format!("--expires {m}")))
                })
                .transpose()?;
            let (token, text) =
                admin::create_token(&md, &user, valid_ms, grants(&scopes)?, note, &actor).await.map_err(failure)?;
            let (id, expires_ms) = (token.id, token.expires_ms);
            if json {
                print_json(
                    &serde_json::json!({"id": id, "user": user, "token": text, "expires": expires_ms.map(time::millis_to_string)}),
                );
            } else {
                println!("{text}");
                eprintln!(
                    "token {id} for {user}{}: shown once, store it now (MLFLOW_TRACKING_TOKEN, or Authorization: Bearer)",
                    expires_ms.map(|e| format!(", valid until {}", time::millis_to_string(e))).unwrap_or_default()
                );
            }
        }
        TokensCommand::Ls { user, json } => {
            let tokens = md.tokens(user.as_deref()).await?;
            let now = time::now_millis();
            let state = |t: &Token| match (t.revoked_ms, t.expires_ms) {
                (Some(_), _) => "revoked",
                (None, Some(e)) if e <= now => "expired",
                _ => "active",
            };
            if json {
                let list: Vec<_> = tokens
                    .iter()
                    .map(|t| {
                        serde_json::json!({
                            "id": t.id, "user": t.user, "note": t.note, "state": state(t),
                            "scopes": t.grants.iter().map(Grant::to_string).collect::<Vec<_>>(),
                            "created": time::millis_to_string(t.created_ms),
                            "expires": t.expires_ms.map(time::millis_to_string),
                        })
                    })
                    .collect();
                print_json(&list);
            } else {
                println!("{:<14} {:<20} {:<8} {:<26} NOTE", "ID", "USER", "STATE", "EXPIRES");
                for t in &tokens {
                    let expires = t.expires_ms.map(time::millis_to_string).unwrap_or_else(|| "never".into());
                    println!("{:<14} {:<20} {:<8} {:<26} {}", t.id, t.user, state(t), expires, t.note);
                }
            }
        }
        TokensCommand::Revoke { id } => {
            md.revoke_token(&id, &actor).await?;
            println!("revoked token {id}");
        }
    }
    Ok(exit::OK)
}
