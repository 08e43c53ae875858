//! `kairo remote add|ls|test`: the storage remotes of `kairo.yaml` (`remotes:`), where data,
//! run outputs, model bytes and prediction-log segments are pushed. Adding is
//! `Project::add_remote`, testing `Remote::probe`; this parses and prints. Credentials are
//! never written: each cloud's own environment and files provide them (`kairo_store::remote`).

use crate::{CmdResult, Failure};
use clap::Subcommand;
use kairo_core::exit;
use kairo_data::Project;
use kairo_store::remote::parse_url;

#[derive(Subcommand, Debug)]
pub enum RemoteCommand {
    /// Add a remote to kairo.yaml: s3://bucket/prefix, gs://bucket/prefix, az://container/prefix
    /// (or azure://, abfs[s]://container@account.dfs.core.windows.net/prefix),
    /// ssh://[user@]host[:port]/path (SFTP), or a directory.
    Add {
        /// The remote's name in kairo.yaml (letters, digits, - and _).
        name: String,
        /// Where it is: s3://…, gs://…, az://…, ssh://…, file:///dir or a directory path (no credentials).
        url: String,
        /// Also make it `default_remote`.
        #[arg(long)]
        default: bool,
    },
    /// List the remotes of kairo.yaml.
    Ls {
        /// Print them as JSON (name, url, kind, default).
        #[arg(long)]
        json: bool,
    },
    /// Write, read, list and delete a probe object on a remote (default: `default_remote`), and
    /// time a larger upload and download: what works, the latency, the throughput.
    Test {
        /// The remote (default: `default_remote`).
        name: Option<String>,
        /// Bytes of the throughput probe (0: none).
        #[arg(long, default_value_t = 8 << 20)]
        size: usize,
        /// Print the steps as JSON (what, bytes, seconds, error).
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(command: RemoteCommand) -> CmdResult {
    let project = Project::discover(&std::env::current_dir()?)?;
    match command {
        RemoteCommand::Add { name, url, default } => add(&project, &name, &url, default),
        RemoteCommand::Ls { json } => {
            let config = project.config();
            let rows: Vec<serde_json::Value> = config
                .remotes
                .iter()
                .map(|(n, r)| {
                    serde_json::json!({
                        "name": n,
                        "url": r.url,
                        "kind": parse_url(&r.url).map(|p| p.kind.name()).unwrap_or("invalid"),
                        "default": config.default_remote.as_deref() == Some(n.as_str()),
                    })
                })
                .collect();
            if json {
                println!("{}", serde_json::Value::Array(rows));
            } else if rows.is_empty() {
                println!("no remotes (add one: kairo remote add NAME URL --default)");
            } else {
                for r in rows {
                    let mark = if r["default"] == true { " (default)" } else { "" };
                    println!(
                        "{}\t{}\t{}{mark}",
                        r["name"].as_str().unwrap_or(""),
                        r["kind"].as_str().unwrap_or(""),
                        r["url"].as_str().unwrap_or("")
                    );
                }
            }
            Ok(exit::OK)
        }
        RemoteCommand::Test { name, size, json } => {
            let remote = project.remote(name.as_deref())?;
            let steps = remote.probe(size).await;
            let failed = steps.iter().any(|s| s.error.is_some());
            if json {
                println!("{}", serde_json::json!({"remote": remote.url(), "ok": !failed, "steps": steps}));
            } else {
                println!("remote {}", remote.url());
                for s in &steps {
                    let rate = if s.bytes > 1024 && s.seconds > 0.0 {
                        format!(", {:.1} MB/s", s.bytes as f64 / s.seconds / 1e6)
                    } else {
                        String::new()
                    };
                    match &s.error {
                        None => println!("  {:<8} ok   {:>8.1} ms{rate}", s.what, s.seconds * 1000.0),
                        Some(e) => println!("  {:<8} FAIL {e}", s.what),
                    }
                }
            }
            Ok(if failed { exit::ERROR } else { exit::OK })
        }
    }
}

fn add(project: &Project, name: &str, url: &str, default: bool) -> CmdResult {
    if let Err(e) = project.add_remote(name, url, default) {
        return Err(match e {
            kairo_data::DataError::RemoteRefused(m) => Failure::usage(m),
            e => e.into(),
        });
    }
    println!("added remote `{name}` ({url}){}", if default { " as the default" } else { "" });
    Ok(exit::OK)
}
