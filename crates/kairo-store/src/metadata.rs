//! The metadata repository: one API over SQLite and PostgreSQL (sqlx's `Any` driver, portable
//! SQL with `$N` parameters), versioned migrations per backend, and the event log.
//!
//! Every state change goes through a method here that writes the change and its event in one
//! transaction.

use crate::error::{Result, StoreError};
use kairo_core::{time, EventKind, Hash};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Executor, Row, Transaction};
use std::path::Path;

/// Migrations in order; the version of each is its position + 1.
const SQLITE_MIGRATIONS: &[(&str, &str)] = &[
    ("init", include_str!("../migrations/sqlite/0001_init.sql")),
    ("runs", include_str!("../migrations/sqlite/0002_runs.sql")),
    ("tracking", include_str!("../migrations/sqlite/0003_tracking.sql")),
    ("serving", include_str!("../migrations/sqlite/0004_serving.sql")),
    ("monitoring", include_str!("../migrations/sqlite/0005_monitoring.sql")),
    ("importance", include_str!("../migrations/sqlite/0006_importance.sql")),
    ("version_numbers", include_str!("../migrations/sqlite/0007_version_numbers.sql")),
    ("retired_model_names", include_str!("../migrations/sqlite/0008_retired_model_names.sql")),
    ("incidents", include_str!("../migrations/sqlite/0009_incidents.sql")),
    ("kpi", include_str!("../migrations/sqlite/0010_kpi.sql")),
    ("auth", include_str!("../migrations/sqlite/0011_auth.sql")),
    ("replicas", include_str!("../migrations/sqlite/0012_replicas.sql")),
    ("segment_replica", include_str!("../migrations/sqlite/0013_segment_replica.sql")),
    ("segment_retention", include_str!("../migrations/sqlite/0014_segment_retention.sql")),
];
const POSTGRES_MIGRATIONS: &[(&str, &str)] = &[
    ("init", include_str!("../migrations/postgres/0001_init.sql")),
    ("runs", include_str!("../migrations/postgres/0002_runs.sql")),
    ("tracking", include_str!("../migrations/postgres/0003_tracking.sql")),
    ("serving", include_str!("../migrations/postgres/0004_serving.sql")),
    ("monitoring", include_str!("../migrations/postgres/0005_monitoring.sql")),
    ("importance", include_str!("../migrations/postgres/0006_importance.sql")),
    ("version_numbers", include_str!("../migrations/postgres/0007_version_numbers.sql")),
    ("retired_model_names", include_str!("../migrations/postgres/0008_retired_model_names.sql")),
    ("incidents", include_str!("../migrations/postgres/0009_incidents.sql")),
    ("kpi", include_str!("../migrations/postgres/0010_kpi.sql")),
    ("auth", include_str!("../migrations/postgres/0011_auth.sql")),
    ("replicas", include_str!("../migrations/postgres/0012_replicas.sql")),
    ("segment_replica", include_str!("../migrations/postgres/0013_segment_replica.sql")),
    ("segment_retention", include_str!("../migrations/postgres/0014_segment_retention.sql")),
];

/// The newest schema this build understands.
pub const SCHEMA_VERSION: i64 = 14;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One recorded version of a tracked path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetVersion {
    pub id: i64,
    pub path: String,
    pub hash: Hash,
    pub kind: String,
    pub size: u64,
    pub files: u64,
    pub created_at: String,
    pub actor: String,
    pub git_commit: Option<String>,
    pub git_branch: Option<String>,
}

/// What `data add` knows about a new version.
#[derive(Debug, Clone)]
pub struct NewDatasetVersion<'a> {
    pub path: &'a str,
    pub hash: Hash,
    pub kind: &'a str,
    pub size: u64,
    pub files: u64,
    pub git_commit: Option<&'a str>,
    pub git_branch: Option<&'a str>,
}

/// An entry of the append-only event log.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub kind: String,
    pub subject: String,
    pub payload: serde_json::Value,
}

/// The metadata repository.
#[derive(Debug, Clone)]
pub struct Metadata {
    pub(crate) pool: AnyPool,
    backend: Backend,
    /// Serialises read-then-write transactions of this process on SQLite, whose deferred
    /// transactions fail with "database is locked" when two try to upgrade to writers at once.
    writer: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Runs recently seen active, so a burst of log calls checks the database once per run.
    pub(crate) active_runs: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>>,
    /// The database file, for SQLite.
    sqlite_path: Option<std::path::PathBuf>,
}

impl Metadata {
    /// Open the SQLite database at `path`, creating it if needed.
    pub async fn open_sqlite(path: &Path) -> Result<Self> {
        Self::connect(&format!("sqlite://{}?mode=rwc", path.display())).await
    }

    /// Connect to `sqlite://…` or `postgres://…`, and bring the schema up to date. Refuses a
    /// database whose schema is newer than this build.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedDatabase(redact(url)));
        };
        let options = AnyPoolOptions::new().max_connections(if backend == Backend::Sqlite { 4 } else { 8 });
        let options = if backend == Backend::Sqlite {
            options.after_connect(|conn, _| {
                Box::pin(async move {
                    // secure_delete: deleted or overwritten rows are zeroed in the file, so an
                    // erased prediction-log sketch leaves nothing behind (see `scrub`).
                    conn.execute("PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 30000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA secure_delete = ON;")
                        .await?;
                    Ok(())
                })
            })
        } else {
            options
        };
        let pool = options.connect(url).await?;
        let sqlite_path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .map(|rest| std::path::PathBuf::from(rest.split('?').next().unwrap_or(rest)));
        let md = Metadata { pool, backend, writer: Default::default(), active_runs: Default::default(), sqlite_path };
        md.migrate().await?;
        Ok(md)
    }

    /// Held across a write transaction on SQLite (see `writer`); a no-op on PostgreSQL.
    pub(crate) async fn writer(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.backend {
            Backend::Sqlite => Some(self.writer.lock().await),
            Backend::Postgres => None,
        }
    }

    /// The database file when the backend is SQLite.
    pub fn sqlite_path(&self) -> Option<&std::path::Path> {
        self.sqlite_path.as_deref()
    }

    /// The lock that serialises this process's SQLite writers (see `writer`).
    pub fn writer_lock(&self) -> std::sync::Arc<tokio::sync::Mutex<()>> {
        self.writer.clone()
    }

    /// After data was deleted for privacy (retention, erasure): on SQLite, checkpoint the
    /// write-ahead log and truncate it, so no old page image of the deleted rows stays in
    /// `kairo.db-wal` (secure_delete already zeroes them in the database file). PostgreSQL
    /// reclaims dead rows with its own VACUUM.
    pub async fn scrub(&self) -> Result<()> {
        if self.backend == Backend::Sqlite {
            let _w = self.writer().await;
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").execute(&self.pool).await?;
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn migrate(&self) -> Result<()> {
        let migrations = match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS,
            Backend::Postgres => POSTGRES_MIGRATIONS,
        };
        let create = "CREATE TABLE IF NOT EXISTS kairo_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)";
        match self.backend {
            Backend::Sqlite => {
                self.pool.execute(create).await?;
            }
            Backend::Postgres => {
                // Two first connections at once would both create the table (PostgreSQL's
                // IF NOT EXISTS is not atomic): one at a time.
                let mut tx = self.pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(MIGRATION_LOCK).execute(&mut *tx).await?;
                tx.execute(create).await?;
                tx.commit().await?;
            }
        }
        if self.schema_version().await? >= migrations.len() as i64 {
            return self.check_not_newer().await;
        }
        let mut tx = self.pool.begin().await?;
        // Take the write lock first so two processes cannot both apply the same migration.
        match self.backend {
            Backend::Sqlite => tx.execute("DELETE FROM kairo_migrations WHERE version < 0").await?,
            Backend::Postgres => tx.execute("LOCK TABLE kairo_migrations IN EXCLUSIVE MODE").await?,
        };
        let current = current_version(&mut tx).await?;
        if current > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew { found: current, supported: SCHEMA_VERSION });
        }
        for (i, (name, sql)) in migrations.iter().enumerate().skip(current as usize) {
            tx.execute(sqlx::raw_sql(sql)).await?;
            sqlx::query("INSERT INTO kairo_migrations (version, name, applied_at) VALUES ($1, $2, $3)")
                .bind(i as i64 + 1)
                .bind(*name)
                .bind(time::now_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn check_not_newer(&self) -> Result<()> {
        let found = self.schema_version().await?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew { found, supported: SCHEMA_VERSION });
        }
        Ok(())
    }

    /// The highest applied migration.
    pub async fn schema_version(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COALESCE(MAX(version), 0) FROM kairo_migrations").fetch_one(&self.pool).await?;
        Ok(row.try_get::<i64, _>(0)?)
    }

    /// Record a dataset version (and its event) unless the same path already has it.
    /// Returns the version and whether it was new.
    pub async fn record_dataset_version(
        &self,
        v: &NewDatasetVersion<'_>,
        actor: &str,
    ) -> Result<(DatasetVersion, bool)> {
        let now = time::now_string();
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO datasets (path, created_at) VALUES ($1, $2) ON CONFLICT (path) DO NOTHING")
            .bind(v.path)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
        let dataset_id: i64 = sqlx::query("SELECT id FROM datasets WHERE path = $1")
            .bind(v.path)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        let inserted = sqlx::query(
            "INSERT INTO dataset_versions (dataset_id, hash, kind, size, files, created_at, actor, git_commit, git_branch) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (dataset_id, hash) DO NOTHING",
        )
        .bind(dataset_id)
        .bind(v.hash.to_hex())
        .bind(v.kind)
        .bind(v.size as i64)
        .bind(v.files as i64)
        .bind(&now)
        .bind(actor)
        .bind(v.git_commit)
        .bind(v.git_branch)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if inserted {
            let payload = serde_json::json!({
                "hash": v.hash.to_hex(), "type": v.kind, "size": v.size, "files": v.files,
                "git_commit": v.git_commit, "git_branch": v.git_branch,
            });
            insert_event(&mut tx, actor, EventKind::DatasetVersionAdded, &format!("dataset:{}", v.path), &payload)
                .await?;
        }
        let row = sqlx::query(&format!("{VERSION_SELECT} WHERE d.path = $1 AND v.hash = $2"))
            .bind(v.path)
            .bind(v.hash.to_hex())
            .fetch_one(&mut *tx)
            .await?;
        let version = version_from_row(&row)?;
        tx.commit().await?;
        Ok((version, inserted))
    }

    /// The newest version of every tracked path, by path.
    pub async fn latest_dataset_versions(&self) -> Result<Vec<DatasetVersion>> {
        let rows = sqlx::query(&format!(
            "{VERSION_SELECT} WHERE v.id IN (SELECT MAX(id) FROM dataset_versions GROUP BY dataset_id) ORDER BY d.path"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(version_from_row).collect()
    }

    /// Versions of a tracked path, oldest first.
    pub async fn dataset_versions(&self, path: &str) -> Result<Vec<DatasetVersion>> {
        let rows = sqlx::query(&format!("{VERSION_SELECT} WHERE d.path = $1 ORDER BY v.id"))
            .bind(path)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(version_from_row).collect()
    }

    /// Record an event for a change that has no row of its own (e.g. objects collected).
    pub async fn record_event(
        &self,
        actor: &str,
        kind: EventKind,
        subject: &str,
        payload: &serde_json::Value,
    ) -> Result<i64> {
        let mut tx = self.pool.begin().await?;
        let id = insert_event(&mut tx, actor, kind, subject, payload).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Events, newest last; optionally only those about `subject`.
    pub async fn events(&self, subject: Option<&str>, limit: i64) -> Result<Vec<Event>> {
        let rows = match subject {
            Some(s) => {
                sqlx::query("SELECT id, at, actor, kind, subject, payload FROM (SELECT * FROM events WHERE subject = $1 ORDER BY id DESC LIMIT $2) e ORDER BY id")
                    .bind(s)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("SELECT id, at, actor, kind, subject, payload FROM (SELECT * FROM events ORDER BY id DESC LIMIT $1) e ORDER BY id")
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(event_from_row).collect()
    }

    /// Pin an object for a record (a run's output, a model's artifact) so `gc` keeps it.
    pub async fn add_object_ref(&self, hash: Hash, owner_kind: &str, owner_id: &str, actor: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query(
            "INSERT INTO object_refs (hash, owner_kind, owner_id, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(hash.to_hex())
        .bind(owner_kind)
        .bind(owner_id)
        .bind(time::now_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 1 {
            let payload = serde_json::json!({"hash": hash.to_hex()});
            insert_event(&mut tx, actor, EventKind::ObjectPinned, &format!("{owner_kind}:{owner_id}"), &payload)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every object some record pins.
    pub async fn referenced_objects(&self) -> Result<Vec<Hash>> {
        let rows = sqlx::query("SELECT DISTINCT hash FROM object_refs").fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                let s: String = r.try_get(0)?;
                s.parse::<Hash>().map_err(|e| StoreError::Database(sqlx::Error::Decode(Box::new(e))))
            })
            .collect()
    }
}

const VERSION_SELECT: &str =
    "SELECT v.id, d.path, v.hash, v.kind, v.size, v.files, v.created_at, v.actor, v.git_commit, v.git_branch \
     FROM dataset_versions v JOIN datasets d ON d.id = v.dataset_id";

fn version_from_row(r: &AnyRow) -> Result<DatasetVersion> {
    let hash: String = r.try_get(2)?;
    Ok(DatasetVersion {
        id: r.try_get(0)?,
        path: r.try_get(1)?,
        hash: hash.parse().map_err(|e| StoreError::Database(sqlx::Error::Decode(Box::new(e))))?,
        kind: r.try_get(3)?,
        size: r.try_get::<i64, _>(4)? as u64,
        files: r.try_get::<i64, _>(5)? as u64,
        created_at: r.try_get(6)?,
        actor: r.try_get(7)?,
        git_commit: r.try_get(8)?,
        git_branch: r.try_get(9)?,
    })
}

async fn current_version(tx: &mut Transaction<'_, Any>) -> Result<i64> {
    let row = sqlx::query("SELECT COALESCE(MAX(version), 0) FROM kairo_migrations").fetch_one(&mut **tx).await?;
    Ok(row.try_get::<i64, _>(0)?)
}

/// An `events` row selected as `id, at, actor, kind, subject, payload`.
pub(crate) fn event_from_row(r: &AnyRow) -> Result<Event> {
    let payload: String = r.try_get(5)?;
    Ok(Event {
        id: r.try_get(0)?,
        at: r.try_get(1)?,
        actor: r.try_get(2)?,
        kind: r.try_get(3)?,
        subject: r.try_get(4)?,
        payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::String(payload)),
    })
}

/// The advisory lock around creating the migrations table on PostgreSQL.
const MIGRATION_LOCK: i64 = 0x6b61_6972_6f00;

/// The advisory lock that orders event writers on PostgreSQL (SQLite has one writer anyway).
const CHAIN_LOCK: i64 = 0x6b61_6972_6f01;

/// Take the right to append to the chain for the rest of the transaction: on PostgreSQL an
/// advisory lock (ids are given out at insert, so without it two writers could link to the
/// same predecessor); on SQLite a write statement, which takes the database's write lock.
pub(crate) async fn lock_chain(tx: &mut Transaction<'_, Any>) -> Result<()> {
    if tx.backend_name() == "PostgreSQL" {
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(CHAIN_LOCK).execute(&mut **tx).await?;
    } else {
        sqlx::query("UPDATE events SET hash = hash WHERE id < 0").execute(&mut **tx).await?;
    }
    Ok(())
}

/// The hash of the newest event (None before the chain began).
pub(crate) async fn chain_head(tx: &mut Transaction<'_, Any>) -> Result<Option<String>> {
    let row = sqlx::query("SELECT hash FROM events ORDER BY id DESC LIMIT 1").fetch_optional(&mut **tx).await?;
    Ok(row.map(|r| r.try_get::<Option<String>, _>(0)).transpose()?.flatten())
}

pub(crate) async fn insert_event(
    tx: &mut Transaction<'_, Any>,
    actor: &str,
    kind: EventKind,
    subject: &str,
    payload: &serde_json::Value,
) -> Result<i64> {
    lock_chain(tx).await?;
    let prev = chain_head(tx).await?;
    let at = time::now_string();
    let payload = payload.to_string();
    let hash = kairo_core::event::chain_hash(prev.as_deref(), &at, actor, kind.as_str(), subject, &payload);
    let row = sqlx::query(
        "INSERT INTO events (at, actor, kind, subject, payload, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind(at)
    .bind(actor)
    .bind(kind.as_str())
    .bind(subject)
    .bind(payload)
    .bind(prev)
    .bind(hash)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.try_get::<i64, _>(0)?)
}

/// Hide a password in a database URL before it goes into a message.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}
