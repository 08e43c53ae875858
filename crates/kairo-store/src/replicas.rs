//! What N `kairo serve` replicas on one database share (migration `0012_replicas`): each
//! replica's counts of a deployment's candidate, per generation (each overwrites its own row,
//! so nothing double counts), and leases, so that a job that must be done once — the rollout
//! guard's verdict — is done by one replica at a time.

use crate::error::Result;
use crate::metadata::Metadata;
use kairo_core::latency::Histogram;
use sqlx::Row;

/// One replica's running totals for a candidate.
#[derive(Debug, Clone)]
pub struct CandidateCounts {
    pub requests: i64,
    pub errors: i64,
    pub latency: Histogram,
}

impl Metadata {
    /// Publish this replica's totals for the candidate of `deployment` at `generation`.
    pub async fn publish_candidate_counts(
        &self,
        deployment: &str,
        generation: i64,
        replica: &str,
        version: i64,
        counts: &CandidateCounts,
    ) -> Result<()> {
        let _w = self.writer().await;
        sqlx::query(
            "INSERT INTO candidate_counts (deployment, generation, replica, version, requests, errors, latency, updated_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (deployment, generation, replica) DO UPDATE SET version = excluded.version, \
             requests = excluded.requests, errors = excluded.errors, latency = excluded.latency, updated_ms = excluded.updated_ms",
        )
        .bind(deployment)
        .bind(generation)
        .bind(replica)
        .bind(version)
        .bind(counts.requests)
        .bind(counts.errors)
        .bind(counts.latency.encode())
        .bind(kairo_core::time::now_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The candidate's totals over every replica, and how many replicas reported.
    pub async fn candidate_counts(&self, deployment: &str, generation: i64) -> Result<(CandidateCounts, usize)> {
        let rows = sqlx::query(
            "SELECT requests, errors, latency FROM candidate_counts WHERE deployment = $1 AND generation = $2",
        )
        .bind(deployment)
        .bind(generation)
        .fetch_all(&self.pool)
        .await?;
        let mut total = CandidateCounts { requests: 0, errors: 0, latency: Histogram::new() };
        for r in &rows {
            total.requests += r.try_get::<i64, _>(0)?;
            total.errors += r.try_get::<i64, _>(1)?;
            // A row this version cannot read is skipped, not fatal to the guard.
            if let Ok(h) = Histogram::decode(&r.try_get::<String, _>(2)?) {
                total.latency.merge(&h);
            }
        }
        Ok((total, rows.len()))
    }

    /// Take or renew the lease `name` for `holder` for `ttl_ms`: whether `holder` holds it now.
    /// One statement, so two replicas asking at once cannot both get it.
    pub async fn acquire_lease(&self, name: &str, holder: &str, ttl_ms: i64) -> Result<bool> {
        let now = kairo_core::time::now_millis();
        let _w = self.writer().await;
        sqlx::query(
            "INSERT INTO leases (name, holder, expires_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_ms = excluded.expires_ms \
             WHERE leases.holder = excluded.holder OR leases.expires_ms < $4",
        )
        .bind(name)
        .bind(holder)
        .bind(now + ttl_ms)
        .bind(now)
        .execute(&self.pool)
        .await?;
        let row = sqlx::query("SELECT holder FROM leases WHERE name = $1").bind(name).fetch_one(&self.pool).await?;
        Ok(row.try_get::<String, _>(0)? == holder)
    }

    /// Give a lease up (a replica shutting down), so another takes it at once.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        let _w = self.writer().await;
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
