//! A ticket as rule conditions and notifications see it, and the
//! transaction's picture of it: read once, then kept up to date by every
//! change the transaction makes (see [`known`]).

use super::{Result, Tx};
use crate::clock::Timestamp;
use crate::ticket::{Channel, Priority, Status};
use sqlx::Row;

/// A ticket as rule conditions and notifications see it.
#[derive(Debug, Clone)]
pub struct TicketState {
    pub id: i64,
    pub number: String,
    pub subject: String,
    pub status: Status,
    pub priority: Priority,
    pub category: String,
    pub channel: Channel,
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
    if let Some(known) = tx.tickets.get(&id) {
        return Ok(Some(known.clone()));
    }
    super::drafts::flush(tx, id).await?;
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
    let state = state_of(&r)?;
    remember(tx, &state);
    Ok(Some(state))
}

/// Keeps `state` as the transaction's picture of the ticket, for the next
/// [`ticket_state`].
pub fn remember(tx: &mut Tx, state: &TicketState) {
    tx.tickets.insert(state.id, state.clone());
}

/// Changes the transaction's picture of ticket `id`, if it has one: every
/// write to a ticket's columns that [`TicketState`] shows goes through here.
pub(crate) fn known(tx: &mut Tx, id: i64, change: impl FnOnce(&mut TicketState)) {
    if let Some(state) = tx.tickets.get_mut(&id) {
        change(state);
    }
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

/// A column of a fixed vocabulary as its enum. A value the code does not
/// know is an error naming the column and the value, never a default.
pub fn word<T: std::str::FromStr<Err = String>>(r: &sqlx::any::AnyRow, column: &str) -> Result<T> {
    let text: String = r.try_get(column)?;
    text.parse()
        .map_err(|e| super::Error::Permanent(format!("tickets.{column}: {e}")))
}

fn state_of(r: &sqlx::any::AnyRow) -> Result<TicketState> {
    Ok(TicketState {
        id: r.try_get("id")?,
        number: r.try_get("number")?,
        subject: r.try_get("subject")?,
        status: word(r, "status")?,
        priority: word(r, "priority")?,
        category: r.try_get("category")?,
        channel: word(r, "channel")?,
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
