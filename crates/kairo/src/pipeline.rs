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
use std::io::Write;
use std::sync::Arc;

/// Exit code of a run stopped by Ctrl-C, as shells report SIGINT.
const INTERRUPTED: i32 = 130;

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
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct StatusArgs {
    pub stages: Vec<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum RunsCommand {
    /// List runs, newest first.
    Ls {
        #[arg(long)]
        stage: Option<String>,
        /// running, succeeded, failed or interrupted.
        #[arg(long)]
        status: Option<String>,
        /// Keep runs whose metric satisfies METRIC OP NUMBER, e.g. `acc>=0.9` (repeatable).
        #[arg(long = "where", value_name = "EXPR")]
        filters: Vec<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Everything recorded about one run (id or unique prefix).
    Show {
        id: String,
        /// Print the run's captured output instead.
        #[arg(long)]
        log: bool,
        #[arg(long)]
        json: bool,
    },
    /// What differs between two runs: params, metrics, data, outputs, environment, code.
    Diff {
        a: String,
        b: String,
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
    #[arg(long)]
    pub trigger: Option<String>,
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
fn watch_signals(interrupt: &Arc<Interrupt>) {
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
    let project = project()?;
    let md = project.metadata().await?;
    let result = runs_inner(&project, &md, cmd).await;
    md.close().await;
    result
}

async fn runs_inner(project: &Project, md: &kairo_store::Metadata, cmd: RunsCommand) -> CmdResult {
    match cmd {
        RunsCommand::Ls { stage, status, filters, limit, json } => {
            kairo_pipeline::runner::recover_orphans(md).await?;
            let status = match status {
                None => None,
                Some(s) => Some(RunStatus::parse(&s).ok_or_else(|| {
                    Failure::usage(format!("--status `{s}`: expected running, succeeded, failed or interrupted"))
                })?),
            };
            let filters = filters
                .iter()
                .map(|f| MetricFilter::parse(f))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|m| Failure::usage(format!("--where {m}")))?;
            let all = md
                .runs(&RunFilter { stage, status, limit: if filters.is_empty() { Some(limit) } else { None } })
                .await?;
            let runs: Vec<Run> =
                all.into_iter().filter(|r| filters.iter().all(|f| f.matches(r))).take(limit.max(0) as usize).collect();
            if json {
                print_json(&runs);
            } else if runs.is_empty() {
                println!("No runs match.");
            } else {
                println!(
                    "{:<32}  {:<16}  {:<11}  {:<24}  {:>8}  metrics",
                    "RUN", "STAGE", "STATUS", "STARTED", "SECONDS"
                );
                for r in &runs {
                    let secs = r.duration_secs().map(|s| format!("{s:.2}")).unwrap_or_else(|| "-".into());
                    let metrics: Vec<String> = r.metrics.iter().take(4).map(|(k, v)| format!("{k}={v}")).collect();
                    println!(
                        "{:<32}  {:<16}  {:<11}  {:<24}  {:>8}  {}",
                        r.id,
                        r.stage,
                        r.status.as_str(),
                        r.started_at,
                        secs,
                        metrics.join(" ")
                    );
                }
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
                print_run(&run);
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

fn print_run(r: &Run) {
    println!("run        {}", r.id);
    println!("stage      {}", r.stage);
    println!(
        "status     {}{}",
        r.status.as_str(),
        r.exit_code.map(|c| format!(" (exit code {c})")).unwrap_or_default()
    );
    if let Some(m) = &r.message {
        println!("message    {}", m.lines().next().unwrap_or(""));
    }
    println!("trigger    {} by {} on {} ({} executor, pid {})", r.trigger, r.actor, r.host, r.executor, r.pid);
    println!("started    {}", r.started_at);
    println!(
        "ended      {}{}",
        r.ended_at.as_deref().unwrap_or("-"),
        r.duration_secs().map(|s| format!(" ({s:.2} s)")).unwrap_or_default()
    );
    println!(
        "code       commit {} branch {}{}",
        r.git.commit.as_deref().unwrap_or("-"),
        r.git.branch.as_deref().unwrap_or("-"),
        if r.git.dirty.is_some() { " (with uncommitted changes)" } else { "" }
    );
    println!("cmd        {}", r.cmd);
    println!("env        {} {}", r.env.spec, r.env.hash.short());
    for (k, v) in &r.env.key {
        if !k.ends_with(".packages") {
            println!("             {k}: {v}");
        }
    }
    if let Some(rep) = &r.reproduces {
        println!("reproduces {rep}");
    }
    println!("cache key  {}{}", r.cache_key.short(), if r.cacheable { "" } else { " (not cacheable)" });
    if !r.params.is_empty() {
        println!("params");
        for (file, kv) in &r.params {
            for (k, v) in kv {
                println!("  {k} = {v}  ({file})");
            }
        }
    }
    println!("inputs");
    for d in &r.deps {
        println!("  {}  {} {}{}", d.path, d.kind, d.hash.short(), if d.dataset { " (dataset)" } else { "" });
    }
    println!("outputs");
    for o in &r.outs {
        println!("  {}  {} {}", o.path, o.kind, o.hash.short());
    }
    if !r.metrics.is_empty() {
        println!("metrics");
        for (k, v) in &r.metrics {
            println!("  {k} = {v}");
        }
    }
    if let Some(l) = r.log {
        println!("log        {} (`kairo runs show {} --log`)", l.short(), r.id);
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
