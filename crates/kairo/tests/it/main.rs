//! End-to-end tests of the `kairo` binary: real processes, real files, real git, real
//! databases and object stores where configured.

#![allow(clippy::unwrap_used, clippy::new_without_default)] // Tests fail loudly on purpose.

mod add_status;
mod api_v1;
mod checkout;
mod closed_loop;
mod demo;
mod faults;
mod history;
mod hostile;
mod logs;
mod maintenance;
mod monitor;
mod monitoring;
mod pipeline;
mod registry;
mod remotes;
mod server;
mod serving;
mod symlinks;
mod train;

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
        cmd.args(args).current_dir(self.path()).env("KAIRO_ACTOR", "tester@test").env_remove("KAIRO_DATABASE_URL");
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

/// Start a long-running `kairo` command (`server`, `serve`) that prints its URL on its first
/// stdout line; returns the child (its output drained in the background) and the URL.
pub fn spawn_listening(repo: &Repo, args: &[&str]) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("kairo"))
        .args(args)
        .current_dir(repo.path())
        .env("KAIRO_ACTOR", if args[0] == "serve" { "server@test" } else { "tester@test" })
        .envs(repo.database_url.iter().map(|u| ("KAIRO_DATABASE_URL", u)))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    reader.read_line(&mut line).unwrap();
    // Keep draining, so the process never writes into a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .trim_end_matches(':')
        .to_string();
    (child, url)
}

/// A directory of `n` small files spread over a few subdirectories.
pub fn make_tree(repo: &Repo, rel: &str, n: usize) {
    for i in 0..n {
        repo.write(&format!("{rel}/d{}/f{i}.txt", i % 4), format!("file {i}\n"));
    }
}
