//! Registry and serving records: what a model version serves, promotions (gated alias moves),
//! and deployments (what an endpoint serves, with its rollout state).

use std::collections::BTreeMap;

use crate::hash::Hash;
use crate::profile::Profile;
use crate::signature::Signature;

/// The servable facts of a registered version, written once at registration. Typed here;
/// `kairo-store` alone turns them into the stored JSON and back.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionArtifact {
    /// The ONNX bytes in the object store.
    pub object: Hash,
    pub size: u64,
    /// The model's inputs and outputs, as the runtime read them from the graph.
    pub signature: Signature,
    /// Metric name → value, copied from the run at registration (and `--metric`).
    pub metrics: BTreeMap<String, f64>,
    /// The reference profile of the training data, when there was training data to profile.
    pub profile: Option<ReferenceProfile>,
    /// Permutation feature importance on the model's holdout, when one is configured.
    pub importance: Option<Importance>,
}

/// A version's stored reference profile.
#[derive(Debug, Clone, PartialEq)]
pub enum ReferenceProfile {
    /// The profile `kairo_monitor::profile` computes, with roles and request sources.
    Current(Profile),
    /// A profile written by a Kairo older than monitoring (columns with `null_share` and no
    /// roles): kept as it was, but no reference for drift. Registering the model again
    /// records a current one.
    Outdated,
}

impl ReferenceProfile {
    /// The profile, unless it is from an older Kairo.
    pub fn current(&self) -> Option<&Profile> {
        match self {
            ReferenceProfile::Current(p) => Some(p),
            ReferenceProfile::Outdated => None,
        }
    }
}

/// Permutation feature importance: how much the holdout score drops when one column is
/// shuffled, most important first.
#[derive(Debug, Clone, PartialEq)]
pub struct Importance {
    /// The score that drops: `accuracy` for classifiers, `r2` for regressors.
    pub metric: String,
    /// The score on the unshuffled holdout.
    pub baseline: f64,
    /// Holdout rows scored.
    pub rows: u64,
    /// The holdout file, as `kairo.yaml` names it.
    pub holdout: String,
    pub features: Vec<FeatureImportance>,
}

/// One column's drop in score: the mean over repeated shuffles and its standard deviation.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureImportance {
    pub name: String,
    pub importance: f64,
    pub std: f64,
}

/// Where a promotion stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromotionStatus {
    /// Gates passed and the alias moved (approval was automatic or given).
    Promoted,
    /// A gate failed; the alias did not move.
    Failed,
    /// Gates passed; waiting for an approval.
    Pending,
    /// An approver refused it.
    Rejected,
}

impl PromotionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PromotionStatus::Promoted => "promoted",
            PromotionStatus::Failed => "failed",
            PromotionStatus::Pending => "pending",
            PromotionStatus::Rejected => "rejected",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "promoted" => PromotionStatus::Promoted,
            "failed" => PromotionStatus::Failed,
            "pending" => PromotionStatus::Pending,
            "rejected" => PromotionStatus::Rejected,
            _ => return None,
        })
    }
}

/// A request to point `alias` at `version`, with the gate results as evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Promotion {
    pub id: String,
    pub name: String,
    pub version: i64,
    pub alias: String,
    pub status: PromotionStatus,
    /// JSON array of `{gate, passed, detail}`.
    pub gates: serde_json::Value,
    pub requested_by: String,
    pub decided_by: Option<String>,
    pub reason: Option<String>,
    pub created_ms: i64,
    pub decided_ms: Option<i64>,
}

/// How a candidate version receives traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// The candidate replaces the stable version at once.
    Direct,
    /// A share of requests (`weight` percent) goes to the candidate.
    Canary,
    /// Every request is mirrored to the candidate; its answers are discarded.
    Shadow,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Direct => "direct",
            Strategy::Canary => "canary",
            Strategy::Shadow => "shadow",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "direct" => Strategy::Direct,
            "canary" => Strategy::Canary,
            "shadow" => Strategy::Shadow,
            _ => return None,
        })
    }
}

/// When a candidate is rolled back automatically, and when it is promoted to 100%.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutLimits {
    /// Largest tolerated share of failed candidate requests (0.0–1.0).
    #[serde(default = "default_error_rate")]
    pub max_error_rate: f64,
    /// Largest tolerated candidate p99 latency, in milliseconds.
    #[serde(default = "default_p99")]
    pub max_p99_ms: f64,
    /// Candidate requests needed before the limits are judged.
    #[serde(default = "default_min_requests")]
    pub min_requests: u64,
    /// How long the canary runs before it takes 100%, in seconds.
    #[serde(default = "default_window")]
    pub window_s: u64,
}

fn default_error_rate() -> f64 {
    0.05
}
fn default_p99() -> f64 {
    250.0
}
fn default_min_requests() -> u64 {
    20
}
fn default_window() -> u64 {
    300
}

impl Default for RolloutLimits {
    fn default() -> Self {
        RolloutLimits {
            max_error_rate: default_error_rate(),
            max_p99_ms: default_p99(),
            min_requests: default_min_requests(),
            window_s: default_window(),
        }
    }
}

/// What a model's endpoint serves.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    pub name: String,
    pub stable_version: i64,
    pub candidate_version: Option<i64>,
    pub strategy: Strategy,
    /// Percent of traffic for a canary candidate.
    pub weight: u32,
    pub limits: RolloutLimits,
    pub started_ms: i64,
    /// Increases with every change; servers poll it.
    pub generation: i64,
    pub updated_ms: i64,
}
