//! Group commit for `log-metric`: concurrent calls are queued to one writer (a thread with its
//! own connection on SQLite, a task on PostgreSQL) that writes whatever has accumulated in a
//! single transaction, then answers each caller. A caller gets its 200 only
//! after its value is committed, so acknowledged values survive a crash; under load, one commit
//! carries many values instead of one.

use crate::error::{ApiError, ApiResult};
use kairo_core::tracking::MetricPoint;
use kairo_store::Metadata;
use tokio::sync::{mpsc, oneshot};

type Job = (String, MetricPoint, oneshot::Sender<ApiResult<()>>);

/// Most values written in one transaction.
const MAX_GROUP: usize = 512;

#[derive(Clone)]
pub enum MetricWriter {
    /// SQLite: a dedicated thread with its own connection (see `kairo_store::sqlite_writer`).
    Sqlite(kairo_store::sqlite_writer::SqliteMetricWriter),
    /// PostgreSQL: a task group-committing through sqlx.
    Task(mpsc::Sender<Job>),
}

impl MetricWriter {
    /// Start the writer for `md`'s backend.
    pub fn spawn(md: Metadata) -> Self {
        if let Some(path) = md.sqlite_path() {
            if let Ok(w) = kairo_store::sqlite_writer::SqliteMetricWriter::spawn(path, md.writer_lock()) {
                return MetricWriter::Sqlite(w);
            }
        }
        Self::spawn_task(md)
    }

    /// Start the group-commit task on the current runtime.
    fn spawn_task(md: Metadata) -> Self {
        let (tx, mut rx) = mpsc::channel::<Job>(4096);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut group = vec![first];
                while group.len() < MAX_GROUP {
                    match rx.try_recv() {
                        Ok(job) => group.push(job),
                        Err(_) => break,
                    }
                }
                let items: Vec<(String, MetricPoint)> = group.iter().map(|(r, m, _)| (r.clone(), m.clone())).collect();
                match md.append_metrics(&items).await {
                    Ok(()) => {
                        for (_, _, reply) in group {
                            let _ = reply.send(Ok(()));
                        }
                    }
                    // Write one by one, so each caller learns its own outcome.
                    Err(_) => {
                        for (run, metric, reply) in group {
                            let result = md.append_metrics(&[(run, metric)]).await.map_err(ApiError::from);
                            let _ = reply.send(result);
                        }
                    }
                }
            }
        });
        MetricWriter::Task(tx)
    }

    /// Queue one value and wait until it is committed.
    pub async fn log(&self, run_id: String, metric: MetricPoint) -> ApiResult<()> {
        let tx = match self {
            MetricWriter::Sqlite(w) => return w.append(run_id, metric).await.map_err(ApiError::from),
            MetricWriter::Task(tx) => tx,
        };
        let (reply, done) = oneshot::channel();
        let gone = || ApiError { code: crate::error::Code::Internal, message: "the metric writer stopped".into() };
        tx.send((run_id, metric, reply)).await.map_err(|_| gone())?;
        done.await.map_err(|_| gone())?
    }
}
