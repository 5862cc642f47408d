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
