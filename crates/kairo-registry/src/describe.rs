//! The registry's documents: what `kairo models ls|show|register|promote --json`, `kairo deploy
//! --json` print and what `/api/v1` answers, built once here so that the CLI in either mode
//! (on the project, or as a client of `kairo server`) prints the same thing from the same
//! document.

use kairo_core::serving::{Deployment, Importance, ReferenceProfile};
use kairo_core::signature::{Signature, TensorSpec};
use kairo_core::EventKind;
use kairo_store::Metadata;
use serde_json::{json, Value};

use crate::{ModelRef, PromoteOutcome, Registered, Result};

/// One row per registered model: name, version count, latest, aliases (`alias→version`), the
/// version serving 100%.
pub async fn models(md: &Metadata) -> Result<Vec<Value>> {
    let mut rows = Vec::new();
    for m in md.registered_models().await? {
        let versions = md.model_versions(Some(&m.name)).await?;
        let aliases: Vec<String> =
            versions.iter().flat_map(|v| v.aliases.iter().map(move |a| format!("{a}→{}", v.version))).collect();
        let deployment = md.deployment(&m.name).await?;
        rows.push(json!({
            "name": m.name, "versions": versions.len(), "latest": versions.last().map(|v| v.version),
            "aliases": aliases, "serving": deployment.map(|d| d.stable_version),
        }));
    }
    Ok(rows)
}

/// A model (`NAME`: every version) or one version (`NAME:VERSION`, `NAME@ALIAS`): signature,
/// metrics, profile, importance, lineage, aliases and their history, promotions, deployment.
pub async fn model(md: &Metadata, target: &str) -> Result<Value> {
    let r = ModelRef::parse(target)?;
    let name = r.name().to_string();
    md.registered_model(&name).await?;
    let versions = match &r {
        ModelRef::Name(_) => md.model_versions(Some(&name)).await?,
        other => vec![md.model_version(&name, other.resolve(md).await?).await?],
    };
    let mut out = Vec::new();
    for v in &versions {
        let art = md.version_artifact(&name, v.version).await?;
        let run = match &v.run_id {
            Some(id) => md.run(id).await.ok(),
            None => None,
        };
        out.push(json!({
            "version": v.version, "source": v.source, "run_id": v.run_id, "created_by": v.user_id,
            "created": kairo_core::time::millis_to_string(v.creation_ms), "aliases": v.aliases,
            "description": v.description,
            "object": art.as_ref().map(|a| a.object.to_hex()), "size": art.as_ref().map(|a| a.size),
            "signature": art.as_ref().map(|a| signature(&a.signature)), "metrics": art.as_ref().map(|a| &a.metrics),
            "profile": art.as_ref().and_then(|a| a.profile.as_ref()).map(profile),
            "importance": art.as_ref().and_then(|a| a.importance.as_ref()).map(importance),
            "lineage": run.as_ref().map(|run| json!({
                "run": run.id, "stage": run.stage, "commit": run.git.commit, "dirty": run.git.dirty,
                "started": run.started_at, "environment_spec": run.env.spec,
                "data": run.deps.iter().map(|d| json!({"path": d.path, "version": d.hash.to_hex()})).collect::<Vec<_>>(),
                "params": run.params, "environment": run.env.hash.to_hex(),
            })),
        }));
    }
    let promotions: Vec<Value> = md
        .promotions(&name)
        .await?
        .into_iter()
        .map(|p| {
            json!({
                "id": p.id, "version": p.version, "alias": p.alias, "status": p.status.as_str(),
                "requested_by": p.requested_by, "decided_by": p.decided_by, "reason": p.reason,
                "gates": p.gates, "created": kairo_core::time::millis_to_string(p.created_ms),
            })
        })
        .collect();
    let history: Vec<Value> = md
        .events(Some(&format!("model:{name}")), 1000)
        .await?
        .into_iter()
        .filter(|e| e.kind == EventKind::AliasMoved)
        .map(|e| json!({"at": e.at, "actor": e.actor, "alias": e.payload["alias"], "from": e.payload["before"], "to": e.payload["after"], "reason": e.payload["reason"]}))
        .collect();
    let deployment = md.deployment(&name).await?.map(|d| {
        json!({"stable": d.stable_version, "candidate": d.candidate_version, "strategy": d.strategy.as_str(), "weight": d.weight})
    });
    Ok(
        json!({"name": name, "versions": out, "alias_history": history, "promotions": promotions, "deployment": deployment}),
    )
}

/// A model's deployment (`stable: null` when it has none), the versions that served 100%, and
/// its last 20 events (changes, rollbacks, versions that failed to load).
pub async fn deployment(md: &Metadata, name: &str) -> Result<Value> {
    md.registered_model(name).await?;
    let events: Vec<Value> = md
        .events(Some(&format!("deployment:{name}")), 20)
        .await?
        .into_iter()
        .map(|e| json!({"at": e.at, "actor": e.actor, "kind": e.kind, "reason": e.payload["reason"], "error": e.payload["error"]}))
        .collect();
    let Some(d) = md.deployment(name).await? else {
        return Ok(json!({"name": name, "stable": null, "events": events}));
    };
    let revisions = md.deployment_revisions(name).await?;
    Ok(json!({
        "name": d.name, "stable": d.stable_version, "candidate": d.candidate_version,
        "strategy": d.strategy.as_str(), "weight": d.weight, "generation": d.generation,
        "limits": d.limits, "revisions": revisions, "events": events,
    }))
}

/// A deployment just changed (by `deploy` or `rollback`).
pub fn deployed(d: &Deployment) -> Value {
    json!({
        "name": d.name, "stable": d.stable_version, "candidate": d.candidate_version,
        "strategy": d.strategy.as_str(), "weight": d.weight, "generation": d.generation, "limits": d.limits,
    })
}

/// A version just registered.
pub fn registered(r: &Registered) -> Value {
    json!({
        "name": r.version.name, "version": r.version.version, "source": r.version.source,
        "run_id": r.version.run_id, "object": r.artifact.object.to_hex(), "size": r.artifact.size,
        "signature": signature(&r.artifact.signature), "metrics": r.artifact.metrics,
        "profile": r.artifact.profile.is_some(), "lowered_ops": r.lowered_ops, "runtime": r.runtime,
        "notes": r.notes, "personal": r.personal,
    })
}

/// A promotion's outcome: its status (`promoted`, `failed`, `pending`, `rejected`) and gates.
pub fn promotion(o: &PromoteOutcome) -> Value {
    let p = &o.promotion;
    json!({
        "promotion": p.id, "name": p.name, "version": p.version, "alias": p.alias,
        "status": p.status.as_str(), "gates": o.gates, "decided_by": p.decided_by, "reason": p.reason,
    })
}

/// `{"inputs": [{"name", "datatype", "shape"}], "outputs": [...]}`.
pub fn signature(sig: &Signature) -> Value {
    let spec = |s: &TensorSpec| json!({"name": s.name, "datatype": s.dtype.oip_name(), "shape": s.shape});
    json!({
        "inputs": sig.inputs.iter().map(spec).collect::<Vec<_>>(),
        "outputs": sig.outputs.iter().map(spec).collect::<Vec<_>>(),
    })
}

fn importance(imp: &Importance) -> Value {
    let features: Vec<Value> =
        imp.features.iter().map(|f| json!({"name": f.name, "importance": f.importance, "std": f.std})).collect();
    json!({"metric": imp.metric, "baseline": imp.baseline, "rows": imp.rows, "holdout": imp.holdout, "features": features})
}

fn profile(p: &ReferenceProfile) -> Value {
    match p {
        ReferenceProfile::Current(p) => json!(p),
        ReferenceProfile::Outdated => json!({"outdated": true}),
    }
}
