//! Environments: what a stage's process runs in, and the fingerprint that goes into its cache key.
//!
//! - `host`: key = OS, architecture, and each interpreter the command names (Python: version
//!   and the installed distributions; R, node, julia, ruby, perl, java: `--version`). Probing an
//!   interpreter costs a process, so results are cached in `.kairo/cache/interpreters.json` and
//!   trusted while the interpreter's file and its `sys.path` directories keep their stat.
//! - `python: LOCKFILE`: a virtual environment under `.kairo/envs/`, keyed by the lockfile's hash
//!   and the base Python's version, created once and reused.
//! - `image: NAME@sha256:...`: docker or podman; the digest is the key.

use crate::error::{PipelineError, Result};
use crate::spec::{EnvSpec, Stage};
use kairo_core::run::EnvFingerprint;
use kairo_core::Hash;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

const OTHER_INTERPRETERS: &[&str] = &["Rscript", "R", "node", "julia", "ruby", "perl", "java"];

pub fn is_pinned_image(reference: &str) -> bool {
    match reference.split_once("@sha256:") {
        Some((name, digest)) => !name.is_empty() && digest.len() == 64 && digest.chars().all(|c| c.is_ascii_hexdigit()),
        None => false,
    }
}

/// Interpreters a shell command names: `python`, `python3`, `python3.12`, and a few others.
pub fn interpreters_in(cmd: &str) -> Vec<String> {
    let mut out = Vec::new();
    for token in cmd.split(|c: char| c.is_whitespace() || ";&|()`$\"'".contains(c)) {
        let name = token.rsplit('/').next().unwrap_or(token);
        let is_python = name.strip_prefix("python").is_some_and(|v| v.chars().all(|c| c.is_ascii_digit() || c == '.'));
        if (is_python || OTHER_INTERPRETERS.contains(&name)) && !out.iter().any(|o| o == name) {
            out.push(name.to_string());
        }
    }
    out
}

fn is_python(name: &str) -> bool {
    name.starts_with("python")
}

/// Computes fingerprints, probing each interpreter at most once per process.
pub struct Fingerprinter {
    root: PathBuf,
    cache_path: PathBuf,
    cache: Mutex<ProbeCache>,
    dirty: Mutex<bool>,
}

#[derive(Default, Serialize, Deserialize)]
struct ProbeCache {
    entries: BTreeMap<String, Probe>,
}

/// What one interpreter reported, and the stats that vouch it is still true.
#[derive(Clone, Serialize, Deserialize)]
struct Probe {
    validators: Vec<(String, String)>,
    version: String,
    executable: String,
    /// Installed distributions (`name==version`), sorted; Python only.
    packages: Vec<String>,
}

impl Fingerprinter {
    pub fn new(root: &Path) -> Self {
        let cache_path = root.join(".kairo/cache/interpreters.json");
        let cache = std::fs::read(&cache_path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        Fingerprinter { root: root.to_path_buf(), cache_path, cache: Mutex::new(cache), dirty: Mutex::new(false) }
    }

    /// Write back probe results learnt in this process.
    pub fn save(&self) {
        let dirty = self.dirty.lock().map(|d| *d).unwrap_or(false);
        if !dirty {
            return;
        }
        let Ok(cache) = self.cache.lock() else { return };
        if let Ok(bytes) = serde_json::to_vec_pretty(&*cache) {
            if let Some(dir) = self.cache_path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let tmp = self.cache_path.with_extension(format!("tmp{}", std::process::id()));
            if std::fs::write(&tmp, bytes).is_ok() {
                let _ = std::fs::rename(&tmp, &self.cache_path);
            }
        }
    }

    /// The fingerprint of `stage`'s environment as it is now.
    pub fn fingerprint(&self, stage: &Stage) -> Result<EnvFingerprint> {
        self.fingerprint_in(stage, &self.root.clone())
    }

    /// The fingerprint with the stage's files (lockfile) read under `base`.
    pub fn fingerprint_in(&self, stage: &Stage, base: &Path) -> Result<EnvFingerprint> {
        let mut key = BTreeMap::new();
        let mut facts = BTreeMap::new();
        let (os, kernel) = os_facts();
        key.insert("os".to_string(), os);
        key.insert("arch".to_string(), std::env::consts::ARCH.to_string());
        facts.insert("kernel".to_string(), kernel);
        facts.insert("host".to_string(), kairo_data::Project::hostname());
        facts
            .insert("cpus".to_string(), std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).to_string());
        let env_err = |message: String| PipelineError::Env { stage: stage.name.clone(), message };
        match &stage.env {
            EnvSpec::Host => {
                for name in interpreters_in(&stage.cmd) {
                    let Some(path) = which(&name, None) else {
                        key.insert(format!("{name}.version"), "not found".into());
                        continue;
                    };
                    let probe = self.probe(&name, &path).map_err(env_err)?;
                    key.insert(format!("{name}.version"), probe.version.clone());
                    facts.insert(format!("{name}.executable"), probe.executable.clone());
                    if is_python(&name) {
                        key.insert(format!("{name}.packages"), Hash::of(probe.packages.join("\n").as_bytes()).to_hex());
                        facts.insert(format!("{name}.packages"), probe.packages.join("\n"));
                    }
                }
            }
            EnvSpec::Python { lockfile } => {
                let bytes = std::fs::read(base.join(lockfile))
                    .map_err(|e| env_err(format!("cannot read lockfile `{lockfile}`: {e}")))?;
                key.insert("lockfile".into(), lockfile.clone());
                key.insert("lockfile.hash".into(), Hash::of(&bytes).to_hex());
                let base = which("python3", None)
                    .ok_or_else(|| env_err("no `python3` on PATH to build the environment with".into()))?;
                let probe = self.probe("python3", &base).map_err(env_err)?;
                key.insert("python.version".into(), probe.version.clone());
                facts.insert("python.base".into(), probe.executable.clone());
            }
            EnvSpec::Image { reference } => {
                key.insert("image".into(), reference.clone());
            }
        }
        let canonical = serde_json::to_vec(&(&stage.env.label(), &key)).unwrap_or_default();
        Ok(EnvFingerprint { spec: stage.env.label(), hash: Hash::of(&canonical), key, facts })
    }

    fn probe(&self, name: &str, path: &Path) -> std::result::Result<Probe, String> {
        let cache_key = format!("{name}|{}", path.display());
        if let Ok(cache) = self.cache.lock() {
            if let Some(p) = cache.entries.get(&cache_key) {
                if p.validators.iter().all(|(what, seen)| validator(&self.root, what).as_deref() == Some(seen.as_str()))
                {
                    return Ok(p.clone());
                }
            }
        }
        let probe = if is_python(name) { probe_python(&self.root, path)? } else { probe_other(&self.root, path)? };
        if let Ok(mut cache) = self.cache.lock() {
            cache.entries.insert(cache_key, probe.clone());
            if let Ok(mut d) = self.dirty.lock() {
                *d = true;
            }
        }
        Ok(probe)
    }
}

const PYTHON_PROBE: &str = r#"
import sys, os, json, platform
try:
    import importlib.metadata as md
    pkgs = sorted({"%s==%s" % (d.metadata["Name"], d.version) for d in md.distributions() if d.metadata["Name"]}, key=str.lower)
except Exception:
    pkgs = []
print(json.dumps({"version": "%s %s" % (platform.python_implementation(), platform.python_version()),
                  "executable": os.path.realpath(sys.executable),
                  "dirs": [p for p in sys.path if p and os.path.isdir(p)],
                  "packages": pkgs}))
"#;

fn probe_python(root: &Path, path: &Path) -> std::result::Result<Probe, String> {
    let out = Command::new(path)
        .args(["-I", "-c", PYTHON_PROBE])
        .current_dir(root)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
    if !out.status.success() {
        return Err(format!("{} failed: {}", path.display(), String::from_utf8_lossy(&out.stderr).trim()));
    }
    #[derive(Deserialize)]
    struct Reply {
        version: String,
        executable: String,
        dirs: Vec<String>,
        packages: Vec<String>,
    }
    let r: Reply =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("{}: unexpected probe output: {e}", path.display()))?;
    let mut what = vec![format!("stat:{}", path.display()), format!("stat:{}", r.executable), "pyenv".to_string()];
    what.extend(r.dirs.iter().map(|d| format!("stat:{d}")));
    let validators = what.into_iter().filter_map(|w| validator(root, &w).map(|v| (w, v))).collect();
    Ok(Probe { validators, version: r.version, executable: r.executable, packages: r.packages })
}

fn probe_other(root: &Path, path: &Path) -> std::result::Result<Probe, String> {
    let out = Command::new(path)
        .arg("--version")
        .current_dir(root)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
    let text = if out.stdout.is_empty() { out.stderr } else { out.stdout };
    let version = String::from_utf8_lossy(&text).lines().next().unwrap_or("").trim().to_string();
    let what = format!("stat:{}", path.display());
    let validators = validator(root, &what).map(|v| vec![(what, v)]).unwrap_or_default();
    let executable = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()).display().to_string();
    Ok(Probe { validators, version, executable, packages: Vec::new() })
}

/// The current value of something a probe depends on: a file's stat, or the pyenv selection
/// (pyenv shims are scripts whose target changes with `.python-version` and `PYENV_VERSION`).
fn validator(root: &Path, what: &str) -> Option<String> {
    if let Some(path) = what.strip_prefix("stat:") {
        let m = std::fs::metadata(path).ok()?;
        return Some(format!("{}:{}:{}:{}", m.dev(), m.ino(), m.size(), m.mtime_nsec() + m.mtime() * 1_000_000_000));
    }
    if what == "pyenv" {
        let local = std::fs::read_to_string(root.join(".python-version")).unwrap_or_default();
        return Some(format!("{}|{}", std::env::var("PYENV_VERSION").unwrap_or_default(), local.trim()));
    }
    None
}

/// Find `name` on PATH (with `first` searched before it).
pub fn which(name: &str, first: Option<&Path>) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    first
        .map(Path::to_path_buf)
        .into_iter()
        .chain(std::env::split_paths(&path))
        .map(|d| d.join(name))
        .find(|p| std::fs::metadata(p).map(|m| m.is_file() && m.mode() & 0o111 != 0).unwrap_or(false))
}

fn os_facts() -> (String, String) {
    let release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let field = |k: &str| {
        release
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_default()
    };
    let os = format!("{} {} {}", std::env::consts::OS, field("ID"), field("VERSION_ID")).trim().to_string();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
    (os, kernel)
}

/// How to start a stage's command.
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Extra environment variables (on top of the inherited ones and KAIRO_*).
    pub vars: Vec<(String, String)>,
}

/// Prepare the environment (create the venv, find the container runtime) and say how to run
/// `cmd` in it, from `cwd`.
pub fn prepare(
    root: &Path,
    stage: &Stage,
    fp: &EnvFingerprint,
    cwd: &Path,
    pass: &[(String, String)],
) -> Result<Launch> {
    let env_err = |message: String| PipelineError::Env { stage: stage.name.clone(), message };
    match &stage.env {
        EnvSpec::Host => {
            Ok(Launch { program: "/bin/sh".into(), args: vec!["-c".into(), stage.cmd.clone()], vars: Vec::new() })
        }
        EnvSpec::Python { lockfile } => {
            let venv = ensure_venv(root, cwd, lockfile, fp).map_err(env_err)?;
            let bin = venv.join("bin");
            let path = std::env::var("PATH").unwrap_or_default();
            Ok(Launch {
                program: "/bin/sh".into(),
                args: vec!["-c".into(), stage.cmd.clone()],
                vars: vec![
                    ("PATH".into(), format!("{}:{path}", bin.display())),
                    ("VIRTUAL_ENV".into(), venv.display().to_string()),
                ],
            })
        }
        EnvSpec::Image { reference } => {
            let runtime = container_runtime().map_err(env_err)?;
            let dir = cwd.display().to_string();
            let mut args = vec!["run".into(), "--rm".into(), "-v".into(), format!("{dir}:{dir}"), "-w".into(), dir];
            args.push("--user".into());
            args.push(format!("{}:{}", rustix::process::getuid().as_raw(), rustix::process::getgid().as_raw()));
            for (k, _) in pass {
                args.push("-e".into());
                args.push(k.clone());
            }
            args.extend([reference.clone(), "/bin/sh".into(), "-c".into(), stage.cmd.clone()]);
            Ok(Launch { program: runtime, args, vars: Vec::new() })
        }
    }
}

/// docker or podman, whichever is installed and answering.
fn container_runtime() -> std::result::Result<PathBuf, String> {
    let mut problems = Vec::new();
    for name in ["docker", "podman"] {
        let Some(path) = which(name, None) else {
            problems.push(format!("{name}: not installed"));
            continue;
        };
        match Command::new(&path).args(["info", "--format", "{{.ServerVersion}}"]).output() {
            Ok(o) if o.status.success() => return Ok(path),
            Ok(o) => {
                let why = String::from_utf8_lossy(&o.stderr).lines().next().unwrap_or("").trim().to_string();
                problems.push(format!("{name}: installed but not usable ({why})"));
            }
            Err(e) => problems.push(format!("{name}: {e}")),
        }
    }
    Err(format!("the stage runs in a container image, but no container runtime is usable: {}", problems.join("; ")))
}

/// The venv for this lockfile and Python, created on first use under `.kairo/envs/`.
fn ensure_venv(root: &Path, cwd: &Path, lockfile: &str, fp: &EnvFingerprint) -> std::result::Result<PathBuf, String> {
    let dir = root.join(".kairo/envs").join(format!("py-{}", &fp.hash.to_hex()[..16]));
    let ready = dir.join(".kairo-ready");
    if ready.exists() {
        return Ok(dir);
    }
    std::fs::create_dir_all(root.join(".kairo/envs")).map_err(|e| e.to_string())?;
    let _lock = kairo_store::lock::StoreLock::exclusive(&dir.with_extension("lock")).map_err(|e| e.to_string())?;
    if ready.exists() {
        return Ok(dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let build = || -> std::result::Result<(), String> {
        run_tool(Command::new("python3").args(["-m", "venv"]).arg(&dir), "python3 -m venv")?;
        let python = dir.join("bin/python");
        let lock_path = cwd.join(lockfile);
        let file_name = lock_path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
        let pip = |req: &Path| -> std::result::Result<(), String> {
            let text = std::fs::read_to_string(req).unwrap_or_default();
            let has_requirements = text.lines().any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
            if !has_requirements {
                return Ok(());
            }
            run_tool(
                Command::new(&python)
                    .args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-r"])
                    .arg(req)
                    .current_dir(cwd),
                "pip install",
            )
        };
        match file_name.as_str() {
            "uv.lock" => {
                let uv = which("uv", None)
                    .ok_or("`uv.lock` needs `uv` on PATH to export it; install uv or use requirements.txt")?;
                let exported = dir.join("requirements.exported.txt");
                let lock_dir = lock_path.parent().unwrap_or(cwd);
                run_tool(
                    Command::new(uv)
                        .args([
                            "export",
                            "--frozen",
                            "--no-hashes",
                            "--no-emit-project",
                            "--format",
                            "requirements-txt",
                            "-o",
                        ])
                        .arg(&exported)
                        .current_dir(lock_dir),
                    "uv export",
                )?;
                pip(&exported)
            }
            "poetry.lock" => {
                let poetry = which("poetry", None)
                    .ok_or("`poetry.lock` needs `poetry` (with the export plugin) on PATH; or use requirements.txt")?;
                let exported = dir.join("requirements.exported.txt");
                run_tool(
                    Command::new(poetry)
                        .args(["export", "--without-hashes", "-f", "requirements.txt", "-o"])
                        .arg(&exported)
                        .current_dir(lock_path.parent().unwrap_or(cwd)),
                    "poetry export",
                )?;
                pip(&exported)
            }
            "pylock.toml" => {
                let uv = which("uv", None)
                    .ok_or("`pylock.toml` needs `uv` on PATH to install it; or use requirements.txt")?;
                run_tool(
                    Command::new(uv)
                        .args(["pip", "install", "--python"])
                        .arg(&python)
                        .arg("-r")
                        .arg(&lock_path)
                        .current_dir(cwd),
                    "uv pip install",
                )
            }
            _ => pip(&lock_path),
        }
    };
    match build() {
        Ok(()) => {
            std::fs::write(&ready, fp.hash.to_hex()).map_err(|e| e.to_string())?;
            Ok(dir)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            Err(format!("building the environment from `{lockfile}` failed: {e}"))
        }
    }
}

fn run_tool(cmd: &mut Command, what: &str) -> std::result::Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{what}: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
    Err(format!("{what} exited with {}: {}", out.status, tail.into_iter().rev().collect::<Vec<_>>().join(" / ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_interpreters_in_commands() {
        assert_eq!(
            interpreters_in("python3 train.py --lr 1 && Rscript x.R | /usr/bin/python3.12 -m y"),
            ["python3", "Rscript", "python3.12"]
        );
        assert!(interpreters_in("cp a b; echo python-is-not-here").is_empty());
    }

    #[test]
    fn image_must_be_pinned() {
        assert!(is_pinned_image(&format!("python@sha256:{}", "a".repeat(64))));
        assert!(!is_pinned_image("python:3.12"));
        assert!(!is_pinned_image("python@sha256:abc"));
    }
}
