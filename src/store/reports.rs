//! The rows a report counts (see `report.rs`).

use super::{Result, Store, Tx};
use crate::clock::Timestamp;
use crate::report::Row;
use sqlx::Row as _;

/// Tickets created, first answered or resolved in `[from, to)`.
pub async fn report_rows(tx: &mut Tx, from: Timestamp, to: Timestamp) -> Result<Vec<Row>> {
    sqlx::query(
        "SELECT a.email AS assignee, tm.name AS team, t.category, o.name AS organization,
                t.created_at, t.first_response_at, t.resolved_at,
                EXISTS (SELECT 1 FROM sla_timers s WHERE s.ticket_id = t.id
                        AND s.kind IN ('first_response.breach', 'resolution.breach')
                        AND s.fired_at IS NOT NULL) AS breached
         FROM tickets t
         LEFT JOIN agents a ON a.id = t.assignee_id
         LEFT JOIN teams tm ON tm.id = t.team_id
         LEFT JOIN organizations o ON o.id = t.organization_id
         WHERE (t.created_at >= $1 AND t.created_at < $2)
            OR (t.resolved_at >= $1 AND t.resolved_at < $2)
            OR (t.first_response_at >= $1 AND t.first_response_at < $2)",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|r| {
        Ok(Row {
            assignee: r.try_get("assignee")?,
            team: r.try_get("team")?,
            category: r.try_get("category")?,
            organization: r.try_get("organization")?,
            created_at: r.try_get("created_at")?,
            first_response_at: r.try_get("first_response_at")?,
            resolved_at: r.try_get("resolved_at")?,
            breached: super::flag(r, "breached")?,
        })
    })
    .collect()
}

impl Store {
    pub async fn report_rows(&self, from: Timestamp, to: Timestamp) -> Result<Vec<Row>> {
        let mut tx = self.begin().await?;
        let rows = report_rows(&mut tx, from, to).await?;
        tx.commit().await?;
        Ok(rows)
    }
}

/// The totals `/metrics` shows, read at each scrape.
#[derive(Debug, Default)]
pub struct MetricTotals {
    /// (source, outcome) → messages journaled.
    pub messages: Vec<(String, String, i64)>,
    /// status → tickets.
    pub tickets: Vec<(String, i64)>,
    /// (channel, status) → outbox rows.
    pub outbox: Vec<(String, String, i64)>,
    /// Age of the oldest pending notification, in seconds.
    pub oldest_pending_seconds: i64,
    /// SLA breach timers that fired.
    pub sla_breaches: i64,
}

impl super::Store {
    pub async fn metric_totals(&self, now: Timestamp) -> Result<MetricTotals> {
        let pairs = |rows: Vec<sqlx::any::AnyRow>| -> Result<Vec<(String, i64)>> {
            rows.iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect()
        };
        let triples = |rows: Vec<sqlx::any::AnyRow>| -> Result<Vec<(String, String, i64)>> {
            rows.iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
                .collect()
        };
        let messages = sqlx::query(
            "SELECT source, outcome, COUNT(*) FROM ingest_journal GROUP BY source, outcome
             ORDER BY source, outcome",
        )
        .fetch_all(self.pool())
        .await?;
        let tickets =
            sqlx::query("SELECT status, COUNT(*) FROM tickets GROUP BY status ORDER BY status")
                .fetch_all(self.pool())
                .await?;
        let outbox = sqlx::query(
            "SELECT channel, status, COUNT(*) FROM outbox GROUP BY channel, status
             ORDER BY channel, status",
        )
        .fetch_all(self.pool())
        .await?;
        let oldest: Option<i64> =
            sqlx::query("SELECT MIN(created_at) FROM outbox WHERE status = 'pending'")
                .fetch_one(self.pool())
                .await?
                .try_get(0)?;
        let sla_breaches: i64 = sqlx::query(
            "SELECT COUNT(*) FROM sla_timers WHERE fired_at IS NOT NULL AND kind LIKE '%.breach'",
        )
        .fetch_one(self.pool())
        .await?
        .try_get(0)?;
        Ok(MetricTotals {
            messages: triples(messages)?,
            tickets: pairs(tickets)?,
            outbox: triples(outbox)?,
            oldest_pending_seconds: oldest.map_or(0, |t| (now - t).max(0)),
            sla_breaches,
        })
    }
}
