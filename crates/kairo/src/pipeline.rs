//! `kairo run`, `kairo status`, `kairo runs ...`, `kairo reproduce`, `kairo lineage`.

use crate::report::print_json;
use crate::{CmdResult, Failure};
use clap::{Args, Subcommand, ValueEnum};
use kairo_core::exit;
use kairo_core::run::{Run, RunStatus, TRIGGERS};
use kairo_data::Project;
use kairo_pipeline::lineage;
use kairo_pipeline::query::{self, MetricFilter};
use kairo_pipeline::reproduce;
use kairo_pipeline::runner::{Action, Console, Interrupt, RunOptions, Runner, StageOutcome};
use kairo_store::runs::RunFilter;
use serde_json::Value;
use std::io::Write;
use std::sync::Arc;

/// Exit code of a run stopped by Ctrl-C, as shells report SIGINT.
pub const INTERRUPTED: i32 = 130;

#[derive(Args)]
pub struct RunArgs {
    /// Stages to bring up to date (with everything upstream); all when none are given.
    pub stages: Vec<String>,
    /// Run up to N independent stages at once.
    #[arg(short = 'j', long, default_value_t = 1)]
    pub jobs: usize,
    /// Say what would run and why, without running anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Run the selected stages even when up to date (and skip the run cache).
    #[arg(long)]
    pub force: bool,
    /// What started this run: manual, ci, schedule, api, alert (default: ci when $CI is set).
    #[arg(long)]
    pub trigger: Option<String>,
    /// Refuse, instead of waiting, when another `kairo run` is writing a stage's output.
    #[arg(long)]
    pub no_wait: bool,
    /// Print the stage outcomes as a JSON array (stage output goes to stderr).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct StatusArgs {
    /// Stages to check (with everything upstream); all when none are given.
    pub stages: Vec<String>,
    /// Print the stage outcomes as a JSON array.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum RunsCommand {
    /// List runs, newest first.
    Ls {
        /// Only runs of this stage.
        #[arg(long)]
        stage: Option<String>,
        /// running, succeeded, failed or interrupted.
        #[arg(long)]
        status: Option<String>,
        /// Keep runs whose metric satisfies METRIC OP NUMBER, e.g. `acc>=0.9` (repeatable).
        #[arg(long = "where", value_name = "EXPR")]
        filters: Vec<String>,
        /// Show at most this many runs.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Print the runs as a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Everything recorded about one run (id or unique prefix).
    Show {
        /// The run: its id or a unique prefix of one.
        id: String,
        /// Print the run's captured output instead.
        #[arg(long)]
        log: bool,
        /// Print the run's record as JSON.
        #[arg(long)]
        json: bool,
    },
    /// What differs between two runs: params, metrics, data, outputs, environment, code.
    Diff {
        /// The first run (A): its id or a unique prefix of one.
        a: String,
        /// The second run (B): its id or a unique prefix of one.
        b: String,
        /// Print the differences as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub struct ReproduceArgs {
    /// The run to re-execute (id or unique prefix).
    pub id: String,
    /// Keep the temporary worktree it ran in.
    #[arg(long)]
    pub keep: bool,
    /// What started this reproduction, recorded on its run: manual, ci, schedule, api, alert
    /// (default: ci when $CI is set).
    #[arg(long)]
    pub trigger: Option<String>,
    /// Print the comparison with the original run as JSON (stage output goes to stderr).
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum LineageFormat {
    Text,
    Json,
    Dot,
}

#[derive(Args)]
pub struct LineageArgs {
    /// A run id, a pipeline output path, a tracked dataset path, PATH@HASH, or a model version
    /// (NAME@ALIAS, NAME:VERSION).
    pub target: String,
    /// How to print the graph: text (an indented tree), json, or dot (Graphviz).
    #[arg(long, value_enum, default_value_t = LineageFormat::Text)]
    pub format: LineageFormat,
}

/// Prints stage output as it arrives; prefixes lines with the stage when several may interleave.
struct Terminal {
    prefix: bool,
    to_stderr: bool,
}

impl Console for Terminal {
    fn note(&self, stage: &str, message: &str) {
        eprintln!("stage `{stage}`: {message}");
    }

    fn line(&self, stage: &str, line: &str) {
        let text = if self.prefix { format!("[{stage}] {line}\n") } else { format!("{line}\n") };
        if self.to_stderr {
            let _ = std::io::stderr().write_all(text.as_bytes());
        } else {
            let _ = std::io::stdout().write_all(text.as_bytes());
        }
    }
}

fn project() -> Result<Project, Failure> {
    Ok(Project::discover(&std::env::current_dir()?)?)
}

fn trigger(given: Option<String>) -> Result<String, Failure> {
    let t = given.unwrap_or_else(|| {
        if std::env::var("CI").is_ok_and(|v| !v.is_empty()) {
            "ci".into()
        } else {
            "manual".into()
        }
    });
    if !TRIGGERS.contains(&t.as_str()) {
        return Err(Failure::usage(format!("--trigger `{t}`: expected one of {}", TRIGGERS.join(", "))));
    }
    Ok(t)
}

/// Ctrl-C and SIGTERM stop new stages and forward SIGINT to running commands.
pub(crate) fn watch_signals(interrupt: &Arc<Interrupt>) {
    use tokio::signal::unix::{signal, SignalKind};
    for kind in [SignalKind::interrupt(), SignalKind::terminate()] {
        let interrupt = Arc::clone(interrupt);
        if let Ok(mut s) = signal(kind) {
            tokio::spawn(async move {
                while s.recv().await.is_some() {
                    interrupt.trigger();
                }
            });
        }
    }
}

pub async fn run(args: RunArgs) -> CmdResult {
    let project = project()?;
    let pipeline = kairo_pipeline::load(&project)?;
    if pipeline.stages.is_empty() {
        return Err(Failure {
            code: exit::ERROR,
            message: "kairo.yaml has no `stages:` yet; see `kairo run --help` and the README".into(),
        });
    }
    let opts = RunOptions {
        targets: args.stages,
        force: args.force,
        dry_run: args.dry_run,
        jobs: args.jobs.max(1),
        trigger: trigger(args.trigger)?,
        no_wait: args.no_wait,
        actor: None,
    };
    let interrupt = Arc::new(Interrupt::default());
    watch_signals(&interrupt);
    let console = Terminal { prefix: opts.jobs > 1, to_stderr: args.json };
    let handle = tokio::runtime::Handle::current();
    let dry_run = opts.dry_run;
    let int = Arc::clone(&interrupt);
    let outcomes = tokio::task::spawn_blocking(move || -> Result<Vec<StageOutcome>, Failure> {
        let runner = Runner::new(&project, &pipeline, opts, handle, &int, &console)?;
        Ok(runner.run()?)
    })
    .await
    .map_err(|e| Failure { code: exit::ERROR, message: format!("the runner stopped: {e}") })??;
    if args.json {
        print_json(&outcomes);
    } else {
        print_outcomes(&outcomes, dry_run);
    }
    if interrupt.is_set() {
        return Ok(INTERRUPTED);
    }
    Ok(if outcomes.iter().any(|o| o.failed()) { exit::ERROR } else { exit::OK })
}

fn print_outcomes(outcomes: &[StageOutcome], dry_run: bool) {
    for o in outcomes {
        let why = if o.reasons.is_empty() { String::new() } else { format!(" ({})", o.reasons.join("; ")) };
        let run = o.run_id.as_deref().map(|r| format!(" [run {r}]")).unwrap_or_default();
        let line = match &o.action {
            Action::UpToDate => "up to date".to_string(),
            Action::WouldRun => format!("would run{why}"),
            Action::Restored { from_run } => format!("restored from the run cache (run {from_run}){why}"),
            Action::Ran { status, exit_code } => {
                let code = exit_code.filter(|c| *c != 0).map(|c| format!(", exit code {c}")).unwrap_or_default();
                format!("{}{code}{run}", status.as_str())
            }
            Action::Skipped { because } => format!("not run: {because}"),
            Action::Error => "error".to_string(),
        };
        println!("{:<20} {line}", o.stage);
        if let Some(m) = &o.message {
            // What went wrong goes to stderr, where CI logs and scripts look for errors.
            for l in m.lines() {
                if o.failed() {
                    eprintln!("{:<20}   {l}", o.stage);
                } else {
                    println!("{:<20}   {l}", "");
                }
            }
        }
    }
    if dry_run && outcomes.iter().all(|o| matches!(o.action, Action::UpToDate)) {
        println!("Everything is up to date.");
    }
}

pub async fn status(args: StatusArgs) -> CmdResult {
    let project = project()?;
    let pipeline = kairo_pipeline::load(&project)?;
    let opts = RunOptions {
        targets: args.stages,
        force: false,
        dry_run: true,
        jobs: 1,
        trigger: "manual".into(),
        no_wait: false,
        actor: None,
    };
    let interrupt = Interrupt::default();
    let console = Terminal { prefix: false, to_stderr: true };
    let handle = tokio::runtime::Handle::current();
    let outcomes = tokio::task::block_in_place(|| -> Result<Vec<StageOutcome>, Failure> {
        Ok(Runner::new(&project, &pipeline, opts, handle, &interrupt, &console)?.run()?)
    })?;
    let stale = outcomes.iter().any(|o| !matches!(o.action, Action::UpToDate));
    if args.json {
        print_json(&outcomes);
    } else {
        print_outcomes(&outcomes, true);
    }
    let broken = outcomes.iter().any(|o| matches!(o.action, Action::Error));
    Ok(if broken {
        exit::ERROR
    } else if stale {
        exit::CHANGED
    } else {
        exit::OK
    })
}

pub async fn runs(cmd: RunsCommand) -> CmdResult {
    if let Some(remote) = crate::remote::connect()? {
        return runs_remote(&remote, cmd).await;
    }
    let project = project()?;
    let md = project.metadata().await?;
    let result = runs_inner(&project, &md, cmd).await;
    md.close().await;
    result
}

fn parse_filters(filters: &[String]) -> Result<Vec<MetricFilter>, Failure> {
    filters
        .iter()
        .map(|f| MetricFilter::parse(f))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|m| Failure::usage(format!("--where {m}")))
}

fn parse_status(status: Option<String>) -> Result<Option<RunStatus>, Failure> {
    match status {
        None => Ok(None),
        Some(s) => RunStatus::parse(&s).map(Some).ok_or_else(|| {
            Failure::usage(format!("--status `{s}`: expected running, succeeded, failed or interrupted"))
        }),
    }
}

fn dto(r: &Run) -> Result<Value, Failure> {
    Ok(serde_json::to_value(kairo_server::api_v1::run_dto(r))?)
}

/// `kairo runs` through the team server: the same tables from `/api/v1/runs`; `--json` prints
/// the API's run documents.
async fn runs_remote(remote: &crate::remote::Remote, cmd: RunsCommand) -> CmdResult {
    match cmd {
        RunsCommand::Ls { stage, status, filters, limit, json } => {
            let status = parse_status(status)?;
            let filters = parse_filters(&filters)?;
            let mut query: Vec<(&str, String)> = vec![("limit", (if filters.is_empty() { limit } else { 10_000 }).clamp(1, 10_000).to_string())];
            query.extend(stage.map(|s| ("stage", s)));
            query.extend(status.map(|s| ("status", s.as_str().to_string())));
            let doc = remote.get("/runs", &query).await?;
            let runs: Vec<Value> = doc["runs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|r| filters.iter().all(|f| f.matches_value(r["metrics"][&f.key].as_f64())))
                .take(limit.max(0) as usize)
                .cloned()
                .collect();
            if json {
                print_json(&runs);
            } else {
                print_runs(&runs);
            }
            Ok(exit::OK)
        }
        RunsCommand::Show { id, log: false, json } => {
            let run = remote.get(&format!("/runs/{}", crate::remote::segment(&id)), &[]).await?;
            if json {
                print_json(&run);
            } else {
                print_run(&run);
            }
            Ok(exit::OK)
        }
        RunsCommand::Show { log: true, .. } | RunsCommand::Diff { .. } => Err(Failure::usage(
            "`runs show --log` and `runs diff` read the store where the runs are and are not served by /api/v1 yet: run them on the server, or without KAIRO_SERVER",
        )),
    }
}

async fn runs_inner(project: &Project, md: &kairo_store::Metadata, cmd: RunsCommand) -> CmdResult {
    match cmd {
        RunsCommand::Ls { stage, status, filters, limit, json } => {
            kairo_pipeline::runner::recover_orphans(project, md).await?;
            let status = parse_status(status)?;
            let filters = parse_filters(&filters)?;
            let all = md
                .runs(&RunFilter { stage, status, limit: if filters.is_empty() { Some(limit) } else { None } })
                .await?;
            let runs: Vec<Run> =
                all.into_iter().filter(|r| filters.iter().all(|f| f.matches(r))).take(limit.max(0) as usize).collect();
            if json {
                print_json(&runs);
            } else {
                print_runs(&runs.iter().map(dto).collect::<Result<Vec<_>, _>>()?);
            }
            let _ = project;
            Ok(exit::OK)
        }
        RunsCommand::Show { id, log, json } => {
            let run = md.run(&id).await?;
            if log {
                let Some(hash) = run.log else {
                    return Err(Failure {
                        code: exit::ERROR,
                        message: format!("run {} has no captured output", run.id),
                    });
                };
                let bytes = project.objects()?.read(&hash)?;
                std::io::stdout().write_all(&bytes)?;
                return Ok(exit::OK);
            }
            if json {
                print_json(&run);
            } else {
                print_run(&dto(&run)?);
            }
            Ok(exit::OK)
        }
        RunsCommand::Diff { a, b, json } => {
            let (ra, rb) = (md.run(&a).await?, md.run(&b).await?);
            let d = query::diff(&ra, &rb);
            if json {
                print_json(&d);
            } else {
                print_diff(&d);
            }
            Ok(exit::OK)
        }
    }
}

/// Seconds between two RFC 3339 times, as `Run::duration_secs`.
fn seconds(r: &Value) -> Option<f64> {
    let ms = |k: &str| Some(kairo_core::time::millis_of(r[k].as_str()?)).filter(|m| *m != 0);
    Some((ms("ended_at")? - ms("started_at")?) as f64 / 1000.0)
}

fn short(hash: &Value) -> &str {
    hash.as_str().map(|h| &h[..12.min(h.len())]).unwrap_or("")
}

/// Metric values as they were always shown (`{v}` of an f64; NaN, `null` in JSON, as NaN).
fn metric_text(v: &Value) -> String {
    v.as_f64().unwrap_or(f64::NAN).to_string()
}

/// Runs (as `/api/v1/runs` gives them) as a table.
fn print_runs(runs: &[Value]) {
    if runs.is_empty() {
        println!("No runs match.");
        return;
    }
    println!("{:<32}  {:<16}  {:<11}  {:<24}  {:>8}  metrics", "RUN", "STAGE", "STATUS", "STARTED", "SECONDS");
    for r in runs {
        let secs = seconds(r).map(|s| format!("{s:.2}")).unwrap_or_else(|| "-".into());
        let metrics: Vec<String> = r["metrics"]
            .as_object()
            .into_iter()
            .flatten()
            .take(4)
            .map(|(k, v)| format!("{k}={}", metric_text(v)))
            .collect();
        println!(
            "{:<32}  {:<16}  {:<11}  {:<24}  {:>8}  {}",
            r["id"].as_str().unwrap_or(""),
            r["stage"].as_str().unwrap_or(""),
            r["status"].as_str().unwrap_or(""),
            r["started_at"].as_str().unwrap_or(""),
            secs,
            metrics.join(" ")
        );
    }
}

/// One run (as `/api/v1/runs/{id}` gives it).
fn print_run(r: &Value) {
    let text = |k: &str| r[k].as_str().unwrap_or("");
    println!("run        {}", text("id"));
    println!("stage      {}", text("stage"));
    println!(
        "status     {}{}",
        text("status"),
        r["exit_code"].as_i64().map(|c| format!(" (exit code {c})")).unwrap_or_default()
    );
    if let Some(m) = r["message"].as_str() {
        println!("message    {}", m.lines().next().unwrap_or(""));
    }
    println!(
        "trigger    {} by {} on {} ({} executor, pid {})",
        text("trigger"),
        text("actor"),
        text("host"),
        text("executor"),
        r["pid"]
    );
    println!("started    {}", text("started_at"));
    println!(
        "ended      {}{}",
        r["ended_at"].as_str().unwrap_or("-"),
        seconds(r).map(|s| format!(" ({s:.2} s)")).unwrap_or_default()
    );
    println!(
        "code       commit {} branch {}{}",
        r["git_commit"].as_str().unwrap_or("-"),
        r["git_branch"].as_str().unwrap_or("-"),
        if r["uncommitted_changes"] == true { " (with uncommitted changes)" } else { "" }
    );
    println!("cmd        {}", text("cmd"));
    println!("env        {} {}", text("env"), short(&r["env_hash"]));
    for (k, v) in r["env_key"].as_object().into_iter().flatten() {
        if !k.ends_with(".packages") {
            println!("             {k}: {}", v.as_str().unwrap_or(""));
        }
    }
    if let Some(rep) = r["reproduces"].as_str() {
        println!("reproduces {rep}");
    }
    println!("cache key  {}{}", short(&r["cache_key"]), if r["cacheable"] == true { "" } else { " (not cacheable)" });
    let params = r["params"].as_object().filter(|p| !p.is_empty());
    if let Some(params) = params {
        println!("params");
        for (fk, v) in params {
            let (file, k) = fk.split_once(':').unwrap_or(("", fk));
            println!("  {k} = {}  ({file})", v.as_str().unwrap_or(""));
        }
    }
    println!("inputs");
    for d in r["inputs"].as_array().into_iter().flatten() {
        println!(
            "  {}  {} {}{}",
            d["path"].as_str().unwrap_or(""),
            d["kind"].as_str().unwrap_or(""),
            short(&d["hash"]),
            if d["dataset"] == true { " (dataset)" } else { "" }
        );
    }
    println!("outputs");
    for o in r["outputs"].as_array().into_iter().flatten() {
        println!("  {}  {} {}", o["path"].as_str().unwrap_or(""), o["kind"].as_str().unwrap_or(""), short(&o["hash"]));
    }
    if let Some(m) = r["metrics"].as_object().filter(|m| !m.is_empty()) {
        println!("metrics");
        for (k, v) in m {
            println!("  {k} = {}", metric_text(v));
        }
    }
    if r["log"].is_string() {
        println!("log        {} (`kairo runs show {} --log`)", short(&r["log"]), text("id"));
    }
}

fn print_diff(d: &query::RunDiff) {
    println!("A = {}\nB = {}", d.a, d.b);
    if d.is_empty() {
        println!("No differences.");
        return;
    }
    let section = |name: &str, changes: &[query::Change]| {
        if changes.is_empty() {
            return;
        }
        println!("{name}");
        for c in changes {
            println!("  {}: {} -> {}", c.key, c.a.as_deref().unwrap_or("(none)"), c.b.as_deref().unwrap_or("(none)"));
        }
    };
    section("params", &d.params);
    if !d.metrics.is_empty() {
        println!("metrics");
        for m in &d.metrics {
            let show = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_else(|| "(none)".into());
            let delta = m.delta.map(|x| format!(" ({x:+})")).unwrap_or_default();
            println!("  {}: {} -> {}{delta}", m.key, show(m.a), show(m.b));
        }
    }
    section("data", &d.data);
    section("outputs", &d.outputs);
    section("environment", &d.environment);
    section("code", &d.code);
}

pub async fn reproduce(args: ReproduceArgs) -> CmdResult {
    let project = project()?;
    let trigger = trigger(args.trigger)?;
    let interrupt = Arc::new(Interrupt::default());
    watch_signals(&interrupt);
    let handle = tokio::runtime::Handle::current();
    let int = Arc::clone(&interrupt);
    let json = args.json;
    let report = tokio::task::spawn_blocking(move || -> Result<reproduce::ReproduceReport, Failure> {
        let console = Terminal { prefix: false, to_stderr: json };
        Ok(reproduce::reproduce(&project, &args.id, args.keep, trigger, handle, &int, &console)?)
    })
    .await
    .map_err(|e| Failure { code: exit::ERROR, message: format!("reproduce stopped: {e}") })??;
    if json {
        print_json(&report);
    } else {
        for w in &report.warnings {
            eprintln!("warning: {w}");
        }
        println!("Reproduced run {} as run {} ({})", report.original, report.run.id, report.run.status.as_str());
        if let Some(m) = &report.run.message {
            println!("  {m}");
        }
        for o in &report.outputs {
            let verdict = if o.identical {
                "bit-identical".to_string()
            } else {
                format!(
                    "DIFFERS ({} -> {})",
                    o.original.short(),
                    o.reproduced.map(|h| h.short()).unwrap_or_else(|| "missing".into())
                )
            };
            println!("  {:<30} {verdict}", o.path);
        }
        for m in &report.metrics {
            let show = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_else(|| "(none)".into());
            println!(
                "  metric {}: {} -> {}{}",
                m.key,
                show(m.a),
                show(m.b),
                m.delta.map(|d| format!(" ({d:+})")).unwrap_or_default()
            );
        }
        if args.keep {
            println!("  worktree kept at {}", report.workdir.display());
        }
    }
    if interrupt.is_set() {
        return Ok(INTERRUPTED);
    }
    Ok(if report.identical() {
        exit::OK
    } else if report.run.status == RunStatus::Succeeded {
        exit::CHANGED
    } else {
        exit::ERROR
    })
}

pub async fn lineage(args: LineageArgs) -> CmdResult {
    let project = project()?;
    let md = project.metadata().await?;
    let model = model_target(&md, &args.target).await;
    let node = match &model {
        Ok(Some((_, _, run))) => lineage::lineage(&project, &md, run).await,
        Ok(None) => lineage::lineage(&project, &md, &args.target).await,
        Err(_) => Err(kairo_pipeline::PipelineError::Other(String::new())),
    };
    md.close().await;
    let model = model?;
    let node = node?;
    match (args.format, &model) {
        (LineageFormat::Text, Some((name, version, _))) => {
            println!("model {name} version {version}");
            print!("{}", lineage::render_text(&node));
        }
        (LineageFormat::Text, None) => print!("{}", lineage::render_text(&node)),
        (LineageFormat::Json, Some((name, version, _))) => {
            print_json(&serde_json::json!({"model": name, "version": version, "lineage": node}))
        }
        (LineageFormat::Json, None) => print_json(&node),
        (LineageFormat::Dot, _) => print!("{}", lineage::render_dot(&node)),
    }
    Ok(exit::OK)
}

/// `NAME@ALIAS` or `NAME:VERSION` of a registered model: (name, version, the run that trained it).
async fn model_target(md: &kairo_store::Metadata, target: &str) -> Result<Option<(String, i64, String)>, Failure> {
    let Ok(r) = kairo_registry::ModelRef::parse(target) else { return Ok(None) };
    if matches!(r, kairo_registry::ModelRef::Name(_)) || md.registered_model(r.name()).await.is_err() {
        return Ok(None);
    }
    let version = r.resolve(md).await?;
    let v = md.model_version(r.name(), version).await?;
    let run = v.run_id.ok_or_else(|| Failure {
        code: exit::ERROR,
        message: format!(
            "{} version {version} was registered from a file ({}), so it has no recorded lineage; register from a run with --run RUN --artifact PATH",
            r.name(),
            v.source
        ),
    })?;
    Ok(Some((r.name().to_string(), version, run)))
}
