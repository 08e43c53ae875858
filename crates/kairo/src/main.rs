//! The `kairo` command line: argument parsing, output formatting and exit codes over the
//! library crates. No domain logic lives here.

mod automations;
mod data;
mod demo;
mod demo_loop;
mod events;
mod kpi;
mod logging;
mod models;
mod monitor;
mod pipeline;
mod predict;
mod progress;
mod remote;
mod remotes;
mod report;
mod server;
mod train;
mod users;

use clap::{Parser, Subcommand};
use kairo_core::exit;
use std::path::PathBuf;
use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Return freed memory to the OS at once (`on`), or after mimalloc's usual delay again. While
/// `kairo predict` loads a model, a large forest's file, its decoded protobuf (grown buffer by
/// buffer) and the built ensemble pass through memory one after another: returning each as it
/// is freed keeps the peak near the largest of them (a 53 MB forest: 325 → 250 MB) without
/// slowing the scoring that follows.
#[allow(unsafe_code)]
pub(crate) fn return_freed_memory_at_once(on: bool) {
    // `mi_option_purge_delay` in mimalloc v3's `mi_option_e` (mimalloc.h); libmimalloc-sys
    // names no constant for it.
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    static USUAL: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(i64::MIN);
    // SAFETY: mi_option_get/mi_option_set only read and write mimalloc's option table.
    unsafe {
        if on {
            let usual = libmimalloc_sys::mi_option_get(PURGE_DELAY);
            USUAL.store(usual as i64, std::sync::atomic::Ordering::Relaxed);
            libmimalloc_sys::mi_option_set(PURGE_DELAY, 0);
        } else {
            let usual = USUAL.load(std::sync::atomic::Ordering::Relaxed);
            if usual != i64::MIN {
                libmimalloc_sys::mi_option_set(PURGE_DELAY, usual as std::ffi::c_long);
            }
        }
    }
}

#[derive(Parser)]
#[command(name = "kairo", version, about = "Kairo: version data, train reproducibly, deploy and monitor models.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make the current directory (or DIR) a Kairo project: `.kairo/` store and `kairo.yaml`.
    Init {
        /// The directory to initialize (default: the current directory); it must exist.
        dir: Option<PathBuf>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Version datasets: add, status, checkout, push, pull, log, diff, gc, verify.
    Data {
        #[command(subcommand)]
        command: data::DataCommand,
    },
    /// Storage remotes (S3, Google Cloud Storage, Azure Blob, SSH, a directory): add, ls, test.
    Remote {
        #[command(subcommand)]
        command: remotes::RemoteCommand,
    },
    /// Run the pipeline's stale stages (or the named ones), recording each execution as a run.
    Run(pipeline::RunArgs),
    /// Say for each stage whether it is up to date, and if not why (exit 3 when any is stale).
    Status(pipeline::StatusArgs),
    /// Inspect recorded runs: ls, show, diff.
    Runs {
        #[command(subcommand)]
        command: pipeline::RunsCommand,
    },
    /// Re-execute a recorded run from exactly its inputs and compare the outputs.
    Reproduce(pipeline::ReproduceArgs),
    /// Show where a run, output or dataset version came from.
    Lineage(pipeline::LineageArgs),
    /// The model registry: register, ls, show, promote (gated), alias.
    Models {
        #[command(subcommand)]
        command: models::ModelsCommand,
    },
    /// Train a tabular model (logistic, linear, gbdt, random_forest) and write it as ONNX.
    Train(train::TrainArgs),
    /// Serve models for inference: Open Inference Protocol v2, MLflow /invocations, /metrics.
    Serve(models::ServeArgs),
    /// Score a CSV or Parquet file (or a directory of them) with a registered version, as
    /// `kairo serve` would, into Parquet or CSV; recorded as a run with its lineage.
    Predict(predict::PredictArgs),
    /// Monitoring: drift between a reference and current data (`monitor check`).
    Monitor {
        #[command(subcommand)]
        command: monitor::MonitorCommand,
    },
    /// Roll a version out: direct, canary (a share of traffic) or shadow (mirrored), with
    /// automatic rollback on errors or latency.
    Deploy(models::DeployArgs),
    /// Return a model's deployment to the last version that served 100%.
    Rollback(models::RollbackArgs),
    /// The closed loop: automations in kairo.yaml (ls, run NAME [--dry-run], tick).
    Automations {
        #[command(subcommand)]
        command: automations::AutomationsCommand,
    },
    /// What the loop did: incidents (ls, show ID) with their timeline and evidence.
    Incidents {
        #[command(subcommand)]
        command: automations::IncidentsCommand,
    },
    /// The value report: deployment frequency, lead time by stage, change failure rate, time
    /// to restore, automation rate, quality over time, serving health, compute and ROI.
    Kpi(kpi::KpiArgs),
    /// Serve the project over HTTP: the MLflow-compatible tracking API and artifact proxy.
    Server(server::ServerArgs),
    /// The team server's users and service accounts, with their roles (add, ls, grant, revoke,
    /// disable, enable, passwd). A project with users requires credentials on `kairo server`.
    Users {
        #[command(subcommand)]
        command: users::UsersCommand,
    },
    /// The audit trail's integrity: `events verify` checks the hash chain.
    Events {
        #[command(subcommand)]
        command: events::EventsCommand,
    },
    /// API tokens for users and service accounts (create, ls, revoke).
    Tokens {
        #[command(subcommand)]
        command: users::TokensCommand,
    },
    /// Log in to a team server (`server:` in kairo.yaml or KAIRO_SERVER): a password makes an
    /// API token, stored for this user (mode 0600); or store a token from stdin.
    Login(remote::LoginArgs),
    /// Forget the token stored for a server.
    Logout(remote::LogoutArgs),
    /// Who the CLI acts as (on a server: the token's user and roles).
    Whoami,
    /// Print a shell completion script: `kairo completions bash > /etc/bash_completion.d/kairo`,
    /// `kairo completions zsh > "${fpath[1]}/_kairo"`, `kairo completions fish >
    /// ~/.config/fish/completions/kairo.fish`.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the manual page kairo(1), or write one page per command into --out-dir
    /// (kairo.1, kairo-models.1, kairo-models-package.1, ...).
    Man {
        /// Write every command's page into this directory instead of printing kairo(1).
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
    /// A scripted walk through Kairo on generated sample data, in a scratch directory.
    Demo {
        /// Where to build the demo project (default: a new temp directory, removed afterwards).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The earlier walk-through instead (data versioning, pipelines, registry, canary).
        #[arg(long)]
        tour: bool,
    },
}

impl Command {
    /// The logging flags of a long-running command (its logs go through `tracing`, it stops
    /// gracefully on SIGINT/SIGTERM); one-shot commands print to stdout and stderr themselves.
    fn log_args(&self) -> Option<&logging::LogArgs> {
        match self {
            Command::Server(a) => Some(&a.log),
            Command::Serve(a) => Some(&a.log),
            _ => None,
        }
    }
}

/// A failed command: what to print and which exit code to use.
///
/// Exit codes are chosen here, once per kind of failure: a library error that reaches a
/// command through `?` exits `exit::ERROR` (the `From` below), except the kinds that
/// [`Failure::watch`] (and any later `Failure::<library>` mapping) give their own code; the
/// command-line checks clap cannot express use [`Failure::usage`]. Outcomes that are not
/// failures (`CHANGED`, `GATE_FAILED`, `PENDING`, `CORRUPT`) are returned as `Ok(code)`.
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure { code: exit::ERROR, message: e.to_string() }
    }
}

impl Failure {
    /// A command-line mistake clap cannot catch (a flag's value, a combination): exit 2.
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure { code: exit::USAGE, message: message.into() }
    }

    /// The one mapping of `WatchError` to an exit code: a monitor whose own definition is
    /// wrong (a rule, a window) is a usage error (2); anything else about the data is 1.
    /// (Every other library error is 1, through the `From` above.)
    pub fn watch(e: kairo_watch::WatchError) -> Failure {
        Failure { code: if e.is_spec() { exit::USAGE } else { exit::ERROR }, message: e.to_string() }
    }

    /// The loop's failure: naming an automation that does not exist is a usage error.
    pub fn closed_loop(e: kairo_loop::LoopError) -> Failure {
        let code = match e {
            kairo_loop::LoopError::UnknownAutomation(..) => exit::USAGE,
            _ => exit::ERROR,
        };
        Failure { code, message: e.to_string() }
    }
}

pub type CmdResult = Result<i32, Failure>;

fn main() -> ExitCode {
    quiet_on_closed_pipe();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::USAGE as u8 } else { 0 });
        }
    };
    if let Some(log) = cli.command.log_args() {
        if let Err(message) = logging::init(log) {
            eprintln!("error: {message}");
            return ExitCode::from(exit::USAGE as u8);
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::ERROR as u8);
        }
    };
    let result = runtime.block_on(run(cli));
    match result {
        Ok(code) => ExitCode::from(code as u8),
        Err(f) => {
            eprintln!("error: {}", f.message);
            ExitCode::from(f.code as u8)
        }
    }
}

async fn run(cli: Cli) -> CmdResult {
    if cli.command.log_args().is_some() {
        listen_for_shutdown();
    }
    match cli.command {
        Command::Init { dir, json } => init(dir, json).await,
        Command::Data { command } => data::run(command).await,
        Command::Remote { command } => remotes::run(command).await,
        Command::Run(args) => pipeline::run(args).await,
        Command::Status(args) => pipeline::status(args).await,
        Command::Runs { command } => pipeline::runs(command).await,
        Command::Reproduce(args) => pipeline::reproduce(args).await,
        Command::Lineage(args) => pipeline::lineage(args).await,
        Command::Models { command } => models::run(command).await,
        Command::Serve(args) => models::serve(args).await,
        Command::Train(args) => train::run(args),
        Command::Deploy(args) => models::deploy(args).await,
        Command::Predict(args) => predict::run(args).await,
        Command::Monitor { command } => monitor::run(command).await,
        Command::Rollback(args) => models::rollback(args).await,
        Command::Automations { command } => automations::automations(command).await,
        Command::Incidents { command } => automations::incidents(command).await,
        Command::Kpi(args) => kpi::run(args).await,
        Command::Server(args) => server::run(args).await,
        Command::Users { command } => users::users(command).await,
        Command::Events { command } => events::run(command).await,
        Command::Tokens { command } => users::tokens(command).await,
        Command::Demo { dir, tour } => demo::run(dir, tour).await,
        Command::Login(args) => remote::login(args).await,
        Command::Logout(args) => remote::logout(args),
        Command::Whoami => remote::whoami().await,
        Command::Completions { shell } => {
            use clap::CommandFactory;
            use std::io::Write;
            // Into a buffer first: the generator panics on a write error (a closed pipe).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "kairo", &mut script);
            let _ = std::io::stdout().write_all(&script);
            Ok(exit::OK)
        }
        Command::Man { out_dir } => man(out_dir),
    }
}

/// kairo(1) on stdout, or a page per command (`kairo-models-package.1`) into `dir`.
fn man(dir: Option<PathBuf>) -> CmdResult {
    use clap::CommandFactory;
    let failed = |what: String, e: std::io::Error| Failure { code: exit::ERROR, message: format!("{what}: {e}") };
    let root = Cli::command();
    let Some(dir) = dir else {
        clap_mangen::Man::new(root).render(&mut std::io::stdout()).map_err(|e| failed("stdout".into(), e))?;
        return Ok(exit::OK);
    };
    std::fs::create_dir_all(&dir).map_err(|e| failed(dir.display().to_string(), e))?;
    fn pages(
        cmd: clap::Command,
        name: String,
        dir: &std::path::Path,
        written: &mut Vec<PathBuf>,
    ) -> std::io::Result<()> {
        let path = dir.join(format!("{name}.1"));
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd.clone().display_name(name.clone()).bin_name(name.replace('-', " ")))
            .title(name.clone())
            .render(&mut out)?;
        std::fs::write(&path, out)?;
        written.push(path);
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            pages(sub.clone(), format!("{name}-{}", sub.get_name()), dir, written)?;
        }
        Ok(())
    }
    let mut written = Vec::new();
    pages(root.clone().bin_name("kairo"), "kairo".into(), &dir, &mut written)
        .map_err(|e| failed(dir.display().to_string(), e))?;
    println!("wrote {} manual pages to {} (man -l {}/kairo.1)", written.len(), dir.display(), dir.display());
    Ok(exit::OK)
}

async fn init(dir: Option<PathBuf>, json: bool) -> CmdResult {
    let dir = match dir {
        Some(d) => d,
        None => std::env::current_dir()?,
    };
    if !dir.is_dir() {
        return Err(Failure { code: exit::ERROR, message: format!("{}: no such directory", dir.display()) });
    }
    let r = kairo_data::project::Project::init(&dir).await?;
    if json {
        report::print_json(&serde_json::json!({
            "root": r.root, "git": r.in_git, "created_config": r.created_config,
            "already_initialized": r.already_initialized,
        }));
    } else {
        if !r.in_git {
            eprintln!(
                "warning: {} is not in a git repository; code versions will not be recorded (run `git init` to fix)",
                r.root.display()
            );
        }
        let verb = if r.already_initialized { "Reinitialized" } else { "Initialized" };
        println!("{verb} Kairo project in {}", r.root.display());
        if r.created_config {
            println!("  wrote kairo.yaml; the local store is .kairo/ (ignored by git)");
        }
    }
    Ok(exit::OK)
}

/// Set once a long-running command's SIGINT/SIGTERM handlers are in place (`listen_for_shutdown`).
static SHUTDOWN: std::sync::OnceLock<tokio::sync::watch::Receiver<bool>> = std::sync::OnceLock::new();

/// Take over SIGINT and SIGTERM before a long-running command starts: a signal that arrives
/// right after it prints "listening on" (a supervisor, a test) must stop it gracefully, not
/// kill it with the prediction log unflushed. Handlers installed lazily, when the shutdown
/// future is first polled, left that window open.
fn listen_for_shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
        return;
    };
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        let _ = tx.send(true);
    });
    let _ = SHUTDOWN.set(rx);
}

/// Resolves at the first SIGINT or SIGTERM (never, if the handlers cannot be installed): the
/// graceful-shutdown signal of the long-running commands.
pub async fn interrupted() {
    if let Some(rx) = SHUTDOWN.get() {
        let mut rx = rx.clone();
        if rx.wait_for(|signalled| *signalled).await.is_err() {
            std::future::pending::<()>().await;
        }
        return;
    }
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
        return std::future::pending::<()>().await;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

/// `kairo runs ls | head` closes our stdout early. Like other Unix tools, stop quietly then
/// (exit 141, as SIGPIPE would) instead of printing a panic; every other panic is reported.
fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every subcommand, flag and argument says what it is for (`kairo ... --help`, the man
    /// page and the completions are made from these).
    #[test]
    fn every_command_flag_and_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                let id = a.get_id().as_str();
                if id == "help" || id == "version" || a.is_hide_set() {
                    continue;
                }
                if a.get_help().is_none() && a.get_long_help().is_none() {
                    missing.push(format!(
                        "{path} {}",
                        a.get_long().map(|l| format!("--{l}")).unwrap_or_else(|| id.to_uppercase())
                    ));
                }
            }
            for sub in cmd.get_subcommands() {
                let here = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() && sub.get_long_about().is_none() && sub.get_name() != "help" {
                    missing.push(here.clone());
                }
                walk(sub, &here, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&super::Cli::command(), "kairo", &mut missing);
        assert!(missing.is_empty(), "{} without help text:\n{}", missing.len(), missing.join("\n"));
    }
}
