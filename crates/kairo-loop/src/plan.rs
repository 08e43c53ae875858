//! `kairo automations run NAME --dry-run`: what a trigger would set in motion now, and why,
//! with nothing changed.

use kairo_core::automation::{AutomationSpec, EvalData};
use kairo_core::config::parse_duration_ms;
use kairo_core::time;
use kairo_data::Project;
use kairo_pipeline::runner::{Action, Console, Interrupt, RunOptions, Runner};
use kairo_store::Metadata;
use serde_json::{json, Value};

use crate::Result;

struct Quiet;
impl Console for Quiet {
    fn note(&self, _: &str, _: &str) {}
    fn line(&self, _: &str, _: &str) {}
}

/// One line per step: `(step, what would happen)`.
pub async fn plan(
    project: &Project,
    md: &Metadata,
    name: &str,
    spec: &AutomationSpec,
) -> Result<Vec<(String, String)>> {
    let model = &spec.model.value;
    let now = time::now_millis();
    let mut out: Vec<(String, String)> = Vec::new();
    let open = md.incidents(true, 1000).await?.into_iter().find(|i| &i.model == model);
    let cooldown = spec.guard.cooldown.as_deref().and_then(|c| parse_duration_ms(c).ok());
    let trigger = if let Some(i) = &open {
        format!("would join the open incident {} of {model} (now {})", i.id, i.state)
    } else if let Some(reason) = md.trigger_guard(name, cooldown, spec.guard.max_per_day).await? {
        format!("held back by the guard: {reason}")
    } else {
        format!("would open an incident for {model}")
    };
    out.push(("trigger".into(), trigger));
    if let Some(e) = &spec.retrain.export {
        let from = e.since.as_deref().and_then(|s| parse_duration_ms(s).ok()).map(|d| now - d).unwrap_or(0);
        let objects = project.objects()?;
        let rows = kairo_watch::labelled::rows(md, &objects, model, from, now, true).await?;
        out.push((
            "export".into(),
            format!(
                "would write {} labelled production rows (predicted since {}) to {} and record it as a dataset version",
                rows.len(),
                if from == 0 { "the first".into() } else { time::millis_to_string(from) },
                e.to
            ),
        ));
    }
    let opts = RunOptions {
        targets: spec.retrain.stages.iter().map(|s| s.value.clone()).collect(),
        force: false,
        dry_run: true,
        jobs: 1,
        trigger: "manual".into(),
        no_wait: false,
        actor: None,
    };
    let owned = project.clone();
    let handle = tokio::runtime::Handle::current();
    let stages = tokio::task::spawn_blocking(move || {
        let interrupt = Interrupt::default();
        kairo_pipeline::load(&owned).and_then(|p| Runner::new(&owned, &p, opts, handle, &interrupt, &Quiet)?.run())
    })
    .await;
    let retrain = match stages {
        Ok(Ok(outcomes)) => outcomes
            .iter()
            .map(|o| match &o.action {
                Action::UpToDate => format!("{}: up to date (the run cache answers)", o.stage),
                Action::WouldRun => format!("{}: would run ({})", o.stage, o.reasons.join("; ")),
                other => format!("{}: {other:?}", o.stage),
            })
            .collect::<Vec<_>>()
            .join("; "),
        Ok(Err(e)) => format!("the pipeline does not load: {e}"),
        Err(e) => format!("the runner stopped: {e}"),
    };
    let first = match &spec.retrain.export {
        Some(e) => format!(" (as they stand now; the export comes first, so stages that read {} run)", e.to),
        None => String::new(),
    };
    out.push(("retrain".into(), format!("{retrain}{first}; then register {}", spec.retrain.artifact.value)));
    let ev = &spec.evaluate;
    let champion = md.alias_version(model, &ev.against).await?;
    let policy = kairo_registry::aliases::policy(project, model)?;
    let sources = ev.sources(policy.holdout.is_some());
    let data: Vec<&str> = sources
        .iter()
        .map(|d| match d {
            EvalData::Holdout => "the holdout",
            EvalData::RecentLabels => "production rows labelled after the trigger",
        })
        .collect();
    out.push((
        "evaluate".into(),
        match champion {
            Some(v) => format!(
                "{} vs @{} (version {v}) on {}{}; promoted only if better with {}% confidence",
                ev.metric,
                ev.against,
                data.join(" and "),
                if ev.min_labels > 0 && sources.contains(&EvalData::RecentLabels) {
                    format!(" (waits for {} labels)", ev.min_labels)
                } else {
                    String::new()
                },
                (ev.confidence * 100.0).round()
            ),
            None => format!("{model} has no @{}: nothing to beat", ev.against),
        },
    ));
    let gates =
        if policy.gates.is_empty() { "no gates".to_string() } else { format!("gates {}", policy.gates.join(", ")) };
    let approval = match policy.approval {
        kairo_core::config::Approval::Required => "then waits for an approval",
        kairo_core::config::Approval::Auto => "approval automatic",
    };
    out.push(("promote".into(), format!("to @{}: {gates}; {approval}", spec.promote.to)));
    let rollout = match md.deployment(model).await? {
        None => "no deployment yet: the first goes direct".to_string(),
        Some(d) => format!(
            "{} at {}% (serving version {} now)",
            spec.rollout.strategy.as_str(),
            spec.rollout.weight,
            d.stable_version
        ),
    };
    out.push(("rollout".into(), rollout));
    out.push((
        "verify".into(),
        match &spec.verify {
            Some(v) => format!("resolved when monitor {} is quiet for {} window(s)", v.monitor.value, v.quiet_windows),
            None => "resolved when the rollout completes".into(),
        },
    ));
    Ok(out)
}

/// The plan as JSON.
pub fn to_json(name: &str, steps: &[(String, String)]) -> Value {
    json!({"automation": name, "dry_run": true, "steps": steps.iter().map(|(s, w)| json!({"step": s, "would": w})).collect::<Vec<_>>()})
}
