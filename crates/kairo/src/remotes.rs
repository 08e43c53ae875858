//! `kairo remote add|ls|test`: the storage remotes of `kairo.yaml` (`remotes:`), where data,
//! run outputs, model bytes and prediction-log segments are pushed. Credentials are never
//! written: each cloud's own environment and files provide them (`kairo_store::remote`).

use crate::{CmdResult, Failure};
use clap::Subcommand;
use kairo_core::exit;
use kairo_data::Project;
use kairo_store::remote::{parse_url, Kind};

#[derive(Subcommand, Debug)]
pub enum RemoteCommand {
    /// Add a remote to kairo.yaml: s3://bucket/prefix, gs://bucket/prefix, az://container/prefix
    /// (or azure://, abfs[s]://container@account.dfs.core.windows.net/prefix), or a directory.
    Add {
        /// The remote's name in kairo.yaml (letters, digits, - and _).
        name: String,
        /// Where it is: s3://…, gs://…, az://…, file:///dir or a directory path (no credentials).
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

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::S3 => "s3",
        Kind::Gcs => "gcs",
        Kind::Azure => "azure",
        Kind::Dir => "directory",
    }
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
                        "kind": parse_url(&r.url).map(|p| kind_name(p.kind)).unwrap_or("invalid"),
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

/// Add `name: {url}` under `remotes:` in kairo.yaml's text (keeping the rest as written), and
/// `default_remote: name` with `--default`; the result must parse to the same config plus it.
/// The URL is checked, not the remote (its credentials may live where this shell cannot see
/// them): `kairo remote test` does that.
fn add(project: &Project, name: &str, url: &str, default: bool) -> CmdResult {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(Failure::usage(format!("remote name `{name}`: use letters, digits, - and _")));
    }
    parse_url(url).map_err(|e| Failure::usage(format!("remote `{name}` ({url}): {e}")))?;
    if project.config().remotes.contains_key(name) {
        return Err(Failure::usage(format!(
            "kairo.yaml has a remote named `{name}` already ({}); edit it there",
            project.config().remotes[name].url
        )));
    }
    let path = project.root().join("kairo.yaml");
    let text = std::fs::read_to_string(&path)?;
    let entry = format!("  {name}:\n    url: {}\n", serde_json::Value::String(url.to_string()));
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    match lines.iter().position(|l| l.trim_end() == "remotes:") {
        Some(at) => lines.insert(at + 1, entry.trim_end().to_string()),
        None => lines.push(format!("remotes:\n{}", entry.trim_end())),
    }
    if default {
        match lines.iter().position(|l| l.starts_with("default_remote:")) {
            Some(at) => lines[at] = format!("default_remote: {name}"),
            None => lines.push(format!("default_remote: {name}")),
        }
    }
    let new = lines.join("\n") + "\n";
    let parsed = kairo_core::config::Config::parse(&new).ok();
    if parsed.as_ref().and_then(|c| c.remotes.get(name)).map(|r| r.url.as_str()) != Some(url) {
        return Err(Failure::usage(format!(
            "kairo.yaml's `remotes:` is not in a form this command can add to; add it by hand:\nremotes:\n{entry}"
        )));
    }
    std::fs::write(&path, new)?;
    println!("added remote `{name}` ({url}){}", if default { " as the default" } else { "" });
    Ok(exit::OK)
}
