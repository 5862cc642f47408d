//! Changes that rules (and later agents) make to a ticket: fields, tags,
//! assignment. Every change writes a history row naming the actor and rule.

use super::tickets::history;
use super::{Result, Tx};
use crate::clock::Timestamp;
use sqlx::Row;

/// A ticket as rule conditions and notifications see it.
#[derive(Debug, Clone)]
pub struct TicketState {
    pub id: i64,
    pub number: String,
    pub subject: String,
    pub status: String,
    pub priority: String,
    pub category: String,
    pub channel: String,
    pub language: Option<String>,
    pub requester: String,
    pub requester_name: String,
    pub assignee: Option<String>,
    pub assignee_name: Option<String>,
    pub team: Option<String>,
    pub organization: Option<String>,
    pub tags: Vec<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// SLA breach times still ahead (none once met, or while pending).
    pub first_response_due: Option<Timestamp>,
    pub resolution_due: Option<Timestamp>,
}

/// The columns and joins of a [`TicketState`] (the requester is reached on
/// the ticket's channel: an email address, or `telegram:USER_ID`) with its
/// tags folded into one
/// column, joined by U+001F (`$tags`: the dialect's aggregate; the rule
/// loader refuses control characters in tags); callers add the WHERE.
macro_rules! state_select {
    ($tags:literal) => {
        concat!(
            "SELECT t.id, t.number, t.subject, t.status, t.priority, t.category, t.channel,
                    t.language,
                    CASE WHEN i.kind = 'email' THEN i.address ELSE i.kind || ':' || i.address END
                        AS requester,
                    c.name AS requester_name,
                    a.email AS assignee, a.name AS assignee_name, tm.name AS team,
                    o.name AS organization, t.created_at, t.updated_at, t.first_response_due,
                    t.resolution_due, (SELECT ",
            $tags,
            " FROM ticket_tags g WHERE g.ticket_id = t.id) AS tags
             FROM tickets t
             JOIN contacts c ON c.id = t.requester_id
             LEFT JOIN contact_identities i ON i.contact_id = t.requester_id
                  AND i.kind = CASE WHEN t.channel = 'email' THEN 'email' ELSE t.channel END
             LEFT JOIN agents a ON a.id = t.assignee_id
             LEFT JOIN teams tm ON tm.id = t.team_id
             LEFT JOIN organizations o ON o.id = t.organization_id"
        )
    };
}

pub async fn ticket_state(tx: &mut Tx, id: i64) -> Result<Option<TicketState>> {
    let sql = if is_sqlite(tx) {
        concat!(
            state_select!("group_concat(g.tag, char(31))"),
            " WHERE t.id = $1"
        )
    } else {
        concat!(
            state_select!("string_agg(g.tag, chr(31))"),
            " WHERE t.id = $1"
        )
    };
    let Some(r) = sqlx::query(sql).bind(id).fetch_optional(&mut **tx).await? else {
        return Ok(None);
    };
    Ok(Some(state_of(&r)?))
}

fn is_sqlite(tx: &mut Tx) -> bool {
    tx.backend_name() == "SQLite"
}

/// Every ticket that is not resolved or closed, in number order: two
/// queries, however many tickets (scheduled rules run over these).
pub async fn open_ticket_states(tx: &mut Tx) -> Result<Vec<TicketState>> {
    let sql = if is_sqlite(tx) {
        concat!(
            state_select!("group_concat(g.tag, char(31))"),
            " WHERE t.status IN ('new', 'open', 'pending') ORDER BY t.id"
        )
    } else {
        concat!(
            state_select!("string_agg(g.tag, chr(31))"),
            " WHERE t.status IN ('new', 'open', 'pending') ORDER BY t.id"
        )
    };
    sqlx::query(sql)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(state_of)
        .collect()
}

fn state_of(r: &sqlx::any::AnyRow) -> Result<TicketState> {
    Ok(TicketState {
        id: r.try_get("id")?,
        number: r.try_get("number")?,
        subject: r.try_get("subject")?,
        status: r.try_get("status")?,
        priority: r.try_get("priority")?,
        category: r.try_get("category")?,
        channel: r.try_get("channel")?,
        language: r.try_get("language")?,
        requester: r
            .try_get::<Option<String>, _>("requester")?
            .unwrap_or_default(),
        requester_name: r.try_get("requester_name")?,
        assignee: r.try_get("assignee")?,
        assignee_name: r.try_get("assignee_name")?,
        team: r.try_get("team")?,
        organization: r.try_get("organization")?,
        tags: {
            let joined: Option<String> = r.try_get("tags")?;
            let mut tags: Vec<String> = joined
                .iter()
                .flat_map(|j| j.split('\u{1f}'))
                .filter(|t| !t.is_empty())
                .map(String::from)
                .collect();
            tags.sort();
            tags
        },
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        first_response_due: r.try_get("first_response_due")?,
        resolution_due: r.try_get("resolution_due")?,
    })
}

/// Who made a change: an actor (`rules`, an agent's email …) and the rule.
#[derive(Debug, Clone, Copy)]
pub struct By<'a> {
    pub actor: &'a str,
    pub rule: Option<&'a str>,
    pub now: Timestamp,
}

/// Sets `category` or `priority` (the only free-text columns rules change).
pub async fn set_text(
    tx: &mut Tx,
    id: i64,
    field: &'static str,
    old: &str,
    new: &str,
    by: By<'_>,
) -> Result<bool> {
    if old == new {
        return Ok(false);
    }
    let sql: &'static str = match field {
        "category" => "UPDATE tickets SET category = $1, updated_at = $2 WHERE id = $3",
        "priority" => "UPDATE tickets SET priority = $1, updated_at = $2 WHERE id = $3",
        other => unreachable!("set_text on {other}"),
    };
    sqlx::query(sql)
        .bind(new)
        .bind(by.now)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    history(
        tx,
        id,
        by.actor,
        field,
        Some(old),
        Some(new),
        by.rule,
        by.now,
    )
    .await?;
    Ok(true)
}

/// Who a ticket belongs to: its team or its assignee.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Team,
    Assignee,
}

/// Points the ticket's team or assignee at `name` (a team name, an agent's
/// email); false when there is no such team or agent, or it is already set.
pub async fn set_owner(
    tx: &mut Tx,
    id: i64,
    owner: Owner,
    old: Option<&str>,
    name: &str,
    by: By<'_>,
) -> Result<bool> {
    if old.is_some_and(|o| o.eq_ignore_ascii_case(name)) {
        return Ok(false);
    }
    let (sql, field) = match owner {
        Owner::Team => (
            "UPDATE tickets SET team_id = (SELECT id FROM teams WHERE name = $1), updated_at = $2
             WHERE id = $3 AND EXISTS (SELECT 1 FROM teams WHERE name = $1)",
            "team",
        ),
        Owner::Assignee => (
            "UPDATE tickets SET assignee_id = (SELECT id FROM agents WHERE lower(email) = lower($1)),
                    updated_at = $2
             WHERE id = $3 AND EXISTS (SELECT 1 FROM agents WHERE lower(email) = lower($1))",
            "assignee",
        ),
    };
    let done = sqlx::query(sql)
        .bind(name)
        .bind(by.now)
        .bind(id)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    if done == 0 {
        return Ok(false);
    }
    history(tx, id, by.actor, field, old, Some(name), by.rule, by.now).await?;
    Ok(true)
}

/// Adds (`on`) or removes a tag; false when there was nothing to change.
pub async fn set_tag(tx: &mut Tx, id: i64, tag: &str, on: bool, by: By<'_>) -> Result<bool> {
    let sql = if on {
        "INSERT INTO ticket_tags (ticket_id, tag) VALUES ($1, $2)
         ON CONFLICT (ticket_id, tag) DO NOTHING"
    } else {
        "DELETE FROM ticket_tags WHERE ticket_id = $1 AND tag = $2"
    };
    let done = sqlx::query(sql)
        .bind(id)
        .bind(tag)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    if done > 0 {
        let (old, new) = if on {
            (None, Some(tag))
        } else {
            (Some(tag), None)
        };
        history(tx, id, by.actor, "tag", old, new, by.rule, by.now).await?;
    }
    Ok(done > 0)
}

/// The team's active members who can take tickets (not viewers), by email.
pub async fn team_members(tx: &mut Tx, team: &str) -> Result<Vec<(i64, String)>> {
    let rows = sqlx::query(
        "SELECT a.id, a.email FROM agents a
         JOIN agent_teams at ON at.agent_id = a.id
         JOIN teams t ON t.id = at.team_id
         WHERE t.name = $1 AND a.active = 1 AND a.role <> 'viewer'
         ORDER BY a.email",
    )
    .bind(team)
    .fetch_all(&mut **tx)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// The member after the one the team's last round-robin pick went to (the
/// first member when there was none), remembered for the next pick.
pub async fn round_robin(tx: &mut Tx, team: &str) -> Result<Option<String>> {
    let members = team_members(tx, team).await?;
    if members.is_empty() {
        return Ok(None);
    }
    let last: Option<i64> = sqlx::query(
        "SELECT r.last_agent_id FROM team_rotation r JOIN teams t ON t.id = r.team_id
         WHERE t.name = $1",
    )
    .bind(team)
    .fetch_optional(&mut **tx)
    .await?
    .map(|r| r.try_get(0))
    .transpose()?;
    let next = match last.and_then(|l| members.iter().position(|(id, _)| *id == l)) {
        Some(i) => &members[(i + 1) % members.len()],
        None => &members[0],
    };
    sqlx::query(
        "INSERT INTO team_rotation (team_id, last_agent_id)
         SELECT id, $2 FROM teams WHERE name = $1
         ON CONFLICT (team_id) DO UPDATE SET last_agent_id = excluded.last_agent_id",
    )
    .bind(team)
    .bind(next.0)
    .execute(&mut **tx)
    .await?;
    Ok(Some(next.1.clone()))
}

/// The team member with the fewest tickets in new, open or pending (ties: by email).
pub async fn least_open(tx: &mut Tx, team: &str) -> Result<Option<String>> {
    let row = sqlx::query(
        "SELECT a.email, (SELECT COUNT(*) FROM tickets k
                          WHERE k.assignee_id = a.id AND k.status IN ('new', 'open', 'pending')) AS open
         FROM agents a
         JOIN agent_teams at ON at.agent_id = a.id
         JOIN teams t ON t.id = at.team_id
         WHERE t.name = $1 AND a.active = 1 AND a.role <> 'viewer'
         ORDER BY open, a.email
         LIMIT 1",
    )
    .bind(team)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// Managers and admins: of the team when given (falling back to all).
pub async fn managers(tx: &mut Tx, team: Option<&str>) -> Result<Vec<String>> {
    let mut emails: Vec<String> = Vec::new();
    if let Some(team) = team {
        emails = sqlx::query(
            "SELECT a.email FROM agents a
             JOIN agent_teams at ON at.agent_id = a.id JOIN teams t ON t.id = at.team_id
             WHERE t.name = $1 AND a.active = 1 AND a.role IN ('manager', 'admin')
             ORDER BY a.email",
        )
        .bind(team)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<std::result::Result<_, _>>()?;
    }
    if emails.is_empty() {
        emails = sqlx::query(
            "SELECT email FROM agents WHERE active = 1 AND role IN ('manager', 'admin') ORDER BY email",
        )
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<std::result::Result<_, _>>()?;
    }
    Ok(emails)
}
