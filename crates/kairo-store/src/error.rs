use kairo_core::Hash;
use std::path::PathBuf;

/// Everything that can go wrong in the stores. Messages name the path, object or schema version.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("object {hash} is corrupted: its bytes hash to {actual} (path {path})")]
    Corrupt { hash: Hash, actual: Hash, path: PathBuf },
    #[error("object {0} is not in the store")]
    Missing(Hash),
    #[error("metadata database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(
        "metadata database schema is version {found}, newer than this kairo understands ({supported}); upgrade kairo"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("database URL `{0}` is not supported (use sqlite://PATH or postgres://...)")]
    UnsupportedDatabase(String),
    #[error("remote `{url}`: {message}")]
    Remote { url: String, message: String },
    #[error("remote object {hash} is corrupted: received bytes hash to {actual}")]
    RemoteCorrupt { hash: Hash, actual: Hash },
    /// A record the caller named does not exist (experiment, run, artifact...).
    #[error("{0}")]
    NotFound(String),
    /// A record with that identity exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// The request contradicts stored state or limits (e.g. re-logging a param with another value).
    #[error("{0}")]
    Invalid(String),
}

impl StoreError {
    /// The database refused a text value it cannot store (PostgreSQL's
    /// `character_not_in_repertoire`, e.g. a NUL byte, or `untranslatable_character`): the
    /// caller's value is at fault, not the store.
    pub fn is_unstorable_text(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(db)) => matches!(db.code().as_deref(), Some("22021" | "22P05")),
            _ => false,
        }
    }

    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io { path, source }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
