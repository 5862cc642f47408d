//! SLA clocks in the store: due times on the ticket, pending intervals, and
//! the timer rows the scheduler fires exactly once (a conditional UPDATE, so
//! two instances cannot both fire one).

use super::rows::{insert_rows, insert_rows_then, placeholders, rows_per_insert};
use super::state::TicketState;
use super::{Result, Store, Tx};
use crate::clock::Timestamp;
use crate::sla::{Clocked, Due, Kind, Policies, Stored, Timer};
use crate::ticket::{Priority, Status};
use sqlx::Row;
use std::collections::HashMap;

/// Recomputes a ticket's due times and timers from its current state:
/// unfired timers move, fired ones stay fired, those no longer ahead (a first
/// response happened, the ticket is pending or resolved) are dropped. Writes
/// nothing when the stored rows already match (see [`crate::sla::plan`]).
pub async fn reschedule(tx: &mut Tx, id: i64, policies: &Policies) -> Result<()> {
    reschedule_all(tx, &[id], policies).await
}

/// The same for many tickets, with a few statements for all of them.
pub async fn reschedule_all(tx: &mut Tx, ids: &[i64], policies: &Policies) -> Result<()> {
    // Timers held for tickets created in this transaction give way to the
    // ones planned here.
    if let Some(held) = tx.held() {
        held.sla_timers.retain(|(id, _)| !ids.contains(id));
    }
    for id in ids {
        super::drafts::flush(tx, *id).await?;
    }
    for ids in ids.chunks(MAX_IDS) {
        let clocks = clock_rows(tx, ids).await?;
        let mut stored = stored_timers(tx, ids).await?;
        let paused: Vec<i64> = clocks.iter().filter(|c| c.pauses).map(|c| c.id).collect();
        let pauses = pause_rows(tx, &paused).await?;
        let mut changes = Vec::new();
        for c in &clocks {
            let pauses: Vec<(Timestamp, Timestamp)> = pauses
                .iter()
                .filter(|p| p.0 == c.id)
                .map(|p| (p.1, p.2))
                .collect();
            let clocked = Clocked {
                created_at: c.created_at,
                updated_at: c.updated_at,
                priority: c.priority,
                status: c.status,
                team: c.team.as_deref(),
                organization: c.organization.as_deref(),
                first_response_at: c.first_response_at,
                pauses: &pauses,
                paused_since: c.paused_since,
            };
            let timers = policies.timers(&clocked);
            let stored = stored.remove(&c.id).unwrap_or_default();
            let due = |kind: Kind| timers.iter().find(|t| t.kind == kind).map(|t| t.due);
            let columns_match = c.first_response_due == due(Kind::FirstResponseBreach)
                && c.resolution_due == due(Kind::ResolutionBreach);
            let plan = crate::sla::plan(
                &timers,
                &stored,
                c.updated_at,
                c.paused_since,
                c.resolved_at,
            );
            match plan {
                Some(rearm) => changes.push((c.id, timers, rearm)),
                None if columns_match => {}
                None => changes.push((c.id, timers, Vec::new())),
            }
        }
        write_changes(tx, changes).await?;
    }
    Ok(())
}

/// Tickets per statement of a batch (one placeholder each).
const MAX_IDS: usize = 900;

/// What the clocks of one ticket depend on, and the due times stored on it.
struct ClockRow {
    id: i64,
    created_at: Timestamp,
    updated_at: Timestamp,
    priority: Priority,
    status: Status,
    team: Option<String>,
    organization: Option<String>,
    first_response_at: Option<Timestamp>,
    paused_since: Option<Timestamp>,
    resolved_at: Option<Timestamp>,
    first_response_due: Option<Timestamp>,
    resolution_due: Option<Timestamp>,
    /// Whether the ticket has finished pending intervals.
    pauses: bool,
}

/// `$1, $2, …, $n`, the placeholders of an `IN` list.
fn id_list(n: usize) -> String {
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The rows of `sql` with `{ids}` standing for the placeholders of `ids`.
async fn rows_for(tx: &mut Tx, sql: &str, ids: &[i64]) -> Result<Vec<sqlx::any::AnyRow>> {
    let sql = sql.replace("{ids}", &id_list(ids.len()));
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in ids {
        query = query.bind(*id);
    }
    Ok(query.fetch_all(&mut **tx).await?)
}

async fn clock_rows(tx: &mut Tx, ids: &[i64]) -> Result<Vec<ClockRow>> {
    let sql = "SELECT t.id, t.created_at, t.updated_at, t.priority, t.status, tm.name AS team,
                o.name AS organization, t.first_response_at, t.sla_paused_at, t.resolved_at,
                t.first_response_due, t.resolution_due,
                EXISTS (SELECT 1 FROM sla_pauses p WHERE p.ticket_id = t.id) AS pauses
         FROM tickets t
         LEFT JOIN teams tm ON tm.id = t.team_id
         LEFT JOIN organizations o ON o.id = t.organization_id
         WHERE t.id IN ({ids})";
    rows_for(tx, sql, ids)
        .await?
        .iter()
        .map(|r| {
            Ok(ClockRow {
                id: r.try_get("id")?,
                created_at: r.try_get("created_at")?,
                updated_at: r.try_get("updated_at")?,
                priority: super::state::word(r, "priority")?,
                status: super::state::word(r, "status")?,
                team: r.try_get("team")?,
                organization: r.try_get("organization")?,
                first_response_at: r.try_get("first_response_at")?,
                paused_since: r.try_get("sla_paused_at")?,
                resolved_at: r.try_get("resolved_at")?,
                first_response_due: r.try_get("first_response_due")?,
                resolution_due: r.try_get("resolution_due")?,
                pauses: super::flag(r, "pauses")?,
            })
        })
        .collect()
}

/// Finished pending intervals (ticket, from, to), in order.
async fn pause_rows(tx: &mut Tx, ids: &[i64]) -> Result<Vec<(i64, Timestamp, Timestamp)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = "SELECT ticket_id, from_at, to_at FROM sla_pauses WHERE ticket_id IN ({ids})
               ORDER BY ticket_id, from_at";
    rows_for(tx, sql, ids)
        .await?
        .iter()
        .map(|p| Ok((p.try_get(0)?, p.try_get(1)?, p.try_get(2)?)))
        .collect()
}

async fn stored_timers(tx: &mut Tx, ids: &[i64]) -> Result<HashMap<i64, Vec<Stored>>> {
    let sql = "SELECT ticket_id, kind, due_at, fired_at FROM sla_timers WHERE ticket_id IN ({ids})";
    let mut stored: HashMap<i64, Vec<Stored>> = HashMap::new();
    for r in rows_for(tx, sql, ids).await? {
        let kind: String = r.try_get("kind")?;
        let Some(kind) = Kind::parse(&kind) else {
            continue;
        };
        stored
            .entry(r.try_get("ticket_id")?)
            .or_default()
            .push(Stored {
                kind,
                due: r.try_get("due_at")?,
                fired_at: r.try_get("fired_at")?,
            });
    }
    Ok(stored)
}

/// Writes the new timers of the tickets whose rows differ: their unfired
/// timers and the fired ones to arm again go, the wanted ones come.
async fn write_changes(tx: &mut Tx, changes: Vec<(i64, Vec<Timer>, Vec<Kind>)>) -> Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = changes.iter().map(|c| c.0).collect();
    // `+fired_at` keeps SQLite on the primary key: on `fired_at IS NULL`
    // alone it would walk the due index over every unfired timer.
    let sql = format!(
        "DELETE FROM sla_timers WHERE ticket_id IN ({}) AND +fired_at IS NULL",
        id_list(ids.len())
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in &ids {
        query = query.bind(*id);
    }
    query.execute(&mut **tx).await?;
    for (id, _, rearm) in &changes {
        for kind in rearm {
            sqlx::query("DELETE FROM sla_timers WHERE ticket_id = $1 AND kind = $2")
                .bind(*id)
                .bind(kind.as_str())
                .execute(&mut **tx)
                .await?;
        }
    }
    let rows: Vec<(i64, &[Timer])> = changes.iter().map(|(id, t, _)| (*id, &t[..])).collect();
    write_timers_of(tx, &rows).await
}

/// Stores due times and timers computed by the caller: for a ticket just
/// created (nothing to delete), or after `reschedule` cleared the unfired ones.
pub async fn write_timers(tx: &mut Tx, id: i64, timers: &[Timer]) -> Result<()> {
    write_timers_of(tx, &[(id, timers)]).await
}

/// Arms the clocks of a ticket created in this transaction with its due
/// times already in its row: in a transaction that holds its appends back,
/// the timers are written at commit with the batch's others.
pub async fn arm_created(tx: &mut Tx, id: i64, timers: &[Timer]) -> Result<()> {
    match tx.held() {
        Some(held) => held.sla_timers.extend(timers.iter().map(|t| (id, *t))),
        None => write_timers(tx, id, timers).await?,
    }
    Ok(())
}

/// Plans the clocks of a ticket created in this transaction from `state`,
/// the ticket as the rules left it: in memory while it is a draft with status
/// new (its row is written with them), else as [`reschedule`] does.
pub async fn arm_new(tx: &mut Tx, state: Option<&TicketState>, policies: &Policies) -> Result<()> {
    let Some(s) = state else {
        return Ok(());
    };
    let priority = s.priority;
    if s.status != Status::New || super::drafts::draft(tx, s.id).is_none() {
        return reschedule(tx, s.id, policies).await;
    }
    let timers = policies.timers(&Clocked {
        created_at: s.created_at,
        updated_at: s.updated_at,
        priority,
        status: Status::New,
        team: s.team.as_deref(),
        organization: s.organization.as_deref(),
        first_response_at: None,
        pauses: &[],
        paused_since: None,
    });
    let due = Due::of(&timers);
    if let Some(draft) = super::drafts::draft(tx, s.id) {
        draft.due = due;
    }
    super::state::known(tx, s.id, |s| {
        (s.first_response_due, s.resolution_due) = (due.first_response, due.resolution);
    });
    arm_created(tx, s.id, &timers).await
}

/// Writes held timers of new tickets (none is stored yet).
pub(crate) async fn write_created_timers(
    conn: &mut sqlx::AnyConnection,
    rows: Vec<(i64, Timer)>,
) -> Result<()> {
    let insert = "INSERT INTO sla_timers (ticket_id, kind, due_at)";
    insert_rows(conn, insert, 3, rows, |query, (id, t)| {
        query.bind(id).bind(t.kind.as_str()).bind(t.due)
    })
    .await
}

/// The same for many tickets: one statement for the due times, one for the
/// timers (fired timers stay fired: the insert skips them).
async fn write_timers_of(tx: &mut Tx, tickets: &[(i64, &[Timer])]) -> Result<()> {
    for chunk in tickets.chunks(rows_per_insert(3)) {
        let sql = format!(
            "UPDATE tickets SET first_response_due = v.column2, resolution_due = v.column3
             FROM (VALUES {}) AS v WHERE tickets.id = v.column1",
            placeholders(chunk.len(), 3)
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (id, timers) in chunk {
            let due = Due::of(timers);
            super::state::known(tx, *id, |s| {
                (s.first_response_due, s.resolution_due) = (due.first_response, due.resolution);
            });
            query = query
                .bind(*id)
                .bind(due.first_response)
                .bind(due.resolution);
        }
        query.execute(&mut **tx).await?;
    }
    let rows: Vec<(i64, &Timer)> = tickets
        .iter()
        .flat_map(|(id, timers)| timers.iter().map(|t| (*id, t)))
        .collect();
    let insert = "INSERT INTO sla_timers (ticket_id, kind, due_at)";
    let then = "ON CONFLICT (ticket_id, kind) DO NOTHING";
    insert_rows_then(tx, insert, 3, rows, then, |query, (id, t)| {
        query.bind(id).bind(t.kind.as_str()).bind(t.due)
    })
    .await
}

/// The first public agent comment stops the first-response clock.
pub async fn record_first_response(tx: &mut Tx, id: i64, now: Timestamp) -> Result<bool> {
    super::drafts::flush(tx, id).await?;
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

/// Claims due timers: each is returned to exactly one caller, ever (with
/// its due time now; a timer that moved later is not claimed).
pub async fn fire(tx: &mut Tx, timers: &[DueTimer], now: Timestamp) -> Result<Vec<DueTimer>> {
    let mut fired = Vec::new();
    for chunk in timers.chunks(rows_per_insert(2)) {
        let pairs: Vec<String> = (0..chunk.len())
            .map(|i| format!("(${}, ${})", 2 * i + 2, 2 * i + 3))
            .collect();
        let sql = format!(
            "UPDATE sla_timers SET fired_at = $1
             WHERE fired_at IS NULL AND due_at <= $1 AND (ticket_id, kind) IN (VALUES {})
             RETURNING ticket_id, kind, due_at",
            pairs.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now);
        for t in chunk {
            query = query.bind(t.ticket_id).bind(t.kind.as_str());
        }
        for r in query.fetch_all(&mut **tx).await? {
            let kind: String = r.try_get("kind")?;
            if let Some(kind) = Kind::parse(&kind) {
                fired.push(DueTimer {
                    ticket_id: r.try_get("ticket_id")?,
                    kind,
                    due_at: r.try_get("due_at")?,
                });
            }
        }
    }
    // In due order, as they were asked for.
    fired.sort_by_key(|t| (t.due_at, t.ticket_id));
    Ok(fired)
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
