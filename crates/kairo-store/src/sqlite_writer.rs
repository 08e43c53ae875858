//! A dedicated SQLite writer thread for metric values: the hot path of `log_metric`.
//!
//! Through sqlx every statement hops from the async runtime to sqlx's SQLite worker thread and
//! back; on small VMs those wake-ups, not SQLite, bound throughput. This thread owns one
//! connection, takes whatever values have queued up, writes them in one `BEGIN IMMEDIATE`
//! transaction (the trigger keeps `run_latest_metrics` current) and answers each caller after
//! the commit. It holds the same in-process writer lock as the sqlx writes, so the two never
//! race for SQLite's write lock.

use crate::error::{Result, StoreError};
use kairo_core::tracking::MetricPoint;
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;

type Reply = tokio::sync::oneshot::Sender<Result<()>>;
type Job = (String, MetricPoint, Reply);

/// Most values written in one transaction.
const MAX_GROUP: usize = 512;

#[derive(Clone)]
pub struct SqliteMetricWriter {
    tx: mpsc::Sender<Job>,
}

impl SqliteMetricWriter {
    /// Open the database at `path` on a new thread.
    pub fn spawn(path: &Path, writer: Arc<tokio::sync::Mutex<()>>) -> Result<Self> {
        let conn = rusqlite::Connection::open(path).map_err(sqlite_err)?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
            .map_err(sqlite_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(sqlite_err)?;
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("kairo-metric-writer".into())
            .spawn(move || run(conn, rx, writer))
            .map_err(|e| StoreError::Io { path: path.to_path_buf(), source: e })?;
        Ok(SqliteMetricWriter { tx })
    }

    /// Queue one value; resolves once it is committed.
    pub async fn append(&self, run_id: String, metric: MetricPoint) -> Result<()> {
        let (reply, done) = tokio::sync::oneshot::channel();
        let gone = || StoreError::Database(sqlx::Error::Protocol("the metric writer stopped".into()));
        self.tx.send((run_id, metric, reply)).map_err(|_| gone())?;
        done.await.map_err(|_| gone())?
    }
}

fn run(mut conn: rusqlite::Connection, rx: mpsc::Receiver<Job>, writer: Arc<tokio::sync::Mutex<()>>) {
    while let Ok(first) = rx.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let result = {
            let _guard = writer.blocking_lock();
            write(&mut conn, &group)
        };
        match result {
            Ok(()) => {
                for (_, _, reply) in group {
                    let _ = reply.send(Ok(()));
                }
            }
            // Retry one by one, so each caller learns its own outcome.
            Err(_) => {
                for (run, metric, reply) in group {
                    let single = {
                        let _guard = writer.blocking_lock();
                        write(&mut conn, &[(run, metric, tokio::sync::oneshot::channel().0)])
                    };
                    let _ = reply.send(single);
                }
            }
        }
    }
}

fn write(conn: &mut rusqlite::Connection, group: &[Job]) -> Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(sqlite_err)?;
    {
        let mut insert = tx.prepare_cached(crate::tracking::INSERT_METRIC).map_err(sqlite_err)?;
        for (run_id, m, _) in group {
            let (value, is_nan) = if m.value.is_nan() { (0.0, 1i64) } else { (m.value, 0i64) };
            insert
                .execute(rusqlite::params![
                    run_id,
                    m.key,
                    value,
                    is_nan,
                    m.timestamp,
                    m.step,
                    m.model_id,
                    m.dataset_name,
                    m.dataset_digest
                ])
                .map_err(sqlite_err)?;
        }
    }
    tx.commit().map_err(sqlite_err)
}

/// A database failure (not the client's fault): reported as an internal error.
fn sqlite_err(e: rusqlite::Error) -> StoreError {
    StoreError::Database(sqlx::Error::Protocol(format!("metric writer: {e}")))
}
