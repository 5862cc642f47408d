//! Changes that rules (and later agents) make to a ticket: fields, tags,
//! assignment. Every change writes a history row naming the actor and rule.

use super::history::history;
use super::state::known;
pub use super::state::{TicketState, open_ticket_states, remember, ticket_state};
use super::{Result, Tx};
use crate::clock::Timestamp;
use crate::ticket::Priority;
use sqlx::Row;
use std::collections::HashMap;

/// Who made a change: an actor (`rules`, an agent's email …) and the rule.
#[derive(Debug, Clone, Copy)]
pub struct By<'a> {
    pub actor: &'a str,
    pub rule: Option<&'a str>,
    pub now: Timestamp,
}

/// A field rules and agents set to a value: the category (a word of the
/// configured list) or the priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field<'a> {
    Category(&'a str),
    Priority(Priority),
}

impl Field<'_> {
    fn name(self) -> &'static str {
        match self {
            Field::Category(_) => "category",
            Field::Priority(_) => "priority",
        }
    }

    fn value(self) -> String {
        match self {
            Field::Category(c) => c.to_string(),
            Field::Priority(p) => p.as_str().to_string(),
        }
    }

    /// The field's value in `state`.
    fn of(self, state: &TicketState) -> Field<'_> {
        match self {
            Field::Category(_) => Field::Category(&state.category),
            Field::Priority(_) => Field::Priority(state.priority),
        }
    }
}

/// Sets a field of ticket `state` (as the transaction sees it) to `new`;
/// false when it holds that value already.
pub async fn set_field(
    tx: &mut Tx,
    state: &TicketState,
    new: Field<'_>,
    by: By<'_>,
) -> Result<bool> {
    let id = state.id;
    let old = new.of(state);
    if old == new {
        return Ok(false);
    }
    let (old, new_text) = (old.value(), new.value());
    if let Some(draft) = super::drafts::draft(tx, id) {
        match new {
            Field::Category(c) => draft.category = c.to_string(),
            Field::Priority(p) => draft.priority = p,
        }
        draft.updated_at = by.now;
    } else {
        let sql: &'static str = match new {
            Field::Category(_) => "UPDATE tickets SET category = $1, updated_at = $2 WHERE id = $3",
            Field::Priority(_) => "UPDATE tickets SET priority = $1, updated_at = $2 WHERE id = $3",
        };
        sqlx::query(sql)
            .bind(&new_text)
            .bind(by.now)
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    known(tx, id, |s| {
        match new {
            Field::Category(c) => s.category = c.to_string(),
            Field::Priority(p) => s.priority = p,
        }
        s.updated_at = by.now;
    });
    let field = new.name();
    let (old, new) = (Some(old.as_str()), Some(new_text.as_str()));
    history(tx, id, by.actor, field, old, new, by.rule, by.now).await?;
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
             WHERE id = $3 AND EXISTS (SELECT 1 FROM teams WHERE name = $1)
             RETURNING (SELECT name FROM teams WHERE id = tickets.team_id), CAST(NULL AS TEXT)",
            "team",
        ),
        Owner::Assignee => (
            "UPDATE tickets SET assignee_id = (SELECT id FROM agents WHERE lower(email) = lower($1)),
                    updated_at = $2
             WHERE id = $3 AND EXISTS (SELECT 1 FROM agents WHERE lower(email) = lower($1))
             RETURNING (SELECT email FROM agents WHERE id = tickets.assignee_id),
                       (SELECT name FROM agents WHERE id = tickets.assignee_id)",
            "assignee",
        ),
    };
    let named = match super::drafts::draft(tx, id).is_some() {
        true => set_draft_owner(tx, id, owner, name, by.now).await?,
        false => sqlx::query(sql)
            .bind(name)
            .bind(by.now)
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?
            .map(|row| Ok::<_, super::Error>((row.try_get(0)?, row.try_get(1)?)))
            .transpose()?,
    };
    let Some((now_named, agent_name)) = named else {
        return Ok(false);
    };
    known(tx, id, |s| {
        match owner {
            Owner::Team => s.team = now_named,
            Owner::Assignee => (s.assignee, s.assignee_name) = (now_named, agent_name),
        }
        s.updated_at = by.now;
    });
    history(tx, id, by.actor, field, old, Some(name), by.rule, by.now).await?;
    Ok(true)
}

/// [`set_owner`] on a draft: the team or agent looked up in the directory.
/// Returns the name (team) or (email, name) of the agent it now points at.
async fn set_draft_owner(
    tx: &mut Tx,
    id: i64,
    owner: Owner,
    name: &str,
    now: Timestamp,
) -> Result<Option<(Option<String>, Option<String>)>> {
    let directory = super::drafts::directory(tx).await?;
    let Some(draft) = super::drafts::draft(tx, id) else {
        return Ok(None);
    };
    let named = match owner {
        Owner::Team => directory.teams.get(name).map(|team| {
            draft.team_id = Some(*team);
            (Some(name.to_string()), None)
        }),
        Owner::Assignee => directory.agents.get(&name.to_lowercase()).map(|agent| {
            draft.assignee_id = Some(agent.0);
            (Some(agent.1.clone()), Some(agent.2.clone()))
        }),
    };
    if named.is_some() {
        draft.updated_at = now;
    }
    Ok(named)
}

/// Adds (`on`) or removes a tag; false when there was nothing to change.
pub async fn set_tag(tx: &mut Tx, id: i64, tag: &str, on: bool, by: By<'_>) -> Result<bool> {
    let sql = if on {
        "INSERT INTO ticket_tags (ticket_id, tag) VALUES ($1, $2)
         ON CONFLICT (ticket_id, tag) DO NOTHING"
    } else {
        "DELETE FROM ticket_tags WHERE ticket_id = $1 AND tag = $2"
    };
    let done = match super::drafts::draft(tx, id) {
        Some(draft) => {
            let had = draft.tags.iter().any(|t| t == tag);
            match on {
                true if !had => draft.tags.push(tag.to_string()),
                false => draft.tags.retain(|t| t != tag),
                true => {}
            }
            u64::from(had != on)
        }
        None => sqlx::query(sql)
            .bind(id)
            .bind(tag)
            .execute(&mut **tx)
            .await?
            .rows_affected(),
    };
    if done > 0 {
        known(tx, id, |s| {
            match (on, s.tags.binary_search_by(|t| t.as_str().cmp(tag))) {
                (true, Err(at)) => s.tags.insert(at, tag.to_string()),
                (false, Ok(at)) => {
                    s.tags.remove(at);
                }
                _ => {}
            }
        });
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

/// A team's round-robin rotation as a transaction holds it: the members
/// who can take tickets, by email, and the last one picked.
#[derive(Debug, Clone, Default)]
pub struct Rotation {
    members: Vec<(i64, String)>,
    last: Option<i64>,
    /// Picked in this transaction: written back at commit.
    moved: bool,
}

impl Rotation {
    /// The member after the last pick (the first when there was none). Pure.
    fn next(&mut self) -> Option<String> {
        let i = match self
            .last
            .and_then(|l| self.members.iter().position(|(id, _)| *id == l))
        {
            Some(i) => (i + 1) % self.members.len(),
            None => 0,
        };
        let (id, email) = self.members.get(i)?;
        self.last = Some(*id);
        self.moved = true;
        Some(email.clone())
    }
}

/// The member after the one the team's last round-robin pick went to (the
/// first member when there was none), remembered for the next pick. A
/// transaction that holds its appends back reads a team's rotation once and
/// writes it at commit.
pub async fn round_robin(tx: &mut Tx, team: &str) -> Result<Option<String>> {
    if let Some(rotation) = tx.held().and_then(|held| held.rotations.get_mut(team)) {
        return Ok(rotation.next());
    }
    let mut rotation = Rotation {
        members: team_members(tx, team).await?,
        ..Rotation::default()
    };
    if rotation.members.is_empty() {
        return Ok(None);
    }
    rotation.last = sqlx::query(
        "SELECT r.last_agent_id FROM team_rotation r JOIN teams t ON t.id = r.team_id
         WHERE t.name = $1",
    )
    .bind(team)
    .fetch_optional(&mut **tx)
    .await?
    .map(|r| r.try_get(0))
    .transpose()?;
    let next = rotation.next();
    match tx.held() {
        Some(held) => {
            held.rotations.insert(team.to_string(), rotation);
        }
        None => write_rotations(tx, HashMap::from([(team.to_string(), rotation)])).await?,
    }
    Ok(next)
}

/// Writes the rotations picked from: one statement per team.
pub(crate) async fn write_rotations(
    conn: &mut sqlx::AnyConnection,
    rotations: HashMap<String, Rotation>,
) -> Result<()> {
    for (team, rotation) in rotations {
        let Some(last) = rotation.last.filter(|_| rotation.moved) else {
            continue;
        };
        sqlx::query(
            "INSERT INTO team_rotation (team_id, last_agent_id)
             SELECT id, $2 FROM teams WHERE name = $1
             ON CONFLICT (team_id) DO UPDATE SET last_agent_id = excluded.last_agent_id",
        )
        .bind(team)
        .bind(last)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
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
