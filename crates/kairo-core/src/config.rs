//! `kairo.yaml`: the project's configuration file.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const CONFIG_FILE: &str = "kairo.yaml";

/// A named place to push data to and pull it from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteConfig {
    /// `s3://bucket/prefix`, `file:///abs/dir`, or a directory path.
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_version")]
    pub version: u32,
    /// Metadata database URL; SQLite in `.kairo/kairo.db` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// The team server (`https://kairo.internal`): with it (or `KAIRO_SERVER`), the CLI's
    /// registry, promotion, deployment, incident and KPI commands go through its `/api/v1`
    /// with the token `kairo login` stored, and never open the database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub remotes: BTreeMap<String, RemoteConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_remote: Option<String>,
    #[serde(default)]
    pub store: StoreConfig,
    /// The pipeline; parsed (with positions in errors) by `kairo-pipeline`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stages: Option<serde_json::Value>,
    /// Per registered model: promotion gates, approval, rollout limits.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<String, ModelPolicy>,
    /// Monitors: what to watch, in which windows, and the alert rules.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub monitors: BTreeMap<String, MonitorSpec>,
    /// The closed loop: triggers that retrain, judge, promote, roll out and verify a model.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub automations: BTreeMap<String, crate::automation::AutomationSpec>,
    /// How the delivery KPIs are cut (failure window, time zone, quality window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kpi: Option<crate::kpi::KpiSpec>,
    /// The team's baseline for the ROI; without it `kairo kpi` reports time figures only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<crate::kpi::ValueSpec>,
    /// How the team server knows people besides its own users: an OpenID Connect provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,
    /// A Ray cluster that runs stages with `executor: ray` (or every stage, `default: true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ray: Option<RaySpec>,
}

/// `ray:` in kairo.yaml: the cluster's Jobs API (its dashboard), how to authenticate, and
/// whether stages run there unless they say `executor: local`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaySpec {
    /// `http://head:8265`; `KAIRO_RAY_ADDRESS` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The environment variable holding the cluster's token (`RAY_AUTH_MODE=token`); without
    /// it, `KAIRO_RAY_TOKEN` (when set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// Run every stage on Ray unless it says `executor: local`.
    #[serde(default)]
    pub default: bool,
    /// The remote (of `remotes:`) that carries inputs to the job and outputs back (default:
    /// `default_remote`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
}

/// `auth:` in kairo.yaml.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<OidcSpec>,
}

/// A company identity provider: browsers log in with authorization code + PKCE
/// (`/auth/login`), API clients send its JWT access tokens as `Authorization: Bearer`, and its
/// groups map to Kairo roles.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSpec {
    /// The issuer URL; its `/.well-known/openid-configuration` is read at startup.
    pub issuer: String,
    /// The client Kairo logs browsers in as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The environment variable holding that client's secret (default KAIRO_OIDC_CLIENT_SECRET).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_env: Option<String>,
    /// The `aud` bearer tokens must carry (default: client_id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// The claim naming the user (default `sub`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_claim: Option<String>,
    /// The claim listing the user's groups (default `groups`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_claim: Option<String>,
    /// Scopes asked for at login (default `openid email profile groups`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<String>,
    /// Where the provider sends browsers back (default: this server's `/auth/callback` as the
    /// browser reached it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_url: Option<String>,
    /// Group → roles (`ROLE` or `ROLE@SCOPE`): `ml-admins: [admin]`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub roles: BTreeMap<String, Vec<String>>,
}

/// A monitor: a deployment's prediction log in windows (or two files), checked against the
/// serving version's reference profile, with alert rules.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorSpec {
    /// The deployment (serving name) whose prediction log is watched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    /// Instead of a deployment: a reference file and a current file (CSV or Parquet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    /// Fixed time windows (`30m`, `1h`, `1d`), aligned to the epoch; default `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// Instead of time windows: windows of the last N predicted rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// Share of drifted features at which a window counts as drifted (default 0.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift_share: Option<f64>,
    /// How often `kairo server` evaluates the monitor (`5m`); never when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<AlertRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<Webhook>,
    /// Columns of the logged inputs to slice each window by (`[region, plan]`): drift and
    /// quality per slice, alertable as `METRIC[COLUMN=VALUE]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<String>,
    /// Rows a slice needs to be judged (default 100); smaller slices are reported, not judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_segment_rows: Option<u64>,
}

/// `when: drift_share > 0.3`, holding in `for` consecutive windows, raises an alert that
/// carries `action` (e.g. `retrain`) for the automation engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub when: String,
    #[serde(rename = "for", default = "default_one")]
    pub for_windows: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

/// Where alerts are POSTed as JSON, retried with exponential backoff.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    pub url: String,
    /// Attempts after the first (default 4: waits of 0.5, 1, 2 and 4 s).
    #[serde(default = "default_retries")]
    pub retries: u32,
}

fn default_one() -> u32 {
    1
}

fn default_retries() -> u32 {
    4
}

impl MonitorSpec {
    fn validate(&self) -> Result<(), String> {
        match (&self.deployment, &self.reference, &self.current) {
            (Some(_), None, None) | (None, Some(_), Some(_)) => {}
            _ => return Err("give either `deployment`, or both `reference` and `current`".into()),
        }
        if self.window.is_some() && self.rows.is_some() {
            return Err("give `window` or `rows`, not both".into());
        }
        if self.rows == Some(0) {
            return Err("`rows` must be at least 1".into());
        }
        for d in self.window.iter().chain(&self.schedule) {
            parse_duration_ms(d)?;
        }
        if let Some(s) = self.drift_share {
            if !(0.0..=1.0).contains(&s) {
                return Err(format!("drift_share {s}: must be between 0 and 1"));
            }
        }
        for rule in &self.alerts {
            crate::condition::Condition::parse(&rule.when).map_err(|e| format!("alert {e}"))?;
            if rule.for_windows == 0 {
                return Err(format!("alert `{}`: `for` must be at least 1", rule.when));
            }
        }
        Ok(())
    }
}

/// `90s`, `30m`, `1h`, `1d` (or plain seconds) in milliseconds.
pub fn parse_duration_ms(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: i64 = number.parse().map_err(|_| format!("`{text}`: expected a duration such as 30s, 15m, 1h or 1d"))?;
    let unit_ms = match unit.trim() {
        "" | "s" => 1_000,
        "ms" => 1,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => return Err(format!("`{text}`: unknown unit `{other}` (use ms, s, m, h or d)")),
    };
    if n <= 0 {
        return Err(format!("`{text}`: a duration must be positive"));
    }
    n.checked_mul(unit_ms).ok_or_else(|| format!("`{text}`: too long a duration"))
}

/// What a version must pass to take an alias, and how it rolls out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPolicy {
    /// Conditions `METRIC OP NUMBER` (`auc >= 0.80`, `size_mb <= 20`, `latency_p99_ms < 2`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<String>,
    /// The candidate must beat the version holding `champion` on the holdout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beat_champion: Option<BeatChampion>,
    /// The dataset gates and comparisons are evaluated on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holdout: Option<Holdout>,
    #[serde(default)]
    pub approval: Approval,
    /// Four eyes: whoever requested a promotion cannot approve it (default: on when approval
    /// is required; `false` for a team of one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub four_eyes: Option<bool>,
    /// Aliases besides `champion` that only a passed promotion may move (when the policy has
    /// gates, `beat_champion` or `approval: required`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// When a canary or shadow candidate is rolled back, and when a canary takes 100%.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<crate::serving::RolloutLimits>,
    /// What the prediction log may keep of each input field (`keep`, `drop`, `hash`, `mask`,
    /// `{bucket: [...]}`), applied before a row is queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy: Option<crate::privacy::PrivacySpec>,
    /// What the model card says of the model that data cannot: its use and limits, its
    /// owners; and the holdout columns it reports per slice and judges fairness by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<CardSpec>,
}

/// The `card:` section of a model in kairo.yaml (`kairo models card`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intended_use: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_of_scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limitations: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ethical_considerations: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owners: Vec<String>,
    /// Holdout columns to report the model's quality per group of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slices: Vec<String>,
    /// Holdout columns that are sensitive attributes: a fairness table for each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sensitive: Vec<String>,
}

/// "Beats the champion by at least `by` on `metric`, both evaluated on the holdout."
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeatChampion {
    pub metric: String,
    #[serde(default)]
    pub by: f64,
}

/// A CSV file with the label column; features are the other columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Holdout {
    pub path: String,
    pub target: String,
}

impl ModelPolicy {
    /// Holdout columns that describe rows rather than feed the model: the card's slices and
    /// sensitive attributes and the columns fairness gates name (`METRIC(COLUMN)`). Holdout
    /// evaluation leaves them out of the model's inputs (unless it takes them by name).
    pub fn attribute_columns(&self) -> Vec<String> {
        let mut out: Vec<String> =
            self.card.iter().flat_map(|c| c.slices.iter().chain(&c.sensitive)).cloned().collect();
        for gate in &self.gates {
            let Ok(condition) = crate::condition::Condition::parse(gate) else { continue };
            let metric = condition.metric.as_str();
            if let Some(column) = metric.split_once('(').and_then(|(_, rest)| rest.strip_suffix(')')) {
                out.push(column.to_string());
            }
            // `accuracy[region=eu]`, `accuracy[region]`: a slicing column.
            if let Some((inside, _)) = metric.split_once('[').and_then(|(_, rest)| rest.split_once(']')) {
                out.push(inside.split_once('=').map_or(inside, |(c, _)| c).trim().to_string());
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Whether the policy guards anything: gates, a champion comparison or an approval.
    pub fn guards(&self) -> bool {
        !self.gates.is_empty() || self.beat_champion.is_some() || self.approval == Approval::Required
    }

    /// Whether `alias` moves only through a passed promotion under this policy.
    pub fn guards_alias(&self, alias: &str) -> bool {
        self.guards() && (alias == "champion" || self.aliases.iter().any(|a| a == alias))
    }
}

/// Whether passing the gates is enough, or a person must approve.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Approval {
    #[default]
    Auto,
    Required,
}

/// How the local object store writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Flush objects to disk before they become visible (safe against power loss). Default true.
    #[serde(default = "default_true")]
    pub fsync: bool,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig { fsync: true }
    }
}

fn default_true() -> bool {
    true
}

fn default_version() -> u32 {
    1
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{CONFIG_FILE}:{}: {}", position(.0), .0.message())]
    Syntax(#[from] crate::yaml::Error),
    #[error("{CONFIG_FILE}: version {0} is not supported (this kairo reads version 1)")]
    Version(u32),
    #[error("{CONFIG_FILE}: default_remote `{0}` is not defined under `remotes`")]
    UnknownDefaultRemote(String),
    #[error("{CONFIG_FILE}: monitors.{0}: {1}")]
    Monitor(String, String),
    #[error("{CONFIG_FILE}:{}{}", if .0.location.is_some() { "" } else { " " }, .0)]
    Automation(#[from] crate::automation::SpecError),
    /// `kpi:` or `value:`; the message names the key.
    #[error("{CONFIG_FILE}: {0}")]
    Kpi(String),
}

/// `LINE:COLUMN` of a YAML error (1:1 when the parser does not know).
fn position(e: &crate::yaml::Error) -> String {
    let (line, column) = e.location().unwrap_or((1, 1));
    format!("{line}:{column}")
}

impl Config {
    /// The KPI settings (`kpi:` checked at parse, so this holds for a parsed config).
    pub fn kpi_settings(&self) -> crate::kpi::KpiSettings {
        self.kpi.as_ref().and_then(|k| k.settings().ok()).unwrap_or_default()
    }

    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        if text.trim().is_empty() {
            return Ok(Config { version: 1, ..Config::default() });
        }
        let c: Config = crate::yaml::from_str(text)?;
        if c.version != 1 {
            return Err(ConfigError::Version(c.version));
        }
        if let Some(name) = &c.default_remote {
            if !c.remotes.contains_key(name) {
                return Err(ConfigError::UnknownDefaultRemote(name.clone()));
            }
        }
        for (name, m) in &c.monitors {
            m.validate().map_err(|e| ConfigError::Monitor(name.clone(), e))?;
        }
        crate::automation::validate_all(&c.automations, &c)?;
        if let Some(k) = &c.kpi {
            k.settings().map_err(ConfigError::Kpi)?;
        }
        if let Some(v) = &c.value {
            v.check().map_err(ConfigError::Kpi)?;
        }
        Ok(c)
    }

    /// The file `kairo init` writes.
    pub fn initial_text() -> &'static str {
        "# Kairo project configuration. See `kairo --help`.\n\
         version: 1\n\
         # Metadata database (default: SQLite in .kairo/kairo.db). KAIRO_DATABASE_URL overrides.\n\
         # database: postgres://user@localhost/kairo\n\
         # Where `kairo data push|pull` send and fetch objects.\n\
         # remotes:\n\
         #   origin:\n\
         #     url: s3://my-bucket/kairo\n\
         # default_remote: origin\n\
         # store:\n\
         #   fsync: true   # false: faster adds, but a power cut may damage objects written just before it\n\
         # Pipeline stages for `kairo run` (see README):\n\
         # stages:\n\
         #   train:\n\
         #     cmd: python train.py\n\
         #     deps: [train.py, data/train.csv]\n\
         #     params: [train.lr]\n\
         #     outs: [model.onnx]\n\
         #     metrics: [metrics.json]\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_initial_and_remotes() {
        let c = Config::parse(Config::initial_text()).unwrap();
        assert_eq!(c.version, 1);
        let c = Config::parse("version: 1\nremotes:\n  origin:\n    url: s3://b/p\ndefault_remote: origin\n").unwrap();
        assert_eq!(c.remotes["origin"].url, "s3://b/p");
    }

    #[test]
    fn errors_name_the_place() {
        let err = Config::parse("version: 1\nremotez: {}\n").unwrap_err().to_string();
        assert!(err.contains("remotez") && err.starts_with("kairo.yaml:2:"), "{err}");
        let err = Config::parse("default_remote: nope\n").unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
    }
}
