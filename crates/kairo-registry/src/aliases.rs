//! Who may move an alias. A model whose policy in `kairo.yaml` guards anything (gates,
//! `beat_champion`, `approval: required`) has its promoted aliases (`champion` and the policy's
//! `aliases:`) moved only by a passed promotion ([`crate::promote`]). Every other alias moves
//! as MLflow moves it. The check is here, once; the store's `move_alias` below it is the one
//! function that moves an alias, and the CLI, the MLflow endpoint and the loop all come
//! through [`move_alias`].

use kairo_core::config::{Approval, ModelPolicy};
use kairo_core::serving::PromotionStatus;
use kairo_store::Metadata;

use crate::{RegistryError, Result};

/// The policy of `name` as `kairo.yaml` says now (the default, guarding nothing, when the file
/// has no entry for it).
pub fn policy(project: &kairo_data::Project, name: &str) -> Result<ModelPolicy> {
    Ok(project.current_config()?.models.get(name).cloned().unwrap_or_default())
}

/// How a move is authorised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authority {
    /// An ordinary move (the MLflow API, `kairo models alias`): refused on a guarded alias.
    Plain,
    /// `kairo models alias --force`: a person bypasses the policy, and the event says so.
    Forced,
}

/// Why a guarded alias may not move to `version` (`None`: removed) without a promotion, naming
/// what is missing: the gates not yet passed, the approval not yet given.
pub async fn refusal(
    md: &Metadata,
    policy: &ModelPolicy,
    name: &str,
    alias: &str,
    version: Option<i64>,
) -> Result<String> {
    let mut needs = Vec::new();
    if !policy.gates.is_empty() {
        let list: Vec<String> = policy.gates.iter().map(|g| format!("`{g}`")).collect();
        needs.push(format!("gates {}", list.join(", ")));
    }
    if let Some(b) = &policy.beat_champion {
        needs.push(format!("beating the champion on {} by >= {}", b.metric, b.by));
    }
    if policy.approval == Approval::Required {
        needs.push("an approval".into());
    }
    let head = format!(
        "alias '{alias}' of model '{name}' is guarded by kairo.yaml (models.{name}: {}) and moves only through a passed promotion",
        needs.join(", ")
    );
    let Some(version) = version else {
        return Ok(format!("{head}; remove it with `kairo models alias {name} {alias} --delete --force` (recorded)"));
    };
    let last = md.promotions(name).await?.into_iter().rev().find(|p| p.version == version && p.alias == alias);
    let missing = match &last {
        Some(p) if p.status == PromotionStatus::Pending => {
            format!("version {version}'s promotion {} passed its gates and is missing its approval", p.id)
        }
        Some(p) if p.status == PromotionStatus::Failed => {
            let failed: Vec<String> = p
                .gates
                .as_array()
                .into_iter()
                .flatten()
                .filter(|g| g["passed"] == false)
                .map(|g| format!("`{}` ({})", g["gate"].as_str().unwrap_or("?"), g["detail"].as_str().unwrap_or("")))
                .collect();
            format!("version {version} failed gate {} in promotion {}", failed.join(", "), p.id)
        }
        Some(p) if p.status == PromotionStatus::Promoted => format!(
            "version {version} was promoted in {}, but '{alias}' has moved since; a new promotion judges it against today's gates",
            p.id
        ),
        Some(p) if p.status == PromotionStatus::Rejected => {
            format!("version {version}'s promotion {} was rejected by {}", p.id, p.decided_by.as_deref().unwrap_or("?"))
        }
        _ => {
            let mut m = format!("version {version} has no passed promotion to '{alias}': its gates were not evaluated");
            if policy.approval == Approval::Required {
                m.push_str(" and it has no approval");
            }
            m
        }
    };
    Ok(format!("{head}: {missing}; run `kairo models promote {name} {version} --to {alias}`"))
}

/// One alias move: `alias` of `name` to `version` (`None` removes it).
#[derive(Debug, Clone, Copy)]
pub struct AliasMove<'a> {
    pub name: &'a str,
    pub alias: &'a str,
    pub version: Option<i64>,
    pub authority: Authority,
    pub actor: &'a str,
    /// Recorded in the event.
    pub reason: &'a str,
}

/// Move an alias unless the policy guards it. Returns the version it pointed at before.
/// Pointing a guarded alias where it already points is answered as done without writing (so a
/// client that sets the alias after a promotion works, and nothing moves between the check and
/// a write).
pub async fn move_alias(md: &Metadata, policy: &ModelPolicy, m: &AliasMove<'_>) -> Result<Option<i64>> {
    if policy.guards_alias(m.alias) && m.authority == Authority::Plain {
        md.registered_model(m.name).await?;
        let current = md.alias_version(m.name, m.alias).await?;
        if m.version.is_some() && current == m.version {
            return Ok(current);
        }
        return Err(RegistryError::PermissionDenied(refusal(md, policy, m.name, m.alias, m.version).await?));
    }
    Ok(md.move_alias(m.name, m.alias, m.version, m.actor, m.reason).await?)
}
