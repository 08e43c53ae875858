//! The report's shape: `kairo kpi --json`, `/api/v1/kpi` and what `html` renders. Durations
//! are seconds; times are RFC 3339 UTC; days and weeks are dates in the report's time zone.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct Report {
    pub period: Period,
    pub deployment_frequency: DeploymentFrequency,
    pub lead_time: LeadTime,
    pub change_failure: ChangeFailure,
    pub restore: Restore,
    pub automation: Automation,
    /// Realised quality per model, version and window, from feedback labels.
    pub quality: Vec<QualityRow>,
    /// Requests, errors and latency per model, version and UTC day.
    pub serving: Vec<ServingRow>,
    pub compute: Compute,
    pub value: Roi,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct Period {
    pub since: String,
    pub until: String,
    pub since_ms: i64,
    pub until_ms: i64,
    /// The UTC offset days and weeks are cut in (`+09:00`, `Z`).
    pub timezone: String,
    pub model: Option<String>,
    /// Length of the period in weeks.
    pub weeks: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct DeploymentFrequency {
    /// Versions that reached 100% of traffic in the period.
    pub total: u64,
    pub per_week: f64,
    pub by_model: Vec<ModelCount>,
    /// Every week of the period (Monday first), also those with none.
    pub weeks: Vec<WeekCount>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ModelCount {
    pub model: String,
    pub count: u64,
    pub per_week: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct WeekCount {
    /// The week's Monday.
    pub week: String,
    pub count: u64,
}

/// The stages a change passes through, in order.
pub const STAGES: [&str; 6] =
    ["waiting_to_start", "training", "registration_evaluation", "waiting_for_approval", "waiting_to_deploy", "canary"];

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct LeadTime {
    /// Changes that reached 100% in the period.
    pub changes: u64,
    /// Of those, changes whose cause is recorded (an alert, a dataset version, a commit).
    pub with_cause: u64,
    pub median_s: Option<f64>,
    pub p90_s: Option<f64>,
    /// Per stage: the median over changes that passed through it and its share of all the
    /// time measured.
    pub stages: Vec<StageTime>,
    /// The stage with the largest share.
    pub bottleneck: Option<String>,
    pub changes_detail: Vec<ChangeLead>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct StageTime {
    pub stage: String,
    pub median_s: Option<f64>,
    pub total_s: f64,
    pub share: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ChangeLead {
    pub model: String,
    pub version: i64,
    /// When it reached 100%.
    pub reached: String,
    /// `alert`, `data`, `schedule`, `manual` (an automation's trigger), `dataset` or
    /// `commit` (the newest input of its training run); none when nothing is recorded.
    pub cause: Option<String>,
    pub cause_at: Option<String>,
    pub total_s: Option<f64>,
    /// Seconds per stage in `STAGES` order; null where the stage's start is unknown.
    pub stages_s: Vec<Option<f64>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ChangeFailure {
    /// Changes put into production in the period: versions that reached 100% and canaries
    /// that were rolled back before they did.
    pub changes: u64,
    pub failed: u64,
    pub rate: Option<f64>,
    /// An incident within this many days after a change counts against it.
    pub window_days: f64,
    pub failures: Vec<FailedChange>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct FailedChange {
    pub model: String,
    pub version: i64,
    pub at: String,
    /// `canary_rolled_back`, `rolled_back`, `incident`.
    pub why: String,
    pub detail: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct Restore {
    /// Incidents opened in the period.
    pub incidents: u64,
    pub resolved: u64,
    /// Closed without restoring (not better, rejected, rolled back, failed).
    pub closed_unresolved: u64,
    pub open: u64,
    pub median_s: Option<f64>,
    pub mean_s: Option<f64>,
    /// From the first window that breached to the alert, for incidents an alert opened.
    pub detect_median_s: Option<f64>,
    pub detected: u64,
    pub incidents_detail: Vec<IncidentTime>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct IncidentTime {
    pub id: i64,
    pub model: String,
    pub opened: String,
    pub state: String,
    /// Opened → resolved; none unless resolved.
    pub restore_s: Option<f64>,
    /// Open so far, for incidents still open at the end of the period.
    pub open_for_s: Option<f64>,
    pub detect_s: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct Automation {
    pub retrains: Share,
    pub promotions: Share,
    pub deploys: Share,
    pub rollbacks: Share,
    /// Monitor checks (scheduled by `kairo server` vs by hand).
    pub drift_checks: Share,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct Share {
    pub automated: u64,
    pub manual: u64,
    /// automated / (automated + manual); none when both are 0.
    pub rate: Option<f64>,
}

impl Share {
    pub fn of(automated: u64, manual: u64) -> Share {
        let all = automated + manual;
        Share { automated, manual, rate: (all > 0).then(|| automated as f64 / all as f64) }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct QualityRow {
    pub model: String,
    pub version: i64,
    pub window_start: String,
    pub window_end: String,
    pub rows: u64,
    pub labelled: u64,
    /// labelled / rows.
    pub coverage: f64,
    /// The headline metric: `accuracy` for classifiers, `rmse` for regressors.
    pub metric: Option<String>,
    pub value: Option<f64>,
    #[schema(value_type = Object)]
    pub metrics: std::collections::BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ServingRow {
    pub model: String,
    pub version: i64,
    /// The UTC day.
    pub day: String,
    pub requests: i64,
    pub client_errors: i64,
    pub server_errors: i64,
    /// server_errors / requests.
    pub error_rate: f64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct Compute {
    pub runs: i64,
    pub failed: i64,
    pub wall_s: f64,
    pub cpu_s: f64,
    /// Runs without a CPU measurement (tracking clients' runs, runs before it was recorded).
    pub unmeasured: i64,
    pub by_model: Vec<ComputeRow>,
    pub by_trigger: Vec<ComputeRow>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct ComputeRow {
    /// A model (runs of the stages that produced its versions), `(other)`, or a trigger.
    pub key: String,
    pub runs: i64,
    pub wall_s: f64,
    pub cpu_s: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct Roi {
    /// Whether `value:` is in kairo.yaml at all.
    pub configured: bool,
    pub currency: Option<String>,
    /// What to add to `value:` for the figures that are missing.
    pub missing: Vec<String>,
    pub lines: Vec<RoiLine>,
    pub hours_saved: f64,
    pub money_saved: Option<f64>,
    pub compute_cost: Option<f64>,
    pub realised_value: Option<f64>,
    /// money_saved + realised_value − compute_cost, over the terms that are configured.
    pub net: Option<f64>,
    pub net_formula: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct RoiLine {
    /// `retrain`, `deploy`, `drift_check`, `rollback`, `compute`, `predictions`, `outcomes`.
    pub item: String,
    /// The inputs, as numbers with their names.
    pub inputs: String,
    pub formula: String,
    pub hours: Option<f64>,
    pub amount: Option<f64>,
}
