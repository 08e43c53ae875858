//! One step per state. Each looks at what the world already holds before acting, so a step
//! that ran and then lost its process (before its state was recorded) finds its own result
//! and does not act twice.

use std::sync::Mutex;

use kairo_core::automation::{AutomationSpec, EvalData, IncidentState as S};
use kairo_core::config::parse_duration_ms;
use kairo_core::serving::{PromotionStatus, Strategy};
use kairo_core::{time, Hash};
use kairo_data::Project;
use kairo_pipeline::runner::{Action, Console, Interrupt, RunOptions, Runner};
use kairo_registry::rollout::{self, DeployRequest, LimitOverrides};
use kairo_registry::{PromoteRequest, RegisterRequest, Source};
use kairo_store::incidents::Incident;
use kairo_store::Metadata;
use serde_json::{json, Value};

use crate::{actor, crash_point, judge, Result};

/// What a step decided.
pub enum Step {
    /// Move to a state, recording these facts, with a line for people.
    Go(S, Value, String),
    /// Record new facts in the same state and wait (`waiting_on` says for what).
    Note(Value),
    /// Nothing to do until something outside the loop happens.
    Wait(String),
}

fn failed(step: &str, reason: impl Into<String>) -> Step {
    let reason = reason.into();
    Step::Go(S::Failed, json!({"failed": {"step": step, "reason": reason}}), format!("{step} failed: {reason}"))
}

/// When the incident's first trigger arrived.
fn trigger_ms(inc: &Incident) -> i64 {
    inc.detail["triggers"][0]["at_ms"].as_i64().unwrap_or(inc.opened_ms)
}

pub async fn run(project: &Project, md: &Metadata, spec: &AutomationSpec, inc: &Incident) -> Result<Step> {
    match inc.state {
        S::Triggered => export(project, md, spec, inc).await,
        S::Retraining => retrain(project, spec, inc).await,
        S::Registering => register(project, md, spec, inc).await,
        S::AwaitingLabels | S::Evaluating => evaluate(project, md, spec, inc).await,
        S::AwaitingApproval => approval(md, spec, inc).await,
        S::RollingOut => roll_out(project, md, spec, inc).await,
        S::Verifying => verify(project, md, spec, inc).await,
        S::Resolved | S::NotBetter | S::Rejected | S::RolledBack | S::Failed => {
            Ok(Step::Wait("the incident is closed".into()))
        }
    }
}

/// Labelled production rows predicted before the trigger become the export file, recorded as
/// a dataset version (the judged rows come after the trigger: the two never overlap).
async fn export(project: &Project, md: &Metadata, spec: &AutomationSpec, inc: &Incident) -> Result<Step> {
    let Some(e) = &spec.retrain.export else {
        return Ok(Step::Go(S::Retraining, json!({}), "nothing to export; retraining".into()));
    };
    let to_ms = trigger_ms(inc);
    let from_ms = match &e.since {
        Some(s) => to_ms - parse_duration_ms(s).unwrap_or(0),
        None => 0,
    };
    let objects = project.objects()?;
    let label = spec.register.target.clone().unwrap_or_else(|| "label".into());
    let path = project.abs(&e.to);
    let model = &spec.model.value;
    let n = kairo_watch::labelled::export(md, &objects, model, from_ms, to_ms, true, &label, &path).await?.rows;
    if n == 0 {
        return Ok(failed(
            "export",
            format!(
                "no labelled production rows of {model} between {} and {} (send labels to POST /v1/feedback)",
                time::millis_to_string(from_ms),
                time::millis_to_string(to_ms)
            ),
        ));
    }
    let added = kairo_data::add::add(project, &e.to, false, &kairo_data::NoProgress).await?;
    crash_point("export");
    let facts = json!({"export": {
        "path": e.to, "rows": n, "hash": added.hash.to_hex(), "new_version": added.changed,
        "from": time::millis_to_string(from_ms), "to": time::millis_to_string(to_ms),
        "from_ms": from_ms, "to_ms": to_ms, "label_column": label,
    }});
    Ok(Step::Go(
        S::Retraining,
        facts,
        format!("exported {n} labelled production rows to {} ({})", e.to, added.hash.short()),
    ))
}

/// Collects stage output for the incident (the last lines are kept on failure).
#[derive(Default)]
struct Collect(Mutex<Vec<String>>);

impl Console for Collect {
    fn note(&self, stage: &str, message: &str) {
        self.line(stage, message);
    }
    fn line(&self, stage: &str, line: &str) {
        let mut lines = self.0.lock().unwrap_or_else(|p| p.into_inner());
        lines.push(format!("{stage}: {line}"));
        let excess = lines.len().saturating_sub(40);
        lines.drain(..excess);
    }
}

/// Bring the stages up to date (the run cache makes a rerun after a crash free), then find
/// the run that produced the artifact.
async fn retrain(project: &Project, spec: &AutomationSpec, inc: &Incident) -> Result<Step> {
    let trigger = match inc.detail["triggers"][0]["what"]["kind"].as_str() {
        Some("alert") => "alert",
        Some("schedule") => "schedule",
        _ => "manual",
    };
    let opts = RunOptions {
        targets: spec.retrain.stages.iter().map(|s| s.value.clone()).collect(),
        force: false,
        dry_run: false,
        jobs: 1,
        trigger: trigger.into(),
        no_wait: false,
        actor: Some(actor(&inc.automation)),
    };
    let owned = project.clone();
    let handle = tokio::runtime::Handle::current();
    let outcome = tokio::task::spawn_blocking(move || {
        let console = Collect::default();
        let interrupt = Interrupt::default();
        let result = kairo_pipeline::load(&owned)
            .and_then(|pipeline| Runner::new(&owned, &pipeline, opts, handle, &interrupt, &console)?.run());
        let lines = console.0.into_inner().unwrap_or_else(|p| p.into_inner());
        (result, lines)
    })
    .await;
    let (result, lines) = match outcome {
        Ok(r) => r,
        Err(e) => return Ok(failed("retrain", format!("the runner stopped: {e}"))),
    };
    let outcomes = match result {
        Ok(o) => o,
        Err(e) => return Ok(failed("retrain", e.to_string())),
    };
    if let Some(bad) = outcomes.iter().find(|o| o.failed()) {
        let why = bad.message.clone().unwrap_or_else(|| format!("{:?}", bad.action));
        let mut step = failed("retrain", format!("stage `{}`: {why}", bad.stage));
        if let Step::Go(_, facts, _) = &mut step {
            facts["retrain"] = json!({"output_tail": lines});
        }
        return Ok(step);
    }
    let artifact = &spec.retrain.artifact.value;
    let bytes = match std::fs::read(project.abs(artifact)) {
        Ok(b) => b,
        Err(e) => return Ok(failed("retrain", format!("{artifact}: {e} (the stages did not write it)"))),
    };
    let hash = Hash::of(&bytes);
    let md = project.metadata().await?;
    let run = md.runs_producing(&hash).await?.pop();
    crash_point("retrain");
    let stages: Vec<Value> = outcomes
        .iter()
        .map(|o| json!({"stage": o.stage, "action": action_text(&o.action), "run_id": o.run_id}))
        .collect();
    let run_id = run.as_ref().map(|r| r.id.clone());
    let facts = json!({"retrain": {
        "stages": stages, "artifact": artifact, "artifact_hash": hash.to_hex(), "run_id": run_id,
    }});
    let did: Vec<String> = outcomes.iter().map(|o| format!("{} {}", o.stage, action_text(&o.action))).collect();
    let note = match &run_id {
        Some(id) => format!("{}; {artifact} ({}) from run {}", did.join(", "), hash.short(), &id[..id.len().min(12)]),
        None => format!("{}; {artifact} ({})", did.join(", "), hash.short()),
    };
    Ok(Step::Go(S::Registering, facts, note))
}

fn action_text(a: &Action) -> String {
    match a {
        Action::UpToDate => "up to date".into(),
        Action::WouldRun => "would run".into(),
        Action::Restored { from_run } => format!("restored from run {from_run}"),
        Action::Ran { status, .. } => format!("ran: {}", status.as_str()),
        Action::Skipped { because } => format!("skipped: {because}"),
        Action::Error => "error".into(),
    }
}

/// Register the artifact, unless a version of the model already holds exactly these bytes
/// (registered by this step before a crash, or the same model trained before).
async fn register(project: &Project, md: &Metadata, spec: &AutomationSpec, inc: &Incident) -> Result<Step> {
    let name = &spec.model.value;
    let hash = inc.detail["retrain"]["artifact_hash"].as_str().unwrap_or("");
    if md.registered_model(name).await.is_ok() {
        for v in md.model_versions(Some(name)).await?.into_iter().rev() {
            if let Some(a) = md.version_artifact(name, v.version).await? {
                if a.object.to_hex() == hash {
                    let facts = json!({"challenger": {"version": v.version, "object": hash, "registered": false}});
                    return Ok(Step::Go(
                        S::Evaluating,
                        facts,
                        format!("version {} of {name} already holds this artifact", v.version),
                    ));
                }
            }
        }
    }
    let run_id = inc.detail["retrain"]["run_id"].as_str().map(String::from);
    let artifact = spec.retrain.artifact.value.clone();
    let source = match &run_id {
        Some(run) => Source::RunArtifact { run: run.clone(), path: artifact.clone() },
        None => Source::File(project.abs(&artifact)),
    };
    let req = RegisterRequest {
        name: name.clone(),
        source,
        description: format!("retrained by automation {} (incident {})", inc.automation, inc.id),
        metrics: Vec::new(),
        profile_data: spec.register.profile_data.as_ref().map(|p| project.abs(p)),
        target: spec.register.target.clone(),
        kinds: Default::default(),
        actor: actor(&inc.automation),
        strict: false,
    };
    let registered = match kairo_registry::register(project, md, &req).await {
        Ok(r) => r,
        Err(e) => return Ok(failed("register", e.to_string())),
    };
    crash_point("register");
    let v = registered.version.version;
    let facts = json!({"challenger": {"version": v, "object": hash, "registered": true, "notes": registered.notes}});
    Ok(Step::Go(S::Evaluating, facts, format!("registered {name} version {v}")))
}

/// Wait for labels, then judge the challenger against the champion on the same rows.
async fn evaluate(project: &Project, md: &Metadata, spec: &AutomationSpec, inc: &Incident) -> Result<Step> {
    let name = &spec.model.value;
    let ev = &spec.evaluate;
    let challenger = inc.detail["challenger"]["version"].as_i64().unwrap_or(0);
    if inc.state == S::Evaluating && inc.detail["evaluation"].is_object() {
        // Judged better and recorded: promote (a promotion made before a crash is reused).
        return promote(project, md, spec, inc, challenger, json!({})).await;
    }
    let champion = md.alias_version(name, &ev.against).await?;
    let Some(champion) = champion else {
        // Nothing to beat: the model's first champion.
        let facts = json!({"evaluation": {"skipped": format!("{name} has no @{}: nothing to beat", ev.against)}});
        return promote(project, md, spec, inc, challenger, facts).await;
    };
    if champion == challenger {
        let facts = json!({"evaluation": {"skipped": format!("retraining produced version {challenger}, the champion itself (the same bytes)")}});
        return Ok(Step::Go(
            S::NotBetter,
            facts,
            format!("not promoted: the retrained model is version {challenger}, already @{}", ev.against),
        ));
    }
    let since = trigger_ms(inc);
    let has_holdout = kairo_registry::aliases::policy(project, name)?.holdout.is_some();
    let data = ev.sources(has_holdout);
    let mut use_recent = data.contains(&EvalData::RecentLabels);
    let mut fallback = None;
    if use_recent && ev.min_labels > 0 {
        let objects = project.objects()?;
        let have = kairo_watch::labelled::count_labelled(md, &objects, name, since).await? as u64;
        if have < ev.min_labels {
            let timeout = ev.labels_timeout.as_deref().and_then(|t| parse_duration_ms(t).ok()).unwrap_or(86_400_000);
            let waited = time::now_millis() - since;
            if waited < timeout {
                let on = format!("{have} of {} labelled production rows since the trigger", ev.min_labels);
                if inc.state == S::AwaitingLabels && inc.detail["labels"]["have"].as_u64() == Some(have) {
                    return Ok(Step::Wait(on));
                }
                let facts = json!({"labels": {"have": have, "need": ev.min_labels, "since": time::millis_to_string(since)}, "waiting_on": on});
                if inc.state == S::AwaitingLabels {
                    return Ok(Step::Note(facts));
                }
                return Ok(Step::Go(S::AwaitingLabels, facts, on));
            }
            use_recent = false;
            fallback = Some(format!(
                "only {have} of {} labels arrived within {}: judged on the holdout alone",
                ev.min_labels,
                ev.labels_timeout.as_deref().unwrap_or("1d")
            ));
            if !data.contains(&EvalData::Holdout) {
                return Ok(failed("evaluate", format!("{}; no holdout to fall back on", fallback.unwrap_or_default())));
            }
        }
    }
    let q = judge::Question {
        model: name,
        champion,
        challenger,
        holdout: data.contains(&EvalData::Holdout),
        recent_since_ms: use_recent.then_some(since),
    };
    let verdict = match judge::judge(project, md, spec, &q).await {
        Ok(v) => v,
        Err(crate::LoopError::Judge(e)) => return Ok(failed("evaluate", e.to_string())),
        Err(e) => return Err(e),
    };
    let mut evaluation = verdict.evidence.clone();
    if let Some(f) = &fallback {
        evaluation["fallback"] = json!(f);
    }
    let facts = json!({"evaluation": evaluation, "waiting_on": null});
    if !verdict.better {
        return Ok(Step::Go(S::NotBetter, facts, format!("not promoted: {}", verdict.summary)));
    }
    // Recorded before anything moves, so a crash while promoting resumes with the evidence.
    Ok(Step::Go(S::Evaluating, facts, format!("better: {}", verdict.summary)))
}

/// Ask the registry to promote: gates, then approval. An earlier promotion of the same
/// version to the same alias (made before a crash) is reused.
async fn promote(
    project: &Project,
    md: &Metadata,
    spec: &AutomationSpec,
    inc: &Incident,
    version: i64,
    mut facts: Value,
) -> Result<Step> {
    let name = &spec.model.value;
    let alias = &spec.promote.to;
    let previous = md.alias_version(name, alias).await?;
    let earlier = md.promotions(name).await?.into_iter().rev().find(|p| p.version == version && p.alias == *alias);
    let promotion = match earlier {
        Some(p) if p.created_ms >= inc.opened_ms => p,
        _ => {
            let req = PromoteRequest {
                name: name.clone(),
                version,
                alias: alias.clone(),
                approve: false,
                reject: false,
                reason: Some(format!("automation {} (incident {})", inc.automation, inc.id)),
                actor: actor(&inc.automation),
            };
            let out = kairo_registry::promote(project, md, &req).await?;
            crash_point("promote");
            out.promotion
        }
    };
    facts["promotion"] = json!({"id": promotion.id, "status": promotion.status.as_str(), "gates": promotion.gates, "alias": alias, "previous": previous});
    Ok(match promotion.status {
        PromotionStatus::Promoted => Step::Go(S::RollingOut, facts, format!("version {version} took @{alias}")),
        PromotionStatus::Pending => Step::Go(
            S::AwaitingApproval,
            facts,
            format!("approval needed: kairo models promote {name} {version} --approve"),
        ),
        PromotionStatus::Failed => {
            let failing: Vec<String> = promotion
                .gates
                .as_array()
                .into_iter()
                .flatten()
                .filter(|g| g["passed"] == false)
                .map(|g| format!("{} ({})", crate::text(&g["gate"]), crate::text(&g["detail"])))
                .collect();
            facts["failed"] = json!({"step": "promote", "reason": format!("gates failed: {}", failing.join("; "))});
            Step::Go(S::Failed, facts, format!("gates failed: {}", failing.join("; ")))
        }
        PromotionStatus::Rejected => Step::Go(S::Rejected, facts, "the promotion was rejected".into()),
    })
}

async fn approval(md: &Metadata, spec: &AutomationSpec, inc: &Incident) -> Result<Step> {
    let id = inc.detail["promotion"]["id"].as_str().unwrap_or("");
    let p = md.promotion(id).await?;
    let v = p.version;
    Ok(match p.status {
        PromotionStatus::Pending => {
            Step::Wait(format!("approval: kairo models promote {} {v} --approve (or --reject)", spec.model.value))
        }
        PromotionStatus::Promoted => Step::Go(
            S::RollingOut,
            json!({"promotion": {"id": p.id, "status": "promoted", "decided_by": p.decided_by, "alias": p.alias, "previous": inc.detail["promotion"]["previous"]}}),
            format!("approved by {}", p.decided_by.unwrap_or_default()),
        ),
        PromotionStatus::Rejected => Step::Go(
            S::Rejected,
            json!({"promotion": {"id": p.id, "status": "rejected", "decided_by": p.decided_by, "reason": p.reason}}),
            format!("rejected by {}", p.decided_by.unwrap_or_default()),
        ),
        PromotionStatus::Failed => Step::Go(
            S::Failed,
            json!({"failed": {"step": "approval", "reason": p.reason}}),
            "the gates no longer pass".into(),
        ),
    })
}

/// Start the rollout, then follow the deployment: the rollout guard of `kairo serve` takes the
/// canary to 100% or rolls it back. A rollback puts the alias back where it was.
async fn roll_out(project: &Project, md: &Metadata, spec: &AutomationSpec, inc: &Incident) -> Result<Step> {
    let name = &spec.model.value;
    let version = inc.detail["challenger"]["version"].as_i64().unwrap_or(0);
    let current = md.deployment(name).await?;
    let started = inc.detail["rollout"]["started_ms"].as_i64();
    if let Some(d) = &current {
        if d.stable_version == version && d.candidate_version.is_none() {
            // Completed when the deployment last changed (the guard took the canary to 100%).
            let facts = json!({"rollout": {"started_ms": started, "completed_ms": d.updated_ms, "completed": time::millis_to_string(d.updated_ms), "generation": d.generation, "strategy": inc.detail["rollout"]["strategy"]}});
            return Ok(Step::Go(S::Verifying, facts, format!("version {version} serves all traffic")));
        }
        if d.candidate_version == Some(version) {
            return Ok(Step::Wait(format!(
                "the rollout guard of kairo serve to judge the canary of version {version} ({}% of traffic)",
                d.weight
            )));
        }
        if started.is_some() {
            // We started it and it is neither stable nor candidate any more: rolled back.
            let previous =
                restore_alias(project, md, spec, inc, &format!("the canary of version {version} was rolled back"))
                    .await?;
            let alias = &spec.promote.to;
            let why = last_rollback_reason(md, name).await?;
            let facts = json!({"rollback": {"reason": why, "alias_restored_to": previous}});
            return Ok(Step::Go(S::RolledBack, facts, format!("rolled back: {why}; @{alias} back to {previous:?}")));
        }
    }
    let policy = kairo_registry::aliases::policy(project, name)?;
    let strategy = if current.is_none() { Strategy::Direct } else { spec.rollout.strategy };
    let limits = match rollout::limits(policy.rollout.as_ref(), &LimitOverrides::default()) {
        Ok(l) => l,
        Err(e) => return Ok(failed("rollout", e.to_string())),
    };
    let req = DeployRequest {
        name: name.clone(),
        version,
        strategy,
        weight: spec.rollout.weight,
        limits,
        force: false,
        reason: Some(format!("automation {} (incident {})", inc.automation, inc.id)),
    };
    let d = match rollout::deploy(project, md, &req, &actor(&inc.automation)).await {
        Ok(d) => d,
        Err(kairo_registry::RegistryError::Rollout(refusal)) => {
            let restored =
                restore_alias(project, md, spec, inc, &format!("the rollout was refused: {refusal}")).await?;
            let mut step = failed("rollout", format!("{refusal}; @{} back to {restored:?}", spec.promote.to));
            if let Step::Go(_, facts, _) = &mut step {
                facts["rollback"] = json!({"alias_restored_to": restored});
            }
            return Ok(step);
        }
        Err(e) => return Err(e.into()),
    };
    crash_point("rollout");
    let facts = json!({"rollout": {"started_ms": time::now_millis(), "strategy": strategy.as_str(), "weight": d.weight, "generation": d.generation}});
    let note = match strategy {
        Strategy::Canary => format!("canary: version {version} takes {}% of {name}'s traffic", d.weight),
        _ => format!("version {version} deployed directly"),
    };
    // Stay in rolling_out: the next look sees the deployment and moves on or waits.
    Ok(Step::Go(S::RollingOut, facts, note))
}

/// Put the promoted alias back where it was before this incident moved it.
async fn restore_alias(
    project: &Project,
    md: &Metadata,
    spec: &AutomationSpec,
    inc: &Incident,
    why: &str,
) -> Result<Option<i64>> {
    let name = &spec.model.value;
    let previous = inc.detail["promotion"]["previous"].as_i64();
    let policy = kairo_registry::aliases::policy(project, name)?;
    let reason = format!("incident {}: {why}", inc.id);
    kairo_registry::aliases::move_alias(
        md,
        &policy,
        &kairo_registry::aliases::AliasMove {
            name,
            alias: &spec.promote.to,
            version: previous,
            authority: kairo_registry::aliases::Authority::Forced,
            actor: &actor(&inc.automation),
            reason: &reason,
        },
    )
    .await?;
    Ok(previous)
}

async fn last_rollback_reason(md: &Metadata, name: &str) -> Result<String> {
    let events = md.events(Some(&format!("deployment:{name}")), 20).await?;
    Ok(events
        .iter()
        .rev()
        .find(|e| e.kind == kairo_core::EventKind::DeploymentRolledBack.as_str())
        .and_then(|e| e.payload["reason"].as_str().map(String::from))
        .unwrap_or_else(|| "the deployment no longer serves it".into()))
}

/// Resolved once the monitor has `quiet_windows` windows after the rollout, all quiet; an
/// alert in one of them fails the verification.
async fn verify(project: &Project, md: &Metadata, spec: &AutomationSpec, inc: &Incident) -> Result<Step> {
    let Some(v) = &spec.verify else {
        return Ok(Step::Go(S::Resolved, json!({}), "resolved (no verification configured)".into()));
    };
    let config = project.current_config()?;
    let Some(mspec) = config.monitors.get(&v.monitor.value) else {
        return Ok(failed("verify", format!("monitor `{}` is no longer in kairo.yaml", v.monitor.value)));
    };
    let after = inc.detail["rollout"]["completed_ms"].as_i64().unwrap_or(inc.updated_ms);
    let objects = project.objects()?;
    let deployment = mspec.deployment.as_deref().unwrap_or(&spec.model.value);
    let windowing = kairo_watch::Windowing::of(mspec)?;
    let want = v.quiet_windows as usize;
    let e = kairo_watch::evaluate(md, &objects, deployment, mspec, windowing, want + 4, time::now_millis()).await?;
    let after_windows: Vec<&kairo_watch::WindowResult> =
        e.windows.iter().filter(|w| w.window.start_ms >= after && w.sketch.rows > 0).collect();
    let alerting: Vec<_> = e.alerts.iter().filter(|a| a.evidence.iter().any(|(s, _, _)| *s >= after)).collect();
    if let Some(a) = alerting.first() {
        let facts = json!({"verify": {"alert": a.when, "windows": after_windows.len()}});
        return Ok(Step::Go(
            S::Failed,
            json!({"verify": facts["verify"], "failed": {"step": "verify", "reason": format!("the monitor still alerts: {}", a.when)}}),
            format!("verification failed: {} still holds", a.when),
        ));
    }
    if after_windows.len() < want {
        return Ok(Step::Wait(format!(
            "{} of {want} quiet windows of monitor {} since the rollout",
            after_windows.len(),
            v.monitor.value
        )));
    }
    let windows: Vec<Value> = after_windows
        .iter()
        .take(want)
        .map(|w| json!({"start": time::millis_to_string(w.window.start_ms), "end": time::millis_to_string(w.window.end_ms), "rows": w.sketch.rows}))
        .collect();
    Ok(Step::Go(
        S::Resolved,
        json!({"verify": {"monitor": v.monitor.value, "quiet_windows": windows}}),
        format!("resolved: monitor {} quiet for {want} window(s)", v.monitor.value),
    ))
}
