//! A Kairo project: the directory holding `kairo.yaml` and `.kairo/`, usually a git work tree.

use crate::error::{DataError, Result};
use crate::git;
use kairo_core::config::{Config, CONFIG_FILE};
use kairo_core::pointer::{Pointer, POINTER_SUFFIX};
use kairo_store::lock::StoreLock;
use kairo_store::{LocalObjects, Metadata, Remote, StatCache};
use std::fs;
use std::path::{Component, Path, PathBuf};

/// Name of the local store directory.
pub const STORE_DIR: &str = ".kairo";

/// Where a running `kairo server` announces its URL and pid, so `kairo run` can point stages
/// at it.
pub const SERVER_FILE: &str = ".kairo/server.json";

#[derive(Debug, Clone)]
pub struct Project {
    root: PathBuf,
    config: Config,
    in_git: bool,
}

/// What `kairo init` did.
#[derive(Debug, Clone)]
pub struct InitReport {
    pub root: PathBuf,
    pub in_git: bool,
    pub created_config: bool,
    pub already_initialized: bool,
}

impl Project {
    /// Make `dir` a Kairo project: `.kairo/` (ignored by git), `kairo.yaml`, and the database.
    pub async fn init(dir: &Path) -> Result<InitReport> {
        let root = dir.canonicalize().map_err(DataError::io(dir))?;
        let store = root.join(STORE_DIR);
        let already_initialized = store.is_dir();
        fs::create_dir_all(store.join("tmp")).map_err(DataError::io(&store))?;
        let config_path = root.join(CONFIG_FILE);
        let created_config = !config_path.exists();
        if created_config {
            fs::write(&config_path, Config::initial_text()).map_err(DataError::io(&config_path))?;
        }
        let in_git = git::toplevel(&root).is_some();
        crate::gitignore::ensure_ignored(&root, &format!("/{STORE_DIR}/"))?;
        let project = Project::load(root.clone())?;
        project.metadata().await?.close().await;
        Ok(InitReport { root, in_git, created_config, already_initialized })
    }

    /// Find the project containing `start` (walking up to the nearest `kairo.yaml` or `.kairo/`).
    pub fn discover(start: &Path) -> Result<Self> {
        let start = start.canonicalize().map_err(DataError::io(start))?;
        let mut dir = Some(start.as_path());
        while let Some(d) = dir {
            if d.join(STORE_DIR).is_dir() || d.join(CONFIG_FILE).is_file() {
                return Project::load(d.to_path_buf());
            }
            dir = d.parent();
        }
        Err(DataError::NotAProject(start))
    }

    fn load(root: PathBuf) -> Result<Self> {
        let config = read_config(&root)?;
        fs::create_dir_all(root.join(STORE_DIR).join("tmp")).map_err(DataError::io(root.join(STORE_DIR)))?;
        let in_git = git::in_work_tree(&root);
        Ok(Project { root, config, in_git })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// `kairo.yaml` as it is on disk now (a long-running server's [`Project::config`] is the
    /// file as it was at start). Rules that guard state read this, so an edit takes effect at
    /// once and a broken file refuses rather than falls back.
    pub fn current_config(&self) -> Result<Config> {
        read_config(&self.root)
    }

    pub fn in_git(&self) -> bool {
        self.in_git
    }

    pub fn store_dir(&self) -> PathBuf {
        self.root.join(STORE_DIR)
    }

    /// The local object store. `KAIRO_FSYNC=0|1` overrides `store.fsync` in kairo.yaml.
    pub fn objects(&self) -> Result<LocalObjects> {
        let durable = match std::env::var("KAIRO_FSYNC").as_deref() {
            Ok("0") | Ok("false") => false,
            Ok("1") | Ok("true") => true,
            _ => self.config.store.fsync,
        };
        Ok(LocalObjects::open(self.store_dir().join("objects"), self.store_dir().join("tmp"))?.with_durability(durable))
    }

    pub fn stat_cache(&self) -> StatCache {
        StatCache::load(self.store_dir().join("stat-cache"))
    }

    /// Shared lock: held by commands that add objects.
    pub fn lock_shared(&self) -> Result<StoreLock> {
        Ok(StoreLock::shared(&self.store_dir().join("lock"))?)
    }

    /// Exclusive lock: held by `gc`, and briefly while pointer files and .gitignore are written.
    pub fn lock_exclusive(&self) -> Result<StoreLock> {
        Ok(StoreLock::exclusive(&self.store_dir().join("lock"))?)
    }

    /// Short exclusive lock for edits to files in the work tree (.gitignore, pointers).
    pub fn lock_worktree(&self) -> Result<StoreLock> {
        Ok(StoreLock::exclusive(&self.store_dir().join("worktree.lock"))?)
    }

    /// The database URL in force: `KAIRO_DATABASE_URL`, then `database:` in kairo.yaml, then SQLite.
    pub fn database_url(&self) -> String {
        std::env::var("KAIRO_DATABASE_URL")
            .ok()
            .filter(|s| !s.is_empty())
            .or_else(|| self.config.database.clone())
            .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", self.store_dir().join("kairo.db").display()))
    }

    pub async fn metadata(&self) -> Result<Metadata> {
        Ok(Metadata::connect(&self.database_url()).await?)
    }

    /// The remote called `name`, or the default remote.
    pub fn remote(&self, name: Option<&str>) -> Result<Remote> {
        let name =
            name.map(str::to_string).or_else(|| self.config.default_remote.clone()).ok_or(DataError::NoRemote)?;
        let cfg = self.config.remotes.get(&name).ok_or_else(|| DataError::UnknownRemote(name.clone()))?;
        Ok(Remote::open(&cfg.url, &self.root)?.with_index_cache(self.store_dir().join("remote-packs")))
    }

    /// Add remote `name` at `url` to kairo.yaml (and make it `default_remote` with `default`),
    /// editing the file's text so the rest stays as written: the entry goes right under
    /// `remotes:` (appended with it when absent), and the result must parse to a config that
    /// has it, else nothing is written. The URL is checked (`parse_url`: a known kind, no
    /// credentials in it), not the remote: its credentials may live where this process cannot
    /// see them.
    pub fn add_remote(&self, name: &str, url: &str, default: bool) -> Result<()> {
        let refused = |m: String| DataError::RemoteRefused(m);
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(refused(format!("remote name `{name}`: use letters, digits, - and _")));
        }
        kairo_store::remote::parse_url(url).map_err(|e| refused(format!("remote `{name}` ({url}): {e}")))?;
        if let Some(existing) = self.config.remotes.get(name) {
            return Err(refused(format!(
                "kairo.yaml has a remote named `{name}` already ({}); edit it there",
                existing.url
            )));
        }
        let path = self.root.join(CONFIG_FILE);
        let text = fs::read_to_string(&path).map_err(DataError::io(&path))?;
        let entry = format!("  {name}:\n    url: {}", serde_json::Value::String(url.to_string()));
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        match lines.iter().position(|l| l.trim_end() == "remotes:") {
            Some(at) => lines.insert(at + 1, entry.clone()),
            None => lines.push(format!("remotes:\n{entry}")),
        }
        if default {
            match lines.iter().position(|l| l.starts_with("default_remote:")) {
                Some(at) => lines[at] = format!("default_remote: {name}"),
                None => lines.push(format!("default_remote: {name}")),
            }
        }
        let new = lines.join("\n") + "\n";
        let parsed = Config::parse(&new).ok();
        if parsed.as_ref().and_then(|c| c.remotes.get(name)).map(|r| r.url.as_str()) != Some(url) {
            return Err(refused(format!(
                "kairo.yaml's `remotes:` is not in a form that can be added to; add it by hand:\nremotes:\n{entry}"
            )));
        }
        fs::write(&path, new).map_err(DataError::io(&path))
    }

    /// Turn a user-supplied path (relative to `cwd`) into a project-relative path with `/`
    /// separators, rejecting paths outside the project or inside `.kairo/`. A pointer file's
    /// path names the data it points to.
    pub fn relative(&self, cwd: &Path, user: &Path) -> Result<String> {
        let abs = normalize(&cwd.join(user));
        let abs = match abs.to_str().and_then(|s| s.strip_suffix(POINTER_SUFFIX)) {
            Some(stripped) if !stripped.is_empty() && !stripped.ends_with('/') => PathBuf::from(stripped),
            _ => abs,
        };
        // Resolve symlinks in the parent so /tmp vs /private/tmp style aliases compare equal.
        let resolved = match (abs.parent(), abs.file_name()) {
            (Some(parent), Some(name)) => match parent.canonicalize() {
                Ok(p) => p.join(name),
                Err(_) => abs.clone(),
            },
            _ => abs.clone(),
        };
        let rel = resolved
            .strip_prefix(&self.root)
            .map_err(|_| DataError::OutsideProject { path: user.to_path_buf(), root: self.root.clone() })?;
        if rel.as_os_str().is_empty() {
            return Err(DataError::ProjectRoot(user.to_path_buf()));
        }
        if rel.components().next() == Some(Component::Normal(STORE_DIR.as_ref())) {
            return Err(DataError::InsideStore(user.to_path_buf()));
        }
        let s = rel.to_str().ok_or_else(|| DataError::NotUtf8(user.to_path_buf()))?;
        Ok(s.to_string())
    }

    pub fn abs(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn pointer_path(&self, rel: &str) -> PathBuf {
        self.root.join(format!("{rel}{POINTER_SUFFIX}"))
    }

    /// Read the pointer of a tracked path; `Ok(None)` when it is not tracked.
    pub fn read_pointer(&self, rel: &str) -> Result<Option<Pointer>> {
        let path = self.pointer_path(rel);
        match fs::read_to_string(&path) {
            Ok(text) => Pointer::parse(&text).map(Some).map_err(|source| DataError::Pointer { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(DataError::Io { path, source: e }),
        }
    }

    pub fn require_pointer(&self, rel: &str) -> Result<Pointer> {
        self.read_pointer(rel)?.ok_or_else(|| DataError::NotTracked(PathBuf::from(rel)))
    }

    /// Write a pointer file atomically.
    pub fn write_pointer(&self, rel: &str, pointer: &Pointer) -> Result<()> {
        let path = self.pointer_path(rel);
        let tmp = path.with_extension("kairo.tmp");
        fs::write(&tmp, pointer.render()).map_err(DataError::io(&tmp))?;
        fs::rename(&tmp, &path).map_err(DataError::io(&path))
    }

    /// Every tracked path in the work tree (project-relative, sorted). In git, asks git for
    /// pointer files (committed or not, honouring .gitignore), so large ignored directories
    /// are never walked; outside git, walks the tree.
    pub fn tracked_paths(&self) -> Result<Vec<String>> {
        let mut out = match git::pointer_files(&self.root) {
            Some(files) => files
                .into_iter()
                .filter(|f| self.root.join(f).is_file())
                .filter_map(|f| f.strip_suffix(POINTER_SUFFIX).map(str::to_string))
                .filter(|p| !p.is_empty() && !p.ends_with('/'))
                .collect(),
            None => {
                let mut out = Vec::new();
                find_pointers(&self.root, &self.root, &mut out)?;
                out
            }
        };
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The URL of a `kairo server` running for this project, if one is (its process is alive).
    pub fn running_server(&self) -> Option<String> {
        let text = fs::read_to_string(self.root.join(SERVER_FILE)).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        let pid = v.get("pid")?.as_u64()?;
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return None;
        }
        v.get("url")?.as_str().map(str::to_string)
    }

    /// Who is acting: `KAIRO_ACTOR`, else user@host.
    pub fn actor() -> String {
        if let Ok(a) = std::env::var("KAIRO_ACTOR") {
            if !a.is_empty() {
                return a;
            }
        }
        let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
        format!("{user}@{}", Project::hostname())
    }

    /// A model's prediction-log privacy policy in `config` (empty when it has none) and the
    /// hashing key from the environment variable the policy names (none when unset or empty).
    pub fn privacy(
        config: &kairo_core::config::Config,
        model: &str,
    ) -> (kairo_core::privacy::PrivacySpec, Option<kairo_core::privacy::Key>) {
        let spec = config.models.get(model).and_then(|m| m.privacy.clone()).unwrap_or_default();
        let key = std::env::var(spec.key_env())
            .ok()
            .filter(|k| !k.is_empty())
            .map(|k| kairo_core::privacy::Key::from_secret(&k));
        (spec, key)
    }

    /// This machine's name, as runs and actors record it.
    pub fn hostname() -> String {
        fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| fs::read_to_string("/etc/hostname"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "localhost".into())
    }

    /// Whether process `pid` on this machine is a running kairo (what a run or a scratch
    /// directory left by a killed kairo is told apart by).
    pub fn kairo_alive(pid: u32) -> bool {
        fs::read(format!("/proc/{pid}/cmdline")).map(|c| String::from_utf8_lossy(&c).contains("kairo")).unwrap_or(false)
    }
}

/// Lexically resolve `.` and `..` (the path may not exist yet).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Walk the work tree for `*.kairo` pointers, not descending into `.git`, `.kairo` or tracked data.
fn find_pointers(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if dir != root && e.kind() == std::io::ErrorKind::PermissionDenied => return Ok(()),
        Err(e) => return Err(DataError::Io { path: dir.to_path_buf(), source: e }),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(DataError::io(dir))?;
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        names.push((entry.file_name().to_string_lossy().to_string(), is_dir));
    }
    let tracked: std::collections::HashSet<String> = names
        .iter()
        .filter(|(n, is_dir)| !is_dir && n.ends_with(POINTER_SUFFIX) && n.len() > POINTER_SUFFIX.len())
        .map(|(n, _)| n[..n.len() - POINTER_SUFFIX.len()].to_string())
        .collect();
    for (name, is_dir) in &names {
        let path = dir.join(name);
        if *is_dir {
            if name == ".git" || name == STORE_DIR || tracked.contains(name) {
                continue;
            }
            find_pointers(root, &path, out)?;
        }
    }
    for name in tracked {
        if let Ok(rel) = dir.join(&name).strip_prefix(root) {
            out.push(rel.to_string_lossy().to_string());
        }
    }
    Ok(())
}

fn read_config(root: &Path) -> Result<Config> {
    let config_path = root.join(CONFIG_FILE);
    match fs::read_to_string(&config_path) {
        Ok(text) => Ok(Config::parse(&text)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
        Err(source) => Err(DataError::ConfigRead { path: config_path, source }),
    }
}
