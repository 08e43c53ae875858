//! The closed loop: automations from `kairo.yaml` turn triggers into incidents, and incidents
//! walk from the trigger to a resolved (or refused) change without a person running commands:
//!
//! ```text
//! triggered ─ export labelled production rows → dataset version
//! retraining ─ pipeline stages (run cache) → run
//! registering ─ register the artifact (validated, profiled) → challenger version
//! awaiting_labels ─ until min_labels labelled rows arrived after the trigger (or timeout)
//! evaluating ─ challenger vs champion on the same newest rows: paired test + slices
//! awaiting_approval ─ the model's gates and approval policy (kairo models promote --approve)
//! rolling_out ─ canary under the rollout guard of `kairo serve` → 100%
//! verifying ─ the monitor quiet for N windows → resolved
//! ```
//!
//! Final states: `resolved`, `not_better`, `rejected`, `rolled_back`, `failed` (with the
//! step and the reason). State lives in the metadata store; each transition is a
//! compare-and-set with its event ([`kairo_store::incidents`]). Each step is safe to run again
//! after a crash: the export writes the same rows, the run cache skips finished stages, the
//! version is found by its artifact hash, the promotion by (version, alias), the deployment by
//! what it serves. A process advances incidents only while it holds the project's loop lock,
//! so `kairo server` and `kairo automations tick` never run a step twice at once.

pub mod describe;
pub mod judge;
pub mod plan;
mod steps;
pub mod triggers;

use std::path::PathBuf;

use kairo_core::automation::{AutomationSpec, IncidentState};
use kairo_data::Project;
use kairo_store::incidents::Incident;
use kairo_store::Metadata;
use serde_json::{json, Value};

/// Why the loop could not do something. An incident's own failures (a stage that fails, a
/// gate) are not errors: they end the incident in `failed` with the step and reason.
#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    #[error(transparent)]
    Store(#[from] kairo_store::StoreError),
    #[error(transparent)]
    Data(#[from] kairo_data::DataError),
    #[error(transparent)]
    Registry(#[from] kairo_registry::RegistryError),
    #[error(transparent)]
    Watch(#[from] kairo_watch::WatchError),
    #[error("no automation `{0}` in kairo.yaml{1}")]
    UnknownAutomation(String, String),
    /// The challenger could not be judged on these rows (the incident fails at evaluate).
    #[error(transparent)]
    Judge(#[from] judge::JudgeError),
    #[error("the loop lock {path}: {error}")]
    Lock { path: PathBuf, error: String },
}

pub type Result<T, E = LoopError> = std::result::Result<T, E>;

/// Who the loop acts as in events, runs and promotions.
pub fn actor(automation: &str) -> String {
    kairo_core::actor::automation(automation)
}

/// What one tick did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct TickReport {
    /// Triggers taken: (automation, trigger key, outcome).
    pub triggers: Vec<triggers::Taken>,
    /// Incidents advanced: (id, from, to).
    pub transitions: Vec<Transition>,
    /// Incidents waiting on something outside the loop (labels, approval, canary, windows).
    pub waiting: Vec<Waiting>,
    /// Set when another process holds the loop lock: nothing was advanced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub busy: Option<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Transition {
    pub incident: i64,
    pub automation: String,
    pub from: IncidentState,
    pub to: IncidentState,
    pub note: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Waiting {
    pub incident: i64,
    pub state: IncidentState,
    pub on: String,
}

/// The project's loop lock: held while incidents advance; released by the kernel if the
/// process dies, so a restarted process resumes at once.
pub struct LoopLock {
    _file: std::fs::File,
}

impl LoopLock {
    /// Take the lock, or `None` when another process holds it.
    pub fn try_take(project: &Project) -> Result<Option<LoopLock>> {
        let path = project.root().join(".kairo").join("loop.lock");
        let lock_err = |e: std::io::Error| LoopError::Lock { path: path.clone(), error: e.to_string() };
        let file =
            std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(lock_err)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(LoopLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(lock_err(e)),
        }
    }
}

/// One pass: take new triggers (alerts, cron firings, dataset versions), then advance every
/// open incident as far as it can go now.
pub async fn tick(project: &Project, md: &Metadata) -> Result<TickReport> {
    tick_at(project, md, kairo_core::time::now_millis()).await
}

/// A tick that takes schedules as of `now_ms` (a backfill, or a test of a weekly cron);
/// everything else happens now.
pub async fn tick_at(project: &Project, md: &Metadata, now_ms: i64) -> Result<TickReport> {
    let mut report = TickReport::default();
    let Some(_lock) = LoopLock::try_take(project)? else {
        report.busy = Some("another kairo process is advancing incidents (the loop lock is held)".into());
        return Ok(report);
    };
    let config = project.current_config()?;
    report.triggers = triggers::collect(md, &config, now_ms).await?;
    for inc in md.incidents(true, 1000).await? {
        let Some(spec) = config.automations.get(&inc.automation) else {
            let mut waiting_on = format!("automation `{}` is no longer in kairo.yaml", inc.automation);
            if !inc.state.is_final() {
                let closed = md
                    .advance_incident(
                        inc.id,
                        inc.generation,
                        IncidentState::Failed,
                        &json!({"failed": {"step": inc.state, "reason": waiting_on}}),
                        "kairo-loop",
                    )
                    .await?;
                report.transitions.push(Transition {
                    incident: inc.id,
                    automation: inc.automation.clone(),
                    from: inc.state,
                    to: closed.state,
                    note: std::mem::take(&mut waiting_on),
                });
            }
            continue;
        };
        advance(project, md, spec, inc, &mut report).await?;
    }
    Ok(report)
}

/// `kairo automations run NAME`: a manual trigger for one automation (it opens an incident,
/// joins the open one or is held back by the guard), then a tick.
pub async fn run_now(project: &Project, md: &Metadata, name: &str) -> Result<TickReport> {
    let config = project.current_config()?;
    let spec = automation(&config, name)?;
    let taken = trigger_now(md, name, spec, &Project::actor()).await?;
    let mut report = tick(project, md).await?;
    report.triggers.splice(0..0, taken);
    Ok(report)
}

/// A manual trigger by `by` (a person, or the server's authenticated user), without the tick
/// that advances it: `POST /api/v1/automations/{name}/run` leaves that to the server's loop.
pub async fn trigger_now(
    md: &Metadata,
    name: &str,
    spec: &AutomationSpec,
    by: &str,
) -> Result<Option<triggers::Taken>> {
    let now = kairo_core::time::now_millis();
    let found = triggers::Found {
        key: format!("manual:{now}"),
        payload: json!({"kind": "manual", "by": by, "at": kairo_core::time::millis_to_string(now)}),
    };
    triggers::offer(md, name, spec, found).await
}

/// Advance one incident until it waits or ends.
pub async fn advance(
    project: &Project,
    md: &Metadata,
    spec: &AutomationSpec,
    mut inc: Incident,
    report: &mut TickReport,
) -> Result<Incident> {
    // Every state either moves on or waits; the bound only guards against a bug looping.
    for _ in 0..32 {
        if inc.state.is_final() {
            break;
        }
        let step = steps::run(project, md, spec, &inc).await?;
        match step {
            steps::Step::Wait(on) => {
                report.waiting.push(Waiting { incident: inc.id, state: inc.state, on });
                break;
            }
            steps::Step::Note(patch) => {
                // New facts in the same state (e.g. label counts): recorded, then wait.
                let on = patch["waiting_on"].as_str().unwrap_or("").to_string();
                inc = md.advance_incident(inc.id, inc.generation, inc.state, &patch, &actor(&inc.automation)).await?;
                report.waiting.push(Waiting { incident: inc.id, state: inc.state, on });
                break;
            }
            steps::Step::Go(to, patch, note) => {
                let from = inc.state;
                inc = md.advance_incident(inc.id, inc.generation, to, &patch, &actor(&inc.automation)).await?;
                tracing::info!(incident = inc.id, automation = %inc.automation, from = %from, to = %to, "{note}");
                report.transitions.push(Transition {
                    incident: inc.id,
                    automation: inc.automation.clone(),
                    from,
                    to,
                    note: note.clone(),
                });
                notify(md, spec, &inc, from, &note).await?;
            }
        }
    }
    Ok(inc)
}

/// POST a state change to the automation's webhook (retried like a monitor's alerts); a
/// delivery that fails for good is recorded as an event, and the loop goes on.
async fn notify(md: &Metadata, spec: &AutomationSpec, inc: &Incident, from: IncidentState, note: &str) -> Result<()> {
    let Some(hook) = &spec.webhook else { return Ok(()) };
    let needs_human = matches!(
        inc.state,
        IncidentState::AwaitingApproval | IncidentState::NotBetter | IncidentState::Failed | IncidentState::RolledBack
    );
    let body = json!({
        "event": kairo_core::EventKind::IncidentAdvanced.as_str(),
        "incident": inc.id, "automation": inc.automation, "model": inc.model,
        "from": from, "to": inc.state, "note": note, "needs_human": needs_human,
    });
    if let Err(e) = kairo_watch::raise::post_with_retry(&hook.url, &body, hook.retries).await {
        let failed = json!({"incident": inc.id, "url": hook.url, "error": e.to_string()});
        md.record_event("kairo-loop", kairo_core::EventKind::WebhookFailed, &format!("incident:{}", inc.id), &failed)
            .await?;
    }
    Ok(())
}

/// A test-only crash switch: `KAIRO_LOOP_CRASH_AFTER=register` aborts the process right after
/// that step's side effect and before its state is recorded, the worst moment for a `kill -9`.
pub(crate) fn crash_point(step: &str) {
    if std::env::var("KAIRO_LOOP_CRASH_AFTER").is_ok_and(|s| s == step) {
        eprintln!("kairo-loop: KAIRO_LOOP_CRASH_AFTER={step}: aborting");
        std::process::abort();
    }
}

/// The automation named `name`, or an error listing those there are.
pub fn automation<'a>(config: &'a kairo_core::config::Config, name: &str) -> Result<&'a AutomationSpec> {
    config.automations.get(name).ok_or_else(|| {
        let known: Vec<&str> = config.automations.keys().map(String::as_str).collect();
        LoopError::UnknownAutomation(
            name.to_string(),
            if known.is_empty() {
                " (there are none: add `automations:`)".into()
            } else {
                format!(" (automations: {})", known.join(", "))
            },
        )
    })
}

/// A value's text for a human line.
pub(crate) fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `kairo server`'s loop: a tick every `every` (kairo.yaml is re-read each time, so an
/// automation added while the server runs is picked up). Errors are logged and the next tick
/// tries again. The caller aborts the task when it stops.
pub fn start(project: &Project, every: std::time::Duration) -> tokio::task::JoinHandle<()> {
    let project = project.clone();
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let md = match project.metadata().await {
                Ok(md) => md,
                Err(e) => {
                    tracing::error!(error = %e, "the loop cannot open the metadata store");
                    continue;
                }
            };
            match tick(&project, &md).await {
                Ok(r) => {
                    for w in &r.waiting {
                        tracing::debug!(incident = w.incident, state = %w.state, "waiting for {}", w.on);
                    }
                }
                Err(e) => tracing::error!(error = %e, "loop tick failed"),
            }
            md.close().await;
        }
    })
}
