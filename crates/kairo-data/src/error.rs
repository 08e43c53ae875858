use kairo_core::config::ConfigError;
use kairo_core::pointer::PointerError;
use kairo_core::Hash;
use kairo_store::StoreError;
use std::path::PathBuf;

/// Errors from data versioning. Each names the path, object or setting involved and, where
/// there is one, the fix.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("no Kairo project at or above {0}; run `kairo init` first")]
    NotAProject(PathBuf),
    #[error("{0}: no such file or directory")]
    PathMissing(PathBuf),
    #[error("{path} is outside the project at {root}")]
    OutsideProject { path: PathBuf, root: PathBuf },
    #[error("{0} is inside Kairo's own store (.kairo/); track your data, not the store")]
    InsideStore(PathBuf),
    #[error("{0} is the project root; track a file or directory inside it")]
    ProjectRoot(PathBuf),
    #[error(
        "{0}: symlink cycle (a link points back to itself or to one of its parent directories); remove or fix the link"
    )]
    SymlinkLoop(PathBuf),
    #[error(
        "{link} is a symbolic link to {target}, outside the project; copy the data into the project, \
         or pass --follow-symlinks to store the target's content"
    )]
    LinkOutsideProject { link: PathBuf, target: PathBuf },
    #[error(
        "{link} is a symbolic link into Kairo's own store ({target}); remove the link (the store is never tracked)"
    )]
    LinkIntoStore { link: PathBuf, target: PathBuf },
    #[error(
        "{0} is Kairo's own store (.kairo/), reached through a symbolic link; remove the link (the store is never tracked)"
    )]
    StoreReached(PathBuf),
    #[error("{0} changed while it was read, {1} times in a row; nothing was recorded; add it again when it is stable")]
    ChangedWhileReading(PathBuf, usize),
    #[error(
        "{0} was replaced by another file while it was read (renamed over, or a link re-pointed); nothing was recorded; add it again when it is stable"
    )]
    ReplacedWhileReading(PathBuf),
    #[error("{0}: file name is not valid UTF-8; rename it to track it")]
    NotUtf8(PathBuf),
    #[error("{0}: not a regular file or directory (sockets, FIFOs and devices cannot be tracked)")]
    SpecialFile(PathBuf),
    #[error("pointer file {path} is corrupted: {source}; restore it with `git checkout -- {path}`")]
    Pointer { path: PathBuf, source: PointerError },
    #[error("{0} is not tracked (there is no {0}.kairo); run `kairo data add {0}`")]
    NotTracked(PathBuf),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{path}: {source}")]
    ConfigRead { path: PathBuf, source: std::io::Error },
    #[error(
        "checkout would overwrite or delete data that is not in the store:\n  {}\nrun `kairo data add` on it first, or pass --force to discard it",
        paths.join("\n  ")
    )]
    WouldLose { paths: Vec<String> },
    #[error("{path}: object {hash} is not in the local store; run `kairo data pull {path}`")]
    NeedPull { path: String, hash: Hash },
    #[error("no remote named `{0}` in kairo.yaml")]
    UnknownRemote(String),
    #[error("no remote given and no default_remote in kairo.yaml; add one under `remotes:` or pass --remote")]
    NoRemote,
    #[error("git: {0}")]
    Git(String),
    #[error("{path}: no version matches `{spec}` (use a version hash or prefix from `kairo data log`, a git revision, or `workspace`)")]
    UnknownVersion { path: String, spec: String },
    #[error("{path}: `{spec}` matches several versions; give more digits")]
    AmbiguousVersion { path: String, spec: String },
    #[error("{path} is tracked by {parent}.kairo; track it as part of {parent}, not separately")]
    NestedTracking { path: String, parent: String },
    #[error("runtime: {0}")]
    Runtime(String),
    /// A remote that cannot be added as given (its name, its URL, or kairo.yaml's form).
    #[error("{0}")]
    RemoteRefused(String),
}

impl DataError {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> DataError {
        let path = path.into();
        move |source| DataError::Io { path, source }
    }
}

pub type Result<T, E = DataError> = std::result::Result<T, E>;
