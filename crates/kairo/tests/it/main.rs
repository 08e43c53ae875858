//! End-to-end tests of the `kairo` binary: real processes, real files, real git, real
//! databases and object stores where configured.

#![allow(clippy::unwrap_used, clippy::new_without_default)] // Tests fail loudly on purpose.

mod add_status;
mod api_v1;
mod auth;
mod card;
mod checkout;
mod closed_loop;
mod demo;
mod faults;
mod history;
mod hostile;
mod http_errors;
mod kpi;
mod logs;
mod maintenance;
mod monitor;
mod monitoring;
mod oidc;
mod output;
mod package;
mod pipeline;
mod predict;
mod privacy;
mod ray;
mod registry;
mod remotes;
mod replicas;
mod responsible;
mod server;
mod serving;
mod symlinks;
mod team_cli;
mod train;
mod ui;
mod wheel;

use assert_cmd::Command;
use std::fs;
use std::path::{Path, PathBuf};

/// The URL or path of a service a test needs, from `var`. Missing: under CI (`KAIRO_CI`, set by
/// `.ci/test`) the test fails, since a test whose service is missing must never pass by
/// skipping; elsewhere it is skipped with a message saying how to run it.
pub fn service(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var_os("KAIRO_CI").is_some() => panic!("{var} is not set, and under CI a test never skips"),
        _ => {
            eprintln!("skipping: {var} is not set (`bash .ci/test` starts the services and sets it)");
            None
        }
    }
}

/// A scratch git repository made into a Kairo project.
pub struct Repo {
    dir: tempfile::TempDir,
    database_url: Option<String>,
}

impl Repo {
    pub fn new() -> Self {
        Self::bare().initialised()
    }

    /// `git init` and `kairo init` in this directory.
    pub fn initialised(self) -> Self {
        self.git(&["init", "-q"]);
        self.git(&["config", "user.email", "tester@kairo.invalid"]);
        self.git(&["config", "user.name", "Tester"]);
        self.kairo(&["init"]).assert().success();
        self
    }

    /// An empty directory, not initialised.
    pub fn bare() -> Self {
        Repo { dir: tempfile::tempdir().expect("tempdir"), database_url: None }
    }

    pub fn with_database(mut self, url: String) -> Self {
        self.database_url = Some(url);
        self
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn kairo(&self, args: &[&str]) -> Command {
        let mut cmd = Command::cargo_bin("kairo").expect("kairo binary");
        cmd.args(args)
            .current_dir(self.path())
            .env("KAIRO_ACTOR", "tester@test")
            .env_remove("KAIRO_DATABASE_URL")
            .env_remove("KAIRO_SERVER")
            .env_remove("KAIRO_TOKEN");
        if let Some(url) = &self.database_url {
            cmd.env("KAIRO_DATABASE_URL", url);
        }
        cmd
    }

    /// Run a command with `--json` that must succeed (or report a finding: exit 3 or 4) and
    /// parse its output.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.kairo(&all).output().expect("run kairo");
        assert!(
            matches!(out.status.code(), Some(0 | 3 | 4)),
            "kairo {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("kairo {args:?} printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout))
        })
    }

    /// Run a command that prints JSON without a `--json` flag (e.g. `--format json`).
    pub fn json_with(&self, args: &[&str]) -> serde_json::Value {
        let out = self.kairo(args).output().expect("run kairo");
        assert!(out.status.success(), "kairo {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("kairo {args:?} printed no JSON ({e})"))
    }

    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) {
        let path = self.join(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(path, content).expect("write");
    }

    pub fn read(&self, rel: &str) -> Vec<u8> {
        fs::read(self.join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    pub fn git(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("git").args(args).current_dir(self.path()).output().expect("git");
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Objects in the local store (loose and packed), as `data verify` counts them.
    pub fn object_count(&self) -> usize {
        self.json(&["data", "verify"])["objects"].as_u64().unwrap() as usize
    }

    /// Flip a byte of `content` wherever the store holds it (a loose object or inside a pack).
    pub fn corrupt_in_store(&self, content: &[u8]) {
        fn walk(dir: &Path, content: &[u8], hits: &mut usize) {
            for entry in fs::read_dir(dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, content, hits);
                    continue;
                }
                let mut bytes = fs::read(&path).unwrap();
                if let Some(at) = bytes.windows(content.len()).position(|w| w == content) {
                    bytes[at] ^= 0x20;
                    fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
                    fs::write(&path, bytes).unwrap();
                    *hits += 1;
                }
            }
        }
        let mut hits = 0;
        walk(&self.join(".kairo/objects"), content, &mut hits);
        assert!(hits > 0, "content not found in the store");
    }
}

/// A long-running `kairo` process, killed when dropped (so a failed assertion leaves no server
/// behind).
pub struct Listening(pub std::process::Child);

impl std::ops::Deref for Listening {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for Listening {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start a long-running `kairo` command (`server`, `serve`) that prints its URL on its first
/// stdout line; returns the process (its output drained in the background) and the URL.
pub fn spawn_listening(repo: &Repo, args: &[&str]) -> (Listening, String) {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("kairo"));
    cmd.args(args)
        .current_dir(repo.path())
        .env("KAIRO_ACTOR", if args[0] == "serve" { "server@test" } else { "tester@test" })
        .envs(repo.database_url.iter().map(|u| ("KAIRO_DATABASE_URL", u)));
    spawn_command(cmd)
}

/// [`spawn_listening`] for a command built by the caller (its own environment).
pub fn spawn_command(mut cmd: std::process::Command) -> (Listening, String) {
    use std::io::{BufRead, BufReader};
    let mut child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let mut line = String::new();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    reader.read_line(&mut line).unwrap();
    // Keep draining, so the process never writes into a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://") || w.starts_with("https://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .trim_end_matches(':')
        .to_string();
    (Listening(child), url)
}

/// A directory of `n` small files spread over a few subdirectories.
pub fn make_tree(repo: &Repo, rel: &str, n: usize) {
    for i in 0..n {
        repo.write(&format!("{rel}/d{}/f{i}.txt", i % 4), format!("file {i}\n"));
    }
}

/// The redactions every snapshot uses, so that a snapshot changes only when the output a user
/// sees changes: the workspace and temp-dir paths, the host name, ids (UUIDs, 32-hex run ids),
/// hashes and commits (hex of 10+ digits), timestamps and dates, durations, process ids, ports
/// and the binary's version. Use as `let _s = crate::snapshot_settings().bind_to_scope();`.
pub fn snapshot_settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_omit_expression(true);
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for root in [workspace.canonicalize().unwrap(), workspace] {
        s.add_filter(&regex_escape(&root.display().to_string()), "[WORKSPACE]");
    }
    // tempfile's directories: `$TMPDIR/.tmpXXXXXX`, as given and with symlinks resolved.
    let temp = std::env::temp_dir();
    for dir in [temp.canonicalize().unwrap_or_else(|_| temp.clone()), temp] {
        let dir = dir.display().to_string();
        s.add_filter(&format!(r"{}/\.tmp[A-Za-z0-9_]+", regex_escape(dir.trim_end_matches('/'))), "[TMP]");
    }
    let host = kairo_host();
    if !host.is_empty() {
        s.add_filter(&format!(r"\b{}\b", regex_escape(&host)), "[HOST]");
    }
    for (pattern, replacement) in [
        (r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", "[UUID]"),
        (r"\b[0-9a-f]{32}\b", "[ID]"),
        // Hashes and commits as Kairo abbreviates them (10, 12, 16 digits) or writes them in
        // full (40, 64). Not 7-9: plain numbers (a limit of 4194304 bytes) must stay readable.
        (r"\b[0-9a-f]{10,}\b", "[HASH]"),
        (r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?", "[TIME]"),
        (r"\b\d{4}-\d{2}-\d{2}\b", "[DATE]"),
        // `runs ls`: the SECONDS column after STARTED (right-aligned: its padding goes too).
        (r"\[TIME\] +\d+\.\d+\b", "[TIME]  [SECS]"),
        (r"\b\d+(\.\d+)? ?(ns|µs|us|ms|s|min)\b", "[DURATION]"),
        (r"\bpid \d+", "pid [PID]"),
        (r"(127\.0\.0\.1|localhost|0\.0\.0\.0|\[::1\]):\d+", "$1:[PORT]"),
        (r"(?m)^(\s*arch:) \S+$", "$1 [ARCH]"),
        (r"(?m)^(\s*os:) .+$", "$1 [OS]"),
    ] {
        s.add_filter(pattern, replacement);
    }
    s.add_filter(&format!(r"\b{}\b", regex_escape(env!("CARGO_PKG_VERSION"))), "[VERSION]");
    s
}

/// The host name as `kairo` records it on runs.
fn kairo_host() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// `text` as a regex that matches it literally.
fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A terminal session for a snapshot: each command line, its stdout, its stderr (marked) and
/// its exit code, in order.
pub struct Transcript<'a> {
    repo: &'a Repo,
    pub text: String,
}

impl<'a> Transcript<'a> {
    pub fn new(repo: &'a Repo) -> Self {
        Transcript { repo, text: String::new() }
    }

    /// Run `kairo ARGS` in the repository, as in a user's terminal, and record it; returns the
    /// exit code. `CI` is removed: under it, runs record the trigger `ci` instead of `manual`.
    pub fn kairo(&mut self, args: &[&str]) -> i32 {
        let out = self.repo.kairo(args).env_remove("CI").output().expect("run kairo");
        self.record(&format!("kairo {}", args.join(" ")), &out)
    }

    /// `kairo` run by another person (`KAIRO_ACTOR`), shown as such.
    pub fn kairo_as(&mut self, actor: &str, args: &[&str]) -> i32 {
        let out = self.repo.kairo(args).env_remove("CI").env("KAIRO_ACTOR", actor).output().expect("run kairo");
        self.record(&format!("KAIRO_ACTOR={actor} kairo {}", args.join(" ")), &out)
    }

    /// Record a finished command under the command line `shown`; returns its exit code.
    pub fn record(&mut self, shown: &str, out: &std::process::Output) -> i32 {
        let code = out.status.code().unwrap_or(-1);
        self.text.push_str(&format!("$ {shown}\n"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        self.text.push_str(&stdout);
        if !stdout.is_empty() && !stdout.ends_with('\n') {
            self.text.push_str("[no newline at end]\n");
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        for line in stderr.lines() {
            self.text.push_str(&format!("[stderr] {line}\n"));
        }
        self.text.push_str(&format!("[exit {code}]\n\n"));
        code
    }

    /// A note between commands (what the next step does).
    pub fn note(&mut self, text: &str) {
        self.text.push_str(&format!("# {text}\n"));
    }
}
