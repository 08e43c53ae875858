//! `kairo data ...`

use crate::progress::Bar;
use crate::report::{bytes, plural, print_json};
use crate::{CmdResult, Failure};
use clap::Subcommand;
use kairo_core::exit;
use kairo_data::status::State;
use kairo_data::{add, checkout, gc, history, status, transfer, verify, DataError, Project};
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum DataCommand {
    /// Track files or directories: store their contents and write PATH.kairo pointers for git.
    Add {
        /// Files or directories to track, inside the project.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Also follow symbolic links that leave the project, storing their targets' content
        /// (links within the project are always followed so; without this flag links leaving it
        /// are refused; links into .kairo/ and link cycles are always refused).
        #[arg(long)]
        follow_symlinks: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show whether tracked paths match their recorded versions (exit 3 when any differs).
    Status {
        /// Tracked paths, or their .kairo pointers (all when none).
        paths: Vec<PathBuf>,
        /// Print the statuses as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Restore tracked paths to the versions their pointers name.
    Checkout {
        /// Tracked paths, or their .kairo pointers (all when none).
        paths: Vec<PathBuf>,
        /// Discard changes that are not in the store.
        #[arg(long)]
        force: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Upload the objects of tracked paths that the remote lacks.
    Push {
        #[command(flatten)]
        transfer: TransferArgs,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Download (and verify) the objects of tracked paths, then check them out.
    Pull {
        #[command(flatten)]
        transfer: TransferArgs,
        /// Only fetch into the store; leave the work tree alone.
        #[arg(long)]
        no_checkout: bool,
        /// Discard local changes that are not in the store when checking out.
        #[arg(long)]
        force: bool,
        /// Print the result (transfer and checkout) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the versions of a tracked path, newest first.
    Log {
        /// The tracked path (or its .kairo pointer).
        path: PathBuf,
        /// Print the versions as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Files added, removed and modified between two versions of a tracked path.
    /// No versions: recorded → work tree; one: it → recorded. A version is `workspace`,
    /// `recorded`, a hash (prefix) from `kairo data log`, or a git revision.
    Diff {
        /// The tracked path (or its .kairo pointer).
        path: PathBuf,
        /// The version to compare from (without it: the recorded version against the work tree).
        from: Option<String>,
        /// The version to compare to (default: `recorded`).
        to: Option<String>,
        /// Print the added, removed and modified files as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove objects no pointer (in the work tree or any commit of this branch), run or model uses.
    ///
    /// With `--remote`, collect a remote instead of the local store: it keeps what any branch or
    /// tag of this clone, any run or model references, and anything younger than `--grace`.
    Gc {
        /// Count what would be removed; delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Collect this remote (default: `default_remote`) instead of the local store.
        #[arg(long, short, num_args = 0..=1, default_missing_value = "", value_name = "NAME")]
        remote: Option<String>,
        /// Keep unreferenced remote objects younger than this (a push whose pointers are not
        /// committed yet): `0`, `90s`, `30m`, `12h`, `7d`.
        #[arg(long, default_value = "1d", requires = "remote")]
        grace: String,
        /// Requests in flight at once (with `--remote`).
        #[arg(long, short, default_value_t = 16)]
        jobs: usize,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Re-hash every object in the store and check tracked versions are complete (exit 4 on damage).
    ///
    /// With `--remote`, verify a remote instead: every object the tracked versions need is
    /// there and, unless `--quick`, downloads and hashes to its name (nothing is kept).
    Verify {
        /// Print the result (corrupt and missing objects) as JSON.
        #[arg(long)]
        json: bool,
        /// Verify this remote (default: `default_remote`) instead of the local store.
        #[arg(long, short, num_args = 0..=1, default_missing_value = "", value_name = "NAME")]
        remote: Option<String>,
        /// With `--remote`: only check that every object is there (no download).
        #[arg(long, requires = "remote")]
        quick: bool,
        /// Requests in flight at once (with `--remote`).
        #[arg(long, short, default_value_t = 16)]
        jobs: usize,
    },
}

/// What push and pull share.
#[derive(clap::Args)]
pub struct TransferArgs {
    /// Tracked paths (all when none).
    paths: Vec<PathBuf>,
    /// Remote name from kairo.yaml (default: `default_remote`).
    #[arg(long, short)]
    remote: Option<String>,
    /// Objects in flight at once.
    #[arg(long, short, default_value_t = 16)]
    jobs: usize,
}

/// Give up the prediction logs past their model's retention (unless `dry_run`), before a
/// collection, so their bytes go in it: per model, what was (or would be) given up.
async fn expire_logs(
    project: &Project,
    dry_run: bool,
) -> Result<Vec<(String, kairo_watch::retention::Outcome)>, Failure> {
    let md = project.metadata().await?;
    let pruned =
        kairo_watch::retention::apply_retention(project, &md, &project.objects()?, &Project::actor(), dry_run).await;
    md.close().await;
    pruned.map_err(crate::models::watch_failure)
}

/// A collection's report as JSON, with the prediction logs given up before it.
fn with_logs(
    report: &impl serde::Serialize,
    pruned: &[(String, kairo_watch::retention::Outcome)],
) -> serde_json::Value {
    let mut doc = serde_json::to_value(report).unwrap_or_default();
    doc["prediction_logs"] = serde_json::json!(pruned
        .iter()
        .map(|(m, o)| serde_json::json!({"model": m, "segments": o.segments, "rows": o.rows}))
        .collect::<Vec<_>>());
    doc
}

/// A collection's first line: what went (or would go), from `place`, and what stayed.
fn print_removed(dry_run: bool, removed: u64, removed_bytes: u64, place: &str, kept: u64) {
    let verb = if dry_run { "would remove" } else { "removed" };
    println!("{verb} {} ({}){place}; kept {kept}", plural(removed, "object"), bytes(removed_bytes));
}

fn print_expired(pruned: &[(String, kairo_watch::retention::Outcome)], dry_run: bool) {
    for (model, o) in pruned {
        let verb = if dry_run { "would give up" } else { "gave up" };
        println!(
            "{verb} {} logged rows of {model} past its retention ({})",
            o.rows,
            plural(o.segments as u64, "segment")
        );
    }
}

/// `--grace`: a duration, or `0` for none.
fn parse_grace(text: &str) -> Result<std::time::Duration, Failure> {
    let number = text.trim().trim_end_matches(|c: char| c.is_ascii_alphabetic());
    if !number.is_empty() && number.chars().all(|c| c == '0') {
        return Ok(std::time::Duration::ZERO);
    }
    let ms = kairo_core::config::parse_duration_ms(text).map_err(|e| Failure::usage(format!("--grace {e}")))?;
    Ok(std::time::Duration::from_millis(ms as u64))
}

fn project() -> Result<(Project, PathBuf), Failure> {
    let cwd = std::env::current_dir()?;
    Ok((Project::discover(&cwd)?, cwd))
}

fn relatives(project: &Project, cwd: &std::path::Path, paths: &[PathBuf]) -> Result<Vec<String>, DataError> {
    paths.iter().map(|p| project.relative(cwd, p)).collect()
}

pub async fn run(cmd: DataCommand) -> CmdResult {
    let (project, cwd) = project()?;
    match cmd {
        DataCommand::Add { paths, follow_symlinks, json } => {
            let rels = relatives(&project, &cwd, &paths)?;
            let mut reports = Vec::new();
            for rel in rels {
                let bar = Bar::new(&format!("adding {rel}"));
                let r = add::add(&project, &rel, follow_symlinks, &bar).await;
                bar.finish();
                let r = r?;
                if !json {
                    let what = match r.kind {
                        kairo_core::pointer::PointerKind::Dir => format!("dir, {}", plural(r.files, "file")),
                        kairo_core::pointer::PointerKind::File => "file".to_string(),
                    };
                    let state = if r.changed { "added" } else { "unchanged" };
                    println!(
                        "{state} {} ({what}, {}) -> {}  [hashed {}, stored {} ({})]",
                        r.path,
                        bytes(r.size),
                        r.hash.short(),
                        plural(r.files_hashed, "file"),
                        plural(r.objects_stored, "object"),
                        bytes(r.bytes_stored)
                    );
                }
                reports.push(r);
            }
            if json {
                print_json(&reports);
            } else if !project.in_git() {
                eprintln!("note: not a git repository; pointer files cannot be committed");
            }
            Ok(exit::OK)
        }
        DataCommand::Status { paths, json } => {
            let rels = relatives(&project, &cwd, &paths)?;
            let statuses = status::status(&project, &rels)?;
            let dirty = statuses.iter().any(|s| s.state != State::Unchanged);
            if json {
                print_json(&statuses);
            } else if statuses.is_empty() {
                println!("no tracked data (track some with `kairo data add PATH`)");
            } else {
                for s in &statuses {
                    println!("{}: {}", s.path, describe(&s.state));
                }
            }
            Ok(if dirty { exit::CHANGED } else { exit::OK })
        }
        DataCommand::Checkout { paths, force, json } => {
            let rels = relatives(&project, &cwd, &paths)?;
            let reports = checkout::checkout(&project, &rels, force, &Default::default())?;
            if json {
                print_json(&reports);
            } else {
                reports.iter().for_each(print_checkout);
            }
            Ok(exit::OK)
        }
        DataCommand::Push { transfer: TransferArgs { paths, remote, jobs }, json } => {
            let rels = relatives(&project, &cwd, &paths)?;
            let remote = project.remote(remote.as_deref())?;
            let bar = Bar::new(&format!("pushing to {}", remote.url()));
            let r = transfer::push(&project, &remote, &rels, jobs, &bar).await;
            bar.finish();
            let r = r?;
            if json {
                print_json(&r);
            } else {
                print_transfer("pushed", "to", "there", &r);
            }
            Ok(exit::OK)
        }
        DataCommand::Pull { transfer: TransferArgs { paths, remote, jobs }, no_checkout, force, json } => {
            let rels = relatives(&project, &cwd, &paths)?;
            let remote = project.remote(remote.as_deref())?;
            let bar = Bar::counting(&format!("pulling from {}", remote.url()));
            let r = transfer::pull(&project, &remote, &rels, jobs, &bar).await;
            bar.finish();
            let r = r?;
            // What the pull just hashed on its way in is not read back.
            let checked =
                if no_checkout { Vec::new() } else { checkout::checkout(&project, &rels, force, &r.fetched)? };
            if json {
                print_json(&serde_json::json!({"transfer": r, "checkout": checked}));
            } else {
                print_transfer("pulled", "from", "here", &r);
                checked.iter().for_each(print_checkout);
            }
            Ok(exit::OK)
        }
        DataCommand::Log { path, json } => {
            let rel = project.relative(&cwd, &path)?;
            let entries = history::log(&project, &rel).await?;
            if json {
                print_json(&entries);
            } else {
                for e in &entries {
                    let hash = e.hash.map(|h| h.short()).unwrap_or_else(|| "(removed)".into());
                    let commit = e.commit.as_deref().map(|c| &c[..c.len().min(10)]).unwrap_or("uncommitted");
                    let size = e.size.map(bytes).unwrap_or_default();
                    println!("{hash}  {}  {commit}  {}  {size}  {}", e.time, e.author, e.message);
                }
            }
            Ok(exit::OK)
        }
        DataCommand::Diff { path, from, to, json } => {
            let rel = project.relative(&cwd, &path)?;
            let d = history::diff(&project, &rel, from.as_deref(), to.as_deref()).await?;
            if json {
                print_json(&d);
            } else {
                println!("{} -> {}", d.from.label, d.to.label);
                for p in &d.added {
                    println!("A  {p}");
                }
                for p in &d.removed {
                    println!("D  {p}");
                }
                for p in &d.modified {
                    println!("M  {p}");
                }
                if d.added.is_empty() && d.removed.is_empty() && d.modified.is_empty() {
                    println!("no differences");
                }
            }
            Ok(exit::OK)
        }
        DataCommand::Gc { dry_run, remote: Some(name), grace, jobs, json } => {
            let grace_period = parse_grace(&grace)?;
            let remote = project.remote(Some(name.as_str()).filter(|n| !n.is_empty()))?;
            let pruned = expire_logs(&project, dry_run).await?;
            let r = gc::gc_remote(&project, &remote, grace_period, dry_run, jobs).await?;
            if json {
                print_json(&with_logs(&r, &pruned));
            } else {
                print_expired(&pruned, dry_run);
                print_removed(
                    dry_run,
                    r.objects_removed,
                    r.bytes_removed,
                    &format!(" from {}", remote.url()),
                    r.objects_kept,
                );
                if r.objects_young > 0 {
                    println!(
                        "kept {} nothing references yet, younger than the grace period ({})",
                        plural(r.objects_young, "object"),
                        grace.trim()
                    );
                }
                if r.temp_files_removed > 0 {
                    let verb = if dry_run { "would remove" } else { "removed" };
                    println!(
                        "{verb} {} of uploads that never finished",
                        plural(r.temp_files_removed, "temporary file")
                    );
                }
                let mut packs = Vec::new();
                if r.packs_rewritten > 0 {
                    let verb = if dry_run { "would rewrite" } else { "rewrote" };
                    packs.push(format!("{verb} {} into {}", plural(r.packs_rewritten, "pack"), r.packs_written));
                }
                if r.packs_removed > 0 {
                    let verb = if dry_run { "would delete" } else { "deleted" };
                    packs.push(format!("{verb} {}", plural(r.packs_removed, "pack")));
                }
                if !packs.is_empty() {
                    println!("{}", packs.join(", "));
                }
            }
            Ok(exit::OK)
        }
        DataCommand::Gc { dry_run, remote: None, json, .. } => {
            let pruned = expire_logs(&project, dry_run).await?;
            let r = gc::gc(&project, dry_run).await?;
            if json {
                print_json(&with_logs(&r, &pruned));
            } else {
                print_expired(&pruned, dry_run);
                print_removed(dry_run, r.objects_removed, r.bytes_removed, "", r.objects_kept);
            }
            Ok(exit::OK)
        }
        DataCommand::Verify { json, remote: Some(name), quick, jobs } => {
            let remote = project.remote(Some(name.as_str()).filter(|n| !n.is_empty()))?;
            let bar = Bar::counting(&format!("verifying {}", remote.url()));
            let r = verify::verify_remote(&project, &remote, quick, jobs, &bar).await;
            bar.finish();
            let r = r?;
            if json {
                print_json(&r);
            } else {
                if quick {
                    println!(
                        "looked for {} on {} (presence only, nothing downloaded)",
                        plural(r.objects, "object"),
                        r.remote
                    );
                } else {
                    println!("checked {} ({}) on {}", plural(r.objects, "object"), bytes(r.bytes), r.remote);
                }
                for h in &r.corrupt {
                    println!(
                        "CORRUPT  {h}  (damaged on the remote: remove it there, then `kairo data push` from a clone that has it)"
                    );
                }
                for m in &r.missing {
                    let fix = if m.here {
                        format!("run `kairo data push {}`", m.path)
                    } else {
                        "not in this clone either: push it from one that has it".to_string()
                    };
                    println!("MISSING  {}  (needed by {}; {fix})", m.hash, m.path);
                }
                if r.ok() {
                    println!("remote is consistent");
                }
            }
            Ok(if r.ok() { exit::OK } else { exit::CORRUPT })
        }
        DataCommand::Verify { json, remote: None, .. } => {
            let r = verify::verify(&project)?;
            if json {
                print_json(&r);
            } else {
                println!("checked {} ({})", plural(r.objects, "object"), bytes(r.bytes));
                for h in &r.corrupt {
                    println!("CORRUPT  {h}");
                }
                for (path, h) in &r.missing {
                    println!("MISSING  {h}  (needed by {path}; run `kairo data pull {path}`)");
                }
                if r.ok() {
                    println!("store is consistent");
                }
            }
            Ok(if r.ok() { exit::OK } else { exit::CORRUPT })
        }
    }
}

fn print_transfer(verb: &str, direction: &str, place: &str, r: &transfer::TransferReport) {
    let (moved, size, rest) = (plural(r.transferred, "object"), bytes(r.bytes), r.objects - r.transferred);
    let packs = if r.packs > 0 { format!(", small ones in {}", plural(r.packs, "pack")) } else { String::new() };
    println!("{verb} {moved} ({size}{packs}) {direction} {}; {rest} already {place}", r.remote);
}

fn print_checkout(r: &checkout::CheckoutReport) {
    println!("{}: {} written, {} removed, {} unchanged", r.path, plural(r.written, "file"), r.removed, r.unchanged);
}

fn describe(state: &State) -> String {
    match state {
        State::Unchanged => "unchanged".into(),
        State::Missing => "missing (run `kairo data checkout` to restore it)".into(),
        State::Modified { added: Some(a), removed: Some(r), changed: Some(c) } => {
            format!("modified ({a} added, {r} removed, {c} changed)")
        }
        State::Modified { .. } => "modified (recorded version not in the local store to compare)".into(),
    }
}
