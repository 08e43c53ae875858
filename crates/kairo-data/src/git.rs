//! The little Kairo needs from git, through the `git` command line (no libgit2 to build).

use crate::error::{DataError, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| DataError::Git(format!("cannot run git: {e}")))?;
    if !out.status.success() {
        return Err(DataError::Git(format!(
            "`git {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// The work tree containing `dir`, if it is in one.
pub fn toplevel(dir: &Path) -> Option<PathBuf> {
    git(dir, &["rev-parse", "--show-toplevel"]).ok().map(|s| PathBuf::from(s.trim()))
}

/// The commit HEAD points at (None in a repository with no commits).
pub fn head_commit(dir: &Path) -> Option<String> {
    git(dir, &["rev-parse", "--verify", "--quiet", "HEAD"]).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// HEAD, the branch, and (when the work tree differs from HEAD, `kairo.lock` aside) a hash of
/// the differences: what a run records of the code it ran.
pub fn state(dir: &Path) -> kairo_core::run::GitState {
    let commit = head_commit(dir);
    let branch = branch(dir);
    let dirty = (|| {
        // kairo.lock is kairo's own bookkeeping, not code.
        let status = Command::new("git")
            .args(["status", "--porcelain=v1", "-z", "--untracked-files=all", "--", ".", ":(exclude)kairo.lock"])
            .current_dir(dir)
            .output()
            .ok()?;
        if !status.status.success() || status.stdout.is_empty() {
            return None;
        }
        let diff = Command::new("git")
            .args(["diff", "HEAD", "--binary", "--", ".", ":(exclude)kairo.lock"])
            .current_dir(dir)
            .output()
            .ok()?;
        let mut both = status.stdout;
        both.extend_from_slice(&diff.stdout);
        Some(kairo_core::Hash::of(&both).to_hex())
    })();
    kairo_core::run::GitState { commit, branch, dirty }
}

/// The current branch name (None when detached or outside git).
pub fn branch(dir: &Path) -> Option<String> {
    git(dir, &["symbolic-ref", "--quiet", "--short", "HEAD"])
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// One commit that touched a file.
#[derive(Debug, Clone)]
pub struct FileCommit {
    pub commit: String,
    pub author: String,
    pub time: String,
    pub subject: String,
    /// The file's content at that commit; None when the commit deleted it.
    pub content: Option<String>,
}

/// Commits on the current branch that changed `rel` (newest first), with its content at each.
pub fn file_history(root: &Path, rel: &str) -> Result<Vec<FileCommit>> {
    if head_commit(root).is_none() {
        return Ok(Vec::new());
    }
    let log = git(root, &["log", "--format=%H%x1f%an <%ae>%x1f%aI%x1f%s", "--", rel])?;
    let mut commits: Vec<FileCommit> = log
        .lines()
        .filter_map(|line| {
            let mut f = line.split('\x1f');
            Some(FileCommit {
                commit: f.next()?.to_string(),
                author: f.next()?.to_string(),
                time: f.next()?.to_string(),
                subject: f.next().unwrap_or("").to_string(),
                content: None,
            })
        })
        .collect();
    let specs: Vec<String> = commits.iter().map(|c| format!("{}:{rel}", c.commit)).collect();
    for (c, content) in commits.iter_mut().zip(cat_files(root, &specs)?) {
        c.content = content;
    }
    Ok(commits)
}

/// `git cat-file --batch` for many `rev:path` specs at once; None for specs that do not exist.
pub fn cat_files(root: &Path, specs: &[String]) -> Result<Vec<Option<String>>> {
    if specs.is_empty() {
        return Ok(Vec::new());
    }
    let mut child = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["cat-file", "--batch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| DataError::Git(format!("cannot run git: {e}")))?;
    let input: String = specs.iter().map(|s| format!("{s}\n")).collect();
    let mut stdin = child.stdin.take().ok_or_else(|| DataError::Git("no stdin".into()))?;
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().map_err(|e| DataError::Git(e.to_string()))?;
    let _ = writer.join();
    parse_batch(&out.stdout, specs.len())
}

fn parse_batch(mut out: &[u8], n: usize) -> Result<Vec<Option<String>>> {
    let bad = || DataError::Git("unexpected `git cat-file --batch` output".into());
    let mut result = Vec::with_capacity(n);
    for _ in 0..n {
        let eol = out.iter().position(|&b| b == b'\n').ok_or_else(bad)?;
        let header = std::str::from_utf8(&out[..eol]).map_err(|_| bad())?;
        out = &out[eol + 1..];
        if header.ends_with(" missing") || header.ends_with(" ambiguous") {
            result.push(None);
            continue;
        }
        let size: usize = header.rsplit(' ').next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        if out.len() < size + 1 {
            return Err(bad());
        }
        result.push(Some(String::from_utf8_lossy(&out[..size]).to_string()));
        out = &out[size + 1..];
    }
    Ok(result)
}

/// Which commits [`pointer_versions_in_history`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum History {
    /// The current branch.
    Branch,
    /// Every branch, tag and remote-tracking branch this clone knows.
    AllRefs,
}

/// Contents of every version of every `*.kairo` pointer committed in `history`.
pub fn pointer_versions_in_history(root: &Path, history: History) -> Result<Vec<String>> {
    if head_commit(root).is_none() {
        return Ok(Vec::new());
    }
    let mut args = vec!["log", "--format=%x1e%H", "--name-only", "--diff-filter=AMRC"];
    if history == History::AllRefs {
        args.push("--all");
    }
    args.extend(["--", "*.kairo"]);
    let log = git(root, &args)?;
    let mut specs = Vec::new();
    for block in log.split('\x1e').filter(|b| !b.trim().is_empty()) {
        let mut lines = block.lines();
        let Some(commit) = lines.next() else { continue };
        for path in lines.filter(|l| l.ends_with(".kairo")) {
            specs.push(format!("{}:{path}", commit.trim()));
        }
    }
    Ok(cat_files(root, &specs)?.into_iter().flatten().collect())
}

/// Pointer files in the work tree as git sees them (tracked or untracked, not ignored),
/// relative to `root`; None outside git.
pub fn pointer_files(root: &Path) -> Option<Vec<String>> {
    // Run in `root`, git prints paths relative to it: no need to ask for the top level.
    let out = git(root, &["ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "*.kairo"]).ok()?;
    Some(out.split('\0').filter(|s| !s.is_empty()).map(str::to_string).collect())
}

/// Files git tracks or would track (committed, staged, or new and not ignored), relative to
/// `root`: a project's code, as opposed to its data (ignored, behind pointers).
pub fn tracked_files(root: &Path) -> Result<Vec<String>> {
    let out = git(root, &["ls-files", "-z", "--cached", "--others", "--exclude-standard"])?;
    Ok(out.split('\0').filter(|s| !s.is_empty()).map(str::to_string).collect())
}

/// Whether `dir` is inside a git work tree, by looking for `.git` upwards (no process spawned).
pub fn in_work_tree(dir: &Path) -> bool {
    dir.ancestors().any(|d| d.join(".git").exists())
}

/// Resolve a revision to a commit id, if it names one.
pub fn resolve_commit(root: &Path, rev: &str) -> Option<String> {
    git(root, &["rev-parse", "--verify", "--quiet", &format!("{rev}^{{commit}}")]).ok().map(|s| s.trim().to_string())
}

/// When each commit was made (committer time, milliseconds since the epoch), read with one
/// `git cat-file --batch`; commits the repository does not have are left out.
pub fn commit_times_ms(root: &Path, commits: &[String]) -> std::collections::HashMap<String, i64> {
    let mut wanted: Vec<String> =
        commits.iter().filter(|c| !c.is_empty() && c.chars().all(|ch| ch.is_ascii_hexdigit())).cloned().collect();
    wanted.sort();
    wanted.dedup();
    let Ok(objects) = cat_files(root, &wanted) else { return Default::default() };
    wanted
        .into_iter()
        .zip(objects)
        .filter_map(|(commit, text)| {
            // `committer NAME <EMAIL> SECONDS ZONE`, in the header before the first blank line.
            let line = text?.lines().take_while(|l| !l.is_empty()).find(|l| l.starts_with("committer "))?.to_string();
            let seconds: i64 = line.rsplit(' ').nth(1)?.parse().ok()?;
            Some((commit, seconds * 1000))
        })
        .collect()
}
