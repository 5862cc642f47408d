//! SLA clocks in the store: due times on the ticket, pending intervals, and
//! the timer rows the scheduler fires exactly once (a conditional UPDATE, so
//! two instances cannot both fire one).

use super::{Result, Store, Tx};
use crate::clock::Timestamp;
use crate::sla::{Clocked, Kind, Policies, Stored, Timer};
use crate::ticket::{Priority, Status};
use sqlx::Row;

/// Recomputes a ticket's due times and timers from its current state:
/// unfired timers move, fired ones stay fired, those no longer ahead (a first
/// response happened, the ticket is pending or resolved) are dropped. Writes
/// nothing when the stored rows already match (see [`crate::sla::plan`]).
pub async fn reschedule(tx: &mut Tx, id: i64, policies: &Policies) -> Result<()> {
    let Some(r) = sqlx::query(
        "SELECT t.created_at, t.updated_at, t.priority, t.status, tm.name AS team,
                o.name AS organization, t.first_response_at, t.sla_paused_at, t.resolved_at,
                t.first_response_due, t.resolution_due,
                (SELECT COUNT(*) FROM sla_pauses p WHERE p.ticket_id = t.id) AS pauses
         FROM tickets t
         LEFT JOIN teams tm ON tm.id = t.team_id
         LEFT JOIN organizations o ON o.id = t.organization_id
         WHERE t.id = $1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?
    else {
        return Ok(());
    };
    let mut pauses: Vec<(Timestamp, Timestamp)> = Vec::new();
    if r.try_get::<i64, _>("pauses")? > 0 {
        pauses = sqlx::query(
            "SELECT from_at, to_at FROM sla_pauses WHERE ticket_id = $1 ORDER BY from_at",
        )
        .bind(id)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|p| Ok((p.try_get(0)?, p.try_get(1)?)))
        .collect::<Result<_>>()?;
    }
    let priority: String = r.try_get("priority")?;
    let status: String = r.try_get("status")?;
    let team: Option<String> = r.try_get("team")?;
    let organization: Option<String> = r.try_get("organization")?;
    let clocked = Clocked {
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        priority: priority.parse().unwrap_or(Priority::Medium),
        status: status.parse().unwrap_or(Status::Open),
        team: team.as_deref(),
        organization: organization.as_deref(),
        first_response_at: r.try_get("first_response_at")?,
        pauses: &pauses,
        paused_since: r.try_get("sla_paused_at")?,
    };
    let timers = policies.timers(&clocked);
    let stored = stored_timers(tx, id).await?;
    let due = |kind: Kind| timers.iter().find(|t| t.kind == kind).map(|t| t.due);
    let columns_match = r.try_get::<Option<Timestamp>, _>("first_response_due")?
        == due(Kind::FirstResponseBreach)
        && r.try_get::<Option<Timestamp>, _>("resolution_due")? == due(Kind::ResolutionBreach);
    let resolved_at = r.try_get("resolved_at")?;
    let rearm = match crate::sla::plan(
        &timers,
        &stored,
        clocked.updated_at,
        clocked.paused_since,
        resolved_at,
    ) {
        Some(rearm) => rearm,
        None if columns_match => return Ok(()),
        None => Vec::new(),
    };
    sqlx::query("DELETE FROM sla_timers WHERE ticket_id = $1 AND fired_at IS NULL")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    for kind in rearm {
        sqlx::query("DELETE FROM sla_timers WHERE ticket_id = $1 AND kind = $2")
            .bind(id)
            .bind(kind.as_str())
            .execute(&mut **tx)
            .await?;
    }
    write_timers(tx, id, &timers).await
}

async fn stored_timers(tx: &mut Tx, id: i64) -> Result<Vec<Stored>> {
    sqlx::query("SELECT kind, due_at, fired_at FROM sla_timers WHERE ticket_id = $1")
        .bind(id)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .filter_map(|r| {
            let kind: String = r.try_get("kind").ok()?;
            Some(Ok(Stored {
                kind: Kind::parse(&kind)?,
                due: r.try_get("due_at").ok()?,
                fired_at: r.try_get("fired_at").ok()?,
            }))
        })
        .collect()
}

/// Stores due times and timers computed by the caller: for a ticket just
/// created (nothing to delete), or after `reschedule` cleared the unfired ones.
pub async fn write_timers(tx: &mut Tx, id: i64, timers: &[Timer]) -> Result<()> {
    let due = |kind: Kind| timers.iter().find(|t| t.kind == kind).map(|t| t.due);
    sqlx::query("UPDATE tickets SET first_response_due = $1, resolution_due = $2 WHERE id = $3")
        .bind(due(Kind::FirstResponseBreach))
        .bind(due(Kind::ResolutionBreach))
        .bind(id)
        .execute(&mut **tx)
        .await?;
    if timers.is_empty() {
        return Ok(());
    }
    // Fired timers stay fired: the insert skips them. The text is built from
    // placeholders only.
    let rows: Vec<String> = (0..timers.len())
        .map(|i| format!("($1, ${}, ${})", 2 * i + 2, 2 * i + 3))
        .collect();
    let sql = format!(
        "INSERT INTO sla_timers (ticket_id, kind, due_at) VALUES {}
         ON CONFLICT (ticket_id, kind) DO NOTHING",
        rows.join(", ")
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id);
    for t in timers {
        query = query.bind(t.kind.as_str()).bind(t.due);
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

/// The first public agent comment stops the first-response clock.
pub async fn record_first_response(tx: &mut Tx, id: i64, now: Timestamp) -> Result<bool> {
    Ok(sqlx::query(
        "UPDATE tickets SET first_response_at = $1 WHERE id = $2 AND first_response_at IS NULL",
    )
    .bind(now)
    .bind(id)
    .execute(&mut **tx)
    .await?
    .rows_affected()
        > 0)
}

/// Clock bookkeeping of a status change: pending starts a pause, leaving
/// pending ends it.
pub async fn status_changed(
    tx: &mut Tx,
    id: i64,
    old: Status,
    new: Status,
    now: Timestamp,
) -> Result<()> {
    if new == Status::Pending && old != Status::Pending {
        sqlx::query("UPDATE tickets SET sla_paused_at = $1 WHERE id = $2")
            .bind(now)
            .bind(id)
            .execute(&mut **tx)
            .await?;
    } else if old == Status::Pending && new != Status::Pending {
        sqlx::query(
            "INSERT INTO sla_pauses (ticket_id, from_at, to_at)
             SELECT id, sla_paused_at, $1 FROM tickets WHERE id = $2 AND sla_paused_at IS NOT NULL",
        )
        .bind(now)
        .bind(id)
        .execute(&mut **tx)
        .await?;
        sqlx::query("UPDATE tickets SET sla_paused_at = NULL WHERE id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// A timer that is due.
#[derive(Debug, Clone)]
pub struct DueTimer {
    pub ticket_id: i64,
    pub kind: Kind,
    pub due_at: Timestamp,
}

/// Claims a due timer: true for exactly one caller, ever.
pub async fn fire(tx: &mut Tx, t: &DueTimer, now: Timestamp) -> Result<bool> {
    Ok(sqlx::query(
        "UPDATE sla_timers SET fired_at = $1
         WHERE ticket_id = $2 AND kind = $3 AND fired_at IS NULL AND due_at <= $1",
    )
    .bind(now)
    .bind(t.ticket_id)
    .bind(t.kind.as_str())
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1)
}

impl Store {
    /// Unfired timers due by `now`, in due order.
    pub async fn due_timers(&self, now: Timestamp, limit: i64) -> Result<Vec<DueTimer>> {
        sqlx::query(
            "SELECT ticket_id, kind, due_at FROM sla_timers
             WHERE fired_at IS NULL AND due_at <= $1 ORDER BY due_at, ticket_id LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(self.pool())
        .await?
        .iter()
        .filter_map(|r| {
            let kind: String = r.try_get("kind").ok()?;
            Some(Ok(DueTimer {
                ticket_id: r.try_get("ticket_id").ok()?,
                kind: Kind::parse(&kind)?,
                due_at: r.try_get("due_at").ok()?,
            }))
        })
        .collect()
    }

    /// When the next unfired timer is due, if any.
    pub async fn next_timer_due(&self) -> Result<Option<Timestamp>> {
        Ok(
            sqlx::query("SELECT MIN(due_at) FROM sla_timers WHERE fired_at IS NULL")
                .fetch_one(self.pool())
                .await?
                .try_get(0)?,
        )
    }

    /// Which thresholds of a ticket have fired, by kind name.
    pub async fn fired_timers(&self, number: &str) -> Result<Vec<String>> {
        sqlx::query(
            "SELECT s.kind FROM sla_timers s JOIN tickets t ON t.id = s.ticket_id
             WHERE t.number = $1 AND s.fired_at IS NOT NULL ORDER BY s.fired_at, s.kind",
        )
        .bind(number)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| Ok(r.try_get(0)?))
        .collect()
    }
}
