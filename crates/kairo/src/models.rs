//! `kairo models register|ls|show|promote|alias`, `kairo serve`, `kairo deploy`, `kairo rollback`.

use kairo_core::EventKind;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use kairo_core::exit;
use kairo_core::profile::Role;
use kairo_core::serving::{Importance, PromotionStatus, ReferenceProfile, Strategy};
use kairo_core::signature::{Signature, TensorSpec};
use kairo_data::Project;
use kairo_registry::aliases::{AliasMove, Authority};
use kairo_registry::gate::GateResult;
use kairo_registry::rollout::{self, DeployRequest, LimitOverrides};
use kairo_registry::{ModelRef, PromoteRequest, RegisterRequest, Source};
use kairo_store::Metadata;
use serde_json::{json, Value};

use crate::report::{bytes, print_json};
use crate::{CmdResult, Failure};

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// Register an ONNX model as a new version (it must load in the serving runtime).
    Register(RegisterArgs),
    /// List registered models with their versions and aliases.
    Ls {
        #[arg(long)]
        json: bool,
    },
    /// Show a model (NAME) or one version (NAME:VERSION, NAME@ALIAS): signature, metrics,
    /// lineage, aliases and their history, promotions, deployment.
    Show {
        model: String,
        #[arg(long)]
        json: bool,
    },
    /// Evaluate the gates in kairo.yaml and move ALIAS to VERSION if they pass (exit 5 when a
    /// gate fails, 6 while waiting for approval).
    Promote(PromoteArgs),
    /// Point an alias at a version directly, or remove it (--delete). Every move is recorded.
    Alias(AliasArgs),
    /// The prediction log of a served model, newest last, with labels received as feedback;
    /// `predictions export NAME --out F` writes it as CSV.
    Predictions(PredictionsArgs),
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct PredictionsArgs {
    #[command(subcommand)]
    pub command: Option<PredictionsCommand>,
    /// The served model.
    #[arg(required = true)]
    pub name: Option<String>,
    /// Show at most this many rows.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum PredictionsCommand {
    /// Answered rows as CSV: request_id, row, time, version, the inputs, and the label.
    Export {
        name: String,
        /// Only rows whose label arrived (POST /v1/feedback).
        #[arg(long)]
        labelled: bool,
        /// Only rows predicted in the last DURATION (`30d`, `12h`).
        #[arg(long)]
        since: Option<String>,
        /// The label column's name.
        #[arg(long, default_value = "label")]
        label_column: String,
        /// The CSV file to write.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Args)]
pub struct RegisterArgs {
    pub name: String,
    /// An ONNX file.
    #[arg(long, conflicts_with_all = ["run", "artifact"], required_unless_present = "run")]
    pub file: Option<PathBuf>,
    /// The run that produced the model (its metrics and lineage are recorded).
    #[arg(long, requires = "artifact")]
    pub run: Option<String>,
    /// The model's path among the run's outputs or logged artifacts.
    #[arg(long, requires = "run")]
    pub artifact: Option<String>,
    #[arg(long, default_value = "")]
    pub description: String,
    /// A metric to record with the version (repeatable): `--metric auc=0.91`.
    #[arg(long = "metric", value_name = "NAME=VALUE")]
    pub metrics: Vec<String>,
    /// Training data (CSV) to profile for monitoring; by default the run's CSV dependency.
    #[arg(long)]
    pub profile_data: Option<PathBuf>,
    /// The label column of the profiled data (default: `models.NAME.holdout.target` in kairo.yaml).
    #[arg(long)]
    pub target: Option<String>,
    /// Profile a column as `numeric` or `categorical` instead of the inferred kind (repeatable).
    #[arg(long = "kind", value_name = "COLUMN=KIND")]
    pub kinds: Vec<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct PromoteArgs {
    pub name: String,
    pub version: i64,
    /// The alias to move.
    #[arg(long = "to", default_value = "champion")]
    pub alias: String,
    /// Approve (a pending promotion, or this one when approval is required).
    #[arg(long, conflicts_with = "reject")]
    pub approve: bool,
    /// Reject a pending promotion.
    #[arg(long)]
    pub reject: bool,
    /// Why (recorded with the decision).
    #[arg(long)]
    pub reason: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct AliasArgs {
    pub name: String,
    pub alias: String,
    /// The version to point at.
    #[arg(required_unless_present = "delete")]
    pub version: Option<i64>,
    #[arg(long, conflicts_with = "version")]
    pub delete: bool,
    /// Move an alias the model's gates guard without evaluating them.
    #[arg(long)]
    pub force: bool,
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Args)]
pub struct ServeArgs {
    /// Models to serve: NAME (its deployment, else its champion, else its latest version),
    /// NAME@ALIAS (follows the alias) or NAME:VERSION (pinned).
    #[arg(required = true)]
    pub models: Vec<String>,
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// How often to look for alias moves and deployment changes, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub poll_ms: u64,
    /// Largest request body, in MiB (larger ones get 413).
    #[arg(long, default_value_t = 32)]
    pub max_body_mb: usize,
    /// Most rows in one request (larger ones get 413).
    #[arg(long, default_value_t = 100_000)]
    pub max_rows: usize,
    /// Most tensor elements in one request, summed over its inputs (larger ones get 413).
    #[arg(long, default_value_t = 8 << 20)]
    pub max_elements: usize,
    /// Largest response body, in MiB (a request whose answer would be larger gets 413).
    #[arg(long, default_value_t = 64)]
    pub max_response_mb: usize,
    /// Prediction-log queue length in requests; when full, records are dropped and counted.
    #[arg(long, default_value_t = 10_000)]
    pub log_queue: usize,
    /// Prediction-log queue size in MiB of tensor data; when full, records are dropped and counted.
    #[arg(long, default_value_t = 256)]
    pub log_queue_mb: usize,
    /// Write a prediction-log segment every this many seconds (or 50,000 rows).
    #[arg(long, default_value_t = 10)]
    pub log_flush_s: u64,
    /// Serving threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Require an API token (`Authorization: Bearer`, from `kairo tokens create`) whose roles
    /// may read the model for inference, and track for `/v1/feedback`. Health stays open.
    #[arg(long)]
    pub auth: bool,
    /// With --auth, serve /metrics without a token (for a Prometheus scraper).
    #[arg(long)]
    pub open_metrics: bool,
    #[command(flatten)]
    pub connections: crate::server::ConnectionArgs,
    #[command(flatten)]
    pub log: crate::logging::LogArgs,
}

#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub enum StrategyArg {
    Direct,
    Canary,
    Shadow,
}

#[derive(Args)]
pub struct DeployArgs {
    pub name: String,
    /// The version to roll out; without it, show the deployment.
    #[arg(long)]
    pub version: Option<i64>,
    #[arg(long, value_enum, default_value_t = StrategyArg::Direct)]
    pub strategy: StrategyArg,
    /// Percent of traffic for a canary (1-99).
    #[arg(long, default_value_t = 10)]
    pub weight: u32,
    /// Roll back when the candidate's error rate exceeds this (default: kairo.yaml, else 0.05).
    #[arg(long)]
    pub max_error_rate: Option<f64>,
    /// Roll back when the candidate's p99 latency exceeds this many ms (default: kairo.yaml, else 250).
    #[arg(long)]
    pub max_p99_ms: Option<f64>,
    /// Candidate requests before the limits are judged (default: kairo.yaml, else 20).
    #[arg(long)]
    pub min_requests: Option<u64>,
    /// Seconds a healthy canary runs before taking 100% (default: kairo.yaml, else 300).
    #[arg(long)]
    pub window_s: Option<u64>,
    /// Deploy even when the candidate's inputs differ from the stable version's.
    #[arg(long)]
    pub force: bool,
    #[arg(long)]
    pub reason: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct RollbackArgs {
    pub name: String,
    #[arg(long)]
    pub reason: Option<String>,
}

fn project() -> Result<Project, Failure> {
    Ok(Project::discover(&std::env::current_dir()?)?)
}

fn fail(message: impl Into<String>) -> Failure {
    Failure { code: exit::ERROR, message: message.into() }
}

pub async fn run(cmd: ModelsCommand) -> CmdResult {
    let project = project()?;
    let md = project.metadata().await?;
    let result = match cmd {
        ModelsCommand::Register(a) => register(&project, &md, a).await,
        ModelsCommand::Ls { json } => ls(&md, json).await,
        ModelsCommand::Show { model, json } => show(&md, &model, json).await,
        ModelsCommand::Promote(a) => promote(&project, &md, a).await,
        ModelsCommand::Alias(a) => alias(&project, &md, a).await,
        ModelsCommand::Predictions(PredictionsArgs {
            command: Some(PredictionsCommand::Export { name, labelled, since, label_column, out }),
            ..
        }) => export_predictions(&project, &md, &name, labelled, since.as_deref(), &label_column, &out).await,
        ModelsCommand::Predictions(PredictionsArgs { name, limit, json, .. }) => {
            predictions(&project, &md, name.as_deref().unwrap_or_default(), limit, json).await
        }
    };
    md.close().await;
    result
}

async fn register(project: &Project, md: &Metadata, a: RegisterArgs) -> CmdResult {
    let cwd = std::env::current_dir()?;
    let source = match (a.file, a.run, a.artifact) {
        (Some(f), _, _) => Source::File(cwd.join(f)),
        (None, Some(run), Some(path)) => Source::RunArtifact { run, path },
        _ => return Err(Failure::usage("give --file FILE, or --run RUN_ID --artifact PATH")),
    };
    let mut metrics = Vec::new();
    for m in &a.metrics {
        let (k, v) = m.split_once('=').ok_or_else(|| fail(format!("--metric {m}: expected NAME=VALUE")))?;
        let v: f64 = v.trim().parse().map_err(|_| fail(format!("--metric {m}: `{v}` is not a number")))?;
        metrics.push((k.trim().to_string(), v));
    }
    let mut kinds = std::collections::HashMap::new();
    for k in &a.kinds {
        let (column, kind) = k.split_once('=').ok_or_else(|| fail(format!("--kind {k}: expected COLUMN=KIND")))?;
        let kind = match kind.trim() {
            "numeric" => kairo_monitor::profile::Kind::Numeric,
            "categorical" => kairo_monitor::profile::Kind::Categorical,
            other => return Err(fail(format!("--kind {k}: `{other}` is not numeric or categorical"))),
        };
        kinds.insert(column.trim().to_string(), kind);
    }
    let req = RegisterRequest {
        name: a.name.clone(),
        kinds,
        source,
        description: a.description,
        metrics,
        profile_data: a.profile_data.map(|p| cwd.join(p)),
        target: a
            .target
            .clone()
            .or_else(|| project.config().models.get(&a.name)?.holdout.as_ref().map(|h| h.target.clone())),
        actor: Project::actor(),
    };
    let r = kairo_registry::register(project, md, &req).await?;
    if a.json {
        print_json(&json!({
            "name": r.version.name, "version": r.version.version, "source": r.version.source,
            "run_id": r.version.run_id, "object": r.artifact.object.to_hex(), "size": r.artifact.size,
            "signature": signature_json(&r.artifact.signature), "metrics": r.artifact.metrics,
            "profile": r.artifact.profile.is_some(), "lowered_ops": r.lowered_ops, "runtime": r.runtime,
            "notes": r.notes,
        }));
    } else {
        println!(
            "Registered {} version {} ({}, runs on {})",
            r.version.name,
            r.version.version,
            bytes(r.artifact.size),
            r.runtime
        );
        print_signature(&r.artifact.signature);
        print_metrics(&r.artifact.metrics);
        if let Some(run) = &r.version.run_id {
            println!("  run: {run} (kairo lineage {}:{})", r.version.name, r.version.version);
        }
        if r.artifact.profile.is_some() {
            println!("  reference profile of the training data recorded");
        }
        for n in &r.notes {
            println!("  note: {n}");
        }
    }
    Ok(exit::OK)
}

fn print_signature(sig: &Signature) {
    for (label, specs) in [("inputs", &sig.inputs), ("outputs", &sig.outputs)] {
        let items: Vec<String> = specs.iter().map(TensorSpec::to_string).collect();
        println!("  {label}: {}", items.join("; "));
    }
}

/// Values as JSON writes them (`1.0`, `null` for NaN), as they were always shown.
fn print_metrics(metrics: &BTreeMap<String, f64>) {
    if !metrics.is_empty() {
        let list: Vec<String> = metrics.iter().map(|(k, v)| format!("{k}={}", json!(v))).collect();
        println!("  metrics: {}", list.join(", "));
    }
}

/// `--json` output of a version's record: the shapes `models show --json` has always printed.
fn signature_json(sig: &Signature) -> Value {
    let spec = |s: &TensorSpec| json!({"name": s.name, "datatype": s.dtype.oip_name(), "shape": s.shape});
    json!({
        "inputs": sig.inputs.iter().map(spec).collect::<Vec<_>>(),
        "outputs": sig.outputs.iter().map(spec).collect::<Vec<_>>(),
    })
}

fn importance_json(imp: &Importance) -> Value {
    let features: Vec<Value> =
        imp.features.iter().map(|f| json!({"name": f.name, "importance": f.importance, "std": f.std})).collect();
    json!({"metric": imp.metric, "baseline": imp.baseline, "rows": imp.rows, "holdout": imp.holdout, "features": features})
}

fn profile_json(p: &ReferenceProfile) -> Value {
    match p {
        ReferenceProfile::Current(p) => json!(p),
        ReferenceProfile::Outdated => json!({"outdated": true}),
    }
}

fn print_importance(imp: &Importance) {
    let top: Vec<String> = imp
        .features
        .iter()
        .take(8)
        .map(|f| format!("{} {:.4}±{:.4}", f.name, nan_zero(f.importance), nan_zero(f.std)))
        .collect();
    println!(
        "  permutation importance ({} drop on {}, {} rows): {}{}",
        imp.metric,
        imp.holdout,
        imp.rows,
        top.join(", "),
        if imp.features.len() > 8 { format!(", ... ({} features)", imp.features.len()) } else { String::new() }
    );
}

/// A NaN drop (no score) is shown as 0, as it always was.
fn nan_zero(x: f64) -> f64 {
    if x.is_nan() {
        0.0
    } else {
        x
    }
}

fn print_profile(p: &ReferenceProfile) {
    let ReferenceProfile::Current(p) = p else {
        println!("  reference profile: from an older Kairo, not usable for monitoring (register the model again)");
        return;
    };
    let role = |r: Role| p.columns.iter().filter(|c| c.role == r).count();
    println!(
        "  reference profile: {} rows, {} features, {} prediction columns{}",
        p.rows,
        role(Role::Feature),
        role(Role::Prediction),
        p.columns.iter().find(|c| c.role == Role::Target).map(|c| format!(", target '{}'", c.name)).unwrap_or_default()
    );
}

async fn ls(md: &Metadata, json: bool) -> CmdResult {
    let models = md.registered_models().await?;
    let mut rows = Vec::new();
    for m in &models {
        let versions = md.model_versions(Some(&m.name)).await?;
        let aliases: Vec<String> =
            versions.iter().flat_map(|v| v.aliases.iter().map(move |a| format!("{a}→{}", v.version))).collect();
        let deployment = md.deployment(&m.name).await?;
        rows.push(json!({
            "name": m.name, "versions": versions.len(), "latest": versions.last().map(|v| v.version),
            "aliases": aliases, "serving": deployment.map(|d| d.stable_version),
        }));
    }
    if json {
        print_json(&rows);
        return Ok(exit::OK);
    }
    if rows.is_empty() {
        println!("No registered models. Register one with `kairo models register NAME --file model.onnx`.");
        return Ok(exit::OK);
    }
    println!("{:<24} {:>8} {:>7}  {:<10} ALIASES", "NAME", "VERSIONS", "LATEST", "DEPLOYED");
    for r in rows {
        let aliases: Vec<&str> =
            r["aliases"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        println!(
            "{:<24} {:>8} {:>7}  {:<10} {}",
            r["name"].as_str().unwrap_or(""),
            r["versions"].as_u64().unwrap_or(0),
            r["latest"].as_i64().map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
            r["serving"].as_i64().map(|v| format!("v{v}")).unwrap_or_else(|| "-".into()),
            aliases.join(" ")
        );
    }
    Ok(exit::OK)
}

async fn show(md: &Metadata, target: &str, json_out: bool) -> CmdResult {
    let r = ModelRef::parse(target)?;
    let name = r.name().to_string();
    md.registered_model(&name).await?;
    let versions = match &r {
        ModelRef::Name(_) => md.model_versions(Some(&name)).await?,
        other => vec![md.model_version(&name, other.resolve(md).await?).await?],
    };
    let mut out = Vec::new();
    let mut artifacts = Vec::new();
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
            "signature": art.as_ref().map(|a| signature_json(&a.signature)), "metrics": art.as_ref().map(|a| &a.metrics),
            "profile": art.as_ref().and_then(|a| a.profile.as_ref()).map(profile_json),
            "importance": art.as_ref().and_then(|a| a.importance.as_ref()).map(importance_json),
            "lineage": run.as_ref().map(|run| json!({
                "run": run.id, "stage": run.stage, "commit": run.git.commit, "dirty": run.git.dirty,
                "started": run.started_at, "environment_spec": run.env.spec,
                "data": run.deps.iter().map(|d| json!({"path": d.path, "version": d.hash.to_hex()})).collect::<Vec<_>>(),
                "params": run.params, "environment": run.env.hash.to_hex(),
            })),
        }));
        artifacts.push(art);
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
    if json_out {
        print_json(
            &json!({"name": name, "versions": out, "alias_history": history, "promotions": promotions, "deployment": deployment}),
        );
        return Ok(exit::OK);
    }
    println!("Model {name}");
    if let Some(d) = &deployment {
        println!(
            "  deployed: v{}{}",
            d["stable"],
            d["candidate"]
                .as_i64()
                .map(|c| format!(" + {} v{c} ({}%)", d["strategy"].as_str().unwrap_or(""), d["weight"]))
                .unwrap_or_default()
        );
    }
    for (v, art) in out.iter().zip(&artifacts) {
        let aliases: Vec<&str> =
            v["aliases"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        println!(
            "\nversion {}{}  created {} by {}",
            v["version"],
            if aliases.is_empty() { String::new() } else { format!(" [{}]", aliases.join(", ")) },
            v["created"].as_str().unwrap_or(""),
            v["created_by"].as_str().unwrap_or("")
        );
        println!("  source: {}", v["source"].as_str().unwrap_or(""));
        match v["object"].as_str() {
            Some(o) => println!("  onnx: {} ({})", &o[..16.min(o.len())], bytes(v["size"].as_u64().unwrap_or(0))),
            None => println!("  onnx: none (registered through the MLflow API)"),
        }
        if let Some(a) = art {
            print_signature(&a.signature);
            print_metrics(&a.metrics);
        }
        if let Some(l) = v["lineage"].as_object() {
            println!(
                "  trained by run {} (stage {}) at commit {}{}",
                l["run"].as_str().unwrap_or(""),
                l["stage"].as_str().unwrap_or(""),
                l["commit"].as_str().map(|c| &c[..12.min(c.len())]).unwrap_or("none"),
                if l["dirty"].is_string() { " (dirty)" } else { "" }
            );
            for d in l["data"].as_array().into_iter().flatten() {
                println!(
                    "    data {} @ {}",
                    d["path"].as_str().unwrap_or(""),
                    &d["version"].as_str().unwrap_or("")[..12]
                );
            }
            println!(
                "    environment {} ({})",
                &l["environment"].as_str().unwrap_or("")[..12],
                l["environment_spec"].as_str().unwrap_or("")
            );
        }
        if let Some(imp) = art.as_ref().and_then(|a| a.importance.as_ref()) {
            print_importance(imp);
        }
        if let Some(p) = art.as_ref().and_then(|a| a.profile.as_ref()) {
            print_profile(p);
        }
    }
    if !history.is_empty() {
        println!("\nalias history:");
        for h in &history {
            println!(
                "  {}  {:<12} {} → {}  by {}  {}",
                h["at"].as_str().unwrap_or(""),
                h["alias"].as_str().unwrap_or(""),
                h["from"].as_i64().map(|v| format!("v{v}")).unwrap_or_else(|| "-".into()),
                h["to"].as_i64().map(|v| format!("v{v}")).unwrap_or_else(|| "-".into()),
                h["actor"].as_str().unwrap_or(""),
                h["reason"].as_str().unwrap_or("")
            );
        }
    }
    if !promotions.is_empty() {
        println!("\npromotions:");
        for p in &promotions {
            println!(
                "  {}  v{} → {:<10} {:<9} by {}{}",
                p["created"].as_str().unwrap_or(""),
                p["version"],
                p["alias"].as_str().unwrap_or(""),
                p["status"].as_str().unwrap_or(""),
                p["requested_by"].as_str().unwrap_or(""),
                p["decided_by"].as_str().map(|d| format!(", decided by {d}")).unwrap_or_default()
            );
        }
    }
    Ok(exit::OK)
}

fn print_gates(gates: &[GateResult]) {
    if gates.is_empty() {
        println!("  (no gates configured for this model in kairo.yaml)");
        return;
    }
    let width = gates.iter().map(|g| g.gate.len()).max().unwrap_or(4).max(4);
    println!("  {:<width$}  RESULT  DETAIL", "GATE");
    for g in gates {
        println!("  {:<width$}  {:<6}  {}", g.gate, if g.passed { "pass" } else { "FAIL" }, g.detail);
    }
}

async fn promote(project: &Project, md: &Metadata, a: PromoteArgs) -> CmdResult {
    let req = PromoteRequest {
        name: a.name.clone(),
        version: a.version,
        alias: a.alias.clone(),
        approve: a.approve,
        reject: a.reject,
        reason: a.reason.clone(),
        actor: Project::actor(),
    };
    let outcome = kairo_registry::promote(project, md, &req).await?;
    let p = &outcome.promotion;
    let code = match p.status {
        PromotionStatus::Promoted => exit::OK,
        PromotionStatus::Failed | PromotionStatus::Rejected => exit::GATE_FAILED,
        PromotionStatus::Pending => exit::PENDING,
    };
    if a.json {
        print_json(&json!({
            "promotion": p.id, "name": p.name, "version": p.version, "alias": p.alias,
            "status": p.status.as_str(), "gates": outcome.gates, "decided_by": p.decided_by, "reason": p.reason,
        }));
        return Ok(code);
    }
    println!("Promotion of {} version {} to '{}':", p.name, p.version, p.alias);
    print_gates(&outcome.gates);
    match p.status {
        PromotionStatus::Promoted => println!("promoted: '{}' now points at version {}", p.alias, p.version),
        PromotionStatus::Failed => println!("not promoted: a gate failed ({})", p.id),
        PromotionStatus::Rejected => println!(
            "rejected by {} ({})",
            p.decided_by.as_deref().unwrap_or("?"),
            p.reason.as_deref().unwrap_or("no reason given")
        ),
        PromotionStatus::Pending => println!(
            "pending approval ({}): approve with `kairo models promote {} {} --to {} --approve`",
            p.id, p.name, p.version, p.alias
        ),
    }
    Ok(code)
}

async fn alias(project: &Project, md: &Metadata, a: AliasArgs) -> CmdResult {
    let policy = kairo_registry::aliases::policy(project, &a.name)?;
    let reason =
        a.reason.clone().unwrap_or_else(|| if a.force { "forced alias move".into() } else { "alias set".into() });
    let authority = if a.force { Authority::Forced } else { Authority::Plain };
    let m = AliasMove {
        name: &a.name,
        alias: &a.alias,
        version: a.version,
        authority,
        actor: &Project::actor(),
        reason: &reason,
    };
    let before = kairo_registry::aliases::move_alias(md, &policy, &m).await?;
    match a.version {
        Some(v) => println!("'{}' of {} now points at version {v}", a.alias, a.name),
        None if before.is_none() => return Err(fail(format!("model '{}' has no alias '{}'", a.name, a.alias))),
        None => println!("removed alias '{}' of {}", a.alias, a.name),
    }
    Ok(exit::OK)
}

async fn export_predictions(
    project: &Project,
    md: &Metadata,
    name: &str,
    labelled: bool,
    since: Option<&str>,
    label_column: &str,
    out: &std::path::Path,
) -> CmdResult {
    let now = kairo_core::time::now_millis();
    let from = match since {
        Some(s) => {
            now - kairo_core::config::parse_duration_ms(s).map_err(|e| Failure::usage(format!("--since {e}")))?
        }
        None => 0,
    };
    md.registered_model(name).await?;
    let objects = project.objects()?;
    let kairo_watch::labelled::Exported { rows: n, labelled: with_labels } =
        kairo_watch::labelled::export(md, &objects, name, from, i64::MAX, labelled, label_column, out).await?;
    if n == 0 {
        println!(
            "no {}rows of {name} to export; {} not written",
            if labelled { "labelled " } else { "" },
            out.display()
        );
        return Ok(exit::OK);
    }
    println!("wrote {n} rows of {name} ({with_labels} labelled) to {}", out.display());
    Ok(exit::OK)
}

async fn predictions(project: &Project, md: &Metadata, name: &str, limit: usize, json_out: bool) -> CmdResult {
    let objects = project.objects()?;
    let segments = md.segments(name, 0, i64::MAX).await?;
    let total: i64 = segments.iter().map(|s| s.rows).sum();
    let mut rows: Vec<Value> = Vec::new();
    // Newest segments last; read from the end until `limit` rows are in hand.
    for seg in segments.iter().rev() {
        let bytes = objects.read(&seg.object)?;
        let mut seg_rows: Vec<Value> = kairo_watch::segment::read(&bytes)
            .map_err(|e| fail(format!("prediction-log segment {}: {e}", seg.object)))?
            .iter()
            .map(kairo_watch::segment::LogRow::to_json)
            .collect();
        seg_rows.append(&mut rows);
        rows = seg_rows;
        if rows.len() >= limit {
            break;
        }
    }
    let skip = rows.len().saturating_sub(limit);
    let mut rows: Vec<Value> = rows.into_iter().skip(skip).collect();
    let mut labels: std::collections::HashMap<String, Vec<(i64, Value)>> = Default::default();
    for row in &mut rows {
        let id = row["request_id"].as_str().unwrap_or("").to_string();
        if !labels.contains_key(&id) {
            labels.insert(id.clone(), md.feedback(&id).await?);
        }
        let r = row["row"].as_i64().unwrap_or(0);
        row["label"] = labels[&id].iter().find(|(i, _)| *i == r).map(|(_, l)| l.clone()).unwrap_or(Value::Null);
    }
    if json_out {
        print_json(&json!({"model": name, "total_rows": total, "segments": segments.len(), "rows": rows}));
        return Ok(exit::OK);
    }
    println!("{name}: {total} logged rows in {} segments; showing the last {}", segments.len(), rows.len());
    for r in &rows {
        println!(
            "{}  {}#{}  v{} {:<6} {:>6} µs  {}  in={}  out={}{}",
            kairo_core::time::millis_to_string(r["time_ms"].as_i64().unwrap_or(0)),
            r["request_id"].as_str().unwrap_or(""),
            r["row"],
            r["version"],
            r["arm"].as_str().unwrap_or(""),
            r["latency_us"],
            r["status"],
            r["inputs"],
            r["outputs"],
            if r["label"].is_null() { String::new() } else { format!("  label={}", r["label"]) }
        );
    }
    Ok(exit::OK)
}

pub async fn serve(a: ServeArgs) -> CmdResult {
    let project = project()?;
    let models = a.models.iter().map(|m| ModelRef::parse(m)).collect::<Result<Vec<_>, _>>()?;
    let config = kairo_serve::ServeConfig {
        models,
        addr: SocketAddr::new(a.host, a.port),
        poll: Duration::from_millis(a.poll_ms.max(50)),
        limits: kairo_serve::limits::Limits {
            max_body: a.max_body_mb.max(1).saturating_mul(1 << 20),
            max_rows: a.max_rows.max(1),
            max_elements: a.max_elements.max(1),
            max_response: a.max_response_mb.max(1).saturating_mul(1 << 20),
        },
        log_queue: a.log_queue,
        log_queue_bytes: a.log_queue_mb.max(1).saturating_mul(1 << 20),
        connections: a.connections.limits(),
        log_max_rows: 50_000,
        log_max_age: Duration::from_secs(a.log_flush_s.max(1)),
        threads: a.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)),
        auth: a.auth,
        open_metrics: a.open_metrics,
    };
    let shutdown = async {
        crate::interrupted().await;
        tracing::info!("shutting down: finishing in-flight requests, flushing the prediction log");
    };
    kairo_serve::serve(&project, config, shutdown, |bound, served| {
        use std::io::Write;
        let mut out = std::io::stdout();
        let list: Vec<String> = served.iter().map(|(n, v)| format!("{n} v{v}")).collect();
        let _ = writeln!(out, "kairo serve listening on http://{bound}: {}", list.join(", "));
        let _ = writeln!(
            out,
            "  Open Inference Protocol: POST http://{bound}/v2/models/NAME/infer; MLflow: POST /invocations"
        );
        let _ = out.flush();
    })
    .await
    .map_err(|e| fail(e.to_string()))?;
    Ok(exit::OK)
}

pub async fn deploy(a: DeployArgs) -> CmdResult {
    let project = project()?;
    let md = project.metadata().await?;
    let result = deploy_in(&project, &md, &a).await;
    md.close().await;
    result
}

async fn deploy_in(project: &Project, md: &Metadata, a: &DeployArgs) -> CmdResult {
    md.registered_model(&a.name).await?;
    let current = md.deployment(&a.name).await?;
    let Some(version) = a.version else {
        // Status: the deployment, its revisions and its recent events (changes, rollbacks,
        // versions that failed to load).
        let events: Vec<Value> = md
            .events(Some(&format!("deployment:{}", a.name)), 20)
            .await?
            .into_iter()
            .map(|e| json!({"at": e.at, "actor": e.actor, "kind": e.kind, "reason": e.payload["reason"], "error": e.payload["error"]}))
            .collect();
        let print_events = || {
            if !events.is_empty() {
                println!("  events:");
            }
            for e in &events {
                let why = e["reason"].as_str().or_else(|| e["error"].as_str()).unwrap_or("");
                println!(
                    "    {}  {:<22} {}  {why}",
                    e["at"].as_str().unwrap_or(""),
                    e["kind"].as_str().unwrap_or(""),
                    e["actor"].as_str().unwrap_or("")
                );
            }
        };
        let Some(d) = current else {
            if a.json {
                print_json(&json!({"name": a.name, "stable": null, "events": events}));
            } else {
                println!("{} is not deployed; deploy with `kairo deploy {} --version N`", a.name, a.name);
                print_events();
            }
            return Ok(exit::OK);
        };
        let revisions = md.deployment_revisions(&a.name).await?;
        if a.json {
            print_json(&json!({
                "name": d.name, "stable": d.stable_version, "candidate": d.candidate_version,
                "strategy": d.strategy.as_str(), "weight": d.weight, "generation": d.generation,
                "limits": d.limits, "revisions": revisions, "events": events,
            }));
        } else {
            println!("{}: stable v{}", d.name, d.stable_version);
            if let Some(c) = d.candidate_version {
                println!("  candidate v{c} ({}, {}%)", d.strategy.as_str(), d.weight);
            }
            let revs: Vec<String> = revisions.iter().map(|v| format!("v{v}")).collect();
            println!("  versions that served 100%: {}", revs.join(" → "));
            print_events();
        }
        return Ok(exit::OK);
    };
    let strategy = match a.strategy {
        StrategyArg::Direct => Strategy::Direct,
        StrategyArg::Canary => Strategy::Canary,
        StrategyArg::Shadow => Strategy::Shadow,
    };
    let overrides = LimitOverrides {
        max_error_rate: a.max_error_rate,
        max_p99_ms: a.max_p99_ms,
        min_requests: a.min_requests,
        window_s: a.window_s,
    };
    let policy = project.config().models.get(&a.name).and_then(|p| p.rollout.as_ref());
    let req = DeployRequest {
        name: a.name.clone(),
        version,
        strategy,
        weight: a.weight,
        limits: rollout::limits(policy, &overrides).map_err(|e| fail(e.to_string()))?,
        force: a.force,
        reason: a.reason.clone(),
    };
    let d = rollout::deploy(project, md, &req, &Project::actor()).await?;
    if a.json {
        print_json(
            &json!({"name": d.name, "stable": d.stable_version, "candidate": d.candidate_version, "strategy": d.strategy.as_str(), "weight": d.weight, "generation": d.generation}),
        );
    } else {
        match d.candidate_version {
            None => println!("{}: version {} now serves 100%", d.name, d.stable_version),
            Some(c) => println!(
                "{}: version {c} is the {} candidate{} beside stable version {}; rolls back if error rate > {} or p99 > {} ms after {} requests{}",
                d.name,
                d.strategy.as_str(),
                if d.strategy == Strategy::Canary { format!(" ({}% of traffic)", d.weight) } else { String::new() },
                d.stable_version,
                d.limits.max_error_rate,
                d.limits.max_p99_ms,
                d.limits.min_requests,
                if d.strategy == Strategy::Canary { format!("; takes 100% after {} s healthy", d.limits.window_s) } else { String::new() }
            ),
        }
        if project.running_server().is_none() {
            println!("  running `kairo serve {}` processes pick this up within their poll interval", d.name);
        }
    }
    Ok(exit::OK)
}

pub async fn rollback(a: RollbackArgs) -> CmdResult {
    let project = project()?;
    let md = project.metadata().await?;
    let result = rollout::rollback(&md, &a.name, a.reason.clone(), &Project::actor()).await;
    md.close().await;
    let (d, what) = result?;
    println!("{}: {what}; version {} serves 100%", a.name, d.stable_version);
    Ok(exit::OK)
}
