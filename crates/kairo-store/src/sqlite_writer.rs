//! The SQLite writer of metric values: the hot path of `log_metric`, group-committed by
//! flat combining.
//!
//! Through sqlx every statement hops from the async runtime to sqlx's SQLite worker thread and
//! back; a dedicated writer thread still cost two wake-ups per request (handler → writer →
//! handler), which on a 2-core VM cost more than the insert. Here a caller queues its value and
//! then tries to become the combiner: whoever finds the connection free writes everything
//! queued in one `BEGIN IMMEDIATE` transaction (the trigger keeps `run_latest_metrics`
//! current), answers each caller after the commit, and looks again before leaving. A caller
//! that finds the connection busy just waits for its answer: the combiner at work will take its
//! value. An uncontended request therefore commits on its own thread with no hop; under load
//! one commit carries many values. The combiner holds the same in-process writer lock as the
//! sqlx writes, so the two never race for SQLite's write lock; when an sqlx write holds it, the
//! combining moves to a blocking thread instead of stalling the runtime.

use crate::error::{Result, StoreError};
use kairo_core::tracking::MetricPoint;
use std::path::Path;
use std::sync::{Arc, Mutex};

type Reply = tokio::sync::oneshot::Sender<Result<()>>;
type Job = (String, MetricPoint, Reply);

/// Most values written in one transaction.
const MAX_GROUP: usize = 512;

#[derive(Clone)]
pub struct SqliteMetricWriter {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Mutex<rusqlite::Connection>,
    queue: Mutex<Vec<Job>>,
    /// The in-process writer lock shared with sqlx's writes.
    writer: Arc<tokio::sync::Mutex<()>>,
}

impl SqliteMetricWriter {
    /// Open the database at `path` for metric writes.
    pub fn spawn(path: &Path, writer: Arc<tokio::sync::Mutex<()>>) -> Result<Self> {
        let conn = rusqlite::Connection::open(path).map_err(sqlite_err)?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
            .map_err(sqlite_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(sqlite_err)?;
        let inner = Inner { conn: Mutex::new(conn), queue: Mutex::new(Vec::new()), writer };
        Ok(SqliteMetricWriter { inner: Arc::new(inner) })
    }

    /// Queue one value; resolves once it is committed.
    pub async fn append(&self, run_id: String, metric: MetricPoint) -> Result<()> {
        let (reply, done) = tokio::sync::oneshot::channel();
        lock(&self.inner.queue).push((run_id, metric, reply));
        match self.inner.writer.try_lock() {
            Ok(guard) => self.inner.combine(&guard),
            // A combiner at work (it holds the connection) takes this value before it leaves.
            Err(_) if self.inner.conn.try_lock().is_err() => {}
            // An sqlx write holds the writer lock: combine on a blocking thread once it is free.
            Err(_) => {
                let inner = self.inner.clone();
                tokio::task::spawn_blocking(move || {
                    let guard = inner.writer.blocking_lock();
                    inner.combine(&guard);
                });
            }
        }
        let gone = || StoreError::Database(sqlx::Error::Protocol("the metric writer stopped".into()));
        done.await.map_err(|_| gone())?
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Inner {
    /// Write what is queued, group by group, while this caller holds the connection; `_writer`
    /// proves the in-process writer lock is held.
    fn combine<T>(&self, _writer: &T) {
        loop {
            let Ok(mut conn) = self.conn.try_lock() else {
                // Another combiner is at work and will look at the queue before it leaves.
                return;
            };
            loop {
                let group: Vec<Job> = {
                    let mut q = lock(&self.queue);
                    let n = q.len().min(MAX_GROUP);
                    q.drain(..n).collect()
                };
                if group.is_empty() {
                    break;
                }
                commit(&mut conn, group);
            }
            drop(conn);
            // A value queued after the last look, by a caller that found the connection busy.
            if lock(&self.queue).is_empty() {
                return;
            }
        }
    }
}

/// Write `group` in one transaction and answer its callers; if it fails, write the values one
/// by one so that each caller learns its own outcome.
fn commit(conn: &mut rusqlite::Connection, group: Vec<Job>) {
    let values: Vec<(&str, &MetricPoint)> = group.iter().map(|(r, m, _)| (r.as_str(), m)).collect();
    if write(conn, &values).is_ok() {
        for (_, _, reply) in group {
            let _ = reply.send(Ok(()));
        }
        return;
    }
    for (run, metric, reply) in group {
        let _ = reply.send(write(conn, &[(run.as_str(), &metric)]));
    }
}

fn write(conn: &mut rusqlite::Connection, group: &[(&str, &MetricPoint)]) -> Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(sqlite_err)?;
    {
        let mut insert = tx.prepare_cached(crate::tracking::INSERT_METRIC).map_err(sqlite_err)?;
        for (run_id, m) in group {
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
