//! `kairo models register|ls|show|promote|alias`, `kairo serve`, `kairo deploy`, `kairo rollback`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use kairo_core::exit;
use kairo_core::serving::Strategy;
use kairo_data::Project;
use kairo_registry::aliases::{AliasMove, Authority};
use kairo_registry::gate::GateResult;
use kairo_registry::rollout::{self, DeployRequest, LimitOverrides};
use kairo_registry::{describe, ModelRef, PromoteRequest, RegisterRequest, Source};
use kairo_store::Metadata;
use serde_json::{json, Value};

use crate::remote::{segment, Remote};
use crate::report::{bytes, print_json};
use crate::{CmdResult, Failure};

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// Register an ONNX model as a new version (it must load in the serving runtime).
    Register(RegisterArgs),
    /// List registered models with their versions and aliases.
    Ls {
        /// Print the models as a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Show a model (NAME) or one version (NAME:VERSION, NAME@ALIAS): signature, metrics,
    /// lineage, aliases and their history, promotions, deployment.
    Show {
        /// The model: NAME (all its versions), NAME:VERSION or NAME@ALIAS (one version).
        model: String,
        /// Print JSON instead of text.
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
    /// Ground truth for logged predictions from a CSV file of ids and labels (as `POST
    /// /v1/feedback` takes them online): rows `kairo predict` logged with --id-column find
    /// their labels by those ids, and the model's monitors then measure quality.
    Feedback(FeedbackArgs),
    /// Package a version to run where Kairo is not installed: an OCI image (`--out`, a tar that
    /// skopeo and `podman load` read; no container engine needed), a model directory for
    /// `kairo serve --model-dir` (`--out-dir`), Kubernetes and KServe manifests (`--k8s`).
    Package(PackageArgs),
    /// A model card for a version: intended use and limits (`card:` in kairo.yaml), training
    /// lineage, metrics with 95% intervals, slices and fairness on the holdout, importance,
    /// gate evidence and approvals, monitoring status.
    Card(CardArgs),
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
    /// Print the rows, with the log's totals, as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum PredictionsCommand {
    /// Answered rows as CSV: request_id, row, time, version, the inputs, and the label.
    Export {
        /// The registered model whose prediction log to export.
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
    /// Erase the logged rows whose FIELD holds VALUE (a data subject's request): the segments
    /// holding them are rewritten without them, their labels forgotten; the bytes are gone at
    /// the next `kairo data gc`. The audit trail records the field and counts, not the value.
    Erase {
        /// The model whose prediction log to erase from.
        name: String,
        /// `FIELD = VALUE`: a profiled column or input tensor, and the value as requests sent
        /// it (`customer_id = "c-123"`, `customer_id = 123`); a hashed field is matched by the
        /// hash of VALUE (the key from the environment).
        #[arg(long = "where", value_name = "FIELD = VALUE")]
        condition: String,
        /// Why (recorded in the audit trail).
        #[arg(long)]
        reason: String,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct RegisterArgs {
    /// The model to add a version to (registered on its first version).
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
    /// A description stored with the version.
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
    /// Refuse the registration while a column of the training data looks personal (by its
    /// name or its values: e-mail, phone, card, My Number...) and `models.NAME.privacy` in
    /// kairo.yaml gives it no policy.
    #[arg(long)]
    pub strict: bool,
    /// Print the registered version as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct PromoteArgs {
    /// The registered model.
    pub name: String,
    /// The version to promote (or whose pending promotion to approve or reject).
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
    /// Print the outcome, with each gate's result, as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct AliasArgs {
    /// The registered model.
    pub name: String,
    /// The alias to set or remove (e.g. champion).
    pub alias: String,
    /// The version to point at.
    #[arg(required_unless_present = "delete")]
    pub version: Option<i64>,
    /// Remove the alias instead of pointing it at a version.
    #[arg(long, conflicts_with = "version")]
    pub delete: bool,
    /// Move an alias the model's gates guard without evaluating them.
    #[arg(long)]
    pub force: bool,
    /// Why, recorded in the alias history (default: `alias set`, or `forced alias move` with --force).
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Args)]
pub struct ServeArgs {
    /// Models to serve: NAME (its deployment, else its champion, else its latest version),
    /// NAME@ALIAS (follows the alias) or NAME:VERSION (pinned).
    #[arg(required_unless_present = "model_dir", conflicts_with = "model_dir")]
    pub models: Vec<String>,
    /// Serve the model of a model directory (`kairo models package --out-dir`, `/model` in a
    /// model image) without a project: it is installed into --state-dir and served pinned.
    #[arg(long, value_name = "DIR")]
    pub model_dir: Option<PathBuf>,
    /// With --model-dir: where the store and the prediction log live (default: a new
    /// directory under $TMPDIR).
    #[arg(long, value_name = "DIR", requires = "model_dir")]
    pub state_dir: Option<PathBuf>,
    /// Address to listen on. Loopback by default; use 0.0.0.0 to serve the network.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port (0 picks a free one and prints it).
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
    /// Serve HTTPS with this certificate chain (PEM, leaf first); needs --tls-key.
    #[arg(long, requires = "tls_key", value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, requires = "tls_cert", value_name = "PEM")]
    pub tls_key: Option<PathBuf>,
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
    /// The registered model to deploy (or whose deployment to show).
    pub name: String,
    /// The version to roll out; without it, show the deployment.
    #[arg(long)]
    pub version: Option<i64>,
    /// How to roll out: direct (replaces the stable version at once), canary (--weight percent of
    /// requests) or shadow (every request mirrored to it, its answers discarded).
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
    /// Why, recorded in the deployment's events (default: the strategy and version).
    #[arg(long)]
    pub reason: Option<String>,
    /// Print the deployment as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct FeedbackArgs {
    /// The model whose predictions the labels are for.
    pub name: String,
    /// A CSV file with a header: the id column(s) and the label column.
    #[arg(long, value_name = "FILE")]
    pub file: std::path::PathBuf,
    /// The column(s) holding the id, as passed to `kairo predict --id-column` (repeatable;
    /// several are joined with `/`).
    #[arg(long = "id-column", value_name = "COLUMN", default_value = "id")]
    pub id_columns: Vec<String>,
    /// The column holding the label.
    #[arg(long, value_name = "COLUMN", default_value = "label")]
    pub label_column: String,
    /// Print the count as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct RollbackArgs {
    /// The model whose deployment to roll back.
    pub name: String,
    /// Why, recorded in the deployment's events (default: `manual rollback: ` and what was undone).
    #[arg(long)]
    pub reason: Option<String>,
}

/// `kairo models feedback NAME --file F`: the file's labels stored a chunk at a time.
async fn feedback(md: &Metadata, a: FeedbackArgs) -> CmdResult {
    ModelRef::Name(a.name.clone()).resolve(md).await?;
    let what = a.file.display().to_string();
    let file = std::fs::File::open(&a.file).map_err(|e| fail(format!("{what}: {e}")))?;
    let mut labels =
        kairo_watch::labelled::FeedbackFile::new(&what, std::io::BufReader::new(file), &a.id_columns, &a.label_column)
            .map_err(|e| Failure::usage(e.to_string()))?;
    let mut stored = 0usize;
    while let Some(chunk) =
        labels.next_chunk(10_000).map_err(|e| fail(format!("{e} ({stored} labels before it were stored)")))?
    {
        md.add_feedback(&chunk).await?;
        stored += chunk.len();
    }
    if a.json {
        println!("{}", json!({"model": a.name, "stored": stored}));
    } else {
        println!("stored {stored} labels for {} (its monitors judge quality on the rows they match)", a.name);
    }
    Ok(exit::OK)
}

fn project() -> Result<Project, Failure> {
    Ok(Project::discover(&std::env::current_dir()?)?)
}

fn fail(message: impl Into<String>) -> Failure {
    Failure { code: exit::ERROR, message: message.into() }
}

pub async fn run(cmd: ModelsCommand) -> CmdResult {
    if let Some(remote) = crate::remote::connect()? {
        return run_remote(&remote, cmd).await;
    }
    let project = project()?;
    let md = project.metadata().await?;
    let result = match cmd {
        ModelsCommand::Register(a) => register(&project, &md, a).await,
        ModelsCommand::Ls { json } => print_models(&describe::models(&md).await?, json),
        ModelsCommand::Show { model, json } => print_model(&describe::model(&md, &model).await?, json),
        ModelsCommand::Promote(a) => promote(&project, &md, a).await,
        ModelsCommand::Alias(a) => alias(&project, &md, a).await,
        ModelsCommand::Predictions(PredictionsArgs {
            command: Some(PredictionsCommand::Export { name, labelled, since, label_column, out }),
            ..
        }) => export_predictions(&project, &md, &name, labelled, since.as_deref(), &label_column, &out).await,
        ModelsCommand::Predictions(PredictionsArgs {
            command: Some(PredictionsCommand::Erase { name, condition, reason, json }),
            ..
        }) => erase_predictions(&project, &md, &name, &condition, &reason, json).await,
        ModelsCommand::Predictions(PredictionsArgs { name, limit, json, .. }) => {
            predictions(&project, &md, name.as_deref().unwrap_or_default(), limit, json).await
        }
        ModelsCommand::Package(a) => package(&project, &md, a).await,
        ModelsCommand::Card(a) => card(&project, &md, a).await,
        ModelsCommand::Feedback(a) => feedback(&md, a).await,
    };
    md.close().await;
    result
}

/// The same commands through the team server's `/api/v1`.
async fn run_remote(remote: &Remote, cmd: ModelsCommand) -> CmdResult {
    match cmd {
        ModelsCommand::Register(a) => {
            let metrics = parse_metrics(&a.metrics)?;
            if a.profile_data.is_some() || !a.kinds.is_empty() || a.target.is_some() {
                return Err(Failure::usage(
                    "--profile-data, --kind and --target are not sent to a server yet: register with --run RUN --artifact PATH so the server profiles the run's training data",
                ));
            }
            let mut query = vec![("description", a.description.clone())];
            if !metrics.is_empty() {
                let list: Vec<String> = metrics.iter().map(|(k, v)| format!("{k}={v}")).collect();
                query.push(("metrics", list.join(",")));
            }
            let path = format!("/models/{}/versions", segment(&a.name));
            let doc = match (&a.file, &a.run, &a.artifact) {
                (Some(file), _, _) => {
                    let bytes = std::fs::read(file).map_err(|e| fail(format!("{}: {e}", file.display())))?;
                    let label = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                    query.push(("filename", label));
                    remote.post_bytes(&path, &query, bytes).await?
                }
                (None, Some(run), Some(artifact)) => {
                    query.push(("run", run.clone()));
                    query.push(("artifact", artifact.clone()));
                    remote.post_bytes(&path, &query, Vec::new()).await?
                }
                _ => return Err(Failure::usage("give --file FILE, or --run RUN_ID --artifact PATH")),
            };
            print_registered(&doc, a.json)
        }
        ModelsCommand::Ls { json } => {
            let doc = remote.get("/models", &[]).await?;
            print_models(doc["models"].as_array().map(Vec::as_slice).unwrap_or_default(), json)
        }
        ModelsCommand::Show { model, json } => print_model(&remote.get(&format!("/models/{}", segment(&model)), &[]).await?, json),
        ModelsCommand::Promote(a) => {
            let what = if a.approve {
                "/approve"
            } else if a.reject {
                "/reject"
            } else {
                ""
            };
            let body = json!({"version": a.version, "alias": a.alias, "reason": a.reason});
            let doc = remote.post(&format!("/models/{}/promotions{what}", segment(&a.name)), &body).await?;
            print_promotion(&doc, a.json)
        }
        ModelsCommand::Alias(a) => {
            let path = format!("/models/{}/aliases/{}", segment(&a.name), segment(&a.alias));
            match a.version {
                Some(v) => {
                    remote.put(&path, &json!({"version": v, "force": a.force, "reason": a.reason})).await?;
                    println!("'{}' of {} now points at version {v}", a.alias, a.name);
                }
                None => {
                    let query: Vec<(&str, String)> = a.reason.iter().map(|r| ("reason", r.clone())).collect();
                    remote.delete(&path, &query).await?;
                    println!("removed alias '{}' of {}", a.alias, a.name);
                }
            }
            Ok(exit::OK)
        }
        ModelsCommand::Feedback(_) => Err(Failure::usage(
            "`kairo models feedback` stores labels in the project's database: run it on the server, or without KAIRO_SERVER (online, POST /v1/feedback takes them)",
        )),
        ModelsCommand::Predictions(_) => Err(Failure::usage(
            "`kairo models predictions` reads the prediction log where it is stored and is not served by /api/v1 yet: run it on the server, or without KAIRO_SERVER",
        )),
        ModelsCommand::Package(_) => Err(Failure::usage(
            "`kairo models package` reads the model from the store directly: run it where the project's store is, without KAIRO_SERVER",
        )),
        ModelsCommand::Card(_) => Err(Failure::usage(
            "`kairo models card` evaluates the holdout where the project is: run it there without KAIRO_SERVER, or open /models/NAME/card in the server's UI",
        )),
    }
}

#[derive(Args)]
pub struct CardArgs {
    /// The version: NAME@ALIAS, NAME:VERSION, or NAME (its latest version).
    pub model: String,
    /// `md` (Markdown), `html` (a self-contained page) or `json` (the card's data).
    #[arg(long, default_value = "md", value_parser = ["md", "html", "json"])]
    pub format: String,
    /// The card's language: `en` or `ja`.
    #[arg(long, default_value = "en", value_parser = ["en", "ja"])]
    pub lang: String,
    /// Write the card to FILE (written aside, then renamed) instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// The card's data as JSON (the same as `--format json`).
    #[arg(long)]
    pub json: bool,
}

async fn card(project: &Project, md: &Metadata, a: CardArgs) -> CmdResult {
    let card = kairo_card::build(project, md, &a.model).await?;
    let lang = kairo_card::Lang::parse(&a.lang).unwrap_or(kairo_card::Lang::En);
    let format = if a.json { "json" } else { a.format.as_str() };
    let text = match format {
        "html" => kairo_card::render::html(&card, lang),
        "json" => serde_json::to_string_pretty(&card)? + "\n",
        _ => kairo_card::render::markdown(&card, lang),
    };
    match a.out {
        Some(path) => {
            let aside = path.with_extension("kairo-tmp");
            std::fs::write(&aside, &text).and_then(|()| std::fs::rename(&aside, &path)).map_err(|e| {
                let _ = std::fs::remove_file(&aside);
                Failure::from(format!("cannot write {}: {e}", path.display()))
            })?;
            eprintln!("wrote the card of {} v{} to {}", card.name, card.version, path.display());
        }
        None => print!("{text}"),
    }
    Ok(exit::OK)
}

#[derive(Args)]
pub struct PackageArgs {
    /// The version: NAME:VERSION, NAME@ALIAS, or NAME (its latest version).
    pub model: String,
    /// Write the OCI image here (an image layout in a tar: `skopeo copy oci-archive:FILE ...`,
    /// `podman load -i FILE`).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Write the model directory here (`model.onnx`, `kairo-model.json`) for
    /// `kairo serve --model-dir`.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    /// Write Kubernetes manifests into this directory: `deployment.yaml` (Deployment, Service,
    /// HorizontalPodAutoscaler) and `inferenceservice.yaml` (KServe, the image as a custom
    /// predictor).
    #[arg(long, value_name = "DIR")]
    pub k8s: Option<PathBuf>,
    /// Push the image to a registry over the OCI distribution API (no container engine):
    /// REGISTRY/REPOSITORY:TAG; credentials from KAIRO_REGISTRY_USERNAME and
    /// KAIRO_REGISTRY_PASSWORD (the registry's Bearer-token or Basic challenge is answered).
    #[arg(long, value_name = "REF")]
    pub push: Option<String>,
    /// The image reference the manifests use (default: the --push reference, else
    /// kairo-NAME:vVERSION).
    #[arg(long, value_name = "REF")]
    pub image: Option<String>,
    /// Print what was written as JSON.
    #[arg(long)]
    pub json: bool,
}

async fn package(project: &Project, md: &Metadata, a: PackageArgs) -> CmdResult {
    if a.out.is_none() && a.out_dir.is_none() && a.k8s.is_none() && a.push.is_none() {
        return Err(Failure::usage(
            "say what to write: --out FILE (an OCI image), --push REGISTRY/REPOSITORY:TAG, --out-dir DIR, and/or --k8s DIR",
        ));
    }
    let push_to = a
        .push
        .as_deref()
        .map(kairo_package::push::Reference::parse)
        .transpose()
        .map_err(|e| Failure::usage(e.to_string()))?;
    let model = ModelRef::parse(&a.model)?;
    let version = model.resolve(md).await?;
    let name = model.name().to_string();
    let (packaged, onnx) = kairo_package::model_dir::from_store(project, md, &name, version).await.map_err(pkg)?;
    // Logged in before the image is built: refused credentials cost nothing.
    let pusher = match &push_to {
        Some(reference) => {
            let creds = kairo_package::push::Credentials::from_env();
            Some(kairo_package::push::connect(reference, creds.as_ref()).await.map_err(pkg)?)
        }
        None => None,
    };
    let mut doc = json!({"model": name, "version": version});
    if let Some(dir) = &a.out_dir {
        kairo_package::model_dir::write(dir, &packaged, &onnx).map_err(pkg)?;
        doc["out_dir"] = json!(dir.display().to_string());
    }
    if a.out.is_some() || pusher.is_some() {
        let (image, spec) =
            kairo_package::model_image::build_running(&packaged, &onnx, env!("CARGO_PKG_VERSION")).map_err(pkg)?;
        if let Some(out) = &a.out {
            image.write_archive(out, spec.mtime).map_err(pkg)?;
            doc["out"] = json!(out.display().to_string());
        }
        if let (Some(pusher), Some(text)) = (&pusher, &a.push) {
            let pushed = pusher.push(&image).await.map_err(pkg)?;
            doc["pushed"] = json!({"reference": text, "uploaded": pushed.uploaded, "present": pushed.present});
        }
        let size: usize = image.blobs().iter().map(|b| b.bytes.len()).sum();
        doc["digest"] = json!(image.manifest.digest);
        doc["tag"] = json!(image.ref_name);
        doc["size"] = json!(size);
        doc["layers"] =
            json!(image.layers.iter().map(|l| json!({"digest": l.digest, "size": l.bytes.len()})).collect::<Vec<_>>());
        doc["annotations"] = json!(spec.annotations);
    }
    if let Some(dir) = &a.k8s {
        let image = kairo_package::k8s::image_ref(a.image.as_deref().or(a.push.as_deref()), &name, version);
        let target =
            kairo_package::k8s::Target { model: name.clone(), version, image, model_bytes: packaged.artifact.size };
        let files = kairo_package::k8s::write(dir, &target).map_err(pkg)?;
        doc["k8s"] = json!(files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>());
        doc["image"] = json!(target.image);
    }
    if a.json {
        print_json(&doc);
        return Ok(exit::OK);
    }
    println!("{name} v{version}");
    if let Some(d) = doc["out_dir"].as_str() {
        println!("  model directory  {d}  (kairo serve --model-dir {d})");
    }
    if let Some(o) = doc["out"].as_str() {
        println!(
            "  OCI image        {o}  {}  tag {}  {}",
            doc["digest"].as_str().unwrap_or_default(),
            doc["tag"].as_str().unwrap_or_default(),
            bytes(doc["size"].as_u64().unwrap_or_default())
        );
        println!("                   skopeo copy oci-archive:{o} docker://REGISTRY/REPO:TAG   (or podman load -i {o})");
    }
    if let Some(p) = doc.get("pushed") {
        println!(
            "  pushed           {}  {}  ({} blobs uploaded, {} already there)",
            p["reference"].as_str().unwrap_or_default(),
            doc["digest"].as_str().unwrap_or_default(),
            p["uploaded"],
            p["present"]
        );
    }
    if let Some(files) = doc["k8s"].as_array() {
        for f in files {
            println!("  manifest         {}", f.as_str().unwrap_or_default());
        }
        println!("                   image {}", doc["image"].as_str().unwrap_or_default());
    }
    Ok(exit::OK)
}

fn pkg(e: kairo_package::PackageError) -> Failure {
    fail(e.to_string())
}

fn parse_metrics(given: &[String]) -> Result<Vec<(String, f64)>, Failure> {
    given.iter().map(|m| kairo_registry::parse_metric(m).map_err(|e| fail(format!("--metric {e}")))).collect()
}

async fn register(project: &Project, md: &Metadata, a: RegisterArgs) -> CmdResult {
    let cwd = std::env::current_dir()?;
    let source = match (a.file, a.run, a.artifact) {
        (Some(f), _, _) => Source::File(cwd.join(f)),
        (None, Some(run), Some(path)) => Source::RunArtifact { run, path },
        _ => return Err(Failure::usage("give --file FILE, or --run RUN_ID --artifact PATH")),
    };
    let metrics = parse_metrics(&a.metrics)?;
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
        strict: a.strict,
    };
    let r = kairo_registry::register(project, md, &req).await?;
    print_registered(&describe::registered(&r), a.json)
}

fn print_registered(r: &Value, json_out: bool) -> CmdResult {
    if json_out {
        print_json(r);
        return Ok(exit::OK);
    }
    println!(
        "Registered {} version {} ({}, runs on {})",
        r["name"].as_str().unwrap_or(""),
        r["version"],
        bytes(r["size"].as_u64().unwrap_or(0)),
        r["runtime"].as_str().unwrap_or("")
    );
    print_signature(&r["signature"]);
    print_metrics(&r["metrics"]);
    if let Some(run) = r["run_id"].as_str() {
        println!("  run: {run} (kairo lineage {}:{})", r["name"].as_str().unwrap_or(""), r["version"]);
    }
    if r["profile"].as_bool() == Some(true) {
        println!("  reference profile of the training data recorded");
    }
    for n in r["notes"].as_array().into_iter().flatten() {
        println!("  note: {}", n.as_str().unwrap_or(""));
    }
    Ok(exit::OK)
}

/// `  inputs: x FP32 [-1,4]; ...` from a version's signature document.
fn print_signature(sig: &Value) {
    for label in ["inputs", "outputs"] {
        let items: Vec<String> = sig[label]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                let dims: Vec<String> = t["shape"].as_array().into_iter().flatten().map(Value::to_string).collect();
                format!(
                    "{} {} [{}]",
                    t["name"].as_str().unwrap_or(""),
                    t["datatype"].as_str().unwrap_or(""),
                    dims.join(",")
                )
            })
            .collect();
        println!("  {label}: {}", items.join("; "));
    }
}

/// Values as JSON writes them (`1.0`, `null` for NaN), as they were always shown.
fn print_metrics(metrics: &Value) {
    if let Some(m) = metrics.as_object().filter(|m| !m.is_empty()) {
        let list: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("  metrics: {}", list.join(", "));
    }
}

fn print_importance(imp: &Value) {
    let features = imp["features"].as_array().map(Vec::as_slice).unwrap_or_default();
    // A NaN drop (no score, `null` in JSON) is shown as 0, as it always was.
    let num = |v: &Value| v.as_f64().unwrap_or(0.0);
    let top: Vec<String> = features
        .iter()
        .take(8)
        .map(|f| format!("{} {:.4}±{:.4}", f["name"].as_str().unwrap_or(""), num(&f["importance"]), num(&f["std"])))
        .collect();
    println!(
        "  permutation importance ({} drop on {}, {} rows): {}{}",
        imp["metric"].as_str().unwrap_or(""),
        imp["holdout"].as_str().unwrap_or(""),
        imp["rows"],
        top.join(", "),
        if features.len() > 8 { format!(", ... ({} features)", features.len()) } else { String::new() }
    );
}

fn print_profile(p: &Value) {
    if p["outdated"].as_bool() == Some(true) {
        println!("  reference profile: from an older Kairo, not usable for monitoring (register the model again)");
        return;
    }
    let columns = p["columns"].as_array().map(Vec::as_slice).unwrap_or_default();
    let role = |r: &str| columns.iter().filter(|c| c["role"] == r).count();
    println!(
        "  reference profile: {} rows, {} features, {} prediction columns{}",
        p["rows"],
        role("feature"),
        role("prediction"),
        columns
            .iter()
            .find(|c| c["role"] == "target")
            .map(|c| format!(", target '{}'", c["name"].as_str().unwrap_or("")))
            .unwrap_or_default()
    );
}

fn print_models(rows: &[Value], json: bool) -> CmdResult {
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

fn print_model(doc: &Value, json_out: bool) -> CmdResult {
    if json_out {
        print_json(doc);
        return Ok(exit::OK);
    }
    let name = doc["name"].as_str().unwrap_or("");
    let deployment = doc["deployment"].as_object();
    let out = doc["versions"].as_array().map(Vec::as_slice).unwrap_or_default();
    let history = doc["alias_history"].as_array().map(Vec::as_slice).unwrap_or_default();
    let promotions = doc["promotions"].as_array().map(Vec::as_slice).unwrap_or_default();
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
    for v in out {
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
        if !v["signature"].is_null() {
            print_signature(&v["signature"]);
            print_metrics(&v["metrics"]);
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
        if !v["importance"].is_null() {
            print_importance(&v["importance"]);
        }
        if !v["profile"].is_null() {
            print_profile(&v["profile"]);
        }
    }
    if !history.is_empty() {
        println!("\nalias history:");
        for h in history {
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
        for p in promotions {
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
    print_promotion(&describe::promotion(&outcome), a.json)
}

/// A promotion's outcome; its status chooses the exit code (5 failed or rejected, 6 pending).
fn print_promotion(p: &Value, json_out: bool) -> CmdResult {
    let status = p["status"].as_str().unwrap_or("");
    let code = match status {
        "promoted" => exit::OK,
        "pending" => exit::PENDING,
        _ => exit::GATE_FAILED,
    };
    if json_out {
        print_json(p);
        return Ok(code);
    }
    let (name, version, alias) = (p["name"].as_str().unwrap_or(""), &p["version"], p["alias"].as_str().unwrap_or(""));
    println!("Promotion of {name} version {version} to '{alias}':");
    let gates: Vec<GateResult> = serde_json::from_value(p["gates"].clone()).unwrap_or_default();
    print_gates(&gates);
    let id = p["promotion"].as_str().map(str::to_string).unwrap_or_else(|| p["promotion"].to_string());
    match status {
        "promoted" => println!("promoted: '{alias}' now points at version {version}"),
        "rejected" => println!(
            "rejected by {} ({})",
            p["decided_by"].as_str().unwrap_or("?"),
            p["reason"].as_str().unwrap_or("no reason given")
        ),
        "pending" => println!(
            "pending approval ({id}): approve with `kairo models promote {name} {version} --to {alias} --approve`"
        ),
        _ => println!("not promoted: a gate failed ({id})"),
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

async fn erase_predictions(
    project: &Project,
    md: &Metadata,
    name: &str,
    condition: &str,
    reason: &str,
    json_out: bool,
) -> CmdResult {
    let what = kairo_watch::retention::Erasure::parse(condition).map_err(watch_failure)?;
    md.registered_model(name).await?;
    let out = kairo_watch::retention::erase(project, md, name, &what, &Project::actor(), reason)
        .await
        .map_err(watch_failure)?;
    let field = &what.field;
    if json_out {
        print_json(&json!({"model": name, "field": field, "segments": out.segments, "rows": out.rows}));
    } else {
        println!(
            "erased {} row{} of {name} where {field} matched, in {} segment{} (the bytes go at the next `kairo data gc`)",
            out.rows,
            if out.rows == 1 { "" } else { "s" },
            out.segments,
            if out.segments == 1 { "" } else { "s" }
        );
    }
    Ok(exit::OK)
}

pub(crate) fn watch_failure(e: kairo_watch::WatchError) -> Failure {
    match e {
        kairo_watch::WatchError::Spec(m) => Failure::usage(m),
        e => fail(e.to_string()),
    }
}

async fn predictions(project: &Project, md: &Metadata, name: &str, limit: usize, json_out: bool) -> CmdResult {
    let objects = project.objects()?;
    // Pruned segments (retention) have no rows to show.
    let segments: Vec<_> =
        md.segments(name, 0, i64::MAX).await?.into_iter().filter(|s| s.pruned_ms.is_none()).collect();
    let total: i64 = segments.iter().map(|s| s.rows).sum();
    let mut rows: Vec<Value> = Vec::new();
    // Newest segments last; read from the end until `limit` rows are in hand.
    for seg in segments.iter().rev() {
        let bytes = objects.read(&seg.object)?;
        let mut seg_rows: Vec<Value> = kairo_watch::segment::read(&bytes)
            .map_err(|e| fail(format!("prediction-log segment {}: {e}", seg.object)))?
            .iter()
            .map(|r| {
                let mut row = r.to_json();
                row["replica"] = json!(seg.replica);
                row
            })
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
    let replicas: std::collections::BTreeSet<&str> =
        segments.iter().map(|s| s.replica.as_str()).filter(|r| !r.is_empty()).collect();
    if json_out {
        print_json(&json!({
            "model": name, "total_rows": total, "segments": segments.len(), "replicas": replicas, "rows": rows,
        }));
        return Ok(exit::OK);
    }
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    println!(
        "{name}: {total} logged rows in {} segment{} from {} replica{}; showing the last {}",
        segments.len(),
        plural(segments.len()),
        replicas.len(),
        plural(replicas.len()),
        rows.len()
    );
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
    let (project, models) = match &a.model_dir {
        Some(dir) => {
            let (project, name, version) =
                kairo_package::model_dir::serve_project(dir, a.state_dir.as_deref()).await.map_err(pkg)?;
            (project, vec![ModelRef::Version(name, version)])
        }
        None => (project()?, a.models.iter().map(|m| ModelRef::parse(m)).collect::<Result<Vec<_>, _>>()?),
    };
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
        tls: match (&a.tls_cert, &a.tls_key) {
            (Some(cert), Some(key)) => Some(kairo_http::Tls::from_pem_files(cert, key).map_err(Failure::usage)?),
            _ => None,
        },
    };
    let scheme = if config.tls.is_some() { "https" } else { "http" };
    let shutdown = async {
        crate::interrupted().await;
        tracing::info!("shutting down: finishing in-flight requests, flushing the prediction log");
    };
    kairo_serve::serve(&project, config, shutdown, |bound, served| {
        use std::io::Write;
        let mut out = std::io::stdout();
        let list: Vec<String> = served.iter().map(|(n, v)| format!("{n} v{v}")).collect();
        let _ = writeln!(out, "kairo serve listening on {scheme}://{bound}: {}", list.join(", "));
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
    if let Some(remote) = crate::remote::connect()? {
        let path = format!("/deployments/{}", segment(&a.name));
        let Some(version) = a.version else {
            return print_deployment(&remote.get(&path, &[]).await?, a.json);
        };
        let strategy = match a.strategy {
            StrategyArg::Direct => "direct",
            StrategyArg::Canary => "canary",
            StrategyArg::Shadow => "shadow",
        };
        let body = json!({
            "version": version, "strategy": strategy, "weight": a.weight, "max_error_rate": a.max_error_rate,
            "max_p99_ms": a.max_p99_ms, "min_requests": a.min_requests, "window_s": a.window_s,
            "force": a.force, "reason": a.reason,
        });
        return print_deployed(&remote.post(&path, &body).await?, a.json, false);
    }
    let project = project()?;
    let md = project.metadata().await?;
    let result = deploy_in(&project, &md, &a).await;
    md.close().await;
    result
}

async fn deploy_in(project: &Project, md: &Metadata, a: &DeployArgs) -> CmdResult {
    let Some(version) = a.version else {
        return print_deployment(&describe::deployment(md, &a.name).await?, a.json);
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
    print_deployed(&describe::deployed(&d), a.json, project.running_server().is_none())
}

/// A deployment's status: stable, candidate, the versions that served 100%, recent events.
fn print_deployment(doc: &Value, json_out: bool) -> CmdResult {
    if json_out {
        print_json(doc);
        return Ok(exit::OK);
    }
    let name = doc["name"].as_str().unwrap_or("");
    let events = doc["events"].as_array().map(Vec::as_slice).unwrap_or_default();
    let print_events = || {
        if !events.is_empty() {
            println!("  events:");
        }
        for e in events {
            let why = e["reason"].as_str().or_else(|| e["error"].as_str()).unwrap_or("");
            println!(
                "    {}  {:<22} {}  {why}",
                e["at"].as_str().unwrap_or(""),
                e["kind"].as_str().unwrap_or(""),
                e["actor"].as_str().unwrap_or("")
            );
        }
    };
    let Some(stable) = doc["stable"].as_i64() else {
        println!("{name} is not deployed; deploy with `kairo deploy {name} --version N`");
        print_events();
        return Ok(exit::OK);
    };
    println!("{name}: stable v{stable}");
    if let Some(c) = doc["candidate"].as_i64() {
        println!("  candidate v{c} ({}, {}%)", doc["strategy"].as_str().unwrap_or(""), doc["weight"]);
    }
    let revs: Vec<String> = doc["revisions"].as_array().into_iter().flatten().map(|v| format!("v{v}")).collect();
    println!("  versions that served 100%: {}", revs.join(" → "));
    print_events();
    Ok(exit::OK)
}

/// A deployment just changed. `hint`: no server runs on this project, so say how serving
/// processes pick the change up.
fn print_deployed(d: &Value, json_out: bool, hint: bool) -> CmdResult {
    if json_out {
        print_json(d);
        return Ok(exit::OK);
    }
    let name = d["name"].as_str().unwrap_or("");
    let (strategy, limits) = (d["strategy"].as_str().unwrap_or(""), &d["limits"]);
    let num = |k: &str| limits[k].as_f64().unwrap_or(0.0);
    match d["candidate"].as_i64() {
        None => println!("{name}: version {} now serves 100%", d["stable"]),
        Some(c) => println!(
            "{name}: version {c} is the {strategy} candidate{} beside stable version {}; rolls back if error rate > {} or p99 > {} ms after {} requests{}",
            if strategy == "canary" { format!(" ({}% of traffic)", d["weight"]) } else { String::new() },
            d["stable"],
            num("max_error_rate"),
            num("max_p99_ms"),
            limits["min_requests"],
            if strategy == "canary" { format!("; takes 100% after {} s healthy", limits["window_s"]) } else { String::new() }
        ),
    }
    if hint {
        println!("  running `kairo serve {name}` processes pick this up within their poll interval");
    }
    Ok(exit::OK)
}

pub async fn rollback(a: RollbackArgs) -> CmdResult {
    let (stable, what) = match crate::remote::connect()? {
        Some(remote) => {
            let doc = remote
                .post(&format!("/deployments/{}/rollback", segment(&a.name)), &json!({"reason": a.reason}))
                .await?;
            (doc["stable"].clone(), doc["what"].as_str().unwrap_or("rolled back").to_string())
        }
        None => {
            let project = project()?;
            let md = project.metadata().await?;
            let result = rollout::rollback(&md, &a.name, a.reason.clone(), &Project::actor()).await;
            md.close().await;
            let (d, what) = result?;
            (json!(d.stable_version), what)
        }
    };
    println!("{}: {what}; version {stable} serves 100%", a.name);
    Ok(exit::OK)
}
