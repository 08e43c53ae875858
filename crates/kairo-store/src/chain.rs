//! Checking the event log's hash chain (`kairo events verify`): each event's hash must cover
//! its own fields and its predecessor's hash, so an edited event breaks its own hash and a
//! deleted one breaks its successor's link. Events from before the chain began (schema 10 or
//! older) have no hash and are counted apart; a missing hash after the chain began is a break.
//! Removing the newest events leaves no trace in the chain: keep `head` somewhere else (a
//! ticket, a commit) to catch that too.

use crate::error::Result;
use crate::metadata::Metadata;
use kairo_core::event::chain_hash;
use sqlx::Row;

/// One place the chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    pub id: i64,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainReport {
    pub events: u64,
    /// Events written before the chain began (no hash).
    pub before_chain: u64,
    /// The newest event's id and hash.
    pub head: Option<(i64, String)>,
    /// The first breaks found (at most 20).
    pub breaks: Vec<Break>,
}

impl Metadata {
    pub async fn verify_events(&self) -> Result<ChainReport> {
        let mut r = ChainReport::default();
        let mut last: Option<(i64, String)> = None;
        let mut after = i64::MIN;
        loop {
            let rows = sqlx::query(
                "SELECT id, at, actor, kind, subject, payload, prev_hash, hash FROM events WHERE id > $1 ORDER BY id LIMIT 5000",
            )
            .bind(after)
            .fetch_all(&self.pool)
            .await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let id: i64 = row.try_get(0)?;
                after = id;
                r.events += 1;
                let prev: Option<String> = row.try_get(6)?;
                let hash: Option<String> = row.try_get(7)?;
                let mut broken = |reason: String| {
                    if r.breaks.len() < 20 {
                        r.breaks.push(Break { id, reason });
                    }
                };
                let Some(hash) = hash else {
                    if last.is_some() {
                        broken(format!("event {id} has no hash although the chain had begun: it was written outside Kairo, or its hash was removed"));
                    } else {
                        r.before_chain += 1;
                    }
                    continue;
                };
                let expected_prev = last.as_ref().map(|(_, h)| h.as_str());
                if prev.as_deref() != expected_prev {
                    let before = last
                        .as_ref()
                        .map(|(i, _)| format!("event {i}"))
                        .unwrap_or_else(|| "the start of the chain".into());
                    broken(format!(
                        "event {id} does not follow {before}: an event between them was deleted, or a link was edited"
                    ));
                }
                let fields: [String; 5] =
                    [row.try_get(1)?, row.try_get(2)?, row.try_get(3)?, row.try_get(4)?, row.try_get(5)?];
                let recomputed =
                    chain_hash(prev.as_deref(), &fields[0], &fields[1], &fields[2], &fields[3], &fields[4]);
                if !kairo_core::auth::same_hash(&recomputed, &hash) {
                    broken(format!("event {id} was changed after it was written: its content does not match its hash"));
                }
                last = Some((id, hash));
            }
        }
        r.head = last;
        Ok(r)
    }
}
