//! The kinds of event the audit trail records. Every state change commits together with one
//! of these; readers (the CLI's histories, the web UI, the closed loop) match on the enum, and
//! the text form (`model.promoted`) is what the `events` table and the APIs carry.

use std::fmt;

macro_rules! event_kinds {
    ($($(#[$doc:meta])* $variant:ident = $text:literal,)*) => {
        /// What happened. The text form is stable: it is stored and served.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventKind {
            $($(#[$doc])* $variant,)*
        }

        impl EventKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [EventKind] = &[$(EventKind::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventKind::$variant => $text,)*
                }
            }

            /// The kind a stored text names; `None` for a kind this build does not know
            /// (an event written by a newer Kairo).
            pub fn parse(text: &str) -> Option<EventKind> {
                match text {
                    $($text => Some(EventKind::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

event_kinds! {
    ExperimentCreated = "experiment.created",
    ExperimentRenamed = "experiment.renamed",
    ExperimentDeleted = "experiment.deleted",
    ExperimentRestored = "experiment.restored",
    RunStarted = "run.started",
    RunFinished = "run.finished",
    RunStatusChanged = "run.status_changed",
    RunDeleted = "run.deleted",
    RunRestored = "run.restored",
    DatasetVersionAdded = "dataset.version_added",
    /// An object kept alive by a run or model outside the tracked data.
    ObjectPinned = "object.pinned",
    DataPushed = "data.pushed",
    DataPulled = "data.pulled",
    ObjectsCollected = "objects.collected",
    LoggedModelCreated = "logged_model.created",
    LoggedModelDeleted = "logged_model.deleted",
    ModelRegistered = "model.registered",
    ModelRenamed = "model.renamed",
    ModelDeleted = "model.deleted",
    /// A version created through the MLflow API.
    ModelVersionCreated = "model.version_created",
    /// A version registered by Kairo (validated ONNX, signature, profile).
    ModelVersionRegistered = "model.version_registered",
    ModelVersionDeleted = "model.version_deleted",
    AliasMoved = "model.alias_moved",
    PromotionRequested = "model.promotion_requested",
    PromotionFailed = "model.promotion_failed",
    Promoted = "model.promoted",
    PromotionApproved = "model.promotion_approved",
    PromotionRejected = "model.promotion_rejected",
    /// A deployment's first (direct) version, or a direct replacement.
    DeploymentCreated = "deployment.created",
    /// A canary or shadow candidate began.
    DeploymentStarted = "deployment.started",
    /// A canary took 100% after its window.
    DeploymentCompleted = "deployment.completed",
    DeploymentRolledBack = "deployment.rolled_back",
    /// A version failed to load in a server.
    DeploymentFailed = "deployment.failed",
    MonitorAlert = "monitor.alert",
    WebhookFailed = "monitor.webhook_failed",
    /// Prediction-log rows past the model's retention given up (their sketches kept).
    PredictionsPruned = "predictions.pruned",
    /// Prediction-log rows erased on request (the field and count, never the value).
    PredictionsErased = "predictions.erased",
    /// A trigger opened an incident.
    IncidentOpened = "incident.opened",
    /// A trigger arrived while the model already had an open incident.
    IncidentJoined = "incident.joined",
    /// An incident moved to another state, or recorded new facts in its state.
    IncidentAdvanced = "incident.advanced",
    /// A trigger held back by the automation's guard (cooldown, max_per_day).
    TriggerSuppressed = "automation.suppressed",
    UserAdded = "user.added",
    UserDisabled = "user.disabled",
    UserEnabled = "user.enabled",
    PasswordSet = "user.password_set",
    RoleGranted = "user.role_granted",
    RoleRevoked = "user.role_revoked",
    TokenCreated = "token.created",
    TokenRevoked = "token.revoked",
}

/// The hash that links an event to the one before it: every stored field, length-prefixed,
/// after the previous event's hash. Editing or deleting an event breaks every link after it
/// (`kairo events verify`).
pub fn chain_hash(prev: Option<&str>, at: &str, actor: &str, kind: &str, subject: &str, payload: &str) -> String {
    let mut h = blake3::Hasher::new_derive_key("kairo event chain v1");
    for part in [prev.unwrap_or(""), at, actor, kind, subject, payload] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().to_hex().to_string()
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<EventKind> for str {
    fn eq(&self, other: &EventKind) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<EventKind> for String {
    fn eq(&self, other: &EventKind) -> bool {
        self == other.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_text() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(*k), "{k}");
        }
        assert_eq!(EventKind::parse("model.unknown"), None);
    }

    #[test]
    fn the_chain_hash_covers_every_field_and_the_link() {
        let base = chain_hash(Some("p"), "t", "a", "k", "s", "{}");
        assert_eq!(base, chain_hash(Some("p"), "t", "a", "k", "s", "{}"));
        for other in [
            chain_hash(None, "t", "a", "k", "s", "{}"),
            chain_hash(Some("p"), "t2", "a", "k", "s", "{}"),
            chain_hash(Some("p"), "t", "b", "k", "s", "{}"),
            chain_hash(Some("p"), "t", "a", "k", "s", "{\"x\":1}"),
            chain_hash(Some("p"), "t", "ak", "", "s", "{}"),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn texts_are_unique_and_namespaced() {
        let mut seen = std::collections::HashSet::new();
        for k in EventKind::ALL {
            assert!(seen.insert(k.as_str()), "{k} appears twice");
            let (area, what) = k.as_str().split_once('.').expect("AREA.WHAT");
            assert!(!area.is_empty() && !what.is_empty() && what.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        }
    }
}
